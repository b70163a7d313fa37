//! Runs the placement cases in `testdata/*.txt`.
//!
//! A file holds cases separated by blank lines. A case is a few input lines, a `----`
//! line, and the expected output:
//!
//! ```text
//! # a comment
//! worker w1 cores=2            a live worker with cores 0 and 1
//! worker w2 cores=1 down       a worker the control plane marked down
//! worker w3 cores=1 zone=b     a worker with a zone label
//! core w1/0 replicas=3 points=900 memory=4096 leaders=2   existing load of one core
//! place shards=3 replicas=1    what to place; without shards=, one per live core
//! ----
//! shard 0: w2/0                the slots of every shard, in order
//! load: w1/0=4 w1/1=1 w2/0=1   replicas per core afterwards
//! ```
//!
//! or `error: <message>` when the placement is refused.

use std::fmt::Write as _;
use std::path::Path;

use super::{CoreLoad, WorkerLoad, live_cores, place};

#[test]
fn placement_cases() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/placement/testdata");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "txt"))
        .collect();
    files.sort();
    assert!(
        files.len() >= 5,
        "placement cases missing in {}",
        dir.display()
    );
    let mut failures = Vec::new();
    let mut count = 0;
    for file in &files {
        let text = std::fs::read_to_string(file).unwrap();
        for (line, case) in split_cases(&text) {
            count += 1;
            let (input, expected) = case
                .split_once("----\n")
                .unwrap_or_else(|| panic!("{}:{line}: no ---- line", file.display()));
            let got = run(input).unwrap_or_else(|e| panic!("{}:{line}: {e}", file.display()));
            if got.trim_end() != expected.trim_end() {
                failures.push(format!(
                    "{}:{line}\n--- expected\n{}\n--- got\n{}",
                    file.display(),
                    expected.trim_end(),
                    got.trim_end()
                ));
            }
        }
    }
    assert!(count >= 8, "only {count} placement cases ran");
    assert!(failures.is_empty(), "\n{}", failures.join("\n\n"));
}

/// Cases with the line number each starts on.
fn split_cases(text: &str) -> Vec<(usize, String)> {
    let mut cases = Vec::new();
    let mut current = String::new();
    let mut start = 0;
    for (n, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            if !current.trim().is_empty() {
                cases.push((start, std::mem::take(&mut current)));
            }
            current.clear();
            continue;
        }
        if current.is_empty() {
            start = n + 1;
        }
        if line.trim_start().starts_with('#') {
            continue;
        }
        current.push_str(line.trim());
        current.push('\n');
    }
    if !current.trim().is_empty() {
        cases.push((start, current));
    }
    cases
}

fn run(input: &str) -> Result<String, String> {
    let mut workers: Vec<WorkerLoad> = Vec::new();
    let mut request = None;
    for line in input.lines() {
        let mut words = line.split_whitespace();
        match words.next() {
            Some("worker") => {
                let id = words.next().ok_or("worker needs an id")?;
                let mut cores = 0;
                let mut live = true;
                let mut zone = String::new();
                for word in words {
                    match word.split_once('=') {
                        Some(("cores", n)) => cores = n.parse().map_err(|e| format!("{e}"))?,
                        Some(("zone", z)) => z.clone_into(&mut zone),
                        None if word == "down" => live = false,
                        _ => return Err(format!("unknown worker attribute {word}")),
                    }
                }
                workers.push(WorkerLoad {
                    worker_id: id.to_owned(),
                    live,
                    zone,
                    cores: (0..cores)
                        .map(|core| CoreLoad {
                            core,
                            ..CoreLoad::default()
                        })
                        .collect(),
                });
            }
            Some("core") => {
                let slot = words.next().ok_or("core needs worker/core")?;
                let (id, core) = slot.split_once('/').ok_or("core needs worker/core")?;
                let core: u32 = core.parse().map_err(|e| format!("{e}"))?;
                let load = workers
                    .iter_mut()
                    .find(|w| w.worker_id == id)
                    .and_then(|w| w.cores.iter_mut().find(|c| c.core == core))
                    .ok_or_else(|| format!("no core {slot}"))?;
                for word in words {
                    let (key, value) = word.split_once('=').ok_or("core attributes are k=v")?;
                    let value: u64 = value.parse().map_err(|e| format!("{e}"))?;
                    match key {
                        "replicas" => load.replicas = u32::try_from(value).unwrap(),
                        "points" => load.points = value,
                        "memory" => load.memory_bytes = value,
                        "leaders" => load.leaders = u32::try_from(value).unwrap(),
                        _ => return Err(format!("unknown core attribute {key}")),
                    }
                }
            }
            Some("place") => {
                let mut shards = None;
                let mut replicas = 1;
                for word in words {
                    match word.split_once('=') {
                        Some(("shards", n)) => {
                            shards = Some(n.parse().map_err(|e| format!("{e}"))?);
                        }
                        Some(("replicas", n)) => {
                            replicas = n.parse().map_err(|e| format!("{e}"))?;
                        }
                        _ => return Err(format!("unknown place attribute {word}")),
                    }
                }
                request = Some((shards, replicas));
            }
            other => return Err(format!("unknown directive {other:?}")),
        }
    }
    let (shards, replicas) = request.ok_or("no place line")?;
    let shards = shards.unwrap_or_else(|| live_cores(&workers));
    let mut out = String::new();
    match place(&workers, shards, replicas) {
        Err(e) => writeln!(out, "error: {e}").unwrap(),
        Ok(placement) => {
            for (shard, slots) in placement.iter().enumerate() {
                let slots: Vec<String> = slots
                    .iter()
                    .map(|s| format!("{}/{}", s.worker_id, s.core))
                    .collect();
                writeln!(out, "shard {shard}: {}", slots.join(" ")).unwrap();
            }
            let mut load = Vec::new();
            for worker in &workers {
                for core in &worker.cores {
                    let placed = placement
                        .iter()
                        .flatten()
                        .filter(|s| s.worker_id == worker.worker_id && s.core == core.core)
                        .count();
                    let total = core.replicas as usize + placed;
                    load.push(format!("{}/{}={total}", worker.worker_id, core.core));
                }
            }
            writeln!(out, "load: {}", load.join(" ")).unwrap();
        }
    }
    Ok(out)
}
