//! The store against openraft's storage suite, and across a reopen.

use openraft::storage::{RaftLogStorage, RaftStateMachine};
use openraft::testing::log::{StoreBuilder, Suite};
use openraft::{Membership, RaftLogReader, RaftSnapshotBuilder, StorageError};
use tempfile::TempDir;

use super::*;
use crate::state::Command;

struct Builder;

impl StoreBuilder<TypeConfig, LogStore, StateMachine, TempDir> for Builder {
    async fn build(&self) -> Result<(TempDir, LogStore, StateMachine), StorageError<TypeConfig>> {
        // The suite checks the store's logic, not the disk's durability: on tmpfs its
        // fsyncs cost nothing (its own eight one-second sleeps remain).
        let dir = tempfile::tempdir_in("/dev/shm")
            .or_else(|_| tempfile::tempdir())
            .expect("temp dir");
        let opened = open(dir.path(), 1).expect("open store");
        Ok((dir, opened.log, opened.machine))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn passes_the_openraft_storage_suite() {
    Suite::test_all(Builder).await.unwrap();
}

fn log_id(term: u64, index: u64) -> LogId {
    LogId::new(
        openraft::impls::leader_id_adv::LeaderId { term, node_id: 1 },
        index,
    )
}

fn entry(term: u64, index: u64, command: Command) -> Entry {
    Entry {
        log_id: log_id(term, index),
        payload: EntryPayload::Normal(command),
    }
}

/// Appends; `append` returns once the entries are durable.
async fn append(log: &mut LogStore, entries: Vec<Entry>) {
    log.append(entries, IOFlushed::noop()).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn log_vote_and_snapshot_survive_a_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let membership = Membership::new(
        vec![std::collections::BTreeSet::from([1u64])],
        std::collections::BTreeMap::from([(
            1u64,
            crate::consensus::PeerNode {
                address: "127.0.0.1:7101".into(),
            },
        )]),
    )
    .unwrap();
    {
        let Opened {
            mut log,
            mut machine,
            shared,
            ..
        } = open(dir.path(), 1).unwrap();
        log.save_vote(&Vote::new_committed(2, 1)).await.unwrap();
        let entries = vec![
            Entry {
                log_id: log_id(2, 1),
                payload: EntryPayload::Membership(membership.clone()),
            },
            entry(
                2,
                2,
                Command::InitCluster {
                    cluster_id: "c".into(),
                },
            ),
            entry(
                2,
                3,
                Command::DropCollection {
                    name: "none".into(),
                },
            ),
        ];
        append(&mut log, entries.clone()).await;
        let stream = futures_util::stream::iter(entries.into_iter().map(|e| Ok((e, None))));
        machine.apply(stream).await.unwrap();
        assert_eq!(shared.read().state.cluster_id, "c");
        let snapshot = machine
            .get_snapshot_builder()
            .await
            .build_snapshot()
            .await
            .unwrap();
        assert_eq!(snapshot.meta.last_log_id, Some(log_id(2, 3)));
        log.purge(log_id(2, 2)).await.unwrap();
    }
    let Opened {
        mut log,
        mut machine,
        shared,
        closed,
    } = open(dir.path(), 1).unwrap();
    assert_eq!(
        log.read_vote().await.unwrap(),
        Some(Vote::new_committed(2, 1))
    );
    let state = log.get_log_state().await.unwrap();
    assert_eq!(state.last_purged_log_id, Some(log_id(2, 2)));
    assert_eq!(state.last_log_id, Some(log_id(2, 3)));
    let remaining = log.try_get_log_entries(0..10).await.unwrap();
    assert_eq!(remaining.len(), 1);
    assert_eq!(remaining[0].log_id, log_id(2, 3));
    let (applied, stored) = machine.applied_state().await.unwrap();
    assert_eq!(applied, Some(log_id(2, 3)));
    assert_eq!(stored.membership(), &membership);
    assert_eq!(shared.read().state.cluster_id, "c");
    assert!(machine.get_current_snapshot().await.unwrap().is_some());
    drop((log, machine));
    closed.await.unwrap();
    assert!(
        open(dir.path(), 1).is_ok(),
        "closed means it can be opened again"
    );
}

#[test]
fn a_store_refuses_another_node_id() {
    let dir = tempfile::tempdir().unwrap();
    drop(open(dir.path(), 1).unwrap());
    assert!(matches!(
        open(dir.path(), 2),
        Err(StoreError::NodeIdMismatch {
            stored: 1,
            given: 2,
            ..
        })
    ));
}

/// The stored records keep the shapes `FORMAT.md` documents. These are openraft's serde
/// shapes at the pinned version: a version bump that changes them fails here first.
#[test]
fn stored_records_keep_their_documented_shape() {
    let membership = Membership::new(
        vec![std::collections::BTreeSet::from([1u64])],
        std::collections::BTreeMap::from([(
            1u64,
            crate::consensus::PeerNode {
                address: "127.0.0.1:7101".into(),
            },
        )]),
    )
    .unwrap();
    fn shape<T: Serialize>(value: &T) -> String {
        serde_json::to_string(value).unwrap()
    }
    assert_eq!(
        shape(&Vote::new_committed(2, 1)),
        r#"{"leader_id":{"term":2,"node_id":1},"committed":true}"#
    );
    assert_eq!(
        shape(&Some(log_id(2, 7))),
        r#"{"leader_id":{"term":2,"node_id":1},"index":7}"#
    );
    assert_eq!(
        shape(&Entry {
            log_id: log_id(2, 1),
            payload: EntryPayload::Blank
        }),
        r#"{"log_id":{"leader_id":{"term":2,"node_id":1},"index":1},"payload":"Blank"}"#
    );
    assert_eq!(
        shape(&Entry {
            log_id: log_id(2, 1),
            payload: EntryPayload::Membership(membership.clone())
        }),
        r#"{"log_id":{"leader_id":{"term":2,"node_id":1},"index":1},"payload":{"Membership":{"configs":[[1]],"nodes":{"1":{"address":"127.0.0.1:7101"}}}}}"#
    );
    assert_eq!(
        shape(&entry(
            2,
            3,
            Command::DropCollection {
                name: "docs".into()
            }
        )),
        r#"{"log_id":{"leader_id":{"term":2,"node_id":1},"index":3},"payload":{"Normal":{"DropCollection":{"name":"docs"}}}}"#
    );
    assert_eq!(
        shape(&SnapshotMeta {
            last_log_id: Some(log_id(2, 3)),
            last_membership: StoredMembership::new(Some(log_id(2, 1)), membership),
        }),
        r#"{"last_log_id":{"leader_id":{"term":2,"node_id":1},"index":3},"last_membership":{"log_id":{"leader_id":{"term":2,"node_id":1},"index":1},"membership":{"configs":[[1]],"nodes":{"1":{"address":"127.0.0.1:7101"}}}},"snapshot_id":""}"#
    );
    let mut state = ControlState::default();
    state
        .apply(
            1,
            &Command::InitCluster {
                cluster_id: "c".into(),
            },
        )
        .unwrap();
    assert_eq!(
        shape(&SnapshotData {
            format: FORMAT_VERSION,
            state
        }),
        r#"{"format":1,"state":{"cluster_id":"c","routing_version":1,"workers":{},"collections":{}}}"#
    );
}
