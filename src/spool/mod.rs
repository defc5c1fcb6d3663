//! The durable spool: one segmented, append-only log between the sources and every destination.
//!
//! A source appends a page of events plus its checkpoint as one batch, synced once; each
//! destination reads from its own persisted cursor; a segment is deleted once every cursor has
//! passed it. Nothing acknowledged to a source is ever dropped: a full spool pushes back instead.
//!
//! # On-disk format (`dir/`)
//! ```text
//! LOCK                             flock held while a Spool is open (second instance refused)
//! RESERVE                          zeros (64 KiB or more) given back to the disk when it is full
//! seg-<first seq, 20 digits>.log   header | record*            (a new one past segment_bytes)
//! cursor-<destination>.bin         two 4 KiB slots, written alternately (see cursor.rs)
//! quarantine/                      damaged ranges and segments, kept for inspection
//! ```
//! - Segment header (32 bytes): `"SCSPOOL\0" | u32 version=1 | u64 first_seq | u64 created_ms |
//!   u32 crc32c(previous 28 bytes)`. All integers little-endian.
//! - Record: `u32 len | u32 crc32c(seq ‖ kind ‖ payload) | u64 seq | u8 kind | payload[len]`,
//!   `kind` 1 = event (opaque payload), 2 = checkpoint (`u16 n | source name[n] | data`),
//!   3 = checkpoint delta (same layout; see [`Chain`]).
//! - Seqs strictly increase through the log but may have gaps (a failed batch burns its seqs).
//!   The records of one batch have consecutive seqs; the checkpoint is the batch's last record.
//! - Cursor slot: `"SCCURSOR" | u32 version=1 | u64 generation | u64 next seq | u16 n | name[n] |
//!   u32 crc32c`, zero padded to 4096 bytes; the valid slot with the higher generation wins.
//! - Checkpoints survive segment deletion because every new segment starts with a copy of the
//!   latest checkpoint chain of every source (its full checkpoint, then its deltas), and the
//!   newest segment is never deleted.
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
//! - **A full disk never stops delivery**: reading needs no space, a cursor persist overwrites
//!   the blocks its file was created with, and deleting segments frees space. When a batch does
//!   not fit on the disk its segment is closed, so that the next batch starts a new one and the
//!   old one can be deleted once delivered; should even the new segment's first bytes not fit,
//!   the `RESERVE` file is deleted to make room (it is written again once segments were
//!   deleted). [`Spool::disk_full`] tells the free space while appends are refused for it.
//! - With no destination registered, nothing is reclaimed (a destination added later receives
//!   everything still retained).

mod append;
mod cursor;
mod deliver;
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

/// What a reader keeps between [`Spool::read_with`] calls so that reading a batch allocates
/// nothing once the buffers have grown: the payload buffers of the batch before, and the read
/// window. (Buffers allocated on one thread and freed on another make glibc give memory back
/// and fault it in again for every batch.)
#[derive(Debug)]
pub struct ReadBuffers {
    spare: Spare,
    window: Window,
}

/// Payload buffers kept for the next read, and their capacity in bytes.
#[derive(Debug, Default)]
struct Spare {
    bufs: Vec<Vec<u8>>,
    bytes: usize,
}

impl Spare {
    /// A cleared buffer for the next payload.
    fn take(&mut self) -> Vec<u8> {
        let mut b = self.bufs.pop().unwrap_or_default();
        self.bytes -= b.capacity();
        b.clear();
        b
    }
}

impl Default for ReadBuffers {
    fn default() -> Self {
        ReadBuffers {
            spare: Spare::default(),
            window: Window::new(READ_WINDOW),
        }
    }
}

impl ReadBuffers {
    /// Takes back the payload buffers of `records` (which is left empty) for the next read,
    /// up to [`KEEP_SPARE`] bytes of them.
    pub fn recycle(&mut self, records: &mut Vec<Record>) {
        for r in records.drain(..) {
            let cap = r.payload.capacity();
            if cap <= KEEP_PAYLOAD && self.spare.bytes + cap <= KEEP_SPARE {
                self.spare.bytes += cap;
                self.spare.bufs.push(r.payload);
            }
        }
    }
}

/// Bytes a reader's window holds at once.
const READ_WINDOW: usize = 256 * 1024;
/// Payload buffers larger than this are not kept for reuse (one huge event).
const KEEP_PAYLOAD: usize = 64 * 1024;
/// Payload buffers kept at most, in bytes: a batch's worth (whatever mix of sizes came before).
const KEEP_SPARE: usize = 8 << 20;

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
    /// Of those, the ones refused because the disk was full.
    pub disk_full_rejections: u64,
    /// Cursor persists put off because the disk was full (retried with the next acknowledgement).
    pub cursor_persists_deferred: u64,
    /// Times the `RESERVE` file was deleted to make room on a full disk.
    pub reserve_released: u64,
    /// [`Spool::disk_full`] when the counters were read.
    pub disk_full_free_bytes: Option<u64>,
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
    #[error("{}", full_message(dir, *used, *max, *disk_full, *free))]
    Full {
        dir: PathBuf,
        used: u64,
        max: u64,
        /// The file system is full (the spool itself may be far below `max`).
        disk_full: bool,
        /// Bytes free on the file system when `disk_full` (from `statvfs`).
        free: u64,
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

fn full_message(dir: &Path, used: u64, max: u64, disk_full: bool, free: u64) -> String {
    let dir = dir.display();
    if disk_full {
        format!("spool {dir}: disk full ({free} bytes free on its file system; the spool holds {used} of max_bytes {max}); sources pause until space is freed, destinations go on delivering")
    } else {
        format!("spool {dir}: full ({used} of {max} bytes used); sources pause until destinations catch up")
    }
}

pub(crate) fn io_err(op: &'static str, path: &Path, source: io::Error) -> SpoolError {
    SpoolError::Io {
        op,
        path: path.to_path_buf(),
        source,
    }
}

/// Name of the file given back to the disk when it is full (see the module docs).
const RESERVE: &str = "RESERVE";
/// Least size of the `RESERVE` file (or `segment_bytes` if smaller); it is made twice what a
/// new segment needs when that is more (many sources with large checkpoints).
const RESERVE_BYTES: u64 = 64 << 10;
/// While the disk is full, a batch that `statvfs` says cannot fit is still tried this often.
const DISK_FULL_RETRY: Duration = Duration::from_secs(5);
/// `Spool::disk_free` while the disk is not known to be full.
const DISK_NOT_FULL: u64 = u64::MAX;

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
    /// When a batch last failed for want of disk space.
    no_space_at: Option<Instant>,
}

/// A source's checkpoint as the spool holds it: its last full checkpoint and the deltas
/// appended after it, in order, so a source whose state grows page by page (seen ids) writes
/// only what changed instead of the whole state with every batch. `seq` is the newest part's.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Chain {
    pub seq: u64,
    pub parts: Vec<Vec<u8>>,
    /// Deltas were found without the full checkpoint before them (damage): not usable.
    pub orphan: bool,
}

impl Chain {
    /// Adds a record of kind `kind` (a full checkpoint or a delta) with seq `seq`.
    pub(crate) fn add(&mut self, seq: u64, kind: RecordKind, data: Vec<u8>) {
        if kind == RecordKind::CheckpointDelta {
            self.orphan |= self.parts.is_empty();
            self.parts.push(data);
        } else {
            self.parts = vec![data];
            self.orphan = false;
        }
        self.seq = seq;
    }

    /// Bytes of the records that re-append this chain for `source` in a new segment.
    fn record_bytes(&self, source: &str) -> u64 {
        self.parts
            .iter()
            .map(|d| record_size(2 + source.len() + d.len()) as u64)
            .sum()
    }
}

#[derive(Debug)]
struct State {
    segments: VecDeque<Segment>,
    checkpoints: HashMap<String, Chain>,
    total_bytes: u64,
}

#[derive(Debug)]
struct Cursor {
    file: CursorFile,
    acked: u64,
    persisted: u64,
    last_persist: Instant,
    /// The last persist was put off for want of disk space (logged once per episode).
    deferred: bool,
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
    /// Bytes free on the disk when the last append was refused for a full disk;
    /// [`DISK_NOT_FULL`] once an append succeeded.
    disk_free: AtomicU64,
    /// The `RESERVE` file is in place (complete and synced). Held while it is written or
    /// deleted; taken after any other lock but `stats`.
    reserve: Mutex<bool>,
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
                            deferred: false,
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

        // A RESERVE cut short by a crash while it was written is written again later.
        let reserve_path = dir.join(RESERVE);
        let reserve = match storage.open_read(&reserve_path).and_then(|f| f.size()) {
            Ok(size) if size >= RESERVE_BYTES.min(opts.segment_bytes) => true,
            Ok(_) => {
                // Best effort: writing it again truncates it anyway.
                let _ = storage.remove(&reserve_path);
                false
            }
            Err(_) => false,
        };

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
                no_space_at: None,
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
            disk_free: AtomicU64::new(DISK_NOT_FULL),
            reserve: Mutex::new(reserve),
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

    /// The latest durable full checkpoint payload of `source`, for sources that never append
    /// deltas ([`Spool::checkpoint_chain`] gives the deltas too).
    pub fn checkpoint(&self, source: &str) -> Option<Vec<u8>> {
        let st = lock(&self.state);
        let chain = st.checkpoints.get(source)?;
        debug_assert!(
            chain.parts.len() == 1,
            "{source} appends deltas; use checkpoint_chain"
        );
        chain.parts.first().cloned()
    }

    /// The latest durable checkpoint of `source`: its full checkpoint, then every delta
    /// appended after it ([`Spool::append_batch_delta`]), oldest first.
    pub fn checkpoint_chain(&self, source: &str) -> Option<Vec<Vec<u8>>> {
        lock(&self.state)
            .checkpoints
            .get(source)
            .map(|c| c.parts.clone())
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

    /// Counters since `open`, including what recovery found.
    pub fn stats(&self) -> SpoolStats {
        let mut s = lock(&self.stats).clone();
        s.disk_full_free_bytes = self.disk_full();
        s
    }

    /// `Some(bytes free on the file system)` while appends are refused because the disk is full
    /// (measured at the last refusal); `None` once an append succeeds again.
    pub fn disk_full(&self) -> Option<u64> {
        match self.disk_free.load(Ordering::Relaxed) {
            DISK_NOT_FULL => None,
            free => Some(free),
        }
    }

    /// Notes a write refused for want of space (`free` bytes free on the disk; measured when
    /// `None`) and returns the error the caller sees.
    fn disk_full_error(&self, free: Option<u64>) -> SpoolError {
        let free = free.unwrap_or_else(|| self.storage.free_space(&self.dir).unwrap_or(0));
        self.disk_free
            .store(free.min(DISK_NOT_FULL - 1), Ordering::Relaxed);
        {
            let mut s = lock(&self.stats);
            s.full_rejections += 1;
            s.disk_full_rejections += 1;
        }
        let used = lock(&self.state).total_bytes;
        self.full(used, true, free)
    }

    /// Deletes the `RESERVE` file to make room on a full disk; `true` when there was one.
    fn release_reserve(&self) -> bool {
        let mut reserve = lock(&self.reserve);
        if !std::mem::replace(&mut *reserve, false) {
            return false;
        }
        let path = self.dir.join(RESERVE);
        let _ = self.storage.remove(&path);
        let _ = self.storage.sync_dir(&self.dir);
        lock(&self.stats).reserve_released += 1;
        tracing::warn!(message = "Disk full: the spool's reserve file was deleted to make room; it is written again once delivered segments are deleted.", file = %path.display());
        true
    }

    /// Writes the `RESERVE` file when it is missing (best effort: on a full disk it is left
    /// out and tried again after the next segments are deleted).
    fn ensure_reserve(&self) {
        if *lock(&self.reserve) {
            return;
        }
        let bytes = RESERVE_BYTES
            .min(self.opts.segment_bytes)
            .max(2 * self.roll_bytes());
        let mut reserve = lock(&self.reserve);
        if *reserve {
            return;
        }
        let path = self.dir.join(RESERVE);
        let written = self.storage.create(&path).and_then(|mut f| {
            f.write_all_at(0, &vec![0u8; bytes as usize])?;
            f.sync_data()?;
            self.storage.sync_dir(&self.dir)
        });
        match written {
            Ok(()) => *reserve = true,
            Err(e) => {
                let _ = self.storage.remove(&path);
                tracing::debug!(file = %path.display(), error = %e, "spool: reserve file not written; trying again after the next segments are deleted");
            }
        }
    }
}

#[cfg(test)]
mod tests;
