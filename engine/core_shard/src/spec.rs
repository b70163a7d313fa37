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

/// Longest collection name, in characters: the control plane's limit. A shard's
/// directory is named after its collection, so the name is checked here too.
pub const MAX_COLLECTION_NAME_LEN: usize = 64;

/// Whether `name` is a collection name the control plane would accept: 1 to
/// [`MAX_COLLECTION_NAME_LEN`] characters from `[A-Za-z0-9_-]`, starting with a letter or
/// a digit. Such a name is one plain path component (no `/`, no `..`).
fn valid_collection_name(name: &str) -> bool {
    (1..=MAX_COLLECTION_NAME_LEN).contains(&name.len())
        && name.starts_with(|c: char| c.is_ascii_alphanumeric())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

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
    /// Which collection of this name the shard belongs to (the control plane's log
    /// index of its create); 0 when unknown.
    pub incarnation: u64,
}

impl ShardSpec {
    /// Checks an assignment and resolves the defaults its spec leaves out.
    pub fn from_assignment(a: &ShardAssignment) -> Result<Self, ShardError> {
        let mut collection = a.spec.clone().ok_or(ShardError::BadAssignment {
            reason: "the assignment has no collection spec".into(),
        })?;
        let bad = |reason: String| Err(ShardError::BadAssignment { reason });
        if !valid_collection_name(&collection.name) {
            return bad(format!(
                "collection name {:?} is not allowed: use 1 to {MAX_COLLECTION_NAME_LEN} characters from [A-Za-z0-9_-], starting with a letter or a digit",
                collection.name
            ));
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
            incarnation: a.incarnation,
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
            incarnation: self.incarnation,
        }
    }

    /// Whether a shard that recorded incarnation `held` belongs to another collection
    /// of this name than the one this spec opens: a dropped one, whose data must go.
    /// An unknown incarnation (0) on either side never counts as another: a shard
    /// written before incarnations existed adopts the one it is opened with, and an
    /// open that names none adopts the shard as it is.
    pub fn replaces(&self, held: u64) -> bool {
        held != 0 && self.incarnation != 0 && held != self.incarnation
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

#[cfg(test)]
mod tests {
    use super::*;

    fn named(name: &str) -> ShardAssignment {
        ShardAssignment {
            spec: Some(CollectionSpec {
                name: name.to_owned(),
                dimension: 4,
                metric: Metric::Cosine.into(),
                ..Default::default()
            }),
            hash_range_end: u64::MAX,
            ..Default::default()
        }
    }

    #[test]
    fn collection_names_follow_the_control_planes_rule() {
        assert_eq!(MAX_COLLECTION_NAME_LEN, vectron_control::MAX_NAME_LEN);
        let longest = "a".repeat(MAX_COLLECTION_NAME_LEN);
        let too_long = "a".repeat(MAX_COLLECTION_NAME_LEN + 1);
        let cases = [
            "docs",
            "Docs_2",
            "a-b",
            "0",
            longest.as_str(), // accepted
            "",
            "../x",
            "x/y",
            "..",
            ".hidden",
            "_x",
            "-x",
            "a b",
            "é",
            "a.b",
            "x\0",
            too_long.as_str(),
        ];
        for name in cases {
            let control = vectron_control::validate_collection_name(name).is_ok();
            let shard = ShardSpec::from_assignment(&named(name));
            assert_eq!(shard.is_ok(), control, "{name:?}: {shard:?}");
            if let Err(e) = shard {
                assert!(matches!(e, ShardError::BadAssignment { .. }), "{e}");
            }
        }
        assert!(ShardSpec::from_assignment(&named("../x")).is_err());
    }

    #[test]
    fn only_two_known_and_different_incarnations_replace_a_shard() {
        let at = |incarnation| {
            ShardSpec::from_assignment(&ShardAssignment {
                incarnation,
                ..named("docs")
            })
            .unwrap()
        };
        assert!(at(7).replaces(5), "a re-created collection");
        assert!(at(5).replaces(7));
        assert!(!at(7).replaces(7), "the same collection");
        assert!(!at(7).replaces(0), "a shard written before incarnations");
        assert!(!at(0).replaces(7), "an open that names none");
        assert!(!at(0).replaces(0));
        assert_eq!(at(7).to_assignment().incarnation, 7, "round trip");
    }
}
