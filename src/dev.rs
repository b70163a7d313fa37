//! `vectron dev`: a whole Vectron in one process, wired from the crates. A single-node
//! control plane, one worker registered with it, and the gateway, all on loopback; the
//! control plane and the cores take free ports (only the gateway's addresses matter to
//! a user), and data lives under one directory so a restart finds every collection and
//! point again.

use std::net::{Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use vectron_control::{ControlClient, ControlConfig, ControlNode};
use vectron_proto::control::v1::WorkerHealth;

use crate::DevArgs;

/// How long `dev` waits for its worker to serve every shard it held before saying it
/// is ready anyway.
const READY_WAIT: Duration = Duration::from_secs(60);

/// The worker of `dev`, its data under `args.data_dir` (its control address is set
/// once the control plane runs).
pub(crate) fn worker_config(args: &DevArgs) -> vectron_worker::WorkerConfig {
    let mut worker = vectron_worker::WorkerConfig::new(args.data_dir.join("worker"));
    if let Some(cores) = args.cores {
        worker.cores = cores;
    } else if !args.cpus.is_empty() {
        worker.cores = args.cpus.len();
    }
    worker.cpus.clone_from(&args.cpus);
    worker.core_base_port = 0;
    worker.admin_addr = SocketAddr::from((Ipv4Addr::LOCALHOST, 0));
    worker.pin = !args.no_pin;
    worker.max_unindexed = args.max_unindexed;
    worker
}

pub(crate) async fn run(
    args: DevArgs,
    mut worker: vectron_worker::WorkerConfig,
) -> anyhow::Result<()> {
    let stop = vectron_worker::shutdown_signal();
    let data_dir = args.data_dir;
    std::fs::create_dir_all(&data_dir)
        .with_context(|| format!("cannot create the data directory {}", data_dir.display()))?;

    // With --auth the ports inside dev take only calls that carry the cluster key (one
    // drawn for this run unless given), so that no other process on the machine goes
    // around the gateway's checks.
    let cluster_key = match args.cluster_key.load()? {
        Some(key) => Some(key),
        None if args.options.auth => {
            Some(vectron_auth::ClusterKey::generate().context("drawing a cluster key")?)
        }
        None => None,
    };
    let mut control = ControlConfig::new(1, "127.0.0.1:0".parse()?, data_dir.join("control"));
    control.worker_heartbeat = Duration::from_millis(500);
    control.cluster_key.clone_from(&cluster_key);
    let control = ControlNode::start(control)
        .await
        .context("the control plane did not start")?;
    let control_addr = control.address().to_owned();

    // The control plane remembers the worker and its shards as serving from the last
    // run; only a registration newer than this instant says the worker of this run has
    // reopened them.
    let worker_started_ms = unix_ms();
    worker.control = vec![control_addr.clone()];
    worker.cluster_key.clone_from(&cluster_key);
    let mut worker = match vectron_worker::Worker::start(worker).await {
        Ok(worker) => worker,
        Err(e) => {
            let _ = control.shutdown().await;
            return Err(e).context("the worker did not start");
        }
    };

    let (mut config, admin_key) = match args.options.config(vec![control_addr.clone()], true) {
        Ok(made) => made,
        Err(e) => {
            worker.shutdown().await;
            let _ = control.shutdown().await;
            return Err(e);
        }
    };
    config.cluster_key.clone_from(&cluster_key);
    let gateway = match vectron_gateway::Gateway::start(config).await {
        Ok(gateway) => gateway,
        Err(e) => {
            worker.shutdown().await;
            let _ = control.shutdown().await;
            return Err(e).context("the gateway did not start");
        }
    };

    let worker_id = worker.id().to_owned();
    let refused = tokio::select! {
        () = wait_until_serving(&control_addr, cluster_key.as_ref(), &worker_id, worker_started_ms, &gateway) => None,
        e = worker.refused() => Some(e),
    };
    if let Some(e) = refused {
        gateway.shutdown().await;
        worker.shutdown().await;
        let _ = control.shutdown().await;
        return Err(e).context("the worker cannot serve");
    }
    println!(
        "{}",
        serde_json::json!({
            "event": "ready",
            "grpc": gateway.grpc_addr().to_string(),
            "http": gateway.http_addr().to_string(),
            "control": control_addr,
            "admin": worker.admin_addr().to_string(),
            "worker_id": worker.id(),
            "cores": worker.cores().count(),
            "data_dir": data_dir.display().to_string(),
            "admin_key": admin_key,
        })
    );
    crate::announce_admin_key(admin_key.as_deref());
    crate::tell(&format!(
        "vectron dev: gRPC on {}, HTTP on {}, data in {}",
        gateway.grpc_addr(),
        gateway.http_addr(),
        data_dir.display()
    ));

    let refused = tokio::select! {
        () = stop => None,
        e = worker.refused() => Some(e),
    };
    tracing::info!("shutting down: gateway, then the worker (checkpoints), then the control plane");
    gateway.shutdown().await;
    worker.shutdown().await;
    let stopped = control
        .shutdown()
        .await
        .context("the control plane did not stop cleanly");
    match refused {
        Some(e) => Err(e).context("the worker cannot serve"),
        None => stopped,
    }
}

/// Waits until the worker is up, every shard it holds serves, and the gateway routes by
/// a table at least that new; gives up (with a warning) after [`READY_WAIT`].
/// Milliseconds since the Unix epoch, the clock of `registered_at_unix_ms`.
fn unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

async fn wait_until_serving(
    control: &str,
    key: Option<&vectron_auth::ClusterKey>,
    worker_id: &str,
    registered_since_ms: u64,
    gateway: &vectron_gateway::Gateway,
) {
    let started = Instant::now();
    let Ok(client) = ControlClient::new([control]) else {
        return;
    };
    let client = client.with_cluster_key(key);
    loop {
        if let Ok(status) = client.cluster_status().await {
            let worker_up = status.workers.iter().any(|w| {
                w.worker_id == worker_id
                    && w.health() == WorkerHealth::Up
                    && w.registered_at_unix_ms >= registered_since_ms
            });
            if worker_up
                && status.unavailable_shards.is_empty()
                && gateway.routing_loaded()
                && gateway.routing_version() >= status.routing_version
            {
                return;
            }
        }
        if started.elapsed() > READY_WAIT {
            tracing::warn!("not every shard serves yet; starting anyway");
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
