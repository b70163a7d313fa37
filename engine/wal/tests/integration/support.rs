//! What the suite shares: driver selection, deterministic records, collecting a replay.

use std::future::Future;

use vectron_wal::{BodyView, Lsn, Record, Upsert, Wal, WalError};

/// Which monoio driver a test runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Driver {
    Uring,
    Legacy,
}

impl Driver {
    pub fn parse(name: &str) -> Self {
        match name {
            "uring" => Driver::Uring,
            "legacy" => Driver::Legacy,
            other => panic!("unknown driver {other:?}"),
        }
    }

    /// Runs `fut` to completion on a fresh runtime of this driver, with timers.
    pub fn block_on<F: Future>(self, fut: F) -> F::Output {
        match self {
            Driver::Uring => monoio::RuntimeBuilder::<monoio::IoUringDriver>::new()
                .enable_timer()
                .build()
                .expect("io_uring runtime: this host must support io_uring")
                .block_on(fut),
            Driver::Legacy => monoio::RuntimeBuilder::<monoio::LegacyDriver>::new()
                .enable_timer()
                .build()
                .expect("legacy runtime")
                .block_on(fut),
        }
    }
}

/// Declares each test once per driver: `name::uring` and `name::legacy`.
#[macro_export]
macro_rules! both_drivers {
    ($(fn $name:ident($driver:ident: Driver) $body:block)*) => {$(
        fn $name($driver: $crate::support::Driver) $body

        mod $name {
            #[test]
            fn uring() {
                super::$name($crate::support::Driver::Uring);
            }

            #[test]
            fn legacy() {
                super::$name($crate::support::Driver::Legacy);
            }
        }
    )*};
}

/// An owned upsert batch, so tests can keep what they appended and compare.
#[derive(Debug, Clone, PartialEq)]
pub struct Batch {
    pub ids: Vec<String>,
    pub dim: u32,
    pub vectors: Vec<f32>,
    pub payloads: Vec<Vec<u8>>,
}

impl Batch {
    /// A batch whose every byte follows from `seed`: `points` points of dimension `dim`.
    pub fn seeded(seed: u64, points: usize, dim: u32) -> Self {
        let ids = (0..points).map(|i| format!("p{seed}-{i}")).collect();
        let vectors = (0..points * dim as usize)
            .map(|j| (seed as f32) * 0.5 + j as f32 * 0.25)
            .collect();
        let payloads = (0..points)
            .map(|i| {
                if i % 2 == 0 {
                    Vec::new()
                } else {
                    format!("{{\"s\":{seed}}}").into_bytes()
                }
            })
            .collect();
        Self {
            ids,
            dim,
            vectors,
            payloads,
        }
    }

    pub fn record(&self) -> Record<'_> {
        Record::Upsert(Upsert {
            ids: &self.ids,
            dim: self.dim,
            vectors: &self.vectors,
            payloads: &self.payloads,
        })
    }
}

/// A replayed record, copied out of the mapping.
#[derive(Debug, Clone, PartialEq)]
pub enum Owned {
    Upsert(Batch),
    Delete(Vec<String>),
    Checkpoint(Lsn),
    Blank,
    Membership(Vec<u8>),
    DeleteByFilter(Vec<u8>),
}

impl Owned {
    pub fn record(&self) -> Record<'_> {
        match self {
            Owned::Upsert(b) => b.record(),
            Owned::Delete(ids) => Record::Delete(vectron_wal::Delete { ids }),
            Owned::Checkpoint(covers) => Record::Checkpoint { covers: *covers },
            Owned::Blank => Record::Blank,
            Owned::Membership(bytes) => Record::Membership(bytes),
            Owned::DeleteByFilter(bytes) => Record::DeleteByFilter(bytes),
        }
    }
}

/// Reads the whole log from `from` into owned records.
pub fn collect(
    wal: &Wal<impl vectron_wal::Storage>,
    from: Lsn,
) -> Result<Vec<(Lsn, Owned)>, WalError> {
    Ok(collect_terms(wal, from)?
        .into_iter()
        .map(|(lsn, _, owned)| (lsn, owned))
        .collect())
}

/// [`collect`], with each record's term.
pub fn collect_terms(
    wal: &Wal<impl vectron_wal::Storage>,
    from: Lsn,
) -> Result<Vec<(Lsn, u64, Owned)>, WalError> {
    let mut out = Vec::new();
    let mut replay = wal.replay(from)?;
    while let Some(rec) = replay.next_record()? {
        let owned = match rec.body() {
            BodyView::Upsert(u) => Owned::Upsert(Batch {
                ids: u.ids().map(str::to_string).collect(),
                dim: u.dim(),
                vectors: u.vectors().to_vec(),
                payloads: u.points().map(|p| p.2.to_vec()).collect(),
            }),
            BodyView::Delete(d) => Owned::Delete(d.ids().map(str::to_string).collect()),
            BodyView::Checkpoint { covers } => Owned::Checkpoint(covers),
            BodyView::Blank => Owned::Blank,
            BodyView::Membership(bytes) => Owned::Membership(bytes.to_vec()),
            BodyView::DeleteByFilter(bytes) => Owned::DeleteByFilter(bytes.to_vec()),
        };
        out.push((rec.lsn(), rec.term(), owned));
    }
    Ok(out)
}

/// Segment files of a log directory, in log order.
pub fn segments(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "wal"))
        .collect();
    out.sort();
    out
}

/// Offsets of the records in a segment, read from the framing alone (FORMAT.md).
pub fn record_offsets(segment: &std::path::Path) -> Vec<u64> {
    let bytes = std::fs::read(segment).unwrap();
    let mut off = 32;
    let mut out = Vec::new();
    while off + 16 <= bytes.len() {
        let len = u32::from_le_bytes(bytes[off..off + 4].try_into().unwrap()) as usize;
        if len == 0 {
            break;
        }
        out.push(off as u64);
        off += (16 + len).div_ceil(16) * 16;
    }
    out
}

/// Flips one bit of the byte at `offset`.
pub fn flip(path: &std::path::Path, offset: u64) {
    let mut bytes = std::fs::read(path).unwrap();
    bytes[offset as usize] ^= 0x04;
    std::fs::write(path, bytes).unwrap();
}

/// Appends `n` seeded single-point batches and returns what was acknowledged.
pub async fn fill<S: vectron_wal::Storage>(
    wal: &Wal<S>,
    seeds: std::ops::Range<u64>,
) -> Vec<(Lsn, Owned)> {
    let mut out = Vec::new();
    for seed in seeds {
        let batch = Batch::seeded(seed, 1, 8);
        let lsn = wal.append(batch.record()).await.unwrap();
        out.push((lsn, Owned::Upsert(batch)));
    }
    out
}
