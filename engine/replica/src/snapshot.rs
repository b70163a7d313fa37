//! A replica's snapshot as openraft carries it: a checkpoint directory.

use std::path::{Path, PathBuf};
use std::rc::{Rc, Weak};

/// The file in a snapshot's checkpoint directory that names the last entry and the
/// membership it holds (openraft's snapshot metadata). It travels in the first message
/// of a snapshot stream, not as a file.
pub const SNAPSHOT_META_FILE: &str = "SNAPSHOT";

/// A snapshot's files: an immutable checkpoint directory, either one of the replica's own
/// or one received whole from its leader. Clones share one handle, which
/// [`SnapshotFiles::watch`] lets the replica see: a directory is not removed while a
/// handle to it (a stream sending it, say) is alive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnapshotFiles {
    dir: Rc<PathBuf>,
    received: bool,
}

impl SnapshotFiles {
    /// A checkpoint directory of the replica's own (or of another replica, which
    /// installing copies).
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self {
            dir: Rc::new(dir.into()),
            received: false,
        }
    }

    /// Files received from a leader into the replica's directory, for it alone: installing
    /// moves them into place.
    pub fn received(dir: impl Into<PathBuf>) -> Self {
        Self {
            dir: Rc::new(dir.into()),
            received: true,
        }
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Alive as long as a handle to these files is.
    pub fn watch(&self) -> Weak<PathBuf> {
        Rc::downgrade(&self.dir)
    }

    /// Whether the files were received for this replica alone.
    pub fn is_received(&self) -> bool {
        self.received
    }
}
