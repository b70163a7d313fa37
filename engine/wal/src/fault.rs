//! A [`Storage`] for tests: it passes every operation to a real storage, injects faults on
//! request, and remembers what each file held at its last sync so it can write the crash
//! image a power loss or a process crash would leave behind.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::rc::Rc;

use crate::storage::{Durability, MonoioStorage, SegmentFile, Storage};

/// A fault injected into one operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Fault {
    /// The write fails with `EIO` and writes nothing.
    FailWrite,
    /// The write writes at most `bytes` bytes and reports that: a short write.
    ShortWrite {
        /// The most bytes this write writes.
        bytes: usize,
    },
    /// The `fdatasync` fails with `EIO`: nothing written since the last sync became durable.
    /// On a [`Durability::PerWrite`] file every write is also a sync: the write reaches the
    /// page cache, is not durable, and reports `EIO`.
    FailSync,
    /// Creating a segment file fails with `ENOSPC`.
    FailCreate,
}

impl Fault {
    fn kind(self) -> OpKind {
        match self {
            Fault::FailWrite | Fault::ShortWrite { .. } => OpKind::Write,
            Fault::FailSync => OpKind::Sync,
            Fault::FailCreate => OpKind::Create,
        }
    }
}

/// What survives a crash, for [`FaultStorage::crash_image`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CrashMode {
    /// Power loss: only synced bytes, and only files whose creation was synced, survive.
    SyncedOnly,
    /// A process crash (`kill -9`): every completed write is in the page cache and survives.
    AllWritten,
    /// Power loss during writeback: unsynced writes survive in the order they were made
    /// until `bytes` bytes have, the last one torn there.
    Torn {
        /// Unsynced bytes that reach the disk, per file.
        bytes: u64,
    },
    /// Power loss after the file sizes reached the disk but not the data: every unsynced
    /// byte reads back as zero.
    ZeroedUnsynced,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum OpKind {
    Write,
    Sync,
    Create,
}

/// What one file held: now, and at its last sync.
#[derive(Default)]
struct Shadow {
    current: Vec<u8>,
    durable: Vec<u8>,
    /// Writes since the last sync, in order: (position, length).
    unsynced: Vec<(u64, usize)>,
    /// The directory entry survives a power loss.
    entry_durable: bool,
    removed: bool,
}

#[derive(Default)]
struct FaultState {
    counts: [u64; 3],
    /// (kind, the count of that kind it fires at, fault)
    scheduled: Vec<(OpKind, u64, Fault)>,
    files: BTreeMap<PathBuf, Shadow>,
}

impl FaultState {
    /// Counts one operation and returns the fault scheduled for it, if any.
    fn tick(&mut self, kind: OpKind) -> Option<Fault> {
        let count = &mut self.counts[kind as usize];
        *count += 1;
        let now = *count;
        let i = self
            .scheduled
            .iter()
            .position(|&(k, at, _)| k == kind && at == now)?;
        Some(self.scheduled.swap_remove(i).2)
    }
}

/// A fault-injecting, crash-imaging wrapper around a real [`Storage`].
///
/// Clones share their state, so a test keeps one clone to steer the storage that the log
/// owns.
///
/// ```
/// use vectron_wal::{CrashMode, Fault, FaultStorage};
///
/// let storage = FaultStorage::new();
/// storage.inject(0, Fault::FailSync); // the next fdatasync fails
/// # let _ = CrashMode::SyncedOnly;
/// ```
#[derive(Clone)]
pub struct FaultStorage<S = MonoioStorage> {
    inner: S,
    state: Rc<RefCell<FaultState>>,
}

impl<S> fmt::Debug for FaultStorage<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let st = self.state.borrow();
        f.debug_struct("FaultStorage")
            .field("writes", &st.counts[OpKind::Write as usize])
            .field("syncs", &st.counts[OpKind::Sync as usize])
            .field("files", &st.files.len())
            .finish_non_exhaustive()
    }
}

impl FaultStorage<MonoioStorage> {
    /// Wraps the real monoio storage.
    pub fn new() -> Self {
        Self::wrap(MonoioStorage)
    }
}

impl Default for FaultStorage<MonoioStorage> {
    fn default() -> Self {
        Self::new()
    }
}

impl<S: Storage> FaultStorage<S> {
    /// Wraps any storage.
    pub fn wrap(inner: S) -> Self {
        Self {
            inner,
            state: Rc::default(),
        }
    }

    /// Injects `fault` into the operation of its kind that comes after `skip` more of them
    /// (`0`: the next one).
    pub fn inject(&self, skip: u64, fault: Fault) {
        let mut st = self.state.borrow_mut();
        let kind = fault.kind();
        let at = st.counts[kind as usize] + skip + 1;
        st.scheduled.push((kind, at, fault));
    }

    /// Segment writes so far.
    pub fn writes(&self) -> u64 {
        self.state.borrow().counts[OpKind::Write as usize]
    }

    /// `fdatasync` calls so far.
    pub fn syncs(&self) -> u64 {
        self.state.borrow().counts[OpKind::Sync as usize]
    }

    /// Writes into `to` what the log directory `from` would hold after a crash now: files
    /// this storage touched are rebuilt from what it saw, other files are copied.
    pub fn crash_image(&self, from: &Path, to: &Path, mode: CrashMode) -> io::Result<()> {
        std::fs::create_dir_all(to)?;
        let st = self.state.borrow();
        for entry in std::fs::read_dir(from)? {
            let entry = entry?;
            if entry.file_type()?.is_file() && !st.files.contains_key(&entry.path()) {
                std::fs::copy(entry.path(), to.join(entry.file_name()))?;
            }
        }
        let power_loss = mode != CrashMode::AllWritten;
        for (path, sh) in st.files.iter().filter(|(p, _)| p.parent() == Some(from)) {
            let Some(name) = path.file_name() else {
                continue;
            };
            let content = if sh.removed {
                // An unlink that was not synced is undone by a power loss.
                if !(power_loss && sh.entry_durable) {
                    continue;
                }
                sh.durable.clone()
            } else if power_loss && !sh.entry_durable {
                continue;
            } else {
                image(sh, mode)
            };
            std::fs::write(to.join(name), content)?;
        }
        Ok(())
    }
}

fn image(sh: &Shadow, mode: CrashMode) -> Vec<u8> {
    match mode {
        CrashMode::AllWritten => sh.current.clone(),
        CrashMode::SyncedOnly => sh.durable.clone(),
        CrashMode::ZeroedUnsynced => {
            let mut out = sh.durable.clone();
            out.resize(sh.current.len().max(out.len()), 0);
            out
        }
        CrashMode::Torn { bytes } => {
            let mut out = sh.durable.clone();
            let mut budget = bytes;
            for &(pos, len) in &sh.unsynced {
                if budget == 0 {
                    break;
                }
                let pos = pos as usize;
                let take = len.min(usize::try_from(budget).unwrap_or(usize::MAX));
                let end = (pos + take).min(sh.current.len());
                if end <= pos {
                    continue;
                }
                if out.len() < end {
                    out.resize(end, 0);
                }
                out[pos..end].copy_from_slice(&sh.current[pos..end]);
                budget -= (end - pos) as u64;
            }
            out
        }
    }
}

fn injected(errno: i32) -> io::Error {
    io::Error::from_raw_os_error(errno)
}

/// A segment file opened by [`FaultStorage`].
pub struct FaultFile<F> {
    inner: F,
    path: PathBuf,
    durability: Durability,
    state: Rc<RefCell<FaultState>>,
}

impl<F> fmt::Debug for FaultFile<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FaultFile")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl<S: Storage> Storage for FaultStorage<S> {
    type File = FaultFile<S::File>;

    async fn create(&self, path: &Path, durability: Durability) -> io::Result<Self::File> {
        if let Some(Fault::FailCreate) = self.state.borrow_mut().tick(OpKind::Create) {
            return Err(injected(libc::ENOSPC));
        }
        let inner = self.inner.create(path, durability).await?;
        self.state
            .borrow_mut()
            .files
            .insert(path.to_path_buf(), Shadow::default());
        Ok(FaultFile {
            inner,
            path: path.to_path_buf(),
            durability,
            state: self.state.clone(),
        })
    }

    async fn open(&self, path: &Path, durability: Durability) -> io::Result<Self::File> {
        let inner = self.inner.open(path, durability).await?;
        let mut st = self.state.borrow_mut();
        if st.files.get(path).is_none_or(|sh| sh.removed) {
            // A file from before this storage existed: on disk, so durable.
            let content = std::fs::read(path)?;
            let shadow = Shadow {
                current: content.clone(),
                durable: content,
                unsynced: Vec::new(),
                entry_durable: true,
                removed: false,
            };
            st.files.insert(path.to_path_buf(), shadow);
        }
        Ok(FaultFile {
            inner,
            path: path.to_path_buf(),
            durability,
            state: self.state.clone(),
        })
    }

    async fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        self.inner.sync_dir(dir).await?;
        let mut st = self.state.borrow_mut();
        st.files
            .retain(|path, sh| path.parent() != Some(dir) || !sh.removed);
        for (_, sh) in st.files.iter_mut().filter(|(p, _)| p.parent() == Some(dir)) {
            sh.entry_durable = true;
        }
        Ok(())
    }

    async fn remove(&self, path: &Path) -> io::Result<()> {
        // A file this storage never opened was on disk, durable, before it existed; keep
        // its bytes, since a power loss before the directory sync brings it back.
        let untracked = !self.state.borrow().files.contains_key(path);
        let before = if untracked {
            std::fs::read(path)?
        } else {
            Vec::new()
        };
        self.inner.remove(path).await?;
        let mut st = self.state.borrow_mut();
        let sh = st
            .files
            .entry(path.to_path_buf())
            .or_insert_with(|| Shadow {
                current: before.clone(),
                durable: before,
                unsynced: Vec::new(),
                entry_durable: true,
                removed: false,
            });
        sh.removed = true;
        Ok(())
    }
}

impl<F: SegmentFile> SegmentFile for FaultFile<F> {
    async fn write_at(&self, buf: Vec<u8>, from: usize, pos: u64) -> (io::Result<usize>, Vec<u8>) {
        let fault = self.state.borrow_mut().tick(OpKind::Write);
        let (res, buf) = match fault {
            Some(Fault::FailWrite) => {
                return (Err(injected(libc::EIO)), buf);
            }
            Some(Fault::ShortWrite { bytes }) => {
                let end = from.saturating_add(bytes).min(buf.len());
                let part = buf[from..end].to_vec();
                let (res, _) = self.inner.write_at(part, 0, pos).await;
                (res, buf)
            }
            _ => self.inner.write_at(buf, from, pos).await,
        };
        let Ok(n) = res else { return (res, buf) };
        let per_write = self.durability == Durability::PerWrite;
        let mut st = self.state.borrow_mut();
        // A durable write is a sync too, and can fail like one.
        let sync_failed = per_write && st.tick(OpKind::Sync) == Some(Fault::FailSync);
        if let Some(sh) = st.files.get_mut(&self.path) {
            let (start, end) = (pos as usize, pos as usize + n);
            if sh.current.len() < end {
                sh.current.resize(end, 0);
            }
            sh.current[start..end].copy_from_slice(&buf[from..from + n]);
            if per_write && !sync_failed {
                if sh.durable.len() < end {
                    sh.durable.resize(end, 0);
                }
                sh.durable[start..end].copy_from_slice(&buf[from..from + n]);
            } else {
                sh.unsynced.push((pos, n));
            }
        }
        if sync_failed {
            // In the page cache, not on the disk.
            return (Err(injected(libc::EIO)), buf);
        }
        (Ok(n), buf)
    }

    async fn sync_data(&self) -> io::Result<()> {
        if let Some(Fault::FailSync) = self.state.borrow_mut().tick(OpKind::Sync) {
            return Err(injected(libc::EIO));
        }
        self.inner.sync_data().await?;
        let mut st = self.state.borrow_mut();
        if let Some(sh) = st.files.get_mut(&self.path) {
            sh.durable.clone_from(&sh.current);
            sh.unsynced.clear();
        }
        Ok(())
    }

    async fn truncate(&self, len: u64) -> io::Result<()> {
        self.inner.truncate(len).await?;
        let mut st = self.state.borrow_mut();
        if let Some(sh) = st.files.get_mut(&self.path) {
            sh.current.truncate(len as usize);
            sh.durable.clone_from(&sh.current);
            sh.unsynced.clear();
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shadow(durable: &[u8], current: &[u8], unsynced: &[(u64, usize)]) -> Shadow {
        Shadow {
            current: current.to_vec(),
            durable: durable.to_vec(),
            unsynced: unsynced.to_vec(),
            entry_durable: true,
            removed: false,
        }
    }

    #[test]
    fn images_follow_the_mode() {
        let sh = shadow(b"abcd", b"abcdEFGHIJ", &[(4, 3), (7, 3)]);
        assert_eq!(image(&sh, CrashMode::AllWritten), b"abcdEFGHIJ");
        assert_eq!(image(&sh, CrashMode::SyncedOnly), b"abcd");
        assert_eq!(image(&sh, CrashMode::ZeroedUnsynced), b"abcd\0\0\0\0\0\0");
        assert_eq!(image(&sh, CrashMode::Torn { bytes: 0 }), b"abcd");
        assert_eq!(image(&sh, CrashMode::Torn { bytes: 2 }), b"abcdEF");
        assert_eq!(image(&sh, CrashMode::Torn { bytes: 5 }), b"abcdEFGHI");
        assert_eq!(image(&sh, CrashMode::Torn { bytes: 100 }), b"abcdEFGHIJ");
    }

    #[test]
    fn faults_fire_once_at_their_count() {
        let mut st = FaultState::default();
        st.scheduled.push((OpKind::Sync, 2, Fault::FailSync));
        assert_eq!(st.tick(OpKind::Sync), None);
        assert_eq!(st.tick(OpKind::Write), None);
        assert_eq!(st.tick(OpKind::Sync), Some(Fault::FailSync));
        assert_eq!(st.tick(OpKind::Sync), None);
    }
}
