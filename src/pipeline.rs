//! Wires sources → spool → destinations and owns their shutdown: on cancel, sources finish the
//! page in hand (appending it with its checkpoint), then destinations finish their batch, wait
//! for the peer's acknowledgement and persist their cursors.

use std::sync::Arc;

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
        let mut stats = PipelineStats::default();
        let mut sources = Vec::new();
        for cfg in &config.sources {
            sources.push(Source::from_config(cfg, config)?);
            stats.sources.push((cfg.name.clone(), Arc::default()));
        }
        let mut destinations = Vec::new();
        for cfg in &config.destinations {
            destinations.push(Destination::from_config(cfg, config)?);
            stats.destinations.push((cfg.name.clone(), Arc::default()));
        }
        Ok(Pipeline {
            spool: Arc::new(spool),
            sources,
            destinations,
            stats,
        })
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
            sources.spawn(async move { (name, source.run(ctx).await) });
        }
        let mut destinations = JoinSet::new();
        for (dest, (_, stats)) in self.destinations.into_iter().zip(&self.stats.destinations) {
            let (spool, stop, stats) =
                (self.spool.clone(), destinations_stop.clone(), stats.clone());
            destinations.spawn(async move { dest.run(spool, stop, stats).await });
        }
        tracing::info!(
            message = "Pipeline running.",
            sources = sources.len(),
            destinations = destinations.len()
        );

        let mut failure: Option<anyhow::Error> = None;
        // Sources end only when told to, or when they fail.
        while let Some(joined) = sources.join_next().await {
            let err = match joined {
                Ok((_, Ok(()))) => continue,
                Ok((name, Err(e))) => {
                    anyhow::Error::new(e).context(format!("source \"{name}\" failed"))
                }
                Err(e) => anyhow::anyhow!("a source task panicked: {e}"),
            };
            tracing::error!(message = "Source failed; stopping.", error = %format!("{err:#}"));
            sources_stop.cancel();
            failure.get_or_insert(err);
        }
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
