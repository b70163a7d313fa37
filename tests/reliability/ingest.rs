//! Ingest faster than the cores can index, against a real `vectron dev` with a small
//! backlog bound: the stream is slowed down, not refused, the points waiting to be
//! indexed stay within the bound (plus the batch in flight), and every point arrives,
//! however much longer than the call timeout the stream waits.

use std::time::Duration;

use serde_json::{Value, json};

use crate::support::{self, Http};

const DIM: usize = 128;
const POINTS: usize = 40_000;
const BOUND: usize = 2_000;

/// A point of `DIM` values, distinct per `i`.
fn line(i: usize) -> String {
    let vector: Vec<f32> = (0..DIM)
        .map(|d| (((i * 31 + d * 17) % 97) as f32) / 97.0 + 0.01)
        .collect();
    json!({"id": i, "vector": vector}).to_string()
}

/// Points waiting to be indexed, over every shard of `collection`.
async fn unindexed(http: &Http, collection: &str) -> usize {
    let (status, stats) = http.json("GET", "/v1/stats/cores", None).await;
    assert_eq!(status, 200);
    stats["cores"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|c| c["shards"].as_array().cloned().unwrap_or_default())
        .filter(|s| s["collection"] == collection)
        .map(|s: Value| {
            let points = s["points"].as_u64().unwrap_or(0);
            let indexed = s["indexed_points"].as_u64().unwrap_or(0);
            (points - indexed.min(points)) as usize
        })
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ingest_faster_than_indexing_waits_within_the_backlog_bound() {
    let dir = support::tempdir();
    let bound = BOUND.to_string();
    // A call timeout far below how long the stream waits for the indexer: the gateway
    // must tell a core that is slow on purpose (backpressure) from one that stalled.
    let dev = crate::harness::dev(
        dir.path(),
        1,
        &["--max-unindexed", &bound, "--call-timeout-ms", "200"],
    );
    let addr = support::http_addr(&dev);
    let http = Http::new(&addr);
    let (status, body) = http
        .json(
            "POST",
            "/v1/collections",
            Some(json!({"name": "bulk", "dimension": DIM, "metric": "l2", "shard_count": 1})),
        )
        .await;
    assert_eq!(status, 200, "{body}");

    let body: String = (0..POINTS).map(|i| line(i) + "\n").collect();
    let upload = {
        let http = Http::new(&addr);
        tokio::spawn(async move {
            http.send(
                "POST",
                "/v1/collections/bulk/points/stream",
                Some("application/x-ndjson"),
                body.into_bytes(),
            )
            .await
        })
    };
    let mut highest = 0;
    while !upload.is_finished() {
        highest = highest.max(unindexed(&http, "bulk").await);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (status, answer) = upload.await.unwrap();
    assert_eq!(status, 200, "{answer}");
    let answer: Value = serde_json::from_str(&answer).unwrap();
    assert_eq!(answer["count"], POINTS);
    // One batch may land on top of a backlog just under the bound.
    let batch = vectron_proto::rules::Limits::DEFAULT.max_points;
    eprintln!("ingest: at most {highest} points waited to be indexed (bound {BOUND})");
    assert!(highest <= BOUND + batch, "{highest} points waited");
    let (_, count) = http
        .json(
            "POST",
            "/v1/collections/bulk/points/count",
            Some(json!({"consistency": "linearizable"})),
        )
        .await;
    assert_eq!(count["count"], POINTS);
    dev.terminate();
}

/// A search filtered on a field no index covers, matching a handful of many points:
/// the filter reads more payloads than one search may, so the core finds the matching
/// points in slices and searches among them (`Searched::Prefilter`); the answer is
/// exactly those points.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_search_filtered_on_a_rare_unindexed_value_finds_exactly_its_points() {
    let dir = support::tempdir();
    let dev = crate::harness::dev(dir.path(), 1, &[]);
    let http = Http::new(&support::http_addr(&dev));
    let (status, body) = http
        .json(
            "POST",
            "/v1/collections",
            Some(json!({"name": "tags", "dimension": DIM, "metric": "l2", "shard_count": 1})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let lines: String = (0..30_000)
        .map(|i| {
            let mut point: Value = serde_json::from_str(&line(i)).unwrap();
            let tag = if i % 5_000 == 0 { "rare" } else { "common" };
            point["payload"] = json!({ "tag": tag });
            point.to_string() + "\n"
        })
        .collect();
    let (status, answer) = http
        .send(
            "POST",
            "/v1/collections/tags/points/stream",
            Some("application/x-ndjson"),
            lines.into_bytes(),
        )
        .await;
    assert_eq!(status, 200, "{answer}");
    let (status, found) = http
        .json(
            "POST",
            "/v1/collections/tags/points/search",
            Some(json!({"vector": line(1)
                .parse::<Value>()
                .unwrap()["vector"], "k": 10, "with_payload": true,
                "filter": {"must": [{"field": {"key": "tag", "keyword": "rare"}}]}})),
        )
        .await;
    assert_eq!(status, 200, "{found}");
    let mut ids: Vec<String> = found["hits"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["id"].as_str().unwrap().to_owned())
        .collect();
    ids.sort();
    let mut expected: Vec<String> = (0..30_000)
        .filter(|i| i % 5_000 == 0)
        .map(|i: usize| i.to_string())
        .collect();
    expected.sort();
    assert_eq!(ids, expected);
    dev.terminate();
}
