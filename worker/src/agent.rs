//! The worker's control agent: registers the worker with the control plane, heartbeats
//! every interval with a summary of each core, and opens and closes shards on the cores
//! to match the assignments the control plane answers with.
//!
//! It runs on the admin thread and talks to cores only through their command channels.
//! When the control plane is unreachable the worker keeps serving what it holds and the
//! agent retries; it never closes a shard because the control plane is silent.
//!
//! Safety of deletes: a shard the control plane no longer lists belonged to a dropped
//! collection, and its data is deleted, but only when the worker recorded the cluster's
//! id before this registration. Shards created before the worker ever joined a cluster
//! are closed and kept on disk instead.

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};
use vectron_control::{ClientError, ControlClient};
use vectron_core_shard::{CoreCommand, CoreInfo};
use vectron_proto::control::v1 as ctl;
use vectron_proto::core::v1::{ShardAssignment, ShardRef};
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
    pub(crate) data_dir: PathBuf,
    /// The cluster id recorded in `data_dir` (read at start, updated when recorded).
    pub(crate) cluster: Mutex<Option<String>>,
    pub(crate) cores: Vec<CoreInfo>,
    pub(crate) inboxes: Vec<mpsc::Sender<CoreCommand>>,
}

impl Agent {
    /// Registers, then heartbeats until `stop` resolves.
    pub(crate) async fn run(self, mut stop: oneshot::Receiver<()>) {
        loop {
            let registered = tokio::select! {
                r = self.register() => r,
                _ = &mut stop => return,
            };
            let (interval, may_delete) = match registered {
                Ok(r) => r,
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
                    _ = &mut stop => return,
                }
                // The client retries an unreachable control plane for a while: a
                // shutdown must not wait for that.
                let beat = tokio::select! {
                    r = self.heartbeat(may_delete) => r,
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

    /// Registers the worker and applies the assignments; returns the heartbeat interval
    /// and whether unlisted shards may be deleted.
    async fn register(&self) -> Result<(Duration, bool), ClientError> {
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
        let may_delete = recorded.is_some();
        let stats = gather(&self.inboxes).await;
        self.reconcile(&answer.assignments, &stats, may_delete)
            .await;
        let interval = Duration::from_millis(u64::from(answer.heartbeat_interval_ms.max(100)));
        Ok((interval, may_delete))
    }

    async fn heartbeat(&self, may_delete: bool) -> Result<(), ClientError> {
        let stats = gather(&self.inboxes).await;
        let request = ctl::HeartbeatRequest {
            worker_id: self.worker_id.clone(),
            cores: stats.iter().map(summary).collect(),
        };
        let answer = self.client.heartbeat(request).await?;
        self.reconcile(&answer.assignments, &stats, may_delete)
            .await;
        Ok(())
    }

    /// Opens every assigned shard (idempotent: it also adopts new epochs and reopens a
    /// shard that stopped after a failure) and closes held shards no longer assigned.
    async fn reconcile(
        &self,
        assignments: &[ctl::ShardAssignment],
        stats: &[CoreStats],
        may_delete: bool,
    ) {
        let mut wanted: HashMap<u32, HashSet<(String, u32)>> = HashMap::new();
        for a in assignments {
            let Some(inbox) = self.inboxes.get(a.core as usize) else {
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
            let Some(inbox) = self.inboxes.get(core.core as usize) else {
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
