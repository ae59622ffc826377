//! The ExternalSecret's controller policies and the refresh decision, pure (ESO's
//! `shouldRefresh`, `isSecretValid` and `getRequeueResult`, plus a spread on every requeue).

use std::time::Duration;

use time::OffsetDateTime;

/// `spec.target.creationPolicy` (ESO's meaning; see the README's controller section).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum CreationPolicy {
    /// Create or update the Secret, with a controller ownerReference to the ExternalSecret.
    #[default]
    Owner,
    /// Create or update, no ownerReference (the Secret outlives the ExternalSecret).
    Orphan,
    /// Never create; merge our keys into an existing Secret, keeping foreign keys.
    Merge,
    /// Create if missing, else merge as `Merge`.
    CreateOrMerge,
    /// Fetch, but never write a Secret.
    None,
}

impl CreationPolicy {
    /// Parses the field; absent or `""` is `Owner` (the CRD default).
    pub fn parse(s: Option<&str>) -> Result<Self, String> {
        Ok(match s.unwrap_or("") {
            "" | "Owner" => Self::Owner,
            "Orphan" => Self::Orphan,
            "Merge" => Self::Merge,
            "CreateOrMerge" => Self::CreateOrMerge,
            "None" => Self::None,
            other => return Err(format!("unknown creationPolicy `{other}` (Owner, Orphan, Merge, CreateOrMerge, None)")),
        })
    }
    /// Whether foreign keys of an existing Secret are kept.
    pub fn merges(self) -> bool {
        matches!(self, Self::Merge | Self::CreateOrMerge)
    }
}

/// `spec.target.deletionPolicy`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum DeletionPolicy {
    /// Keep the Secret when the ExternalSecret goes (the CRD default).
    #[default]
    Retain,
    /// Delete the Secret with the ExternalSecret (through a finalizer).
    Delete,
    /// Remove only our keys from the Secret when the ExternalSecret goes (through a finalizer).
    Merge,
}

impl DeletionPolicy {
    pub fn parse(s: Option<&str>) -> Result<Self, String> {
        Ok(match s.unwrap_or("") {
            "" | "Retain" => Self::Retain,
            "Delete" => Self::Delete,
            "Merge" => Self::Merge,
            other => return Err(format!("unknown deletionPolicy `{other}` (Retain, Delete, Merge)")),
        })
    }
}

/// `spec.refreshPolicy`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum RefreshPolicy {
    /// Refresh every `refreshInterval` (the default); `0` means once.
    #[default]
    Periodic,
    /// Sync once, never again.
    CreatedOnce,
    /// Sync when the ExternalSecret's generation, labels or annotations change.
    OnChange,
}

impl RefreshPolicy {
    pub fn parse(s: Option<&str>) -> Result<Self, String> {
        Ok(match s.unwrap_or("") {
            "" | "Periodic" => Self::Periodic,
            "CreatedOnce" => Self::CreatedOnce,
            "OnChange" => Self::OnChange,
            other => return Err(format!("unknown refreshPolicy `{other}` (Periodic, CreatedOnce, OnChange)")),
        })
    }
}

/// ESO's default `refreshInterval` (`1h0m0s`, from the CRD).
pub const DEFAULT_REFRESH: Duration = Duration::from_secs(3600);

/// Reads `spec.refreshInterval`: a Go duration (`1h0m0s`, `15m`, `30s`, `0`) or, as ESO's
/// `metav1.Duration` does not, a plain number of seconds. Absent = 1 hour.
pub fn refresh_interval(v: Option<&serde_json::Value>) -> Result<Duration, String> {
    match v {
        None | Some(serde_json::Value::Null) => Ok(DEFAULT_REFRESH),
        Some(serde_json::Value::String(s)) if s.is_empty() => Ok(DEFAULT_REFRESH),
        Some(serde_json::Value::String(s)) => crate::settings::parse_duration(s).map_err(|e| format!("spec.refreshInterval: {e}")),
        Some(serde_json::Value::Number(n)) if n.as_u64().is_some() => Ok(Duration::from_secs(n.as_u64().unwrap_or(0))),
        Some(_) => Err("spec.refreshInterval: must be a duration such as 1h0m0s".into()),
    }
}

/// The longest refresh interval used: longer ones are cut to it (a year; kube-runtime's requeue
/// queue cannot hold much more than two years, and dates that far ahead overflow).
pub const MAX_REFRESH: Duration = Duration::from_secs(365 * 24 * 3600);

/// `--min-refresh-interval`'s default.
pub const DEFAULT_MIN_REFRESH: Duration = Duration::from_secs(10);

/// The interval the controller uses for `asked`: `0` (once) stays `0`; a shorter non-zero one is
/// raised to `floor` (an ESO difference: ESO has no floor); a longer one than [`MAX_REFRESH`] is
/// cut to it. The flag says the interval was raised.
pub fn effective_interval(asked: Duration, floor: Duration) -> (Duration, bool) {
    if asked.is_zero() {
        return (asked, false);
    }
    let floor = floor.min(MAX_REFRESH);
    if asked < floor {
        return (floor, true);
    }
    (asked.min(MAX_REFRESH), false)
}

/// What the controller knows of the last sync (from `status`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LastSync {
    /// `status.refreshTime`: start of the last successful sync.
    pub refresh_time: Option<OffsetDateTime>,
    /// `status.syncedResourceVersion`.
    pub synced_resource_version: Option<String>,
}

/// ESO's `shouldRefresh`: whether the provider must be read now, before looking at the Secret.
/// `current_version` is `<generation>-<meta hash>` of the ExternalSecret as it is now.
pub fn should_refresh(policy: RefreshPolicy, interval: Duration, last: &LastSync, current_version: &str, now: OffsetDateTime) -> bool {
    let never_synced = last.refresh_time.is_none() || last.synced_resource_version.as_deref().is_none_or(str::is_empty);
    match policy {
        RefreshPolicy::CreatedOnce => never_synced,
        RefreshPolicy::OnChange => never_synced || last.synced_resource_version.as_deref() != Some(current_version),
        RefreshPolicy::Periodic => {
            if never_synced {
                return true;
            }
            if interval.is_zero() {
                // ESO: synced once with `refreshInterval: 0` is never refreshed again.
                return false;
            }
            if last.synced_resource_version.as_deref() != Some(current_version) {
                return true;
            }
            match last.refresh_time {
                Some(t) if t > now => true,
                // A due date past the calendar's end is never reached.
                Some(t) => time::Duration::try_from(interval).ok().and_then(|i| t.checked_add(i)).is_some_and(|due| due <= now),
                None => true,
            }
        }
    }
}

/// When to look again after a successful sync (or a skip): the rest of the interval (at most
/// [`MAX_REFRESH`]) plus a spread, or `None` when the ExternalSecret is never refreshed by time.
///
/// The spread is up to 5% of the interval (at most 5 minutes), rounded to whole seconds, so
/// thousands of ExternalSecrets created together do not refresh together (ESO #4231) while those
/// due in the same second still share one provider read.
pub fn next_refresh(
    policy: RefreshPolicy,
    interval: Duration,
    refresh_time: OffsetDateTime,
    now: OffsetDateTime,
    seed: u64,
) -> Option<Duration> {
    if policy != RefreshPolicy::Periodic || interval.is_zero() {
        return None;
    }
    let elapsed = (now - refresh_time).try_into().unwrap_or(Duration::ZERO);
    let rest = interval.min(MAX_REFRESH).saturating_sub(elapsed);
    Some(rest + spread(interval, seed))
}

/// A spread in `[0, min(interval/20, 5 min)]`, whole seconds, from `seed`.
pub fn spread(interval: Duration, seed: u64) -> Duration {
    let max = (interval / 20).min(Duration::from_secs(300)).as_secs();
    if max == 0 {
        return Duration::ZERO;
    }
    Duration::from_secs(seed % (max + 1))
}

/// Capped exponential backoff after `failures` consecutive failures: 1 s, 2 s, 4 s, ... at most
/// 5 minutes (ESO: 1 s to 7 min), plus up to 10% spread from `seed`.
pub fn backoff(failures: u32, seed: u64) -> Duration {
    let base = Duration::from_secs(1u64 << failures.saturating_sub(1).min(9)).min(Duration::from_secs(300));
    let extra_ms = (base.as_millis() as u64 / 10).max(1);
    base + Duration::from_millis(seed % extra_ms)
}

/// A random seed for spreads (std's per-process random hasher keys; no extra dependency).
pub fn random_seed() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0));
    h.finish()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn at(secs: i64) -> OffsetDateTime {
        OffsetDateTime::from_unix_timestamp(1_700_000_000 + secs).unwrap()
    }

    #[test]
    fn policies_parse_with_crd_defaults() {
        assert_eq!(CreationPolicy::parse(None).unwrap(), CreationPolicy::Owner);
        assert_eq!(CreationPolicy::parse(Some("CreateOrMerge")).unwrap(), CreationPolicy::CreateOrMerge);
        assert!(CreationPolicy::parse(Some("owner")).is_err());
        assert_eq!(DeletionPolicy::parse(Some("")).unwrap(), DeletionPolicy::Retain);
        assert_eq!(RefreshPolicy::parse(Some("OnChange")).unwrap(), RefreshPolicy::OnChange);
        assert_eq!(refresh_interval(None).unwrap(), DEFAULT_REFRESH);
        assert_eq!(refresh_interval(Some(&json!("1h0m0s"))).unwrap(), Duration::from_secs(3600));
        assert_eq!(refresh_interval(Some(&json!("0"))).unwrap(), Duration::ZERO);
        assert_eq!(refresh_interval(Some(&json!(15))).unwrap(), Duration::from_secs(15));
        assert!(refresh_interval(Some(&json!("soon"))).is_err());
    }

    #[test]
    fn periodic_refresh_follows_eso() {
        let synced = LastSync { refresh_time: Some(at(0)), synced_resource_version: Some("1-h".into()) };
        let hour = Duration::from_secs(3600);
        assert!(should_refresh(RefreshPolicy::Periodic, hour, &LastSync::default(), "1-h", at(0)));
        assert!(!should_refresh(RefreshPolicy::Periodic, hour, &synced, "1-h", at(3599)));
        assert!(should_refresh(RefreshPolicy::Periodic, hour, &synced, "1-h", at(3600)));
        // A spec, label or annotation change (force-sync) refreshes at once.
        assert!(should_refresh(RefreshPolicy::Periodic, hour, &synced, "2-h", at(10)));
        // refreshInterval 0: once, then never (even after a change), as ESO.
        assert!(!should_refresh(RefreshPolicy::Periodic, Duration::ZERO, &synced, "2-h", at(99_999)));
        // A refreshTime in the future (clock skew) refreshes.
        assert!(should_refresh(RefreshPolicy::Periodic, hour, &synced, "1-h", at(-10)));
    }

    #[test]
    fn created_once_and_on_change() {
        let synced = LastSync { refresh_time: Some(at(0)), synced_resource_version: Some("1-h".into()) };
        assert!(!should_refresh(RefreshPolicy::CreatedOnce, Duration::from_secs(1), &synced, "9-x", at(99_999)));
        assert!(should_refresh(RefreshPolicy::CreatedOnce, Duration::from_secs(1), &LastSync::default(), "1-h", at(0)));
        assert!(!should_refresh(RefreshPolicy::OnChange, Duration::from_secs(1), &synced, "1-h", at(99_999)));
        assert!(should_refresh(RefreshPolicy::OnChange, Duration::from_secs(1), &synced, "1-i", at(1)));
    }

    #[test]
    fn requeue_is_the_rest_of_the_interval_plus_a_bounded_spread() {
        let hour = Duration::from_secs(3600);
        for seed in [0u64, 1, 179, 180, 12345, u64::MAX] {
            let d = next_refresh(RefreshPolicy::Periodic, hour, at(0), at(600), seed).unwrap();
            assert!(d >= Duration::from_secs(3000) && d <= Duration::from_secs(3180), "{d:?}");
            assert_eq!(d.subsec_nanos(), 0);
        }
        assert_eq!(next_refresh(RefreshPolicy::Periodic, Duration::ZERO, at(0), at(0), 7), None);
        assert_eq!(next_refresh(RefreshPolicy::OnChange, hour, at(0), at(0), 7), None);
        // Overdue: only the spread is left.
        assert!(next_refresh(RefreshPolicy::Periodic, hour, at(0), at(7200), 3).unwrap() <= Duration::from_secs(180));
        // Day-long intervals spread at most 5 minutes.
        assert!(spread(Duration::from_secs(86_400), u64::MAX) <= Duration::from_secs(300));
    }

    #[test]
    fn short_intervals_are_raised_to_the_floor_and_huge_ones_cut() {
        let ten = Duration::from_secs(10);
        assert_eq!(effective_interval(Duration::from_millis(1), ten), (ten, true));
        assert_eq!(effective_interval(Duration::from_secs(9), ten), (ten, true));
        assert_eq!(effective_interval(ten, ten), (ten, false));
        assert_eq!(effective_interval(Duration::ZERO, ten), (Duration::ZERO, false), "0 stays once");
        assert_eq!(effective_interval(Duration::from_millis(1), Duration::ZERO), (Duration::from_millis(1), false), "floor 0: off");
        assert_eq!(effective_interval(Duration::MAX, ten), (MAX_REFRESH, false));
        assert_eq!(effective_interval(Duration::from_millis(1), Duration::MAX), (MAX_REFRESH, true));
    }

    #[test]
    fn huge_intervals_neither_panic_nor_refresh() {
        let synced = LastSync { refresh_time: Some(at(0)), synced_resource_version: Some("1-h".into()) };
        for huge in [Duration::MAX, Duration::from_secs(u64::MAX / 2), Duration::from_secs(400 * 365 * 24 * 3600 * 100)] {
            assert!(!should_refresh(RefreshPolicy::Periodic, huge, &synced, "1-h", at(10)));
            let next = next_refresh(RefreshPolicy::Periodic, huge, at(0), at(10), u64::MAX).unwrap();
            assert!(next <= MAX_REFRESH + Duration::from_secs(300), "{next:?}");
        }
    }

    #[test]
    fn backoff_doubles_and_caps() {
        assert!(backoff(1, 0) >= Duration::from_secs(1) && backoff(1, 0) < Duration::from_millis(1100));
        assert!(backoff(3, 0) >= Duration::from_secs(4));
        assert!(backoff(50, u64::MAX) <= Duration::from_secs(330));
    }
}
