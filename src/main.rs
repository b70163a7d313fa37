//! The `vectron` binary: one subcommand per process kind. It only wires crates together;
//! the logic lives in the crates.

use std::fmt::Write as _;
use std::io::IsTerminal as _;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context as _;
use clap::{Args, Parser, Subcommand};
use vectron_control::{ControlClient, ControlConfig, ControlNode};
use vectron_proto::control::v1 as ctl;

/// Vectron: a distributed vector database with thread-per-core shards.
#[derive(Debug, Parser)]
#[command(name = "vectron", version, arg_required_else_help = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run a control node: the placement driver, replicated with Raft.
    Control(ControlArgs),
    /// Ask the control plane about the cluster.
    Cluster {
        #[command(subcommand)]
        command: ClusterCommand,
    },
}

#[derive(Debug, Args)]
struct ControlArgs {
    /// Raft node id of this control node: 1 or more, never reused for another node.
    #[arg(long, env = "VECTRON_NODE_ID")]
    node_id: u64,
    /// Address the gRPC listener binds (HOST:PORT).
    #[arg(long, env = "VECTRON_CONTROL_ADDR")]
    addr: SocketAddr,
    /// HOST:PORT that other nodes, workers and the gateway use to reach this node
    /// [default: --addr].
    #[arg(long, env = "VECTRON_CONTROL_ADVERTISE")]
    advertise: Option<String>,
    /// Directory of the node's Raft log, vote and snapshots.
    #[arg(long, env = "VECTRON_DATA_DIR")]
    data_dir: PathBuf,
    /// Control nodes to join through (HOST:PORT, comma-separated). Without it, a node
    /// with an empty data directory starts a new cluster.
    #[arg(long, env = "VECTRON_JOIN", value_delimiter = ',')]
    join: Vec<String>,
    /// Milliseconds between worker heartbeats.
    #[arg(long, env = "VECTRON_WORKER_HEARTBEAT_MS", default_value_t = 1000)]
    worker_heartbeat_ms: u64,
    /// Milliseconds without a heartbeat before a worker is marked down.
    #[arg(long, env = "VECTRON_WORKER_TIMEOUT_MS", default_value_t = 5000)]
    worker_timeout_ms: u64,
    /// Lower bound of the Raft election timeout in milliseconds; the upper bound is
    /// twice it.
    #[arg(long, env = "VECTRON_ELECTION_TIMEOUT_MS", default_value_t = 1000)]
    election_timeout_ms: u64,
}

#[derive(Debug, Subcommand)]
enum ClusterCommand {
    /// Print the control nodes, the leader, the workers and the shards that cannot serve.
    Status {
        /// Control nodes to ask (HOST:PORT, comma-separated).
        #[arg(long, env = "VECTRON_CONTROL", value_delimiter = ',', required = true)]
        control: Vec<String>,
    },
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Control(args) => runtime()?.block_on(run_control(args)),
        Command::Cluster {
            command: ClusterCommand::Status { control },
        } => runtime()?.block_on(cluster_status(control)),
    }
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the tokio runtime")
}

fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("VECTRON_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,openraft=warn"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr)
        .init();
}

async fn run_control(args: ControlArgs) -> anyhow::Result<()> {
    init_logging();
    let mut config = ControlConfig::new(args.node_id, args.addr, args.data_dir);
    config.advertise = args.advertise;
    config.join = args.join;
    config.worker_heartbeat = Duration::from_millis(args.worker_heartbeat_ms);
    config.worker_timeout = Duration::from_millis(args.worker_timeout_ms);
    config.election_timeout_min = Duration::from_millis(args.election_timeout_ms);
    config.election_timeout_max = Duration::from_millis(args.election_timeout_ms * 2);
    let node = ControlNode::start(config)
        .await
        .context("the control node did not start")?;
    // One line on stdout, for scripts: the address the node serves on.
    println!(
        "control node {} serving on {}",
        node.node_id(),
        node.address()
    );
    node.serve_until(shutdown_signal())
        .await
        .context("the control node stopped with an error")
}

/// Ctrl-C or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(e) = tokio::signal::ctrl_c().await {
            tracing::error!(error = %e, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut term) => {
                term.recv().await;
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    tokio::select! {
        () = ctrl_c => {}
        () = term => {}
    }
    tracing::info!("shutting down");
}

async fn cluster_status(control: Vec<String>) -> anyhow::Result<()> {
    let client = ControlClient::new(control)?;
    let status = client
        .cluster_status()
        .await
        .context("cannot read the cluster status")?;
    print!("{}", render_status(&status));
    Ok(())
}

fn render_status(status: &ctl::ClusterStatusResponse) -> String {
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
        let _ = writeln!(
            out,
            "  {:<16} {health:<4}  {}  cores {}  replicas {}  points {}{heartbeat}",
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
