//! The `vectron` binary: one subcommand per process kind. It only wires crates together;
//! the logic lives in the crates.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;

use anyhow::Context as _;
use clap::{Args, Parser, Subcommand};

/// Vectron: a distributed vector database with thread-per-core shards.
#[derive(Debug, Parser)]
#[command(name = "vectron", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run a data node: one pinned thread per core, each owning its shards and serving
    /// gRPC on its own port (core i on core-base-port + i).
    Worker(WorkerArgs),
}

#[derive(Debug, Args)]
struct WorkerArgs {
    /// Directory for the worker's shards and identity.
    #[arg(
        long,
        env = "VECTRON_DATA_DIR",
        default_value = "./vectron-data/worker"
    )]
    data_dir: PathBuf,
    /// Number of cores (threads). Default: every CPU.
    #[arg(long, env = "VECTRON_CORES")]
    cores: Option<usize>,
    /// Address the core ports listen on.
    #[arg(long, env = "VECTRON_HOST", default_value = "127.0.0.1")]
    host: IpAddr,
    /// Port of core 0; core i listens on this + i. 0 picks free ports.
    #[arg(long, env = "VECTRON_CORE_BASE_PORT", default_value_t = 7400)]
    core_base_port: u16,
    /// Address of the admin HTTP listener (/v1/stats/cores, /metrics, /healthz).
    #[arg(long, env = "VECTRON_ADMIN_ADDR", default_value = "127.0.0.1:7390")]
    admin_addr: SocketAddr,
    /// The worker's id. Default: the one stored in the data directory, made once.
    #[arg(long, env = "VECTRON_WORKER_ID")]
    worker_id: Option<String>,
    /// When writes are acknowledged: always (after fdatasync), interval:MS, or never.
    #[arg(long, env = "VECTRON_WAL_SYNC", default_value = "always", value_parser = vectron_worker::parse_sync_policy)]
    wal_sync: vectron_wal::SyncPolicy,
    /// Do not pin core threads to CPUs.
    #[arg(long)]
    no_pin: bool,
    /// CPU of core 0 when pinning; core i takes the next ones.
    #[arg(long, default_value_t = 0)]
    first_cpu: usize,
}

fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("VECTRON_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    init_tracing();
    match cli.command {
        Command::Worker(args) => {
            let mut config = vectron_worker::WorkerConfig::new(args.data_dir);
            if let Some(cores) = args.cores {
                config.cores = cores;
            }
            config.host = args.host;
            config.core_base_port = args.core_base_port;
            config.admin_addr = args.admin_addr;
            config.worker_id = args.worker_id;
            config.wal_sync = args.wal_sync;
            config.pin = !args.no_pin;
            config.first_cpu = args.first_cpu;
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .context("cannot build the worker's admin runtime")?;
            runtime
                .block_on(vectron_worker::run(config))
                .context("the worker failed")
        }
    }
}
