//! `siemcast replay`: backfills a past window of one windowed API source while the service may
//! keep running. The replay has its own spool under `state_dir/replay/<source>/` (the service's
//! is locked), reads the window through the source's dedupe into it, delivers it to every
//! configured destination, and ends when every destination has acknowledged everything. An
//! interrupted replay keeps what it read; running the same command again finishes it.

use std::io::IsTerminal as _;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::config::{Config, HumanDuration};
use crate::destinations::{Destination, DestinationStats};
use crate::sources::backfill::{Backfill, Window};
use crate::sources::poll::filter_time;
use crate::sources::{SourceContext, SourceStats};
use crate::spool::{Spool, SpoolOptions};

/// What to replay.
#[derive(Debug, Clone)]
pub struct ReplayOptions {
    pub source: String,
    pub from: String,
    pub to: String,
    /// Forget the ids earlier replays of this source delivered (send them again).
    pub fresh: bool,
}

/// How a replay ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Every event read was acknowledged by every destination.
    Delivered { windows: usize, new_events: u64 },
    /// Stopped by Ctrl-C / SIGTERM; what was read is kept for the next run.
    Interrupted { new_events: u64 },
}

/// `now`, a duration back from now (`"7d"`, `"90m"`), or an RFC 3339 time; ms since the epoch.
pub fn parse_time(text: &str, now_ms: i64, flag: &str) -> Result<i64, String> {
    let t = text.trim();
    if t == "now" {
        return Ok(now_ms);
    }
    if let Ok(ts) = t.parse::<jiff::Timestamp>() {
        return Ok(ts.as_millisecond());
    }
    let back = t.parse::<HumanDuration>().map(|d| d.0).or_else(|_| {
        // Days and weeks are calendar units to jiff; here a day is 24 hours.
        let span: jiff::Span = t.parse().map_err(|_| ())?;
        let d = span
            .to_duration(jiff::SpanRelativeTo::days_are_24_hours())
            .map_err(|_| ())?;
        Duration::try_from(d).map_err(|_| ())
    });
    match back {
        Ok(d) => Ok(now_ms - d.as_millis() as i64),
        Err(()) => Err(format!(
            "{flag} \"{text}\" is not a time; write an RFC 3339 time like 2026-11-01T00:00:00Z, a duration back from now like \"7d\" or \"90m\", or \"now\""
        )),
    }
}

/// The replay's own spool directory for `source`.
pub fn spool_dir(config: &Config, source: &str) -> std::path::PathBuf {
    config
        .resolve(&config.state_dir)
        .join("replay")
        .join(source)
}

/// Runs a replay until it is delivered, fails, or `cancel` fires.
pub async fn run(
    config: &Config,
    opts: &ReplayOptions,
    cancel: CancellationToken,
) -> anyhow::Result<Outcome> {
    let now = jiff::Timestamp::now().as_millisecond();
    let from = parse_time(&opts.from, now, "--from").map_err(anyhow::Error::msg)?;
    let to = parse_time(&opts.to, now, "--to").map_err(anyhow::Error::msg)?;
    let cfg = config
        .sources
        .iter()
        .find(|s| s.name == opts.source)
        .ok_or_else(|| {
            let names: Vec<&str> = config.sources.iter().map(|s| s.name.as_str()).collect();
            anyhow::anyhow!(
                "no source named \"{}\" in the configuration; its sources are: {}",
                opts.source,
                if names.is_empty() {
                    "none".to_owned()
                } else {
                    names.join(", ")
                }
            )
        })?;
    if config.destinations.is_empty() {
        anyhow::bail!("the configuration has no [[destination]] to replay to");
    }
    let mut plan = Backfill::plan(cfg, config, from, to, now).map_err(anyhow::Error::msg)?;
    // `subscriptions = ["*"]`, `management_groups`: listed once, each one collected replayed.
    if let Some(inventory) = plan.discover(&cancel).await.map_err(anyhow::Error::msg)? {
        let collected = inventory.collected();
        tracing::info!(message = "Subscriptions discovered for the replay.", source = %cfg.name, collected = collected.len(), subscriptions = %collected.join(","));
        if collected.is_empty() {
            anyhow::bail!("source \"{}\": subscription discovery found no subscription to replay; `siemcast discover -c FILE --source {}` shows what the identity can read", cfg.name, cfg.name);
        }
    }
    let dir = spool_dir(config, &cfg.name);
    let spool = Arc::new(
        Spool::open(
            &dir,
            SpoolOptions {
                max_bytes: config.spool.max_bytes,
                cursor_persist_interval: Duration::from_millis(50),
                ..SpoolOptions::default()
            },
        )
        .with_context(|| {
            format!(
                "cannot open the replay spool in {} (is another replay of this source running?)",
                dir.display()
            )
        })?,
    );
    tracing::info!(message = "Replay started.", source = %cfg.name, from = %filter_time(from), to = %filter_time(to), windows = plan.windows().len(), spool = %dir.display());

    let stop_destinations = CancellationToken::new();
    let mut destinations = JoinSet::new();
    let mut delivered = Vec::new();
    for d in &config.destinations {
        let dest = Destination::from_config(d, config)?;
        let stats = Arc::new(DestinationStats::default());
        delivered.push((d.name.clone(), stats.clone()));
        let (spool, stop) = (spool.clone(), stop_destinations.clone());
        destinations.spawn(async move { dest.run(spool, stop, stats).await });
    }

    let stats = Arc::new(SourceStats::default());
    let ctx = SourceContext {
        spool: spool.clone(),
        cancel: cancel.clone(),
        stats: stats.clone(),
    };
    let progress = Progress::new(&plan, stats.clone());
    let read = plan
        .run(&ctx, opts.fresh, |i, w| progress.window_done(i, w))
        .await;
    progress.finish_reading();
    let new_events = stats.spooled.load(Ordering::Relaxed);
    let complete = match read {
        Ok(complete) => complete,
        Err(e) => {
            stop(&spool, stop_destinations, destinations).await?;
            return Err(e.into());
        }
    };
    let delivered_all = complete
        && wait_delivered(&spool, &delivered, &mut destinations, &cancel, &progress).await?;
    stop(&spool, stop_destinations, destinations).await?;
    progress.clear();
    Ok(if delivered_all {
        Outcome::Delivered {
            windows: plan.windows().len(),
            new_events,
        }
    } else {
        Outcome::Interrupted { new_events }
    })
}

/// Waits until no destination has a record left in the replay spool; false if cancelled.
async fn wait_delivered(
    spool: &Arc<Spool>,
    destinations: &[(String, Arc<DestinationStats>)],
    tasks: &mut JoinSet<Result<(), crate::destinations::DestinationError>>,
    cancel: &CancellationToken,
    progress: &Progress,
) -> anyhow::Result<bool> {
    loop {
        let s = spool.clone();
        let status = tokio::task::spawn_blocking(move || s.status()).await?;
        let waiting: Vec<(String, u64)> = status
            .destinations
            .iter()
            .filter(|d| destinations.iter().any(|(n, _)| *n == d.name))
            .map(|d| (d.name.clone(), d.queued_records))
            .collect();
        let opened = waiting.len() == destinations.len();
        if opened && waiting.iter().all(|(_, q)| *q == 0) {
            return Ok(true);
        }
        progress.delivering(&waiting, destinations);
        tokio::select! {
            _ = cancel.cancelled() => return Ok(false),
            ended = tasks.join_next() => {
                if let Some(Ok(Err(e))) = ended {
                    return Err(anyhow::Error::new(e).context("a destination failed during the replay"));
                }
            }
            _ = tokio::time::sleep(Duration::from_millis(100)) => {}
        }
    }
}

/// Stops the destinations (each finishes its batch and waits for the acknowledgement) and
/// persists their cursors.
async fn stop(
    spool: &Arc<Spool>,
    stop: CancellationToken,
    mut tasks: JoinSet<Result<(), crate::destinations::DestinationError>>,
) -> anyhow::Result<()> {
    stop.cancel();
    while let Some(joined) = tasks.join_next().await {
        joined.context("a destination task panicked")??;
    }
    spool
        .flush_cursors()
        .context("cannot persist the replay spool's cursors")
}

/// The progress display: an indicatif bar on a terminal, plain lines otherwise.
struct Progress {
    bar: Option<ProgressBar>,
    ticker: Option<tokio::task::JoinHandle<()>>,
    name: String,
    total: usize,
    started: Instant,
    stats: Arc<SourceStats>,
    /// When the last delivery line was shown (one every few seconds).
    shown: std::sync::Mutex<Option<Instant>>,
}

fn rate(events: u64, since: Instant) -> u64 {
    (events as f64 / since.elapsed().as_secs_f64().max(0.001)) as u64
}

impl Progress {
    fn new(plan: &Backfill, stats: Arc<SourceStats>) -> Progress {
        let total = plan.windows().len();
        let started = Instant::now();
        let (bar, ticker) = if std::io::stderr().is_terminal() {
            let bar =
                ProgressBar::with_draw_target(Some(total as u64), ProgressDrawTarget::stderr());
            bar.set_style(
                ProgressStyle::with_template(
                    "{spinner} {prefix} [{bar:30}] {pos}/{len} windows · {msg} · {elapsed} · ETA {eta}",
                )
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> "),
            );
            bar.set_prefix(format!("replay {}", plan.name()));
            bar.enable_steady_tick(Duration::from_millis(200));
            // The event count moves within a window, page by page.
            let (b, s) = (bar.clone(), stats.clone());
            let ticker = tokio::spawn(async move {
                loop {
                    let n = s.spooled.load(Ordering::Relaxed);
                    b.set_message(format!("{n} events ({}/s)", rate(n, started)));
                    tokio::time::sleep(Duration::from_millis(250)).await;
                }
            });
            (Some(bar), Some(ticker))
        } else {
            (None, None)
        };
        Progress {
            bar,
            ticker,
            name: plan.name().to_owned(),
            total,
            started,
            stats,
            shown: std::sync::Mutex::new(None),
        }
    }

    fn window_done(&self, i: usize, w: &Window) {
        match &self.bar {
            Some(bar) => bar.set_position(i as u64 + 1),
            None => {
                let events = self.stats.spooled.load(Ordering::Relaxed);
                let done = i + 1;
                let eta = self
                    .started
                    .elapsed()
                    .mul_f64((self.total - done) as f64 / done as f64);
                eprintln!(
                    "replay {}: window {done}/{} read ({} {} to {}); {events} new events ({}/s); ETA {}s",
                    self.name,
                    self.total,
                    w.scope,
                    filter_time(w.from_ms),
                    filter_time(w.to_ms),
                    rate(events, self.started),
                    eta.as_secs()
                );
            }
        }
    }

    fn finish_reading(&self) {
        if let Some(t) = &self.ticker {
            t.abort();
        }
        if let Some(bar) = &self.bar {
            let n = self.stats.spooled.load(Ordering::Relaxed);
            bar.set_message(format!("{n} events ({}/s)", rate(n, self.started)));
            bar.finish();
        }
    }

    fn delivering(&self, waiting: &[(String, u64)], all: &[(String, Arc<DestinationStats>)]) {
        {
            let mut shown = self.shown.lock().unwrap_or_else(|e| e.into_inner());
            if shown.is_some_and(|t| t.elapsed() < Duration::from_secs(3)) {
                return;
            }
            *shown = Some(Instant::now());
        }
        let parts: Vec<String> = all
            .iter()
            .map(|(name, stats)| {
                let queued = waiting.iter().find(|(n, _)| n == name).map(|(_, q)| *q);
                let link = if stats.connected.load(Ordering::Relaxed) {
                    "connected"
                } else {
                    "not connected"
                };
                match queued {
                    Some(q) => format!("{name}: {q} to acknowledge ({link})"),
                    None => format!("{name}: starting"),
                }
            })
            .collect();
        let line = format!("replay {}: delivering; {}", self.name, parts.join(", "));
        match &self.bar {
            Some(bar) => bar.println(&line),
            None => eprintln!("{line}"),
        }
    }

    fn clear(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_rfc3339_durations_back_or_now() {
        let now = 1_793_527_200_000; // 2026-11-01T10:00:00Z
        assert_eq!(parse_time("now", now, "--to"), Ok(now));
        assert_eq!(parse_time("7d", now, "--from"), Ok(now - 7 * 86_400_000));
        assert_eq!(parse_time("90m", now, "--from"), Ok(now - 90 * 60_000));
        assert_eq!(
            parse_time("2026-11-01T09:00:00Z", now, "--from"),
            Ok(now - 3_600_000)
        );
        let e = parse_time("yesterday", now, "--from").unwrap_err();
        assert!(e.starts_with("--from \"yesterday\" is not a time"), "{e}");
    }
}
