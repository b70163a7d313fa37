//! The client that workers, the gateway and tools use to talk to the control plane.
//!
//! It holds a list of control-node addresses and follows the leader:
//! - a refusal from a follower names the leader (response metadata); the client goes
//!   there at once and remembers it. Such a refusal means the call was not applied, so
//!   it is followed for every call, idempotent or not;
//! - `UNAVAILABLE` for any other reason (a node down, no leader yet) is retried with
//!   exponential backoff on the next address, but only for idempotent calls (everything
//!   except create and drop) or when the connection was refused, so the call never left;
//! - every other status is returned to the caller as is.
//!
//! Reads go to the leader when the client knows it (so a caller reads its own writes),
//! otherwise to the next address in turn.

use std::collections::HashMap;
use std::error::Error as _;
use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;
use tonic::{Code, Response, Status};
use vectron_auth::ClusterKey;
use vectron_proto::cluster::PresentKey;
use vectron_proto::control::v1 as ctl;
use vectron_proto::control::v1::control_client::ControlClient as Generated;

/// The generated client, on a channel that presents the cluster key.
type Grpc = Generated<InterceptedService<Channel, PresentKey>>;
use vectron_proto::v1 as api;

use crate::consensus::network::lazy_channel;
use crate::error::{LEADER_ADDR_HEADER, NOT_LEADER_HEADER};
use crate::service::convert::is_host_port;

/// A control-plane call failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The client was given no address.
    #[error("no control-plane address given")]
    NoEndpoints,
    /// An address is not `host:port`.
    #[error("control-plane address {address:?} is not host:port")]
    BadAddress {
        /// The address as given.
        address: String,
    },
    /// The control plane answered with an error.
    #[error("the control plane refused the call ({:?}): {}", .0.code(), .0.message())]
    Status(#[source] Status),
    /// No control node could serve the call before the retry deadline.
    #[error(
        "the control plane stayed unavailable for {elapsed:?} ({attempts} attempts); last error: {}",
        last.message()
    )]
    Unavailable {
        /// Attempts made.
        attempts: u32,
        /// Time spent.
        elapsed: Duration,
        /// The last failure.
        #[source]
        last: Status,
    },
}

impl ClientError {
    /// The gRPC code behind the error, when there is one.
    #[must_use]
    pub fn code(&self) -> Option<Code> {
        match self {
            Self::Status(status) | Self::Unavailable { last: status, .. } => Some(status.code()),
            Self::NoEndpoints | Self::BadAddress { .. } => None,
        }
    }
}

/// How long and how often the client retries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Give up retrying a call after this long.
    pub deadline: Duration,
    /// First pause between attempts; it doubles after each failure.
    pub initial_backoff: Duration,
    /// Longest pause between attempts.
    pub max_backoff: Duration,
    /// Longest a single attempt may take.
    pub request_timeout: Duration,
}

impl Default for RetryPolicy {
    /// Retry for 10 s, pausing 50 ms then doubling up to 1 s; 5 s per attempt.
    fn default() -> Self {
        Self {
            deadline: Duration::from_secs(10),
            initial_backoff: Duration::from_millis(50),
            max_backoff: Duration::from_secs(1),
            request_timeout: Duration::from_secs(5),
        }
    }
}

/// Membership calls wait for a learner to catch up, so they get more time per attempt.
const MEMBERSHIP_TIMEOUT: Duration = Duration::from_secs(60);
/// Redirects followed without pausing, in a row.
const FREE_REDIRECTS: u32 = 3;
/// Largest message the client accepts.
const MAX_MESSAGE_BYTES: usize = 64 << 20;

/// A leader-following client of the control plane. Cheap to clone; clones share
/// connections and the known leader.
#[derive(Debug, Clone)]
pub struct ControlClient {
    inner: Arc<Inner>,
    policy: RetryPolicy,
    key: PresentKey,
}

#[derive(Debug)]
struct Inner {
    endpoints: Vec<String>,
    next: AtomicUsize,
    leader: Mutex<Option<String>>,
    channels: Mutex<HashMap<String, Channel>>,
}

impl ControlClient {
    /// A client of the control nodes at `endpoints` (`host:port` each). Connections open
    /// on first use.
    ///
    /// # Errors
    /// [`ClientError::NoEndpoints`] for an empty list, [`ClientError::BadAddress`] for an
    /// address that is not `host:port`.
    pub fn new<I, S>(endpoints: I) -> Result<Self, ClientError>
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let endpoints: Vec<String> = endpoints.into_iter().map(Into::into).collect();
        if endpoints.is_empty() {
            return Err(ClientError::NoEndpoints);
        }
        if let Some(bad) = endpoints.iter().find(|a| !is_host_port(a)) {
            return Err(ClientError::BadAddress {
                address: bad.clone(),
            });
        }
        Ok(Self {
            inner: Arc::new(Inner {
                endpoints,
                next: AtomicUsize::new(0),
                leader: Mutex::new(None),
                channels: Mutex::new(HashMap::new()),
            }),
            policy: RetryPolicy::default(),
            key: PresentKey::default(),
        })
    }

    /// The same client presenting `key` on every call (control nodes started with a
    /// cluster key refuse calls without it).
    #[must_use]
    pub fn with_cluster_key(mut self, key: Option<&ClusterKey>) -> Self {
        self.key = PresentKey::new(key);
        self
    }

    /// The same client with another retry policy.
    #[must_use]
    pub fn with_retry_policy(mut self, policy: RetryPolicy) -> Self {
        self.policy = policy;
        self
    }

    /// The leader's address, when the client has learned it.
    #[must_use]
    pub fn leader(&self) -> Option<String> {
        self.inner
            .leader
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Registers a worker (again). Idempotent: the same id resumes its shards.
    ///
    /// # Errors
    /// [`ClientError`]; `INVALID_ARGUMENT` or `FAILED_PRECONDITION` when refused.
    pub async fn register_worker(
        &self,
        request: ctl::RegisterWorkerRequest,
    ) -> Result<ctl::RegisterWorkerResponse, ClientError> {
        self.call(true, self.policy.request_timeout, move |mut c| {
            let request = request.clone();
            async move { c.register_worker(request).await }
        })
        .await
    }

    /// Sends a heartbeat and returns the worker's assignments.
    ///
    /// # Errors
    /// [`ClientError`]; `NOT_FOUND` when the worker must register again.
    pub async fn heartbeat(
        &self,
        request: ctl::HeartbeatRequest,
    ) -> Result<ctl::HeartbeatResponse, ClientError> {
        self.call(true, self.policy.request_timeout, move |mut c| {
            let request = request.clone();
            async move { c.heartbeat(request).await }
        })
        .await
    }

    /// Creates a collection and returns it with every default resolved. Not retried
    /// after an ambiguous failure, since it is not idempotent.
    ///
    /// # Errors
    /// [`ClientError`]; `INVALID_ARGUMENT`, `ALREADY_EXISTS` or `FAILED_PRECONDITION`.
    pub async fn create_collection(
        &self,
        spec: api::CollectionSpec,
    ) -> Result<api::CollectionInfo, ClientError> {
        self.create_owned_collection(spec, "", None).await
    }

    /// [`ControlClient::create_collection`] for `owner`, who may own at most
    /// `max_owned` collections with this one.
    ///
    /// # Errors
    /// As [`ControlClient::create_collection`]; `RESOURCE_EXHAUSTED` when the owner
    /// already owns `max_owned`.
    pub async fn create_owned_collection(
        &self,
        spec: api::CollectionSpec,
        owner: &str,
        max_owned: Option<u32>,
    ) -> Result<api::CollectionInfo, ClientError> {
        let response = self
            .call(false, self.policy.request_timeout, move |mut c| {
                let request = ctl::CreateCollectionRequest {
                    spec: Some(spec.clone()),
                    owner: owner.to_owned(),
                    max_owned,
                };
                async move { c.create_collection(request).await }
            })
            .await?;
        response.collection.ok_or_else(|| {
            ClientError::Status(Status::internal("create answered without the collection"))
        })
    }

    /// Drops a collection. Not retried after an ambiguous failure.
    ///
    /// # Errors
    /// [`ClientError`]; `NOT_FOUND` for an unknown collection.
    pub async fn drop_collection(&self, name: &str) -> Result<(), ClientError> {
        let name = name.to_owned();
        self.call(false, self.policy.request_timeout, move |mut c| {
            let request = api::DropCollectionRequest { name: name.clone() };
            async move { c.drop_collection(request).await }
        })
        .await
        .map(drop)
    }

    /// Every collection, ordered by name.
    ///
    /// # Errors
    /// [`ClientError`].
    pub async fn list_collections(&self) -> Result<Vec<api::CollectionInfo>, ClientError> {
        self.call(true, self.policy.request_timeout, |mut c| async move {
            c.list_collections(api::ListCollectionsRequest {}).await
        })
        .await
        .map(|r| r.collections)
    }

    /// One collection.
    ///
    /// # Errors
    /// [`ClientError`]; `NOT_FOUND` for an unknown collection.
    pub async fn describe_collection(
        &self,
        name: &str,
    ) -> Result<api::CollectionInfo, ClientError> {
        let name = name.to_owned();
        self.call(true, self.policy.request_timeout, move |mut c| {
            let request = api::DescribeCollectionRequest { name: name.clone() };
            async move { c.describe_collection(request).await }
        })
        .await
    }

    /// Changes a collection's mutable settings (its default `ef`); returns it as updated.
    /// Retried: the update sets values, so a second try changes nothing more.
    ///
    /// # Errors
    /// [`ClientError`]; `NOT_FOUND` for an unknown collection, `INVALID_ARGUMENT` for a
    /// setting fixed at creation.
    pub async fn update_collection(
        &self,
        request: api::UpdateCollectionRequest,
    ) -> Result<api::CollectionInfo, ClientError> {
        self.call(true, self.policy.request_timeout, move |mut c| {
            let request = request.clone();
            async move { c.update_collection(request).await }
        })
        .await
    }

    /// Stores a key a gateway made (its id and the hash of its secret). Retried: a key
    /// whose first try was stored answers `ALREADY_EXISTS` to the retry.
    ///
    /// # Errors
    /// [`ClientError`]; `ALREADY_EXISTS`, `RESOURCE_EXHAUSTED`, `INVALID_ARGUMENT`.
    pub async fn create_api_key(
        &self,
        entry: ctl::ApiKeyEntry,
    ) -> Result<api::KeyInfo, ClientError> {
        self.call(false, self.policy.request_timeout, move |mut c| {
            let request = ctl::CreateApiKeyRequest {
                entry: Some(entry.clone()),
            };
            async move { c.create_api_key(request).await }
        })
        .await
    }

    /// Every API key, without hashes.
    ///
    /// # Errors
    /// [`ClientError`].
    pub async fn list_api_keys(&self) -> Result<Vec<api::KeyInfo>, ClientError> {
        let listed = self
            .call(true, self.policy.request_timeout, |mut c| async move {
                c.list_api_keys(api::ListKeysRequest {}).await
            })
            .await?;
        Ok(listed.keys)
    }

    /// Revokes an API key.
    ///
    /// # Errors
    /// [`ClientError`]; `NOT_FOUND` for an unknown id.
    pub async fn revoke_api_key(&self, id: &str) -> Result<(), ClientError> {
        let id = id.to_owned();
        self.call(false, self.policy.request_timeout, move |mut c| {
            let request = api::RevokeKeyRequest { id: id.clone() };
            async move { c.revoke_api_key(request).await }
        })
        .await?;
        Ok(())
    }

    /// Stores a user a gateway made (their name and the hash of their password). Not
    /// retried: a retry of a stored user would answer `ALREADY_EXISTS`.
    ///
    /// # Errors
    /// [`ClientError`]; `ALREADY_EXISTS`, `RESOURCE_EXHAUSTED`, `INVALID_ARGUMENT`.
    pub async fn store_user(&self, entry: ctl::UserEntry) -> Result<api::UserInfo, ClientError> {
        self.call(false, self.policy.request_timeout, move |mut c| {
            let request = ctl::StoreUserRequest {
                entry: Some(entry.clone()),
            };
            async move { c.store_user(request).await }
        })
        .await
    }

    /// Every user, without password hashes.
    ///
    /// # Errors
    /// [`ClientError`].
    pub async fn list_users(&self) -> Result<Vec<api::UserInfo>, ClientError> {
        let listed = self
            .call(true, self.policy.request_timeout, |mut c| async move {
                c.list_users(api::ListUsersRequest {}).await
            })
            .await?;
        Ok(listed.users)
    }

    /// Deletes a user.
    ///
    /// # Errors
    /// [`ClientError`]; `NOT_FOUND` for an unknown name.
    pub async fn delete_user(&self, name: &str) -> Result<(), ClientError> {
        let name = name.to_owned();
        self.call(false, self.policy.request_timeout, move |mut c| {
            let request = api::DeleteUserRequest { name: name.clone() };
            async move { c.delete_user(request).await }
        })
        .await?;
        Ok(())
    }

    /// Makes or changes a plan. Retried: setting a plan twice sets it once.
    ///
    /// # Errors
    /// [`ClientError`]; `INVALID_ARGUMENT`, `RESOURCE_EXHAUSTED`.
    pub async fn set_plan(&self, plan: api::Plan) -> Result<api::Plan, ClientError> {
        self.call(true, self.policy.request_timeout, move |mut c| {
            let plan = plan.clone();
            async move { c.set_plan(plan).await }
        })
        .await
    }

    /// Every plan.
    ///
    /// # Errors
    /// [`ClientError`].
    pub async fn list_plans(&self) -> Result<Vec<api::Plan>, ClientError> {
        let listed = self
            .call(true, self.policy.request_timeout, |mut c| async move {
                c.list_plans(api::ListPlansRequest {}).await
            })
            .await?;
        Ok(listed.plans)
    }

    /// Deletes a plan.
    ///
    /// # Errors
    /// [`ClientError`]; `FAILED_PRECONDITION` for an unknown plan or one
    /// a key or user names.
    pub async fn delete_plan(&self, name: &str) -> Result<(), ClientError> {
        let name = name.to_owned();
        self.call(false, self.policy.request_timeout, move |mut c| {
            let request = api::DeletePlanRequest { name: name.clone() };
            async move { c.delete_plan(request).await }
        })
        .await?;
        Ok(())
    }

    /// The routing table of every collection, or of one.
    ///
    /// # Errors
    /// [`ClientError`]; `NOT_FOUND` for an unknown collection.
    pub async fn routing(
        &self,
        collection: Option<&str>,
    ) -> Result<ctl::RoutingTable, ClientError> {
        let collection = collection.unwrap_or_default().to_owned();
        self.call(true, self.policy.request_timeout, move |mut c| {
            let request = ctl::GetRoutingRequest {
                collection: collection.clone(),
            };
            async move { c.get_routing(request).await }
        })
        .await
    }

    /// Follows routing changes from `known_version` on (0: from the current table). The
    /// watch survives the loss of a control node: it resubscribes elsewhere.
    #[must_use]
    pub fn watch_routing(&self, known_version: u64) -> RoutingWatch {
        RoutingWatch {
            client: self.clone(),
            known_version,
            stream: None,
        }
    }

    /// The state of the cluster as the answering node sees it.
    ///
    /// # Errors
    /// [`ClientError`].
    pub async fn cluster_status(&self) -> Result<ctl::ClusterStatusResponse, ClientError> {
        self.call(true, self.policy.request_timeout, |mut c| async move {
            c.cluster_status(ctl::ClusterStatusRequest {}).await
        })
        .await
    }

    /// Adds a control node as a learner and waits until it has caught up.
    ///
    /// # Errors
    /// [`ClientError`].
    pub async fn add_learner(
        &self,
        node_id: u64,
        address: &str,
    ) -> Result<ctl::MembershipResponse, ClientError> {
        let address = address.to_owned();
        self.call(true, MEMBERSHIP_TIMEOUT, move |mut c| {
            let request = ctl::AddLearnerRequest {
                node_id,
                address: address.clone(),
            };
            async move { c.add_learner(request).await }
        })
        .await
    }

    /// Sets the voters of the control cluster.
    ///
    /// # Errors
    /// [`ClientError`].
    pub async fn change_membership(
        &self,
        voters: &[u64],
        retain: bool,
    ) -> Result<ctl::MembershipResponse, ClientError> {
        let voters = voters.to_vec();
        self.call(true, MEMBERSHIP_TIMEOUT, move |mut c| {
            let request = ctl::ChangeMembershipRequest {
                voters: voters.clone(),
                retain,
            };
            async move { c.change_membership(request).await }
        })
        .await
    }

    /// Adds a control node as a voter (learner first, then voter). Idempotent.
    ///
    /// # Errors
    /// [`ClientError`]; `FAILED_PRECONDITION` when the id is taken by another address.
    pub async fn join_cluster(
        &self,
        node_id: u64,
        address: &str,
    ) -> Result<ctl::MembershipResponse, ClientError> {
        let address = address.to_owned();
        let timeout = MEMBERSHIP_TIMEOUT.max(self.policy.request_timeout);
        self.call(true, timeout, move |mut c| {
            let request = ctl::JoinClusterRequest {
                node_id,
                address: address.clone(),
            };
            async move { c.join_cluster(request).await }
        })
        .await
    }

    /// The address to try next: the leader if known, otherwise the next in turn.
    fn pick(&self) -> String {
        if let Some(leader) = self.leader() {
            return leader;
        }
        let n = self.inner.next.fetch_add(1, Ordering::Relaxed);
        self.inner.endpoints[n % self.inner.endpoints.len()].clone()
    }

    fn set_leader(&self, leader: Option<String>) {
        *self
            .inner
            .leader
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = leader;
    }

    fn grpc(&self, address: &str) -> Result<Grpc, ClientError> {
        let mut channels = self
            .inner
            .channels
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let channel = match channels.get(address) {
            Some(channel) => channel.clone(),
            None => {
                let channel = lazy_channel(address).map_err(|_| ClientError::BadAddress {
                    address: address.to_owned(),
                })?;
                channels.insert(address.to_owned(), channel.clone());
                channel
            }
        };
        Ok(Generated::with_interceptor(channel, self.key.clone())
            .max_decoding_message_size(MAX_MESSAGE_BYTES)
            .max_encoding_message_size(MAX_MESSAGE_BYTES))
    }

    async fn call<T, F, Fut>(
        &self,
        idempotent: bool,
        timeout: Duration,
        call: F,
    ) -> Result<T, ClientError>
    where
        F: Fn(Grpc) -> Fut,
        Fut: Future<Output = Result<Response<T>, Status>>,
    {
        let started = Instant::now();
        let mut backoff = self.policy.initial_backoff;
        let mut attempts = 0;
        let mut redirects = 0;
        loop {
            attempts += 1;
            let address = self.pick();
            let status = match tokio::time::timeout(timeout, call(self.grpc(&address)?)).await {
                Ok(Ok(response)) => return Ok(response.into_inner()),
                Ok(Err(status)) => status,
                Err(_) => Status::deadline_exceeded(format!(
                    "no answer from {address} within {timeout:?}"
                )),
            };
            let not_leader = status.metadata().contains_key(NOT_LEADER_HEADER);
            let leader = status
                .metadata()
                .get(LEADER_ADDR_HEADER)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned);
            let retry = if not_leader {
                true
            } else {
                match status.code() {
                    Code::Unavailable => idempotent || never_sent(&status),
                    Code::DeadlineExceeded => idempotent,
                    _ => false,
                }
            };
            if !retry {
                return Err(ClientError::Status(status));
            }
            match leader {
                Some(leader) if leader != address => {
                    self.set_leader(Some(leader));
                    redirects += 1;
                    if redirects <= FREE_REDIRECTS {
                        continue;
                    }
                }
                _ => self.set_leader(None),
            }
            let elapsed = started.elapsed();
            if elapsed + backoff > self.policy.deadline {
                return Err(ClientError::Unavailable {
                    attempts,
                    elapsed,
                    last: status,
                });
            }
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(self.policy.max_backoff);
        }
    }
}

/// Whether a failure happened before the request left: the connection was refused.
fn never_sent(status: &Status) -> bool {
    let mut source = status.source();
    while let Some(error) = source {
        if let Some(io) = error.downcast_ref::<std::io::Error>()
            && io.kind() == std::io::ErrorKind::ConnectionRefused
        {
            return true;
        }
        source = error.source();
    }
    false
}

/// A subscription to routing changes; see [`ControlClient::watch_routing`].
#[derive(Debug)]
pub struct RoutingWatch {
    client: ControlClient,
    known_version: u64,
    stream: Option<tonic::Streaming<ctl::RoutingTable>>,
}

impl RoutingWatch {
    /// The next routing table whose version differs from the last one returned.
    ///
    /// # Errors
    /// [`ClientError`] when no control node accepts the subscription before the retry
    /// deadline.
    pub async fn next(&mut self) -> Result<ctl::RoutingTable, ClientError> {
        loop {
            let stream = match &mut self.stream {
                Some(stream) => stream,
                None => {
                    let known_version = self.known_version;
                    let timeout = self.client.policy.request_timeout;
                    let stream = self
                        .client
                        .call(true, timeout, move |mut c| async move {
                            c.watch_routing(ctl::WatchRoutingRequest { known_version })
                                .await
                        })
                        .await?;
                    self.stream.insert(stream)
                }
            };
            match stream.message().await {
                Ok(Some(table)) => {
                    self.known_version = table.version;
                    return Ok(table);
                }
                Ok(None) | Err(_) => {
                    // The node went away: subscribe again, elsewhere if need be.
                    self.stream = None;
                    self.client.set_leader(None);
                    tokio::time::sleep(self.client.policy.initial_backoff).await;
                }
            }
        }
    }

    /// The version of the last table returned (or the one the watch started from).
    #[must_use]
    pub fn known_version(&self) -> u64 {
        self.known_version
    }
}
