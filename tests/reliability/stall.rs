//! A worker that stops answering (SIGSTOP: a stalled host, a long GC-like pause, a
//! frozen VM) behind a separate gateway: searches fail within their deadline, and a
//! streamed upsert fails once the core made no progress for the call timeout, instead of
//! hanging; once the worker runs again, so does everything.

use std::time::{Duration, Instant};

use serde_json::json;

use crate::support::{self, ControlProcess, Http, Process};

const CALL_TIMEOUT_MS: u64 = 1_500;

fn signal(p: &Process, signal: i32) {
    // SAFETY: kill(2) on our own child's pid has no memory effects.
    let rc = unsafe { libc::kill(p.child.id() as i32, signal) };
    assert_eq!(rc, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_worker_fails_calls_in_time_and_serves_again_when_it_resumes() {
    let dir = support::tempdir();
    let control = ControlProcess::start(dir.path(), 1, "127.0.0.1:0", None);
    let worker_dir = dir.path().join("worker");
    let worker = Process::start(&[
        "worker",
        "--data-dir",
        worker_dir.to_str().unwrap(),
        "--cores",
        "1",
        "--core-base-port",
        "0",
        "--admin-addr",
        "127.0.0.1:0",
        "--no-pin",
        "--control",
        &control.address,
    ]);
    let timeout = CALL_TIMEOUT_MS.to_string();
    let gateway = Process::start(&[
        "gateway",
        "--control",
        &control.address,
        "--grpc-addr",
        "127.0.0.1:0",
        "--http-addr",
        "127.0.0.1:0",
        "--call-timeout-ms",
        &timeout,
    ]);
    let http = Http::new(&support::http_addr(&gateway));
    let mut created = false;
    for _ in 0..100 {
        let (status, _) = http
            .json(
                "POST",
                "/v1/collections",
                Some(json!({"name": "s", "dimension": 4, "metric": "l2", "shard_count": 1})),
            )
            .await;
        if status == 200 {
            created = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(created, "the collection was created");
    let search = json!({"vector": [1, 0, 0, 0], "k": 1, "consistency": "linearizable"});
    let upsert = json!({"points": [{"id": "a", "vector": [1, 0, 0, 0]}]});
    let (status, body) = http
        .json("PUT", "/v1/collections/s/points", Some(upsert))
        .await;
    assert_eq!(status, 200, "{body}");

    signal(&worker, libc::SIGSTOP);
    let started = Instant::now();
    let (status, body) = http
        .json(
            "POST",
            "/v1/collections/s/points/search",
            Some(search.clone()),
        )
        .await;
    assert_eq!(status, 504, "{body}");
    assert!(started.elapsed() < Duration::from_secs(10));

    // 2,000 points a line each: more than the stream's channel to the core holds, so
    // the gateway waits on the stalled core and must give up on it.
    let lines: String = (0..2_000)
        .map(|i| {
            json!({"id": format!("l{i}"), "vector": [1.0, i as f32, 0.5, 0.0]}).to_string() + "\n"
        })
        .collect();
    let started = Instant::now();
    let (status, body) = tokio::time::timeout(
        Duration::from_secs(60),
        http.send(
            "POST",
            "/v1/collections/s/points/stream",
            Some("application/x-ndjson"),
            lines.into_bytes(),
        ),
    )
    .await
    .expect("the stream fails rather than hangs");
    assert!(status >= 500, "{status} {body}");
    assert!(started.elapsed() < Duration::from_secs(30));

    signal(&worker, libc::SIGCONT);
    let mut answered = false;
    for _ in 0..100 {
        let (status, _) = http
            .json(
                "POST",
                "/v1/collections/s/points/search",
                Some(search.clone()),
            )
            .await;
        if status == 200 {
            answered = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(answered, "searches work again once the worker runs");
    drop(control);
}
