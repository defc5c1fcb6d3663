//! When a source last read its input completely, and the rule `/healthz` applies to it: a
//! polling source is healthy while its last successful poll (or its start, before the first
//! one) is no older than its interval plus a grace; a source that does not poll on an
//! interval (files) is healthy while it runs.

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

/// Written by the source, read by `/metrics` and `/healthz`.
#[derive(Debug, Default)]
pub struct Freshness {
    /// When the source's task started, ms since the Unix epoch; 0 before that.
    started_ms: AtomicI64,
    /// The last poll in which everything was read without error, ms since the epoch; 0: none.
    success_ms: AtomicI64,
    /// The poll interval in ms; 0 for a source that is not judged by poll age.
    interval_ms: AtomicU64,
    /// Why the last poll that failed did.
    last_error: Mutex<Option<String>>,
}

fn now_ms() -> i64 {
    jiff::Timestamp::now().as_millisecond()
}

impl Freshness {
    /// The source's task started; `interval` is `None` for a source judged only by running.
    pub fn started(&self, interval: Option<Duration>) {
        self.interval_ms.store(
            interval.map_or(0, |d| d.as_millis().max(1) as u64),
            Ordering::Relaxed,
        );
        self.started_ms.store(now_ms(), Ordering::Relaxed);
    }

    /// A poll read everything it asked for.
    pub fn succeeded(&self) {
        self.success_ms.store(now_ms(), Ordering::Relaxed);
    }

    /// A poll did not read everything; `error` says why (shown by `/healthz`).
    pub fn failed(&self, error: &str) {
        if let Ok(mut e) = self.last_error.lock() {
            *e = Some(error.to_owned());
        }
    }

    /// The last successful poll, ms since the epoch.
    pub fn last_success_ms(&self) -> Option<i64> {
        Some(self.success_ms.load(Ordering::Relaxed)).filter(|&t| t > 0)
    }

    /// Why the source is unhealthy at `now_ms`, or `None` when it is not (see the module doc).
    pub fn overdue(&self, name: &str, now_ms: i64, grace: Duration) -> Option<String> {
        let interval = self.interval_ms.load(Ordering::Relaxed);
        let started = self.started_ms.load(Ordering::Relaxed);
        if interval == 0 || started == 0 {
            return None;
        }
        let success = self.last_success_ms();
        let since = success.unwrap_or(started);
        let age = Duration::from_millis(now_ms.saturating_sub(since).max(0) as u64);
        let interval = Duration::from_millis(interval);
        if age <= interval + grace {
            return None;
        }
        let error = self
            .last_error
            .lock()
            .ok()
            .and_then(|e| e.clone())
            .unwrap_or_else(|| "no error reported; a poll is still under way".to_owned());
        let when = match success {
            Some(_) => format!("last successful poll {} ago", human(age)),
            None => format!("no successful poll in the {} since it started", human(age)),
        };
        Some(format!(
            "source \"{name}\": {when}, interval {}: {error}",
            human(interval)
        ))
    }
}

/// `45s`, `7m 3s`, `2h 5m`: short, for health reasons.
fn human(d: Duration) -> String {
    let s = d.as_secs();
    match s {
        0 => format!("{}ms", d.as_millis()),
        1..60 => format!("{s}s"),
        60..3600 if s % 60 == 0 => format!("{}m", s / 60),
        60..3600 => format!("{}m {}s", s / 60, s % 60),
        _ => format!("{}h {}m", s / 3600, s % 3600 / 60),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GRACE: Duration = Duration::from_secs(300);

    fn polling(interval_secs: u64) -> Freshness {
        let f = Freshness::default();
        f.started(Some(Duration::from_secs(interval_secs)));
        f
    }

    #[test]
    fn a_source_is_healthy_within_interval_plus_grace_of_its_last_success() {
        let f = polling(60);
        f.succeeded();
        let t = f.last_success_ms().unwrap();
        assert_eq!(
            f.overdue("x", t + 360_000, GRACE),
            None,
            "exactly at the limit"
        );
        f.failed("HTTP 403 AuthorizationFailed: no");
        let why = f.overdue("x", t + 420_000, GRACE).expect("7m > 60s + 5m");
        assert_eq!(
            why,
            "source \"x\": last successful poll 7m ago, interval 1m: HTTP 403 AuthorizationFailed: no"
        );
    }

    #[test]
    fn before_the_first_success_the_start_counts() {
        let f = polling(60);
        let started = f.started_ms.load(Ordering::Relaxed);
        assert_eq!(f.overdue("x", started + 200_000, GRACE), None);
        let why = f.overdue("x", started + 365_000, GRACE).unwrap();
        assert!(
            why.starts_with("source \"x\": no successful poll in the 6m 5s since it started"),
            "{why}"
        );
        assert!(
            why.ends_with("no error reported; a poll is still under way"),
            "{why}"
        );
    }

    #[test]
    fn sources_without_an_interval_and_unstarted_ones_are_not_judged_by_age() {
        let files = Freshness::default();
        files.started(None);
        assert_eq!(files.overdue("f", i64::MAX / 2, GRACE), None);
        assert_eq!(Freshness::default().overdue("n", i64::MAX / 2, GRACE), None);
    }

    #[test]
    fn durations_read_short() {
        assert_eq!(human(Duration::from_millis(300)), "300ms");
        assert_eq!(human(Duration::from_secs(45)), "45s");
        assert_eq!(human(Duration::from_secs(423)), "7m 3s");
        assert_eq!(human(Duration::from_secs(7500)), "2h 5m");
    }
}
