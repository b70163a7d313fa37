//! gRPC served by one Vectron core: plain [h2] on the core's single-threaded monoio
//! runtime, with no tokio runtime (tokio is linked only for the IO traits h2 speaks, which
//! monoio's `poll-io` streams implement).
//!
//! A [`Router`] maps gRPC paths to typed handlers over [prost] messages: unary,
//! client-streaming (bulk ingest) and server-streaming (large results, with
//! backpressure). Handlers are closures returning futures, neither of which needs to be
//! `Send`: a router is built on its core and handlers share that core's `Rc<RefCell<_>>`
//! state. A [`Server`] serves a router on one listening socket; every connection and
//! every call runs as a task spawned on the same runtime.
//!
//! A [`Channel`] is the other end, for calls from one core to another (Raft replication
//! between the replicas of a shard): one HTTP/2 connection to a peer on the core's
//! runtime, opened on the first call and again after it is lost, with unary and
//! client-streaming calls under a deadline and flow control, keepalive PINGs, and
//! failures mapped to the gRPC status codes (see [`Channel`] for which).
//!
//! What the server does for every call:
//! - checks `POST` and `content-type: application/grpc` (HTTP 405 / 415 otherwise);
//! - routes the `:path`: an unknown method gets `UNIMPLEMENTED`;
//! - refuses `grpc-encoding` other than `identity` with `UNIMPLEMENTED` (and
//!   `grpc-accept-encoding: identity`): messages are never compressed, which costs no
//!   CPU on a core and leaves compression to the gateway if it is ever wanted;
//! - turns `grpc-timeout` into a deadline the handler sees in its [`RequestContext`]
//!   and that the server enforces (`DEADLINE_EXCEEDED`);
//! - refuses request and response messages over the configured sizes
//!   (`RESOURCE_EXHAUSTED`, with both sizes in the message);
//! - admits at most [`ServerConfig::max_calls`] calls at once across all connections,
//!   and keeps request and response messages within
//!   [`ServerConfig::max_buffered_bytes`] (see below);
//! - moves response bytes into h2 only as fast as the client's flow-control window
//!   allows, the last message of a call included, and resets the stream of a client that
//!   leaves them unread for [`ServerConfig::send_timeout`] or past the deadline;
//! - sends the final [`Status`] in trailers (`grpc-status`, percent-encoded
//!   `grpc-message`), or as a trailers-only response when nothing else was sent;
//! - answers `INTERNAL` when the handler panics, and goes on serving;
//! - reads the request body to its end before closing the stream, so h2 never has to
//!   reset streams on its own (which it punishes by closing the connection).
//!
//! And for every connection: HTTP/2 settings from [`ServerConfig`], a bound on open
//! connections, keepalive PINGs that close a connection whose peer stopped answering, a
//! graceful close (GOAWAY) of a connection with no call for
//! [`ServerConfig::idle_timeout`] even if its peer answers PINGs, and a graceful
//! shutdown (GOAWAY, a grace period for in-flight calls, then close). Garbage bytes or a
//! client that does not speak HTTP/2 close that connection only.
//!
//! # Example
//!
//! ```
//! use std::cell::Cell;
//! use std::rc::Rc;
//!
//! use vectron_net::{ListenOptions, RequestContext, Router, Server, ServerConfig, Status};
//!
//! #[derive(Clone, PartialEq, prost::Message)]
//! struct Ping {
//!     #[prost(uint64, tag = "1")]
//!     seq: u64,
//! }
//!
//! fn main() -> Result<(), Box<dyn std::error::Error>> {
//!     // Core state: single-threaded, no locks.
//!     let pings = Rc::new(Cell::new(0u64));
//!     let counter = Rc::clone(&pings);
//!     let router = Router::new().unary("/demo.Pinger/Ping", move |_: RequestContext, ping: Ping| {
//!         counter.set(counter.get() + 1);
//!         async move { Ok::<_, Status>(ping) }
//!     })?;
//!
//!     let mut runtime = monoio::RuntimeBuilder::<monoio::LegacyDriver>::new()
//!         .enable_timer()
//!         .build()?;
//!     runtime.block_on(async {
//!         let listener = vectron_net::bind("127.0.0.1:0".parse()?, &ListenOptions::default())?;
//!         let server = Server::new(ServerConfig::default(), router)?;
//!         // A real core passes the future that resolves when the worker stops.
//!         let stop = std::future::ready(());
//!         server.serve(listener, stop).await?;
//!         Ok::<_, Box<dyn std::error::Error>>(())
//!     })?;
//!     assert_eq!(pings.get(), 0);
//!     Ok(())
//! }
//! ```
//!
//! # Admission and memory
//!
//! A misbehaving client cannot make a core hold more than the server's limits, and a
//! busy core refuses work instead of queueing it:
//!
//! - A call beyond [`ServerConfig::max_calls`] is answered at once, before its request is
//!   read, with `RESOURCE_EXHAUSTED`, a message naming the limit and a `retry-after`
//!   trailer (whole seconds, from [`ServerConfig::retry_after`]).
//! - A request message over 64 KiB is charged its announced length against
//!   [`ServerConfig::max_buffered_bytes`] as soon as its 5-byte prefix arrives, and holds
//!   it until the next message of the stream starts or the call ends. Encoded response
//!   bytes are charged while they wait for the client's window. A message over 64 KiB
//!   that does not fit ends its call the same way (without `retry-after` when it is
//!   larger than the whole budget, which retrying cannot help). Smaller messages are
//!   always let through, so small calls such as searches keep flowing while large
//!   uploads are refused.
//! - Memory follows the bytes that arrive, never the lengths announced: a client that
//!   announces 64 MiB and sends nothing costs next to nothing.
//!
//! What a server holds in messages is then about `max_buffered_bytes`, plus at most one
//! small message and one DATA frame per call, plus what h2 itself buffers under the
//! HTTP/2 windows (a connection window of unread request bytes per connection, and
//! h2's send buffer per stream). [`StatsHandle`] reports the bytes held, their peak,
//! and the calls refused for each limit.
//!
//! # Panics in handlers
//!
//! A handler's future is polled inside `catch_unwind`. When it panics, the future is
//! dropped, a partially encoded response message is discarded, the client gets
//! `INTERNAL`, and the core goes on. What the panic interrupted stays as it was: a
//! `RefCell` borrow is released, but core state the handler was half-way through
//! changing is left half-changed, exactly as a future dropped at that point would leave
//! it. State that must stay consistent should be changed without a panic point in the
//! middle, or checked on use. (This needs the default `panic = "unwind"`.)
//!
//! # Deadlines and cancellation
//!
//! When the deadline passes or the client resets the stream, the handler's future is
//! dropped at its next suspension point: it never runs past an `.await` it is parked
//! on, but synchronous work between two `.await`s is not interrupted.

#![warn(missing_docs)]
#![doc(test(attr(deny(warnings))))]

mod admission;
mod call;
mod client;
mod codec;
mod config;
mod connection;
mod context;
mod inbound;
mod keepalive;
mod observer;
mod outbound;
mod router;
mod server;
mod status;
mod timeout;

pub use crate::client::Channel;
pub use crate::config::{ClientConfig, ConfigError, Keepalive, ServerConfig};
pub use crate::context::RequestContext;
pub use crate::inbound::RequestStream;
pub use crate::observer::{ConnectionEnd, Observer, ServerStats, StatsHandle};
pub use crate::outbound::ResponseSink;
pub use crate::router::{Method, MethodKind, Router, RouterError};
pub use crate::server::{BindError, Gate, ListenOptions, ServeError, Server, bind};
pub use crate::status::{Code, Status};
