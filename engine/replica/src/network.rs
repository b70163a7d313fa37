//! The client side of replication: openraft's network for one group, over
//! `vectron.replication.v1` to the cores that hold its other replicas.
//!
//! A core knows where each replica it talks to lives ([`Peers`]: replica id → the peer
//! core's gRPC address, from its assignments) and holds one [`Channel`] per peer core,
//! shared by every group the two cores have in common; their append requests leave
//! together through the peer's outbox ([`crate::outbox`]).

use std::cell::RefCell;
use std::collections::HashMap;
use std::fs;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::pin;
use std::rc::Rc;
use std::time::Duration;

use futures_util::future::{Either, select};
use openraft::error::{
    NetworkError, RPCError, ReplicationClosed, StreamingError, Timeout, Unreachable,
};
use openraft::network::{RPCOption, RPCTypes, RaftNetworkFactory, v2::RaftNetworkV2};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, SnapshotResponse, TransferLeaderRequest,
    TransferLeaderResponse, VoteRequest, VoteResponse,
};
use openraft::type_config::alias::SnapshotOf;
use vectron_net::{Channel, ClientConfig, Code, Status};
use vectron_proto::replication::v1 as pb;

use crate::faults::{Fate, FaultPlan};
use crate::outbox::{MAX_APPEND_BATCH_BYTES, Outbox};
use crate::replicas::{GroupId, INSTALL_SNAPSHOT_PATH, TRANSFER_LEADER_PATH, VOTE_PATH};
use crate::snapshot::SnapshotFiles;
use crate::types::{ReplicaNode, ShardRaft, Vote};
use crate::wire;

/// Bytes of a snapshot file per message.
pub const SNAPSHOT_CHUNK_BYTES: usize = 1 << 20;

/// A snapshot may take this long, plus one second per [`SNAPSHOT_BYTES_PER_SECOND`].
const SNAPSHOT_BASE_TIMEOUT: Duration = Duration::from_secs(30);
/// The slowest transfer a snapshot's timeout allows for.
const SNAPSHOT_BYTES_PER_SECOND: u64 = 16 << 20;

/// Where the replicas a core talks to live, and its channels to their cores.
#[derive(Debug)]
pub struct Peers {
    config: ClientConfig,
    faults: Option<FaultPlan>,
    addrs: RefCell<HashMap<u64, SocketAddr>>,
    /// One channel per peer core, and the outbox of its append requests.
    channels: RefCell<HashMap<SocketAddr, (Channel, Rc<Outbox>)>>,
}

impl Peers {
    /// No peers yet; channels are made with `config`.
    pub fn new(config: ClientConfig) -> Self {
        Self {
            config,
            faults: None,
            addrs: RefCell::new(HashMap::new()),
            channels: RefCell::new(HashMap::new()),
        }
    }

    /// Peers whose traffic goes through a fault plan (tests).
    pub fn with_faults(config: ClientConfig, faults: FaultPlan) -> Self {
        Self {
            faults: Some(faults),
            ..Self::new(config)
        }
    }

    /// Replica `replica` is served at `addr` (its core's gRPC address).
    pub fn set(&self, replica: u64, addr: SocketAddr) {
        self.addrs.borrow_mut().insert(replica, addr);
    }

    /// Forgets where replica `replica` is.
    pub fn forget(&self, replica: u64) {
        self.addrs.borrow_mut().remove(&replica);
    }

    /// The channel to the core that holds `replica`, and its outbox.
    fn channel(&self, replica: u64) -> Result<(Channel, Rc<Outbox>), String> {
        let addr = *self
            .addrs
            .borrow()
            .get(&replica)
            .ok_or_else(|| format!("no address is known for replica {replica}"))?;
        let mut channels = self.channels.borrow_mut();
        if let Some(found) = channels.get(&addr) {
            return Ok(found.clone());
        }
        let channel = Channel::new(addr, self.config.clone()).map_err(|e| e.to_string())?;
        let made = (channel.clone(), Outbox::new(channel));
        channels.insert(addr, made.clone());
        Ok(made)
    }
}

/// openraft's network factory for one replica of one group.
#[derive(Debug, Clone)]
pub struct GroupNetwork {
    group: GroupId,
    from: u64,
    peers: Rc<Peers>,
}

impl GroupNetwork {
    /// The network replica `from` of `group` reaches its peers through.
    pub fn new(group: GroupId, from: u64, peers: Rc<Peers>) -> Self {
        Self { group, from, peers }
    }
}

impl RaftNetworkFactory<ShardRaft> for GroupNetwork {
    type Network = PeerLink;

    async fn new_client(&mut self, target: u64, _node: &ReplicaNode) -> PeerLink {
        PeerLink {
            group: self.group.clone(),
            from: self.from,
            to: target,
            peers: Rc::clone(&self.peers),
        }
    }
}

/// The way from one replica to another of the same group.
#[derive(Debug)]
pub struct PeerLink {
    group: GroupId,
    from: u64,
    to: u64,
    peers: Rc<Peers>,
}

/// A message from the wire that cannot be taken, as an error openraft carries.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct Refused(String);

impl PeerLink {
    fn route(&self) -> pb::Route {
        pb::Route {
            group: Some(self.group.to_wire()),
            from: self.from,
            to: self.to,
        }
    }

    fn channel(&self) -> Result<Channel, RPCError<ShardRaft>> {
        self.outbox().map(|(channel, _)| channel)
    }

    fn outbox(&self) -> Result<(Channel, Rc<Outbox>), RPCError<ShardRaft>> {
        self.peers
            .channel(self.to)
            .map_err(|reason| RPCError::Unreachable(Unreachable::new(&Refused(reason))))
    }

    /// A failed call as openraft sees it: a peer that cannot be reached is backed off
    /// from; a timeout is a timeout; the rest are network errors.
    fn failed(&self, status: &Status, action: RPCTypes, timeout: Duration) -> RPCError<ShardRaft> {
        match status.code() {
            Code::DeadlineExceeded => RPCError::Timeout(Timeout {
                action,
                id: self.from,
                target: self.to,
                timeout,
            }),
            Code::Unavailable | Code::NotFound => RPCError::Unreachable(Unreachable::new(status)),
            _ => RPCError::Network(NetworkError::new(status)),
        }
    }

    /// Makes a call, through the fault plan when there is one. `repeatable` calls may be
    /// delivered twice.
    async fn deliver<T>(
        &self,
        repeatable: bool,
        mut call: impl AsyncFnMut() -> Result<T, Status>,
    ) -> Result<T, Status> {
        let Some(plan) = &self.peers.faults else {
            return call().await;
        };
        match plan.fate(self.from, self.to) {
            Fate::DropRequest => Err(Status::unavailable("the fault plan lost the request")),
            Fate::DropAnswer => {
                let _ = call().await;
                Err(Status::unavailable("the fault plan lost the answer"))
            }
            Fate::Deliver { delay, duplicate } => {
                if !delay.is_zero() {
                    monoio::time::sleep(delay).await;
                }
                let answer = call().await;
                if duplicate && repeatable {
                    let _ = call().await;
                }
                answer
            }
        }
    }

    async fn call_vote(
        &mut self,
        rpc: &VoteRequest<ShardRaft>,
        pre_vote: bool,
        option: &RPCOption,
    ) -> Result<VoteResponse<ShardRaft>, RPCError<ShardRaft>> {
        let channel = self.channel()?;
        let request = wire::vote_request_to(self.route(), rpc, pre_vote);
        let timeout = option.hard_ttl();
        let response: pb::VoteResponse = self
            .deliver(true, async || {
                channel.unary(VOTE_PATH, &request, timeout).await
            })
            .await
            .map_err(|s| self.failed(&s, RPCTypes::Vote, timeout))?;
        wire::vote_response_from(&response).map_err(|e| RPCError::Network(NetworkError::new(&e)))
    }

    /// Streams the files of `snapshot` after its start message.
    async fn send_snapshot(
        &self,
        vote: &Vote,
        snapshot: &SnapshotOf<ShardRaft, SnapshotFiles>,
    ) -> Result<SnapshotResponse<ShardRaft>, StreamingError<ShardRaft>> {
        let channel = self
            .channel()
            .map_err(|e| StreamingError::Network(NetworkError::new(&e)))?;
        let meta_json = serde_json::to_vec(&snapshot.meta)
            .map_err(|e| StreamingError::Network(NetworkError::new(&e)))?;
        let files = snapshot_files(snapshot.snapshot.dir())
            .map_err(|e| StreamingError::Network(NetworkError::new(&e)))?;
        let total: u64 = files.iter().map(|(_, _, len)| *len).sum();
        let timeout =
            SNAPSHOT_BASE_TIMEOUT + Duration::from_secs(total / SNAPSHOT_BYTES_PER_SECOND);
        let start = Some(pb::SnapshotChunk {
            part: Some(pb::snapshot_chunk::Part::Start(pb::SnapshotStart {
                route: Some(self.route()),
                vote: Some(wire::vote_to(vote)),
                meta_json,
            })),
        });
        let response: pb::SnapshotResponse = self
            .deliver(false, async || {
                let mut start = start.clone();
                let mut reader = FileReader::new(files.clone());
                channel
                    .client_streaming(
                        INSTALL_SNAPSHOT_PATH,
                        async || match start.take() {
                            Some(start) => Ok(Some(start)),
                            None => reader.next_chunk().await,
                        },
                        timeout,
                    )
                    .await
            })
            .await
            .map_err(
                |s| match self.failed(&s, RPCTypes::InstallSnapshot, timeout) {
                    RPCError::Timeout(t) => StreamingError::Timeout(t),
                    RPCError::Unreachable(u) => StreamingError::Unreachable(u),
                    _ => StreamingError::Network(NetworkError::new(&s)),
                },
            )?;
        let vote = wire::vote_from(response.vote.as_ref())
            .map_err(|e| StreamingError::Network(NetworkError::new(&e)))?;
        Ok(SnapshotResponse::new(vote))
    }
}

/// The files of a snapshot directory to send: every regular file but the metadata,
/// which travels in the start message. Sorted, with their lengths.
fn snapshot_files(
    dir: &std::path::Path,
) -> std::io::Result<Vec<(String, std::path::PathBuf, u64)>> {
    let mut files = Vec::new();
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if !entry.file_type()?.is_file() || name == crate::SNAPSHOT_META_FILE {
            continue;
        }
        files.push((name, entry.path(), entry.metadata()?.len()));
    }
    files.sort();
    Ok(files)
}

/// Reads a snapshot's files as a sequence of chunks, through the core's runtime (the
/// files are immutable, so their lengths are known).
struct FileReader {
    files: std::vec::IntoIter<(String, std::path::PathBuf, u64)>,
    current: Option<Reading>,
}

/// The file being read.
struct Reading {
    name: String,
    file: monoio::fs::File,
    len: u64,
    offset: u64,
    crc: u32,
}

impl FileReader {
    fn new(files: Vec<(String, std::path::PathBuf, u64)>) -> Self {
        Self {
            files: files.into_iter(),
            current: None,
        }
    }

    async fn next_chunk(&mut self) -> Result<Option<pb::SnapshotChunk>, Status> {
        if self.current.is_none() {
            let Some((name, path, len)) = self.files.next() else {
                return Ok(None);
            };
            let file = monoio::fs::File::open(&path)
                .await
                .map_err(|e| Status::internal(format!("cannot open {}: {e}", path.display())))?;
            self.current = Some(Reading {
                name,
                file,
                len,
                offset: 0,
                crc: 0,
            });
        }
        let reading = self.current.as_mut().expect("opened above");
        let want = (reading.len - reading.offset).min(SNAPSHOT_CHUNK_BYTES as u64) as usize;
        let data = if want == 0 {
            Vec::new()
        } else {
            let (read, data) = reading
                .file
                .read_exact_at(Vec::with_capacity(want), reading.offset)
                .await;
            read.map_err(|e| {
                Status::internal(format!("cannot read snapshot file {}: {e}", reading.name))
            })?;
            data
        };
        reading.crc = crc32c::crc32c_append(reading.crc, &data);
        let last = reading.offset + want as u64 == reading.len;
        let piece = pb::FileChunk {
            name: reading.name.clone(),
            offset: reading.offset,
            last,
            crc32c: if last { reading.crc } else { 0 },
            data,
        };
        reading.offset += want as u64;
        if last {
            self.current = None;
        }
        Ok(Some(pb::SnapshotChunk {
            part: Some(pb::snapshot_chunk::Part::File(piece)),
        }))
    }
}

impl RaftNetworkV2<ShardRaft> for PeerLink {
    type SnapshotData = SnapshotFiles;

    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<ShardRaft>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<ShardRaft>, RPCError<ShardRaft>> {
        let (_, outbox) = self.outbox()?;
        let (request, prefix_end) = wire::append_to(self.route(), &rpc, MAX_APPEND_BATCH_BYTES)
            .map_err(|e| RPCError::Network(NetworkError::new(&e)))?;
        let timeout = option.hard_ttl();
        // The request goes with the next call to the peer's core, beside other groups'.
        let answer = match self.peers.faults {
            None => outbox.append(request, timeout).await,
            Some(_) => {
                self.deliver(true, async || outbox.append(request.clone(), timeout).await)
                    .await
            }
        }
        .map_err(|s| self.failed(&s, RPCTypes::AppendEntries, timeout))?;
        match wire::append_response_from(&answer) {
            // Only a prefix went: the leader sends the rest next.
            Ok(Ok(AppendEntriesResponse::Success)) if prefix_end.is_some() => {
                Ok(AppendEntriesResponse::PartialSuccess(prefix_end))
            }
            Ok(Ok(answer)) => Ok(answer),
            Ok(Err(reason)) => Err(RPCError::Unreachable(Unreachable::new(&Refused(reason)))),
            Err(e) => Err(RPCError::Network(NetworkError::new(&e))),
        }
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<ShardRaft>,
        option: RPCOption,
    ) -> Result<VoteResponse<ShardRaft>, RPCError<ShardRaft>> {
        self.call_vote(&rpc, false, &option).await
    }

    async fn pre_vote(
        &mut self,
        rpc: VoteRequest<ShardRaft>,
        option: RPCOption,
    ) -> Result<VoteResponse<ShardRaft>, RPCError<ShardRaft>> {
        self.call_vote(&rpc, true, &option).await
    }

    async fn transfer_leader(
        &mut self,
        req: TransferLeaderRequest<ShardRaft>,
        option: RPCOption,
    ) -> Result<TransferLeaderResponse<ShardRaft>, RPCError<ShardRaft>> {
        let channel = self.channel()?;
        let request = wire::transfer_to(self.route(), &req);
        let timeout = option.hard_ttl();
        let response: pb::TransferLeaderResponse = self
            .deliver(false, async || {
                channel.unary(TRANSFER_LEADER_PATH, &request, timeout).await
            })
            .await
            .map_err(|s| self.failed(&s, RPCTypes::TransferLeader, timeout))?;
        wire::transfer_response_from(&response)
            .map_err(|e| RPCError::Network(NetworkError::new(&e)))
    }

    async fn full_snapshot(
        &mut self,
        vote: Vote,
        snapshot: SnapshotOf<ShardRaft, SnapshotFiles>,
        cancel: impl Future<Output = ReplicationClosed> + 'static,
        _option: RPCOption,
    ) -> Result<SnapshotResponse<ShardRaft>, StreamingError<ShardRaft>> {
        let sending = pin!(self.send_snapshot(&vote, &snapshot));
        let cancel = pin!(cancel);
        match select(sending, cancel).await {
            Either::Left((sent, _)) => sent,
            Either::Right((closed, _)) => Err(StreamingError::Closed(closed)),
        }
    }
}
