//! Vectron's replicated shard: every shard is a Raft group whose replicas live on the
//! cores that own them, and whose Raft log is the shard's write-ahead log.
//!
//! This crate holds what a group needs from storage: the group's Raft types
//! ([`ShardRaft`]: an entry carries the record body the log stores, [`ShardOp`]) and the
//! log store ([`LogStore`]: openraft's `RaftLogStorage` over a v2 [`vectron_wal::Wal`] and
//! its `RAFT_STATE`). Everything runs on the core's monoio runtime; nothing here is `Send`.
#![warn(missing_docs)]

mod faults;
mod log_store;
mod network;
mod outbox;
mod propose;
mod replicas;
mod settings;
mod snapshot;
mod types;
mod wire;

pub use crate::faults::FaultPlan;
pub use crate::log_store::{LogReader, LogStore, TAIL_CACHE_BYTES};
pub use crate::network::{GroupNetwork, PeerLink, Peers, SNAPSHOT_CHUNK_BYTES};
pub use crate::outbox::MAX_APPEND_BATCH_BYTES;
pub use crate::propose::{ProposeError, Proposer, WriteResponder};
pub use crate::replicas::{
    APPEND_PATH, GroupId, INSTALL_SNAPSHOT_PATH, Replicas, TRANSFER_LEADER_PATH, VOTE_PATH, routes,
};
pub use crate::settings::GroupSettings;
pub use crate::snapshot::{SNAPSHOT_META_FILE, SnapshotFiles};
pub use crate::types::{
    Applied, CommittedLeaderId, Entry, LogId, ReplicaNode, ShardOp, ShardRaft, SnapshotMeta,
    StoredMembership, Vote, index_of, log_id, lsn_of,
};
pub use crate::wire::WireError;
