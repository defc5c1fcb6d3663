//! The `storage_archive` source: diagnostic-setting logs and flow logs archived to an Azure
//! storage account (docs/storage-archives.md), read as their hourly `PT1H.json` blobs grow.
//!
//! Each poll lists, per container, only the hours that can still change: below each folder
//! that holds `y=` hour folders (found by walking the names one level at a time, again every
//! few minutes), the prefix of each hour from the checkpoint's first open hour to now (on a
//! first start the hour of `start_at`; afterwards the previous and the current hour, more after
//! a pause). Every listed blob is read from where the checkpoint says it was left, in ranges
//! of at most [`CHUNK`] bytes (memory stays bounded whatever the blob's size): append blobs of
//! JSON lines up to their last complete line (a partial last line is read once complete), block
//! blobs holding one growing `{"records":[…]}` document (flow logs) up to their last complete
//! record (the new bytes start with `,`). A blob listed shorter than its offset, or with another
//! creation time, was replaced: it is read again from its start, and its records keep their ids
//! (where they sit and what they hold), so a SIEM drops the ones it has.
//!
//! Records become events of the kinds the `eventhubs` source gives the same records
//! (`eventhubs::records::routed_event`); their id, when they carry none of their own, is a hash
//! of the blob, the offset and the record's bytes. Each page of events is spooled with the
//! checkpoint (per blob: offset and creation time) as one batch; blobs of hours no longer
//! listed are forgotten. Records that are not JSON objects are rejected, logged with blob and
//! offset; a missing container, a refused SAS or a missing role is told in words once and makes
//! `/healthz` degraded until it reads again. `siemcast replay` reads whole past hours
//! ([`ArchiveSource::replay_hour`], through `backfill`).

pub mod flows;
pub mod rest;
pub mod split;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::azure::http::origin;
use super::poll::{connect, StartAt};
use super::spec::ArchiveSpec;
use super::{append_page, append_page_delta, SourceContext, SourceError};
use crate::config::{Config, Secret, SourceConfig};
use crate::event::Event;
use rest::{BlobError, Listed, Store};
use split::{blob_hour, floor_hour, hour_folder, HOUR_MS};

/// Bytes read from a blob per request: what a read holds in memory (plus its events), unless
/// one record is larger (then up to [`MAX_READ`]).
pub const CHUNK: u64 = 1 << 20;
/// The longest read: one record of the largest event size and its line end.
const MAX_READ: u64 = crate::event::MAX_EVENT_BYTES as u64 + 2;
/// Events spooled per batch at most (several blobs' records go in one batch).
const BATCH_EVENTS: usize = 1_000;
/// Hour folders are found again this often (new resources, new subscriptions).
const ROOTS_EVERY: Duration = Duration::from_secs(300);
/// Hours listed at most per poll after a long pause (a week): older ones are not read again.
const MAX_HOURS: i64 = 7 * 24;
/// List calls one walk for hour folders may make, so a container of odd names cannot keep the
/// source walking forever.
const MAX_WALK_LISTS: usize = 10_000;
/// Format of the checkpoint this build writes.
const VERSION: u32 = 1;
/// A blob with a partial last line this long after its hour ended is told about (once).
const PARTIAL_AFTER_MS: i64 = 2 * HOUR_MS;

/// Where one blob was left.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlobPos {
    /// Bytes read (up to the last complete line or record).
    #[serde(rename = "o")]
    pub offset: u64,
    /// The blob's `Creation-Time` when it was read.
    #[serde(rename = "c")]
    pub created: String,
    /// The hour it is filed under, ms since the epoch.
    #[serde(rename = "h")]
    pub hour_ms: i64,
}

/// The source's checkpoint, or (with `full` false) what changed since the last full one.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ArchiveCheckpoint {
    pub v: u32,
    pub full: bool,
    /// Hours from this one on are listed at the next poll (ms since the epoch).
    pub from_hour_ms: i64,
    /// Blobs by `container/name`.
    pub blobs: BTreeMap<String, BlobPos>,
    /// Blobs forgotten since the last full checkpoint (deltas only).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub gone: Vec<String>,
}

impl ArchiveCheckpoint {
    /// The checkpoint a chain (a full one, then deltas) adds up to.
    pub fn decode_chain(chain: &[Vec<u8>]) -> Option<ArchiveCheckpoint> {
        let mut out: Option<ArchiveCheckpoint> = None;
        for part in chain {
            if part.is_empty() {
                continue;
            }
            let ck: ArchiveCheckpoint = serde_json::from_slice(part).ok()?;
            if ck.v != VERSION {
                return None;
            }
            match (&mut out, ck.full) {
                (_, true) => out = Some(ck),
                (Some(base), false) => {
                    base.from_hour_ms = ck.from_hour_ms;
                    for g in &ck.gone {
                        base.blobs.remove(g);
                    }
                    base.blobs.extend(ck.blobs);
                }
                (None, false) => return None,
            }
        }
        out
    }
}

/// A SAS query string's problems (read from `sas_token_file`): it must sign `sig`, allow read
/// and list (`sp` with `r` and `l`) and not be expired (`se`). Never shows the text.
pub fn check_sas(text: &str, now_ms: i64) -> Result<(), String> {
    let sas = text.trim().trim_start_matches('?');
    let field = |k: &str| {
        sas.split('&')
            .filter_map(|kv| kv.split_once('='))
            .find(|(key, _)| *key == k)
            .map(|(_, v)| v)
    };
    if sas.is_empty() || sas.contains(char::is_whitespace) || field("sig").is_none() {
        return Err("does not hold a SAS query string (sv=…&sp=rl&…&sig=…)".into());
    }
    if let Some(sp) = field("sp") {
        if !(sp.contains('r') && sp.contains('l')) {
            return Err(format!(
                "the SAS allows \"{sp}\"; reading archives needs read and list (sp=rl)"
            ));
        }
    }
    if let Some(se) = field("se") {
        let decoded = se.replace("%3A", ":").replace("%3a", ":");
        if let Ok(t) = decoded.parse::<jiff::Timestamp>() {
            if t.as_millisecond() <= now_ms {
                return Err(format!(
                    "the SAS expired at {decoded}; make a new one (sas_token_file is read at start)"
                ));
            }
        }
    }
    Ok(())
}

/// A configured `storage_archive` source.
#[derive(Debug)]
pub struct ArchiveSource {
    name: String,
    store: Store,
    containers: Vec<String>,
    prefix: String,
    interval: Duration,
    start: StartAt,
    /// Where records that are not events are kept ([`crate::sources::dead_letter`]).
    dead_letter: std::path::PathBuf,
}

/// What one poll of the source has in hand: the checkpoint, events not yet spooled, and what
/// changed in the checkpoint since the last batch.
struct Poll {
    ck: ArchiveCheckpoint,
    events: Vec<Event>,
    changed: BTreeSet<String>,
    gone: Vec<String>,
    /// Bytes of the deltas appended since the last full checkpoint.
    delta_bytes: usize,
    full_due: bool,
    /// The hours listed moved (or nothing was spooled yet): the checkpoint is due.
    dirty: bool,
    /// A replay (`siemcast replay`): the events kept (time in `[from, to]` ms, or none) and
    /// the replay's own checkpoint, written instead of the source's.
    replay: Option<Replay>,
}

/// What a replay of hours of the archive keeps and has done.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Replay {
    #[serde(skip)]
    pub from_ms: i64,
    #[serde(skip)]
    pub to_ms: i64,
    /// Hours read whole (`container@hour ms`).
    pub replayed: BTreeSet<String>,
}

/// What the source remembers between polls (not in the checkpoint).
#[derive(Default)]
struct Memory {
    /// Hour folders of each container, and when they were found.
    roots: HashMap<String, (Instant, Vec<String>)>,
    /// Problems told once (container and error code), until the container reads again.
    told: BTreeSet<(String, String)>,
    /// Blobs whose partial last line was told about (name, offset).
    partial_told: BTreeSet<(String, u64)>,
    /// Whether hours past a week were told about.
    week_told: bool,
}

impl ArchiveSource {
    pub fn from_spec(
        cfg: &SourceConfig,
        config: &Config,
        spec: ArchiveSpec,
    ) -> Result<ArchiveSource, SourceError> {
        let fail = |message: String| SourceError::Config {
            source_name: cfg.name.clone(),
            message,
        };
        let sas = match &spec.sas_token_file {
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|e| {
                    fail(format!(
                        "sas_token_file {} cannot be read: {e}",
                        path.display()
                    ))
                })?;
                Some(Secret::new(text.trim().trim_start_matches('?').to_owned()))
            }
            None => None,
        };
        let (_, start, mut client) =
            match connect(cfg, config, |e| &e.management, rest::VERSION_HEADERS) {
                Ok(c) => c,
                // A SAS needs no identity: a client without one (no token is ever asked for).
                Err(_) if sas.is_some() => {
                    let mut azure = config.azure.clone();
                    azure.tenant_id = Some("sas".into());
                    azure.client_id = Some("sas".into());
                    azure.managed_identity = true;
                    let config = Config {
                        azure,
                        ..config.clone()
                    };
                    connect(cfg, &config, |e| &e.management, rest::VERSION_HEADERS)?
                }
                Err(e) => return Err(e),
            };
        client.origin = origin(&spec.endpoint);
        client.scope = rest::STORAGE_SCOPE.to_owned();
        let rates = config
            .azure_for(cfg)
            .map(|a| a.rate_limits.clone())
            .unwrap_or_default();
        client.limit = Some(crate::sources::azure::limits::Limit::for_storage(&rates));
        Ok(ArchiveSource {
            name: cfg.name.clone(),
            store: Store {
                client,
                endpoint: spec.endpoint,
                sas,
            },
            containers: spec.containers,
            prefix: spec.prefix,
            interval: cfg.interval.0,
            start,
            dead_letter: crate::sources::dead_letter::path(cfg, config),
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Polls until cancelled.
    pub async fn run(mut self, ctx: SourceContext) -> Result<(), SourceError> {
        self.store.client.stats = ctx.stats.clone();
        ctx.stats.freshness.started(Some(self.interval));
        let chain = ctx.spool.checkpoint_chain(&self.name);
        let resumed = chain.as_deref().and_then(ArchiveCheckpoint::decode_chain);
        if chain.is_some_and(|c| c.iter().any(|p| !p.is_empty())) && resumed.is_none() {
            tracing::warn!(message = "Checkpoint not readable by this version; starting from start_at.", source = %self.name);
        }
        let was_resumed = resumed.is_some();
        let now = now_ms();
        let ck = resumed.unwrap_or_else(|| ArchiveCheckpoint {
            v: VERSION,
            full: true,
            from_hour_ms: floor_hour(self.start.resolve(now)),
            ..ArchiveCheckpoint::default()
        });
        tracing::info!(
            message = "Source started.",
            source = %self.name,
            kind = "storage_archive",
            containers = self.containers.len(),
            resumed = was_resumed
        );
        let mut poll = Poll {
            ck,
            events: Vec::new(),
            changed: BTreeSet::new(),
            gone: Vec::new(),
            delta_bytes: 0,
            full_due: true,
            dirty: true,
            replay: None,
        };
        let mut memory = Memory::default();
        loop {
            match self.poll_once(&mut poll, &mut memory, &ctx).await? {
                Some(true) => ctx.stats.freshness.succeeded(),
                Some(false) => {}
                None => break,
            }
            tokio::select! {
                _ = ctx.cancel.cancelled() => break,
                _ = tokio::time::sleep(self.interval) => {}
            }
        }
        tracing::info!(message = "Source stopped.", source = %self.name);
        Ok(())
    }

    pub fn containers(&self) -> &[String] {
        &self.containers
    }

    /// Replays hour `hour_ms` of `container` (`siemcast replay`): every blob of the hour below
    /// every hour folder, read from its start, its events with a time in `[replay.from_ms,
    /// replay.to_ms]` (or none) spooled, then the hour marked done in the replay's checkpoint.
    pub(crate) async fn replay_hour(
        &self,
        container: &str,
        hour_ms: i64,
        replay: &mut Replay,
        ctx: &SourceContext,
    ) -> Result<super::poll::Outcome, SourceError> {
        use super::poll::Outcome;
        let mut memory = Memory::default();
        let mut poll = Poll {
            ck: ArchiveCheckpoint::default(),
            events: Vec::new(),
            changed: BTreeSet::new(),
            gone: Vec::new(),
            delta_bytes: 0,
            full_due: false,
            dirty: false,
            replay: Some(replay.clone()),
        };
        let failed = |e: BlobError| {
            if matches!(e, BlobError::Cancelled) {
                return Outcome::Cancelled;
            }
            tracing::warn!(message = "Hour not read completely; it is read again.", source = %self.name, container, hour = %super::poll::filter_time(hour_ms), error = %e);
            Outcome::Incomplete
        };
        let roots = match self.roots(container, &mut memory, ctx).await {
            Ok(r) => r,
            Err(e) if e.code() == Some("ContainerNotFound") => Vec::new(),
            Err(e) => return Ok(failed(e)),
        };
        for root in &roots {
            let prefix = format!("{root}{}", hour_folder(hour_ms));
            match self
                .read_prefix(container, &prefix, &mut poll, &mut memory, ctx)
                .await
            {
                Ok(true) => {}
                Ok(false) => return Ok(Outcome::Cancelled),
                Err(SourceOrBlob::Source(e)) => return Err(e),
                Err(SourceOrBlob::Blob(e)) => return Ok(failed(e)),
            }
        }
        if let Some(r) = &mut poll.replay {
            r.replayed.insert(format!("{container}@{hour_ms}"));
        }
        if !self.flush(&mut poll, ctx).await? {
            return Ok(Outcome::Cancelled);
        }
        *replay = poll.replay.unwrap_or_default();
        Ok(Outcome::Complete)
    }

    /// One poll of every container: `Some(complete)`, or `None` when cancelled.
    async fn poll_once(
        &self,
        poll: &mut Poll,
        memory: &mut Memory,
        ctx: &SourceContext,
    ) -> Result<Option<bool>, SourceError> {
        let now = now_ms();
        let last_hour = floor_hour(now);
        let mut first_hour = poll.ck.from_hour_ms.min(last_hour);
        if last_hour - first_hour > MAX_HOURS * HOUR_MS {
            let oldest = last_hour - MAX_HOURS * HOUR_MS;
            if !std::mem::replace(&mut memory.week_told, true) {
                tracing::warn!(message = "Hours older than a week are not listed.", source = %self.name, from = %super::poll::filter_time(first_hour), now_from = %super::poll::filter_time(oldest));
            }
            first_hour = oldest;
        }
        let mut complete = true;
        // Whether the hours listed may move on: every container read, or missing (a container
        // created later starts in the current hour, which is listed anyway).
        let mut advance = true;
        for container in &self.containers {
            let roots = match self.roots(container, memory, ctx).await {
                Ok(r) => r,
                Err(BlobError::Cancelled) => return Ok(None),
                Err(e) => {
                    advance &= e.code() == Some("ContainerNotFound");
                    self.trouble(container, &e, memory, ctx);
                    complete = false;
                    continue;
                }
            };
            let mut ok = true;
            'hours: for root in &roots {
                let mut hour = first_hour;
                while hour <= last_hour {
                    let prefix = format!("{root}{}", hour_folder(hour));
                    match self
                        .read_prefix(container, &prefix, poll, memory, ctx)
                        .await
                    {
                        Ok(true) => {}
                        Ok(false) => return Ok(None),
                        Err(SourceOrBlob::Source(e)) => return Err(e),
                        Err(SourceOrBlob::Blob(BlobError::Cancelled)) => return Ok(None),
                        Err(SourceOrBlob::Blob(e)) => {
                            self.trouble(container, &e, memory, ctx);
                            ok = false;
                            break 'hours;
                        }
                    }
                    hour += HOUR_MS;
                }
            }
            if ok {
                let before = memory.told.len();
                memory.told.retain(|(c, _)| c != container);
                if memory.told.len() < before {
                    tracing::info!(message = "Container reads again.", source = %self.name, container = %container);
                }
            }
            complete &= ok;
            advance &= ok;
        }
        if advance {
            // The previous hour can still be appended to; older hours are forgotten.
            let next_from = floor_hour(now - HOUR_MS).max(poll.ck.from_hour_ms);
            if next_from != poll.ck.from_hour_ms {
                poll.ck.from_hour_ms = next_from;
                poll.dirty = true;
                let old: Vec<String> = poll
                    .ck
                    .blobs
                    .iter()
                    .filter(|(_, p)| p.hour_ms < next_from)
                    .map(|(k, _)| k.clone())
                    .collect();
                for k in old {
                    poll.ck.blobs.remove(&k);
                    poll.changed.remove(&k);
                    poll.gone.push(k);
                }
                poll.full_due |= !poll.gone.is_empty();
            }
        }
        // What is in hand, with the checkpoint (also when only the hour moved).
        let moved = poll.dirty || !poll.gone.is_empty() || !poll.changed.is_empty();
        if (moved || !poll.events.is_empty()) && !self.flush(poll, ctx).await? {
            return Ok(None);
        }
        Ok(Some(complete))
    }

    /// The folders of `container` (below the configured prefix) that hold `y=` hour folders.
    async fn roots(
        &self,
        container: &str,
        memory: &mut Memory,
        ctx: &SourceContext,
    ) -> Result<Vec<String>, BlobError> {
        if let Some((at, roots)) = memory.roots.get(container) {
            if at.elapsed() < ROOTS_EVERY {
                return Ok(roots.clone());
            }
        }
        let mut roots = BTreeSet::new();
        let mut todo = vec![self.prefix.clone()];
        let mut lists = 0;
        while let Some(prefix) = todo.pop() {
            let mut marker: Option<String> = None;
            loop {
                lists += 1;
                if lists > MAX_WALK_LISTS {
                    tracing::warn!(message = "Too many folders to walk for hour folders; the rest is read at the next walk.", source = %self.name, container, lists = MAX_WALK_LISTS);
                    todo.clear();
                    break;
                }
                let page = self
                    .store
                    .list(container, &prefix, true, marker.as_deref(), &ctx.cancel)
                    .await?;
                for p in page.prefixes {
                    let last = p.trim_end_matches('/').rsplit('/').next().unwrap_or("");
                    if last.starts_with("y=") {
                        roots.insert(p[..p.len() - last.len() - 1].to_owned());
                    } else {
                        todo.push(p);
                    }
                }
                match page.next {
                    Some(m) => marker = Some(m),
                    None => break,
                }
            }
        }
        let roots: Vec<String> = roots.into_iter().collect();
        tracing::debug!(message = "Hour folders found.", source = %self.name, container, folders = roots.len(), lists);
        memory
            .roots
            .insert(container.to_owned(), (Instant::now(), roots.clone()));
        Ok(roots)
    }

    /// Lists the blobs below `prefix` and reads each; `Ok(false)` when cancelled.
    async fn read_prefix(
        &self,
        container: &str,
        prefix: &str,
        poll: &mut Poll,
        memory: &mut Memory,
        ctx: &SourceContext,
    ) -> Result<bool, SourceOrBlob> {
        let mut marker: Option<String> = None;
        loop {
            let page = self
                .store
                .list(container, prefix, false, marker.as_deref(), &ctx.cancel)
                .await?;
            for blob in &page.blobs {
                if !self.read_blob(container, blob, poll, memory, ctx).await? {
                    return Ok(false);
                }
            }
            match page.next {
                Some(m) => marker = Some(m),
                None => return Ok(true),
            }
        }
    }

    /// Reads what is new in one listed blob; `Ok(false)` when cancelled.
    async fn read_blob(
        &self,
        container: &str,
        blob: &Listed,
        poll: &mut Poll,
        memory: &mut Memory,
        ctx: &SourceContext,
    ) -> Result<bool, SourceOrBlob> {
        let Some(hour_ms) = blob_hour(&blob.name) else {
            return Ok(true);
        };
        let key = format!("{container}/{}", blob.name);
        let mut offset = match poll.ck.blobs.get(&key) {
            None => 0,
            Some(p) if blob.length < p.offset || !same_time(&p.created, &blob.created) => {
                tracing::warn!(
                    message = "Blob replaced (shorter than what was read, or created again); read again from its start. Its records keep their ids, so a SIEM drops the ones it has.",
                    source = %self.name,
                    container,
                    blob = %blob.name,
                    read_up_to = p.offset,
                    length = blob.length
                );
                poll.ck.blobs.insert(
                    key.clone(),
                    BlobPos {
                        offset: 0,
                        created: blob.created.clone(),
                        hour_ms,
                    },
                );
                poll.changed.insert(key.clone());
                0
            }
            Some(p) => p.offset,
        };
        // A flow log's document read up to its `]}` tail: nothing new.
        if blob.block_blob && offset > 0 && blob.length <= offset + 2 {
            return Ok(true);
        }
        let mut skipping = false;
        // Bytes per read: CHUNK, doubled while one record does not fit (up to an event's limit).
        let mut want = CHUNK;
        while offset < blob.length {
            let to = blob.length.min(offset + want);
            let range = match self
                .store
                .read(container, &blob.name, offset, to, &ctx.cancel)
                .await
            {
                Ok(r) => r,
                Err(e) if e.code() == Some("BlobNotFound") => {
                    tracing::info!(message = "Blob deleted since it was listed (retention); forgotten.", source = %self.name, container, blob = %blob.name);
                    if poll.ck.blobs.remove(&key).is_some() {
                        poll.changed.remove(&key);
                        poll.gone.push(key);
                    }
                    return Ok(true);
                }
                // Shorter now than when listed: replaced in between; the next poll sees it.
                Err(e) if e.code() == Some("InvalidRange") => return Ok(true),
                Err(e) => return Err(e.into()),
            };
            if range
                .created
                .as_deref()
                .is_some_and(|c| !blob.created.is_empty() && !same_time(c, &blob.created))
            {
                // Replaced between the listing and the read: the next listing tells.
                return Ok(true);
            }
            let bytes = &range.bytes;
            if bytes.is_empty() {
                break;
            }
            let used = if skipping {
                match bytes.iter().position(|&b| b == b'\n') {
                    Some(i) => {
                        skipping = false;
                        i + 1
                    }
                    None => bytes.len(),
                }
            } else if blob.block_blob {
                match split::document_records(bytes, offset) {
                    Ok((records, used)) => {
                        for (at, record) in records {
                            self.record(container, &blob.name, at, record, poll, ctx);
                        }
                        if used == 0 && bytes.len() as u64 == want && want < MAX_READ {
                            // One record larger than the read: read more at once.
                            want = (want * 2).min(MAX_READ);
                            continue;
                        }
                        used
                    }
                    Err(why) => {
                        self.reject((container, &blob.name, offset), &why, bytes, ctx);
                        // Nothing more of this document can be read: skip to its end.
                        (range.total.saturating_sub(offset)) as usize
                    }
                }
            } else {
                let (lines, used) = split::lines(bytes, offset);
                for (at, line) in lines {
                    self.record(container, &blob.name, at, line, poll, ctx);
                }
                if used == 0 && bytes.len() as u64 == want && want < MAX_READ {
                    // One line longer than the read: read more at once.
                    want = (want * 2).min(MAX_READ);
                    continue;
                } else if used == 0 && bytes.len() as u64 >= MAX_READ {
                    // A line longer than an event may be: rejected, skipped to its end.
                    // Its first MAX_READ bytes are kept; the rest is skipped.
                    self.reject(
                        (container, &blob.name, offset),
                        &format!("a line longer than {MAX_READ} bytes (its first {MAX_READ} bytes are kept here)"),
                        bytes,
                        ctx,
                    );
                    skipping = true;
                    bytes.len()
                } else {
                    used
                }
            };
            if used == 0 {
                // A partial last line (or record): read once complete.
                let key = (format!("{container}/{}", blob.name), offset);
                // (A flow log's document is committed whole: what is left is its tail.)
                if !blob.block_blob
                    && now_ms() > hour_ms + HOUR_MS + PARTIAL_AFTER_MS
                    && memory.partial_told.insert(key)
                {
                    tracing::warn!(message = "Blob ends with an incomplete record long after its hour; it is read when completed, never before.", source = %self.name, container, blob = %blob.name, offset, length = blob.length);
                }
                break;
            }
            offset += used as u64;
            want = CHUNK;
            poll.ck.blobs.insert(
                key.clone(),
                BlobPos {
                    offset,
                    created: blob.created.clone(),
                    hour_ms,
                },
            );
            poll.changed.insert(key.clone());
            if poll.events.len() >= BATCH_EVENTS && !self.flush(poll, ctx).await? {
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// One record read at blob offset `at`: an event, or rejected in words.
    fn record(
        &self,
        container: &str,
        blob: &str,
        at: u64,
        bytes: &[u8],
        poll: &mut Poll,
        ctx: &SourceContext,
    ) {
        ctx.stats.polled.fetch_add(1, Ordering::Relaxed);
        match record_events(&self.name, container, blob, at, bytes) {
            Ok(events) => match &poll.replay {
                Some(r) => poll.events.extend(
                    events
                        .into_iter()
                        .filter(|e| e.time_ms.is_none_or(|t| (r.from_ms..=r.to_ms).contains(&t))),
                ),
                None => poll.events.extend(events),
            },
            Err(why) => self.reject((container, blob, at), &why, bytes, ctx),
        }
    }

    /// A record that is no event, at `(container, blob, offset)`: counted, logged and kept in
    /// the dead-letter file with where it was read and why.
    fn reject(
        &self,
        (container, blob, offset): (&str, &str, u64),
        why: &str,
        payload: &[u8],
        ctx: &SourceContext,
    ) {
        use crate::sources::dead_letter;
        ctx.stats.rejected.fetch_add(1, Ordering::Relaxed);
        let fields = serde_json::json!({
            "source": self.name,
            "container": container,
            "blob": blob,
            "offset": offset,
            "error": why,
        });
        let file = self.dead_letter.display();
        match dead_letter::append(&self.dead_letter, &[dead_letter::line(fields, payload)]) {
            Ok(()) => {
                tracing::warn!(message = "Record rejected: it cannot be read as a JSON record; kept in the dead-letter file, and the rest of the blob is read.", source = %self.name, container, blob, offset, reason = why, %file)
            }
            Err(e) => {
                tracing::error!(message = "Record rejected, and the dead-letter file cannot be written; the record is in this line only.", source = %self.name, container, blob, offset, reason = why, %file, error = %e, record = %String::from_utf8_lossy(payload))
            }
        }
    }

    /// Tells a container's trouble in words, once until it reads again; `/healthz` says it.
    fn trouble(&self, container: &str, e: &BlobError, memory: &mut Memory, ctx: &SourceContext) {
        let code = e.code().unwrap_or("").to_owned();
        let what = match code.as_str() {
            "ContainerNotFound" => "The container does not exist (yet): diagnostic settings create it with the first record. Check the name and the account; siemcast lists it again at every poll.",
            "AuthenticationFailed" => "The storage account refused the credential (an expired or wrongly signed SAS, or a token for another tenant); nothing of the container can be read until it is replaced.",
            "AuthorizationPermissionMismatch" | "AuthorizationFailure" => "The credential may not list or read the container: give the app the Storage Blob Data Reader role on the account or container, or make a SAS with read and list (sp=rl, srt=co).",
            _ => "The container could not be read completely; it is read again at the next poll from where it was left.",
        };
        ctx.stats
            .freshness
            .failed(&format!("container {container}: {e}"));
        if memory.told.insert((container.to_owned(), code)) {
            tracing::error!(message = what, source = %self.name, container, error = %e);
        } else {
            tracing::debug!(message = "Container still not readable.", source = %self.name, container, error = %e);
        }
    }

    /// Spools the events in hand with the checkpoint (a delta, or the whole checkpoint when it
    /// is due); `Ok(false)` when cancelled first.
    async fn flush(&self, poll: &mut Poll, ctx: &SourceContext) -> Result<bool, SourceError> {
        let events = std::mem::take(&mut poll.events);
        if let Some(r) = &poll.replay {
            let bytes = serde_json::to_vec(r).expect("a checkpoint serializes");
            return append_page(ctx, &self.name, events, bytes).await;
        }
        let full = poll.full_due || poll.delta_bytes > (64 << 10).max(poll.ck.blobs.len() * 160);
        let ok = if full {
            poll.ck.full = true;
            let bytes = serde_json::to_vec(&poll.ck).expect("a checkpoint serializes");
            append_page(ctx, &self.name, events, bytes).await?
        } else {
            let delta = ArchiveCheckpoint {
                v: VERSION,
                full: false,
                from_hour_ms: poll.ck.from_hour_ms,
                blobs: poll
                    .changed
                    .iter()
                    .filter_map(|k| Some((k.clone(), poll.ck.blobs.get(k)?.clone())))
                    .collect(),
                gone: poll.gone.clone(),
            };
            let bytes = serde_json::to_vec(&delta).expect("a checkpoint serializes");
            poll.delta_bytes += bytes.len();
            append_page_delta(ctx, &self.name, events, bytes).await?
        };
        if ok {
            if full {
                poll.delta_bytes = 0;
                poll.full_due = false;
            }
            poll.changed.clear();
            poll.gone.clear();
            poll.dirty = false;
        }
        Ok(ok)
    }
}

/// An error of a blob read, or of the spool.
enum SourceOrBlob {
    Source(SourceError),
    Blob(BlobError),
}

impl From<BlobError> for SourceOrBlob {
    fn from(e: BlobError) -> Self {
        SourceOrBlob::Blob(e)
    }
}

impl From<SourceError> for SourceOrBlob {
    fn from(e: SourceError) -> Self {
        SourceOrBlob::Source(e)
    }
}

/// The events of one record read at `offset` of `container/blob`: one, of the kind the
/// `eventhubs` source gives the same record, or one per tuple of a flow log; why not when it
/// cannot be read (not UTF-8, too large, not a JSON object, a flow log of another shape).
pub fn record_events(
    source: &str,
    container: &str,
    blob: &str,
    offset: u64,
    bytes: &[u8],
) -> Result<Vec<Event>, String> {
    let text = std::str::from_utf8(bytes)
        .map_err(|_| "not UTF-8 text".to_owned())?
        .trim();
    if text.len() > crate::event::MAX_EVENT_BYTES {
        return Err("larger than the event size limit".into());
    }
    if flows::maybe_flow(bytes) {
        if let Ok(record) = serde_json::from_str::<serde_json::Value>(text) {
            let id = record_id(container, blob, offset, bytes);
            let place = flows::Place {
                container,
                blob,
                offset,
                id: &id,
            };
            match flows::tuple_events(source, &record, place) {
                Some(Ok(events)) => return Ok(events),
                Some(Err(why)) => return Err(format!("a flow log record: {why}")),
                None => {}
            }
        }
    }
    let id = || record_id(container, blob, offset, bytes);
    let mut place = String::from(",\"container\":");
    place.push_str(&serde_json::Value::from(container).to_string());
    place.push_str(",\"blob\":");
    place.push_str(&serde_json::Value::from(blob).to_string());
    place.push_str(&format!(",\"offset\":{offset}"));
    crate::sources::eventhubs::records::routed_event(source, text, id, &place)
        .map(|ev| vec![ev])
        .ok_or_else(|| "not a JSON object".to_owned())
}

/// The id of a record carrying none of its own: `sa-` and 24 hex digits of a hash of where it
/// sits (container, blob, offset) and what it holds, so reading it again gives the same id and
/// another record at the same place (a replaced blob) another one.
pub fn record_id(container: &str, blob: &str, offset: u64, bytes: &[u8]) -> String {
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
    for part in [container.as_bytes(), b"\0", blob.as_bytes(), b"\0"] {
        ctx.update(part);
    }
    ctx.update(&offset.to_be_bytes());
    ctx.update(bytes);
    crate::sources::eventhubs::records::digest_id("sa-", &ctx.finish())
}

/// Whether two creation times (RFC 1123, as the service writes them) are the same instant;
/// compared as text when one does not parse.
fn same_time(a: &str, b: &str) -> bool {
    let parse = |t: &str| jiff::fmt::rfc2822::parse(t.trim()).map(|z| z.timestamp());
    match (parse(a), parse(b)) {
        (Ok(x), Ok(y)) => x == y,
        _ => a == b,
    }
}

fn now_ms() -> i64 {
    jiff::Timestamp::now().as_millisecond()
}

#[cfg(test)]
mod tests;
