//! Raft for the control plane: openraft's type configuration, the redb-backed log and
//! state machine ([`store`]), and the tonic transport between control nodes ([`network`]
//! sends, [`transport`] receives).
//!
//! ```text
//!   service ──client_write(Command)──► Raft ──append──► LogStore (redb: raft_log, raft_meta)
//!                                       │  ──RPCs──► network ═══tonic═══► transport ──► peer's Raft
//!                                       └─apply──► StateMachine ──► Shared (ControlState in memory)
//!                                                        └─snapshots──► redb: snapshot
//! ```
//!
//! The Raft runs on a thread of its own and is reached through a `Send` handle
//! ([`handle`]): openraft is built single-threaded for the data plane's monoio runtimes.

pub(crate) mod handle;
pub(crate) mod network;
pub(crate) mod store;
pub(crate) mod transport;

use serde::{Deserialize, Serialize};

use crate::state::{Command, CommandResult};

/// A control node as the Raft membership records it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct PeerNode {
    /// `host:port` of the node's gRPC listener.
    pub address: String,
}

openraft::declare_raft_types!(
    /// The control plane's Raft types: commands in, results out, `u64` node ids and
    /// nodes that carry their gRPC address.
    pub(crate) TypeConfig:
        D = Command,
        R = CommandResult,
        NodeId = u64,
        Node = PeerNode,
        AsyncRuntime = openraft_rt_tokio::TokioRuntime,
);

/// openraft's Raft of a control node; it lives on the Raft thread ([`handle`]).
pub(crate) type ControlRaft = openraft::Raft<TypeConfig, store::StateMachine>;

pub(crate) type LogId = openraft::alias::LogIdOf<TypeConfig>;
pub(crate) type Vote = openraft::alias::VoteOf<TypeConfig>;
pub(crate) type Entry = openraft::alias::EntryOf<TypeConfig>;
pub(crate) type SnapshotMeta = openraft::alias::SnapshotMetaOf<TypeConfig>;
pub(crate) type StoredMembership = openraft::alias::StoredMembershipOf<TypeConfig>;
pub(crate) type Snapshot = openraft::alias::SnapshotOf<TypeConfig, Vec<u8>>;
