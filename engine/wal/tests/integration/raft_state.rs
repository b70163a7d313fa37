//! `RAFT_STATE`: a vote survives any crash once saved, an unsynced commit point never
//! costs the last synced state, and damage is told from a first write that never ended.

use std::path::Path;

use vectron_wal::{
    CrashMode, FaultStorage, HardState, LogPosition, RAFT_STATE_FILE, RaftState, StoredVote,
    WalError,
};

use crate::both_drivers;

fn vote(term: u64) -> StoredVote {
    StoredVote {
        term,
        node_id: 7,
        committed: term.is_multiple_of(2),
    }
}

fn at(index: u64) -> LogPosition {
    LogPosition { term: 2, index }
}

async fn reopen(image: &Path) -> HardState {
    RaftState::open_with(FaultStorage::new(), image)
        .await
        .unwrap()
        .state()
}

both_drivers! {
    fn votes_are_durable_and_commit_points_are_hints(driver: Driver) {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("log");
        std::fs::create_dir_all(&dir).unwrap();
        driver.block_on(async {
            let storage = FaultStorage::new();
            let mut state = RaftState::open_with(storage.clone(), &dir).await.unwrap();
            assert_eq!(state.state(), HardState::default());

            state.save_vote(vote(1)).await.unwrap();
            state.save_committed(Some(at(5))).await.unwrap();
            let image = root.path().join("power-loss-1");
            storage.crash_image(&dir, &image, CrashMode::SyncedOnly).unwrap();
            assert_eq!(
                reopen(&image).await,
                HardState { vote: Some(vote(1)), committed: None, purged: None },
                "the vote is durable, the unsynced commit point is not"
            );
            let image = root.path().join("process-crash-1");
            storage.crash_image(&dir, &image, CrashMode::AllWritten).unwrap();
            assert_eq!(reopen(&image).await.committed, Some(at(5)));

            // A synced write takes the commit point with it, and lands in the slot the
            // unsynced writes used, never over the last synced state.
            state.save_committed(Some(at(6))).await.unwrap();
            state.save_vote(vote(2)).await.unwrap();
            state.save_purged(at(3)).await.unwrap();
            state.save_committed(Some(at(9))).await.unwrap();
            let synced = HardState {
                vote: Some(vote(2)),
                committed: Some(at(6)),
                purged: Some(at(3)),
            };
            for (i, mode) in [
                CrashMode::SyncedOnly,
                CrashMode::ZeroedUnsynced,
                CrashMode::Torn { bytes: 11 },
            ]
            .into_iter()
            .enumerate()
            {
                let image = root.path().join(format!("power-loss-{}", i + 2));
                storage.crash_image(&dir, &image, mode).unwrap();
                assert_eq!(reopen(&image).await, synced, "{mode:?}");
            }
            let image = root.path().join("process-crash-2");
            storage.crash_image(&dir, &image, CrashMode::AllWritten).unwrap();
            let after = reopen(&image).await;
            assert_eq!(after, HardState { committed: Some(at(9)), ..synced });

            // Reopened, it goes on from what it read.
            drop(state);
            let mut state = RaftState::open_with(FaultStorage::new(), &dir).await.unwrap();
            assert_eq!(state.state(), after);
            state.save_vote(vote(4)).await.unwrap();
            drop(state);
            assert_eq!(reopen(&dir).await.vote, Some(vote(4)));
        });
    }

    fn damage_is_told_from_a_first_write_that_never_ended(driver: Driver) {
        let root = tempfile::tempdir().unwrap();
        driver.block_on(async {
            // A first write cut short: nothing was acknowledged, the state is empty.
            let torn = root.path().join("torn");
            std::fs::create_dir_all(&torn).unwrap();
            std::fs::write(torn.join(RAFT_STATE_FILE), b"VCTRNRST\x01\0\0").unwrap();
            assert_eq!(reopen(&torn).await, HardState::default());

            // A whole file whose slots both fail their checks: corruption.
            let dir = root.path().join("damaged");
            std::fs::create_dir_all(&dir).unwrap();
            let mut state = RaftState::open(&dir).await.unwrap();
            state.save_vote(vote(1)).await.unwrap();
            state.save_vote(vote(2)).await.unwrap();
            drop(state);
            let path = dir.join(RAFT_STATE_FILE);
            let mut bytes = std::fs::read(&path).unwrap();
            bytes[20] ^= 1;
            bytes[512 + 20] ^= 1;
            std::fs::write(&path, &bytes).unwrap();
            let opened = RaftState::open(&dir).await;
            assert!(matches!(opened, Err(WalError::Corrupt { .. })), "{opened:?}");

            // One damaged slot: the other one is read.
            bytes[512 + 20] ^= 1;
            std::fs::write(&path, &bytes).unwrap();
            assert_eq!(RaftState::open(&dir).await.unwrap().state().vote, Some(vote(2)));
        });
    }
}
