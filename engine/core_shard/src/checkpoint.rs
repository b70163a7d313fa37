//! The files of a shard directory besides its log: the manifest and checkpoints.
//! Byte layouts are in `FORMAT.md`.
//!
//! ```text
//! <shard dir>/
//!   MANIFEST                 which checkpoint is current (framed protobuf, CRC32C)
//!   wal/                     the write-ahead log
//!   checkpoint-<lsn>/        the newest complete checkpoint
//!     index.hnsw             the HNSW index (engine/hnsw/FORMAT.md)
//!     points.bin             node → point id and payload (CRC32C)
//! ```
//!
//! The manifest is written to a temporary name, synced, renamed into place, and its
//! directory synced, so a crash leaves either the old or the new manifest, never a torn
//! one. A checkpoint is written whole into a temporary directory `checkpoint-<lsn>.tmp/`
//! (the index through a temporary name of its own, `points.bin` directly), every file
//! and the directory synced, then renamed into place: a checkpoint directory is complete
//! before the manifest names it, and a partial one is never named and is removed at the
//! next open.

use std::fs::{self, File};
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

use prost::Message;
use vectron_hnsw::NodeId;
use vectron_proto::core::v1::ShardManifest;

use crate::error::ShardError;

/// Version of the shard directory layout.
pub(crate) const FORMAT_VERSION: u32 = 1;
const MANIFEST_MAGIC: &[u8; 8] = b"VXMANIF1";
const POINTS_MAGIC: &[u8; 8] = b"VXPOINT1";

/// Name of the manifest file.
pub(crate) const MANIFEST: &str = "MANIFEST";
/// Name of the index file inside a checkpoint directory.
pub(crate) const INDEX_FILE: &str = "index.hnsw";
/// Name of the points file inside a checkpoint directory.
pub(crate) const POINTS_FILE: &str = "points.bin";

fn file_err(path: &Path) -> impl Fn(io::Error) -> ShardError + '_ {
    move |source| ShardError::Checkpoint {
        path: path.to_path_buf(),
        source,
    }
}

fn corrupt(path: &Path, what: &str) -> ShardError {
    ShardError::Checkpoint {
        path: path.to_path_buf(),
        source: io::Error::new(io::ErrorKind::InvalidData, what.to_owned()),
    }
}

/// Writes `bytes` to `path` atomically: temporary file, fsync, rename, fsync of the
/// directory.
pub(crate) fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), ShardError> {
    let tmp = path.with_extension("tmp");
    let mut f = File::create(&tmp).map_err(file_err(&tmp))?;
    f.write_all(bytes).map_err(file_err(&tmp))?;
    f.sync_all().map_err(file_err(&tmp))?;
    fs::rename(&tmp, path).map_err(file_err(path))?;
    sync_dir(path.parent().unwrap_or(Path::new(".")))
}

/// Makes a directory's entries (creations, renames, removals) durable.
pub(crate) fn sync_dir(dir: &Path) -> Result<(), ShardError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(file_err(dir))
}

/// Creates `dir` and the missing directories above it, each made durable: the entry of
/// every directory created is synced in its parent, so a crash cannot lose a shard's
/// directory (and the log and manifest inside it) after a write into it was acknowledged.
pub(crate) fn create_dir_durable(dir: &Path) -> Result<(), ShardError> {
    let mut missing = Vec::new();
    let mut at = Some(dir);
    while let Some(d) = at.filter(|d| !d.as_os_str().is_empty() && !d.exists()) {
        missing.push(d);
        at = d.parent();
    }
    for d in missing.into_iter().rev() {
        match fs::create_dir(d) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(file_err(d)(e)),
        }
        if let Some(parent) = d.parent().filter(|p| !p.as_os_str().is_empty()) {
            sync_dir(parent)?;
        }
    }
    Ok(())
}

/// Reads the manifest of a shard directory, if it has one.
pub(crate) fn read_manifest(dir: &Path) -> Result<Option<ShardManifest>, ShardError> {
    let path = dir.join(MANIFEST);
    let bytes = match fs::read(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(file_err(&path)(e)),
    };
    let body = unframe(&path, MANIFEST_MAGIC, &bytes)?;
    let manifest =
        ShardManifest::decode(body).map_err(|_| corrupt(&path, "manifest does not decode"))?;
    if manifest.format_version != FORMAT_VERSION {
        return Err(corrupt(&path, "unsupported manifest version"));
    }
    Ok(Some(manifest))
}

/// Writes the manifest of a shard directory atomically.
pub(crate) fn write_manifest(dir: &Path, manifest: &ShardManifest) -> Result<(), ShardError> {
    write_atomic(
        &dir.join(MANIFEST),
        &frame(MANIFEST_MAGIC, &manifest.encode_to_vec()),
    )
}

/// `magic`, the body's length (u32 LE), the body, its CRC32C (u32 LE).
fn frame(magic: &[u8; 8], body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(body.len() + 16);
    out.extend_from_slice(magic);
    out.extend_from_slice(&u32::try_from(body.len()).expect("small body").to_le_bytes());
    out.extend_from_slice(body);
    out.extend_from_slice(&crc32c::crc32c(body).to_le_bytes());
    out
}

fn unframe<'a>(path: &Path, magic: &[u8; 8], bytes: &'a [u8]) -> Result<&'a [u8], ShardError> {
    if bytes.len() < 16 || &bytes[..8] != magic {
        return Err(corrupt(path, "bad magic or truncated header"));
    }
    let len = u32::from_le_bytes(bytes[8..12].try_into().expect("4 bytes")) as usize;
    if bytes.len() != 16 + len {
        return Err(corrupt(path, "length does not match the file size"));
    }
    let body = &bytes[12..12 + len];
    let crc = u32::from_le_bytes(bytes[12 + len..].try_into().expect("4 bytes"));
    if crc32c::crc32c(body) != crc {
        return Err(corrupt(path, "checksum mismatch"));
    }
    Ok(body)
}

/// Writes the points file: per point its node, id and payload.
#[cfg(test)]
pub(crate) fn write_points<'a>(
    path: &Path,
    points: impl Iterator<Item = (NodeId, &'a str, &'a [u8])> + Clone,
) -> Result<(), ShardError> {
    let mut writer = PointsWriter::begin(path, points.clone())?;
    writer.write_some(points, usize::MAX)?;
    let file = writer.finish()?;
    file.sync_all().map_err(file_err(path))
}

/// Bytes a point takes in the points file.
fn record_len(id: &str, payload: &[u8]) -> u64 {
    (4 + 2 + id.len() + 4 + payload.len()) as u64
}

/// The points file written piece by piece, so that a checkpoint of a large shard lets
/// the core's other work run between pieces, and holds one buffer of the file in
/// memory rather than all of it. The points must not change until it is finished.
#[derive(Debug)]
pub(crate) struct PointsWriter {
    file: BufWriter<File>,
    path: PathBuf,
    crc: u32,
    /// Points still to write.
    left: u64,
    /// The node to continue from.
    next: u32,
}

impl PointsWriter {
    /// Creates the file and writes its header, sized from `points` (every point the
    /// file will hold, in node order).
    pub(crate) fn begin<'a>(
        path: &Path,
        points: impl Iterator<Item = (NodeId, &'a str, &'a [u8])>,
    ) -> Result<Self, ShardError> {
        let (count, bytes) = points.fold((0u64, 0u64), |(c, b), (_, id, payload)| {
            (c + 1, b + record_len(id, payload))
        });
        let body_len = 8 + bytes;
        let mut file =
            BufWriter::with_capacity(1 << 20, File::create(path).map_err(file_err(path))?);
        let header = [
            &POINTS_MAGIC[..],
            &body_len.to_le_bytes(),
            &count.to_le_bytes(),
        ];
        for part in header {
            file.write_all(part).map_err(file_err(path))?;
        }
        Ok(Self {
            file,
            path: path.to_path_buf(),
            crc: crc32c::crc32c(&count.to_le_bytes()),
            left: count,
            next: 0,
        })
    }

    /// The node the next piece starts from.
    pub(crate) fn next_node(&self) -> usize {
        self.next as usize
    }

    /// Writes points from `points` (which continue from [`PointsWriter::next_node`]) up
    /// to about `max_bytes`; returns whether every point is written.
    pub(crate) fn write_some<'a>(
        &mut self,
        points: impl Iterator<Item = (NodeId, &'a str, &'a [u8])>,
        max_bytes: usize,
    ) -> Result<bool, ShardError> {
        let mut written = 0u64;
        let err = file_err(&self.path);
        for (node, id, payload) in points {
            if self.left == 0 {
                return Err(corrupt(&self.path, "more points than when the file began"));
            }
            if written >= max_bytes as u64 {
                return Ok(false);
            }
            let id_len = u16::try_from(id.len())
                .expect("ids are short")
                .to_le_bytes();
            let payload_len = u32::try_from(payload.len())
                .expect("payloads are small")
                .to_le_bytes();
            let node_bytes = node.0.to_le_bytes();
            for part in [
                &node_bytes[..],
                &id_len,
                id.as_bytes(),
                &payload_len,
                payload,
            ] {
                self.file.write_all(part).map_err(&err)?;
                self.crc = crc32c::crc32c_append(self.crc, part);
            }
            written += record_len(id, payload);
            self.left -= 1;
            self.next = node.0 + 1;
        }
        if self.left != 0 {
            return Err(corrupt(&self.path, "fewer points than when the file began"));
        }
        Ok(true)
    }

    /// Writes the checksum and flushes; the file is then written but not yet synced.
    pub(crate) fn finish(mut self) -> Result<File, ShardError> {
        let err = file_err(&self.path);
        self.file.write_all(&self.crc.to_le_bytes()).map_err(&err)?;
        self.file.into_inner().map_err(|e| err(e.into_error()))
    }
}

/// Reads the points file, calling `each` for every point.
#[cfg(test)]
pub(crate) fn read_points(
    path: &Path,
    mut each: impl FnMut(NodeId, &str, &[u8]) -> Result<(), ShardError>,
) -> Result<(), ShardError> {
    let file = PointsFile::read(path)?;
    let mut points = file.points()?;
    for point in points.by_ref() {
        let (node, id, payload) = point?;
        each(node, id, payload)?;
    }
    points.finish()
}

/// A points file read whole and checked (magic, length, checksum); its points are then
/// decoded one at a time ([`PointsFile::points`]), so a caller can restore them in
/// slices.
#[derive(Debug)]
pub(crate) struct PointsFile {
    path: PathBuf,
    bytes: Vec<u8>,
}

impl PointsFile {
    pub(crate) fn read(path: &Path) -> Result<Self, ShardError> {
        let bytes = fs::read(path).map_err(file_err(path))?;
        if bytes.len() < 20 || &bytes[..8] != POINTS_MAGIC {
            return Err(corrupt(path, "bad magic or truncated header"));
        }
        let len = u64::from_le_bytes(bytes[8..16].try_into().expect("8 bytes"));
        if bytes.len() as u64 != 20 + len {
            return Err(corrupt(path, "length does not match the file size"));
        }
        let body = &bytes[16..bytes.len() - 4];
        let crc = u32::from_le_bytes(bytes[bytes.len() - 4..].try_into().expect("4 bytes"));
        if crc32c::crc32c(body) != crc {
            return Err(corrupt(path, "checksum mismatch"));
        }
        Ok(Self {
            path: path.to_path_buf(),
            bytes,
        })
    }

    /// The points, in the order written.
    pub(crate) fn points(&self) -> Result<PointsIter<'_>, ShardError> {
        let mut reader = Reader {
            bytes: &self.bytes[16..self.bytes.len() - 4],
            at: 0,
            path: &self.path,
        };
        let left = reader.u64()?;
        Ok(PointsIter { reader, left })
    }
}

/// The points of a [`PointsFile`].
#[derive(Debug)]
pub(crate) struct PointsIter<'a> {
    reader: Reader<'a>,
    left: u64,
}

impl<'a> Iterator for PointsIter<'a> {
    type Item = Result<(NodeId, &'a str, &'a [u8]), ShardError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.left == 0 {
            return None;
        }
        self.left -= 1;
        let r = &mut self.reader;
        let mut point = || {
            let node = NodeId(r.u32()?);
            let id_len = r.u16()? as usize;
            let id = std::str::from_utf8(r.take(id_len)?)
                .map_err(|_| corrupt(r.path, "a point id is not UTF-8"))?;
            let payload_len = r.u32()? as usize;
            let payload = r.take(payload_len)?;
            Ok((node, id, payload))
        };
        let read = point();
        if read.is_err() {
            self.left = 0;
        }
        Some(read)
    }
}

impl PointsIter<'_> {
    /// Checks, once every point is read, that nothing follows the last one.
    pub(crate) fn finish(&self) -> Result<(), ShardError> {
        if self.left == 0 && self.reader.at == self.reader.bytes.len() {
            Ok(())
        } else {
            Err(corrupt(self.reader.path, "bytes after the last point"))
        }
    }
}

#[derive(Debug)]
struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
    path: &'a Path,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], ShardError> {
        let end = self.at.checked_add(n).filter(|&e| e <= self.bytes.len());
        let end = end.ok_or_else(|| corrupt(self.path, "a point runs past the end"))?;
        let out = &self.bytes[self.at..end];
        self.at = end;
        Ok(out)
    }
    fn u16(&mut self) -> Result<u16, ShardError> {
        Ok(u16::from_le_bytes(
            self.take(2)?.try_into().expect("2 bytes"),
        ))
    }
    fn u32(&mut self) -> Result<u32, ShardError> {
        Ok(u32::from_le_bytes(
            self.take(4)?.try_into().expect("4 bytes"),
        ))
    }
    fn u64(&mut self) -> Result<u64, ShardError> {
        Ok(u64::from_le_bytes(
            self.take(8)?.try_into().expect("8 bytes"),
        ))
    }
}

/// Name of the checkpoint directory covering `lsn`.
pub(crate) fn checkpoint_dir_name(lsn: u64) -> String {
    format!("checkpoint-{lsn:020}")
}

/// Removes checkpoint directories (complete or half-written) other than `keep`. Entries
/// that are not directories are left alone.
pub(crate) fn remove_stale_checkpoints(dir: &Path, keep: &str) -> Result<(), ShardError> {
    remove_checkpoints_but(dir, |name| name == keep)
}

/// Removes checkpoint directories (complete or half-written) whose names `keep` refuses.
/// Snapshots being received (`.recv`) are their receiver's to remove.
pub(crate) fn remove_checkpoints_but(
    dir: &Path,
    keep: impl Fn(&str) -> bool,
) -> Result<(), ShardError> {
    let entries = fs::read_dir(dir).map_err(file_err(dir))?;
    let mut removed = false;
    for entry in entries {
        let entry = entry.map_err(file_err(dir))?;
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if name.starts_with("checkpoint-") && !name.ends_with(".recv") && !keep(&name) {
            let path: PathBuf = entry.path();
            if !entry.file_type().is_ok_and(|t| t.is_dir()) {
                // Not something a checkpoint leaves: not the shard's to remove.
                tracing::warn!(path = %path.display(), "not a checkpoint directory; left alone");
                continue;
            }
            fs::remove_dir_all(&path).map_err(file_err(&path))?;
            removed = true;
        }
    }
    if removed {
        sync_dir(dir)?;
    }
    Ok(())
}

/// Prefix of a shard directory being removed: renamed aside first, so a crash during
/// the removal never leaves a shard directory that is only partly there.
pub(crate) const DELETING: &str = ".deleting-";

/// Removes a shard directory: renames it aside (durably), then removes the renamed copy.
/// A crash leaves either the whole directory or a `.deleting-` one that
/// [`crate::Core::reopen_all`] removes.
pub(crate) fn remove_shard_dir(dir: &Path) -> Result<(), ShardError> {
    let parent = dir.parent().unwrap_or(Path::new("."));
    let name = dir.file_name().unwrap_or_default().to_string_lossy();
    let aside = parent.join(format!("{DELETING}{name}"));
    // A leftover of an earlier removal would block the rename.
    if aside.symlink_metadata().is_ok() {
        finish_removal(&aside)?;
    }
    fs::rename(dir, &aside).map_err(|source| ShardError::Checkpoint {
        path: dir.to_path_buf(),
        source,
    })?;
    sync_dir(parent)?;
    finish_removal(&aside)
}

/// Removes a directory renamed aside by [`remove_shard_dir`], and makes that durable.
/// The collection directory holding it goes too once it is empty (its last shard on the
/// core is gone); a collection directory that cannot be removed is left with a warning,
/// since the shard's data is gone either way.
pub(crate) fn finish_removal(aside: &Path) -> Result<(), ShardError> {
    let removed = if aside.is_dir() {
        fs::remove_dir_all(aside)
    } else {
        fs::remove_file(aside)
    };
    removed.map_err(|source| ShardError::Checkpoint {
        path: aside.to_path_buf(),
        source,
    })?;
    let collection = aside.parent().unwrap_or(Path::new("."));
    sync_dir(collection)?;
    match fs::remove_dir(collection) {
        Ok(()) => sync_dir(collection.parent().unwrap_or(Path::new("."))),
        Err(e) if e.kind() == io::ErrorKind::DirectoryNotEmpty => Ok(()),
        Err(e) => {
            tracing::warn!(path = %collection.display(), error = %e, "cannot remove an empty collection directory; left");
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_shard_directory_is_created_with_every_missing_parent() {
        let dir = tempfile::tempdir().unwrap();
        let shard = dir.path().join("core-0").join("docs").join("shard-3");
        create_dir_durable(&shard).unwrap();
        assert!(shard.is_dir());
        // Again, and beside it: nothing to create, nothing fails.
        create_dir_durable(&shard).unwrap();
        create_dir_durable(&dir.path().join("core-0").join("docs").join("shard-4")).unwrap();
        let file = dir.path().join("file");
        fs::write(&file, b"x").unwrap();
        assert!(create_dir_durable(&file.join("below")).is_err());
    }
    use vectron_proto::core::v1::ShardAssignment;

    #[test]
    fn points_round_trip_and_damage_is_detected() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(POINTS_FILE);
        let points = [
            (NodeId(3), "a", &b"{\"x\":1}"[..]),
            (NodeId(0), "béta", &b""[..]),
        ];
        write_points(&path, points.iter().copied()).unwrap();
        let mut back = Vec::new();
        read_points(&path, |n, id, p| {
            back.push((n, id.to_owned(), p.to_vec()));
            Ok(())
        })
        .unwrap();
        let expected: Vec<_> = points
            .iter()
            .map(|(n, id, p)| (*n, (*id).to_owned(), p.to_vec()))
            .collect();
        assert_eq!(back, expected);

        let good = fs::read(&path).unwrap();
        for cut in [0, 10, good.len() - 1] {
            fs::write(&path, &good[..cut]).unwrap();
            let err = read_points(&path, |_, _, _| Ok(())).unwrap_err();
            assert!(err.to_string().contains(POINTS_FILE), "{err}");
        }
        let mut flipped = good;
        flipped[30] ^= 0x40;
        fs::write(&path, &flipped).unwrap();
        assert!(read_points(&path, |_, _, _| Ok(())).is_err());
    }

    #[test]
    fn manifest_round_trips_and_rejects_damage() {
        let dir = tempfile::tempdir().unwrap();
        assert!(read_manifest(dir.path()).unwrap().is_none());
        let m = ShardManifest {
            format_version: FORMAT_VERSION,
            assignment: Some(ShardAssignment {
                shard_id: 2,
                epoch: 7,
                ..Default::default()
            }),
            checkpoint_lsn: 42,
            checkpoint_dir: checkpoint_dir_name(42),
        };
        write_manifest(dir.path(), &m).unwrap();
        assert_eq!(read_manifest(dir.path()).unwrap(), Some(m));
        let path = dir.path().join(MANIFEST);
        let mut bytes = fs::read(&path).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        fs::write(&path, &bytes).unwrap();
        let err = read_manifest(dir.path()).unwrap_err();
        assert!(err.to_string().contains("MANIFEST"), "{err}");
    }
}
