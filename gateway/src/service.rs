//! The gateway's handlers, independent of the door a request came through: both the
//! gRPC services and the HTTP routes call these with the same types, so validation,
//! limits and errors are the same on both.
//!
//! Points travel in the cores' form (`vectron.core.v1.Point`, payload as JSON text);
//! each door converts at its edge.

use std::sync::Arc;
use std::time::Duration;

use futures_util::future::join_all;
use vectron_control::{ControlClient, RetryPolicy};
use vectron_proto::control::v1::WorkerHealth;
use vectron_proto::core::v1::StatsRequest;
use vectron_proto::v1::{CollectionInfo, CollectionSpec, CoreStats, CoreStatsResponse};

use crate::admission::Admission;
use crate::cache::{Generations, SearchCache};
use crate::config::GatewayConfig;
use crate::cores::{CoreChannels, Deadline};
use crate::error::GatewayError;
use crate::routing::{CollectionRoute, RoutingCache};

/// How long a worker's cores may take to report their statistics.
const STATS_TIMEOUT: Duration = Duration::from_secs(3);

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
}

impl Service {
    pub(crate) fn new(config: GatewayConfig, control: ControlClient) -> Self {
        let probe = control.clone().with_retry_policy(RetryPolicy {
            deadline: Duration::from_secs(1),
            initial_backoff: Duration::from_millis(50),
            max_backoff: Duration::from_millis(200),
            request_timeout: Duration::from_secs(1),
        });
        Self {
            routing: Arc::new(RoutingCache::new(control.clone())),
            channels: CoreChannels::new(config.cores, config.limits.max_message_bytes),
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

    /// Creates a collection, then waits (at most the configured time) until every shard
    /// serves, so that the first write after the answer finds its shard open.
    pub(crate) async fn create_collection(
        &self,
        spec: CollectionSpec,
    ) -> Result<CollectionInfo, GatewayError> {
        let name = spec.name.clone();
        let created = self
            .control
            .create_collection(spec)
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
    pub(crate) async fn drop_collection(&self, name: &str) -> Result<(), GatewayError> {
        let dropped = self
            .control
            .drop_collection(name)
            .await
            .map_err(GatewayError::Control);
        self.generations.bump(name);
        dropped
    }

    /// Every collection, ordered by name.
    pub(crate) async fn list_collections(&self) -> Result<Vec<CollectionInfo>, GatewayError> {
        self.control
            .list_collections()
            .await
            .map_err(GatewayError::Control)
    }

    /// One collection.
    pub(crate) async fn describe_collection(
        &self,
        name: &str,
    ) -> Result<CollectionInfo, GatewayError> {
        if name.is_empty() {
            return Err(GatewayError::NoCollection);
        }
        self.control
            .describe_collection(name)
            .await
            .map_err(GatewayError::Control)
    }

    // --- stats -----------------------------------------------------------------------

    /// Statistics of every core of one worker (or of every worker), asked of each core
    /// directly. A worker any of whose cores did not answer in time is listed as
    /// unreachable, with the cores that did answer kept.
    pub(crate) async fn core_stats(
        &self,
        worker_id: &str,
    ) -> Result<CoreStatsResponse, GatewayError> {
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
                    let answer = async {
                        let mut client = self.channels.client(&address).ok()?;
                        let mut request = tonic::Request::new(StatsRequest {});
                        request.set_timeout(STATS_TIMEOUT);
                        tokio::time::timeout(STATS_TIMEOUT, client.stats(request))
                            .await
                            .ok()?
                            .ok()
                            .map(tonic::Response::into_inner)
                    };
                    (w.worker_id.clone(), answer.await)
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
}
