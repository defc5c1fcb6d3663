//! Segment files: naming, the in-memory view of a segment, and the record-by-record scan.
//!
//! A segment is `header | record*`. The scan validates every record (length, kind, seq order,
//! CRC32C), re-synchronises after damage by searching for the next valid record, and reports
//! the valid runs and bad ranges so recovery can truncate or quarantine.

use std::collections::HashMap;
use std::io;
use std::path::PathBuf;
use std::sync::Arc;

use super::record::{
    crc_ok, decode_checkpoint, decode_header, record_size, RecordHeader, RecordKind, SegmentHeader,
    MAX_PAYLOAD, RECORD_HEADER, SEGMENT_HEADER,
};
use super::storage::{ReadFile, Window};
use super::Chain;

/// A sparse index entry is kept every this many bytes of a segment.
const INDEX_EVERY: u64 = 64 * 1024;
const PREFIX: &str = "seg-";
const SUFFIX: &str = ".log";

/// `seg-<first seq, 20 digits>.log`.
pub(crate) fn file_name(first_seq: u64) -> String {
    format!("{PREFIX}{first_seq:020}{SUFFIX}")
}

/// The first seq encoded in a segment file name.
pub(crate) fn parse_name(name: &str) -> Option<u64> {
    let digits = name.strip_prefix(PREFIX)?.strip_suffix(SUFFIX)?;
    if digits.len() != 20 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

#[derive(Debug, Clone, Copy)]
pub(crate) struct IndexEntry {
    pub seq: u64,
    pub offset: u64,
    pub events_before: u64,
    pub event_bytes_before: u64,
}

/// What the spool knows about one segment (only its committed, durable part).
#[derive(Debug)]
pub(crate) struct Segment {
    pub first_seq: u64,
    pub path: PathBuf,
    pub created_ms: u64,
    pub reader: Arc<dyn ReadFile>,
    /// Committed length: every byte below is durable and valid.
    pub end: u64,
    /// One past the seq of the last record (== `first_seq` when empty).
    pub next_seq: u64,
    pub events: u64,
    pub event_bytes: u64,
    index: Vec<IndexEntry>,
}

impl Segment {
    pub fn new(
        first_seq: u64,
        path: PathBuf,
        created_ms: u64,
        reader: Arc<dyn ReadFile>,
    ) -> Segment {
        Segment {
            first_seq,
            path,
            created_ms,
            reader,
            end: SEGMENT_HEADER as u64,
            next_seq: first_seq,
            events: 0,
            event_bytes: 0,
            index: Vec::new(),
        }
    }

    /// Records one more committed record at `self.end`.
    pub fn push(&mut self, seq: u64, kind: RecordKind, payload_len: usize) {
        let need_entry = self
            .index
            .last()
            .is_none_or(|e| self.end >= e.offset + INDEX_EVERY);
        if need_entry {
            self.index.push(IndexEntry {
                seq,
                offset: self.end,
                events_before: self.events,
                event_bytes_before: self.event_bytes,
            });
        }
        let size = record_size(payload_len) as u64;
        self.end += size;
        self.next_seq = seq + 1;
        if kind == RecordKind::Event {
            self.events += 1;
            self.event_bytes += size;
        }
    }

    /// A record boundary at or before the record with `seq`, and the events before it.
    pub fn locate(&self, seq: u64) -> IndexEntry {
        let i = self.index.partition_point(|e| e.seq <= seq);
        if i == 0 {
            IndexEntry {
                seq: self.first_seq,
                offset: SEGMENT_HEADER as u64,
                events_before: 0,
                event_bytes_before: 0,
            }
        } else {
            self.index[i - 1]
        }
    }

    /// `(events, bytes)` of the event records with seq >= `seq` in this segment. Reads at
    /// most one index interval (64 KiB) of record headers.
    pub fn queued_from(&self, seq: u64) -> io::Result<(u64, u64)> {
        if seq >= self.next_seq {
            return Ok((0, 0));
        }
        if seq <= self.first_seq {
            return Ok((self.events, self.event_bytes));
        }
        let e = self.locate(seq);
        let (mut events, mut bytes) = (e.events_before, 0u64);
        let mut win = Window::new(INDEX_EVERY as usize);
        let mut off = e.offset;
        // Count the events before `seq` from the index entry on.
        while off < self.end {
            let Some(hb) = win.get(self.reader.as_ref(), off, RECORD_HEADER, self.end)? else {
                break;
            };
            let h = decode_header(hb);
            if h.seq >= seq {
                break;
            }
            let size = record_size(h.len) as u64;
            if h.kind == RecordKind::Event as u8 {
                events += 1;
                bytes += size;
            }
            off += size;
        }
        let before_bytes = e.event_bytes_before + bytes;
        Ok((
            self.events - events,
            self.event_bytes.saturating_sub(before_bytes),
        ))
    }
}

/// A damaged byte range found by [`scan`].
#[derive(Debug, Clone, Copy)]
pub(crate) struct BadRange {
    pub start: u64,
    pub end: u64,
    /// Seq of the last valid record before the range, if any.
    pub prev_seq: Option<u64>,
    /// Seq of the first valid record after it, if any.
    pub next_seq: Option<u64>,
}

/// Result of scanning a segment's records.
#[derive(Debug)]
pub(crate) struct Scan {
    pub segment: Segment,
    /// Valid byte runs of whole records, in order.
    pub runs: Vec<(u64, u64)>,
    pub bad: Vec<BadRange>,
    /// End offset of the last valid checkpoint record (the header's end when none).
    pub last_checkpoint_end: u64,
    /// Valid event records after the last checkpoint.
    pub events_after_checkpoint: u64,
    /// Latest checkpoint chain per source in this segment.
    pub checkpoints: HashMap<String, Chain>,
}

fn plausible(h: &RecordHeader, min_seq: u64, off: u64, limit: u64) -> bool {
    h.len <= MAX_PAYLOAD
        && off + (RECORD_HEADER + h.len) as u64 <= limit
        && RecordKind::from_u8(h.kind).is_some()
        && h.seq >= min_seq
        && h.seq - min_seq < (1 << 40)
}

/// A checkpoint found in a record: `(source, data)`.
type Found = Option<(String, Vec<u8>)>;

/// Tries to read a valid record at `off`; returns its header when valid.
fn valid_at(
    win: &mut Window,
    f: &dyn ReadFile,
    off: u64,
    min_seq: u64,
    limit: u64,
) -> io::Result<Option<(RecordHeader, Found)>> {
    let Some(hb) = win.get(f, off, RECORD_HEADER, limit)? else {
        return Ok(None);
    };
    let h = decode_header(hb);
    if !plausible(&h, min_seq, off, limit) {
        return Ok(None);
    }
    let Some(payload) = win.get(f, off + RECORD_HEADER as u64, h.len, limit)? else {
        return Ok(None);
    };
    if !crc_ok(&h, payload) {
        return Ok(None);
    }
    let ck = if RecordKind::is_checkpoint(h.kind) {
        // A checkpoint whose payload does not parse is still a valid record (CRC matched); it
        // just carries nothing we can use.
        decode_checkpoint(payload).map(|(s, d)| (s.to_owned(), d.to_vec()))
    } else {
        None
    };
    Ok(Some((h, ck)))
}

/// Scans the records of a segment whose header is `header`, up to `limit` bytes.
pub(crate) fn scan(
    f: Arc<dyn ReadFile>,
    path: PathBuf,
    header: SegmentHeader,
    limit: u64,
) -> io::Result<Scan> {
    let mut seg = Segment::new(header.first_seq, path, header.created_ms, f.clone());
    let mut win = Window::new(1 << 20);
    let mut runs: Vec<(u64, u64)> = Vec::new();
    let mut bad = Vec::new();
    let mut last_checkpoint_end = SEGMENT_HEADER as u64;
    let mut events_after_checkpoint = 0;
    let mut checkpoints = HashMap::new();
    let mut prev_seq: Option<u64> = None;
    let mut off = SEGMENT_HEADER as u64;
    while off < limit {
        let min_seq = prev_seq.map_or(header.first_seq, |s| s + 1);
        if let Some((h, ck)) = valid_at(&mut win, f.as_ref(), off, min_seq, limit)? {
            let kind = RecordKind::from_u8(h.kind).unwrap_or(RecordKind::Event);
            // Keep the segment's view contiguous: it is rebuilt after any repair anyway.
            seg.end = off;
            seg.push(h.seq, kind, h.len);
            let end = off + record_size(h.len) as u64;
            match runs.last_mut() {
                Some(r) if r.1 == off => r.1 = end,
                _ => runs.push((off, end)),
            }
            if kind != RecordKind::Event {
                last_checkpoint_end = end;
                events_after_checkpoint = 0;
                if let Some((source, data)) = ck {
                    checkpoints
                        .entry(source)
                        .or_insert_with(Chain::default)
                        .add(h.seq, kind, data);
                }
            } else {
                events_after_checkpoint += 1;
            }
            prev_seq = Some(h.seq);
            off = end;
            continue;
        }
        // Damage: look for the next valid record.
        let start = off;
        let mut found = None;
        let mut y = off + 1;
        while y + (RECORD_HEADER as u64) <= limit {
            if let Some((h, _)) = valid_at(&mut win, f.as_ref(), y, min_seq, limit)? {
                found = Some((y, h.seq));
                break;
            }
            y += 1;
        }
        match found {
            Some((y, seq)) => {
                bad.push(BadRange {
                    start,
                    end: y,
                    prev_seq,
                    next_seq: Some(seq),
                });
                off = y;
            }
            None => {
                bad.push(BadRange {
                    start,
                    end: limit,
                    prev_seq,
                    next_seq: None,
                });
                break;
            }
        }
    }
    seg.end = runs.last().map_or(SEGMENT_HEADER as u64, |r| r.1);
    Ok(Scan {
        segment: seg,
        runs,
        bad,
        last_checkpoint_end,
        events_after_checkpoint,
        checkpoints,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_roundtrip() {
        assert_eq!(file_name(12), "seg-00000000000000000012.log");
        assert_eq!(parse_name(&file_name(u64::MAX)), Some(u64::MAX));
        assert_eq!(parse_name("seg-12.log"), None);
        assert_eq!(parse_name("seg-0000000000000000001x.log"), None);
    }
}
