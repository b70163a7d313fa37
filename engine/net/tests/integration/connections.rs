//! Connection management: many streams on one connection, peers that do not speak
//! HTTP/2, keepalive, the connection bound, SO_REUSEPORT.

use std::io::ErrorKind;
use std::time::Duration;

use http::uri::PathAndQuery;
use monoio::{LegacyDriver, RuntimeBuilder};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::task::JoinSet;
use tonic::Request;
use vectron_net::{Code, ConnectionEnd, Keepalive, ListenOptions, ServerConfig};

use crate::drivers;
use crate::frames::RawConnection;
use crate::harness::{Driver, PREFACE, TestServer, closed_by_peer};
use crate::netcheck::check_client::CheckClient;
use crate::netcheck::{EchoReply, EchoRequest, FailRequest};
use crate::service::{ECHO, FAIL};

drivers!(
    thousands_of_streams_on_one_connection,
    |driver: Driver| async move {
        // Past 1,024 calls (h2's default budget of library-initiated stream resets), a third
        // of them answered before their request body ended (unknown method) and a third with
        // an error status: a server that left bodies unread would see h2 close the connection
        // with GOAWAY ENHANCE_YOUR_CALM part-way through.
        const CALLS: usize = 3000;
        let config = ServerConfig {
            max_concurrent_streams: 100,
            ..ServerConfig::default()
        };
        let server = TestServer::start(driver, config);
        let channel = server.channel().await;
        let mut calls = JoinSet::new();
        for i in 0..CALLS {
            let channel = channel.clone();
            calls.spawn(async move {
                match i % 3 {
                    0 => {
                        let request = EchoRequest {
                            text: i.to_string(),
                            ..EchoRequest::default()
                        };
                        let reply = CheckClient::new(channel).echo(request).await.unwrap();
                        assert_eq!(reply.into_inner().text, i.to_string());
                    }
                    1 => {
                        let request = FailRequest {
                            code: Code::NotFound.as_i32(),
                            message: "no".into(),
                        };
                        let status = CheckClient::new(channel).fail(request).await.unwrap_err();
                        assert_eq!(status.code(), tonic::Code::NotFound);
                    }
                    _ => {
                        let mut grpc = tonic::client::Grpc::new(channel);
                        grpc.ready().await.unwrap();
                        let codec = tonic_prost::ProstCodec::<EchoRequest, EchoReply>::default();
                        let path = PathAndQuery::from_static("/netcheck.v1.Check/Missing");
                        let request = Request::new(EchoRequest::default());
                        let status = grpc.unary(request, path, codec).await.unwrap_err();
                        assert_eq!(status.code(), tonic::Code::Unimplemented);
                    }
                }
            });
        }
        while let Some(done) = calls.join_next().await {
            done.unwrap();
        }
        server
            .wait_for("every call to end", |log| log.calls.len() == CALLS)
            .await;
        let log = server.events();
        assert_eq!(log.codes_of(ECHO).len(), CALLS / 3);
        assert!(
            log.codes_of(FAIL)
                .iter()
                .all(|&code| code == Code::NotFound)
        );
        assert_eq!(
            (log.opened, log.closed.len()),
            (1, 0),
            "one connection, never torn down"
        );
        assert!(
            log.max_in_flight <= 100,
            "max_concurrent_streams not applied: {}",
            log.max_in_flight
        );
    }
);

drivers!(
    answering_before_the_request_ends_costs_the_connection_nothing,
    |driver: Driver| async move {
        // The reset-stream pitfall, made deterministic: the client ends each request only
        // after the server has answered it (here: UNIMPLEMENTED, sent at once), in batches
        // of 200 streams, 2,000 in all. A server that dropped the request body after
        // answering would reset each stream; the client's END_STREAM arriving after a reset
        // h2 no longer remembers (it keeps 50) counts against h2's budget of 1,024
        // library-initiated resets, and h2 would end the connection with GOAWAY
        // ENHANCE_YOUR_CALM ("too_many_internal_resets") within the first 1,200 streams.
        const BATCHES: u32 = 10;
        const BATCH: u32 = 200;
        let server = TestServer::start(driver, ServerConfig::default());
        let mut raw = RawConnection::connect(server.addr).await;
        let empty_message = [0, 0, 0, 0, 0];
        let mut next_id = 1;
        for batch in 0..BATCHES {
            let ids: Vec<u32> = (0..BATCH).map(|i| next_id + 2 * i).collect();
            next_id += 2 * BATCH;
            for &id in &ids {
                raw.open_call(id, "/netcheck.v1.Check/Missing", &empty_message)
                    .await;
            }
            if let Err(error) = raw.await_responses(&ids).await {
                panic!("batch {batch}: the connection ended: {error}");
            }
            for &id in &ids {
                raw.end_stream(id).await;
            }
        }
        if let Err(error) = raw.round_trip().await {
            panic!("after the last batch: {error}");
        }
        let total = (BATCHES * BATCH) as usize;
        server
            .wait_for("every call to end", |log| log.calls.len() == total)
            .await;
        let log = server.events();
        assert!(
            log.calls
                .iter()
                .all(|(_, code)| *code == Code::Unimplemented)
        );
        assert_eq!((log.opened, log.closed.len()), (1, 0));
    }
);

drivers!(
    garbage_bytes_close_that_connection_only,
    |driver: Driver| async move {
        let server = TestServer::start(driver, ServerConfig::default());
        let garbage: Vec<u8> = (0..4096u32)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8)
            .collect();
        let http1 = b"GET / HTTP/1.1\r\nHost: core\r\nConnection: keep-alive\r\n\r\n".to_vec();
        // A valid preface, then a frame header announcing a 16 MiB HEADERS frame on stream 0.
        let mut bad_frames = PREFACE.to_vec();
        bad_frames.extend_from_slice(&[0xff, 0xff, 0xff, 0x01, 0x04, 0, 0, 0, 0, 1, 2, 3]);
        for bytes in [garbage, http1, bad_frames] {
            let mut stream = TcpStream::connect(server.addr).await.unwrap();
            // The server may close while the bytes are still being written.
            let _ = stream.write_all(&bytes).await;
            assert!(
                closed_by_peer(&mut stream).await,
                "the server kept the connection open"
            );
        }
        server
            .wait_for("three connections to end", |log| log.closed.len() == 3)
            .await;

        let mut client = server.client().await;
        client.echo(EchoRequest::default()).await.unwrap();
        let log = server.events();
        assert_eq!(
            log.ends(ConnectionEnd::HandshakeFailed),
            2,
            "{:?}",
            log.closed
        );
        assert_eq!(log.ends(ConnectionEnd::Error), 1, "{:?}", log.closed);
    }
);

drivers!(
    keepalive_closes_a_peer_that_stops_answering,
    |driver: Driver| async move {
        let keepalive = Keepalive {
            interval: Duration::from_millis(100),
            timeout: Duration::from_millis(200),
        };
        let server = TestServer::start(
            driver,
            ServerConfig {
                keepalive: Some(keepalive),
                ..ServerConfig::default()
            },
        );

        // A peer that completes the handshake and then never answers a PING.
        let mut silent = TcpStream::connect(server.addr).await.unwrap();
        silent.write_all(PREFACE).await.unwrap();
        assert!(
            closed_by_peer(&mut silent).await,
            "the unresponsive peer was not disconnected"
        );
        server
            .wait_for("the silent peer's end", |log| log.closed.len() == 1)
            .await;
        assert_eq!(server.events().closed, [ConnectionEnd::Unresponsive]);

        // A tonic client answers PINGs: idle over many intervals, its connection stays up.
        let mut client = server.client().await;
        client.echo(EchoRequest::default()).await.unwrap();
        tokio::time::sleep(Duration::from_millis(1000)).await;
        client.echo(EchoRequest::default()).await.unwrap();
        let log = server.events();
        assert_eq!((log.opened, log.closed.len()), (2, 1));
    }
);

drivers!(
    connections_past_the_bound_are_closed_at_once,
    |driver: Driver| async move {
        let server = TestServer::start(
            driver,
            ServerConfig {
                max_connections: 2,
                ..ServerConfig::default()
            },
        );
        let first = server.channel().await;
        let mut second = TcpStream::connect(server.addr).await.unwrap();
        second.write_all(PREFACE).await.unwrap();
        server
            .wait_for("two open connections", |log| log.opened == 2)
            .await;

        let mut third = TcpStream::connect(server.addr).await.unwrap();
        assert!(closed_by_peer(&mut third).await);
        server
            .wait_for("a refused connection", |log| log.refused == 1)
            .await;
        CheckClient::new(first.clone())
            .echo(EchoRequest::default())
            .await
            .unwrap();

        // Once a connection ends, a new one is served.
        drop(second);
        server
            .wait_for("the second connection to end", |log| log.closed.len() == 1)
            .await;
        let mut client = server.client().await;
        client.echo(EchoRequest::default()).await.unwrap();
        let log = server.events();
        assert_eq!((log.opened, log.refused), (3, 1));
    }
);

/// SO_REUSEPORT is off unless asked for: a second socket on a bound core port fails.
#[test]
fn a_second_bind_of_a_core_port_fails() {
    let mut runtime = RuntimeBuilder::<LegacyDriver>::new().build().unwrap();
    runtime.block_on(async {
        let any_port = "127.0.0.1:0".parse().unwrap();
        let first = vectron_net::bind(any_port, &ListenOptions::default()).unwrap();
        let addr = first.local_addr().unwrap();
        let error = vectron_net::bind(addr, &ListenOptions::default()).unwrap_err();
        assert_eq!(error.addr, addr);
        assert_eq!(error.source.kind(), ErrorKind::AddrInUse);

        let shared = ListenOptions {
            reuse_port: true,
            ..ListenOptions::default()
        };
        let first = vectron_net::bind(any_port, &shared).unwrap();
        let second = vectron_net::bind(first.local_addr().unwrap(), &shared);
        assert!(
            second.is_ok(),
            "reuse_port: true lets sockets share the port"
        );
    });
}
