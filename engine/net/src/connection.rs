//! One TCP connection: the HTTP/2 handshake, the keepalive PINGs, the idle timeout, and
//! the loop that drives h2 and spawns a call task per stream.
//!
//! The connection task is the only one that polls the h2 `Connection`, so it is what
//! moves bytes for every stream of the connection; call tasks only queue frames and wait
//! on h2's wakers. Anything unexpected from the peer (bytes that are not an HTTP/2
//! preface, invalid frames, silence) ends this task and closes the socket; it never
//! reaches the rest of the core.
//!
//! A connection holds one of the server's `max_connections` slots, so one that stays
//! idle is closed: each call task holds an [`OpenCall`] until it is over, and once the
//! connection has had none for `idle_timeout` it gets a graceful GOAWAY (a call racing
//! it is still served), and is dropped if it has not closed `shutdown_grace` later.
//! Answering keepalive PINGs does not count as activity.

use std::cell::Cell;
use std::future::{Future, poll_fn};
use std::net::SocketAddr;
use std::pin::{Pin, pin};
use std::rc::Rc;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use bytes::Bytes;
use monoio::net::TcpStream;
use monoio::time::{Instant, Sleep};

use crate::call;
use crate::keepalive::Pinger;
use crate::observer::ConnectionEnd;
use crate::server::{Phase, Shared};

/// Streams accepted in one poll before the connection task yields to the calls it
/// started.
const ACCEPT_BUDGET: usize = 32;

/// How long a draining connection stays open with no call in flight before the server
/// closes it: time for a call that raced the GOAWAY to arrive. A client that keeps an
/// idle connection open (a peer core's channel does) would otherwise hold the shutdown
/// for its whole grace period.
const DRAIN_LINGER: Duration = Duration::from_millis(100);

/// Serves connection `id` until it ends, and accounts for its end.
pub(crate) async fn serve(shared: Rc<Shared>, id: u64, socket: TcpStream, peer: SocketAddr) {
    let end = run(&shared, id, socket, peer).await;
    tracing::debug!(%peer, ?end, "connection ended");
    shared.forget(id);
    shared.stats.connection_closed();
    shared.observe(|o| o.connection_closed(peer, end));
    shared.notify_ended();
}

async fn run(shared: &Rc<Shared>, id: u64, socket: TcpStream, peer: SocketAddr) -> ConnectionEnd {
    if shared.config.tcp_nodelay
        && let Err(error) = socket.set_nodelay(true)
    {
        tracing::debug!(%peer, %error, "cannot set TCP_NODELAY");
    }
    let io = match socket.try_into_poll_io() {
        Ok(io) => io,
        Err((error, _)) => {
            tracing::debug!(%peer, %error, "cannot switch the socket to poll-io");
            return ConnectionEnd::Error;
        }
    };

    let mut handshaking = pin!(shared.h2.handshake::<_, Bytes>(io));
    let mut timeout = pin!(monoio::time::sleep(shared.config.handshake_timeout));
    let handshake = poll_fn(|cx| {
        if shared.poll_phase(id, cx) == Phase::Aborting {
            return Poll::Ready(Err(ConnectionEnd::Aborted));
        }
        if let Poll::Ready(done) = handshaking.as_mut().poll(cx) {
            return Poll::Ready(done.map_err(|error| {
                tracing::debug!(%peer, %error, "HTTP/2 handshake failed");
                ConnectionEnd::HandshakeFailed
            }));
        }
        if timeout.as_mut().poll(cx).is_ready() {
            return Poll::Ready(Err(ConnectionEnd::HandshakeTimedOut));
        }
        Poll::Pending
    });
    let mut conn = match handshake.await {
        Ok(conn) => conn,
        Err(end) => return end,
    };

    let mut keepalive = match shared.config.keepalive {
        Some(settings) => conn.ping_pong().map(|pings| Pinger::new(pings, settings)),
        None => None,
    };
    let activity = Rc::new(Activity::new());
    let mut idle = shared
        .config
        .idle_timeout
        .map(|timeout| IdleTimer::new(Rc::clone(&activity), timeout));
    let mut goaway_sent = false;
    // Set once the connection was found idle: the time it has left to close.
    let mut closing_idle: Option<Pin<Box<Sleep>>> = None;
    // Set while the server drains: when the connection is next looked at for calls.
    let mut drain_check: Option<Pin<Box<Sleep>>> = None;
    poll_fn(|cx| {
        // Whether the server drains and the connection has had no call for a while: it
        // closes unless a call is waiting to be accepted.
        let mut drained = false;
        match shared.poll_phase(id, cx) {
            Phase::Serving => {}
            Phase::Draining => {
                if !goaway_sent {
                    goaway_sent = true;
                    conn.graceful_shutdown();
                }
                let check =
                    drain_check.get_or_insert_with(|| Box::pin(monoio::time::sleep(DRAIN_LINGER)));
                if check.as_mut().poll(cx).is_ready() {
                    drained = activity.open.get() == 0
                        && activity.last_ended.get().elapsed() >= DRAIN_LINGER;
                    *check = Box::pin(monoio::time::sleep(DRAIN_LINGER));
                    // Polled once so that it wakes this task.
                    let _ = check.as_mut().poll(cx);
                }
            }
            Phase::Aborting => return Poll::Ready(ConnectionEnd::Aborted),
        }
        if let Some(pinger) = &mut keepalive
            && pinger.poll_unresponsive(cx).is_ready()
        {
            return Poll::Ready(ConnectionEnd::Unresponsive);
        }
        if !goaway_sent
            && let Some(idle) = &mut idle
            && idle.poll_idle(cx).is_ready()
        {
            tracing::debug!(%peer, "connection idle; closing it");
            goaway_sent = true;
            conn.graceful_shutdown();
            closing_idle = Some(Box::pin(monoio::time::sleep(shared.config.shutdown_grace)));
        }
        if let Some(grace) = &mut closing_idle
            && grace.as_mut().poll(cx).is_ready()
        {
            return Poll::Ready(ConnectionEnd::Idle);
        }
        for _ in 0..ACCEPT_BUDGET {
            match conn.poll_accept(cx) {
                Poll::Ready(Some(Ok((request, respond)))) => {
                    let open = OpenCall::new(&activity);
                    monoio::spawn(call::serve(Rc::clone(shared), peer, request, respond, open));
                }
                // Told to go away, a peer may close the socket at once, failing h2's
                // last writes: that is how an idle connection is expected to end.
                Poll::Ready(Some(Err(_)) | None) if closing_idle.is_some() => {
                    return Poll::Ready(ConnectionEnd::Idle);
                }
                Poll::Ready(Some(Err(error))) => {
                    tracing::debug!(%peer, %error, "HTTP/2 connection failed");
                    return Poll::Ready(ConnectionEnd::Error);
                }
                Poll::Ready(None) => return Poll::Ready(ConnectionEnd::Closed),
                Poll::Pending if drained => return Poll::Ready(ConnectionEnd::Closed),
                Poll::Pending => return Poll::Pending,
            }
        }
        cx.waker().wake_by_ref();
        Poll::Pending
    })
    .await
}

/// The calls of one connection, as its idle timer sees them.
#[derive(Debug)]
struct Activity {
    open: Cell<usize>,
    /// When the last call ended, or the connection started.
    last_ended: Cell<Instant>,
}

impl Activity {
    fn new() -> Activity {
        Activity {
            open: Cell::new(0),
            last_ended: Cell::new(Instant::now()),
        }
    }
}

/// One call of a connection, counted as open until it is dropped.
#[derive(Debug)]
pub(crate) struct OpenCall(Rc<Activity>);

impl OpenCall {
    fn new(activity: &Rc<Activity>) -> OpenCall {
        activity.open.set(activity.open.get() + 1);
        OpenCall(Rc::clone(activity))
    }
}

impl Drop for OpenCall {
    fn drop(&mut self) {
        let activity = &self.0;
        let open = activity.open.get().saturating_sub(1);
        activity.open.set(open);
        if open == 0 {
            activity.last_ended.set(Instant::now());
        }
    }
}

/// Ready once a connection has had no call open for its idle timeout.
///
/// Call tasks never wake it: when its timer fires with calls open, it looks again one
/// timeout later; with none open, it fires for good or waits for the rest of the timeout
/// since the last call ended.
struct IdleTimer {
    activity: Rc<Activity>,
    timeout: Duration,
    timer: Pin<Box<Sleep>>,
    /// The timeout is too long to represent as an instant: the connection is never idle.
    never: bool,
}

impl IdleTimer {
    fn new(activity: Rc<Activity>, timeout: Duration) -> IdleTimer {
        let due = activity.last_ended.get().checked_add(timeout);
        IdleTimer {
            timer: Box::pin(monoio::time::sleep_until(due.unwrap_or_else(Instant::now))),
            never: due.is_none(),
            activity,
            timeout,
        }
    }

    fn poll_idle(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        while !self.never {
            ready!(self.timer.as_mut().poll(cx));
            let now = Instant::now();
            let since = if self.activity.open.get() > 0 {
                now
            } else {
                self.activity.last_ended.get()
            };
            match since.checked_add(self.timeout) {
                Some(due) if due <= now => return Poll::Ready(()),
                Some(due) => self.timer.as_mut().reset(due),
                None => self.never = true,
            }
        }
        Poll::Pending
    }
}
