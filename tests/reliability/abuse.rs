//! Abusive clients against a real `vectron dev` with stated budgets, one pattern after
//! another, while a well-behaved client searches the whole time: slow bodies, gRPC
//! messages announced at 64 MiB and never sent (at the gateway and at a core's port), a
//! thousand idle connections, `k = 10,000` with large payloads, and a hundred concurrent
//! 64 MiB uploads. Every abusive call is answered or cut off, the well-behaved client's
//! searches all succeed, and the process's peak memory stays under the stated bound.
//!
//! The well-behaved client's latency per pattern is printed (`--nocapture`) against its
//! idle latency, for the record; timing is not asserted here (benches/ measures it).

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

use crate::harness::{COLLECTION, dev_with_docs, memory, percentile, search_ok, well_behaved};
use crate::support::{self, Http};

/// The budgets the process runs with.
const INFLIGHT_MIB: usize = 128;
const MAX_STREAMS: &str = "4";
const BODY_IDLE_MS: u64 = 1_500;

/// What the process may reach at its peak: the process at rest (under 256 MiB with
/// these two collections) plus four times the gateway's in-flight budget, for what
/// decoding makes of the bytes it admits. Without admission control and sized answers
/// the patterns below took it past 1.1 GiB (the large searches) and 6 GiB (the uploads).
const PEAK_BOUND: u64 = (256 + 4 * INFLIGHT_MIB as u64) << 20;

/// Runs `pattern` while the well-behaved client searches; returns its latencies.
async fn beside<F: Future<Output = ()>>(
    name: &str,
    http_addr: &str,
    idle_p99: Duration,
    pattern: F,
) {
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let client = tokio::spawn(well_behaved(http_addr.to_owned(), stopped));
    pattern.await;
    stop.send_replace(true);
    let (mut took, failed) = client.await.unwrap();
    assert_eq!(
        failed, 0,
        "{name}: the well-behaved client's searches all succeed"
    );
    assert!(!took.is_empty(), "{name}: the well-behaved client searched");
    let p99 = percentile(&mut took, 0.99);
    eprintln!(
        "abuse: {name}: well-behaved p99 {p99:?} over {} searches (idle p99 {idle_p99:?}, {:.1}x)",
        took.len(),
        p99.as_secs_f64() / idle_p99.as_secs_f64().max(1e-6)
    );
}

/// Bodies that stop arriving: each call is given up after the idle timeout (408), or
/// refused at once when the bodies admitted before it hold the budget (429).
async fn slow_bodies(http_addr: &str) {
    let mut calls = Vec::new();
    for _ in 0..50 {
        let addr = http_addr.to_owned();
        calls.push(tokio::spawn(async move {
            let mut s = TcpStream::connect(&addr).await.unwrap();
            let head = format!(
                "PUT /v1/collections/{COLLECTION}/points HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 1000000\r\n\r\n{{\"points\": ["
            );
            s.write_all(head.as_bytes()).await.unwrap();
            let mut answer = vec![0; 4096];
            let n = tokio::time::timeout(Duration::from_secs(30), s.read(&mut answer))
                .await
                .expect("the gateway gives up on the body")
                .unwrap();
            String::from_utf8_lossy(&answer[..n]).into_owned()
        }));
    }
    let mut timed_out = 0;
    for call in calls {
        let answer = call.await.unwrap();
        if answer.starts_with("HTTP/1.1 408") {
            timed_out += 1;
        } else {
            assert!(answer.starts_with("HTTP/1.1 429"), "{answer}");
        }
    }
    assert!(timed_out > 0, "no slow body was admitted and timed out");
}

/// gRPC streams that announce a 64 MiB message, send its first bytes and stall.
async fn announced_never_sent(addr: &str, path: &str, streams: usize) -> Vec<Box<dyn Send>> {
    let tcp = TcpStream::connect(addr).await.unwrap();
    let (mut send, connection) = h2::client::handshake(tcp).await.unwrap();
    tokio::spawn(async move {
        let _ = connection.await;
    });
    let mut held: Vec<Box<dyn Send>> = Vec::new();
    for _ in 0..streams {
        send = send.ready().await.unwrap();
        let request = http::Request::builder()
            .method("POST")
            .uri(format!("http://{addr}{path}"))
            .header("content-type", "application/grpc")
            .header("te", "trailers")
            .body(())
            .unwrap();
        let Ok((response, mut body)) = send.send_request(request, false) else {
            break;
        };
        let mut start = vec![0u8];
        start.extend_from_slice(&(64u32 << 20).to_be_bytes());
        start.extend_from_slice(&[7; 1000]);
        let _ = body.send_data(Bytes::from(start), false);
        held.push(Box::new((response, body)));
    }
    held.push(Box::new(send));
    held
}

/// Connections opened and left idle.
async fn idle_connections(addrs: &[String], each: usize) -> Vec<TcpStream> {
    let mut open = Vec::new();
    for addr in addrs {
        for _ in 0..each {
            if let Ok(s) = TcpStream::connect(addr).await {
                open.push(s);
            }
        }
    }
    open
}

/// Searches for the 2,000 nearest points with their payloads, many at once.
async fn huge_answers(http_addr: &str) {
    let mut calls = Vec::new();
    for _ in 0..20 {
        let http = Http::new(http_addr);
        calls.push(tokio::spawn(async move {
            let body = json!({"vector": [1.0, 0.0, 0.0, 0.0], "k": 10_000, "with_payload": true,
                              "with_vector": true, "consistency": "linearizable"});
            http.send(
                "POST",
                "/v1/collections/heavy/points/search",
                Some("application/json"),
                body.to_string().into_bytes(),
            )
            .await
        }));
    }
    for call in calls {
        let (status, text) = call.await.unwrap();
        let value: Value = serde_json::from_str(&text).unwrap_or_default();
        assert!(
            (status == 413 || status == 429) && value["error"]["code"] == "RESOURCE_EXHAUSTED",
            "{status} {}",
            &text[..text.len().min(300)]
        );
    }
}

/// A hundred clients each sending a 64 MiB body at once.
async fn big_uploads(http_addr: &str) -> (usize, usize) {
    let mut body = b"{\"points\": [".to_vec();
    body.resize(64 << 20, b' ');
    let body = Bytes::from(body);
    let mut calls = Vec::new();
    for _ in 0..100 {
        let addr = http_addr.to_owned();
        let body = body.clone();
        calls.push(tokio::spawn(async move {
            let mut s = TcpStream::connect(&addr).await.ok()?;
            let head = format!(
                "PUT /v1/collections/{COLLECTION}/points HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
                body.len()
            );
            s.write_all(head.as_bytes()).await.ok()?;
            // The gateway may answer (and close) before the body is all sent.
            let _ = s.write_all(&body).await;
            let mut answer = vec![0; 512];
            let n = tokio::time::timeout(Duration::from_secs(60), s.read(&mut answer))
                .await
                .ok()?
                .ok()?;
            Some(String::from_utf8_lossy(&answer[..n]).into_owned())
        }));
    }
    let (mut refused, mut other) = (0, 0);
    for call in calls {
        match call.await.unwrap() {
            Some(a) if a.starts_with("HTTP/1.1 429") => refused += 1,
            // Admitted whole, and then not a valid request; or cut off.
            _ => other += 1,
        }
    }
    (refused, other)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn abusive_clients_neither_take_the_server_down_nor_starve_others() {
    let dir = support::tempdir();
    let inflight = INFLIGHT_MIB.to_string();
    let idle = BODY_IDLE_MS.to_string();
    let dev = dev_with_docs(
        dir.path(),
        &[
            "--max-inflight-mib",
            &inflight,
            "--max-streams",
            MAX_STREAMS,
            "--body-idle-timeout-ms",
            &idle,
        ],
    )
    .await;
    let pid = dev.child.id();
    let http_addr = support::http_addr(&dev);
    let grpc_addr = support::grpc_addr(&dev);
    let http = Http::new(&http_addr);

    // A collection of large payloads: 2,000 points of 24 KB, two shards.
    let (status, body) = http
        .json(
            "POST",
            "/v1/collections",
            Some(json!({"name": "heavy", "dimension": 4, "metric": "cosine", "shard_count": 2})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let text = "z".repeat(24_000);
    for batch in 0..4 {
        let points: Vec<Value> = (batch * 500..(batch + 1) * 500)
            .map(|i| json!({"id": i, "vector": crate::harness::vector(i), "payload": {"text": text}}))
            .collect();
        let (status, body) = http
            .json(
                "PUT",
                "/v1/collections/heavy/points",
                Some(json!({ "points": points })),
            )
            .await;
        assert_eq!(status, 200, "{body}");
    }

    // A large answer that fits is served whole, in two rounds (ids and scores, then the
    // payloads of the hits kept), and agrees with a small one served in one round.
    let search = |k: usize| {
        json!({"vector": [1.0, 0.1, 0.2, 0.3], "k": k, "with_payload": true, "ef": 2000,
               "consistency": "linearizable"})
    };
    let (status, large) = http
        .json(
            "POST",
            "/v1/collections/heavy/points/search",
            Some(search(500)),
        )
        .await;
    assert_eq!(
        status,
        200,
        "{}",
        &large.to_string()[..300.min(large.to_string().len())]
    );
    let large = large["hits"].as_array().unwrap().clone();
    assert_eq!(large.len(), 500);
    assert!(large.iter().all(|h| h["payload"]["text"] == text.as_str()));
    let (status, small) = http
        .json(
            "POST",
            "/v1/collections/heavy/points/search",
            Some(search(10)),
        )
        .await;
    assert_eq!(status, 200);
    let ids =
        |hits: &[Value]| -> Vec<String> { hits.iter().map(|h| h["id"].to_string()).collect() };
    assert_eq!(ids(&large[..10]), ids(small["hits"].as_array().unwrap()));

    // The well-behaved client alone.
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let alone = tokio::spawn(well_behaved(http_addr.clone(), stopped));
    tokio::time::sleep(Duration::from_secs(2)).await;
    stop.send_replace(true);
    let (mut idle_took, failed) = alone.await.unwrap();
    assert_eq!(failed, 0);
    let idle_p99 = percentile(&mut idle_took, 0.99);
    let at_start = memory(pid, "VmRSS");

    beside(
        "50 slow bodies",
        &http_addr,
        idle_p99,
        slow_bodies(&http_addr),
    )
    .await;

    let (_, info) = http
        .json("GET", &format!("/v1/collections/{COLLECTION}"), None)
        .await;
    let core_addr = info["shards"][0]["replicas"][0]["address"]
        .as_str()
        .unwrap()
        .to_owned();
    let announced = async {
        let at_gateway = announced_never_sent(&grpc_addr, "/vectron.v1.Points/Upsert", 100).await;
        let at_core =
            announced_never_sent(&core_addr, "/vectron.core.v1.CoreService/Upsert", 100).await;
        // Held past the body idle timeout: the gateway gives its calls up meanwhile.
        tokio::time::sleep(Duration::from_millis(BODY_IDLE_MS * 2)).await;
        drop((at_gateway, at_core));
    };
    beside(
        "200 gRPC messages announced at 64 MiB, never sent",
        &http_addr,
        idle_p99,
        announced,
    )
    .await;

    // The core counted what it refused, and holds nothing once the streams are gone.
    let (_, stats) = http.json("GET", "/v1/stats/cores", None).await;
    let cores = stats["cores"].as_array().unwrap();
    let refused: u64 = cores
        .iter()
        .map(|c| c["calls_refused_total"].as_u64().unwrap_or(0))
        .sum();
    assert!(refused > 0, "the core reports its refusals: {stats}");

    let idle_conns = async {
        let open = idle_connections(&[http_addr.clone(), grpc_addr.clone()], 500).await;
        assert!(open.len() >= 900, "{} connections opened", open.len());
        tokio::time::sleep(Duration::from_secs(2)).await;
        drop(open);
    };
    beside("1,000 idle connections", &http_addr, idle_p99, idle_conns).await;

    beside(
        "20 searches for 10,000 hits with 24 KB payloads",
        &http_addr,
        idle_p99,
        huge_answers(&http_addr),
    )
    .await;

    let uploads = Arc::new(std::sync::Mutex::new((0, 0)));
    let record = Arc::clone(&uploads);
    let addr = http_addr.clone();
    beside(
        "100 concurrent 64 MiB uploads",
        &http_addr,
        idle_p99,
        async move {
            *record.lock().unwrap() = big_uploads(&addr).await;
        },
    )
    .await;
    let (refused, other) = *uploads.lock().unwrap();
    assert!(
        refused >= 90,
        "most uploads are refused for the budget: {refused} refused, {other} otherwise"
    );

    let peak = memory(pid, "VmHWM");
    eprintln!(
        "abuse: resident memory {} MiB at the start of the patterns, peak {} MiB (bound {} MiB)",
        at_start >> 20,
        peak >> 20,
        PEAK_BOUND >> 20
    );
    assert!(peak < PEAK_BOUND, "peak resident memory {} MiB", peak >> 20);
    search_ok(&http).await;
    dev.terminate();
}
