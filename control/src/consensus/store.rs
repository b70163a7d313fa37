//! The Raft log, the vote and the state-machine snapshots of a control node, in one redb
//! file (`control.redb` in the data directory; `FORMAT.md` beside this crate gives the
//! layout).
//!
//! Why redb: the control plane's data is small (kilobytes to a few megabytes) and written
//! rarely, but every write must be durable and a torn write must never corrupt it. redb is
//! a pure-Rust embedded store with ACID transactions over copy-on-write B-trees, checksummed
//! pages and an fsync'd commit, a stable file format since 1.0, and no C toolchain in the
//! build. A B-tree keyed by log index gives Raft's three log operations directly: append,
//! truncate a suffix, purge a prefix. The project's own WAL is built for data cores
//! (monoio, io_uring, group commit of vector batches); the control plane runs on tokio and
//! would gain nothing from it.
//!
//! The state machine lives in memory ([`Shared`]) and is persisted as snapshots: on
//! restart, a node loads its last snapshot and openraft re-applies the committed log
//! entries after it. Every redb transaction runs on tokio's blocking pool so that an fsync
//! never stalls the async workers.

use std::collections::Bound;
use std::fmt::Debug;
use std::io;
use std::ops::RangeBounds;
use std::path::{Path, PathBuf};
use std::sync::{Arc, PoisonError, RwLock, RwLockReadGuard};

use futures_util::{Stream, TryStreamExt};
use openraft::storage::{EntryResponder, IOFlushed, RaftLogStorage, RaftStateMachine};
use openraft::{EntryPayload, LogState, OptionalSend, RaftLogReader, RaftSnapshotBuilder};
use redb::{Database, Durability, ReadableDatabase, ReadableTable, TableDefinition};
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use super::{Entry, LogId, Snapshot, SnapshotMeta, StoredMembership, TypeConfig, Vote};
use crate::state::{Applied, ControlState};

/// Version of the layout described in `FORMAT.md`.
pub(crate) const FORMAT_VERSION: u32 = 1;
/// File name of the store inside a node's data directory.
pub(crate) const FILE_NAME: &str = "control.redb";

const LOG: TableDefinition<'_, u64, &[u8]> = TableDefinition::new("raft_log");
const META: TableDefinition<'_, &str, &[u8]> = TableDefinition::new("raft_meta");
const SNAPSHOT: TableDefinition<'_, &str, &[u8]> = TableDefinition::new("snapshot");

const KEY_FORMAT: &str = "format";
const KEY_NODE_ID: &str = "node_id";
const KEY_VOTE: &str = "vote";
const KEY_COMMITTED: &str = "committed";
const KEY_LAST_PURGED: &str = "last_purged";
const KEY_SNAPSHOT_META: &str = "meta";
const KEY_SNAPSHOT_DATA: &str = "data";

/// Opening a node's store failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// redb could not open or create the file.
    #[error("cannot open the control store {path}")]
    Open {
        /// The store file.
        path: PathBuf,
        /// What redb said.
        #[source]
        source: redb::DatabaseError,
    },
    /// A read or write of the store failed.
    #[error("the control store {path} failed")]
    Redb {
        /// The store file.
        path: PathBuf,
        /// What redb said.
        #[source]
        source: redb::Error,
    },
    /// The store belongs to another node id.
    #[error(
        "the control store {path} belongs to node {stored}, not node {given}: every node keeps its own data directory"
    )]
    NodeIdMismatch {
        /// The store file.
        path: PathBuf,
        /// The id recorded in the store.
        stored: u64,
        /// The id this node was started with.
        given: u64,
    },
    /// The store was written by a version with another layout.
    #[error("the control store {path} has format {found}; this version reads format {supported}")]
    Format {
        /// The store file.
        path: PathBuf,
        /// Format recorded in the store.
        found: u32,
        /// Format this version reads.
        supported: u32,
    },
    /// A record of the store does not decode.
    #[error("the control store {path} holds an unreadable {what}")]
    Corrupt {
        /// The store file.
        path: PathBuf,
        /// Which record.
        what: &'static str,
        /// The decoding error.
        #[source]
        source: serde_json::Error,
    },
}

/// The database, and a signal sent once it is closed: fields drop in order, so the
/// signal goes out after redb has released the file.
#[derive(Debug)]
pub(crate) struct Db {
    database: Database,
    _closed: CloseSignal,
}

impl std::ops::Deref for Db {
    type Target = Database;

    fn deref(&self) -> &Database {
        &self.database
    }
}

#[derive(Debug)]
struct CloseSignal(Option<tokio::sync::oneshot::Sender<()>>);

impl Drop for CloseSignal {
    fn drop(&mut self) {
        if let Some(closed) = self.0.take() {
            // Nobody waiting is fine: the node may have stopped waiting.
            let _ = closed.send(());
        }
    }
}

/// Resolves once the store is closed.
pub(crate) type Closed = tokio::sync::oneshot::Receiver<()>;

/// The state machine's applied state.
#[derive(Debug, Default)]
pub(crate) struct Machine {
    pub last_applied: Option<LogId>,
    pub membership: StoredMembership,
    pub state: ControlState,
}

/// The applied state, shared between the state machine (which writes it) and the gRPC
/// services (which read it).
#[derive(Debug)]
pub(crate) struct Shared {
    machine: RwLock<Machine>,
    routing: watch::Sender<u64>,
}

impl Shared {
    fn new(machine: Machine) -> Self {
        let (routing, _) = watch::channel(machine.state.routing_version);
        Self {
            machine: RwLock::new(machine),
            routing,
        }
    }

    /// Reads the applied state. Readers never wait on IO: apply holds the lock only to
    /// change memory.
    pub(crate) fn read(&self) -> RwLockReadGuard<'_, Machine> {
        self.machine.read().unwrap_or_else(PoisonError::into_inner)
    }

    /// Follows the routing version.
    pub(crate) fn subscribe(&self) -> watch::Receiver<u64> {
        self.routing.subscribe()
    }

    fn update<R>(&self, change: impl FnOnce(&mut Machine) -> R) -> R {
        let (result, version) = {
            let mut machine = self.machine.write().unwrap_or_else(PoisonError::into_inner);
            let result = change(&mut machine);
            (result, machine.state.routing_version)
        };
        self.routing.send_if_modified(|current| {
            let changed = *current != version;
            *current = version;
            changed
        });
        result
    }
}

/// What a snapshot's bytes hold.
#[derive(Serialize, Deserialize)]
struct SnapshotData {
    format: u32,
    state: ControlState,
}

/// Opens (or creates) the store of `node_id` in `dir`.
///
/// # Errors
/// [`StoreError`] when the file cannot be opened, belongs to another node, has another
/// format, or holds a snapshot that does not decode.
pub(crate) fn open(dir: &Path, node_id: u64) -> Result<Opened, StoreError> {
    let path = dir.join(FILE_NAME);
    let db = Database::create(&path).map_err(|source| StoreError::Open {
        path: path.clone(),
        source,
    })?;
    let redb_err = |source: redb::Error| StoreError::Redb {
        path: path.clone(),
        source,
    };
    let corrupt = |what, source| StoreError::Corrupt {
        path: path.clone(),
        what,
        source,
    };

    // Create the tables and stamp a new store; check an old one.
    let txn = db.begin_write().map_err(|e| redb_err(e.into()))?;
    {
        txn.open_table(LOG).map_err(|e| redb_err(e.into()))?;
        txn.open_table(SNAPSHOT).map_err(|e| redb_err(e.into()))?;
        let mut meta = txn.open_table(META).map_err(|e| redb_err(e.into()))?;
        let format: Option<u32> = read_value(&meta, KEY_FORMAT)
            .map_err(redb_err)?
            .map(|bytes| serde_json::from_slice(&bytes))
            .transpose()
            .map_err(|e| corrupt("format stamp", e))?;
        match format {
            Some(found) if found != FORMAT_VERSION => {
                return Err(StoreError::Format {
                    path,
                    found,
                    supported: FORMAT_VERSION,
                });
            }
            Some(_) => {}
            None => {
                meta.insert(KEY_FORMAT, FORMAT_VERSION.to_string().as_bytes())
                    .map_err(|e| redb_err(e.into()))?;
            }
        }
        let stored: Option<u64> = read_value(&meta, KEY_NODE_ID)
            .map_err(redb_err)?
            .map(|bytes| serde_json::from_slice(&bytes))
            .transpose()
            .map_err(|e| corrupt("node id", e))?;
        match stored {
            Some(stored) if stored != node_id => {
                return Err(StoreError::NodeIdMismatch {
                    path,
                    stored,
                    given: node_id,
                });
            }
            Some(_) => {}
            None => {
                meta.insert(KEY_NODE_ID, node_id.to_string().as_bytes())
                    .map_err(|e| redb_err(e.into()))?;
            }
        }
    }
    txn.commit().map_err(|e| redb_err(e.into()))?;

    let machine = match load_snapshot(&db).map_err(redb_err)? {
        None => Machine::default(),
        Some((meta, data)) => {
            let meta: SnapshotMeta =
                serde_json::from_slice(&meta).map_err(|e| corrupt("snapshot meta", e))?;
            let data = decode_snapshot(&data).map_err(|e| corrupt("snapshot", e))?;
            Machine {
                last_applied: meta.last_log_id,
                membership: meta.last_membership,
                state: data.state,
            }
        }
    };
    let (closed_tx, closed) = tokio::sync::oneshot::channel();
    let db = Arc::new(Db {
        database: db,
        _closed: CloseSignal(Some(closed_tx)),
    });
    let shared = Arc::new(Shared::new(machine));
    Ok(Opened {
        log: LogStore { db: db.clone() },
        machine: StateMachine {
            db,
            shared: shared.clone(),
        },
        shared,
        closed,
    })
}

/// An open store.
#[derive(Debug)]
pub(crate) struct Opened {
    /// The log and vote, for openraft.
    pub log: LogStore,
    /// The state machine, for openraft.
    pub machine: StateMachine,
    /// The applied state, for the services.
    pub shared: Arc<Shared>,
    /// Resolves once openraft has dropped both stores and the file is closed.
    pub closed: Closed,
}

fn json<T: Serialize + ?Sized>(value: &T) -> io::Result<Vec<u8>> {
    serde_json::to_vec(value).map_err(io::Error::other)
}

fn decode<T: for<'de> Deserialize<'de>>(bytes: &[u8], what: &str) -> io::Result<T> {
    serde_json::from_slice(bytes)
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, format!("{what}: {e}")))
}

fn decode_snapshot(bytes: &[u8]) -> Result<SnapshotData, serde_json::Error> {
    serde_json::from_slice(bytes)
}

fn read_value(
    table: &impl ReadableTable<&'static str, &'static [u8]>,
    key: &str,
) -> Result<Option<Vec<u8>>, redb::Error> {
    Ok(table.get(key)?.map(|v| v.value().to_vec()))
}

/// A stored snapshot: its metadata and its data, both as stored.
type StoredSnapshot = (Vec<u8>, Vec<u8>);

fn load_snapshot(db: &Database) -> Result<Option<StoredSnapshot>, redb::Error> {
    let txn = db.begin_read()?;
    let table = txn.open_table(SNAPSHOT)?;
    let meta = read_value(&table, KEY_SNAPSHOT_META)?;
    let data = read_value(&table, KEY_SNAPSHOT_DATA)?;
    Ok(meta.zip(data))
}

/// Runs a redb operation on the blocking pool.
async fn blocking<T, F>(work: F) -> io::Result<T>
where
    T: Send + 'static,
    F: FnOnce() -> io::Result<T> + Send + 'static,
{
    tokio::task::spawn_blocking(work)
        .await
        .map_err(io::Error::other)?
}

fn io_err(e: impl Into<redb::Error>) -> io::Error {
    io::Error::other(e.into())
}

fn write_meta(db: &Database, key: &'static str, value: &[u8], durable: bool) -> io::Result<()> {
    let mut txn = db.begin_write().map_err(io_err)?;
    if !durable {
        // Only a hint: the next durable commit (an append or a vote) persists it.
        txn.set_durability(Durability::None)
            .map_err(io::Error::other)?;
    }
    {
        let mut meta = txn.open_table(META).map_err(io_err)?;
        meta.insert(key, value).map_err(io_err)?;
    }
    txn.commit().map_err(io_err)
}

fn read_meta<T: for<'de> Deserialize<'de>>(
    db: &Database,
    key: &'static str,
) -> io::Result<Option<T>> {
    let txn = db.begin_read().map_err(io_err)?;
    let meta = txn.open_table(META).map_err(io_err)?;
    match read_value(&meta, key).map_err(io::Error::other)? {
        None => Ok(None),
        Some(bytes) => decode(&bytes, key).map(Some),
    }
}

/// The Raft log and vote.
#[derive(Debug, Clone)]
pub(crate) struct LogStore {
    db: Arc<Db>,
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> io::Result<Vec<Entry>> {
        let db = self.db.clone();
        let bounds = (range.start_bound().cloned(), range.end_bound().cloned());
        blocking(move || {
            let txn = db.begin_read().map_err(io_err)?;
            let log = txn.open_table(LOG).map_err(io_err)?;
            let mut entries = Vec::new();
            for item in log.range::<u64>(bounds).map_err(io_err)? {
                let (_, value) = item.map_err(io_err)?;
                entries.push(decode(value.value(), "log entry")?);
            }
            Ok(entries)
        })
        .await
    }

    async fn read_vote(&mut self) -> io::Result<Option<Vote>> {
        let db = self.db.clone();
        blocking(move || read_meta(&db, KEY_VOTE)).await
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = Self;

    async fn get_log_state(&mut self) -> io::Result<LogState<TypeConfig>> {
        let db = self.db.clone();
        blocking(move || {
            let last_purged: Option<LogId> = read_meta(&db, KEY_LAST_PURGED)?;
            let txn = db.begin_read().map_err(io_err)?;
            let log = txn.open_table(LOG).map_err(io_err)?;
            let last = match log.last().map_err(io_err)? {
                Some((_, value)) => Some(decode::<Entry>(value.value(), "log entry")?.log_id),
                None => last_purged,
            };
            Ok(LogState {
                last_purged_log_id: last_purged,
                last_log_id: last,
            })
        })
        .await
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote) -> io::Result<()> {
        let db = self.db.clone();
        let bytes = json(vote)?;
        blocking(move || write_meta(&db, KEY_VOTE, &bytes, true)).await
    }

    async fn save_committed(&mut self, committed: Option<LogId>) -> io::Result<()> {
        let db = self.db.clone();
        let bytes = json(&committed)?;
        blocking(move || write_meta(&db, KEY_COMMITTED, &bytes, false)).await
    }

    async fn read_committed(&mut self) -> io::Result<Option<LogId>> {
        let db = self.db.clone();
        blocking(move || Ok(read_meta::<Option<LogId>>(&db, KEY_COMMITTED)?.flatten())).await
    }

    async fn append<I>(&mut self, entries: I, callback: IOFlushed<TypeConfig>) -> io::Result<()>
    where
        I: IntoIterator<Item = Entry> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let encoded = entries
            .into_iter()
            .map(|entry| Ok((entry.log_id.index, json(&entry)?)))
            .collect::<io::Result<Vec<(u64, Vec<u8>)>>>()?;
        let db = self.db.clone();
        blocking(move || {
            let txn = db.begin_write().map_err(io_err)?;
            {
                let mut log = txn.open_table(LOG).map_err(io_err)?;
                for (index, bytes) in &encoded {
                    log.insert(*index, bytes.as_slice()).map_err(io_err)?;
                }
            }
            txn.commit().map_err(io_err)
        })
        .await?;
        callback.io_completed(Ok(()));
        Ok(())
    }

    async fn truncate_after(&mut self, last_log_id: Option<LogId>) -> io::Result<()> {
        let db = self.db.clone();
        blocking(move || {
            let txn = db.begin_write().map_err(io_err)?;
            {
                let mut log = txn.open_table(LOG).map_err(io_err)?;
                let from = last_log_id.map_or(Bound::Unbounded, |id| Bound::Excluded(id.index));
                log.retain_in::<u64, _>((from, Bound::Unbounded), |_, _| false)
                    .map_err(io_err)?;
            }
            txn.commit().map_err(io_err)
        })
        .await
    }

    async fn purge(&mut self, log_id: LogId) -> io::Result<()> {
        let db = self.db.clone();
        blocking(move || {
            let txn = db.begin_write().map_err(io_err)?;
            {
                let mut meta = txn.open_table(META).map_err(io_err)?;
                meta.insert(KEY_LAST_PURGED, json(&log_id)?.as_slice())
                    .map_err(io_err)?;
                let mut log = txn.open_table(LOG).map_err(io_err)?;
                log.retain_in::<u64, _>(..=log_id.index, |_, _| false)
                    .map_err(io_err)?;
            }
            txn.commit().map_err(io_err)
        })
        .await
    }
}

/// The state machine: applies commands to the shared [`Machine`] and keeps snapshots.
#[derive(Debug)]
pub(crate) struct StateMachine {
    db: Arc<Db>,
    shared: Arc<Shared>,
}

impl RaftStateMachine<TypeConfig> for StateMachine {
    type SnapshotData = Vec<u8>;
    type SnapshotBuilder = SnapshotBuilder;

    async fn applied_state(&mut self) -> io::Result<(Option<LogId>, StoredMembership)> {
        let machine = self.shared.read();
        Ok((machine.last_applied, machine.membership.clone()))
    }

    async fn apply<Strm>(&mut self, mut entries: Strm) -> io::Result<()>
    where
        Strm: Stream<Item = io::Result<EntryResponder<TypeConfig>>> + Unpin + OptionalSend,
    {
        while let Some((entry, responder)) = entries.try_next().await? {
            let result = self.shared.update(|machine| {
                machine.last_applied = Some(entry.log_id);
                match &entry.payload {
                    EntryPayload::Blank => Ok(Applied::Unchanged),
                    EntryPayload::Normal(command) => {
                        machine.state.apply(entry.log_id.index, command)
                    }
                    EntryPayload::Membership(membership) => {
                        machine.membership =
                            StoredMembership::new(Some(entry.log_id), membership.clone());
                        Ok(Applied::Unchanged)
                    }
                }
            });
            if let Err(refused) = &result {
                tracing::debug!(log_id = %entry.log_id, %refused, "command refused");
            }
            if let Some(responder) = responder {
                responder.send(result);
            }
        }
        Ok(())
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        SnapshotBuilder {
            db: self.db.clone(),
            shared: self.shared.clone(),
        }
    }

    async fn install_snapshot(&mut self, meta: &SnapshotMeta, snapshot: Vec<u8>) -> io::Result<()> {
        let data = decode_snapshot(&snapshot)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
        if data.format != FORMAT_VERSION {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "snapshot format {} is not {FORMAT_VERSION}: every control node must run the same version",
                    data.format
                ),
            ));
        }
        persist_snapshot(&self.db, meta, snapshot).await?;
        self.shared.update(|machine| {
            machine.last_applied = meta.last_log_id;
            machine.membership = meta.last_membership.clone();
            machine.state = data.state;
        });
        Ok(())
    }

    async fn get_current_snapshot(&mut self) -> io::Result<Option<Snapshot>> {
        let db = self.db.clone();
        let stored = blocking(move || load_snapshot(&db).map_err(io::Error::other)).await?;
        match stored {
            None => Ok(None),
            Some((meta, data)) => Ok(Some(Snapshot {
                meta: decode(&meta, "snapshot meta")?,
                snapshot: data,
            })),
        }
    }
}

async fn persist_snapshot(db: &Arc<Db>, meta: &SnapshotMeta, data: Vec<u8>) -> io::Result<()> {
    let db = db.clone();
    let meta = json(meta)?;
    blocking(move || {
        let txn = db.begin_write().map_err(io_err)?;
        {
            let mut table = txn.open_table(SNAPSHOT).map_err(io_err)?;
            table
                .insert(KEY_SNAPSHOT_META, meta.as_slice())
                .map_err(io_err)?;
            table
                .insert(KEY_SNAPSHOT_DATA, data.as_slice())
                .map_err(io_err)?;
        }
        txn.commit().map_err(io_err)
    })
    .await
}

/// Builds a snapshot of the applied state.
#[derive(Debug)]
pub(crate) struct SnapshotBuilder {
    db: Arc<Db>,
    shared: Arc<Shared>,
}

impl RaftSnapshotBuilder<TypeConfig> for SnapshotBuilder {
    type SnapshotData = Vec<u8>;

    async fn build_snapshot(&mut self) -> io::Result<Snapshot> {
        let (meta, data) = {
            let machine = self.shared.read();
            let meta = SnapshotMeta {
                last_log_id: machine.last_applied,
                last_membership: machine.membership.clone(),
            };
            let data = SnapshotData {
                format: FORMAT_VERSION,
                state: machine.state.clone(),
            };
            (meta, json(&data)?)
        };
        persist_snapshot(&self.db, &meta, data.clone()).await?;
        Ok(Snapshot {
            meta,
            snapshot: data,
        })
    }
}

#[cfg(test)]
mod tests;
