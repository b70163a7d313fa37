//! One call, on its own task: checks, routing, the handler under its deadline and a
//! panic guard, the final status, and the drain of the request body.
//!
//! ```text
//! request headers ─► POST? application/grpc? ──no──► HTTP 405 / 415
//!                    known path? identity encoding? valid grpc-timeout? ──no──► trailers-only error
//!                    handler future ◄── polled with: catch_unwind, the deadline timer,
//!                        │                the client's RST_STREAM, pending response bytes
//!                        ▼
//!                    status in trailers (or trailers-only) ─► drain the request body ─► stats
//! ```

use std::any::Any;
use std::cell::RefCell;
use std::future::{Future, poll_fn};
use std::net::SocketAddr;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::rc::Rc;
use std::task::Poll;
use std::time::{Duration, Instant};

use bytes::Bytes;
use h2::RecvStream;
use h2::server::SendResponse;
use http::header::{CONTENT_TYPE, HeaderName, HeaderValue};
use http::{Request, StatusCode};

use crate::context::RequestContext;
use crate::inbound::Inbound;
use crate::outbound::Outbound;
use crate::router::{Call, CallFuture, Route};
use crate::server::Shared;
use crate::status::{Code, Status};
use crate::timeout;

/// Request bytes read and discarded after a call has answered, waiting for the client's
/// END_STREAM, before the stream is reset instead.
const DRAIN_BUDGET: usize = 1 << 20;
/// How long the drain waits for END_STREAM.
const DRAIN_TIME: Duration = Duration::from_secs(1);

const GRPC_TIMEOUT: HeaderName = HeaderName::from_static("grpc-timeout");
const GRPC_ENCODING: HeaderName = HeaderName::from_static("grpc-encoding");
const GRPC_ACCEPT_ENCODING: HeaderName = HeaderName::from_static("grpc-accept-encoding");

/// Serves one stream to its end and accounts for it.
pub(crate) async fn serve(
    shared: Rc<Shared>,
    peer: SocketAddr,
    request: Request<RecvStream>,
    respond: SendResponse<Bytes>,
) {
    let started = Instant::now();
    shared.stats.call_started();
    let (parts, body) = request.into_parts();
    let route = shared.router.route(parts.uri.path());
    let method = route.map(|route| &route.method);
    shared.observe(|o| o.call_started(method));

    let config = &shared.config;
    let inbound = Rc::new(RefCell::new(Inbound::new(
        body,
        config.max_recv_message_size,
    )));
    let outbound = Rc::new(RefCell::new(Outbound::new(
        respond,
        config.max_send_message_size,
    )));
    let code = run(peer, parts, route, started, &inbound, &outbound).await;
    drop(outbound);
    drain(&inbound).await;
    drop(inbound);

    shared.stats.call_finished();
    shared.observe(|o| o.call_finished(method, code, started.elapsed()));
    shared.notify_ended();
}

async fn run(
    peer: SocketAddr,
    parts: http::request::Parts,
    route: Option<&Route>,
    started: Instant,
    inbound: &Rc<RefCell<Inbound>>,
    outbound: &Rc<RefCell<Outbound>>,
) -> Code {
    let fail = |status: Status| {
        outbound.borrow_mut().finish(&status);
        status.code()
    };
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
    let Some(route) = route else {
        return fail(Status::unimplemented(format!(
            "unknown method {}",
            parts.uri.path()
        )));
    };
    if let Some(encoding) = parts.headers.get(GRPC_ENCODING)
        && encoding != "identity"
    {
        let encoding = String::from_utf8_lossy(encoding.as_bytes());
        let status = Status::unimplemented(format!(
            "grpc-encoding {encoding:?} is not supported: send uncompressed messages"
        ));
        let identity = HeaderValue::from_static("identity");
        return fail(status.with_metadata(GRPC_ACCEPT_ENCODING, identity));
    }
    let deadline = match parts
        .headers
        .get(GRPC_TIMEOUT)
        .map(|v| timeout::parse(v.as_bytes()))
    {
        None => None,
        // A timeout too long to represent is no deadline at all.
        Some(Ok(timeout)) => started.checked_add(timeout),
        Some(Err(error)) => return fail(Status::internal(error.to_string())),
    };

    let path = route.method.path();
    let ctx = RequestContext::new(route.method.clone(), deadline, peer, parts.headers);
    let call = Call {
        ctx,
        inbound: Rc::clone(inbound),
        outbound: Rc::clone(outbound),
    };
    let status = match supervise((route.handler)(call), deadline, outbound).await {
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
            Status::deadline_exceeded(format!("{path} did not complete before its deadline"))
        }
        Outcome::Gone => return Code::Cancelled,
    };
    fail(status)
}

/// How a handler's future ended.
enum Outcome {
    Done(Result<(), Status>),
    Panicked(Box<dyn Any + Send>),
    DeadlineExceeded,
    /// The client reset the stream, or the connection is gone.
    Gone,
}

/// Polls the handler's future until it completes, panics, overruns its deadline or loses
/// its client. Whatever ends first wins; the future is dropped when this returns.
async fn supervise(
    future: CallFuture,
    deadline: Option<Instant>,
    outbound: &RefCell<Outbound>,
) -> Outcome {
    let mut future = Some(future);
    let mut timer = deadline.map(|deadline| {
        Box::pin(monoio::time::sleep_until(monoio::time::Instant::from_std(
            deadline,
        )))
    });
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
        }
        if let Some(timer) = &mut timer
            && timer.as_mut().poll(cx).is_ready()
        {
            return Poll::Ready(Outcome::DeadlineExceeded);
        }
        Poll::Pending
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
fn is_grpc(content_type: Option<&HeaderValue>) -> bool {
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
