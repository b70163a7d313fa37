//! Streamed search on a cluster whose two shards live on two workers, one of them
//! frozen (SIGSTOP): the other shard's hits come first, the frozen one's once it runs
//! again, and a deadline ends the stream as documented (the last event names the
//! missing shard when partial results are allowed, `DEADLINE_EXCEEDED` after the
//! partial events when not).

use std::collections::HashSet;
use std::time::Duration;

use serde_json::{Value, json};
use tokio_stream::StreamExt as _;
use vectron_client::{
    Client, CollectionInfo, CollectionSpec, Metric, Point, ReadConsistency, SearchRequest,
    SearchResponse, payload,
};

use crate::support::{self, Cluster, Fixture, Http};

/// How long the streams below wait for the frozen shard: well inside the 1.5 s after
/// which the test cluster's control plane marks a silent worker down (each frozen
/// stretch here stays under it, so the frozen shard is late, not unavailable).
const TIMEOUT_MS: u32 = 400;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frozen_shard_is_streamed_last_and_a_deadline_ends_the_stream_as_documented() {
    let f = Fixture::load();
    let cluster = Cluster::start(2);
    let client = Client::builder(support::grpc_addr(&cluster.gateway))
        .timeout(Some(Duration::from_secs(30)))
        .read_consistency(ReadConsistency::Linearizable)
        .connect()
        .await
        .unwrap();
    let info = two_shards_on_two_workers(&client, f.dim).await;
    let points: Vec<Point> = (0..f.base.len())
        .map(|r| {
            Point::new(r.to_string(), f.base[r].clone())
                .with_payload(payload::to_struct(f.payloads[r].clone()).unwrap())
        })
        .collect();
    for batch in points.chunks(500) {
        client.upsert("streamed", batch.to_vec()).await.unwrap();
    }
    let owner = |shard: usize| info.shards[shard].replicas[0].worker_id.clone();
    let frozen_shard = info.shards[1].shard_id;
    let frozen = cluster.worker_index(&owner(1));

    let request = SearchRequest::new("streamed", f.queries[0].clone(), 10)
        .with_ef(64)
        .with_payload();
    let unary = client.search(request.clone()).await.unwrap();

    // Frozen: the other shard's hits are sent, then nothing until the worker runs.
    cluster.pause_worker(frozen);
    let mut events = client.search_stream(request.clone()).await.unwrap();
    let first = events.next().await.unwrap().unwrap();
    assert!(!first.done);
    assert_eq!((first.shards_answered, first.shards_total), (1, 2));
    let early = first.result.unwrap();
    assert_eq!(early.hits.len(), 10, "one shard holds 10 hits and more");
    assert!(early.missing_shards.is_empty());
    let waited = tokio::time::timeout(Duration::from_millis(300), events.next()).await;
    assert!(waited.is_err(), "an event before the frozen shard answered");
    cluster.resume_worker(frozen);
    let last = events.last().await.unwrap();
    assert!(last.done);
    assert_eq!((last.shards_answered, last.shards_total), (2, 2));
    assert_eq!(last.result.unwrap(), unary);

    // Past the deadline, with partial results allowed: the last event names the shard.
    whole_again(&client, &request, &unary).await;
    cluster.pause_worker(frozen);
    let mut partial = request.clone();
    partial.allow_partial_results = true;
    partial.timeout_ms = Some(TIMEOUT_MS);
    let events: Vec<_> = client
        .search_stream(partial)
        .await
        .unwrap()
        .collect::<Vec<_>>()
        .await;
    cluster.resume_worker(frozen);
    let events: Vec<_> = events.into_iter().map(Result::unwrap).collect();
    assert_eq!(events.len(), 2, "{events:?}");
    let last = &events[1];
    assert!(last.done);
    assert_eq!(last.shards_answered, 1);
    let result = last.result.clone().unwrap();
    assert_eq!(result.missing_shards, [frozen_shard]);
    assert_eq!(
        Some(result),
        events[0].result.clone().map(|mut r| {
            r.missing_shards = vec![frozen_shard];
            r
        })
    );

    // Without: the partial event, then DEADLINE_EXCEEDED.
    whole_again(&client, &request, &unary).await;
    cluster.pause_worker(frozen);
    let mut strict = request.clone();
    strict.timeout_ms = Some(TIMEOUT_MS);
    let events = client
        .search_stream(strict)
        .await
        .unwrap()
        .collect::<Vec<_>>()
        .await;
    cluster.resume_worker(frozen);
    assert_eq!(events.len(), 2, "{events:?}");
    assert!(!events[0].as_ref().unwrap().done);
    let error = events[1].as_ref().unwrap_err();
    assert_eq!(error.code(), tonic::Code::DeadlineExceeded, "{error}");

    // HTTP: the partial event's line, then the error's.
    whole_again(&client, &request, &unary).await;
    cluster.pause_worker(frozen);
    let http = Http::new(&support::http_addr(&cluster.gateway));
    let (status, text) = http
        .send(
            "POST",
            "/v1/collections/streamed/points/search/stream",
            Some("application/json"),
            json!({"vector": f.queries[0], "k": 10, "timeout_ms": TIMEOUT_MS,
                "consistency": "linearizable"})
            .to_string()
            .into_bytes(),
        )
        .await;
    cluster.resume_worker(frozen);
    assert_eq!(status, 200, "{text}");
    let lines: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2, "{text}");
    assert_eq!(lines[0]["shards_answered"], 1);
    assert_eq!(lines[0]["done"], false);
    assert_eq!(lines[1]["error"]["code"], "DEADLINE_EXCEEDED", "{text}");

    whole_again(&client, &request, &unary).await;
    cluster.terminate();
}

/// Waits until the streamed search answers whole again: a worker frozen for longer
/// than the control plane's worker timeout (1.5 s in these tests) is marked down until
/// its next heartbeat.
async fn whole_again(client: &Client, request: &SearchRequest, unary: &SearchResponse) {
    for _ in 0..100 {
        if let Ok(stream) = client.search_stream(request.clone()).await
            && let Ok(last) = stream.last().await
        {
            assert_eq!(last.result.as_ref(), Some(unary));
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the collection does not answer whole again");
}

/// The collection "streamed", with its two shards on the two workers: made once both
/// workers are live (until the control plane has heard from both, it places every
/// shard on the one it knows).
async fn two_shards_on_two_workers(client: &Client, dim: usize) -> CollectionInfo {
    let mut spec = CollectionSpec::new("streamed", dim as u32, Metric::Cosine);
    spec.shard_count = Some(2);
    for _ in 0..100 {
        if let Ok(info) = client.create_collection(spec.clone()).await {
            let owners: HashSet<&str> = info
                .shards
                .iter()
                .map(|s| s.replicas[0].worker_id.as_str())
                .collect();
            if owners.len() == 2 {
                return info;
            }
            client.drop_collection("streamed").await.unwrap();
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the two shards were not placed on two workers");
}
