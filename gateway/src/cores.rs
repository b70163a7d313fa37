//! Calls to worker cores: one HTTP/2 connection per core address, shared by every call
//! (tonic multiplexes them as streams), with keepalive and message size limits; and the
//! rule every shard call follows: route by the table, and when a core says the routing
//! is stale, refresh the table and try once more.

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::time::Instant;
use tonic::transport::{Channel, Endpoint};
use tonic::{Code, Request, Response, Status};
use vectron_proto::core::v1::ShardRef;
use vectron_proto::core::v1::core_service_client::CoreServiceClient;
use vectron_proto::rules::EPOCH_TRAILER;

use crate::config::CoreChannelConfig;
use crate::error::GatewayError;
use crate::routing::{CollectionRoute, RoutingCache};

/// The connections to cores.
#[derive(Debug)]
pub(crate) struct CoreChannels {
    config: CoreChannelConfig,
    max_message_bytes: usize,
    channels: Mutex<HashMap<String, Channel>>,
}

impl CoreChannels {
    pub(crate) fn new(config: CoreChannelConfig, max_message_bytes: usize) -> Self {
        Self {
            config,
            max_message_bytes,
            channels: Mutex::new(HashMap::new()),
        }
    }

    /// A client of the core at `address`, over the shared connection (opened lazily,
    /// reopened after a failure).
    pub(crate) fn client(&self, address: &str) -> Result<CoreServiceClient<Channel>, Status> {
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
        Ok(CoreServiceClient::new(channel)
            .max_decoding_message_size(self.max_message_bytes)
            .max_encoding_message_size(self.max_message_bytes))
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
            CoreServiceClient::new(channel)
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

/// Whether a core's answer says the caller's routing is stale: another epoch, or a
/// core that does not hold the shard.
fn routing_is_stale(status: &Status) -> bool {
    match status.code() {
        Code::FailedPrecondition => status.metadata().contains_key(EPOCH_TRAILER),
        Code::NotFound => true,
        _ => false,
    }
}

/// Runs `call` against the core serving `shard_id`, within `deadline`.
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
    F: Fn(CoreServiceClient<Channel>, ShardRef) -> Fut,
    Fut: Future<Output = Result<Response<T>, Status>>,
{
    let mut route = route.clone();
    let mut version = routing.snapshot().version;
    let mut retried = false;
    loop {
        let (shard_ref, replica) = route.target(shard_id)?;
        let address = replica.address.clone();
        let core = |status: Status| GatewayError::core(route.name(), shard_id, &address, status);
        let client = channels.client(&address).map_err(core)?;
        let status =
            match tokio::time::timeout_at(deadline.at, call(client, shard_ref.clone())).await {
                Ok(Ok(response)) => return Ok(response.into_inner()),
                Ok(Err(status)) => status,
                Err(_) => return Err(deadline.exceeded()),
            };
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
                .is_ok_and(|(r, replica)| r.epoch != shard_ref.epoch || replica.address != address);
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
        let channels = CoreChannels::new(CoreChannelConfig::default(), 1 << 20);
        channels.client("127.0.0.1:7400").unwrap();
        channels.client("127.0.0.1:7400").unwrap();
        channels.client("127.0.0.1:7401").unwrap();
        assert_eq!(channels.len(), 2);
        channels.retain(&HashSet::from(["127.0.0.1:7401".to_owned()]));
        assert_eq!(channels.len(), 1);
    }
}
