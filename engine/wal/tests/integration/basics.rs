//! Append, reopen, replay, rotate, truncate either end: the log's ordinary life.

use std::rc::Rc;

use vectron_wal::{
    AppendError, CrashMode, Delete, FaultStorage, Format, Lsn, Options, Record, RecordError,
    SyncPolicy, Wal, WalError,
};

use crate::both_drivers;
use crate::support::{Batch, Owned, collect, collect_terms, segments};

both_drivers! {
    fn append_reopen_replay(driver: Driver) {
        let dir = tempfile::tempdir().unwrap();
        driver.block_on(async {
            let wal = Wal::open(dir.path(), Options::default()).await.unwrap();
            let mut expected = Vec::new();
            for seed in 1..=5u64 {
                let batch = Batch::seeded(seed, seed as usize, 4);
                let lsn = wal.append(batch.record()).await.unwrap();
                assert_eq!(lsn, Lsn::new(seed));
                expected.push((lsn, Owned::Upsert(batch)));
            }
            let ids = vec!["p1-0".to_string()];
            let lsn = wal.append(Record::Delete(Delete { ids: &ids })).await.unwrap();
            expected.push((lsn, Owned::Delete(ids)));
            let lsn = wal.append(Record::Checkpoint { covers: Lsn::new(3) }).await.unwrap();
            expected.push((lsn, Owned::Checkpoint(Lsn::new(3))));
            assert_eq!(wal.durable_lsn(), Lsn::new(7));
            assert_eq!(collect(&wal, Lsn::ZERO).unwrap(), expected);
            wal.close().await.unwrap();

            let wal = Wal::open(dir.path(), Options::default()).await.unwrap();
            assert_eq!(wal.last_lsn(), Lsn::new(7));
            assert_eq!(collect(&wal, Lsn::ZERO).unwrap(), expected);
            assert_eq!(collect(&wal, Lsn::new(4)).unwrap(), expected[3..]);
            let batch = Batch::seeded(8, 1, 4);
            assert_eq!(wal.append(batch.record()).await.unwrap(), Lsn::new(8));
            wal.close().await.unwrap();
        });
    }

    fn concurrent_appends_share_syncs(driver: Driver) {
        let dir = tempfile::tempdir().unwrap();
        driver.block_on(async {
            let wal = Rc::new(Wal::open(dir.path(), Options::default()).await.unwrap());
            let writers = 32u64;
            let per_writer = 8u64;
            let tasks: Vec<_> = (0..writers)
                .map(|w| {
                    let wal = wal.clone();
                    monoio::spawn(async move {
                        let mut lsns = Vec::new();
                        for i in 0..per_writer {
                            let batch = Batch::seeded(w * 1000 + i, 1, 8);
                            lsns.push((wal.append(batch.record()).await.unwrap(), batch));
                        }
                        lsns
                    })
                })
                .collect();
            let mut acked = Vec::new();
            for t in tasks {
                acked.extend(t.await);
            }
            acked.sort_by_key(|(lsn, _)| *lsn);
            let stats = wal.stats();
            assert_eq!(stats.appends, writers * per_writer);
            // Group commit: every writer waits on a sync, so syncs are far fewer than appends.
            assert!(
                stats.syncs * 4 <= stats.appends,
                "{} syncs for {} appends: appends are not sharing fdatasyncs",
                stats.syncs,
                stats.appends
            );
            let replayed = collect(&*wal, Lsn::ZERO).unwrap();
            let expected: Vec<_> =
                acked.into_iter().map(|(lsn, b)| (lsn, Owned::Upsert(b))).collect();
            assert_eq!(replayed, expected);
            wal.close().await.unwrap();
        });
    }

    fn segments_rotate_and_truncate(driver: Driver) {
        let dir = tempfile::tempdir().unwrap();
        let options = Options::default().segment_bytes(4096).sync(SyncPolicy::Never);
        driver.block_on(async {
            let wal = Wal::open(dir.path(), options).await.unwrap();
            let mut all = Vec::new();
            for seed in 1..=60u64 {
                let batch = Batch::seeded(seed, 2, 16);
                let lsn = wal.append(batch.record()).await.unwrap();
                all.push((lsn, Owned::Upsert(batch)));
            }
            let stats = wal.stats();
            assert!(stats.segments >= 4, "{stats:?}");
            assert_eq!(collect(&wal, Lsn::ZERO).unwrap(), all);

            let removed = wal.truncate_prefix(Lsn::new(30)).await.unwrap();
            assert!(removed >= 1);
            let first = wal.stats().first_lsn;
            assert!(first <= Lsn::new(31), "a segment holding LSN 31 was removed: {first}");
            assert!(matches!(wal.replay(Lsn::new(1)), Err(WalError::ReplayGap { .. })));
            let rest = collect(&wal, first).unwrap();
            assert_eq!(rest, all[first.get() as usize - 1..]);
            wal.close().await.unwrap();

            let wal = Wal::open(dir.path(), options).await.unwrap();
            assert_eq!(wal.stats().first_lsn, first);
            assert_eq!(collect(&wal, Lsn::new(31)).unwrap(), all[30..]);
            // Truncating everything keeps the last segment, so LSNs go on.
            wal.truncate_prefix(Lsn::new(1000)).await.unwrap();
            assert_eq!(wal.stats().segments, 1);
            let batch = Batch::seeded(61, 1, 16);
            assert_eq!(wal.append(batch.record()).await.unwrap(), Lsn::new(61));
            wal.close().await.unwrap();
        });
    }

    fn a_cut_suffix_is_gone_for_good_and_its_lsns_are_reused(driver: Driver) {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("log");
        let options = Options::default().segment_bytes(4096);
        driver.block_on(async {
            let storage = FaultStorage::new();
            let wal = Wal::open_with(storage.clone(), &dir, options).await.unwrap();
            let mut all = Vec::new();
            for seed in 1..=60u64 {
                let batch = Batch::seeded(seed, 2, 16);
                all.push((wal.append(batch.record()).await.unwrap(), Owned::Upsert(batch)));
            }
            let segments = wal.stats().segments;
            assert!(segments >= 4, "{:?}", wal.stats());

            // Nothing to cut, or a cut into records a checkpoint let go of.
            wal.truncate_after(Lsn::new(60)).await.unwrap();
            assert_eq!(wal.last_lsn(), Lsn::new(60));
            wal.truncate_prefix(Lsn::new(30)).await.unwrap();
            let first = wal.stats().first_lsn.get();
            assert!(matches!(
                wal.truncate_after(Lsn::new(first - 2)).await,
                Err(WalError::CutGap { .. })
            ));
            // Not under a replay that has a segment mapped.
            {
                let mut replay = wal.replay(Lsn::new(first)).unwrap();
                replay.next_record().unwrap();
                assert!(matches!(
                    wal.truncate_after(Lsn::new(40)).await,
                    Err(WalError::ReplayOpen)
                ));
            }

            // Cut across segments: the ones after LSN 40 go, the one holding it is cut.
            wal.truncate_after(Lsn::new(40)).await.unwrap();
            assert_eq!(wal.last_lsn(), Lsn::new(40));
            assert!(wal.stats().segments < segments, "{:?}", wal.stats());
            all.truncate(40);
            assert_eq!(collect(&wal, Lsn::new(first)).unwrap(), all[first as usize - 1..]);
            // The freed LSNs are handed out again, to new records.
            for seed in 41..=45u64 {
                let batch = Batch::seeded(1_000 + seed, 1, 8);
                assert_eq!(wal.append(batch.record()).await.unwrap(), Lsn::new(seed));
                all.push((Lsn::new(seed), Owned::Upsert(batch)));
            }
            assert_eq!(collect(&wal, Lsn::new(first)).unwrap(), all[first as usize - 1..]);

            // A power loss right after a cut: what was cut does not come back.
            wal.truncate_after(Lsn::new(42)).await.unwrap();
            all.truncate(42);
            let image = root.path().join("image");
            storage.crash_image(&dir, &image, CrashMode::SyncedOnly).unwrap();
            let reopened = Wal::open(&image, options).await.unwrap();
            assert_eq!(reopened.last_lsn(), Lsn::new(42));
            assert_eq!(collect(&reopened, Lsn::new(first)).unwrap(), all[first as usize - 1..]);
            reopened.close().await.unwrap();

            // Cutting to just before the first record keeps that segment's name, so a
            // reopened log goes on from there.
            wal.truncate_after(Lsn::new(first - 1)).await.unwrap();
            assert_eq!(wal.stats().segments, 1);
            wal.close().await.unwrap();
            let wal = Wal::open(&dir, options).await.unwrap();
            assert_eq!(wal.last_lsn(), Lsn::new(first - 1));
            let batch = Batch::seeded(7_000, 1, 8);
            assert_eq!(wal.append(batch.record()).await.unwrap(), Lsn::new(first));
            wal.close().await.unwrap();
        });
    }

    fn a_reset_log_continues_after_the_point_it_was_given(driver: Driver) {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("log");
        let options = Options::default().segment_bytes(4096).format(Format::V2);
        driver.block_on(async {
            let storage = FaultStorage::new();
            let wal = Wal::open_with(storage.clone(), &dir, options).await.unwrap();
            for seed in 1..=40u64 {
                let batch = Batch::seeded(seed, 2, 16);
                wal.append_entry(1, batch.record()).await.unwrap();
            }
            assert!(wal.stats().segments >= 2, "{:?}", wal.stats());
            {
                let mut replay = wal.replay(Lsn::new(1)).unwrap();
                replay.next_record().unwrap();
                assert!(matches!(
                    wal.reset_after(Lsn::new(100)).await,
                    Err(WalError::ReplayOpen)
                ));
            }

            // Past the end: every record goes and the next append takes LSN 101.
            wal.reset_after(Lsn::new(100)).await.unwrap();
            let batch = Batch::seeded(101, 1, 16);
            assert_eq!(wal.append_entry(3, batch.record()).await.unwrap(), Lsn::new(101));
            let stats = wal.stats();
            assert_eq!((stats.first_lsn, stats.last_lsn, stats.segments), (Lsn::new(101), Lsn::new(101), 1));
            assert!(matches!(wal.replay(Lsn::new(100)), Err(WalError::ReplayGap { .. })));
            assert_eq!(
                collect_terms(&wal, Lsn::new(101)).unwrap(),
                vec![(Lsn::new(101), 3, Owned::Upsert(batch.clone()))]
            );

            // A power loss right after: the reset holds.
            let image = root.path().join("image");
            storage.crash_image(&dir, &image, CrashMode::SyncedOnly).unwrap();
            let reopened = Wal::open(&image, options).await.unwrap();
            assert_eq!(reopened.stats().first_lsn, Lsn::new(101));
            assert_eq!(reopened.last_lsn(), Lsn::new(101));
            reopened.close().await.unwrap();

            // Before the end too (a snapshot that replaces a divergent log), and with
            // nothing appended after it a reopened log still continues from the point.
            wal.reset_after(Lsn::new(50)).await.unwrap();
            wal.close().await.unwrap();
            let wal = Wal::open(&dir, options).await.unwrap();
            assert_eq!(wal.last_lsn(), Lsn::new(50));
            assert_eq!(collect(&wal, Lsn::new(51)).unwrap(), vec![]);
            let batch = Batch::seeded(51, 1, 16);
            assert_eq!(wal.append_entry(4, batch.record()).await.unwrap(), Lsn::new(51));
            wal.close().await.unwrap();
        });
    }

    fn a_log_keeps_the_format_it_was_written_in(driver: Driver) {
        let root = tempfile::tempdir().unwrap();
        let v1_dir = root.path().join("v1");
        let v2_dir = root.path().join("v2");
        let small = Options::default().segment_bytes(4096);
        driver.block_on(async {
            // A v1 log stays v1 when opened as v2, and refuses what only v2 holds.
            let wal = Wal::open(&v1_dir, small).await.unwrap();
            let batch = Batch::seeded(1, 1, 4);
            wal.append(batch.record()).await.unwrap();
            wal.close().await.unwrap();
            let wal = Wal::open(&v1_dir, small.format(Format::V2)).await.unwrap();
            assert_eq!(wal.format(), Format::V1);
            assert!(matches!(
                wal.append_entry(2, batch.record()).await,
                Err(AppendError::Rejected(RecordError::NeedsV2 { .. }))
            ));
            wal.close().await.unwrap();

            // A v2 log across segments: terms come back, and reopened it is still v2.
            let wal = Wal::open(&v2_dir, small.format(Format::V2)).await.unwrap();
            assert_eq!(wal.format(), Format::V2);
            let mut expected = Vec::new();
            for seed in 1..=40u64 {
                let term = 1 + seed / 10;
                let batch = Batch::seeded(seed, 2, 16);
                let lsn = wal.append_entry(term, batch.record()).await.unwrap();
                expected.push((lsn, term, Owned::Upsert(batch)));
            }
            assert!(matches!(
                wal.append_entry(5, Record::Checkpoint { covers: Lsn::new(1) }).await,
                Err(AppendError::Rejected(RecordError::CheckpointInV2))
            ));
            wal.close().await.unwrap();
            let wal = Wal::open(&v2_dir, small).await.unwrap();
            assert_eq!(wal.format(), Format::V2);
            assert_eq!(collect_terms(&wal, Lsn::ZERO).unwrap(), expected);
            wal.close().await.unwrap();

            // A v1 segment among v2 ones is refused, never read as v2.
            let v2_segments = segments(&v2_dir);
            assert!(v2_segments.len() >= 3, "{v2_segments:?}");
            let v1_first = segments(&v1_dir)[0].clone();
            let name = v2_segments[1].file_name().unwrap().to_owned();
            std::fs::remove_file(&v2_segments[1]).unwrap();
            let mut bytes = std::fs::read(&v1_first).unwrap();
            // The v1 segment renamed into the v2 log must still pass its own header check.
            let first: u64 = name.to_str().unwrap()[..20].parse().unwrap();
            bytes[16..24].copy_from_slice(&first.to_le_bytes());
            let crc = crc32c::crc32c(&bytes[0..24]);
            bytes[24..28].copy_from_slice(&crc.to_le_bytes());
            std::fs::write(v2_dir.join(name), bytes).unwrap();
            let opened = Wal::open(&v2_dir, small).await;
            assert!(
                matches!(&opened, Err(WalError::Corrupt { .. })),
                "{:?}",
                opened.map(|w| w.format())
            );
        });
    }
}
