//! What the reliability cases share: a `vectron dev` with a small collection, a
//! well-behaved client to run beside an abusive one, and the process's memory.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::support::{self, Http, Process};

/// The collection every case uses: 4-d cosine, two shards, a keyword index on "kind".
pub const COLLECTION: &str = "docs";

/// Starts `vectron dev` on free loopback ports with `cores` unpinned cores, its data
/// in `dir`, and `extra` flags.
pub fn dev(dir: &std::path::Path, cores: usize, extra: &[&str]) -> Process {
    let cores = cores.to_string();
    let mut flags = vec!["--cores", &cores, "--no-pin"];
    flags.extend_from_slice(extra);
    support::dev_with(dir, &flags)
}

/// Starts `vectron dev` with one core, pinned to `cpu` when there is one (see
/// [`core_cpu`]): its other threads then keep off that CPU.
pub fn dev_on(dir: &std::path::Path, cpu: Option<usize>) -> Process {
    match cpu {
        Some(cpu) => support::dev_with(dir, &["--cpus", &cpu.to_string()]),
        None => dev(dir, 1, &[]),
    }
}

/// A CPU for a core of its own, as a thread-per-core deployment gives it: the last
/// one this process may use, when it may use at least two (the test's own threads and
/// the rest of `vectron dev` keep to the others). `None` on a single CPU.
pub fn core_cpu() -> Option<usize> {
    let cpus = vectron_core_shard::allowed_cpus().ok()?;
    (cpus.len() >= 2).then(|| cpus[cpus.len() - 1])
}

/// Runs `test` on a fresh two-thread tokio runtime whose threads, and the processes it
/// starts, keep off `cpu`.
pub fn off_cpu<F: Future<Output = ()> + Send + 'static>(
    cpu: Option<usize>,
    test: impl FnOnce() -> F + Send + 'static,
) {
    std::thread::spawn(move || {
        if let Some(cpu) = cpu
            && vectron_core_shard::keep_off_cpus(&[cpu]).is_none()
        {
            eprintln!(
                "WARNING: cannot keep the test's threads off CPU {cpu} (no affinity here): the core shares its CPU with the clients, and the latencies printed include that"
            );
        }
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap()
            .block_on(test());
    })
    .join()
    .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
}

/// Starts `vectron dev` (two cores) with `extra` flags, and creates [`COLLECTION`] with
/// 200 points.
pub async fn dev_with_docs(dir: &std::path::Path, extra: &[&str]) -> Process {
    let dev = dev(dir, 2, extra);
    let http = Http::new(&support::http_addr(&dev));
    let (status, body) = http
        .json(
            "POST",
            "/v1/collections",
            Some(json!({
                "name": COLLECTION, "dimension": 4, "metric": "cosine", "shard_count": 2,
                "payload_indexes": [{"field": "kind", "kind": "keyword"}]
            })),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let points: Vec<Value> = (0..200)
        .map(|i| {
            json!({"id": format!("p{i}"), "vector": vector(i),
                   "payload": {"kind": if i % 2 == 0 { "even" } else { "odd" }, "n": i}})
        })
        .collect();
    let (status, body) = http
        .json(
            "PUT",
            &format!("/v1/collections/{COLLECTION}/points"),
            Some(json!({ "points": points })),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    dev
}

/// A distinct unit-ish vector per point.
pub fn vector(i: usize) -> Vec<f32> {
    let x = i as f32;
    vec![1.0, (x * 0.37).sin(), (x * 0.11).cos(), x / 200.0]
}

/// One small search over HTTP; panics unless it answers 200 with hits.
pub async fn search_ok(http: &Http) {
    let (status, body) = http
        .json(
            "POST",
            &format!("/v1/collections/{COLLECTION}/points/search"),
            Some(json!({"vector": [1.0, 0.2, 0.3, 0.1], "k": 5, "consistency": "linearizable"})),
        )
        .await;
    assert_eq!(status, 200, "a normal search after the case: {body}");
    assert_eq!(body["hits"].as_array().map(Vec::len), Some(5), "{body}");
}

/// Runs small searches one after another until `stop`, and returns how long each took
/// and how many failed.
pub async fn well_behaved(
    http_addr: String,
    stop: tokio::sync::watch::Receiver<bool>,
) -> (Vec<Duration>, usize) {
    let http = Http::new(&http_addr);
    let mut took = Vec::new();
    let mut failed = 0;
    while !*stop.borrow() {
        let started = Instant::now();
        let (status, _) = http
            .send(
                "POST",
                &format!("/v1/collections/{COLLECTION}/points/search"),
                Some("application/json"),
                json!({"vector": [1.0, 0.2, 0.3, 0.1], "k": 5, "consistency": "linearizable"})
                    .to_string()
                    .into_bytes(),
            )
            .await;
        if status == 200 {
            took.push(started.elapsed());
        } else {
            failed += 1;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    (took, failed)
}

/// The `p`-th percentile of `samples`.
pub fn percentile(samples: &mut [Duration], p: f64) -> Duration {
    samples.sort_unstable();
    let at = ((samples.len() as f64 - 1.0) * p).round() as usize;
    samples.get(at).copied().unwrap_or_default()
}

/// A field of `/proc/PID/status` in bytes (`VmRSS`, `VmHWM`).
pub fn memory(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status
        .lines()
        .find(|l| l.starts_with(field))
        .unwrap_or_else(|| panic!("no {field} in /proc/{pid}/status"));
    let kib: u64 = line
        .split_whitespace()
        .nth(1)
        .and_then(|n| n.parse().ok())
        .unwrap();
    kib * 1024
}

/// Sends JSON to `addr` and reads the JSON answer; `None` when the connection fails (the
/// process was killed, say), where [`Http::json`] would panic.
pub async fn try_json(addr: &str, method: &str, path: &str, body: &Value) -> Option<(u16, Value)> {
    use http_body_util::BodyExt as _;
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http::<http_body_util::Full<bytes::Bytes>>();
    let request = hyper::Request::builder()
        .method(method)
        .uri(format!("http://{addr}{path}"))
        .header("content-type", "application/json")
        .body(http_body_util::Full::new(bytes::Bytes::from(
            body.to_string(),
        )))
        .ok()?;
    let response = tokio::time::timeout(Duration::from_secs(30), client.request(request))
        .await
        .ok()?
        .ok()?;
    let status = response.status().as_u16();
    let body = response.into_body().collect().await.ok()?.to_bytes();
    Some((status, serde_json::from_slice(&body).unwrap_or(Value::Null)))
}
