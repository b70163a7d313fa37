//! Calls to worker cores: one HTTP/2 connection per core address, shared by every call
//! (tonic multiplexes them as streams), with keepalive and message size limits; and the
//! rule every shard call follows: route by the table, and when a core says the routing
//! is stale, refresh the table and try once more.
//!
//! A shard of several replicas is a Raft group: writes go to its leader. The gateway
//! remembers where each shard's leader was last seen (a replica that refuses a write
//! names it in a `vectron-leader` trailer) and calls it first; a replica that is
//! unreachable, or refuses without naming a leader (an election is under way, or it
//! lags), passes the call to the next replica, and when every replica refused the call
//! waits (25 ms, doubling up to 200 ms) and tries again, until its deadline. The
//! control plane is asked only when a replica names a leader at an address the table
//! does not know (its worker restarted on other ports).

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::time::Instant;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Channel, Endpoint};
use tonic::{Code, Request, Response, Status};
use vectron_proto::cluster::PresentKey;
use vectron_proto::core::v1::core_service_client::CoreServiceClient;
use vectron_proto::core::v1::{self as core, ShardRef};
use vectron_proto::rules::{EPOCH_TRAILER, LEADER_TRAILER};

use crate::config::CoreChannelConfig;
use crate::error::GatewayError;
use crate::routing::{CollectionRoute, RoutingCache};

/// The first wait before a shard whose every replica refused is tried again, and the
/// longest.
const FAILOVER_BACKOFF: (Duration, Duration) =
    (Duration::from_millis(25), Duration::from_millis(200));

/// A client of one core, presenting the cluster key.
pub(crate) type CoreClient = CoreServiceClient<InterceptedService<Channel, PresentKey>>;

/// The connections to cores.
#[derive(Debug)]
pub(crate) struct CoreChannels {
    config: CoreChannelConfig,
    max_message_bytes: usize,
    key: PresentKey,
    channels: Mutex<HashMap<String, Channel>>,
    /// Where each replicated shard's leader was last seen: (collection, shard) → core
    /// address.
    leaders: Mutex<HashMap<(String, u32), String>>,
    /// The highest log sequence number of a write acknowledged through this gateway,
    /// per replicated shard: (collection, shard) → (the shard's placement, the LSN).
    acknowledged: Mutex<HashMap<(String, u32), (u64, u64)>>,
}

impl CoreChannels {
    pub(crate) fn new(
        config: CoreChannelConfig,
        max_message_bytes: usize,
        key: PresentKey,
    ) -> Self {
        Self {
            config,
            max_message_bytes,
            key,
            channels: Mutex::new(HashMap::new()),
            leaders: Mutex::new(HashMap::new()),
            acknowledged: Mutex::new(HashMap::new()),
        }
    }

    /// Records that a write to `shard_id` was acknowledged at `lsn` (0: not waited for,
    /// so not promised visible). Only replicated shards keep a record: a shard of one
    /// copy reads from the state it acknowledged from.
    pub(crate) fn acknowledged(&self, route: &CollectionRoute, shard_id: u32, lsn: u64) {
        let Some(placement) = replicated_placement(route, shard_id) else {
            return;
        };
        if lsn == 0 {
            return;
        }
        let mut acknowledged = self
            .acknowledged
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let entry = acknowledged
            .entry((route.name().to_owned(), shard_id))
            .or_insert((placement, 0));
        if entry.0 != placement {
            *entry = (placement, 0);
        }
        entry.1 = entry.1.max(lsn);
    }

    /// How fresh a read of `shard_id` must be: linearizable, or from a replica that has
    /// applied every write acknowledged through this gateway (read-your-writes and
    /// monotonic reads). `None` for an eventual read of a shard of one copy, or of a
    /// replicated shard with no write acknowledged here since its placement last
    /// changed.
    pub(crate) fn read_consistency(
        &self,
        route: &CollectionRoute,
        shard_id: u32,
        linearizable: bool,
    ) -> Option<core::ReadConsistency> {
        if linearizable {
            return Some(core::ReadConsistency {
                linearizable: true,
                min_lsn: 0,
            });
        }
        let placement = replicated_placement(route, shard_id)?;
        let acknowledged = self
            .acknowledged
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let &(at, min_lsn) = acknowledged.get(&(route.name().to_owned(), shard_id))?;
        (at == placement).then_some(core::ReadConsistency {
            linearizable: false,
            min_lsn,
        })
    }

    /// The core address where `shard` of `collection` was last seen led.
    pub(crate) fn leader(&self, collection: &str, shard: u32) -> Option<String> {
        self.leaders
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&(collection.to_owned(), shard))
            .cloned()
    }

    /// Remembers (or with `None`, forgets) where `shard` of `collection` is led.
    fn set_leader(&self, collection: &str, shard: u32, address: Option<String>) {
        let mut leaders = self.leaders.lock().unwrap_or_else(PoisonError::into_inner);
        let key = (collection.to_owned(), shard);
        match address {
            Some(address) => leaders.insert(key, address),
            None => leaders.remove(&key),
        };
    }

    /// A client of the core at `address`, over the shared connection (opened lazily,
    /// reopened after a failure).
    pub(crate) fn client(&self, address: &str) -> Result<CoreClient, Status> {
        let channel = {
            let mut channels = self.channels.lock().unwrap_or_else(PoisonError::into_inner);
            match channels.get(address) {
                Some(channel) => channel.clone(),
                None => {
                    let channel = self.endpoint(address)?.connect_lazy();
                    channels.insert(address.to_owned(), channel.clone());
                    channel
                }
            }
        };
        // Bodies larger than a core accepts are split before they are sent; a core keeps
        // its answers within the rulebook's answer limit, far below this one.
        Ok(
            CoreServiceClient::with_interceptor(channel, self.key.clone())
                .max_decoding_message_size(self.max_message_bytes)
                .max_encoding_message_size(self.max_message_bytes),
        )
    }

    /// Whether the core at `address` answers a call within `within`, over a connection
    /// of its own: the shared one may have no flow-control window left while the
    /// core's streams wait on its backpressure, which is no sign of a stalled core.
    pub(crate) async fn answers(&self, address: &str, within: Duration) -> bool {
        let Ok(endpoint) = self.endpoint(address) else {
            return false;
        };
        let probe = async {
            let channel = endpoint.connect().await.ok()?;
            CoreServiceClient::with_interceptor(channel, self.key.clone())
                .stats(vectron_proto::core::v1::StatsRequest {})
                .await
                .ok()
        };
        matches!(tokio::time::timeout(within, probe).await, Ok(Some(_)))
    }

    fn endpoint(&self, address: &str) -> Result<Endpoint, Status> {
        let endpoint = Endpoint::from_shared(format!("http://{address}"))
            .map_err(|e| Status::internal(format!("core address {address:?}: {e}")))?;
        Ok(endpoint
            .connect_timeout(self.config.connect_timeout)
            .tcp_nodelay(true)
            .http2_keep_alive_interval(self.config.keepalive_interval)
            .keep_alive_timeout(self.config.keepalive_timeout)
            .keep_alive_while_idle(true)
            .initial_stream_window_size(Some(1 << 20))
            .initial_connection_window_size(Some(8 << 20)))
    }

    /// Forgets connections to addresses the routing table no longer names.
    pub(crate) fn retain(&self, live: &HashSet<String>) {
        self.channels
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .retain(|address, _| live.contains(address));
    }

    /// Connections held.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.channels
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }
}

/// For a replicated shard, what identifies its placement: the highest epoch of its
/// replicas (a collection created again under a name, or a shard placed anew, has higher
/// ones, and its log starts over). `None` for a shard of one copy.
fn replicated_placement(route: &CollectionRoute, shard_id: u32) -> Option<u64> {
    let shard = route.shards.get(shard_id as usize)?;
    (shard.replicas.len() > 1).then(|| shard.replicas.iter().map(|r| r.epoch).max().unwrap_or(0))
}

/// Whether a core's answer says the caller's routing is stale: another epoch, or a
/// core that does not hold the shard.
fn routing_is_stale(status: &Status) -> bool {
    match status.code() {
        Code::FailedPrecondition => status.metadata().contains_key(EPOCH_TRAILER),
        Code::NotFound => true,
        _ => false,
    }
}

/// The core address a replica's `vectron-leader` trailer names (`<replica id>@<address>`).
fn leader_named(status: &Status) -> Option<String> {
    let value = status.metadata().get(LEADER_TRAILER)?.to_str().ok()?;
    let (_, address) = value.split_once('@')?;
    (!address.is_empty()).then(|| address.to_owned())
}

/// Whether a replica's refusal passes a call on to the next replica: it is not the
/// leader, lags, or cannot be reached, or its connection broke during the call (tonic
/// says `UNKNOWN` for a connection reset mid-call; a core itself never answers it). A
/// write cut off that way may or may not have taken effect, and is sent again: writes
/// by id are idempotent.
fn passes_on(status: &Status) -> bool {
    matches!(status.code(), Code::Unavailable | Code::Unknown)
}

/// How the replicas of a shard answered a call.
enum Tried<T> {
    Done(T),
    /// The last refusal, from the replica at `address` routed at `epoch`.
    Refused {
        status: Status,
        address: String,
        epoch: u64,
    },
}

/// Runs `call` against the replicas of `shard_id` in the order
/// [`CollectionRoute::targets`] gives (the last leader seen first), passing it on while
/// a replica of a replicated shard refuses as `UNAVAILABLE` (following a leader the
/// refusal names) and, once every replica refused, waiting and going round again until
/// `deadline`. Any other answer ends it.
///
/// A refusal naming a leader at an address `route` does not know (its worker restarted
/// on other ports) means the table is stale: it is fetched again, into `route` and
/// `version`, before the next round.
async fn try_replicas<T, F, Fut>(
    channels: &CoreChannels,
    routing: &RoutingCache,
    route: &mut Arc<CollectionRoute>,
    version: &mut u64,
    shard_id: u32,
    deadline: Deadline,
    call: &F,
) -> Result<Tried<T>, GatewayError>
where
    F: Fn(CoreClient, ShardRef) -> Fut,
    Fut: Future<Output = Result<Response<T>, Status>>,
{
    let name = route.name().to_owned();
    let mut backoff = FAILOVER_BACKOFF.0;
    loop {
        let hint = channels.leader(&name, shard_id);
        let targets = route.targets(shard_id, hint.as_deref())?;
        // Counted over every replica, serving or not: a shard whose other replicas are
        // still opening (just created) or down is still a group, waiting for a leader.
        let replicated = route.shards[shard_id as usize].replicas.len() > 1;
        let mut order: std::collections::VecDeque<usize> = (0..targets.len()).collect();
        let mut last = None;
        let mut unknown_leader = None;
        while let Some(i) = order.pop_front() {
            let (shard_ref, replica) = &targets[i];
            let address = replica.address.clone();
            let client = channels
                .client(&address)
                .map_err(|status| GatewayError::core(&name, shard_id, &address, status))?;
            let status =
                match tokio::time::timeout_at(deadline.at, call(client, shard_ref.clone())).await {
                    Ok(Ok(response)) => return Ok(Tried::Done(response.into_inner())),
                    Ok(Err(status)) => status,
                    Err(_) => return Err(deadline.exceeded()),
                };
            if !replicated || !passes_on(&status) {
                return Ok(Tried::Refused {
                    status,
                    address,
                    epoch: shard_ref.epoch,
                });
            }
            match leader_named(&status) {
                Some(leader) => {
                    if let Some(at) = order.iter().position(|&j| targets[j].1.address == leader) {
                        let j = order.remove(at).expect("found above");
                        order.push_front(j);
                    } else if !targets.iter().any(|(_, r)| r.address == leader) {
                        unknown_leader = Some(leader.clone());
                    }
                    channels.set_leader(&name, shard_id, Some(leader));
                }
                None if hint.as_deref() == Some(address.as_str()) => {
                    channels.set_leader(&name, shard_id, None);
                }
                None => {}
            }
            last = Some(Tried::Refused {
                status,
                address,
                epoch: shard_ref.epoch,
            });
        }
        let last = last.expect("a shard has a replica to try");
        // Every replica refused: an election is under way, or the replicas that could
        // lead are down. Go round again while the deadline allows.
        if !replicated || Instant::now() + backoff >= deadline.at {
            return Ok(last);
        }
        if let Some(leader) = unknown_leader {
            let fresh = routing.refresh(*version).await?;
            *version = fresh.version;
            *route = fresh
                .collections
                .get(&name)
                .cloned()
                .ok_or_else(|| GatewayError::UnknownCollection { name: name.clone() })?;
            let known = route
                .shards
                .get(shard_id as usize)
                .is_some_and(|shard| shard.replicas.iter().any(|r| r.address == leader));
            if known {
                // Straight to the leader the fresh table names.
                continue;
            }
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(FAILOVER_BACKOFF.1);
    }
}

/// Runs `call` against the core serving `shard_id`, within `deadline`: for a replicated
/// shard, its leader first and the other replicas after it ([`try_replicas`]).
///
/// When the core answers that the routing is stale, or cannot be reached, the table is
/// fetched from the control plane and the call made once more, to the replica the fresh
/// table names (for an unreachable core, only when that replica differs: a worker that
/// restarted on other ports). `call` gets a client and the shard reference, and must be
/// safe to repeat: every core write is idempotent.
pub(crate) async fn call_shard<T, F, Fut>(
    routing: &RoutingCache,
    channels: &CoreChannels,
    route: &Arc<CollectionRoute>,
    shard_id: u32,
    deadline: Deadline,
    call: F,
) -> Result<T, GatewayError>
where
    F: Fn(CoreClient, ShardRef) -> Fut,
    Fut: Future<Output = Result<Response<T>, Status>>,
{
    let mut route = route.clone();
    let mut version = routing.snapshot().version;
    let mut retried = false;
    loop {
        let (status, address, epoch) = match try_replicas(
            channels,
            routing,
            &mut route,
            &mut version,
            shard_id,
            deadline,
            &call,
        )
        .await?
        {
            Tried::Done(answer) => return Ok(answer),
            Tried::Refused {
                status,
                address,
                epoch,
            } => (status, address, epoch),
        };
        let core = |status: Status| GatewayError::core(route.name(), shard_id, &address, status);
        let stale = routing_is_stale(&status);
        if retried || !(stale || status.code() == Code::Unavailable) {
            return Err(core(status));
        }
        retried = true;
        let fresh = routing.refresh(version).await?;
        version = fresh.version;
        let Some(next) = fresh.collections.get(route.name()).cloned() else {
            return Err(GatewayError::UnknownCollection {
                name: route.name().to_owned(),
            });
        };
        if !stale {
            let moved = next
                .target(shard_id)
                .is_ok_and(|(r, replica)| r.epoch != epoch || replica.address != address);
            if !moved {
                return Err(core(status));
            }
        }
        route = next;
    }
}

/// The longest a request may run, whatever deadline it asks for: gRPC allows deadlines
/// of eleven thousand years, and an instant that far out overflows.
const LONGEST_DEADLINE: Duration = Duration::from_secs(24 * 3600);

/// When a request must be answered by, and how long it had.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Deadline {
    /// The instant.
    pub(crate) at: Instant,
    /// The time the request was given.
    pub(crate) budget: Duration,
}

impl Deadline {
    /// `budget` from now, at most [`LONGEST_DEADLINE`].
    pub(crate) fn after(budget: Duration) -> Self {
        let budget = budget.min(LONGEST_DEADLINE);
        Self {
            at: Instant::now() + budget,
            budget,
        }
    }

    /// The error of a request past this deadline.
    pub(crate) fn exceeded(&self) -> GatewayError {
        GatewayError::DeadlineExceeded { after: self.budget }
    }

    /// A request carrying the time left as its gRPC timeout, so the core gives up when
    /// the caller does.
    pub(crate) fn request<T>(&self, message: T) -> Request<T> {
        let mut request = Request::new(message);
        request.set_timeout(self.at.saturating_duration_since(Instant::now()));
        request
    }

    /// Runs `work` within this deadline.
    pub(crate) async fn run<T>(
        &self,
        work: impl Future<Output = Result<T, GatewayError>>,
    ) -> Result<T, GatewayError> {
        tokio::time::timeout_at(self.at, work)
            .await
            .unwrap_or_else(|_| Err(self.exceeded()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refusal_names_the_leader_by_its_core_address() {
        let named = |value: &str| {
            let mut status = Status::unavailable("not the leader");
            status
                .metadata_mut()
                .insert(LEADER_TRAILER, value.parse().unwrap());
            leader_named(&status)
        };
        assert_eq!(named("7@127.0.0.1:7401").as_deref(), Some("127.0.0.1:7401"));
        assert_eq!(named("7@"), None);
        assert_eq!(named("garbage"), None);
        assert_eq!(leader_named(&Status::unavailable("no leader")), None);
        assert!(passes_on(&Status::unavailable("")));
        assert!(passes_on(&Status::unknown("transport error")));
        assert!(!passes_on(&Status::invalid_argument("bad vector")));
        assert!(!passes_on(&Status::not_found("no such shard")));
    }

    #[test]
    fn stale_routing_is_an_epoch_trailer_or_an_unknown_shard() {
        let mut wrong_epoch = Status::failed_precondition("epoch 3");
        wrong_epoch
            .metadata_mut()
            .insert(EPOCH_TRAILER, "3".parse().unwrap());
        assert!(routing_is_stale(&wrong_epoch));
        assert!(routing_is_stale(&Status::not_found("not on this core")));
        assert!(!routing_is_stale(&Status::failed_precondition(
            "outside range"
        )));
        assert!(!routing_is_stale(&Status::invalid_argument("bad")));
    }

    /// Pins a `grpc-timeout` of 99999999H (the largest gRPC allows) panicking the call:
    /// an instant that far ahead overflowed.
    #[tokio::test]
    async fn any_deadline_a_client_asks_for_is_usable() {
        for budget in [Duration::from_secs(99_999_999 * 3600), Duration::MAX] {
            let deadline = Deadline::after(budget);
            assert_eq!(deadline.budget, LONGEST_DEADLINE);
            assert_eq!(deadline.run(async { Ok(7) }).await.unwrap(), 7);
            let _ = deadline.request(());
        }
    }

    #[tokio::test]
    async fn connections_are_shared_per_address_and_pruned() {
        let channels =
            CoreChannels::new(CoreChannelConfig::default(), 1 << 20, PresentKey::default());
        channels.client("127.0.0.1:7400").unwrap();
        channels.client("127.0.0.1:7400").unwrap();
        channels.client("127.0.0.1:7401").unwrap();
        assert_eq!(channels.len(), 2);
        channels.retain(&HashSet::from(["127.0.0.1:7401".to_owned()]));
        assert_eq!(channels.len(), 1);
    }

    /// A route of one shard with `replicas` copies, all at `epoch`.
    fn route(replicas: usize, epoch: u64) -> CollectionRoute {
        use crate::routing::{Replica, ShardRoute};
        use vectron_proto::v1::{CollectionSpec, Metric, ReplicaState};
        CollectionRoute {
            spec: CollectionSpec::new("r", 4, Metric::Cosine),
            owner: String::new(),
            layout: vectron_control::ShardLayout::with_count(1).unwrap(),
            shards: vec![ShardRoute {
                shard_id: 0,
                replicas: (0..replicas)
                    .map(|i| Replica {
                        worker_id: format!("w{i}"),
                        core: 0,
                        address: format!("127.0.0.1:{}", 7400 + i),
                        epoch,
                        state: ReplicaState::Active,
                    })
                    .collect(),
            }],
        }
    }

    #[test]
    fn eventual_reads_of_a_replicated_shard_must_see_the_writes_acknowledged_here() {
        let channels =
            CoreChannels::new(CoreChannelConfig::default(), 1 << 20, PresentKey::default());
        let floor = |route: &CollectionRoute| {
            channels
                .read_consistency(route, 0, false)
                .map(|c| (c.linearizable, c.min_lsn))
        };
        let three = route(3, 5);
        assert_eq!(floor(&three), None, "nothing acknowledged yet");
        channels.acknowledged(&three, 0, 40);
        channels.acknowledged(&three, 0, 0);
        channels.acknowledged(&three, 0, 12);
        assert_eq!(floor(&three), Some((false, 40)), "the highest acknowledged");
        let linearizable = channels.read_consistency(&three, 0, true).unwrap();
        assert!(linearizable.linearizable);

        // The collection created again (new epochs, a log that starts over): the old
        // floor would hold its reads back for ever, so it is dropped.
        let again = route(3, 9);
        assert_eq!(floor(&again), None);
        channels.acknowledged(&again, 0, 3);
        assert_eq!(floor(&again), Some((false, 3)));
        assert_eq!(floor(&three), None);

        // A shard of one copy keeps no floor.
        let one = route(1, 9);
        channels.acknowledged(&one, 0, 50);
        assert_eq!(floor(&one), None);
    }
}
