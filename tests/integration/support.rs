//! What the end-to-end tests share: the fixture dataset, and real `vectron` processes
//! started on loopback with free ports, killed when dropped.

use std::fs::File;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, ChildStdout, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use serde_json::Value;

/// The 2,000-point wiki-minilm slice in `testdata/`.
pub struct Fixture {
    pub dim: usize,
    pub base: Vec<Vec<f32>>,
    pub queries: Vec<Vec<f32>>,
    /// Exact top-100 base rows per query, best first.
    pub truth: Vec<Vec<usize>>,
    /// One JSON object per base row (`id`, `title`, `section`, `text`).
    pub payloads: Vec<Value>,
}

fn read_vecs(path: &Path) -> Vec<Vec<[u8; 4]>> {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut rows = Vec::new();
    let mut at = 0;
    while at < bytes.len() {
        let d = i32::from_le_bytes(bytes[at..at + 4].try_into().unwrap()) as usize;
        at += 4;
        rows.push(
            (0..d)
                .map(|i| bytes[at + 4 * i..at + 4 * i + 4].try_into().unwrap())
                .collect(),
        );
        at += 4 * d;
    }
    rows
}

impl Fixture {
    pub fn load() -> Fixture {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/wiki-minilm-2k");
        let floats = |name: &str| -> Vec<Vec<f32>> {
            read_vecs(&dir.join(name))
                .into_iter()
                .map(|r| r.into_iter().map(f32::from_le_bytes).collect())
                .collect()
        };
        let base = floats("base.fvecs");
        let queries = floats("query.fvecs");
        let truth = read_vecs(&dir.join("groundtruth.ivecs"))
            .into_iter()
            .map(|r| {
                r.into_iter()
                    .map(|b| i32::from_le_bytes(b) as usize)
                    .collect()
            })
            .collect();
        let payloads = std::fs::read_to_string(dir.join("base.jsonl"))
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        Fixture {
            dim: base[0].len(),
            base,
            queries,
            truth,
            payloads,
        }
    }
}

/// A `vectron` child process, killed (SIGKILL) when dropped.
pub struct Process {
    pub child: Child,
    pub ready: Value,
    stdout: Option<BufReader<ChildStdout>>,
}

impl Process {
    /// Starts `vectron ARGS…` and waits for its `{"event":"ready",…}` line on stdout.
    /// It logs warnings and errors to the test's stderr, or what `VECTRON_TEST_LOG`
    /// names (a `VECTRON_LOG` filter) when set.
    pub fn start(args: &[&str]) -> Process {
        let log = std::env::var("VECTRON_TEST_LOG").unwrap_or_else(|_| "warn".to_owned());
        Self::start_with_log(args, &log, Stdio::inherit())
    }

    /// Starts `vectron ARGS…` logging at `filter` (a `VECTRON_LOG` filter) to `log`, a
    /// file the test reads afterwards; otherwise as [`Process::start`].
    pub fn start_logged(args: &[&str], filter: &str, log: &Path) -> Process {
        let file = File::create(log).expect("a log file");
        Self::start_with_log(args, filter, Stdio::from(file))
    }

    fn start_with_log(args: &[&str], filter: &str, stderr: Stdio) -> Process {
        let mut child = Command::new(env!("CARGO_BIN_EXE_vectron"))
            .args(args)
            .env("VECTRON_LOG", filter)
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .expect("start vectron");
        let stdout = BufReader::new(child.stdout.take().unwrap());
        let (tx, rx) = mpsc::channel();
        let reader = std::thread::spawn(move || {
            let mut stdout = stdout;
            let mut line = String::new();
            loop {
                line.clear();
                if stdout.read_line(&mut line).unwrap_or(0) == 0 {
                    let _ = tx.send(None);
                    return None;
                }
                if let Ok(v) = serde_json::from_str::<Value>(&line)
                    && v["event"] == "ready"
                {
                    let _ = tx.send(Some(v));
                    return Some(stdout);
                }
            }
        });
        let ready = match rx.recv_timeout(Duration::from_secs(60)) {
            Ok(Some(v)) => v,
            other => {
                let _ = child.kill();
                panic!("vectron {args:?} did not become ready: {other:?}");
            }
        };
        let stdout = reader.join().unwrap();
        Process {
            child,
            ready,
            stdout,
        }
    }

    /// SIGTERM, then wait for a clean exit.
    pub fn terminate(mut self) {
        // SAFETY: kill(2) on our own child's pid has no memory effects.
        let rc = unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        assert_eq!(rc, 0);
        let status = self.child.wait().unwrap();
        assert!(status.success(), "vectron exited with {status}");
        drop(self.stdout.take());
    }

    /// Sends `signal` (SIGSTOP to freeze the process, SIGCONT to let it go on). After
    /// SIGSTOP it waits until every thread of the process is stopped: kill(2) returns
    /// once the signal is queued, and a thread running on another CPU runs on until
    /// it is interrupted.
    pub fn signal(&self, signal: i32) {
        // SAFETY: kill(2) on our own child's pid has no memory effects.
        let rc = unsafe { libc::kill(self.child.id() as i32, signal) };
        assert_eq!(rc, 0, "kill({signal})");
        if signal == libc::SIGSTOP {
            let tasks = format!("/proc/{}/task", self.child.id());
            let stopped = || {
                std::fs::read_dir(&tasks).unwrap().all(|task| {
                    let stat = std::fs::read_to_string(task.unwrap().path().join("stat"))
                        .unwrap_or_default();
                    // The state follows the command name, which is in parentheses.
                    stat.rsplit_once(") ")
                        .is_some_and(|(_, rest)| rest.starts_with('T'))
                })
            };
            for _ in 0..1000 {
                if stopped() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(1));
            }
            panic!("the process did not stop within a second of SIGSTOP");
        }
    }

    /// SIGKILL, now.
    pub fn kill(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The command line of a `vectron worker` of `cores` unpinned cores on free loopback
/// ports, its data in `dir`, registering with the control plane at `control`.
pub fn cluster_worker_args(dir: &Path, control: &str, cores: usize) -> Vec<String> {
    let cores = cores.to_string();
    [
        "worker",
        "--data-dir",
        dir.to_str().unwrap(),
        "--cores",
        &cores,
        "--core-base-port",
        "0",
        "--admin-addr",
        "127.0.0.1:0",
        "--no-pin",
        "--control",
        control,
    ]
    .map(str::to_owned)
    .to_vec()
}

/// A `vectron worker` on free loopback ports with its data in `dir`.
pub fn worker(dir: &Path, cores: usize) -> Process {
    let data = dir.to_str().unwrap();
    let cores = cores.to_string();
    Process::start(&[
        "worker",
        "--data-dir",
        data,
        "--cores",
        &cores,
        "--core-base-port",
        "0",
        "--admin-addr",
        "127.0.0.1:0",
        "--no-pin",
    ])
}

/// `http://ADDR` of core `i` from a worker's ready line.
pub fn core_url(p: &Process, i: usize) -> String {
    format!("http://{}", p.ready["cores"][i]["addr"].as_str().unwrap())
}

/// A plain HTTP/1.1 GET: (status, body).
pub fn http_get(addr: &str, path: &str) -> (u16, String) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut raw = String::new();
    s.read_to_string(&mut raw).unwrap();
    let (head, body) = raw.split_once("\r\n\r\n").unwrap();
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    (status, body.to_owned())
}

/// A fresh temporary directory for one test.
pub fn tempdir() -> tempfile::TempDir {
    tempfile::tempdir().unwrap()
}

/// recall@k of `found` ids against the first `k` of `truth`.
pub fn recall(found: &[usize], truth: &[usize], k: usize) -> f64 {
    let truth: std::collections::HashSet<_> = truth.iter().take(k).collect();
    found.iter().take(k).filter(|i| truth.contains(i)).count() as f64 / k as f64
}

/// A `vectron control` process, killed when dropped.
pub struct ControlProcess {
    child: Child,
    pub address: String,
    log: std::path::PathBuf,
}

impl ControlProcess {
    pub fn start(dir: &Path, node_id: u64, addr: &str, join: Option<&str>) -> Self {
        Self::start_with(dir, node_id, addr, join, &[])
    }

    /// [`ControlProcess::start`] with `extra` arguments.
    pub fn start_with(
        dir: &Path,
        node_id: u64,
        addr: &str,
        join: Option<&str>,
        extra: &[&str],
    ) -> Self {
        let log = dir.join(format!("control-{node_id}.log"));
        let mut command = Command::new(env!("CARGO_BIN_EXE_vectron"));
        command
            .args(["control", "--node-id", &node_id.to_string(), "--addr", addr])
            .arg("--data-dir")
            .arg(dir.join(format!("control-{node_id}")))
            .args([
                "--election-timeout-ms",
                "300",
                "--worker-heartbeat-ms",
                "100",
                "--worker-timeout-ms",
                "1500",
            ])
            .stdout(Stdio::piped())
            .stderr(File::create(&log).unwrap());
        if let Some(join) = join {
            command.args(["--join", join]);
        }
        command.args(extra);
        let mut child = command.spawn().expect("spawn vectron control");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let address = line
            .trim()
            .rsplit(' ')
            .next()
            .unwrap_or_default()
            .to_owned();
        assert!(
            line.starts_with(&format!("control node {node_id} serving on ")),
            "node {node_id} did not start: {line:?}\n{}",
            std::fs::read_to_string(&log).unwrap_or_default()
        );
        Self {
            child,
            address,
            log,
        }
    }

    pub fn kill(&mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }
}

impl Drop for ControlProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!(
                "--- {}\n{}",
                self.log.display(),
                std::fs::read_to_string(&self.log).unwrap_or_default()
            );
        }
    }
}

/// A `vectron dev` on free loopback ports with its data in `dir`: a control plane, a
/// worker with `cores` cores and the gateway in one process.
pub fn dev(dir: &Path, cores: usize) -> Process {
    let cores = cores.to_string();
    dev_with(dir, &["--cores", &cores, "--no-pin"])
}

/// A `vectron dev` on free loopback ports with its data in `dir`, started with `flags`.
pub fn dev_with(dir: &Path, flags: &[&str]) -> Process {
    let mut args = vec![
        "dev",
        "--data-dir",
        dir.to_str().unwrap(),
        "--grpc-addr",
        "127.0.0.1:0",
        "--http-addr",
        "127.0.0.1:0",
    ];
    args.extend_from_slice(flags);
    Process::start(&args)
}

/// Runs `vectron ARGS…` to its end.
pub fn run_cli(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_vectron"))
        .args(args)
        .output()
        .expect("run vectron")
}

/// Runs `vectron ARGS…`, which must refuse to start; returns what it said on stderr.
pub fn refused(args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_vectron"))
        .args(args)
        .output()
        .expect("run vectron");
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!out.status.success(), "vectron {args:?} started: {stderr}");
    stderr
}

/// `host:port` of a `vectron dev`'s gRPC listener.
pub fn grpc_addr(p: &Process) -> String {
    p.ready["grpc"].as_str().unwrap().to_owned()
}

/// `host:port` of a `vectron dev`'s HTTP listener.
pub fn http_addr(p: &Process) -> String {
    p.ready["http"].as_str().unwrap().to_owned()
}

/// A real HTTP/1.1 client (hyper) for one server.
pub struct Http {
    client: hyper_util::client::legacy::Client<
        hyper_util::client::legacy::connect::HttpConnector,
        http_body_util::Full<bytes::Bytes>,
    >,
    base: String,
    /// Sent with every request.
    headers: Vec<(String, String)>,
}

impl Http {
    pub fn new(addr: &str) -> Http {
        let client =
            hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
                .build_http();
        Http {
            client,
            base: format!("http://{addr}"),
            headers: Vec::new(),
        }
    }

    /// This client, sending `name: value` with every request.
    pub fn with_header(&self, name: &str, value: &str) -> Http {
        let mut headers = self.headers.clone();
        headers.push((name.to_owned(), value.to_owned()));
        Http {
            client: self.client.clone(),
            base: self.base.clone(),
            headers,
        }
    }

    /// Sends a request; returns the status, the headers and the body as text.
    pub async fn send_full(
        &self,
        method: &str,
        path: &str,
        content_type: Option<&str>,
        body: Vec<u8>,
    ) -> (u16, hyper::HeaderMap, String) {
        use http_body_util::BodyExt as _;
        let mut request = hyper::Request::builder()
            .method(method)
            .uri(format!("{}{path}", self.base));
        if let Some(t) = content_type {
            request = request.header("content-type", t);
        }
        for (name, value) in &self.headers {
            request = request.header(name, value);
        }
        let request = request
            .body(http_body_util::Full::new(bytes::Bytes::from(body)))
            .unwrap();
        let response = self.client.request(request).await.unwrap();
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let body = response.into_body().collect().await.unwrap().to_bytes();
        (status, headers, String::from_utf8(body.to_vec()).unwrap())
    }

    /// Sends a request; returns the status and the body as text.
    pub async fn send(
        &self,
        method: &str,
        path: &str,
        content_type: Option<&str>,
        body: Vec<u8>,
    ) -> (u16, String) {
        let (status, _, body) = self.send_full(method, path, content_type, body).await;
        (status, body)
    }

    /// Sends JSON (or nothing) and parses the JSON answer.
    pub async fn json(&self, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        let (status, text) = match body {
            Some(body) => {
                self.send(
                    method,
                    path,
                    Some("application/json"),
                    body.to_string().into_bytes(),
                )
                .await
            }
            None => self.send(method, path, None, Vec::new()).await,
        };
        let value = serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("{method} {path}: {status} {text:?} is not JSON: {e}"));
        (status, value)
    }
}

/// The command line of a `vectron gateway` of the cluster whose control node is at
/// `control`, on free loopback ports, holding the cluster key in `key_file`.
fn gateway_args(control: &str, key_file: &Path, extra: &[&str]) -> Vec<String> {
    let mut args: Vec<String> = [
        "gateway",
        "--control",
        control,
        "--grpc-addr",
        "127.0.0.1:0",
        "--http-addr",
        "127.0.0.1:0",
        "--cluster-key-file",
        key_file.to_str().unwrap(),
    ]
    .map(str::to_owned)
    .to_vec();
    args.extend(extra.iter().map(|&a| a.to_owned()));
    args
}

/// A control node, workers of one core each and a gateway, as processes on loopback:
/// the smallest cluster that runs replicated shards. All of them hold the same cluster
/// key, so every call inside the cluster presents it.
pub struct Cluster {
    /// Held for its lifetime: the control node stops when the cluster goes.
    pub control: ControlProcess,
    /// The cluster key, and the file every process read it from.
    pub key: String,
    pub key_file: std::path::PathBuf,
    pub gateway: Process,
    /// `None` while killed.
    pub workers: Vec<Option<Process>>,
    /// Each worker's id, by index.
    pub worker_ids: Vec<String>,
    /// Each worker's command line, to start it again on its data.
    worker_args: Vec<Vec<String>>,
    // Last: the processes above stop before their directories go.
    _dir: tempfile::TempDir,
}

impl Cluster {
    /// Starts a control node, `workers` workers and a gateway, each ready.
    pub fn start(workers: usize) -> Self {
        let dir = tempdir();
        let key_file = dir.path().join("cluster.key");
        let drawn = run_cli(&["cluster", "key"]);
        assert!(drawn.status.success(), "{drawn:?}");
        let key = String::from_utf8(drawn.stdout).unwrap().trim().to_owned();
        std::fs::write(&key_file, format!("{key}\n")).unwrap();
        let keyed = ["--cluster-key-file", key_file.to_str().unwrap()];
        let control = ControlProcess::start_with(dir.path(), 1, "127.0.0.1:0", None, &keyed);
        let worker_args: Vec<Vec<String>> = (0..workers)
            .map(|i| {
                let data = dir.path().join(format!("worker-{i}"));
                let mut args = cluster_worker_args(&data, &control.address, 1);
                args.extend(keyed.map(str::to_owned));
                args
            })
            .collect();
        let workers: Vec<Option<Process>> = worker_args
            .iter()
            .map(|args| Some(Self::run(args)))
            .collect();
        let worker_ids = workers
            .iter()
            .map(|w| {
                w.as_ref().unwrap().ready["worker_id"]
                    .as_str()
                    .unwrap()
                    .to_owned()
            })
            .collect();
        let gateway = Self::run(&gateway_args(&control.address, &key_file, &[]));
        Self {
            control,
            key,
            key_file,
            gateway,
            workers,
            worker_ids,
            worker_args,
            _dir: dir,
        }
    }

    fn run(args: &[String]) -> Process {
        Process::start(&args.iter().map(String::as_str).collect::<Vec<_>>())
    }

    /// Starts another gateway of the cluster, holding its key, with `extra` flags.
    pub fn start_gateway(&self, extra: &[&str]) -> Process {
        Self::run(&gateway_args(&self.control.address, &self.key_file, extra))
    }

    /// The index of the worker with id `worker_id`.
    pub fn worker_index(&self, worker_id: &str) -> usize {
        self.worker_ids
            .iter()
            .position(|w| w == worker_id)
            .unwrap_or_else(|| panic!("no worker {worker_id}"))
    }

    /// SIGKILL to worker `i`.
    pub fn kill_worker(&mut self, i: usize) {
        self.workers[i].take().expect("the worker runs").kill();
    }

    /// Freezes worker `i` (SIGSTOP): its sockets stay open and nothing answers, as in a
    /// long pause of the whole machine.
    pub fn pause_worker(&self, i: usize) {
        self.workers[i]
            .as_ref()
            .expect("the worker runs")
            .signal(libc::SIGSTOP);
    }

    /// Lets a paused worker go on (SIGCONT).
    pub fn resume_worker(&self, i: usize) {
        self.workers[i]
            .as_ref()
            .expect("the worker runs")
            .signal(libc::SIGCONT);
    }

    /// Starts worker `i` again on its data (on other ports).
    pub fn restart_worker(&mut self, i: usize) {
        assert!(self.workers[i].is_none(), "worker {i} runs");
        self.workers[i] = Some(Self::run(&self.worker_args[i]));
    }

    /// Stops every process cleanly (SIGTERM).
    pub fn terminate(mut self) {
        for worker in self.workers.drain(..).flatten() {
            worker.terminate();
        }
        self.gateway.terminate();
    }
}
