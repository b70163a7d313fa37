//! What a shard is: its collection's spec, its index, its hash range and its epoch.

use vectron_hnsw::{IndexConfig, Metric as IndexMetric, Quantization as IndexQuantization};
use vectron_proto::core::v1::ShardAssignment;
use vectron_proto::hashing::HashRange;
use vectron_proto::v1::{CollectionSpec, Metric, Quantization};

use crate::error::ShardError;

/// Default links per node when a spec leaves `m` out.
pub const DEFAULT_M: u32 = 16;
/// Default build candidate list.
pub const DEFAULT_EF_CONSTRUCTION: u32 = 200;
/// Default search candidate list.
pub const DEFAULT_EF: u32 = 64;

/// The identity and parameters of one shard.
#[derive(Debug, Clone, PartialEq)]
pub struct ShardSpec {
    /// The collection, with every default resolved.
    pub collection: CollectionSpec,
    /// Index of the shard within the collection.
    pub shard_id: u32,
    /// Hashes of the point ids the shard owns.
    pub range: HashRange,
    /// Placement epoch.
    pub epoch: u64,
}

impl ShardSpec {
    /// Checks an assignment and resolves the defaults its spec leaves out.
    pub fn from_assignment(a: &ShardAssignment) -> Result<Self, ShardError> {
        let mut collection = a.spec.clone().ok_or(ShardError::BadAssignment {
            reason: "the assignment has no collection spec".into(),
        })?;
        let bad = |reason: String| Err(ShardError::BadAssignment { reason });
        if collection.name.is_empty() {
            return bad("the collection has no name".into());
        }
        if collection.dimension == 0 || collection.dimension > 65_536 {
            return bad(format!(
                "dimension {} is not within 1..=65536",
                collection.dimension
            ));
        }
        if collection.metric() == Metric::Unspecified {
            return bad("the collection has no metric".into());
        }
        let hnsw = collection.hnsw.get_or_insert_default();
        let m = *hnsw.m.get_or_insert(DEFAULT_M);
        let efc = *hnsw.ef_construction.get_or_insert(DEFAULT_EF_CONSTRUCTION);
        hnsw.ef.get_or_insert(DEFAULT_EF);
        if !(4..=128).contains(&m) || efc < m {
            return bad(format!("m = {m}, ef_construction = {efc} are out of range"));
        }
        if collection.quantization() == Quantization::Unspecified {
            collection.set_quantization(Quantization::None);
        }
        if a.hash_range_start > a.hash_range_end {
            return bad(format!(
                "hash range {}..={} is empty",
                a.hash_range_start, a.hash_range_end
            ));
        }
        Ok(Self {
            collection,
            shard_id: a.shard_id,
            range: HashRange {
                start: a.hash_range_start,
                end: a.hash_range_end,
            },
            epoch: a.epoch,
        })
    }

    /// The assignment this spec was made from.
    pub fn to_assignment(&self) -> ShardAssignment {
        ShardAssignment {
            spec: Some(self.collection.clone()),
            shard_id: self.shard_id,
            hash_range_start: self.range.start,
            hash_range_end: self.range.end,
            epoch: self.epoch,
        }
    }

    /// The collection's name.
    pub fn name(&self) -> &str {
        &self.collection.name
    }

    /// Parameters of the shard's HNSW index.
    pub(crate) fn index_config(&self) -> IndexConfig {
        let c = &self.collection;
        let metric = match c.metric() {
            Metric::L2 => IndexMetric::L2,
            Metric::Dot => IndexMetric::Dot,
            Metric::Cosine | Metric::Unspecified => IndexMetric::Cosine,
        };
        let hnsw = c.hnsw.unwrap_or_default();
        let mut cfg = IndexConfig::new(c.dimension as usize, metric);
        cfg.m = hnsw.m.unwrap_or(DEFAULT_M) as usize;
        cfg.ef_construction = hnsw.ef_construction.unwrap_or(DEFAULT_EF_CONSTRUCTION) as usize;
        cfg.quantization = match c.quantization() {
            Quantization::Int8 => IndexQuantization::Int8,
            Quantization::None | Quantization::Unspecified => IndexQuantization::None,
        };
        cfg
    }

    /// Default search candidate list.
    pub(crate) fn default_ef(&self) -> u32 {
        self.collection
            .hnsw
            .as_ref()
            .and_then(|h| h.ef)
            .unwrap_or(DEFAULT_EF)
    }
}
