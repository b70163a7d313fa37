//! A tonic server and client generated from the contract talk to each other over a real
//! loopback socket: unary calls and status codes.

use std::collections::BTreeMap;
use std::sync::Mutex;

use tokio::net::TcpListener;
use tokio_stream::wrappers::TcpListenerStream;
use tonic::transport::{Channel, Server};
use tonic::{Code, Request, Response, Status};
use vectron_proto::v1::collections_client::CollectionsClient;
use vectron_proto::v1::collections_server::{Collections, CollectionsServer};
use vectron_proto::v1::stats_client::StatsClient;
use vectron_proto::v1::stats_server::{Stats, StatsServer};
use vectron_proto::v1::{
    CollectionInfo, CollectionSpec, CollectionState, CoreStats, CoreStatsRequest,
    CoreStatsResponse, CreateCollectionRequest, CreateCollectionResponse,
    DescribeCollectionRequest, DropCollectionRequest, DropCollectionResponse,
    ListCollectionsRequest, ListCollectionsResponse, Metric,
};

/// A catalogue of collections kept in memory: enough behaviour to exercise every
/// Collections RPC and its error codes through the generated stubs.
#[derive(Debug, Default)]
struct Catalogue {
    collections: Mutex<BTreeMap<String, CollectionSpec>>,
}

fn info(spec: CollectionSpec) -> CollectionInfo {
    CollectionInfo {
        spec: Some(spec),
        state: CollectionState::Ready.into(),
        ..Default::default()
    }
}

#[tonic::async_trait]
impl Collections for Catalogue {
    async fn create(
        &self,
        request: Request<CreateCollectionRequest>,
    ) -> Result<Response<CreateCollectionResponse>, Status> {
        let spec = request
            .into_inner()
            .spec
            .ok_or_else(|| Status::invalid_argument("no spec"))?;
        if spec.metric() == Metric::Unspecified {
            return Err(Status::invalid_argument("metric is required"));
        }
        let mut collections = self.collections.lock().unwrap();
        if collections.contains_key(&spec.name) {
            return Err(Status::already_exists(format!(
                "collection {} exists",
                spec.name
            )));
        }
        collections.insert(spec.name.clone(), spec.clone());
        Ok(Response::new(CreateCollectionResponse {
            collection: Some(info(spec)),
        }))
    }

    async fn drop(
        &self,
        request: Request<DropCollectionRequest>,
    ) -> Result<Response<DropCollectionResponse>, Status> {
        let name = request.into_inner().name;
        match self.collections.lock().unwrap().remove(&name) {
            Some(_) => Ok(Response::new(DropCollectionResponse {})),
            None => Err(Status::not_found(format!("no collection {name}"))),
        }
    }

    async fn list(
        &self,
        _request: Request<ListCollectionsRequest>,
    ) -> Result<Response<ListCollectionsResponse>, Status> {
        let collections = self
            .collections
            .lock()
            .unwrap()
            .values()
            .cloned()
            .map(info)
            .collect();
        Ok(Response::new(ListCollectionsResponse { collections }))
    }

    async fn describe(
        &self,
        request: Request<DescribeCollectionRequest>,
    ) -> Result<Response<CollectionInfo>, Status> {
        let name = request.into_inner().name;
        let collections = self.collections.lock().unwrap();
        let spec = collections
            .get(&name)
            .cloned()
            .ok_or_else(|| Status::not_found(format!("no collection {name}")))?;
        Ok(Response::new(info(spec)))
    }

    async fn update(
        &self,
        request: Request<vectron_proto::v1::UpdateCollectionRequest>,
    ) -> Result<Response<CollectionInfo>, Status> {
        let request = request.into_inner();
        let mut collections = self.collections.lock().unwrap();
        let spec = collections
            .get_mut(&request.name)
            .ok_or_else(|| Status::not_found(format!("no collection {}", request.name)))?;
        if let Some(ef) = request.spec.and_then(|s| s.hnsw?.ef) {
            spec.hnsw.get_or_insert_default().ef = Some(ef);
        }
        Ok(Response::new(info(spec.clone())))
    }
}

/// Answers with one core per requested worker, echoing the worker id.
#[derive(Debug)]
struct OneCore;

#[tonic::async_trait]
impl Stats for OneCore {
    async fn cores(
        &self,
        request: Request<CoreStatsRequest>,
    ) -> Result<Response<CoreStatsResponse>, Status> {
        let worker_id = request.into_inner().worker_id;
        let core = CoreStats {
            worker_id,
            core: 0,
            driver: "io_uring".into(),
            ..Default::default()
        };
        Ok(Response::new(CoreStatsResponse {
            cores: vec![core],
            unreachable_workers: vec![],
        }))
    }
}

async fn serve() -> Channel {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(
        Server::builder()
            .add_service(CollectionsServer::new(Catalogue::default()))
            .add_service(StatsServer::new(OneCore))
            .serve_with_incoming(TcpListenerStream::new(listener)),
    );
    Channel::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
        .unwrap()
}

fn spec(name: &str) -> CollectionSpec {
    CollectionSpec {
        name: name.into(),
        dimension: 384,
        metric: Metric::Cosine.into(),
        shard_count: Some(2),
        ..Default::default()
    }
}

#[tokio::test]
async fn generated_client_and_server_talk() {
    let channel = serve().await;
    let mut collections = CollectionsClient::new(channel.clone());

    let created = collections
        .create(CreateCollectionRequest {
            spec: Some(spec("docs")),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(created.collection.unwrap().spec.unwrap(), spec("docs"));
    collections
        .create(CreateCollectionRequest {
            spec: Some(spec("alpha")),
        })
        .await
        .unwrap();

    let listed = collections
        .list(ListCollectionsRequest {})
        .await
        .unwrap()
        .into_inner();
    let names: Vec<String> = listed
        .collections
        .into_iter()
        .map(|c| c.spec.unwrap().name)
        .collect();
    assert_eq!(names, ["alpha", "docs"]);

    let described = collections
        .describe(DescribeCollectionRequest {
            name: "docs".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(described.state(), CollectionState::Ready);
    assert_eq!(described.spec.unwrap().shard_count, Some(2));

    collections
        .drop(DropCollectionRequest {
            name: "docs".into(),
        })
        .await
        .unwrap();

    let mut stats = StatsClient::new(channel);
    let cores = stats
        .cores(CoreStatsRequest {
            worker_id: "w1".into(),
        })
        .await
        .unwrap()
        .into_inner()
        .cores;
    assert_eq!(cores.len(), 1);
    assert_eq!(
        (cores[0].worker_id.as_str(), cores[0].driver.as_str()),
        ("w1", "io_uring")
    );
}

#[tokio::test]
async fn status_codes_and_messages_reach_the_client() {
    let mut collections = CollectionsClient::new(serve().await);
    collections
        .create(CreateCollectionRequest {
            spec: Some(spec("docs")),
        })
        .await
        .unwrap();

    let duplicate = collections
        .create(CreateCollectionRequest {
            spec: Some(spec("docs")),
        })
        .await
        .unwrap_err();
    assert_eq!(duplicate.code(), Code::AlreadyExists);
    assert_eq!(duplicate.message(), "collection docs exists");

    let unknown = collections
        .drop(DropCollectionRequest {
            name: "nope".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(unknown.code(), Code::NotFound);

    let no_metric = CollectionSpec {
        metric: Metric::Unspecified.into(),
        ..spec("x")
    };
    let refused = collections
        .create(CreateCollectionRequest {
            spec: Some(no_metric),
        })
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::InvalidArgument);
}
