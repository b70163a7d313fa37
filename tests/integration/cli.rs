//! The `vectron` binary as a user runs it: `--help`, `--version`, and the client
//! commands (`collections`, `points`, `search`) against a real `vectron dev`.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

use crate::support::{Fixture, dev, grpc_addr, tempdir};

fn vectron() -> Command {
    Command::new(env!("CARGO_BIN_EXE_vectron"))
}

#[test]
fn help_runs_and_names_the_binary() {
    let out = vectron()
        .arg("--help")
        .output()
        .expect("run vectron --help");
    assert!(out.status.success(), "exit status {:?}", out.status);
    let text = String::from_utf8(out.stdout).expect("utf-8 help");
    assert!(text.starts_with("Vectron"), "help text: {text}");
    assert!(text.contains("Usage: vectron"), "help text: {text}");
    for command in ["collections", "points", "search"] {
        assert!(text.contains(command), "help text: {text}");
    }
}

#[test]
fn version_matches_the_crate() {
    let out = vectron()
        .arg("--version")
        .output()
        .expect("run vectron --version");
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    assert_eq!(
        text.trim(),
        format!("vectron {}", env!("CARGO_PKG_VERSION"))
    );
}

#[test]
fn unknown_subcommand_is_refused_with_usage() {
    let out = vectron()
        .arg("no-such-command")
        .output()
        .expect("run vectron");
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(err.contains("no-such-command"), "stderr: {err}");
}

#[test]
fn a_worker_zone_a_worker_id_could_not_be_is_refused_before_anything_starts() {
    let dir = tempdir();
    let out = vectron()
        .args(["worker", "--data-dir", dir.path().to_str().unwrap()])
        .args(["--zone", "rack 7", "--control", "127.0.0.1:1"])
        .output()
        .expect("run vectron");
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(
        err.contains("zone \"rack 7\" is not allowed"),
        "stderr: {err}"
    );
    assert!(
        std::fs::read_dir(dir.path()).unwrap().next().is_none(),
        "nothing written"
    );
}

#[test]
fn a_search_needs_exactly_one_query() {
    let out = vectron()
        .args(["search", "docs"])
        .output()
        .expect("run vectron");
    assert_eq!(out.status.code(), Some(2), "clap's usage error");
    let out = vectron()
        .args(["search", "docs", "--vector", "1,2", "--from-id", "7"])
        .output()
        .expect("run vectron");
    assert_eq!(out.status.code(), Some(2));
}

/// One run of the client: exit status, stdout, stderr.
struct Run {
    ok: bool,
    stdout: String,
    stderr: String,
}

impl Run {
    fn json(&self) -> Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("stdout is not JSON ({e}): {}", self.stdout))
    }
}

/// Runs `vectron ARGS…` against the gateway at `addr`.
fn client(addr: &str, args: &[&str]) -> Run {
    let Output {
        status,
        stdout,
        stderr,
    } = vectron()
        .args(args)
        .env("VECTRON_ADDR", addr)
        .env_remove("VECTRON_TIMEOUT")
        .env_remove("VECTRON_CA_CERT")
        .output()
        .expect("run vectron");
    Run {
        ok: status.success(),
        stdout: String::from_utf8(stdout).unwrap(),
        stderr: String::from_utf8(stderr).unwrap(),
    }
}

/// Runs and requires success.
fn ok(addr: &str, args: &[&str]) -> Run {
    let run = client(addr, args);
    assert!(
        run.ok,
        "vectron {args:?} failed:\n{}\n{}",
        run.stdout, run.stderr
    );
    run
}

/// Runs and requires failure.
fn fails(addr: &str, args: &[&str]) -> Run {
    let run = client(addr, args);
    assert!(!run.ok, "vectron {args:?} succeeded:\n{}", run.stdout);
    run
}

fn testdata(name: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("testdata/wiki-minilm-2k")
        .join(name)
        .to_str()
        .unwrap()
        .to_owned()
}

fn fvecs(rows: &[Vec<f32>]) -> Vec<u8> {
    let mut out = Vec::new();
    for r in rows {
        out.extend_from_slice(&(r.len() as i32).to_le_bytes());
        out.extend(r.iter().flat_map(|v| v.to_le_bytes()));
    }
    out
}

/// A `.npy` file as NumPy 1.x writes it: float32, little-endian, C order.
fn npy(rows: &[Vec<f32>]) -> Vec<u8> {
    let mut header = format!(
        "{{'descr': '<f4', 'fortran_order': False, 'shape': ({}, {}), }}",
        rows.len(),
        rows[0].len()
    );
    while (10 + header.len() + 1) % 64 != 0 {
        header.push(' ');
    }
    header.push('\n');
    let mut out = b"\x93NUMPY\x01\x00".to_vec();
    out.extend_from_slice(&(header.len() as u16).to_le_bytes());
    out.extend_from_slice(header.as_bytes());
    out.extend(rows.iter().flatten().flat_map(|v| v.to_le_bytes()));
    out
}

fn write(dir: &Path, name: &str, bytes: &[u8]) -> String {
    let path: PathBuf = dir.join(name);
    std::fs::write(&path, bytes).unwrap();
    path.to_str().unwrap().to_owned()
}

#[test]
fn the_client_drives_a_real_vectron_dev() {
    let fixture = Fixture::load();
    let dir = tempdir();
    let server = dev(&dir.path().join("data"), 2);
    let addr = format!("http://{}", grpc_addr(&server));
    let a = addr.as_str();

    // --- collections ---------------------------------------------------------------
    let created = ok(
        a,
        &[
            "collections",
            "create",
            "wiki",
            "--dimension",
            "384",
            "--metric",
            "cosine",
            "--shards",
            "2",
            "--index",
            "title:keyword",
            "--ef",
            "96",
        ],
    );
    assert!(
        created.stdout.starts_with("created collection wiki"),
        "{}",
        created.stdout
    );
    let listed = ok(a, &["collections", "list", "--json"]).json();
    assert_eq!(listed["collections"][0]["spec"]["name"], "wiki");
    let text = ok(a, &["collections", "list"]).stdout;
    assert!(text.starts_with("NAME") && text.contains("wiki"), "{text}");
    let described = ok(a, &["collections", "describe", "wiki", "--json"]).json();
    assert_eq!(described["spec"]["dimension"], 384);
    assert_eq!(described["spec"]["metric"], "cosine");
    assert_eq!(described["spec"]["shard_count"], 2);
    assert_eq!(described["spec"]["hnsw"]["ef"], 96);
    assert_eq!(described["spec"]["payload_indexes"][0]["field"], "title");
    assert_eq!(described["shards"].as_array().unwrap().len(), 2);
    let text = ok(a, &["collections", "describe", "wiki"]).stdout;
    assert!(text.contains("shard 1"), "{text}");

    // --- upsert: fvecs with payloads, npy, JSON lines -------------------------------
    let up = ok(
        a,
        &[
            "points",
            "upsert",
            "wiki",
            "--file",
            &testdata("base.fvecs"),
            "--payloads",
            &testdata("base.jsonl"),
        ],
    );
    assert!(
        up.stdout.starts_with("upserted 2000 points into wiki"),
        "{}",
        up.stdout
    );
    assert_eq!(ok(a, &["points", "count", "wiki"]).stdout.trim(), "2000");
    // Describe counts as of the call (the shards' own figures, not a heartbeat-old
    // report), and shows where each shard has applied to.
    let text = ok(a, &["collections", "describe", "wiki"]).stdout;
    assert!(text.contains("points        2000\n"), "{text}");
    assert!(text.contains("(active, applied "), "{text}");

    let npy_file = write(dir.path(), "ten.npy", &npy(&fixture.base[..10]));
    let up = ok(
        a,
        &[
            "points",
            "upsert",
            "wiki",
            "-f",
            &npy_file,
            "--id-prefix",
            "npy-",
            "--batch",
            "3",
            "--json",
        ],
    )
    .json();
    assert_eq!(up["count"], 10);
    assert_eq!(up["durable"], true);

    let lines: String = (0..3)
        .map(|i| {
            serde_json::json!({
                "id": format!("j{i}"),
                "vector": fixture.base[100 + i],
                "payload": {"title": "From JSON", "n": i},
            })
            .to_string()
                + "\n"
        })
        .collect();
    let jsonl = write(dir.path(), "three.jsonl", lines.as_bytes());
    ok(a, &["points", "upsert", "wiki", "--file", &jsonl]);
    assert_eq!(
        ok(a, &["points", "count", "wiki", "--json"]).json()["count"],
        2013
    );
    let counted = ok(
        a,
        &[
            "points",
            "count",
            "wiki",
            "--filter",
            r#"{"must": [{"field": {"key": "title", "keyword": "From JSON"}}]}"#,
        ],
    );
    assert_eq!(counted.stdout.trim(), "3");

    // --- get ------------------------------------------------------------------------
    let got = ok(
        a,
        &["points", "get", "wiki", "7", "j2", "missing", "--json"],
    )
    .json();
    let points = got["points"].as_array().unwrap();
    assert_eq!(points.len(), 2, "{got}");
    assert_eq!(points[0]["id"], "7");
    assert_eq!(points[0]["payload"]["title"], fixture.payloads[7]["title"]);
    assert_eq!(
        points[1]["payload"],
        serde_json::json!({"title": "From JSON", "n": 2})
    );
    let got = ok(
        a,
        &["points", "get", "wiki", "npy-3", "--with-vector", "--json"],
    )
    .json();
    assert_eq!(got["points"][0]["vector"].as_array().unwrap().len(), 384);
    let text = ok(a, &["points", "get", "wiki", "7", "missing"]);
    assert!(text.stdout.starts_with("7\t{"), "{}", text.stdout);
    assert!(
        text.stderr.contains("not found: missing"),
        "{}",
        text.stderr
    );

    // --- search ---------------------------------------------------------------------
    let found = ok(
        a,
        &["search", "wiki", "--from-id", "7", "--k", "5", "--json"],
    )
    .json();
    assert_eq!(found["hits"][0]["id"], "7", "{found}");
    assert_eq!(found["hits"].as_array().unwrap().len(), 5);
    let text = ok(a, &["search", "wiki", "--from-id", "7", "--k", "3"]).stdout;
    assert!(text.trim_start().starts_with("1  7 "), "{text}");

    let query = write(
        dir.path(),
        "query.json",
        serde_json::to_string(&fixture.queries[0])
            .unwrap()
            .as_bytes(),
    );
    let title = fixture.payloads[fixture.truth[0][0]]["title"]
        .as_str()
        .unwrap();
    let filter = serde_json::json!({"must": [{"field": {"key": "title", "keyword": title}}]});
    let found = ok(
        a,
        &[
            "search",
            "wiki",
            "--vector-file",
            &query,
            "--k",
            "20",
            "--ef",
            "128",
            "--filter",
            &filter.to_string(),
            "--with-payload",
            "--json",
        ],
    )
    .json();
    let hits = found["hits"].as_array().unwrap();
    assert!(!hits.is_empty());
    assert!(
        hits.iter().all(|h| h["payload"]["title"] == title),
        "{found}"
    );
    assert_eq!(hits[0]["id"], fixture.truth[0][0].to_string(), "{found}");
    let inline: Vec<String> = fixture.queries[0].iter().map(f32::to_string).collect();
    let found = ok(
        a,
        &["search", "wiki", "--vector", &inline.join(","), "--json"],
    )
    .json();
    assert_eq!(
        found["hits"][0]["id"],
        fixture.truth[0][0].to_string(),
        "{found}"
    );

    // --- delete ---------------------------------------------------------------------
    let deleted = ok(
        a,
        &["points", "delete", "wiki", "npy-0", "npy-1", "no-such-id"],
    );
    assert_eq!(deleted.stdout.trim(), "deleted 2 points");
    let deleted = ok(
        a,
        &[
            "points",
            "delete",
            "wiki",
            "--filter",
            r#"{"must": [{"has_id": {"ids": ["j0", "j1"]}}]}"#,
            "--json",
        ],
    )
    .json();
    assert_eq!(deleted["deleted"], 2);
    assert_eq!(ok(a, &["points", "count", "wiki"]).stdout.trim(), "2009");

    // --- errors ---------------------------------------------------------------------
    let missing = fails(a, &["points", "count", "nope"]);
    assert!(
        missing.stderr.starts_with("error: NOT_FOUND: "),
        "{}",
        missing.stderr
    );
    let missing = fails(a, &["search", "nope", "--vector", "0.1,0.2"]);
    assert!(
        missing.stderr.starts_with("error: NOT_FOUND: "),
        "{}",
        missing.stderr
    );
    let missing = fails(a, &["collections", "describe", "nope", "--json"]);
    let error: Value = serde_json::from_str(missing.stderr.trim()).unwrap();
    assert_eq!(error["error"]["code"], "NOT_FOUND", "{error}");
    let upload = fails(
        a,
        &[
            "points",
            "upsert",
            "nope",
            "--file",
            &testdata("base.fvecs"),
        ],
    );
    assert!(
        upload.stderr.starts_with("error: NOT_FOUND: "),
        "{}",
        upload.stderr
    );
    let bad = fails(a, &["search", "wiki", "--vector", "0.1,0.2"]);
    assert!(
        bad.stderr.starts_with("error: INVALID_ARGUMENT: "),
        "{}",
        bad.stderr
    );
    let bad = fails(
        a,
        &[
            "search",
            "wiki",
            "--from-id",
            "7",
            "--filter",
            "{\"must\": 3}",
        ],
    );
    assert!(
        bad.stderr.contains("--filter is not a valid filter"),
        "{}",
        bad.stderr
    );
    let taken = fails(a, &["collections", "create", "wiki", "--dimension", "3"]);
    assert!(
        taken.stderr.starts_with("error: ALREADY_EXISTS: "),
        "{}",
        taken.stderr
    );

    // A bad row late in a file: nothing is sent, though earlier batches were fine.
    ok(a, &["collections", "create", "fresh", "--dimension", "384"]);
    let mut rows = fixture.base[..5].to_vec();
    rows[3][10] = f32::NAN;
    let nan = write(dir.path(), "nan.fvecs", &fvecs(&rows));
    let refused = fails(
        a,
        &["points", "upsert", "fresh", "--file", &nan, "--batch", "2"],
    );
    assert!(
        refused.stderr.contains("nan.fvecs: row 3: value 10 is NaN"),
        "{}",
        refused.stderr
    );
    let mut lines: Vec<String> = (0..4)
        .map(|i| serde_json::json!({"id": i, "vector": fixture.base[i]}).to_string())
        .collect();
    lines[2] = serde_json::json!({"id": 2, "vector": fixture.base[2][..383]}).to_string();
    let short = write(dir.path(), "short.jsonl", lines.join("\n").as_bytes());
    let refused = fails(
        a,
        &[
            "points", "upsert", "fresh", "--file", &short, "--batch", "1",
        ],
    );
    assert!(
        refused.stderr.contains(
            "short.jsonl: line 3: vector has 383 values, the collection has dimension 384"
        ),
        "{}",
        refused.stderr
    );
    assert_eq!(ok(a, &["points", "count", "fresh"]).stdout.trim(), "0");

    let unreachable = fails(
        a,
        &[
            "collections",
            "list",
            "--addr",
            "http://127.0.0.1:1",
            "--timeout",
            "2s",
        ],
    );
    assert!(
        unreachable.stderr.starts_with("error: UNAVAILABLE: "),
        "{}",
        unreachable.stderr
    );

    // --- drop -----------------------------------------------------------------------
    assert_eq!(
        ok(a, &["collections", "drop", "wiki"]).stdout.trim(),
        "dropped collection wiki"
    );
    let gone = fails(a, &["collections", "describe", "wiki"]);
    assert!(
        gone.stderr.starts_with("error: NOT_FOUND: "),
        "{}",
        gone.stderr
    );
    let listed = ok(a, &["collections", "list", "--json"]).json();
    assert_eq!(
        listed["collections"].as_array().unwrap().len(),
        1,
        "{listed}"
    );
    server.terminate();
}

/// The SDK's quickstart example, compiled into this test and run against a real
/// `vectron dev`.
#[path = "../../sdk/rust/examples/quickstart.rs"]
#[expect(
    dead_code,
    reason = "the example's main runs under `cargo run --example`"
)]
mod quickstart;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_quickstart_example_runs_against_vectron_dev() {
    let dir = tempdir();
    let server = dev(dir.path(), 1);
    let addr = format!("http://{}", grpc_addr(&server));
    let hits = quickstart::run(&addr, "books")
        .await
        .expect("the quickstart runs");
    let ids: Vec<&str> = hits.iter().map(|h| h.id.as_str()).collect();
    // Emma (3) is nearer than Neuromancer (4) but is no science fiction.
    assert_eq!(ids, ["1", "2", "4"], "{hits:?}");
    assert!(hits.iter().all(|h| h.payload.is_some()));
    // A second run finds the collection there and upserts the same points again.
    assert_eq!(quickstart::run(&addr, "books").await.unwrap().len(), 3);
    server.terminate();
}

/// `vectron bench` end to end against a real `vectron dev`: it creates the collection,
/// streams the fixture with its payloads, waits until every point is indexed, and
/// measures recall and a short search loop; its JSON line says so.
#[test]
fn bench_ingests_and_searches_through_the_gateway() {
    let dir = tempdir();
    let dev = dev(dir.path(), 2);
    let dataset = Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/wiki-minilm-2k");
    let out = vectron()
        .args(["bench", "--addr", &format!("http://{}", grpc_addr(&dev))])
        .arg("--dataset")
        .arg(&dataset)
        .args(["--collection", "b", "--create", "--shards", "2"])
        .args(["--concurrency", "2", "--seconds", "1", "--ef", "64"])
        .output()
        .expect("run vectron bench");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "bench failed: {stderr}");
    let line: Value = serde_json::from_slice(&out.stdout).expect("one JSON line");
    assert_eq!(line["points"], 2000, "{line}");
    assert_eq!(line["errors"], 0, "{line}");
    assert_eq!(line["consistency"], "linearizable", "{line}");
    assert!(
        line["ingest_vectors_per_s"].as_f64().unwrap() > 0.0,
        "{line}"
    );
    assert!(line["searches"].as_u64().unwrap() > 0, "{line}");
    assert!(line["recall"].as_f64().unwrap() >= 0.95, "{line}");
    let (p50, p99) = (
        line["p50_us"].as_u64().unwrap(),
        line["p99_us"].as_u64().unwrap(),
    );
    // A search crosses two network hops: no answer takes under 20 µs.
    assert!(20 <= p50 && p50 <= p99, "{line}");
    // Little's law: with 2 searches always in flight, the mean latency is 2 / QPS.
    let mean = line["mean_us"].as_f64().unwrap();
    let implied = 2.0 / line["qps"].as_f64().unwrap() * 1e6;
    assert!(
        (0.5..2.0).contains(&(mean / implied)),
        "mean {mean} µs against {implied} µs implied: {line}"
    );

    // --stream: the clients alternate unary and streamed searches; the first event
    // comes no later than the last.
    let streamed = vectron()
        .args(["bench", "--addr", &format!("http://{}", grpc_addr(&dev))])
        .arg("--dataset")
        .arg(&dataset)
        .args(["--collection", "b", "--skip-ingest", "--stream"])
        .args(["--concurrency", "2", "--seconds", "1", "--ef", "64"])
        .output()
        .expect("run vectron bench --stream");
    let stderr = String::from_utf8_lossy(&streamed.stderr);
    assert!(streamed.status.success(), "bench --stream failed: {stderr}");
    let line: Value = serde_json::from_slice(&streamed.stdout).expect("one JSON line");
    assert_eq!(line["errors"], 0, "{line}");
    assert!(line["searches"].as_u64().unwrap() > 0, "{line}");
    assert!(line["stream_searches"].as_u64().unwrap() > 0, "{line}");
    let (first, last) = (
        line["stream_first_p50_us"].as_u64().unwrap(),
        line["stream_p50_us"].as_u64().unwrap(),
    );
    assert!(20 <= first && first <= last, "{line}");
    assert!(line["stream_p50_ratio"].as_f64().unwrap() > 0.0, "{line}");

    // A second --create of the same collection is refused, naming it.
    let again = vectron()
        .args(["bench", "--addr", &format!("http://{}", grpc_addr(&dev))])
        .arg("--dataset")
        .arg(&dataset)
        .args(["--collection", "b", "--create", "--seconds", "1"])
        .output()
        .expect("run vectron bench");
    assert!(!again.status.success());
    let stderr = String::from_utf8_lossy(&again.stderr);
    assert!(stderr.contains("creating collection \"b\""), "{stderr}");
    dev.terminate();
}

/// `--cpus` gives one CPU per core; a list of another length is refused before
/// anything starts.
#[test]
fn a_worker_refuses_cpus_that_do_not_match_its_cores() {
    let dir = tempdir();
    let out = vectron()
        .args([
            "worker",
            "--cores",
            "2",
            "--cpus",
            "0",
            "--core-base-port",
            "0",
        ])
        .args(["--admin-addr", "127.0.0.1:0", "--data-dir"])
        .arg(dir.path())
        .output()
        .expect("run vectron worker");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("1 CPUs given for 2 cores"), "{stderr}");
}

#[test]
fn with_log_format_json_every_log_line_is_one_json_object() {
    let dir = tempdir();
    let log = dir.path().join("dev.log");
    let data = dir.path().join("data");
    let dev = crate::support::Process::start_logged(
        &[
            "--log-format",
            "json",
            "dev",
            "--data-dir",
            data.to_str().unwrap(),
            "--grpc-addr",
            "127.0.0.1:0",
            "--http-addr",
            "127.0.0.1:0",
            "--cores",
            "1",
            "--no-pin",
        ],
        "info",
        &log,
    );
    let addr = grpc_addr(&dev);
    ok(
        &addr,
        &["collections", "create", "logged", "--dimension", "4"],
    );
    dev.terminate();
    let logged = std::fs::read_to_string(&log).unwrap();
    let lines: Vec<Value> = logged
        .lines()
        .filter(|line| !line.trim().is_empty())
        .map(|line| {
            serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line:?}"))
        })
        .collect();
    for line in &lines {
        for field in ["timestamp", "level", "target", "message"] {
            assert!(line.get(field).is_some(), "no {field:?} in {line}");
        }
    }
    // An event's fields sit beside its message, not as text inside it.
    let core = lines
        .iter()
        .find(|l| l["message"] == "core serving")
        .unwrap_or_else(|| panic!("no \"core serving\" line in {logged:.2000}"));
    assert_eq!(core["core"], 0, "{core}");
    assert_eq!(core["level"], "INFO");
    assert!(
        lines
            .iter()
            .any(|l| l["message"] == "collection created" && l["collection"] == "logged"),
        "{logged:.4000}"
    );

    // A generated admin key stays in the ready line: json logs go to collectors.
    let authed = crate::support::Process::start_logged(
        &[
            "--log-format",
            "json",
            "dev",
            "--data-dir",
            data.to_str().unwrap(),
            "--grpc-addr",
            "127.0.0.1:0",
            "--http-addr",
            "127.0.0.1:0",
            "--cores",
            "1",
            "--no-pin",
            "--auth",
        ],
        "info",
        &log,
    );
    let key = authed.ready["admin_key"].as_str().unwrap().to_owned();
    authed.terminate();
    let logged = std::fs::read_to_string(&log).unwrap();
    assert!(
        !logged.contains(&key),
        "the admin key in the log: {logged:.4000}"
    );
    assert!(
        logged.contains("in the ready line on stdout"),
        "{logged:.4000}"
    );
    for line in logged.lines().filter(|l| !l.trim().is_empty()) {
        serde_json::from_str::<Value>(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line:?}"));
    }
}

/// A server process takes SIGTERM from before it says it is ready, so a supervisor that
/// stops it the moment the ready line appears gets a clean exit, not death by signal.
#[test]
fn servers_stopped_the_moment_they_are_ready_exit_cleanly() {
    let cluster = crate::support::Cluster::start(1);
    let keyed = ["--cluster-key-file", cluster.key_file.to_str().unwrap()];
    let dir = tempdir();
    for round in 0..3 {
        cluster.start_gateway(&[]).terminate();
        let mut worker = crate::support::cluster_worker_args(
            &dir.path().join(format!("worker-{round}")),
            &cluster.control.address,
            1,
        );
        worker.extend(keyed.map(str::to_owned));
        crate::support::Process::start(&worker.iter().map(String::as_str).collect::<Vec<_>>())
            .terminate();
        dev(&dir.path().join(format!("dev-{round}")), 1).terminate();
    }
    cluster.terminate();
}

/// `vectron tune` picks the smallest ef whose recall@10 (95% lower bound, against exact
/// search) meets the target on the fixture: that ef reaches the target against the
/// fixture's own ground truth, the ef below it does not meet the bound, the same seed
/// picks the same ef, and --apply makes it the collection's default with the
/// measurement beside it.
#[test]
fn tune_picks_the_smallest_ef_that_reaches_the_target_and_applies_it() {
    let fixture = Fixture::load();
    let dir = tempdir();
    let server = dev(&dir.path().join("data"), 2);
    let addr = format!("http://{}", grpc_addr(&server));
    let a = addr.as_str();
    ok(
        a,
        &[
            "collections",
            "create",
            "wiki",
            "--dimension",
            "384",
            "--metric",
            "cosine",
            "--shards",
            "2",
        ],
    );
    ok(
        a,
        &[
            "points",
            "upsert",
            "wiki",
            "--file",
            &testdata("base.fvecs"),
        ],
    );
    let queries = testdata("query.fvecs");
    let tuned = ok(
        a,
        &[
            "tune",
            "wiki",
            "--target-recall",
            "0.95",
            "--k",
            "10",
            "--queries",
            &queries,
            "--json",
        ],
    )
    .json();
    let ef = tuned["ef"].as_u64().unwrap();
    assert_eq!(tuned["queries"], fixture.queries.len());
    assert!(
        tuned["recall_lower_bound"].as_f64().unwrap() >= 0.95,
        "{tuned}"
    );
    let rungs = tuned["rungs"].as_array().unwrap();
    let below = rungs
        .iter()
        .filter(|r| r["ef"].as_u64().unwrap() < ef)
        .max_by_key(|r| r["ef"].as_u64().unwrap());
    if let Some(below) = below {
        assert!(
            below["recall_lower_bound"].as_f64().unwrap() < 0.95,
            "{below} also meets the target: {tuned}"
        );
    } else {
        assert_eq!(ef, 10, "nothing measured below {ef}: {tuned}");
    }

    // Against the fixture's ground truth, through the SDK, at the ef picked.
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let recall = runtime.block_on(async {
        let client = vectron_client::Client::builder(grpc_addr(&server))
            .connect()
            .await
            .unwrap();
        let mut total = 0.0;
        for (q, truth) in fixture.queries.iter().zip(&fixture.truth) {
            let found = client
                .search(
                    vectron_client::SearchRequest::new("wiki", q.clone(), 10)
                        .with_ef(u32::try_from(ef).unwrap()),
                )
                .await
                .unwrap();
            let ids: Vec<usize> = found.hits.iter().map(|h| h.id.parse().unwrap()).collect();
            total += crate::support::recall(&ids, truth, 10);
        }
        total / fixture.queries.len() as f64
    });
    assert!(recall >= 0.95, "recall@10 {recall} at the ef picked, {ef}");

    // Drawn from the collection: the same seed draws the same queries and picks the
    // same ef; --apply stores it.
    let drawn = [
        "tune",
        "wiki",
        "--target-recall",
        "0.9",
        "--sample",
        "100",
        "--seed",
        "7",
        "--json",
    ];
    let first = ok(a, &drawn).json();
    assert_eq!(first["queries"], 100);
    assert_eq!(first["applied"], false);
    let mut applying = drawn.to_vec();
    applying.push("--apply");
    let second = ok(a, &applying).json();
    assert_eq!(second["ef"], first["ef"], "{first}\n{second}");
    assert_eq!(second["applied"], true);
    let described = ok(a, &["collections", "describe", "wiki", "--json"]).json();
    assert_eq!(described["spec"]["hnsw"]["ef"], first["ef"]);
    assert_eq!(described["tuning"]["k"], 10);
    assert_eq!(described["tuning"]["queries"], 100);
    assert_eq!(described["tuning"]["target_recall"], 0.9);
    let text = ok(a, &["collections", "describe", "wiki"]).stdout;
    assert!(text.contains("tuned         ef="), "{text}");

    // A target nothing can promise, and a bad one, are refused with the reason.
    let refused = fails(a, &["tune", "wiki", "--target-recall", "1.5"]);
    assert!(
        refused.stderr.contains("--target-recall"),
        "{}",
        refused.stderr
    );
    server.terminate();
}
