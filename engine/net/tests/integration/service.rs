//! The test service, served by `vectron-net` with prost messages generated from
//! `tests/proto/netcheck.proto`.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use vectron_net::{Code, RequestContext, RequestStream, ResponseSink, Router, Status};

use crate::harness::Probe;
use crate::netcheck::{
    BlobReply, BlobRequest, Chunk, EchoReply, EchoRequest, FailRequest, Number, RangeRequest,
    StallRequest, Total,
};

pub const ECHO: &str = "/netcheck.v1.Check/Echo";
pub const FAIL: &str = "/netcheck.v1.Check/Fail";
pub const STALL: &str = "/netcheck.v1.Check/Stall";
pub const PANIC: &str = "/netcheck.v1.Check/Panic";
pub const BLOB: &str = "/netcheck.v1.Check/Blob";
pub const SUM: &str = "/netcheck.v1.Check/Sum";
pub const RANGE: &str = "/netcheck.v1.Check/Range";

pub fn router(probe: Arc<Probe>) -> Router {
    let stall_probe = Arc::clone(&probe);
    Router::new()
        .unary(
            ECHO,
            |ctx: RequestContext, request: EchoRequest| async move {
                Ok::<_, Status>(EchoReply {
                    metadata_value: ctx
                        .metadata_str(&request.metadata_key)
                        .unwrap_or("")
                        .to_owned(),
                    text: request.text,
                    peer: ctx.peer_addr().to_string(),
                    has_deadline: ctx.deadline().is_some(),
                    deadline_ms: ctx.remaining().map_or(0, |left| left.as_millis() as u64),
                })
            },
        )
        .unwrap()
        .unary(FAIL, |_ctx, request: FailRequest| async move {
            Err::<EchoReply, _>(Status::new(Code::from_i32(request.code), request.message))
        })
        .unwrap()
        .unary(STALL, move |_ctx, request: StallRequest| {
            let probe = Arc::clone(&stall_probe);
            async move {
                probe.stalled.notify_one();
                if request.forever {
                    std::future::pending::<()>().await;
                } else if request.until_released {
                    probe.release.notified().await;
                } else {
                    monoio::time::sleep(Duration::from_millis(request.millis)).await;
                }
                Ok::<_, Status>(EchoReply {
                    text: "awake".into(),
                    ..EchoReply::default()
                })
            }
        })
        .unwrap()
        .unary(PANIC, |_ctx, request: EchoRequest| async move {
            if request.text != "do not panic" {
                panic!("the Panic handler panics on purpose");
            }
            Ok::<_, Status>(EchoReply::default())
        })
        .unwrap()
        .unary(BLOB, |_ctx, request: BlobRequest| async move {
            Ok::<_, Status>(BlobReply {
                data: vec![0xAB; request.size as usize],
            })
        })
        .unwrap()
        .client_streaming(SUM, |_ctx, mut numbers: RequestStream<Number>| async move {
            let mut total = Total::default();
            while let Some(number) = numbers.message().await? {
                total.count += 1;
                total.sum += number.value;
            }
            Ok::<_, Status>(total)
        })
        .unwrap()
        .server_streaming(
            RANGE,
            move |_ctx, request: RangeRequest, mut out: ResponseSink<Chunk>| {
                let probe = Arc::clone(&probe);
                async move {
                    for seq in 0..request.count {
                        let chunk = Chunk {
                            seq,
                            data: vec![seq as u8; request.size as usize],
                        };
                        out.send(&chunk).await?;
                        probe.range_sent.fetch_add(1, Ordering::SeqCst);
                    }
                    match request.fail_code {
                        0 => Ok(()),
                        code => Err(Status::new(
                            Code::from_i32(code),
                            "failed after the last chunk",
                        )),
                    }
                }
            },
        )
        .unwrap()
}
