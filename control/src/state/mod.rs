//! The replicated state: workers, collections, shards and replicas, and the commands that
//! change them. [`ControlState::apply`] is a pure function of the state, the command and
//! the command's log index, so every control node that applies the same log reaches the
//! same state; the Raft layer only decides the order.
//!
//! ```text
//!   Command ──(Raft log, index i)──► ControlState::apply ──► Applied | CommandError
//! ```
//!
//! What is replicated and what is not: worker registrations, health transitions, which
//! replicas serve, and load figures are replicated, because placement and routing depend
//! on them. When each heartbeat arrived is not: only the leader tracks it (see
//! `liveness`), and it commits the transitions it observes.
//!
//! Epochs: a replica's epoch is the log index of the command that placed it. Indexes only
//! grow, so an epoch is unique in the cluster and a re-created collection never reuses the
//! epochs of the one it replaces.

mod views;

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::placement::{self, CoreLoad, PlacementError, WorkerLoad};
use crate::spec::{
    CollectionConfig, CollectionRequest, MAX_SHARD_COUNT, PayloadIndexSpec, SearchCache,
};
use vectron_auth::{KeyRecord, MAX_PLANS, Plan, UserRecord};
use vectron_proto::hashing::ShardLayout;
use vectron_proto::keys::{MAX_API_KEYS, MAX_USERS};
use vectron_proto::rules::MAX_COLLECTIONS;

pub(crate) use views::{assignments_for, worker_status};

/// Everything the control plane knows, as applied from the log.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct ControlState {
    /// Identity of the cluster, written once by the first leader.
    pub cluster_id: String,
    /// Grows with every change that a router must see.
    pub routing_version: u64,
    /// Registered workers by id.
    pub workers: BTreeMap<String, WorkerRecord>,
    /// Collections by name.
    pub collections: BTreeMap<String, CollectionRecord>,
    /// API keys by id: the hash of each secret, never the secret.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub api_keys: BTreeMap<String, KeyRecord>,
    /// Users by name: the hash of each password, never the password.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub users: BTreeMap<String, UserRecord>,
    /// Plans by name.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub plans: BTreeMap<String, Plan>,
}

/// Health of a worker.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum Health {
    /// Heartbeats arrive.
    Up,
    /// Silent for longer than the timeout.
    Down,
}

/// The id of replica `index` of shard `shard_id` placed by the command at `log_index`:
/// unique in the cluster and never reused, because log indexes are not and the ids one
/// command places fit below 2^24 ([`MAX_SHARD_COUNT`] shards of at most 8 replicas).
/// Never 0, which means "no group".
pub(crate) fn replica_id(log_index: u64, shard_id: u32, index: u32) -> u64 {
    const PER_SHARD: u64 = 8;
    const PER_COMMAND: u64 = 1 << 24;
    debug_assert!(u64::from(index) < PER_SHARD);
    debug_assert!(u64::from(shard_id) * PER_SHARD < PER_COMMAND);
    log_index * PER_COMMAND + u64::from(shard_id) * PER_SHARD + u64::from(index) + 1
}

/// A registered worker.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct WorkerRecord {
    pub worker_id: String,
    pub data_host: String,
    pub admin_address: String,
    pub cores: Vec<CoreRecord>,
    pub health: Health,
    pub registered_at_ms: u64,
    pub health_changed_at_ms: u64,
    /// The zone of its latest registration; empty for none.
    #[serde(default)]
    pub zone: String,
}

/// One core of a worker, with its last reported load.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct CoreRecord {
    pub core: u32,
    pub port: u32,
    pub memory_bytes: u64,
    pub search_qps: f64,
    pub upsert_points_per_s: f64,
    pub in_flight: u32,
    pub queue_depth: u64,
}

/// A collection and where its shards live.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct CollectionRecord {
    pub config: CollectionConfig,
    /// Log index of the create.
    pub created_index: u64,
    /// Every shard has served at least once: from then on a shard without a serving
    /// replica makes the collection degraded rather than still being created.
    pub was_ready: bool,
    pub shards: Vec<ShardRecord>,
    /// The caller that created it (absent: created with authentication off).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
    /// How its default `ef` was tuned (absent: set by hand or the default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tuning: Option<EfTuning>,
}

/// The measurement that chose a collection's default `ef` (`vectron.v1.EfTuning`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct EfTuning {
    pub target_recall: f64,
    pub k: u32,
    pub measured_recall: f64,
    pub recall_lower_bound: f64,
    pub queries: u32,
    pub tuned_at_unix_ms: u64,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub filter_json: String,
}

// Recalls are finite (the service refuses others), so equality is an equivalence.
impl Eq for EfTuning {}

/// Who creates a collection, and how many it may own.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Owner {
    /// The caller, as authentication names it.
    pub name: String,
    /// Most collections it may own, the new one included (absent: no bound).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_owned: Option<u32>,
}

/// One shard.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct ShardRecord {
    pub shard_id: u32,
    pub hash_start: u64,
    pub hash_end: u64,
    pub replicas: Vec<ReplicaRecord>,
}

/// One copy of a shard on a worker core.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct ReplicaRecord {
    pub worker_id: String,
    pub core: u32,
    pub epoch: u64,
    /// For a shard of several replicas, the replica's id in its shard's Raft group
    /// ([`replica_id`]); 0 for a shard of one copy, which has no group.
    #[serde(default)]
    pub replica_id: u64,
    /// The worker's last committed report says the core serves it at this epoch.
    pub serving: bool,
    /// It has served at least once, so its data exists and must never be recreated empty.
    pub served: bool,
    pub points: u64,
    pub memory_bytes: u64,
}

/// A worker's registration, as committed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Registration {
    pub worker_id: String,
    pub data_host: String,
    pub admin_address: String,
    /// (core, port) for every core.
    pub cores: Vec<(u32, u32)>,
    /// The cluster the worker says it belongs to; empty for a new worker.
    pub cluster_id: String,
    /// Its zone label; empty for none (and in registrations from before zones).
    #[serde(default)]
    pub zone: String,
}

/// What a worker reported in its latest heartbeat.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct WorkerReport {
    pub worker_id: String,
    pub cores: Vec<CoreReport>,
}

/// One core's part of a report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct CoreReport {
    pub core: u32,
    pub memory_bytes: u64,
    pub search_qps: f64,
    pub upsert_points_per_s: f64,
    pub in_flight: u32,
    pub queue_depth: u64,
    pub shards: Vec<HeldShard>,
}

/// A replica a core reports serving.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct HeldShard {
    pub collection: String,
    pub shard_id: u32,
    pub epoch: u64,
    pub points: u64,
    pub memory_bytes: u64,
}

/// A change to the state: the application data of the Raft log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) enum Command {
    /// Names the cluster; only the first one counts.
    InitCluster { cluster_id: String },
    /// A worker registers (or registers again after a restart).
    RegisterWorker {
        registration: Registration,
        at_ms: u64,
    },
    /// The leader commits what heartbeats said: a returning worker, replicas that began
    /// or stopped serving, load figures.
    ObserveWorkers {
        reports: Vec<WorkerReport>,
        at_ms: u64,
    },
    /// The leader's reconciler found these workers silent for too long at `at_ms`; a
    /// worker whose health changed at or after `at_ms` is left as it is.
    MarkWorkersDown { worker_ids: Vec<String>, at_ms: u64 },
    /// Creates a collection; placement happens while applying.
    CreateCollection {
        request: CollectionRequest,
        /// Who creates it (absent: authentication was off).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        owner: Option<Owner>,
    },
    /// Drops a collection.
    DropCollection { name: String },
    /// Sets a collection's default search `ef`, and the measurement that chose it (a
    /// previous one is kept while `ef` stays, cleared when it changes without one), and
    /// its payload indexes when given.
    UpdateCollection {
        name: String,
        ef: u32,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        tuning: Option<EfTuning>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        payload_indexes: Option<Vec<PayloadIndexSpec>>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        search_cache: Option<SearchCache>,
    },
    /// Stores an API key a gateway made.
    CreateApiKey { record: KeyRecord },
    /// Revokes an API key.
    RevokeApiKey { id: String },
    /// Stores a user a gateway made.
    CreateUser { record: UserRecord },
    /// Deletes a user.
    DeleteUser { name: String },
    /// Makes or changes a plan.
    SetPlan { plan: Plan },
    /// Deletes a plan no key or user names.
    DeletePlan { name: String },
}

impl fmt::Display for Command {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::InitCluster { cluster_id } => write!(f, "init-cluster({cluster_id})"),
            Self::RegisterWorker { registration, .. } => {
                write!(f, "register-worker({})", registration.worker_id)
            }
            Self::ObserveWorkers { reports, .. } => {
                write!(f, "observe-workers({} reports)", reports.len())
            }
            Self::MarkWorkersDown { worker_ids, .. } => {
                write!(f, "mark-workers-down({})", worker_ids.join(","))
            }
            Self::CreateCollection { request, .. } => {
                write!(f, "create-collection({})", request.name)
            }
            Self::DropCollection { name } => write!(f, "drop-collection({name})"),
            Self::UpdateCollection { name, ef, .. } => {
                write!(f, "update-collection({name}, ef {ef})")
            }
            Self::CreateApiKey { record } => write!(f, "create-api-key({})", record.id),
            Self::RevokeApiKey { id } => write!(f, "revoke-api-key({id})"),
            Self::CreateUser { record } => write!(f, "create-user({})", record.name),
            Self::DeleteUser { name } => write!(f, "delete-user({name})"),
            Self::SetPlan { plan } => write!(f, "set-plan({})", plan.name),
            Self::DeletePlan { name } => write!(f, "delete-plan({name})"),
        }
    }
}

/// What applying a command did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum Applied {
    /// Nothing changed (for example a second `InitCluster`).
    Unchanged,
    /// A worker is registered; `resumed` when its id was known.
    WorkerRegistered { resumed: bool },
    /// Reports were recorded.
    WorkersObserved,
    /// This many workers went down.
    WorkersMarkedDown { count: usize },
    /// The collection exists now.
    CollectionCreated,
    /// The collection is gone.
    CollectionDropped,
    /// The collection's settings changed.
    CollectionUpdated,
    /// The cluster has its id.
    ClusterInitialized,
    /// The key is stored.
    KeyCreated,
    /// The key is gone.
    KeyRevoked,
    /// The user is stored.
    UserCreated,
    /// The user is gone.
    UserDeleted,
    /// The plan is stored.
    PlanSet,
    /// The plan is gone.
    PlanDeleted,
}

/// Why a command was refused. Refused commands change nothing.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
pub enum CommandError {
    /// The name is taken.
    #[error("collection {name:?} already exists")]
    AlreadyExists {
        /// The collection name.
        name: String,
    },
    /// No such collection.
    #[error("collection {name:?} does not exist")]
    NotFound {
        /// The collection name.
        name: String,
    },
    /// The shards cannot be placed.
    #[error(transparent)]
    Placement(#[from] PlacementError),
    /// The worker registered with another cluster before.
    #[error(
        "worker {worker_id:?} belongs to cluster {claimed:?}, this is cluster {cluster_id:?}: point it at its own control plane or give it an empty data directory"
    )]
    ClusterMismatch {
        /// The worker.
        worker_id: String,
        /// The cluster the worker names.
        claimed: String,
        /// This cluster.
        cluster_id: String,
    },
    /// A worker registers again without a core that holds replicas.
    #[error(
        "worker {worker_id:?} registers without core {core}, which holds {replicas} replicas: start it with that core"
    )]
    CoreInUse {
        /// The worker.
        worker_id: String,
        /// The missing core.
        core: u32,
        /// Replicas on that core.
        replicas: usize,
    },
    /// The cluster has no id yet: the first leader is still starting.
    #[error("the control plane is initialising: retry")]
    NotInitialized,
    /// The cluster holds as many collections as it may.
    #[error("the cluster holds {max} collections, the most it may; drop one first")]
    TooManyCollections {
        /// The limit (`vectron_proto::rules::MAX_COLLECTIONS`).
        max: usize,
    },
    /// The creator owns as many collections as its plan allows.
    #[error("{owner} owns {max} collections, the most its plan allows; drop one first")]
    CollectionQuota {
        /// The creator.
        owner: String,
        /// Its plan's `max_collections`.
        max: u32,
    },
    /// A key with this id exists (a new key's id is random: make another).
    #[error("an API key with id {id:?} exists")]
    KeyExists {
        /// The id.
        id: String,
    },
    /// No key has this id.
    #[error("no API key has id {id:?}")]
    NoSuchKey {
        /// The id.
        id: String,
    },
    /// The cluster holds as many keys as it may.
    #[error("the cluster holds {max} API keys, the most it may; revoke some first")]
    TooManyKeys {
        /// The limit (`vectron_proto::keys::MAX_API_KEYS`).
        max: usize,
    },
    /// A user with this name exists.
    #[error("user {name:?} exists")]
    UserExists {
        /// The name.
        name: String,
    },
    /// No user has this name.
    #[error("no user is named {name:?}")]
    NoSuchUser {
        /// The name.
        name: String,
    },
    /// The cluster holds as many users as it may.
    #[error("the cluster holds {max} users, the most it may; delete some first")]
    TooManyUsers {
        /// The limit (`vectron_proto::keys::MAX_USERS`).
        max: usize,
    },
    /// No plan has this name.
    #[error("no plan is named {name:?}; make it first")]
    NoSuchPlan {
        /// The name.
        name: String,
    },
    /// A plan a key or user still names.
    #[error("plan {name:?} is in use by {by}; move it to another plan first")]
    PlanInUse {
        /// The plan.
        name: String,
        /// Who names it: `key <id>` or `user <name>`.
        by: String,
    },
    /// The cluster holds as many plans as it may.
    #[error("the cluster holds {max} plans, the most it may; delete some first")]
    TooManyPlans {
        /// The limit (`vectron_auth::MAX_PLANS`).
        max: usize,
    },
}

/// The result the state machine returns for each command.
pub(crate) type CommandResult = Result<Applied, CommandError>;

impl ControlState {
    /// Refuses a plan the cluster does not hold.
    fn plan_exists(&self, plan: Option<&str>) -> Result<(), CommandError> {
        match plan {
            Some(name) if !self.plans.contains_key(name) => Err(CommandError::NoSuchPlan {
                name: name.to_owned(),
            }),
            _ => Ok(()),
        }
    }

    /// Applies `command`, the log entry at `log_index`.
    pub(crate) fn apply(&mut self, log_index: u64, command: &Command) -> CommandResult {
        match command {
            Command::InitCluster { cluster_id } => {
                if self.cluster_id.is_empty() {
                    self.cluster_id.clone_from(cluster_id);
                    // The routing table names the cluster.
                    self.routing_version += 1;
                    Ok(Applied::ClusterInitialized)
                } else {
                    Ok(Applied::Unchanged)
                }
            }
            Command::RegisterWorker {
                registration,
                at_ms,
            } => self.register(registration, *at_ms),
            Command::ObserveWorkers { reports, at_ms } => {
                for report in reports {
                    self.observe(report, *at_ms);
                }
                self.refresh_readiness();
                Ok(Applied::WorkersObserved)
            }
            Command::MarkWorkersDown { worker_ids, at_ms } => {
                let mut count = 0;
                for id in worker_ids {
                    // A worker that registered or came back at or after the reconciler's
                    // decision (a registration committed while the mark was in flight)
                    // has shown life since: the mark is stale for it.
                    if let Some(worker) = self.workers.get_mut(id)
                        && worker.health == Health::Up
                        && worker.health_changed_at_ms < *at_ms
                    {
                        worker.health = Health::Down;
                        worker.health_changed_at_ms = *at_ms;
                        count += 1;
                    }
                }
                if count > 0 {
                    self.routing_version += 1;
                }
                Ok(Applied::WorkersMarkedDown { count })
            }
            Command::CreateCollection { request, owner } => {
                self.create(log_index, request, owner.as_ref())
            }
            Command::CreateApiKey { record } => {
                self.plan_exists(record.plan.as_deref())?;
                if self.api_keys.contains_key(&record.id) {
                    return Err(CommandError::KeyExists {
                        id: record.id.clone(),
                    });
                }
                if self.api_keys.len() >= MAX_API_KEYS {
                    return Err(CommandError::TooManyKeys { max: MAX_API_KEYS });
                }
                self.api_keys.insert(record.id.clone(), record.clone());
                // Gateways learn of keys from the routing table.
                self.routing_version += 1;
                Ok(Applied::KeyCreated)
            }
            Command::RevokeApiKey { id } => {
                if self.api_keys.remove(id).is_none() {
                    return Err(CommandError::NoSuchKey { id: id.clone() });
                }
                self.routing_version += 1;
                Ok(Applied::KeyRevoked)
            }
            Command::CreateUser { record } => {
                self.plan_exists(record.plan.as_deref())?;
                if self.users.contains_key(&record.name) {
                    return Err(CommandError::UserExists {
                        name: record.name.clone(),
                    });
                }
                if self.users.len() >= MAX_USERS {
                    return Err(CommandError::TooManyUsers { max: MAX_USERS });
                }
                self.users.insert(record.name.clone(), record.clone());
                // Gateways check logins against the routing table's users.
                self.routing_version += 1;
                Ok(Applied::UserCreated)
            }
            Command::DeleteUser { name } => {
                if self.users.remove(name).is_none() {
                    return Err(CommandError::NoSuchUser { name: name.clone() });
                }
                self.routing_version += 1;
                Ok(Applied::UserDeleted)
            }
            Command::SetPlan { plan } => {
                if !self.plans.contains_key(&plan.name) && self.plans.len() >= MAX_PLANS {
                    return Err(CommandError::TooManyPlans { max: MAX_PLANS });
                }
                self.plans.insert(plan.name.clone(), plan.clone());
                // Gateways limit callers by the routing table's plans.
                self.routing_version += 1;
                Ok(Applied::PlanSet)
            }
            Command::DeletePlan { name } => {
                if !self.plans.contains_key(name) {
                    return Err(CommandError::NoSuchPlan { name: name.clone() });
                }
                let named = |plan: &Option<String>| plan.as_deref() == Some(name.as_str());
                let by = self
                    .api_keys
                    .values()
                    .find(|k| named(&k.plan))
                    .map(|k| format!("key {}", k.id))
                    .or_else(|| {
                        let user = self.users.values().find(|u| named(&u.plan))?;
                        Some(format!("user {}", user.name))
                    });
                if let Some(by) = by {
                    return Err(CommandError::PlanInUse {
                        name: name.clone(),
                        by,
                    });
                }
                self.plans.remove(name);
                self.routing_version += 1;
                Ok(Applied::PlanDeleted)
            }
            Command::DropCollection { name } => {
                if self.collections.remove(name).is_none() {
                    return Err(CommandError::NotFound { name: name.clone() });
                }
                self.routing_version += 1;
                Ok(Applied::CollectionDropped)
            }
            Command::UpdateCollection {
                name,
                ef,
                tuning,
                payload_indexes,
                search_cache,
            } => {
                let Some(collection) = self.collections.get_mut(name) else {
                    return Err(CommandError::NotFound { name: name.clone() });
                };
                if tuning.is_some() || collection.config.hnsw.ef != *ef {
                    collection.tuning.clone_from(tuning);
                }
                collection.config.hnsw.ef = *ef;
                if let Some(indexes) = payload_indexes {
                    // Workers take it from their next heartbeat's assignments, and
                    // their cores build what is new.
                    collection.config.payload_indexes.clone_from(indexes);
                }
                if let Some(cache) = search_cache {
                    // Gateways read it from the routing table.
                    collection.config.search_cache = *cache;
                }
                // Gateways resolve a search's default `ef` from the routing table.
                self.routing_version += 1;
                Ok(Applied::CollectionUpdated)
            }
        }
    }

    fn register(&mut self, registration: &Registration, at_ms: u64) -> CommandResult {
        if self.cluster_id.is_empty() {
            return Err(CommandError::NotInitialized);
        }
        if !registration.cluster_id.is_empty() && registration.cluster_id != self.cluster_id {
            return Err(CommandError::ClusterMismatch {
                worker_id: registration.worker_id.clone(),
                claimed: registration.cluster_id.clone(),
                cluster_id: self.cluster_id.clone(),
            });
        }
        let id = &registration.worker_id;
        let resumed = self.workers.contains_key(id);
        if resumed {
            // Every replica must stay on a core the worker still has.
            let mut per_core: BTreeMap<u32, usize> = BTreeMap::new();
            for replica in self.replicas().filter(|r| &r.worker_id == id) {
                *per_core.entry(replica.core).or_default() += 1;
            }
            for (core, replicas) in per_core {
                if !registration.cores.iter().any(|(c, _)| *c == core) {
                    return Err(CommandError::CoreInUse {
                        worker_id: id.clone(),
                        core,
                        replicas,
                    });
                }
            }
        }
        let cores = registration
            .cores
            .iter()
            .map(|&(core, port)| CoreRecord {
                core,
                port,
                memory_bytes: 0,
                search_qps: 0.0,
                upsert_points_per_s: 0.0,
                in_flight: 0,
                queue_depth: 0,
            })
            .collect();
        self.workers.insert(
            id.clone(),
            WorkerRecord {
                worker_id: id.clone(),
                data_host: registration.data_host.clone(),
                admin_address: registration.admin_address.clone(),
                cores,
                health: Health::Up,
                registered_at_ms: at_ms,
                health_changed_at_ms: at_ms,
                zone: registration.zone.clone(),
            },
        );
        if resumed {
            // A restarted worker reopens its replicas; until it reports them they do not
            // serve. Their data stays where it is: `served` is kept.
            for replica in self.replicas_mut().filter(|r| &r.worker_id == id) {
                replica.serving = false;
            }
            self.routing_version += 1;
        }
        Ok(Applied::WorkerRegistered { resumed })
    }

    fn observe(&mut self, report: &WorkerReport, at_ms: u64) {
        let Some(worker) = self.workers.get_mut(&report.worker_id) else {
            return;
        };
        let mut routing_changed = false;
        if worker.health == Health::Down {
            worker.health = Health::Up;
            worker.health_changed_at_ms = at_ms;
            routing_changed = true;
        }
        for core in &mut worker.cores {
            if let Some(reported) = report.cores.iter().find(|c| c.core == core.core) {
                core.memory_bytes = reported.memory_bytes;
                core.search_qps = reported.search_qps;
                core.upsert_points_per_s = reported.upsert_points_per_s;
                core.in_flight = reported.in_flight;
                core.queue_depth = reported.queue_depth;
            }
        }
        for (name, collection) in &mut self.collections {
            for shard in &mut collection.shards {
                for replica in &mut shard.replicas {
                    if replica.worker_id != report.worker_id {
                        continue;
                    }
                    let held = report
                        .cores
                        .iter()
                        .filter(|c| c.core == replica.core)
                        .flat_map(|c| &c.shards)
                        .find(|h| {
                            &h.collection == name
                                && h.shard_id == shard.shard_id
                                && h.epoch == replica.epoch
                        });
                    let serving = held.is_some();
                    if serving != replica.serving {
                        routing_changed = true;
                    }
                    replica.serving = serving;
                    if let Some(held) = held {
                        replica.served = true;
                        replica.points = held.points;
                        replica.memory_bytes = held.memory_bytes;
                    }
                }
            }
        }
        if routing_changed {
            self.routing_version += 1;
        }
    }

    fn refresh_readiness(&mut self) {
        let workers = &self.workers;
        for collection in self.collections.values_mut() {
            if !collection.was_ready && collection_whole(workers, collection) {
                collection.was_ready = true;
            }
        }
    }

    fn create(
        &mut self,
        log_index: u64,
        request: &CollectionRequest,
        owner: Option<&Owner>,
    ) -> CommandResult {
        if self.collections.contains_key(&request.name) {
            return Err(CommandError::AlreadyExists {
                name: request.name.clone(),
            });
        }
        if self.collections.len() >= MAX_COLLECTIONS {
            return Err(CommandError::TooManyCollections {
                max: MAX_COLLECTIONS,
            });
        }
        if let Some(Owner {
            name,
            max_owned: Some(max),
        }) = owner
        {
            let owned = self
                .collections
                .values()
                .filter(|c| c.owner.as_ref() == Some(name))
                .count();
            if owned >= *max as usize {
                return Err(CommandError::CollectionQuota {
                    owner: name.clone(),
                    max: *max,
                });
            }
        }
        let loads = self.worker_loads();
        let shard_count = request
            .shard_count
            .unwrap_or_else(|| placement::live_cores(&loads).min(MAX_SHARD_COUNT));
        let slots = placement::place(&loads, shard_count, request.replication_factor)?;
        let layout = ShardLayout::with_count(shard_count).ok_or(PlacementError::Empty)?;
        let shards = slots
            .into_iter()
            .zip(layout.ranges())
            .zip(0..)
            .map(|((slots, range), shard_id)| ShardRecord {
                shard_id,
                hash_start: range.start,
                hash_end: range.end,
                replicas: slots
                    .into_iter()
                    .zip(0..)
                    .map(|(slot, index)| ReplicaRecord {
                        worker_id: slot.worker_id,
                        core: slot.core,
                        epoch: log_index,
                        replica_id: if request.replication_factor > 1 {
                            replica_id(log_index, shard_id, index)
                        } else {
                            0
                        },
                        serving: false,
                        served: false,
                        points: 0,
                        memory_bytes: 0,
                    })
                    .collect(),
            })
            .collect();
        self.collections.insert(
            request.name.clone(),
            CollectionRecord {
                config: request.resolve(shard_count),
                created_index: log_index,
                was_ready: false,
                shards,
                owner: owner.map(|o| o.name.clone()),
                tuning: None,
            },
        );
        self.routing_version += 1;
        Ok(Applied::CollectionCreated)
    }

    /// The load of every worker, for placement.
    pub(crate) fn worker_loads(&self) -> Vec<WorkerLoad> {
        self.workers
            .values()
            .map(|worker| WorkerLoad {
                worker_id: worker.worker_id.clone(),
                live: worker.health == Health::Up,
                zone: worker.zone.clone(),
                cores: worker
                    .cores
                    .iter()
                    .map(|core| {
                        let on_core = |r: &ReplicaRecord| {
                            r.worker_id == worker.worker_id && r.core == core.core
                        };
                        let (mut replicas, mut points) = (0u32, 0u64);
                        for replica in self.replicas().filter(|r| on_core(r)) {
                            replicas += 1;
                            points += replica.points;
                        }
                        // A shard's first replica is its preferred leader.
                        let leaders = self
                            .collections
                            .values()
                            .flat_map(|c| &c.shards)
                            .filter(|s| s.replicas.first().is_some_and(on_core))
                            .count();
                        CoreLoad {
                            core: core.core,
                            replicas,
                            points,
                            memory_bytes: core.memory_bytes,
                            leaders: u32::try_from(leaders).unwrap_or(u32::MAX),
                        }
                    })
                    .collect(),
            })
            .collect()
    }

    pub(crate) fn replicas(&self) -> impl Iterator<Item = &ReplicaRecord> {
        self.collections
            .values()
            .flat_map(|c| &c.shards)
            .flat_map(|s| &s.replicas)
    }

    fn replicas_mut(&mut self) -> impl Iterator<Item = &mut ReplicaRecord> {
        self.collections
            .values_mut()
            .flat_map(|c| &mut c.shards)
            .flat_map(|s| &mut s.replicas)
    }

    /// Whether a report says anything that routing must see at once: a worker that comes
    /// back, or a replica that starts or stops serving.
    pub(crate) fn report_changes_routing(&self, report: &WorkerReport) -> bool {
        let Some(worker) = self.workers.get(&report.worker_id) else {
            return false;
        };
        if worker.health == Health::Down {
            return true;
        }
        self.collections.iter().any(|(name, collection)| {
            collection.shards.iter().any(|shard| {
                shard.replicas.iter().any(|replica| {
                    if replica.worker_id != report.worker_id {
                        return false;
                    }
                    let held = report
                        .cores
                        .iter()
                        .filter(|c| c.core == replica.core)
                        .flat_map(|c| &c.shards)
                        .any(|h| {
                            &h.collection == name
                                && h.shard_id == shard.shard_id
                                && h.epoch == replica.epoch
                        });
                    held != replica.serving
                })
            })
        })
    }
}

/// Whether some replica of `shard` serves: its worker is up and it reported the shard.
/// Whether every replica of every shard of `collection` serves.
pub(crate) fn collection_whole(
    workers: &BTreeMap<String, WorkerRecord>,
    collection: &CollectionRecord,
) -> bool {
    collection
        .shards
        .iter()
        .flat_map(|shard| &shard.replicas)
        .all(|replica| replica_serves(workers, replica))
}

pub(crate) fn shard_serves(workers: &BTreeMap<String, WorkerRecord>, shard: &ShardRecord) -> bool {
    shard
        .replicas
        .iter()
        .any(|replica| replica_serves(workers, replica))
}

pub(crate) fn replica_serves(
    workers: &BTreeMap<String, WorkerRecord>,
    replica: &ReplicaRecord,
) -> bool {
    replica.serving
        && workers
            .get(&replica.worker_id)
            .is_some_and(|w| w.health == Health::Up)
}

#[cfg(test)]
mod tests;
