//! The server: binding the core port, the accept loop, the connection bound and the
//! graceful shutdown.
//!
//! ```text
//!            accept ──► connection task (one per TCP connection)
//!   listener ───────►   h2 handshake, keepalive PINGs, poll_accept ──► call task (one per stream)
//!                                                                       route → handler → status
//! ```
//!
//! Shutdown moves every task through three phases, broadcast on the core without locks:
//! `Serving` → `Draining` (listener closed, GOAWAY sent on every connection, in-flight
//! calls go on) → `Aborting` (once the grace period is over: connections are dropped,
//! which makes every call still running see its stream gone and stop).

use std::cell::{Cell, RefCell};
use std::future::{Future, poll_fn};
use std::io;
use std::net::SocketAddr;
use std::pin::pin;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use hashbrown::HashMap;
use monoio::net::{ListenerOpts, TcpListener};

use crate::admission::Admission;
use crate::config::{ConfigError, ServerConfig};
use crate::connection;
use crate::observer::{Observer, StatsHandle};
use crate::router::Router;
use crate::status::Status;

/// Pause after an accept error caused by resource exhaustion (out of file descriptors
/// or memory), so the loop does not spin while the condition lasts.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);

/// How to open the core's listening socket.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ListenOptions {
    /// SO_REUSEPORT. Off by default, so that a second process (or a second core) binding
    /// the same port fails instead of silently sharing its connections.
    pub reuse_port: bool,
    /// The listen backlog. Default 1024.
    pub backlog: i32,
}

impl Default for ListenOptions {
    fn default() -> ListenOptions {
        ListenOptions {
            reuse_port: false,
            backlog: 1024,
        }
    }
}

/// The port cannot be bound.
#[derive(Debug, thiserror::Error)]
#[error("cannot listen on {addr}")]
pub struct BindError {
    /// The address asked for.
    pub addr: SocketAddr,
    /// The operating system's error (`AddrInUse` when another socket holds the port).
    #[source]
    pub source: io::Error,
}

/// Opens a listening socket on the current monoio runtime (call it on the core's thread,
/// inside the runtime). SO_REUSEADDR is on, so a restarted core can rebind at once.
///
/// # Errors
///
/// [`BindError`] when the address cannot be bound.
pub fn bind(addr: SocketAddr, options: &ListenOptions) -> Result<TcpListener, BindError> {
    let opts = ListenerOpts::new()
        .reuse_port(options.reuse_port)
        .backlog(options.backlog);
    TcpListener::bind_with_config(addr, &opts).map_err(|source| BindError { addr, source })
}

/// The server stopped for a reason other than its shutdown signal.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The listener failed in a way retrying cannot fix (not a transient condition such
    /// as a connection aborted before it was accepted or a full file table). In-flight
    /// calls were drained as in a shutdown.
    #[error("the listener failed")]
    Accept(#[source] io::Error),
}

/// Where the server is in its life; only moves forward.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Phase {
    Serving,
    Draining,
    Aborting,
}

/// What every task of one server shares, on one core.
pub(crate) struct Shared {
    pub(crate) router: Router,
    /// What every call's headers must pass before it is routed.
    pub(crate) gate: Option<Gate>,
    pub(crate) config: ServerConfig,
    pub(crate) h2: h2::server::Builder,
    observer: Option<Rc<dyn Observer>>,
    pub(crate) stats: StatsHandle,
    /// `max_calls` and the budget of buffered bytes.
    pub(crate) admission: Admission,
    phase: Cell<Phase>,
    /// Connection tasks to wake when the phase changes, by connection id.
    watchers: RefCell<HashMap<u64, Waker>>,
    /// The serve task, waiting for the last call and connection to end.
    quiescence: RefCell<Option<Waker>>,
}

impl Shared {
    /// Runs `event` on the observer, if there is one.
    pub(crate) fn observe(&self, event: impl FnOnce(&dyn Observer)) {
        if let Some(observer) = &self.observer {
            event(observer.as_ref());
        }
    }

    /// The current phase; connection `id` is woken when it changes.
    pub(crate) fn poll_phase(&self, id: u64, cx: &Context<'_>) -> Phase {
        let mut watchers = self.watchers.borrow_mut();
        match watchers.get_mut(&id) {
            Some(waker) if waker.will_wake(cx.waker()) => {}
            Some(waker) => waker.clone_from(cx.waker()),
            None => {
                watchers.insert(id, cx.waker().clone());
            }
        }
        self.phase.get()
    }

    /// Connection `id` has ended.
    pub(crate) fn forget(&self, id: u64) {
        self.watchers.borrow_mut().remove(&id);
    }

    fn set_phase(&self, phase: Phase) {
        self.phase.set(phase);
        let watchers = std::mem::take(&mut *self.watchers.borrow_mut());
        for waker in watchers.into_values() {
            waker.wake();
        }
    }

    /// A call or a connection ended: the serve task may be waiting for the last one.
    pub(crate) fn notify_ended(&self) {
        if self.phase.get() != Phase::Serving
            && let Some(waker) = self.quiescence.borrow_mut().take()
        {
            waker.wake();
        }
    }

    fn poll_quiescent(&self, cx: &Context<'_>) -> Poll<()> {
        if self.stats.in_flight() == 0 && self.stats.open_connections() == 0 {
            return Poll::Ready(());
        }
        *self.quiescence.borrow_mut() = Some(cx.waker().clone());
        Poll::Pending
    }
}

/// A gRPC server for one core: a [`Router`], its settings and an optional [`Observer`].
///
/// It runs on a monoio runtime built with `enable_timer()` (deadlines, keepalive and the
/// shutdown grace period are timers), with either driver: io_uring or legacy (epoll).
#[derive(Debug)]
pub struct Server {
    router: Router,
    gate: Option<Gate>,
    config: ServerConfig,
    observer: Option<Rc<dyn Observer>>,
    stats: StatsHandle,
}

/// A check of a call's request headers, run before the call is routed: `Err` refuses
/// the call with that status. See [`Server::with_gate`].
#[derive(Clone)]
pub struct Gate(Rc<GateCheck>);

/// The check a [`Gate`] runs.
type GateCheck = dyn Fn(&http::HeaderMap) -> Result<(), Status>;

impl Gate {
    /// A gate that runs `check` on the headers of every call.
    pub fn new(check: impl Fn(&http::HeaderMap) -> Result<(), Status> + 'static) -> Gate {
        Gate(Rc::new(check))
    }

    /// Runs the check.
    pub(crate) fn check(&self, headers: &http::HeaderMap) -> Result<(), Status> {
        (self.0)(headers)
    }
}

impl std::fmt::Debug for Gate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Gate")
    }
}

impl std::fmt::Debug for dyn Observer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("dyn Observer")
    }
}

impl Server {
    /// A server answering `router`'s methods with `config`.
    ///
    /// # Errors
    ///
    /// [`ConfigError`] when a setting cannot work.
    pub fn new(config: ServerConfig, router: Router) -> Result<Server, ConfigError> {
        config.validate()?;
        Ok(Server {
            router,
            gate: None,
            config,
            observer: None,
            stats: StatsHandle::default(),
        })
    }

    /// Checks the headers of every call with `gate` before anything else is done for
    /// it: a call it refuses is answered with its [`Status`] (trailers-only), before
    /// its method is looked up or any of its request is read. How a server admits only
    /// the callers holding a credential.
    #[must_use]
    pub fn with_gate(mut self, gate: Gate) -> Server {
        self.gate = Some(gate);
        self
    }

    /// Reports calls and connections to `observer`.
    #[must_use]
    pub fn with_observer(mut self, observer: Rc<dyn Observer>) -> Server {
        self.observer = Some(observer);
        self
    }

    /// The server's live counters (in-flight calls, open connections, buffered bytes,
    /// refusals, totals).
    pub fn stats(&self) -> StatsHandle {
        self.stats.clone()
    }

    /// Serves `listener` until `shutdown` completes, then shuts down gracefully: the
    /// listener is closed, every connection gets GOAWAY, in-flight calls may finish
    /// within [`ServerConfig::shutdown_grace`], and the connections still open after
    /// that are closed. Returns once every call and connection has ended.
    ///
    /// # Errors
    ///
    /// [`ServeError::Accept`] when the listener fails for good; the connections are
    /// shut down as above first.
    pub async fn serve(
        self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()>,
    ) -> Result<(), ServeError> {
        let h2 = self.config.h2_builder();
        let admission = Admission::new(&self.config, self.stats.clone());
        let shared = Rc::new(Shared {
            router: self.router,
            gate: self.gate,
            config: self.config,
            h2,
            observer: self.observer,
            stats: self.stats,
            admission,
            phase: Cell::new(Phase::Serving),
            watchers: RefCell::new(HashMap::new()),
            quiescence: RefCell::new(None),
        });
        let mut shutdown = pin!(shutdown);
        let mut next_id = 0u64;
        let result = loop {
            let Some(accepted) = until(shutdown.as_mut(), listener.accept()).await else {
                break Ok(());
            };
            match accepted {
                Ok((socket, peer)) => {
                    if shared.stats.open_connections() >= shared.config.max_connections {
                        shared.stats.connection_refused();
                        shared.observe(|o| o.connection_refused(peer));
                        tracing::debug!(%peer, "connection refused: max_connections reached");
                        drop(socket);
                        continue;
                    }
                    next_id += 1;
                    shared.stats.connection_opened();
                    shared.observe(|o| o.connection_opened(peer));
                    monoio::spawn(connection::serve(Rc::clone(&shared), next_id, socket, peer));
                }
                Err(error) => match accept_error(&error) {
                    AcceptError::Retry => {}
                    AcceptError::Backoff => {
                        tracing::warn!(%error, "accept failed; retrying shortly");
                        let pause = monoio::time::sleep(ACCEPT_BACKOFF);
                        if until(shutdown.as_mut(), pause).await.is_none() {
                            break Ok(());
                        }
                    }
                    AcceptError::Fatal => break Err(ServeError::Accept(error)),
                },
            }
        };
        drop(listener);

        shared.set_phase(Phase::Draining);
        let grace = shared.config.shutdown_grace;
        let drained = monoio::time::timeout(grace, poll_fn(|cx| shared.poll_quiescent(cx))).await;
        if drained.is_err() {
            tracing::info!(
                in_flight = shared.stats.in_flight(),
                connections = shared.stats.open_connections(),
                "shutdown grace period over; closing the remaining connections"
            );
            shared.set_phase(Phase::Aborting);
            poll_fn(|cx| shared.poll_quiescent(cx)).await;
        }
        result
    }
}

/// Runs `work` unless `stop` completes first (`None`).
async fn until<T>(
    mut stop: std::pin::Pin<&mut impl Future<Output = ()>>,
    work: impl Future<Output = T>,
) -> Option<T> {
    let mut work = pin!(work);
    poll_fn(|cx| {
        if stop.as_mut().poll(cx).is_ready() {
            return Poll::Ready(None);
        }
        work.as_mut().poll(cx).map(Some)
    })
    .await
}

enum AcceptError {
    /// The connection failed before it was accepted; take the next one.
    Retry,
    /// Out of descriptors or memory; wait a little.
    Backoff,
    /// The listener itself is broken.
    Fatal,
}

fn accept_error(error: &io::Error) -> AcceptError {
    match error.raw_os_error() {
        Some(libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM) => AcceptError::Backoff,
        _ => match error.kind() {
            io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::Interrupted
            | io::ErrorKind::WouldBlock
            | io::ErrorKind::PermissionDenied
            | io::ErrorKind::TimedOut => AcceptError::Retry,
            _ if error.raw_os_error() == Some(libc::EPROTO) => AcceptError::Retry,
            _ => AcceptError::Fatal,
        },
    }
}
