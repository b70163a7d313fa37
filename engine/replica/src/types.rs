//! The shard group's Raft types: what an entry carries, what applying it answers, who the
//! members are, and how a Raft index maps onto the write-ahead log's LSNs.

use std::fmt;
use std::rc::Rc;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use vectron_wal::{EncodedBody, Lsn, Record, RecordError};

/// A replicated shard's Raft types. A committed leader id is its term alone
/// (`leader_id_std`: one leader per term), so a log entry's id is (term, index), which
/// is what the log's v2 records store. The group runs on its core's monoio runtime, and
/// a proposal's answer comes on a [`WriteResponder`](crate::WriteResponder), quiet when
/// nobody waits for it. (Written out rather than through `declare_raft_types!`, which
/// takes no responder of our own.)
#[derive(Debug, Clone, Copy, Default, Eq, PartialEq, Ord, PartialOrd)]
pub struct ShardRaft {}

impl openraft::RaftTypeConfig for ShardRaft {
    type D = ShardOp;
    type R = Applied;
    type NodeId = u64;
    type Node = ReplicaNode;
    type Term = u64;
    type LeaderId = openraft::impls::leader_id_std::LeaderId<u64, u64>;
    type Vote = openraft::impls::Vote<Self::LeaderId>;
    type Payload = openraft::EntryPayload<Self::D, Self::NodeId, Self::Node>;
    type Entry =
        openraft::Entry<<Self::LeaderId as openraft::vote::RaftLeaderId>::Committed, Self::Payload>;
    type Responder<T>
        = crate::propose::WriteResponder<T>
    where
        T: openraft::OptionalSend + 'static;
    type Batch<T>
        = openraft::impls::InlineBatch<T>
    where
        T: openraft::OptionalSend + 'static;
    type AsyncRuntime = openraft_rt_monoio::MonoioRuntime;
    type ErrorSource = openraft::impls::BoxedErrorSource;
}

/// A log entry's id.
pub type LogId = openraft::type_config::alias::LogIdOf<ShardRaft>;
/// A replica's vote.
pub type Vote = openraft::type_config::alias::VoteOf<ShardRaft>;
/// A log entry.
pub type Entry = openraft::type_config::alias::EntryOf<ShardRaft>;
/// The id of a committed leader: its term.
pub type CommittedLeaderId = openraft::type_config::alias::CommittedLeaderIdOf<ShardRaft>;
/// What a snapshot holds: its last entry and membership.
pub type SnapshotMeta = openraft::type_config::alias::SnapshotMetaOf<ShardRaft>;
/// Membership as the state machine last applied it.
pub type StoredMembership = openraft::type_config::alias::StoredMembershipOf<ShardRaft>;

/// The LSN that holds Raft index `index`. openraft numbers entries from 0 (the first
/// membership entry of a new group), the log from 1, where LSN 0 means "none".
pub const fn lsn_of(index: u64) -> Lsn {
    Lsn::new(index + 1)
}

/// The Raft index held at `lsn` (never [`Lsn::ZERO`]).
pub const fn index_of(lsn: Lsn) -> u64 {
    lsn.get() - 1
}

/// The id of the entry at `index`, written in `term`.
pub fn log_id(term: u64, index: u64) -> LogId {
    LogId::new(CommittedLeaderId::new(term), index)
}

/// A write to a shard, as a Raft entry carries it: the record body the log stores,
/// encoded once by the leader and shared by every copy of the entry (the leader's log,
/// its replication streams, its state machine).
#[derive(Clone, PartialEq, Eq)]
pub struct ShardOp(Rc<EncodedBody>);

impl ShardOp {
    /// Encodes a write.
    pub fn encode(record: &Record<'_>) -> Result<Self, RecordError> {
        Ok(Self(Rc::new(EncodedBody::encode(record)?)))
    }

    /// The encoded body.
    pub fn body(&self) -> &EncodedBody {
        &self.0
    }
}

impl From<EncodedBody> for ShardOp {
    fn from(body: EncodedBody) -> Self {
        Self(Rc::new(body))
    }
}

impl fmt::Debug for ShardOp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ShardOp({} B)", self.0.len())
    }
}

impl fmt::Display for ShardOp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

// openraft's `serde` feature (on for the control plane) asks every entry payload for
// serde. Shard entries travel and rest as their body bytes, never through serde; this
// keeps them bytes where serde is used anyway (openraft's debug output, tests).
impl Serialize for ShardOp {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_bytes(self.0.as_bytes())
    }
}

impl<'de> Deserialize<'de> for ShardOp {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let bytes = <Vec<u8>>::deserialize(deserializer)?;
        EncodedBody::decode(&bytes)
            .map(Self::from)
            .map_err(serde::de::Error::custom)
    }
}

/// What applying a committed entry answers the proposer.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Applied {
    /// Points written or deleted.
    pub count: u64,
}

/// A member of a shard group: the core that holds the replica. It carries no address
/// (ports change when a worker restarts); a core looks its peers up in its assignments.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ReplicaNode {
    /// The worker.
    pub worker_id: u64,
    /// The core on that worker.
    pub core: u32,
}

#[cfg(test)]
mod tests {
    use super::*;
    use vectron_wal::{BodyView, Delete};

    #[test]
    fn indexes_and_lsns_are_one_apart() {
        assert_eq!(lsn_of(0), Lsn::new(1));
        assert_eq!(index_of(lsn_of(41)), 41);
    }

    #[test]
    fn an_op_survives_serde_as_its_bytes() {
        let ids = ["a".to_string()];
        let op = ShardOp::encode(&Record::Delete(Delete { ids: &ids })).expect("encodes");
        let json = serde_json::to_vec(&op).expect("serializes");
        let back: ShardOp = serde_json::from_slice(&json).expect("deserializes");
        assert_eq!(back, op);
        assert!(matches!(back.body().view(), BodyView::Delete(d) if d.ids().eq(["a"])));
        assert!(serde_json::from_slice::<ShardOp>(b"[1,2,3]").is_err());
    }
}
