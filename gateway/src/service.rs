//! The gateway's handlers, independent of the door a request came through: both the
//! gRPC services and the HTTP routes call these with the same types, so validation,
//! limits and errors are the same on both.
//!
//! Points travel in the cores' form (`vectron.core.v1.Point`, payload as JSON text);
//! each door converts at its edge.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, LazyLock};
use std::time::{Duration, SystemTime};

use futures_util::future::join_all;
use vectron_auth::{
    Action, Claims, Collection, Denied, KeyRecord, Principal, UserRecord, authorize, generate_key,
    hash_password, verify_password,
};
use vectron_control::{ControlClient, RetryPolicy};
use vectron_proto::cluster::PresentKey;
use vectron_proto::control::v1::WorkerHealth;
use vectron_proto::core::v1::StatsRequest;
use vectron_proto::keys::{
    Scope, check_new_key, check_new_token, check_new_user, key_entry, plan_record, token_ttl,
    user_entry,
};
use vectron_proto::v1::{
    CollectionInfo, CollectionSpec, CoreStats, CoreStatsResponse, CreateKeyRequest,
    CreateKeyResponse, CreateTokenRequest, CreateTokenResponse, CreateUserRequest, KeyInfo,
    LoginRequest, LoginResponse, PayloadIndexStatus, Plan, ReplicaInfo, ReplicaRole, ReplicaState,
    ReplicaStatus, ShardInfo, ShardStats, UpdateCollectionRequest, UserInfo,
};

use crate::admission::Admission;
use crate::auth::Authenticator;
use crate::cache::{Generations, SearchCache};
use crate::config::GatewayConfig;
use crate::cores::{CoreChannels, Deadline};
use crate::error::GatewayError;
use crate::quota::{self, OwnedPoints};
use crate::routing::{CollectionRoute, RoutingCache};

/// How long a worker's cores may take to report their statistics.
const STATS_TIMEOUT: Duration = Duration::from_secs(3);

/// The hash a login with an unknown name is checked against, so that it costs what a
/// wrong password does (whatever it matches, such a login is refused).
static UNKNOWN_USER_PHC: LazyLock<String> =
    LazyLock::new(|| hash_password("no user has this password").unwrap_or_default());

/// Everything the handlers share.
#[derive(Debug)]
pub(crate) struct Service {
    pub(crate) config: GatewayConfig,
    pub(crate) control: ControlClient,
    /// A client that gives up quickly, for readiness probes.
    probe: ControlClient,
    pub(crate) routing: Arc<RoutingCache>,
    pub(crate) channels: CoreChannels,
    pub(crate) generations: Generations,
    pub(crate) cache: SearchCache,
    pub(crate) admission: Arc<Admission>,
    pub(crate) auth: Authenticator,
    /// The points each owner's collections hold, for plans' points quotas.
    pub(crate) owned_points: OwnedPoints,
}

impl Service {
    pub(crate) fn new(config: GatewayConfig, control: ControlClient) -> Self {
        let probe = control.clone().with_retry_policy(RetryPolicy {
            deadline: Duration::from_secs(1),
            initial_backoff: Duration::from_millis(50),
            max_backoff: Duration::from_millis(200),
            request_timeout: Duration::from_secs(1),
        });
        let routing = Arc::new(RoutingCache::new(control.clone()));
        Self {
            auth: Authenticator::new(&config.auth, Arc::clone(&routing)),
            owned_points: OwnedPoints::default(),
            routing,
            channels: CoreChannels::new(
                config.cores,
                config.limits.max_message_bytes,
                PresentKey::new(config.cluster_key.as_ref()),
            ),
            generations: Generations::default(),
            cache: SearchCache::new(&config.cache),
            admission: Admission::new(config.admission),
            control,
            probe,
            config,
        }
    }

    /// The deadline of a call that asked for `requested` (or for none).
    pub(crate) fn deadline(&self, requested: Option<Duration>) -> Deadline {
        Deadline::after(requested.unwrap_or(self.config.default_timeout))
    }

    /// Reacts to routing changes: cached searches of a collection that moved, appeared
    /// or went away are stale, and connections to cores no longer named are closed.
    pub(crate) fn routing_changed(&self, collections: &[String]) {
        for name in collections {
            self.generations.bump(name);
        }
        self.channels.retain(&self.routing.snapshot().addresses());
    }

    /// Whether the gateway can serve: routing is loaded and the control plane answers.
    pub(crate) async fn ready(&self) -> Result<(), GatewayError> {
        if !self.routing.is_loaded() {
            return Err(GatewayError::NotReady {
                reason: "the routing table has not been loaded from the control plane yet".into(),
            });
        }
        let status = self
            .probe
            .cluster_status()
            .await
            .map_err(GatewayError::Control)?;
        if !status
            .workers
            .iter()
            .any(|w| w.health() == WorkerHealth::Up)
        {
            return Err(GatewayError::NotReady {
                reason: "no worker is up: nothing could store or serve a collection yet".into(),
            });
        }
        Ok(())
    }

    // --- collections -----------------------------------------------------------------

    /// Whether `who` may do `action` on the collection `name`, by its role, its grants
    /// or as the collection's owner.
    pub(crate) fn authorize_on(
        &self,
        who: &Principal,
        action: Action,
        name: &str,
    ) -> Result<(), Denied> {
        quota::authorize_on(&self.routing, who, action, name)
    }

    /// Creates a collection, then waits (at most the configured time) until every shard
    /// serves, so that the first write after the answer finds its shard open.
    pub(crate) async fn create_collection(
        &self,
        who: &Principal,
        spec: CollectionSpec,
    ) -> Result<CollectionInfo, GatewayError> {
        authorize(
            who,
            Action::CreateCollection,
            Some(Collection::new(&spec.name, "")),
        )?;
        let name = spec.name.clone();
        // With authentication on, the caller owns what it creates, within its plan's
        // collections quota (checked by the control plane as it creates).
        let owner = if self.config.auth.enabled {
            who.name.as_str()
        } else {
            ""
        };
        let created = self
            .control
            .create_owned_collection(spec, owner, who.quota.collections)
            .await
            .map_err(GatewayError::Control)?;
        let serving = self
            .routing
            .wait_until(&name, self.config.create_wait, CollectionRoute::is_serving)
            .await;
        self.generations.bump(&name);
        if !serving {
            tracing::warn!(collection = %name, "created, but not every shard serves yet");
            return Ok(created);
        }
        Ok(self
            .control
            .describe_collection(&name)
            .await
            .unwrap_or(created))
    }

    /// Drops a collection.
    pub(crate) async fn drop_collection(
        &self,
        who: &Principal,
        name: &str,
    ) -> Result<(), GatewayError> {
        self.authorize_on(who, Action::DropCollection, name)?;
        let dropped = self
            .control
            .drop_collection(name)
            .await
            .map_err(GatewayError::Control);
        self.generations.bump(name);
        dropped
    }

    /// Changes a collection's mutable settings; returns it as updated, once this
    /// gateway's routing table holds the new default `ef`.
    pub(crate) async fn update_collection(
        &self,
        who: &Principal,
        request: UpdateCollectionRequest,
    ) -> Result<CollectionInfo, GatewayError> {
        if request.name.is_empty() {
            return Err(GatewayError::NoCollection);
        }
        self.authorize_on(who, Action::UpdateCollection, &request.name)?;
        let name = request.name.clone();
        let updated = self
            .control
            .update_collection(request)
            .await
            .map_err(GatewayError::Control)?;
        let ef = updated.spec.as_ref().and_then(|s| s.hnsw.as_ref()?.ef);
        self.routing
            .wait_until(&name, self.config.create_wait, |r| {
                r.spec.hnsw.as_ref().and_then(|h| h.ef) == ef
            })
            .await;
        // Cached answers of searches without `ef` were found with the old default.
        self.generations.bump(&name);
        let mut updated = updated;
        self.add_replica_status(&name, &mut updated).await;
        Ok(updated)
    }

    /// Every collection the caller may describe, ordered by name.
    pub(crate) async fn list_collections(
        &self,
        who: &Principal,
    ) -> Result<Vec<CollectionInfo>, GatewayError> {
        authorize(who, Action::ListCollections, None)?;
        let mut all = self
            .control
            .list_collections()
            .await
            .map_err(GatewayError::Control)?;
        all.retain(|c| {
            c.spec
                .as_ref()
                .is_some_and(|s| who.sees(Collection::new(&s.name, &c.owner)))
        });
        Ok(all)
    }

    /// One collection: as the control plane places it, with each replica's status and
    /// the point counts as the replicas' cores report them now.
    pub(crate) async fn describe_collection(
        &self,
        who: &Principal,
        name: &str,
    ) -> Result<CollectionInfo, GatewayError> {
        if name.is_empty() {
            return Err(GatewayError::NoCollection);
        }
        self.authorize_on(who, Action::DescribeCollection, name)?;
        let mut info = self
            .control
            .describe_collection(name)
            .await
            .map_err(GatewayError::Control)?;
        self.add_replica_status(name, &mut info).await;
        Ok(info)
    }

    /// Asks every core holding a replica of the collection (once each, at once) for its
    /// statistics, and fills in what they say. A replica whose worker is down is not
    /// asked; one whose core does not answer in time is left without a status.
    async fn add_replica_status(&self, name: &str, info: &mut CollectionInfo) {
        let mut addresses: Vec<&str> = info
            .shards
            .iter()
            .flat_map(|s| &s.replicas)
            .filter(|r| r.state() != ReplicaState::Unavailable && !r.address.is_empty())
            .map(|r| r.address.as_str())
            .collect();
        addresses.sort_unstable();
        addresses.dedup();
        let answers = join_all(addresses.iter().map(|a| self.ask_stats(a))).await;
        let cores: HashMap<String, CoreStats> = addresses
            .into_iter()
            .zip(answers)
            .filter_map(|(address, stats)| Some((address.to_owned(), stats?)))
            .collect();
        for shard in &mut info.shards {
            fill_shard_status(name, shard, &cores);
        }
        info.point_count = info.shards.iter().map(|s| s.point_count).sum();
        info.payload_index_status = payload_index_status(name, info, &cores);
    }

    /// One core's statistics, or `None` when it cannot be reached or does not answer
    /// within [`STATS_TIMEOUT`].
    async fn ask_stats(&self, address: &str) -> Option<CoreStats> {
        let mut client = self.channels.client(address).ok()?;
        let mut request = tonic::Request::new(StatsRequest {});
        request.set_timeout(STATS_TIMEOUT);
        tokio::time::timeout(STATS_TIMEOUT, client.stats(request))
            .await
            .ok()?
            .ok()
            .map(tonic::Response::into_inner)
    }

    // --- keys ------------------------------------------------------------------------

    /// Makes an API key: the secret is drawn here and shown in the answer only; the
    /// control plane stores its hash.
    pub(crate) async fn create_key(
        &self,
        who: &Principal,
        request: &CreateKeyRequest,
    ) -> Result<CreateKeyResponse, GatewayError> {
        authorize(who, Action::ManageKeys, None)?;
        let Scope { role, grants, plan } = check_new_key(request)?;
        let made = generate_key().map_err(|e| GatewayError::Internal(e.to_string()))?;
        let record = KeyRecord {
            id: made.id.clone(),
            secret_sha256: made.hash.to_hex(),
            role,
            grants,
            description: request.description.clone(),
            created_at_ms: 0,
            plan,
        };
        let info = self
            .control
            .create_api_key(key_entry(&record))
            .await
            .map_err(GatewayError::Control)?;
        tracing::info!(key = %made.id, by = %who.name, %role, "API key created");
        Ok(CreateKeyResponse {
            key: Some(info),
            secret: made.key,
        })
    }

    /// Every API key, without secrets or hashes.
    pub(crate) async fn list_keys(&self, who: &Principal) -> Result<Vec<KeyInfo>, GatewayError> {
        authorize(who, Action::ManageKeys, None)?;
        self.control
            .list_api_keys()
            .await
            .map_err(GatewayError::Control)
    }

    /// Revokes an API key; every gateway drops it with the next routing table.
    pub(crate) async fn revoke_key(&self, who: &Principal, id: &str) -> Result<(), GatewayError> {
        authorize(who, Action::ManageKeys, None)?;
        self.control
            .revoke_api_key(id)
            .await
            .map_err(GatewayError::Control)?;
        tracing::info!(key = %id, by = %who.name, "API key revoked");
        Ok(())
    }

    /// Mints a token with the gateway's token secret.
    pub(crate) fn create_token(
        &self,
        who: &Principal,
        request: &CreateTokenRequest,
    ) -> Result<CreateTokenResponse, GatewayError> {
        authorize(who, Action::ManageKeys, None)?;
        let (subject, Scope { role, grants, plan }, ttl) = check_new_token(request)?;
        if let Some(name) = &plan
            && !self.routing.snapshot().plans.contains_key(name)
        {
            return Err(GatewayError::UnknownPlan { name: name.clone() });
        }
        let tokens = self.auth.tokens().ok_or(GatewayError::NoTokenSecret)?;
        let mut claims = Claims::new(subject, role, grants, SystemTime::now(), ttl);
        claims.plan = plan;
        let token = tokens
            .mint(&claims)
            .map_err(|e| GatewayError::Internal(e.to_string()))?;
        tracing::info!(subject = %claims.sub, by = %who.name, %role, expires = claims.exp, "token minted");
        Ok(CreateTokenResponse {
            token,
            expires_at_unix_s: claims.exp,
        })
    }

    // --- users -----------------------------------------------------------------------

    /// Makes a user: the password is hashed here (off the serving threads) and only its
    /// hash goes to the control plane.
    pub(crate) async fn create_user(
        &self,
        who: &Principal,
        request: &CreateUserRequest,
    ) -> Result<UserInfo, GatewayError> {
        authorize(who, Action::ManageUsers, None)?;
        let (name, Scope { role, grants, plan }) = check_new_user(request)?;
        let password = request.password.clone();
        let password_phc = tokio::task::spawn_blocking(move || hash_password(&password))
            .await
            .map_err(|e| GatewayError::Internal(e.to_string()))?
            .map_err(|e| GatewayError::KeyRule(e.into()))?;
        let record = UserRecord {
            name,
            password_phc,
            role,
            grants,
            created_at_ms: 0,
            plan,
        };
        let info = self
            .control
            .store_user(user_entry(&record))
            .await
            .map_err(GatewayError::Control)?;
        tracing::info!(user = %record.name, by = %who.name, %role, "user created");
        Ok(info)
    }

    /// Every user, without password hashes.
    pub(crate) async fn list_users(&self, who: &Principal) -> Result<Vec<UserInfo>, GatewayError> {
        authorize(who, Action::ManageUsers, None)?;
        self.control
            .list_users()
            .await
            .map_err(GatewayError::Control)
    }

    /// Deletes a user; every gateway refuses their logins with the next routing table.
    pub(crate) async fn delete_user(
        &self,
        who: &Principal,
        name: &str,
    ) -> Result<(), GatewayError> {
        authorize(who, Action::ManageUsers, None)?;
        self.control
            .delete_user(name)
            .await
            .map_err(GatewayError::Control)?;
        tracing::info!(user = %name, by = %who.name, "user deleted");
        Ok(())
    }

    /// Checks a user's name and password (`from`: the client's address, for the login
    /// rate limit) and mints a token with their role and grants.
    pub(crate) async fn login(
        &self,
        from: Option<IpAddr>,
        request: &LoginRequest,
    ) -> Result<LoginResponse, GatewayError> {
        self.auth.admit_login(from)?;
        let tokens = self.auth.tokens().ok_or(GatewayError::NoTokenSecret)?;
        let ttl = token_ttl(request.ttl_seconds)?;
        if !self.routing.is_loaded() {
            return Err(GatewayError::NotReady {
                reason: "the users are not loaded yet".into(),
            });
        }
        let user = self.routing.snapshot().users.get(&request.name).cloned();
        // An unknown name costs what a wrong password does, so that timing does not
        // tell which names exist.
        let phc = user.as_ref().map(|u| u.password_phc.clone());
        let password = request.password.clone();
        let matches = tokio::task::spawn_blocking(move || {
            let phc = phc.unwrap_or_else(|| UNKNOWN_USER_PHC.clone());
            verify_password(&phc, &password)
        })
        .await
        .map_err(|e| GatewayError::Internal(e.to_string()))?
        .map_err(|e| GatewayError::Internal(e.to_string()))?;
        let Some(user) = user.filter(|_| matches) else {
            tracing::info!(user = ?request.name, ?from, "login refused");
            return Err(GatewayError::BadLogin);
        };
        let mut claims = Claims::new(
            user.name.clone(),
            user.role,
            user.grants.clone(),
            SystemTime::now(),
            ttl,
        );
        claims.plan.clone_from(&user.plan);
        let token = tokens
            .mint(&claims)
            .map_err(|e| GatewayError::Internal(e.to_string()))?;
        tracing::info!(user = %user.name, ?from, expires = claims.exp, "logged in");
        Ok(LoginResponse {
            token,
            expires_at_unix_s: claims.exp,
        })
    }

    // --- plans -----------------------------------------------------------------------

    /// Makes or changes a plan; gateways apply it with the next routing table.
    pub(crate) async fn set_plan(
        &self,
        who: &Principal,
        plan: &Plan,
    ) -> Result<Plan, GatewayError> {
        authorize(who, Action::ManageKeys, None)?;
        plan_record(plan)?;
        let set = self
            .control
            .set_plan(plan.clone())
            .await
            .map_err(GatewayError::Control)?;
        tracing::info!(plan = %plan.name, by = %who.name, rps = plan.requests_per_second, burst = plan.burst, "plan set");
        Ok(set)
    }

    /// Every plan.
    pub(crate) async fn list_plans(&self, who: &Principal) -> Result<Vec<Plan>, GatewayError> {
        authorize(who, Action::ManageKeys, None)?;
        self.control
            .list_plans()
            .await
            .map_err(GatewayError::Control)
    }

    /// Deletes a plan no key or user names.
    pub(crate) async fn delete_plan(
        &self,
        who: &Principal,
        name: &str,
    ) -> Result<(), GatewayError> {
        authorize(who, Action::ManageKeys, None)?;
        self.control
            .delete_plan(name)
            .await
            .map_err(GatewayError::Control)?;
        tracing::info!(plan = %name, by = %who.name, "plan deleted");
        Ok(())
    }

    // --- stats -----------------------------------------------------------------------

    /// Statistics of every core of one worker (or of every worker), asked of each core
    /// directly. A worker any of whose cores did not answer in time is listed as
    /// unreachable, with the cores that did answer kept.
    pub(crate) async fn core_stats(
        &self,
        who: &Principal,
        worker_id: &str,
    ) -> Result<CoreStatsResponse, GatewayError> {
        authorize(who, Action::Stats, None)?;
        let status = self
            .control
            .cluster_status()
            .await
            .map_err(GatewayError::Control)?;
        let workers: Vec<_> = status
            .workers
            .into_iter()
            .filter(|w| worker_id.is_empty() || w.worker_id == worker_id)
            .collect();
        if workers.is_empty() && !worker_id.is_empty() {
            return Err(GatewayError::UnknownWorker {
                worker_id: worker_id.to_owned(),
            });
        }
        let asks = workers.iter().flat_map(|w| {
            w.cores.iter().map(move |c| {
                let address = endpoint(&w.data_host, c.port);
                let down = w.health() == WorkerHealth::Down;
                async move {
                    if down {
                        return (w.worker_id.clone(), None);
                    }
                    (w.worker_id.clone(), self.ask_stats(&address).await)
                }
            })
        });
        let answers = join_all(asks).await;
        let mut cores: Vec<CoreStats> = Vec::with_capacity(answers.len());
        let mut unreachable: Vec<String> = Vec::new();
        for (worker, answer) in answers {
            match answer {
                Some(stats) => cores.push(stats),
                None if !unreachable.contains(&worker) => unreachable.push(worker),
                None => {}
            }
        }
        cores.sort_by(|a, b| (&a.worker_id, a.core).cmp(&(&b.worker_id, b.core)));
        unreachable.sort();
        Ok(CoreStatsResponse {
            cores,
            unreachable_workers: unreachable,
        })
    }
}

/// Sets each replica's status from its core's statistics (matched by collection, shard
/// and placement epoch), its lag behind the shard's leader, and the shard's point count
/// as its leader holds it (else its most advanced replica that answered).
fn fill_shard_status(collection: &str, shard: &mut ShardInfo, cores: &HashMap<String, CoreStats>) {
    for replica in &mut shard.replicas {
        replica.status =
            replica_stats(collection, shard.shard_id, replica, cores).map(replica_status);
    }
    let answered = || shard.replicas.iter().filter_map(|r| r.status.as_ref());
    // An old leader cut off from its group may still believe it leads: the one of the
    // highest term is the leader.
    let leader = answered()
        .filter(|s| s.role() == ReplicaRole::Leader)
        .max_by_key(|s| s.term)
        .copied();
    let counted = leader
        .or_else(|| answered().max_by_key(|s| s.applied_lsn).copied())
        .map(|s| s.points);
    for replica in &mut shard.replicas {
        if let (Some(status), Some(leader)) = (replica.status.as_mut(), leader) {
            status.lag = Some(leader.applied_lsn.saturating_sub(status.applied_lsn));
        }
    }
    if let Some(points) = counted {
        shard.point_count = points;
    }
}

/// What the core of `replica` says of it, matched by collection, shard and placement
/// epoch.
fn replica_stats<'a>(
    collection: &str,
    shard_id: u32,
    replica: &ReplicaInfo,
    cores: &'a HashMap<String, CoreStats>,
) -> Option<&'a ShardStats> {
    cores
        .get(&replica.address)?
        .shards
        .iter()
        .find(|s| s.collection == collection && s.shard_id == shard_id && s.epoch == replica.epoch)
}

/// Each payload index of the collection's spec, as its replicas serve it: ready once
/// every replica of every shard has built it (a replica that did not answer counts as
/// not ready).
fn payload_index_status(
    collection: &str,
    info: &CollectionInfo,
    cores: &HashMap<String, CoreStats>,
) -> Vec<PayloadIndexStatus> {
    let declared = info.spec.as_ref().map_or(&[][..], |s| &s.payload_indexes);
    let replicas: Vec<Option<&ShardStats>> = info
        .shards
        .iter()
        .flat_map(|shard| {
            shard
                .replicas
                .iter()
                .map(|r| replica_stats(collection, shard.shard_id, r, cores))
        })
        .collect();
    let total = u32::try_from(replicas.len()).unwrap_or(u32::MAX);
    declared
        .iter()
        .map(|index| {
            let ready = replicas
                .iter()
                .flatten()
                .filter(|s| s.payload_indexes_ready.contains(&index.field))
                .count();
            let ready = u32::try_from(ready).unwrap_or(u32::MAX);
            PayloadIndexStatus {
                field: index.field.clone(),
                ready: ready == total,
                replicas_ready: ready,
                replicas_total: total,
            }
        })
        .collect()
}

/// A replica's status from its core's statistics of the shard.
fn replica_status(shard: &ShardStats) -> ReplicaStatus {
    let mut status = ReplicaStatus {
        points: shard.points,
        indexed_points: shard.indexed_points,
        ..ReplicaStatus::default()
    };
    match &shard.replica {
        // A shard of one copy: it takes the writes, and applies each once durable.
        None => {
            status.set_role(ReplicaRole::Leader);
            status.applied_lsn = shard.last_lsn;
        }
        Some(raft) => {
            status.set_role(if raft.leader {
                ReplicaRole::Leader
            } else if raft.leader_id != 0 {
                ReplicaRole::Follower
            } else {
                ReplicaRole::NoLeader
            });
            status.leader_id = raft.leader_id;
            status.term = raft.term;
            status.applied_lsn = raft.applied_lsn;
        }
    }
    status
}

/// `host:port`, with brackets around an IPv6 host.
fn endpoint(host: &str, port: u32) -> String {
    if host.contains(':') && !host.starts_with('[') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_bracket_ipv6_hosts() {
        assert_eq!(endpoint("127.0.0.1", 7400), "127.0.0.1:7400");
        assert_eq!(endpoint("::1", 7400), "[::1]:7400");
        assert_eq!(endpoint("[::1]", 7400), "[::1]:7400");
    }

    fn core(address: &str, shards: Vec<ShardStats>) -> (String, CoreStats) {
        let stats = CoreStats {
            address: address.into(),
            shards,
            ..CoreStats::default()
        };
        (address.into(), stats)
    }

    fn held(epoch: u64, points: u64, raft: Option<(u64, u64, u64, u64)>) -> ShardStats {
        ShardStats {
            collection: "c".into(),
            shard_id: 0,
            epoch,
            points,
            indexed_points: points / 2,
            last_lsn: 7,
            replica: raft.map(|(id, leader_id, term, applied_lsn)| {
                vectron_proto::v1::ReplicaStats {
                    replica_id: id,
                    leader: id == leader_id,
                    leader_id,
                    term,
                    applied_lsn,
                    voters: vec![1, 2, 3, 4],
                }
            }),
            ..ShardStats::default()
        }
    }

    fn shard(addresses: &[&str]) -> ShardInfo {
        ShardInfo {
            replicas: addresses
                .iter()
                .map(|a| ReplicaInfo {
                    address: (*a).into(),
                    epoch: 5,
                    ..Default::default()
                })
                .collect(),
            point_count: 999,
            ..ShardInfo::default()
        }
    }

    #[test]
    fn replicas_report_their_role_and_lag_behind_the_leader_of_the_highest_term() {
        let cores: HashMap<String, CoreStats> = [
            // An old leader cut off from its group, still believing it leads.
            core("a:1", vec![held(5, 40, Some((1, 1, 2, 80)))]),
            core("a:2", vec![held(5, 50, Some((2, 2, 3, 100)))]),
            core("a:3", vec![held(5, 48, Some((3, 2, 3, 90)))]),
            // Between elections; and another collection's shard on the same core.
            core(
                "a:4",
                vec![held(5, 45, Some((4, 0, 3, 95))), {
                    let mut other = held(5, 1, None);
                    other.collection = "d".into();
                    other
                }],
            ),
            // A core serving an older placement of the shard.
            core("a:5", vec![held(4, 10, Some((5, 2, 3, 100)))]),
        ]
        .into_iter()
        .collect();
        let mut info = shard(&["a:1", "a:2", "a:3", "a:4", "a:5", "a:6"]);
        fill_shard_status("c", &mut info, &cores);
        let got: Vec<_> = info
            .replicas
            .iter()
            .map(|r| {
                r.status
                    .as_ref()
                    .map(|s| (s.role(), s.leader_id, s.lag, s.points))
            })
            .collect();
        assert_eq!(
            got,
            [
                Some((ReplicaRole::Leader, 1, Some(20), 40)),
                Some((ReplicaRole::Leader, 2, Some(0), 50)),
                Some((ReplicaRole::Follower, 2, Some(10), 48)),
                Some((ReplicaRole::NoLeader, 0, Some(5), 45)),
                None,
                None,
            ]
        );
        assert_eq!(info.point_count, 50, "the leader's count");
    }

    #[test]
    fn without_a_leader_the_most_advanced_replica_counts_and_no_lag_is_given() {
        let cores: HashMap<String, CoreStats> = [
            core("a:1", vec![held(5, 40, Some((1, 0, 3, 80)))]),
            core("a:2", vec![held(5, 44, Some((2, 0, 3, 85)))]),
        ]
        .into_iter()
        .collect();
        let mut info = shard(&["a:1", "a:2", "a:3"]);
        fill_shard_status("c", &mut info, &cores);
        assert_eq!(info.point_count, 44);
        assert!(
            info.replicas
                .iter()
                .flat_map(|r| &r.status)
                .all(|s| s.lag.is_none() && s.role() == ReplicaRole::NoLeader)
        );

        // Nobody answered: the control plane's count stands.
        let mut info = shard(&["a:3"]);
        fill_shard_status("c", &mut info, &HashMap::new());
        assert_eq!(info.point_count, 999);
    }

    #[test]
    fn a_shard_of_one_copy_is_its_own_leader() {
        let cores: HashMap<String, CoreStats> =
            [core("a:1", vec![held(5, 12, None)])].into_iter().collect();
        let mut info = shard(&["a:1"]);
        fill_shard_status("c", &mut info, &cores);
        let status = info.replicas[0].status.unwrap();
        assert_eq!(status.role(), ReplicaRole::Leader);
        assert_eq!(
            (status.applied_lsn, status.lag, status.points),
            (7, Some(0), 12)
        );
        assert_eq!(status.indexed_points, 6);
        assert_eq!(info.point_count, 12);
    }
}
