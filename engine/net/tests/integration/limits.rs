//! Regression tests for a misbehaving client exhausting a core: its memory and call slots
//! were not bounded by flow control (calls across connections, request messages announced
//! or sent, answers left unread, and idle connections that answer PINGs were all
//! unbounded).

use std::time::Duration;

use bytes::Bytes;
use http::HeaderMap;
use prost::Message;
use tokio::task::JoinSet;
use vectron_net::{Code, ConnectionEnd, Keepalive, ServerConfig};

use crate::drivers;
use crate::harness::{Driver, TestServer};
use crate::netcheck::{BlobReply, BlobRequest, EchoRequest, RangeRequest, StallRequest};
use crate::service::{BLOB, ECHO, RANGE, STALL};

const MIB: usize = 1 << 20;

/// The 5-byte gRPC prefix of an uncompressed message of `len` bytes.
fn prefix(len: usize) -> Vec<u8> {
    let mut out = vec![0];
    out.extend_from_slice(&u32::try_from(len).unwrap().to_be_bytes());
    out
}

/// `grpc-status` and `retry-after` of a trailers-only response.
fn refusal(headers: &HeaderMap) -> (&str, Option<&str>) {
    let header = |name| headers.get(name).map(|v| v.to_str().unwrap());
    (header("grpc-status").unwrap_or(""), header("retry-after"))
}

/// An echo request of about `padding` bytes.
fn padded(padding: usize) -> EchoRequest {
    EchoRequest {
        padding: vec![7; padding],
        ..EchoRequest::default()
    }
}

drivers!(
    calls_past_max_calls_are_refused_at_once_with_retry_after,
    |driver: Driver| async move {
        let config = ServerConfig {
            max_calls: 2,
            ..ServerConfig::default()
        };
        let server = TestServer::start(driver, config);
        let client = server.client().await;
        let mut stalls = JoinSet::new();
        for _ in 0..2 {
            let mut client = client.clone();
            stalls.spawn(async move {
                let request = StallRequest {
                    until_released: true,
                    ..StallRequest::default()
                };
                client.stall(request).await
            });
        }
        server
            .wait_for("two calls in flight", |log| log.in_flight == 2)
            .await;

        let status = client
            .clone()
            .echo(EchoRequest::default())
            .await
            .unwrap_err();
        assert_eq!(status.code(), tonic::Code::ResourceExhausted);
        assert_eq!(
            status.message(),
            "the server is at its limit of 2 calls in flight (max_calls); retry in 1 s"
        );
        assert_eq!(status.metadata().get("retry-after").unwrap(), "1");

        // Refused before its request is read: a call that never sends a byte of its body
        // is answered all the same, in one trailers-only block.
        let mut send = server.h2_client(&h2::client::Builder::new()).await;
        let (response, _body) = send.send_request(server.grpc_request(ECHO), false).unwrap();
        let response = response.await.unwrap();
        assert!(response.body().is_end_stream(), "a trailers-only response");
        assert_eq!(refusal(response.headers()), ("8", Some("1")));

        while !stalls.is_empty() {
            server.probe.release.notify_waiters();
            let next = tokio::time::timeout(Duration::from_millis(20), stalls.join_next());
            if let Ok(Some(done)) = next.await {
                assert_eq!(done.unwrap().unwrap().into_inner().text, "awake");
            }
        }
        // The server serves on once the slots are back.
        client.clone().echo(EchoRequest::default()).await.unwrap();
        server
            .wait_for_stats("the refusals counted", |stats| {
                stats.calls_refused_max_calls == 2
            })
            .await;
        assert_eq!(server.codes(STALL, 2).await, [Code::Ok, Code::Ok]);
        assert!(
            server
                .events()
                .codes_of(ECHO)
                .contains(&Code::ResourceExhausted)
        );
    }
);

drivers!(
    large_messages_that_do_not_fit_the_budget_are_refused_while_small_calls_flow,
    |driver: Driver| async move {
        let config = ServerConfig {
            max_recv_message_size: 8 * MIB,
            max_buffered_bytes: 3 * MIB,
            ..ServerConfig::default()
        };
        let server = TestServer::start(driver, config);

        // A raw client announces a 2 MiB message, sends a little of it and stalls: the
        // announced length is held against the budget.
        let mut hog = server.h2_client(&h2::client::Builder::new()).await;
        let (response, mut upload) = hog.send_request(server.grpc_request(ECHO), false).unwrap();
        let mut start = prefix(2 * MIB);
        start.extend_from_slice(&[7; 1000]);
        upload.send_data(Bytes::from(start), false).unwrap();
        server
            .wait_for_stats("the announced message charged", |stats| {
                stats.buffered_bytes == 2 * MIB
            })
            .await;

        // Another 2 MiB request does not fit the 1 MiB left, a 2 MiB answer neither; a
        // small call on a third connection goes through at the same time.
        let mut large = server.client().await;
        let status = large.echo(padded(2 * MIB)).await.unwrap_err();
        assert_eq!(status.code(), tonic::Code::ResourceExhausted);
        assert!(
            status.message().starts_with(&format!(
                "request message of {} bytes does not fit the server's budget",
                padded(2 * MIB).encoded_len()
            )),
            "{}",
            status.message()
        );
        assert!(status.message().contains("max_buffered_bytes"));
        assert_eq!(status.metadata().get("retry-after").unwrap(), "1");
        let status = large
            .blob(BlobRequest {
                size: 2 * MIB as u64,
            })
            .await
            .unwrap_err();
        assert_eq!(status.code(), tonic::Code::ResourceExhausted);
        assert!(status.message().starts_with("response message of"));
        assert_eq!(status.metadata().get("retry-after").unwrap(), "1");
        let mut small = server.client().await;
        small.echo(padded(1000)).await.unwrap();

        // Once the raw client is gone, its charge is given back and the retry succeeds.
        drop((response, upload, hog));
        server
            .wait_for_stats("the stalled charge given back", |stats| {
                stats.buffered_bytes == 0
            })
            .await;
        large.echo(padded(2 * MIB)).await.unwrap();

        // A message larger than the whole budget can never pass: no retry-after.
        let status = large.echo(padded(4 * MIB)).await.unwrap_err();
        assert_eq!(status.code(), tonic::Code::ResourceExhausted);
        assert!(
            status
                .message()
                .contains("larger than the server's whole budget of 3145728 bytes"),
            "{}",
            status.message()
        );
        assert!(status.metadata().get("retry-after").is_none());

        server
            .wait_for_stats("every charge given back", |stats| {
                stats.buffered_bytes == 0 && stats.calls_refused_max_buffered_bytes == 3
            })
            .await;
        assert!(server.stats().peak_buffered_bytes <= 3 * MIB);
    }
);

drivers!(
    announcing_huge_messages_and_sending_nothing_stays_within_the_budget,
    |driver: Driver| async move {
        // The worker's receive limit: 64 MiB. A client opens 20 calls, each announcing
        // 60 MiB and sending nothing more. Two fit the 128 MiB budget; the others are
        // refused at once, and the announced bytes are never reserved.
        const CALLS: usize = 20;
        const ANNOUNCED: usize = 60 * MIB;
        let config = ServerConfig {
            max_recv_message_size: 64 * MIB,
            max_buffered_bytes: 128 * MIB,
            ..ServerConfig::default()
        };
        let server = TestServer::start(driver, config);
        let mut send = server.h2_client(&h2::client::Builder::new()).await;
        let mut responses = JoinSet::new();
        let mut uploads = Vec::new();
        for _ in 0..CALLS {
            send = send.ready().await.unwrap();
            let (response, mut upload) =
                send.send_request(server.grpc_request(ECHO), false).unwrap();
            upload
                .send_data(Bytes::from(prefix(ANNOUNCED)), false)
                .unwrap();
            uploads.push(upload);
            responses.spawn(response);
        }
        for _ in 0..CALLS - 2 {
            let response = responses.join_next().await.unwrap().unwrap().unwrap();
            assert!(response.body().is_end_stream(), "a trailers-only response");
            assert_eq!(refusal(response.headers()), ("8", Some("1")));
        }
        server
            .wait_for_stats("two announcements charged", |stats| {
                stats.buffered_bytes == 2 * ANNOUNCED
            })
            .await;
        let stats = server.stats();
        assert_eq!(stats.calls_refused_max_buffered_bytes, (CALLS - 2) as u64);
        assert!(
            stats.peak_buffered_bytes <= 128 * MIB,
            "{} bytes",
            stats.peak_buffered_bytes
        );

        // A normal call goes through meanwhile.
        let mut client = server.client().await;
        client.echo(EchoRequest::default()).await.unwrap();

        // The two admitted calls wait for bytes that never come, until the client leaves.
        assert_eq!(responses.len(), 2);
        responses.abort_all();
        drop(uploads);
        drop(send);
        server
            .wait_for_stats("the charges given back", |stats| stats.buffered_bytes == 0)
            .await;
        assert!(server.stats().peak_buffered_bytes <= 128 * MIB);
    }
);

drivers!(
    a_unary_answer_larger_than_the_budget_is_refused,
    |driver: Driver| async move {
        let config = ServerConfig {
            max_buffered_bytes: MIB,
            ..ServerConfig::default()
        };
        let server = TestServer::start(driver, config);
        let mut client = server.client().await;
        let size = 2 * MIB;
        let framed = 5 + BlobReply {
            data: vec![0; size],
        }
        .encoded_len();
        let status = client
            .blob(BlobRequest { size: size as u64 })
            .await
            .unwrap_err();
        assert_eq!(status.code(), tonic::Code::ResourceExhausted);
        assert_eq!(
            status.message(),
            format!(
                "response message of {framed} bytes is larger than the server's whole budget \
                 of 1048576 bytes for buffered messages (max_buffered_bytes): send smaller \
                 messages"
            )
        );
        // An answer that fits goes out whole, on the same connection.
        let reply = client.blob(BlobRequest { size: 512 * 1024 }).await.unwrap();
        assert_eq!(reply.into_inner().data.len(), 512 * 1024);
        assert_eq!(
            server.codes(BLOB, 2).await,
            [Code::ResourceExhausted, Code::Ok]
        );
        server
            .wait_for_stats("the refusal counted", |stats| {
                stats.calls_refused_max_buffered_bytes == 1
            })
            .await;
        let stats = server.stats();
        assert!(stats.peak_buffered_bytes <= MIB, "{stats:?}");
    }
);

drivers!(
    a_client_that_never_reads_its_answer_is_cut_off_after_the_send_timeout,
    |driver: Driver| async move {
        let config = ServerConfig {
            send_timeout: Duration::from_millis(300),
            ..ServerConfig::default()
        };
        let server = TestServer::start(driver, config);

        // A 1 MiB answer to a client whose window is 1 KiB and never grows.
        let mut tiny_window = h2::client::Builder::new();
        tiny_window.initial_window_size(1024);
        let mut send = server.h2_client(&tiny_window).await;
        let (response, mut request) = send.send_request(server.grpc_request(BLOB), false).unwrap();
        let message = BlobRequest { size: MIB as u64 }.encode_to_vec();
        let mut body = prefix(message.len());
        body.extend_from_slice(&message);
        request.send_data(Bytes::from(body), true).unwrap();
        let mut answer = response.await.unwrap().into_body();
        server
            .wait_for_stats("the answer charged while it waited", |stats| {
                stats.peak_buffered_bytes > MIB - 4096
            })
            .await;

        // The server gives up: the stream is reset and its bytes are dropped.
        let mut received = 0;
        let reset = loop {
            match answer.data().await {
                Some(Ok(chunk)) => received += chunk.len(),
                Some(Err(error)) => break error,
                None => panic!("the answer ended without a reset"),
            }
        };
        assert_eq!(reset.reason(), Some(h2::Reason::CANCEL), "{reset}");
        assert!(received <= 1024, "{received} bytes past the window");
        assert_eq!(server.codes(BLOB, 1).await, [Code::Cancelled]);
        server
            .wait_for_stats("the bytes given back", |stats| {
                stats.buffered_bytes == 0 && stats.send_timeouts == 1
            })
            .await;

        // A stream whose reader stops is cut off the same way, its handler dropped.
        let mut client = server.client().await;
        let request = RangeRequest {
            count: u64::MAX,
            size: 1024,
            fail_code: 0,
        };
        let mut stream = client.range(request).await.unwrap().into_inner();
        stream.message().await.unwrap().unwrap();
        assert_eq!(server.codes(RANGE, 1).await, [Code::Cancelled]);
        server
            .wait_for_stats("the stream's bytes given back", |stats| {
                stats.buffered_bytes == 0 && stats.send_timeouts == 2
            })
            .await;

        // The server serves on.
        server
            .client()
            .await
            .echo(EchoRequest::default())
            .await
            .unwrap();
        drop(send);
    }
);

drivers!(
    an_idle_connection_is_closed_even_when_it_answers_pings,
    |driver: Driver| async move {
        let config = ServerConfig {
            idle_timeout: Some(Duration::from_millis(200)),
            // The client answers a PING every 50 ms: that is no activity.
            keepalive: Some(Keepalive {
                interval: Duration::from_millis(50),
                timeout: Duration::from_secs(5),
            }),
            ..ServerConfig::default()
        };
        let server = TestServer::start(driver, config);
        let mut idle = server.client().await;
        idle.echo(EchoRequest::default()).await.unwrap();
        // Kept until the end: a client that goes away closes its connection itself.
        let busy = server.client().await;
        let mut caller = busy.clone();
        let stalled = tokio::spawn(async move {
            let request = StallRequest {
                until_released: true,
                ..StallRequest::default()
            };
            caller.stall(request).await
        });
        server.probe.stalled.notified().await;

        server
            .wait_for("the idle connection to close", |log| {
                log.ends(ConnectionEnd::Idle) == 1
            })
            .await;
        // Five idle timeouts later, the connection with a call in flight is still open.
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert_eq!(server.events().closed, [ConnectionEnd::Idle]);
        while !stalled.is_finished() {
            server.probe.release.notify_waiters();
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert_eq!(stalled.await.unwrap().unwrap().into_inner().text, "awake");
        // Once its call is over, it is idle too.
        server
            .wait_for("the second connection to close", |log| {
                log.ends(ConnectionEnd::Idle) == 2
            })
            .await;

        // A client whose connection was closed for idleness connects again.
        idle.echo(EchoRequest::default()).await.unwrap();
        assert_eq!(server.events().opened, 3);
        drop(busy);
    }
);
