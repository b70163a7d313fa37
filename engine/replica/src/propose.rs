//! Proposing writes to a shard group, in the order its core takes them.
//!
//! A core takes a write in one step (validate, encode, queue) and waits for it later, and
//! several writes of one stream may be waiting at once; openraft's proposal call is
//! `async`, so proposing from each waiter could send them out of order. A [`Proposer`]
//! keeps a queue: [`Proposer::propose`] queues the write at once and its own task hands
//! the queue to Raft in order.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::future::Future;
use std::rc::Rc;

use openraft::Raft;
use openraft::async_runtime::WatchReceiver as _;
use openraft::error::ClientWriteError;
use openraft::raft::{ClientWriteResponse, ClientWriteResult};
use openraft::storage::RaftStateMachine;
use tokio::sync::{Notify, oneshot};

use crate::types::{ShardOp, ShardRaft};

/// openraft's answer to a proposal: a oneshot that says nothing when nobody waits any
/// more (a write whose caller did not wait for it, `wait = false`).
pub struct WriteResponder<T>(oneshot::Sender<T>);

impl<T> std::fmt::Debug for WriteResponder<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("WriteResponder")
    }
}

impl<T> WriteResponder<T> {
    /// A responder and what its answer arrives on.
    pub fn pair() -> (Self, oneshot::Receiver<T>) {
        let (tx, rx) = oneshot::channel();
        (Self(tx), rx)
    }
}

impl<T: 'static> openraft::raft::responder::Responder<ShardRaft, T> for WriteResponder<T> {
    fn on_complete(self, result: T) {
        let _ = self.0.send(result);
    }
}

/// Why a proposal did not take effect, or may not have.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProposeError {
    /// The replica does not lead its group, or leads without a majority's word within its
    /// lease (the leader it knows of, if any): nothing was proposed.
    #[error("this replica does not lead its group (the leader is {})", leader.map_or("unknown".into(), |l| format!("replica {l}")))]
    NotLeader {
        /// The leader this replica knows of.
        leader: Option<u64>,
    },
    /// The replica stopped, or lost its leadership, with the write proposed but not
    /// known to be committed: it may or may not take effect.
    #[error("the write may or may not take effect: {reason}")]
    Indeterminate {
        /// What happened.
        reason: String,
    },
}

type Queued = (ShardOp, WriteResponder<ClientWriteResult<ShardRaft>>);

struct Inner<SM: RaftStateMachine<ShardRaft>> {
    raft: Raft<ShardRaft, SM>,
    id: u64,
    queue: RefCell<VecDeque<Queued>>,
    work: Notify,
    closed: Cell<bool>,
}

/// The writes a replica proposes, handed to its Raft in the order they were taken.
pub struct Proposer<SM: RaftStateMachine<ShardRaft>> {
    inner: Rc<Inner<SM>>,
}

impl<SM: RaftStateMachine<ShardRaft>> std::fmt::Debug for Proposer<SM> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Proposer")
            .field("id", &self.inner.id)
            .field("queued", &self.inner.queue.borrow().len())
            .finish()
    }
}

impl<SM: RaftStateMachine<ShardRaft> + 'static> Proposer<SM> {
    /// A proposer for replica `id`, whose Raft is `raft`; its task runs on the current
    /// monoio runtime until [`Proposer::close`].
    pub fn start(raft: Raft<ShardRaft, SM>, id: u64) -> Self {
        let inner = Rc::new(Inner {
            raft,
            id,
            queue: RefCell::new(VecDeque::new()),
            work: Notify::new(),
            closed: Cell::new(false),
        });
        monoio::spawn(run(Rc::clone(&inner)));
        Self { inner }
    }

    /// The leader this replica knows of.
    pub fn leader(&self) -> Option<u64> {
        self.inner.raft.metrics().borrow_watched().current_leader
    }

    /// Whether this replica leads its group, as far as it knows.
    pub fn is_leader(&self) -> bool {
        self.leader() == Some(self.inner.id)
    }

    /// Queues `op` for Raft now; the returned future resolves once it is committed and
    /// applied here. Refused at once when this replica does not lead its group. A
    /// proposal nobody waits for still goes ahead.
    pub fn propose(
        &self,
        op: ShardOp,
    ) -> Result<
        impl Future<Output = Result<ClientWriteResponse<ShardRaft>, ProposeError>> + 'static,
        ProposeError,
    > {
        if self.inner.closed.get() {
            return Err(ProposeError::NotLeader { leader: None });
        }
        let leader = self.leader();
        if leader != Some(self.inner.id) {
            return Err(ProposeError::NotLeader { leader });
        }
        let (responder, answer) = WriteResponder::pair();
        self.inner.queue.borrow_mut().push_back((op, responder));
        self.inner.work.notify_one();
        Ok(async move {
            match answer.await {
                Ok(Ok(done)) => Ok(done),
                // openraft answers so only for a write it did not append: this replica
                // no longer leads, or leads without a majority's word within its lease
                // (a loaded machine): nothing was proposed, and the write may go again.
                Ok(Err(ClientWriteError::ForwardToLeader(f))) => Err(ProposeError::NotLeader {
                    leader: f.leader_id,
                }),
                Ok(Err(e)) => Err(ProposeError::Indeterminate {
                    reason: e.to_string(),
                }),
                Err(_) => Err(ProposeError::Indeterminate {
                    reason: "the replica stopped before the write was decided".into(),
                }),
            }
        })
    }

    /// Stops taking proposals; what is queued is dropped (its waiters learn that the
    /// write may or may not take effect).
    pub fn close(&self) {
        self.inner.closed.set(true);
        self.inner.queue.borrow_mut().clear();
        self.inner.work.notify_one();
    }
}

async fn run<SM: RaftStateMachine<ShardRaft>>(inner: Rc<Inner<SM>>) {
    loop {
        inner.work.notified().await;
        loop {
            if inner.closed.get() {
                return;
            }
            let Some((op, responder)) = inner.queue.borrow_mut().pop_front() else {
                break;
            };
            if let Err(fatal) = inner.raft.write(op).responder(responder).await {
                tracing::error!(replica = inner.id, error = %fatal, "the replica's Raft stopped");
                inner.closed.set(true);
                inner.queue.borrow_mut().clear();
                return;
            }
        }
    }
}
