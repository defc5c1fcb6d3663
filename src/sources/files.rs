//! The `files` source: reads a file, or a directory of files in name order, holding events as
//! NDJSON, a JSON array or a `{"value":[…]}` / `{"records":[…]}` envelope (this includes the
//! folders that Azure Log Integration wrote). Its checkpoint records, per file, how far it has
//! read, so a restart neither repeats nor skips; files that grow are read from where it stopped.

use std::collections::BTreeMap;
use std::io::Seek as _;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{append_page, SourceContext, SourceError};
use crate::config::{Config, SourceConfig};
use crate::event::{self, Event, EventKind, Item};

/// A configured `files` source.
#[derive(Debug)]
pub struct FilesSource {
    name: String,
    path: PathBuf,
    kind: EventKind,
    interval: Duration,
    batch_size: usize,
}

/// How far one file has been read.
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
}

/// The checkpoint this source writes with every batch.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FilesCheckpoint {
    pub version: u32,
    /// Keyed by the file's path relative to the configured path.
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

/// One page ready to append: its events and where the file stands after it.
#[derive(Debug)]
struct Page {
    events: Vec<Event>,
    /// Items in this page that could not be read as events.
    rejected: u64,
    progress: FileProgress,
}

impl FilesSource {
    pub fn from_config(cfg: &SourceConfig, config: &Config) -> Result<Self, SourceError> {
        let missing = |what: &str| SourceError::Config {
            source_name: cfg.name.clone(),
            message: format!("{what} is missing"),
        };
        Ok(Self {
            name: cfg.name.clone(),
            path: config.resolve(cfg.path.as_deref().ok_or_else(|| missing("path"))?),
            kind: cfg.source_kind.ok_or_else(|| missing("source_kind"))?,
            interval: cfg.interval.0,
            batch_size: cfg.batch_size.max(1),
        })
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
            .unwrap_or(FilesCheckpoint {
                version: 1,
                files: BTreeMap::new(),
            });
        tracing::info!(
            message = "Source started.",
            source = %self.name,
            path = %self.path.display(),
            files_known = checkpoint.files.len()
        );
        // Judged healthy while it runs: a folder with nothing new is not a failure.
        ctx.stats.freshness.started(None);
        let mut missing_logged = false;
        loop {
            match self.list_files() {
                Ok(files) => {
                    missing_logged = false;
                    if !self.scan(&files, &mut checkpoint, &ctx).await? {
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

    /// The files to read, as (key, path), in name order.
    fn list_files(&self) -> std::io::Result<Vec<(String, PathBuf)>> {
        let meta = std::fs::metadata(&self.path)?;
        if meta.is_file() {
            let key = self
                .path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            return Ok(vec![(key, self.path.clone())]);
        }
        let mut files = Vec::new();
        for entry in std::fs::read_dir(&self.path)? {
            let entry = entry?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.starts_with('.') || !entry.file_type()?.is_file() {
                continue;
            }
            files.push((name, entry.path()));
        }
        files.sort();
        Ok(files)
    }

    /// Reads every file that has something new; returns false when cancelled.
    async fn scan(
        &self,
        files: &[(String, PathBuf)],
        checkpoint: &mut FilesCheckpoint,
        ctx: &SourceContext,
    ) -> Result<bool, SourceError> {
        // Forget files that are gone, so the checkpoint stays bounded.
        checkpoint
            .files
            .retain(|k, _| files.iter().any(|(name, _)| name == k));
        for (key, path) in files {
            if ctx.cancel.is_cancelled() {
                return Ok(false);
            }
            let mut progress = checkpoint.files.get(key).copied().unwrap_or_default();
            let len = match std::fs::metadata(path) {
                Ok(m) => m.len(),
                Err(_) => continue,
            };
            if progress.offset == len {
                continue;
            }
            if progress.offset > len {
                tracing::warn!(message = "Input file shrank; reading it again from the start.", source = %self.name, file = %path.display());
                progress = FileProgress::default();
            }
            // One JSON document is read whole; NDJSON is streamed a page at a time, so memory
            // stays bounded by the batch size whatever the file's size.
            let opened = std::fs::File::open(path).and_then(|f| {
                let single = is_single_document(&f)?;
                Ok((f, single))
            });
            let (file, single) = match opened {
                Ok(o) => o,
                Err(error) => {
                    tracing::warn!(message = "Cannot read input file; will retry.", source = %self.name, file = %path.display(), %error);
                    continue;
                }
            };
            let mut whole_pages = Vec::new();
            let mut lines = None;
            if single {
                match std::fs::read(path) {
                    Ok(data) => whole_pages = self.pages(key, &data, progress),
                    Err(error) => {
                        tracing::warn!(message = "Cannot read input file; will retry.", source = %self.name, file = %path.display(), %error);
                        continue;
                    }
                }
                whole_pages.reverse();
            } else {
                let mut reader = std::io::BufReader::with_capacity(1 << 20, file);
                if let Err(error) = reader.seek(std::io::SeekFrom::Start(progress.offset)) {
                    tracing::warn!(message = "Cannot read input file; will retry.", source = %self.name, file = %path.display(), %error);
                    continue;
                }
                lines = Some((reader, progress));
            }
            loop {
                let page = match &mut lines {
                    None => whole_pages.pop(),
                    Some((reader, at)) => match self.next_lines_page(key, reader, *at) {
                        Ok(p) => p,
                        Err(error) => {
                            tracing::warn!(message = "Cannot read input file; will retry.", source = %self.name, file = %path.display(), %error);
                            None
                        }
                    },
                };
                let Some(page) = page else { break };
                if let Some((_, at)) = &mut lines {
                    *at = page.progress;
                }
                let mut next = checkpoint.clone();
                next.files.insert(key.clone(), page.progress);
                if !append_page(ctx, &self.name, &page.events, next.encode()).await? {
                    return Ok(false);
                }
                *checkpoint = next;
                ctx.stats
                    .rejected
                    .fetch_add(page.rejected, Ordering::Relaxed);
                ctx.stats
                    .polled
                    .fetch_add(page.events.len() as u64 + page.rejected, Ordering::Relaxed);
                if ctx.cancel.is_cancelled() {
                    return Ok(false);
                }
            }
        }
        Ok(true)
    }

    /// Splits what is new in `data` after `progress` into pages of at most `batch_size` events.
    fn pages(&self, key: &str, data: &[u8], progress: FileProgress) -> Vec<Page> {
        let whole = is_single_document(data).unwrap_or(false);
        let mut pages = Vec::new();
        let mut events = Vec::new();
        let mut rejected = 0;
        if whole {
            let items = event::read_documents(data);
            let total = items.len() as u64;
            let mut emitted = progress.items;
            for item in items.into_iter().skip(progress.items as usize) {
                emitted += 1;
                self.take(key, item, &mut events, &mut rejected);
                if events.len() >= self.batch_size && emitted < total {
                    pages.push(Page {
                        events: std::mem::take(&mut events),
                        rejected: std::mem::take(&mut rejected),
                        progress: FileProgress {
                            offset: progress.offset,
                            items: emitted,
                            lines: 0,
                        },
                    });
                }
            }
            pages.push(Page {
                events,
                rejected,
                progress: FileProgress {
                    offset: data.len() as u64,
                    items: total,
                    lines: 0,
                },
            });
            return pages;
        }
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
    /// JSON (a writer may still be in the middle of it). `None` when nothing new is there.
    fn next_lines_page(
        &self,
        key: &str,
        reader: &mut impl std::io::BufRead,
        at: FileProgress,
    ) -> std::io::Result<Option<Page>> {
        let mut events = Vec::new();
        let mut rejected = 0;
        let mut progress = at;
        let mut line = Vec::new();
        while events.len() < self.batch_size {
            line.clear();
            let n = reader.read_until(b'\n', &mut line)?;
            if n == 0 {
                break;
            }
            if line.last() != Some(&b'\n')
                && serde_json::from_slice::<serde::de::IgnoredAny>(&line).is_err()
            {
                // An unfinished last line: left for the next scan.
                break;
            }
            progress.lines += 1;
            progress.offset += n as u64;
            // One object per line is the common case: id and time straight from the bytes,
            // which become the body. Anything else takes the `Value` path below.
            if let Some(ev) = Event::from_json_bytes(self.kind, &self.name, line.trim_ascii()) {
                events.push(ev);
                continue;
            }
            let mut items = Vec::new();
            event::read_line(&line, progress.lines as usize, &mut items);
            for item in items {
                self.take(key, item, &mut events, &mut rejected);
            }
        }
        Ok((progress != at).then_some(Page {
            events,
            rejected,
            progress,
        }))
    }

    fn take(&self, key: &str, item: Item, events: &mut Vec<Event>, rejected: &mut u64) {
        match item {
            Ok(value) => events.push(Event::from_json(self.kind, &self.name, &value)),
            Err(error) => {
                *rejected += 1;
                tracing::warn!(message = "Skipping unreadable input.", source = %self.name, file = key, %error);
            }
        }
    }
}

/// Whether the input is one JSON document (array, envelope, or an object spread over lines)
/// rather than NDJSON: it starts with `[`, or with an object whose first line is not a
/// complete JSON value followed by more lines. Reads at most the first line.
fn is_single_document(input: impl std::io::Read) -> std::io::Result<bool> {
    use std::io::BufRead;
    let mut reader = std::io::BufReader::new(input);
    let mut first = Vec::new();
    loop {
        first.clear();
        if reader.read_until(b'\n', &mut first)? == 0 {
            return Ok(false);
        }
        if first.iter().any(|b| !b.is_ascii_whitespace()) {
            break;
        }
    }
    match first.iter().find(|b| !b.is_ascii_whitespace()) {
        Some(b'[') => Ok(true),
        Some(b'{') => {
            if serde_json::from_slice::<serde::de::IgnoredAny>(&first).is_err() {
                return Ok(true); // a pretty-printed object
            }
            // A complete object on the first line: NDJSON if anything follows it.
            let mut rest = Vec::new();
            loop {
                rest.clear();
                if reader.read_until(b'\n', &mut rest)? == 0 {
                    return Ok(true);
                }
                if rest.iter().any(|b| !b.is_ascii_whitespace()) {
                    return Ok(false);
                }
            }
        }
        _ => Ok(false),
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
    }
}
