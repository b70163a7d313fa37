//! Fault injection and damaged files: failed syncs and writes poison, short writes are
//! completed or cut, corruption is named, torn tails are cut, crash images recover.

use std::rc::Rc;

use vectron_wal::{
    AppendError, Corruption, CrashMode, Fault, FaultStorage, IoOp, Lsn, Options, Record,
    RecordError, SyncPolicy, Upsert, Wal, WalError,
};

use crate::both_drivers;
use crate::support::{Batch, collect, fill, flip, record_offsets, segments};

fn is_poisoned(err: &AppendError) -> bool {
    matches!(err, AppendError::Fatal(WalError::Poisoned { .. }))
}

both_drivers! {
    fn failed_sync_poisons_until_reopened(driver: Driver) {
        let dir = tempfile::tempdir().unwrap();
        let image = tempfile::tempdir().unwrap();
        driver.block_on(async {
            let storage = FaultStorage::new();
            let wal = Rc::new(Wal::open_with(storage.clone(), dir.path(), Options::default()).await.unwrap());
            let acked = fill(&*wal, 1..4).await;
            storage.inject(0, Fault::FailSync);
            // A whole group fails together: four appends ride on the failing sync.
            let group: Vec<_> = (10..14u64)
                .map(|seed| {
                    let wal = wal.clone();
                    monoio::spawn(async move {
                        let batch = Batch::seeded(seed, 1, 8);
                        wal.append(batch.record()).await
                    })
                })
                .collect();
            for task in group {
                let err = task.await.expect_err("a record in the failed group was acknowledged");
                assert!(err.is_fatal() && is_poisoned(&err), "{err:?}");
                let AppendError::Fatal(WalError::Poisoned { cause, .. }) = &err else { unreachable!() };
                // Under `Always` a group is one O_DSYNC write: its failed sync fails the write.
                assert!(matches!(cause.first(), WalError::Io { op: IoOp::Write, .. }), "{cause:?}");
            }
            assert!(wal.is_poisoned());
            // Every later call fails, whatever it is.
            let err = wal.append(Batch::seeded(20, 1, 8).record()).await.unwrap_err();
            assert!(is_poisoned(&err), "{err:?}");
            assert!(matches!(wal.sync().await, Err(WalError::Poisoned { .. })));
            assert!(matches!(wal.replay(Lsn::ZERO), Err(WalError::Poisoned { .. })));
            assert!(matches!(wal.truncate_prefix(Lsn::new(1)).await, Err(WalError::Poisoned { .. })));
            assert!(matches!(wal.close().await, Err(WalError::Poisoned { .. })));

            // Power loss now: the failed group never became durable.
            storage.crash_image(dir.path(), image.path(), CrashMode::SyncedOnly).unwrap();
            let recovered = Wal::open(image.path(), Options::default()).await.unwrap();
            assert_eq!(collect(&recovered, Lsn::ZERO).unwrap(), acked);
            recovered.close().await.unwrap();

            // Reopening the very directory works (the poisoned handle let go of it); the
            // acknowledged records are there, and the log goes on after whatever it holds.
            let reopened = Wal::open(dir.path(), Options::default()).await.unwrap();
            let replayed = collect(&reopened, Lsn::ZERO).unwrap();
            assert_eq!(replayed[..3], acked[..]);
            let lsn = reopened.append(Batch::seeded(30, 1, 8).record()).await.unwrap();
            assert_eq!(lsn.get(), replayed.len() as u64 + 1);
            reopened.close().await.unwrap();
        });
    }

    fn failed_explicit_sync_poisons(driver: Driver) {
        let dir = tempfile::tempdir().unwrap();
        let image = tempfile::tempdir().unwrap();
        let options = Options::default().sync(SyncPolicy::Never);
        driver.block_on(async {
            let storage = FaultStorage::new();
            let wal = Wal::open_with(storage.clone(), dir.path(), options).await.unwrap();
            let synced = fill(&wal, 1..3).await;
            wal.sync().await.unwrap();
            fill(&wal, 3..5).await;
            storage.inject(0, Fault::FailSync);
            match wal.sync().await.unwrap_err() {
                WalError::Poisoned { cause, .. } => {
                    assert!(matches!(cause.first(), WalError::Io { op: IoOp::Sync, .. }), "{cause:?}");
                }
                other => panic!("{other:?}"),
            }
            assert!(is_poisoned(&wal.append(Batch::seeded(9, 1, 8).record()).await.unwrap_err()));
            storage.crash_image(dir.path(), image.path(), CrashMode::SyncedOnly).unwrap();
            let recovered = Wal::open(image.path(), options).await.unwrap();
            assert_eq!(collect(&recovered, Lsn::ZERO).unwrap(), synced);
            recovered.close().await.unwrap();
        });
    }

    fn failed_write_poisons(driver: Driver) {
        let dir = tempfile::tempdir().unwrap();
        driver.block_on(async {
            let storage = FaultStorage::new();
            let wal = Wal::open_with(storage.clone(), dir.path(), Options::default()).await.unwrap();
            let acked = fill(&wal, 1..3).await;
            storage.inject(0, Fault::FailWrite);
            let err = wal.append(Batch::seeded(9, 1, 8).record()).await.unwrap_err();
            assert!(is_poisoned(&err), "{err:?}");
            assert!(is_poisoned(&wal.append(Batch::seeded(10, 1, 8).record()).await.unwrap_err()));
            drop(wal);
            let wal = Wal::open(dir.path(), Options::default()).await.unwrap();
            assert_eq!(collect(&wal, Lsn::ZERO).unwrap(), acked);
            wal.close().await.unwrap();
        });
    }

    fn failed_segment_creation_poisons(driver: Driver) {
        let dir = tempfile::tempdir().unwrap();
        driver.block_on(async {
            let storage = FaultStorage::new();
            let options = Options::default().segment_bytes(4096);
            let wal = Wal::open_with(storage.clone(), dir.path(), options).await.unwrap();
            let acked = fill(&wal, 1..3).await;
            storage.inject(0, Fault::FailCreate);
            let mut err = None;
            for seed in 3..100 {
                if let Err(e) = wal.append(Batch::seeded(seed, 1, 8).record()).await {
                    err = Some(e);
                    break;
                }
            }
            let err = err.expect("the log never needed a second segment");
            assert!(is_poisoned(&err), "{err:?}");
            drop(wal);
            let wal = Wal::open(dir.path(), options).await.unwrap();
            assert_eq!(collect(&wal, Lsn::ZERO).unwrap()[..2], acked[..]);
            wal.close().await.unwrap();
        });
    }

    fn short_write_is_completed(driver: Driver) {
        let dir = tempfile::tempdir().unwrap();
        driver.block_on(async {
            let storage = FaultStorage::new();
            let wal = Wal::open_with(storage.clone(), dir.path(), Options::default()).await.unwrap();
            let mut acked = fill(&wal, 1..3).await;
            let writes = storage.writes();
            storage.inject(0, Fault::ShortWrite { bytes: 5 });
            acked.extend(fill(&wal, 3..4).await);
            assert!(storage.writes() >= writes + 2, "the rest of a short write was not written");
            acked.extend(fill(&wal, 4..6).await);
            wal.close().await.unwrap();
            let wal = Wal::open(dir.path(), Options::default()).await.unwrap();
            assert_eq!(collect(&wal, Lsn::ZERO).unwrap(), acked);
            wal.close().await.unwrap();
        });
    }

    fn short_write_then_failure_is_a_torn_tail(driver: Driver) {
        let dir = tempfile::tempdir().unwrap();
        let image = tempfile::tempdir().unwrap();
        driver.block_on(async {
            let storage = FaultStorage::new();
            let wal = Wal::open_with(storage.clone(), dir.path(), Options::default()).await.unwrap();
            let acked = fill(&wal, 1..4).await;
            let segment = segments(dir.path()).pop().unwrap();
            let good_len = std::fs::metadata(&segment).unwrap().len();
            storage.inject(0, Fault::ShortWrite { bytes: 20 });
            storage.inject(1, Fault::FailWrite);
            let err = wal.append(Batch::seeded(4, 1, 8).record()).await.unwrap_err();
            assert!(is_poisoned(&err), "{err:?}");
            // The process dies: 20 bytes of the record reached the page cache.
            storage.crash_image(dir.path(), image.path(), CrashMode::AllWritten).unwrap();
            let torn = image.path().join(segment.file_name().unwrap());
            assert_eq!(std::fs::metadata(&torn).unwrap().len(), good_len + 20);
            let wal = Wal::open(image.path(), Options::default()).await.unwrap();
            assert_eq!(std::fs::metadata(&torn).unwrap().len(), good_len, "the torn tail stayed");
            assert_eq!(collect(&wal, Lsn::ZERO).unwrap(), acked);
            assert_eq!(wal.append(Batch::seeded(5, 1, 8).record()).await.unwrap(), Lsn::new(4));
            wal.close().await.unwrap();
        });
    }

    fn corrupt_record_in_the_last_segment_is_named(driver: Driver) {
        let dir = tempfile::tempdir().unwrap();
        driver.block_on(async {
            let wal = Wal::open(dir.path(), Options::default()).await.unwrap();
            fill(&wal, 1..11).await;
            wal.close().await.unwrap();
            let segment = segments(dir.path()).pop().unwrap();
            let offsets = record_offsets(&segment);
            assert_eq!(offsets.len(), 10);
            flip(&segment, offsets[4] + 20);
            let err = Wal::open(dir.path(), Options::default()).await.unwrap_err();
            match err {
                WalError::Corrupt { segment: s, offset, problem: Corruption::BadRecord } => {
                    assert_eq!((s, offset), (segment.clone(), offsets[4]));
                }
                other => panic!("expected corruption at record 5, got {other:?}"),
            }
            // The file was left as it was: nothing was cut.
            assert_eq!(record_offsets(&segment).len(), 10);
        });
    }

    fn corrupt_record_in_a_sealed_segment_fails_replay(driver: Driver) {
        let dir = tempfile::tempdir().unwrap();
        let options = Options::default().segment_bytes(4096).sync(SyncPolicy::Never);
        driver.block_on(async {
            let wal = Wal::open(dir.path(), options).await.unwrap();
            fill(&wal, 1..80).await;
            wal.close().await.unwrap();
            let first = segments(dir.path()).remove(0);
            let offsets = record_offsets(&first);
            flip(&first, offsets[2] + 17);
            // Opening scans only the last segment; replay checks every record it reads.
            let wal = Wal::open(dir.path(), options).await.unwrap();
            let err = collect(&wal, Lsn::ZERO).unwrap_err();
            match err {
                WalError::Corrupt { segment, offset, problem: Corruption::BadRecord } => {
                    assert_eq!((segment, offset), (first, offsets[2]));
                }
                other => panic!("expected corruption in the first segment, got {other:?}"),
            }
            wal.close().await.unwrap();
        });
    }

    fn lsn_gaps_are_corruption(driver: Driver) {
        let dir = tempfile::tempdir().unwrap();
        let options = Options::default().segment_bytes(4096).sync(SyncPolicy::Never);
        driver.block_on(async {
            // A missing segment.
            let wal = Wal::open(dir.path(), options).await.unwrap();
            fill(&wal, 1..200).await;
            wal.close().await.unwrap();
            let segs = segments(dir.path());
            assert!(segs.len() >= 3);
            std::fs::remove_file(&segs[1]).unwrap();
            let wal = Wal::open(dir.path(), options).await.unwrap();
            match collect(&wal, Lsn::ZERO).unwrap_err() {
                WalError::Corrupt { segment, offset: 0, problem: Corruption::SegmentGap { .. } } => {
                    assert_eq!(segment, segs[2]);
                }
                other => panic!("expected a segment gap, got {other:?}"),
            }
            wal.close().await.unwrap();

            // A record repeated where the next should be: valid checksum, wrong LSN.
            let dir = tempfile::tempdir().unwrap();
            let wal = Wal::open(dir.path(), options).await.unwrap();
            fill(&wal, 1..5).await;
            wal.close().await.unwrap();
            let seg = segments(dir.path()).pop().unwrap();
            let offsets = record_offsets(&seg);
            let mut bytes = std::fs::read(&seg).unwrap();
            let (a, b) = (offsets[1] as usize, offsets[2] as usize);
            let second = bytes[a..b].to_vec();
            bytes[b..b + second.len()].copy_from_slice(&second);
            std::fs::write(&seg, bytes).unwrap();
            match Wal::open(dir.path(), options).await.unwrap_err() {
                WalError::Corrupt { offset, problem: Corruption::LsnGap { expected: 3, found: 2 }, .. } => {
                    assert_eq!(offset, offsets[2]);
                }
                other => panic!("expected an LSN gap, got {other:?}"),
            }
        });
    }

    fn torn_tails_are_cut(driver: Driver) {
        driver.block_on(async {
            // Three shapes of torn tail: a record cut in half, zeros where the size reached
            // the disk but the data did not, and a few garbage bytes.
            for shape in 0..3 {
                let dir = tempfile::tempdir().unwrap();
                let wal = Wal::open(dir.path(), Options::default()).await.unwrap();
                let acked = fill(&wal, 1..7).await;
                wal.close().await.unwrap();
                let seg = segments(dir.path()).pop().unwrap();
                let offsets = record_offsets(&seg);
                let mut bytes = std::fs::read(&seg).unwrap();
                let keep = match shape {
                    0 => {
                        let cut = offsets[5] as usize + 30;
                        bytes.truncate(cut);
                        5
                    }
                    1 => {
                        bytes.extend(std::iter::repeat_n(0u8, 4096));
                        6
                    }
                    _ => {
                        bytes.extend([0xde, 0xad, 0xbe, 0xef, 0x01]);
                        6
                    }
                };
                let clean_len = if keep == 5 { offsets[5] } else { std::fs::metadata(&seg).unwrap().len() };
                std::fs::write(&seg, bytes).unwrap();
                let wal = Wal::open(dir.path(), Options::default()).await.unwrap();
                assert_eq!(std::fs::metadata(&seg).unwrap().len(), clean_len, "shape {shape}");
                assert_eq!(collect(&wal, Lsn::ZERO).unwrap(), acked[..keep], "shape {shape}");
                let next = wal.append(Batch::seeded(50, 1, 8).record()).await.unwrap();
                assert_eq!(next, Lsn::new(keep as u64 + 1));
                wal.close().await.unwrap();
            }
        });
    }

    fn torn_segment_creation_is_removed(driver: Driver) {
        let options = Options::default().segment_bytes(4096).sync(SyncPolicy::Never);
        driver.block_on(async {
            for header_bytes in [0usize, 10, 32] {
                let dir = tempfile::tempdir().unwrap();
                let wal = Wal::open(dir.path(), options).await.unwrap();
                let acked = fill(&wal, 1..30).await;
                wal.close().await.unwrap();
                let next = dir.path().join(format!("{:020}.wal", 30));
                // The crash came between creating the file and syncing its header: some of
                // the header is there, or garbage where it should be.
                std::fs::write(&next, vec![0x5a; header_bytes]).unwrap();
                let wal = Wal::open(dir.path(), options).await.unwrap();
                assert!(!next.exists(), "a torn creation of {header_bytes} bytes stayed");
                assert_eq!(collect(&wal, Lsn::ZERO).unwrap(), acked);
                assert_eq!(wal.append(Batch::seeded(30, 1, 8).record()).await.unwrap(), Lsn::new(30));
                wal.close().await.unwrap();
            }

            // A damaged header with valid records after it is no torn creation.
            let dir = tempfile::tempdir().unwrap();
            let wal = Wal::open(dir.path(), options).await.unwrap();
            fill(&wal, 1..3).await;
            wal.close().await.unwrap();
            let seg = segments(dir.path()).pop().unwrap();
            flip(&seg, 3);
            match Wal::open(dir.path(), options).await.unwrap_err() {
                WalError::Corrupt { offset: 0, problem: Corruption::BadHeader, .. } => {}
                other => panic!("expected a bad header, got {other:?}"),
            }
            assert!(seg.exists());
        });
    }

    fn crash_images_recover_a_prefix(driver: Driver) {
        let options = Options::default().sync(SyncPolicy::Never);
        driver.block_on(async {
            let modes = [
                CrashMode::SyncedOnly,
                CrashMode::ZeroedUnsynced,
                CrashMode::Torn { bytes: 1 },
                CrashMode::Torn { bytes: 100 },
                CrashMode::Torn { bytes: 1000 },
                CrashMode::AllWritten,
            ];
            for mode in modes {
                let dir = tempfile::tempdir().unwrap();
                let image = tempfile::tempdir().unwrap();
                let storage = FaultStorage::new();
                let wal = Wal::open_with(storage.clone(), dir.path(), options).await.unwrap();
                let mut all = fill(&wal, 1..6).await;
                wal.sync().await.unwrap();
                all.extend(fill(&wal, 6..12).await);
                storage.crash_image(dir.path(), image.path(), mode).unwrap();
                let recovered = Wal::open(image.path(), options).await.unwrap();
                let got = collect(&recovered, Lsn::ZERO).unwrap();
                assert!(got.len() >= 5, "{mode:?} lost synced records: {} left", got.len());
                assert_eq!(got, all[..got.len()], "{mode:?}");
                match mode {
                    CrashMode::SyncedOnly | CrashMode::ZeroedUnsynced => assert_eq!(got.len(), 5),
                    CrashMode::AllWritten => assert_eq!(got.len(), 11),
                    CrashMode::Torn { .. } => {}
                }
                recovered.close().await.unwrap();
                wal.close().await.unwrap();
            }
        });
    }

    fn second_open_is_locked(driver: Driver) {
        let dir = tempfile::tempdir().unwrap();
        driver.block_on(async {
            let wal = Wal::open(dir.path(), Options::default()).await.unwrap();
            let err = Wal::open(dir.path(), Options::default()).await.unwrap_err();
            assert!(matches!(err, WalError::Locked { .. }), "{err:?}");
            wal.close().await.unwrap();
            let again = Wal::open(dir.path(), Options::default()).await.unwrap();
            again.close().await.unwrap();
        });
    }

    fn refused_records_leave_the_log_healthy(driver: Driver) {
        let dir = tempfile::tempdir().unwrap();
        let options = Options::default().segment_bytes(4096);
        driver.block_on(async {
            let wal = Wal::open(dir.path(), options).await.unwrap();
            let ids = vec!["a".to_string()];
            let payloads = vec![Vec::new()];
            let bad = Record::Upsert(Upsert { ids: &ids, dim: 3, vectors: &[1.0], payloads: &payloads });
            match wal.append(bad).await.unwrap_err() {
                e @ AppendError::Rejected(RecordError::WrongVectorLength { expected: 3, got: 1, .. }) => {
                    assert!(!e.is_fatal());
                }
                other => panic!("{other:?}"),
            }
            let big = vec![0.5f32; 2048];
            let huge = Record::Upsert(Upsert { ids: &ids, dim: 2048, vectors: &big, payloads: &payloads });
            let err = wal.append(huge).await.unwrap_err();
            assert!(matches!(err, AppendError::Rejected(RecordError::TooLarge { .. })), "{err:?}");
            let acked = fill(&wal, 1..4).await;
            assert_eq!(acked[0].0, Lsn::new(1), "a refused record used up an LSN");
            assert_eq!(collect(&wal, Lsn::ZERO).unwrap(), acked);
            wal.close().await.unwrap();
            assert!(matches!(wal.append(Batch::seeded(1, 1, 8).record()).await, Err(AppendError::Fatal(WalError::Closed))));
        });
    }

    fn interval_policy_syncs_on_its_own(driver: Driver) {
        let dir = tempfile::tempdir().unwrap();
        let options = Options::default().sync(SyncPolicy::Interval(std::time::Duration::from_millis(5)));
        driver.block_on(async {
            let storage = FaultStorage::new();
            let wal = Wal::open_with(storage.clone(), dir.path(), options).await.unwrap();
            let acked = fill(&wal, 1..4).await;
            // Acknowledged once written; the timer makes it durable without any call.
            let mut waited = 0;
            while wal.durable_lsn() < acked[2].0 {
                assert!(waited < 5000, "no interval sync within 5 s");
                monoio::time::sleep(std::time::Duration::from_millis(1)).await;
                waited += 1;
            }
            assert!(storage.syncs() >= 1);
            wal.close().await.unwrap();
        });
    }

    fn sync_observer_and_sizes(driver: Driver) {
        let dir = tempfile::tempdir().unwrap();
        driver.block_on(async {
            let wal = Wal::open(dir.path(), Options::default()).await.unwrap();
            let events = Rc::new(std::cell::RefCell::new(Vec::new()));
            let sink = events.clone();
            wal.set_sync_observer(move |e| sink.borrow_mut().push(*e));
            fill(&wal, 1..5).await;
            let stats = wal.stats();
            assert_eq!(events.borrow().len() as u64, stats.syncs);
            assert_eq!(events.borrow().last().unwrap().durable_lsn, Lsn::new(4));
            assert_eq!(events.borrow().iter().map(|e| e.records).sum::<u64>(), 4);
            assert_eq!(stats.bytes_since_checkpoint, stats.bytes_on_disk);

            wal.append(Record::Checkpoint { covers: Lsn::new(4) }).await.unwrap();
            assert_eq!(wal.stats().bytes_since_checkpoint, 0);
            fill(&wal, 10..12).await;
            let after = wal.stats();
            let seg = &segments(dir.path())[0];
            let offsets = record_offsets(seg);
            let len = std::fs::metadata(seg).unwrap().len();
            // Records 6 and 7 came after the marker (record 5).
            assert_eq!(after.bytes_since_checkpoint, len - offsets[5]);
            assert_eq!(after.bytes_on_disk, len);
            wal.close().await.unwrap();
            // Recovery finds the marker again in the last segment.
            let wal = Wal::open(dir.path(), Options::default()).await.unwrap();
            assert_eq!(wal.stats().bytes_since_checkpoint, after.bytes_since_checkpoint);
            assert_eq!(wal.stats().bytes_on_disk, len);
            wal.close().await.unwrap();
        });
    }
}
