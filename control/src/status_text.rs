//! The cluster status as text, for operators.

use std::fmt::Write as _;

use vectron_proto::control::v1 as ctl;

/// The cluster status as the `vectron cluster status` command prints it.
pub fn render_status(status: &ctl::ClusterStatusResponse) -> String {
    let mut out = String::new();
    let leader = if status.leader_id == 0 {
        "none".to_owned()
    } else {
        format!("node {} at {}", status.leader_id, status.leader_address)
    };
    let _ = writeln!(
        out,
        "cluster {}  leader: {leader}  term {}  routing version {}  (answered by node {})",
        if status.cluster_id.is_empty() {
            "(unnamed)"
        } else {
            &status.cluster_id
        },
        status.term,
        status.routing_version,
        status.node_id
    );
    let _ = writeln!(out, "control nodes:");
    for node in &status.nodes {
        let _ = writeln!(
            out,
            "  {:>3}  {:<22} {}{}",
            node.node_id,
            node.address,
            if node.voter { "voter" } else { "learner" },
            if node.leader { "  leader" } else { "" }
        );
    }
    let _ = writeln!(out, "workers:");
    if status.workers.is_empty() {
        let _ = writeln!(out, "  none registered");
    }
    for worker in &status.workers {
        let health = match worker.health() {
            ctl::WorkerHealth::Up => "up",
            ctl::WorkerHealth::Down => "DOWN",
            ctl::WorkerHealth::Unspecified => "?",
        };
        let cores: Vec<String> = worker
            .cores
            .iter()
            .map(|c| format!("{}:{}", c.core, c.port))
            .collect();
        let heartbeat = worker
            .heartbeat_age_ms
            .map(|ms| format!("  heartbeat {ms} ms ago"))
            .unwrap_or_default();
        let zone = if worker.zone.is_empty() {
            String::new()
        } else {
            format!("  zone {}", worker.zone)
        };
        let _ = writeln!(
            out,
            "  {:<16} {health:<4}  {}{zone}  cores {}  replicas {}  points {}{heartbeat}",
            worker.worker_id,
            worker.data_host,
            cores.join(","),
            worker.replicas,
            worker.points
        );
    }
    if status.unavailable_shards.is_empty() {
        let _ = writeln!(out, "unavailable shards: none");
    } else {
        let _ = writeln!(out, "unavailable shards:");
        for shard in &status.unavailable_shards {
            let _ = writeln!(
                out,
                "  {}/{}: {}",
                shard.collection, shard.shard_id, shard.reason
            );
        }
    }
    out
}
