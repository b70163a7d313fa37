//! Regression: a core that is indexing a backlog must keep serving its network. On
//! monoio 0.2.4's io_uring driver socket readiness is only collected when the runtime
//! parks, and a task that yields by waking itself runs again first, so a busy indexer
//! held every search (and every streamed batch) until the backlog was linked.

use tonic::transport::Channel;
use vectron_proto::core::v1::core_service_client::CoreServiceClient;
use vectron_proto::core::v1::shard_admin_client::ShardAdminClient;
use vectron_proto::core::v1::{
    OpenShardRequest, Point, SearchRequest, ShardAssignment, ShardRef, StatsRequest, UpsertRequest,
};
use vectron_proto::v1::{CollectionSpec, HnswConfig, Metric};

use crate::support::{self, Fixture};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn searches_are_answered_while_a_backlog_is_indexed() {
    let f = Fixture::load();
    let dir = support::tempdir();
    let worker = support::worker(dir.path(), 1);
    let mut core: CoreServiceClient<Channel> =
        CoreServiceClient::connect(support::core_url(&worker, 0))
            .await
            .unwrap();
    let mut spec = CollectionSpec::new("backlog", f.dim as u32, Metric::Cosine);
    // A slow build, so the backlog outlives the searches below by far.
    spec.hnsw = Some(HnswConfig {
        m: Some(32),
        ef_construction: Some(800),
        ef: None,
    });
    let assignment = ShardAssignment {
        spec: Some(spec),
        shard_id: 0,
        hash_range_start: 0,
        hash_range_end: u64::MAX,
        epoch: 1,
        ..Default::default()
    };
    ShardAdminClient::connect(support::core_url(&worker, 0))
        .await
        .unwrap()
        .open_shard(OpenShardRequest {
            assignment: Some(assignment),
        })
        .await
        .unwrap();
    let shard = Some(ShardRef {
        collection: "backlog".into(),
        shard_id: 0,
        epoch: 1,
    });
    let points = (0..f.base.len())
        .map(|i| Point {
            id: i.to_string(),
            vector: f.base[i].clone(),
            payload_json: vec![],
        })
        .collect();
    core.upsert(UpsertRequest {
        shard: shard.clone(),
        points,
        wait: None,
    })
    .await
    .unwrap();

    for q in f.queries.iter().take(20) {
        let request = SearchRequest {
            shard: shard.clone(),
            vector: q.clone(),
            k: 10,
            ef: Some(64),
            ..Default::default()
        };
        let hits = core.search(request).await.unwrap().into_inner().hits;
        assert_eq!(hits.len(), 10, "unindexed points are searched exactly");
    }
    let stats = core.stats(StatsRequest {}).await.unwrap().into_inner();
    let s = &stats.shards[0];
    assert_eq!(s.points, 2000);
    assert!(
        s.indexed_points < s.points,
        "the searches waited for the whole backlog to be indexed ({} of {})",
        s.indexed_points,
        s.points
    );
    worker.terminate();
}
