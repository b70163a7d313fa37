//! What a shard is: its collection's spec, its index, its hash range and its epoch.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use vectron_hnsw::{IndexConfig, Metric as IndexMetric, Quantization as IndexQuantization};

use vectron_proto::core::v1::{ReplicaPeer, ShardAssignment};
use vectron_proto::hashing::HashRange;
use vectron_proto::rules::{self, MAX_DIMENSION};
use vectron_proto::v1::{CollectionSpec, Metric, Quantization};

use crate::error::ShardError;

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
    /// For a replicated shard, this replica and its group; `None` for a shard of one
    /// copy.
    pub replica: Option<ReplicaSpec>,
}

/// A replica of a replicated shard: its id, its group's voters and where they are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplicaSpec {
    /// This replica's id.
    pub id: u64,
    /// Every voter, this replica included: replica id → its core's address.
    pub peers: BTreeMap<u64, SocketAddr>,
    /// Whether this replica starts its group (placed by its collection's create).
    pub initial: bool,
    /// The replica that should lead the group, if one is named (one of `peers`).
    pub preferred_leader: Option<u64>,
}

impl ReplicaSpec {
    fn from_assignment(a: &ShardAssignment) -> Result<Option<Self>, ShardError> {
        let bad = |reason: String| Err(ShardError::BadAssignment { reason });
        if a.replica_id == 0 {
            if !a.peers.is_empty() || a.initial {
                return bad("peers are given for a shard with no replica id".into());
            }
            return Ok(None);
        }
        let mut peers = BTreeMap::new();
        for p in &a.peers {
            if p.replica_id == 0 {
                return bad("a peer has replica id 0".into());
            }
            let addr: SocketAddr = p.address.parse().map_err(|_| ShardError::BadAssignment {
                reason: format!(
                    "peer {} has address {:?}, not ip:port",
                    p.replica_id, p.address
                ),
            })?;
            if peers.insert(p.replica_id, addr).is_some() {
                return bad(format!("peer {} is listed twice", p.replica_id));
            }
        }
        if !peers.contains_key(&a.replica_id) {
            return bad(format!(
                "replica {} is not among its group's peers",
                a.replica_id
            ));
        }
        if a.preferred_leader != 0 && !peers.contains_key(&a.preferred_leader) {
            return bad(format!(
                "the preferred leader {} is not among its group's peers",
                a.preferred_leader
            ));
        }
        Ok(Some(Self {
            id: a.replica_id,
            peers,
            initial: a.initial,
            preferred_leader: (a.preferred_leader != 0).then_some(a.preferred_leader),
        }))
    }
}

impl ShardSpec {
    /// Checks an assignment and resolves the defaults its spec leaves out.
    pub fn from_assignment(a: &ShardAssignment) -> Result<Self, ShardError> {
        let mut collection = a.spec.clone().ok_or(ShardError::BadAssignment {
            reason: "the assignment has no collection spec".into(),
        })?;
        let bad = |reason: String| Err(ShardError::BadAssignment { reason });
        // A shard's directory is named after its collection: the name is checked here
        // too, so that no assignment can name a path outside the core's directory.
        if let Err(e) = rules::check_collection_name(&collection.name) {
            return bad(e.to_string());
        }
        if collection.dimension == 0 || collection.dimension > MAX_DIMENSION {
            return bad(format!(
                "dimension {} is not within 1..={MAX_DIMENSION}",
                collection.dimension
            ));
        }
        if collection.metric() == Metric::Unspecified {
            return bad("the collection has no metric".into());
        }
        let hnsw = collection.hnsw.get_or_insert_default();
        let resolved = rules::resolve_hnsw(hnsw.m, hnsw.ef_construction, hnsw.ef).map_err(|e| {
            ShardError::BadAssignment {
                reason: e.to_string(),
            }
        })?;
        hnsw.m = Some(resolved.m);
        hnsw.ef_construction = Some(resolved.ef_construction);
        hnsw.ef = Some(resolved.ef);
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
            replica: ReplicaSpec::from_assignment(a)?,
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
            replica_id: self.replica.as_ref().map_or(0, |r| r.id),
            peers: self.replica.as_ref().map_or_else(Vec::new, |r| {
                r.peers
                    .iter()
                    .map(|(&replica_id, addr)| ReplicaPeer {
                        replica_id,
                        address: addr.to_string(),
                    })
                    .collect()
            }),
            initial: self.replica.as_ref().is_some_and(|r| r.initial),
            preferred_leader: self
                .replica
                .as_ref()
                .and_then(|r| r.preferred_leader)
                .unwrap_or(0),
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
        cfg.m = hnsw.m.unwrap_or(rules::DEFAULT_M) as usize;
        cfg.ef_construction = hnsw
            .ef_construction
            .unwrap_or(rules::DEFAULT_EF_CONSTRUCTION) as usize;
        cfg.quantization = match c.quantization() {
            Quantization::Int8 => IndexQuantization::Int8,
            Quantization::None | Quantization::Unspecified => IndexQuantization::None,
        };
        cfg
    }

    /// Whether `other` is this shard's collection, settings fixed at creation alike:
    /// what `Collections.Update` changes may differ. That is the default search `ef`
    /// (the gateway sends each search's `ef`, so the one a core holds serves only calls
    /// that come to it directly without one), the payload indexes (a core adopts the
    /// new ones, [`crate::ShardHandle::set_payload_indexes`]) and the search cache
    /// settings (the gateways' alone).
    pub(crate) fn same_collection(&self, other: &CollectionSpec) -> bool {
        let fixed = |c: &CollectionSpec| {
            let mut c = c.clone();
            if let Some(h) = c.hnsw.as_mut() {
                h.ef = None;
            }
            c.payload_indexes.clear();
            c.search_cache = None;
            c
        };
        fixed(&self.collection) == fixed(other)
    }

    /// Default search candidate list.
    pub(crate) fn default_ef(&self) -> u32 {
        self.collection
            .hnsw
            .as_ref()
            .and_then(|h| h.ef)
            .unwrap_or(rules::DEFAULT_EF)
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
    fn collection_names_follow_the_rulebook() {
        let longest = "a".repeat(rules::MAX_COLLECTION_NAME_LEN);
        let too_long = "a".repeat(rules::MAX_COLLECTION_NAME_LEN + 1);
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
            let control = rules::check_collection_name(name).is_ok();
            let shard = ShardSpec::from_assignment(&named(name));
            assert_eq!(shard.is_ok(), control, "{name:?}: {shard:?}");
            if let Err(e) = shard {
                assert!(matches!(e, ShardError::BadAssignment { .. }), "{e}");
            }
        }
        assert!(ShardSpec::from_assignment(&named("../x")).is_err());
    }

    #[test]
    fn a_new_default_ef_or_payload_index_is_the_same_collection_and_a_new_dimension_is_not() {
        let held = ShardSpec::from_assignment(&named("docs")).unwrap();
        let mut tuned = held.collection.clone();
        let hnsw = tuned.hnsw.as_mut().expect("resolved");
        hnsw.ef = Some(96);
        assert!(held.same_collection(&tuned));
        tuned.payload_indexes.push(vectron_proto::v1::PayloadIndex {
            field: "section".into(),
            kind: vectron_proto::v1::PayloadFieldKind::Keyword.into(),
        });
        assert!(held.same_collection(&tuned));
        tuned.search_cache = Some(vectron_proto::v1::SearchCacheSettings {
            enabled: Some(false),
            ttl_ms: Some(100),
        });
        assert!(held.same_collection(&tuned));
        let hnsw = tuned.hnsw.as_mut().expect("resolved");
        hnsw.m = Some(48);
        assert!(!held.same_collection(&tuned));
        let mut other = held.collection.clone();
        other.dimension = 5;
        assert!(!held.same_collection(&other));
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

    #[test]
    fn a_replica_names_itself_among_peers_with_addresses() {
        let peer = |replica_id, address: &str| ReplicaPeer {
            replica_id,
            address: address.into(),
        };
        let with = |replica_id, peers: Vec<ReplicaPeer>| {
            ShardSpec::from_assignment(&ShardAssignment {
                replica_id,
                peers,
                initial: true,
                ..named("docs")
            })
        };
        let good = vec![peer(1, "127.0.0.1:7400"), peer(2, "127.0.0.1:7401")];
        let spec = with(1, good.clone()).expect("a replica");
        let replica = spec.replica.clone().expect("replicated");
        assert_eq!(
            (replica.id, replica.peers.len(), replica.initial),
            (1, 2, true)
        );
        assert_eq!(
            ShardSpec::from_assignment(&spec.to_assignment()).unwrap(),
            spec,
            "round trip"
        );
        for (id, peers, why) in [
            (3, good.clone(), "not among its group's peers"),
            (1, vec![peer(1, "localhost:7400")], "not ip:port"),
            (
                1,
                vec![peer(1, "127.0.0.1:1"), peer(1, "127.0.0.1:2")],
                "listed twice",
            ),
            (
                1,
                vec![peer(1, "127.0.0.1:1"), peer(0, "127.0.0.1:2")],
                "replica id 0",
            ),
            (0, good.clone(), "no replica id"),
        ] {
            let e = with(id, peers).expect_err(why);
            assert!(e.to_string().contains(why), "{e} should say {why}");
        }
        let preferring = |preferred_leader| {
            ShardSpec::from_assignment(&ShardAssignment {
                replica_id: 1,
                peers: good.clone(),
                preferred_leader,
                ..named("docs")
            })
        };
        let spec = preferring(2).expect("a peer is preferred");
        assert_eq!(spec.replica.as_ref().unwrap().preferred_leader, Some(2));
        assert_eq!(spec.to_assignment().preferred_leader, 2, "round trip");
        let e = preferring(9).expect_err("a stranger is preferred");
        assert!(e.to_string().contains("preferred leader 9"), "{e}");
        assert!(
            ShardSpec::from_assignment(&named("docs"))
                .unwrap()
                .replica
                .is_none()
        );
    }
}
