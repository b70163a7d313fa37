//! Errors of a shard, split the way a caller must react: a request that failed (its
//! input broke a rule, it named the wrong shard) versus a shard that must stop (its log
//! or files failed).

use std::path::PathBuf;

use vectron_hnsw::HnswError;
use vectron_wal::WalError;

use crate::filter::FilterError;

/// Why a shard operation failed.
#[derive(Debug, thiserror::Error)]
pub enum ShardError {
    /// A write carried no points (or a read no ids).
    #[error("the request carries no points")]
    EmptyBatch,
    /// Too many points or ids in one request.
    #[error("the request carries {got} points or ids, more than the limit of {max}")]
    BatchTooLarge {
        /// Points given.
        got: usize,
        /// The limit.
        max: usize,
    },
    /// Too many bytes in one write.
    #[error(
        "the request carries {got} bytes of points, more than the limit of {max} per shard; split it"
    )]
    BatchBytes {
        /// Bytes given.
        got: usize,
        /// The limit.
        max: usize,
    },
    /// A point id that is empty or too long.
    #[error("point {point}: id must be 1 to 128 bytes, got {len}")]
    BadId {
        /// Position in the request.
        point: usize,
        /// Its length in bytes.
        len: usize,
    },
    /// A point id that appears twice in one request.
    #[error("point id {id:?} appears more than once in the request")]
    DuplicateId {
        /// The id.
        id: String,
    },
    /// A point's vector breaks a rule (dimension, finite values, direction).
    #[error(transparent)]
    Vector(#[from] vectron_proto::validate::VectorError),
    /// A payload nested deeper than `vectron_proto::validate::MAX_PAYLOAD_DEPTH`.
    #[error("point {point} (id {id:?}): payload {reason}")]
    PayloadDepth {
        /// Position in the request.
        point: usize,
        /// The point's id.
        id: String,
        /// How deep it nests.
        reason: vectron_proto::validate::PayloadDepthError,
    },
    /// A payload that is not a JSON object.
    #[error("point {point} (id {id:?}): payload must be a JSON object: {reason}")]
    BadPayload {
        /// Position in the request.
        point: usize,
        /// The point's id.
        id: String,
        /// What is wrong.
        reason: String,
    },
    /// A payload over the size limit.
    #[error("point {point} (id {id:?}): payload is {got} bytes, more than the limit of {max}")]
    PayloadTooLarge {
        /// Position in the request.
        point: usize,
        /// The point's id.
        id: String,
        /// Its size.
        got: usize,
        /// The limit.
        max: usize,
    },
    /// A query of the wrong length.
    #[error("query vector has {got} values, the collection has dimension {expected}")]
    QueryDimension {
        /// The collection's dimension.
        expected: usize,
        /// Values given.
        got: usize,
    },
    /// A query with NaN or an infinity.
    #[error("query vector value {at} is not a finite number")]
    QueryNonFinite {
        /// Index of the first bad value.
        at: usize,
    },
    /// A query vector whose length is out of range.
    #[error("query {0}")]
    QueryLength(vectron_proto::validate::LengthError),
    /// `k` out of range.
    #[error("k must be between 1 and {max}, got {k}")]
    BadK {
        /// Given.
        k: u32,
        /// The limit.
        max: u32,
    },
    /// `ef` out of range.
    #[error("ef must be between 1 and {max}, got {ef}")]
    BadEf {
        /// Given.
        ef: u32,
        /// The limit.
        max: u32,
    },
    /// A scroll page size out of range.
    #[error("limit must be between 1 and {max}, got {limit}")]
    BadLimit {
        /// Given.
        limit: u32,
        /// The limit.
        max: u32,
    },
    /// A bad filter.
    #[error(transparent)]
    Filter(#[from] FilterError),
    /// A delete by filter with an empty filter.
    #[error(
        "a delete by filter needs a non-empty filter; drop the collection to delete everything"
    )]
    EmptyDeleteFilter,
    /// A delete naming neither ids nor a filter.
    #[error("a delete must name ids or a filter")]
    NoSelector,
    /// A point id whose hash belongs to another shard: the caller routed wrongly.
    #[error("point id {id:?} hashes to {hash}, outside this shard's range {start}..={end}")]
    OutsideRange {
        /// The id.
        id: String,
        /// Its hash.
        hash: u64,
        /// First hash of the shard.
        start: u64,
        /// Last hash of the shard.
        end: u64,
    },
    /// The shard is not on this core.
    #[error("shard {shard_id} of collection {collection:?} is not on this core")]
    UnknownShard {
        /// Collection.
        collection: String,
        /// Shard.
        shard_id: u32,
    },
    /// The caller routed by another placement epoch.
    #[error(
        "shard {shard_id} of collection {collection:?} is at epoch {current}, the request named {requested}"
    )]
    WrongEpoch {
        /// Collection.
        collection: String,
        /// Shard.
        shard_id: u32,
        /// The epoch the core serves.
        current: u64,
        /// The epoch in the request.
        requested: u64,
    },
    /// An assignment that cannot be opened.
    #[error("cannot open the shard: {reason}")]
    BadAssignment {
        /// What is wrong.
        reason: String,
    },
    /// The shard exists on disk with another spec than the assignment.
    #[error(
        "shard {shard_id} of collection {collection:?} exists with a different spec; close it with delete_data first"
    )]
    SpecMismatch {
        /// Collection.
        collection: String,
        /// Shard.
        shard_id: u32,
    },
    /// A shard that served before has no data on this core.
    #[error("shard {shard_id} of collection {collection:?} served before but {} holds no data for it", dir.display())]
    Missing {
        /// Collection.
        collection: String,
        /// Shard.
        shard_id: u32,
        /// Where its data should be.
        dir: PathBuf,
    },
    /// The shard stopped after a failure; it must be reopened.
    #[error(
        "shard {shard_id} of collection {collection:?} stopped after a failure ({reason}); reopen it"
    )]
    Stopped {
        /// Collection.
        collection: String,
        /// Shard.
        shard_id: u32,
        /// The failure.
        reason: String,
    },
    /// The write-ahead log failed: the shard stops.
    #[error("write-ahead log failed")]
    Wal {
        /// The log's error.
        #[source]
        source: WalError,
    },
    /// The index refused an operation validation should have caught: the shard stops.
    #[error("index failed")]
    Index {
        /// The index's error.
        #[source]
        source: HnswError,
    },
    /// A checkpoint file could not be written or read.
    #[error("checkpoint file {}", path.display())]
    Checkpoint {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A checkpoint's index was built with other parameters than the collection's spec
    /// (dimension, metric, `m` or quantization): loading it would serve wrong results.
    #[error(
        "checkpoint index {} has {field} {found}, the collection's spec {expected}",
        path.display()
    )]
    IndexMismatch {
        /// The index file.
        path: PathBuf,
        /// The parameter that differs: `dimension`, `metric`, `m` or `quantization`.
        field: &'static str,
        /// The spec's value.
        expected: String,
        /// The index's value.
        found: String,
    },
    /// A checkpoint or log does not agree with itself.
    #[error("cannot recover the shard: {reason}")]
    Replay {
        /// What disagrees.
        reason: String,
    },
}

impl ShardError {
    /// True when the shard must stop serving: its state can no longer be trusted to
    /// match its log.
    pub fn is_fatal(&self) -> bool {
        matches!(
            self,
            ShardError::Wal { .. } | ShardError::Index { .. } | ShardError::Replay { .. }
        )
    }
}

/// An error and every cause under it, as one line (`open failed: checkpoint: No space
/// left on device`): logs and statuses name the cause, not only the step that failed.
pub(crate) fn chain(err: &dyn std::error::Error) -> String {
    let mut line = err.to_string();
    let mut source = err.source();
    while let Some(s) = source {
        line.push_str(": ");
        line.push_str(&s.to_string());
        source = s.source();
    }
    line
}
