//! Backfill of a past time window of one windowed API source (`siemcast replay`): the window is
//! read in the API's largest chunks, page by page, through the source's own dedupe, each page
//! appended to a spool with the checkpoint after it. Seen ids are kept (not pruned by time), so
//! a later backfill of an overlapping window appends only what this one did not. An
//! `o365_management` source lists content per content type in chunks of at most 24 h (reaching
//! past the window's end by its overlap, for blobs created late) and keeps the records whose
//! `CreationTime` lies in the window.

use std::collections::HashSet;
use std::time::Duration;

use super::checkpoint::{Checkpoint, ScopeState};
use super::discovery::{discover, Inventory};
use super::o365_management::{Reading, MAX_WINDOW_MS, RETENTION_MS};
use super::poll::{filter_time, Outcome, PollSource};
use super::registry::kinds_text;
use super::{O365Source, Source, SourceContext, SourceError};
use crate::config::{Config, SourceConfig, SourceKind};

/// Attempts of one window (each with the HTTP layer's own retries) before the backfill stops.
const WINDOW_ATTEMPTS: u32 = 3;

/// One chunk of the backfill: a scope (subscription or tenant) and `[from, to]` in ms.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Window {
    pub scope: String,
    pub from_ms: i64,
    pub to_ms: i64,
}

/// A planned backfill of one source.
#[derive(Debug)]
pub struct Backfill {
    name: String,
    source: Reader,
    windows: Vec<Window>,
    /// The `[from, to]` listed per scope, and its largest chunk.
    range: (i64, i64),
    max_window: Duration,
}

/// What reads the windows.
#[derive(Debug)]
enum Reader {
    Windowed(PollSource),
    /// With the replayed `[from, to]` (ms): the records to keep.
    O365(O365Source, i64, i64),
    /// A storage archive: windows are hours of a container (scope); `[from, to]` as above.
    Archive(super::storage_archive::ArchiveSource, i64, i64),
}

/// Why a backfill stopped before its end.
#[derive(Debug, thiserror::Error)]
pub enum BackfillError {
    #[error("{0}")]
    Source(#[from] SourceError),
    #[error("source \"{source_name}\": the window {from} to {to} of {scope} could not be read after {WINDOW_ATTEMPTS} attempts (see the log above); what was read is kept, so run the same command again to continue")]
    Window {
        source_name: String,
        scope: String,
        from: String,
        to: String,
    },
    #[error("source \"{source_name}\": the tenant is not licensed for the API of {scope} (it needs {needs}); nothing was read. The API answered: {answer}")]
    NotLicensed {
        source_name: String,
        scope: String,
        needs: &'static str,
        answer: String,
    },
}

/// Splits `[from, to]` into chunks of at most `max` (the API's largest query window).
pub fn chunks(from_ms: i64, to_ms: i64, max: Duration) -> Vec<(i64, i64)> {
    let step = (max.as_millis() as i64).max(1);
    let mut out = Vec::new();
    let mut start = from_ms;
    while start < to_ms {
        let end = (start + step).min(to_ms);
        out.push((start, end));
        start = end;
    }
    out
}

impl Backfill {
    /// Plans the backfill of source `cfg` over `[from_ms, to_ms]`, checking that the source is
    /// a windowed API source and that the window is in the past and within the API's retention.
    pub fn plan(
        cfg: &SourceConfig,
        config: &Config,
        from_ms: i64,
        to_ms: i64,
        now_ms: i64,
    ) -> Result<Backfill, String> {
        let who = format!("source \"{}\"", cfg.name);
        let kind = cfg.kind.map(|k| k.as_str()).unwrap_or("?");
        if !cfg.kind.is_some_and(SourceKind::replayable) {
            let replayable = kinds_text(SourceKind::replayable, false);
            return Err(format!("{who} is of kind \"{kind}\", which has no time window to replay; replay works for {replayable} sources"));
        }
        if from_ms >= to_ms {
            return Err(format!(
                "--from ({}) must be before --to ({})",
                filter_time(from_ms),
                filter_time(to_ms)
            ));
        }
        if to_ms > now_ms {
            return Err(format!(
                "--to ({}) is in the future; replay reads the past (use \"now\" or a time before {})",
                filter_time(to_ms),
                filter_time(now_ms)
            ));
        }
        let (source, scopes, (list_from, list_to), max_window) =
            match Source::from_config(cfg, config).map_err(|e| e.to_string())? {
                Source::Windowed(p) => {
                    let (scopes, api) = p.parts();
                    check_retention(api.retention, kind, from_ms, now_ms)?;
                    let (scopes, max) = (scopes.to_vec(), api.max_window);
                    (Reader::Windowed(p), scopes, (from_ms, to_ms), max)
                }
                Source::O365Management(o) => {
                    let retention = Duration::from_millis(RETENTION_MS as u64);
                    check_retention(retention, kind, from_ms, now_ms)?;
                    let scopes = o.content_types().to_vec();
                    // Blobs are created after their records, some late: list past the end.
                    // Listings take whole seconds: the chunks start and end on them.
                    let list_to = (to_ms + o.overlap().as_millis() as i64).min(now_ms);
                    let list = (
                        from_ms.div_euclid(1000) * 1000,
                        list_to.div_euclid(1000) * 1000,
                    );
                    let max = Duration::from_millis(MAX_WINDOW_MS as u64);
                    (Reader::O365(o, from_ms, to_ms), scopes, list, max)
                }
                Source::StorageArchive(a) => {
                    // Records land in the hour they are received: the hour after the window
                    // too (not past now); each hour is one window of each container.
                    use super::storage_archive::split::{floor_hour, HOUR_MS};
                    let scopes = a.containers().to_vec();
                    let list = (
                        floor_hour(from_ms),
                        (floor_hour(to_ms) + 2 * HOUR_MS).min(floor_hour(now_ms) + HOUR_MS),
                    );
                    let max = Duration::from_millis(HOUR_MS as u64);
                    (Reader::Archive(a, from_ms, to_ms), scopes, list, max)
                }
                _ => return Err(format!("{who} cannot be replayed")),
            };
        let mut plan = Backfill {
            name: cfg.name.clone(),
            source,
            windows: Vec::new(),
            range: (list_from, list_to),
            max_window,
        };
        plan.add_windows(&scopes);
        Ok(plan)
    }

    /// Plans the windows of `scopes`.
    fn add_windows(&mut self, scopes: &[String]) {
        let (from, to) = self.range;
        for scope in scopes {
            self.windows
                .extend(
                    chunks(from, to, self.max_window)
                        .into_iter()
                        .map(|(from_ms, to_ms)| Window {
                            scope: scope.clone(),
                            from_ms,
                            to_ms,
                        }),
                );
        }
    }

    /// For a source whose subscriptions are discovered: lists them once (as the service would
    /// now) and plans the window of each one collected; `Ok(None)` for fixed scopes.
    pub async fn discover(
        &mut self,
        cancel: &tokio_util::sync::CancellationToken,
    ) -> Result<Option<Inventory>, String> {
        let Reader::Windowed(p) = &mut self.source else {
            return Ok(None);
        };
        let Some((spec, client, endpoints)) = p.discovery_view() else {
            return Ok(None);
        };
        let inventory = discover(client, endpoints, spec, cancel)
            .await
            .map_err(|e| {
                format!(
                    "source \"{}\": subscription discovery failed: {e}",
                    self.name
                )
            })?;
        let (listed, _) = p.parts();
        let new: Vec<String> = inventory
            .collected()
            .into_iter()
            .filter(|id| !listed.iter().any(|l| l.eq_ignore_ascii_case(id)))
            .collect();
        p.add_scopes(new.iter().cloned());
        self.add_windows(&new);
        Ok(Some(inventory))
    }

    pub fn windows(&self) -> &[Window] {
        &self.windows
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Reads every window, in order, into `ctx.spool`, starting from the checkpoint found there
    /// (its seen ids) unless `fresh`. Calls `done` after each window. `Ok(false)` if cancelled.
    pub async fn run(
        &self,
        ctx: &SourceContext,
        fresh: bool,
        mut done: impl FnMut(usize, &Window),
    ) -> Result<bool, BackfillError> {
        if let Reader::Archive(a, from_ms, to_ms) = &self.source {
            return self
                .run_archive(a, (*from_ms, *to_ms), ctx, fresh, done)
                .await;
        }
        let mut ck = ctx
            .spool
            .checkpoint_chain(&self.name)
            .filter(|_| !fresh)
            .and_then(|parts| Checkpoint::decode_chain(&parts))
            .unwrap_or_default();
        // The content types whose subscription this replay has started.
        let mut started = HashSet::new();
        for (i, w) in self.windows.iter().enumerate() {
            let state = ck
                .scopes
                .entry(w.scope.clone())
                .or_insert_with(|| ScopeState::new(w.from_ms));
            state.since_ms = state.since_ms.min(w.from_ms);
            let mut attempt = 0;
            loop {
                attempt += 1;
                let outcome = match &self.source {
                    Reader::Windowed(p) => {
                        p.read_window(&w.scope, w.from_ms, w.to_ms, &mut ck, ctx, false)
                            .await?
                    }
                    Reader::Archive(..) => unreachable!("read by run_archive"),
                    Reader::O365(o, from_ms, to_ms) => {
                        let reading = Reading::Replay {
                            from_ms: *from_ms,
                            to_ms: *to_ms,
                        };
                        let (ct, from, to) = (&w.scope, w.from_ms, w.to_ms);
                        o.replay_window(ct, from, to, reading, &mut ck, &mut started, ctx)
                            .await?
                    }
                };
                match outcome {
                    Outcome::NotLicensed(answer) => {
                        return Err(BackfillError::NotLicensed {
                            source_name: self.name.clone(),
                            scope: w.scope.clone(),
                            needs: match &self.source {
                                Reader::Windowed(p) => (p.parts().1.licence)(&w.scope),
                                Reader::O365(..) | Reader::Archive(..) => {
                                    super::o365_management::LICENCE
                                }
                            },
                            answer,
                        })
                    }
                    Outcome::Complete => break,
                    Outcome::Cancelled => return Ok(false),
                    Outcome::Incomplete if attempt < WINDOW_ATTEMPTS => {}
                    Outcome::Incomplete => {
                        return Err(BackfillError::Window {
                            source_name: self.name.clone(),
                            scope: w.scope.clone(),
                            from: filter_time(w.from_ms),
                            to: filter_time(w.to_ms),
                        })
                    }
                }
            }
            done(i, w);
        }
        Ok(true)
    }
}

impl Backfill {
    /// [`Backfill::run`] of a storage archive: each window is an hour of a container, read
    /// whole; the hours done are the replay's checkpoint (an interrupted hour is read again).
    async fn run_archive(
        &self,
        a: &super::storage_archive::ArchiveSource,
        (from_ms, to_ms): (i64, i64),
        ctx: &SourceContext,
        fresh: bool,
        mut done: impl FnMut(usize, &Window),
    ) -> Result<bool, BackfillError> {
        let mut replay: super::storage_archive::Replay = ctx
            .spool
            .checkpoint(&self.name)
            .filter(|_| !fresh)
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default();
        replay.from_ms = from_ms;
        replay.to_ms = to_ms;
        for (i, w) in self.windows.iter().enumerate() {
            let key = format!("{}@{}", w.scope, w.from_ms);
            let mut attempt = 0;
            while !replay.replayed.contains(&key) {
                attempt += 1;
                match a.replay_hour(&w.scope, w.from_ms, &mut replay, ctx).await? {
                    Outcome::Complete => break,
                    Outcome::Cancelled => return Ok(false),
                    _ if attempt < WINDOW_ATTEMPTS => {}
                    _ => {
                        return Err(BackfillError::Window {
                            source_name: self.name.clone(),
                            scope: w.scope.clone(),
                            from: filter_time(w.from_ms),
                            to: filter_time(w.to_ms),
                        })
                    }
                }
            }
            done(i, w);
        }
        Ok(true)
    }
}

/// The API keeps `retention` of data: an older start is refused, naming the limit.
fn check_retention(
    retention: Duration,
    kind: &str,
    from_ms: i64,
    now_ms: i64,
) -> Result<(), String> {
    let days = retention.as_secs() / 86_400;
    // A minute of slack, as the poller keeps, so the request still falls inside it.
    let oldest = now_ms - retention.as_millis() as i64 + 60_000;
    if from_ms < oldest {
        return Err(format!(
            "--from ({}) is older than the {days} days the {kind} API keeps; start at {} or later",
            filter_time(from_ms),
            filter_time(oldest)
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_are_split_at_the_api_maximum() {
        let h = 3_600_000;
        assert_eq!(
            chunks(0, 50 * h, Duration::from_secs(24 * 3600)),
            vec![(0, 24 * h), (24 * h, 48 * h), (48 * h, 50 * h)]
        );
        assert_eq!(chunks(5, 5, Duration::from_secs(1)), vec![]);
    }

    #[test]
    fn retention_is_checked_with_the_limit_named() {
        let day = 86_400_000;
        let now = 1_000 * day;
        let api = crate::sources::azure_activity::API.retention;
        assert!(check_retention(api, "azure_activity", now - 89 * day, now).is_ok());
        let e = check_retention(api, "azure_activity", now - 91 * day, now).unwrap_err();
        assert!(e.contains("90 days the azure_activity API keeps"), "{e}");
        let office = Duration::from_millis(RETENTION_MS as u64);
        assert!(check_retention(office, "o365_management", now - 6 * day, now).is_ok());
        let e = check_retention(office, "o365_management", now - 8 * day, now).unwrap_err();
        assert!(e.contains("7 days the o365_management API keeps"), "{e}");
    }
}
