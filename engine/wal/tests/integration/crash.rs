//! Process crashes for real: this test binary re-runs itself as a child that appends from
//! many tasks and prints every acknowledged LSN, is killed with SIGKILL mid-stream, and the
//! parent reopens the log and checks that every acknowledged record is there and intact,
//! that LSNs run without a hole, and that nothing follows a torn record. Several rounds run
//! on the same directory, each child recovering what the last one left.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::rc::Rc;
use std::time::{Duration, Instant};

use vectron_wal::{Lsn, Options, SyncPolicy, Wal};

use crate::support::{Batch, Driver, Owned, collect};

const CHILD_DIR: &str = "VECTRON_WAL_CRASH_DIR";
const CHILD_DRIVER: &str = "VECTRON_WAL_CRASH_DRIVER";
const CHILD_SYNC: &str = "VECTRON_WAL_CRASH_SYNC";
const WRITERS: u64 = 16;
/// Small segments, so the kill also lands around segment switches.
const SEGMENT_BYTES: u64 = 64 << 10;

/// The record writer `w` appends as its `seq`-th: every byte follows from (w, seq), so the
/// parent can check a record it never saw acknowledged is still intact.
fn crash_batch(w: u64, seq: u64) -> Batch {
    let points = 1 + (seq % 3) as usize;
    let dim = 16u32;
    let ids = (0..points).map(|i| format!("w{w}-s{seq}-{i}")).collect();
    let vectors = (0..points * dim as usize)
        .map(|j| (w * 1_000_003 + seq * 7919 + j as u64) as f32 * 0.001)
        .collect();
    let payloads = (0..points)
        .map(|i| {
            if (seq + i as u64).is_multiple_of(4) {
                Vec::new()
            } else {
                format!("{{\"w\":{w},\"seq\":{seq}}}").into_bytes()
            }
        })
        .collect();
    Batch {
        ids,
        dim,
        vectors,
        payloads,
    }
}

/// Reads (w, seq) back from a record's first id.
fn origin(batch: &Batch) -> (u64, u64) {
    let id = batch.ids.first().expect("batches are never empty");
    let rest = id.strip_prefix('w').expect("crash ids start with w");
    let mut parts = rest.split('-');
    let w = parts.next().unwrap().parse().unwrap();
    let seq = parts
        .next()
        .unwrap()
        .strip_prefix('s')
        .unwrap()
        .parse()
        .unwrap();
    (w, seq)
}

fn options(sync: &str) -> Options {
    let policy = match sync {
        "always" => SyncPolicy::Always,
        "never" => SyncPolicy::Never,
        other => panic!("unknown sync policy {other:?}"),
    };
    Options::default().sync(policy).segment_bytes(SEGMENT_BYTES)
}

/// The child: appends until it is killed, or stops by itself after a bound.
#[test]
#[ignore = "the child process of the crash tests; they run it"]
fn child_process() {
    let Ok(dir) = std::env::var(CHILD_DIR) else {
        eprintln!("child_process only runs as the child of the crash tests");
        return;
    };
    let driver = Driver::parse(&std::env::var(CHILD_DRIVER).unwrap());
    let options = options(&std::env::var(CHILD_SYNC).unwrap());
    driver.block_on(async move {
        let wal = Rc::new(Wal::open(&dir, options).await.unwrap());
        // Continue each writer's sequence after what earlier children left.
        let mut next_seq = vec![0u64; WRITERS as usize];
        for (_, rec) in collect(&*wal, Lsn::ZERO).unwrap() {
            if let Owned::Upsert(b) = rec {
                let (w, seq) = origin(&b);
                next_seq[w as usize] = next_seq[w as usize].max(seq + 1);
            }
        }
        let deadline = Instant::now() + Duration::from_secs(60);
        let writers: Vec<_> = (0..WRITERS)
            .map(|w| {
                let wal = wal.clone();
                let first = next_seq[w as usize];
                monoio::spawn(async move {
                    for seq in first..first + 20_000 {
                        if Instant::now() > deadline {
                            break;
                        }
                        let batch = crash_batch(w, seq);
                        let lsn = wal.append(batch.record()).await.unwrap();
                        println!("ACK {lsn} {w} {seq}");
                    }
                })
            })
            .collect();
        for t in writers {
            t.await;
        }
    });
}

/// Kills the child if the parent fails before it does.
struct Reaper(Child);

impl Drop for Reaper {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Runs one child until it has acknowledged at least `kill_after` records, SIGKILLs it,
/// and returns every acknowledgement it printed: LSN → (writer, seq).
fn run_child(
    dir: &Path,
    driver: Driver,
    sync: &str,
    kill_after: usize,
) -> BTreeMap<u64, (u64, u64)> {
    let exe = std::env::current_exe().unwrap();
    let child = Command::new(exe)
        .args([
            "crash::child_process",
            "--exact",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_DIR, dir)
        .env(
            CHILD_DRIVER,
            match driver {
                Driver::Uring => "uring",
                Driver::Legacy => "legacy",
            },
        )
        .env(CHILD_SYNC, sync)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let mut child = Reaper(child);
    let mut out = BufReader::new(child.0.stdout.take().unwrap());
    let mut acks = BTreeMap::new();
    let mut line = String::new();
    let mut killed = false;
    loop {
        line.clear();
        if out.read_line(&mut line).unwrap() == 0 {
            break;
        }
        // A line cut by the kill has no newline: the ack behind it is unknown, not claimed.
        let Some(ack) = line.strip_suffix('\n').and_then(|l| l.strip_prefix("ACK ")) else {
            continue;
        };
        let mut f = ack.split(' ').map(|x| x.parse::<u64>().unwrap());
        let (lsn, w, seq) = (f.next().unwrap(), f.next().unwrap(), f.next().unwrap());
        assert!(
            acks.insert(lsn, (w, seq)).is_none(),
            "LSN {lsn} acknowledged twice"
        );
        if !killed && acks.len() >= kill_after {
            // SIGKILL: no destructor, no flush, no close. Lines already in the pipe are
            // still read below: those records were acknowledged before the kill.
            child.0.kill().unwrap();
            killed = true;
        }
    }
    let status = child.0.wait().unwrap();
    assert!(killed, "the child stopped before it was killed: {status}");
    acks
}

fn crash_rounds(driver: Driver, sync: &str) {
    let dir = tempfile::tempdir().unwrap();
    let mut acked: BTreeMap<u64, (u64, u64)> = BTreeMap::new();
    for (round, kill_after) in [150usize, 400, 260].into_iter().enumerate() {
        let fresh = run_child(dir.path(), driver, sync, kill_after);
        if let (Some(prev), Some(first)) = (acked.keys().next_back(), fresh.keys().next()) {
            assert!(first > prev, "round {round}: LSN {first} handed out again");
        }
        acked.extend(fresh);

        driver.block_on(async {
            let wal = Wal::open(dir.path(), options(sync)).await.unwrap();
            let log = collect(&wal, Lsn::ZERO).unwrap();
            // LSNs run 1, 2, 3, … without a hole (replay also checks this record by record).
            for (i, (lsn, _)) in log.iter().enumerate() {
                assert_eq!(lsn.get(), i as u64 + 1, "round {round}: hole in the log");
            }
            // Every record present is intact: it is exactly what its writer appended.
            let mut at = BTreeMap::new();
            for (lsn, rec) in &log {
                let Owned::Upsert(batch) = rec else {
                    panic!("round {round}: unexpected {rec:?}")
                };
                let (w, seq) = origin(batch);
                assert_eq!(
                    batch,
                    &crash_batch(w, seq),
                    "round {round}: LSN {lsn} damaged"
                );
                at.insert(lsn.get(), (w, seq));
            }
            // Every acknowledged record is present, at its LSN.
            for (lsn, who) in &acked {
                assert_eq!(
                    at.get(lsn),
                    Some(who),
                    "round {round}: acknowledged LSN {lsn} lost"
                );
            }
            assert!(log.len() >= acked.len());
            wal.close().await.unwrap();
        });
    }
}

#[test]
fn sigkill_uring_always() {
    crash_rounds(Driver::Uring, "always");
}

#[test]
fn sigkill_legacy_always() {
    crash_rounds(Driver::Legacy, "always");
}

#[test]
fn sigkill_uring_never() {
    crash_rounds(Driver::Uring, "never");
}

#[test]
fn sigkill_legacy_never() {
    crash_rounds(Driver::Legacy, "never");
}
