//! `vectron.control.v1.Control`: the gRPC face of a control node. A thin shell: requests
//! are checked, writes become commands proposed to Raft, reads come from the applied state.
//!
//! | call | served by | how |
//! | --- | --- | --- |
//! | `CreateCollection`, `DropCollection`, `RegisterWorker` | leader | a command through the log |
//! | `Heartbeat` | leader | liveness table; a command when routing must change |
//! | `List`/`DescribeCollection`, `GetRouting`, `WatchRouting`, `ClusterStatus` | any node | applied state |
//! | `AddLearner`, `ChangeMembership`, `JoinCluster` | leader | openraft membership change |
//!
//! A follower refuses leader calls with `UNAVAILABLE` and the leader's address in the
//! response metadata (see `error`).

pub(crate) mod convert;

pub use convert::validate_zone;

use std::collections::{BTreeMap, BTreeSet};
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use openraft::async_runtime::WatchReceiver as _;
use openraft::{ChangeMembers, ServerState};
use tokio::sync::{mpsc, watch};
use tokio_stream::Stream;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};
use vectron_proto::control::v1 as ctl;
use vectron_proto::control::v1::control_server::Control;
use vectron_proto::v1 as api;

use crate::consensus::handle::RaftHandle;
use crate::consensus::store::Shared;
use crate::consensus::{PeerNode, StoredMembership};
use crate::error::{ServiceError, write_error};
use crate::liveness::{Liveness, LivenessConfig, unix_ms};
use crate::spec::{CollectionRequest, SpecError, validate_collection_name};
use crate::state::{
    Applied, Command, CommandError, EfTuning, Owner, WorkerReport, assignments_for, worker_status,
};

/// What the services and the reconciler of one node share.
#[derive(Debug)]
pub(crate) struct NodeCore {
    pub node_id: u64,
    pub raft: RaftHandle,
    pub shared: Arc<Shared>,
    pub liveness: Mutex<Option<Liveness>>,
    pub liveness_config: LivenessConfig,
    pub heartbeat_interval: Duration,
    /// Turns true when the node shuts down; streams end then.
    pub shutdown: watch::Receiver<bool>,
}

impl NodeCore {
    /// Proposes a command and waits until it is applied.
    pub(crate) async fn propose(&self, command: Command) -> Result<Applied, ServiceError> {
        let response = self
            .raft
            .client_write(command)
            .await
            .map_err(|e| write_error(self.node_id, e))?;
        Ok(response.data?)
    }

    /// Runs `f` on this term's liveness table when this node leads, creating the table at
    /// the first use in a term.
    pub(crate) fn with_liveness<R>(&self, f: impl FnOnce(&mut Liveness) -> R) -> Option<R> {
        let (state, term) = {
            let metrics = self.raft.metrics();
            let metrics = metrics.borrow_watched();
            (metrics.state, metrics.current_term)
        };
        let mut guard = self.liveness.lock().unwrap_or_else(PoisonError::into_inner);
        if state != ServerState::Leader {
            *guard = None;
            return None;
        }
        if guard.as_ref().is_none_or(|l| l.term() != term) {
            *guard = Some(Liveness::new(term, Instant::now()));
        }
        guard.as_mut().map(f)
    }

    fn membership(&self) -> (Arc<StoredMembership>, Option<u64>) {
        let metrics = self.raft.metrics();
        let metrics = metrics.borrow_watched();
        (metrics.membership_config.clone(), metrics.current_leader)
    }

    fn membership_response(&self, log_index: u64) -> ctl::MembershipResponse {
        let (membership, leader) = self.membership();
        ctl::MembershipResponse {
            nodes: control_nodes(&membership, leader),
            log_index,
        }
    }
}

fn control_nodes(membership: &StoredMembership, leader: Option<u64>) -> Vec<ctl::ControlNode> {
    let voters: BTreeSet<u64> = membership.voter_ids().collect();
    let nodes: BTreeMap<u64, &PeerNode> = membership.nodes().map(|(id, n)| (*id, n)).collect();
    nodes
        .into_iter()
        .map(|(node_id, node)| ctl::ControlNode {
            node_id,
            address: node.address.clone(),
            voter: voters.contains(&node_id),
            leader: leader == Some(node_id),
        })
        .collect()
}

/// The `Control` service of one node.
#[derive(Debug, Clone)]
pub(crate) struct ControlService {
    core: Arc<NodeCore>,
}

impl ControlService {
    pub(crate) fn new(core: Arc<NodeCore>) -> Self {
        Self { core }
    }

    fn assignments(&self, worker_id: &str) -> (String, Vec<ctl::ShardAssignment>, u64) {
        let machine = self.core.shared.read();
        (
            machine.state.cluster_id.clone(),
            assignments_for(&machine.state, worker_id),
            machine.state.routing_version,
        )
    }

    fn heartbeat_interval_ms(&self) -> u32 {
        u32::try_from(self.core.heartbeat_interval.as_millis()).unwrap_or(u32::MAX)
    }

    fn collection_info(&self, name: &str) -> Result<api::CollectionInfo, ServiceError> {
        let machine = self.core.shared.read();
        machine
            .state
            .collections
            .get(name)
            .map(|c| machine.state.collection_info(c))
            .ok_or_else(|| {
                CommandError::NotFound {
                    name: name.to_owned(),
                }
                .into()
            })
    }

    async fn join(
        &self,
        node_id: u64,
        address: String,
    ) -> Result<ctl::MembershipResponse, ServiceError> {
        check_node(node_id, &address)?;
        let (membership, _) = self.core.membership();
        if let Some(existing) = membership.get_node(&node_id) {
            if existing.address != address {
                return Err(ServiceError::NodeAddressConflict {
                    node_id,
                    existing: existing.address.clone(),
                    requested: address,
                });
            }
            if membership.voter_ids().any(|id| id == node_id) {
                // Already a voter: nothing to do, but only the leader may say so with
                // authority, so a follower still redirects.
                self.core
                    .raft
                    .as_leader()
                    .map_err(|forward| ServiceError::NotLeader {
                        node_id: self.core.node_id,
                        forward,
                    })?;
                return Ok(self
                    .core
                    .membership_response(membership.log_id().as_ref().map_or(0, |id| id.index)));
            }
        }
        let node_id_self = self.core.node_id;
        self.core
            .raft
            .add_learner(node_id, PeerNode { address }, true)
            .await
            .map_err(|e| write_error(node_id_self, e))?;
        let changed = self
            .core
            .raft
            .change_membership(ChangeMembers::AddVoterIds(BTreeSet::from([node_id])), false)
            .await
            .map_err(|e| write_error(node_id_self, e))?;
        Ok(self.core.membership_response(changed.log_id.index))
    }
}

fn check_node(node_id: u64, address: &str) -> Result<(), ServiceError> {
    if node_id == 0 {
        return Err(ServiceError::BadRequest(
            "node id 0 is reserved: control node ids start at 1".into(),
        ));
    }
    if !convert::is_host_port(address) {
        return Err(ServiceError::BadRequest(format!(
            "control node address {address:?} is not host:port"
        )));
    }
    Ok(())
}

type RoutingStream = Pin<Box<dyn Stream<Item = Result<ctl::RoutingTable, Status>> + Send>>;

#[tonic::async_trait]
impl Control for ControlService {
    async fn register_worker(
        &self,
        request: Request<ctl::RegisterWorkerRequest>,
    ) -> Result<Response<ctl::RegisterWorkerResponse>, Status> {
        let registration = convert::registration(request.get_ref()).map_err(ServiceError::from)?;
        let worker_id = registration.worker_id.clone();
        // A registration is proof of life, recorded before its timestamp is taken: a
        // reconciler round either sees it, or decided earlier than `at_ms` and its mark
        // is ignored when applied after this registration (`MarkWorkersDown`).
        self.core.with_liveness(|liveness| {
            liveness.record(
                WorkerReport {
                    worker_id: worker_id.clone(),
                    cores: Vec::new(),
                },
                Instant::now(),
            );
        });
        let applied = self
            .core
            .propose(Command::RegisterWorker {
                registration,
                at_ms: unix_ms(),
            })
            .await?;
        let resumed = matches!(applied, Applied::WorkerRegistered { resumed: true });
        let (cluster_id, assignments, _) = self.assignments(&worker_id);
        tracing::info!(worker = %worker_id, resumed, shards = assignments.len(), "worker registered");
        Ok(Response::new(ctl::RegisterWorkerResponse {
            cluster_id,
            resumed,
            assignments,
            heartbeat_interval_ms: self.heartbeat_interval_ms(),
        }))
    }

    async fn heartbeat(
        &self,
        request: Request<ctl::HeartbeatRequest>,
    ) -> Result<Response<ctl::HeartbeatResponse>, Status> {
        let report = convert::report(request.get_ref()).map_err(ServiceError::from)?;
        self.core
            .raft
            .as_leader()
            .map_err(|forward| ServiceError::NotLeader {
                node_id: self.core.node_id,
                forward,
            })?;
        let urgent = {
            let machine = self.core.shared.read();
            if !machine.state.workers.contains_key(&report.worker_id) {
                return Err(ServiceError::UnknownWorker {
                    worker_id: report.worker_id,
                }
                .into());
            }
            machine.state.report_changes_routing(&report)
        };
        let now = Instant::now();
        self.core
            .with_liveness(|liveness| liveness.record(report.clone(), now))
            .ok_or_else(|| ServiceError::NotLeader {
                node_id: self.core.node_id,
                forward: openraft::errors::ForwardToLeader::empty(),
            })?;
        if urgent {
            let worker_id = report.worker_id.clone();
            self.core
                .propose(Command::ObserveWorkers {
                    reports: vec![report.clone()],
                    at_ms: unix_ms(),
                })
                .await?;
            self.core
                .with_liveness(|liveness| liveness.flushed(&worker_id, &report, now));
        }
        let (cluster_id, assignments, routing_version) = self.assignments(&report.worker_id);
        Ok(Response::new(ctl::HeartbeatResponse {
            cluster_id,
            assignments,
            routing_version,
            heartbeat_interval_ms: self.heartbeat_interval_ms(),
        }))
    }

    async fn create_collection(
        &self,
        request: Request<ctl::CreateCollectionRequest>,
    ) -> Result<Response<api::CreateCollectionResponse>, Status> {
        let request = request.into_inner();
        let spec = request.spec.ok_or(ServiceError::Spec(SpecError::Missing))?;
        let owner = (!request.owner.is_empty()).then_some(Owner {
            name: request.owner,
            max_owned: request.max_owned,
        });
        let request = CollectionRequest::from_proto(&spec).map_err(ServiceError::from)?;
        let name = request.name.clone();
        self.core
            .propose(Command::CreateCollection {
                request,
                owner: owner.clone(),
            })
            .await?;
        tracing::info!(collection = %name, owner = owner.as_ref().map_or("", |o| o.name.as_str()), "collection created");
        Ok(Response::new(api::CreateCollectionResponse {
            collection: Some(self.collection_info(&name)?),
        }))
    }

    async fn drop_collection(
        &self,
        request: Request<api::DropCollectionRequest>,
    ) -> Result<Response<api::DropCollectionResponse>, Status> {
        let name = request.into_inner().name;
        validate_collection_name(&name).map_err(ServiceError::from)?;
        self.core
            .propose(Command::DropCollection { name: name.clone() })
            .await?;
        tracing::info!(collection = %name, "collection dropped");
        Ok(Response::new(api::DropCollectionResponse {}))
    }

    async fn update_collection(
        &self,
        request: Request<api::UpdateCollectionRequest>,
    ) -> Result<Response<api::CollectionInfo>, Status> {
        let request = request.into_inner();
        let name = request.name;
        validate_collection_name(&name).map_err(ServiceError::from)?;
        let tuning = request.tuning.as_ref().map(tuning_record).transpose()?;
        let (ef, payload_indexes, search_cache) = {
            let machine = self.core.shared.read();
            let collection = machine
                .state
                .collections
                .get(&name)
                .ok_or_else(|| CommandError::NotFound { name: name.clone() })
                .map_err(ServiceError::from)?;
            let spec = request.spec.unwrap_or_default();
            let ef = collection
                .config
                .updated_ef(&spec)
                .map_err(ServiceError::from)?;
            let cache = collection.config.search_cache;
            let search_cache = cache
                .updated(spec.search_cache.as_ref())
                .map_err(ServiceError::from)?;
            let indexes = collection
                .config
                .updated_payload_indexes(
                    &request.add_payload_indexes,
                    &request.drop_payload_indexes,
                )
                .map_err(ServiceError::from)?;
            (ef, indexes, (search_cache != cache).then_some(search_cache))
        };
        let indexed = payload_indexes.as_ref().map(|i| {
            i.iter()
                .map(|i| i.field.as_str())
                .collect::<Vec<_>>()
                .join(",")
        });
        self.core
            .propose(Command::UpdateCollection {
                name: name.clone(),
                ef,
                tuning,
                payload_indexes,
                search_cache,
            })
            .await?;
        tracing::info!(collection = %name, ef, payload_indexes = indexed.as_deref(), "collection updated");
        Ok(Response::new(self.collection_info(&name)?))
    }

    async fn list_collections(
        &self,
        _request: Request<api::ListCollectionsRequest>,
    ) -> Result<Response<api::ListCollectionsResponse>, Status> {
        let machine = self.core.shared.read();
        let collections = machine
            .state
            .collections
            .values()
            .map(|c| machine.state.collection_info(c))
            .collect();
        Ok(Response::new(api::ListCollectionsResponse { collections }))
    }

    async fn describe_collection(
        &self,
        request: Request<api::DescribeCollectionRequest>,
    ) -> Result<Response<api::CollectionInfo>, Status> {
        let name = request.into_inner().name;
        validate_collection_name(&name).map_err(ServiceError::from)?;
        Ok(Response::new(self.collection_info(&name)?))
    }

    async fn create_api_key(
        &self,
        request: Request<ctl::CreateApiKeyRequest>,
    ) -> Result<Response<api::KeyInfo>, Status> {
        let entry = request
            .into_inner()
            .entry
            .ok_or_else(|| ServiceError::BadRequest("no key entry".into()))?;
        let mut record = vectron_proto::keys::key_record(&entry)
            .map_err(|e| ServiceError::BadRequest(e.to_string()))?;
        record.created_at_ms = unix_ms();
        let id = record.id.clone();
        self.core
            .propose(Command::CreateApiKey {
                record: record.clone(),
            })
            .await?;
        tracing::info!(key = %id, role = %record.role, "API key created");
        Ok(Response::new(vectron_proto::keys::key_info(&record)))
    }

    async fn list_api_keys(
        &self,
        _request: Request<api::ListKeysRequest>,
    ) -> Result<Response<api::ListKeysResponse>, Status> {
        let machine = self.core.shared.read();
        let keys = machine
            .state
            .api_keys
            .values()
            .map(vectron_proto::keys::key_info)
            .collect();
        Ok(Response::new(api::ListKeysResponse { keys }))
    }

    async fn revoke_api_key(
        &self,
        request: Request<api::RevokeKeyRequest>,
    ) -> Result<Response<api::RevokeKeyResponse>, Status> {
        let id = request.into_inner().id;
        self.core
            .propose(Command::RevokeApiKey { id: id.clone() })
            .await?;
        tracing::info!(key = %id, "API key revoked");
        Ok(Response::new(api::RevokeKeyResponse {}))
    }

    async fn store_user(
        &self,
        request: Request<ctl::StoreUserRequest>,
    ) -> Result<Response<api::UserInfo>, Status> {
        let entry = request
            .into_inner()
            .entry
            .ok_or_else(|| ServiceError::BadRequest("no user entry".into()))?;
        let mut record = vectron_proto::keys::user_record(&entry)
            .map_err(|e| ServiceError::BadRequest(e.to_string()))?;
        record.created_at_ms = unix_ms();
        let name = record.name.clone();
        self.core
            .propose(Command::CreateUser {
                record: record.clone(),
            })
            .await?;
        tracing::info!(user = %name, role = %record.role, "user created");
        Ok(Response::new(vectron_proto::keys::user_info(&record)))
    }

    async fn list_users(
        &self,
        _request: Request<api::ListUsersRequest>,
    ) -> Result<Response<api::ListUsersResponse>, Status> {
        let machine = self.core.shared.read();
        let users = machine
            .state
            .users
            .values()
            .map(vectron_proto::keys::user_info)
            .collect();
        Ok(Response::new(api::ListUsersResponse { users }))
    }

    async fn delete_user(
        &self,
        request: Request<api::DeleteUserRequest>,
    ) -> Result<Response<api::DeleteUserResponse>, Status> {
        let name = request.into_inner().name;
        self.core
            .propose(Command::DeleteUser { name: name.clone() })
            .await?;
        tracing::info!(user = %name, "user deleted");
        Ok(Response::new(api::DeleteUserResponse {}))
    }

    async fn set_plan(&self, request: Request<api::Plan>) -> Result<Response<api::Plan>, Status> {
        let plan = vectron_proto::keys::plan_record(request.get_ref())
            .map_err(|e| ServiceError::BadRequest(e.to_string()))?;
        self.core
            .propose(Command::SetPlan { plan: plan.clone() })
            .await?;
        tracing::info!(plan = %plan.name, rps = plan.requests_per_second, burst = plan.burst, "plan set");
        Ok(Response::new(vectron_proto::keys::plan_message(&plan)))
    }

    async fn list_plans(
        &self,
        _request: Request<api::ListPlansRequest>,
    ) -> Result<Response<api::ListPlansResponse>, Status> {
        let machine = self.core.shared.read();
        let plans = machine
            .state
            .plans
            .values()
            .map(vectron_proto::keys::plan_message)
            .collect();
        Ok(Response::new(api::ListPlansResponse { plans }))
    }

    async fn delete_plan(
        &self,
        request: Request<api::DeletePlanRequest>,
    ) -> Result<Response<api::DeletePlanResponse>, Status> {
        let name = request.into_inner().name;
        self.core
            .propose(Command::DeletePlan { name: name.clone() })
            .await?;
        tracing::info!(plan = %name, "plan deleted");
        Ok(Response::new(api::DeletePlanResponse {}))
    }

    async fn get_routing(
        &self,
        request: Request<ctl::GetRoutingRequest>,
    ) -> Result<Response<ctl::RoutingTable>, Status> {
        let only = request.into_inner().collection;
        let machine = self.core.shared.read();
        let table = machine
            .state
            .routing_table(&only)
            .ok_or_else(|| ServiceError::from(CommandError::NotFound { name: only.clone() }))?;
        Ok(Response::new(table))
    }

    type WatchRoutingStream = RoutingStream;

    async fn watch_routing(
        &self,
        request: Request<ctl::WatchRoutingRequest>,
    ) -> Result<Response<Self::WatchRoutingStream>, Status> {
        let mut known = request.into_inner().known_version;
        let shared = self.core.shared.clone();
        let mut versions = shared.subscribe();
        let mut shutdown = self.core.shutdown.clone();
        let (tx, rx) = mpsc::channel(1);
        tokio::spawn(async move {
            loop {
                // Mark the current version seen before reading the table, so a change
                // during the read wakes the next wait.
                let current = *versions.borrow_and_update();
                if current != known || known == 0 {
                    let table = shared.read().state.routing_table("");
                    let Some(table) = table else { break };
                    known = table.version;
                    if tx.send(Ok(table)).await.is_err() {
                        break;
                    }
                }
                tokio::select! {
                    changed = versions.changed() => if changed.is_err() { break },
                    _ = shutdown.wait_for(|stop| *stop) => break,
                    () = tx.closed() => break,
                }
            }
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }

    async fn cluster_status(
        &self,
        _request: Request<ctl::ClusterStatusRequest>,
    ) -> Result<Response<ctl::ClusterStatusResponse>, Status> {
        let metrics = self.core.raft.metrics().borrow_watched().clone();
        let now = Instant::now();
        let ages: Option<BTreeMap<String, u64>> = self.core.with_liveness(|liveness| {
            let machine = self.core.shared.read();
            machine
                .state
                .workers
                .keys()
                .filter_map(|id| {
                    liveness.heartbeat_age(id, now).map(|age| {
                        (
                            id.clone(),
                            u64::try_from(age.as_millis()).unwrap_or(u64::MAX),
                        )
                    })
                })
                .collect()
        });
        let machine = self.core.shared.read();
        let state = &machine.state;
        let leader = metrics.current_leader;
        let leader_address = leader
            .and_then(|id| metrics.membership_config.get_node(&id))
            .map(|n| n.address.clone())
            .unwrap_or_default();
        let workers = state
            .workers
            .values()
            .map(|worker| {
                let mut status = worker_status(state, worker);
                status.heartbeat_age_ms = ages
                    .as_ref()
                    .and_then(|ages| ages.get(&worker.worker_id).copied());
                status
            })
            .collect();
        Ok(Response::new(ctl::ClusterStatusResponse {
            cluster_id: state.cluster_id.clone(),
            node_id: self.core.node_id,
            leader_id: leader.unwrap_or(0),
            leader_address,
            term: metrics.current_term,
            last_log_index: metrics.last_log_index.unwrap_or(0),
            last_applied_index: metrics.last_applied.as_ref().map_or(0, |id| id.index),
            nodes: control_nodes(&metrics.membership_config, leader),
            workers,
            unavailable_shards: state.unavailable_shards(),
            routing_version: state.routing_version,
            snapshot_index: metrics.snapshot.as_ref().map_or(0, |id| id.index),
            purged_index: metrics.purged.as_ref().map_or(0, |id| id.index),
        }))
    }

    async fn add_learner(
        &self,
        request: Request<ctl::AddLearnerRequest>,
    ) -> Result<Response<ctl::MembershipResponse>, Status> {
        let ctl::AddLearnerRequest { node_id, address } = request.into_inner();
        check_node(node_id, &address)?;
        let response = self
            .core
            .raft
            .add_learner(node_id, PeerNode { address }, true)
            .await
            .map_err(|e| write_error(self.core.node_id, e))?;
        Ok(Response::new(
            self.core.membership_response(response.log_id.index),
        ))
    }

    async fn change_membership(
        &self,
        request: Request<ctl::ChangeMembershipRequest>,
    ) -> Result<Response<ctl::MembershipResponse>, Status> {
        let ctl::ChangeMembershipRequest { voters, retain } = request.into_inner();
        if voters.is_empty() {
            return Err(ServiceError::BadRequest(
                "a control cluster needs at least one voter".into(),
            )
            .into());
        }
        let voters: BTreeSet<u64> = voters.into_iter().collect();
        let response = self
            .core
            .raft
            .change_membership(ChangeMembers::ReplaceAllVoters(voters), retain)
            .await
            .map_err(|e| write_error(self.core.node_id, e))?;
        Ok(Response::new(
            self.core.membership_response(response.log_id.index),
        ))
    }

    async fn join_cluster(
        &self,
        request: Request<ctl::JoinClusterRequest>,
    ) -> Result<Response<ctl::MembershipResponse>, Status> {
        let ctl::JoinClusterRequest { node_id, address } = request.into_inner();
        let response = self.join(node_id, address.clone()).await?;
        tracing::info!(node_id, %address, "control node joined");
        Ok(Response::new(response))
    }
}

/// Longest filter JSON a tuning record keeps, in bytes.
const MAX_TUNING_FILTER_BYTES: usize = 16 << 10;

/// A tuning measurement as the state keeps it, checked: recalls within [0, 1] (the
/// target above 0), k within the search limit, at least one query.
fn tuning_record(t: &api::EfTuning) -> Result<EfTuning, ServiceError> {
    let recall = |what: &str, v: f64, min_open: bool| {
        let ok = v.is_finite() && v <= 1.0 && if min_open { v > 0.0 } else { v >= 0.0 };
        if ok {
            Ok(v)
        } else {
            Err(ServiceError::BadRequest(format!(
                "tuning.{what} must be a recall {} 0 to 1, got {v}",
                if min_open { "above" } else { "from" }
            )))
        }
    };
    let max_k = vectron_proto::rules::Limits::DEFAULT.max_k;
    if t.k == 0 || t.k > max_k {
        return Err(ServiceError::BadRequest(format!(
            "tuning.k must be 1 to {max_k}, got {}",
            t.k
        )));
    }
    if t.queries == 0 {
        return Err(ServiceError::BadRequest(
            "tuning.queries must be at least 1".into(),
        ));
    }
    if t.filter_json.len() > MAX_TUNING_FILTER_BYTES {
        return Err(ServiceError::BadRequest(format!(
            "tuning.filter_json is {} bytes, at most {MAX_TUNING_FILTER_BYTES} are kept",
            t.filter_json.len()
        )));
    }
    Ok(EfTuning {
        target_recall: recall("target_recall", t.target_recall, true)?,
        k: t.k,
        measured_recall: recall("measured_recall", t.measured_recall, false)?,
        recall_lower_bound: recall("recall_lower_bound", t.recall_lower_bound, false)?,
        queries: t.queries,
        tuned_at_unix_ms: t.tuned_at_unix_ms,
        filter_json: t.filter_json.clone(),
    })
}
