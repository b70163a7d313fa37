//! Graceful shutdown: GOAWAY, in-flight calls finish within the grace period, calls still
//! running after it are cut off, and the server returns either way.

use std::time::Duration;

use tokio::net::TcpStream;
use vectron_net::{Code, ConnectionEnd, ServerConfig};

use crate::drivers;
use crate::harness::{Driver, TestServer};
use crate::netcheck::StallRequest;
use crate::service::STALL;

/// Waits (up to 10 s) until new connections to `server` are refused: the listener is
/// closed, so the server is draining.
async fn wait_until_refusing(server: &TestServer) {
    for _ in 0..1000 {
        if TcpStream::connect(server.addr).await.is_err() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("the server still accepts connections after shutdown began");
}

drivers!(
    graceful_shutdown_lets_an_in_flight_call_finish,
    |driver: Driver| async move {
        let mut server = TestServer::start(driver, ServerConfig::default());
        let mut client = server.client().await;
        let request = StallRequest {
            until_released: true,
            ..StallRequest::default()
        };
        let call = tokio::spawn(async move { client.stall(request).await });
        server.probe.stalled.notified().await;

        server.begin_shutdown();
        wait_until_refusing(&server).await;
        // Draining, with the call still in flight: let it answer.
        server.probe.release.notify_one();
        let reply = call.await.unwrap().unwrap().into_inner();
        assert_eq!(reply.text, "awake");

        let (stats, log) = server.stop().await;
        let stats = stats.unwrap();
        let (stall, closed) = (log.codes_of(STALL), log.closed);
        assert_eq!((stats.in_flight, stats.open_connections), (0, 0));
        assert_eq!(stall, [Code::Ok]);
        assert!(!closed.contains(&ConnectionEnd::Aborted), "{closed:?}");
    }
);

drivers!(
    calls_still_running_after_the_grace_period_are_cut_off,
    |driver: Driver| async move {
        let config = ServerConfig {
            shutdown_grace: Duration::from_millis(200),
            ..ServerConfig::default()
        };
        let mut server = TestServer::start(driver, config);
        let mut client = server.client().await;
        let request = StallRequest {
            forever: true,
            ..StallRequest::default()
        };
        let call = tokio::spawn(async move { client.stall(request).await });
        server.probe.stalled.notified().await;

        server.begin_shutdown();
        let status = call.await.unwrap().unwrap_err();
        assert_ne!(status.code(), tonic::Code::Ok);
        let (stats, log) = server.stop().await;
        let stats = stats.unwrap();
        let (stall, closed) = (log.codes_of(STALL), log.closed);
        assert_eq!((stats.in_flight, stats.open_connections), (0, 0));
        assert_eq!(closed, [ConnectionEnd::Aborted]);
        assert_eq!(stall, [Code::Cancelled]);
    }
);

drivers!(
    a_draining_server_closes_a_connection_with_no_call_whose_client_never_hangs_up,
    |driver: Driver| async move {
        // Long enough that waiting it out would end the connection as aborted (and make
        // a slow test).
        let config = ServerConfig {
            shutdown_grace: Duration::from_secs(60),
            ..ServerConfig::default()
        };
        let mut server = TestServer::start(driver, config);
        // A client that opened its connection and then stopped reading it (a stalled
        // process, a peer busy elsewhere): it never sees the GOAWAY, never hangs up.
        let tcp = TcpStream::connect(server.addr).await.unwrap();
        let (send, connection) = h2::client::Builder::new()
            .handshake::<_, bytes::Bytes>(tcp)
            .await
            .unwrap();
        server
            .wait_for_stats("the connection", |s| s.open_connections == 1)
            .await;

        server.begin_shutdown();
        let (stats, log) = server.stop().await;
        assert_eq!(stats.unwrap().open_connections, 0);
        assert_eq!(
            log.closed,
            [ConnectionEnd::Closed],
            "closed once it had no call, not cut off at the end of the grace period"
        );
        drop((send, connection));
    }
);
