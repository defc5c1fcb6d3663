//! An in-memory [`Storage`] that simulates power loss and I/O faults, for tests.
//!
//! Every file keeps its durable content (as of the last `sync_data`) beside its current content.
//! [`MemStorage::crash`] keeps the durable content plus a random prefix of each file's unsynced
//! writes (a torn write at any byte), and forgets files whose directory entry was never synced.
//! Writes and syncs can be made to fail with EIO or ENOSPC on command, a capacity can be set, and
//! [`MemStorage::power_cut_after`] stops all I/O part-way through a write.

use std::collections::{HashMap, HashSet, VecDeque};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use super::storage::{LockGuard, ReadFile, Storage, WriteFile};

/// Which operation an injected fault hits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FaultOp {
    /// `write_all_at` (half the buffer is written, then the error is returned).
    Write,
    /// `sync_data` (nothing becomes durable).
    Sync,
}

/// The error an injected fault returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FaultError {
    /// `EIO`.
    Eio,
    /// `ENOSPC`.
    NoSpace,
}

impl FaultError {
    fn to_io(self) -> io::Error {
        match self {
            FaultError::Eio => io::Error::from_raw_os_error(libc::EIO),
            FaultError::NoSpace => io::Error::from_raw_os_error(libc::ENOSPC),
        }
    }
}

#[derive(Debug, Default)]
struct MemFile {
    data: Vec<u8>,
    durable: Vec<u8>,
    /// Lowest offset changed since the last sync (`None` when clean).
    dirty_from: Option<usize>,
}

impl MemFile {
    fn mark_dirty(&mut self, from: usize) {
        self.dirty_from = Some(self.dirty_from.map_or(from, |d| d.min(from)));
    }

    fn sync(&mut self) {
        if let Some(from) = self.dirty_from.take() {
            let from = from.min(self.durable.len()).min(self.data.len());
            self.durable.truncate(from);
            self.durable.extend_from_slice(&self.data[from..]);
        }
    }

    /// Durable content plus `keep` bytes of the unsynced changes.
    fn torn(&self, rng: &mut u64) -> Vec<u8> {
        let Some(from) = self.dirty_from else {
            return self.durable.clone();
        };
        let from = from.min(self.data.len());
        let changed = self.data.len() - from;
        let keep = (splitmix(rng) % (changed as u64 + 1)) as usize;
        let mut out = self.durable.clone();
        let end = from + keep;
        if out.len() < end {
            out.resize(end, 0);
        }
        out[from..end].copy_from_slice(&self.data[from..end]);
        if keep == changed && self.data.len() < out.len() {
            // A truncation after all the writes made it too.
            out.truncate(self.data.len().max(from + keep));
        }
        out
    }
}

fn splitmix(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

#[derive(Debug, Default)]
struct State {
    files: HashMap<PathBuf, Arc<Mutex<MemFile>>>,
    /// Files whose directory entry survives a crash.
    durable_names: HashSet<PathBuf>,
    dirs: HashSet<PathBuf>,
    locks: HashSet<PathBuf>,
    faults: VecDeque<(FaultOp, u32, FaultError)>,
    capacity: Option<u64>,
    power_cut_after: Option<u64>,
    dead: bool,
    writes: u64,
    syncs: u64,
}

impl State {
    fn used(&self) -> u64 {
        self.files.values().map(|f| lock(f).data.len() as u64).sum()
    }

    /// Consumes a matching armed fault if it is due.
    fn take_fault(&mut self, op: FaultOp) -> Option<FaultError> {
        let mut hit = None;
        for f in self.faults.iter_mut() {
            if f.0 == op {
                if f.1 == 0 {
                    hit = Some(f.2);
                } else {
                    f.1 -= 1;
                }
                break;
            }
        }
        if hit.is_some() {
            if let Some(i) = self.faults.iter().position(|f| f.0 == op) {
                self.faults.remove(i);
            }
        }
        hit
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn dead() -> io::Error {
    io::Error::other("simulated power cut: storage is dead until crash()")
}

/// In-memory, fault-injecting storage. Clones share the same files.
#[derive(Debug, Clone, Default)]
pub struct MemStorage {
    state: Arc<Mutex<State>>,
}

impl MemStorage {
    /// An empty storage.
    pub fn new() -> MemStorage {
        MemStorage::default()
    }

    /// Makes the `(skip + 1)`-th next `op` fail with `err`. Faults for one op fire in order.
    pub fn inject(&self, op: FaultOp, skip: u32, err: FaultError) {
        lock(&self.state).faults.push_back((op, skip, err));
    }

    /// Removes all armed faults.
    pub fn clear_faults(&self) {
        lock(&self.state).faults.clear();
    }

    /// Limits the total bytes of all files (writes beyond it fail with ENOSPC); `None` removes it.
    pub fn set_capacity(&self, bytes: Option<u64>) {
        lock(&self.state).capacity = bytes;
    }

    /// After `bytes` more bytes have been written, the write in progress stops there and every
    /// later operation fails, as if power were lost; call [`crash`](Self::crash) to "reboot".
    pub fn power_cut_after(&self, bytes: u64) {
        lock(&self.state).power_cut_after = Some(bytes);
    }

    /// Simulates power loss and reboot: each file keeps its synced content plus a random prefix
    /// (chosen from `seed`) of its unsynced changes; files never made durable in their directory
    /// disappear; locks, faults and the power cut are cleared.
    pub fn crash(&self, seed: u64) {
        let mut st = lock(&self.state);
        let mut rng = seed;
        let mut files = HashMap::new();
        let mut names: Vec<PathBuf> = st.files.keys().cloned().collect();
        names.sort();
        for name in names {
            if !st.durable_names.contains(&name) {
                continue;
            }
            let torn = lock(&st.files[&name]).torn(&mut rng);
            files.insert(
                name,
                Arc::new(Mutex::new(MemFile {
                    data: torn.clone(),
                    durable: torn,
                    dirty_from: None,
                })),
            );
        }
        st.durable_names = files.keys().cloned().collect();
        st.files = files;
        st.locks.clear();
        st.faults.clear();
        st.power_cut_after = None;
        st.dead = false;
    }

    /// Current content of a file (including unsynced writes).
    pub fn read(&self, path: &Path) -> Option<Vec<u8>> {
        let st = lock(&self.state);
        st.files.get(path).map(|f| lock(f).data.clone())
    }

    /// Flips bits at `offset` in both the current and the durable content (bit rot).
    pub fn corrupt(&self, path: &Path, offset: usize, xor: u8) {
        let st = lock(&self.state);
        if let Some(f) = st.files.get(path) {
            let mut f = lock(f);
            if let Some(b) = f.data.get_mut(offset) {
                *b ^= xor;
            }
            if let Some(b) = f.durable.get_mut(offset) {
                *b ^= xor;
            }
        }
    }

    /// Full paths of every file, sorted.
    pub fn paths(&self) -> Vec<PathBuf> {
        let st = lock(&self.state);
        let mut v: Vec<PathBuf> = st.files.keys().cloned().collect();
        v.sort();
        v
    }

    /// Number of `write_all_at` and `sync_data` calls so far.
    pub fn op_counts(&self) -> (u64, u64) {
        let st = lock(&self.state);
        (st.writes, st.syncs)
    }
}

#[derive(Debug)]
struct MemHandle {
    path: PathBuf,
    file: Arc<Mutex<MemFile>>,
    state: Arc<Mutex<State>>,
}

impl WriteFile for MemHandle {
    fn write_all_at(&mut self, offset: u64, buf: &[u8]) -> io::Result<()> {
        let mut st = lock(&self.state);
        if st.dead {
            return Err(dead());
        }
        st.writes += 1;
        let mut n = buf.len();
        let mut err = None;
        if let Some(e) = st.take_fault(FaultOp::Write) {
            n /= 2;
            err = Some(e.to_io());
        }
        if let Some(cap) = st.capacity {
            let file_len = lock(&self.file).data.len() as u64;
            let growth = (offset + n as u64).saturating_sub(file_len);
            let used = st.used();
            if used + growth > cap {
                let room = cap.saturating_sub(used) + file_len;
                n = room.saturating_sub(offset).min(n as u64) as usize;
                err = Some(FaultError::NoSpace.to_io());
            }
        }
        if let Some(left) = st.power_cut_after {
            if (n as u64) >= left {
                n = left as usize;
                st.dead = true;
                st.power_cut_after = None;
                err = Some(dead());
            } else {
                st.power_cut_after = Some(left - n as u64);
            }
        }
        let mut f = lock(&self.file);
        let off = offset as usize;
        if f.data.len() < off + n {
            f.data.resize(off + n, 0);
        }
        f.data[off..off + n].copy_from_slice(&buf[..n]);
        f.mark_dirty(off);
        match err {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    fn sync_data(&mut self) -> io::Result<()> {
        let mut st = lock(&self.state);
        if st.dead {
            return Err(dead());
        }
        st.syncs += 1;
        if let Some(e) = st.take_fault(FaultOp::Sync) {
            return Err(e.to_io());
        }
        lock(&self.file).sync();
        Ok(())
    }

    fn set_len(&mut self, len: u64) -> io::Result<()> {
        let st = lock(&self.state);
        if st.dead {
            return Err(dead());
        }
        let mut f = lock(&self.file);
        let len = len as usize;
        let old = f.data.len();
        f.data.resize(len, 0);
        f.mark_dirty(len.min(old));
        Ok(())
    }
}

impl ReadFile for MemHandle {
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<usize> {
        if lock(&self.state).dead {
            return Err(dead());
        }
        let f = lock(&self.file);
        let off = offset as usize;
        if off >= f.data.len() {
            return Ok(0);
        }
        let n = buf.len().min(f.data.len() - off);
        buf[..n].copy_from_slice(&f.data[off..off + n]);
        Ok(n)
    }

    fn size(&self) -> io::Result<u64> {
        Ok(lock(&self.file).data.len() as u64)
    }
}

#[derive(Debug)]
struct MemLock {
    path: PathBuf,
    state: Arc<Mutex<State>>,
}

impl LockGuard for MemLock {}

impl Drop for MemLock {
    fn drop(&mut self) {
        lock(&self.state).locks.remove(&self.path);
    }
}

fn not_found(path: &Path) -> io::Error {
    io::Error::new(
        io::ErrorKind::NotFound,
        format!("{}: no such file", path.display()),
    )
}

impl MemStorage {
    fn handle(&self, path: &Path, truncate: bool, create: bool) -> io::Result<MemHandle> {
        let mut st = lock(&self.state);
        if st.dead {
            return Err(dead());
        }
        let parent = path.parent().unwrap_or(Path::new("/")).to_path_buf();
        if !st.dirs.contains(&parent) {
            return Err(not_found(&parent));
        }
        let file = match st.files.get(path) {
            Some(f) => {
                if truncate {
                    let mut g = lock(f);
                    g.data.clear();
                    g.mark_dirty(0);
                }
                f.clone()
            }
            None if create => {
                let f = Arc::new(Mutex::new(MemFile::default()));
                st.files.insert(path.to_path_buf(), f.clone());
                f
            }
            None => return Err(not_found(path)),
        };
        Ok(MemHandle {
            path: path.to_path_buf(),
            file,
            state: self.state.clone(),
        })
    }
}

impl Storage for MemStorage {
    fn create_dir_all(&self, dir: &Path) -> io::Result<()> {
        let mut st = lock(&self.state);
        if st.dead {
            return Err(dead());
        }
        for a in dir.ancestors() {
            st.dirs.insert(a.to_path_buf());
        }
        Ok(())
    }

    fn lock(&self, path: &Path) -> io::Result<Box<dyn LockGuard>> {
        self.handle(path, false, true)?;
        let mut st = lock(&self.state);
        st.durable_names.insert(path.to_path_buf());
        if !st.locks.insert(path.to_path_buf()) {
            return Err(io::Error::from(io::ErrorKind::WouldBlock));
        }
        Ok(Box::new(MemLock {
            path: path.to_path_buf(),
            state: self.state.clone(),
        }))
    }

    fn list(&self, dir: &Path) -> io::Result<Vec<String>> {
        let st = lock(&self.state);
        if st.dead {
            return Err(dead());
        }
        if !st.dirs.contains(dir) {
            return Err(not_found(dir));
        }
        Ok(st
            .files
            .keys()
            .filter(|p| p.parent() == Some(dir))
            .filter_map(|p| p.file_name()?.to_str().map(str::to_owned))
            .collect())
    }

    fn create(&self, path: &Path) -> io::Result<Box<dyn WriteFile>> {
        Ok(Box::new(self.handle(path, true, true)?))
    }

    fn open_write(&self, path: &Path) -> io::Result<Box<dyn WriteFile>> {
        Ok(Box::new(self.handle(path, false, false)?))
    }

    fn open_read(&self, path: &Path) -> io::Result<Arc<dyn ReadFile>> {
        Ok(Arc::new(self.handle(path, false, false)?))
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        let mut st = lock(&self.state);
        if st.dead {
            return Err(dead());
        }
        let f = st.files.remove(from).ok_or_else(|| not_found(from))?;
        st.files.insert(to.to_path_buf(), f);
        // rename(2) is atomic; we treat it as durable at once (ext4 and xfs journal it).
        st.durable_names.remove(from);
        st.durable_names.insert(to.to_path_buf());
        Ok(())
    }

    fn remove(&self, path: &Path) -> io::Result<()> {
        let mut st = lock(&self.state);
        if st.dead {
            return Err(dead());
        }
        st.files.remove(path).ok_or_else(|| not_found(path))?;
        st.durable_names.remove(path);
        Ok(())
    }

    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        let mut st = lock(&self.state);
        if st.dead {
            return Err(dead());
        }
        let names: Vec<PathBuf> = st
            .files
            .keys()
            .filter(|p| p.parent() == Some(dir))
            .cloned()
            .collect();
        st.durable_names.extend(names);
        Ok(())
    }

    fn free_space(&self, _dir: &Path) -> io::Result<u64> {
        let st = lock(&self.state);
        if st.dead {
            return Err(dead());
        }
        Ok(st
            .capacity
            .map_or(u64::MAX, |c| c.saturating_sub(st.used())))
    }
}

impl MemHandle {
    /// The path this handle was opened with.
    #[allow(dead_code)]
    fn path(&self) -> &Path {
        &self.path
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crash_keeps_synced_and_tears_unsynced() {
        let dir = Path::new("/d");
        let p = dir.join("f");
        let mut lens = HashSet::new();
        for seed in 0..64 {
            let c = MemStorage::new();
            c.create_dir_all(dir).unwrap();
            let mut g = c.create(&p).unwrap();
            g.write_all_at(0, b"durable").unwrap();
            g.sync_data().unwrap();
            c.sync_dir(dir).unwrap();
            g.write_all_at(7, b"-volatile").unwrap();
            c.crash(seed);
            let data = c.read(&p).unwrap();
            assert!(data.starts_with(b"durable"));
            assert!(b"durable-volatile".starts_with(&data));
            lens.insert(data.len());
        }
        assert!(lens.len() > 3, "tears should vary: {lens:?}");
    }

    #[test]
    fn unsynced_directory_entry_disappears() {
        let s = MemStorage::new();
        let dir = Path::new("/d");
        s.create_dir_all(dir).unwrap();
        let mut f = s.create(&dir.join("f")).unwrap();
        f.write_all_at(0, b"x").unwrap();
        f.sync_data().unwrap();
        s.crash(1);
        assert!(s.read(&dir.join("f")).is_none());
    }

    #[test]
    fn faults_fire_once_in_order() {
        let s = MemStorage::new();
        let dir = Path::new("/d");
        s.create_dir_all(dir).unwrap();
        let mut f = s.create(&dir.join("f")).unwrap();
        s.inject(FaultOp::Sync, 1, FaultError::Eio);
        f.sync_data().unwrap();
        assert_eq!(f.sync_data().unwrap_err().raw_os_error(), Some(libc::EIO));
        f.sync_data().unwrap();
        s.set_capacity(Some(4));
        let e = f.write_all_at(0, b"123456").unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::StorageFull);
        assert_eq!(s.read(&dir.join("f")).unwrap(), b"1234");
    }

    #[test]
    fn power_cut_stops_everything() {
        let s = MemStorage::new();
        let dir = Path::new("/d");
        s.create_dir_all(dir).unwrap();
        let mut f = s.create(&dir.join("f")).unwrap();
        s.sync_dir(dir).unwrap();
        s.power_cut_after(3);
        assert!(f.write_all_at(0, b"abcdef").is_err());
        assert!(f.sync_data().is_err());
        s.crash(0);
        let data = s.read(&dir.join("f")).unwrap();
        assert!(b"abc".starts_with(&data), "{data:?}");
    }
}
