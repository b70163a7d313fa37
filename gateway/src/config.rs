//! How a gateway runs: where it listens, whom it asks for routing, its limits, its
//! cache and its connections to cores.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use vectron_auth::{ClusterKey, TokenSigner};
pub use vectron_proto::rules::Limits;

use crate::admission::AdmissionConfig;

/// The search cache and the deduplication of identical searches in flight.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CacheConfig {
    /// Keep search results (TinyLFU admission, TTL expiry). Default on.
    pub enabled: bool,
    /// Bytes of results the cache may hold. Default 64 MiB.
    pub max_bytes: u64,
    /// How long a result may be served after it was computed. Writes through this
    /// gateway make a collection's cached results stale at once; the TTL bounds how long
    /// writes through other gateways may go unseen. Default 5 s.
    pub ttl: Duration,
    /// Run identical searches that arrive while one is in flight only once. Default on.
    pub dedup: bool,
}

impl Default for CacheConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            max_bytes: 64 << 20,
            ttl: Duration::from_secs(5),
            dedup: true,
        }
    }
}

/// Connections from the gateway to worker cores: one HTTP/2 connection per core,
/// shared by every call to it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CoreChannelConfig {
    /// Time allowed to connect to a core. Default 2 s.
    pub connect_timeout: Duration,
    /// HTTP/2 PING interval on idle and busy connections. Default 1 s.
    pub keepalive_interval: Duration,
    /// Time a PING may go unanswered before the connection is dropped. Default 2 s.
    /// A core answers PINGs between any two pieces of its work, so silence this long
    /// means its process or machine is frozen: its calls then fail as unavailable and
    /// go to another replica of a replicated shard, rather than wait out their
    /// deadline on a leader its group has replaced.
    pub keepalive_timeout: Duration,
    /// Calls to one shard in flight at once for one request. Default 8.
    pub max_in_flight_per_request: usize,
    /// Largest batch of points sent to a core in one message, in bytes (ids, vectors
    /// and payloads). Default 4 MiB.
    pub max_batch_bytes: usize,
}

impl Default for CoreChannelConfig {
    fn default() -> Self {
        Self {
            connect_timeout: Duration::from_secs(2),
            keepalive_interval: Duration::from_secs(1),
            keepalive_timeout: Duration::from_secs(2),
            max_in_flight_per_request: 8,
            max_batch_bytes: 4 << 20,
        }
    }
}

/// Everything a gateway needs.
#[derive(Debug, Clone)]
pub struct GatewayConfig {
    /// Control nodes (`host:port`), any of them; the client follows the leader.
    pub control: Vec<String>,
    /// Address of the public gRPC listener. Port 0 picks a free port. Default
    /// 127.0.0.1:6334.
    pub grpc_addr: SocketAddr,
    /// Address of the HTTP/JSON listener. Port 0 picks a free port. Default
    /// 127.0.0.1:6333.
    pub http_addr: SocketAddr,
    /// Request limits: the rulebook's by default, and never looser (a core refuses
    /// what the rulebook does).
    pub limits: Limits,
    /// Search cache and deduplication.
    pub cache: CacheConfig,
    /// Connections to cores.
    pub cores: CoreChannelConfig,
    /// How much the gateway takes on at once.
    pub admission: AdmissionConfig,
    /// Deadline of a call that names none. Default 10 s.
    pub default_timeout: Duration,
    /// Time a collection create waits for every shard to serve. Default 10 s.
    pub create_wait: Duration,
    /// Compress gRPC answers with gzip for clients that accept it (requests in gzip are
    /// always accepted). Default off: vectors compress poorly.
    pub gzip: bool,
    /// On shutdown, how long calls in flight may take to finish. Default 10 s.
    pub shutdown_grace: Duration,
    /// Who may call. Default: authentication off, every caller may do everything.
    pub auth: AuthConfig,
    /// Serve both listeners over TLS with this certificate. Default: plaintext.
    pub tls: Option<TlsConfig>,
    /// The cluster key the gateway presents to control nodes and cores (theirs refuse
    /// calls without it when they hold one). Default none.
    pub cluster_key: Option<ClusterKey>,
}

/// The certificate both listeners serve; the files are read again when they change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsConfig {
    /// PEM file of the certificate chain, the gateway's own certificate first.
    pub cert: PathBuf,
    /// PEM file of its private key (PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
}

/// Authentication of the gateway's callers.
#[derive(Clone, Default)]
pub struct AuthConfig {
    /// Every call but the health probes must carry an API key.
    pub enabled: bool,
    /// A key that is an admin's, given at start (at least
    /// [`MIN_ADMIN_KEY_LEN`] characters): the way in before any key is made. Only its
    /// hash is kept.
    pub admin_key: Option<String>,
    /// Serve an address other than loopback with authentication off. Without it such a
    /// gateway refuses to start: anyone who reaches it could read and drop everything.
    pub insecure: bool,
    /// Signs and checks tokens (`Keys.CreateToken`), with a secret every gateway of the
    /// cluster shares. Without it the gateway mints no tokens and takes none.
    pub tokens: Option<TokenSigner>,
}

/// Shortest bootstrap admin key.
pub const MIN_ADMIN_KEY_LEN: usize = 16;

/// Logins one client address may try in a minute (all at once, or spread out); more
/// are refused with `RESOURCE_EXHAUSTED` / HTTP 429 and `retry-after`. Slows guessing
/// passwords to this many a minute per address.
pub const LOGIN_ATTEMPTS_PER_MINUTE: u32 = 5;

impl std::fmt::Debug for AuthConfig {
    // The admin key stays out of logs.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthConfig")
            .field("enabled", &self.enabled)
            .field("admin_key", &self.admin_key.as_ref().map(|_| "<set>"))
            .field("insecure", &self.insecure)
            .field("tokens", &self.tokens.as_ref().map(|_| "<set>"))
            .finish()
    }
}

impl GatewayConfig {
    /// Defaults, with the control plane at `control`.
    pub fn new<I, S>(control: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Self {
            control: control.into_iter().map(Into::into).collect(),
            grpc_addr: SocketAddr::from((Ipv4Addr::LOCALHOST, 6334)),
            http_addr: SocketAddr::from((Ipv4Addr::LOCALHOST, 6333)),
            limits: Limits::default(),
            cache: CacheConfig::default(),
            cores: CoreChannelConfig::default(),
            admission: AdmissionConfig::default(),
            default_timeout: Duration::from_secs(10),
            create_wait: Duration::from_secs(10),
            gzip: false,
            shutdown_grace: Duration::from_secs(10),
            auth: AuthConfig::default(),
            tls: None,
            cluster_key: None,
        }
    }
}
