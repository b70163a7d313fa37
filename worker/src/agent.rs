//! The worker's control agent: registers the worker with the control plane, heartbeats
//! every interval with a summary of each core, and opens and closes shards on the cores
//! to match the assignments the control plane answers with.
//!
//! It runs on the admin thread and talks to cores only through their command channels.
//! When the control plane is unreachable the worker keeps serving what it holds and the
//! agent retries; it never closes a shard because the control plane is silent.
//!
//! Safety of deletes: a shard the control plane no longer lists belonged to a dropped
//! collection, and its data is deleted whenever the worker belongs to the cluster (its
//! id is recorded in the data directory, from an earlier run or from this one's
//! registration). The one exception is the reconcile of the registration that first
//! records the cluster: shards held then were created before the worker ever joined a
//! cluster, and are closed and kept on disk. A data directory of another cluster never
//! gets that far: the control plane refuses its registration.
//!
//! A collection re-created under a dropped one's name is another incarnation: the core
//! replaces a shard of the old one it still holds, or finds on disk, with an empty one
//! when the new assignment arrives (`Core::open_shard`), however soon after the drop.

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Duration;

use std::sync::Arc;

use tokio::sync::{Notify, mpsc, oneshot, watch};
use vectron_control::{ClientError, ControlClient};
use vectron_core_shard::{CoreCommand, CoreInfo};
use vectron_proto::control::v1 as ctl;
use vectron_proto::core::v1::{ReplicaPeer, ShardAssignment, ShardRef};
use vectron_proto::v1::CoreStats;

use crate::admin::gather;
use crate::identity;

/// Pause before registering again after a failure.
const RETRY: Duration = Duration::from_secs(1);

/// What the agent needs to know about its worker.
#[derive(Debug)]
pub(crate) struct Agent {
    pub(crate) client: ControlClient,
    pub(crate) worker_id: String,
    pub(crate) data_host: String,
    pub(crate) admin_address: String,
    pub(crate) zone: String,
    pub(crate) data_dir: PathBuf,
    /// The cluster id recorded in `data_dir` (read at start, updated when recorded).
    pub(crate) cluster: Mutex<Option<String>>,
    pub(crate) cores: Vec<CoreInfo>,
    pub(crate) inboxes: Vec<mpsc::Sender<CoreCommand>>,
}

/// What the latest heartbeat asked for: the shards to hold, and whether shards no longer
/// listed may be deleted.
#[derive(Debug)]
struct Target {
    assignments: Vec<ctl::ShardAssignment>,
    may_delete: bool,
}

impl Agent {
    /// Registers, then heartbeats until `stop` resolves. Heartbeats go out every interval
    /// whatever the cores are doing: the shards a heartbeat's answer asks for are opened
    /// and closed by a task of their own, which always works from the latest answer, so
    /// a worker placing many shards is never taken for a silent one.
    ///
    /// A registration the control plane refuses for good (`FAILED_PRECONDITION` or
    /// `INVALID_ARGUMENT`: another cluster's data directory, a core missing that holds
    /// replicas; `UNAUTHENTICATED`: not this cluster's key) ends the agent, its reason
    /// sent on `refused`; other failures are retried.
    pub(crate) async fn run(
        self,
        mut stop: oneshot::Receiver<()>,
        refused: oneshot::Sender<String>,
    ) {
        let (latest, targets) = watch::channel(None);
        // Woken when a reconcile changed what the cores hold: the control plane hears of
        // it at once (a create waits for its shards to serve), not at the next tick.
        let changed = Arc::new(Notify::new());
        // Ends once `latest` is dropped, when this returns.
        tokio::spawn(reconciler(
            self.inboxes.clone(),
            targets,
            Arc::clone(&changed),
        ));
        // A new routing table (a collection created or dropped, a replica placed) is
        // news for this worker too: it asks for its assignments at once.
        let _watching = AbortOnDrop(tokio::spawn(watch_routing(
            self.client.clone(),
            Arc::clone(&changed),
        )));
        loop {
            let registered = tokio::select! {
                r = self.register() => r,
                _ = &mut stop => return,
            };
            let interval = match registered {
                Ok(r) => r,
                Err(e)
                    if matches!(
                        e.code(),
                        Some(
                            tonic::Code::FailedPrecondition
                                | tonic::Code::InvalidArgument
                                | tonic::Code::Unauthenticated
                        )
                    ) =>
                {
                    tracing::error!(error = %e, "the control plane refuses this worker");
                    let _ = refused.send(e.to_string());
                    return;
                }
                Err(e) => {
                    tracing::warn!(error = %e, "cannot register with the control plane; retrying");
                    tokio::select! {
                        () = tokio::time::sleep(RETRY) => continue,
                        _ = &mut stop => return,
                    }
                }
            };
            // Heartbeat until the control plane forgets the worker (then register again).
            let mut ticker = tokio::time::interval(interval);
            ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = ticker.tick() => {}
                    () = changed.notified() => {}
                    _ = &mut stop => return,
                }
                // The client retries an unreachable control plane for a while: a
                // shutdown must not wait for that.
                let beat = tokio::select! {
                    r = self.heartbeat(&latest) => r,
                    _ = &mut stop => return,
                };
                match beat {
                    Ok(()) => {}
                    Err(e) if e.code() == Some(tonic::Code::NotFound) => {
                        tracing::warn!(
                            "the control plane does not know this worker; registering again"
                        );
                        break;
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "heartbeat failed; serving on and retrying");
                    }
                }
            }
        }
    }

    /// Whether the worker belongs to a cluster: its id is recorded.
    fn in_cluster(&self) -> bool {
        self.cluster.lock().expect("never poisoned").is_some()
    }

    /// Registers the worker and applies the assignments; returns the heartbeat interval.
    async fn register(&self) -> Result<Duration, ClientError> {
        let recorded = self.cluster.lock().expect("never poisoned").clone();
        let request = ctl::RegisterWorkerRequest {
            worker_id: self.worker_id.clone(),
            data_host: self.data_host.clone(),
            cores: self
                .cores
                .iter()
                .map(|c| ctl::CoreEndpoint {
                    core: c.index,
                    port: u32::from(c.addr.port()),
                })
                .collect(),
            admin_address: self.admin_address.clone(),
            cluster_id: recorded.clone().unwrap_or_default(),
            zone: self.zone.clone(),
        };
        let answer = self.client.register_worker(request).await?;
        if !answer.cluster_id.is_empty() && recorded.as_deref() != Some(answer.cluster_id.as_str())
        {
            match identity::record_cluster(&self.data_dir, &answer.cluster_id) {
                Ok(()) => {
                    *self.cluster.lock().expect("never poisoned") = Some(answer.cluster_id.clone());
                }
                Err(e) => tracing::error!(error = %e, "cannot record the cluster id"),
            }
        }
        tracing::info!(
            cluster = %answer.cluster_id,
            resumed = answer.resumed,
            shards = answer.assignments.len(),
            "registered with the control plane"
        );
        // Shards held when the cluster is first recorded predate it: kept on disk.
        let stats = gather(&self.inboxes).await;
        reconcile(
            &self.inboxes,
            &answer.assignments,
            &stats,
            recorded.is_some(),
        )
        .await;
        let interval = Duration::from_millis(u64::from(answer.heartbeat_interval_ms.max(100)));
        Ok(interval)
    }

    /// Sends one heartbeat and hands its answer to the reconciler.
    async fn heartbeat(
        &self,
        latest: &watch::Sender<Option<Arc<Target>>>,
    ) -> Result<(), ClientError> {
        // Read at every beat: the registration may have recorded the cluster since.
        let may_delete = self.in_cluster();
        let stats = gather(&self.inboxes).await;
        let request = ctl::HeartbeatRequest {
            worker_id: self.worker_id.clone(),
            cores: stats.iter().map(summary).collect(),
        };
        let answer = self.client.heartbeat(request).await?;
        latest.send_replace(Some(Arc::new(Target {
            assignments: answer.assignments,
            may_delete,
        })));
        Ok(())
    }
}

/// Reconciles the cores with each heartbeat's answer, one at a time; answers that came
/// in while it worked are skipped but the latest. Ends when the agent stops.
async fn reconciler(
    inboxes: Vec<mpsc::Sender<CoreCommand>>,
    mut targets: watch::Receiver<Option<Arc<Target>>>,
    changed: Arc<Notify>,
) {
    while targets.changed().await.is_ok() {
        let Some(target) = targets.borrow_and_update().clone() else {
            continue;
        };
        // What the cores hold now, not when the heartbeat left.
        let stats = gather(&inboxes).await;
        reconcile(&inboxes, &target.assignments, &stats, target.may_delete).await;
        if held(&gather(&inboxes).await) != held(&stats) {
            changed.notify_one();
        }
    }
}

/// Wakes the heartbeat loop whenever the routing table changes.
async fn watch_routing(client: ControlClient, changed: Arc<Notify>) {
    let mut watch = client.watch_routing(0);
    loop {
        match watch.next().await {
            Ok(_) => changed.notify_one(),
            // The heartbeat loop keeps its own schedule meanwhile.
            Err(_) => tokio::time::sleep(RETRY).await,
        }
    }
}

/// Aborts a task when dropped.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// The shards the cores hold, at their epochs.
fn held(stats: &[CoreStats]) -> HashSet<(u32, &str, u32, u64)> {
    stats
        .iter()
        .flat_map(|core| {
            core.shards
                .iter()
                .map(|s| (core.core, s.collection.as_str(), s.shard_id, s.epoch))
        })
        .collect()
}

/// Opens every assigned shard (idempotent: it also adopts new epochs and reopens a
/// shard that stopped after a failure) and closes held shards no longer assigned.
async fn reconcile(
    inboxes: &[mpsc::Sender<CoreCommand>],
    assignments: &[ctl::ShardAssignment],
    stats: &[CoreStats],
    may_delete: bool,
) {
    let mut wanted: HashMap<u32, HashSet<(String, u32)>> = HashMap::new();
    for a in assignments {
        let Some(inbox) = inboxes.get(a.core as usize) else {
            tracing::error!(
                core = a.core,
                "assignment names a core this worker does not have"
            );
            continue;
        };
        let name = a.spec.as_ref().map(|s| s.name.clone()).unwrap_or_default();
        wanted
            .entry(a.core)
            .or_default()
            .insert((name.clone(), a.shard_id));
        let assignment = ShardAssignment {
            spec: a.spec.clone(),
            shard_id: a.shard_id,
            hash_range_start: a.hash_range_start,
            hash_range_end: a.hash_range_end,
            epoch: a.epoch,
            incarnation: a.incarnation,
            replica_id: a.replica_id,
            peers: resolve_peers(&a.peers).await,
            // Every replica is placed by its collection's create (nothing adds one
            // later yet), so each starts its group, with the same voters.
            initial: a.replica_id != 0,
            preferred_leader: a.preferred_leader,
        };
        let opened = ask(inbox, |tx| {
            CoreCommand::Open(Box::new(assignment), a.must_exist, tx)
        })
        .await;
        if let Some(Err(e)) = opened {
            tracing::error!(collection = %name, shard = a.shard_id, error = %e, "cannot open an assigned shard");
        }
    }
    for core in stats {
        let Some(inbox) = inboxes.get(core.core as usize) else {
            continue;
        };
        for held in &core.shards {
            let key = (held.collection.clone(), held.shard_id);
            if wanted.get(&core.core).is_some_and(|w| w.contains(&key)) {
                continue;
            }
            let shard = ShardRef {
                collection: held.collection.clone(),
                shard_id: held.shard_id,
                epoch: held.epoch,
            };
            match ask(inbox, |tx| CoreCommand::Close(shard, may_delete, tx)).await {
                Some(Ok(())) => tracing::info!(
                    collection = %held.collection,
                    shard = held.shard_id,
                    deleted = may_delete,
                    "closed a shard the control plane no longer assigns"
                ),
                Some(Err(e)) => tracing::error!(
                    collection = %held.collection,
                    shard = held.shard_id,
                    error = %e,
                    "cannot close an unassigned shard"
                ),
                None => {}
            }
        }
    }
}

/// Sends a command to a core and waits for its answer; `None` when the core is gone.
async fn ask<T>(
    inbox: &mpsc::Sender<CoreCommand>,
    command: impl FnOnce(oneshot::Sender<T>) -> CoreCommand,
) -> Option<T> {
    let (tx, rx) = oneshot::channel();
    inbox.send(command(tx)).await.ok()?;
    rx.await.ok()
}

/// What a heartbeat says about one core.
/// A replicated shard's peers with their addresses as `ip:port`, which is what a core
/// takes: a worker registered under a host name is looked up here. A peer whose name
/// does not resolve keeps its address, and the core refuses the assignment naming it.
async fn resolve_peers(peers: &[ReplicaPeer]) -> Vec<ReplicaPeer> {
    let mut out = Vec::with_capacity(peers.len());
    for peer in peers {
        let address = if peer.address.parse::<std::net::SocketAddr>().is_ok() {
            peer.address.clone()
        } else {
            match tokio::net::lookup_host(&peer.address).await {
                Ok(mut found) => found
                    .next()
                    .map_or_else(|| peer.address.clone(), |a| a.to_string()),
                Err(e) => {
                    tracing::warn!(address = %peer.address, error = %e, "cannot resolve a replica's address");
                    peer.address.clone()
                }
            }
        };
        out.push(ReplicaPeer {
            replica_id: peer.replica_id,
            address,
        });
    }
    out
}

fn summary(c: &CoreStats) -> ctl::CoreSummary {
    ctl::CoreSummary {
        core: c.core,
        memory_bytes: c.memory_bytes,
        search_qps: c.search_qps,
        upsert_points_per_s: c.upsert_points_per_s,
        in_flight: c.in_flight,
        queue_depth: c.queue_depth,
        shards: c
            .shards
            .iter()
            .map(|s| ctl::HeldShard {
                collection: s.collection.clone(),
                shard_id: s.shard_id,
                epoch: s.epoch,
                points: s.points,
                memory_bytes: s.memory_bytes,
            })
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    //! A worker on a fresh data directory under a real in-process control plane: a drop
    //! deletes the collection's shards on its first run (they used to be kept until a
    //! restart), and a collection re-created under the name at once, with the same spec
    //! or another, starts empty and serves.

    use std::future::Future;
    use std::net::SocketAddr;
    use std::path::Path;
    use std::time::{Duration, Instant};

    use vectron_control::{ControlClient, ControlConfig, ControlNode, RetryPolicy};
    use vectron_proto::core::v1::core_service_client::CoreServiceClient;
    use vectron_proto::core::v1::{CountRequest, GetRequest, Point, ShardRef, UpsertRequest};
    use vectron_proto::v1::{CollectionInfo, CollectionSpec, Metric, ReplicaState};

    use crate::{Worker, WorkerConfig};

    async fn eventually<T, F: Future<Output = Option<T>>>(
        what: &str,
        mut probe: impl FnMut() -> F,
    ) -> T {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(v) = probe().await {
                return v;
            }
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The collection once its shard serves at its current epoch.
    async fn active(client: &ControlClient, name: &str, dimension: u32) -> CollectionInfo {
        eventually("the shard to serve", || async {
            let info = client.describe_collection(name).await.ok()?;
            let spec_now = info.spec.as_ref()?.dimension == dimension;
            let serving = info
                .shards
                .iter()
                .all(|s| s.replicas.iter().any(|r| r.state() == ReplicaState::Active));
            (spec_now && serving).then_some(info)
        })
        .await
    }

    /// The shard's core client and its reference.
    async fn shard(
        info: &CollectionInfo,
    ) -> (CoreServiceClient<tonic::transport::Channel>, ShardRef) {
        let replica = &info.shards[0].replicas[0];
        let client = CoreServiceClient::connect(format!("http://{}", replica.address))
            .await
            .unwrap();
        let name = info.spec.as_ref().unwrap().name.clone();
        let r = ShardRef {
            collection: name,
            shard_id: 0,
            epoch: replica.epoch,
        };
        (client, r)
    }

    async fn upsert(info: &CollectionInfo, id: &str) {
        let (mut core, r) = shard(info).await;
        let dimension = info.spec.as_ref().unwrap().dimension as usize;
        let point = Point {
            id: id.into(),
            vector: vec![1.0; dimension],
            payload_json: Vec::new(),
        };
        let request = UpsertRequest {
            shard: Some(r),
            points: vec![point],
            wait: None,
        };
        core.upsert(request).await.unwrap();
    }

    async fn count_and_get(info: &CollectionInfo, id: &str) -> (u64, usize) {
        let (mut core, r) = shard(info).await;
        let count = CountRequest {
            shard: Some(r.clone()),
            filter: None,
            consistency: None,
        };
        let count = core.count(count).await.unwrap().into_inner().count;
        let get = GetRequest {
            shard: Some(r),
            ids: vec![id.into()],
            ..Default::default()
        };
        let found = core.get(get).await.unwrap().into_inner().points.len();
        (count, found)
    }

    fn spec(dimension: u32) -> CollectionSpec {
        let mut spec = CollectionSpec::new("docs", dimension, Metric::L2);
        spec.shard_count = Some(1);
        spec
    }

    async fn control(dir: &Path) -> ControlNode {
        let listen: SocketAddr = "127.0.0.1:0".parse().unwrap();
        let mut config = ControlConfig::new(1, listen, dir.join("control"));
        config.raft_heartbeat = Duration::from_millis(50);
        config.election_timeout_min = Duration::from_millis(300);
        config.election_timeout_max = Duration::from_millis(600);
        config.worker_heartbeat = Duration::from_millis(200);
        config.stats_flush_interval = Duration::from_millis(200);
        config.reconcile_interval = Duration::from_millis(50);
        ControlNode::start(config).await.unwrap()
    }

    #[tokio::test]
    async fn a_first_run_deletes_dropped_shards_and_a_re_created_name_starts_empty() {
        let dir = tempfile::tempdir().unwrap();
        let node = control(dir.path()).await;
        let client = ControlClient::new([node.address()])
            .unwrap()
            .with_retry_policy(RetryPolicy {
                deadline: Duration::from_secs(20),
                ..RetryPolicy::default()
            });
        let data = dir.path().join("worker");
        let mut config = WorkerConfig::new(&data);
        config.cores = 1;
        config.core_base_port = 0;
        config.admin_addr = "127.0.0.1:0".parse().unwrap();
        config.pin = false;
        config.control = vec![node.address().to_owned()];
        let worker = Worker::start(config).await.unwrap();
        eventually("the worker to register", || async {
            let status = client.cluster_status().await.ok()?;
            (status.workers.len() == 1).then_some(())
        })
        .await;
        assert!(data.join("CLUSTER_ID").is_file());

        // Dropped and re-created at once, same spec, then another dimension: each time
        // the old point is gone and the new collection takes writes.
        client.create_collection(spec(2)).await.unwrap();
        let info = active(&client, "docs", 2).await;
        upsert(&info, "old").await;
        assert_eq!(count_and_get(&info, "old").await, (1, 1));
        for (dimension, id) in [(2, "same-spec"), (3, "other-spec")] {
            client.drop_collection("docs").await.unwrap();
            client.create_collection(spec(dimension)).await.unwrap();
            let info = active(&client, "docs", dimension).await;
            assert_eq!(count_and_get(&info, "old").await, (0, 0), "{id}");
            upsert(&info, id).await;
            assert_eq!(count_and_get(&info, id).await, (1, 1), "{id}");
        }

        // A drop deletes the data on this first run of the data directory.
        let collection = data.join("core-0").join("docs");
        assert!(collection.join("shard-0").join("MANIFEST").is_file());
        client.drop_collection("docs").await.unwrap();
        eventually("the dropped collection's files to go", || async {
            (!collection.exists()).then_some(())
        })
        .await;

        worker.shutdown().await;
        node.shutdown().await.unwrap();
    }
}
