//! The log store through openraft's own storage API, on a real log in a temporary
//! directory: what it holds after appends, cuts, purges, reopens and power losses.

use std::collections::BTreeSet;
use std::io;
use std::path::Path;

use openraft::entry::RaftEntry;
use openraft::storage::{RaftLogReaderExt, RaftLogStorage, RaftLogStorageExt};
use openraft::{EntryPayload, Membership, RaftLogReader};
use vectron_replica::{Entry, LogStore, ReplicaNode, ShardOp, Vote, log_id};
use vectron_wal::{
    BodyView, CrashMode, FaultStorage, Options, Record, Storage, SyncPolicy, Upsert,
};

fn run<F: Future>(f: F) -> F::Output {
    monoio::RuntimeBuilder::<monoio::FusionDriver>::new()
        .enable_timer()
        .build()
        .expect("a monoio runtime")
        .block_on(f)
}

/// Small segments, so that purges and cuts cross segment boundaries.
fn options() -> Options {
    Options::default().segment_bytes(4096)
}

/// An upsert entry of one point whose id names the entry.
fn upsert(term: u64, index: u64) -> Entry {
    let ids = [format!("p{index}")];
    let payloads = [Vec::new()];
    let op = ShardOp::encode(&Record::Upsert(Upsert {
        ids: &ids,
        dim: 4,
        vectors: &[index as f32, 1.0, 2.0, 3.0],
        payloads: &payloads,
    }))
    .expect("encodes");
    Entry::new(log_id(term, index), EntryPayload::Normal(op))
}

fn membership(term: u64, index: u64, voters: &[u64]) -> Entry {
    let voters: BTreeSet<u64> = voters.iter().copied().collect();
    let nodes = voters.iter().map(|&id| {
        (
            id,
            ReplicaNode {
                worker_id: id * 10,
                core: 1,
            },
        )
    });
    Entry::new(
        log_id(term, index),
        EntryPayload::Membership(
            Membership::new(
                vec![voters.clone()],
                nodes.collect::<std::collections::BTreeMap<_, _>>(),
            )
            .expect("a membership"),
        ),
    )
}

/// The (term, index) of every entry in `range`, and that each upsert names its index.
async fn ids_in<S: Storage>(
    store: &mut LogStore<S>,
    range: std::ops::Range<u64>,
) -> Vec<(u64, u64)> {
    let mut reader = store.get_log_reader().await;
    let entries = reader.try_get_log_entries(range).await.expect("reads");
    entries
        .iter()
        .map(|e| {
            if let EntryPayload::Normal(op) = &e.payload {
                let BodyView::Upsert(u) = op.body().view() else {
                    panic!("an upsert at {}", e.log_id.index);
                };
                assert_eq!(
                    u.ids().next(),
                    Some(format!("p{}", e.log_id.index).as_str())
                );
            }
            (e.log_id.leader_id.term, e.log_id.index)
        })
        .collect()
}

async fn append<S: Storage>(store: &mut LogStore<S>, entries: Vec<Entry>) {
    store.blocking_append(entries).await.expect("appends");
}

fn terms(term: u64, indexes: std::ops::RangeInclusive<u64>) -> Vec<(u64, u64)> {
    indexes.map(|i| (term, i)).collect()
}

#[test]
fn entries_read_back_from_memory_and_from_disk_after_a_reopen() {
    let dir = tempfile::tempdir().unwrap();
    run(async {
        let mut store = LogStore::open(dir.path(), options()).await.unwrap();
        let mut entries = vec![membership(1, 0, &[1, 2, 3]), Entry::new_blank(log_id(1, 1))];
        entries.extend((2..=200).map(|i| upsert(1, i)));
        append(&mut store, entries).await;
        assert!(
            store.wal().stats().segments > 2,
            "{:?}",
            store.wal().stats()
        );
        let expected = terms(1, 0..=200);
        assert_eq!(ids_in(&mut store, 0..201).await, expected);
        assert_eq!(ids_in(&mut store, 50..60).await, expected[50..60]);
        store.close().await.unwrap();

        // Nothing is cached after a reopen: every entry comes from the log's files.
        let mut store = LogStore::open(dir.path(), options()).await.unwrap();
        let state = store.get_log_state().await.unwrap();
        assert_eq!(
            (state.last_purged_log_id, state.last_log_id),
            (None, Some(log_id(1, 200)))
        );
        assert_eq!(ids_in(&mut store, 0..1_000).await, expected);
        let mut reader = store.get_log_reader().await;
        let first = reader.try_get_log_entry(0).await.unwrap().expect("entry 0");
        let EntryPayload::Membership(m) = first.payload else {
            panic!("entry 0 is the membership");
        };
        assert_eq!(m.voter_ids().collect::<Vec<_>>(), vec![1, 2, 3]);
        assert_eq!(
            m.get_node(&2),
            Some(&ReplicaNode {
                worker_id: 20,
                core: 1
            })
        );
        assert!(matches!(
            reader
                .try_get_log_entry(1)
                .await
                .unwrap()
                .map(|e| e.payload),
            Some(EntryPayload::Blank)
        ));
        // Entries go on after the last one, and only there.
        append(&mut store, vec![upsert(2, 201)]).await;
        assert!(store.blocking_append(vec![upsert(2, 203)]).await.is_err());
        store.close().await.unwrap();
    });
}

#[test]
fn the_vote_and_the_commit_point_outlive_the_store() {
    let dir = tempfile::tempdir().unwrap();
    run(async {
        let mut store = LogStore::open(dir.path(), options()).await.unwrap();
        assert_eq!(
            store.get_log_reader().await.read_vote().await.unwrap(),
            None
        );
        let mut vote = Vote::new(7, 3);
        store.save_vote(&vote).await.unwrap();
        vote.committed = true;
        store.save_vote(&vote).await.unwrap();
        append(&mut store, (0..=4).map(|i| upsert(7, i)).collect()).await;
        store.save_committed(Some(log_id(7, 3))).await.unwrap();
        let mut reader = store.get_log_reader().await;
        assert_eq!(reader.read_vote().await.unwrap(), Some(vote));
        store.close().await.unwrap();

        let mut store = LogStore::open(dir.path(), options()).await.unwrap();
        assert_eq!(
            store.get_log_reader().await.read_vote().await.unwrap(),
            Some(vote)
        );
        assert_eq!(store.read_committed().await.unwrap(), Some(log_id(7, 3)));
        store.close().await.unwrap();
    });
}

#[test]
fn a_cut_suffix_is_replaced_by_the_new_leaders_entries() {
    let dir = tempfile::tempdir().unwrap();
    run(async {
        let mut store = LogStore::open(dir.path(), options()).await.unwrap();
        append(&mut store, (0..=120).map(|i| upsert(1, i)).collect()).await;
        // A follower learns that a new leader of term 2 diverges after index 80.
        store.truncate_after(Some(log_id(1, 80))).await.unwrap();
        assert_eq!(
            store.get_log_state().await.unwrap().last_log_id,
            Some(log_id(1, 80))
        );
        assert_eq!(ids_in(&mut store, 0..200).await, terms(1, 0..=80));
        append(&mut store, (81..=90).map(|i| upsert(2, i)).collect()).await;
        store.close().await.unwrap();

        let mut store = LogStore::open(dir.path(), options()).await.unwrap();
        let mut expected = terms(1, 0..=80);
        expected.extend(terms(2, 81..=90));
        assert_eq!(ids_in(&mut store, 0..200).await, expected);
        // Everything goes.
        store.truncate_after(None).await.unwrap();
        assert_eq!(store.get_log_state().await.unwrap().last_log_id, None);
        assert_eq!(ids_in(&mut store, 0..200).await, vec![]);
        append(&mut store, vec![upsert(3, 0)]).await;
        store.close().await.unwrap();
    });
}

#[test]
fn purged_entries_are_never_served_and_a_purge_past_the_end_moves_the_log_on() {
    let dir = tempfile::tempdir().unwrap();
    run(async {
        let mut store = LogStore::open(dir.path(), options()).await.unwrap();
        append(&mut store, (0..=100).map(|i| upsert(1, i)).collect()).await;
        store.purge(log_id(1, 60)).await.unwrap();
        let state = store.get_log_state().await.unwrap();
        assert_eq!(state.last_purged_log_id, Some(log_id(1, 60)));
        assert_eq!(state.last_log_id, Some(log_id(1, 100)));
        assert_eq!(ids_in(&mut store, 0..200).await, terms(1, 61..=100));
        // A cut never reaches before the purge point.
        store.truncate_after(None).await.unwrap();
        assert_eq!(
            store.get_log_state().await.unwrap().last_log_id,
            Some(log_id(1, 60))
        );
        append(&mut store, (61..=70).map(|i| upsert(2, i)).collect()).await;
        store.close().await.unwrap();

        let mut store = LogStore::open(dir.path(), options()).await.unwrap();
        assert_eq!(ids_in(&mut store, 0..200).await, terms(2, 61..=70));
        // A snapshot at index 500 covers the whole log.
        store.purge(log_id(4, 500)).await.unwrap();
        let state = store.get_log_state().await.unwrap();
        assert_eq!(state.last_purged_log_id, Some(log_id(4, 500)));
        assert_eq!(state.last_log_id, Some(log_id(4, 500)));
        assert_eq!(ids_in(&mut store, 0..1_000).await, vec![]);
        store.close().await.unwrap();

        let mut store = LogStore::open(dir.path(), options()).await.unwrap();
        assert_eq!(
            store.get_log_state().await.unwrap().last_log_id,
            Some(log_id(4, 500))
        );
        append(&mut store, vec![upsert(4, 501)]).await;
        assert_eq!(ids_in(&mut store, 0..1_000).await, vec![(4, 501)]);
        store.close().await.unwrap();
    });
}

#[test]
fn a_reset_cut_short_by_a_crash_is_finished_at_the_next_open() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("log");
    run(async {
        let mut store = LogStore::open(&dir, options()).await.unwrap();
        append(&mut store, (0..=100).map(|i| upsert(1, i)).collect()).await;
        store.purge(log_id(2, 300)).await.unwrap();
        store.close().await.unwrap();
        // The crash came after the purge point was saved and before the reset ended:
        // the log's segments are still there.
        let sealed = root.path().join("sealed");
        let mut store = LogStore::open(&sealed, options()).await.unwrap();
        append(&mut store, (0..=100).map(|i| upsert(1, i)).collect()).await;
        store.close().await.unwrap();
        copy(
            &dir.join(vectron_wal::RAFT_STATE_FILE),
            &sealed.join(vectron_wal::RAFT_STATE_FILE),
        );

        let mut store = LogStore::open(&sealed, options()).await.unwrap();
        let state = store.get_log_state().await.unwrap();
        assert_eq!(state.last_purged_log_id, Some(log_id(2, 300)));
        assert_eq!(state.last_log_id, Some(log_id(2, 300)));
        assert_eq!(ids_in(&mut store, 0..1_000).await, vec![]);
        append(&mut store, vec![upsert(2, 301)]).await;
        assert_eq!(store.wal().stats().first_lsn.get(), 302);
        store.close().await.unwrap();
    });
}

fn copy(from: &Path, to: &Path) {
    std::fs::copy(from, to).unwrap();
}

#[test]
fn flushed_entries_survive_a_power_loss_and_leave_no_hole() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("log");
    run(async {
        let storage = FaultStorage::new();
        let mut store = LogStore::open_with(storage.clone(), &dir, options())
            .await
            .unwrap();
        store.save_vote(&Vote::new(2, 1)).await.unwrap();
        append(&mut store, (0..=50).map(|i| upsert(2, i)).collect()).await;
        store.truncate_after(Some(log_id(2, 40))).await.unwrap();
        append(&mut store, (41..=45).map(|i| upsert(3, i)).collect()).await;
        // Queued and not waited for: it may or may not survive, but never with a gap.
        store
            .append(
                (46..=60).map(|i| upsert(3, i)),
                openraft::storage::IOFlushed::noop(),
            )
            .await
            .unwrap();

        for (n, mode) in [CrashMode::SyncedOnly, CrashMode::AllWritten]
            .into_iter()
            .enumerate()
        {
            let image = root.path().join(format!("image-{n}"));
            storage.crash_image(&dir, &image, mode).unwrap();
            let mut after = LogStore::open(&image, options()).await.unwrap();
            assert_eq!(
                after.get_log_reader().await.read_vote().await.unwrap(),
                Some(Vote::new(2, 1))
            );
            let last = after
                .get_log_state()
                .await
                .unwrap()
                .last_log_id
                .expect("entries");
            assert!(last.index >= 45, "{last:?}");
            let mut expected = terms(2, 0..=40);
            expected.extend(terms(3, 41..=last.index));
            assert_eq!(ids_in(&mut after, 0..1_000).await, expected);
            after.close().await.unwrap();
        }
        store.close().await.unwrap();
    });
}

#[test]
fn a_log_that_is_not_synced_on_every_write_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    run(async {
        let relaxed = options().sync(SyncPolicy::Never);
        let err = LogStore::open(dir.path(), relaxed).await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::Other);
        assert!(err.to_string().contains("syncs every write"), "{err}");
    });
}
