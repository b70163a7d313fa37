//! TLS on a real `vectron dev --tls-cert --tls-key`: the SDK connects with the CA and
//! works end to end, plaintext to either TLS port fails, HTTPS answers, and a certificate
//! replaced on disk is served without a restart.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustls::pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use vectron_client::{Client, CollectionSpec, Metric, Point, SearchRequest, Tls};

use crate::support;

/// A fresh self-signed certificate for `localhost` and `127.0.0.1` (its own CA), written
/// to `cert.pem` and `key.pem` in `dir`; returns the certificate's PEM.
fn write_certificate(dir: &Path) -> String {
    let made = rcgen::generate_simple_self_signed(vec!["localhost".into(), "127.0.0.1".into()])
        .expect("a self-signed certificate");
    // The key first: a reload that sees the new certificate finds its key there.
    std::fs::write(dir.join("key.pem"), made.signing_key.serialize_pem()).unwrap();
    std::fs::write(dir.join("cert.pem"), made.cert.pem()).unwrap();
    made.cert.pem()
}

async fn client(addr: &str, ca: &str) -> Result<Client, vectron_client::Error> {
    Client::builder(format!("https://{addr}"))
        .tls(
            Tls::new()
                .ca_certificate_pem(ca.to_owned())
                .domain("localhost"),
        )
        .connect_timeout(Duration::from_secs(5))
        .retries(0, Duration::from_millis(10))
        .connect()
        .await
}

/// `GET /healthz` over TLS, trusting `ca`: the status line, and the certificate served.
async fn https_health(addr: &str, ca: &str) -> std::io::Result<(String, CertificateDer<'static>)> {
    let mut roots = rustls::RootCertStore::empty();
    let ca = rustls::pki_types::pem::PemObject::from_pem_slice(ca.as_bytes())
        .map_err(std::io::Error::other)?;
    roots.add(ca).map_err(std::io::Error::other)?;
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(std::io::Error::other)?
    .with_root_certificates(roots)
    .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tcp = tokio::net::TcpStream::connect(addr).await?;
    let name = ServerName::try_from("localhost").unwrap();
    let mut tls = connector.connect(name, tcp).await?;
    let served = tls.get_ref().1.peer_certificates().unwrap()[0].clone();
    tls.write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .await?;
    let mut answer = Vec::new();
    tls.read_to_end(&mut answer).await?;
    let answer = String::from_utf8_lossy(&answer);
    Ok((answer.lines().next().unwrap_or("").to_owned(), served))
}

/// What a plaintext HTTP request to `addr` gets back (nothing, from a TLS port).
async fn plaintext_http(addr: &str) -> String {
    let mut tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let _ = tcp
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .await;
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), tcp.read_to_end(&mut answer)).await;
    String::from_utf8_lossy(&answer).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_gateway_serves_tls_on_both_doors_and_reloads_its_certificate() {
    let dir = support::tempdir();
    let certs = dir.path().join("certs");
    std::fs::create_dir(&certs).unwrap();
    let first = write_certificate(&certs);
    let cert = certs.join("cert.pem");
    let key = certs.join("key.pem");
    let dev = support::dev_with(
        &dir.path().join("data"),
        &[
            "--cores",
            "1",
            "--tls-cert",
            cert.to_str().unwrap(),
            "--tls-key",
            key.to_str().unwrap(),
        ],
    );
    let grpc = support::grpc_addr(&dev);
    let http = support::http_addr(&dev);

    // The SDK, trusting the CA, works end to end.
    let secure = client(&grpc, &first).await.expect("a TLS connection");
    secure
        .create_collection(CollectionSpec::new("docs", 4, Metric::Cosine))
        .await
        .unwrap();
    let points: Vec<Point> = (0..4u8)
        .map(|i| Point::new(format!("p{i}"), vec![1.0, f32::from(i), 0.5, 0.25]))
        .collect();
    secure.upsert("docs", points).await.unwrap();
    let found = secure
        .search(SearchRequest::new("docs", vec![1.0, 0.0, 0.5, 0.25], 2))
        .await
        .unwrap();
    assert_eq!(found.hits[0].id, "p0");

    // Plaintext to either port gets nothing.
    let plain = Client::builder(format!("http://{grpc}"))
        .connect_timeout(Duration::from_secs(5))
        .retries(0, Duration::from_millis(10))
        .connect()
        .await;
    let outcome = match plain {
        Ok(c) => c.list_collections().await.map(|_| ()),
        Err(e) => Err(e),
    };
    assert!(
        outcome.is_err(),
        "plaintext gRPC to the TLS port was answered"
    );
    let answer = plaintext_http(&http).await;
    assert!(
        !answer.contains("200"),
        "plaintext HTTP was answered: {answer}"
    );
    let (status, served) = https_health(&http, &first).await.unwrap();
    assert!(status.starts_with("HTTP/1.1 200"), "{status}");

    // A renewed certificate on disk is served within a few seconds, with no restart: a
    // client trusting only the new one connects, one trusting only the old one does not.
    tokio::time::sleep(Duration::from_millis(50)).await;
    let second = write_certificate(&certs);
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        match https_health(&http, &second).await {
            Ok((status, now_served)) => {
                assert!(status.starts_with("HTTP/1.1 200"), "{status}");
                assert_ne!(now_served, served);
                break;
            }
            Err(e) => assert!(Instant::now() < deadline, "never reloaded: {e}"),
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let renewed = client(&grpc, &second)
        .await
        .expect("the renewed certificate");
    assert_eq!(renewed.count("docs", None).await.unwrap(), 4);
    assert!(
        https_health(&http, &first).await.is_err(),
        "the old certificate is still served"
    );
    dev.terminate();
}
