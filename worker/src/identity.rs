//! The files that make a worker the same worker across restarts: `WORKER_ID` (its id)
//! and `CLUSTER_ID` (the cluster it joined). Both are small UTF-8 files written
//! atomically (temporary file, `fsync`, rename, `fsync` of the directory), so a crash
//! leaves the old or the new content, never a torn or empty file. A file that exists but
//! cannot be read, is not UTF-8, or holds nothing is refused: silently replacing it would
//! give the worker another identity, or let it join another cluster.

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use crate::worker::WorkerError;

/// Name of the file holding the worker's id.
pub(crate) const WORKER_ID: &str = "WORKER_ID";
/// Name of the file holding the id of the cluster the worker registered with.
pub(crate) const CLUSTER_ID: &str = "CLUSTER_ID";

/// Writes `text` to `path` atomically.
pub(crate) fn write_atomic(path: &Path, text: &str) -> io::Result<()> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    let mut f = File::create(&tmp)?;
    f.write_all(text.as_bytes())?;
    f.sync_all()?;
    drop(f);
    fs::rename(&tmp, path)?;
    File::open(path.parent().unwrap_or(Path::new(".")))?.sync_all()
}

/// Reads an identity file: `None` when it does not exist, its trimmed text otherwise.
fn read(path: &Path) -> Result<Option<String>, WorkerError> {
    let refused = |source| WorkerError::IdentityFile {
        path: path.to_path_buf(),
        source,
    };
    match fs::read_to_string(path) {
        Ok(text) if text.trim().is_empty() => Err(refused(io::Error::new(
            io::ErrorKind::InvalidData,
            "the file is empty",
        ))),
        Ok(text) => Ok(Some(text.trim().to_owned())),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(refused(e)),
    }
}

/// The worker's id: `given` (recorded for the next start), else the recorded one, else
/// a new one, recorded.
pub(crate) fn worker_id(data_dir: &Path, given: Option<&str>) -> Result<String, WorkerError> {
    let path = data_dir.join(WORKER_ID);
    let write = |id: &str| {
        write_atomic(&path, id).map_err(|source| WorkerError::DataDir {
            path: path.clone(),
            source,
        })
    };
    if let Some(id) = given {
        write(id)?;
        return Ok(id.to_owned());
    }
    if let Some(id) = read(&path)? {
        return Ok(id);
    }
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let id = format!("w-{:x}-{:x}", std::process::id(), nanos & 0xffff_ffff);
    write(&id)?;
    Ok(id)
}

/// The cluster id the worker recorded, if any.
pub(crate) fn recorded_cluster(data_dir: &Path) -> Result<Option<String>, WorkerError> {
    read(&data_dir.join(CLUSTER_ID))
}

/// Records the cluster the worker registered with.
pub(crate) fn record_cluster(data_dir: &Path, cluster_id: &str) -> io::Result<()> {
    write_atomic(&data_dir.join(CLUSTER_ID), cluster_id)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn a_worker_id_is_created_once_and_kept() {
        let dir = tempfile::tempdir().unwrap();
        let id = worker_id(dir.path(), None).unwrap();
        assert!(id.starts_with("w-"), "{id}");
        assert_eq!(worker_id(dir.path(), None).unwrap(), id);
        assert_eq!(worker_id(dir.path(), Some("w-given")).unwrap(), "w-given");
        assert_eq!(worker_id(dir.path(), None).unwrap(), "w-given");
        assert!(!dir.path().join("WORKER_ID.tmp").exists());
    }

    #[test]
    fn an_unusable_identity_file_is_refused_not_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(WORKER_ID);
        for bad in [&b""[..], b" \n", b"w-\xff\xfe"] {
            fs::write(&path, bad).unwrap();
            let err = worker_id(dir.path(), None).unwrap_err();
            assert!(
                matches!(&err, WorkerError::IdentityFile { path: p, .. } if *p == path),
                "{err}"
            );
            assert_eq!(fs::read(&path).unwrap(), bad, "the file is left as it was");
        }
        // A directory where the file should be: unreadable.
        fs::remove_file(&path).unwrap();
        fs::create_dir(&path).unwrap();
        assert!(matches!(
            worker_id(dir.path(), None),
            Err(WorkerError::IdentityFile { .. })
        ));
        fs::remove_dir(&path).unwrap();

        // Unreadable by permissions (root reads it anyway: then it is simply used).
        fs::write(&path, "w-kept").unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o000)).unwrap();
        match worker_id(dir.path(), None) {
            Ok(id) => assert_eq!(id, "w-kept"),
            Err(e) => assert!(matches!(e, WorkerError::IdentityFile { .. }), "{e}"),
        }
        fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).unwrap();

        let cluster = dir.path().join(CLUSTER_ID);
        assert_eq!(recorded_cluster(dir.path()).unwrap(), None);
        record_cluster(dir.path(), "c-1").unwrap();
        assert_eq!(
            recorded_cluster(dir.path()).unwrap().as_deref(),
            Some("c-1")
        );
        fs::write(&cluster, b"\xff").unwrap();
        assert!(matches!(
            recorded_cluster(dir.path()),
            Err(WorkerError::IdentityFile { .. })
        ));
    }
}
