//! The one HTTP/2 connection of a channel: opened on demand by a task of its own, shared
//! by every call, and forgotten once it fails, so that the next call opens another.
//!
//! ```text
//!        a call finds no connection         connect task: TCP connect, HTTP/2 preface
//!   Idle ───────────────────────────► Connecting ─────────────────────────────► Ready
//!    ▲                                    │ failed or timed out: its waiting       │
//!    │                                    │ calls get UNAVAILABLE                  │
//!    ├────────────────────────────────────┘                                        │
//!    └──── the connection task ends (peer gone, GOAWAY, keepalive unanswered), ────┘
//!          h2 refuses new streams on it (GOAWAY received), or a call finds it closed
//! ```
//!
//! Calls that arrive while a connection is being opened wait for that attempt, so a
//! burst of first calls opens one connection. The attempt runs on its own task: a call
//! that gives up waiting (its deadline passes) does not cancel it for the others.
//!
//! The connection task is the only one that polls the h2 `Connection`: it moves the
//! bytes of every call, answers the server's PINGs, sends keepalive PINGs and drops the
//! connection when one stays unanswered (h2 then fails every stream still open on it).
//! It holds the channel only weakly: once every clone of the channel is gone, the
//! connection closes after its last call.

use std::cell::{Cell, RefCell};
use std::future::{Future, poll_fn};
use std::net::SocketAddr;
use std::pin::pin;
use std::rc::{Rc, Weak};
use std::task::{Context, Poll, Waker};

use bytes::Bytes;
use h2::client::{Connection, SendRequest};
use monoio::net::TcpStream;
use monoio::net::tcp::stream_poll::TcpStreamPoll;

use crate::config::ClientConfig;
use crate::keepalive::Pinger;
use crate::status::Status;

/// The connection of a channel, and how to open it.
#[derive(Debug)]
pub(crate) struct Link {
    addr: SocketAddr,
    config: ClientConfig,
    h2: h2::client::Builder,
    state: RefCell<State>,
    /// The id the next connection gets.
    next_id: Cell<u64>,
}

#[derive(Debug)]
enum State {
    /// No connection: never opened, or the last one is gone.
    Idle,
    /// A connect task is opening one; calls wait for its outcome.
    Connecting(Rc<Attempt>),
    Ready(Conn),
}

/// A handle on one connection, for one call.
#[derive(Clone, Debug)]
pub(crate) struct Conn {
    /// Tells this connection from the ones opened before or after it.
    pub(crate) id: u64,
    pub(crate) send: SendRequest<Bytes>,
}

/// What a call found in the state.
enum Found {
    Ready(Conn),
    Wait(Rc<Attempt>),
}

/// One connection attempt, and the calls waiting for it.
#[derive(Debug, Default)]
struct Attempt {
    outcome: RefCell<Option<Result<Conn, Status>>>,
    waiters: RefCell<Vec<Waker>>,
}

impl Attempt {
    fn finish(&self, outcome: Result<Conn, Status>) {
        *self.outcome.borrow_mut() = Some(outcome);
        for waiter in std::mem::take(&mut *self.waiters.borrow_mut()) {
            waiter.wake();
        }
    }

    async fn wait(&self) -> Result<Conn, Status> {
        poll_fn(|cx| {
            if let Some(outcome) = &*self.outcome.borrow() {
                return Poll::Ready(outcome.clone());
            }
            let mut waiters = self.waiters.borrow_mut();
            if !waiters.iter().any(|waiter| waiter.will_wake(cx.waker())) {
                waiters.push(cx.waker().clone());
            }
            Poll::Pending
        })
        .await
    }
}

impl Link {
    pub(crate) fn new(addr: SocketAddr, config: ClientConfig) -> Link {
        Link {
            addr,
            h2: config.h2_builder(),
            config,
            state: RefCell::new(State::Idle),
            next_id: Cell::new(0),
        }
    }

    pub(crate) fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub(crate) fn config(&self) -> &ClientConfig {
        &self.config
    }

    /// A handle on the connection, ready to open a stream: the current connection, the
    /// one being opened, or a new one.
    ///
    /// # Errors
    ///
    /// `UNAVAILABLE` when the connection cannot be opened, or when h2 refuses new
    /// streams on it (the server sent GOAWAY, or the connection failed); the
    /// connection is then forgotten, so the next call opens another.
    pub(crate) async fn ready(self: &Rc<Link>) -> Result<Conn, Status> {
        let found = {
            let mut state = self.state.borrow_mut();
            match &*state {
                State::Ready(conn) => Found::Ready(conn.clone()),
                State::Connecting(attempt) => Found::Wait(Rc::clone(attempt)),
                State::Idle => {
                    let attempt = Rc::new(Attempt::default());
                    *state = State::Connecting(Rc::clone(&attempt));
                    monoio::spawn(connect(Rc::clone(self), Rc::clone(&attempt)));
                    Found::Wait(attempt)
                }
            }
        };
        let conn = match found {
            Found::Ready(conn) => conn,
            Found::Wait(attempt) => attempt.wait().await?,
        };
        let Conn { id, send } = conn;
        match send.ready().await {
            Ok(send) => Ok(Conn { id, send }),
            Err(error) => {
                self.forget(id);
                Err(Status::unavailable(format!(
                    "cannot start a call on the connection to {}: {error}",
                    self.addr
                )))
            }
        }
    }

    /// Forgets connection `id`, found failed or closing: the next call opens another.
    /// Does nothing once the channel has moved on to another connection.
    pub(crate) fn forget(&self, id: u64) {
        let mut state = self.state.borrow_mut();
        if matches!(&*state, State::Ready(conn) if conn.id == id) {
            *state = State::Idle;
        }
    }

    /// Opens a connection: TCP, then the HTTP/2 preface and settings.
    async fn open(&self) -> Result<(SendRequest<Bytes>, Connection<TcpStreamPoll, Bytes>), Status> {
        let addr = self.addr;
        let socket = TcpStream::connect_addr(addr)
            .await
            .map_err(|error| Status::unavailable(format!("cannot connect to {addr}: {error}")))?;
        if self.config.tcp_nodelay
            && let Err(error) = socket.set_nodelay(true)
        {
            tracing::debug!(%addr, %error, "cannot set TCP_NODELAY");
        }
        let io = socket.try_into_poll_io().map_err(|(error, _)| {
            Status::unavailable(format!(
                "cannot switch the connection to {addr} to poll-io: {error}"
            ))
        })?;
        self.h2.handshake::<_, Bytes>(io).await.map_err(|error| {
            Status::unavailable(format!("HTTP/2 handshake with {addr} failed: {error}"))
        })
    }

    /// Forgets connection `id` once h2 refuses new streams on it: the server sent GOAWAY
    /// (its calls in flight go on to their end), or the connection failed. Calls started
    /// from then on open a new connection instead of failing on this one.
    fn watch_closing(&self, id: u64, cx: &mut Context<'_>) {
        let mut state = self.state.borrow_mut();
        if let State::Ready(conn) = &mut *state
            && conn.id == id
            && let Poll::Ready(Err(error)) = conn.send.poll_ready(cx)
        {
            tracing::debug!(addr = %self.addr, %error, "connection takes no more calls");
            *state = State::Idle;
        }
    }
}

/// Opens a connection for `attempt` and hands it to its waiting calls.
async fn connect(link: Rc<Link>, attempt: Rc<Attempt>) {
    let timeout = link.config.connect_timeout;
    let outcome = match monoio::time::timeout(timeout, link.open()).await {
        Ok(Ok((send, mut conn))) => {
            let id = link.next_id.get();
            link.next_id.set(id + 1);
            let pinger = link
                .config
                .keepalive
                .and_then(|settings| conn.ping_pong().map(|pings| Pinger::new(pings, settings)));
            monoio::spawn(drive(Rc::downgrade(&link), link.addr, id, conn, pinger));
            Ok(Conn { id, send })
        }
        Ok(Err(status)) => Err(status),
        Err(_) => Err(Status::unavailable(format!(
            "cannot connect to {}: no connection within {timeout:?}",
            link.addr
        ))),
    };
    if let Err(status) = &outcome {
        tracing::debug!(addr = %link.addr, %status, "connection attempt failed");
    }
    *link.state.borrow_mut() = match &outcome {
        Ok(conn) => State::Ready(conn.clone()),
        Err(_) => State::Idle,
    };
    attempt.finish(outcome);
}

/// How a connection ended.
#[derive(Debug)]
enum End {
    /// h2 closed it: after a GOAWAY, or once the channel was gone and its last call
    /// ended.
    Closed,
    Failed(h2::Error),
    /// A keepalive PING stayed unanswered.
    Unresponsive,
}

/// Drives connection `id` until it ends, then forgets it.
async fn drive(
    link: Weak<Link>,
    addr: SocketAddr,
    id: u64,
    conn: Connection<TcpStreamPoll, Bytes>,
    mut pinger: Option<Pinger>,
) {
    let mut conn = pin!(conn);
    let end = poll_fn(|cx| {
        match conn.as_mut().poll(cx) {
            Poll::Ready(Ok(())) => return Poll::Ready(End::Closed),
            Poll::Ready(Err(error)) => return Poll::Ready(End::Failed(error)),
            Poll::Pending => {}
        }
        if let Some(link) = link.upgrade() {
            link.watch_closing(id, cx);
        }
        if let Some(pinger) = &mut pinger
            && pinger.poll_unresponsive(cx).is_ready()
        {
            return Poll::Ready(End::Unresponsive);
        }
        Poll::Pending
    })
    .await;
    match &end {
        End::Failed(error) => tracing::debug!(%addr, %error, "client connection failed"),
        End::Closed | End::Unresponsive => tracing::debug!(%addr, ?end, "client connection ended"),
    }
    if let Some(link) = link.upgrade() {
        link.forget(id);
    }
}
