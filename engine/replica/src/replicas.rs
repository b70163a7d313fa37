//! The replicas a core holds, and the `vectron.replication.v1` service through which its
//! peers reach them.
//!
//! A message names its group and the replica it is for ([`Route`](pb::Route)); a core
//! answers only for replicas it holds, so a message that reaches the wrong core (a stale
//! address, a replica moved away) is refused, never applied to another replica.

use std::cell::RefCell;
use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::rc::Rc;

use futures_util::future::join_all;
use openraft::Raft;
use openraft::storage::RaftStateMachine;
use vectron_net::{RequestContext, RequestStream, Router, RouterError, Status};
use vectron_proto::replication::v1 as pb;

use crate::snapshot::SnapshotFiles;
use crate::types::{ShardRaft, lsn_of};
use crate::wire;

/// The service's methods.
pub const APPEND_PATH: &str = "/vectron.replication.v1.Replication/Append";
/// See [`APPEND_PATH`].
pub const VOTE_PATH: &str = "/vectron.replication.v1.Replication/Vote";
/// See [`APPEND_PATH`].
pub const INSTALL_SNAPSHOT_PATH: &str = "/vectron.replication.v1.Replication/InstallSnapshot";
/// See [`APPEND_PATH`].
pub const TRANSFER_LEADER_PATH: &str = "/vectron.replication.v1.Replication/TransferLeader";

/// A shard's Raft group, as messages name it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct GroupId {
    /// The collection's name.
    pub collection: String,
    /// Which collection of that name.
    pub incarnation: u64,
    /// The shard.
    pub shard_id: u32,
}

impl GroupId {
    pub(crate) fn to_wire(&self) -> pb::Group {
        pb::Group {
            collection: self.collection.clone(),
            incarnation: self.incarnation,
            shard_id: self.shard_id,
        }
    }

    fn from_wire(group: &pb::Group) -> Self {
        Self {
            collection: group.collection.clone(),
            incarnation: group.incarnation,
            shard_id: group.shard_id,
        }
    }
}

impl std::fmt::Display for GroupId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}#{}/shard-{}",
            self.collection, self.incarnation, self.shard_id
        )
    }
}

struct Member<SM: RaftStateMachine<ShardRaft>> {
    raft: Raft<ShardRaft, SM>,
    /// Where snapshots received for the replica are written.
    dir: PathBuf,
}

/// A replica's name on its core: its group and replica id.
type ReplicaKey = (GroupId, u64);

/// The replicas one core holds, by group and replica id. Lives on the core's thread.
pub struct Replicas<SM: RaftStateMachine<ShardRaft>> {
    members: RefCell<HashMap<ReplicaKey, Rc<Member<SM>>>>,
}

impl<SM: RaftStateMachine<ShardRaft>> std::fmt::Debug for Replicas<SM> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Replicas")
            .field("held", &self.members.borrow().len())
            .finish()
    }
}

impl<SM: RaftStateMachine<ShardRaft>> Default for Replicas<SM> {
    fn default() -> Self {
        Self {
            members: RefCell::new(HashMap::new()),
        }
    }
}

impl<SM: RaftStateMachine<ShardRaft, SnapshotData = SnapshotFiles>> Replicas<SM> {
    /// Holds replica `id` of `group`, reached through `raft`; snapshots sent to it are
    /// written under `dir`. Replaces a replica held under the same name.
    pub fn insert(&self, group: GroupId, id: u64, raft: Raft<ShardRaft, SM>, dir: &Path) {
        let member = Member {
            raft,
            dir: dir.to_path_buf(),
        };
        self.members
            .borrow_mut()
            .insert((group, id), Rc::new(member));
    }

    /// Stops holding replica `id` of `group`; returns its Raft (to shut it down).
    pub fn remove(&self, group: &GroupId, id: u64) -> Option<Raft<ShardRaft, SM>> {
        let member = self.members.borrow_mut().remove(&(group.clone(), id))?;
        Some(member.raft.clone())
    }

    /// The Raft of replica `id` of `group`.
    pub fn get(&self, group: &GroupId, id: u64) -> Option<Raft<ShardRaft, SM>> {
        let members = self.members.borrow();
        members.get(&(group.clone(), id)).map(|m| m.raft.clone())
    }

    fn member(&self, route: Option<&pb::Route>) -> Result<Rc<Member<SM>>, String> {
        let route = route.ok_or("the message names no route")?;
        let group = route.group.as_ref().ok_or("the route names no group")?;
        let group = GroupId::from_wire(group);
        self.members
            .borrow()
            .get(&(group.clone(), route.to))
            .cloned()
            .ok_or_else(|| format!("this core holds no replica {} of {group}", route.to))
    }

    async fn append(&self, request: pb::AppendRequest) -> pb::AppendResponse {
        let member = match self.member(request.route.as_ref()) {
            Ok(member) => member,
            Err(reason) => return wire::refused(reason),
        };
        let rpc = match wire::append_from(&request) {
            Ok(rpc) => rpc,
            Err(e) => return wire::refused(e.to_string()),
        };
        match member.raft.append_entries(rpc).await {
            Ok(response) => wire::append_response_to(&response),
            Err(e) => wire::refused(format!("the replica stopped: {e}")),
        }
    }

    async fn vote(&self, request: pb::VoteRequest) -> Result<pb::VoteResponse, Status> {
        let member = self
            .member(request.route.as_ref())
            .map_err(Status::not_found)?;
        let rpc = wire::vote_request_from(&request)
            .map_err(|e| Status::invalid_argument(e.to_string()))?;
        let response = if request.pre_vote {
            member.raft.pre_vote(rpc).await
        } else {
            member.raft.vote(rpc).await
        };
        let response =
            response.map_err(|e| Status::unavailable(format!("the replica stopped: {e}")))?;
        Ok(wire::vote_response_to(&response))
    }

    async fn transfer_leader(
        &self,
        request: pb::TransferLeaderRequest,
    ) -> Result<pb::TransferLeaderResponse, Status> {
        let member = self
            .member(request.route.as_ref())
            .map_err(Status::not_found)?;
        let req =
            wire::transfer_from(&request).map_err(|e| Status::invalid_argument(e.to_string()))?;
        let response = member
            .raft
            .handle_transfer_leader(req)
            .await
            .map_err(|e| Status::unavailable(format!("the replica stopped: {e}")))?;
        Ok(wire::transfer_response_to(&response))
    }

    /// Receives a snapshot's files into the replica's directory, checks them, and hands
    /// them to its Raft to install.
    async fn install_snapshot(
        &self,
        mut stream: RequestStream<pb::SnapshotChunk>,
    ) -> Result<pb::SnapshotResponse, Status> {
        let Some(pb::SnapshotChunk {
            part: Some(pb::snapshot_chunk::Part::Start(start)),
        }) = stream.message().await?
        else {
            return Err(Status::invalid_argument(
                "a snapshot stream begins with its start message",
            ));
        };
        let member = self
            .member(start.route.as_ref())
            .map_err(Status::not_found)?;
        let vote = wire::vote_from(start.vote.as_ref())
            .map_err(|e| Status::invalid_argument(e.to_string()))?;
        let meta: crate::SnapshotMeta = serde_json::from_slice(&start.meta_json)
            .map_err(|e| Status::invalid_argument(format!("snapshot metadata: {e}")))?;
        let lsn = meta.last_log_id.map_or(0, |l| lsn_of(l.index).get());
        let dir = member.dir.join(format!("checkpoint-{lsn:020}.recv"));
        let received = receive_files(&mut stream, &dir).await;
        if let Err(status) = received {
            let _ = fs::remove_dir_all(&dir);
            return Err(status);
        }
        let snapshot = openraft::type_config::alias::SnapshotOf::<ShardRaft, SnapshotFiles> {
            meta,
            snapshot: SnapshotFiles::received(&dir),
        };
        let response = member
            .raft
            .install_full_snapshot(vote, snapshot)
            .await
            .map_err(|e| Status::unavailable(format!("the replica stopped: {e}")));
        let _ = fs::remove_dir_all(&dir);
        Ok(pb::SnapshotResponse {
            vote: Some(wire::vote_to(&response?.vote)),
        })
    }
}

/// Writes the files of a snapshot stream into `dir` (made anew), checking each one's
/// CRC, and syncs them and the directory, through the core's runtime.
async fn receive_files(
    stream: &mut RequestStream<pb::SnapshotChunk>,
    dir: &Path,
) -> Result<(), Status> {
    let io = |what: &str, path: &Path, e: std::io::Error| {
        Status::unavailable(format!("{what} {}: {e}", path.display()))
    };
    let _ = fs::remove_dir_all(dir);
    fs::create_dir_all(dir).map_err(|e| io("cannot create", dir, e))?;
    // The file being written: its name, the file, its CRC and length so far.
    let mut open: Option<(String, monoio::fs::File, u32, u64)> = None;
    while let Some(chunk) = stream.message().await? {
        let Some(pb::snapshot_chunk::Part::File(piece)) = chunk.part else {
            return Err(Status::invalid_argument(
                "a snapshot stream has one start message",
            ));
        };
        if piece.name.is_empty() || piece.name.contains('/') || piece.name.starts_with('.') {
            return Err(Status::invalid_argument(format!(
                "snapshot file name {:?} is not a plain name",
                piece.name
            )));
        }
        if open.as_ref().is_none_or(|(name, ..)| *name != piece.name) {
            if let Some((name, ..)) = &open {
                return Err(Status::invalid_argument(format!(
                    "snapshot file {name} ended without its last piece"
                )));
            }
            let path = dir.join(&piece.name);
            let file = monoio::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&path)
                .await
                .map_err(|e| io("cannot create", &path, e))?;
            open = Some((piece.name.clone(), file, 0, 0));
        }
        let (name, file, crc, len) = open.as_mut().expect("opened above");
        if piece.offset != *len {
            return Err(Status::invalid_argument(format!(
                "snapshot file {name}: a piece at offset {} after {len} bytes",
                piece.offset
            )));
        }
        let path = dir.join(&*name);
        *crc = crc32c::crc32c_append(*crc, &piece.data);
        let written = piece.data.len() as u64;
        if written > 0 {
            let (done, _) = file.write_all_at(piece.data, *len).await;
            done.map_err(|e| io("cannot write", &path, e))?;
        }
        *len += written;
        if piece.last {
            if *crc != piece.crc32c {
                return Err(Status::data_loss(format!(
                    "snapshot file {name}: CRC-32C {crc:#010x}, sent {:#010x}",
                    piece.crc32c
                )));
            }
            file.sync_all()
                .await
                .map_err(|e| io("cannot sync", &path, e))?;
            open = None;
        }
    }
    if let Some((name, ..)) = open {
        return Err(Status::invalid_argument(format!(
            "snapshot file {name} ended without its last piece"
        )));
    }
    let handle = monoio::fs::File::open(dir)
        .await
        .map_err(|e| io("cannot open", dir, e))?;
    handle
        .sync_all()
        .await
        .map_err(|e| io("cannot sync", dir, e))
}

/// Adds the `vectron.replication.v1` service, answering for `replicas`, to a core's
/// router.
pub fn routes<SM>(router: Router, replicas: Rc<Replicas<SM>>) -> Result<Router, RouterError>
where
    SM: RaftStateMachine<ShardRaft, SnapshotData = SnapshotFiles>,
{
    let append = Rc::clone(&replicas);
    let vote = Rc::clone(&replicas);
    let transfer = Rc::clone(&replicas);
    let install = replicas;
    router
        .unary(
            APPEND_PATH,
            move |_: RequestContext, batch: pb::AppendBatch| {
                let replicas = Rc::clone(&append);
                async move {
                    // Each group's answer waits on its own log; they run side by side.
                    let responses =
                        join_all(batch.requests.into_iter().map(|r| replicas.append(r))).await;
                    Ok::<_, Status>(pb::AppendBatchResponse { responses })
                }
            },
        )?
        .unary(
            VOTE_PATH,
            move |_: RequestContext, request: pb::VoteRequest| {
                let replicas = Rc::clone(&vote);
                async move { replicas.vote(request).await }
            },
        )?
        .unary(
            TRANSFER_LEADER_PATH,
            move |_: RequestContext, request: pb::TransferLeaderRequest| {
                let replicas = Rc::clone(&transfer);
                async move { replicas.transfer_leader(request).await }
            },
        )?
        .client_streaming(
            INSTALL_SNAPSHOT_PATH,
            move |_: RequestContext, stream: RequestStream<pb::SnapshotChunk>| {
                let replicas = Rc::clone(&install);
                async move { replicas.install_snapshot(stream).await }
            },
        )
}
