//! Bounds on template work, per ExternalSecret, so that no template can abort the process
//! (an allocation failure aborts and cannot be caught) or hold a thread:
//! - every string a function or the engine builds is at most [`MAX_STRING`] (1 MiB, the API
//!   server's limit for a whole Secret);
//! - at most [`MAX_BUILT`] (8 MiB) is built in total by the templates of one ExternalSecret
//!   (function results, list items at [`ITEM_COST`] each, and rendered output);
//! - at most [`CPU_BUDGET`] of the thread's CPU time is spent on them, checked at every function
//!   call, every write and every block the engines enter ([`tick`]).
//!
//! Functions whose result can grow by a factor a template chooses (`printf` widths, `indent`,
//! `replace`, `toJson` of a shared structure, ...) check the size before they allocate
//! ([`reserve`]); every result is charged after ([`charge_value`]).
//!
//! The budget is thread-local: [`scope`] opens one for the templates of one ExternalSecret (they
//! run synchronously on one thread). A breach is an ordinary error naming the function; it never
//! quotes a size or part of a value.
//!
//! The errors our functions raise are recorded here ([`own_error`]), so that the renderer can tell
//! them (value-free by construction) from an engine's messages (which may quote an operand).

use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use gotmpl::{TemplateError, Value};

/// Largest string one function or one template may build: 1 MiB.
pub const MAX_STRING: usize = 1 << 20;
/// Most text the templates of one ExternalSecret may build in total: 8 MiB.
pub const MAX_BUILT: usize = 8 << 20;
/// CPU time (of the rendering thread) the templates of one ExternalSecret may use.
pub const CPU_BUDGET: Duration = Duration::from_secs(2);
/// Bytes charged per list item or map entry a function builds.
pub const ITEM_COST: usize = 16;
/// Deepest nesting of lists and maps a template may build or parse (deeper structures would
/// overflow the stack when printed, encoded or dropped).
pub const MAX_DEPTH: usize = 64;
/// Ticks between two reads of the thread's CPU clock.
const TICKS_PER_CLOCK_READ: u32 = 64;

struct State {
    built: usize,
    cpu_start: Duration,
    ticks: u32,
    own_errors: Vec<String>,
    breach: Option<String>,
}

thread_local! {
    static STATE: RefCell<Option<State>> = const { RefCell::new(None) };
}

/// Runs `f` under one budget: a fresh one unless a scope is already open on this thread (then
/// `f` shares it).
pub fn scope<R>(f: impl FnOnce() -> R) -> R {
    let _scope = enter();
    f()
}

/// Opens a budget on this thread until the returned guard drops, unless one is open already
/// (then the guard does nothing): `let _budget = budget::enter();` puts everything the caller
/// renders for one ExternalSecret under one budget.
#[must_use = "the budget closes when the guard drops"]
pub fn enter() -> Scope {
    let fresh = STATE.with(|s| {
        let mut s = s.borrow_mut();
        if s.is_some() {
            return false;
        }
        *s = Some(State { built: 0, cpu_start: thread_cpu(), ticks: 0, own_errors: Vec::new(), breach: None });
        true
    });
    Scope(fresh)
}

/// An open budget (see [`enter`]); closes it on drop if it opened it.
pub struct Scope(bool);

impl Drop for Scope {
    fn drop(&mut self) {
        if self.0 {
            STATE.with(|s| *s.borrow_mut() = None);
        }
    }
}

fn with_state<R>(f: impl FnOnce(&mut State) -> R) -> Option<R> {
    STATE.with(|s| s.borrow_mut().as_mut().map(f))
}

/// Whether the open scope has used its [`CPU_BUDGET`] (the clock is read now, for long steps
/// such as a key derivation); `false` without a scope.
pub fn cpu_exhausted() -> bool {
    with_state(|s| s.cpu_start).is_some_and(|start| thread_cpu().saturating_sub(start) > CPU_BUDGET)
}

/// This thread's CPU time.
fn thread_cpu() -> Duration {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: `ts` is a valid, writable timespec; CLOCK_THREAD_CPUTIME_ID exists on every
    // platform this tool builds for. On failure `ts` stays zero (the budget then never expires).
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    Duration::new(ts.tv_sec.max(0) as u64, ts.tv_nsec.clamp(0, 999_999_999) as u32)
}

/// An error of ours (value-free by construction): `name: msg`, recorded so the renderer keeps it.
pub fn own_error(name: &str, msg: impl std::fmt::Display) -> TemplateError {
    TemplateError::Exec(own_message(name, msg))
}

/// The text of [`own_error`], recorded the same way.
pub fn own_message(name: &str, msg: impl std::fmt::Display) -> String {
    let text = format!("{name}: {msg}");
    with_state(|s| {
        if s.own_errors.len() < 1024 && !s.own_errors.contains(&text) {
            s.own_errors.push(text.clone());
        }
    });
    text
}

/// Whether `msg` is an error one of our functions raised in the current scope.
pub fn is_own(msg: &str) -> bool {
    with_state(|s| s.own_errors.iter().any(|e| e == msg)).unwrap_or(false)
}

/// Whether a scope is open on this thread.
pub fn active() -> bool {
    with_state(|_| ()).is_some()
}

/// The budget breach that stopped a writer, if any.
pub fn take_breach() -> Option<String> {
    with_state(|s| s.breach.take()).flatten()
}

fn breach(name: &str, msg: String) -> TemplateError {
    with_state(|s| s.breach = Some(format!("{name}: {msg}")));
    own_error(name, msg)
}

fn too_long() -> String {
    format!("the result would be longer than {} MiB, the limit for one string", MAX_STRING >> 20)
}

/// Charges `bytes` about to be built by `name`: an error when one string would exceed
/// [`MAX_STRING`] or the scope's total would exceed [`MAX_BUILT`]. Without an open scope only
/// the per-string limit applies.
pub fn reserve(name: &str, bytes: usize) -> Result<(), TemplateError> {
    if bytes > MAX_STRING {
        return Err(breach(name, too_long()));
    }
    add(name, bytes)
}

/// Charges a copy of `bytes` that is not one string (a whole structure copied between the
/// engines), so only the scope's total ([`MAX_BUILT`]) applies.
pub fn charge_copy(name: &str, bytes: usize) -> Result<(), TemplateError> {
    add(name, bytes)
}

/// Charges `bytes` of output (not one string, so only the total applies).
fn add(name: &str, bytes: usize) -> Result<(), TemplateError> {
    let over = with_state(|s| {
        s.built = s.built.saturating_add(bytes);
        s.built > MAX_BUILT
    });
    if over == Some(true) {
        return Err(breach(name, format!("the templates of this ExternalSecret would build more than {} MiB of text", MAX_BUILT >> 20)));
    }
    Ok(())
}

/// Charges a function's result: a string by its length, a list or map by its items.
pub fn charge_value(name: &str, v: &Value) -> Result<(), TemplateError> {
    match v {
        Value::String(s) => reserve(name, s.len()),
        Value::List(l) => reserve(name, l.len().saturating_mul(ITEM_COST)),
        Value::Map(m) => reserve(name, m.len().saturating_mul(ITEM_COST)),
        _ => Ok(()),
    }
}

/// Counts a step of work for `name`; every few steps, an error once the scope has used
/// [`CPU_BUDGET`].
pub fn tick(name: &str) -> Result<(), TemplateError> {
    let start = with_state(|s| {
        s.ticks = s.ticks.wrapping_add(1);
        (s.ticks % TICKS_PER_CLOCK_READ == 0).then_some(s.cpu_start)
    });
    if let Some(Some(start)) = start {
        if thread_cpu().saturating_sub(start) > CPU_BUDGET {
            return Err(breach(
                name,
                format!("the templates of this ExternalSecret used more than {} s of CPU time", CPU_BUDGET.as_secs()),
            ));
        }
    }
    Ok(())
}

/// A bounded text sink: at most `limit` bytes, every write charged to the scope and ticked.
/// A breach is recorded ([`take_breach`]) and the write fails.
pub struct Sink {
    pub text: String,
    limit: usize,
    name: String,
    charge: bool,
}

impl Sink {
    /// An empty sink for at most `limit` bytes; `name` is what a breach names (`output`, `printf`).
    /// Its text is charged to the scope's total by whoever keeps it ([`charge_value`]).
    pub fn new(name: &str, limit: usize) -> Self {
        Sink { text: String::new(), limit, name: name.to_string(), charge: false }
    }

    /// A sink for a template's rendered output: every write is charged to the scope's total.
    pub fn output(name: &str) -> Self {
        Sink { charge: true, ..Sink::new(name, MAX_STRING) }
    }

    fn push(&mut self, s: &str) -> Result<(), TemplateError> {
        tick("execution")?;
        if self.text.len().saturating_add(s.len()) > self.limit {
            return Err(breach(&self.name, too_long()));
        }
        if self.charge {
            add(&self.name, s.len())?;
        }
        self.text.push_str(s);
        Ok(())
    }
}

impl std::fmt::Write for Sink {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        self.push(s).map_err(|_| std::fmt::Error)
    }
}

impl std::io::Write for Sink {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let s = std::str::from_utf8(buf).map_err(|_| std::io::Error::other("not UTF-8"))?;
        self.push(s).map_err(|_| std::io::Error::other("budget"))?;
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// A value as Go's `%v` prints it, built in a bounded sink (a list that shares itself would
/// otherwise print exponentially long).
pub fn display(name: &str, v: &Value) -> Result<String, TemplateError> {
    use std::fmt::Write;
    let mut sink = Sink::new(name, MAX_STRING);
    // Only the budget can fail a write to a sink.
    write!(sink, "{v}").map_err(|_| breach(name, too_long()))?;
    Ok(sink.text)
}

/// Length of `v` printed as `%v`, or `None` when longer than `limit` (counted without building it).
pub fn display_len(v: &Value, limit: usize) -> Option<usize> {
    struct Count(usize, usize);
    impl std::fmt::Write for Count {
        fn write_str(&mut self, s: &str) -> std::fmt::Result {
            self.0 += s.len();
            if self.0 > self.1 {
                Err(std::fmt::Error)
            } else {
                Ok(())
            }
        }
    }
    let mut c = Count(0, limit);
    std::fmt::write(&mut c, format_args!("{v}")).ok().map(|_| c.0)
}

/// Nesting depth of lists and maps in `v` (0 for a scalar); shared parts are measured once.
pub fn depth(v: &Value) -> usize {
    fn walk(v: &Value, memo: &mut HashMap<usize, usize>) -> usize {
        let (key, items): (usize, Vec<&Value>) = match v {
            Value::List(l) => (Arc::as_ptr(l) as *const () as usize, l.iter().collect()),
            Value::Map(m) => (Arc::as_ptr(m) as *const () as usize, m.values().collect()),
            _ => return 0,
        };
        if let Some(d) = memo.get(&key) {
            return *d;
        }
        let d = 1 + items.into_iter().map(|i| walk(i, memo)).max().unwrap_or(0);
        memo.insert(key, d);
        d
    }
    walk(v, &mut HashMap::new())
}

/// An error when a structure built from `items` would nest deeper than [`MAX_DEPTH`].
pub fn check_depth(name: &str, items: &[Value]) -> Result<(), TemplateError> {
    if items.iter().map(depth).max().unwrap_or(0) >= MAX_DEPTH {
        return Err(own_error(name, format!("lists and maps may nest at most {MAX_DEPTH} deep")));
    }
    Ok(())
}

/// Size of `v` encoded as JSON (`pretty`: indented, as also YAML roughly is), or an error when
/// over [`MAX_STRING`]; counted without building it and without revisiting shared parts
/// more than the limit allows.
pub fn check_encoded_len(name: &str, v: &Value, pretty: bool) -> Result<(), TemplateError> {
    fn walk(v: &Value, depth: usize, pretty: bool, total: &mut usize) -> bool {
        let pad = if pretty { 2 * depth + 2 } else { 1 };
        *total = total.saturating_add(pad);
        match v {
            Value::String(s) => *total = total.saturating_add(s.len() + 2),
            Value::List(l) => {
                *total += 2;
                for i in l.iter() {
                    if *total > MAX_STRING || !walk(i, depth + 1, pretty, total) {
                        return false;
                    }
                }
            }
            Value::Map(m) => {
                *total += 2;
                for (k, i) in m.iter() {
                    *total = total.saturating_add(k.len() + 4);
                    if *total > MAX_STRING || !walk(i, depth + 1, pretty, total) {
                        return false;
                    }
                }
            }
            _ => *total += 24,
        }
        *total <= MAX_STRING
    }
    let mut total = 0;
    if walk(v, 0, pretty, &mut total) {
        Ok(())
    } else {
        Err(breach(name, too_long()))
    }
}

/// An error when JSON `text` nests deeper than [`MAX_DEPTH`] (checked before parsing, whose
/// recursion would overflow the stack).
pub fn check_json_depth(name: &str, text: &str) -> Result<(), TemplateError> {
    let (mut depth, mut in_string, mut escaped) = (0usize, false, false);
    for b in text.bytes() {
        match (in_string, b) {
            (true, _) if escaped => escaped = false,
            (true, b'\\') => escaped = true,
            (true, b'"') => in_string = false,
            (true, _) => {}
            (false, b'"') => in_string = true,
            (false, b'[' | b'{') => {
                depth += 1;
                if depth > MAX_DEPTH {
                    return Err(own_error(name, format!("the input nests deeper than {MAX_DEPTH} levels")));
                }
            }
            (false, b']' | b'}') => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_scope_bounds_strings_and_totals_and_records_own_errors() {
        scope(|| {
            assert!(reserve("f", MAX_STRING).is_ok());
            let e = reserve("f", MAX_STRING + 1).unwrap_err().to_string();
            assert!(e.contains("f: the result would be longer than 1 MiB"), "{e}");
            for _ in 0..7 {
                reserve("g", MAX_STRING).unwrap();
            }
            let e = reserve("g", MAX_STRING).unwrap_err();
            let TemplateError::Exec(m) = e else { panic!() };
            assert!(m.contains("more than 8 MiB") && is_own(&m), "{m}");
            assert!(!is_own("g: something else"));
        });
        assert!(!is_own("anything"));
    }

    #[test]
    fn a_self_sharing_list_is_measured_not_printed() {
        let mut v = Value::List(vec![Value::String("abcd".into())].into());
        for _ in 0..40 {
            v = Value::List(vec![v.clone(), v].into());
        }
        assert_eq!(depth(&v), 41);
        assert!(display_len(&v, 1000).is_none());
        scope(|| {
            assert!(display("print", &v).is_err());
            assert!(check_encoded_len("toJson", &v, false).is_err());
        });
    }
}
