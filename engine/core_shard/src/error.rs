//! Errors of a shard, split the way a caller must react: a request that failed (its
//! input broke a rule, it named the wrong shard) versus a shard that must stop (its log
//! or files failed).

use std::net::SocketAddr;
use std::path::PathBuf;

use vectron_hnsw::HnswError;
use vectron_proto::rules::RuleError;
use vectron_wal::WalError;

use crate::filter::FilterError;

/// Why a shard operation failed.
#[derive(Debug, thiserror::Error)]
pub enum ShardError {
    /// A request that breaks a rule of the data contract (`vectron_proto::rules`).
    #[error(transparent)]
    Rule(#[from] RuleError),
    /// A bad filter.
    #[error(transparent)]
    Filter(#[from] FilterError),
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
    /// The shard's backlog (points not yet indexed, or log bytes not yet written) stayed
    /// over its bound: the write is refused, to be retried.
    #[error(
        "shard {shard_id} of collection {collection:?} is taking writes faster than it can index them ({unindexed} points waiting, the bound is {max}); retry shortly"
    )]
    Backlog {
        /// Collection.
        collection: String,
        /// Shard.
        shard_id: u32,
        /// Points acknowledged and not yet indexed.
        unindexed: usize,
        /// The bound.
        max: usize,
    },
    /// A checkpoint is writing its files: writes wait, and one that waited too long is
    /// refused, to be retried.
    #[error("shard {shard_id} of collection {collection:?} is writing a checkpoint; retry shortly")]
    WritesHeld {
        /// Collection.
        collection: String,
        /// Shard.
        shard_id: u32,
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
    /// A replica that does not lead its shard's group was asked to write (or to read
    /// linearizably): nothing was done. The leader it knows of, if any, and where it is.
    #[error(
        "this replica of shard {shard_id} of collection {collection:?} does not lead its group ({})",
        match leader {
            Some((id, Some(addr))) => format!("replica {id} at {addr} does"),
            Some((id, None)) => format!("replica {id} does"),
            None => "no leader is known: an election is under way".into(),
        }
    )]
    NotLeader {
        /// Collection.
        collection: String,
        /// Shard.
        shard_id: u32,
        /// The leader's replica id and core address, when known.
        leader: Option<(u64, Option<SocketAddr>)>,
    },
    /// A replicated write was proposed but its outcome is unknown (the leader stopped or
    /// lost its leadership before the write was decided): it may or may not take effect.
    /// Writes by id are safe to retry.
    #[error(
        "the write to shard {shard_id} of collection {collection:?} may or may not take effect: {reason}"
    )]
    Indeterminate {
        /// Collection.
        collection: String,
        /// Shard.
        shard_id: u32,
        /// What happened.
        reason: String,
    },
    /// A replica that cannot answer reads yet: it knows no leader of its group (it is cut
    /// off, or an election is under way) or is still applying what it was sent.
    #[error("this replica of shard {shard_id} of collection {collection:?} is lagging: {reason}")]
    Lagging {
        /// Collection.
        collection: String,
        /// Shard.
        shard_id: u32,
        /// Why.
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
