//! `siemcast run` as a long-lived service: the pipeline plus what an appliance needs around it —
//! the metrics listener, systemd notifications (`READY=1`, `STATUS=`, `WATCHDOG=1`,
//! `RELOADING=1`, `STOPPING=1`, `EXTEND_TIMEOUT_USEC=` while a stop drains) and signals: SIGTERM/SIGINT stop cleanly, SIGHUP reloads the
//! configuration and mappings, keeping the running set when the new one is invalid.

use std::path::Path;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant, SystemTime};

use anyhow::Context as _;
use sd_notify::NotifyState;
use tokio::signal::unix::{signal, Signal, SignalKind};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::metrics::{self, MetricsState};
use crate::pipeline::{self, Phase, Pipeline};
use crate::spool::Spool;

/// How often `STATUS=` is sent to systemd.
const STATUS_EVERY: Duration = Duration::from_secs(5);
/// While a stop drains, systemd is asked this often for `EXTEND_BY` more time, so senders
/// finishing a paced batch (bounded by `ack_timeout`) are not killed at `TimeoutStopSec`.
const EXTEND_EVERY: Duration = Duration::from_secs(2);
const EXTEND_BY: Duration = Duration::from_secs(10);
/// A drain longer than this gets no more extensions: something is stuck, let systemd act.
const MAX_DRAIN: Duration = Duration::from_secs(300);

/// Runs the service until SIGTERM/SIGINT (then `Ok`) or until a component fails (`Err`).
pub async fn run(path: &Path, mut config: Config) -> anyhow::Result<()> {
    let started = SystemTime::now();
    let mut signals = Signals::new()?;
    let spool = pipeline::open_spool(&config)?;
    let mut pipeline = Pipeline::with_spool(&config, spool.clone())?;
    let (state_tx, state_rx) = watch::channel(MetricsState {
        stats: pipeline.stats(),
        spool: spool.clone(),
        started,
        poll_grace: config.metrics.poll_grace.0,
    });
    let service_stop = CancellationToken::new();
    let _stop_guard = service_stop.clone().drop_guard();
    if config.metrics.address.is_empty() {
        tracing::info!(message = "Metrics listener is off ([metrics] address is empty).");
    } else {
        let listener = metrics::bind(&config.metrics.address).await?;
        let address = listener.local_addr().map(|a| a.to_string());
        tracing::info!(message = "Metrics listening.", address = %address.unwrap_or_default(), paths = "/metrics /healthz /spool");
        tokio::spawn(metrics::serve(
            listener,
            state_rx.clone(),
            service_stop.clone(),
        ));
    }
    tokio::spawn(report_to_systemd(state_rx, service_stop.clone()));
    notify(&[NotifyState::Ready]);
    tracing::info!(message = "siemcast started.", config = %path.display(), version = env!("CARGO_PKG_VERSION"));

    loop {
        let generation = CancellationToken::new();
        let mut running = tokio::spawn(pipeline.run(generation.clone()));
        let next = loop {
            tokio::select! {
                ended = &mut running => {
                    // The pipeline stopped by itself: a component failed.
                    notify(&[NotifyState::Stopping]);
                    return joined(ended).and_then(|()| {
                        Err(anyhow::anyhow!("the pipeline stopped unexpectedly; see the log above"))
                    });
                }
                received = signals.recv() => match received {
                    Received::Stop(name) => {
                        tracing::info!(message = "Shutting down.", signal = name);
                        notify(&[NotifyState::Stopping, NotifyState::Status("Stopping: finishing batches, saving cursors")]);
                        generation.cancel();
                        return joined(drain(&mut running).await);
                    }
                    Received::Reload => {
                        if let Some(new) = reload_candidate(path, &config) {
                            let mut states = vec![NotifyState::Reloading];
                            if let Ok(now) = NotifyState::monotonic_usec_now() {
                                states.push(now);
                            }
                            notify(&states);
                            generation.cancel();
                            joined(running.await)?;
                            break new;
                        }
                    }
                }
            }
        };
        let previous = state_tx.borrow().stats.clone();
        pipeline = match Pipeline::with_spool(&next, spool.clone()) {
            Ok(p) => {
                forget_removed(&spool, &config, &next);
                config = next;
                tracing::info!(message = "Configuration reloaded.", config = %path.display(), sources = config.sources.len(), destinations = config.destinations.len());
                p
            }
            Err(error) => {
                tracing::error!(message = "Reload failed while starting the new configuration; continuing with the previous one.", error = %format!("{error:#}"));
                Pipeline::with_spool(&config, spool.clone())
                    .context("cannot restart the previous configuration after a failed reload")?
            }
        };
        pipeline.carry_over(&previous);
        state_tx.send_modify(|s| {
            s.stats = pipeline.stats();
            s.poll_grace = config.metrics.poll_grace.0;
        });
        notify(&[NotifyState::Ready]);
    }
}

type Running = tokio::task::JoinHandle<anyhow::Result<()>>;

/// Waits for a cancelled pipeline to finish; past `EXTEND_EVERY` it tells systemd the stop is
/// still progressing (`EXTEND_TIMEOUT_USEC=`) every `EXTEND_EVERY`, for at most `MAX_DRAIN`.
async fn drain(running: &mut Running) -> Result<anyhow::Result<()>, tokio::task::JoinError> {
    let started = tokio::time::Instant::now();
    let mut tick = tokio::time::interval_at(started + EXTEND_EVERY, EXTEND_EVERY);
    loop {
        tokio::select! {
            ended = &mut *running => return ended,
            _ = tick.tick(), if started.elapsed() < MAX_DRAIN => {
                let waited = started.elapsed().as_secs();
                tracing::info!(message = "Still stopping: destinations are finishing their batches.", waited_s = waited);
                let line = format!("Stopping: finishing batches, saving cursors ({waited} s)");
                notify(&[
                    NotifyState::ExtendTimeoutUsec(EXTEND_BY.as_micros() as u32),
                    NotifyState::Status(&line),
                ]);
            }
        }
    }
}

fn joined(r: Result<anyhow::Result<()>, tokio::task::JoinError>) -> anyhow::Result<()> {
    r.map_err(|e| anyhow::anyhow!("the pipeline task panicked: {e}"))?
}

/// Reads and validates the configuration again; `None` (with the reasons logged) when it is
/// invalid, so the running set stays.
fn reload_candidate(path: &Path, current: &Config) -> Option<Config> {
    tracing::info!(message = "SIGHUP received; reloading the configuration and mappings.", config = %path.display());
    let new = match Config::load(path) {
        Ok(c) => c,
        Err(errors) => {
            tracing::error!(message = "New configuration is invalid; still running the previous one. Fix it (siemcast check -c FILE) and send SIGHUP again.", config = %path.display(), problems = errors.0.len(), errors = %errors);
            return None;
        }
    };
    let restart_only = [
        ("state_dir", current.state_dir != new.state_dir),
        (
            "[metrics] address",
            current.metrics.address != new.metrics.address,
        ),
        (
            "[spool] max_bytes",
            current.spool.max_bytes != new.spool.max_bytes,
        ),
    ];
    for (key, changed) in restart_only {
        if changed {
            tracing::warn!(
                message =
                    "This setting changes only at the next restart (systemctl restart siemcast).",
                key
            );
        }
    }
    Some(new)
}

/// Releases the spool cursors of destinations the new configuration no longer has, so they do
/// not keep delivered data on disk.
fn forget_removed(spool: &Spool, old: &Config, new: &Config) {
    for d in &old.destinations {
        if new.destinations.iter().any(|n| n.name == d.name) {
            continue;
        }
        match spool.forget_destination(&d.name) {
            Ok(()) => {
                tracing::info!(message = "Destination removed; its spool cursor was released.", destination = %d.name)
            }
            Err(error) => {
                tracing::error!(message = "Destination removed but its spool cursor could not be released; run `siemcast spool forget-destination` after stopping the service.", destination = %d.name, %error)
            }
        }
    }
}

/// Sends `STATUS=` every few seconds and `WATCHDOG=1` at half the watchdog interval, the
/// latter only after a round trip through the blocking pool and the spool's locks, so a wedged
/// process stops pinging and systemd restarts it.
async fn report_to_systemd(state: watch::Receiver<MetricsState>, stop: CancellationToken) {
    let watchdog = sd_notify::watchdog_enabled();
    if let Some(period) = watchdog {
        tracing::info!(
            message = "systemd watchdog enabled.",
            interval_ms = period.as_millis() as u64
        );
    }
    let mut dog = tokio::time::interval(watchdog.map_or(Duration::from_secs(3600), |p| p / 2));
    let mut status = tokio::time::interval(STATUS_EVERY);
    dog.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    status.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last: Option<(Instant, u64)> = None;
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = dog.tick(), if watchdog.is_some() => {
                let spool = state.borrow().spool.clone();
                if tokio::task::spawn_blocking(move || spool.stats()).await.is_ok() {
                    notify(&[NotifyState::Watchdog]);
                }
            }
            _ = status.tick() => {
                let snapshot = state.borrow().clone();
                // While stopping, the drain reports its own status.
                if snapshot.stats.lifecycle.phase() != Phase::Stopping {
                    let line = status_line(&snapshot, &mut last).await;
                    notify(&[NotifyState::Status(&line)]);
                }
            }
        }
    }
}

/// "Delivering 1234 events/s; 5678 events queued (12.3 MiB); 2/2 destinations connected", and
/// "; disk full (N bytes free), sources paused" while it is.
async fn status_line(state: &MetricsState, last: &mut Option<(Instant, u64)>) -> String {
    let delivered: u64 = state
        .stats
        .destinations
        .iter()
        .map(|(_, d)| d.delivered.load(Ordering::Relaxed))
        .sum();
    let now = Instant::now();
    let rate = match *last {
        Some((t, n)) if now > t => {
            delivered.saturating_sub(n) as f64 / now.duration_since(t).as_secs_f64()
        }
        _ => 0.0,
    };
    *last = Some((now, delivered));
    let spool = state.spool.clone();
    let status = tokio::task::spawn_blocking(move || spool.status())
        .await
        .ok();
    let (queued, bytes) = status.map_or((0, 0), |s| {
        let queued = s
            .destinations
            .iter()
            .map(|d| d.queued_records)
            .max()
            .unwrap_or(0);
        (queued, s.total_bytes)
    });
    let connected = state
        .stats
        .destinations
        .iter()
        .filter(|(_, d)| d.connected.load(Ordering::Relaxed))
        .count();
    let disk = state.spool.disk_full().map_or(String::new(), |free| {
        format!("; disk full ({free} bytes free), sources paused")
    });
    format!(
        "Delivering {rate:.0} events/s; {queued} events queued, spool {:.1} MiB; {connected}/{} destinations connected{disk}",
        bytes as f64 / (1024.0 * 1024.0),
        state.stats.destinations.len()
    )
}

/// Sends a notification to systemd when run under it (`NOTIFY_SOCKET`); otherwise nothing.
fn notify(states: &[NotifyState]) {
    if let Err(error) = sd_notify::notify(states) {
        tracing::warn!(message = "Cannot notify systemd.", %error);
    }
}

enum Received {
    Stop(&'static str),
    Reload,
}

struct Signals {
    term: Signal,
    int: Signal,
    hup: Signal,
}

impl Signals {
    fn new() -> anyhow::Result<Signals> {
        let listen = |kind: SignalKind, name: &str| {
            signal(kind).with_context(|| format!("cannot listen for {name}"))
        };
        Ok(Signals {
            term: listen(SignalKind::terminate(), "SIGTERM")?,
            int: listen(SignalKind::interrupt(), "SIGINT")?,
            hup: listen(SignalKind::hangup(), "SIGHUP")?,
        })
    }

    async fn recv(&mut self) -> Received {
        tokio::select! {
            _ = self.term.recv() => Received::Stop("SIGTERM"),
            _ = self.int.recv() => Received::Stop("SIGINT"),
            _ = self.hup.recv() => Received::Reload,
        }
    }
}

impl std::fmt::Debug for Signals {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Signals")
    }
}
