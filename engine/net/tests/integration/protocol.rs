//! The bytes on the wire, seen through a raw h2 client: response shapes, trailers-only
//! errors, percent-encoding, and requests no gRPC client library would send.

use bytes::{Bytes, BytesMut};
use http::{HeaderMap, StatusCode};
use prost::Message;
use tokio::net::TcpStream;
use vectron_net::{Code, ServerConfig};

use crate::drivers;
use crate::harness::{Driver, TestServer};
use crate::netcheck::{Chunk, EchoReply, EchoRequest, FailRequest, RangeRequest, StallRequest};
use crate::service::{ECHO, FAIL, RANGE, STALL};

const GRPC: (&str, &str) = ("content-type", "application/grpc");

struct RawResponse {
    status: StatusCode,
    headers: HeaderMap,
    /// The response headers carried END_STREAM.
    trailers_only: bool,
    body: Bytes,
    trailers: Option<HeaderMap>,
}

impl RawResponse {
    /// `grpc-status` and `grpc-message` of a trailers-only response.
    fn immediate_status(&self) -> (String, String) {
        assert_eq!(self.status, StatusCode::OK);
        assert!(
            self.trailers_only,
            "expected a trailers-only response: {:?}",
            self.headers
        );
        assert_eq!(self.headers["content-type"], "application/grpc");
        let header = |name| {
            self.headers
                .get(name)
                .map_or("", |v| v.to_str().unwrap())
                .to_owned()
        };
        (header("grpc-status"), header("grpc-message"))
    }
}

/// A gRPC message with its 5-byte prefix.
fn framed(message: &impl Message) -> Vec<u8> {
    let body = message.encode_to_vec();
    let mut out = vec![0];
    out.extend_from_slice(&u32::try_from(body.len()).unwrap().to_be_bytes());
    out.extend_from_slice(&body);
    out
}

async fn raw_call(
    server: &TestServer,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> RawResponse {
    let tcp = TcpStream::connect(server.addr).await.unwrap();
    let (send, connection) = h2::client::handshake(tcp).await.unwrap();
    tokio::spawn(async move {
        let _ = connection.await;
    });
    let mut send = send.ready().await.unwrap();
    let mut request = http::Request::builder()
        .method(method)
        .uri(format!("{}{path}", server.url()));
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let (response, mut stream) = send.send_request(request.body(()).unwrap(), false).unwrap();
    // The server may already have answered and reset the stream.
    let _ = stream.send_data(Bytes::copy_from_slice(body), true);
    let (parts, mut body) = response.await.unwrap().into_parts();
    let trailers_only = body.is_end_stream();
    let mut data = BytesMut::new();
    while let Some(chunk) = body.data().await {
        let chunk = chunk.unwrap();
        let _ = body.flow_control().release_capacity(chunk.len());
        data.extend_from_slice(&chunk);
    }
    let trailers = body.trailers().await.unwrap();
    RawResponse {
        status: parts.status,
        headers: parts.headers,
        trailers_only,
        body: data.freeze(),
        trailers,
    }
}

drivers!(
    success_and_error_responses_have_the_grpc_shape,
    |driver: Driver| async move {
        let server = TestServer::start(driver, ServerConfig::default());

        let request = EchoRequest {
            text: "wire".into(),
            ..EchoRequest::default()
        };
        let ok = raw_call(
            &server,
            "POST",
            ECHO,
            &[GRPC, ("te", "trailers")],
            &framed(&request),
        )
        .await;
        assert_eq!(ok.status, StatusCode::OK);
        assert!(!ok.trailers_only);
        assert_eq!(ok.headers["content-type"], "application/grpc");
        assert!(
            ok.headers.get("grpc-status").is_none(),
            "status belongs in the trailers"
        );
        let (prefix, message) = ok.body.split_at(5);
        assert_eq!(prefix[0], 0, "uncompressed");
        assert_eq!(
            u32::from_be_bytes(prefix[1..].try_into().unwrap()) as usize,
            message.len()
        );
        assert_eq!(EchoReply::decode(message).unwrap().text, "wire");
        let trailers = ok.trailers.expect("trailers");
        assert_eq!(trailers["grpc-status"], "0");
        assert!(trailers.get("grpc-message").is_none());

        let request = FailRequest {
            code: 5,
            message: "é 100%\n".into(),
        };
        let failed = raw_call(&server, "POST", FAIL, &[GRPC], &framed(&request)).await;
        assert_eq!(
            failed.immediate_status(),
            ("5".into(), "%C3%A9 100%25%0A".into())
        );
        assert!(failed.body.is_empty());
    }
);

drivers!(
    requests_that_are_not_grpc_get_http_errors,
    |driver: Driver| async move {
        let server = TestServer::start(driver, ServerConfig::default());
        let body = framed(&EchoRequest::default());
        let get = raw_call(&server, "GET", ECHO, &[GRPC], &[]).await;
        assert_eq!(get.status, StatusCode::METHOD_NOT_ALLOWED);
        let json = raw_call(
            &server,
            "POST",
            ECHO,
            &[("content-type", "application/json")],
            &body,
        )
        .await;
        assert_eq!(json.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
        let grpc_json = raw_call(
            &server,
            "POST",
            ECHO,
            &[("content-type", "application/grpc+json")],
            &body,
        )
        .await;
        assert_eq!(grpc_json.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
        let none = raw_call(&server, "POST", ECHO, &[], &body).await;
        assert_eq!(none.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
        let proto = raw_call(
            &server,
            "POST",
            ECHO,
            &[("content-type", "application/grpc+proto")],
            &body,
        )
        .await;
        assert_eq!(proto.trailers.expect("trailers")["grpc-status"], "0");
    }
);

drivers!(
    malformed_grpc_requests_get_a_status,
    |driver: Driver| async move {
        let server = TestServer::start(driver, ServerConfig::default());
        let body = framed(&EchoRequest::default());

        let gzip = raw_call(
            &server,
            "POST",
            ECHO,
            &[GRPC, ("grpc-encoding", "gzip")],
            &body,
        )
        .await;
        let (code, message) = gzip.immediate_status();
        assert_eq!(code, "12");
        assert!(message.contains("gzip"), "{message}");
        assert_eq!(gzip.headers["grpc-accept-encoding"], "identity");
        let identity = raw_call(
            &server,
            "POST",
            ECHO,
            &[GRPC, ("grpc-encoding", "identity")],
            &body,
        )
        .await;
        assert_eq!(identity.trailers.expect("trailers")["grpc-status"], "0");

        let timeout = raw_call(
            &server,
            "POST",
            ECHO,
            &[GRPC, ("grpc-timeout", "soon")],
            &body,
        )
        .await;
        let (code, message) = timeout.immediate_status();
        assert_eq!(code, "13");
        assert!(
            message.starts_with("malformed grpc-timeout header"),
            "{message}"
        );

        let mut compressed = body.clone();
        compressed[0] = 1;
        let flagged = raw_call(&server, "POST", ECHO, &[GRPC], &compressed).await;
        let (code, message) = flagged.immediate_status();
        assert_eq!(code, "13");
        assert!(message.contains("compressed"), "{message}");

        let truncated = [0, 0, 0, 0, 10, 1, 2, 3];
        let (code, message) = raw_call(&server, "POST", ECHO, &[GRPC], &truncated)
            .await
            .immediate_status();
        assert_eq!(code, "13");
        assert!(message.contains("ended inside a message"), "{message}");

        let twice = [body.clone(), body.clone()].concat();
        let (code, message) = raw_call(&server, "POST", ECHO, &[GRPC], &twice)
            .await
            .immediate_status();
        assert_eq!(code, "13");
        assert!(
            message.contains("more than one request message"),
            "{message}"
        );

        let (code, message) = raw_call(&server, "POST", ECHO, &[GRPC], &[])
            .await
            .immediate_status();
        assert_eq!(code, "13");
        assert!(message.contains("no request message"), "{message}");

        let garbage = [0, 0, 0, 0, 3, 0xff, 0xff, 0xff];
        let (code, message) = raw_call(&server, "POST", ECHO, &[GRPC], &garbage)
            .await
            .immediate_status();
        assert_eq!(code, "13");
        assert!(message.contains("could not be decoded"), "{message}");
    }
);

drivers!(
    the_server_enforces_grpc_timeout,
    |driver: Driver| async move {
        let server = TestServer::start(driver, ServerConfig::default());
        // A raw client does not enforce deadlines itself: only the server ends these calls.
        let forever = framed(&StallRequest {
            forever: true,
            ..StallRequest::default()
        });
        for timeout in ["100m", "0n"] {
            let headers = [GRPC, ("grpc-timeout", timeout)];
            let stalled = raw_call(&server, "POST", STALL, &headers, &forever).await;
            let (code, message) = stalled.immediate_status();
            assert_eq!(code, "4", "grpc-timeout {timeout}");
            assert_eq!(
                message,
                format!("{STALL} did not complete before its deadline")
            );
        }
        assert_eq!(server.codes(STALL, 2).await, [Code::DeadlineExceeded; 2]);

        // A stream past its deadline ends with DEADLINE_EXCEEDED in the trailers, after whole
        // messages.
        let endless = framed(&RangeRequest {
            count: u64::MAX,
            size: 64,
            fail_code: 0,
        });
        let headers = [GRPC, ("grpc-timeout", "200m")];
        let cut = raw_call(&server, "POST", RANGE, &headers, &endless).await;
        assert_eq!(cut.status, StatusCode::OK);
        assert!(!cut.trailers_only);
        assert_eq!(cut.trailers.expect("trailers")["grpc-status"], "4");
        let mut rest = &cut.body[..];
        let mut seq = 0;
        while !rest.is_empty() {
            let len = u32::from_be_bytes(rest[1..5].try_into().unwrap()) as usize;
            assert_eq!(Chunk::decode(&rest[5..5 + len]).unwrap().seq, seq);
            rest = &rest[5 + len..];
            seq += 1;
        }
        assert!(seq > 0, "some messages were sent before the deadline");
    }
);
