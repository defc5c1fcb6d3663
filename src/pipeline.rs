//! Wires sources → spool → destinations and owns their shutdown: on cancel, sources finish the
//! page in hand (appending it with its checkpoint), then destinations finish their batch, wait
//! for the peer's acknowledgement and persist their cursors.

use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex};

use anyhow::Context as _;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::destinations::{Destination, DestinationStats};
use crate::sources::{Source, SourceContext, SourceStats};
use crate::spool::{Spool, SpoolOptions};

/// Live counters of a running pipeline, shared with whoever reports them.
#[derive(Debug, Clone, Default)]
pub struct PipelineStats {
    pub sources: Vec<(String, Arc<SourceStats>)>,
    pub destinations: Vec<(String, Arc<DestinationStats>)>,
    /// Where the pipeline is in its life, for `/healthz`.
    pub lifecycle: Arc<Lifecycle>,
}

/// The pipeline's phase and the sources that ended early, read by health checks.
#[derive(Debug, Default)]
pub struct Lifecycle {
    phase: AtomicU8,
    stopped_sources: Mutex<Vec<(String, String)>>,
}

/// See [`Lifecycle::phase`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Built, tasks not started yet.
    Starting,
    Running,
    /// Shutdown began: sources finish their page, destinations their batch.
    Stopping,
}

impl Lifecycle {
    pub fn phase(&self) -> Phase {
        match self.phase.load(Ordering::Acquire) {
            0 => Phase::Starting,
            1 => Phase::Running,
            _ => Phase::Stopping,
        }
    }

    pub(crate) fn set(&self, phase: Phase) {
        let v = match phase {
            Phase::Starting => 0,
            Phase::Running => 1,
            Phase::Stopping => 2,
        };
        self.phase.store(v, Ordering::Release);
    }

    /// Sources whose task ended while the pipeline was running, with the reason.
    pub fn stopped_sources(&self) -> Vec<(String, String)> {
        self.stopped_sources
            .lock()
            .map(|v| v.clone())
            .unwrap_or_default()
    }

    fn source_stopped(&self, name: &str, reason: String) {
        if let Ok(mut v) = self.stopped_sources.lock() {
            v.push((name.to_owned(), reason));
        }
    }
}

/// A pipeline built from a validated configuration, not yet running.
#[derive(Debug)]
pub struct Pipeline {
    spool: Arc<Spool>,
    sources: Vec<Source>,
    destinations: Vec<Destination>,
    stats: PipelineStats,
}

impl Pipeline {
    /// Opens the spool and builds every source and destination (loading their mappings).
    pub fn build(config: &Config) -> anyhow::Result<Pipeline> {
        Self::with_spool(config, open_spool(config)?)
    }

    /// Builds every source and destination on an already open spool (a reload keeps it).
    pub fn with_spool(config: &Config, spool: Arc<Spool>) -> anyhow::Result<Pipeline> {
        let mut stats = PipelineStats::default();
        let mut sources = Vec::new();
        for cfg in &config.sources {
            sources.push(Source::from_config(cfg, config)?);
            let counters = crate::sources::SourceStats::for_source(cfg);
            stats.sources.push((cfg.name.clone(), Arc::new(counters)));
        }
        let mut destinations = Vec::new();
        for cfg in &config.destinations {
            destinations.push(Destination::from_config(cfg, config)?);
            stats.destinations.push((cfg.name.clone(), Arc::default()));
        }
        Ok(Pipeline {
            spool,
            sources,
            destinations,
            stats,
        })
    }

    /// Keeps counting on the counters of `previous` for sources and destinations of the same
    /// name (after a reload), so Prometheus counters do not reset.
    pub fn carry_over(&mut self, previous: &PipelineStats) {
        for (name, stats) in &mut self.stats.sources {
            let same = |(n, old): &&(String, Arc<crate::sources::SourceStats>)| {
                n == name && old.tenant == stats.tenant
            };
            if let Some((_, old)) = previous.sources.iter().find(same) {
                *stats = old.clone();
            }
        }
        for (name, stats) in &mut self.stats.destinations {
            if let Some((_, old)) = previous.destinations.iter().find(|(n, _)| n == name) {
                *stats = old.clone();
            }
        }
    }

    pub fn stats(&self) -> PipelineStats {
        self.stats.clone()
    }

    pub fn spool(&self) -> Arc<Spool> {
        self.spool.clone()
    }

    /// Runs until `shutdown` is cancelled or a component fails, then stops in order.
    pub async fn run(self, shutdown: CancellationToken) -> anyhow::Result<()> {
        let sources_stop = shutdown.child_token();
        let destinations_stop = CancellationToken::new();
        let mut sources = JoinSet::new();
        for (source, (_, stats)) in self.sources.into_iter().zip(&self.stats.sources) {
            let ctx = SourceContext {
                spool: self.spool.clone(),
                cancel: sources_stop.clone(),
                stats: stats.clone(),
            };
            let name = source.name().to_owned();
            // The Microsoft API sources log with the tenant they read (`tenant` field).
            let span = match &stats.tenant {
                Some(tenant) => tracing::info_span!("tenant", tenant = %tenant),
                None => tracing::Span::none(),
            };
            let run = async move { (name, source.run(ctx).await) };
            sources.spawn(tracing::Instrument::instrument(run, span));
        }
        let mut destinations = JoinSet::new();
        for (dest, (_, stats)) in self.destinations.into_iter().zip(&self.stats.destinations) {
            let (spool, stop, stats) =
                (self.spool.clone(), destinations_stop.clone(), stats.clone());
            destinations.spawn(async move { dest.run(spool, stop, stats).await });
        }
        self.stats.lifecycle.set(Phase::Running);
        tracing::info!(
            message = "Pipeline running.",
            sources = sources.len(),
            destinations = destinations.len()
        );

        let lifecycle = self.stats.lifecycle.clone();
        let stopping = {
            let (lifecycle, shutdown) = (lifecycle.clone(), shutdown.clone());
            tokio::spawn(async move {
                shutdown.cancelled().await;
                lifecycle.set(Phase::Stopping);
            })
        };
        let mut failure: Option<anyhow::Error> = None;
        // Sources end only when told to, or when they fail.
        while let Some(joined) = sources.join_next().await {
            let err = match joined {
                Ok((name, Ok(()))) => {
                    if !sources_stop.is_cancelled() {
                        lifecycle.source_stopped(&name, "ended".to_owned());
                    }
                    continue;
                }
                Ok((name, Err(e))) => {
                    lifecycle.source_stopped(&name, e.to_string());
                    anyhow::Error::new(e).context(format!("source \"{name}\" failed"))
                }
                Err(e) => anyhow::anyhow!("a source task panicked: {e}"),
            };
            tracing::error!(message = "Source failed; stopping.", error = %format!("{err:#}"));
            sources_stop.cancel();
            failure.get_or_insert(err);
        }
        lifecycle.set(Phase::Stopping);
        stopping.abort();
        destinations_stop.cancel();
        while let Some(joined) = destinations.join_next().await {
            let err = match joined {
                Ok(Ok(())) => continue,
                Ok(Err(e)) => anyhow::Error::new(e),
                Err(e) => anyhow::anyhow!("a destination task panicked: {e}"),
            };
            tracing::error!(message = "Destination failed.", error = %format!("{err:#}"));
            failure.get_or_insert(err);
        }
        self.spool
            .flush_cursors()
            .context("cannot persist the spool cursors")?;
        tracing::info!(message = "Pipeline stopped.");
        failure.map_or(Ok(()), Err)
    }
}

/// Opens the spool of `config` for a pipeline.
pub fn open_spool(config: &Config) -> anyhow::Result<Arc<Spool>> {
    let dir = config.spool_dir();
    let spool = Spool::open(
        &dir,
        SpoolOptions {
            max_bytes: config.spool.max_bytes,
            // Bounds what a crash can repeat to ~50 ms of traffic plus the batch in flight.
            cursor_persist_interval: std::time::Duration::from_millis(50),
            ..SpoolOptions::default()
        },
    )
    .with_context(|| format!("cannot open the spool in {}", dir.display()))?;
    Ok(Arc::new(spool))
}
