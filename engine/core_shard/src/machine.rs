//! A replicated shard's state machine: the shard state of [`crate::shard`] under
//! openraft's [`RaftStateMachine`], on the core that owns the replica.
//!
//! Committed entries are applied through [`ShardState::apply`], the path a shard's log
//! replay takes too. Snapshots are checkpoints: a checkpoint directory (`checkpoint-<lsn>`,
//! the LSN of the last entry it holds, as in the shard's own log) with the index and
//! points files a checkpoint always has, plus a `SNAPSHOT` file naming the last entry and
//! membership it holds. A replica that opens loads its newest snapshot and openraft
//! applies the committed entries after it again; one that installs a snapshot loads it
//! as it is, without rebuilding the graph.
//!
//! The state machine keeps nothing else on disk: what it applied after its snapshot is
//! applied again from the log after a restart.

use std::cell::{Cell, RefCell};
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::rc::{Rc, Weak};

use futures_util::{Stream, StreamExt};
use openraft::storage::{EntryResponder, RaftSnapshotBuilder, RaftStateMachine};
use openraft::type_config::alias::SnapshotOf;
use openraft::{EntryPayload, OptionalSend};
use serde::{Deserialize, Serialize};
use vectron_replica::{
    Applied, Entry, LogId, SNAPSHOT_META_FILE, ShardRaft, SnapshotFiles, SnapshotMeta,
    StoredMembership, lsn_of,
};

use crate::checkpoint::{self, FORMAT_VERSION, INDEX_FILE, POINTS_FILE};
use crate::core::Yielder;
use crate::error::ShardError;
use crate::handle::{load_checkpoint, write_checkpoint_files};
use crate::shard::ShardState;
use crate::spec::ShardSpec;

/// What `SNAPSHOT` holds.
#[derive(Debug, Serialize, Deserialize)]
struct SnapshotFile {
    format_version: u32,
    meta: SnapshotMeta,
}

fn io_err(e: ShardError) -> io::Error {
    io::Error::other(e)
}

/// The checkpoint directory of a snapshot whose last entry is `last`.
fn snapshot_dir_name(last: Option<LogId>) -> String {
    checkpoint::checkpoint_dir_name(last.map_or(0, |l| lsn_of(l.index).get()))
}

struct Shared {
    dir: PathBuf,
    state: Rc<RefCell<ShardState>>,
    applied: Cell<Option<LogId>>,
    membership: RefCell<StoredMembership>,
    /// The newest snapshot, built here or installed.
    current: RefCell<Option<(SnapshotMeta, PathBuf)>>,
    /// Set while a snapshot writes its files: applies wait.
    applies_held: Cell<bool>,
    /// Snapshots handed out (to a stream sending one, say): their directories stay
    /// while a handle is alive.
    handed: RefCell<Vec<Weak<PathBuf>>>,
    yielder: Yielder,
    /// Called once a run of entries is applied or a snapshot installed: the core's
    /// indexer links the points they brought.
    on_apply: RefCell<Option<Rc<dyn Fn()>>>,
}

/// A replica's shard state machine (and its snapshot builder: the same state, shared).
#[derive(Clone)]
pub struct ShardMachine {
    shared: Rc<Shared>,
}

impl std::fmt::Debug for ShardMachine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ShardMachine")
            .field("dir", &self.shared.dir)
            .field("applied", &self.shared.applied.get())
            .finish_non_exhaustive()
    }
}

impl ShardMachine {
    /// Opens the state machine of the replica stored in `dir` (created when new): loads
    /// its newest snapshot, if any. Half-written snapshots are removed.
    pub async fn open(dir: &Path, spec: ShardSpec) -> Result<Self, ShardError> {
        checkpoint::create_dir_durable(dir)?;
        let yielder = Yielder::new();
        let newest = newest_snapshot(dir)?;
        let (state, applied, membership, current) = match newest {
            Some((meta, path)) => {
                let state = load_checkpoint(&path, spec.clone(), &yielder).await?;
                checkpoint::remove_stale_checkpoints(dir, &dir_name(&path))?;
                (
                    state,
                    meta.last_log_id,
                    meta.last_membership.clone(),
                    Some((meta, path)),
                )
            }
            None => {
                checkpoint::remove_stale_checkpoints(dir, "")?;
                (
                    ShardState::new(spec.clone())?,
                    None,
                    StoredMembership::default(),
                    None,
                )
            }
        };
        Ok(Self {
            shared: Rc::new(Shared {
                dir: dir.to_path_buf(),
                state: Rc::new(RefCell::new(state)),
                applied: Cell::new(applied),
                membership: RefCell::new(membership),
                current: RefCell::new(current),
                applies_held: Cell::new(false),
                handed: RefCell::new(Vec::new()),
                yielder,
                on_apply: RefCell::new(None),
            }),
        })
    }

    /// Calls `hook` whenever entries are applied or a snapshot is installed.
    pub(crate) fn on_apply(&self, hook: Rc<dyn Fn()>) {
        *self.shared.on_apply.borrow_mut() = Some(hook);
    }

    /// Runs the apply hook, if any.
    fn applied_some(&self) {
        let hook = self.shared.on_apply.borrow().clone();
        if let Some(hook) = hook {
            hook();
        }
    }

    /// The shard state, shared with the core's reads and indexing (which see what is
    /// applied) and replaced whole when a snapshot is installed.
    pub(crate) fn state(&self) -> Rc<RefCell<ShardState>> {
        Rc::clone(&self.shared.state)
    }

    /// Whether applies are held (a snapshot is writing its files): the indexer waits
    /// too, so the files hold one state.
    pub(crate) fn applies_held(&self) -> bool {
        self.shared.applies_held.get()
    }

    /// The last entry applied.
    pub fn applied(&self) -> Option<LogId> {
        self.shared.applied.get()
    }

    /// Points in the shard.
    pub fn len(&self) -> u64 {
        self.shared.state.borrow().len()
    }

    /// Whether the shard holds no point.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Point ids in the shard, in order.
    pub fn ids(&self) -> Vec<String> {
        let mut ids: Vec<String> = self
            .shared
            .state
            .borrow()
            .points()
            .map(|(_, id, _)| id.to_owned())
            .collect();
        ids.sort_unstable();
        ids
    }
}

impl ShardMachine {
    /// Applies one committed entry (applies must not be held).
    fn apply_entry(&self, entry: &Entry) -> Result<Applied, ShardError> {
        let sh = &self.shared;
        let count = match &entry.payload {
            EntryPayload::Blank => 0,
            EntryPayload::Normal(op) => sh
                .state
                .borrow_mut()
                .apply(lsn_of(entry.log_id.index).get(), op.body().view())?,
            EntryPayload::Membership(m) => {
                *sh.membership.borrow_mut() = StoredMembership::new(Some(entry.log_id), m.clone());
                0
            }
        };
        sh.applied.set(Some(entry.log_id));
        Ok(Applied { count })
    }
}

impl Shared {
    /// A handle to the snapshot in `dir`, watched so that its files stay while it lives.
    fn hand_out(&self, dir: PathBuf) -> SnapshotFiles {
        let files = SnapshotFiles::new(dir);
        let mut handed = self.handed.borrow_mut();
        handed.retain(|w| w.strong_count() > 0);
        handed.push(files.watch());
        files
    }

    /// Removes every checkpoint directory but `keep` and those handed out and still held.
    fn remove_stale(&self, keep: &str) -> Result<(), ShardError> {
        let held: Vec<String> = {
            let mut handed = self.handed.borrow_mut();
            handed.retain(|w| w.strong_count() > 0);
            handed
                .iter()
                .filter_map(Weak::upgrade)
                .map(|dir| dir_name(&dir))
                .collect()
        };
        checkpoint::remove_checkpoints_but(&self.dir, |name| {
            name == keep || held.iter().any(|h| h == name)
        })
    }
}

fn dir_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// What a snapshot directory's `SNAPSHOT` holds for `meta`.
fn meta_json(meta: &SnapshotMeta) -> io::Result<Vec<u8>> {
    let file = SnapshotFile {
        format_version: FORMAT_VERSION,
        meta: meta.clone(),
    };
    serde_json::to_vec(&file).map_err(io::Error::other)
}

/// Reads a snapshot directory's `SNAPSHOT`.
fn read_meta(dir: &Path) -> Result<SnapshotMeta, ShardError> {
    let path = dir.join(SNAPSHOT_META_FILE);
    let bytes = fs::read(&path).map_err(|source| ShardError::Checkpoint {
        path: path.clone(),
        source,
    })?;
    let file: SnapshotFile = serde_json::from_slice(&bytes).map_err(|e| ShardError::Replay {
        reason: format!("{}: {e}", path.display()),
    })?;
    if file.format_version != FORMAT_VERSION {
        return Err(ShardError::Replay {
            reason: format!(
                "{}: format version {} (this build reads {FORMAT_VERSION})",
                path.display(),
                file.format_version
            ),
        });
    }
    Ok(file.meta)
}

/// The complete snapshot with the newest last entry in `dir`, if any.
fn newest_snapshot(dir: &Path) -> Result<Option<(SnapshotMeta, PathBuf)>, ShardError> {
    let mut newest: Option<(SnapshotMeta, PathBuf)> = None;
    let entries = fs::read_dir(dir).map_err(|source| ShardError::Checkpoint {
        path: dir.to_path_buf(),
        source,
    })?;
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        // A renamed checkpoint directory is complete; `.tmp` ones are not.
        if !name.starts_with("checkpoint-") || name.ends_with(".tmp") {
            continue;
        }
        if !entry.path().join(SNAPSHOT_META_FILE).exists() {
            continue;
        }
        let meta = read_meta(&entry.path())?;
        let index = |m: &SnapshotMeta| m.last_log_id.map(|l| l.index);
        if newest.as_ref().is_none_or(|(m, _)| index(&meta) > index(m)) {
            newest = Some((meta, entry.path()));
        }
    }
    Ok(newest)
}

/// Copies a snapshot's files into `tmp` (made anew), each synced.
fn copy_snapshot(from: &Path, tmp: &Path) -> Result<(), ShardError> {
    let failed = |path: &Path| {
        let path = path.to_path_buf();
        move |source| ShardError::Checkpoint { path, source }
    };
    let _ = fs::remove_dir_all(tmp);
    fs::create_dir(tmp).map_err(failed(tmp))?;
    for name in [INDEX_FILE, POINTS_FILE] {
        let dest = tmp.join(name);
        fs::copy(from.join(name), &dest).map_err(failed(&dest))?;
        fs::File::open(&dest)
            .and_then(|f| f.sync_all())
            .map_err(failed(&dest))?;
    }
    Ok(())
}

impl RaftSnapshotBuilder<ShardRaft> for ShardMachine {
    type SnapshotData = SnapshotFiles;

    /// Writes a checkpoint of everything applied. Applies wait meanwhile; reads and the
    /// core's other work go on between slices.
    async fn build_snapshot(&mut self) -> io::Result<SnapshotOf<ShardRaft, SnapshotFiles>> {
        let sh = &self.shared;
        while sh.applies_held.get() {
            sh.yielder.yield_now().await;
        }
        let meta = SnapshotMeta {
            last_log_id: sh.applied.get(),
            last_membership: sh.membership.borrow().clone(),
        };
        if let Some((current, dir)) = &*sh.current.borrow()
            && current.last_log_id == meta.last_log_id
        {
            return Ok(SnapshotOf::<ShardRaft, SnapshotFiles> {
                meta: current.clone(),
                snapshot: sh.hand_out(dir.clone()),
            });
        }
        let name = snapshot_dir_name(meta.last_log_id);
        let dest = sh.dir.join(&name);
        let tmp = sh.dir.join(format!("{name}.tmp"));
        let json = meta_json(&meta)?;
        sh.applies_held.set(true);
        let written = write_checkpoint_files(
            &sh.state,
            &tmp,
            &dest,
            &[(SNAPSHOT_META_FILE, &json)],
            async || {
                sh.yielder.yield_now().await;
                Ok(())
            },
        )
        .await;
        sh.applies_held.set(false);
        if let Err(e) = written {
            let _ = fs::remove_dir_all(&tmp);
            return Err(io_err(e));
        }
        *sh.current.borrow_mut() = Some((meta.clone(), dest.clone()));
        sh.remove_stale(&name).map_err(io_err)?;
        Ok(SnapshotOf::<ShardRaft, SnapshotFiles> {
            meta,
            snapshot: sh.hand_out(dest),
        })
    }
}

impl RaftStateMachine<ShardRaft> for ShardMachine {
    type SnapshotData = SnapshotFiles;
    type SnapshotBuilder = Self;

    async fn applied_state(&mut self) -> io::Result<(Option<LogId>, StoredMembership)> {
        Ok((
            self.shared.applied.get(),
            self.shared.membership.borrow().clone(),
        ))
    }

    async fn apply<Strm>(&mut self, mut entries: Strm) -> io::Result<()>
    where
        Strm: Stream<Item = io::Result<EntryResponder<ShardRaft>>> + Unpin + OptionalSend,
    {
        // The indexer is woken once per run of entries, after it (or after a failure
        // part way through, for what was applied before it).
        let mut brought_points = false;
        let outcome = loop {
            let Some(item) = entries.next().await else {
                break Ok(());
            };
            while self.shared.applies_held.get() {
                self.shared.yielder.yield_now().await;
            }
            let (entry, responder) = match item {
                Ok(item) => item,
                Err(e) => break Err(e),
            };
            let applied = match self.apply_entry(&entry) {
                Ok(applied) => applied,
                Err(e) => break Err(io_err(e)),
            };
            brought_points |= applied.count > 0;
            if let Some(responder) = responder {
                responder.send(applied);
            }
        };
        if brought_points {
            self.applied_some();
        }
        outcome
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        self.clone()
    }

    /// Takes a snapshot's files as the shard's checkpoint (copied in, unless they are
    /// already the replica's own) and loads it in place of the current state.
    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta,
        snapshot: SnapshotFiles,
    ) -> io::Result<()> {
        let sh = &self.shared;
        let name = snapshot_dir_name(meta.last_log_id);
        let dest = sh.dir.join(&name);
        if snapshot.dir() != dest {
            // Files received for this replica alone are moved into place; another
            // replica's are copied first. Either way with the metadata given.
            let staged = if snapshot.is_received() {
                snapshot.dir().to_path_buf()
            } else {
                sh.dir.join(format!("{name}.tmp"))
            };
            let json = meta_json(meta)?;
            let placed = if snapshot.is_received() {
                Ok(())
            } else {
                copy_snapshot(snapshot.dir(), &staged)
            }
            .and_then(|()| checkpoint::write_atomic(&staged.join(SNAPSHOT_META_FILE), &json))
            .and_then(|()| {
                let _ = fs::remove_dir_all(&dest);
                fs::rename(&staged, &dest).map_err(|source| ShardError::Checkpoint {
                    path: dest.clone(),
                    source,
                })
            })
            .and_then(|()| checkpoint::sync_dir(&sh.dir));
            if let Err(e) = placed {
                if !snapshot.is_received() {
                    let _ = fs::remove_dir_all(&staged);
                }
                return Err(io_err(e));
            }
        }
        // The shard as it is served now (its epoch may have moved since it opened).
        let spec = sh.state.borrow().spec().clone();
        let state = load_checkpoint(&dest, spec, &sh.yielder)
            .await
            .map_err(io_err)?;
        *sh.state.borrow_mut() = state;
        sh.applied.set(meta.last_log_id);
        *sh.membership.borrow_mut() = meta.last_membership.clone();
        *sh.current.borrow_mut() = Some((meta.clone(), dest));
        self.applied_some();
        sh.remove_stale(&name).map_err(io_err)
    }

    async fn get_current_snapshot(
        &mut self,
    ) -> io::Result<Option<SnapshotOf<ShardRaft, SnapshotFiles>>> {
        let sh = &self.shared;
        Ok(sh
            .current
            .borrow()
            .as_ref()
            .map(|(meta, dir)| SnapshotOf::<ShardRaft, SnapshotFiles> {
                meta: meta.clone(),
                snapshot: sh.hand_out(dir.clone()),
            }))
    }
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, BTreeSet};

    use openraft::entry::RaftEntry;
    use openraft::storage::RaftLogStorage;
    use openraft::testing::log::{StoreBuilder, Suite};
    use openraft::{Membership, StorageError};
    use tempfile::TempDir;
    use vectron_replica::{Entry, LogStore, ReplicaNode, ShardOp, log_id};
    use vectron_wal::{Delete, Options, Record, Upsert};

    use super::*;
    use crate::handle::tests::{assignment, run};

    fn spec() -> ShardSpec {
        ShardSpec::from_assignment(&assignment("replicated")).expect("a spec")
    }

    struct Builder;

    impl StoreBuilder<ShardRaft, LogStore, ShardMachine, TempDir> for Builder {
        async fn build(
            &self,
        ) -> Result<(TempDir, LogStore, ShardMachine), StorageError<ShardRaft>> {
            // The suite checks the storage's logic, not the disk's durability: on tmpfs
            // its fsyncs cost nothing (its own one-second sleeps remain).
            let dir = tempfile::tempdir_in("/dev/shm")
                .or_else(|_| tempfile::tempdir())
                .expect("temp dir");
            let store = LogStore::open(dir.path().join("wal"), Options::default())
                .await
                .expect("a log store");
            let machine = ShardMachine::open(dir.path(), spec())
                .await
                .expect("a state machine");
            Ok((dir, store, machine))
        }
    }

    #[test]
    fn the_log_store_and_the_shard_machine_pass_the_openraft_storage_suite() {
        run(async { Suite::test_all(Builder).await.expect("the suite passes") });
    }

    fn upsert(term: u64, index: u64, ids: &[&str], x: f32) -> Entry {
        let ids: Vec<String> = ids.iter().map(|s| (*s).to_owned()).collect();
        let vectors: Vec<f32> = ids.iter().flat_map(|_| [x, 1.0, 0.5, 0.25]).collect();
        let payloads: Vec<Vec<u8>> = ids
            .iter()
            .map(|id| format!(r#"{{"id":"{id}"}}"#).into_bytes())
            .collect();
        let op = ShardOp::encode(&Record::Upsert(Upsert {
            ids: &ids,
            dim: 4,
            vectors: &vectors,
            payloads: &payloads,
        }))
        .expect("encodes");
        Entry::new(log_id(term, index), EntryPayload::Normal(op))
    }

    fn delete(term: u64, index: u64, ids: &[&str]) -> Entry {
        let ids: Vec<String> = ids.iter().map(|s| (*s).to_owned()).collect();
        let op = ShardOp::encode(&Record::Delete(Delete { ids: &ids })).expect("encodes");
        Entry::new(log_id(term, index), EntryPayload::Normal(op))
    }

    fn membership(term: u64, index: u64) -> Entry {
        let voters = BTreeSet::from([1, 2, 3]);
        let nodes: BTreeMap<u64, ReplicaNode> = voters
            .iter()
            .map(|&id| {
                (
                    id,
                    ReplicaNode {
                        worker_id: id,
                        core: 0,
                    },
                )
            })
            .collect();
        Entry::new(
            log_id(term, index),
            EntryPayload::Membership(Membership::new(vec![voters], nodes).expect("a membership")),
        )
    }

    /// Applies `entries` as openraft does (no proposer waits).
    async fn apply(machine: &mut ShardMachine, entries: Vec<Entry>) {
        let items = entries.into_iter().map(|e| Ok((e, None)));
        machine
            .apply(futures_util::stream::iter(items))
            .await
            .expect("applies");
    }

    #[test]
    fn committed_writes_are_applied_answered_and_carried_by_a_snapshot() {
        let root = tempfile::tempdir().unwrap();
        run(async {
            let leader_dir = root.path().join("leader");
            let mut leader = ShardMachine::open(&leader_dir, spec()).await.unwrap();
            apply(
                &mut leader,
                vec![
                    membership(1, 0),
                    Entry::new_blank(log_id(1, 1)),
                    upsert(1, 2, &["a", "b", "c"], 1.0),
                ],
            )
            .await;
            // What a proposer hears: the points written or deleted.
            let delete_answer = leader.apply_entry(&delete(1, 3, &["b", "zz"])).unwrap();
            assert_eq!(delete_answer, Applied { count: 1 });
            let upsert_answer = leader.apply_entry(&upsert(1, 4, &["a", "d"], 2.0)).unwrap();
            assert_eq!(upsert_answer, Applied { count: 2 });
            assert_eq!(leader.ids(), vec!["a", "c", "d"]);
            let (applied, members) = leader.applied_state().await.unwrap();
            assert_eq!(applied, Some(log_id(1, 4)));
            assert_eq!(members.log_id(), &Some(log_id(1, 0)));

            // The snapshot is a checkpoint directory named after the last LSN it holds.
            let snapshot = leader
                .try_create_snapshot_builder(true)
                .await
                .unwrap()
                .build_snapshot()
                .await
                .unwrap();
            assert_eq!(
                snapshot.snapshot.dir(),
                leader_dir.join("checkpoint-00000000000000000005")
            );
            assert!(snapshot.snapshot.dir().join(SNAPSHOT_META_FILE).exists());

            // A follower installs it without replaying anything, then applies what
            // follows it.
            let follower_dir = root.path().join("follower");
            let mut follower = ShardMachine::open(&follower_dir, spec()).await.unwrap();
            follower
                .install_snapshot(&snapshot.meta, snapshot.snapshot.clone())
                .await
                .unwrap();
            assert_eq!(follower.ids(), vec!["a", "c", "d"]);
            apply(&mut follower, vec![delete(2, 5, &["a"])]).await;
            assert_eq!(
                follower.applied_state().await.unwrap().0,
                Some(log_id(2, 5))
            );

            // A restarted replica starts from its newest snapshot; what it applied after
            // it comes back from the log.
            drop(follower);
            let mut follower = ShardMachine::open(&follower_dir, spec()).await.unwrap();
            assert_eq!(follower.ids(), vec!["a", "c", "d"]);
            let (applied, members) = follower.applied_state().await.unwrap();
            assert_eq!(applied, Some(log_id(1, 4)));
            assert_eq!(
                members.membership().voter_ids().collect::<Vec<_>>(),
                vec![1, 2, 3]
            );
            let current = follower
                .get_current_snapshot()
                .await
                .unwrap()
                .expect("a snapshot");
            assert_eq!(current.meta, snapshot.meta);
        });
    }

    #[test]
    fn a_snapshot_being_sent_keeps_its_files_until_its_handle_goes() {
        let root = tempfile::tempdir().unwrap();
        run(async {
            let mut machine = ShardMachine::open(root.path(), spec()).await.unwrap();
            let snapshot_after = async |machine: &mut ShardMachine, index: u64| {
                let id = format!("p{index}");
                apply(machine, vec![upsert(1, index, &[id.as_str()], 1.0)]).await;
                machine
                    .try_create_snapshot_builder(true)
                    .await
                    .unwrap()
                    .build_snapshot()
                    .await
                    .unwrap()
                    .snapshot
            };
            let first = snapshot_after(&mut machine, 1).await;
            // A stream still sends the first when the second is built: its files stay.
            let second = snapshot_after(&mut machine, 2).await;
            assert!(first.dir().join(INDEX_FILE).exists());
            assert!(second.dir().join(INDEX_FILE).exists());
            let first_dir = first.dir().to_path_buf();
            let second_dir = second.dir().to_path_buf();
            drop((first, second));
            // Once nothing holds them, the next snapshot lets both go.
            let third = snapshot_after(&mut machine, 3).await;
            assert!(!first_dir.exists() && !second_dir.exists());
            assert!(third.dir().join(SNAPSHOT_META_FILE).exists());
        });
    }

    #[test]
    fn a_replica_restores_its_state_from_its_snapshot_and_log() {
        let root = tempfile::tempdir().unwrap();
        run(async {
            let mut store = LogStore::open(root.path().join("wal"), Options::default())
                .await
                .unwrap();
            let mut machine = ShardMachine::open(root.path(), spec()).await.unwrap();
            let entries = vec![
                membership(1, 0),
                upsert(1, 1, &["a", "b"], 1.0),
                upsert(1, 2, &["c"], 3.0),
                delete(1, 3, &["a"]),
            ];
            openraft::storage::RaftLogStorageExt::blocking_append(&mut store, entries.clone())
                .await
                .unwrap();
            store.save_committed(Some(log_id(1, 3))).await.unwrap();
            apply(&mut machine, entries[..2].to_vec()).await;
            machine
                .try_create_snapshot_builder(true)
                .await
                .unwrap()
                .build_snapshot()
                .await
                .unwrap();
            apply(&mut machine, entries[2..].to_vec()).await;
            assert_eq!(machine.ids(), vec!["b", "c"]);
            store.close().await.unwrap();
            drop((store, machine));

            // openraft's start: the snapshot, then the committed entries after it.
            let mut store = LogStore::open(root.path().join("wal"), Options::default())
                .await
                .unwrap();
            let mut machine = ShardMachine::open(root.path(), spec()).await.unwrap();
            assert_eq!(machine.ids(), vec!["a", "b"]);
            let state = openraft::StorageHelper::new(&mut store, &mut machine)
                .with_id(1)
                .get_initial_state()
                .await
                .unwrap();
            assert_eq!(state.local_committed(), Some(&log_id(1, 3)));
            assert_eq!(machine.ids(), vec!["b", "c"]);
            store.close().await.unwrap();
        });
    }
}
