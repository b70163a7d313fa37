//! The file operations the log performs, behind a small trait so tests can inject faults
//! and take crash images ([`FaultStorage`](crate::FaultStorage)). [`MonoioStorage`] is the
//! real thing: monoio file operations, which go through io_uring on the io_uring driver
//! and are plain syscalls on the legacy one.
//!
//! Reading is not here: recovery and replay memory-map the segment files.

use std::future::Future;
use std::io;
use std::path::Path;

/// How the writes to a segment file reach the disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durability {
    /// Writes land in the page cache; [`SegmentFile::sync_data`] makes them durable.
    Buffered,
    /// Every write returns only once it is durable (`O_DSYNC`): the write and the
    /// `fdatasync` of a group are one operation, one trip through the ring.
    PerWrite,
}

/// Creates, opens, removes segment files and syncs their directory.
pub trait Storage: 'static {
    /// An open segment file.
    type File: SegmentFile + 'static;

    /// Creates a new, empty segment file; fails if one exists at `path`.
    fn create(
        &self,
        path: &Path,
        durability: Durability,
    ) -> impl Future<Output = io::Result<Self::File>>;

    /// Opens an existing segment file for writing (the log's last segment, at open).
    fn open(
        &self,
        path: &Path,
        durability: Durability,
    ) -> impl Future<Output = io::Result<Self::File>>;

    /// Makes creations and removals in `dir` durable (`fsync` of the directory).
    fn sync_dir(&self, dir: &Path) -> impl Future<Output = io::Result<()>>;

    /// Removes a segment file.
    fn remove(&self, path: &Path) -> impl Future<Output = io::Result<()>>;
}

/// One open segment file.
pub trait SegmentFile {
    /// Writes `buf[from..]` at `pos`; may write less (a short write), and returns how much
    /// it wrote along with the buffer, whose ownership travels with the operation. With
    /// [`Durability::PerWrite`] what it reports written is durable.
    fn write_at(
        &self,
        buf: Vec<u8>,
        from: usize,
        pos: u64,
    ) -> impl Future<Output = (io::Result<usize>, Vec<u8>)>;

    /// `fdatasync`: makes every completed write durable.
    fn sync_data(&self) -> impl Future<Output = io::Result<()>>;

    /// Cuts the file to `len` bytes and makes that durable (`fsync`).
    fn truncate(&self, len: u64) -> impl Future<Output = io::Result<()>>;
}

/// Segment files on monoio: io_uring operations on the io_uring driver, syscalls on the
/// legacy driver.
#[derive(Debug, Default, Clone, Copy)]
pub struct MonoioStorage;

/// A segment file opened by [`MonoioStorage`].
#[derive(Debug)]
pub struct MonoioFile {
    file: monoio::fs::File,
    /// The same open file, for the calls monoio lacks (`ftruncate`).
    std: std::fs::File,
}

impl MonoioFile {
    fn open(path: &Path, create: bool, durability: Durability) -> io::Result<Self> {
        use std::os::unix::fs::OpenOptionsExt;
        let mut options = std::fs::OpenOptions::new();
        options.read(true).write(true).create_new(create);
        if durability == Durability::PerWrite {
            options.custom_flags(libc::O_DSYNC);
        }
        // `open(2)` itself is quick; the writes and syncs are what go through the ring.
        let std = options.open(path)?;
        let file = monoio::fs::File::from_std(std.try_clone()?)?;
        Ok(Self { file, std })
    }
}

impl Storage for MonoioStorage {
    type File = MonoioFile;

    async fn create(&self, path: &Path, durability: Durability) -> io::Result<MonoioFile> {
        MonoioFile::open(path, true, durability)
    }

    async fn open(&self, path: &Path, durability: Durability) -> io::Result<MonoioFile> {
        MonoioFile::open(path, false, durability)
    }

    async fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        let dir = monoio::fs::File::from_std(std::fs::File::open(dir)?)?;
        dir.sync_all().await
    }

    async fn remove(&self, path: &Path) -> io::Result<()> {
        std::fs::remove_file(path)
    }
}

impl SegmentFile for MonoioFile {
    async fn write_at(&self, buf: Vec<u8>, from: usize, pos: u64) -> (io::Result<usize>, Vec<u8>) {
        use monoio::buf::IoBuf;
        let end = buf.len();
        if from > end {
            let e = io::Error::new(io::ErrorKind::InvalidInput, "write starts past the buffer");
            return (Err(e), buf);
        }
        let (res, slice) = self.file.write_at(buf.slice(from..end), pos).await;
        (res, slice.into_inner())
    }

    async fn sync_data(&self) -> io::Result<()> {
        self.file.sync_data().await
    }

    async fn truncate(&self, len: u64) -> io::Result<()> {
        self.std.set_len(len)?;
        self.file.sync_all().await
    }
}

#[cfg(test)]
mod tests {
    use std::os::fd::AsRawFd;

    use super::*;

    /// The open flags of `file`, as the kernel reports them.
    fn open_flags(file: &MonoioFile) -> i32 {
        let info = std::fs::read_to_string(format!("/proc/self/fdinfo/{}", file.std.as_raw_fd()))
            .expect("fdinfo is readable");
        let flags = info
            .lines()
            .find_map(|l| l.strip_prefix("flags:"))
            .expect("fdinfo has flags");
        i32::from_str_radix(flags.trim(), 8).expect("octal flags")
    }

    #[test]
    fn per_write_durability_opens_o_dsync() {
        let mut rt = monoio::RuntimeBuilder::<monoio::LegacyDriver>::new()
            .build()
            .unwrap();
        rt.block_on(async { check_flags() });
    }

    fn check_flags() {
        let dir = tempfile::tempdir().unwrap();
        let durable = MonoioFile::open(&dir.path().join("a"), true, Durability::PerWrite).unwrap();
        let buffered = MonoioFile::open(&dir.path().join("b"), true, Durability::Buffered).unwrap();
        assert_eq!(open_flags(&durable) & libc::O_DSYNC, libc::O_DSYNC);
        assert_eq!(open_flags(&buffered) & libc::O_DSYNC, 0);
        let reopened =
            MonoioFile::open(&dir.path().join("b"), false, Durability::PerWrite).unwrap();
        assert_eq!(open_flags(&reopened) & libc::O_DSYNC, libc::O_DSYNC);
    }
}
