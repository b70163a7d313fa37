//! TLS: a client speaks to a real tonic server that serves TLS with a self-signed
//! certificate, as a gateway started with `--tls-cert` (tested end to end in the
//! workspace's `tests/integration/tls.rs`) or a TLS-terminating proxy does.

use std::time::Duration;

use tokio::net::TcpListener;
use tokio_stream::wrappers::TcpListenerStream;
use tonic::transport::{Identity, Server, ServerTlsConfig};
use tonic::{Request, Response, Status};
use vectron_client::api::collections_server::{Collections, CollectionsServer};
use vectron_client::api::{
    CollectionInfo, CreateCollectionRequest, CreateCollectionResponse, DescribeCollectionRequest,
    DropCollectionRequest, DropCollectionResponse, ListCollectionsRequest, ListCollectionsResponse,
};
use vectron_client::{Client, CollectionSpec, Error, Metric, Tls};

/// Answers `List` with one collection named `secure`.
#[derive(Debug)]
struct One;

#[tonic::async_trait]
impl Collections for One {
    async fn create(
        &self,
        _: Request<CreateCollectionRequest>,
    ) -> Result<Response<CreateCollectionResponse>, Status> {
        Err(Status::unimplemented("read-only"))
    }
    async fn drop(
        &self,
        _: Request<DropCollectionRequest>,
    ) -> Result<Response<DropCollectionResponse>, Status> {
        Err(Status::unimplemented("read-only"))
    }
    async fn list(
        &self,
        _: Request<ListCollectionsRequest>,
    ) -> Result<Response<ListCollectionsResponse>, Status> {
        Ok(Response::new(ListCollectionsResponse {
            collections: vec![CollectionInfo {
                spec: Some(CollectionSpec::new("secure", 3, Metric::Cosine)),
                ..Default::default()
            }],
        }))
    }
    async fn describe(
        &self,
        _: Request<DescribeCollectionRequest>,
    ) -> Result<Response<CollectionInfo>, Status> {
        Err(Status::not_found("no such collection"))
    }
    async fn update(
        &self,
        _: Request<vectron_client::UpdateCollectionRequest>,
    ) -> Result<Response<CollectionInfo>, Status> {
        Err(Status::not_found("no such collection"))
    }
}

/// A TLS server on a free loopback port with a fresh self-signed certificate for
/// `localhost` and `127.0.0.1`; returns its port and the certificate (PEM).
async fn serve_tls() -> (u16, String) {
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".into(), "127.0.0.1".into()])
        .expect("a self-signed certificate");
    let cert_pem = cert.cert.pem();
    let identity = Identity::from_pem(&cert_pem, cert.signing_key.serialize_pem());
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let server = Server::builder()
        .tls_config(ServerTlsConfig::new().identity(identity))
        .expect("server TLS settings")
        .add_service(CollectionsServer::new(One))
        .serve_with_incoming(TcpListenerStream::new(listener));
    tokio::spawn(server);
    (port, cert_pem)
}

fn names(collections: &[CollectionInfo]) -> Vec<String> {
    collections
        .iter()
        .map(|c| c.spec.as_ref().unwrap().name.clone())
        .collect()
}

#[tokio::test]
async fn an_https_client_trusting_the_ca_connects_and_calls() {
    let (port, ca) = serve_tls().await;
    let client = Client::builder(format!("https://127.0.0.1:{port}"))
        .tls(Tls::new().ca_certificate_pem(ca.clone()))
        .connect()
        .await
        .expect("TLS handshake with the trusted certificate");
    assert_eq!(names(&client.list_collections().await.unwrap()), ["secure"]);

    // No scheme: TLS settings make it https; the name checked can be set apart from
    // the address dialled.
    let client = Client::builder(format!("127.0.0.1:{port}"))
        .tls(Tls::new().ca_certificate_pem(ca).domain("localhost"))
        .connect()
        .await
        .expect("TLS by settings, verified as localhost");
    assert_eq!(names(&client.list_collections().await.unwrap()), ["secure"]);
}

#[tokio::test]
async fn an_untrusted_certificate_is_refused() {
    let (port, _) = serve_tls().await;
    // System roots only: the self-signed certificate is not among them.
    let outcome = async {
        Client::builder(format!("https://127.0.0.1:{port}"))
            .connect_timeout(Duration::from_secs(5))
            .connect()
            .await?
            .list_collections()
            .await
    }
    .await;
    let err = outcome.expect_err("an untrusted certificate was accepted");
    assert!(matches!(err, Error::Connect { .. }), "{err}");

    // Another self-signed certificate as the CA: refused as well.
    let (_, other_ca) = serve_tls().await;
    let outcome = async {
        Client::builder(format!("https://127.0.0.1:{port}"))
            .tls(Tls::new().ca_certificate_pem(other_ca))
            .connect()
            .await?
            .list_collections()
            .await
    }
    .await;
    let err = outcome.expect_err("a certificate of another CA was accepted");
    assert!(matches!(err, Error::Connect { .. }), "{err}");

    // The right CA but the wrong name.
    let (port, ca) = serve_tls().await;
    let outcome = async {
        Client::builder(format!("https://127.0.0.1:{port}"))
            .tls(Tls::new().ca_certificate_pem(ca).domain("vectron.example"))
            .connect()
            .await?
            .list_collections()
            .await
    }
    .await;
    let err = outcome.expect_err("a certificate for another name was accepted");
    assert!(matches!(err, Error::Connect { .. }), "{err}");
    let chain = format!("{:?}", std::error::Error::source(&err));
    assert!(chain.contains("NotValidForName"), "{chain}");
}

#[tokio::test]
async fn plaintext_and_tls_are_never_mixed() {
    let (port, ca) = serve_tls().await;
    let plain = async {
        Client::builder(format!("http://127.0.0.1:{port}"))
            .connect()
            .await?
            .list_collections()
            .await
    }
    .await;
    assert!(plain.is_err(), "plaintext HTTP/2 reached a TLS server");

    let err = Client::builder(format!("http://127.0.0.1:{port}"))
        .tls(Tls::new().ca_certificate_pem(ca))
        .connect_lazy()
        .unwrap_err();
    assert!(matches!(err, Error::TlsOverPlaintext { .. }), "{err}");
}
