//! Which log lines are written: only `extsecret`'s own targets follow `EXTSECRET_LOG`; every
//! other crate (cloud SDKs, HTTP, TLS, request signing, kube) is held at `error` whatever is asked,
//! since their debug and trace output carries request details (`aws_sigv4` logs the access key id
//! at trace) and a crate added later must not leak by default.

use tracing_subscriber::filter::{LevelFilter, Targets};

/// The crate whose targets `EXTSECRET_LOG` governs (the library and the binary share the name).
const OWN_TARGET: &str = "extsecret";

/// The filter for `EXTSECRET_LOG` (`None` or empty: `warn`).
///
/// Accepts a level (`debug`) or comma-separated directives as `RUST_LOG` writes them
/// (`warn,extsecret::controller=debug`): a bare level sets `extsecret`'s level, a directive for a
/// target inside `extsecret` is kept, and a directive for any other target is ignored (returned as
/// the second value, so the caller can say so). An unparsable level is ignored too.
pub fn filter(asked: Option<&str>) -> (Targets, Vec<String>) {
    let mut targets = Targets::new().with_default(LevelFilter::ERROR).with_target(OWN_TARGET, LevelFilter::WARN);
    let mut ignored = Vec::new();
    for directive in asked.unwrap_or("").split(',').map(str::trim).filter(|d| !d.is_empty()) {
        let (target, level) = match directive.split_once('=') {
            Some((t, l)) => (t.trim(), l.trim()),
            None => (OWN_TARGET, directive),
        };
        let own = target == OWN_TARGET || target.starts_with("extsecret::");
        match level.parse::<LevelFilter>() {
            Ok(level) if own => targets = targets.with_target(target, level),
            _ => ignored.push(directive.to_string()),
        }
    }
    (targets, ignored)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tracing::Level;

    fn enabled(t: &Targets, target: &str, level: Level) -> bool {
        t.would_enable(target, &level)
    }

    #[test]
    fn only_our_targets_follow_the_variable() {
        let (t, ignored) = filter(Some("trace"));
        assert!(enabled(&t, "extsecret::controller::wave", Level::TRACE));
        assert!(!enabled(&t, "aws_sigv4::http_request::sign", Level::TRACE));
        assert!(!enabled(&t, "aws_sigv4", Level::WARN));
        assert!(enabled(&t, "aws_sigv4", Level::ERROR));
        assert!(!enabled(&t, "azure_core::http", Level::INFO));
        assert!(ignored.is_empty());
    }

    #[test]
    fn directives_for_other_crates_are_ignored_and_reported() {
        let (t, ignored) = filter(Some("info,aws_sigv4=trace,extsecret::resolve=debug,kube=debug"));
        assert!(!enabled(&t, "aws_sigv4", Level::INFO));
        assert!(!enabled(&t, "kube_client::client", Level::INFO));
        assert!(enabled(&t, "extsecret::resolve::fetch", Level::DEBUG));
        assert!(!enabled(&t, "extsecret::controller", Level::DEBUG));
        assert!(enabled(&t, "extsecret::controller", Level::INFO));
        assert_eq!(ignored, ["aws_sigv4=trace", "kube=debug"]);
    }

    #[test]
    fn default_is_warn_for_us() {
        let (t, _) = filter(None);
        assert!(enabled(&t, "extsecret", Level::WARN));
        assert!(!enabled(&t, "extsecret", Level::INFO));
        let (t, ignored) = filter(Some("loud"));
        assert!(enabled(&t, "extsecret", Level::WARN));
        assert_eq!(ignored, ["loud"]);
    }
}
