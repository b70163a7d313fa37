//! Vectron's replicated shard: every shard is a Raft group whose replicas live on the
//! cores that own them, and whose Raft log is the shard's write-ahead log.
//!
//! This crate holds what a group needs from storage: the group's Raft types
//! ([`ShardRaft`]: an entry carries the record body the log stores, [`ShardOp`]) and the
//! log store ([`LogStore`]: openraft's `RaftLogStorage` over a v2 [`vectron_wal::Wal`] and
//! its `RAFT_STATE`). Everything runs on the core's monoio runtime; nothing here is `Send`.
#![warn(missing_docs)]

mod log_store;
mod types;

pub use crate::log_store::{LogReader, LogStore, TAIL_CACHE_BYTES};
pub use crate::types::{
    Applied, CommittedLeaderId, Entry, LogId, ReplicaNode, ShardOp, ShardRaft, StoredMembership,
    Vote, index_of, log_id, lsn_of,
};
