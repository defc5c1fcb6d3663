//! The durable spool: one segmented, append-only log between the sources and every destination.
//!
//! A source appends a page of events plus its checkpoint as one batch, synced once; each
//! destination reads from its own persisted cursor; a segment is deleted once every cursor has
//! passed it. Nothing acknowledged to a source is ever dropped: a full spool pushes back instead.
//!
//! # On-disk format (`dir/`)
//! ```text
//! LOCK                             flock held while a Spool is open (second instance refused)
//! seg-<first seq, 20 digits>.log   header | record*            (a new one past segment_bytes)
//! cursor-<destination>.bin         two 4 KiB slots, written alternately (see cursor.rs)
//! quarantine/                      damaged ranges and segments, kept for inspection
//! ```
//! - Segment header (32 bytes): `"SCSPOOL\0" | u32 version=1 | u64 first_seq | u64 created_ms |
//!   u32 crc32c(previous 28 bytes)`. All integers little-endian.
//! - Record: `u32 len | u32 crc32c(seq ‖ kind ‖ payload) | u64 seq | u8 kind | payload[len]`,
//!   `kind` 1 = event (opaque payload), 2 = checkpoint (`u16 n | source name[n] | data`).
//! - Seqs strictly increase through the log but may have gaps (a failed batch burns its seqs).
//!   The records of one batch have consecutive seqs; the checkpoint is the batch's last record.
//! - Cursor slot: `"SCCURSOR" | u32 version=1 | u64 generation | u64 next seq | u16 n | name[n] |
//!   u32 crc32c`, zero padded to 4096 bytes; the valid slot with the higher generation wins.
//! - Checkpoints survive segment deletion because every new segment starts with a copy of the
//!   latest checkpoint of every source, and the newest segment is never deleted.
//!
//! # Invariants
//! - **Durable when**: a batch is durable exactly when `append_batch` returns `Ok`: its bytes
//!   were written in one `write` and `fdatasync`ed; a new segment is synced together with its
//!   directory before use. Readers never see a batch before that (they stop at the committed end).
//! - **Batches are atomic across crashes**: at start-up the newest segment is cut after its last
//!   checkpoint record, so a torn batch disappears together with its checkpoint and the source
//!   re-polls it; spooled data and source position never disagree.
//! - **Never lost**: a segment is unlinked only after the cursor of every destination known to
//!   the spool (including ones not re-opened since start) has been persisted past it. A failed
//!   `write`/`fsync` returns an error and is never acknowledged; after a failed `fsync` the
//!   segment is closed and the next batch starts a new one ("fsyncgate"-safe).
//! - **Duplicates**: after a crash a destination resumes at its last persisted cursor, so records
//!   acknowledged since then (at most ~`cursor_persist_interval` worth, or since the last
//!   [`Spool::flush_cursors`]) are delivered again. An unacknowledged batch whose `fsync` failed
//!   may reappear in an older segment if its truncation also failed (the source resends it too).
//! - **Damage**: CRC failures in older segments are moved to `quarantine/` and counted in
//!   [`SpoolStats`]; start-up continues. A cursor pointing below the retained data (its segment
//!   was quarantined or deleted by hand) resumes at the oldest record and is counted.
//! - **Backpressure**: `append_batch` returns [`SpoolError::Full`] (nothing appended) when the
//!   batch would take the spool past `max_bytes` or the disk is full; the caller waits and retries.
//! - With no destination registered, nothing is reclaimed (a destination added later receives
//!   everything still retained).

mod cursor;
mod memory;
mod record;
mod recovery;
mod segment;
mod storage;

pub use memory::{FaultError, FaultOp, MemStorage};
pub use record::{RecordKind, MAX_PAYLOAD};
pub use storage::{FsStorage, LockGuard, ReadFile, Storage, WriteFile};

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tokio::sync::Notify;

use cursor::CursorFile;
use record::{checkpoint_prefix, encode_record, record_size, SegmentHeader, SEGMENT_HEADER};
use segment::Segment;
use storage::Window;

/// Tuning knobs of a [`Spool`].
#[derive(Debug, Clone)]
pub struct SpoolOptions {
    /// Cap on the bytes of all segments; past it `append_batch` returns [`SpoolError::Full`].
    pub max_bytes: u64,
    /// A new segment is started once the current one would exceed this (capped at `max_bytes / 4`
    /// so that reclaiming can always make room).
    pub segment_bytes: u64,
    /// A destination's cursor is persisted at most this often by [`Spool::ack`]
    /// ([`Spool::flush_cursors`] persists at once).
    pub cursor_persist_interval: Duration,
}

impl Default for SpoolOptions {
    fn default() -> Self {
        SpoolOptions {
            max_bytes: 1 << 30,
            segment_bytes: 64 << 20,
            cursor_persist_interval: Duration::from_millis(250),
        }
    }
}

/// An event record as read back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub seq: u64,
    pub payload: Vec<u8>,
}

/// Queue state of one destination.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DestinationStatus {
    pub name: String,
    /// Next seq this destination must deliver (its acknowledged cursor).
    pub cursor: u64,
    /// Event records not yet acknowledged.
    pub queued_records: u64,
    /// Bytes of those records on disk (headers included).
    pub queued_bytes: u64,
    /// Age of the oldest queued record, measured from its segment's creation.
    pub oldest_age: Option<Duration>,
}

/// Snapshot for `siemcast spool status` and metrics.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpoolStatus {
    pub dir: PathBuf,
    pub destinations: Vec<DestinationStatus>,
    /// Event records retained on disk.
    pub total_records: u64,
    /// Bytes of all segments.
    pub total_bytes: u64,
    pub max_bytes: u64,
    pub segments: usize,
    /// Seq the next appended record will get (at least).
    pub next_seq: u64,
}

/// Counters since `open` (recovery ones describe what start-up found).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SpoolStats {
    /// Segments validated at start-up.
    pub recovered_segments: u64,
    /// Damaged ranges or whole segments moved to `quarantine/`.
    pub quarantined_ranges: u64,
    pub quarantined_bytes: u64,
    /// Records lost in quarantined ranges (estimated from seq gaps).
    pub records_lost: u64,
    /// Bytes cut from the end of the newest segment (torn or unacknowledged batch).
    pub torn_bytes_truncated: u64,
    /// Valid event records cut with an unacknowledged batch (the source re-polls them).
    pub incomplete_batch_records: u64,
    /// Newest segments removed because a crash interrupted their creation.
    pub torn_segments_removed: u64,
    /// Cursors found below the retained data (their records were quarantined or removed).
    pub cursor_gaps: u64,
    /// Cursors found ahead of the data (new records are numbered after them).
    pub cursors_ahead: u64,
    /// Records found damaged while reading (skipped with the rest of their segment).
    pub read_corrupt: u64,
    pub write_errors: u64,
    pub sync_errors: u64,
    /// `append_batch` calls refused with [`SpoolError::Full`].
    pub full_rejections: u64,
    pub batches_appended: u64,
    pub events_appended: u64,
    pub segments_created: u64,
    pub segments_deleted: u64,
    pub cursor_persists: u64,
}

/// Everything that can go wrong, with the path involved and what to do.
#[derive(Debug, thiserror::Error)]
pub enum SpoolError {
    #[error("spool {dir}: already in use by another siemcast process (lock {lock} is held); stop the other instance or give this one its own state_dir")]
    Locked { dir: PathBuf, lock: PathBuf },
    #[error("spool {dir}: full ({used} of {max} bytes used{}); sources pause until destinations catch up", if *disk_full { ", and the disk is full" } else { "" })]
    Full {
        dir: PathBuf,
        used: u64,
        max: u64,
        disk_full: bool,
    },
    #[error("spool {dir}: a batch of {bytes} bytes can never fit in max_bytes = {max}; raise the spool size or page size")]
    BatchTooLarge { dir: PathBuf, bytes: u64, max: u64 },
    #[error("spool {dir}: {what} is invalid: {why}")]
    Invalid {
        dir: PathBuf,
        what: String,
        why: String,
    },
    #[error("spool {dir}: unknown destination `{destination}`; call open_cursor first")]
    UnknownDestination { dir: PathBuf, destination: String },
    #[error(
        "spool: cannot {op} {path}: {source}; check the disk and the permissions of the state_dir"
    )]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

pub(crate) fn io_err(op: &'static str, path: &Path, source: io::Error) -> SpoolError {
    SpoolError::Io {
        op,
        path: path.to_path_buf(),
        source,
    }
}

fn is_no_space(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::StorageFull || e.raw_os_error() == Some(libc::ENOSPC)
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding a spool lock leaves plain data behind; the durable state is on disk.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// The appender's side: the open segment file.
#[derive(Debug)]
struct Writer {
    file: Option<Box<dyn WriteFile>>,
    path: PathBuf,
    /// Committed length of the open segment.
    end: u64,
    /// End of the header and re-appended checkpoints: a segment is never rolled before a batch.
    base_end: u64,
    /// Seq the next record gets.
    next_seq: u64,
    buf: Vec<u8>,
}

#[derive(Debug)]
struct State {
    segments: VecDeque<Segment>,
    checkpoints: HashMap<String, (u64, Vec<u8>)>,
    total_bytes: u64,
}

#[derive(Debug)]
struct Cursor {
    file: CursorFile,
    acked: u64,
    persisted: u64,
    last_persist: Instant,
}

/// The durable spool. Blocking file I/O: call it from `spawn_blocking` in async code.
#[derive(Debug)]
pub struct Spool {
    dir: PathBuf,
    storage: Arc<dyn Storage>,
    opts: SpoolOptions,
    _lock: Box<dyn LockGuard>,
    writer: Mutex<Writer>,
    cursors: Mutex<BTreeMap<String, Cursor>>,
    state: Mutex<State>,
    /// One past the highest committed seq (mirrors the writer after each commit).
    committed_next: AtomicU64,
    notify: Notify,
    stats: Mutex<SpoolStats>,
}

impl Spool {
    /// Opens (creating if needed) the spool in `dir` on the real file system; see [`Spool::open_with`].
    pub fn open(dir: &Path, opts: SpoolOptions) -> Result<Spool, SpoolError> {
        Spool::open_with(Arc::new(FsStorage), dir, opts)
    }

    /// Creates `dir` if needed, takes the exclusive lock on `dir/LOCK`, recovers the segments
    /// (torn tail cut, damaged ranges quarantined and counted) and loads every cursor.
    pub fn open_with(
        storage: Arc<dyn Storage>,
        dir: &Path,
        mut opts: SpoolOptions,
    ) -> Result<Spool, SpoolError> {
        if opts.max_bytes < 4096 {
            return Err(SpoolError::Invalid {
                dir: dir.to_path_buf(),
                what: "max_bytes".into(),
                why: format!("{} is below the minimum of 4096", opts.max_bytes),
            });
        }
        opts.segment_bytes = opts
            .segment_bytes
            .clamp(1024, (opts.max_bytes / 4).max(1024));
        storage
            .create_dir_all(dir)
            .map_err(|e| io_err("create spool directory", dir, e))?;
        let lock_path = dir.join("LOCK");
        let guard = match storage.lock(&lock_path) {
            Ok(g) => g,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                return Err(SpoolError::Locked {
                    dir: dir.to_path_buf(),
                    lock: lock_path,
                })
            }
            Err(e) => return Err(io_err("lock", &lock_path, e)),
        };
        let mut stats = SpoolStats::default();
        let rec = recovery::recover(storage.as_ref(), dir, &mut stats)?;
        // A new segment must never take the name of an existing one, even an empty one.
        let mut next_seq = rec
            .next_seq
            .max(rec.segments.back().map_or(0, |s| s.first_seq + 1));
        let oldest = rec.segments.front().map_or(next_seq, |s| s.first_seq);

        // Cursors.
        let names = storage
            .list(dir)
            .map_err(|e| io_err("list spool directory", dir, e))?;
        let mut cursors = BTreeMap::new();
        let now = Instant::now();
        for name in names {
            if !(name.starts_with(cursor::PREFIX) && name.ends_with(cursor::SUFFIX)) {
                continue;
            }
            let path = dir.join(&name);
            match CursorFile::load(storage.as_ref(), &path) {
                Ok(Some(l)) => {
                    let mut next = l.next;
                    if next < oldest {
                        stats.cursor_gaps += 1;
                        tracing::error!(cursor = %path.display(), cursor_seq = next, oldest,
                            "spool cursor points below the retained records (they were quarantined or removed); resuming at the oldest record");
                        next = oldest;
                    }
                    if next > next_seq {
                        stats.cursors_ahead += 1;
                        tracing::warn!(cursor = %path.display(), cursor_seq = next, next_seq,
                            "spool cursor is ahead of the data; new records are numbered after it");
                        next_seq = next;
                    }
                    cursors.insert(
                        l.file.name().to_owned(),
                        Cursor {
                            file: l.file,
                            acked: next,
                            persisted: l.next,
                            last_persist: now,
                        },
                    );
                }
                Ok(None) => {
                    // Both slots unreadable: the file was never completely written once (a
                    // crash during creation) or is damaged. Quarantine it; the destination
                    // starts again at the oldest retained record when re-opened.
                    stats.cursor_gaps += 1;
                    let q = dir.join(recovery::QUARANTINE);
                    storage
                        .create_dir_all(&q)
                        .and_then(|()| storage.rename(&path, &q.join(&name)))
                        .and_then(|()| storage.sync_dir(dir))
                        .map_err(|e| io_err("move unreadable cursor to quarantine", &path, e))?;
                    tracing::error!(cursor = %path.display(), "spool cursor file unreadable; moved to quarantine");
                }
                Err(e) => return Err(io_err("read cursor", &path, e)),
            }
        }

        let total_bytes = rec.segments.iter().map(|s| s.end).sum();
        let spool = Spool {
            dir: dir.to_path_buf(),
            storage,
            opts,
            _lock: guard,
            writer: Mutex::new(Writer {
                file: None,
                path: PathBuf::new(),
                end: 0,
                base_end: 0,
                next_seq,
                buf: Vec::new(),
            }),
            cursors: Mutex::new(cursors),
            state: Mutex::new(State {
                segments: rec.segments,
                checkpoints: rec.checkpoints,
                total_bytes,
            }),
            committed_next: AtomicU64::new(next_seq),
            notify: Notify::new(),
            stats: Mutex::new(stats),
        };
        spool.reclaim()?;
        Ok(spool)
    }

    /// The spool directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// One past the highest durable seq: every record below it that exists is readable.
    pub fn next_seq(&self) -> u64 {
        self.committed_next.load(Ordering::Acquire)
    }

    fn invalid(&self, what: &str, why: String) -> SpoolError {
        SpoolError::Invalid {
            dir: self.dir.clone(),
            what: what.to_owned(),
            why,
        }
    }

    /// Appends `events` and one checkpoint record for `source` as one batch with one
    /// `fdatasync`; returns the seq of the checkpoint (the batch's last record; its events have
    /// the seqs just below). Only after `Ok` is the batch durable; on any error nothing was
    /// acknowledged and the caller retries later ([`SpoolError::Full`]: when there is room).
    pub fn append_batch(
        &self,
        source: &str,
        events: &[&[u8]],
        checkpoint: &[u8],
    ) -> Result<u64, SpoolError> {
        if source.len() > u16::MAX as usize {
            return Err(self.invalid("source name", format!("{} bytes long", source.len())));
        }
        let ck_len = 2 + source.len() + checkpoint.len();
        if ck_len > MAX_PAYLOAD {
            return Err(self.invalid(
                "checkpoint",
                format!("{ck_len} bytes long (max {MAX_PAYLOAD})"),
            ));
        }
        if let Some(e) = events.iter().find(|e| e.len() > MAX_PAYLOAD) {
            return Err(self.invalid(
                "event",
                format!("{} bytes long (max {MAX_PAYLOAD})", e.len()),
            ));
        }
        let batch_bytes: u64 = events
            .iter()
            .map(|e| record_size(e.len()) as u64)
            .sum::<u64>()
            + record_size(ck_len) as u64;

        let mut w = lock(&self.writer);
        let roll = w.file.is_none()
            || (w.end > w.base_end && w.end + batch_bytes > self.opts.segment_bytes);
        let roll_bytes = if roll { self.roll_bytes() } else { 0 };
        let need = batch_bytes + roll_bytes;
        if need > self.opts.max_bytes {
            return Err(SpoolError::BatchTooLarge {
                dir: self.dir.clone(),
                bytes: need,
                max: self.opts.max_bytes,
            });
        }
        let used = lock(&self.state).total_bytes;
        if used + need > self.opts.max_bytes {
            lock(&self.stats).full_rejections += 1;
            return Err(self.full(used, false));
        }
        if roll {
            self.roll(&mut w)?;
        }

        // Encode the batch.
        let first = w.next_seq;
        let mut buf = std::mem::take(&mut w.buf);
        buf.clear();
        for (i, e) in events.iter().enumerate() {
            encode_record(&mut buf, first + i as u64, RecordKind::Event, &[e]);
        }
        let ck_seq = first + events.len() as u64;
        let prefix = checkpoint_prefix(source);
        encode_record(
            &mut buf,
            ck_seq,
            RecordKind::Checkpoint,
            &[&prefix, source.as_bytes(), checkpoint],
        );
        // The seqs are used up even if the write fails: seqs never repeat in the log.
        w.next_seq = ck_seq + 1;
        let offset = w.end;
        let result = match w.file.as_mut() {
            Some(f) => f
                .write_all_at(offset, &buf)
                .map_err(|e| (false, e))
                .and_then(|()| f.sync_data().map_err(|e| (true, e))),
            None => Err((false, io::Error::other("no open segment"))),
        };
        w.buf = buf;
        if let Err((sync, e)) = result {
            return Err(self.abandon_batch(&mut w, sync, e));
        }
        w.end += batch_bytes;

        // Commit: make the batch visible.
        {
            let mut st = lock(&self.state);
            st.total_bytes += batch_bytes;
            if let Some(seg) = st.segments.back_mut() {
                for (i, e) in events.iter().enumerate() {
                    seg.push(first + i as u64, RecordKind::Event, e.len());
                }
                seg.push(ck_seq, RecordKind::Checkpoint, ck_len);
            }
            st.checkpoints
                .insert(source.to_owned(), (ck_seq, checkpoint.to_vec()));
        }
        self.committed_next.store(w.next_seq, Ordering::Release);
        drop(w);
        {
            let mut s = lock(&self.stats);
            s.batches_appended += 1;
            s.events_appended += events.len() as u64;
        }
        self.notify.notify_waiters();
        Ok(ck_seq)
    }

    fn full(&self, used: u64, disk_full: bool) -> SpoolError {
        SpoolError::Full {
            dir: self.dir.clone(),
            used,
            max: self.opts.max_bytes,
            disk_full,
        }
    }

    /// After a failed write or sync of a batch: drop its bytes if possible, close the segment
    /// when its durability is in doubt, and turn the error into what the caller should see.
    fn abandon_batch(&self, w: &mut Writer, sync: bool, e: io::Error) -> SpoolError {
        let end = w.end;
        {
            let mut s = lock(&self.stats);
            if sync {
                s.sync_errors += 1;
            } else {
                s.write_errors += 1;
            }
        }
        let cleaned = match w.file.as_mut() {
            Some(f) => f.set_len(end).and_then(|()| f.sync_data()).is_ok(),
            None => false,
        };
        // After a failed fsync the kernel may have dropped dirty pages and a retry could
        // "succeed" without the data: never trust this segment again.
        if sync || !cleaned {
            tracing::error!(segment = %w.path.display(), error = %e,
                "spool: {} failed; closing the segment, the batch was not acknowledged",
                if sync { "fdatasync" } else { "write" });
            w.file = None;
        }
        if is_no_space(&e) {
            lock(&self.stats).full_rejections += 1;
            let used = lock(&self.state).total_bytes;
            return self.full(used, true);
        }
        io_err(
            if sync {
                "fdatasync segment"
            } else {
                "write segment"
            },
            &w.path,
            e,
        )
    }

    /// Bytes a new segment starts with (header and the latest checkpoints).
    fn roll_bytes(&self) -> u64 {
        let st = lock(&self.state);
        SEGMENT_HEADER as u64
            + st.checkpoints
                .iter()
                .map(|(s, (_, d))| record_size(2 + s.len() + d.len()) as u64)
                .sum::<u64>()
    }

    /// Starts a new segment: header plus a copy of every source's latest checkpoint, synced
    /// with its directory before any batch goes in.
    fn roll(&self, w: &mut Writer) -> Result<(), SpoolError> {
        let first = w.next_seq;
        let path = self.dir.join(segment::file_name(first));
        let created_ms = now_ms();
        let mut cks: Vec<(String, Vec<u8>)> = lock(&self.state)
            .checkpoints
            .iter()
            .map(|(s, (_, d))| (s.clone(), d.clone()))
            .collect();
        cks.sort();
        let mut buf = Vec::new();
        buf.extend_from_slice(
            &SegmentHeader {
                first_seq: first,
                created_ms,
            }
            .encode(),
        );
        for (seq, (s, d)) in (first..).zip(&cks) {
            encode_record(
                &mut buf,
                seq,
                RecordKind::Checkpoint,
                &[&checkpoint_prefix(s), s.as_bytes(), d],
            );
        }
        w.file = None;
        let created = self.storage.create(&path).and_then(|mut f| {
            f.write_all_at(0, &buf)?;
            f.sync_data()?;
            self.storage.sync_dir(&self.dir)?;
            let reader = self.storage.open_read(&path)?;
            Ok((f, reader))
        });
        let (file, reader) = match created {
            Ok(x) => x,
            Err(e) => {
                // Best effort: the file is not referenced by anything yet.
                let _ = self.storage.remove(&path);
                let _ = self.storage.sync_dir(&self.dir);
                lock(&self.stats).write_errors += 1;
                if is_no_space(&e) {
                    lock(&self.stats).full_rejections += 1;
                    let used = lock(&self.state).total_bytes;
                    return Err(self.full(used, true));
                }
                return Err(io_err("create segment", &path, e));
            }
        };
        let mut seg = Segment::new(first, path.clone(), created_ms, reader);
        for (seq, (s, d)) in (first..).zip(&cks) {
            seg.push(seq, RecordKind::Checkpoint, 2 + s.len() + d.len());
        }
        let seq = first + cks.len() as u64;
        w.file = Some(file);
        w.path = path;
        w.end = buf.len() as u64;
        w.base_end = w.end;
        w.next_seq = seq;
        {
            let mut st = lock(&self.state);
            st.total_bytes += buf.len() as u64;
            st.segments.push_back(seg);
        }
        self.committed_next.store(seq, Ordering::Release);
        lock(&self.stats).segments_created += 1;
        Ok(())
    }

    /// The latest durable checkpoint payload of `source`.
    pub fn checkpoint(&self, source: &str) -> Option<Vec<u8>> {
        lock(&self.state)
            .checkpoints
            .get(source)
            .map(|(_, d)| d.clone())
    }

    /// Names of the sources with a checkpoint.
    pub fn checkpoint_sources(&self) -> Vec<String> {
        let mut v: Vec<String> = lock(&self.state).checkpoints.keys().cloned().collect();
        v.sort();
        v
    }

    fn oldest_seq(&self) -> u64 {
        lock(&self.state)
            .segments
            .front()
            .map_or_else(|| self.next_seq(), |s| s.first_seq)
    }

    /// Registers `destination` (persisting its cursor file) and returns the seq of the next
    /// record it must deliver. A new destination starts at the oldest retained record.
    pub fn open_cursor(&self, destination: &str) -> Result<u64, SpoolError> {
        if destination.is_empty() || destination.len() > cursor::MAX_NAME {
            return Err(self.invalid(
                "destination name",
                format!("must be 1..={} bytes long", cursor::MAX_NAME),
            ));
        }
        let mut cs = lock(&self.cursors);
        let oldest = self.oldest_seq();
        if let Some(c) = cs.get_mut(destination) {
            if c.acked < oldest {
                lock(&self.stats).cursor_gaps += 1;
                c.acked = oldest;
            }
            return Ok(c.acked);
        }
        let file = CursorFile::create(self.storage.as_ref(), &self.dir, destination, oldest)
            .map_err(|e| {
                io_err(
                    "create cursor file for",
                    &self.dir.join(cursor::file_name(destination)),
                    e,
                )
            })?;
        cs.insert(
            destination.to_owned(),
            Cursor {
                file,
                acked: oldest,
                persisted: oldest,
                last_persist: Instant::now(),
            },
        );
        Ok(oldest)
    }

    /// Reads event records with `seq >= from` into `out` (checkpoint records are skipped), at
    /// most `max_records` and about `max_bytes` of payload (at least one record when any is
    /// available). Returns the seq to read from next time; `from` itself when caught up.
    pub fn read(
        &self,
        from: u64,
        max_records: usize,
        max_bytes: usize,
        out: &mut Vec<Record>,
    ) -> Result<u64, SpoolError> {
        let max_records = max_records.max(1);
        let mut next = from;
        let mut count = 0usize;
        let mut bytes = 0usize;
        let mut win = Window::new(256 * 1024);
        loop {
            let (reader, path, start, end, seg_next, after) = {
                let st = lock(&self.state);
                let Some(front) = st.segments.front() else {
                    return Ok(next);
                };
                if next < front.first_seq {
                    next = front.first_seq;
                }
                let i = st
                    .segments
                    .partition_point(|s| s.first_seq <= next)
                    .saturating_sub(1);
                let seg = &st.segments[i];
                let after = st.segments.get(i + 1).map(|s| s.first_seq);
                if next >= seg.next_seq {
                    match after {
                        Some(a) => {
                            next = next.max(a);
                            continue;
                        }
                        None => return Ok(next),
                    }
                }
                (
                    seg.reader.clone(),
                    seg.path.clone(),
                    seg.locate(next).offset,
                    seg.end,
                    seg.next_seq,
                    after,
                )
            };
            let mut off = start;
            win.reset();
            while off < end {
                let hb = win
                    .get(reader.as_ref(), off, record::RECORD_HEADER, end)
                    .map_err(|e| io_err("read segment", &path, e))?;
                let h = match hb {
                    Some(hb) => record::decode_header(hb),
                    None => break,
                };
                let size = record_size(h.len) as u64;
                if h.seq < next {
                    off += size;
                    continue;
                }
                if h.kind == RecordKind::Checkpoint as u8 {
                    next = h.seq + 1;
                    off += size;
                    continue;
                }
                if count >= max_records || (count > 0 && bytes >= max_bytes) {
                    return Ok(next);
                }
                let payload = win
                    .get(
                        reader.as_ref(),
                        off + record::RECORD_HEADER as u64,
                        h.len,
                        end,
                    )
                    .map_err(|e| io_err("read segment", &path, e))?;
                match payload {
                    Some(p) if record::crc_ok(&h, p) => {
                        out.push(Record {
                            seq: h.seq,
                            payload: p.to_vec(),
                        });
                        count += 1;
                        bytes += h.len;
                        next = h.seq + 1;
                        off += size;
                    }
                    _ => {
                        // Damaged since start-up (the disk changed under us): skip the rest of
                        // this segment rather than block the queue; it is counted.
                        lock(&self.stats).read_corrupt += 1;
                        tracing::error!(segment = %path.display(), offset = off,
                            "spool record failed its CRC while reading; skipping the rest of the segment");
                        break;
                    }
                }
            }
            next = next.max(seg_next);
            match after {
                Some(a) => next = next.max(a),
                None => return Ok(next),
            }
        }
    }

    /// Marks every record below `next` delivered for `destination`; persists the cursor when
    /// the last persist is older than `cursor_persist_interval`, then reclaims segments.
    pub fn ack(&self, destination: &str, next: u64) -> Result<(), SpoolError> {
        let persisted = {
            let mut cs = lock(&self.cursors);
            let c = cs
                .get_mut(destination)
                .ok_or_else(|| SpoolError::UnknownDestination {
                    dir: self.dir.clone(),
                    destination: destination.to_owned(),
                })?;
            let next = next.min(self.next_seq());
            if next > c.acked {
                c.acked = next;
            }
            if c.acked > c.persisted
                && c.last_persist.elapsed() >= self.opts.cursor_persist_interval
            {
                self.persist(c)?;
                true
            } else {
                false
            }
        };
        if persisted {
            self.reclaim()?;
        }
        Ok(())
    }

    fn persist(&self, c: &mut Cursor) -> Result<(), SpoolError> {
        c.file
            .persist(c.acked)
            .map_err(|e| io_err("persist cursor", &c.file.path, e))?;
        c.persisted = c.acked;
        c.last_persist = Instant::now();
        lock(&self.stats).cursor_persists += 1;
        Ok(())
    }

    /// Persists every cursor with unpersisted acknowledgements, then reclaims segments. Call it
    /// periodically and at shutdown.
    pub fn flush_cursors(&self) -> Result<(), SpoolError> {
        {
            let mut cs = lock(&self.cursors);
            for c in cs.values_mut() {
                if c.acked > c.persisted {
                    self.persist(c)?;
                }
            }
        }
        self.reclaim()
    }

    /// Deletes the segments every persisted cursor has passed (never the newest one).
    fn reclaim(&self) -> Result<(), SpoolError> {
        let min = {
            let cs = lock(&self.cursors);
            match cs.values().map(|c| c.persisted).min() {
                Some(m) => m,
                None => return Ok(()),
            }
        };
        let doomed: Vec<PathBuf> = {
            let mut st = lock(&self.state);
            let mut v = Vec::new();
            while st.segments.len() > 1 && st.segments[1].first_seq <= min {
                if let Some(s) = st.segments.pop_front() {
                    st.total_bytes -= s.end;
                    v.push(s.path);
                }
            }
            v
        };
        if doomed.is_empty() {
            return Ok(());
        }
        for p in &doomed {
            self.storage
                .remove(p)
                .map_err(|e| io_err("delete delivered segment", p, e))?;
        }
        lock(&self.stats).segments_deleted += doomed.len() as u64;
        self.storage
            .sync_dir(&self.dir)
            .map_err(|e| io_err("sync directory", &self.dir, e))
    }

    /// Waits until a record with seq >= `seq` exists. Cancel-safe; no polling.
    pub async fn wait_for_append(&self, seq: u64) {
        loop {
            let notified = self.notify.notified();
            let mut notified = std::pin::pin!(notified);
            notified.as_mut().enable();
            if self.next_seq() > seq {
                return;
            }
            notified.await;
        }
    }

    /// Per-destination queue depth and age, plus totals.
    pub fn status(&self) -> SpoolStatus {
        let cs: Vec<(String, u64)> = lock(&self.cursors)
            .iter()
            .map(|(n, c)| (n.clone(), c.acked))
            .collect();
        let st = lock(&self.state);
        let now = now_ms();
        let destinations = cs
            .into_iter()
            .map(|(name, cursor)| {
                let mut records = 0;
                let mut bytes = 0;
                let mut oldest = None;
                for s in &st.segments {
                    let (r, b) = s.queued_from(cursor).unwrap_or_else(|e| {
                        tracing::warn!(segment = %s.path.display(), error = %e,
                            "spool status: cannot read segment; counting all of it");
                        (s.events, s.event_bytes)
                    });
                    if r > 0 && oldest.is_none() {
                        oldest = Some(Duration::from_millis(now.saturating_sub(s.created_ms)));
                    }
                    records += r;
                    bytes += b;
                }
                DestinationStatus {
                    name,
                    cursor,
                    queued_records: records,
                    queued_bytes: bytes,
                    oldest_age: oldest,
                }
            })
            .collect();
        SpoolStatus {
            dir: self.dir.clone(),
            destinations,
            total_records: st.segments.iter().map(|s| s.events).sum(),
            total_bytes: st.total_bytes,
            max_bytes: self.opts.max_bytes,
            segments: st.segments.len(),
            next_seq: self.next_seq(),
        }
    }

    /// Releases a removed destination's cursor (deletes its file) so it no longer pins disk.
    pub fn forget_destination(&self, destination: &str) -> Result<(), SpoolError> {
        let removed = lock(&self.cursors).remove(destination);
        if let Some(c) = removed {
            self.storage
                .remove(&c.file.path)
                .and_then(|()| self.storage.sync_dir(&self.dir))
                .map_err(|e| io_err("delete cursor file", &c.file.path, e))?;
            self.reclaim()?;
        }
        Ok(())
    }

    /// Counters since `open`, including what recovery found.
    pub fn stats(&self) -> SpoolStats {
        lock(&self.stats).clone()
    }
}

#[cfg(test)]
mod tests;
