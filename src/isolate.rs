//! Failure isolation: a panic in template or provider code becomes an error of the one
//! ExternalSecret (or read) it happened in, never a crash of the process or of a refresh wave.
//!
//! The build keeps `panic = "unwind"` (checked at compile time below), so panics can be caught.
//! A panic's message may quote data (a value being formatted), so the process's panic hook prints
//! only where it happened, never the payload, and [`catch`] / [`catch_future`] return an error
//! with that location only.

use std::cell::RefCell;
use std::future::Future;
use std::panic::{self, AssertUnwindSafe};

use futures::FutureExt;

#[cfg(not(panic = "unwind"))]
compile_error!("extsecret needs panic = \"unwind\": template and provider panics are caught per ExternalSecret (src/isolate.rs)");

thread_local! {
    /// Location of the last panic on this thread, for the error [`catch`] returns.
    static LAST_PANIC: RefCell<Option<String>> = const { RefCell::new(None) };
}

/// Installs the process's panic hook: it prints `internal error: code panicked at FILE:LINE` and
/// never the panic's message. Idempotent enough to be called once at start-up.
pub fn install_panic_hook() {
    panic::set_hook(Box::new(|info| {
        let at = info.location().map(|l| format!("{}:{}", l.file(), l.line())).unwrap_or_else(|| "an unknown place".into());
        LAST_PANIC.with(|p| *p.borrow_mut() = Some(at.clone()));
        let thread = std::thread::current().name().unwrap_or("unnamed").to_string();
        eprintln!("extsecret: internal error: code panicked at {at} (thread {thread}; the message is withheld: it may quote data)");
    }));
}

/// The value-free description of a caught panic in `what` ("template", "provider").
fn describe(what: &str) -> String {
    let at = LAST_PANIC.with(|p| p.borrow_mut().take());
    match at {
        Some(at) => format!("internal error in {what} code (panicked at {at}; message withheld)"),
        None => format!("internal error in {what} code (panicked; message withheld)"),
    }
}

/// Runs `f`, turning a panic into `Err` with a value-free message naming `what` and where.
pub fn catch<T>(what: &str, f: impl FnOnce() -> T) -> Result<T, String> {
    panic::catch_unwind(AssertUnwindSafe(f)).map_err(|_| describe(what))
}

/// As [`catch`], for a future (provider calls).
pub async fn catch_future<T>(what: &str, f: impl Future<Output = T>) -> Result<T, String> {
    AssertUnwindSafe(f).catch_unwind().await.map_err(|_| describe(what))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_panic_becomes_an_error_without_its_message() {
        // (The process's hook, which adds the place, is not installed here: it would hide the
        // messages of failing tests running beside this one.)
        let canary = "canary-value-4711";
        let r: Result<(), String> = catch("template", || panic!("formatting {canary}"));
        let e = r.unwrap_err();
        assert!(e.starts_with("internal error in template code (panicked"), "{e}");
        assert!(!e.contains(canary), "{e}");
        assert_eq!(catch("template", || 7), Ok(7));
    }

    #[tokio::test]
    async fn a_panicking_future_becomes_an_error() {
        let r: Result<(), String> = catch_future("provider", async { panic!("secret-canary") }).await;
        let e = r.unwrap_err();
        assert!(e.contains("internal error in provider code") && !e.contains("secret-canary"), "{e}");
    }
}
