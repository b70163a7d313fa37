//! Errors. Two kinds, kept apart on purpose:
//!
//! | error | meaning | what the caller does |
//! | --- | --- | --- |
//! | [`RecordError`] | this record was refused before anything was written | fail the request; the log is healthy |
//! | [`WalError`] | the log itself failed (IO, corruption, poisoned, closed) | stop the shard; reopen to recover |
//!
//! [`AppendError`] is what [`append`](crate::Wal::append) returns: either of the two.

use std::fmt;
use std::io;
use std::path::PathBuf;
use std::sync::Arc;

/// A record refused before anything was written: the request failed, the log is healthy.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RecordError {
    /// The batch holds no id.
    #[error("a batch must hold at least one id")]
    EmptyBatch,
    /// An upsert batch declared dimension 0.
    #[error("an upsert batch needs a dimension of at least 1")]
    ZeroDimension,
    /// The flat vector run does not hold `ids × dim` values.
    #[error(
        "an upsert batch of {ids} ids at dimension {dim} needs {expected} vector values, got {got}"
    )]
    WrongVectorLength {
        /// Ids in the batch.
        ids: usize,
        /// Declared dimension.
        dim: u32,
        /// `ids × dim`.
        expected: usize,
        /// Values actually passed.
        got: usize,
    },
    /// The payload list does not hold one entry per id.
    #[error(
        "an upsert batch of {ids} ids carries {payloads} payloads; it needs one per id (empty means none)"
    )]
    WrongPayloadCount {
        /// Ids in the batch.
        ids: usize,
        /// Payloads passed.
        payloads: usize,
    },
    /// The encoded record does not fit in one segment.
    #[error("the encoded record takes {bytes} bytes; a segment of this log holds at most {max}")]
    TooLarge {
        /// Encoded body size.
        bytes: u64,
        /// Largest body a segment holds.
        max: u64,
    },
    /// A checkpoint marker offered to a v2 log, whose checkpoints are Raft snapshots
    /// recorded beside the log.
    #[error("a v2 log keeps no checkpoint markers")]
    CheckpointInV2,
    /// A term or a raw body offered to a v1 log, whose records carry no term.
    #[error("{what} needs a v2 log (this one is v1)")]
    NeedsV2 {
        /// What was offered.
        what: &'static str,
    },
    /// A raw record offered at an LSN other than the next one.
    #[error("a record for LSN {got} cannot be appended: the next LSN is {expected}")]
    OutOfOrder {
        /// The next LSN of the log.
        expected: u64,
        /// The LSN offered.
        got: u64,
    },
    /// A raw record's body is not a record body this build reads.
    #[error("the record body does not decode")]
    BadBody(#[source] Corruption),
    /// The serializer failed (it only can when memory runs out).
    #[error("encoding the record failed")]
    Encode(#[source] rkyv::rancor::Error),
}

/// The file operation that failed, named in [`WalError::Io`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum IoOp {
    /// Creating the log directory.
    CreateDir,
    /// Listing the log directory.
    ListDir,
    /// Taking the directory's lock file.
    Lock,
    /// Creating a segment file.
    Create,
    /// Opening a segment file.
    Open,
    /// Reading or memory-mapping a segment file.
    Read,
    /// Writing records.
    Write,
    /// `fdatasync` of a segment.
    Sync,
    /// `fsync` of the directory.
    SyncDir,
    /// Cutting a torn tail off a segment.
    Truncate,
    /// Removing a segment covered by a checkpoint.
    Remove,
}

impl fmt::Display for IoOp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::CreateDir => "creating directory",
            Self::ListDir => "listing directory",
            Self::Lock => "locking",
            Self::Create => "creating",
            Self::Open => "opening",
            Self::Read => "reading",
            Self::Write => "writing",
            Self::Sync => "syncing",
            Self::SyncDir => "syncing directory",
            Self::Truncate => "truncating",
            Self::Remove => "removing",
        })
    }
}

/// What is wrong with the bytes at a [`WalError::Corrupt`] position.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Corruption {
    /// The segment header's magic or checksum is wrong.
    #[error("bad segment header")]
    BadHeader,
    /// The segment was written by a newer format version.
    #[error("segment format version {found} is not supported (this build reads {supported})")]
    UnsupportedVersion {
        /// Version in the header.
        found: u32,
        /// Version this build reads.
        supported: u32,
    },
    /// The file name and the header disagree on the segment's first LSN.
    #[error("the file name says the segment starts at LSN {name}, its header says {header}")]
    NameMismatch {
        /// First LSN from the file name.
        name: u64,
        /// First LSN from the header.
        header: u64,
    },
    /// A record fails its length or checksum, and valid records follow it (or it lies in
    /// a sealed segment): not a torn tail, so it is never skipped.
    #[error("record fails its checksum or length check, and is not a torn tail")]
    BadRecord,
    /// LSNs must follow each other without a hole.
    #[error("expected LSN {expected}, found {found}")]
    LsnGap {
        /// The LSN that should come next.
        expected: u64,
        /// The LSN found.
        found: u64,
    },
    /// A segment is missing: the next segment does not start where the previous ended.
    #[error("segment should start at LSN {expected}, starts at {found}")]
    SegmentGap {
        /// The LSN after the previous segment's last record.
        expected: u64,
        /// First LSN of this segment.
        found: u64,
    },
    /// The file is shorter than the records the log wrote to it.
    #[error("segment holds {found} bytes, the log wrote {expected}")]
    ShortSegment {
        /// Bytes the log wrote.
        expected: u64,
        /// Bytes the file holds.
        found: u64,
    },
    /// The body passed its checksum but does not decode as a record this build knows.
    #[error("record body does not decode")]
    Undecodable(#[source] rkyv::rancor::Error),
    /// The body decodes but its parts disagree (vector run or payload count).
    #[error("record body is inconsistent: {0}")]
    Inconsistent(#[source] Box<RecordError>),
    /// The segments of one log are written in different formats.
    #[error("segment format version {found} in a log of version {log}")]
    MixedFormats {
        /// Version of this segment.
        found: u32,
        /// Version of the log's first segment.
        log: u32,
    },
}

/// The first failure of a poisoned log, shared by every error reported after it.
///
/// An `Arc`, not an `Rc`: errors leave the core thread (to the gateway, to logs), so they
/// are `Send + Sync`. It is only ever cloned on the failure path.
#[derive(Debug, Clone)]
pub struct PoisonCause(pub(crate) Arc<WalError>);

impl PoisonCause {
    /// The failure that poisoned the log.
    pub fn first(&self) -> &WalError {
        &self.0
    }
}

impl fmt::Display for PoisonCause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

impl std::error::Error for PoisonCause {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.0.source()
    }
}

/// The log failed: the shard that owns it must stop, and reopen the log to recover.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WalError {
    /// A file operation failed.
    #[error("{op} {}", path.display())]
    Io {
        /// What was being done.
        op: IoOp,
        /// The file or directory.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: io::Error,
    },
    /// An earlier write or sync failed. Nothing is retried (a failed `fdatasync` may have
    /// dropped dirty pages); every call fails until the log is reopened.
    #[error("the write-ahead log in {} is poisoned by an earlier failure; reopen it", dir.display())]
    Poisoned {
        /// The log directory.
        dir: PathBuf,
        /// The failure that poisoned it.
        #[source]
        cause: PoisonCause,
    },
    /// Bytes on disk are damaged in a way recovery must not paper over.
    #[error("corrupt write-ahead log: segment {}, offset {offset}", segment.display())]
    Corrupt {
        /// The segment file.
        segment: PathBuf,
        /// Byte offset of the damaged record or header in that file.
        offset: u64,
        /// What is wrong there.
        #[source]
        problem: Corruption,
    },
    /// Another process (or another handle in this one) holds the directory.
    #[error("the write-ahead log in {} is already open", dir.display())]
    Locked {
        /// The log directory.
        dir: PathBuf,
    },
    /// Replay was asked for records a checkpoint already let go of.
    #[error("replay from LSN {requested} asked for removed records: the log starts at LSN {first}")]
    ReplayGap {
        /// The LSN asked for.
        requested: u64,
        /// The first LSN still in the log.
        first: u64,
    },
    /// A cut was asked to keep fewer records than a checkpoint already let go of: it would
    /// leave a gap before the log's first record.
    #[error("cutting the log after LSN {keep} would leave a gap: the log starts at LSN {first}")]
    CutGap {
        /// The last LSN the cut was to keep.
        keep: u64,
        /// The first LSN still in the log.
        first: u64,
    },
    /// A cut was asked for while a [`Replay`](crate::Replay) reads the log: shortening a
    /// file it has mapped would fault the reader.
    #[error("the write-ahead log cannot be cut while a replay reads it")]
    ReplayOpen,
    /// The options do not describe a usable log.
    #[error("invalid write-ahead log options: {0}")]
    InvalidOptions(&'static str),
    /// The log was closed.
    #[error("the write-ahead log is closed")]
    Closed,
}

/// What [`append`](crate::Wal::append) returns on failure: the record was refused (the
/// request failed), or the log failed (the shard must stop).
#[derive(Debug, thiserror::Error)]
pub enum AppendError {
    /// The record was refused; nothing was written and the log is healthy.
    #[error(transparent)]
    Rejected(#[from] RecordError),
    /// The log failed; every later call fails until it is reopened.
    #[error(transparent)]
    Fatal(#[from] WalError),
}

impl AppendError {
    /// True when the log itself failed and the shard must stop.
    pub fn is_fatal(&self) -> bool {
        matches!(self, Self::Fatal(_))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_cross_threads() {
        fn send_sync<T: Send + Sync + 'static>() {}
        send_sync::<WalError>();
        send_sync::<AppendError>();
        send_sync::<RecordError>();
    }
}
