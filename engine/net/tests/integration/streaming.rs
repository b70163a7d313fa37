//! Client streaming (bulk ingest) and server streaming (large results, backpressure).

use std::time::Duration;

use vectron_net::{Code, ServerConfig};

use crate::drivers;
use crate::harness::{Driver, TestServer, load};
use crate::netcheck::{Number, RangeRequest};
use crate::service::{RANGE, SUM};

drivers!(
    client_streaming_of_100k_messages,
    |driver: Driver| async move {
        let server = TestServer::start(driver, ServerConfig::default());
        let mut client = server.client().await;
        const N: i64 = 100_000;
        let numbers = tokio_stream::iter((0..N).map(|value| Number { value }));
        let total = client.sum(numbers).await.unwrap().into_inner();
        assert_eq!(total.count, N as u64);
        assert_eq!(total.sum, N * (N - 1) / 2);

        // An empty stream is a valid request too.
        let total = client
            .sum(tokio_stream::empty())
            .await
            .unwrap()
            .into_inner();
        assert_eq!((total.count, total.sum), (0, 0));
        assert_eq!(server.codes(SUM, 2).await, [Code::Ok, Code::Ok]);
    }
);

drivers!(
    server_streaming_to_a_slow_reader_is_held_back,
    |driver: Driver| async move {
        let server = TestServer::start(driver, ServerConfig::default());
        let mut client = server.client().await;
        // 64 MiB in 4 KiB messages. The client's stream window is 2 MiB (hyper's default),
        // and the server keeps at most 64 KiB pending beyond what flow control lets through,
        // so while the client does not read, the handler must stop about 2.1 MiB (some 530
        // messages) ahead of it. Without backpressure it would run through all 16,384.
        const COUNT: u64 = 16_384;
        const SIZE: u32 = 4096;
        const AHEAD_BOUND: u64 = 1024;
        let request = RangeRequest {
            count: COUNT,
            size: SIZE,
            fail_code: 0,
        };
        let mut stream = client.range(request).await.unwrap().into_inner();
        let mut received = 0u64;
        for _pause in 0..3 {
            for _ in 0..100 {
                let chunk = stream.message().await.unwrap().unwrap();
                assert_eq!((chunk.seq, chunk.data.len()), (received, SIZE as usize));
                received += 1;
            }
            // Stop reading until the handler has stopped too (its count is stable for
            // 200 ms), then check how far ahead it got.
            let mut last = load(&server.probe.range_sent);
            let mut stable_for = 0;
            while stable_for < 4 {
                tokio::time::sleep(Duration::from_millis(50)).await;
                let now = load(&server.probe.range_sent);
                stable_for = if now == last { stable_for + 1 } else { 0 };
                last = now;
            }
            let ahead = last - received;
            assert!(
                ahead <= AHEAD_BOUND,
                "the handler ran {ahead} messages ahead of the reader"
            );
            assert!(
                last < COUNT,
                "the handler finished while the reader was paused"
            );
        }
        while let Some(chunk) = stream.message().await.unwrap() {
            assert_eq!(chunk.seq, received);
            assert!(chunk.data.iter().all(|&b| b == received as u8));
            received += 1;
        }
        assert_eq!(received, COUNT);
        assert_eq!(server.codes(RANGE, 1).await, [Code::Ok]);
    }
);

drivers!(
    a_server_stream_can_end_with_an_error_after_its_messages,
    |driver: Driver| async move {
        let server = TestServer::start(driver, ServerConfig::default());
        let mut client = server.client().await;
        let request = RangeRequest {
            count: 10,
            size: 100,
            fail_code: Code::Aborted.as_i32(),
        };
        let mut stream = client.range(request).await.unwrap().into_inner();
        for seq in 0..10 {
            assert_eq!(stream.message().await.unwrap().unwrap().seq, seq);
        }
        let status = stream.message().await.unwrap_err();
        assert_eq!(status.code(), tonic::Code::Aborted);
        assert_eq!(status.message(), "failed after the last chunk");

        // No message at all is a valid stream.
        let request = RangeRequest {
            count: 0,
            size: 0,
            fail_code: 0,
        };
        let mut stream = client.range(request).await.unwrap().into_inner();
        assert!(stream.message().await.unwrap().is_none());
        assert_eq!(server.codes(RANGE, 2).await, [Code::Aborted, Code::Ok]);
    }
);

drivers!(
    an_oversized_message_mid_stream_ends_the_call,
    |driver: Driver| async move {
        // Numbers below 128 encode in 2 bytes, i64::MAX in 10: the limit falls between.
        let config = ServerConfig {
            max_recv_message_size: 8,
            ..ServerConfig::default()
        };
        let server = TestServer::start(driver, config);
        let mut client = server.client().await;
        // The client goes on streaming long after the server has answered; the server
        // reads a bounded amount of the rest and then asks it to stop.
        let values = (0..100).chain([i64::MAX]).chain(0..200_000);
        let numbers = tokio_stream::iter(values.map(|value| Number { value }));
        let status = client.sum(numbers).await.unwrap_err();
        assert_eq!(status.code(), tonic::Code::ResourceExhausted);
        assert_eq!(
            status.message(),
            "request message of 10 bytes exceeds the server's limit of 8 bytes"
        );
        // The connection survives the early answer.
        let total = client.sum(tokio_stream::iter((0..10).map(|value| Number { value })));
        assert_eq!(total.await.unwrap().into_inner().count, 10);
        // The first call is recorded once its drain is over, possibly after the second.
        let mut codes = server.codes(SUM, 2).await;
        codes.sort();
        assert_eq!(codes, [Code::Ok, Code::ResourceExhausted]);
        assert_eq!(server.events().opened, 1);
    }
);

drivers!(
    a_client_dropping_a_stream_stops_its_handler,
    |driver: Driver| async move {
        let server = TestServer::start(driver, ServerConfig::default());
        let mut client = server.client().await;
        let request = RangeRequest {
            count: u64::MAX,
            size: 1024,
            fail_code: 0,
        };
        let mut stream = client.range(request).await.unwrap().into_inner();
        for seq in 0..10 {
            assert_eq!(stream.message().await.unwrap().unwrap().seq, seq);
        }
        drop(stream);
        // The handler would stream forever: only the client's RST_STREAM can stop it.
        assert_eq!(server.codes(RANGE, 1).await, [Code::Cancelled]);
        let sent = load(&server.probe.range_sent);
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert_eq!(
            load(&server.probe.range_sent),
            sent,
            "the handler still runs"
        );
    }
);
