//! Settings of a worker.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use vectron_auth::ClusterKey;
use vectron_wal::SyncPolicy;

/// How a worker runs.
#[derive(Debug, Clone)]
pub struct WorkerConfig {
    /// Directory holding the worker's identity and every core's shards.
    pub data_dir: PathBuf,
    /// Number of cores (threads). Default: every CPU.
    pub cores: usize,
    /// Address the core ports listen on. Default 127.0.0.1.
    pub host: IpAddr,
    /// Port of core 0; core `i` listens on `core_base_port + i`. 0 picks free ports
    /// (tests). Default 7400.
    pub core_base_port: u16,
    /// Address of the admin HTTP listener (stats, metrics, health). Port 0 picks a free
    /// port. Default 127.0.0.1:7390.
    pub admin_addr: SocketAddr,
    /// The worker's id. Default: the id stored in the data directory, created once.
    pub worker_id: Option<String>,
    /// When a write is acknowledged. Default: after `fdatasync`.
    pub wal_sync: SyncPolicy,
    /// Pin core `i` to CPU `first_cpu + i` (modulo the CPU count). Default on.
    pub pin: bool,
    /// The CPU of core 0 when pinning.
    pub first_cpu: usize,
    /// Explicit CPUs to pin core `i` to (`cpus[i]`), overriding `first_cpu`: for
    /// placing cores on distinct physical cores or one NUMA node.
    pub cpus: Vec<usize>,
    /// Control-plane addresses (`host:port`). Empty: the worker runs standalone and
    /// shards are opened through `CoreService.OpenShard`.
    pub control: Vec<String>,
    /// Host that clients use to reach the core ports, sent to the control plane.
    /// Default: `host`.
    pub advertise_host: Option<String>,
    /// Zone label sent to the control plane (rack, availability zone): a shard's
    /// replicas spread over zones before workers. Default: none.
    pub zone: String,
    /// Points a shard may hold acknowledged and not yet indexed before writes to it wait
    /// for the indexer (then are refused with `RESOURCE_EXHAUSTED`). Default
    /// as many as 1 MiB of the shard's vectors (`vectron_core_shard::unindexed_bound`).
    pub max_unindexed: Option<usize>,
    /// The key every caller of a core port and of the admin listener's statistics must
    /// present (`UNAUTHENTICATED` / 401 without it), which the worker presents to the
    /// control plane and its cores to their peers. Give every member of the cluster the
    /// same one. Default none: calls are not checked.
    pub cluster_key: Option<ClusterKey>,
    /// Serve the core ports and the admin listener on an address other than loopback
    /// without a cluster key: anyone who reaches a core port may then read and write
    /// its shards (and, on a standalone worker, open, close and wipe them). Without it
    /// (or a key) such a worker refuses to start; with it, the network must be private.
    /// Default off.
    pub insecure: bool,
}

impl WorkerConfig {
    /// Defaults, with data under `data_dir`.
    pub fn new(data_dir: impl Into<PathBuf>) -> Self {
        Self {
            data_dir: data_dir.into(),
            cores: std::thread::available_parallelism().map_or(1, usize::from),
            host: IpAddr::V4(Ipv4Addr::LOCALHOST),
            core_base_port: 7400,
            admin_addr: SocketAddr::from((Ipv4Addr::LOCALHOST, 7390)),
            worker_id: None,
            wal_sync: SyncPolicy::Always,
            pin: true,
            first_cpu: 0,
            cpus: Vec::new(),
            control: Vec::new(),
            advertise_host: None,
            zone: String::new(),
            max_unindexed: None,
            cluster_key: None,
            insecure: false,
        }
    }
}

impl WorkerConfig {
    /// The CPU each core is pinned to (`None` when cores are not pinned).
    pub fn core_cpus(&self) -> Option<Vec<usize>> {
        if !self.pin {
            return None;
        }
        let cpus = std::thread::available_parallelism().map_or(1, usize::from);
        Some(
            (0..self.cores)
                .map(|i| match self.cpus.get(i) {
                    Some(&cpu) => cpu,
                    None => (self.first_cpu + i) % cpus,
                })
                .collect(),
        )
    }

    /// Keeps the calling thread and every thread it starts later (the worker's admin
    /// thread, and in one process the gateway and control plane) off the CPUs the
    /// cores are pinned to, when the process may run on other CPUs: call it before
    /// starting a runtime. Returns the CPUs left to those threads, `None` when nothing
    /// changed (cores not pinned, or no CPU left beside theirs).
    pub fn keep_other_threads_off_cores(&self) -> Option<Vec<usize>> {
        vectron_core_shard::keep_off_cpus(&self.core_cpus()?)
    }
}

/// Parses a sync policy: `always`, `never`, or `interval:MS`.
pub fn parse_sync_policy(s: &str) -> Result<SyncPolicy, String> {
    match s {
        "always" => Ok(SyncPolicy::Always),
        "never" => Ok(SyncPolicy::Never),
        _ => match s.strip_prefix("interval:").map(str::parse::<u64>) {
            Some(Ok(ms)) if ms > 0 => Ok(SyncPolicy::Interval(Duration::from_millis(ms))),
            _ => Err(format!(
                "{s:?} is not a sync policy: use always, never or interval:MS"
            )),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cores_take_their_cpus_in_turn_or_as_listed() {
        let cpus = std::thread::available_parallelism().map_or(1, usize::from);
        let mut config = WorkerConfig::new("/nonexistent");
        config.cores = 3;
        config.first_cpu = 1;
        assert_eq!(config.core_cpus(), Some(vec![1 % cpus, 2 % cpus, 3 % cpus]));
        config.cpus = vec![5, 7, 9];
        assert_eq!(config.core_cpus(), Some(vec![5, 7, 9]));
        config.pin = false;
        assert_eq!(config.core_cpus(), None);
        assert_eq!(config.keep_other_threads_off_cores(), None);
    }

    #[test]
    fn sync_policies_parse() {
        assert_eq!(parse_sync_policy("always"), Ok(SyncPolicy::Always));
        assert_eq!(parse_sync_policy("never"), Ok(SyncPolicy::Never));
        assert_eq!(
            parse_sync_policy("interval:5"),
            Ok(SyncPolicy::Interval(Duration::from_millis(5)))
        );
        for bad in ["sometimes", "interval:", "interval:0", "interval:x"] {
            assert!(parse_sync_policy(bad).is_err(), "{bad}");
        }
    }
}
