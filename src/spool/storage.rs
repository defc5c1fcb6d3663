//! The file-system operations the spool needs, behind a small trait.
//!
//! [`FsStorage`] is the real thing (positioned writes, `fdatasync`, directory `fsync`, `flock`);
//! [`MemStorage`](super::MemStorage) simulates crashes and I/O faults for tests.

use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::Arc;

/// A file opened for writing at explicit offsets.
pub trait WriteFile: Send + Sync + fmt::Debug {
    /// Writes all of `buf` at `offset` (the file grows as needed). Not durable until `sync_data`.
    fn write_all_at(&mut self, offset: u64, buf: &[u8]) -> io::Result<()>;
    /// Makes every write so far durable (`fdatasync`).
    fn sync_data(&mut self) -> io::Result<()>;
    /// Truncates or extends the file to `len` bytes (not durable until `sync_data`).
    fn set_len(&mut self, len: u64) -> io::Result<()>;
}

/// A file opened for reading at explicit offsets; shareable between threads.
pub trait ReadFile: Send + Sync + fmt::Debug {
    /// Reads up to `buf.len()` bytes at `offset`; returns 0 at end of file.
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<usize>;
    /// Current length of the file in bytes.
    fn size(&self) -> io::Result<u64>;
}

/// Held while the spool owns its directory; dropping it releases the lock.
pub trait LockGuard: Send + Sync + fmt::Debug {}

/// File-system operations used by the spool. Paths are full paths.
pub trait Storage: Send + Sync + fmt::Debug {
    /// Creates `dir` and its parents.
    fn create_dir_all(&self, dir: &Path) -> io::Result<()>;
    /// Takes an exclusive lock on `path` (created if missing); `WouldBlock` when held elsewhere.
    fn lock(&self, path: &Path) -> io::Result<Box<dyn LockGuard>>;
    /// Names of the regular files directly in `dir`.
    fn list(&self, dir: &Path) -> io::Result<Vec<String>>;
    /// Creates `path` (truncating any old content) for writing.
    fn create(&self, path: &Path) -> io::Result<Box<dyn WriteFile>>;
    /// Opens an existing file for writing.
    fn open_write(&self, path: &Path) -> io::Result<Box<dyn WriteFile>>;
    /// Opens an existing file for reading.
    fn open_read(&self, path: &Path) -> io::Result<Arc<dyn ReadFile>>;
    /// Renames `from` to `to`, replacing `to` (durable once the directory is synced).
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()>;
    /// Removes the file at `path`.
    fn remove(&self, path: &Path) -> io::Result<()>;
    /// Makes creations, renames and removals in `dir` durable (`fsync` on the directory).
    fn sync_dir(&self, dir: &Path) -> io::Result<()>;
    /// Bytes an unprivileged process can still write on the file system of `dir` (`statvfs`
    /// `f_bavail * f_frsize`).
    fn free_space(&self, dir: &Path) -> io::Result<u64>;
}

/// The real file system.
#[derive(Debug, Default, Clone, Copy)]
pub struct FsStorage;

#[derive(Debug)]
struct FsFile(File);

impl WriteFile for FsFile {
    fn write_all_at(&mut self, offset: u64, buf: &[u8]) -> io::Result<()> {
        FileExt::write_all_at(&self.0, buf, offset)
    }
    fn sync_data(&mut self) -> io::Result<()> {
        self.0.sync_data()
    }
    fn set_len(&mut self, len: u64) -> io::Result<()> {
        self.0.set_len(len)
    }
}

impl ReadFile for FsFile {
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            match FileExt::read_at(&self.0, buf, offset) {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                r => return r,
            }
        }
    }
    fn size(&self) -> io::Result<u64> {
        Ok(self.0.metadata()?.len())
    }
}

#[derive(Debug)]
struct FsLock(#[allow(dead_code)] File);
impl LockGuard for FsLock {}

#[allow(unsafe_code)]
fn flock_exclusive_nonblocking(file: &File) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    // SAFETY: `flock` only reads the descriptor number, which `file` keeps open for the call.
    let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

impl Storage for FsStorage {
    fn create_dir_all(&self, dir: &Path) -> io::Result<()> {
        fs::create_dir_all(dir)
    }

    fn lock(&self, path: &Path) -> io::Result<Box<dyn LockGuard>> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)?;
        flock_exclusive_nonblocking(&file)?;
        Ok(Box::new(FsLock(file)))
    }

    fn list(&self, dir: &Path) -> io::Result<Vec<String>> {
        let mut names = Vec::new();
        for entry in fs::read_dir(dir)? {
            let entry = entry?;
            if entry.file_type()?.is_file() {
                if let Some(name) = entry.file_name().to_str() {
                    names.push(name.to_owned());
                }
            }
        }
        Ok(names)
    }

    fn create(&self, path: &Path) -> io::Result<Box<dyn WriteFile>> {
        let f = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(path)?;
        Ok(Box::new(FsFile(f)))
    }

    fn open_write(&self, path: &Path) -> io::Result<Box<dyn WriteFile>> {
        let f = OpenOptions::new().read(true).write(true).open(path)?;
        Ok(Box::new(FsFile(f)))
    }

    fn open_read(&self, path: &Path) -> io::Result<Arc<dyn ReadFile>> {
        Ok(Arc::new(FsFile(File::open(path)?)))
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        fs::rename(from, to)
    }

    fn remove(&self, path: &Path) -> io::Result<()> {
        fs::remove_file(path)
    }

    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        File::open(dir)?.sync_all()
    }

    fn free_space(&self, dir: &Path) -> io::Result<u64> {
        let st = rustix::fs::statvfs(dir)?;
        Ok(st.f_bavail.saturating_mul(st.f_frsize))
    }
}

/// Reads exactly `buf.len()` bytes at `offset`; `Ok(false)` when the file ends first.
pub(crate) fn read_exact_at(
    f: &dyn ReadFile,
    mut offset: u64,
    mut buf: &mut [u8],
) -> io::Result<bool> {
    while !buf.is_empty() {
        let n = f.read_at(offset, buf)?;
        if n == 0 {
            return Ok(false);
        }
        offset += n as u64;
        buf = &mut buf[n..];
    }
    Ok(true)
}

/// A sliding read window over a file, for sequential scans with occasional look-ahead.
#[derive(Debug)]
pub(crate) struct Window {
    /// Zeroed once as it grows, then read into again and again: only `..len` holds the file's
    /// bytes at `start`.
    buf: Vec<u8>,
    len: usize,
    start: u64,
    chunk: usize,
}

impl Window {
    pub fn new(chunk: usize) -> Window {
        Window {
            buf: Vec::new(),
            len: 0,
            start: 0,
            chunk,
        }
    }

    /// The bytes `[offset, offset + len)`, or `None` when they extend past `limit` or the file's end.
    pub fn get(
        &mut self,
        f: &dyn ReadFile,
        offset: u64,
        len: usize,
        limit: u64,
    ) -> io::Result<Option<&[u8]>> {
        let end = offset + len as u64;
        if end > limit {
            return Ok(None);
        }
        let have = offset >= self.start && end <= self.start + self.len as u64;
        if !have {
            let want = (len.max(self.chunk) as u64).min(limit - offset) as usize;
            if self.buf.len() < want {
                self.buf.resize(want, 0);
            }
            // Nothing is kept from the previous fill if this one fails part way.
            self.len = 0;
            let mut filled = 0;
            while filled < want {
                let n = f.read_at(offset + filled as u64, &mut self.buf[filled..want])?;
                if n == 0 {
                    break;
                }
                filled += n;
            }
            self.len = filled;
            self.start = offset;
            if filled < len {
                return Ok(None);
            }
        }
        let from = (offset - self.start) as usize;
        Ok(Some(&self.buf[from..from + len]))
    }

    /// Drops the buffered bytes (after the file changed underneath).
    pub fn reset(&mut self) {
        self.len = 0;
        self.start = 0;
    }
}
