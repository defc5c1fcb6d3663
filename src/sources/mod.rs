//! Sources: each one owns its input, its position and its dedupe, and appends pages of events
//! together with its checkpoint to the spool as one durable batch. A source never formats events.
//! The set is closed (`Source` enum); each kind lives in its own file.

pub mod azure;
pub mod azure_activity;
pub mod backfill;
pub mod checkpoint;
pub mod dead_letter;
pub mod defender_alerts;
pub mod diff;
pub mod discovery;
pub mod entra_audit;
pub mod entra_risk_detections;
pub mod entra_risky_users;
pub mod entra_signins;
pub mod eventhubs;
pub mod files;
pub mod freshness;
pub mod graph_alerts;
pub mod graph_incidents;
pub mod o365_management;
pub mod page;
pub mod poll;
pub mod registry;
pub mod spec;
pub mod storage_archive;
#[cfg(test)]
mod tests;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::config::{Config, SourceConfig, SourceKind};
use crate::event::Event;
use crate::spool::{Spool, SpoolError};
use spec::SourceSpec;

pub use diff::DiffSource;
pub use files::FilesSource;
pub use o365_management::O365Source;
pub use page::EncodedPage;
pub use poll::PollSource;

/// Counters a source keeps, read by the pipeline summary and metrics.
#[derive(Debug, Default)]
pub struct SourceStats {
    /// Events appended to the spool.
    pub spooled: AtomicU64,
    /// Items that could not be read as events (bad JSON, not an object).
    pub rejected: AtomicU64,
    /// Batches that had to wait because the spool was full.
    pub paused: AtomicU64,
    /// Records read from the input: API records before dedupe, file items.
    pub polled: AtomicU64,
    /// API requests sent (token requests are not counted).
    pub api_requests: AtomicU64,
    /// API answers asking to slow down: 429, or 503 (service busy).
    pub api_throttled: AtomicU64,
    /// API requests that failed otherwise: transport errors, other error statuses.
    pub api_errors: AtomicU64,
    /// API answers that were not the page expected (not JSON, no `value` array).
    pub api_malformed: AtomicU64,
    /// Token requests Entra ID refused or that did not reach it.
    pub token_errors: AtomicU64,
    /// Continuation links, content URIs and redirects outside the API's scheme, host and port,
    /// refused (never followed, so the token is not sent).
    pub links_refused: AtomicU64,
    /// When the source last read everything; what `/healthz` judges it by.
    pub freshness: freshness::Freshness,
    /// Streaming sources (`eventhubs`): counters per partition.
    pub partitions: eventhubs::PartitionTable,
    /// The Microsoft API sources: the name of the tenant read (`default` for `[azure]`),
    /// the `tenant` label of their metrics.
    pub tenant: Option<String>,
}

impl SourceStats {
    /// Fresh counters for source `cfg`.
    pub fn for_source(cfg: &SourceConfig) -> SourceStats {
        SourceStats {
            tenant: cfg
                .kind
                .is_some_and(SourceKind::reads_azure_api)
                .then(|| cfg.tenant_name().to_owned()),
            ..SourceStats::default()
        }
    }
}

/// What every source needs from the pipeline.
#[derive(Debug, Clone)]
pub struct SourceContext {
    pub spool: Arc<Spool>,
    pub cancel: CancellationToken,
    pub stats: Arc<SourceStats>,
}

/// A configured source.
#[derive(Debug)]
pub enum Source {
    Files(FilesSource),
    /// Every windowed API kind (`Family::Windowed` in the registry).
    Windowed(PollSource),
    /// Every diffed API kind (`Family::Diffed` in the registry).
    Diffed(DiffSource),
    O365Management(O365Source),
    EventHubs(eventhubs::EventHubsSource),
    StorageArchive(storage_archive::ArchiveSource),
}

/// Why a source stopped.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error("source \"{source_name}\": kind \"{kind}\" is not available in this build")]
    Unsupported {
        source_name: String,
        kind: SourceKind,
    },
    #[error("source \"{source_name}\": {message}")]
    Config {
        source_name: String,
        message: String,
    },
    #[error("source \"{source_name}\": cannot append to the spool: {error}")]
    Spool {
        source_name: String,
        error: SpoolError,
    },
}

impl Source {
    /// Builds a source from its validated configuration, through its typed spec.
    pub fn from_config(cfg: &SourceConfig, config: &Config) -> Result<Source, SourceError> {
        Ok(match SourceSpec::of(cfg, config)? {
            SourceSpec::Files { path, kind } => {
                Source::Files(FilesSource::from_config(cfg, path, kind))
            }
            SourceSpec::Windowed { api, scopes } => {
                Source::Windowed(PollSource::from_config(cfg, config, api, scopes)?)
            }
            SourceSpec::Diffed { api, scopes } => {
                Source::Diffed(DiffSource::from_config(cfg, config, api, scopes)?)
            }
            SourceSpec::ContentBlobs {
                tenant,
                content_types,
            } => {
                Source::O365Management(O365Source::from_config(cfg, config, tenant, content_types)?)
            }
            SourceSpec::Stream(spec) => {
                Source::EventHubs(eventhubs::EventHubsSource::from_spec(cfg, config, spec)?)
            }
            SourceSpec::Archive(spec) => Source::StorageArchive(
                storage_archive::ArchiveSource::from_spec(cfg, config, spec)?,
            ),
        })
    }

    pub fn name(&self) -> &str {
        match self {
            Source::Files(s) => s.name(),
            Source::Windowed(s) => s.name(),
            Source::Diffed(s) => s.name(),
            Source::O365Management(s) => s.name(),
            Source::EventHubs(s) => s.name(),
            Source::StorageArchive(s) => s.name(),
        }
    }

    /// What discovers this source's subscriptions (`subscriptions = ["*"]`,
    /// `management_groups`), and the client and endpoints it lists them through.
    pub fn discovery(
        &self,
    ) -> Option<(
        &discovery::Discovery,
        &azure::http::ApiClient,
        &azure::auth::Endpoints,
    )> {
        match self {
            Source::Windowed(s) => s.discovery_view(),
            Source::Diffed(s) => s.discovery_view(),
            _ => None,
        }
    }

    /// Runs until cancelled; on cancel, the page in hand is appended (with its checkpoint) first.
    pub async fn run(self, ctx: SourceContext) -> Result<(), SourceError> {
        match self {
            Source::Files(s) => s.run(ctx).await,
            Source::Windowed(s) => s.run(ctx).await,
            Source::Diffed(s) => s.run(ctx).await,
            Source::O365Management(s) => s.run(ctx).await,
            Source::EventHubs(s) => s.run(ctx).await,
            Source::StorageArchive(s) => s.run(ctx).await,
        }
    }
}

/// Appends one page of events and the checkpoint that follows it as one durable batch. While
/// the spool is full it waits (backpressure); returns `Ok(false)` if cancelled before the batch
/// was appended, in which case neither the events nor the checkpoint are in the spool.
///
/// `events` may be borrowed or owned; owned ones are dropped as they are encoded, so a page is
/// not held twice. One event can never stop the source: an event over
/// [`MAX_EVENT_BYTES`](crate::event::MAX_EVENT_BYTES) (which the sources check before making
/// one) or one that cannot fit in the spool even alone is rejected alone (logged, counted), and
/// a page too large for the spool as one batch is appended in parts, each part but the last
/// with the source's checkpoint as it stands (a crash between parts repeats the page's first
/// parts, it loses nothing).
pub async fn append_page<I>(
    ctx: &SourceContext,
    source: &str,
    events: I,
    checkpoint: Vec<u8>,
) -> Result<bool, SourceError>
where
    I: IntoIterator,
    I::Item: std::borrow::Borrow<Event>,
{
    append_page_as(ctx, source, events, checkpoint, false).await
}

/// [`append_page`] with a checkpoint delta ([`crate::spool::Spool::append_batch_delta`]): what
/// changed since the source's last full checkpoint, which must already be in the spool.
pub async fn append_page_delta<I>(
    ctx: &SourceContext,
    source: &str,
    events: I,
    delta: Vec<u8>,
) -> Result<bool, SourceError>
where
    I: IntoIterator,
    I::Item: std::borrow::Borrow<Event>,
{
    append_page_as(ctx, source, events, delta, true).await
}

/// Logs and counts one event refused on its way to the spool.
fn reject(ctx: &SourceContext, source: &str, why: &'static str, event: &str, bytes: usize) {
    ctx.stats.rejected.fetch_add(1, Ordering::Relaxed);
    tracing::warn!(message = why, source, event, bytes);
}

async fn append_page_as<I>(
    ctx: &SourceContext,
    source: &str,
    events: I,
    checkpoint: Vec<u8>,
    delta: bool,
) -> Result<bool, SourceError>
where
    I: IntoIterator,
    I::Item: std::borrow::Borrow<Event>,
{
    use std::borrow::Borrow as _;
    // Every payload in one buffer, kept from page to page.
    let mut page = EncodedPage::pooled();
    for ev in events {
        let ev: &Event = ev.borrow();
        if ev.json.len() > crate::event::MAX_EVENT_BYTES {
            reject(
                ctx,
                source,
                "Record rejected: larger than the event size limit.",
                &ev.id,
                ev.json.len(),
            );
            continue;
        }
        page.push(ev);
    }
    append_encoded_as(ctx, source, page, checkpoint, delta).await
}

/// [`append_page`] of events already encoded (see [`EncodedPage::push_json`]); the page's
/// buffers go back to the pool.
pub async fn append_encoded(
    ctx: &SourceContext,
    source: &str,
    page: EncodedPage,
    checkpoint: Vec<u8>,
) -> Result<bool, SourceError> {
    append_encoded_as(ctx, source, page, checkpoint, false).await
}

/// Holds a page while parts of it are appended; gives its buffers back to the pool at the end.
struct Held(Option<Arc<EncodedPage>>);

impl Held {
    fn page(&self) -> &Arc<EncodedPage> {
        self.0.as_ref().expect("a page is held until dropped")
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        if let Some(Ok(page)) = self.0.take().map(Arc::try_unwrap) {
            page.recycle();
        }
    }
}

pub(crate) async fn append_encoded_as(
    ctx: &SourceContext,
    source: &str,
    page: EncodedPage,
    checkpoint: Vec<u8>,
    delta: bool,
) -> Result<bool, SourceError> {
    let held = Held(Some(Arc::new(page)));
    let payloads = held.page();
    let count = payloads.len();
    let checkpoint = Arc::new((checkpoint, delta));
    // The part of the page appended next: `take` events from `done`; the page's checkpoint goes
    // with its last part, the checkpoint as it stands with the others.
    let (mut done, mut take) = (0, count);
    let mut standing: Option<Arc<(Vec<u8>, bool)>> = None;
    let mut waited = false;
    loop {
        let last = done + take == count;
        let ck = if last {
            checkpoint.clone()
        } else {
            standing
                .get_or_insert_with(|| Arc::new(standing_checkpoint(&ctx.spool, source)))
                .clone()
        };
        let spool = ctx.spool.clone();
        let (p, name) = (payloads.clone(), source.to_owned());
        let result = tokio::task::spawn_blocking(move || {
            let refs: Vec<&[u8]> = p.payloads().skip(done).take(take).collect();
            let (checkpoint, delta) = &*ck;
            if *delta {
                spool.append_batch_delta(&name, &refs, checkpoint)
            } else {
                spool.append_batch(&name, &refs, checkpoint)
            }
        })
        .await
        .unwrap_or_else(|join| {
            Err(SpoolError::Io {
                op: "append to",
                path: ctx.spool.dir().to_owned(),
                source: std::io::Error::other(join.to_string()),
            })
        });
        match result {
            Ok(_) => {
                ctx.stats.spooled.fetch_add(take as u64, Ordering::Relaxed);
                if last {
                    if waited {
                        tracing::info!(message = "Spool has room again; source resumed.", source);
                    }
                    return Ok(true);
                }
                done += take;
                take = count - done;
            }
            // A part over a quarter of the spool might never fit beside the newest segment
            // (never reclaimed): in smaller parts, then wait.
            Err(SpoolError::Full { max, .. })
                if take > 1 && part_bytes(&payloads.ends, done, take) > max / 4 =>
            {
                take = quarter(&payloads.ends, done, take, max);
            }
            Err(SpoolError::Full {
                disk_full, free, ..
            }) => {
                if !waited {
                    if disk_full {
                        tracing::warn!(
                            message = "Disk full: source paused until there is space again; destinations go on delivering.",
                            source,
                            free_bytes = free,
                            spool = %ctx.spool.dir().display()
                        );
                    } else {
                        tracing::warn!(
                            message = "Spool is full; source paused until destinations catch up.",
                            source
                        );
                    }
                    ctx.stats.paused.fetch_add(1, Ordering::Relaxed);
                    waited = true;
                }
                tokio::select! {
                    _ = ctx.cancel.cancelled() => return Ok(false),
                    _ = tokio::time::sleep(Duration::from_millis(500)) => {}
                }
            }
            // This one event and a checkpoint can never fit in the spool: it goes alone.
            Err(SpoolError::BatchTooLarge { .. }) if take == 1 => {
                let payload = payloads.payloads().nth(done).unwrap_or_default();
                let id = crate::event::EventView::decode(payload).map_or("?", |v| v.id);
                reject(
                    ctx,
                    source,
                    "Record rejected: it can never fit in the spool ([spool] max_bytes).",
                    id,
                    payload.len(),
                );
                done += 1;
                take = count - done;
            }
            // Several events: in smaller parts.
            Err(SpoolError::BatchTooLarge { max, .. }) if take > 1 => {
                take = quarter(&payloads.ends, done, take, max);
            }
            Err(error) => {
                return Err(SourceError::Spool {
                    source_name: source.to_owned(),
                    error,
                })
            }
        }
    }
}

/// Bytes of the `take` payloads from `done` (`ends`: where each payload ends).
pub(crate) fn part_bytes(ends: &[usize], done: usize, take: usize) -> u64 {
    let start = done.checked_sub(1).map_or(0, |i| ends[i]);
    (ends[done + take - 1] - start) as u64
}

/// How many of the `take > 1` payloads from `done` to append next: as many as fit in a quarter
/// of the spool's `max` bytes (a segment's size: the newest segment, which is never reclaimed,
/// and such a part always fit together), at least one, at most half of `take`.
pub(crate) fn quarter(ends: &[usize], done: usize, take: usize, max: u64) -> usize {
    let fit = (1..=take)
        .take_while(|&n| part_bytes(ends, done, n) <= max / 4)
        .count();
    fit.clamp(1, take / 2)
}

/// The checkpoint of `source` as it stands in the spool, to append again with the first parts
/// of a page split in parts (re-applying the last full checkpoint or delta changes nothing).
/// A source with none yet gets an empty one, which resuming reads as none.
fn standing_checkpoint(spool: &Spool, source: &str) -> (Vec<u8>, bool) {
    match spool.checkpoint_chain(source) {
        Some(mut chain) if !chain.is_empty() => {
            let delta = chain.len() > 1;
            (chain.pop().unwrap_or_default(), delta)
        }
        _ => (Vec::new(), false),
    }
}
