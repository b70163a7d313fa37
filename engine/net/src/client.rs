//! gRPC calls from one core to a peer core: a [`Channel`] is one HTTP/2 connection to
//! one address, on the core's monoio runtime, shared by every call to that peer (each
//! call is an h2 stream on it).
//!
//! ```text
//!   Channel::unary / client_streaming          (one task per call, the caller's)
//!     deadline ─► connection (link) ─► request headers ─► messages under the server's
//!                                                         flow-control windows
//!                 response headers ◄─ one message ◄─ trailers: grpc-status, grpc-message
//!   connection task (link)                     (one per connection)
//!     polls h2, keepalive PINGs, forgets the connection when it ends or goes away
//! ```
//!
//! A call never retries by itself: when the connection cannot be opened or is lost, the
//! call fails with `UNAVAILABLE` and the next call opens a new connection. Replication
//! decides itself whether and when to call again.
//!
//! The request side ([`request`]) and the response side ([`response`]) reuse the
//! server's framing: [`crate::codec`] frames and decodes messages, and statuses travel
//! as [`crate::status`] writes them.

mod link;
mod request;
mod response;

use std::future::{Future, poll_fn};
use std::net::SocketAddr;
use std::pin::{Pin, pin};
use std::rc::Rc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::BytesMut;
use h2::RecvStream;
use h2::client::ResponseFuture;
use http::header::{CONTENT_TYPE, HeaderValue, TE, USER_AGENT};
use http::uri::{Authority, PathAndQuery, Scheme};
use http::{Method, Request, Response, Uri};
use monoio::time::Instant;
use prost::Message;

use self::link::{Conn, Link};
use self::request::{FLUSH_AT, HIGH_WATER, RequestBody};
use self::response::{Target, stream_status};
use crate::config::{ClientConfig, ConfigError};
use crate::outbound::{GRPC_CONTENT_TYPE, yield_once};
use crate::status::Status;
use crate::timeout::{self, GRPC_TIMEOUT};

/// Messages a streaming call takes from its source in a row before it lets the other
/// tasks of the core run.
const YIELD_EVERY: u32 = 64;

const VECTRON_USER_AGENT: HeaderValue =
    HeaderValue::from_static(concat!("vectron-net/", env!("CARGO_PKG_VERSION")));

/// One HTTP/2 connection to one peer address, shared by every call to it: calls are
/// multiplexed on it as h2 streams.
///
/// A channel lives on one core: it is `Clone` (the clones share the connection) and
/// not `Send`, and its calls run on the core's monoio runtime (built with
/// `enable_timer()`, with either driver). It connects on the first call, and again on
/// a later call once the connection failed or was closed (GOAWAY, reset, a peer that
/// stopped answering keepalive PINGs); calls that arrive while it connects share that
/// one attempt. It never retries a call by itself.
///
/// Every call has a timeout, sent to the server as `grpc-timeout` and enforced here:
/// when it passes, the call's stream is reset and the call fails with
/// `DEADLINE_EXCEEDED`. Waiting for the connection counts against it.
///
/// What a failed call returns:
/// - `UNAVAILABLE` when the connection cannot be opened within
///   [`ClientConfig::connect_timeout`], is lost, or takes no new call (the server sent
///   GOAWAY), or the server refused the stream; the message names the address and the
///   cause;
/// - `DEADLINE_EXCEEDED` when the timeout passes;
/// - the server's status, its `grpc-message` percent-decoded and its other trailers as
///   [`Status::metadata`];
/// - `RESOURCE_EXHAUSTED` for a request or response message over
///   [`ClientConfig::max_message_bytes`];
/// - `INTERNAL` for a response that breaks the protocol (no `grpc-status`, no message,
///   bytes that do not decode), and the gRPC spec's mapping for a response whose HTTP
///   status is not 200 (503 → `UNAVAILABLE`, for example).
///
/// # Example
///
/// ```
/// use std::time::Duration;
///
/// use vectron_net::{Channel, ClientConfig, ListenOptions, Router, Server, ServerConfig, Status};
///
/// #[derive(Clone, PartialEq, prost::Message)]
/// struct Ping {
///     #[prost(uint64, tag = "1")]
///     seq: u64,
/// }
///
/// fn main() -> Result<(), Box<dyn std::error::Error>> {
///     let mut runtime = monoio::RuntimeBuilder::<monoio::LegacyDriver>::new()
///         .enable_timer()
///         .build()?;
///     runtime.block_on(async {
///         // A peer core, served on this runtime for the example.
///         let router = Router::new().unary("/demo.Pinger/Ping", |_, ping: Ping| async move {
///             Ok::<_, Status>(Ping { seq: ping.seq + 1 })
///         })?;
///         let listener = vectron_net::bind("127.0.0.1:0".parse()?, &ListenOptions::default())?;
///         let addr = listener.local_addr()?;
///         let server = Server::new(ServerConfig::default(), router)?;
///         let _serving = monoio::spawn(server.serve(listener, std::future::pending()));
///
///         let channel = Channel::new(addr, ClientConfig::default())?;
///         let pong: Ping = channel
///             .unary("/demo.Pinger/Ping", &Ping { seq: 1 }, Duration::from_secs(1))
///             .await?;
///         assert_eq!(pong.seq, 2);
///         Ok::<_, Box<dyn std::error::Error>>(())
///     })?;
///     Ok(())
/// }
/// ```
#[derive(Clone, Debug)]
pub struct Channel {
    link: Rc<Link>,
    authority: Authority,
    metadata: Rc<http::HeaderMap>,
}

impl Channel {
    /// A channel to `addr`; nothing is connected until the first call.
    ///
    /// # Errors
    ///
    /// [`ConfigError`] when a setting cannot work.
    pub fn new(addr: SocketAddr, config: ClientConfig) -> Result<Channel, ConfigError> {
        config.validate()?;
        let authority = Authority::try_from(addr.to_string())
            .expect("a socket address always prints as a valid URI authority");
        let metadata = Rc::new(config.metadata.clone());
        Ok(Channel {
            link: Rc::new(Link::new(addr, config)),
            authority,
            metadata,
        })
    }

    /// The peer's address.
    pub fn addr(&self) -> SocketAddr {
        self.link.addr()
    }

    /// A unary call: sends `request` to the method at `path` (such as
    /// `"/vectron.replication.v1.Replication/Append"`) and returns its one response
    /// message.
    ///
    /// # Errors
    ///
    /// The [`Status`] the call failed with: see [`Channel`].
    pub async fn unary<Req, Resp>(
        &self,
        path: &str,
        request: &Req,
        timeout: Duration,
    ) -> Result<Resp, Status>
    where
        Req: Message,
        Resp: Message + Default,
    {
        self.call(path, timeout, Some(request), async || Ok(None))
            .await
    }

    /// A client-streaming call (shipping a snapshot, say): sends every message
    /// `messages` yields until it yields `Ok(None)`, then ends the request and returns
    /// the one response message.
    ///
    /// Messages are taken from `messages` only as fast as the server's flow-control
    /// windows let them go: the call holds at most 64 KiB of framed messages beyond the
    /// one being sent, however long the stream. When `messages` fails, the stream is
    /// reset, so the server never takes a partial stream for a whole one, and the call
    /// fails with that status. When the server answers before the stream is over (it
    /// refused the call, say), `messages` is no longer called and the call returns
    /// that answer.
    ///
    /// # Errors
    ///
    /// The [`Status`] the call failed with (see [`Channel`]), or the one `messages`
    /// failed with.
    pub async fn client_streaming<Req, Resp>(
        &self,
        path: &str,
        messages: impl AsyncFnMut() -> Result<Option<Req>, Status>,
        timeout: Duration,
    ) -> Result<Resp, Status>
    where
        Req: Message,
        Resp: Message + Default,
    {
        self.call(path, timeout, None, messages).await
    }

    /// A call with `first` framed before anything else, then what `more` yields,
    /// under the deadline.
    async fn call<Req, Resp>(
        &self,
        path: &str,
        timeout: Duration,
        first: Option<&Req>,
        more: impl AsyncFnMut() -> Result<Option<Req>, Status>,
    ) -> Result<Resp, Status>
    where
        Req: Message,
        Resp: Message + Default,
    {
        let target = Target {
            path,
            addr: self.addr(),
        };
        let call = self.run(target, timeout, first, more);
        match monoio::time::timeout(timeout, call).await {
            Ok(result) => result,
            // Dropping the call dropped its stream's handles: h2 resets the stream.
            Err(_) => Err(Status::deadline_exceeded(format!(
                "{target} did not complete within {timeout:?}"
            ))),
        }
    }

    async fn run<Req, Resp>(
        &self,
        target: Target<'_>,
        timeout: Duration,
        first: Option<&Req>,
        mut more: impl AsyncFnMut() -> Result<Option<Req>, Status>,
    ) -> Result<Resp, Status>
    where
        Req: Message,
        Resp: Message + Default,
    {
        let started = Instant::now();
        let max_message = self.link.config().max_message_bytes;
        let mut pending = BytesMut::new();
        if let Some(first) = first {
            request::frame(first, max_message, &mut pending)?;
        }
        let mut request = self.request(target.path)?;
        let Conn { id, mut send } = self.link.ready().await?;
        // The server's deadline is what is left of the call's once it is connected.
        if let Some(left) = timeout::encode(timeout.saturating_sub(started.elapsed())) {
            request.headers_mut().insert(GRPC_TIMEOUT, left);
        }
        let (response, stream) = send.send_request(request, false).map_err(|error| {
            self.link.forget(id);
            Status::unavailable(format!("cannot start {target}: {error}"))
        })?;
        drop(send);

        let mut body = RequestBody::new(stream, max_message, pending);
        let mut answer = Answer::Waiting(response);
        send_all(&mut body, &mut answer, &mut more, target).await?;
        let response = match answer {
            Answer::Waiting(response) => response.await,
            Answer::Arrived(response) => Ok(response),
            Answer::Failed(error) => Err(error),
        };
        // The request's bytes are all in h2 or no longer wanted.
        drop(body);
        let response = response.map_err(|error| {
            if error.is_io() || error.is_go_away() {
                self.link.forget(id);
            }
            stream_status(&error, target)
        })?;
        response::read(response, max_message, target).await
    }

    /// The request headers of a call to `path`, but for its `grpc-timeout`.
    fn request(&self, path: &str) -> Result<Request<()>, Status> {
        let invalid = |reason: &dyn std::fmt::Display| {
            Status::invalid_argument(format!("{path:?} is not a gRPC method path: {reason}"))
        };
        if !path.starts_with('/') {
            return Err(invalid(&"it does not start with '/'"));
        }
        let path = PathAndQuery::try_from(path).map_err(|error| invalid(&error))?;
        let uri = Uri::builder()
            .scheme(Scheme::HTTP)
            .authority(self.authority.clone())
            .path_and_query(path)
            .build()
            .map_err(|error| invalid(&error))?;
        let mut request = Request::new(());
        *request.method_mut() = Method::POST;
        *request.uri_mut() = uri;
        let headers = request.headers_mut();
        for (name, value) in self.metadata.iter() {
            headers.append(name, value.clone());
        }
        headers.insert(CONTENT_TYPE, GRPC_CONTENT_TYPE);
        headers.insert(TE, HeaderValue::from_static("trailers"));
        headers.insert(USER_AGENT, VECTRON_USER_AGENT);
        Ok(request)
    }
}

/// The response of a call whose request is still going out.
#[derive(Debug)]
enum Answer {
    Waiting(ResponseFuture),
    /// The response headers; the body may still be coming.
    Arrived(Response<RecvStream>),
    Failed(h2::Error),
}

impl Answer {
    /// Watches for the response while the request goes out: true once nothing more
    /// needs to be sent, because the server has already ended the call (a
    /// trailers-only answer) or the stream failed.
    fn poll_ends_call(&mut self, cx: &mut Context<'_>) -> bool {
        let Answer::Waiting(response) = self else {
            return false;
        };
        let (next, ends) = match Pin::new(response).poll(cx) {
            Poll::Pending => return false,
            Poll::Ready(Ok(response)) => {
                let ends = response.body().is_end_stream();
                (Answer::Arrived(response), ends)
            }
            Poll::Ready(Err(error)) => (Answer::Failed(error), true),
        };
        *self = next;
        ends
    }
}

/// Sends the request: the framed bytes already pending, then every message `more`
/// yields, under send capacity, and ends the stream. Returns early, with nothing
/// more sent, once the server has ended the call or the stream takes no more bytes:
/// the response says how the call ended.
///
/// # Errors
///
/// The status `more` failed with, or `RESOURCE_EXHAUSTED` for a message over the
/// channel's limit; the caller then drops the stream, which resets it.
async fn send_all<Req: Message>(
    body: &mut RequestBody,
    answer: &mut Answer,
    more: &mut impl AsyncFnMut() -> Result<Option<Req>, Status>,
    target: Target<'_>,
) -> Result<(), Status> {
    let mut in_a_row = 0u32;
    loop {
        let produced = {
            let mut produce = pin!(more());
            poll_fn(|cx| {
                if answer.poll_ends_call(cx) {
                    return Poll::Ready(None);
                }
                if let Poll::Ready(produced) = produce.as_mut().poll(cx) {
                    return Poll::Ready(Some(produced));
                }
                // Keep pending bytes moving while the source works.
                if let Poll::Ready(Err(closed)) = body.poll_send(cx, 0, false) {
                    tracing::debug!(%target, error = ?closed.0, "the server takes no more of the request");
                    return Poll::Ready(None);
                }
                Poll::Pending
            })
            .await
        };
        let Some(produced) = produced else {
            return Ok(());
        };
        let end = match produced? {
            Some(message) => {
                body.push(&message)?;
                false
            }
            None => true,
        };
        if end || body.pending() >= FLUSH_AT {
            let sent = poll_fn(|cx| {
                if answer.poll_ends_call(cx) {
                    return Poll::Ready(false);
                }
                body.poll_send(cx, HIGH_WATER, end).map(|sent| match sent {
                    Ok(()) => true,
                    Err(closed) => {
                        tracing::debug!(%target, error = ?closed.0, "the server takes no more of the request");
                        false
                    }
                })
            })
            .await;
            if end || !sent {
                return Ok(());
            }
        }
        in_a_row += 1;
        if in_a_row >= YIELD_EVERY {
            in_a_row = 0;
            yield_once().await;
        }
    }
}
