//! The one error type of the index.

use std::path::PathBuf;

use crate::NodeId;

/// Everything an index operation can fail with. Bad input never panics; it comes back
/// as one of these.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HnswError {
    /// A vector or query has the wrong number of values.
    #[error("vector has {got} values, the index expects {expected}")]
    WrongDimension {
        /// The index's dimension.
        expected: usize,
        /// What was given.
        got: usize,
    },
    /// A vector or query holds NaN or an infinity.
    #[error("value {position} of the vector is not finite")]
    NonFinite {
        /// Index of the first offending value.
        position: usize,
    },
    /// A cosine vector or query has length zero, so it has no direction.
    #[error("a cosine vector must not be all zeros")]
    ZeroVector,
    /// `k` was zero.
    #[error("k must be at least 1")]
    ZeroK,
    /// A configuration value is out of range.
    #[error("invalid index configuration: {field} {reason}")]
    InvalidConfig {
        /// The offending field.
        field: &'static str,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The id was never handed out, or its point is already deleted.
    #[error("no live point with id {id}")]
    UnknownId {
        /// The id asked for.
        id: NodeId,
    },
    /// The index cannot hold more points (ids are 32-bit).
    #[error("the index is full ({max} points)")]
    CapacityExceeded {
        /// The most points an index holds.
        max: usize,
    },
    /// Memory for a larger arena could not be mapped.
    #[error("could not allocate {bytes} bytes for the index")]
    Alloc {
        /// Size of the failed allocation.
        bytes: usize,
        /// The system error.
        #[source]
        source: std::io::Error,
    },
    /// A piecewise save went wrong: the index changed between pieces, or the saver was
    /// finished before every section was written.
    #[error("saving the index failed: {reason}")]
    Save {
        /// What went wrong.
        reason: &'static str,
    },
    /// Reading or writing an index file failed.
    #[error("I/O error on index file {path}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The system error.
        #[source]
        source: std::io::Error,
    },
    /// An index file is truncated, corrupt or of another version.
    #[error("index file {path} is unusable: {reason}")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: Corruption,
    },
}

/// Why an index file was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Corruption {
    /// The file does not start with the index magic bytes.
    #[error("not a Vectron HNSW file (bad magic)")]
    BadMagic,
    /// The file was written by a format version this build cannot read.
    #[error("format version {found} is not supported (this build reads versions 1 to {supported})")]
    UnsupportedVersion {
        /// Version in the file.
        found: u32,
        /// Newest version this build reads.
        supported: u32,
    },
    /// The file is shorter than its header says.
    #[error("truncated: {needed} bytes needed, {len} present")]
    Truncated {
        /// Bytes the header or a section needs.
        needed: u64,
        /// Bytes in the file.
        len: u64,
    },
    /// A checksum does not match: the bytes changed after they were written.
    #[error("checksum mismatch in {section}")]
    Checksum {
        /// Header or section name.
        section: &'static str,
    },
    /// A field holds a value no valid index has.
    #[error("invalid value in {field}")]
    InvalidValue {
        /// The field.
        field: &'static str,
    },
}
