//! The routing table: which core serves each shard of each collection, at which epoch.
//!
//! The gateway holds the newest table it has seen as one immutable snapshot, replaced
//! whole. A background task follows the control plane's `WatchRouting` stream; a call
//! that meets stale routing (a core answering with another epoch, or saying it does not
//! hold the shard) asks the control plane for the table at once and retries once.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use futures_util::FutureExt as _;
use futures_util::future::{BoxFuture, Shared};

use tokio::sync::watch;
use vectron_auth::{Plan, Principal, SecretHash, UserRecord};
use vectron_control::{ControlClient, ShardLayout};
use vectron_proto::control::v1::RoutingTable;
use vectron_proto::core::v1::ShardRef;
use vectron_proto::keys::{KeyRuleError, key_record, plan_record, user_record};
use vectron_proto::v1::{CollectionInfo, CollectionSpec, ReplicaState};

use crate::error::GatewayError;

/// One replica of a shard, as the gateway routes to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Replica {
    pub(crate) worker_id: String,
    pub(crate) core: u32,
    pub(crate) address: String,
    pub(crate) epoch: u64,
    pub(crate) state: ReplicaState,
}

impl Replica {
    /// Whether calls may go to it: active, at a known address.
    pub(crate) fn serves(&self) -> bool {
        self.state == ReplicaState::Active && !self.address.is_empty()
    }
}

/// One shard and its replicas.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ShardRoute {
    pub(crate) shard_id: u32,
    pub(crate) replicas: Vec<Replica>,
}

impl ShardRoute {
    /// The replica to send a call to: the first one that serves.
    pub(crate) fn serving(&self) -> Option<&Replica> {
        self.replicas.iter().find(|r| r.serves())
    }

    /// Why no replica serves, for an error message.
    pub(crate) fn why_unavailable(&self) -> String {
        if self.replicas.is_empty() {
            return "it has no replica".into();
        }
        self.replicas
            .iter()
            .map(|r| {
                let state = match r.state {
                    ReplicaState::Opening => "opening",
                    ReplicaState::Unavailable => "worker down",
                    ReplicaState::Active => "active",
                    ReplicaState::Unspecified => "unknown",
                };
                format!("replica on {}/{} is {state}", r.worker_id, r.core)
            })
            .collect::<Vec<_>>()
            .join("; ")
    }
}

/// Everything the gateway needs to route a collection's calls.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct CollectionRoute {
    pub(crate) spec: CollectionSpec,
    /// Who created it (empty: created with authentication off).
    pub(crate) owner: String,
    pub(crate) layout: ShardLayout,
    /// Indexed by shard id.
    pub(crate) shards: Vec<ShardRoute>,
}

impl CollectionRoute {
    fn from_info(info: &CollectionInfo) -> Option<Self> {
        let spec = info.spec.clone()?;
        let count = spec
            .shard_count
            .unwrap_or(u32::try_from(info.shards.len()).ok()?);
        let layout = ShardLayout::with_count(count)?;
        let mut shards: Vec<ShardRoute> = info
            .shards
            .iter()
            .map(|s| ShardRoute {
                shard_id: s.shard_id,
                replicas: s
                    .replicas
                    .iter()
                    .map(|r| Replica {
                        worker_id: r.worker_id.clone(),
                        core: r.core,
                        address: r.address.clone(),
                        epoch: r.epoch,
                        state: r.state(),
                    })
                    .collect(),
            })
            .collect();
        shards.sort_by_key(|s| s.shard_id);
        // The layout decides where points go; a table that disagrees with it is unusable.
        let complete = shards.len() == count as usize
            && shards
                .iter()
                .zip(0..)
                .all(|(shard, id): (&ShardRoute, u32)| shard.shard_id == id);
        complete.then_some(Self {
            spec,
            owner: info.owner.clone(),
            layout,
            shards,
        })
    }

    /// The collection's name.
    pub(crate) fn name(&self) -> &str {
        &self.spec.name
    }

    /// The replica serving `shard_id`, and the reference a call to it carries.
    pub(crate) fn target(&self, shard_id: u32) -> Result<(ShardRef, &Replica), GatewayError> {
        let shard = self.shards.get(shard_id as usize).ok_or_else(|| {
            GatewayError::Internal(format!(
                "shard {shard_id} is outside collection {:?}",
                self.name()
            ))
        })?;
        let replica = shard
            .serving()
            .ok_or_else(|| GatewayError::ShardUnavailable {
                collection: self.name().to_owned(),
                shard_id,
                reason: shard.why_unavailable(),
            })?;
        let shard_ref = ShardRef {
            collection: self.name().to_owned(),
            shard_id,
            epoch: replica.epoch,
        };
        Ok((shard_ref, replica))
    }

    /// The replicas that serve `shard_id`, each with the reference a call to it carries:
    /// the one at `leader` first (where the shard's leader was last seen), then the
    /// others in table order.
    pub(crate) fn targets(
        &self,
        shard_id: u32,
        leader: Option<&str>,
    ) -> Result<Vec<(ShardRef, &Replica)>, GatewayError> {
        let (_, first) = self.target(shard_id)?;
        let shard = &self.shards[shard_id as usize];
        let mut serving: Vec<&Replica> = shard.replicas.iter().filter(|r| r.serves()).collect();
        debug_assert!(serving.first() == Some(&first));
        if let Some(at) = leader.and_then(|l| serving.iter().position(|r| r.address == l)) {
            let led = serving.remove(at);
            serving.insert(0, led);
        }
        Ok(serving
            .into_iter()
            .map(|replica| {
                let shard_ref = ShardRef {
                    collection: self.name().to_owned(),
                    shard_id,
                    epoch: replica.epoch,
                };
                (shard_ref, replica)
            })
            .collect())
    }

    /// Whether every shard has a serving replica.
    pub(crate) fn is_serving(&self) -> bool {
        self.shards.iter().all(|s| s.serving().is_some())
    }
}

/// One routing table, as the gateway uses it.
#[derive(Debug, Default)]
pub(crate) struct Routing {
    pub(crate) version: u64,
    pub(crate) collections: HashMap<String, Arc<CollectionRoute>>,
    /// API keys by id: the hash each secret must match, and the caller it makes.
    pub(crate) keys: HashMap<String, StoredKey>,
    /// Users by name: the hash each password must match, and what they may do.
    pub(crate) users: HashMap<String, Arc<UserRecord>>,
    /// Plans by name.
    pub(crate) plans: HashMap<String, Plan>,
}

/// An API key as the gateway checks it: decoded once per routing table, not per call.
#[derive(Debug)]
pub(crate) struct StoredKey {
    pub(crate) hash: SecretHash,
    pub(crate) who: Arc<Principal>,
}

impl Routing {
    fn from_table(table: &RoutingTable) -> Self {
        let mut collections = HashMap::new();
        for info in &table.collections {
            match CollectionRoute::from_info(info) {
                Some(route) => {
                    collections.insert(route.spec.name.clone(), Arc::new(route));
                }
                None => tracing::warn!(
                    collection = info.spec.as_ref().map_or("", |s| s.name.as_str()),
                    "routing lists a collection whose shards do not match its shard count; skipped"
                ),
            }
        }
        let mut plans = HashMap::new();
        for message in &table.plans {
            match plan_record(message) {
                Ok(plan) => {
                    plans.insert(plan.name.clone(), plan);
                }
                Err(e) => tracing::warn!(error = %e, "routing carries a damaged plan; skipped"),
            }
        }
        let mut keys = HashMap::new();
        for entry in &table.api_keys {
            let decoded = key_record(entry).and_then(|record| {
                let hash = record
                    .hash()
                    .map_err(|e| KeyRuleError::Damaged(e.to_string()))?;
                Ok((hash, record))
            });
            match decoded {
                Ok((hash, record)) => {
                    // The key's quotas, from its plan as this same table holds it.
                    let plan = record.plan.as_ref().and_then(|name| plans.get(name));
                    let who = Arc::new(record.principal().with_quota(plan));
                    keys.insert(record.id, StoredKey { hash, who });
                }
                Err(e) => tracing::warn!(error = %e, "routing carries a damaged API key; skipped"),
            }
        }
        let mut users = HashMap::new();
        for entry in &table.users {
            match user_record(entry) {
                Ok(record) => {
                    users.insert(record.name.clone(), Arc::new(record));
                }
                Err(e) => tracing::warn!(error = %e, "routing carries a damaged user; skipped"),
            }
        }
        Self {
            version: table.version,
            collections,
            keys,
            users,
            plans,
        }
    }

    /// Every core address the table names.
    pub(crate) fn addresses(&self) -> HashSet<String> {
        self.collections
            .values()
            .flat_map(|c| c.shards.iter())
            .flat_map(|s| s.replicas.iter())
            .map(|r| r.address.clone())
            .collect()
    }
}

/// The names of collections whose route differs between two tables (created, dropped,
/// or placed anew).
pub(crate) fn changed_collections(old: &Routing, new: &Routing) -> Vec<String> {
    let mut changed: Vec<String> = new
        .collections
        .iter()
        .filter(|(name, route)| old.collections.get(*name) != Some(route))
        .map(|(name, _)| name.clone())
        .collect();
    changed.extend(
        old.collections
            .keys()
            .filter(|name| !new.collections.contains_key(*name))
            .cloned(),
    );
    changed
}

/// The gateway's copy of the routing table and the means to keep it current.
#[derive(Debug)]
pub(crate) struct RoutingCache {
    control: ControlClient,
    current: watch::Sender<Arc<Routing>>,
    loaded: watch::Sender<bool>,
    /// The fetch of the table in flight, which every refresh arriving meanwhile joins.
    fetching: Mutex<Option<Fetch>>,
}

/// One fetch of the routing table, shared by the refreshes that wait for it: each waits
/// only as long as its own deadline, and the control plane is asked once however many
/// calls met stale routing at the same time.
type Fetch = Shared<BoxFuture<'static, Result<Arc<RoutingTable>, Arc<GatewayError>>>>;

impl RoutingCache {
    pub(crate) fn new(control: ControlClient) -> Self {
        Self {
            control,
            current: watch::Sender::new(Arc::new(Routing::default())),
            loaded: watch::Sender::new(false),
            fetching: Mutex::new(None),
        }
    }

    /// The newest table.
    pub(crate) fn snapshot(&self) -> Arc<Routing> {
        self.current.borrow().clone()
    }

    /// Whether a table has been loaded from the control plane.
    pub(crate) fn is_loaded(&self) -> bool {
        *self.loaded.borrow()
    }

    /// Subscribes to every table installed from now on.
    pub(crate) fn subscribe(&self) -> watch::Receiver<Arc<Routing>> {
        self.current.subscribe()
    }

    /// Installs `table` if it is newer than the one held; returns the names of the
    /// collections whose route changed.
    pub(crate) fn install(&self, table: &RoutingTable) -> Vec<String> {
        let new = Routing::from_table(table);
        let mut changed = Vec::new();
        self.current.send_if_modified(|held| {
            if new.version <= held.version && self.is_loaded() {
                return false;
            }
            changed = changed_collections(held, &new);
            *held = Arc::new(new);
            true
        });
        self.loaded.send_replace(true);
        changed
    }

    /// The route of `name`. An unknown name is looked up once more at the control plane,
    /// so a collection created through another gateway is found before the watch
    /// delivers it.
    pub(crate) async fn collection(
        &self,
        name: &str,
    ) -> Result<Arc<CollectionRoute>, GatewayError> {
        if name.is_empty() {
            return Err(GatewayError::NoCollection);
        }
        let held = self.snapshot();
        if let Some(route) = held.collections.get(name) {
            return Ok(route.clone());
        }
        let fresh = self.refresh(held.version).await?;
        fresh
            .collections
            .get(name)
            .cloned()
            .ok_or_else(|| GatewayError::UnknownCollection {
                name: name.to_owned(),
            })
    }

    /// Fetches the table from the control plane, unless a table newer than `seen` has
    /// arrived meanwhile; concurrent refreshes share one fetch (see [`Fetch`]).
    pub(crate) async fn refresh(&self, seen: u64) -> Result<Arc<Routing>, GatewayError> {
        let held = self.snapshot();
        if held.version > seen && self.is_loaded() {
            return Ok(held);
        }
        let fetch = {
            let mut slot = self.fetching.lock().unwrap_or_else(PoisonError::into_inner);
            match slot.as_ref() {
                Some(in_flight) if in_flight.peek().is_none() => in_flight.clone(),
                _ => {
                    let control = self.control.clone();
                    let fetch = async move {
                        control
                            .routing(None)
                            .await
                            .map(Arc::new)
                            .map_err(|e| Arc::new(GatewayError::Control(e)))
                    }
                    .boxed()
                    .shared();
                    *slot = Some(fetch.clone());
                    fetch
                }
            }
        };
        let table = fetch.await.map_err(GatewayError::Shared)?;
        self.install(&table);
        Ok(self.snapshot())
    }

    /// Waits until `ready` holds for the route of `name` (or the collection is gone),
    /// at most `wait`. Returns whether it held.
    pub(crate) async fn wait_until(
        &self,
        name: &str,
        wait: Duration,
        ready: impl Fn(&CollectionRoute) -> bool,
    ) -> bool {
        let mut updates = self.subscribe();
        let check = |routing: &Routing| routing.collections.get(name).is_some_and(|r| ready(r));
        let waited = tokio::time::timeout(wait, async {
            loop {
                if check(&updates.borrow_and_update()) {
                    return;
                }
                if updates.changed().await.is_err() {
                    std::future::pending::<()>().await;
                }
            }
        })
        .await;
        waited.is_ok()
    }

    /// Follows the control plane's routing stream until the process ends, installing
    /// every table. `on_change` hears which collections changed.
    pub(crate) async fn follow(self: Arc<Self>, on_change: impl Fn(&[String]) + Send) {
        let mut watch = self.control.watch_routing(0);
        loop {
            match watch.next().await {
                Ok(table) => {
                    let changed = self.install(&table);
                    if !changed.is_empty() {
                        on_change(&changed);
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, "routing watch failed; subscribing again");
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use vectron_proto::v1::{Metric, ReplicaInfo, ShardInfo};

    use super::*;

    fn info(name: &str, shards: u32, epoch: u64, state: ReplicaState) -> CollectionInfo {
        let mut spec = CollectionSpec::new(name, 4, Metric::Cosine);
        spec.shard_count = Some(shards);
        let layout = ShardLayout::with_count(shards).unwrap();
        CollectionInfo {
            spec: Some(spec),
            state: 0,
            point_count: 0,
            owner: String::new(),
            tuning: None,
            payload_index_status: Vec::new(),
            shards: (0..shards)
                .map(|i| {
                    let range = layout.range(i).unwrap();
                    ShardInfo {
                        shard_id: i,
                        hash_range_start: range.start,
                        hash_range_end: range.end,
                        replicas: vec![ReplicaInfo {
                            worker_id: "w".into(),
                            core: i,
                            address: format!("127.0.0.1:{}", 7400 + i),
                            epoch,
                            state: state.into(),
                            ..ReplicaInfo::default()
                        }],
                        point_count: 0,
                    }
                })
                .collect(),
        }
    }

    fn table(version: u64, collections: Vec<CollectionInfo>) -> RoutingTable {
        RoutingTable {
            version,
            collections,
            cluster_id: "c".into(),
            api_keys: Vec::new(),
            users: Vec::new(),
            plans: Vec::new(),
        }
    }

    fn cache() -> RoutingCache {
        RoutingCache::new(ControlClient::new(["127.0.0.1:1"]).unwrap())
    }

    #[test]
    fn a_route_targets_the_active_replica_with_its_epoch() {
        let routing = Routing::from_table(&table(3, vec![info("a", 2, 7, ReplicaState::Active)]));
        let route = &routing.collections["a"];
        let (shard_ref, replica) = route.target(1).unwrap();
        assert_eq!(shard_ref.shard_id, 1);
        assert_eq!(shard_ref.epoch, 7);
        assert_eq!(replica.address, "127.0.0.1:7401");
        assert!(route.is_serving());
        assert_eq!(routing.addresses().len(), 2);
    }

    #[test]
    fn a_replicated_shard_is_called_at_its_last_known_leader_first() {
        let mut three = info("r", 1, 5, ReplicaState::Active);
        let replica = |worker: &str, port: u32, state: ReplicaState| ReplicaInfo {
            worker_id: worker.into(),
            core: 0,
            address: format!("127.0.0.1:{port}"),
            epoch: 5,
            state: state.into(),
            ..ReplicaInfo::default()
        };
        three.shards[0].replicas = vec![
            replica("w1", 7401, ReplicaState::Active),
            replica("w2", 7402, ReplicaState::Unavailable),
            replica("w3", 7403, ReplicaState::Active),
        ];
        let routing = Routing::from_table(&table(1, vec![three]));
        let route = &routing.collections["r"];
        let order = |leader: Option<&str>| -> Vec<String> {
            route
                .targets(0, leader)
                .unwrap()
                .iter()
                .map(|(r, replica)| {
                    assert_eq!(r.epoch, 5);
                    replica.address.clone()
                })
                .collect()
        };
        assert_eq!(
            order(None),
            ["127.0.0.1:7401", "127.0.0.1:7403"],
            "serving ones only"
        );
        assert_eq!(
            order(Some("127.0.0.1:7403")),
            ["127.0.0.1:7403", "127.0.0.1:7401"]
        );
        // A leader the table does not show serving is not called.
        assert_eq!(
            order(Some("127.0.0.1:7402")),
            ["127.0.0.1:7401", "127.0.0.1:7403"]
        );
    }

    #[test]
    fn a_shard_without_an_active_replica_is_unavailable_and_says_why() {
        let routing = Routing::from_table(&table(1, vec![info("a", 1, 1, ReplicaState::Opening)]));
        let err = routing.collections["a"].target(0).unwrap_err();
        assert_eq!(err.code(), tonic::Code::Unavailable);
        assert!(err.to_string().contains("opening"), "{err}");
        assert!(!routing.collections["a"].is_serving());
    }

    #[test]
    fn a_table_whose_shards_do_not_match_the_count_is_skipped() {
        let mut broken = info("a", 2, 1, ReplicaState::Active);
        broken.shards.pop();
        let routing = Routing::from_table(&table(1, vec![broken]));
        assert!(routing.collections.is_empty());
    }

    #[test]
    fn only_newer_tables_are_installed_and_changes_are_named() {
        let cache = cache();
        assert!(!cache.is_loaded());
        let changed = cache.install(&table(
            2,
            vec![
                info("a", 1, 1, ReplicaState::Active),
                info("b", 1, 1, ReplicaState::Active),
            ],
        ));
        assert!(cache.is_loaded());
        assert_eq!(changed.len(), 2);
        // An older table is ignored.
        assert!(cache.install(&table(1, vec![])).is_empty());
        assert_eq!(cache.snapshot().collections.len(), 2);
        // A newer one names what moved or went away, not what stayed.
        let mut changed = cache.install(&table(3, vec![info("a", 1, 2, ReplicaState::Active)]));
        changed.sort();
        assert_eq!(changed, vec!["a".to_owned(), "b".to_owned()]);
        assert_eq!(
            cache.snapshot().collections["a"].shards[0].replicas[0].epoch,
            2
        );
    }

    #[tokio::test]
    async fn waiting_for_a_collection_sees_the_table_that_makes_it_ready() {
        let cache = Arc::new(cache());
        cache.install(&table(1, vec![info("a", 1, 1, ReplicaState::Opening)]));
        let later = cache.clone();
        let installer = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(20)).await;
            later.install(&table(2, vec![info("a", 1, 1, ReplicaState::Active)]));
        });
        assert!(
            cache
                .wait_until("a", Duration::from_secs(5), CollectionRoute::is_serving)
                .await
        );
        installer.await.unwrap();
        assert!(
            !cache
                .wait_until("b", Duration::from_millis(10), CollectionRoute::is_serving)
                .await
        );
    }
}
