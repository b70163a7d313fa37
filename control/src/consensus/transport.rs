//! The receiving side of Raft between control nodes: `vectron.control.v1.RaftTransport`
//! hands each request to the local openraft node.

use serde::Serialize;
use serde::de::DeserializeOwned;
use tonic::{Request, Response, Status, Streaming};
use vectron_proto::control::v1::raft_transport_server::RaftTransport;
use vectron_proto::control::v1::{RaftMessage, SnapshotChunk};

use super::handle::RaftHandle;
use super::network::MAX_SNAPSHOT_BYTES;
use super::{Snapshot, SnapshotMeta, Vote};

/// Adds a chunk to a snapshot being received, refusing a snapshot past `max` bytes.
fn append_chunk(data: &mut Vec<u8>, chunk: &[u8], max: usize) -> Result<(), Status> {
    if data.len().saturating_add(chunk.len()) > max {
        return Err(Status::resource_exhausted(format!(
            "the snapshot is larger than the {max} bytes a control node accepts"
        )));
    }
    data.extend_from_slice(chunk);
    Ok(())
}

/// Serves Raft RPCs from peers.
#[derive(Debug, Clone)]
pub(crate) struct RaftService {
    node_id: u64,
    raft: RaftHandle,
}

impl RaftService {
    pub(crate) fn new(node_id: u64, raft: RaftHandle) -> Self {
        Self { node_id, raft }
    }

    fn check_target(&self, target: u64) -> Result<(), Status> {
        if target == self.node_id {
            Ok(())
        } else {
            Err(Status::failed_precondition(format!(
                "this is control node {}, not node {target}",
                self.node_id
            )))
        }
    }
}

fn decode<T: DeserializeOwned>(bytes: &[u8], what: &str) -> Result<T, Status> {
    serde_json::from_slice(bytes)
        .map_err(|e| Status::invalid_argument(format!("undecodable {what}: {e}")))
}

fn encode<T: Serialize>(value: &T) -> Result<Response<RaftMessage>, Status> {
    let json = serde_json::to_vec(value).map_err(|e| Status::internal(e.to_string()))?;
    Ok(Response::new(RaftMessage {
        json,
        target_node_id: 0,
    }))
}

fn stopped(e: impl std::fmt::Display) -> Status {
    Status::unavailable(format!("control node cannot serve Raft: {e}"))
}

#[tonic::async_trait]
impl RaftTransport for RaftService {
    async fn vote(&self, request: Request<RaftMessage>) -> Result<Response<RaftMessage>, Status> {
        let message = request.into_inner();
        self.check_target(message.target_node_id)?;
        let reply = self
            .raft
            .vote(decode(&message.json, "vote request")?)
            .await
            .map_err(stopped)?;
        encode(&reply)
    }

    async fn pre_vote(
        &self,
        request: Request<RaftMessage>,
    ) -> Result<Response<RaftMessage>, Status> {
        let message = request.into_inner();
        self.check_target(message.target_node_id)?;
        let reply = self
            .raft
            .pre_vote(decode(&message.json, "pre-vote request")?)
            .await
            .map_err(stopped)?;
        encode(&reply)
    }

    async fn append_entries(
        &self,
        request: Request<RaftMessage>,
    ) -> Result<Response<RaftMessage>, Status> {
        let message = request.into_inner();
        self.check_target(message.target_node_id)?;
        let reply = self
            .raft
            .append_entries(decode(&message.json, "append-entries request")?)
            .await
            .map_err(stopped)?;
        encode(&reply)
    }

    async fn install_snapshot(
        &self,
        request: Request<Streaming<SnapshotChunk>>,
    ) -> Result<Response<RaftMessage>, Status> {
        let mut chunks = request.into_inner();
        let first = chunks
            .message()
            .await?
            .ok_or_else(|| Status::invalid_argument("empty snapshot stream"))?;
        self.check_target(first.target_node_id)?;
        let vote: Vote = decode(&first.vote_json, "snapshot vote")?;
        let meta: SnapshotMeta = decode(&first.meta_json, "snapshot meta")?;
        let mut data = Vec::new();
        append_chunk(&mut data, &first.data, MAX_SNAPSHOT_BYTES)?;
        while let Some(chunk) = chunks.message().await? {
            append_chunk(&mut data, &chunk.data, MAX_SNAPSHOT_BYTES)?;
        }
        let reply = self
            .raft
            .install_full_snapshot(
                vote,
                Snapshot {
                    meta,
                    snapshot: data,
                },
            )
            .await
            .map_err(stopped)?;
        encode(&reply)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Pins a peer's snapshot stream being buffered without a bound.
    #[test]
    fn a_snapshot_past_the_limit_is_refused() {
        let mut data = Vec::new();
        append_chunk(&mut data, &[1; 600], 1000).unwrap();
        append_chunk(&mut data, &[2; 400], 1000).unwrap();
        let refused = append_chunk(&mut data, &[3; 1], 1000).unwrap_err();
        assert_eq!(refused.code(), tonic::Code::ResourceExhausted);
        assert_eq!(data.len(), 1000);
    }
}
