//! Starting, stopping and restarting in-process control nodes with short timeouts.

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use tempfile::TempDir;
use vectron_auth::ClusterKey;
use vectron_control::{ControlClient, ControlConfig, ControlNode, RetryPolicy};
use vectron_proto::control::v1 as ctl;
use vectron_proto::v1 as api;

/// The cluster key every test node holds and every test client presents.
pub fn key() -> &'static ClusterKey {
    static KEY: std::sync::OnceLock<ClusterKey> = std::sync::OnceLock::new();
    KEY.get_or_init(|| ClusterKey::generate().unwrap())
}

/// Timeouts short enough for tests, long enough for a loaded 2-core machine; the
/// test cluster's key.
pub fn config(node_id: u64, listen: SocketAddr, data_dir: PathBuf) -> ControlConfig {
    let mut config = ControlConfig::new(node_id, listen, data_dir);
    config.cluster_key = Some(key().clone());
    config.raft_heartbeat = Duration::from_millis(50);
    config.election_timeout_min = Duration::from_millis(300);
    config.election_timeout_max = Duration::from_millis(600);
    config.worker_heartbeat = Duration::from_millis(100);
    config.worker_timeout = Duration::from_millis(1500);
    config.stats_flush_interval = Duration::from_millis(200);
    config.reconcile_interval = Duration::from_millis(50);
    config.snapshot_every = 20;
    config.keep_after_snapshot = 5;
    config.join_timeout = Duration::from_secs(30);
    config
}

/// Retries long enough to ride out an election; presents the test cluster's key.
pub fn patient(client: ControlClient) -> ControlClient {
    client
        .with_retry_policy(RetryPolicy {
            deadline: Duration::from_secs(20),
            ..RetryPolicy::default()
        })
        .with_cluster_key(Some(key()))
}

/// Polls `probe` every 50 ms until it returns `Some`, for at most `limit`.
pub async fn eventually<T, F, Fut>(what: &str, limit: Duration, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let started = Instant::now();
    loop {
        if let Some(value) = probe().await {
            return value;
        }
        assert!(
            started.elapsed() < limit,
            "{what}: not true after {limit:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A cluster of in-process control nodes, each with its own data directory.
pub struct Cluster {
    dir: TempDir,
    paths: Vec<PathBuf>,
    addrs: Vec<SocketAddr>,
    nodes: Vec<Option<ControlNode>>,
}

impl Cluster {
    /// Starts `size` nodes: node 1 bootstraps, the others join through it.
    pub async fn start(size: usize) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let mut cluster = Self {
            paths: (1..=size)
                .map(|id| dir.path().join(format!("control-{id}")))
                .collect(),
            dir,
            addrs: Vec::new(),
            nodes: Vec::new(),
        };
        for i in 0..size {
            let mut config = config(
                i as u64 + 1,
                "127.0.0.1:0".parse().unwrap(),
                cluster.paths[i].clone(),
            );
            if i > 0 {
                config.join = vec![cluster.addrs[0].to_string()];
            }
            let node = ControlNode::start(config).await.unwrap();
            cluster.addrs.push(node.local_addr());
            cluster.nodes.push(Some(node));
        }
        cluster
    }

    /// Starts one more node that joins through a running node; returns its index.
    pub async fn join_new(&mut self) -> usize {
        let i = self.nodes.len();
        self.paths
            .push(self.dir.path().join(format!("control-{}", i + 1)));
        let seed = self.running().next().expect("a running node");
        let mut config = config(
            i as u64 + 1,
            "127.0.0.1:0".parse().unwrap(),
            self.paths[i].clone(),
        );
        config.join = vec![self.node(seed).address().to_owned()];
        let node = ControlNode::start(config).await.unwrap();
        self.addrs.push(node.local_addr());
        self.nodes.push(Some(node));
        i
    }

    /// Addresses of every node, running or not.
    pub fn addresses(&self) -> Vec<String> {
        self.addrs.iter().map(ToString::to_string).collect()
    }

    /// A client of every node.
    pub fn client(&self) -> ControlClient {
        patient(ControlClient::new(self.addresses()).unwrap())
    }

    /// A client of node `i` alone (reads are answered by that node).
    pub fn client_of(&self, i: usize) -> ControlClient {
        patient(ControlClient::new([self.addrs[i].to_string()]).unwrap())
    }

    pub fn node(&self, i: usize) -> &ControlNode {
        self.nodes[i].as_ref().expect("node is running")
    }

    pub fn running(&self) -> impl Iterator<Item = usize> + '_ {
        (0..self.nodes.len()).filter(|&i| self.nodes[i].is_some())
    }

    /// Waits until the running nodes agree on a running leader; returns its index.
    pub async fn leader(&self) -> usize {
        eventually("a leader elected", Duration::from_secs(20), || async {
            let leaders: Vec<usize> = self
                .running()
                .filter(|&i| self.node(i).is_leader())
                .collect();
            let [leader] = leaders[..] else { return None };
            let id = self.node(leader).node_id();
            self.running()
                .all(|i| self.node(i).leader() == Some(id))
                .then_some(leader)
        })
        .await
    }

    /// Stops node `i`.
    pub async fn stop(&mut self, i: usize) {
        let node = self.nodes[i].take().expect("node is running");
        node.shutdown().await.unwrap();
    }

    /// Starts node `i` again on its address with its data directory.
    pub async fn restart(&mut self, i: usize) {
        assert!(self.nodes[i].is_none(), "node {i} is running");
        let node = ControlNode::start(config(i as u64 + 1, self.addrs[i], self.paths[i].clone()))
            .await
            .unwrap();
        self.nodes[i] = Some(node);
    }

    pub async fn shutdown(mut self) {
        for i in 0..self.nodes.len() {
            if self.nodes[i].is_some() {
                self.stop(i).await;
            }
        }
    }
}

/// A cosine collection spec with the given shard count (default when `None`).
pub fn spec(name: &str, shards: Option<u32>) -> api::CollectionSpec {
    api::CollectionSpec {
        name: name.into(),
        dimension: 8,
        metric: api::Metric::Cosine.into(),
        shard_count: shards,
        ..Default::default()
    }
}

/// A worker built from the client library: it registers, heartbeats, and reports the
/// shards it was assigned as held, the way a real worker does once it has opened them.
pub struct TestWorker {
    pub id: String,
    pub cores: u32,
    pub client: ControlClient,
    pub cluster_id: String,
    pub assignments: Vec<ctl::ShardAssignment>,
}

impl TestWorker {
    pub async fn register(client: ControlClient, id: &str, cores: u32, base_port: u32) -> Self {
        Self::register_in_zone(client, id, cores, base_port, "").await
    }

    /// Registers with a zone label.
    pub async fn register_in_zone(
        client: ControlClient,
        id: &str,
        cores: u32,
        base_port: u32,
        zone: &str,
    ) -> Self {
        let response = client
            .register_worker(ctl::RegisterWorkerRequest {
                worker_id: id.into(),
                data_host: "127.0.0.1".into(),
                cores: (0..cores)
                    .map(|core| ctl::CoreEndpoint {
                        core,
                        port: base_port + core,
                    })
                    .collect(),
                admin_address: format!("127.0.0.1:{}", base_port + 100),
                cluster_id: String::new(),
                zone: zone.into(),
            })
            .await
            .unwrap();
        Self {
            id: id.into(),
            cores,
            client,
            cluster_id: response.cluster_id,
            assignments: response.assignments,
        }
    }

    /// One heartbeat reporting every shard of the last assignments as held (with
    /// `points` points each); keeps the new assignments.
    pub async fn heartbeat(&mut self, points: u64) -> ctl::HeartbeatResponse {
        let mut cores: Vec<ctl::CoreSummary> = (0..self.cores)
            .map(|core| ctl::CoreSummary {
                core,
                memory_bytes: 1 << 20,
                ..Default::default()
            })
            .collect();
        for a in &self.assignments {
            cores[a.core as usize].shards.push(ctl::HeldShard {
                collection: a.spec.as_ref().unwrap().name.clone(),
                shard_id: a.shard_id,
                epoch: a.epoch,
                points,
                memory_bytes: points * 64,
            });
        }
        let response = self
            .client
            .heartbeat(ctl::HeartbeatRequest {
                worker_id: self.id.clone(),
                cores,
            })
            .await
            .unwrap();
        assert_eq!(response.cluster_id, self.cluster_id);
        self.assignments.clone_from(&response.assignments);
        response
    }
}

/// Health of `worker` in a status answer.
pub fn health(status: &ctl::ClusterStatusResponse, worker: &str) -> ctl::WorkerHealth {
    status
        .workers
        .iter()
        .find(|w| w.worker_id == worker)
        .map(|w| w.health())
        .unwrap_or(ctl::WorkerHealth::Unspecified)
}

/// Where every shard lives, without the states that change with time: for each
/// collection, its name and, per shard, its range and its replicas' (worker, core, epoch).
pub type Layout = Vec<(String, Vec<(u32, u64, u64, Vec<(String, u32, u64)>)>)>;

pub fn layout(collections: &[api::CollectionInfo]) -> Layout {
    collections
        .iter()
        .map(|c| {
            let shards = c
                .shards
                .iter()
                .map(|s| {
                    let replicas = s
                        .replicas
                        .iter()
                        .map(|r| (r.worker_id.clone(), r.core, r.epoch))
                        .collect();
                    (s.shard_id, s.hash_range_start, s.hash_range_end, replicas)
                })
                .collect();
            (c.spec.as_ref().unwrap().name.clone(), shards)
        })
        .collect()
}
