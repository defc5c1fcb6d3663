//! Start-up recovery: validate every segment, cut the torn tail of the newest one, quarantine
//! damaged ranges of older ones, and rebuild the in-memory view.
//!
//! Recovery never panics and never refuses to start because of damaged data: what cannot be
//! read is moved to `quarantine/` and counted in [`SpoolStats`](super::SpoolStats).

use std::collections::{HashMap, VecDeque};
use std::path::{Path, PathBuf};

use super::record::{SegmentHeader, SEGMENT_HEADER};
use super::segment::{self, BadRange, Scan, Segment};
use super::storage::{read_exact_at, ReadFile, Storage};
use super::Chain;
use super::{io_err, SpoolError, SpoolStats};

pub(crate) const QUARANTINE: &str = "quarantine";
const TMP_SUFFIX: &str = ".tmp";

/// The spool's state as found on disk.
#[derive(Debug)]
pub(crate) struct Recovered {
    pub segments: VecDeque<Segment>,
    pub checkpoints: HashMap<String, Chain>,
    /// One past the highest seq found.
    pub next_seq: u64,
}

struct Ctx<'a> {
    storage: &'a dyn Storage,
    dir: &'a Path,
    stats: &'a mut SpoolStats,
}

impl Ctx<'_> {
    fn quarantine_dir(&self) -> Result<PathBuf, SpoolError> {
        let q = self.dir.join(QUARANTINE);
        self.storage
            .create_dir_all(&q)
            .map_err(|e| io_err("create quarantine directory", &q, e))?;
        Ok(q)
    }

    /// Moves a whole segment file to `quarantine/`.
    fn quarantine_file(&mut self, path: &Path, name: &str, len: u64) -> Result<(), SpoolError> {
        let q = self.quarantine_dir()?;
        let to = q.join(name);
        self.storage
            .rename(path, &to)
            .map_err(|e| io_err("move damaged segment to quarantine", path, e))?;
        self.storage
            .sync_dir(&q)
            .and_then(|()| self.storage.sync_dir(self.dir))
            .map_err(|e| io_err("sync directory", self.dir, e))?;
        self.stats.quarantined_ranges += 1;
        self.stats.quarantined_bytes += len;
        tracing::error!(
            segment = %path.display(),
            quarantined_to = %to.display(),
            "spool segment has an unreadable header; moved to quarantine, its records are lost"
        );
        Ok(())
    }

    /// Copies `[start, end)` of a segment into a quarantine file.
    fn quarantine_range(
        &mut self,
        reader: &dyn ReadFile,
        name: &str,
        r: &BadRange,
        next_segment_seq: Option<u64>,
    ) -> Result<(), SpoolError> {
        let q = self.quarantine_dir()?;
        let to = q.join(format!("{name}.{}-{}.bad", r.start, r.end));
        let mut f = self
            .storage
            .create(&to)
            .map_err(|e| io_err("create quarantine file", &to, e))?;
        let mut off = r.start;
        let mut buf = vec![0u8; 1 << 20];
        while off < r.end {
            let n = ((r.end - off) as usize).min(buf.len());
            let got = reader
                .read_at(off, &mut buf[..n])
                .map_err(|e| io_err("read damaged range", &to, e))?;
            if got == 0 {
                break;
            }
            f.write_all_at(off - r.start, &buf[..got])
                .map_err(|e| io_err("write quarantine file", &to, e))?;
            off += got as u64;
        }
        f.sync_data()
            .map_err(|e| io_err("sync quarantine file", &to, e))?;
        self.storage
            .sync_dir(&q)
            .map_err(|e| io_err("sync directory", &q, e))?;
        let after = r.next_seq.or(next_segment_seq);
        let lost = match (r.prev_seq, after) {
            (Some(p), Some(n)) if n > p => n - p - 1,
            (None, Some(_)) | (_, None) => 1,
            _ => 1,
        };
        self.stats.quarantined_ranges += 1;
        self.stats.quarantined_bytes += r.end - r.start;
        self.stats.records_lost += lost;
        tracing::error!(
            segment = name,
            start = r.start,
            end = r.end,
            quarantined_to = %to.display(),
            records_lost_estimate = lost,
            "spool segment has a damaged range (CRC mismatch); moved to quarantine"
        );
        Ok(())
    }
}

/// Rewrites a segment keeping only `runs` (clipped to `cut`), atomically via a temporary file.
fn rewrite(
    storage: &dyn Storage,
    dir: &Path,
    path: &Path,
    header: SegmentHeader,
    reader: &dyn ReadFile,
    runs: &[(u64, u64)],
    cut: u64,
) -> Result<(), SpoolError> {
    let tmp = path.with_extension(format!("log{TMP_SUFFIX}"));
    let mut f = storage
        .create(&tmp)
        .map_err(|e| io_err("create repaired segment", &tmp, e))?;
    f.write_all_at(0, &header.encode())
        .map_err(|e| io_err("write repaired segment", &tmp, e))?;
    let mut out = SEGMENT_HEADER as u64;
    let mut buf = vec![0u8; 1 << 20];
    for &(s, e) in runs {
        let e = e.min(cut);
        let mut off = s;
        while off < e {
            let n = ((e - off) as usize).min(buf.len());
            if !read_exact_at(reader, off, &mut buf[..n])
                .map_err(|err| io_err("read segment", path, err))?
            {
                break;
            }
            f.write_all_at(out, &buf[..n])
                .map_err(|err| io_err("write repaired segment", &tmp, err))?;
            out += n as u64;
            off += n as u64;
        }
    }
    f.sync_data()
        .map_err(|e| io_err("sync repaired segment", &tmp, e))?;
    storage
        .rename(&tmp, path)
        .map_err(|e| io_err("replace segment with repaired copy", path, e))?;
    storage
        .sync_dir(dir)
        .map_err(|e| io_err("sync directory", dir, e))
}

/// Reads the header; `Err(true)` when the file looks like an interrupted creation (short or zeroes).
fn read_header(reader: &dyn ReadFile, len: u64) -> Result<SegmentHeader, bool> {
    let mut b = [0u8; SEGMENT_HEADER];
    match read_exact_at(reader, 0, &mut b) {
        Ok(true) => {}
        Ok(false) => return Err(true),
        Err(_) => return Err(false),
    }
    SegmentHeader::decode(&b).ok_or(len <= SEGMENT_HEADER as u64 || b.iter().all(|&x| x == 0))
}

/// Scans `dir`, repairs what it must and returns the recovered segments.
pub(crate) fn recover(
    storage: &dyn Storage,
    dir: &Path,
    stats: &mut SpoolStats,
) -> Result<Recovered, SpoolError> {
    let names = storage
        .list(dir)
        .map_err(|e| io_err("list spool directory", dir, e))?;
    let mut segs: Vec<(u64, String)> = Vec::new();
    for name in names {
        if name.ends_with(TMP_SUFFIX) {
            // An interrupted repair; the original is still in place.
            let p = dir.join(&name);
            storage
                .remove(&p)
                .map_err(|e| io_err("remove leftover temporary file", &p, e))?;
        } else if let Some(first) = segment::parse_name(&name) {
            segs.push((first, name));
        }
    }
    segs.sort();
    let mut ctx = Ctx {
        storage,
        dir,
        stats,
    };
    let mut out = Recovered {
        segments: VecDeque::new(),
        checkpoints: HashMap::new(),
        next_seq: 1,
    };
    let count = segs.len();
    for (i, (first, name)) in segs.iter().enumerate() {
        let is_last = i + 1 == count;
        let next_segment_seq = segs.get(i + 1).map(|s| s.0);
        let path = dir.join(name);
        let reader = storage
            .open_read(&path)
            .map_err(|e| io_err("open segment", &path, e))?;
        let len = reader
            .size()
            .map_err(|e| io_err("stat segment", &path, e))?;
        let header = match read_header(reader.as_ref(), len) {
            Ok(h) if h.first_seq == *first => h,
            Err(true) if is_last => {
                // Crash while the segment was being created: it never held a durable record.
                storage
                    .remove(&path)
                    .and_then(|()| storage.sync_dir(dir))
                    .map_err(|e| io_err("remove half-created segment", &path, e))?;
                ctx.stats.torn_segments_removed += 1;
                continue;
            }
            _ => {
                drop(reader);
                ctx.quarantine_file(&path, name, len)?;
                out.next_seq = out.next_seq.max(*first);
                continue;
            }
        };
        let scan = segment::scan(reader.clone(), path.clone(), header, len)
            .map_err(|e| io_err("scan segment", &path, e))?;
        let scan = repair(
            &mut ctx,
            &path,
            name,
            header,
            len,
            is_last,
            next_segment_seq,
            scan,
        )?;
        ctx.stats.recovered_segments += 1;
        for (source, chain) in scan.checkpoints {
            // A chain cut from its full checkpoint by damage is not used: the older one is
            // (the source reads again what came after it).
            let newer = out
                .checkpoints
                .get(&source)
                .is_none_or(|c| chain.seq > c.seq);
            if newer && !chain.orphan {
                out.checkpoints.insert(source, chain);
            }
        }
        out.next_seq = out.next_seq.max(scan.segment.next_seq);
        out.segments.push_back(scan.segment);
    }
    Ok(out)
}

/// Applies what a scan found: quarantine bad ranges, cut the torn tail; returns the final scan.
#[allow(clippy::too_many_arguments)]
fn repair(
    ctx: &mut Ctx<'_>,
    path: &Path,
    name: &str,
    header: SegmentHeader,
    len: u64,
    is_last: bool,
    next_segment_seq: Option<u64>,
    scan: Scan,
) -> Result<Scan, SpoolError> {
    // In the newest segment every acknowledged batch ends with its checkpoint record, so
    // anything after the last checkpoint is an unacknowledged, possibly torn, batch.
    let cut = if is_last {
        scan.last_checkpoint_end
    } else {
        len
    };
    if cut == len && scan.bad.is_empty() {
        return Ok(scan);
    }
    let reader = scan.segment.reader.clone();
    let mut needs_rewrite = false;
    for r in scan.bad.iter().filter(|r| r.start < cut) {
        ctx.quarantine_range(reader.as_ref(), name, r, next_segment_seq)?;
        if r.end < cut {
            needs_rewrite = true;
        }
    }
    if is_last && cut < len {
        ctx.stats.torn_bytes_truncated += len - cut;
        ctx.stats.incomplete_batch_records += scan.events_after_checkpoint;
        tracing::warn!(
            segment = %path.display(),
            bytes = len - cut,
            records = scan.events_after_checkpoint,
            "spool: cut the unacknowledged batch at the end of the newest segment (torn by a crash)"
        );
    }
    // The end of the data we keep: after the last valid run below the cut.
    let keep_end = scan
        .runs
        .iter()
        .filter(|r| r.0 < cut)
        .map(|r| r.1.min(cut))
        .max()
        .unwrap_or(SEGMENT_HEADER as u64);
    if needs_rewrite {
        rewrite(
            ctx.storage,
            ctx.dir,
            path,
            header,
            reader.as_ref(),
            &scan.runs,
            cut,
        )?;
    } else {
        let mut f = ctx
            .storage
            .open_write(path)
            .map_err(|e| io_err("open segment for repair", path, e))?;
        f.set_len(keep_end)
            .and_then(|()| f.sync_data())
            .map_err(|e| io_err("truncate segment", path, e))?;
    }
    drop(reader);
    let reader = ctx
        .storage
        .open_read(path)
        .map_err(|e| io_err("open segment", path, e))?;
    let len = reader.size().map_err(|e| io_err("stat segment", path, e))?;
    segment::scan(reader, path.to_path_buf(), header, len).map_err(|e| io_err("scan", path, e))
}
