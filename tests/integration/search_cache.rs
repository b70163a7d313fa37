//! A collection's search cache settings (`Collections.Update`, `spec.search_cache`)
//! reach every gateway: two gateways on one cluster, writes through one and searches
//! through the other, whose own TTL is long enough that only the collection's settings
//! explain what it answers.

use std::time::{Duration, Instant};

use vectron_client::{
    Client, CollectionSpec, Metric, Point, SearchCacheSettings, SearchRequest, SearchResponse,
};

use crate::support::{self, Cluster, Fixture, Process};

/// The gateways' own TTL: far longer than the test.
const GATEWAY_TTL_MS: &str = "600000";

fn gateway(cluster: &Cluster) -> Process {
    cluster.start_gateway(&["--search-cache-ttl-ms", GATEWAY_TTL_MS])
}

async fn client(p: &Process) -> Client {
    Client::builder(support::grpc_addr(p))
        .timeout(Some(Duration::from_secs(30)))
        .connect()
        .await
        .unwrap()
}

fn ids(r: &SearchResponse) -> Vec<&str> {
    r.hits.iter().map(|h| h.id.as_str()).collect()
}

/// Writes through `writer` a point equal to the query, then searches through
/// `reader`: whether the answer shows it.
async fn sees_a_new_write(reader: &Client, writer: &Client, query: &[f32], id: &str) -> bool {
    let request = SearchRequest::new("cached", query.to_vec(), 50);
    reader.search(request.clone()).await.unwrap();
    writer
        .upsert("cached", vec![Point::new(id, query.to_vec())])
        .await
        .unwrap();
    let after = reader.search(request).await.unwrap();
    ids(&after).contains(&id)
}

/// Repeats `probe` (with a fresh id each time) until it says `wanted`, for at most 10 s.
async fn until(what: &str, wanted: bool, mut probe: impl AsyncFnMut(String) -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut n = 0;
    while Instant::now() < deadline {
        n += 1;
        if probe(format!("{what}-{n}")).await == wanted {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{what}: still not so after 10 s");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_collections_cache_settings_reach_every_gateway() {
    let f = Fixture::load();
    let cluster = Cluster::start(1);
    let (reader_gw, writer_gw) = (gateway(&cluster), gateway(&cluster));
    let (reader, writer) = (client(&reader_gw).await, client(&writer_gw).await);
    let mut spec = CollectionSpec::new("cached", f.dim as u32, Metric::Cosine);
    spec.shard_count = Some(1);
    let mut created = None;
    for _ in 0..100 {
        if let Ok(info) = writer.create_collection(spec.clone()).await {
            created = Some(info);
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let created = created.expect("the collection was created");
    assert_eq!(
        created.spec.unwrap().search_cache,
        Some(SearchCacheSettings {
            enabled: Some(true),
            ttl_ms: Some(0)
        })
    );
    let points: Vec<Point> = (0..300)
        .map(|r| Point::new(r.to_string(), f.base[r].clone()))
        .collect();
    writer.upsert("cached", points).await.unwrap();

    // By default the reader caches: a write through the other gateway goes unseen.
    assert!(!sees_a_new_write(&reader, &writer, &f.queries[0], "default").await);

    // Cache off, set through the writer: the reader computes every search once its
    // routing has the setting.
    let info = writer
        .set_search_cache(
            "cached",
            SearchCacheSettings {
                enabled: Some(false),
                ttl_ms: None,
            },
        )
        .await
        .unwrap();
    assert_eq!(
        info.spec.unwrap().search_cache.unwrap().enabled,
        Some(false)
    );
    until("off", true, async |id| {
        sees_a_new_write(&reader, &writer, &f.queries[1], &id).await
    })
    .await;
    assert!(sees_a_new_write(&reader, &writer, &f.queries[1], "off-again").await);

    // On again, for 300 ms: cached, and served no longer than that.
    writer
        .set_search_cache(
            "cached",
            SearchCacheSettings {
                enabled: Some(true),
                ttl_ms: Some(300),
            },
        )
        .await
        .unwrap();
    until("brief", false, async |id| {
        sees_a_new_write(&reader, &writer, &f.queries[2], &id).await
    })
    .await;
    let request = SearchRequest::new("cached", f.queries[2].clone(), 50);
    let stale = reader.search(request.clone()).await.unwrap();
    writer
        .upsert("cached", vec![Point::new("late", f.queries[2].clone())])
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(700)).await;
    let fresh = reader.search(request).await.unwrap();
    assert!(!ids(&stale).contains(&"late"));
    assert!(
        ids(&fresh).contains(&"late"),
        "the answer outlived the collection's TTL"
    );

    // Refused past an hour; shown by describe in the CLI.
    let refused = writer
        .set_search_cache(
            "cached",
            SearchCacheSettings {
                enabled: None,
                ttl_ms: Some(3_600_001),
            },
        )
        .await
        .unwrap_err();
    assert_eq!(refused.code(), tonic::Code::InvalidArgument, "{refused}");
    let addr = format!("http://{}", support::grpc_addr(&reader_gw));
    let cli = support::run_cli(&["collections", "describe", "cached", "--addr", &addr]);
    assert!(cli.status.success(), "{cli:?}");
    let text = String::from_utf8_lossy(&cli.stdout);
    assert!(text.contains("search cache  on, for 300 ms"), "{text}");
    let cli = support::run_cli(&[
        "collections",
        "update",
        "cached",
        "--search-cache",
        "off",
        "--addr",
        &addr,
    ]);
    assert!(cli.status.success(), "{cli:?}");
    assert!(
        String::from_utf8_lossy(&cli.stdout).contains("search cache  off"),
        "{cli:?}"
    );
    reader_gw.terminate();
    writer_gw.terminate();
    cluster.terminate();
}
