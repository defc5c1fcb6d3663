//! Which file is which across polls and restarts: device and inode number plus a CRC-32C of
//! the file's first bytes (up to 1 KiB), as Filebeat's and Vector's file inputs identify files.
//! Tells a renamed file, a copy, a file truncated in place and a new file apart, so that log
//! rotation neither repeats nor skips what was written.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::time::SystemTime;

use super::FileProgress;

/// How many first bytes of a file its fingerprint covers.
pub const FINGERPRINT_BYTES: usize = 1024;

/// A fingerprint over fewer bytes is not trusted to recognise a copy under another inode.
const MIN_COPY_FINGERPRINT: u32 = 16;

/// A file's device and inode number.
pub type FileId = (u64, u64);

/// A file of the input, as listed in this pass.
#[derive(Debug, Clone)]
pub struct Listed {
    /// Its path relative to the configured path: the checkpoint's key.
    pub key: String,
    pub path: PathBuf,
    pub id: FileId,
    pub len: u64,
    pub mtime: Option<SystemTime>,
}

/// What the planner needs to look at files.
pub trait Look {
    /// Whether the file has not changed (length and modification time) since it was last
    /// read to its end: then it is neither opened nor read.
    fn unchanged(&self, file: &Listed) -> bool;
    /// Opens the file (keeping the handle for reading) and returns its first bytes, at most
    /// [`FINGERPRINT_BYTES`]; `None` when it cannot be read now or is no longer `file.id`.
    fn head(&mut self, file: &Listed) -> Option<Vec<u8>>;
}

/// What a pass does, decided before anything is read.
#[derive(Debug, Default)]
pub struct Plan {
    /// The checkpoint's entries after renames and copies: every known file under its name now.
    pub files: BTreeMap<String, FileProgress>,
    /// Listed files to read (index into the listing) and where to start, in listing order.
    pub read: Vec<(usize, FileProgress)>,
    /// Entries whose file left the listing (renamed away or deleted), under their old name.
    pub gone: Vec<(String, FileProgress)>,
}

/// The fingerprint of a file's first bytes.
pub fn fingerprint(head: &[u8]) -> (u32, u32) {
    let head = &head[..head.len().min(FINGERPRINT_BYTES)];
    (head.len() as u32, crc32c::crc32c(head))
}

/// Whether `head` (the first bytes of a file of `len` bytes) starts as the file that `entry`
/// describes did, and the file still holds what was read of it.
fn same_start(entry: &FileProgress, head: &[u8], len: u64) -> bool {
    let n = entry.fp_len as usize;
    len >= entry.offset && head.len() >= n && crc32c::crc32c(&head[..n]) == entry.fp
}

/// `entry` taken over by the listed file: its identity, and a fingerprint over more bytes
/// when the file has grown past what the old one covered.
fn adopt(mut entry: FileProgress, file: &Listed, head: &[u8]) -> FileProgress {
    (entry.dev, entry.ino) = file.id;
    if head.len() > entry.fp_len as usize {
        (entry.fp_len, entry.fp) = fingerprint(head);
    }
    entry
}

/// Whether `head` starts as one of the `live` files, over a whole fingerprint.
fn live_copy(live: &BTreeMap<String, FileProgress>, head: &[u8]) -> bool {
    if head.len() < FINGERPRINT_BYTES {
        return false;
    }
    let fp = crc32c::crc32c(&head[..FINGERPRINT_BYTES]);
    live.values()
        .any(|e| e.fp_len as usize == FINGERPRINT_BYTES && e.fp == fp)
}

/// A file read from its start.
fn fresh(file: &Listed, head: &[u8]) -> FileProgress {
    adopt(FileProgress::default(), file, head)
}

/// Matches the checkpoint's entries to the listed files. A file keeps its entry when its
/// device and inode are the same and it still starts with the bytes fingerprinted (renamed or
/// not); one truncated or rewritten in place starts again from 0, and its entry may go to a
/// new file that starts the same (the copy that copytruncate made). A new file whose first
/// bytes are those of an entry whose file is gone is that file moved or copied; any other new
/// file is read from 0, unless it starts (over a whole fingerprint) as a file still listed:
/// a copy being made, left unread while the original is there. Entries of version 1
/// checkpoints (no identity) match by name.
pub fn plan(
    source: &str,
    old: BTreeMap<String, FileProgress>,
    listed: &[Listed],
    look: &mut impl Look,
) -> Plan {
    let mut old = old;
    let by_id: HashMap<FileId, String> = old
        .iter()
        .filter(|(_, p)| p.ino != 0)
        .map(|(k, p)| ((p.dev, p.ino), k.clone()))
        .collect();
    let mut plan = Plan::default();
    // Entries of files truncated in place: a copy of the old content may appear.
    let mut released: Vec<(String, FileProgress)> = Vec::new();
    // Files without an entry, looked at once every entry is placed (one head at a time).
    let mut new: Vec<usize> = Vec::new();
    for (i, file) in listed.iter().enumerate() {
        // Its own entry under its name first (hard links share an inode), else by identity.
        let claimed = match old.get(&file.key) {
            Some(p) if p.ino == 0 || (p.dev, p.ino) == file.id => old.remove_entry(&file.key),
            _ => by_id.get(&file.id).and_then(|key| old.remove_entry(key)),
        };
        let Some((was, entry)) = claimed else {
            new.push(i);
            continue;
        };
        if was != file.key {
            tracing::info!(message = "Input file was renamed; reading it on from where it stopped.", source = %source, file = %file.key, was = %was, offset = entry.offset);
        }
        if entry.ino != 0 && look.unchanged(file) {
            plan.files.insert(file.key.clone(), entry);
            continue;
        }
        let Some(head) = look.head(file) else {
            // Not readable now: kept as it is, tried again at the next pass.
            plan.files.insert(file.key.clone(), entry);
            continue;
        };
        let same = if entry.ino == 0 {
            file.len >= entry.offset
        } else {
            same_start(&entry, &head, file.len)
        };
        if same {
            let entry = adopt(entry, file, &head);
            plan.files.insert(file.key.clone(), entry);
            plan.read.push((i, entry));
        } else {
            tracing::warn!(message = "Input file was truncated or rewritten in place (copytruncate?); reading it from the start.", source = %source, file = %file.key, offset = entry.offset, size = file.len);
            released.push((was, entry));
            plan.read.push((i, fresh(file, &head)));
        }
    }
    // Entries whose file is gone from the listing, then those truncated in place: a new file
    // starting with their bytes is their file, moved in or copied (copytruncate's `x.1`).
    let mut candidates: Vec<(String, FileProgress)> = std::mem::take(&mut old)
        .into_iter()
        .filter(|(_, p)| p.ino != 0)
        .collect();
    let gone = candidates.len();
    candidates.append(&mut released);
    let mut taken = vec![false; candidates.len()];
    for i in new {
        let file = &listed[i];
        let Some(head) = look.head(file) else {
            continue;
        };
        let copy_of = |(_, e): &(String, FileProgress)| {
            e.fp_len >= MIN_COPY_FINGERPRINT && same_start(e, &head, file.len)
        };
        let found = candidates
            .iter()
            .enumerate()
            .filter(|(j, c)| !taken[*j] && copy_of(c))
            .min_by_key(|(_, (k, _))| *k != file.key)
            .map(|(j, _)| j);
        match found {
            Some(j) => {
                taken[j] = true;
                let (original, entry) = &candidates[j];
                tracing::info!(message = "Input file starts as one already read (a copy or a move); reading it on from where that one stopped.", source = %source, file = %file.key, original = %original, offset = entry.offset);
                let entry = adopt(*entry, file, &head);
                plan.files.insert(file.key.clone(), entry);
                plan.read.push((i, entry));
            }
            // A copy of a file still being read (copytruncate copies, then truncates): not
            // read while the original is there; once that one is truncated, the copy takes
            // over its entry above. Only with a whole fingerprint, so that short files that
            // merely start alike are not taken for copies.
            None if live_copy(&plan.files, &head) => {
                tracing::debug!(message = "Input file starts as one being read (a copy?); not read while that one is there.", source = %source, file = %file.key);
            }
            None => plan.read.push((i, fresh(file, &head))),
        }
    }
    plan.gone = candidates
        .into_iter()
        .zip(taken)
        .take(gone)
        .filter(|(_, taken)| !taken)
        .map(|(c, _)| c)
        .collect();
    plan.read.sort_by_key(|(i, _)| *i);
    plan
}
