//! What the `files` source knows about the files between passes, in memory only: open
//! handles of the files read most recently (so a file renamed out of the folder or deleted is
//! still read to its end), which files are unchanged since they were read, what was said once.

use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::os::unix::fs::{FileExt as _, MetadataExt as _};
use std::time::SystemTime;

use super::identity::{self, FileId, Listed, FINGERPRINT_BYTES};
use super::{Listing, MAX_HELD};

/// What was already said about a name, so that it is said once.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Told {
    Symlink,
    Compressed,
    Unreadable,
}

/// What the source knows about the files between passes, in memory only.
#[derive(Debug, Default)]
pub(super) struct Tracker {
    pub(super) source: String,
    pub(super) pass: u64,
    /// Open handles of the files read most recently, at most [`MAX_HELD`].
    pub(super) held: HashMap<FileId, Held>,
    /// (length, modification time) of each file when it was last read to its end.
    pub(super) done: HashMap<FileId, (u64, Option<SystemTime>)>,
    told: HashSet<(Told, String)>,
    /// The configured path was a file (not a folder) at the last pass: while it is missing,
    /// it is being rotated, not misconfigured.
    pub(super) path_was_file: bool,
}

#[derive(Debug)]
pub(super) struct Held {
    pub(super) file: File,
    /// The pass that last used it.
    pub(super) used: u64,
}

impl Tracker {
    pub(super) fn new(source: &str) -> Tracker {
        Tracker {
            source: source.to_owned(),
            ..Tracker::default()
        }
    }

    /// Opens `file` by its path: `None` when it cannot be opened (said once) or is no longer
    /// the file listed (replaced in between; looked at again at the next pass).
    pub(super) fn open(&mut self, file: &Listed) -> Option<File> {
        let opened = File::open(&file.path).and_then(|f| {
            let meta = f.metadata()?;
            Ok((f, (meta.dev(), meta.ino())))
        });
        match opened {
            Ok((f, id)) if id == file.id => {
                self.told.remove(&(Told::Unreadable, file.key.clone()));
                Some(f)
            }
            Ok(_) => None,
            Err(error) => {
                self.cannot_read(file, &error);
                None
            }
        }
    }

    pub(super) fn cannot_read(&mut self, file: &Listed, error: &std::io::Error) {
        if self.told.insert((Told::Unreadable, file.key.clone())) {
            tracing::warn!(message = "Cannot read input file; will retry.", source = %self.source, file = %file.path.display(), %error);
        }
    }

    /// Makes room for one more handle, closing the least recently used one when
    /// [`MAX_HELD`] are open; false when all of those are in use by this pass.
    pub(super) fn make_room(&mut self) -> bool {
        if self.held.len() < MAX_HELD {
            return true;
        }
        let oldest = self
            .held
            .iter()
            .filter(|(_, h)| h.used < self.pass)
            .min_by_key(|(_, h)| h.used)
            .map(|(id, _)| *id);
        oldest.is_some_and(|id| self.held.remove(&id).is_some())
    }

    /// Says once per name which entries of the folder are not read.
    pub(super) fn tell_skipped(&mut self, listing: &Listing) {
        if !self.told.is_empty() {
            let names: HashSet<&str> = listing
                .files
                .iter()
                .map(|(k, _)| k.as_str())
                .chain(listing.symlinks.iter().map(String::as_str))
                .chain(listing.compressed.iter().map(String::as_str))
                .collect();
            self.told.retain(|(_, name)| names.contains(name.as_str()));
        }
        for name in &listing.symlinks {
            if self.told.insert((Told::Symlink, name.clone())) {
                tracing::warn!(message = "Not following a symbolic link in the input folder; set `path` to the file it points to, or move the file into the folder.", source = %self.source, file = %name);
            }
        }
        let mut new = listing
            .compressed
            .iter()
            .filter(|name| self.told.insert((Told::Compressed, (*name).clone())));
        if let Some(first) = new.next() {
            tracing::info!(message = "Not reading compressed files in the input folder (rotated copies).", source = %self.source, first = %first, count = 1 + new.count());
        }
    }

    /// Forgets files no longer listed, after their rest was read.
    pub(super) fn end_pass(&mut self, listed: &[Listed]) {
        let present: HashSet<FileId> = listed.iter().map(|f| f.id).collect();
        self.held.retain(|id, _| present.contains(id));
        self.done.retain(|id, _| present.contains(id));
    }
}

impl identity::Look for Tracker {
    fn unchanged(&self, file: &Listed) -> bool {
        self.done.get(&file.id) == Some(&(file.len, file.mtime))
    }

    fn head(&mut self, file: &Listed) -> Option<Vec<u8>> {
        let transient;
        let f = if self.held.contains_key(&file.id) {
            let held = self.held.get_mut(&file.id)?;
            held.used = self.pass;
            &held.file
        } else {
            let f = self.open(file)?;
            if self.make_room() {
                let used = self.pass;
                &self
                    .held
                    .entry(file.id)
                    .or_insert(Held { file: f, used })
                    .file
            } else {
                transient = f;
                &transient
            }
        };
        match read_head(f) {
            Ok(head) => Some(head),
            Err(error) => {
                self.cannot_read(file, &error);
                None
            }
        }
    }
}

/// The first bytes of a file, at most [`FINGERPRINT_BYTES`].
fn read_head(file: &File) -> std::io::Result<Vec<u8>> {
    let mut head = vec![0; FINGERPRINT_BYTES];
    let mut n = 0;
    while n < head.len() {
        match file.read_at(&mut head[n..], n as u64) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    head.truncate(n);
    Ok(head)
}
