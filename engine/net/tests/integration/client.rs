//! The client [`Channel`] against the real [`Server`], both on one monoio runtime, as on
//! a core that serves and calls its peers at once; with either driver.

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use monoio::task::JoinHandle;
use monoio::{IoUringDriver, LegacyDriver, RuntimeBuilder};
use tokio::sync::oneshot;
use vectron_net::{
    Channel, ClientConfig, Code, Gate, Keepalive, ListenOptions, RequestStream, ServeError, Server,
    ServerConfig, StatsHandle, Status,
};

use crate::drivers;
use crate::harness::{Driver, Probe};
use crate::netcheck::{
    BlobReply, BlobRequest, Chunk, EchoReply, EchoRequest, FailRequest, StallRequest, Total,
};
use crate::service::{self, BLOB, ECHO, FAIL, STALL};

/// A client-streaming method only these tests serve: checks that chunks arrive in
/// order and intact, and counts them as they arrive.
const COLLECT: &str = "/netcheck.v1.Check/Collect";

/// Long enough never to pass in a test that expects an answer.
const PATIENT: Duration = Duration::from_secs(30);

/// Runs `body` on a new monoio runtime with `driver`, on a thread of its own; a panic
/// in `body` fails the test with its message.
async fn on_core<F, Fut>(driver: Driver, body: F)
where
    F: FnOnce() -> Fut + Send + 'static,
    Fut: Future<Output = ()> + 'static,
{
    let thread = std::thread::spawn(move || match driver {
        Driver::Uring => RuntimeBuilder::<IoUringDriver>::new()
            .enable_timer()
            .build()
            .unwrap()
            .block_on(body()),
        Driver::Legacy => RuntimeBuilder::<LegacyDriver>::new()
            .enable_timer()
            .build()
            .unwrap()
            .block_on(body()),
    });
    let joined = tokio::task::spawn_blocking(move || thread.join())
        .await
        .unwrap();
    if let Err(panic) = joined {
        std::panic::resume_unwind(panic);
    }
}

/// A peer core: the test service on the current runtime.
struct Peer {
    addr: SocketAddr,
    stats: StatsHandle,
    probe: Arc<Probe>,
    /// Chunks the `Collect` handler has taken so far.
    collected: Rc<Cell<u64>>,
    stop: oneshot::Sender<()>,
    serving: JoinHandle<Result<(), ServeError>>,
}

impl Peer {
    fn start(config: ServerConfig) -> Peer {
        Peer::start_at("127.0.0.1:0".parse().unwrap(), config)
    }

    fn start_at(addr: SocketAddr, config: ServerConfig) -> Peer {
        Peer::start_gated(addr, config, None)
    }

    fn start_gated(addr: SocketAddr, config: ServerConfig, gate: Option<Gate>) -> Peer {
        let listener = vectron_net::bind(addr, &ListenOptions::default()).unwrap();
        let addr = listener.local_addr().unwrap();
        let probe = Arc::new(Probe::default());
        let collected = Rc::new(Cell::new(0));
        let counter = Rc::clone(&collected);
        let router = service::router(Arc::clone(&probe))
            .client_streaming(COLLECT, move |_ctx, chunks: RequestStream<Chunk>| {
                collect(chunks, Rc::clone(&counter))
            })
            .unwrap();
        let mut server = Server::new(config, router).unwrap();
        if let Some(gate) = gate {
            server = server.with_gate(gate);
        }
        let stats = server.stats();
        let (stop, stopped) = oneshot::channel::<()>();
        let serving = monoio::spawn(server.serve(listener, async move {
            let _ = stopped.await;
        }));
        Peer {
            addr,
            stats,
            probe,
            collected,
            stop,
            serving,
        }
    }

    /// Shuts the server down gracefully and waits until it has.
    async fn stop(self) {
        let _ = self.stop.send(());
        self.serving.await.unwrap();
    }
}

async fn collect(
    mut chunks: RequestStream<Chunk>,
    counter: Rc<Cell<u64>>,
) -> Result<Total, Status> {
    let mut total = Total::default();
    while let Some(chunk) = chunks.message().await? {
        if chunk.seq != total.count {
            return Err(Status::data_loss(format!(
                "chunk {} arrived as number {}",
                chunk.seq, total.count
            )));
        }
        if chunk.data.iter().any(|&byte| byte != chunk.seq as u8) {
            return Err(Status::data_loss(format!("chunk {} is corrupt", chunk.seq)));
        }
        total.count += 1;
        total.sum += chunk.data.len() as i64;
        counter.set(total.count);
    }
    Ok(total)
}

fn channel(addr: SocketAddr) -> Channel {
    Channel::new(addr, ClientConfig::default()).unwrap()
}

fn echo(text: &str) -> EchoRequest {
    EchoRequest {
        text: text.to_owned(),
        ..EchoRequest::default()
    }
}

/// Waits (up to 10 s) until `condition` holds.
async fn wait_until(what: &str, condition: impl Fn() -> bool) {
    for _ in 0..1000 {
        if condition() {
            return;
        }
        monoio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("timed out waiting for {what}");
}

/// An address nobody listens on.
fn unused_addr() -> SocketAddr {
    let socket = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    socket.local_addr().unwrap()
}

drivers!(unary_round_trip, |driver: Driver| on_core(
    driver,
    || async move {
        let peer = Peer::start(ServerConfig::default());
        let channel = channel(peer.addr);
        assert_eq!(channel.addr(), peer.addr);
        let request = EchoRequest {
            text: "hello, peer".into(),
            metadata_key: "user-agent".into(),
            ..EchoRequest::default()
        };
        let reply: EchoReply = channel
            .unary(ECHO, &request, Duration::from_secs(5))
            .await
            .unwrap();
        assert_eq!(reply.text, "hello, peer");
        assert!(
            reply.metadata_value.starts_with("vectron-net/"),
            "{reply:?}"
        );
        assert!(reply.has_deadline, "grpc-timeout was sent");
        assert!(reply.deadline_ms <= 5000, "{reply:?}");

        let again: EchoReply = channel.unary(ECHO, &echo("again"), PATIENT).await.unwrap();
        assert_eq!(again.text, "again");
        assert_eq!(peer.stats.snapshot().connections_accepted, 1);
        peer.stop().await;
    }
));

drivers!(concurrent_calls_share_one_connection, |driver: Driver| {
    on_core(driver, || async move {
        let peer = Peer::start(ServerConfig::default());
        let channel = channel(peer.addr);
        // Every call starts before the connection is open: they share one attempt.
        let calls: Vec<_> = (0..200)
            .map(|i| {
                let channel = channel.clone();
                monoio::spawn(async move {
                    channel
                        .unary::<_, EchoReply>(ECHO, &echo(&i.to_string()), PATIENT)
                        .await
                })
            })
            .collect();
        for (i, call) in calls.into_iter().enumerate() {
            assert_eq!(call.await.unwrap().text, i.to_string());
        }
        let stats = peer.stats.snapshot();
        assert_eq!(stats.connections_accepted, 1, "{stats:?}");
        assert_eq!(stats.calls_finished, 200, "{stats:?}");
        peer.stop().await;
    })
});

drivers!(a_handler_status_comes_back_exactly, |driver: Driver| {
    on_core(driver, || async move {
        let peer = Peer::start(ServerConfig::default());
        let channel = channel(peer.addr);
        let message = "50% of ünïcode\r\n東京 ok ~ %41";
        let request = FailRequest {
            code: Code::NotFound.as_i32(),
            message: message.into(),
        };
        let status = channel
            .unary::<_, EchoReply>(FAIL, &request, PATIENT)
            .await
            .unwrap_err();
        assert_eq!(status.code(), Code::NotFound);
        assert_eq!(status.message(), message);
        assert_eq!(status.metadata(), None);

        let unknown = channel
            .unary::<_, EchoReply>("/netcheck.v1.Check/Nope", &echo("x"), PATIENT)
            .await
            .unwrap_err();
        assert_eq!(unknown.code(), Code::Unimplemented, "{unknown}");
        peer.stop().await;
    })
});

drivers!(refusals_carry_their_trailers, |driver: Driver| on_core(
    driver,
    || async move {
        let peer = Peer::start(ServerConfig {
            max_calls: 1,
            ..ServerConfig::default()
        });
        let channel = channel(peer.addr);
        let stalled = monoio::spawn({
            let channel = channel.clone();
            async move {
                let request = StallRequest {
                    until_released: true,
                    ..StallRequest::default()
                };
                channel
                    .unary::<_, EchoReply>(STALL, &request, PATIENT)
                    .await
            }
        });
        peer.probe.stalled.notified().await;
        let refused = channel
            .unary::<_, EchoReply>(ECHO, &echo("one too many"), PATIENT)
            .await
            .unwrap_err();
        assert_eq!(refused.code(), Code::ResourceExhausted, "{refused}");
        let retry_after = refused.metadata().and_then(|m| m.get("retry-after"));
        assert_eq!(retry_after.unwrap(), "1");

        peer.probe.release.notify_one();
        assert_eq!(stalled.await.unwrap().text, "awake");
        peer.stop().await;
    }
));

drivers!(the_deadline_ends_a_slow_call, |driver: Driver| on_core(
    driver,
    || async move {
        let peer = Peer::start(ServerConfig::default());
        let channel = channel(peer.addr);
        let forever = StallRequest {
            forever: true,
            ..StallRequest::default()
        };
        let status = channel
            .unary::<_, EchoReply>(STALL, &forever, Duration::from_millis(200))
            .await
            .unwrap_err();
        assert_eq!(status.code(), Code::DeadlineExceeded, "{status}");
        assert!(status.message().contains(STALL), "{status}");
        let stats = peer.stats.clone();
        wait_until("the stalled call to end on the server", || {
            stats.in_flight() == 0
        })
        .await;

        // The connection outlives the call.
        let reply: EchoReply = channel
            .unary(ECHO, &echo("still here"), PATIENT)
            .await
            .unwrap();
        assert_eq!(reply.text, "still here");
        assert_eq!(peer.stats.snapshot().connections_accepted, 1);
        peer.stop().await;
    }
));

drivers!(
    oversized_messages_are_resource_exhausted,
    |driver: Driver| on_core(driver, || async move {
        let peer = Peer::start(ServerConfig::default());

        // Over the server's limit (4 MiB): the server refuses it.
        let channel = channel(peer.addr);
        let large = EchoRequest {
            padding: vec![7; 5 << 20],
            ..EchoRequest::default()
        };
        let status = channel
            .unary::<_, EchoReply>(ECHO, &large, PATIENT)
            .await
            .unwrap_err();
        assert_eq!(status.code(), Code::ResourceExhausted, "{status}");
        assert!(status.message().contains("server's limit"), "{status}");

        // Over the channel's own limit: refused before anything is sent.
        let small = Channel::new(
            peer.addr,
            ClientConfig {
                max_message_bytes: 1 << 20,
                ..ClientConfig::default()
            },
        )
        .unwrap();
        let request = EchoRequest {
            padding: vec![7; 2 << 20],
            ..EchoRequest::default()
        };
        let status = small
            .unary::<_, EchoReply>(ECHO, &request, PATIENT)
            .await
            .unwrap_err();
        assert_eq!(status.code(), Code::ResourceExhausted, "{status}");
        assert!(status.message().contains("channel's limit"), "{status}");
        assert_eq!(peer.stats.snapshot().connections_accepted, 1);

        // A response over the channel's limit, refused from its prefix.
        let blob = BlobRequest { size: 2 << 20 };
        let status = small
            .unary::<_, BlobReply>(BLOB, &blob, PATIENT)
            .await
            .unwrap_err();
        assert_eq!(status.code(), Code::ResourceExhausted, "{status}");
        assert!(status.message().contains("channel's limit"), "{status}");
        let fits = BlobRequest { size: 1000 };
        let reply: BlobReply = small.unary(BLOB, &fits, PATIENT).await.unwrap();
        assert_eq!(reply.data.len(), 1000);
        peer.stop().await;
    })
);

drivers!(a_restarted_server_is_reconnected, |driver: Driver| on_core(
    driver,
    || async move {
        let peer = Peer::start(ServerConfig::default());
        let addr = peer.addr;
        let channel = channel(addr);
        let _: EchoReply = channel.unary(ECHO, &echo("before"), PATIENT).await.unwrap();
        peer.stop().await;

        for _ in 0..2 {
            let down = channel
                .unary::<_, EchoReply>(ECHO, &echo("while down"), PATIENT)
                .await
                .unwrap_err();
            assert_eq!(down.code(), Code::Unavailable, "{down}");
            assert!(down.message().contains(&addr.to_string()), "{down}");
        }

        let peer = Peer::start_at(addr, ServerConfig::default());
        let reply: EchoReply = channel.unary(ECHO, &echo("after"), PATIENT).await.unwrap();
        assert_eq!(reply.text, "after");
        assert_eq!(peer.stats.snapshot().connections_accepted, 1);
        peer.stop().await;
    }
));

drivers!(
    an_idle_goaway_is_followed_by_a_new_connection,
    |driver: Driver| on_core(driver, || async move {
        let peer = Peer::start(ServerConfig {
            idle_timeout: Some(Duration::from_millis(100)),
            ..ServerConfig::default()
        });
        let channel = channel(peer.addr);
        let _: EchoReply = channel.unary(ECHO, &echo("first"), PATIENT).await.unwrap();
        let stats = peer.stats.clone();
        wait_until("the server to close the idle connection", || {
            stats.open_connections() == 0
        })
        .await;
        let reply: EchoReply = channel.unary(ECHO, &echo("second"), PATIENT).await.unwrap();
        assert_eq!(reply.text, "second");
        assert_eq!(peer.stats.snapshot().connections_accepted, 2);
        peer.stop().await;
    })
);

drivers!(client_streaming_respects_flow_control, |driver: Driver| {
    on_core(driver, || async move {
        let peer = Peer::start(ServerConfig::default());
        let channel = channel(peer.addr);
        // 40 MiB in 1 MiB messages: ten times the server's connection window.
        const CHUNKS: u64 = 40;
        const SIZE: usize = 1 << 20;
        let collected = Rc::clone(&peer.collected);
        let mut next = 0u64;
        let mut lead = 0u64;
        let total: Total = channel
            .client_streaming(
                COLLECT,
                async || {
                    if next == CHUNKS {
                        return Ok(None);
                    }
                    lead = lead.max(next - collected.get());
                    let chunk = Chunk {
                        seq: next,
                        data: vec![next as u8; SIZE],
                    };
                    next += 1;
                    Ok(Some(chunk))
                },
                PATIENT,
            )
            .await
            .unwrap();
        assert_eq!(total.count, CHUNKS);
        assert_eq!(total.sum, (CHUNKS as usize * SIZE) as i64);
        // Messages are taken as the server reads them, not all at once.
        assert!(lead <= 8, "{lead} chunks taken ahead of the server");

        let empty: Total = channel
            .client_streaming(COLLECT, async || Ok(None::<Chunk>), PATIENT)
            .await
            .unwrap();
        assert_eq!((empty.count, empty.sum), (0, 0));
        peer.stop().await;
    })
});

drivers!(
    a_failing_source_resets_the_stream,
    |driver: Driver| on_core(driver, || async move {
        let peer = Peer::start(ServerConfig::default());
        let channel = channel(peer.addr);
        let mut next = 0u64;
        let status = channel
            .client_streaming::<_, Total>(
                COLLECT,
                async || {
                    if next == 3 {
                        return Err(Status::aborted("the snapshot file went away"));
                    }
                    next += 1;
                    Ok(Some(Chunk {
                        seq: next - 1,
                        data: vec![(next - 1) as u8; 1000],
                    }))
                },
                PATIENT,
            )
            .await
            .unwrap_err();
        assert_eq!(status, Status::aborted("the snapshot file went away"));
        let stats = peer.stats.clone();
        wait_until("the reset call to end on the server", || {
            stats.in_flight() == 0
        })
        .await;
        assert!(peer.collected.get() <= 3);
        peer.stop().await;
    })
);

drivers!(nobody_listening_is_unavailable_at_once, |driver: Driver| {
    on_core(driver, || async move {
        let addr = unused_addr();
        let channel = channel(addr);
        // Each call tries to connect again, and fails long before its deadline.
        for _ in 0..2 {
            let status = channel
                .unary::<_, EchoReply>(ECHO, &echo("anyone?"), PATIENT)
                .await
                .unwrap_err();
            assert_eq!(status.code(), Code::Unavailable, "{status}");
            assert!(status.message().contains(&addr.to_string()), "{status}");
        }
    })
});

drivers!(a_silent_peer_is_dropped_by_keepalive, |driver: Driver| {
    on_core(driver, || async move {
        // Accepts connections and never reads or writes a byte.
        let listener =
            vectron_net::bind("127.0.0.1:0".parse().unwrap(), &ListenOptions::default()).unwrap();
        let addr = listener.local_addr().unwrap();
        let held = Rc::new(RefCell::new(Vec::new()));
        let _accepting = monoio::spawn({
            let held = Rc::clone(&held);
            async move {
                while let Ok((socket, _)) = listener.accept().await {
                    held.borrow_mut().push(socket);
                }
            }
        });
        let config = ClientConfig {
            keepalive: Some(Keepalive {
                interval: Duration::from_millis(100),
                timeout: Duration::from_millis(100),
            }),
            ..ClientConfig::default()
        };
        let channel = Channel::new(addr, config).unwrap();
        for connections in 1..=2 {
            let status = channel
                .unary::<_, EchoReply>(ECHO, &echo("hello?"), PATIENT)
                .await
                .unwrap_err();
            assert_eq!(status.code(), Code::Unavailable, "{status}");
            assert_eq!(held.borrow().len(), connections);
        }
    })
});

drivers!(a_non_grpc_answer_maps_its_http_status, |driver: Driver| {
    on_core(driver, || async move {
        // An HTTP/2 server that answers every request with 503, as a proxy in front of
        // a peer that is down might.
        let listener =
            vectron_net::bind("127.0.0.1:0".parse().unwrap(), &ListenOptions::default()).unwrap();
        let addr = listener.local_addr().unwrap();
        let _serving = monoio::spawn(async move {
            let (socket, _) = listener.accept().await.unwrap();
            let io = socket
                .try_into_poll_io()
                .map_err(|(error, _)| error)
                .unwrap();
            let mut conn = h2::server::handshake(io).await.unwrap();
            while let Some(Ok((_request, mut respond))) = conn.accept().await {
                let response = http::Response::builder().status(503).body(()).unwrap();
                let _ = respond.send_response(response, true);
            }
        });
        let channel = channel(addr);
        let status = channel
            .unary::<_, EchoReply>(ECHO, &echo("x"), PATIENT)
            .await
            .unwrap_err();
        assert_eq!(status.code(), Code::Unavailable, "{status}");
        assert!(status.message().contains("503"), "{status}");
    })
});

drivers!(
    a_gate_refuses_calls_without_the_metadata_a_channel_sends,
    |driver: Driver| {
        on_core(driver, || async move {
            const KEY: &str = "x-netcheck-key";
            let gate = Gate::new(|headers: &http::HeaderMap| match headers.get(KEY) {
                Some(value) if value == "open sesame" => Ok(()),
                Some(_) => Err(Status::unauthenticated("a wrong key")),
                None => Err(Status::unauthenticated("no key")),
            });
            let peer = Peer::start_gated(
                "127.0.0.1:0".parse().unwrap(),
                ServerConfig::default(),
                Some(gate),
            );
            let refused = channel(peer.addr)
                .unary::<_, EchoReply>(ECHO, &echo("x"), PATIENT)
                .await
                .unwrap_err();
            assert_eq!(refused.code(), Code::Unauthenticated, "{refused}");
            assert_eq!(refused.message(), "no key");
            // Refused before routing: an unknown method is refused the same way.
            let unknown = channel(peer.addr)
                .unary::<_, EchoReply>("/netcheck.v1.Check/Nothing", &echo("x"), PATIENT)
                .await
                .unwrap_err();
            assert_eq!(unknown.code(), Code::Unauthenticated, "{unknown}");

            let keyed = |value: &'static str| {
                let mut config = ClientConfig::default();
                config
                    .metadata
                    .insert(KEY, http::HeaderValue::from_static(value));
                Channel::new(peer.addr, config).unwrap()
            };
            let wrong = keyed("open barley")
                .unary::<_, EchoReply>(ECHO, &echo("x"), PATIENT)
                .await
                .unwrap_err();
            assert_eq!(wrong.message(), "a wrong key");
            let request = EchoRequest {
                text: "let in".into(),
                metadata_key: KEY.into(),
                ..EchoRequest::default()
            };
            let reply: EchoReply = keyed("open sesame")
                .unary(ECHO, &request, PATIENT)
                .await
                .unwrap();
            assert_eq!(reply.text, "let in");
            assert_eq!(reply.metadata_value, "open sesame");
            peer.stop().await;
        })
    }
);
