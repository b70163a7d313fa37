//! Retries: `UNAVAILABLE` is retried on idempotent calls only, with a bounded count.
//! The server here is scripted to fail a set number of times, which a real cluster
//! cannot do on demand.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use tokio::net::TcpListener;
use tokio_stream::wrappers::TcpListenerStream;
use tonic::transport::Server;
use tonic::{Code, Request, Response, Status};
use vectron_client::api::collections_server::{Collections, CollectionsServer};
use vectron_client::api::{
    CollectionInfo, CreateCollectionRequest, CreateCollectionResponse, DescribeCollectionRequest,
    DropCollectionRequest, DropCollectionResponse, ListCollectionsRequest, ListCollectionsResponse,
};
use vectron_client::{Client, CollectionSpec, Error, Metric};

/// Fails the first `failures` calls of every method with `UNAVAILABLE`.
#[derive(Debug, Clone)]
struct Flaky {
    failures: u32,
    calls: Arc<AtomicU32>,
}

impl Flaky {
    fn call(&self) -> Result<(), Status> {
        let n = self.calls.fetch_add(1, Ordering::SeqCst);
        if n < self.failures {
            Err(Status::unavailable("shard 3 has no replica"))
        } else {
            Ok(())
        }
    }
}

#[tonic::async_trait]
impl Collections for Flaky {
    async fn create(
        &self,
        r: Request<CreateCollectionRequest>,
    ) -> Result<Response<CreateCollectionResponse>, Status> {
        self.call()?;
        let spec = r.into_inner().spec;
        Ok(Response::new(CreateCollectionResponse {
            collection: Some(CollectionInfo {
                spec,
                ..Default::default()
            }),
        }))
    }
    async fn drop(
        &self,
        _: Request<DropCollectionRequest>,
    ) -> Result<Response<DropCollectionResponse>, Status> {
        self.call()?;
        Ok(Response::new(DropCollectionResponse {}))
    }
    async fn list(
        &self,
        _: Request<ListCollectionsRequest>,
    ) -> Result<Response<ListCollectionsResponse>, Status> {
        self.call()?;
        Ok(Response::new(ListCollectionsResponse {
            collections: vec![],
        }))
    }
    async fn describe(
        &self,
        _: Request<DescribeCollectionRequest>,
    ) -> Result<Response<CollectionInfo>, Status> {
        self.call()?;
        Err(Status::not_found("no collection docs"))
    }
    async fn update(
        &self,
        _: Request<vectron_client::UpdateCollectionRequest>,
    ) -> Result<Response<CollectionInfo>, Status> {
        self.call()?;
        Err(Status::not_found("no collection docs"))
    }
}

async fn serve(failures: u32) -> (String, Arc<AtomicU32>) {
    let calls = Arc::new(AtomicU32::new(0));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let service = CollectionsServer::new(Flaky {
        failures,
        calls: calls.clone(),
    });
    tokio::spawn(
        Server::builder()
            .add_service(service)
            .serve_with_incoming(TcpListenerStream::new(listener)),
    );
    (addr, calls)
}

fn client(addr: &str, retries: u32) -> Client {
    Client::builder(addr)
        .retries(retries, Duration::from_millis(1))
        .connect_lazy()
        .expect("valid endpoint")
}

#[tokio::test]
async fn idempotent_calls_retry_unavailable_until_they_succeed() {
    let (addr, calls) = serve(2).await;
    let listed = client(&addr, 3)
        .list_collections()
        .await
        .expect("third attempt succeeds");
    assert!(listed.is_empty());
    assert_eq!(calls.load(Ordering::SeqCst), 3);
}

#[tokio::test]
async fn retries_are_bounded() {
    let (addr, calls) = serve(10).await;
    let err = client(&addr, 2).list_collections().await.unwrap_err();
    assert!(
        matches!(&err, Error::Unavailable(m) if m == "shard 3 has no replica"),
        "{err}"
    );
    assert_eq!(calls.load(Ordering::SeqCst), 3, "one call and two retries");
}

#[tokio::test]
async fn non_idempotent_calls_are_not_retried() {
    let (addr, calls) = serve(1).await;
    let spec = CollectionSpec::new("docs", 8, Metric::Cosine);
    let err = client(&addr, 5).create_collection(spec).await.unwrap_err();
    assert_eq!(err.code(), Code::Unavailable);
    assert_eq!(calls.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn other_errors_are_not_retried_and_keep_their_code() {
    let (addr, calls) = serve(0).await;
    let err = client(&addr, 5)
        .describe_collection("docs")
        .await
        .unwrap_err();
    assert!(
        matches!(&err, Error::NotFound(m) if m == "no collection docs"),
        "{err}"
    );
    assert_eq!(calls.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn an_unreachable_gateway_is_a_connect_error() {
    // Bind then drop a listener: the port is free and nothing answers.
    let addr = TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap()
        .local_addr()
        .unwrap();
    let err = Client::builder(addr.to_string())
        .connect_timeout(Duration::from_secs(2))
        .connect()
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Connect { .. }), "{err}");
    assert_eq!(err.code(), Code::Unavailable);
    assert!(matches!(
        Client::builder("http://[bad").connect_lazy().unwrap_err(),
        Error::InvalidEndpoint { .. }
    ));
}
