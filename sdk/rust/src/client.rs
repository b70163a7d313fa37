//! The client: one HTTP/2 channel to a gateway, shared by every call.

use std::future::Future;
use std::hash::{BuildHasher, RandomState};
use std::time::Duration;

use tokio_stream::{Stream, StreamExt};
use tonic::Status;
use tonic::codec::CompressionEncoding;
use tonic::metadata::{Ascii, MetadataValue};
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Channel, Endpoint};
use vectron_proto::v1::collections_client::CollectionsClient;
use vectron_proto::v1::keys_client::KeysClient;
use vectron_proto::v1::plans_client::PlansClient;
use vectron_proto::v1::points_client::PointsClient;
use vectron_proto::v1::stats_client::StatsClient;
use vectron_proto::v1::users_client::UsersClient;
use vectron_proto::v1::{
    CollectionInfo, CollectionSpec, CoreStatsRequest, CoreStatsResponse, CountRequest,
    CreateCollectionRequest, DeleteRequest, DescribeCollectionRequest, DropCollectionRequest,
    Filter, GetRequest, ListCollectionsRequest, Point, PointIds, ReadConsistency, ScrollRequest,
    ScrollResponse, SearchBatchRequest, SearchRequest, SearchResponse, SearchStreamEvent,
    UpsertRequest, UpsertResponse, delete_request,
};
use vectron_proto::v1::{
    CreateKeyRequest, CreateKeyResponse, CreateTokenRequest, CreateTokenResponse, KeyInfo,
    ListKeysRequest, RevokeKeyRequest,
};
use vectron_proto::v1::{
    CreateUserRequest, DeleteUserRequest, ListUsersRequest, LoginRequest, LoginResponse, UserInfo,
};
use vectron_proto::v1::{DeletePlanRequest, ListPlansRequest, Plan};
use vectron_proto::v1::{HnswConfig, PayloadIndex, SearchCacheSettings, UpdateCollectionRequest};

use crate::Error;

/// The events of a streamed search ([`Client::search_stream`]), in the order the
/// server sent them; a [`Stream`] too.
#[derive(Debug)]
pub struct SearchStream {
    inner: tonic::Streaming<SearchStreamEvent>,
}

impl SearchStream {
    /// The next event, or `None` after the last one.
    ///
    /// # Errors
    /// The status the stream ended with: `DEADLINE_EXCEEDED` when the deadline passed
    /// before every shard answered (without partial results allowed), or a shard's
    /// failure.
    pub async fn next(&mut self) -> Option<Result<SearchStreamEvent, Error>> {
        StreamExt::next(self).await
    }

    /// Reads every event and returns the last one, whose `result` is the answer.
    ///
    /// # Errors
    /// As [`SearchStream::next`]; a stream that ends without its last event (`done`) is
    /// an [`Error::Internal`].
    pub async fn last(mut self) -> Result<SearchStreamEvent, Error> {
        while let Some(event) = self.next().await {
            let event = event?;
            if event.done {
                return Ok(event);
            }
        }
        Err(Error::Internal(
            "the search stream ended before its last event".into(),
        ))
    }
}

impl Stream for SearchStream {
    type Item = Result<SearchStreamEvent, Error>;

    fn poll_next(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Self::Item>> {
        std::pin::Pin::new(&mut self.inner)
            .poll_next(cx)
            .map(|event| event.map(|e| e.map_err(Error::from)))
    }
}

/// Most points the server accepts in one upsert request or stream message.
pub const MAX_POINTS_PER_REQUEST: usize = 10_000;

/// Connection and retry settings. Build a [`Client`] with [`ClientBuilder::connect`].
#[derive(Debug, Clone)]
pub struct ClientBuilder {
    endpoint: String,
    timeout: Option<Duration>,
    connect_timeout: Duration,
    retries: u32,
    backoff: Duration,
    max_message_bytes: usize,
    gzip: bool,
    read_consistency: ReadConsistency,
    credentials: Credentials,
    #[cfg(feature = "tls")]
    tls: Option<Tls>,
}

impl ClientBuilder {
    fn new(endpoint: impl Into<String>) -> Self {
        Self {
            endpoint: endpoint.into(),
            timeout: Some(Duration::from_secs(30)),
            connect_timeout: Duration::from_secs(5),
            retries: 3,
            backoff: Duration::from_millis(50),
            max_message_bytes: 64 << 20,
            gzip: false,
            read_consistency: ReadConsistency::Unspecified,
            credentials: Credentials(None),
            #[cfg(feature = "tls")]
            tls: None,
        }
    }

    /// Deadline of every call (sent to the server as `grpc-timeout`). Default 30 s;
    /// `None` waits forever.
    pub fn timeout(mut self, timeout: Option<Duration>) -> Self {
        self.timeout = timeout;
        self
    }

    /// Time allowed to establish the connection. Default 5 s.
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// How often an idempotent call that failed with `UNAVAILABLE` is retried, with
    /// exponential backoff starting at `backoff` (jittered). Default 3 retries from 50 ms.
    /// Creating and dropping collections and streamed upserts are never retried.
    pub fn retries(mut self, retries: u32, backoff: Duration) -> Self {
        self.retries = retries;
        self.backoff = backoff;
        self
    }

    /// Largest message sent or received. Default 64 MiB, the server's limit.
    pub fn max_message_bytes(mut self, bytes: usize) -> Self {
        self.max_message_bytes = bytes;
        self
    }

    /// Compress requests with gzip and accept gzip responses. Default off: vectors
    /// compress poorly, payload-heavy traffic may gain.
    pub fn gzip(mut self, on: bool) -> Self {
        self.gzip = on;
        self
    }

    /// Sends this API key (`vk_…`, the gateway's bootstrap admin key, or a token from
    /// [`Client::create_token`]) with every call, as `authorization: Bearer <key>`.
    /// Needed when the gateway runs with authentication on.
    ///
    /// # Errors
    /// [`Error::InvalidApiKey`] for a key that cannot be a header value.
    pub fn api_key(mut self, key: &str) -> Result<Self, Error> {
        let value = format!("Bearer {key}")
            .parse::<MetadataValue<Ascii>>()
            .map_err(|_| Error::InvalidApiKey)?;
        self.credentials = Credentials(Some(value));
        Ok(self)
    }

    /// Consistency of the reads (get, count, scroll, search) that do not set their own.
    /// Default: the server's (`Eventual`: read-your-writes through one gateway);
    /// `Linearizable` sees every write acknowledged anywhere, at the cost of a round
    /// from each shard's leader to its group.
    pub fn read_consistency(mut self, consistency: ReadConsistency) -> Self {
        self.read_consistency = consistency;
        self
    }

    /// Speaks TLS to the gateway with these settings. An `https://` endpoint uses TLS
    /// without this call, trusting the system's root certificates; an endpoint without a
    /// scheme becomes `https://` once TLS is set, and an explicit `http://` endpoint is
    /// refused ([`Error::TlsOverPlaintext`]) rather than silently sent in the clear.
    #[cfg(feature = "tls")]
    pub fn tls(mut self, tls: Tls) -> Self {
        self.tls = Some(tls);
        self
    }

    /// Connects now, failing fast when the gateway is unreachable.
    pub async fn connect(self) -> Result<Client, Error> {
        let endpoint = self.endpoint()?;
        let channel = endpoint.connect().await.map_err(|source| Error::Connect {
            endpoint: self.endpoint.clone(),
            source,
        })?;
        Ok(Client {
            channel,
            settings: self,
        })
    }

    /// Returns a client that connects on first use (and reconnects after failures).
    pub fn connect_lazy(self) -> Result<Client, Error> {
        let channel = self.endpoint()?.connect_lazy();
        Ok(Client {
            channel,
            settings: self,
        })
    }

    fn endpoint(&self) -> Result<Endpoint, Error> {
        let uri = if self.endpoint.contains("://") {
            self.endpoint.clone()
        } else if self.wants_tls() {
            format!("https://{}", self.endpoint)
        } else {
            format!("http://{}", self.endpoint)
        };
        let https = uri.starts_with("https://");
        let mut endpoint = Endpoint::from_shared(uri)
            .map_err(|source| Error::InvalidEndpoint {
                endpoint: self.endpoint.clone(),
                source,
            })?
            .connect_timeout(self.connect_timeout)
            .tcp_nodelay(true)
            .http2_keep_alive_interval(Duration::from_secs(30))
            .keep_alive_timeout(Duration::from_secs(10));
        if let Some(t) = self.timeout {
            endpoint = endpoint.timeout(t);
        }
        match (https, self.wants_tls()) {
            (true, _) => self.with_tls(endpoint),
            (false, true) => Err(Error::TlsOverPlaintext {
                endpoint: self.endpoint.clone(),
            }),
            (false, false) => Ok(endpoint),
        }
    }

    #[cfg(feature = "tls")]
    fn wants_tls(&self) -> bool {
        self.tls.is_some()
    }

    #[cfg(not(feature = "tls"))]
    fn wants_tls(&self) -> bool {
        false
    }

    #[cfg(feature = "tls")]
    fn with_tls(&self, endpoint: Endpoint) -> Result<Endpoint, Error> {
        let config = self
            .tls
            .clone()
            .unwrap_or_default()
            .client_config(self.connect_timeout);
        endpoint
            .tls_config(config)
            .map_err(|source| Error::TlsConfig {
                endpoint: self.endpoint.clone(),
                source,
            })
    }

    #[cfg(not(feature = "tls"))]
    fn with_tls(&self, _: Endpoint) -> Result<Endpoint, Error> {
        Err(Error::TlsNotBuilt {
            endpoint: self.endpoint.clone(),
        })
    }
}

/// TLS settings of a client: which certificate authorities to trust, the name to
/// verify the gateway's certificate against, and an optional client certificate.
///
/// ```no_run
/// # #[tokio::main]
/// # async fn main() -> Result<(), vectron_client::Error> {
/// use vectron_client::{Client, Tls};
///
/// let ca = std::fs::read("ca.pem").expect("the CA certificate");
/// let client = Client::builder("https://vectron.internal:6334")
///     .tls(Tls::new().ca_certificate_pem(ca))
///     .connect()
///     .await?;
/// println!("{} collections", client.list_collections().await?.len());
/// # Ok(())
/// # }
/// ```
#[cfg(feature = "tls")]
#[derive(Clone, Default)]
pub struct Tls {
    ca_pems: Vec<Vec<u8>>,
    domain: Option<String>,
    identity: Option<(Vec<u8>, Vec<u8>)>,
}

#[cfg(feature = "tls")]
impl std::fmt::Debug for Tls {
    // The client key stays out of logs.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tls")
            .field("ca_certificates", &self.ca_pems.len())
            .field("domain", &self.domain)
            .field("client_identity", &self.identity.is_some())
            .finish()
    }
}

#[cfg(feature = "tls")]
impl Tls {
    /// Trusts the system's root certificates, verifies the host name of the endpoint.
    pub fn new() -> Self {
        Self::default()
    }

    /// Trusts this certificate authority (PEM; one or more certificates). Once any is
    /// given, only the given authorities are trusted, not the system's roots.
    pub fn ca_certificate_pem(mut self, pem: impl Into<Vec<u8>>) -> Self {
        self.ca_pems.push(pem.into());
        self
    }

    /// Verifies the gateway's certificate against this name instead of the endpoint's
    /// host (for an endpoint given by IP address, for instance).
    pub fn domain(mut self, name: impl Into<String>) -> Self {
        self.domain = Some(name.into());
        self
    }

    /// Presents this client certificate and private key (both PEM) for mutual TLS.
    pub fn client_identity_pem(
        mut self,
        cert: impl Into<Vec<u8>>,
        key: impl Into<Vec<u8>>,
    ) -> Self {
        self.identity = Some((cert.into(), key.into()));
        self
    }

    fn client_config(self, handshake_timeout: Duration) -> tonic::transport::ClientTlsConfig {
        use tonic::transport::{Certificate, ClientTlsConfig, Identity};
        let mut config = ClientTlsConfig::new().timeout(handshake_timeout);
        config = if self.ca_pems.is_empty() {
            config.with_native_roots()
        } else {
            config.ca_certificates(self.ca_pems.iter().map(Certificate::from_pem))
        };
        if let Some(domain) = self.domain {
            config = config.domain_name(domain);
        }
        if let Some((cert, key)) = self.identity {
            config = config.identity(Identity::from_pem(cert, key));
        }
        config
    }
}

/// The channel every call goes through: its credentials added.
type Authorized = InterceptedService<Channel, Credentials>;

/// The `authorization` header of every call, when the client has a key.
#[derive(Clone)]
struct Credentials(Option<MetadataValue<Ascii>>);

impl std::fmt::Debug for Credentials {
    // The key stays out of logs.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_some() {
            "Credentials(<api key>)"
        } else {
            "Credentials(none)"
        })
    }
}

impl tonic::service::Interceptor for Credentials {
    fn call(&mut self, mut request: tonic::Request<()>) -> Result<tonic::Request<()>, Status> {
        if let Some(value) = &self.0 {
            request
                .metadata_mut()
                .insert("authorization", value.clone());
        }
        Ok(request)
    }
}

/// A Vectron client. Cheap to clone: clones share one HTTP/2 connection, over which
/// concurrent calls are multiplexed.
///
/// ```no_run
/// # #[tokio::main]
/// # async fn main() -> Result<(), vectron_client::Error> {
/// use vectron_client::{Client, CollectionSpec, Metric, Point, SearchRequest};
///
/// let client = Client::connect("127.0.0.1:6334").await?;
/// client.create_collection(CollectionSpec::new("docs", 3, Metric::Cosine)).await?;
/// client.upsert("docs", vec![Point::new("a", vec![0.1, 0.2, 0.3])]).await?;
/// let hits = client.search(SearchRequest::new("docs", vec![0.1, 0.2, 0.3], 5)).await?;
/// println!("best: {:?}", hits.hits.first().map(|h| &h.id));
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct Client {
    channel: Channel,
    settings: ClientBuilder,
}

impl Client {
    /// Settings for a client of the gateway at `endpoint` (`host:port` or a URI).
    pub fn builder(endpoint: impl Into<String>) -> ClientBuilder {
        ClientBuilder::new(endpoint)
    }

    /// Connects to the gateway at `endpoint` with default settings.
    pub async fn connect(endpoint: impl Into<String>) -> Result<Self, Error> {
        Self::builder(endpoint).connect().await
    }

    /// This client (sharing its connection) with another default read consistency
    /// ([`ClientBuilder::read_consistency`]).
    #[must_use]
    pub fn with_read_consistency(&self, consistency: ReadConsistency) -> Self {
        let mut client = self.clone();
        client.settings.read_consistency = consistency;
        client
    }

    /// `asked` unless it is unset, else the client's default.
    fn consistency(&self, asked: i32) -> i32 {
        if asked == ReadConsistency::Unspecified as i32 {
            self.settings.read_consistency.into()
        } else {
            asked
        }
    }

    /// The channel with this client's credentials on every call.
    fn authorized(&self) -> Authorized {
        InterceptedService::new(self.channel.clone(), self.settings.credentials.clone())
    }

    fn collections(&self) -> CollectionsClient<Authorized> {
        let c = CollectionsClient::new(self.authorized())
            .max_decoding_message_size(self.settings.max_message_bytes)
            .max_encoding_message_size(self.settings.max_message_bytes);
        if self.settings.gzip {
            c.send_compressed(CompressionEncoding::Gzip)
                .accept_compressed(CompressionEncoding::Gzip)
        } else {
            c
        }
    }

    fn points(&self) -> PointsClient<Authorized> {
        let c = PointsClient::new(self.authorized())
            .max_decoding_message_size(self.settings.max_message_bytes)
            .max_encoding_message_size(self.settings.max_message_bytes);
        if self.settings.gzip {
            c.send_compressed(CompressionEncoding::Gzip)
                .accept_compressed(CompressionEncoding::Gzip)
        } else {
            c
        }
    }

    /// Runs an idempotent call, retrying `UNAVAILABLE` with jittered exponential backoff.
    async fn idempotent<T, F, Fut>(&self, mut call: F) -> Result<T, Error>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<tonic::Response<T>, Status>>,
    {
        let mut delay = self.settings.backoff;
        let mut attempt = 0;
        loop {
            match call().await {
                Ok(r) => return Ok(r.into_inner()),
                Err(s)
                    if s.code() == tonic::Code::Unavailable && attempt < self.settings.retries =>
                {
                    attempt += 1;
                    tokio::time::sleep(jitter(delay)).await;
                    delay = delay.saturating_mul(2).min(Duration::from_secs(2));
                }
                Err(s) => return Err(s.into()),
            }
        }
    }

    // --- collections -------------------------------------------------------------

    /// Creates a collection and returns it with every default resolved. Not retried.
    pub async fn create_collection(&self, spec: CollectionSpec) -> Result<CollectionInfo, Error> {
        let created = self
            .collections()
            .create(CreateCollectionRequest { spec: Some(spec) })
            .await?;
        created
            .into_inner()
            .collection
            .ok_or_else(|| Error::Internal("empty create answer".into()))
    }

    /// Drops a collection and its points. Not retried.
    pub async fn drop_collection(&self, name: &str) -> Result<(), Error> {
        self.collections()
            .drop(DropCollectionRequest { name: name.into() })
            .await?;
        Ok(())
    }

    /// Lists every collection, ordered by name.
    pub async fn list_collections(&self) -> Result<Vec<CollectionInfo>, Error> {
        let listed = self
            .idempotent(|| {
                let mut c = self.collections();
                async move { c.list(ListCollectionsRequest {}).await }
            })
            .await?;
        Ok(listed.collections)
    }

    /// Describes one collection: spec, state, point count, shards and replicas.
    pub async fn describe_collection(&self, name: &str) -> Result<CollectionInfo, Error> {
        self.idempotent(|| {
            let mut c = self.collections();
            let request = DescribeCollectionRequest { name: name.into() };
            async move { c.describe(request).await }
        })
        .await
    }

    /// Sets a collection's default search `ef`: searches that give none use it from
    /// the moment this returns. Retried on `UNAVAILABLE` (it sets a value).
    pub async fn set_default_ef(&self, name: &str, ef: u32) -> Result<CollectionInfo, Error> {
        let spec = CollectionSpec {
            hnsw: Some(HnswConfig {
                ef: Some(ef),
                ..Default::default()
            }),
            ..Default::default()
        };
        self.update_collection(UpdateCollectionRequest {
            name: name.into(),
            spec: Some(spec),
            ..Default::default()
        })
        .await
    }

    /// Adds a payload index to a collection that may already hold points. Each replica
    /// builds it in the background; [`Client::describe_collection`] says when it is
    /// ready (`payload_index_status`), and until then filters on its key read payloads
    /// (the same answers, slower). Adding an index the collection has is a no-op.
    /// Retried on `UNAVAILABLE`.
    pub async fn add_payload_index(
        &self,
        name: &str,
        index: PayloadIndex,
    ) -> Result<CollectionInfo, Error> {
        self.update_collection(UpdateCollectionRequest {
            name: name.into(),
            add_payload_indexes: vec![index],
            ..Default::default()
        })
        .await
    }

    /// Sets how gateways cache the collection's search answers: each field given
    /// replaces the collection's (`enabled: Some(false)` computes every search;
    /// `ttl_ms` bounds how long an answer is served, `Some(0)` for the gateway's TTL).
    /// Gateways apply it to searches that start after their next routing update.
    /// Retried on `UNAVAILABLE` (it sets values).
    pub async fn set_search_cache(
        &self,
        name: &str,
        settings: SearchCacheSettings,
    ) -> Result<CollectionInfo, Error> {
        self.update_collection(UpdateCollectionRequest {
            name: name.into(),
            spec: Some(CollectionSpec {
                search_cache: Some(settings),
                ..Default::default()
            }),
            ..Default::default()
        })
        .await
    }

    /// Drops the payload index on `field`; filters on it read payloads from then on. A
    /// field without an index is [`Error::InvalidArgument`]. Not retried.
    pub async fn drop_payload_index(
        &self,
        name: &str,
        field: &str,
    ) -> Result<CollectionInfo, Error> {
        self.update_collection(UpdateCollectionRequest {
            name: name.into(),
            drop_payload_indexes: vec![field.into()],
            ..Default::default()
        })
        .await
    }

    /// Changes a collection's mutable settings: fields of `request.spec` left unset keep
    /// their values; only `hnsw.ef` may change there (others fixed at creation are
    /// refused with [`Error::InvalidArgument`]). `request.tuning` records how the `ef`
    /// was measured; `add_payload_indexes` and `drop_payload_indexes` change the payload
    /// indexes. Returns the collection as updated. Retried on `UNAVAILABLE`, unless it
    /// drops an index (a retry of a drop that was applied would be refused).
    pub async fn update_collection(
        &self,
        request: UpdateCollectionRequest,
    ) -> Result<CollectionInfo, Error> {
        if !request.drop_payload_indexes.is_empty() {
            return Ok(self.collections().update(request).await?.into_inner());
        }
        self.idempotent(|| {
            let mut c = self.collections();
            let request = request.clone();
            async move { c.update(request).await }
        })
        .await
    }

    // --- points ------------------------------------------------------------------

    /// Upserts points and waits until they are durable. Retried on `UNAVAILABLE`
    /// (upserts are idempotent).
    pub async fn upsert(
        &self,
        collection: &str,
        points: Vec<Point>,
    ) -> Result<UpsertResponse, Error> {
        self.upsert_request(UpsertRequest {
            collection: collection.into(),
            points,
            wait: None,
        })
        .await
    }

    /// Sends a prepared upsert request (to set `wait = false`, for instance).
    pub async fn upsert_request(&self, request: UpsertRequest) -> Result<UpsertResponse, Error> {
        self.idempotent(|| {
            let (mut c, r) = (self.points(), request.clone());
            async move { c.upsert(r).await }
        })
        .await
    }

    /// Bulk ingest over one client stream: each item of `batches` becomes one message
    /// (at most [`MAX_POINTS_PER_REQUEST`] points). Answers once every point is
    /// durable. Not retried: on error, resend (upserts are idempotent).
    pub async fn upsert_stream<S>(
        &self,
        collection: &str,
        batches: S,
    ) -> Result<UpsertResponse, Error>
    where
        S: Stream<Item = Vec<Point>> + Send + 'static,
    {
        let collection = collection.to_owned();
        let requests = batches.map(move |points| UpsertRequest {
            collection: collection.clone(),
            points,
            wait: None,
        });
        Ok(self.points().upsert_stream(requests).await?.into_inner())
    }

    /// Reads points by id, in the order asked; missing ids are left out.
    pub async fn get(
        &self,
        collection: &str,
        ids: Vec<String>,
        with_vector: bool,
        with_payload: bool,
    ) -> Result<Vec<Point>, Error> {
        let request = GetRequest {
            collection: collection.into(),
            ids,
            with_vector,
            with_payload,
            consistency: self.consistency(0),
        };
        let found = self.idempotent(|| {
            let (mut c, r) = (self.points(), request.clone());
            async move { c.get(r).await }
        });
        Ok(found.await?.points)
    }

    /// Deletes points by id and returns how many existed.
    pub async fn delete_ids(&self, collection: &str, ids: Vec<String>) -> Result<u64, Error> {
        let request = DeleteRequest {
            collection: collection.into(),
            selector: Some(delete_request::Selector::Ids(PointIds { ids })),
            wait: None,
        };
        let deleted = self.idempotent(|| {
            let (mut c, r) = (self.points(), request.clone());
            async move { c.delete(r).await }
        });
        Ok(deleted.await?.deleted)
    }

    /// Deletes every point that passes `filter` and returns how many. Not retried.
    pub async fn delete_filter(&self, collection: &str, filter: Filter) -> Result<u64, Error> {
        let request = DeleteRequest {
            collection: collection.into(),
            selector: Some(delete_request::Selector::Filter(filter)),
            wait: None,
        };
        Ok(self.points().delete(request).await?.into_inner().deleted)
    }

    /// Counts points exactly, optionally those passing `filter`.
    pub async fn count(&self, collection: &str, filter: Option<Filter>) -> Result<u64, Error> {
        let request = CountRequest {
            collection: collection.into(),
            filter,
            consistency: self.consistency(0),
        };
        let counted = self.idempotent(|| {
            let (mut c, r) = (self.points(), request.clone());
            async move { c.count(r).await }
        });
        Ok(counted.await?.count)
    }

    /// One page of points in id order; pass `next_offset` back as `offset` to continue.
    pub async fn scroll(&self, mut request: ScrollRequest) -> Result<ScrollResponse, Error> {
        request.consistency = self.consistency(request.consistency);
        self.idempotent(|| {
            let (mut c, r) = (self.points(), request.clone());
            async move { c.scroll(r).await }
        })
        .await
    }

    /// Top-k search.
    pub async fn search(&self, mut request: SearchRequest) -> Result<SearchResponse, Error> {
        request.consistency = self.consistency(request.consistency);
        self.idempotent(|| {
            let (mut c, r) = (self.points(), request.clone());
            async move { c.search(r).await }
        })
        .await
    }

    /// One search whose merged hits arrive as its shards answer: an event each time
    /// answers change the best hits so far, then the last one (`done`), whose `result`
    /// equals what [`Client::search`] answers. Read it with [`SearchStream::next`], or
    /// [`SearchStream::last`] for the answer alone. A request the server refuses fails
    /// here, before any event; opening the stream is retried on `UNAVAILABLE`, an
    /// error after the first event is not.
    pub async fn search_stream(&self, mut request: SearchRequest) -> Result<SearchStream, Error> {
        request.consistency = self.consistency(request.consistency);
        let inner = self
            .idempotent(|| {
                let (mut c, r) = (self.points(), request.clone());
                async move { c.search_stream(r).await }
            })
            .await?;
        Ok(SearchStream { inner })
    }

    /// Several searches in one call; results in request order.
    pub async fn search_batch(
        &self,
        mut searches: Vec<SearchRequest>,
    ) -> Result<Vec<SearchResponse>, Error> {
        for search in &mut searches {
            search.consistency = self.consistency(search.consistency);
        }
        let request = SearchBatchRequest { searches };
        let found = self.idempotent(|| {
            let (mut c, r) = (self.points(), request.clone());
            async move { c.search_batch(r).await }
        });
        Ok(found.await?.results)
    }

    // --- keys --------------------------------------------------------------------

    fn keys(&self) -> KeysClient<Authorized> {
        KeysClient::new(self.authorized())
    }

    /// Makes an API key (an admin's call). The answer's `secret` is the whole key to
    /// hand over: it is shown this once. Not retried.
    pub async fn create_key(&self, request: CreateKeyRequest) -> Result<CreateKeyResponse, Error> {
        Ok(self.keys().create(request).await?.into_inner())
    }

    /// Every API key, without secrets (an admin's call).
    pub async fn list_keys(&self) -> Result<Vec<KeyInfo>, Error> {
        let listed = self.idempotent(|| {
            let mut c = self.keys();
            async move { c.list(ListKeysRequest {}).await }
        });
        Ok(listed.await?.keys)
    }

    /// Revokes an API key (an admin's call): every gateway refuses it within a second.
    pub async fn revoke_key(&self, id: &str) -> Result<(), Error> {
        let request = RevokeKeyRequest { id: id.into() };
        self.keys().revoke(request).await?;
        Ok(())
    }

    /// Mints a token (an admin's call): a JWT any gateway sharing the minting gateway's
    /// token secret takes until it expires; hand it to [`ClientBuilder::api_key`] like
    /// a key. Refused with [`Error::FailedPrecondition`] by a gateway without a token
    /// secret. Retried while the gateway is unavailable: minting changes nothing.
    pub async fn create_token(
        &self,
        request: CreateTokenRequest,
    ) -> Result<CreateTokenResponse, Error> {
        self.idempotent(|| {
            let (mut c, r) = (self.keys(), request.clone());
            async move { c.create_token(r).await }
        })
        .await
    }

    // --- plans -------------------------------------------------------------------

    fn plans(&self) -> PlansClient<Authorized> {
        PlansClient::new(self.authorized())
    }

    /// Makes or changes a plan (an admin's call): callers on it get its rate within a
    /// second. Retried: setting a plan twice sets it once.
    pub async fn set_plan(&self, plan: Plan) -> Result<Plan, Error> {
        self.idempotent(|| {
            let (mut c, p) = (self.plans(), plan.clone());
            async move { c.set(p).await }
        })
        .await
    }

    /// Every plan (an admin's call).
    pub async fn list_plans(&self) -> Result<Vec<Plan>, Error> {
        let listed = self.idempotent(|| {
            let mut c = self.plans();
            async move { c.list(ListPlansRequest {}).await }
        });
        Ok(listed.await?.plans)
    }

    /// Deletes a plan no key or user names (an admin's call).
    pub async fn delete_plan(&self, name: &str) -> Result<(), Error> {
        let request = DeletePlanRequest { name: name.into() };
        self.plans().delete(request).await?;
        Ok(())
    }

    // --- users -------------------------------------------------------------------

    fn users(&self) -> UsersClient<Authorized> {
        UsersClient::new(self.authorized())
    }

    /// Makes a user who logs in with `request.password` (an admin's call). Not retried.
    pub async fn create_user(&self, request: CreateUserRequest) -> Result<UserInfo, Error> {
        Ok(self.users().create(request).await?.into_inner())
    }

    /// Every user, without passwords (an admin's call).
    pub async fn list_users(&self) -> Result<Vec<UserInfo>, Error> {
        let listed = self.idempotent(|| {
            let mut c = self.users();
            async move { c.list(ListUsersRequest {}).await }
        });
        Ok(listed.await?.users)
    }

    /// Deletes a user (an admin's call): they log in no more.
    pub async fn delete_user(&self, name: &str) -> Result<(), Error> {
        let request = DeleteUserRequest { name: name.into() };
        self.users().delete(request).await?;
        Ok(())
    }

    /// Logs in as `name` and returns a token carrying the user's role and grants, for
    /// [`ClientBuilder::api_key`]; `ttl` of zero for the server's default (an hour).
    /// Needs no key. Not retried: each try counts against the address's login limit.
    pub async fn login(
        &self,
        name: &str,
        password: &str,
        ttl: Duration,
    ) -> Result<LoginResponse, Error> {
        let request = LoginRequest {
            name: name.into(),
            password: password.into(),
            ttl_seconds: ttl.as_secs(),
        };
        Ok(self.users().login(request).await?.into_inner())
    }

    // --- stats -------------------------------------------------------------------

    /// Per-core statistics of one worker, or of the whole cluster when `worker_id` is
    /// empty.
    pub async fn core_stats(&self, worker_id: &str) -> Result<CoreStatsResponse, Error> {
        let request = CoreStatsRequest {
            worker_id: worker_id.into(),
        };
        self.idempotent(|| {
            let (mut c, r) = (StatsClient::new(self.authorized()), request.clone());
            async move { c.cores(r).await }
        })
        .await
    }
}

/// Up to ±50 % of `d`, from the process's random hasher seed: enough to spread
/// retries of many clients without a random-number dependency.
fn jitter(d: Duration) -> Duration {
    let r = RandomState::new().hash_one(std::time::Instant::now());
    let factor = 0.5 + (r % 1000) as f64 / 1000.0;
    d.mul_f64(factor)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn reads_take_the_clients_consistency_unless_they_set_their_own() {
        let eventual = Client::builder("127.0.0.1:1").connect_lazy().unwrap();
        let strict = eventual.with_read_consistency(ReadConsistency::Linearizable);
        let unset = ReadConsistency::Unspecified as i32;
        let own = ReadConsistency::Eventual as i32;
        assert_eq!(eventual.consistency(unset), unset, "the server's default");
        assert_eq!(
            strict.consistency(unset),
            ReadConsistency::Linearizable as i32
        );
        assert_eq!(strict.consistency(own), own);
        let built = Client::builder("127.0.0.1:1")
            .read_consistency(ReadConsistency::Linearizable)
            .connect_lazy()
            .unwrap();
        assert_eq!(
            built.consistency(unset),
            ReadConsistency::Linearizable as i32
        );
    }
}
