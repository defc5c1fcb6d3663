//! The `files` source: reads a file, or a directory of files in name order, holding events as
//! NDJSON, a JSON array or a `{"value":[…]}` / `{"records":[…]}` envelope (this includes the
//! folders that Azure Log Integration wrote). Its checkpoint records, per file, how far it has
//! read and which file that is (device, inode, fingerprint of the first bytes), so a restart
//! neither repeats nor skips, files that grow are read from where it stopped, and rotation
//! (rename, copytruncate) neither repeats nor loses what was written (see [`identity`]).

mod identity;
mod lines;
mod tracker;

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{Read as _, Seek as _, SeekFrom};
use std::os::unix::fs::MetadataExt as _;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use self::identity::Listed;
use self::lines::Line;
use self::tracker::Tracker;
use super::{append_encoded, EncodedPage, SourceContext, SourceError};
use crate::config::SourceConfig;
use crate::event::{self, Event, EventKind, Item};

/// The checkpoint format this version writes. Version 1 had no file identity (`dev`, `ino`,
/// `fp_len`, `fp`); its entries are still read, and matched to files by name once.
const CHECKPOINT_VERSION: u32 = 2;

/// Open handles kept between passes, so that a file renamed out of the folder or deleted is
/// still read to its end. The most recently read files keep theirs.
const MAX_HELD: usize = 256;

/// Names of rotated copies that are compressed: not read (see the README's rotation schemes).
const COMPRESSED: [&str; 8] = ["gz", "tgz", "bz2", "xz", "zst", "zip", "lz4", "z"];

/// A configured `files` source.
#[derive(Debug)]
pub struct FilesSource {
    name: String,
    path: PathBuf,
    kind: EventKind,
    interval: Duration,
    batch_size: usize,
    /// The longest record taken (an NDJSON line without its newline, or an item's JSON); a
    /// longer one is skipped alone. [`event::MAX_EVENT_BYTES`] except in tests.
    max_event: usize,
}

/// How far one file has been read, and which file that is.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileProgress {
    /// Bytes fully read. Equal to the file's length when it is done.
    pub offset: u64,
    /// For whole-document files (array or envelope): items already emitted from the document.
    #[serde(default)]
    pub items: u64,
    /// For NDJSON files: lines read (for the line numbers of error messages).
    #[serde(default)]
    pub lines: u64,
    /// `offset` is inside an NDJSON line over the size limit, which is skipped up to its
    /// newline (it was counted and logged when it was found).
    #[serde(default, skip_serializing_if = "is_false")]
    pub skipping: bool,
    /// Device and inode number of the file (0 in version 1 checkpoints).
    #[serde(default)]
    pub dev: u64,
    #[serde(default)]
    pub ino: u64,
    /// CRC-32C of the file's first `fp_len` bytes (at most 1 KiB).
    #[serde(default)]
    pub fp_len: u32,
    #[serde(default)]
    pub fp: u32,
}

fn is_false(b: &bool) -> bool {
    !*b
}

/// The checkpoint this source writes with every batch.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FilesCheckpoint {
    pub version: u32,
    /// Keyed by the file's path relative to the configured path, as last seen.
    pub files: BTreeMap<String, FileProgress>,
}

impl FilesCheckpoint {
    fn decode(bytes: &[u8]) -> Option<Self> {
        serde_json::from_slice(bytes).ok()
    }

    fn encode(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }
}

/// Items of one file that could not be read as events, told in one warning per pass.
#[derive(Debug, Default)]
struct Unreadable {
    count: u64,
    /// The first one's reason, with its line.
    first: Option<String>,
}

impl Unreadable {
    fn add(&mut self, reason: impl FnOnce() -> String) {
        self.count += 1;
        if self.first.is_none() {
            self.first = Some(reason());
        }
    }

    fn merge(&mut self, other: Unreadable) {
        self.count += other.count;
        if self.first.is_none() {
            self.first = other.first;
        }
    }
}

/// One page ready to append: its events and where the file stands after it.
#[derive(Debug)]
struct Page {
    /// The page's events, encoded for the spool.
    events: EncodedPage,
    /// Items in this page that could not be read as events (told together, per file).
    unreadable: Unreadable,
    /// NDJSON lines over the size limit skipped in this page (each told when found).
    oversized: u64,
    progress: FileProgress,
}

/// The input as listed in one pass.
#[derive(Debug, Default)]
struct Listing {
    /// (key, path) of the files to read, in name order.
    files: Vec<(String, PathBuf)>,
    /// Symbolic links in the folder: not followed.
    symlinks: Vec<String>,
    /// Compressed files in the folder: not read.
    compressed: Vec<String>,
    /// The configured path is a file, not a folder (or was, and is being rotated).
    single: bool,
}

/// How reading a file ended.
#[derive(Debug)]
enum Read {
    /// Read to its end; this many events spooled.
    Done(u64),
    /// An I/O error (logged); tried again at the next pass.
    Failed,
    Cancelled,
}

fn is_compressed(name: &str) -> bool {
    name.rsplit_once('.')
        .is_some_and(|(_, ext)| COMPRESSED.iter().any(|c| ext.eq_ignore_ascii_case(c)))
}

impl FilesSource {
    /// A files source reading `path` (already resolved) for events of `kind`.
    pub fn from_config(cfg: &SourceConfig, path: PathBuf, kind: EventKind) -> Self {
        Self {
            name: cfg.name.clone(),
            path,
            kind,
            interval: cfg.interval.0,
            batch_size: cfg.batch_size.max(1),
            max_event: event::MAX_EVENT_BYTES,
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Polls the path every `interval` until cancelled.
    pub async fn run(self, ctx: SourceContext) -> Result<(), SourceError> {
        let mut checkpoint = ctx
            .spool
            .checkpoint(&self.name)
            .and_then(|b| FilesCheckpoint::decode(&b))
            .unwrap_or_default();
        checkpoint.version = CHECKPOINT_VERSION;
        tracing::info!(
            message = "Source started.",
            source = %self.name,
            path = %self.path.display(),
            files_known = checkpoint.files.len()
        );
        let mut tracker = Tracker::new(&self.name);
        // Judged healthy while it runs: a folder with nothing new is not a failure.
        ctx.stats.freshness.started(None);
        let mut missing_logged = false;
        loop {
            match self.list_files(tracker.path_was_file) {
                Ok(listing) => {
                    missing_logged = false;
                    tracker.path_was_file = listing.single;
                    if !self
                        .scan(listing, &mut checkpoint, &mut tracker, &ctx)
                        .await?
                    {
                        break;
                    }
                    ctx.stats.freshness.succeeded();
                }
                Err(error) => {
                    ctx.stats
                        .freshness
                        .failed(&format!("cannot list {}: {error}", self.path.display()));
                    if !missing_logged {
                        tracing::warn!(message = "Cannot list input files; will retry.", source = %self.name, path = %self.path.display(), %error);
                        missing_logged = true;
                    }
                }
            }
            tokio::select! {
                _ = ctx.cancel.cancelled() => break,
                _ = tokio::time::sleep(self.interval) => {}
            }
        }
        tracing::info!(message = "Source stopped.", source = %self.name);
        Ok(())
    }

    /// The files to read, in name order, and the entries of a folder that are not read.
    /// `was_file`: the path was a file at the last pass (see [`Tracker::path_was_file`]).
    fn list_files(&self, was_file: bool) -> std::io::Result<Listing> {
        let mut listing = Listing::default();
        let meta = match std::fs::metadata(&self.path) {
            Ok(meta) => meta,
            // The configured file renamed and not created again yet: nothing to list now; the
            // renamed one is read to its end from its open handle.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && was_file => {
                listing.single = true;
                return Ok(listing);
            }
            Err(e) => return Err(e),
        };
        if meta.is_file() {
            let key = self
                .path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            listing.files.push((key, self.path.clone()));
            listing.single = true;
            return Ok(listing);
        }
        for entry in std::fs::read_dir(&self.path)? {
            let entry = entry?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.starts_with('.') {
                continue;
            }
            let kind = entry.file_type()?;
            if kind.is_symlink() {
                listing.symlinks.push(name);
            } else if !kind.is_file() {
                continue;
            } else if is_compressed(&name) {
                listing.compressed.push(name);
            } else {
                listing.files.push((name, entry.path()));
            }
        }
        listing.files.sort();
        Ok(listing)
    }

    /// Reads everything new: first the rest of files renamed away or deleted since the last
    /// pass, then every listed file that changed, in name order. False when cancelled.
    async fn scan(
        &self,
        listing: Listing,
        checkpoint: &mut FilesCheckpoint,
        tracker: &mut Tracker,
        ctx: &SourceContext,
    ) -> Result<bool, SourceError> {
        tracker.pass += 1;
        tracker.tell_skipped(&listing);
        let listed: Vec<Listed> = listing
            .files
            .into_iter()
            .filter_map(|(key, path)| {
                // Gone since it was listed: seen (or not) at the next pass.
                let meta = std::fs::metadata(&path).ok()?;
                Some(Listed {
                    key,
                    path,
                    id: (meta.dev(), meta.ino()),
                    len: meta.len(),
                    mtime: meta.modified().ok(),
                })
            })
            .collect();
        let old = std::mem::take(&mut checkpoint.files);
        let plan = identity::plan(&self.name, old, &listed, tracker);
        checkpoint.files = plan.files;
        for (key, entry) in plan.gone {
            let Some(held) = tracker.held.remove(&(entry.dev, entry.ino)) else {
                tracing::debug!(message = "Input file is gone; forgotten.", source = %self.name, file = %key);
                continue;
            };
            // Renamed out of the folder or deleted: what it holds past the offset is read
            // from the handle still open. Its progress is not recorded: once closed, that file
            // cannot be found again.
            match self
                .read_file(&key, &held.file, entry, false, checkpoint, ctx)
                .await?
            {
                Read::Cancelled => return Ok(false),
                Read::Done(events) => {
                    tracing::info!(message = "Input file was renamed away or deleted; read the rest of it from the file still open.", source = %self.name, file = %key, events);
                }
                Read::Failed => {}
            }
        }
        for (i, start) in plan.read {
            if ctx.cancel.is_cancelled() {
                return Ok(false);
            }
            let listed = &listed[i];
            let transient;
            let file = if tracker.held.contains_key(&listed.id) {
                &tracker.held[&listed.id].file
            } else {
                match tracker.open(listed) {
                    Some(f) => {
                        transient = f;
                        &transient
                    }
                    None => continue,
                }
            };
            match self
                .read_file(&listed.key, file, start, true, checkpoint, ctx)
                .await?
            {
                Read::Cancelled => return Ok(false),
                Read::Done(_) => {
                    tracker.done.insert(listed.id, (listed.len, listed.mtime));
                }
                Read::Failed => {}
            }
        }
        tracker.end_pass(&listed);
        Ok(true)
    }

    /// Reads `file` from `start` to its end, appending a page at a time; with `record`, each
    /// page's checkpoint holds the file's new progress under `key`.
    async fn read_file(
        &self,
        key: &str,
        file: &File,
        start: FileProgress,
        record: bool,
        checkpoint: &mut FilesCheckpoint,
        ctx: &SourceContext,
    ) -> Result<Read, SourceError> {
        let failed = |error: std::io::Error| {
            tracing::warn!(message = "Cannot read input file; will retry.", source = %self.name, file = %key, %error);
            Read::Failed
        };
        // One JSON document is read whole; NDJSON is streamed a page at a time, so memory
        // stays bounded by the batch size and the event size limit whatever the file's size.
        let single = (&*file)
            .seek(SeekFrom::Start(0))
            .and_then(|_| lines::is_single_document(file, self.max_event));
        let single = match single {
            Ok(s) => s,
            Err(error) => return Ok(failed(error)),
        };
        let mut whole_pages = Vec::new();
        let mut lines = None;
        if single {
            let mut data = Vec::new();
            let read = (&*file)
                .seek(SeekFrom::Start(0))
                .and_then(|_| (&*file).read_to_end(&mut data));
            if let Err(error) = read {
                return Ok(failed(error));
            }
            whole_pages = self.pages(key, &data, start);
            whole_pages.reverse();
        } else {
            let mut reader = std::io::BufReader::with_capacity(1 << 20, file);
            if let Err(error) = reader.seek(SeekFrom::Start(start.offset)) {
                return Ok(failed(error));
            }
            lines = Some((reader, start));
        }
        let mut unreadable = Unreadable::default();
        let mut events = 0;
        let mut outcome = None;
        while outcome.is_none() {
            let page = match &mut lines {
                None => whole_pages.pop(),
                Some((reader, at)) => match self.next_lines_page(key, reader, *at) {
                    Ok(p) => p,
                    Err(error) => {
                        outcome = Some(failed(error));
                        None
                    }
                },
            };
            let Some(page) = page else { break };
            if let Some((_, at)) = &mut lines {
                *at = page.progress;
            }
            if record {
                checkpoint.files.insert(key.to_owned(), page.progress);
            }
            let count = page.events.len() as u64;
            if !append_encoded(ctx, &self.name, page.events, checkpoint.encode()).await? {
                outcome = Some(Read::Cancelled);
            }
            let rejected = page.unreadable.count + page.oversized;
            ctx.stats.rejected.fetch_add(rejected, Ordering::Relaxed);
            ctx.stats
                .polled
                .fetch_add(count + rejected, Ordering::Relaxed);
            events += count;
            unreadable.merge(page.unreadable);
            if ctx.cancel.is_cancelled() {
                outcome = Some(Read::Cancelled);
            }
        }
        if unreadable.count > 0 {
            tracing::warn!(message = "Skipping unreadable input.", source = %self.name, file = %key, count = unreadable.count, first = unreadable.first.as_deref().unwrap_or(""));
        }
        Ok(outcome.unwrap_or(Read::Done(events)))
    }

    /// Splits what is new in `data` after `progress` into pages of at most `batch_size` events.
    fn pages(&self, key: &str, data: &[u8], progress: FileProgress) -> Vec<Page> {
        let whole = lines::is_single_document(data, self.max_event).unwrap_or(false);
        let mut pages = Vec::new();
        let mut events = EncodedPage::pooled();
        let mut unreadable = Unreadable::default();
        if whole {
            let items = event::read_documents(data);
            let total = items.len() as u64;
            let mut emitted = progress.items;
            for item in items.into_iter().skip(progress.items as usize) {
                emitted += 1;
                self.take(item, &mut events, &mut unreadable);
                if events.len() >= self.batch_size && emitted < total {
                    pages.push(Page {
                        events: std::mem::replace(&mut events, EncodedPage::pooled()),
                        unreadable: std::mem::take(&mut unreadable),
                        oversized: 0,
                        progress: FileProgress {
                            items: emitted,
                            lines: 0,
                            ..progress
                        },
                    });
                }
            }
            pages.push(Page {
                events,
                unreadable,
                oversized: 0,
                progress: FileProgress {
                    offset: data.len() as u64,
                    items: total,
                    lines: 0,
                    skipping: false,
                    ..progress
                },
            });
            return pages;
        }
        events.recycle();
        let mut reader = std::io::Cursor::new(data);
        reader.set_position(progress.offset.min(data.len() as u64));
        let mut at = progress;
        while let Ok(Some(page)) = self.next_lines_page(key, &mut reader, at) {
            at = page.progress;
            pages.push(page);
        }
        pages
    }

    /// Reads the next page of NDJSON from `reader`, positioned at `at.offset`: complete lines
    /// until `batch_size` events; a last line without newline is taken only when it is complete
    /// JSON (a writer may still be in the middle of it). A line longer than the event size
    /// limit is skipped up to its newline without being held. `None` when nothing new is there.
    fn next_lines_page(
        &self,
        key: &str,
        reader: &mut impl std::io::BufRead,
        at: FileProgress,
    ) -> std::io::Result<Option<Page>> {
        let mut events = EncodedPage::pooled();
        let mut unreadable = Unreadable::default();
        let mut oversized = 0;
        let mut progress = at;
        if progress.skipping {
            let (n, ended) = lines::skip_line(reader)?;
            progress.offset += n;
            progress.skipping = !ended;
        }
        let mut line = Vec::new();
        while !progress.skipping && events.len() < self.batch_size {
            let n = match lines::read_line(reader, &mut line, self.max_event)? {
                Line::Eof => break,
                Line::TooLong { bytes, ended, .. } => {
                    progress.lines += 1;
                    progress.offset += bytes;
                    progress.skipping = !ended;
                    oversized += 1;
                    tracing::warn!(message = "Skipping a line over the event size limit.", source = %self.name, file = %key, line = progress.lines, limit = self.max_event);
                    continue;
                }
                Line::Read(n) => n,
            };
            if line.last() != Some(&b'\n')
                && serde_json::from_slice::<serde::de::IgnoredAny>(&line).is_err()
            {
                // An unfinished last line: left for the next scan.
                break;
            }
            progress.lines += 1;
            progress.offset += n as u64;
            // One object per line is the common case: id and time straight from the bytes,
            // which are encoded into the page as the body. Anything else takes the `Value`
            // path below.
            if events.push_json(self.kind, &self.name, line.trim_ascii()) {
                continue;
            }
            let mut items = Vec::new();
            event::read_line(&line, progress.lines as usize, &mut items);
            for item in items {
                self.take(item, &mut events, &mut unreadable);
            }
        }
        if progress == at {
            events.recycle();
            return Ok(None);
        }
        Ok(Some(Page {
            events,
            unreadable,
            oversized,
            progress,
        }))
    }

    fn take(&self, item: Item, events: &mut EncodedPage, unreadable: &mut Unreadable) {
        match item {
            Ok(value) => {
                let ev = Event::from_json(self.kind, &self.name, &value);
                if ev.json.len() > self.max_event {
                    let size = ev.json.len();
                    unreadable.add(|| {
                        format!(
                            "a record of {size} bytes is over the event size limit ({} bytes)",
                            self.max_event
                        )
                    });
                } else {
                    events.push(&ev);
                }
            }
            Err(error) => unreadable.add(|| error.to_string()),
        }
    }
}

#[cfg(test)]
mod tests;

#[cfg(test)]
pub(crate) fn test_source(path: &std::path::Path, batch_size: usize) -> FilesSource {
    FilesSource {
        name: "files".into(),
        path: path.to_owned(),
        kind: EventKind::AzureActivity,
        interval: Duration::from_millis(20),
        batch_size,
        max_event: event::MAX_EVENT_BYTES,
    }
}
