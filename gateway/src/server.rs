//! Starting and stopping a gateway: its two listeners, the routing watch, and the order
//! of shutdown (stop accepting, let calls in flight finish, stop the watch).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt as _;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tonic::codec::CompressionEncoding;
use tonic::transport::server::TcpIncoming;
use vectron_control::{ClientError, ControlClient};
use vectron_proto::v1::collections_server::CollectionsServer;
use vectron_proto::v1::keys_server::KeysServer;
use vectron_proto::v1::plans_server::PlansServer;
use vectron_proto::v1::points_server::PointsServer;
use vectron_proto::v1::stats_server::StatsServer;
use vectron_proto::v1::users_server::UsersServer;

use crate::admission::{AdmissionConfig, AdmissionLayer, Limited};
use crate::auth::{AuthLayer, ClientAddr};
use crate::config::{GatewayConfig, MIN_ADMIN_KEY_LEN};
use crate::grpc::{GrpcApi, OversizeLayer};
use crate::http::router;
use crate::service::Service;
use crate::tls::{Certificates, TlsError};

/// Why a gateway did not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The control-plane addresses are unusable.
    #[error("control-plane addresses {addresses:?}")]
    Control {
        /// The addresses given.
        addresses: Vec<String>,
        /// Why.
        #[source]
        source: ClientError,
    },
    /// The configured limits are looser than the rulebook's, which every core enforces.
    #[error("gateway limits")]
    Limits(#[source] vectron_proto::rules::LimitError),
    /// An admission budget that admits nothing.
    #[error("admission budget {budget} must be greater than zero")]
    Admission {
        /// The field of `AdmissionConfig`.
        budget: &'static str,
    },
    /// A bootstrap admin key too short to resist guessing.
    #[error("the admin key has {len} characters: give at least {MIN_ADMIN_KEY_LEN}")]
    AdminKeyTooShort {
        /// Its length.
        len: usize,
    },
    /// A listener on a network address with authentication off, without `insecure`.
    #[error(
        "refusing to serve {addr} to the network with authentication off: add --auth (and make keys), or --insecure to serve it open"
    )]
    OpenOnNetwork {
        /// The address.
        addr: SocketAddr,
    },
    /// An admin key given while authentication is off would protect nothing.
    #[error("an admin key was given but authentication is off: add --auth")]
    AdminKeyWithoutAuth,
    /// A token secret given while authentication is off would protect nothing.
    #[error("a token secret was given but authentication is off: add --auth")]
    TokensWithoutAuth,
    /// The TLS certificate or key cannot be served.
    #[error(transparent)]
    Tls(#[from] TlsError),
    /// A listener could not be bound.
    #[error("cannot listen for {what} on {addr}")]
    Bind {
        /// `gRPC` or `HTTP`.
        what: &'static str,
        /// The address.
        addr: SocketAddr,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

/// What a gateway holds against its admission budgets (`AdmissionConfig`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GatewayLoad {
    /// Bytes of request bodies and shard answers held by calls in flight.
    pub inflight_bytes: usize,
    /// Calls refused for a budget since the gateway started.
    pub refused: usize,
}

/// A running gateway.
#[derive(Debug)]
pub struct Gateway {
    service: Arc<Service>,
    grpc_addr: SocketAddr,
    http_addr: SocketAddr,
    stop: watch::Sender<bool>,
    grpc: JoinHandle<()>,
    http: JoinHandle<()>,
    watch: JoinHandle<()>,
    /// Reads the TLS certificate again when its files change.
    tls_watch: Option<JoinHandle<()>>,
}

async fn bind(
    what: &'static str,
    addr: SocketAddr,
) -> Result<(TcpListener, SocketAddr), StartError> {
    let fail = |source| StartError::Bind { what, addr, source };
    let listener = TcpListener::bind(addr).await.map_err(fail)?;
    let local = listener.local_addr().map_err(fail)?;
    Ok((listener, local))
}

impl Gateway {
    /// Binds both listeners and starts serving. Routing loads in the background: until
    /// the control plane has answered, calls that need it wait for it and `/readyz`
    /// answers 503. Call from within a tokio runtime.
    ///
    /// # Errors
    /// [`StartError`] when an address is unusable.
    pub async fn start(config: GatewayConfig) -> Result<Self, StartError> {
        config
            .limits
            .check_within(&vectron_proto::rules::Limits::DEFAULT)
            .map_err(StartError::Limits)?;
        config
            .admission
            .validate()
            .map_err(|budget| StartError::Admission { budget })?;
        for addr in [config.grpc_addr, config.http_addr] {
            if !config.auth.enabled && !config.auth.insecure && !addr.ip().is_loopback() {
                return Err(StartError::OpenOnNetwork { addr });
            }
        }
        if let Some(key) = &config.auth.admin_key {
            if !config.auth.enabled {
                return Err(StartError::AdminKeyWithoutAuth);
            }
            if key.chars().count() < MIN_ADMIN_KEY_LEN {
                return Err(StartError::AdminKeyTooShort {
                    len: key.chars().count(),
                });
            }
        }
        if config.auth.tokens.is_some() && !config.auth.enabled {
            return Err(StartError::TokensWithoutAuth);
        }
        let control = ControlClient::new(config.control.clone())
            .map_err(|source| StartError::Control {
                addresses: config.control.clone(),
                source,
            })?
            .with_cluster_key(config.cluster_key.as_ref());
        let certificates = match &config.tls {
            Some(tls) => Some(Certificates::load(&tls.cert, &tls.key)?),
            None => None,
        };
        let acceptors = match &certificates {
            Some(c) => Some((c.acceptor(b"h2")?, c.acceptor(b"http/1.1")?)),
            None => None,
        };
        let (grpc_listener, grpc_addr) = bind("gRPC", config.grpc_addr).await?;
        let (http_listener, http_addr) = bind("HTTP", config.http_addr).await?;
        let grace = config.shutdown_grace;
        let gzip = config.gzip;
        let max_message = config.limits.max_message_bytes;
        let admission = config.admission;
        let service = Arc::new(Service::new(config, control));

        let routing = service.routing.clone();
        let on_change = Arc::downgrade(&service);
        let watch = tokio::spawn(routing.follow(move |changed| {
            if let Some(service) = on_change.upgrade() {
                service.routing_changed(changed);
            }
        }));

        let (stop, stopped) = watch::channel(false);
        let api = GrpcApi::new(service.clone());
        let send = |enabled: bool| enabled.then_some(CompressionEncoding::Gzip);
        let mut collections = CollectionsServer::new(api.clone())
            .accept_compressed(CompressionEncoding::Gzip)
            .max_decoding_message_size(max_message)
            .max_encoding_message_size(max_message);
        let mut points = PointsServer::new(api.clone())
            .accept_compressed(CompressionEncoding::Gzip)
            .max_decoding_message_size(max_message)
            .max_encoding_message_size(max_message);
        let mut stats = StatsServer::new(api.clone())
            .accept_compressed(CompressionEncoding::Gzip)
            .max_decoding_message_size(max_message)
            .max_encoding_message_size(max_message);
        let keys = KeysServer::new(api.clone());
        let users = UsersServer::new(api.clone());
        let plans = PlansServer::new(api);
        if let Some(encoding) = send(gzip) {
            collections = collections.send_compressed(encoding);
            points = points.send_compressed(encoding);
            stats = stats.send_compressed(encoding);
        }
        let grpc_server = tonic::transport::Server::builder()
            .tcp_nodelay(true)
            .http2_keepalive_interval(Some(Duration::from_secs(20)))
            .http2_keepalive_timeout(Some(Duration::from_secs(10)))
            .initial_stream_window_size(Some(1 << 20))
            .initial_connection_window_size(Some(8 << 20))
            .layer(OversizeLayer)
            .layer(AdmissionLayer::new(Arc::clone(&service.admission)))
            .layer(AuthLayer::new(Arc::clone(&service)))
            .add_service(collections)
            .add_service(points)
            .add_service(stats)
            .add_service(keys)
            .add_service(users)
            .add_service(plans);
        let grpc_stop = stop_signal(stopped.clone());
        let (grpc_tls, http_tls) = acceptors.unzip();
        let accepting = stop_signal(stopped.clone());
        let grpc = tokio::spawn(async move {
            // The builder's `tcp_nodelay` only reaches sockets it accepts itself: with
            // Nagle on, an answer of more than one small segment waited for the client's
            // delayed ACK (about 40 ms).
            let incoming = TcpIncoming::from(grpc_listener).with_nodelay(Some(true));
            let slots = Arc::new(Semaphore::new(admission.max_connections));
            if let Some(acceptor) = grpc_tls {
                let handshakes = tls_handshakes(
                    incoming,
                    slots,
                    acceptor,
                    admission.header_timeout,
                    accepting,
                );
                if let Err(e) = grpc_server
                    .serve_with_incoming_shutdown(handshakes, grpc_stop)
                    .await
                {
                    tracing::error!(error = %e, "the gRPC listener failed");
                }
                return;
            }
            let incoming = incoming.filter_map(move |accepted| {
                // Past the connection limit, a connection is closed as it arrives.
                let limited = match accepted {
                    Ok(stream) => Limited::new(stream, &slots).map(Ok),
                    Err(e) => Some(Err(e)),
                };
                std::future::ready(limited)
            });
            if let Err(e) = grpc_server
                .serve_with_incoming_shutdown(incoming, grpc_stop)
                .await
            {
                tracing::error!(error = %e, "the gRPC listener failed");
            }
        });
        let app = router(service.clone());
        let http_stop = stop_signal(stopped);
        let http = tokio::spawn(serve_http(
            http_listener,
            app,
            admission,
            http_tls,
            http_stop,
        ));
        let tls_watch = certificates.map(|c| tokio::spawn(c.watch()));
        tracing::info!(%grpc_addr, %http_addr, grace = ?grace, "gateway serving");
        Ok(Self {
            service,
            grpc_addr,
            http_addr,
            stop,
            grpc,
            http,
            watch,
            tls_watch,
        })
    }

    /// Where the gRPC listener is bound.
    #[must_use]
    pub fn grpc_addr(&self) -> SocketAddr {
        self.grpc_addr
    }

    /// Where the HTTP listener is bound.
    #[must_use]
    pub fn http_addr(&self) -> SocketAddr {
        self.http_addr
    }

    /// Whether the routing table has been loaded from the control plane.
    #[must_use]
    pub fn routing_loaded(&self) -> bool {
        self.service.routing.is_loaded()
    }

    /// The version of the routing table the gateway holds (0 before the first load).
    #[must_use]
    pub fn routing_version(&self) -> u64 {
        self.service.routing.snapshot().version
    }

    /// What the gateway holds now against its admission budgets.
    #[must_use]
    pub fn load(&self) -> GatewayLoad {
        GatewayLoad {
            inflight_bytes: self.service.admission.inflight_bytes(),
            refused: self.service.admission.refused(),
        }
    }

    /// Stops accepting calls and waits, at most the configured grace period, for calls
    /// in flight to finish.
    pub async fn shutdown(self) {
        let grace = self.service.config.shutdown_grace;
        self.stop.send_replace(true);
        let servers = async {
            let _ = self.grpc.await;
            let _ = self.http.await;
        };
        if tokio::time::timeout(grace, servers).await.is_err() {
            tracing::warn!(
                ?grace,
                "calls still in flight after the grace period; leaving them"
            );
        }
        self.watch.abort();
        if let Some(tls_watch) = self.tls_watch {
            tls_watch.abort();
        }
    }
}

/// Serves HTTP/1.1 on `listener` until `stop`, then lets open connections finish: at
/// most `max_connections` at once (more are closed as they arrive), each given
/// `header_timeout` to send a request's headers, idle keep-alive connections included.
async fn serve_http(
    listener: TcpListener,
    app: axum::Router,
    admission: AdmissionConfig,
    tls: Option<tokio_rustls::TlsAcceptor>,
    stop: impl Future<Output = ()>,
) {
    let slots = Arc::new(Semaphore::new(admission.max_connections));
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(admission.header_timeout);
    tokio::pin!(stop);
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = &mut stop => break,
        };
        let (stream, peer) = match accepted {
            Ok(accepted) => accepted,
            Err(e) => {
                // Out of file descriptors, or a connection reset before it was
                // accepted: wait a moment rather than spin.
                tracing::debug!(error = %e, "accepting an HTTP connection failed");
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let Some(stream) = Limited::new(stream, &slots) else {
            continue;
        };
        let app = tower::ServiceExt::map_request(
            app.clone(),
            move |mut request: http::Request<hyper::body::Incoming>| {
                request.extensions_mut().insert(ClientAddr(peer));
                request
            },
        );
        let service = hyper_util::service::TowerToHyperService::new(app);
        let Some(acceptor) = tls.clone() else {
            let connection =
                builder.serve_connection(hyper_util::rt::TokioIo::new(stream), service);
            let connection = graceful.watch(connection);
            tokio::spawn(async move {
                if let Err(e) = connection.await {
                    tracing::debug!(error = %e, "an HTTP connection ended with an error");
                }
            });
            continue;
        };
        // The handshake happens on the connection's task, within the header timeout.
        let (builder, watcher) = (builder.clone(), graceful.watcher());
        let timeout = admission.header_timeout;
        tokio::spawn(async move {
            let stream = match tokio::time::timeout(timeout, acceptor.accept(stream)).await {
                Ok(Ok(stream)) => stream,
                Ok(Err(e)) => return tracing::debug!(error = %e, "a TLS handshake failed"),
                Err(_) => return tracing::debug!(?timeout, "a TLS handshake timed out"),
            };
            let connection =
                builder.serve_connection(hyper_util::rt::TokioIo::new(stream), service);
            if let Err(e) = watcher.watch(connection).await {
                tracing::debug!(error = %e, "an HTTP connection ended with an error");
            }
        });
    }
    drop(listener);
    graceful.shutdown().await;
}

/// TLS connections as their handshakes finish: each accepted connection (within the
/// connection limit) shakes hands on a task of its own, given `timeout`, so a client that
/// stalls its handshake holds up no other. Ends at `stop`.
fn tls_handshakes(
    mut incoming: TcpIncoming,
    slots: Arc<Semaphore>,
    acceptor: tokio_rustls::TlsAcceptor,
    timeout: Duration,
    stop: impl Future<Output = ()> + Send + 'static,
) -> impl tokio_stream::Stream<
    Item = Result<tokio_rustls::server::TlsStream<Limited<tokio::net::TcpStream>>, std::io::Error>,
> {
    let (ready, handshaken) = tokio::sync::mpsc::channel(64);
    tokio::spawn(async move {
        tokio::pin!(stop);
        loop {
            let accepted = tokio::select! {
                accepted = incoming.next() => accepted,
                () = &mut stop => break,
            };
            let stream = match accepted {
                Some(Ok(stream)) => stream,
                Some(Err(e)) => {
                    tracing::debug!(error = %e, "accepting a gRPC connection failed");
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                }
                None => break,
            };
            let Some(stream) = Limited::new(stream, &slots) else {
                continue;
            };
            let (acceptor, ready) = (acceptor.clone(), ready.clone());
            tokio::spawn(async move {
                match tokio::time::timeout(timeout, acceptor.accept(stream)).await {
                    Ok(Ok(tls)) => {
                        let _ = ready.send(Ok(tls)).await;
                    }
                    Ok(Err(e)) => tracing::debug!(error = %e, "a TLS handshake failed"),
                    Err(_) => tracing::debug!(?timeout, "a TLS handshake timed out"),
                }
            });
        }
    });
    tokio_stream::wrappers::ReceiverStream::new(handshaken)
}

async fn stop_signal(mut stopped: watch::Receiver<bool>) {
    let _ = stopped.wait_for(|s| *s).await;
}
