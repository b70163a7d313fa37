//! The sending side of Raft between control nodes: one lazily connected tonic channel per
//! peer, openraft messages encoded as JSON inside `vectron.control.v1.RaftMessage`.
//!
//! Every request names the node it is meant for; the receiver refuses it if it is another
//! node, so an address taken over by a new node never receives this cluster's log. A peer
//! that cannot be reached, or that refuses, is reported as `Unreachable`, which makes
//! openraft back off before trying again.

use std::future::Future;
use std::time::Duration;

use openraft::errors::{
    NetworkError, RPCError, ReplicationClosed, StreamingError, Timeout, Unreachable,
};
use openraft::network::RPCOption;
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, SnapshotResponse, VoteRequest, VoteResponse,
};
use openraft::{OptionalSend, RPCTypes, RaftNetworkFactory, RaftNetworkV2};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Channel, Endpoint};
use vectron_proto::cluster::PresentKey;
use vectron_proto::control::v1::raft_transport_client::RaftTransportClient;
use vectron_proto::control::v1::{RaftMessage, SnapshotChunk};

use super::{PeerNode, Snapshot, TypeConfig, Vote};

/// Largest Raft message accepted or sent, in bytes.
pub(crate) const MAX_MESSAGE_BYTES: usize = 64 << 20;
/// Largest snapshot a node accepts from a peer, in bytes: a node holds the snapshot it
/// installs in memory, so a stream that went on without end would take all of it.
pub(crate) const MAX_SNAPSHOT_BYTES: usize = 256 << 20;
/// Bytes of snapshot per streamed chunk.
const SNAPSHOT_CHUNK_BYTES: usize = 1 << 20;
/// How long connecting to a peer may take before it counts as unreachable.
const CONNECT_TIMEOUT: Duration = Duration::from_millis(500);

/// Builds a channel to `address` (`host:port`) that connects on first use.
pub(crate) fn lazy_channel(address: &str) -> Result<Channel, tonic::transport::Error> {
    Ok(Endpoint::from_shared(format!("http://{address}"))?
        .connect_timeout(CONNECT_TIMEOUT)
        .tcp_nodelay(true)
        .http2_keep_alive_interval(Duration::from_secs(10))
        .keep_alive_timeout(Duration::from_secs(5))
        .connect_lazy())
}

/// The generated client, on a channel that presents the cluster key.
type Transport = RaftTransportClient<InterceptedService<Channel, PresentKey>>;

/// Creates the clients openraft uses to reach peers.
#[derive(Debug, Clone)]
pub(crate) struct NetworkFactory {
    node_id: u64,
    key: PresentKey,
}

impl NetworkFactory {
    /// Clients of node `node_id`, presenting `key` to their peers.
    pub(crate) fn new(node_id: u64, key: PresentKey) -> Self {
        Self { node_id, key }
    }
}

impl RaftNetworkFactory<TypeConfig> for NetworkFactory {
    type Network = PeerClient;

    async fn new_client(&mut self, target: u64, node: &PeerNode) -> PeerClient {
        PeerClient {
            from: self.node_id,
            target,
            client: lazy_channel(&node.address)
                .map(|channel| {
                    RaftTransportClient::with_interceptor(channel, self.key.clone())
                        .max_decoding_message_size(MAX_MESSAGE_BYTES)
                        .max_encoding_message_size(MAX_MESSAGE_BYTES)
                })
                .map_err(|e| e.to_string()),
            address: node.address.clone(),
        }
    }
}

/// The connection to one peer.
#[derive(Debug)]
pub(crate) struct PeerClient {
    from: u64,
    target: u64,
    address: String,
    /// The client, or why the peer's address does not make one.
    client: Result<Transport, String>,
}

#[derive(Clone, Copy)]
enum Rpc {
    Vote,
    PreVote,
    AppendEntries,
}

impl PeerClient {
    fn client(&self) -> Result<Transport, Unreachable<TypeConfig>> {
        self.client.clone().map_err(|e| {
            Unreachable::from_string(format!("bad peer address {:?}: {e}", self.address))
        })
    }

    fn timeout(&self, action: RPCTypes, timeout: Duration) -> Timeout<TypeConfig> {
        Timeout {
            action,
            id: self.from,
            target: self.target,
            timeout,
        }
    }

    async fn call<Req, Resp>(
        &mut self,
        rpc: Rpc,
        request: &Req,
        option: &RPCOption,
    ) -> Result<Resp, RPCError<TypeConfig>>
    where
        Req: Serialize,
        Resp: DeserializeOwned,
    {
        let mut client = self.client()?;
        let message = RaftMessage {
            json: serde_json::to_vec(request).map_err(|e| NetworkError::new(&e))?,
            target_node_id: self.target,
        };
        let ttl = option.hard_ttl();
        let (action, reply) = match rpc {
            Rpc::Vote => (
                RPCTypes::Vote,
                tokio::time::timeout(ttl, client.vote(message)).await,
            ),
            Rpc::PreVote => (
                RPCTypes::Vote,
                tokio::time::timeout(ttl, client.pre_vote(message)).await,
            ),
            Rpc::AppendEntries => (
                RPCTypes::AppendEntries,
                tokio::time::timeout(ttl, client.append_entries(message)).await,
            ),
        };
        let reply = reply
            .map_err(|_| self.timeout(action, ttl))?
            .map_err(|status| Unreachable::new(&status))?
            .into_inner();
        serde_json::from_slice(&reply.json).map_err(|e| RPCError::Network(NetworkError::new(&e)))
    }
}

impl RaftNetworkV2<TypeConfig> for PeerClient {
    type SnapshotData = Vec<u8>;

    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<TypeConfig>, RPCError<TypeConfig>> {
        self.call(Rpc::AppendEntries, &rpc, &option).await
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<VoteResponse<TypeConfig>, RPCError<TypeConfig>> {
        self.call(Rpc::Vote, &rpc, &option).await
    }

    async fn pre_vote(
        &mut self,
        rpc: VoteRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<VoteResponse<TypeConfig>, RPCError<TypeConfig>> {
        self.call(Rpc::PreVote, &rpc, &option).await
    }

    async fn full_snapshot(
        &mut self,
        vote: Vote,
        snapshot: Snapshot,
        cancel: impl Future<Output = ReplicationClosed> + OptionalSend + 'static,
        option: RPCOption,
    ) -> Result<SnapshotResponse<TypeConfig>, StreamingError<TypeConfig>> {
        let mut client = self.client()?;
        let vote_json = serde_json::to_vec(&vote).map_err(|e| NetworkError::new(&e))?;
        let meta_json = serde_json::to_vec(&snapshot.meta).map_err(|e| NetworkError::new(&e))?;
        let data = snapshot.snapshot;
        let mut chunks = Vec::with_capacity(data.len() / SNAPSHOT_CHUNK_BYTES + 1);
        let mut pieces = data.chunks(SNAPSHOT_CHUNK_BYTES);
        chunks.push(SnapshotChunk {
            vote_json,
            meta_json,
            data: pieces.next().map(<[u8]>::to_vec).unwrap_or_default(),
            target_node_id: self.target,
        });
        chunks.extend(pieces.map(|piece| SnapshotChunk {
            data: piece.to_vec(),
            ..SnapshotChunk::default()
        }));
        let ttl = option.hard_ttl();
        let send = tokio::time::timeout(ttl, client.install_snapshot(tokio_stream::iter(chunks)));
        let reply = tokio::select! {
            closed = cancel => return Err(StreamingError::Closed(closed)),
            reply = send => reply,
        };
        let reply = reply
            .map_err(|_| self.timeout(RPCTypes::InstallSnapshot, ttl))?
            .map_err(|status| Unreachable::new(&status))?
            .into_inner();
        serde_json::from_slice(&reply.json)
            .map_err(|e| StreamingError::Network(NetworkError::new(&e)))
    }
}
