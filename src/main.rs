//! The `vectron` binary: one subcommand per process kind. It only wires crates together;
//! the logic lives in the crates.

use std::io::IsTerminal as _;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context as _;
use clap::{Args, Parser, Subcommand};
use vectron_control::{ControlClient, ControlConfig, ControlNode};

mod bench;
mod cli;
mod dev;

/// Vectron: a distributed vector database with thread-per-core shards.
#[derive(Debug, Parser)]
#[command(name = "vectron", version, arg_required_else_help = true)]
struct Cli {
    /// How log lines are written on stderr: text for people, json (one object a line:
    /// timestamp, level, target, message and the event's fields) for log collectors.
    #[arg(long, global = true, env = "VECTRON_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

/// See [`Cli::log_format`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run a data node: one pinned thread per core, each owning its shards and serving
    /// gRPC on its own port (core i on core-base-port + i).
    Worker(WorkerArgs),
    /// Run a control node: the placement driver, replicated with Raft.
    Control(ControlArgs),
    /// Run the gateway: the public API (gRPC and HTTP/JSON), routing each call to the
    /// cores that own its shards.
    Gateway(GatewayArgs),
    /// Run everything in one process: a single-node control plane, a worker with one
    /// core per CPU, and the gateway. Data under ./vectron-data; Ctrl-C stops cleanly.
    Dev(DevArgs),
    // The client commands; their help is in src/cli/.
    Collections(cli::CollectionsArgs),
    Keys(cli::KeysArgs),
    Users(cli::UsersArgs),
    Login(cli::LoginArgs),
    Plans(cli::PlansArgs),
    Points(cli::PointsArgs),
    Search(cli::SearchArgs),
    Tune(cli::TuneArgs),
    /// Benchmark a running Vectron end to end through the gateway: ingest a dataset
    /// with the streaming upsert, then search it from concurrent clients; prints one
    /// JSON line (ingest_vectors_per_s, qps, p50_us, p99_us, p999_us, recall).
    Bench(bench::BenchArgs),
    /// Ask the control plane about the cluster.
    Cluster {
        #[command(subcommand)]
        command: ClusterCommand,
    },
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
    /// CPUs to pin the cores to, one per core (comma-separated), instead of
    /// first-cpu onwards: to put cores on distinct physical cores. The worker's other
    /// threads run on the CPUs the cores leave free, when there are any.
    #[arg(long, value_delimiter = ',')]
    cpus: Vec<usize>,
    /// Control nodes to register with (HOST:PORT, comma-separated). Without it the
    /// worker runs standalone: shards are opened through CoreService.OpenShard.
    #[arg(long, env = "VECTRON_CONTROL", value_delimiter = ',')]
    control: Vec<String>,
    /// Host that clients use to reach the core ports [default: --host].
    #[arg(long, env = "VECTRON_ADVERTISE_HOST")]
    advertise_host: Option<String>,
    /// Zone of the worker (a rack or availability zone; [A-Za-z0-9_.-], up to 64):
    /// the replicas of a shard go to distinct zones while there are enough.
    #[arg(long, env = "VECTRON_ZONE", default_value = "", value_parser = parse_zone)]
    zone: String,
    /// Points a shard may hold acknowledged and not yet indexed before writes to it
    /// wait for the indexer [default: as many as 1 MiB of its vectors].
    #[arg(long, env = "VECTRON_MAX_UNINDEXED")]
    max_unindexed: Option<usize>,
    #[command(flatten)]
    cluster_key: ClusterKeyArgs,
    /// Serve the core ports and the admin listener on an address other than loopback
    /// without a cluster key (anyone who reaches them may read and write its shards):
    /// only on a private network.
    #[arg(long, env = "VECTRON_INSECURE")]
    insecure: bool,
}

/// The cluster key, for every process of a cluster and the commands that reach its
/// internal ports.
#[derive(Debug, Args)]
struct ClusterKeyArgs {
    /// A file holding the cluster key (at least 32 characters; `vectron cluster key`
    /// draws one). Every control node, worker and gateway of a cluster gets the same
    /// file: each presents the key on its calls inside the cluster and refuses calls
    /// without it.
    #[arg(long, env = "VECTRON_CLUSTER_KEY_FILE")]
    cluster_key_file: Option<PathBuf>,
}

impl ClusterKeyArgs {
    fn load(&self) -> anyhow::Result<Option<vectron_auth::ClusterKey>> {
        self.cluster_key_file
            .as_deref()
            .map(vectron_auth::ClusterKey::read)
            .transpose()
            .context("the cluster key")
    }
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
    #[command(flatten)]
    cluster_key: ClusterKeyArgs,
    /// Listen on an address other than loopback without a cluster key (anyone who
    /// reaches the port may register workers and send Raft messages): only on a
    /// private network.
    #[arg(long, env = "VECTRON_INSECURE")]
    insecure: bool,
}

/// Settings of the search cache and of the gateway's listeners, shared by `gateway`
/// and `dev`.
#[derive(Debug, Args)]
struct GatewayOptions {
    /// Address of the public gRPC listener (HOST:PORT; port 0 picks a free one).
    #[arg(long, env = "VECTRON_GRPC_ADDR", default_value = "127.0.0.1:6334")]
    grpc_addr: SocketAddr,
    /// Address of the HTTP/JSON listener (HOST:PORT; port 0 picks a free one).
    #[arg(long, env = "VECTRON_HTTP_ADDR", default_value = "127.0.0.1:6333")]
    http_addr: SocketAddr,
    /// Do not cache search results.
    #[arg(long)]
    no_search_cache: bool,
    /// How long a cached search result may be served, in milliseconds.
    #[arg(long, env = "VECTRON_SEARCH_CACHE_TTL_MS", default_value_t = 5000)]
    search_cache_ttl_ms: u64,
    /// Memory the search cache may hold, in MiB.
    #[arg(long, env = "VECTRON_SEARCH_CACHE_MIB", default_value_t = 64)]
    search_cache_mib: u64,
    /// Run every search, even when an identical one is in flight.
    #[arg(long)]
    no_search_dedup: bool,
    /// Compress gRPC answers with gzip for clients that accept it.
    #[arg(long)]
    gzip: bool,
    /// Calls served at once; more are refused with RESOURCE_EXHAUSTED (HTTP 429)
    /// [default: 1024].
    #[arg(long, env = "VECTRON_MAX_CALLS")]
    max_calls: Option<usize>,
    /// Upsert streams (gRPC and NDJSON) at once [default: 8].
    #[arg(long, env = "VECTRON_MAX_STREAMS")]
    max_streams: Option<usize>,
    /// MiB of request bodies and shard answers that calls in flight may hold
    /// [default: 512].
    #[arg(long, env = "VECTRON_MAX_INFLIGHT_MIB")]
    max_inflight_mib: Option<usize>,
    /// Connections open at once on each listener [default: 4096].
    #[arg(long, env = "VECTRON_MAX_CONNECTIONS")]
    max_connections: Option<usize>,
    /// Milliseconds a request body may go without a byte arriving [default: 30000].
    #[arg(long, env = "VECTRON_BODY_IDLE_TIMEOUT_MS")]
    body_idle_timeout_ms: Option<u64>,
    /// Milliseconds an HTTP client has to send a request's headers, idle keep-alive
    /// connections included [default: 30000].
    #[arg(long, env = "VECTRON_HEADER_TIMEOUT_MS")]
    header_timeout_ms: Option<u64>,
    /// Deadline of a call that names none, in milliseconds; also how long a streamed
    /// upsert waits on a core that makes no progress [default: 10000].
    #[arg(long, env = "VECTRON_CALL_TIMEOUT_MS")]
    call_timeout_ms: Option<u64>,
    /// Require an API key (`authorization: Bearer KEY` or `api-key: KEY`) on every call
    /// but the health probes.
    #[arg(long, env = "VECTRON_AUTH")]
    auth: bool,
    /// The bootstrap admin key (at least 16 characters), with --auth. Without it one is
    /// generated at start and printed once (in the ready line and on stderr).
    #[arg(long, env = "VECTRON_ADMIN_KEY", hide_env_values = true)]
    admin_key: Option<String>,
    /// Serve a non-loopback address without --auth (anyone who reaches it may do
    /// anything); without this flag such a gateway refuses to start.
    #[arg(long, env = "VECTRON_INSECURE")]
    insecure: bool,
    /// A file holding the token secret (at least 32 bytes; a trailing newline is not
    /// part of it), with --auth: the gateway then mints tokens (`vectron keys token`)
    /// and takes them. Give every gateway of a cluster the same file. Without it a
    /// gateway takes no tokens, and `vectron dev --auth` draws a secret at start (its
    /// tokens die with the process).
    #[arg(long, env = "VECTRON_JWT_SECRET_FILE")]
    jwt_secret_file: Option<PathBuf>,
    /// PEM file of the certificate chain to serve both listeners over TLS (with
    /// --tls-key). The files are read again when they change: a renewed certificate
    /// needs no restart.
    #[arg(long, env = "VECTRON_TLS_CERT", requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// PEM file of the certificate's private key (with --tls-cert).
    #[arg(long, env = "VECTRON_TLS_KEY", requires = "tls_cert")]
    tls_key: Option<PathBuf>,
}

impl GatewayOptions {
    /// The gateway's settings, and the admin key generated for it (with --auth and no
    /// --admin-key), to print once. `one_gateway` (`vectron dev`) draws a token secret
    /// when none is given.
    fn config(
        &self,
        control: Vec<String>,
        one_gateway: bool,
    ) -> anyhow::Result<(vectron_gateway::GatewayConfig, Option<String>)> {
        let mut config = vectron_gateway::GatewayConfig::new(control);
        let mut generated = None;
        config.auth = vectron_gateway::AuthConfig {
            enabled: self.auth,
            admin_key: match (&self.admin_key, self.auth) {
                (Some(key), _) => Some(key.clone()),
                (None, true) => {
                    let key = vectron_auth::generate_key()
                        .context("generating the admin key")?
                        .key;
                    generated = Some(key.clone());
                    Some(key)
                }
                (None, false) => None,
            },
            insecure: self.insecure,
            tokens: match (&self.jwt_secret_file, self.auth && one_gateway) {
                (Some(path), _) => {
                    let read = std::fs::read(path).with_context(|| {
                        format!("reading the token secret from {}", path.display())
                    })?;
                    let secret = read.trim_ascii_end();
                    Some(
                        vectron_auth::TokenSigner::new(secret)
                            .with_context(|| format!("the token secret in {}", path.display()))?,
                    )
                }
                (None, true) => {
                    Some(vectron_auth::TokenSigner::generate().context("drawing a token secret")?)
                }
                (None, false) => None,
            },
        };
        config.grpc_addr = self.grpc_addr;
        config.http_addr = self.http_addr;
        if let (Some(cert), Some(key)) = (&self.tls_cert, &self.tls_key) {
            config.tls = Some(vectron_gateway::TlsConfig {
                cert: cert.clone(),
                key: key.clone(),
            });
        }
        config.cache.enabled = !self.no_search_cache;
        config.cache.ttl = Duration::from_millis(self.search_cache_ttl_ms);
        config.cache.max_bytes = self.search_cache_mib << 20;
        config.cache.dedup = !self.no_search_dedup;
        config.gzip = self.gzip;
        let admission = &mut config.admission;
        if let Some(n) = self.max_calls {
            admission.max_calls = n;
        }
        if let Some(n) = self.max_streams {
            admission.max_streams = n;
        }
        if let Some(mib) = self.max_inflight_mib {
            admission.max_inflight_bytes = mib << 20;
        }
        if let Some(n) = self.max_connections {
            admission.max_connections = n;
        }
        if let Some(ms) = self.body_idle_timeout_ms {
            admission.body_idle_timeout = Duration::from_millis(ms);
        }
        if let Some(ms) = self.header_timeout_ms {
            admission.header_timeout = Duration::from_millis(ms);
        }
        if let Some(ms) = self.call_timeout_ms {
            config.default_timeout = Duration::from_millis(ms);
        }
        Ok((config, generated))
    }
}

#[derive(Debug, Args)]
struct GatewayArgs {
    /// Control nodes (HOST:PORT, comma-separated).
    #[arg(long, env = "VECTRON_CONTROL", value_delimiter = ',', required = true)]
    control: Vec<String>,
    #[command(flatten)]
    cluster_key: ClusterKeyArgs,
    #[command(flatten)]
    options: GatewayOptions,
}

#[derive(Debug, Args)]
struct DevArgs {
    /// Directory of every piece's data: control/ and worker/ beneath it.
    #[arg(long, env = "VECTRON_DATA_DIR", default_value = "./vectron-data")]
    data_dir: PathBuf,
    /// Number of worker cores. Default: every CPU.
    #[arg(long, env = "VECTRON_CORES")]
    cores: Option<usize>,
    /// Do not pin core threads to CPUs.
    #[arg(long)]
    no_pin: bool,
    /// CPUs to pin the cores to, one per core (comma-separated); the gateway and the
    /// control plane run on the CPUs the cores leave free (all of them when none is).
    #[arg(long, value_delimiter = ',')]
    cpus: Vec<usize>,
    /// Points a shard may hold acknowledged and not yet indexed before writes to it
    /// wait for the indexer [default: as many as 1 MiB of its vectors].
    #[arg(long, env = "VECTRON_MAX_UNINDEXED")]
    max_unindexed: Option<usize>,
    /// With it, dev's control plane, worker and gateway present this cluster key to each
    /// other and refuse calls without it (so another gateway or worker given the same
    /// file may join); with --auth and without it, dev draws one for the run.
    #[command(flatten)]
    cluster_key: ClusterKeyArgs,
    #[command(flatten)]
    options: GatewayOptions,
}

#[derive(Debug, Subcommand)]
enum ClusterCommand {
    /// Print the control nodes, the leader, the workers and the shards that cannot serve.
    Status {
        /// Control nodes to ask (HOST:PORT, comma-separated).
        #[arg(long, env = "VECTRON_CONTROL", value_delimiter = ',', required = true)]
        control: Vec<String>,
        #[command(flatten)]
        cluster_key: ClusterKeyArgs,
    },
    /// Draw a new cluster key and print it: keep it in a file only the cluster's
    /// processes can read (`(umask 077; vectron cluster key > cluster.key)`), and give
    /// that file to each of them with --cluster-key-file.
    Key,
}

fn main() -> anyhow::Result<()> {
    let Cli {
        log_format,
        command,
    } = Cli::parse();
    match command {
        Command::Worker(args) => {
            init_logging("info", log_format);
            let config = worker_config(args)?;
            keep_off_cores(&config);
            current_thread()?.block_on(async {
                vectron_worker::run(config)
                    .await
                    .context("the worker failed")
            })
        }
        Command::Control(args) => {
            init_logging("info,openraft=warn", log_format);
            multi_thread()?.block_on(run_control(args))
        }
        Command::Gateway(args) => {
            init_logging("info", log_format);
            multi_thread()?.block_on(run_gateway(args))
        }
        Command::Bench(args) => {
            init_logging("warn", log_format);
            multi_thread()?.block_on(bench::run(args))
        }
        Command::Dev(args) => {
            init_logging("info,openraft=warn", log_format);
            let worker = dev::worker_config(&args);
            keep_off_cores(&worker);
            multi_thread()?.block_on(dev::run(args, worker))
        }
        Command::Collections(args) => client(cli::Action::Collections(args), log_format),
        Command::Keys(args) => client(cli::Action::Keys(args), log_format),
        Command::Users(args) => client(cli::Action::Users(args), log_format),
        Command::Login(args) => client(cli::Action::Login(args), log_format),
        Command::Plans(args) => client(cli::Action::Plans(args), log_format),
        Command::Points(args) => client(cli::Action::Points(args), log_format),
        Command::Search(args) => client(cli::Action::Search(args), log_format),
        Command::Tune(args) => client(cli::Action::Tune(args), log_format),
        Command::Cluster {
            command: ClusterCommand::Key,
        } => {
            let key = vectron_auth::ClusterKey::generate()?;
            println!("{}", key.expose());
            Ok(())
        }
        Command::Cluster {
            command:
                ClusterCommand::Status {
                    control,
                    cluster_key,
                },
        } => {
            init_logging("warn", log_format);
            let key = cluster_key.load()?;
            multi_thread()?.block_on(async {
                let client = ControlClient::new(control)?.with_cluster_key(key.as_ref());
                let status = client
                    .cluster_status()
                    .await
                    .context("cannot read the cluster status")?;
                print!("{}", vectron_control::render_status(&status));
                Ok(())
            })
        }
    }
}

/// Runs a client command; it prints its own errors and exits non-zero on failure.
fn client(action: cli::Action, log_format: LogFormat) -> anyhow::Result<()> {
    init_logging("warn", log_format);
    cli::run(&multi_thread()?, action);
    Ok(())
}

fn current_thread() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the tokio runtime")
}

fn multi_thread() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the tokio runtime")
}

/// Logs to stderr at `VECTRON_LOG` (a tracing filter), else `default`. openraft's own
/// messages show from `error` unless the filter names `openraft`: it warns on every
/// heartbeat a replica of a shard's group cannot deliver, five times a second per group
/// while a worker is down.
fn init_logging(default: &str, format: LogFormat) {
    let _ = LOG_FORMAT.set(format);
    let spec = std::env::var("VECTRON_LOG").unwrap_or_else(|_| default.to_owned());
    let spec = if spec.contains("openraft") {
        spec
    } else {
        format!("{spec},openraft=error")
    };
    let filter = tracing_subscriber::EnvFilter::try_new(&spec)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => logs.with_ansi(std::io::stderr().is_terminal()).init(),
        LogFormat::Json => logs
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .init(),
    }
}

/// Keeps the process's other threads off its pinned cores' CPUs, before any runtime
/// starts them.
fn keep_off_cores(config: &vectron_worker::WorkerConfig) {
    if let Some(cpus) = config.keep_other_threads_off_cores() {
        tracing::info!(
            ?cpus,
            "threads other than the cores run on the CPUs the cores leave free"
        );
    }
}

fn parse_zone(zone: &str) -> Result<String, String> {
    vectron_control::validate_zone(zone).map_err(|e| e.to_string())?;
    Ok(zone.to_owned())
}

fn worker_config(args: WorkerArgs) -> anyhow::Result<vectron_worker::WorkerConfig> {
    let mut config = vectron_worker::WorkerConfig::new(args.data_dir);
    if let Some(cores) = args.cores {
        config.cores = cores;
    } else if !args.cpus.is_empty() {
        config.cores = args.cpus.len();
    }
    config.host = args.host;
    config.core_base_port = args.core_base_port;
    config.admin_addr = args.admin_addr;
    config.worker_id = args.worker_id;
    config.wal_sync = args.wal_sync;
    config.pin = !args.no_pin;
    config.first_cpu = args.first_cpu;
    config.cpus = args.cpus;
    config.control = args.control;
    config.advertise_host = args.advertise_host;
    config.zone = args.zone;
    config.max_unindexed = args.max_unindexed;
    config.cluster_key = args.cluster_key.load()?;
    config.insecure = args.insecure;
    Ok(config)
}

async fn run_gateway(args: GatewayArgs) -> anyhow::Result<()> {
    let stop = vectron_worker::shutdown_signal();
    let (mut config, admin_key) = args.options.config(args.control, false)?;
    config.cluster_key = args.cluster_key.load()?;
    let gateway = vectron_gateway::Gateway::start(config)
        .await
        .context("the gateway did not start")?;
    announce_admin_key(admin_key.as_deref());
    // One line on stdout, for scripts and tests: where the gateway serves.
    println!(
        "{}",
        serde_json::json!({"event": "ready", "grpc": gateway.grpc_addr().to_string(), "http": gateway.http_addr().to_string(), "admin_key": admin_key})
    );
    stop.await;
    tracing::info!("shutting down the gateway");
    gateway.shutdown().await;
    Ok(())
}

async fn run_control(args: ControlArgs) -> anyhow::Result<()> {
    let stop = vectron_worker::shutdown_signal();
    let mut config = ControlConfig::new(args.node_id, args.addr, args.data_dir);
    config.advertise = args.advertise;
    config.join = args.join;
    config.cluster_key = args.cluster_key.load()?;
    config.insecure = args.insecure;
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
    node.serve_until(stop)
        .await
        .context("the control node stopped with an error")
}

/// Prints a generated admin key once, for the person who started the process: it is
/// kept nowhere, and the next start makes another. With json logs (which log collectors
/// keep) the key stays in the ready line on stdout, and stderr only says where it is.
fn announce_admin_key(key: Option<&str>) {
    let Some(key) = key else { return };
    if LOG_FORMAT.get() == Some(&LogFormat::Json) {
        tell(
            "vectron: authentication is on; the generated admin key is in the ready line on stdout, shown once and kept nowhere; make lasting keys with `vectron keys create` (start with --admin-key to keep one)",
        );
    } else {
        eprintln!(
            "vectron: authentication is on; the admin key, shown once and kept nowhere: {key}\n\
             vectron: make lasting keys with `vectron keys create` (start with --admin-key to keep one)"
        );
    }
}

/// How this process writes on stderr, set once by [`init_logging`].
static LOG_FORMAT: std::sync::OnceLock<LogFormat> = std::sync::OnceLock::new();

/// Tells the person who started the process `text` on stderr: as a line of text with
/// text logs, as a log event with json logs (so that stderr stays one object a line).
fn tell(text: &str) {
    if LOG_FORMAT.get() == Some(&LogFormat::Json) {
        tracing::info!(target: "vectron", "{text}");
    } else {
        eprintln!("{text}");
    }
}
