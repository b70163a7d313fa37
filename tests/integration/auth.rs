//! Authentication on a real `vectron dev --auth`: without a key nothing passes but the
//! health probes, at either door and on every kind of call; an admin makes keys; a read
//! key reads and writes nothing; a scoped key sees and touches only its collections; a
//! revoked key is refused within a second; no secret lands on disk.

use std::time::{Duration, Instant};

use vectron_auth::{Claims, Role, TokenSigner, parse_key};
use vectron_client::{
    Access, Client, CollectionGrant, CollectionSpec, CreateKeyRequest, CreateTokenRequest,
    CreateUserRequest, Error, KeyRole, Metric, Plan, Point, ScrollRequest, SearchRequest,
};

use crate::support::{self, Http};

const ADMIN: &str = "test-admin-key-for-auth-0123456789";

async fn client(addr: &str, key: Option<&str>) -> Client {
    let mut builder = Client::builder(addr.to_owned()).retries(0, Duration::from_millis(10));
    if let Some(key) = key {
        builder = builder.api_key(key).unwrap();
    }
    builder.connect().await.unwrap()
}

fn key_request(role: KeyRole, grants: &[(&str, Access)]) -> CreateKeyRequest {
    let mut request = CreateKeyRequest {
        grants: grants
            .iter()
            .map(|(c, a)| {
                let mut g = CollectionGrant {
                    collection: (*c).into(),
                    ..CollectionGrant::default()
                };
                g.set_access(*a);
                g
            })
            .collect(),
        description: "made by the auth test".into(),
        ..CreateKeyRequest::default()
    };
    request.set_role(role);
    request
}

fn token_request(subject: &str, role: KeyRole, grants: &[(&str, Access)]) -> CreateTokenRequest {
    let key = key_request(role, grants);
    let mut request = CreateTokenRequest {
        subject: subject.into(),
        grants: key.grants,
        ttl_seconds: 600,
        ..CreateTokenRequest::default()
    };
    request.set_role(role);
    request
}

fn points(prefix: &str) -> Vec<Point> {
    (0..4u8)
        .map(|i| Point::new(format!("{prefix}{i}"), vec![1.0, f32::from(i), 0.5, 0.25]))
        .collect()
}

fn unauthenticated<T: std::fmt::Debug>(result: Result<T, Error>) {
    match result {
        Err(Error::Unauthenticated(message)) => assert!(message.contains("API key"), "{message}"),
        other => panic!("not refused as unauthenticated: {other:?}"),
    }
}

fn denied<T: std::fmt::Debug>(result: Result<T, Error>) {
    match result {
        Err(Error::PermissionDenied(message)) => assert!(message.contains("may not"), "{message}"),
        other => panic!("not refused as denied: {other:?}"),
    }
}

/// Collections `docs` and `other` (4 dimensions), four points `p0`..`p3` in each.
async fn docs_and_other(admin: &Client) {
    for name in ["docs", "other"] {
        admin
            .create_collection(CollectionSpec::new(name, 4, Metric::Cosine))
            .await
            .unwrap();
        admin.upsert(name, points("p")).await.unwrap();
    }
}

/// Every file under `dir`, recursively.
fn files(dir: &std::path::Path, out: &mut Vec<std::path::PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files(&path, out);
        } else {
            out.push(path);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_decide_who_may_do_what_at_both_doors() {
    let dir = support::tempdir();
    // A cluster key, so that a second gateway can join dev's control plane below.
    let cluster_key = dir.path().join("cluster.key");
    std::fs::write(&cluster_key, format!("{}\n", "k".repeat(40))).unwrap();
    let cluster_key = cluster_key.to_str().unwrap();
    let dev = support::dev_with(
        dir.path(),
        &[
            "--cores",
            "1",
            "--auth",
            "--admin-key",
            ADMIN,
            "--cluster-key-file",
            cluster_key,
        ],
    );
    assert!(
        dev.ready["admin_key"].is_null(),
        "a given key is not printed"
    );
    let grpc = support::grpc_addr(&dev);
    let http = Http::new(&support::http_addr(&dev));

    // No key, or a wrong one: refused at both doors, streams included; probes pass.
    let anonymous = client(&grpc, None).await;
    unauthenticated(anonymous.list_collections().await);
    unauthenticated(
        anonymous
            .upsert_stream("docs", tokio_stream::iter([points("s")]))
            .await,
    );
    let forged = format!("vk_abcdefghijkl_{}", "A".repeat(43));
    unauthenticated(client(&grpc, Some(&forged)).await.list_collections().await);
    unauthenticated(
        client(&grpc, Some("not-the-admin-key-at-all"))
            .await
            .list_collections()
            .await,
    );
    let (code, headers, body) = http
        .send_full("GET", "/v1/collections", None, Vec::new())
        .await;
    assert_eq!(code, 401, "{body}");
    assert_eq!(headers["www-authenticate"], "Bearer");
    // Nor around the gateway: with --auth, dev's control plane and worker take only
    // calls that carry the cluster key drawn for the run.
    let control =
        vectron_control::ControlClient::new([dev.ready["control"].as_str().unwrap()]).unwrap();
    let around = control.cluster_status().await.unwrap_err();
    assert_eq!(
        around.code(),
        Some(tonic::Code::Unauthenticated),
        "{around}"
    );
    let (code, _) = Http::new(dev.ready["admin"].as_str().unwrap())
        .send("GET", "/metrics", None, Vec::new())
        .await;
    assert_eq!(code, 401, "the worker's statistics");
    assert!(body.contains("UNAUTHENTICATED"), "{body}");
    let line = br#"{"id": "n1", "vector": [1, 0, 0, 0]}"#.to_vec();
    let (code, body) = http
        .send(
            "POST",
            "/v1/collections/docs/points/stream",
            Some("application/x-ndjson"),
            line.clone(),
        )
        .await;
    assert_eq!(code, 401, "{body}");
    assert_eq!(http.send("GET", "/healthz", None, Vec::new()).await.0, 200);

    // The admin (the bootstrap key) makes collections and keys.
    let admin = client(&grpc, Some(ADMIN)).await;
    docs_and_other(&admin).await;
    let read = admin
        .create_key(key_request(KeyRole::Read, &[]))
        .await
        .unwrap();
    let scoped = admin
        .create_key(key_request(KeyRole::Scoped, &[("docs", Access::ReadWrite)]))
        .await
        .unwrap();
    assert!(read.secret.starts_with("vk_") && scoped.secret.starts_with("vk_"));
    // A key the rules refuse: scoped without a grant.
    assert!(matches!(
        admin.create_key(key_request(KeyRole::Scoped, &[])).await,
        Err(Error::InvalidArgument(_))
    ));

    // A read key reads everything and writes nothing.
    let reader = client(&grpc, Some(&read.secret)).await;
    assert_eq!(reader.list_collections().await.unwrap().len(), 2);
    let found = reader
        .search(SearchRequest::new("other", vec![1.0, 0.0, 0.5, 0.25], 2))
        .await
        .unwrap();
    assert_eq!(found.hits[0].id, "p0");
    assert_eq!(reader.count("docs", None).await.unwrap(), 4);
    assert_eq!(
        reader
            .get("docs", vec!["p1".into()], false, false)
            .await
            .unwrap()
            .len(),
        1
    );
    let page = reader
        .scroll(ScrollRequest {
            collection: "docs".into(),
            limit: 10,
            ..ScrollRequest::default()
        })
        .await
        .unwrap();
    assert_eq!(page.points.len(), 4);
    denied(reader.upsert("docs", points("r")).await);
    denied(reader.delete_ids("docs", vec!["p0".into()]).await);
    denied(
        reader
            .create_collection(CollectionSpec::new("mine", 4, Metric::L2))
            .await,
    );
    denied(reader.drop_collection("docs").await);
    denied(reader.list_keys().await);
    let as_reader = http.with_header("api-key", &read.secret);
    let (code, body) = as_reader
        .json(
            "PUT",
            "/v1/collections/docs/points",
            Some(serde_json::json!({"points": [{"id": "h", "vector": [1, 0, 0, 0]}]})),
        )
        .await;
    assert_eq!(code, 403, "{body}");
    assert_eq!(body["error"]["code"], "PERMISSION_DENIED");

    // A scoped key sees and touches only its collection.
    let writer = client(&grpc, Some(&scoped.secret)).await;
    let listed: Vec<String> = writer
        .list_collections()
        .await
        .unwrap()
        .into_iter()
        .map(|c| c.spec.unwrap().name)
        .collect();
    assert_eq!(listed, ["docs"]);
    writer.upsert("docs", points("w")).await.unwrap();
    let streamed = writer
        .upsert_stream("docs", tokio_stream::iter([points("s")]))
        .await
        .unwrap();
    assert_eq!(streamed.count, 4);
    denied(
        writer
            .upsert_stream("other", tokio_stream::iter([points("s")]))
            .await,
    );
    denied(
        writer
            .search(SearchRequest::new("other", vec![1.0, 0.0, 0.5, 0.25], 2))
            .await,
    );
    denied(writer.describe_collection("other").await);
    denied(writer.core_stats("").await);
    let as_writer = http.with_header("authorization", &format!("Bearer {}", scoped.secret));
    let (code, body) = as_writer
        .send(
            "POST",
            "/v1/collections/docs/points/stream",
            Some("application/x-ndjson"),
            line,
        )
        .await;
    assert_eq!(code, 200, "{body}");
    let (code, _) = as_writer
        .json(
            "POST",
            "/v1/collections/other/points/search",
            Some(serde_json::json!({"vector": [1, 0, 0, 0], "k": 1})),
        )
        .await;
    assert_eq!(code, 403);

    // Listing keys shows ids and grants, never a secret.
    let as_admin = http.with_header("api-key", ADMIN);
    let (code, listed) = as_admin.json("GET", "/v1/keys", None).await;
    assert_eq!(code, 200, "{listed}");
    let text = listed.to_string();
    assert_eq!(listed["keys"].as_array().unwrap().len(), 2, "{text}");
    assert!(
        text.contains(r#""role":"scoped""#) && text.contains(r#""access":"read_write""#),
        "{text}"
    );
    for secret in [&read.secret, &scoped.secret] {
        let hidden = parse_key(secret).unwrap().secret;
        assert!(!text.contains(hidden), "a secret in the list: {text}");
    }
    assert_eq!(admin.list_keys().await.unwrap().len(), 2);

    // A second gateway over the same control plane knows the same keys.
    let second = support::Process::start(&[
        "gateway",
        "--control",
        dev.ready["control"].as_str().unwrap(),
        "--cluster-key-file",
        cluster_key,
        "--grpc-addr",
        "127.0.0.1:0",
        "--http-addr",
        "127.0.0.1:0",
        "--auth",
        "--admin-key",
        ADMIN,
    ]);
    let elsewhere = client(&support::grpc_addr(&second), Some(&scoped.secret)).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    while elsewhere.count("docs", None).await.is_err() {
        assert!(
            Instant::now() < deadline,
            "the second gateway never accepted the key"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // It has no token secret: it mints no tokens, and takes none of the first's.
    let second_admin = client(&support::grpc_addr(&second), Some(ADMIN)).await;
    let refused = second_admin
        .create_token(token_request("ci", KeyRole::Read, &[]))
        .await;
    assert!(
        matches!(&refused, Err(Error::FailedPrecondition(m)) if m.contains("--jwt-secret-file")),
        "{refused:?}"
    );
    let token = admin
        .create_token(token_request("ci", KeyRole::Read, &[]))
        .await
        .unwrap()
        .token;
    let refused = client(&support::grpc_addr(&second), Some(&token))
        .await
        .list_collections()
        .await;
    assert!(
        matches!(&refused, Err(Error::Unauthenticated(m)) if m.contains("takes no tokens")),
        "{refused:?}"
    );

    // Revoked through the first gateway's HTTP door: both refuse it within a second.
    let id = scoped.key.as_ref().unwrap().id.clone();
    let (code, body) = as_admin
        .json("DELETE", &format!("/v1/keys/{id}"), None)
        .await;
    assert_eq!(code, 200, "{body}");
    let revoked = Instant::now();
    for gateway in [&writer, &elsewhere] {
        loop {
            match gateway.count("docs", None).await {
                Err(Error::Unauthenticated(_)) => break,
                other => assert!(
                    revoked.elapsed() < Duration::from_secs(1),
                    "the revoked key still works after {:?}: {other:?}",
                    revoked.elapsed()
                ),
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    eprintln!(
        "revocation honoured by both gateways after {:?}",
        revoked.elapsed()
    );
    second.terminate();
    assert!(matches!(
        admin.revoke_key(&id).await,
        Err(Error::NotFound(_))
    ));
    // The read key still works.
    assert_eq!(
        reader.count("docs", None).await.unwrap(),
        13,
        "p, w, s and n1"
    );

    // No secret of a made key anywhere under the data directory.
    let mut all = Vec::new();
    files(dir.path(), &mut all);
    assert!(!all.is_empty());
    for secret in [&read.secret, &scoped.secret] {
        let hidden = parse_key(secret).unwrap().secret.as_bytes();
        for file in &all {
            let bytes = std::fs::read(file).unwrap_or_default();
            assert!(
                !bytes.windows(hidden.len()).any(|w| w == hidden),
                "a key's secret is written in {}",
                file.display()
            );
        }
    }
    dev.terminate();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_carry_their_grants_to_every_gateway_with_the_secret_until_they_expire() {
    let dir = support::tempdir();
    let secret = b"a token secret shared by the gateways, 48 bytes.";
    let secret_file = dir.path().join("jwt-secret");
    let mut written = secret.to_vec();
    written.push(b'\n');
    std::fs::write(&secret_file, written).unwrap();
    let secret_arg = secret_file.to_str().unwrap();
    let cluster_key = dir.path().join("cluster.key");
    std::fs::write(&cluster_key, "c".repeat(40)).unwrap();
    let cluster_key = cluster_key.to_str().unwrap();
    let dev = support::dev_with(
        dir.path(),
        &[
            "--cores",
            "1",
            "--auth",
            "--admin-key",
            ADMIN,
            "--jwt-secret-file",
            secret_arg,
            "--cluster-key-file",
            cluster_key,
        ],
    );
    let grpc = support::grpc_addr(&dev);
    let http = Http::new(&support::http_addr(&dev));
    let admin = client(&grpc, Some(ADMIN)).await;
    docs_and_other(&admin).await;

    // A scoped token reads its collection, lists only it, and touches nothing else.
    let made = admin
        .create_token(token_request(
            "ci",
            KeyRole::Scoped,
            &[("docs", Access::Read)],
        ))
        .await
        .unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    assert!((now + 590..=now + 610).contains(&made.expires_at_unix_s));
    let bearer = client(&grpc, Some(&made.token)).await;
    let listed: Vec<String> = bearer
        .list_collections()
        .await
        .unwrap()
        .into_iter()
        .map(|c| c.spec.unwrap().name)
        .collect();
    assert_eq!(listed, ["docs"]);
    assert_eq!(bearer.count("docs", None).await.unwrap(), 4);
    denied(bearer.upsert("docs", points("t")).await);
    denied(bearer.count("other", None).await);
    denied(bearer.describe_collection("other").await);
    denied(
        bearer
            .create_token(token_request("me", KeyRole::Admin, &[]))
            .await,
    );
    match bearer.upsert("docs", points("t")).await {
        Err(Error::PermissionDenied(m)) => assert!(m.contains("token ci may not"), "{m}"),
        other => panic!("{other:?}"),
    }

    // Minted over HTTP too, and taken there.
    let as_admin = http.with_header("api-key", ADMIN);
    let (code, body) = as_admin
        .json(
            "POST",
            "/v1/tokens",
            Some(serde_json::json!({"subject": "web", "role": "read", "ttl_seconds": 60})),
        )
        .await;
    assert_eq!(code, 200, "{body}");
    let web = body["token"].as_str().unwrap().to_owned();
    let (code, body) = http
        .with_header("authorization", &format!("Bearer {web}"))
        .json("GET", "/v1/collections", None)
        .await;
    assert_eq!(code, 200, "{body}");
    assert_eq!(body["collections"].as_array().unwrap().len(), 2);
    // The rules of a token: a lifetime past 30 days, no subject.
    for bad in [
        serde_json::json!({"subject": "web", "role": "read", "ttl_seconds": 2_592_001}),
        serde_json::json!({"role": "read"}),
    ] {
        let (code, body) = as_admin.json("POST", "/v1/tokens", Some(bad)).await;
        assert_eq!(code, 400, "{body}");
        assert_eq!(body["error"]["code"], "INVALID_ARGUMENT");
    }

    // Expired beyond the leeway, signed with another secret, or tampered with: 401.
    let signer = TokenSigner::new(secret).unwrap();
    let two_hours_ago = std::time::SystemTime::now() - Duration::from_secs(7200);
    let expired = signer
        .mint(&Claims::new(
            "old".into(),
            Role::Admin,
            Default::default(),
            two_hours_ago,
            Duration::from_secs(60),
        ))
        .unwrap();
    let (code, headers, body) = http
        .with_header("authorization", &format!("Bearer {expired}"))
        .send_full("GET", "/v1/collections", None, Vec::new())
        .await;
    assert_eq!(code, 401, "{body}");
    assert_eq!(headers["www-authenticate"], "Bearer");
    assert!(body.contains("the token expired"), "{body}");
    let foreign = TokenSigner::new(b"not the cluster's secret, though long enough")
        .unwrap()
        .mint(&Claims::new(
            "intruder".into(),
            Role::Admin,
            Default::default(),
            std::time::SystemTime::now(),
            Duration::from_secs(60),
        ))
        .unwrap();
    let mut tampered = made.token.clone();
    tampered.pop();
    tampered.push(if made.token.ends_with('A') { 'B' } else { 'A' });
    for token in [&expired, &foreign, &tampered] {
        match client(&grpc, Some(token)).await.list_collections().await {
            Err(Error::Unauthenticated(m)) => assert!(m.contains("token"), "{m}"),
            other => panic!("a bad token was taken: {other:?}"),
        }
    }

    // A second gateway with the same secret takes the first one's token.
    let second = support::Process::start(&[
        "gateway",
        "--control",
        dev.ready["control"].as_str().unwrap(),
        "--cluster-key-file",
        cluster_key,
        "--grpc-addr",
        "127.0.0.1:0",
        "--http-addr",
        "127.0.0.1:0",
        "--auth",
        "--admin-key",
        ADMIN,
        "--jwt-secret-file",
        secret_arg,
    ]);
    let elsewhere = client(&support::grpc_addr(&second), Some(&made.token)).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match elsewhere.count("docs", None).await {
            Ok(n) => {
                assert_eq!(n, 4);
                break;
            }
            Err(e) => assert!(Instant::now() < deadline, "never taken: {e:?}"),
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    denied(elsewhere.count("other", None).await);
    second.terminate();

    // A token secret too short to resist guessing: refused at start.
    let short = dir.path().join("short-secret");
    std::fs::write(&short, b"too short\n").unwrap();
    let elsewhere = dir.path().join("x");
    let stderr = support::refused(&[
        "dev",
        "--data-dir",
        elsewhere.to_str().unwrap(),
        "--grpc-addr",
        "127.0.0.1:0",
        "--http-addr",
        "127.0.0.1:0",
        "--cores",
        "1",
        "--auth",
        "--jwt-secret-file",
        short.to_str().unwrap(),
    ]);
    assert!(stderr.contains("at least 32 bytes, not 9"), "{stderr}");
    dev.terminate();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn users_log_in_for_a_token_with_their_grants_and_logins_are_rate_limited() {
    let dir = support::tempdir();
    // Everything logged, down to debug, goes to a file searched for secrets at the end.
    let log = dir.path().join("dev.log");
    let data = dir.path().join("data");
    let cluster_key = "a-cluster-key-that-rides-every-internal-call";
    let cluster_key_file = dir.path().join("cluster.key");
    std::fs::write(&cluster_key_file, cluster_key).unwrap();
    let dev = support::Process::start_logged(
        &[
            "dev",
            "--data-dir",
            data.to_str().unwrap(),
            "--grpc-addr",
            "127.0.0.1:0",
            "--http-addr",
            "127.0.0.1:0",
            "--cores",
            "1",
            "--auth",
            "--admin-key",
            ADMIN,
            "--cluster-key-file",
            cluster_key_file.to_str().unwrap(),
        ],
        "debug",
        &log,
    );
    let grpc = support::grpc_addr(&dev);
    let http = Http::new(&support::http_addr(&dev));
    let admin = client(&grpc, Some(ADMIN)).await;
    docs_and_other(&admin).await;
    let password = "correct horse battery staple";
    let user = |name: &str, password: &str| {
        let key = key_request(KeyRole::Scoped, &[("docs", Access::ReadWrite)]);
        let mut request = CreateUserRequest {
            name: name.into(),
            password: password.into(),
            grants: key.grants,
            ..CreateUserRequest::default()
        };
        request.set_role(KeyRole::Scoped);
        request
    };
    let made = admin.create_user(user("ann", password)).await.unwrap();
    assert_eq!((made.name.as_str(), made.role()), ("ann", KeyRole::Scoped));
    assert!(matches!(
        admin.create_user(user("ann", password)).await,
        Err(Error::AlreadyExists(_))
    ));
    assert!(matches!(
        admin.create_user(user("bob", "short")).await,
        Err(Error::InvalidArgument(m)) if m.contains("at least 8 characters")
    ));
    let no_key = client(&grpc, None).await;
    unauthenticated(no_key.list_users().await);
    let (code, listed) = http
        .with_header("api-key", ADMIN)
        .json("GET", "/v1/users", None)
        .await;
    assert_eq!(code, 200, "{listed}");
    assert_eq!(listed["users"][0]["name"], "ann");
    let text = listed.to_string();
    assert!(
        !text.contains("argon2") && !text.contains(password),
        "{text}"
    );

    // Logging in needs no key and gives a token with the user's grants.
    let login = no_key
        .login("ann", password, Duration::from_secs(600))
        .await
        .unwrap();
    let ann = client(&grpc, Some(&login.token)).await;
    ann.upsert("docs", points("a")).await.unwrap();
    match ann.upsert("other", points("a")).await {
        Err(Error::PermissionDenied(m)) => assert!(m.contains("token ann may not"), "{m}"),
        other => panic!("{other:?}"),
    }
    denied(ann.list_users().await);
    match no_key
        .login("ann", "not the password", Duration::ZERO)
        .await
    {
        Err(Error::Unauthenticated(m)) => {
            assert!(m.contains("user name or password is wrong"), "{m}");
        }
        other => panic!("a wrong password logged in: {other:?}"),
    }
    // Over HTTP, from the same address.
    let (code, body) = http
        .json(
            "POST",
            "/v1/login",
            Some(serde_json::json!({"name": "ann", "password": password})),
        )
        .await;
    assert_eq!(code, 200, "{body}");
    let (code, body) = http
        .with_header("api-key", body["token"].as_str().unwrap())
        .json(
            "POST",
            "/v1/collections/docs/points/count",
            Some(serde_json::json!({})),
        )
        .await;
    assert_eq!((code, body["count"].as_u64()), (200, Some(8)), "{body}");

    // A deleted user logs in no more (the gateway learns it within a second).
    admin.delete_user("ann").await.unwrap();
    assert!(admin.list_users().await.unwrap().is_empty());
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(matches!(
        no_key.login("ann", password, Duration::ZERO).await,
        Err(Error::Unauthenticated(_))
    ));

    // Five logins a minute from one address: a burst past that is refused with 429 and
    // when to come back, at either door.
    let mut refused = 0;
    for _ in 0..8 {
        let (code, headers, body) = http
            .send_full(
                "POST",
                "/v1/login",
                Some("application/json"),
                br#"{"name": "ann", "password": "guess"}"#.to_vec(),
            )
            .await;
        if code == 429 {
            refused += 1;
            let after: u64 = headers["retry-after"].to_str().unwrap().parse().unwrap();
            assert!((1..=60).contains(&after), "{after}");
            assert!(body.contains("too many logins"), "{body}");
        } else {
            assert_eq!(code, 401, "{body}");
        }
    }
    assert!(refused >= 3, "{refused} of 8 refused");
    assert!(matches!(
        no_key.login("ann", password, Duration::ZERO).await,
        Err(Error::ResourceExhausted(_))
    ));
    dev.terminate();
    // The password, the token, the admin key and the cluster key are in no file under
    // the data directory and in no line of the debug log.
    let mut all = Vec::new();
    files(&data, &mut all);
    all.push(log.clone());
    let logged = std::fs::read_to_string(&log).unwrap();
    assert!(
        logged.contains("logged in") && logged.contains("user created"),
        "the log misses the gateway's own lines: {logged:.2000}"
    );
    let signature = login.token.rsplit('.').next().unwrap();
    for file in &all {
        let bytes = std::fs::read(file).unwrap_or_default();
        for secret in [password, signature, ADMIN, cluster_key] {
            assert!(
                !bytes.windows(secret.len()).any(|w| w == secret.as_bytes()),
                "{secret:?} is written in {}",
                file.display()
            );
        }
    }
}

/// Calls `count` as fast as it goes `n` times; how many passed, how long it took, and
/// the first refusal.
async fn hammer(caller: &Client, n: usize) -> (usize, Duration, Option<Error>) {
    let started = Instant::now();
    let mut passed = 0;
    let mut refusal = None;
    for _ in 0..n {
        match caller.count("docs", None).await {
            Ok(_) => passed += 1,
            Err(e) => {
                assert!(matches!(e, Error::ResourceExhausted(_)), "{e:?}");
                refusal.get_or_insert(e);
            }
        }
    }
    (passed, started.elapsed(), refusal)
}

/// A `vectron dev --auth` of one core with the test's admin key, data in `dir`: the
/// process, its gRPC address, an HTTP client of it, and an SDK client with the admin key.
async fn authenticated_dev(dir: &std::path::Path) -> (support::Process, String, Http, Client) {
    let dev = support::dev_with(dir, &["--cores", "1", "--auth", "--admin-key", ADMIN]);
    let grpc = support::grpc_addr(&dev);
    let http = Http::new(&support::http_addr(&dev));
    let admin = client(&grpc, Some(ADMIN)).await;
    (dev, grpc, http, admin)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plan_limits_each_caller_on_it_to_its_rate() {
    let dir = support::tempdir();
    let (dev, grpc, http, admin) = authenticated_dev(dir.path()).await;
    admin
        .create_collection(CollectionSpec::new("docs", 4, Metric::Cosine))
        .await
        .unwrap();
    let ten = Plan {
        name: "ten".into(),
        requests_per_second: 10,
        burst: 10,
        ..Plan::default()
    };
    admin.set_plan(ten.clone()).await.unwrap();
    let mut on_plan = key_request(KeyRole::Read, &[]);
    on_plan.plan = "ten".into();
    let key = admin.create_key(on_plan.clone()).await.unwrap().secret;
    // A plan the cluster does not hold, for a key or a token: refused, naming it.
    let mut unknown = on_plan.clone();
    unknown.plan = "gold".into();
    assert!(matches!(
        admin.create_key(unknown).await,
        Err(Error::FailedPrecondition(m)) if m.contains("no plan is named \"gold\"")
    ));

    // 100 calls as fast as they go: the burst of 10 passes, and about 10 a second after.
    let caller = client(&grpc, Some(&key)).await;
    let (passed, took, refusal) = hammer(&caller, 100).await;
    let allowed = 10 + (took.as_secs_f64() * 10.0).ceil() as usize;
    assert!(
        (10..=allowed).contains(&passed),
        "{passed} of 100 passed in {took:?}"
    );
    eprintln!("plan of 10/s, burst 10: {passed} of 100 calls passed in {took:?}");
    let refusal = refusal
        .expect("calls past the rate are refused")
        .to_string();
    assert!(
        refusal.contains("over the rate of plan \"ten\""),
        "{refusal}"
    );
    let (code, headers, body) = http
        .with_header("api-key", &key)
        .send_full("GET", "/v1/collections", None, Vec::new())
        .await;
    assert_eq!(code, 429, "{body}");
    assert!(headers.contains_key("retry-after"), "{headers:?}");
    // The admin key is on no plan: not limited.
    let (passed, _, _) = hammer(&admin, 100).await;
    assert_eq!(passed, 100);
    // A token on the plan is limited like a key.
    let mut token = token_request("ci", KeyRole::Read, &[]);
    token.plan = "ten".into();
    let token = admin.create_token(token).await.unwrap().token;
    let (passed, _, refusal) = hammer(&client(&grpc, Some(&token)).await, 30).await;
    assert!(passed < 30 && refusal.is_some(), "{passed} of 30 passed");

    // A raised rate applies within a second; a plan in use cannot be deleted.
    admin
        .set_plan(Plan {
            requests_per_second: 100_000,
            burst: 100_000,
            ..ten
        })
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let (passed, _, _) = hammer(&caller, 50).await;
    assert_eq!(passed, 50);
    assert!(matches!(
        admin.delete_plan("ten").await,
        Err(Error::FailedPrecondition(m)) if m.contains("in use by key")
    ));
    let (code, listed) = http
        .with_header("api-key", ADMIN)
        .json("GET", "/v1/plans", None)
        .await;
    assert_eq!(code, 200, "{listed}");
    assert_eq!(listed["plans"][0]["requests_per_second"], 100_000);
    denied(caller.list_plans().await);
    dev.terminate();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_auth_and_no_admin_key_one_is_generated_and_printed_once() {
    let dir = support::tempdir();
    let dev = support::dev_with(dir.path(), &["--cores", "1", "--auth"]);
    let key = dev.ready["admin_key"].as_str().unwrap().to_owned();
    assert!(key.starts_with("vk_"), "{key}");
    let grpc = support::grpc_addr(&dev);
    unauthenticated(client(&grpc, None).await.list_collections().await);
    let admin = client(&grpc, Some(&key)).await;
    assert!(admin.list_collections().await.unwrap().is_empty());
    // `vectron dev --auth` draws a token secret: its tokens work without setup.
    let token = admin
        .create_token(token_request("dev", KeyRole::Read, &[]))
        .await
        .unwrap()
        .token;
    assert!(
        client(&grpc, Some(&token))
            .await
            .list_collections()
            .await
            .unwrap()
            .is_empty()
    );
    dev.terminate();

    // An admin key without --auth would protect nothing: refused at start.
    let data = dir.path().to_str().unwrap();
    let dev_args = |extra: &[&'static str]| {
        let mut args = vec!["dev", "--data-dir", data, "--cores", "1"];
        args.extend_from_slice(extra);
        args
    };
    let loopback = ["--grpc-addr", "127.0.0.1:0", "--http-addr", "127.0.0.1:0"];
    let stderr = support::refused(&dev_args(
        &[&loopback[..], &["--admin-key", ADMIN]].concat(),
    ));
    assert!(
        stderr.contains("authentication is off: add --auth"),
        "{stderr}"
    );

    // A bootstrap admin key short enough to guess: refused, naming the rule.
    let stderr = support::refused(&dev_args(
        &[&loopback[..], &["--auth", "--admin-key", "hunter2"]].concat(),
    ));
    assert!(
        stderr.contains("the admin key has 7 characters: give at least 16"),
        "{stderr}"
    );

    // A network address without --auth: refused unless --insecure says so.
    let stderr = support::refused(&dev_args(&[
        "--grpc-addr",
        "0.0.0.0:0",
        "--http-addr",
        "127.0.0.1:0",
    ]));
    assert!(stderr.contains("refusing to serve 0.0.0.0:0"), "{stderr}");

    // Without --auth nothing asks for a key.
    let open = support::dev_with(dir.path(), &["--cores", "1"]);
    assert!(open.ready["admin_key"].is_null());
    let grpc = support::grpc_addr(&open);
    assert!(
        client(&grpc, None)
            .await
            .list_collections()
            .await
            .unwrap()
            .is_empty()
    );
    open.terminate();
}

#[test]
fn the_cli_makes_lists_and_revokes_keys_with_the_admin_key() {
    let dir = support::tempdir();
    let dev = support::dev_with(
        dir.path(),
        &["--cores", "1", "--auth", "--admin-key", ADMIN],
    );
    let addr = support::grpc_addr(&dev);
    let vectron = |key: &str, args: &[&str]| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_vectron"))
            .args(args)
            .args(["--addr", &addr, "--api-key", key])
            .output()
            .unwrap();
        (
            out.status.success(),
            String::from_utf8(out.stdout).unwrap(),
            String::from_utf8(out.stderr).unwrap(),
        )
    };
    let (ok, out, err) = vectron(
        ADMIN,
        &[
            "keys",
            "create",
            "--role",
            "scoped",
            "--grant",
            "docs:read",
            "--description",
            "cli",
        ],
    );
    assert!(ok, "{err}");
    assert!(out.starts_with("created key "), "{out}");
    let key = out.lines().nth(1).unwrap().trim().to_owned();
    assert!(key.starts_with("vk_"), "{out}");
    let id = &key[3..15];

    let (ok, out, err) = vectron(ADMIN, &["keys", "list"]);
    assert!(ok, "{err}");
    assert_eq!(out.trim(), format!("{id}  scoped  docs:read  cli"));

    // The new key is no admin: it may not list keys.
    let (ok, _, err) = vectron(&key, &["keys", "list"]);
    assert!(!ok);
    assert!(err.contains("PERMISSION_DENIED"), "{err}");
    let (ok, out, err) = vectron(&key, &["collections", "list"]);
    assert!(ok, "{err}");
    assert_eq!(out.trim(), "no collections");

    // A token minted by the CLI is a credential for the CLI.
    let (ok, out, err) = vectron(
        ADMIN,
        &[
            "keys",
            "token",
            "--subject",
            "cli",
            "--role",
            "scoped",
            "--grant",
            "docs:read",
            "--ttl",
            "60",
        ],
    );
    assert!(ok, "{err}");
    let token = out.trim().to_owned();
    assert_eq!(token.matches('.').count(), 2, "{out}");
    let (ok, out, err) = vectron(&token, &["collections", "list"]);
    assert!(ok, "{err}");
    assert_eq!(out.trim(), "no collections");
    let (ok, _, err) = vectron(&token, &["keys", "list"]);
    assert!(!ok);
    assert!(err.contains("token cli may not manage API keys"), "{err}");

    // Users: made with the password from the environment, logged in with it on stdin.
    let made = std::process::Command::new(env!("CARGO_BIN_EXE_vectron"))
        .args(["users", "create", "cli-user", "--role", "read"])
        .args(["--addr", &addr, "--api-key", ADMIN])
        .env("VECTRON_PASSWORD", "a password for the cli")
        .output()
        .unwrap();
    assert!(made.status.success(), "{made:?}");
    let (ok, out, err) = vectron(ADMIN, &["users", "list"]);
    assert!(ok, "{err}");
    assert_eq!(out.trim(), "cli-user          read    -");
    let mut login = std::process::Command::new(env!("CARGO_BIN_EXE_vectron"))
        .args(["login", "cli-user", "--password-stdin", "--addr", &addr])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    {
        use std::io::Write as _;
        let mut stdin = login.stdin.take().unwrap();
        stdin.write_all(b"a password for the cli\n").unwrap();
    }
    let login = login.wait_with_output().unwrap();
    assert!(login.status.success(), "{login:?}");
    let token = String::from_utf8(login.stdout).unwrap().trim().to_owned();
    let (ok, out, err) = vectron(&token, &["collections", "list"]);
    assert!(ok, "{err}");
    assert_eq!(out.trim(), "no collections");
    let (ok, out, err) = vectron(ADMIN, &["users", "delete", "cli-user"]);
    assert!(ok, "{err}");
    assert_eq!(out.trim(), "deleted user cli-user");

    // Plans, with their quotas.
    let (ok, out, err) = vectron(
        ADMIN,
        &[
            "plans",
            "set",
            "starter",
            "--rps",
            "50",
            "--max-collections",
            "3",
            "--max-points",
            "100000",
        ],
    );
    assert!(ok, "{err}");
    assert_eq!(
        out.trim(),
        "set plan starter           50 calls/s  burst 50  max 3 collections  max 100000 points"
    );
    let (ok, out, err) = vectron(ADMIN, &["plans", "list", "--json"]);
    assert!(ok, "{err}");
    let listed: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(listed["plans"][0]["max_collections"], 3, "{out}");
    assert_eq!(listed["plans"][0]["max_points"], 100_000, "{out}");

    let (ok, out, err) = vectron(ADMIN, &["keys", "revoke", id]);
    assert!(ok, "{err}");
    assert_eq!(out.trim(), format!("revoked key {id}"));
    let (ok, _, err) = vectron("vk_not-a-key", &["collections", "list"]);
    assert!(!ok);
    assert!(err.contains("UNAUTHENTICATED"), "{err}");
    dev.terminate();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plans_quotas_let_a_caller_own_collections_and_bound_what_they_hold() {
    let dir = support::tempdir();
    let (dev, grpc, http, admin) = authenticated_dev(dir.path()).await;
    docs_and_other(&admin).await;
    admin
        .set_plan(Plan {
            name: "starter".into(),
            requests_per_second: 100_000,
            burst: 100_000,
            max_collections: Some(2),
            max_points: Some(300),
        })
        .await
        .unwrap();
    let mut request = key_request(KeyRole::Scoped, &[("docs", Access::Read)]);
    request.plan = "starter".into();
    let made = admin.create_key(request).await.unwrap();
    let owner = format!("key {}", made.key.unwrap().id);
    let starter = client(&grpc, Some(&made.secret)).await;
    let plain = admin
        .create_key(key_request(KeyRole::Scoped, &[("docs", Access::Read)]))
        .await
        .unwrap()
        .secret;
    let plain = client(&grpc, Some(&plain)).await;
    let spec = |name: &str| CollectionSpec::new(name, 4, Metric::Cosine);

    // A plan with a collections quota lets a caller that is not an admin create; one on
    // no plan may not. The creator owns what it made, up to its quota.
    denied(plain.create_collection(spec("plain-1")).await);
    let mine = starter.create_collection(spec("mine-1")).await.unwrap();
    assert_eq!(mine.owner, owner);
    starter.create_collection(spec("mine-2")).await.unwrap();
    match starter.create_collection(spec("mine-3")).await {
        Err(Error::ResourceExhausted(m)) => assert!(
            m.contains(&format!(
                "{owner} owns 2 collections, the most its plan allows"
            )),
            "{m}"
        ),
        other => panic!("a third collection was not refused: {other:?}"),
    }
    let (code, body) = http
        .with_header("api-key", &made.secret)
        .json(
            "POST",
            "/v1/collections",
            Some(serde_json::json!({"name": "mine-3", "dimension": 4, "metric": "cosine"})),
        )
        .await;
    assert_eq!(code, 429, "{body}");
    assert_eq!(body["error"]["code"], "RESOURCE_EXHAUSTED", "{body}");

    // It sees what it owns and what it was granted, and touches only those.
    let listed: Vec<String> = starter
        .list_collections()
        .await
        .unwrap()
        .into_iter()
        .map(|c| c.spec.unwrap().name)
        .collect();
    assert_eq!(listed, ["docs", "mine-1", "mine-2"]);
    starter.upsert("mine-1", points("p")).await.unwrap();
    let found = starter
        .search(SearchRequest::new("mine-1", vec![1.0, 2.0, 0.5, 0.25], 1))
        .await
        .unwrap();
    assert_eq!(found.hits[0].id, "p2");
    denied(starter.upsert("docs", points("x")).await);
    denied(starter.count("other", None).await);
    denied(starter.drop_collection("docs").await);
    denied(plain.count("mine-1", None).await);
    denied(plain.drop_collection("mine-1").await);
    // Dropping one of its own makes room for another.
    starter.drop_collection("mine-2").await.unwrap();
    starter.create_collection(spec("mine-3")).await.unwrap();
    assert_eq!(
        admin.describe_collection("mine-3").await.unwrap().owner,
        owner
    );

    // Points: the collections it owns may hold 300 together. The same 200 points
    // written again and again pass until the workers report what mine-1 holds (204),
    // then the next write would pass 300 and is refused, naming the quota.
    let batch: Vec<Point> = (0..200)
        .map(|i| Point::new(format!("q{i}"), vec![1.0, i as f32, 0.5, 0.25]))
        .collect();
    let deadline = Instant::now() + Duration::from_secs(30);
    let refusal = loop {
        match starter.upsert("mine-1", batch.clone()).await {
            Ok(_) => {
                assert!(Instant::now() < deadline, "the points quota never applied");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(Error::ResourceExhausted(m)) => break m,
            Err(other) => panic!("{other:?}"),
        }
    };
    assert!(
        refusal.contains("plan \"starter\" allows 300 points") && refusal.contains("adds 200"),
        "{refusal}"
    );
    // Smaller writes still fit; the admin, on no plan, is not bounded.
    starter.upsert("mine-1", points("r")).await.unwrap();
    admin.upsert("mine-1", batch).await.unwrap();
    dev.terminate();
}
