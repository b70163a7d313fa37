//! One call, on its own task: checks, admission, routing, the handler under its deadline
//! and a panic guard, the final status, and the drain of the request body.
//!
//! ```text
//! request headers ─► POST? application/grpc? ──no──► HTTP 405 / 415
//!                    passes the gate (Server::with_gate)? ──no──► trailers-only error
//!                    known path? identity encoding? valid grpc-timeout? ──no──► trailers-only error
//!                    under max_calls? ──no──► trailers-only RESOURCE_EXHAUSTED + retry-after
//!                    handler future ◄── polled with: catch_unwind, the deadline timer,
//!                        │                the client's RST_STREAM, pending response bytes
//!                        ▼                (reset when they stall for send_timeout)
//!                    pending bytes under send capacity, then the status in trailers
//!                        (or trailers-only) ─► drain the request body ─► stats
//! ```
//!
//! A call refused for `max_calls` is answered before any of its request is read, and is
//! never queued. An admitted call holds its slot until its status is sent or its stream
//! reset; the drain that follows holds no slot.

use std::any::Any;
use std::cell::RefCell;
use std::future::{Future, poll_fn};
use std::net::SocketAddr;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::Pin;
use std::rc::Rc;
use std::task::Poll;
use std::time::{Duration, Instant};

use bytes::Bytes;
use h2::RecvStream;
use h2::server::SendResponse;
use http::header::{CONTENT_TYPE, HeaderName, HeaderValue};
use http::{Request, StatusCode};
use monoio::time::Sleep;

use crate::connection::OpenCall;
use crate::context::RequestContext;
use crate::inbound::Inbound;
use crate::outbound::Outbound;
use crate::router::{Call, CallFuture, Route};
use crate::server::Shared;
use crate::status::{Code, Status};
use crate::timeout::{self, GRPC_TIMEOUT};

/// Request bytes read and discarded after a call has answered, waiting for the client's
/// END_STREAM, before the stream is reset instead.
const DRAIN_BUDGET: usize = 1 << 20;
/// How long the drain waits for END_STREAM.
const DRAIN_TIME: Duration = Duration::from_secs(1);

const GRPC_ENCODING: HeaderName = HeaderName::from_static("grpc-encoding");
const GRPC_ACCEPT_ENCODING: HeaderName = HeaderName::from_static("grpc-accept-encoding");

/// The timer of a call's deadline.
type Deadline = Option<Pin<Box<Sleep>>>;

/// Serves one stream to its end and accounts for it. `open` counts the call on its
/// connection until the call is over.
pub(crate) async fn serve(
    shared: Rc<Shared>,
    peer: SocketAddr,
    request: Request<RecvStream>,
    respond: SendResponse<Bytes>,
    open: OpenCall,
) {
    let started = Instant::now();
    shared.stats.call_started();
    let (parts, body) = request.into_parts();
    let route = shared.router.route(parts.uri.path());
    let method = route.map(|route| &route.method);
    shared.observe(|o| o.call_started(method));

    let config = &shared.config;
    let budget = shared.admission.budget();
    let inbound = Rc::new(RefCell::new(Inbound::new(
        body,
        config.max_recv_message_size,
        budget,
    )));
    let outbound = Rc::new(RefCell::new(Outbound::new(
        respond,
        config.max_send_message_size,
        budget,
        config.send_timeout,
    )));
    let code = run(&shared, peer, parts, route, started, &inbound, &outbound).await;
    drop(outbound);
    drain(&inbound).await;
    drop(inbound);
    drop(open);

    shared.stats.call_finished();
    shared.observe(|o| o.call_finished(method, code, started.elapsed()));
    shared.notify_ended();
}

async fn run(
    shared: &Shared,
    peer: SocketAddr,
    parts: http::request::Parts,
    route: Option<&Route>,
    started: Instant,
    inbound: &Rc<RefCell<Inbound>>,
    outbound: &Rc<RefCell<Outbound>>,
) -> Code {
    if parts.method != http::Method::POST {
        outbound
            .borrow_mut()
            .reject_http(StatusCode::METHOD_NOT_ALLOWED);
        return Code::Internal;
    }
    if !is_grpc(parts.headers.get(CONTENT_TYPE)) {
        outbound
            .borrow_mut()
            .reject_http(StatusCode::UNSUPPORTED_MEDIA_TYPE);
        return Code::Internal;
    }
    if let Some(gate) = &shared.gate
        && let Err(status) = gate.check(&parts.headers)
    {
        tracing::debug!(%peer, %status, "call refused by the gate");
        return finish(shared, outbound, &status, &mut None).await;
    }
    let Some(route) = route else {
        let status = Status::unimplemented(format!("unknown method {}", parts.uri.path()));
        return finish(shared, outbound, &status, &mut None).await;
    };
    if let Some(encoding) = parts.headers.get(GRPC_ENCODING)
        && encoding != "identity"
    {
        let encoding = String::from_utf8_lossy(encoding.as_bytes());
        let status = Status::unimplemented(format!(
            "grpc-encoding {encoding:?} is not supported: send uncompressed messages"
        ))
        .with_metadata(GRPC_ACCEPT_ENCODING, HeaderValue::from_static("identity"));
        return finish(shared, outbound, &status, &mut None).await;
    }
    let deadline = match parts
        .headers
        .get(GRPC_TIMEOUT)
        .map(|v| timeout::parse(v.as_bytes()))
    {
        None => None,
        // A timeout too long to represent is no deadline at all.
        Some(Ok(timeout)) => started.checked_add(timeout),
        Some(Err(error)) => {
            let status = Status::internal(error.to_string());
            return finish(shared, outbound, &status, &mut None).await;
        }
    };
    let path = route.method.path();
    let _slot = match shared.admission.admit() {
        Ok(slot) => slot,
        Err(refusal) => {
            tracing::debug!(method = path, %peer, %refusal, "call refused");
            return finish(shared, outbound, &refusal.into(), &mut None).await;
        }
    };

    let mut timer: Deadline = deadline.map(|deadline| {
        Box::pin(monoio::time::sleep_until(monoio::time::Instant::from_std(
            deadline,
        )))
    });
    let ctx = RequestContext::new(route.method.clone(), deadline, peer, parts.headers);
    let call = Call {
        ctx,
        inbound: Rc::clone(inbound),
        outbound: Rc::clone(outbound),
    };
    let status = match supervise((route.handler)(call), &mut timer, outbound).await {
        Outcome::Done(Ok(())) => Status::new(Code::Ok, ""),
        Outcome::Done(Err(status)) => status,
        Outcome::Panicked(payload) => {
            tracing::error!(
                method = path,
                panic = panic_message(&*payload),
                "handler panicked"
            );
            Status::internal(format!("the handler of {path} panicked"))
        }
        Outcome::DeadlineExceeded => {
            // Past the deadline, what is pending still goes out ahead of the status, as
            // long as the client takes it (the send timeout still applies).
            timer = None;
            Status::deadline_exceeded(format!("{path} did not complete before its deadline"))
        }
        Outcome::Gone => return Code::Cancelled,
        Outcome::Stalled => {
            tracing::debug!(method = path, %peer, "the client left its answer unread; stream reset");
            outbound.borrow_mut().reset();
            shared.stats.send_timed_out();
            return Code::Cancelled;
        }
    };
    finish(shared, outbound, &status, &mut timer).await
}

/// How a handler's future ended.
enum Outcome {
    Done(Result<(), Status>),
    Panicked(Box<dyn Any + Send>),
    DeadlineExceeded,
    /// The client reset the stream, or the connection is gone.
    Gone,
    /// Response bytes waited `send_timeout` for the client without any of them moving.
    Stalled,
}

/// Polls the handler's future until it completes, panics, overruns its deadline, loses
/// its client or leaves its answer unread. Whatever ends first wins; the future is
/// dropped when this returns.
async fn supervise(
    future: CallFuture,
    timer: &mut Deadline,
    outbound: &RefCell<Outbound>,
) -> Outcome {
    let mut future = Some(future);
    poll_fn(|cx| {
        let Some(running) = future.as_mut() else {
            return Poll::Ready(Outcome::Gone);
        };
        match catch_unwind(AssertUnwindSafe(|| running.as_mut().poll(cx))) {
            Ok(Poll::Ready(result)) => return Poll::Ready(Outcome::Done(result)),
            Ok(Poll::Pending) => {}
            Err(payload) => {
                // Drop the poisoned future before anything else touches the call.
                future = None;
                outbound.borrow_mut().discard_partial();
                return Poll::Ready(Outcome::Panicked(payload));
            }
        }
        {
            let mut outbound = outbound.borrow_mut();
            // Keep pending response bytes moving while the handler works.
            if let Poll::Ready(Err(_)) = outbound.poll_flush(cx, 0) {
                return Poll::Ready(Outcome::Gone);
            }
            if outbound.poll_gone(cx).is_ready() {
                return Poll::Ready(Outcome::Gone);
            }
            if outbound.poll_stalled(cx).is_ready() {
                return Poll::Ready(Outcome::Stalled);
            }
        }
        if let Some(timer) = timer
            && timer.as_mut().poll(cx).is_ready()
        {
            return Poll::Ready(Outcome::DeadlineExceeded);
        }
        Poll::Pending
    })
    .await
}

/// Ends the call with `status` behind the pending response bytes, waiting for the client
/// to take them until the `deadline` timer fires or they stall for `send_timeout`; then
/// the stream is reset instead. The code to report.
async fn finish(
    shared: &Shared,
    outbound: &RefCell<Outbound>,
    status: &Status,
    deadline: &mut Deadline,
) -> Code {
    poll_fn(|cx| {
        let mut outbound = outbound.borrow_mut();
        match outbound.poll_finish(cx, status) {
            Poll::Ready(Ok(())) => return Poll::Ready(status.code()),
            Poll::Ready(Err(_)) => return Poll::Ready(Code::Cancelled),
            Poll::Pending => {}
        }
        if outbound.poll_gone(cx).is_ready() {
            return Poll::Ready(Code::Cancelled);
        }
        let code = if outbound.poll_stalled(cx).is_ready() {
            Code::Cancelled
        } else if let Some(timer) = deadline
            && timer.as_mut().poll(cx).is_ready()
        {
            Code::DeadlineExceeded
        } else {
            return Poll::Pending;
        };
        tracing::debug!(%code, "the client left its answer unread; stream reset");
        outbound.reset();
        shared.stats.send_timed_out();
        Poll::Ready(code)
    })
    .await
}

/// Reads the rest of the request body, so the stream closes without a reset (see
/// `inbound`). A client still sending after [`DRAIN_BUDGET`] bytes or [`DRAIN_TIME`] is
/// asked to stop with `RST_STREAM(NO_ERROR)` when the body is dropped.
async fn drain(inbound: &RefCell<Inbound>) {
    if inbound.borrow().is_ended() {
        return;
    }
    let mut budget = DRAIN_BUDGET;
    let drained = poll_fn(|cx| inbound.borrow_mut().poll_drain(cx, &mut budget));
    let _ = monoio::time::timeout(DRAIN_TIME, drained).await;
}

/// Whether `content-type` names gRPC with protobuf messages: `application/grpc` or
/// `application/grpc+proto`, with optional parameters, in any letter case.
pub(crate) fn is_grpc(content_type: Option<&HeaderValue>) -> bool {
    const GRPC: &[u8] = b"application/grpc";
    const PROTO: &[u8] = b"+proto";
    let Some(value) = content_type.map(HeaderValue::as_bytes) else {
        return false;
    };
    let starts = |bytes: &[u8], prefix: &[u8]| {
        bytes
            .get(..prefix.len())
            .is_some_and(|head| head.eq_ignore_ascii_case(prefix))
    };
    if !starts(value, GRPC) {
        return false;
    }
    let rest = &value[GRPC.len()..];
    let rest = if starts(rest, PROTO) {
        &rest[PROTO.len()..]
    } else {
        rest
    };
    rest.first().is_none_or(|&byte| byte == b';')
}

fn panic_message(payload: &(dyn Any + Send)) -> &str {
    if let Some(message) = payload.downcast_ref::<&str>() {
        message
    } else if let Some(message) = payload.downcast_ref::<String>() {
        message
    } else {
        "(not a string)"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grpc_content_types_are_recognised() {
        let check = |v: &'static str| is_grpc(Some(&HeaderValue::from_static(v)));
        assert!(check("application/grpc"));
        assert!(check("application/grpc+proto"));
        assert!(check("Application/GRPC; charset=utf-8"));
        assert!(!check("application/grpc+json"));
        assert!(!check("application/grpcx"));
        assert!(!check("application/json"));
        assert!(!is_grpc(None));
    }
}
