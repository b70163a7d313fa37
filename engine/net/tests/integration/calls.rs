//! Unary calls through tonic: context, status codes and messages, deadlines, size limits,
//! unknown methods, panicking handlers.

use std::time::Duration;

use http::uri::PathAndQuery;
use prost::Message;
use tonic::Request;
use vectron_net::{Code, ServerConfig};

use crate::drivers;
use crate::harness::{Driver, TestServer};
use crate::netcheck::{BlobReply, BlobRequest, EchoReply, EchoRequest, FailRequest, StallRequest};
use crate::service::{BLOB, ECHO, FAIL, PANIC, STALL};

/// The server's code as tonic reports it.
fn tonic_code(code: Code) -> tonic::Code {
    tonic::Code::from_i32(code.as_i32())
}

drivers!(
    echo_sees_metadata_peer_and_deadline,
    |driver: Driver| async move {
        let server = TestServer::start(driver, ServerConfig::default());
        let mut client = server.client().await;

        let mut request = Request::new(EchoRequest {
            text: "héllo".into(),
            metadata_key: "x-vectron-epoch".into(),
            ..EchoRequest::default()
        });
        request
            .metadata_mut()
            .insert("x-vectron-epoch", "42".parse().unwrap());
        request.set_timeout(Duration::from_secs(30));
        let reply = client.echo(request).await.unwrap().into_inner();
        assert_eq!(reply.text, "héllo");
        assert_eq!(reply.metadata_value, "42");
        assert!(reply.peer.starts_with("127.0.0.1:"), "peer {}", reply.peer);
        assert!(reply.has_deadline);
        assert!(
            reply.deadline_ms > 0 && reply.deadline_ms <= 30_000,
            "{}",
            reply.deadline_ms
        );

        let reply = client
            .echo(EchoRequest::default())
            .await
            .unwrap()
            .into_inner();
        assert!(!reply.has_deadline);

        drop(client);
        let stats = server.stop().await.0.unwrap();
        assert_eq!(
            (stats.calls_started, stats.calls_finished, stats.in_flight),
            (2, 2, 0)
        );
    }
);

drivers!(
    every_status_code_and_a_non_ascii_message_reach_the_client,
    |driver: Driver| async move {
        let server = TestServer::start(driver, ServerConfig::default());
        let mut client = server.client().await;
        let message = "épée — 東京\tline\r\nbreak 100% 🦀";
        for code in &Code::ALL[1..] {
            let request = FailRequest {
                code: code.as_i32(),
                message: message.into(),
            };
            let status = client.fail(request).await.unwrap_err();
            assert_eq!(status.code(), tonic_code(*code), "{code}");
            assert_eq!(status.message(), message, "{code}");
        }
        assert_eq!(server.codes(FAIL, 16).await, Code::ALL[1..].to_vec());
    }
);

drivers!(
    a_call_past_its_deadline_is_dropped,
    |driver: Driver| async move {
        let server = TestServer::start(driver, ServerConfig::default());
        let mut client = server.client().await;
        // The handler never answers. tonic enforces the deadline it sends too, so whichever
        // side acts first ends the call: the server with DEADLINE_EXCEEDED, or the client
        // (which then reports CANCELLED) with RST_STREAM, which the server must notice.
        // Either way the handler is dropped and the call ends on the server. The server's
        // own enforcement, with no client racing it, is checked over raw h2 in `protocol`.
        let mut request = Request::new(StallRequest {
            forever: true,
            ..StallRequest::default()
        });
        request.set_timeout(Duration::from_millis(100));
        let status = client.stall(request).await.unwrap_err();
        let code = status.code();
        assert!(
            matches!(code, tonic::Code::DeadlineExceeded | tonic::Code::Cancelled),
            "{status}"
        );
        server
            .wait_for("the stalled call to end", |log| {
                log.codes_of(STALL).len() == 1
            })
            .await;
        let code = server.events().codes_of(STALL)[0];
        assert!(
            matches!(code, Code::DeadlineExceeded | Code::Cancelled),
            "{code}"
        );

        // The connection goes on serving.
        client.echo(EchoRequest::default()).await.unwrap();
        assert_eq!(server.events().opened, 1);
    }
);

drivers!(
    oversized_messages_get_resource_exhausted,
    |driver: Driver| async move {
        let config = ServerConfig {
            max_recv_message_size: 64 * 1024,
            max_send_message_size: 64 * 1024,
            ..ServerConfig::default()
        };
        let server = TestServer::start(driver, config);
        let mut client = server.client().await;

        let request = EchoRequest {
            padding: vec![7; 100_000],
            ..EchoRequest::default()
        };
        let len = request.encoded_len();
        let status = client.echo(request).await.unwrap_err();
        assert_eq!(status.code(), tonic::Code::ResourceExhausted);
        assert_eq!(
            status.message(),
            format!("request message of {len} bytes exceeds the server's limit of 65536 bytes")
        );

        let status = client
            .blob(BlobRequest { size: 100_000 })
            .await
            .unwrap_err();
        let len = BlobReply {
            data: vec![0; 100_000],
        }
        .encoded_len();
        assert_eq!(status.code(), tonic::Code::ResourceExhausted);
        assert_eq!(
            status.message(),
            format!("response message of {len} bytes exceeds the server's limit of 65536 bytes")
        );

        // Just under the limits passes, on the same connection.
        let request = EchoRequest {
            padding: vec![7; 60_000],
            ..EchoRequest::default()
        };
        client.echo(request).await.unwrap();
        let reply = client
            .blob(BlobRequest { size: 60_000 })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(reply.data.len(), 60_000);
        assert_eq!(
            server.codes(BLOB, 2).await,
            [Code::ResourceExhausted, Code::Ok]
        );
        assert_eq!(server.events().opened, 1);
    }
);

drivers!(
    unknown_methods_get_unimplemented,
    |driver: Driver| async move {
        let server = TestServer::start(driver, ServerConfig::default());
        let mut grpc = tonic::client::Grpc::new(server.channel().await);
        for path in ["/netcheck.v1.Check/Nope", "/no.such.Service/Echo"] {
            grpc.ready().await.unwrap();
            let codec = tonic_prost::ProstCodec::<EchoRequest, EchoReply>::default();
            let status = grpc
                .unary(
                    Request::new(EchoRequest::default()),
                    PathAndQuery::from_static(path),
                    codec,
                )
                .await
                .unwrap_err();
            assert_eq!(status.code(), tonic::Code::Unimplemented, "{path}");
            assert_eq!(status.message(), format!("unknown method {path}"));
        }
        server
            .wait_for("two calls", |log| log.calls.len() == 2)
            .await;
        assert_eq!(
            server.events().calls,
            [(None, Code::Unimplemented), (None, Code::Unimplemented)]
        );
    }
);

drivers!(
    a_panicking_handler_answers_internal_and_the_core_serves_on,
    |driver: Driver| async move {
        let server = TestServer::start(driver, ServerConfig::default());
        let mut client = server.client().await;
        for _ in 0..3 {
            let status = client.panic(EchoRequest::default()).await.unwrap_err();
            assert_eq!(status.code(), tonic::Code::Internal);
            assert_eq!(status.message(), format!("the handler of {PANIC} panicked"));
            let reply = client.echo(EchoRequest {
                text: "still here".into(),
                ..Default::default()
            });
            assert_eq!(reply.await.unwrap().into_inner().text, "still here");
        }
        client
            .panic(EchoRequest {
                text: "do not panic".into(),
                ..Default::default()
            })
            .await
            .unwrap();
        assert_eq!(
            server.codes(PANIC, 4).await,
            [Code::Internal, Code::Internal, Code::Internal, Code::Ok]
        );
        assert_eq!(server.codes(ECHO, 3).await, [Code::Ok; 3]);
        let log = server.events();
        assert_eq!((log.opened, log.closed.len()), (1, 0));
    }
);
