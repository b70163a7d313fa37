//! Model-based property test: random appends (single, concurrent, abandoned), syncs,
//! checkpoints, truncations of either end, resets, clean reopens and crashes (every crash-image mode) against an
//! in-memory model, in both formats (v2 records carry a term; a v2 log also takes raw
//! copies of its own records' bodies). After every reopen the log must be a prefix of the
//! model that holds at least everything the model knows durable (or, for a process crash,
//! written), and must equal it record for record, terms included.

use std::rc::Rc;
use std::time::Duration;

use proptest::prelude::*;
use vectron_wal::{
    AppendError, CrashMode, Fault, FaultStorage, Format, Lsn, Options, SyncPolicy, Wal, WalError,
};

use crate::support::{Batch, Driver, Owned, collect_terms};

#[derive(Debug, Clone)]
enum Op {
    /// One awaited append: an upsert of `points` points, or a delete.
    Append {
        points: usize,
        dim: u32,
        delete: bool,
    },
    /// `n` appends from concurrent tasks, all awaited.
    Burst {
        n: u64,
    },
    /// A checkpoint marker in v1; a Raft blank or membership entry in v2.
    Checkpoint,
    /// v2: `append_raw` of the body of the record `back` places from the end, read back
    /// from the log (a follower storing what a leader sent).
    Copy {
        back: u64,
    },
    Sync,
    /// `truncate_prefix` covering this percentage of the log.
    Truncate {
        percent: u64,
    },
    /// `truncate_after`, keeping this percentage of the records after the last
    /// `truncate_prefix`.
    Cut {
        percent: u64,
    },
    /// `reset_after` the last LSN plus `delta` (before the end when negative): every
    /// record goes, and the log goes on after that LSN.
    Reset {
        delta: i64,
    },
    /// Close cleanly and reopen.
    Reopen,
    /// `abandoned` appends are made and not awaited; after `yields` turns of the runtime
    /// the machine crashes, leaving an image of `mode`.
    Crash {
        mode: CrashMode,
        abandoned: u64,
        yields: u8,
    },
    /// The next write (or sync) fails: the log is poisoned, then crashes into `mode`.
    Fail {
        sync: bool,
        mode: CrashMode,
    },
}

fn op() -> impl Strategy<Value = Op> {
    let mode = prop_oneof![
        Just(CrashMode::SyncedOnly),
        Just(CrashMode::AllWritten),
        Just(CrashMode::ZeroedUnsynced),
        (0u64..600).prop_map(|bytes| CrashMode::Torn { bytes }),
    ];
    prop_oneof![
        8 => (1usize..4, 1u32..24, proptest::bool::weighted(0.2))
            .prop_map(|(points, dim, delete)| Op::Append { points, dim, delete }),
        3 => (2u64..12).prop_map(|n| Op::Burst { n }),
        1 => Just(Op::Checkpoint),
        2 => (1u64..8).prop_map(|back| Op::Copy { back }),
        2 => Just(Op::Sync),
        1 => (0u64..=100).prop_map(|percent| Op::Truncate { percent }),
        2 => (0u64..=100).prop_map(|percent| Op::Cut { percent }),
        1 => Just(Op::Reopen),
        1 => (-3i64..6).prop_map(|delta| Op::Reset { delta }),
        2 => (mode.clone(), 0u64..6, 0u8..4).prop_map(|(mode, abandoned, yields)| Op::Crash { mode, abandoned, yields }),
        1 => (proptest::bool::ANY, mode).prop_map(|(sync, mode)| Op::Fail { sync, mode }),
    ]
}

fn format() -> impl Strategy<Value = Format> {
    prop_oneof![Just(Format::V1), Just(Format::V2)]
}

fn policy() -> impl Strategy<Value = SyncPolicy> {
    prop_oneof![
        Just(SyncPolicy::Always),
        Just(SyncPolicy::Never),
        Just(SyncPolicy::Interval(Duration::from_millis(2))),
    ]
}

/// What the log must hold.
#[derive(Debug, Default)]
struct Model {
    /// Every record handed an LSN, with its term, in LSN order (LSN = index + 1).
    log: Vec<(u64, Owned)>,
    /// Records known durable: they survive any crash.
    durable: usize,
    /// Records acknowledged: they survive a process crash.
    acked: usize,
    /// Highest LSN a truncation covered.
    covered: u64,
    /// Cuts so far: records written after a cut differ from the ones it removed at the
    /// same LSNs, so a cut record that came back would be seen.
    cuts: u64,
    /// The term new records are written in: 0 in v1; in v2 it grows at every cut, as a
    /// new leader's would.
    term: u64,
}

impl Model {
    fn ack(&mut self, policy: SyncPolicy, upto: usize) {
        self.acked = self.acked.max(upto);
        if policy == SyncPolicy::Always {
            self.durable = self.durable.max(upto);
        }
    }
}

/// Yields to the runtime once.
async fn yield_now() {
    let mut yielded = false;
    std::future::poll_fn(|cx| {
        if yielded {
            return std::task::Poll::Ready(());
        }
        yielded = true;
        cx.waker().wake_by_ref();
        std::task::Poll::Pending
    })
    .await;
}

fn seeded_record(model: &Model, points: usize, dim: u32, delete: bool) -> Owned {
    let seed = model.log.len() as u64 + 1 + (model.cuts << 32);
    if delete {
        Owned::Delete((0..points).map(|i| format!("d{seed}-{i}")).collect())
    } else {
        Owned::Upsert(Batch::seeded(seed, points, dim))
    }
}

/// Checks a freshly opened log against the model, holding at least `floor` records, and
/// brings the model to what the log holds.
fn verify(
    wal: &Wal<FaultStorage>,
    model: &mut Model,
    floor: usize,
    exact: bool,
) -> Result<(), TestCaseError> {
    let first = wal.stats().first_lsn.get().max(1);
    let got = collect_terms(wal, Lsn::new(first))
        .map_err(|e| TestCaseError::fail(format!("replay: {e}")))?;
    let total = first as usize - 1 + got.len();
    prop_assert!(
        first <= model.covered + 1 || got.is_empty(),
        "log starts at {first} but only {} was covered",
        model.covered
    );
    prop_assert!(
        total >= floor,
        "lost records: {total} left, {floor} had to survive"
    );
    prop_assert!(
        total <= model.log.len(),
        "{total} records, only {} appended",
        model.log.len()
    );
    if exact {
        prop_assert_eq!(total, model.log.len());
    }
    for (lsn, term, rec) in &got {
        prop_assert_eq!(
            Some(&(*term, rec.clone())),
            model.log.get(lsn.get() as usize - 1),
            "LSN {}",
            lsn
        );
    }
    prop_assert_eq!(wal.last_lsn(), Lsn::new(total as u64));
    model.log.truncate(total);
    model.covered = model.covered.min(total as u64);
    // Opening syncs what it recovered.
    model.durable = total;
    model.acked = total;
    Ok(())
}

fn run(
    driver: Driver,
    policy: SyncPolicy,
    format: Format,
    ops: Vec<Op>,
) -> Result<(), TestCaseError> {
    let root = tempfile::tempdir().unwrap();
    let options = Options::default()
        .segment_bytes(4096)
        .sync(policy)
        .format(format);
    driver.block_on(async move {
        let mut dir = root.path().join("log-0");
        let mut storage = FaultStorage::new();
        let mut wal = Rc::new(
            Wal::open_with(storage.clone(), &dir, options)
                .await
                .unwrap(),
        );
        let mut model = Model {
            term: u64::from(format == Format::V2),
            ..Model::default()
        };
        for (step, op) in ops.into_iter().enumerate() {
            match op {
                Op::Append {
                    points,
                    dim,
                    delete,
                } => {
                    let rec = seeded_record(&model, points, dim, delete);
                    let lsn = wal.append_entry(model.term, rec.record()).await.unwrap();
                    model.log.push((model.term, rec));
                    prop_assert_eq!(lsn.get() as usize, model.log.len());
                    model.ack(policy, model.log.len());
                }
                Op::Burst { n } => {
                    let tasks: Vec<_> = (0..n)
                        .map(|i| {
                            let wal = wal.clone();
                            let batch = Batch::seeded(10_000 + step as u64 * 100 + i, 1, 4);
                            let term = model.term;
                            monoio::spawn(async move {
                                let lsn = wal.append_entry(term, batch.record()).await.unwrap();
                                (lsn, batch)
                            })
                        })
                        .collect();
                    let mut done = Vec::new();
                    for t in tasks {
                        done.push(t.await);
                    }
                    done.sort_by_key(|(lsn, _)| *lsn);
                    for (lsn, batch) in done {
                        model.log.push((model.term, Owned::Upsert(batch)));
                        prop_assert_eq!(lsn.get() as usize, model.log.len());
                    }
                    model.ack(policy, model.log.len());
                }
                Op::Checkpoint => {
                    let len = model.log.len() as u64;
                    let rec = match format {
                        Format::V1 => Owned::Checkpoint(Lsn::new(len)),
                        Format::V2 if len.is_multiple_of(2) => Owned::Blank,
                        Format::V2 => Owned::Membership(format!("voters {len}").into_bytes()),
                    };
                    wal.append_entry(model.term, rec.record()).await.unwrap();
                    model.log.push((model.term, rec));
                    model.ack(policy, model.log.len());
                }
                Op::Copy { back } => {
                    let len = model.log.len() as u64;
                    let first = wal.stats().first_lsn.get().max(1);
                    if len < back || len + 1 - back < first {
                        continue;
                    }
                    let from = Lsn::new(len + 1 - back);
                    let (body, rec) = {
                        let mut replay = wal.replay(from).unwrap();
                        let view = replay.next_record().unwrap().expect("a record");
                        (
                            view.body_bytes().to_vec(),
                            model.log[from.get() as usize - 1].1.clone(),
                        )
                    };
                    let next = Lsn::new(len + 1);
                    let copied = wal.append_raw(next, model.term, &body).await;
                    match format {
                        Format::V1 => {
                            prop_assert!(
                                matches!(copied, Err(AppendError::Rejected(_))),
                                "{:?}",
                                copied
                            );
                        }
                        Format::V2 => {
                            prop_assert_eq!(copied.unwrap(), next);
                            model.log.push((model.term, rec));
                            model.ack(policy, model.log.len());
                            // Out of order, it is refused and changes nothing.
                            let skipped =
                                wal.append_raw(Lsn::new(len + 5), model.term, &body).await;
                            prop_assert!(
                                matches!(skipped, Err(AppendError::Rejected(_))),
                                "{:?}",
                                skipped
                            );
                        }
                    }
                }
                Op::Sync => {
                    let durable = wal.sync().await.unwrap();
                    prop_assert_eq!(durable.get() as usize, model.log.len());
                    model.durable = model.log.len();
                }
                Op::Truncate { percent } => {
                    let covers = model.log.len() as u64 * percent / 100;
                    wal.truncate_prefix(Lsn::new(covers)).await.unwrap();
                    model.covered = model.covered.max(covers);
                }
                Op::Cut { percent } => {
                    let len = model.log.len() as u64;
                    let keep = model.covered + (len - model.covered) * percent / 100;
                    wal.truncate_after(Lsn::new(keep)).await.unwrap();
                    prop_assert_eq!(wal.last_lsn(), Lsn::new(keep.min(len)));
                    model.log.truncate(keep as usize);
                    model.durable = model.durable.min(keep as usize);
                    model.acked = model.acked.min(keep as usize);
                    model.cuts += 1;
                    if format == Format::V2 {
                        model.term += 1;
                    }
                }
                Op::Reset { delta } => {
                    let len = model.log.len() as u64;
                    let after = len.saturating_add_signed(delta);
                    wal.reset_after(Lsn::new(after)).await.unwrap();
                    prop_assert_eq!(wal.last_lsn(), Lsn::new(after));
                    prop_assert_eq!(wal.stats().segments, 1);
                    // Nothing at or before `after` is held any more; what stands in for
                    // those LSNs in the model is never read back (`covered`).
                    model.log.resize(after as usize, (u64::MAX, Owned::Blank));
                    model.covered = after;
                    model.durable = after as usize;
                    model.acked = after as usize;
                    model.cuts += 1;
                    if format == Format::V2 {
                        model.term += 1;
                    }
                }
                Op::Reopen => {
                    wal.close().await.unwrap();
                    model.durable = model.log.len();
                    storage = FaultStorage::new();
                    wal = Rc::new(
                        Wal::open_with(storage.clone(), &dir, options)
                            .await
                            .unwrap(),
                    );
                    let floor = model.log.len();
                    verify(&wal, &mut model, floor, true)?;
                }
                Op::Crash {
                    mode,
                    abandoned,
                    yields,
                } => {
                    for i in 0..abandoned {
                        let rec = seeded_record(&model, 1 + i as usize % 3, 8, false);
                        // The LSN is handed out at the call; the future is dropped unawaited,
                        // and the record may or may not reach the disk before the crash.
                        drop(wal.append_entry(model.term, rec.record()));
                        model.log.push((model.term, rec));
                    }
                    for _ in 0..yields {
                        yield_now().await;
                    }
                    let image = root.path().join(format!("log-{}", step + 1));
                    storage.crash_image(&dir, &image, mode).unwrap();
                    let floor = if mode == CrashMode::AllWritten {
                        model.acked
                    } else {
                        model.durable
                    };
                    // The crashed log's flusher may run on in the old directory: harmless.
                    dir = image;
                    storage = FaultStorage::new();
                    wal = Rc::new(
                        Wal::open_with(storage.clone(), &dir, options)
                            .await
                            .unwrap(),
                    );
                    verify(&wal, &mut model, floor, false)?;
                }
                Op::Fail { sync, mode } => {
                    storage.inject(
                        0,
                        if sync {
                            Fault::FailSync
                        } else {
                            Fault::FailWrite
                        },
                    );
                    let rec = seeded_record(&model, 2, 8, false);
                    let appended = wal.append_entry(model.term, rec.record()).await;
                    model.log.push((model.term, rec));
                    match appended {
                        Ok(_) => {
                            // Only a sync can fail after an acknowledged append, and only
                            // where acknowledging does not wait for it.
                            prop_assert!(sync && policy != SyncPolicy::Always);
                            model.ack(policy, model.log.len());
                            let synced = wal.sync().await;
                            prop_assert!(
                                matches!(synced, Err(WalError::Poisoned { .. })),
                                "{:?}",
                                synced
                            );
                        }
                        Err(e) => prop_assert!(
                            matches!(e, AppendError::Fatal(WalError::Poisoned { .. })),
                            "{:?}",
                            e
                        ),
                    }
                    prop_assert!(wal.is_poisoned());
                    let image = root.path().join(format!("log-{}", step + 1));
                    storage.crash_image(&dir, &image, mode).unwrap();
                    let floor = if mode == CrashMode::AllWritten {
                        model.acked
                    } else {
                        model.durable
                    };
                    dir = image;
                    storage = FaultStorage::new();
                    wal = Rc::new(
                        Wal::open_with(storage.clone(), &dir, options)
                            .await
                            .unwrap(),
                    );
                    verify(&wal, &mut model, floor, false)?;
                }
            }
        }
        // The end: a clean reopen holds exactly the model.
        wal.close().await.unwrap();
        model.durable = model.log.len();
        let wal = Wal::open_with(FaultStorage::new(), &dir, options)
            .await
            .unwrap();
        let floor = model.log.len();
        verify(&wal, &mut model, floor, true)?;
        wal.close().await.unwrap();
        Ok(())
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn log_matches_model_uring(policy in policy(), format in format(), ops in proptest::collection::vec(op(), 1..40)) {
        run(Driver::Uring, policy, format, ops)?;
    }

    #[test]
    fn log_matches_model_legacy(policy in policy(), format in format(), ops in proptest::collection::vec(op(), 1..40)) {
        run(Driver::Legacy, policy, format, ops)?;
    }
}
