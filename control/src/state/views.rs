//! The state as the contracts show it: collection infos, routing tables, worker
//! assignments and statuses. Pure functions of the state.

use std::fmt::Write as _;

use vectron_proto::control::v1 as ctl;
use vectron_proto::core::v1::ReplicaPeer;
use vectron_proto::keys::{key_entry, plan_message, user_entry};
use vectron_proto::v1 as api;

use super::{
    CollectionRecord, ControlState, Health, ReplicaRecord, WorkerRecord, collection_whole,
    replica_serves, shard_serves,
};

/// `host:port`, with brackets around an IPv6 host.
pub(crate) fn endpoint(host: &str, port: u32) -> String {
    if host.contains(':') && !host.starts_with('[') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

impl ControlState {
    /// A collection as `Describe` shows it.
    pub(crate) fn collection_info(&self, collection: &CollectionRecord) -> api::CollectionInfo {
        let mut point_count = 0;
        let shards = collection
            .shards
            .iter()
            .map(|shard| {
                let shard_points = shard
                    .replicas
                    .iter()
                    .filter(|r| r.served)
                    .map(|r| r.points)
                    .max()
                    .unwrap_or(0);
                point_count += shard_points;
                api::ShardInfo {
                    shard_id: shard.shard_id,
                    hash_range_start: shard.hash_start,
                    hash_range_end: shard.hash_end,
                    replicas: shard
                        .replicas
                        .iter()
                        .map(|replica| self.replica_info(replica))
                        .collect(),
                    point_count: shard_points,
                }
            })
            .collect();
        api::CollectionInfo {
            spec: Some(collection.config.to_proto()),
            state: self.collection_state(collection).into(),
            point_count,
            shards,
            owner: collection.owner.clone().unwrap_or_default(),
            tuning: collection.tuning.as_ref().map(|t| api::EfTuning {
                target_recall: t.target_recall,
                k: t.k,
                measured_recall: t.measured_recall,
                recall_lower_bound: t.recall_lower_bound,
                queries: t.queries,
                tuned_at_unix_ms: t.tuned_at_unix_ms,
                filter_json: t.filter_json.clone(),
            }),
            // The cores know which are built: the gateway's describe asks them.
            payload_index_status: Vec::new(),
        }
    }

    /// Ready while every replica of every shard serves; degraded once it was ready, or
    /// while a replica's worker is down (a replicated shard with a majority left still
    /// serves reads and writes, but has fewer copies than asked for); creating before.
    fn collection_state(&self, collection: &CollectionRecord) -> api::CollectionState {
        if collection_whole(&self.workers, collection) {
            return api::CollectionState::Ready;
        }
        let any_down = collection
            .shards
            .iter()
            .flat_map(|s| &s.replicas)
            .any(|r| self.worker_health(&r.worker_id) != Some(Health::Up));
        if collection.was_ready || any_down {
            api::CollectionState::Degraded
        } else {
            api::CollectionState::Creating
        }
    }

    fn worker_health(&self, worker_id: &str) -> Option<Health> {
        self.workers.get(worker_id).map(|w| w.health)
    }

    fn replica_state(&self, replica: &ReplicaRecord) -> api::ReplicaState {
        if self.worker_health(&replica.worker_id) != Some(Health::Up) {
            api::ReplicaState::Unavailable
        } else if replica_serves(&self.workers, replica) {
            api::ReplicaState::Active
        } else {
            api::ReplicaState::Opening
        }
    }

    fn replica_info(&self, replica: &ReplicaRecord) -> api::ReplicaInfo {
        let address = self
            .workers
            .get(&replica.worker_id)
            .and_then(|w| {
                w.cores
                    .iter()
                    .find(|c| c.core == replica.core)
                    .map(|c| endpoint(&w.data_host, c.port))
            })
            .unwrap_or_default();
        api::ReplicaInfo {
            worker_id: replica.worker_id.clone(),
            core: replica.core,
            address,
            epoch: replica.epoch,
            state: self.replica_state(replica).into(),
            replica_id: replica.replica_id,
            // The cores report it; the gateway asks them when describing.
            status: None,
        }
    }

    /// Every collection (or the one named), ordered by name; `None` when the named one
    /// does not exist.
    pub(crate) fn routing_table(&self, only: &str) -> Option<ctl::RoutingTable> {
        let collections = if only.is_empty() {
            self.collections
                .values()
                .map(|c| self.collection_info(c))
                .collect()
        } else {
            vec![self.collection_info(self.collections.get(only)?)]
        };
        // Gateways install keys and users from full tables only.
        let (api_keys, users, plans) = if only.is_empty() {
            (
                self.api_keys.values().map(key_entry).collect(),
                self.users.values().map(user_entry).collect(),
                self.plans.values().map(plan_message).collect(),
            )
        } else {
            (Vec::new(), Vec::new(), Vec::new())
        };
        Some(ctl::RoutingTable {
            version: self.routing_version,
            collections,
            cluster_id: self.cluster_id.clone(),
            api_keys,
            users,
            plans,
        })
    }

    /// Shards with no serving replica, and why.
    pub(crate) fn unavailable_shards(&self) -> Vec<ctl::UnavailableShard> {
        let mut out = Vec::new();
        for (name, collection) in &self.collections {
            for shard in &collection.shards {
                if shard_serves(&self.workers, shard) {
                    continue;
                }
                let mut reason = String::new();
                for replica in &shard.replicas {
                    if !reason.is_empty() {
                        reason.push_str("; ");
                    }
                    let state = match self.replica_state(replica) {
                        api::ReplicaState::Unavailable => "worker down",
                        _ if replica.served => "not reported by its worker since it restarted",
                        _ => "opening",
                    };
                    let _ = write!(
                        reason,
                        "replica on {}/{} (epoch {}): {state}",
                        replica.worker_id, replica.core, replica.epoch
                    );
                }
                out.push(ctl::UnavailableShard {
                    collection: name.clone(),
                    shard_id: shard.shard_id,
                    reason,
                });
            }
        }
        out
    }
}

/// The shards `worker_id` must hold, ordered by collection and shard.
pub(crate) fn assignments_for(state: &ControlState, worker_id: &str) -> Vec<ctl::ShardAssignment> {
    let mut out = Vec::new();
    for collection in state.collections.values() {
        let spec = collection.config.to_proto();
        for shard in &collection.shards {
            let peers: Vec<_> = shard
                .replicas
                .iter()
                .filter(|r| r.replica_id != 0)
                .map(|r| ReplicaPeer {
                    replica_id: r.replica_id,
                    address: core_address(state, &r.worker_id, r.core).unwrap_or_default(),
                })
                .collect();
            for replica in shard.replicas.iter().filter(|r| r.worker_id == worker_id) {
                out.push(ctl::ShardAssignment {
                    spec: Some(spec.clone()),
                    shard_id: shard.shard_id,
                    hash_range_start: shard.hash_start,
                    hash_range_end: shard.hash_end,
                    epoch: replica.epoch,
                    core: replica.core,
                    must_exist: replica.served,
                    incarnation: collection.created_index,
                    replica_id: replica.replica_id,
                    peers: if replica.replica_id == 0 {
                        Vec::new()
                    } else {
                        peers.clone()
                    },
                    // The first replica placed is the preferred leader.
                    preferred_leader: shard.replicas.first().map_or(0, |r| r.replica_id),
                });
            }
        }
    }
    out
}

/// The gRPC address (`host:port`) of core `core` of worker `worker_id`, if registered.
pub(crate) fn core_address(state: &ControlState, worker_id: &str, core: u32) -> Option<String> {
    let worker = state.workers.get(worker_id)?;
    let port = worker.cores.iter().find(|c| c.core == core)?.port;
    Some(endpoint(&worker.data_host, port))
}

/// A worker as `ClusterStatus` shows it, without the heartbeat age only the leader knows.
pub(crate) fn worker_status(state: &ControlState, worker: &WorkerRecord) -> ctl::WorkerStatus {
    let mut replicas = 0;
    let mut points = 0;
    for replica in state.replicas().filter(|r| r.worker_id == worker.worker_id) {
        replicas += 1;
        points += replica.points;
    }
    ctl::WorkerStatus {
        worker_id: worker.worker_id.clone(),
        data_host: worker.data_host.clone(),
        cores: worker
            .cores
            .iter()
            .map(|c| ctl::CoreEndpoint {
                core: c.core,
                port: c.port,
            })
            .collect(),
        admin_address: worker.admin_address.clone(),
        health: match worker.health {
            Health::Up => ctl::WorkerHealth::Up,
            Health::Down => ctl::WorkerHealth::Down,
        }
        .into(),
        heartbeat_age_ms: None,
        replicas,
        points,
        memory_bytes: worker.cores.iter().map(|c| c.memory_bytes).sum(),
        registered_at_unix_ms: worker.registered_at_ms,
        zone: worker.zone.clone(),
    }
}
