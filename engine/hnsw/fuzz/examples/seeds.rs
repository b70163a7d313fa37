//! Writes the seed corpus of the `open_index` fuzz target: small valid index files
//! built through the public API, one per shape of state a file can hold (each metric,
//! f32 and int8 before and after the quantizer is trained, empty, one point,
//! tombstones, pending points, a free list left by a reclaim), and the version-1
//! files of the crate's tests.
//!
//! `cargo run --example seeds [OUT_DIR]`; the default is `corpus/open_index` beside
//! this crate's manifest.

use std::error::Error;
use std::path::PathBuf;

use vectron_hnsw::{HnswIndex, IndexConfig, Metric, NodeId, Quantization};

/// The int8 quantizer trains once this many points are live (`QUANT_TRAIN_POINTS` in
/// vectron-hnsw, not public): the trained seeds hold a few more.
const TRAINED: usize = 1_030;

/// One seed: built by inserting `points` vectors, deleting every `delete_every`-th
/// one, optionally reclaiming, then adding `pending` more without linking them and
/// deleting every `tombstone_every`-th of the linked ones left.
struct Seed {
    name: &'static str,
    dim: usize,
    metric: Metric,
    quantization: Quantization,
    m: usize,
    points: usize,
    delete_every: usize,
    reclaim: bool,
    pending: usize,
    tombstone_every: usize,
}

const SEEDS: &[Seed] = &[
    Seed::new("f32-cosine-d3-empty", Metric::Cosine, 3),
    Seed::new("f32-l2-d16-one", Metric::L2, 16).m(4).points(1),
    Seed::new("f32-dot-d3-pending-only", Metric::Dot, 3).pending(2),
    Seed::new("f32-cosine-d40-50", Metric::Cosine, 40)
        .m(4)
        .points(50)
        .deletes(7, false)
        .pending(3),
    Seed::new("f32-l2-d3-50-reclaimed", Metric::L2, 3)
        .points(50)
        .deletes(5, true)
        .pending(4)
        .tombstones(9),
    Seed::new("f32-dot-d16-50", Metric::Dot, 16)
        .m(3)
        .points(50)
        .tombstones(6),
    Seed::new("int8-cosine-d16-50-untrained", Metric::Cosine, 16)
        .int8()
        .m(4)
        .points(50)
        .deletes(6, true)
        .pending(2),
    Seed::new("int8-l2-d40-one-pending", Metric::L2, 40)
        .int8()
        .pending(1),
    Seed::new("int8-l2-d3-trained", Metric::L2, 3)
        .int8()
        .points(TRAINED)
        .deletes(50, true)
        .pending(5)
        .tombstones(200),
    Seed::new("int8-cosine-d3-trained", Metric::Cosine, 3)
        .int8()
        .points(TRAINED)
        .tombstones(100)
        .pending(3),
];

impl Seed {
    /// f32, `m = 2` (the smallest lists, so the smallest files), no points.
    const fn new(name: &'static str, metric: Metric, dim: usize) -> Self {
        Self {
            name,
            dim,
            metric,
            quantization: Quantization::None,
            m: 2,
            points: 0,
            delete_every: 0,
            reclaim: false,
            pending: 0,
            tombstone_every: 0,
        }
    }

    const fn int8(mut self) -> Self {
        self.quantization = Quantization::Int8;
        self
    }

    const fn m(mut self, m: usize) -> Self {
        self.m = m;
        self
    }

    const fn points(mut self, points: usize) -> Self {
        self.points = points;
        self
    }

    const fn deletes(mut self, every: usize, reclaim: bool) -> Self {
        self.delete_every = every;
        self.reclaim = reclaim;
        self
    }

    const fn pending(mut self, pending: usize) -> Self {
        self.pending = pending;
        self
    }

    const fn tombstones(mut self, every: usize) -> Self {
        self.tombstone_every = every;
        self
    }

    fn build(&self, next: &mut impl FnMut() -> f32) -> Result<HnswIndex, Box<dyn Error>> {
        let mut cfg = IndexConfig::new(self.dim, self.metric);
        cfg.m = self.m;
        cfg.ef_construction = 32;
        cfg.quantization = self.quantization;
        let mut index = HnswIndex::new(cfg)?;
        let mut vector = || (0..self.dim).map(|_| next()).collect::<Vec<f32>>();
        let mut ids = Vec::with_capacity(self.points);
        for _ in 0..self.points {
            ids.push(index.insert(&vector())?);
        }
        if self.delete_every > 0 {
            for &id in ids.iter().step_by(self.delete_every) {
                index.delete(id)?;
            }
            if self.reclaim {
                index.reclaim_deleted();
            }
        }
        for _ in 0..self.pending {
            index.add(&vector())?;
        }
        if self.tombstone_every > 0 {
            let live: Vec<NodeId> = (0..index.id_bound() as u32)
                .map(NodeId)
                .filter(|&id| index.contains(id))
                .collect();
            for &id in live.iter().skip(1).step_by(self.tombstone_every) {
                index.delete(id)?;
            }
        }
        Ok(index)
    }
}

fn main() -> Result<(), Box<dyn Error>> {
    let out = std::env::args_os().nth(1).map_or_else(
        || PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("corpus/open_index"),
        PathBuf::from,
    );
    std::fs::create_dir_all(&out)?;
    // SplitMix64 to uniform values in [-1, 1): fixed, so the seeds are reproducible.
    let mut state = 0x5EED_u64;
    let mut next = move || {
        state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        ((z >> 40) as f32 / (1u64 << 23) as f32) - 1.0
    };
    for seed in SEEDS {
        let index = seed.build(&mut next)?;
        let path = out.join(format!("{}.hnsw", seed.name));
        index.save(&path)?;
        // Each seed must take the target past `open`.
        let opened = HnswIndex::open(&path)?;
        assert_eq!(
            (opened.len(), opened.pending_len(), opened.deleted_len()),
            (index.len(), index.pending_len(), index.deleted_len()),
            "{}: the saved index reopens with other counts",
            seed.name
        );
        println!(
            "{}: {} bytes, {} live, {} pending, {} tombstones, {} slots",
            path.display(),
            std::fs::metadata(&path)?.len(),
            index.len(),
            index.pending_len(),
            index.deleted_len(),
            index.id_bound()
        );
    }
    // `save` writes the current version only: the version-1 files of the crate's tests
    // (f32, and int8 whose blocks hold the codes) take `open` through its older path.
    let fixtures = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/data");
    for entry in std::fs::read_dir(&fixtures)? {
        let from = entry?.path();
        if from.extension().is_some_and(|e| e == "hnsw") {
            let to = out.join(from.file_name().ok_or("a fixture has a file name")?);
            std::fs::copy(&from, &to)?;
            HnswIndex::open(&to)?;
            println!("{}: copied from {}", to.display(), from.display());
        }
    }
    Ok(())
}
