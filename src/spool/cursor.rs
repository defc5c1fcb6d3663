//! Per-destination cursor files: two CRC-checked 4 KiB slots written alternately.
//!
//! A cursor is the seq of the next record its destination must deliver. Each persist writes the
//! slot not holding the newest valid copy and `fdatasync`s it, so a torn write can only damage
//! the older copy: after a crash the cursor is the last persisted value, never a torn one.

use std::io;
use std::path::{Path, PathBuf};

use super::storage::{read_exact_at, Storage, WriteFile};

const SLOT: usize = 4096;
const MAGIC: &[u8; 8] = b"SCCURSOR";
const VERSION: u32 = 1;
/// Longest destination name a cursor file can hold.
pub const MAX_NAME: usize = 2048;
pub(crate) const PREFIX: &str = "cursor-";
pub(crate) const SUFFIX: &str = ".bin";

/// File name for a destination: safe characters kept, others as `%XX`.
pub(crate) fn file_name(destination: &str) -> String {
    let mut s = String::from(PREFIX);
    for b in destination.bytes() {
        if b.is_ascii_alphanumeric() || b == b'-' || b == b'_' {
            s.push(b as char);
        } else {
            s.push_str(&format!("%{b:02X}"));
        }
    }
    s.push_str(SUFFIX);
    s
}

fn encode_slot(name: &str, generation: u64, next: u64) -> Vec<u8> {
    let mut b = Vec::with_capacity(SLOT);
    b.extend_from_slice(MAGIC);
    b.extend_from_slice(&VERSION.to_le_bytes());
    b.extend_from_slice(&generation.to_le_bytes());
    b.extend_from_slice(&next.to_le_bytes());
    b.extend_from_slice(&(name.len() as u16).to_le_bytes());
    b.extend_from_slice(name.as_bytes());
    let crc = crc32c::crc32c(&b);
    b.extend_from_slice(&crc.to_le_bytes());
    b.resize(SLOT, 0);
    b
}

/// `(name, generation, next)` when the slot is valid.
fn decode_slot(b: &[u8]) -> Option<(String, u64, u64)> {
    if b.len() < 34 || &b[..8] != MAGIC {
        return None;
    }
    let u64_at = |i: usize| {
        let mut a = [0u8; 8];
        a.copy_from_slice(&b[i..i + 8]);
        u64::from_le_bytes(a)
    };
    if u32::from_le_bytes([b[8], b[9], b[10], b[11]]) != VERSION {
        return None;
    }
    let generation = u64_at(12);
    let next = u64_at(20);
    let n = u16::from_le_bytes([b[28], b[29]]) as usize;
    let end = 30 + n;
    let crc_bytes = b.get(end..end + 4)?;
    let crc = u32::from_le_bytes([crc_bytes[0], crc_bytes[1], crc_bytes[2], crc_bytes[3]]);
    if crc32c::crc32c(&b[..end]) != crc {
        return None;
    }
    let name = String::from_utf8(b[30..end].to_vec()).ok()?;
    Some((name, generation, next))
}

/// An open cursor file.
#[derive(Debug)]
pub(crate) struct CursorFile {
    pub path: PathBuf,
    name: String,
    file: Box<dyn WriteFile>,
    generation: u64,
}

/// What loading a cursor file found.
#[derive(Debug)]
pub(crate) struct Loaded {
    pub file: CursorFile,
    pub next: u64,
}

impl CursorFile {
    /// Creates a new cursor file holding `next`, durable (file and directory synced) on return.
    /// Both slots are written (generations 0 and 1), so that every later persist overwrites
    /// blocks the file already has: moving a cursor never needs free space (a full disk does
    /// not stop delivery, and delivery is what frees the disk).
    pub fn create(
        storage: &dyn Storage,
        dir: &Path,
        name: &str,
        next: u64,
    ) -> io::Result<CursorFile> {
        let path = dir.join(file_name(name));
        let mut file = storage.create(&path)?;
        let mut both = encode_slot(name, 0, next);
        both.extend_from_slice(&encode_slot(name, 1, next));
        let written = file
            .write_all_at(0, &both)
            .and_then(|()| file.sync_data())
            .and_then(|()| storage.sync_dir(dir));
        if let Err(e) = written {
            // Best effort: a half-written cursor file would be quarantined at the next start.
            let _ = storage.remove(&path);
            return Err(e);
        }
        Ok(CursorFile {
            path,
            name: name.to_owned(),
            file,
            generation: 1,
        })
    }

    /// Loads an existing cursor file; `Ok(None)` when neither slot is valid.
    pub fn load(storage: &dyn Storage, path: &Path) -> io::Result<Option<Loaded>> {
        let reader = storage.open_read(path)?;
        let mut best: Option<(String, u64, u64)> = None;
        for slot in 0..2u64 {
            let mut b = vec![0u8; SLOT];
            if !read_exact_at(reader.as_ref(), slot * SLOT as u64, &mut b)? {
                continue;
            }
            if let Some(v) = decode_slot(&b) {
                if best.as_ref().is_none_or(|b| v.1 > b.1) {
                    best = Some(v);
                }
            }
        }
        let Some((name, generation, next)) = best else {
            return Ok(None);
        };
        let file = storage.open_write(path)?;
        Ok(Some(Loaded {
            file: CursorFile {
                path: path.to_path_buf(),
                name,
                file,
                generation,
            },
            next,
        }))
    }

    /// The destination this cursor belongs to.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Writes `next` into the older slot and syncs it.
    pub fn persist(&mut self, next: u64) -> io::Result<()> {
        let generation = self.generation + 1;
        let slot = generation % 2;
        let b = encode_slot(&self.name, generation, next);
        self.file.write_all_at(slot * SLOT as u64, &b)?;
        self.file.sync_data()?;
        self.generation = generation;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spool::MemStorage;

    #[test]
    fn names_are_filesystem_safe() {
        assert_eq!(file_name("arcsight-1"), "cursor-arcsight-1.bin");
        assert_eq!(file_name("a/b c"), "cursor-a%2Fb%20c.bin");
        assert_eq!(file_name(".."), "cursor-%2E%2E.bin");
    }

    #[test]
    fn newest_valid_slot_wins_and_torn_slot_is_ignored() {
        let s = MemStorage::new();
        let dir = Path::new("/spool");
        s.create_dir_all(dir).unwrap();
        let mut c = CursorFile::create(&s, dir, "qradar", 5).unwrap();
        c.persist(9).unwrap();
        let l = CursorFile::load(&s, &c.path).unwrap().unwrap();
        assert_eq!((l.next, l.file.name()), (9, "qradar"));
        // Corrupt the newest slot (generation 2 lives in slot 0): the older one is used.
        s.corrupt(&c.path, 25, 0xff);
        let l = CursorFile::load(&s, &c.path).unwrap().unwrap();
        assert_eq!(l.next, 5);
    }

    #[test]
    fn crash_during_persist_keeps_previous_value() {
        for seed in 0..32 {
            let s = MemStorage::new();
            let dir = Path::new("/spool");
            s.create_dir_all(dir).unwrap();
            let mut c = CursorFile::create(&s, dir, "d", 1).unwrap();
            c.persist(2).unwrap();
            s.power_cut_after(seed * 7);
            let _ = c.persist(3);
            s.crash(seed);
            let l = CursorFile::load(&s, &c.path).unwrap().unwrap();
            assert!(l.next == 2 || l.next == 3, "seed {seed}: {}", l.next);
        }
    }
}
