//! Bad input gets the documented status code and a message a person can act on.

use tonic::Code;
use vectron_proto::control::v1 as ctl;
use vectron_proto::v1 as api;

use crate::support::{Cluster, TestWorker, spec};

fn code(result: Result<impl std::fmt::Debug, vectron_control::ClientError>) -> (Code, String) {
    let error = result.unwrap_err();
    (error.code().unwrap(), error.to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_collection_requests_get_typed_errors() {
    let cluster = Cluster::start(1).await;
    cluster.leader().await;
    let client = cluster.client();

    let (c, message) = code(client.create_collection(spec("docs", None)).await);
    assert_eq!(c, Code::FailedPrecondition, "no worker yet: {message}");
    assert!(message.contains("no live worker"), "{message}");

    TestWorker::register(client.clone(), "w1", 2, 19000).await;
    client.create_collection(spec("docs", None)).await.unwrap();
    let (c, message) = code(client.create_collection(spec("docs", None)).await);
    assert_eq!(c, Code::AlreadyExists, "{message}");

    for (name, bad, expected) in [
        (
            "dimension 0",
            api::CollectionSpec {
                dimension: 0,
                ..spec("a", None)
            },
            "dimension",
        ),
        (
            "dimension 65537",
            api::CollectionSpec {
                dimension: 65_537,
                ..spec("a", None)
            },
            "65536",
        ),
        (
            "unknown metric",
            api::CollectionSpec {
                metric: 9,
                ..spec("a", None)
            },
            "metric",
        ),
        (
            "no metric",
            api::CollectionSpec {
                metric: 0,
                ..spec("a", None)
            },
            "metric",
        ),
        ("zero shards", spec("a", Some(0)), "shard_count"),
        ("bad name", spec("bad name", None), "not allowed"),
    ] {
        let (c, message) = code(client.create_collection(bad).await);
        assert_eq!(c, Code::InvalidArgument, "{name}: {message}");
        assert!(message.contains(expected), "{name}: {message}");
    }

    let (c, message) = code(
        client
            .create_collection(api::CollectionSpec {
                replication_factor: Some(2),
                ..spec("a", None)
            })
            .await,
    );
    assert_eq!(c, Code::FailedPrecondition, "{message}");
    assert!(
        message.contains("replication factor 2 needs at least 2 live workers"),
        "{message}"
    );

    let (c, _) = code(client.describe_collection("missing").await);
    assert_eq!(c, Code::NotFound);
    let (c, _) = code(client.drop_collection("missing").await);
    assert_eq!(c, Code::NotFound);
    let (c, _) = code(client.routing(Some("missing")).await);
    assert_eq!(c, Code::NotFound);
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_worker_requests_get_typed_errors() {
    let cluster = Cluster::start(1).await;
    cluster.leader().await;
    let client = cluster.client();

    let (c, message) = code(
        client
            .heartbeat(ctl::HeartbeatRequest {
                worker_id: "ghost".into(),
                cores: Vec::new(),
            })
            .await,
    );
    assert_eq!(c, Code::NotFound, "{message}");
    assert!(message.contains("register again"), "{message}");

    let (c, message) = code(
        client
            .register_worker(ctl::RegisterWorkerRequest {
                worker_id: "w1".into(),
                data_host: "127.0.0.1".into(),
                cores: Vec::new(),
                admin_address: String::new(),
                cluster_id: String::new(),
                zone: String::new(),
            })
            .await,
    );
    assert_eq!(c, Code::InvalidArgument, "{message}");

    let (c, message) = code(client.join_cluster(0, "127.0.0.1:1").await);
    assert_eq!(c, Code::InvalidArgument, "{message}");
    let (c, message) = code(client.change_membership(&[], false).await);
    assert_eq!(c, Code::InvalidArgument, "{message}");
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_caller_without_the_cluster_key_is_refused_on_every_service() {
    let cluster = Cluster::start(1).await;
    cluster.leader().await;
    let keyless = vectron_control::ControlClient::new(cluster.addresses()).unwrap();
    let (c, message) = code(keyless.cluster_status().await);
    assert_eq!(c, Code::Unauthenticated, "{message}");
    assert!(message.contains("x-vectron-cluster-key"), "{message}");
    let other = vectron_auth::ClusterKey::generate().unwrap();
    let (c, message) = code(
        keyless
            .clone()
            .with_cluster_key(Some(&other))
            .register_worker(ctl::RegisterWorkerRequest::default())
            .await,
    );
    assert_eq!(c, Code::Unauthenticated, "another cluster's key: {message}");
    assert!(message.contains("not this cluster's"), "{message}");

    // Raft between control nodes goes through the same gate.
    let address = format!("http://{}", cluster.addresses()[0]);
    let mut raft = ctl::raft_transport_client::RaftTransportClient::connect(address)
        .await
        .unwrap();
    let refused = raft.vote(ctl::RaftMessage::default()).await.unwrap_err();
    assert_eq!(refused.code(), Code::Unauthenticated, "{refused:?}");

    // The key lets the same calls through.
    cluster.client().cluster_status().await.unwrap();
}
