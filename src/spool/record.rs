//! Byte layout of spool records, segment headers and checkpoint payloads.
//!
//! Pure encoding and decoding, no I/O: everything here is deterministic and checked by CRC32C,
//! so recovery can tell a valid record from a torn or corrupt one.

/// Bytes before a record's payload: `u32 len | u32 crc | u64 seq | u8 kind`.
pub(crate) const RECORD_HEADER: usize = 17;
/// Largest payload accepted in one record (a guard against garbage lengths during recovery).
pub const MAX_PAYLOAD: usize = 64 << 20;
/// Size of the segment header.
pub(crate) const SEGMENT_HEADER: usize = 32;
const SEGMENT_MAGIC: &[u8; 8] = b"SCSPOOL\0";
const SEGMENT_VERSION: u32 = 1;

/// What a record carries.
#[repr(u8)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecordKind {
    /// An opaque event payload, delivered to every destination.
    Event = 1,
    /// A source checkpoint (`u16 source length | source name | checkpoint data`); never delivered.
    Checkpoint = 2,
    /// A change to the source's checkpoint before it (same layout): the source's checkpoint is
    /// its last `Checkpoint` record followed by the deltas after it, in order.
    CheckpointDelta = 3,
}

impl RecordKind {
    pub(crate) fn from_u8(b: u8) -> Option<RecordKind> {
        match b {
            1 => Some(RecordKind::Event),
            2 => Some(RecordKind::Checkpoint),
            3 => Some(RecordKind::CheckpointDelta),
            _ => None,
        }
    }

    /// A full checkpoint or a delta: part of a source's checkpoint, never delivered.
    pub(crate) fn is_checkpoint(b: u8) -> bool {
        b == RecordKind::Checkpoint as u8 || b == RecordKind::CheckpointDelta as u8
    }
}

/// Encoded size of a record with a payload of `payload_len` bytes.
pub(crate) fn record_size(payload_len: usize) -> usize {
    RECORD_HEADER + payload_len
}

fn record_crc(seq: u64, kind: u8, payload: &[u8]) -> u32 {
    let mut head = [0u8; 9];
    head[..8].copy_from_slice(&seq.to_le_bytes());
    head[8] = kind;
    let crc = crc32c::crc32c(&head);
    crc32c::crc32c_append(crc, payload)
}

/// Appends one encoded record to `out`. `parts` are concatenated to form the payload, so a
/// checkpoint can be encoded without first copying the source name and data together.
pub(crate) fn encode_record(out: &mut Vec<u8>, seq: u64, kind: RecordKind, parts: &[&[u8]]) {
    let len: usize = parts.iter().map(|p| p.len()).sum();
    let start = out.len();
    out.extend_from_slice(&(len as u32).to_le_bytes());
    out.extend_from_slice(&[0u8; 4]);
    out.extend_from_slice(&seq.to_le_bytes());
    out.push(kind as u8);
    for p in parts {
        out.extend_from_slice(p);
    }
    let crc = record_crc(seq, kind as u8, &out[start + RECORD_HEADER..]);
    out[start + 4..start + 8].copy_from_slice(&crc.to_le_bytes());
}

/// The fixed part of a record, read before its payload.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RecordHeader {
    pub len: usize,
    pub crc: u32,
    pub seq: u64,
    pub kind: u8,
}

pub(crate) fn decode_header(b: &[u8]) -> RecordHeader {
    RecordHeader {
        len: u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize,
        crc: u32::from_le_bytes([b[4], b[5], b[6], b[7]]),
        seq: u64::from_le_bytes([b[8], b[9], b[10], b[11], b[12], b[13], b[14], b[15]]),
        kind: b[16],
    }
}

/// True when `payload` matches the header's CRC.
pub(crate) fn crc_ok(h: &RecordHeader, payload: &[u8]) -> bool {
    record_crc(h.seq, h.kind, payload) == h.crc
}

/// Header at the start of every segment file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct SegmentHeader {
    pub first_seq: u64,
    pub created_ms: u64,
}

impl SegmentHeader {
    /// `magic(8) | version u32 | first_seq u64 | created_ms u64 | crc32c u32`.
    pub fn encode(&self) -> [u8; SEGMENT_HEADER] {
        let mut b = [0u8; SEGMENT_HEADER];
        b[..8].copy_from_slice(SEGMENT_MAGIC);
        b[8..12].copy_from_slice(&SEGMENT_VERSION.to_le_bytes());
        b[12..20].copy_from_slice(&self.first_seq.to_le_bytes());
        b[20..28].copy_from_slice(&self.created_ms.to_le_bytes());
        let crc = crc32c::crc32c(&b[..28]);
        b[28..32].copy_from_slice(&crc.to_le_bytes());
        b
    }

    /// `None` when the bytes are not a valid header of a version this build reads.
    pub fn decode(b: &[u8]) -> Option<SegmentHeader> {
        if b.len() < SEGMENT_HEADER || &b[..8] != SEGMENT_MAGIC {
            return None;
        }
        let crc = u32::from_le_bytes([b[28], b[29], b[30], b[31]]);
        if crc32c::crc32c(&b[..28]) != crc {
            return None;
        }
        if u32::from_le_bytes([b[8], b[9], b[10], b[11]]) != SEGMENT_VERSION {
            return None;
        }
        let u64_at = |i: usize| {
            let mut a = [0u8; 8];
            a.copy_from_slice(&b[i..i + 8]);
            u64::from_le_bytes(a)
        };
        Some(SegmentHeader {
            first_seq: u64_at(12),
            created_ms: u64_at(20),
        })
    }
}

/// Splits a checkpoint payload into `(source, data)`; `None` when malformed.
pub(crate) fn decode_checkpoint(payload: &[u8]) -> Option<(&str, &[u8])> {
    if payload.len() < 2 {
        return None;
    }
    let n = u16::from_le_bytes([payload[0], payload[1]]) as usize;
    let name = payload.get(2..2 + n)?;
    let name = std::str::from_utf8(name).ok()?;
    Some((name, &payload[2 + n..]))
}

/// The length prefix of a checkpoint payload for `source` (which must be at most `u16::MAX` bytes).
pub(crate) fn checkpoint_prefix(source: &str) -> [u8; 2] {
    (source.len() as u16).to_le_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_roundtrip_and_crc() {
        let mut out = Vec::new();
        encode_record(&mut out, 42, RecordKind::Event, &[b"hello", b" world"]);
        assert_eq!(out.len(), record_size(11));
        let h = decode_header(&out);
        assert_eq!((h.len, h.seq, h.kind), (11, 42, 1));
        assert!(crc_ok(&h, &out[RECORD_HEADER..]));
        out[RECORD_HEADER] ^= 1;
        assert!(!crc_ok(&h, &out[RECORD_HEADER..]));
    }

    #[test]
    fn crc_covers_seq_and_kind() {
        let mut out = Vec::new();
        encode_record(&mut out, 7, RecordKind::Checkpoint, &[b"x"]);
        let mut h = decode_header(&out);
        h.seq = 8;
        assert!(!crc_ok(&h, &out[RECORD_HEADER..]));
        let mut h = decode_header(&out);
        h.kind = 1;
        assert!(!crc_ok(&h, &out[RECORD_HEADER..]));
    }

    #[test]
    fn segment_header_roundtrip() {
        let h = SegmentHeader {
            first_seq: 99,
            created_ms: 1234,
        };
        let b = h.encode();
        assert_eq!(SegmentHeader::decode(&b), Some(h));
        let mut bad = b;
        bad[13] ^= 0x80;
        assert_eq!(SegmentHeader::decode(&bad), None);
        assert_eq!(SegmentHeader::decode(&b[..10]), None);
    }

    #[test]
    fn checkpoint_payload() {
        let mut p = checkpoint_prefix("src").to_vec();
        p.extend_from_slice(b"src");
        p.extend_from_slice(b"data");
        assert_eq!(decode_checkpoint(&p), Some(("src", &b"data"[..])));
        assert_eq!(decode_checkpoint(&p[..3]), None);
    }
}
