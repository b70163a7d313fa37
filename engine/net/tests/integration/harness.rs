//! A monoio server on its own thread, a tonic client on the test's tokio runtime, an
//! observer that records what the server reports, and the server's counters, copied
//! out every few milliseconds.

use std::future::Future;
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::Duration;

use bytes::Bytes;
use monoio::{IoUringDriver, LegacyDriver, RuntimeBuilder};
use tokio::sync::{Notify, oneshot};
use tonic::transport::{Channel, Endpoint};
use vectron_net::{
    Code, ConnectionEnd, ListenOptions, Method, Observer, ServeError, Server, ServerConfig,
    ServerStats,
};

use crate::netcheck::check_client::CheckClient;
use crate::service;

/// How often the server thread copies its counters out for [`TestServer::stats`].
const STATS_EVERY: Duration = Duration::from_millis(5);

/// The monoio driver a server runs on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Driver {
    Uring,
    Legacy,
}

impl Driver {
    /// Whether this machine can run the driver. io_uring may be missing or forbidden (old
    /// kernels, `io_uring_disabled`, container seccomp profiles); the legacy driver runs
    /// everywhere.
    pub fn available(self) -> bool {
        match self {
            Driver::Uring => monoio::utils::detect_uring(),
            Driver::Legacy => true,
        }
    }
}

/// Runs a test body once per monoio driver: `drivers!(name, |driver| async move { .. })`
/// makes `name::uring` and `name::legacy`. Where io_uring is unavailable, the io_uring
/// variant says so and checks nothing.
#[macro_export]
macro_rules! drivers {
    ($name:ident, $body:expr) => {
        mod $name {
            use super::*;

            #[tokio::test]
            async fn uring() {
                let driver = $crate::harness::Driver::Uring;
                if !driver.available() {
                    eprintln!(
                        "io_uring is unavailable on this machine: the io_uring run is skipped"
                    );
                    return;
                }
                $crate::harness::bounded(($body)(driver)).await;
            }

            #[tokio::test]
            async fn legacy() {
                $crate::harness::bounded(($body)($crate::harness::Driver::Legacy)).await;
            }
        }
    };
}

/// A test that hangs is a failure: every test body gets this long.
pub async fn bounded<F: Future<Output = ()>>(body: F) {
    tokio::time::timeout(Duration::from_secs(60), body)
        .await
        .expect("the test did not finish within 60 s");
}

/// What handlers share with the test, across threads.
#[derive(Debug, Default)]
pub struct Probe {
    /// Messages the `Range` handler has sent (handed to the server) so far.
    pub range_sent: AtomicU64,
    /// Signalled when a `Stall` handler starts.
    pub stalled: Notify,
    /// Releases a `Stall` handler waiting `until_released`.
    pub release: Notify,
}

/// What the observer saw.
#[derive(Debug, Default)]
pub struct EventLog {
    pub calls: Vec<(Option<String>, Code)>,
    pub in_flight: u64,
    pub max_in_flight: u64,
    pub opened: u64,
    pub closed: Vec<ConnectionEnd>,
    pub refused: u64,
}

impl EventLog {
    pub fn codes_of(&self, path: &str) -> Vec<Code> {
        self.calls
            .iter()
            .filter(|(p, _)| p.as_deref() == Some(path))
            .map(|(_, c)| *c)
            .collect()
    }

    pub fn ends(&self, end: ConnectionEnd) -> usize {
        self.closed.iter().filter(|e| **e == end).count()
    }
}

struct Recorder(Arc<Mutex<EventLog>>);

impl Observer for Recorder {
    fn call_started(&self, _method: Option<&Method>) {
        let mut log = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        log.in_flight += 1;
        log.max_in_flight = log.max_in_flight.max(log.in_flight);
    }

    fn call_finished(&self, method: Option<&Method>, code: Code, _elapsed: Duration) {
        let mut log = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        log.in_flight -= 1;
        log.calls.push((method.map(|m| m.path().to_owned()), code));
    }

    fn connection_opened(&self, _peer: SocketAddr) {
        self.0.lock().unwrap_or_else(PoisonError::into_inner).opened += 1;
    }

    fn connection_closed(&self, _peer: SocketAddr, end: ConnectionEnd) {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .closed
            .push(end);
    }

    fn connection_refused(&self, _peer: SocketAddr) {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .refused += 1;
    }
}

/// A running server.
pub struct TestServer {
    pub addr: SocketAddr,
    pub probe: Arc<Probe>,
    events: Arc<Mutex<EventLog>>,
    stats: Arc<Mutex<ServerStats>>,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<Result<ServerStats, ServeError>>>,
}

impl TestServer {
    /// Starts the test service with `config` on a new thread.
    pub fn start(driver: Driver, config: ServerConfig) -> TestServer {
        let probe = Arc::new(Probe::default());
        let events = Arc::new(Mutex::new(EventLog::default()));
        let published = Arc::new(Mutex::new(ServerStats::default()));
        let (addr_tx, addr_rx) = std::sync::mpsc::channel();
        let (stop, stopped) = oneshot::channel::<()>();
        let thread = std::thread::spawn({
            let (probe, events) = (Arc::clone(&probe), Arc::clone(&events));
            let published = Arc::clone(&published);
            move || {
                let serve = async move {
                    let listener = vectron_net::bind(
                        "127.0.0.1:0".parse().unwrap(),
                        &ListenOptions::default(),
                    )
                    .unwrap();
                    addr_tx.send(listener.local_addr().unwrap()).unwrap();
                    let server = Server::new(config, service::router(probe))
                        .unwrap()
                        .with_observer(Rc::new(Recorder(events)));
                    let stats = server.stats();
                    let sampled = server.stats();
                    monoio::spawn(async move {
                        loop {
                            *published.lock().unwrap_or_else(PoisonError::into_inner) =
                                sampled.snapshot();
                            monoio::time::sleep(STATS_EVERY).await;
                        }
                    });
                    server
                        .serve(listener, async move {
                            let _ = stopped.await;
                        })
                        .await?;
                    Ok(stats.snapshot())
                };
                match driver {
                    Driver::Uring => RuntimeBuilder::<IoUringDriver>::new()
                        .enable_timer()
                        .build()
                        .unwrap()
                        .block_on(serve),
                    Driver::Legacy => RuntimeBuilder::<LegacyDriver>::new()
                        .enable_timer()
                        .build()
                        .unwrap()
                        .block_on(serve),
                }
            }
        });
        let addr = addr_rx
            .recv()
            .expect("the server thread died before binding");
        TestServer {
            addr,
            probe,
            events,
            stats: published,
            stop: Some(stop),
            thread: Some(thread),
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// A new connection.
    pub async fn channel(&self) -> Channel {
        Endpoint::from_shared(self.url())
            .unwrap()
            .connect()
            .await
            .unwrap()
    }

    /// A client on a new connection.
    pub async fn client(&self) -> CheckClient<Channel> {
        CheckClient::new(self.channel().await)
    }

    /// What the observer saw so far. The server reports a call once it has answered
    /// and drained it, so right after a response, use [`TestServer::codes`] or
    /// [`TestServer::wait_for`].
    pub fn events(&self) -> MutexGuard<'_, EventLog> {
        self.events.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The codes of the calls to `path`, once `count` of them have ended.
    pub async fn codes(&self, path: &str, count: usize) -> Vec<Code> {
        let what = format!("{count} calls to {path}");
        self.wait_for(&what, |log| log.codes_of(path).len() >= count)
            .await;
        self.events().codes_of(path)
    }

    /// Waits (up to 10 s) until `condition` holds for the event log.
    pub async fn wait_for(&self, what: &str, condition: impl Fn(&EventLog) -> bool) {
        for _ in 0..1000 {
            if condition(&self.events()) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("timed out waiting for {what}: {:?}", self.events());
    }

    /// The server's counters, as of a few milliseconds ago.
    pub fn stats(&self) -> ServerStats {
        *self.stats.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Waits (up to 10 s) until `condition` holds for the server's counters.
    pub async fn wait_for_stats(&self, what: &str, condition: impl Fn(&ServerStats) -> bool) {
        for _ in 0..1000 {
            if condition(&self.stats()) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("timed out waiting for {what}: {:?}", self.stats());
    }

    /// A raw h2 client on a new connection, for what a gRPC library would not send.
    pub async fn h2_client(&self, builder: &h2::client::Builder) -> h2::client::SendRequest<Bytes> {
        let tcp = tokio::net::TcpStream::connect(self.addr).await.unwrap();
        let (send, connection) = builder.handshake(tcp).await.unwrap();
        tokio::spawn(async move {
            let _ = connection.await;
        });
        send.ready().await.unwrap()
    }

    /// A gRPC request to `path` for a raw h2 client.
    pub fn grpc_request(&self, path: &str) -> http::Request<()> {
        http::Request::builder()
            .method("POST")
            .uri(format!("{}{path}", self.url()))
            .header("content-type", "application/grpc")
            .header("te", "trailers")
            .body(())
            .unwrap()
    }

    /// Signals shutdown without waiting for it.
    pub fn begin_shutdown(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }

    /// Shuts the server down; returns its final counters and everything it reported.
    pub async fn stop(mut self) -> (Result<ServerStats, ServeError>, EventLog) {
        self.begin_shutdown();
        let thread = self.thread.take().unwrap();
        let stats =
            tokio::task::spawn_blocking(move || thread.join().expect("the server thread panicked"))
                .await
                .unwrap();
        (stats, std::mem::take(&mut *self.events()))
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        // A failed test leaves its server to end with the process.
        self.begin_shutdown();
    }
}

/// Polls a tokio TCP stream until the peer closes it; true when it did (EOF or reset).
pub async fn closed_by_peer(stream: &mut tokio::net::TcpStream) -> bool {
    use tokio::io::AsyncReadExt;
    let mut sink = vec![0u8; 64 * 1024];
    let read_all = async {
        loop {
            match stream.read(&mut sink).await {
                Ok(0) => return true,
                Ok(_) => continue,
                Err(error) => return error.kind() == std::io::ErrorKind::ConnectionReset,
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(10), read_all)
        .await
        .unwrap_or(false)
}

/// The HTTP/2 client preface followed by an empty SETTINGS frame: what a client sends
/// first, after which the server's handshake completes.
pub const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00";

/// A counter for tests that need one.
pub fn load(counter: &AtomicU64) -> u64 {
    counter.load(Ordering::SeqCst)
}
