//! `vectron collections create|list|describe|drop|update`.

use clap::{Args, Subcommand, ValueEnum};
use vectron_client::api::{
    CollectionState, ListCollectionsResponse, ReplicaRole, ReplicaState, ReplicaStatus,
};
use vectron_client::{
    CollectionInfo, CollectionSpec, HnswConfig, Metric, PayloadFieldKind, PayloadIndex,
    Quantization, SearchCacheSettings, UpdateCollectionRequest,
};

use super::{CliError, Connection, DEFAULT_TIMEOUT, output};

/// Create, list, describe and drop collections (a client of the gateway at --addr).
#[derive(Debug, Args)]
pub(crate) struct CollectionsArgs {
    #[command(subcommand)]
    command: CollectionsCommand,
    #[command(flatten)]
    connection: Connection,
}

#[derive(Debug, Subcommand)]
enum CollectionsCommand {
    /// Create a collection.
    ///
    /// Its dimension and metric are fixed for good, as are its shard count and index
    /// settings. Settings not given take the server's defaults.
    ///
    /// Example: vectron collections create articles --dimension 384 --metric cosine
    /// --index title:keyword --index year:numeric
    Create(CreateArgs),
    /// List the collections, ordered by name.
    List,
    /// Show a collection: settings, state, point count and shards.
    ///
    /// Settings are shown with every default resolved. Each replica shows where it is,
    /// whether it serves, and as its core reports it now: its role in the shard's group
    /// (leader, follower of replica N, or no leader during an election), the last write
    /// it applied and how many writes it is behind the leader. Point counts are the
    /// leaders' at the call.
    Describe {
        /// Name of the collection.
        name: String,
    },
    /// Drop a collection and every point in it; there is no undo.
    Drop {
        /// Name of the collection.
        name: String,
    },
    /// Change a collection's default search ef or its payload indexes (the other
    /// settings are fixed when it is created). `vectron tune` measures which ef reaches
    /// a recall. An added index is built in the background from the points held;
    /// `collections describe` shows it "building" until every replica has it.
    ///
    /// Example: vectron collections update articles --ef 96 --add-index section:keyword
    #[command(group(clap::ArgGroup::new("change").required(true).multiple(true)
        .args(["ef", "add_index", "drop_index", "search_cache", "search_cache_ttl_ms"])))]
    Update {
        /// Name of the collection.
        name: String,
        /// Candidate list size of searches that give none: 1 to 32768.
        #[arg(long)]
        ef: Option<u32>,
        /// Payload field to index, as FIELD:keyword or FIELD:numeric (repeat for
        /// several).
        #[arg(long, value_name = "FIELD:KIND", value_parser = parse_index)]
        add_index: Vec<PayloadIndex>,
        /// Payload field whose index to drop (repeat for several).
        #[arg(long, value_name = "FIELD")]
        drop_index: Vec<String>,
        #[command(flatten)]
        cache: CacheArgs,
    },
}

#[derive(Debug, Args)]
struct CreateArgs {
    /// Name: 1 to 64 characters of [A-Za-z0-9_-], starting with a letter or a digit.
    name: String,
    /// Number of float32 values in every vector (1 to 65536).
    #[arg(long, short = 'd')]
    dimension: u32,
    /// How similarity is measured; search scores are similarities (higher is closer)
    /// for every metric.
    #[arg(long, value_enum, default_value_t = MetricArg::Cosine)]
    metric: MetricArg,
    /// Number of shards (1 to 1024) [default: one per worker core in the cluster].
    #[arg(long)]
    shards: Option<u32>,
    /// Copies of every shard, each on another worker (1 to 7) [default: 1]. Three keep
    /// reading and writing through the loss of any one worker; two need both to write.
    #[arg(long)]
    replication_factor: Option<u32>,
    /// HNSW links per node (4 to 128) [default: 16].
    #[arg(long)]
    m: Option<u32>,
    /// HNSW candidate list size while building (8 to 4096) [default: 200].
    #[arg(long)]
    ef_construction: Option<u32>,
    /// HNSW candidate list size of searches that do not give one (1 to 32768)
    /// [default: 64].
    #[arg(long)]
    ef: Option<u32>,
    /// Vector encoding for graph traversal; int8 uses a quarter of the memory and
    /// rescores the best candidates exactly [default: none].
    #[arg(long, value_enum)]
    quantization: Option<QuantizationArg>,
    /// Payload field to index, as FIELD:keyword or FIELD:numeric (repeat for several;
    /// a dot descends into nested objects). Filters work on every field; an index makes
    /// them fast.
    #[arg(long = "index", value_name = "FIELD:KIND", value_parser = parse_index)]
    indexes: Vec<PayloadIndex>,
    #[command(flatten)]
    cache: CacheArgs,
}

/// How gateways cache a collection's search answers.
#[derive(Debug, Args)]
struct CacheArgs {
    /// Whether gateways cache the answers of eventual searches (on) or compute every
    /// search (off) [default: on].
    #[arg(long, value_enum, value_name = "on|off")]
    search_cache: Option<OnOff>,
    /// How long gateways may serve a cached answer, in milliseconds (1 to 3600000; 0:
    /// the gateway's own TTL) [default: 0].
    #[arg(long, value_name = "MS")]
    search_cache_ttl_ms: Option<u32>,
}

impl CacheArgs {
    fn given(&self) -> bool {
        self.search_cache.is_some() || self.search_cache_ttl_ms.is_some()
    }

    fn settings(&self) -> Option<SearchCacheSettings> {
        self.given().then(|| SearchCacheSettings {
            enabled: self.search_cache.map(|s| matches!(s, OnOff::On)),
            ttl_ms: self.search_cache_ttl_ms,
        })
    }
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum OnOff {
    On,
    Off,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum MetricArg {
    /// Cosine similarity; vectors are normalised when stored.
    Cosine,
    /// Euclidean distance (score: the negated squared distance).
    L2,
    /// Inner product of the vectors as given.
    Dot,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum QuantizationArg {
    /// float32 vectors only.
    None,
    /// One signed byte per dimension for traversal.
    Int8,
}

fn parse_index(text: &str) -> Result<PayloadIndex, String> {
    let (field, kind) = text
        .rsplit_once(':')
        .ok_or_else(|| format!("{text:?} is not FIELD:keyword or FIELD:numeric"))?;
    let kind = match kind {
        "keyword" => PayloadFieldKind::Keyword,
        "numeric" => PayloadFieldKind::Numeric,
        other => return Err(format!("index kind {other:?} is not keyword or numeric")),
    };
    if field.is_empty() {
        return Err(format!("{text:?} names no field"));
    }
    Ok(PayloadIndex {
        field: field.to_owned(),
        kind: kind.into(),
    })
}

impl CollectionsArgs {
    pub(crate) fn json(&self) -> bool {
        self.connection.json
    }

    pub(crate) async fn run(self) -> Result<(), CliError> {
        let json = self.connection.json;
        let client = self.connection.connect(Some(DEFAULT_TIMEOUT)).await?;
        match self.command {
            CollectionsCommand::Create(args) => {
                let created = client.create_collection(args.spec()).await?;
                if json {
                    output::print_json(&created);
                } else {
                    output::text(&format!("created {}", describe(&created)));
                }
            }
            CollectionsCommand::List => {
                let collections = client.list_collections().await?;
                if json {
                    output::print_json(&ListCollectionsResponse { collections });
                } else {
                    output::text(&table(&collections));
                }
            }
            CollectionsCommand::Describe { name } => {
                let info = client.describe_collection(&name).await?;
                if json {
                    output::print_json(&info);
                } else {
                    output::text(&describe(&info));
                }
            }
            CollectionsCommand::Drop { name } => {
                client.drop_collection(&name).await?;
                if json {
                    output::print_value(&serde_json::json!({}));
                } else {
                    output::text(&format!("dropped collection {name}\n"));
                }
            }
            CollectionsCommand::Update {
                name,
                ef,
                add_index,
                drop_index,
                cache,
            } => {
                let spec = CollectionSpec {
                    hnsw: ef.map(|ef| HnswConfig {
                        ef: Some(ef),
                        ..HnswConfig::default()
                    }),
                    search_cache: cache.settings(),
                    ..CollectionSpec::default()
                };
                let info = client
                    .update_collection(UpdateCollectionRequest {
                        name,
                        spec: Some(spec),
                        add_payload_indexes: add_index,
                        drop_payload_indexes: drop_index,
                        ..UpdateCollectionRequest::default()
                    })
                    .await?;
                if json {
                    output::print_json(&info);
                } else {
                    output::text(&describe(&info));
                }
            }
        }
        Ok(())
    }
}

impl CreateArgs {
    fn spec(self) -> CollectionSpec {
        let metric = match self.metric {
            MetricArg::Cosine => Metric::Cosine,
            MetricArg::L2 => Metric::L2,
            MetricArg::Dot => Metric::Dot,
        };
        let mut spec = CollectionSpec::new(self.name, self.dimension, metric);
        spec.shard_count = self.shards;
        spec.replication_factor = self.replication_factor;
        if self.m.is_some() || self.ef_construction.is_some() || self.ef.is_some() {
            spec.hnsw = Some(HnswConfig {
                m: self.m,
                ef_construction: self.ef_construction,
                ef: self.ef,
            });
        }
        if let Some(q) = self.quantization {
            spec.quantization = match q {
                QuantizationArg::None => Quantization::None,
                QuantizationArg::Int8 => Quantization::Int8,
            }
            .into();
        }
        spec.payload_indexes = self.indexes;
        spec.search_cache = self.cache.settings();
        spec
    }
}

fn metric_name(spec: &CollectionSpec) -> &'static str {
    match spec.metric() {
        Metric::Cosine => "cosine",
        Metric::L2 => "l2",
        Metric::Dot => "dot",
        Metric::Unspecified => "unspecified",
    }
}

fn state_name(state: CollectionState) -> &'static str {
    match state {
        CollectionState::Creating => "creating",
        CollectionState::Ready => "ready",
        CollectionState::Degraded => "degraded",
        CollectionState::Dropping => "dropping",
        CollectionState::Unspecified => "unknown",
    }
}

fn replica_state_name(state: ReplicaState) -> &'static str {
    match state {
        ReplicaState::Opening => "opening",
        ReplicaState::Active => "active",
        ReplicaState::Unavailable => "unavailable",
        ReplicaState::Unspecified => "unknown",
    }
}

/// A replica's status as describe shows it after its state: `, follower of 1, applied
/// 120, lag 3`. A shard of one copy shows its applied position only.
fn status_text(status: &ReplicaStatus) -> String {
    let mut out = match status.role() {
        ReplicaRole::Leader if status.term == 0 => String::new(),
        ReplicaRole::Leader => format!(", leader (term {})", status.term),
        ReplicaRole::Follower => format!(", follower of {}", status.leader_id),
        ReplicaRole::NoLeader => ", no leader".to_owned(),
        ReplicaRole::Unspecified => ", role unknown".to_owned(),
    };
    out.push_str(&format!(", applied {}", status.applied_lsn));
    if let Some(lag) = status.lag.filter(|&lag| lag > 0) {
        out.push_str(&format!(", lag {lag}"));
    }
    out
}

/// One line per collection under a header.
fn table(collections: &[CollectionInfo]) -> String {
    let mut rows = vec![[
        "NAME".to_owned(),
        "DIMENSION".to_owned(),
        "METRIC".to_owned(),
        "SHARDS".to_owned(),
        "POINTS".to_owned(),
        "STATE".to_owned(),
    ]];
    for c in collections {
        let spec = c.spec.clone().unwrap_or_default();
        rows.push([
            spec.name.clone(),
            spec.dimension.to_string(),
            metric_name(&spec).to_owned(),
            spec.shard_count.unwrap_or_default().to_string(),
            c.point_count.to_string(),
            state_name(c.state()).to_owned(),
        ]);
    }
    if collections.is_empty() {
        return "no collections\n".to_owned();
    }
    let widths: Vec<usize> = (0..6)
        .map(|i| rows.iter().map(|r| r[i].len()).max().unwrap_or(0))
        .collect();
    let mut out = String::new();
    for row in rows {
        let cells: Vec<String> = row
            .iter()
            .zip(&widths)
            .map(|(cell, w)| format!("{cell:<w$}"))
            .collect();
        out.push_str(cells.join("  ").trim_end());
        out.push('\n');
    }
    out
}

/// A collection's settings, state and shards, several lines.
fn describe(c: &CollectionInfo) -> String {
    let spec = c.spec.clone().unwrap_or_default();
    let hnsw = spec.hnsw.unwrap_or_default();
    let quantization = match spec.quantization() {
        Quantization::Int8 => "int8",
        Quantization::None | Quantization::Unspecified => "none",
    };
    let indexes: Vec<String> = spec
        .payload_indexes
        .iter()
        .map(|i| {
            let kind = match i.kind() {
                PayloadFieldKind::Keyword => "keyword",
                PayloadFieldKind::Numeric => "numeric",
                PayloadFieldKind::Unspecified => "unspecified",
            };
            let building = c
                .payload_index_status
                .iter()
                .find(|s| s.field == i.field)
                .filter(|s| !s.ready)
                .map(|s| {
                    format!(
                        " (building: {} of {} replicas ready)",
                        s.replicas_ready, s.replicas_total
                    )
                })
                .unwrap_or_default();
            format!("{}:{kind}{building}", i.field)
        })
        .collect();
    let mut out = format!(
        "collection {}\n  dimension     {}\n  metric        {}\n  state         {}\n  points        {}\n  hnsw          m={} ef_construction={} ef={}\n  quantization  {quantization}\n  indexes       {}\n  shards        {} (replication {})\n",
        spec.name,
        spec.dimension,
        metric_name(&spec),
        state_name(c.state()),
        c.point_count,
        hnsw.m.unwrap_or_default(),
        hnsw.ef_construction.unwrap_or_default(),
        hnsw.ef.unwrap_or_default(),
        if indexes.is_empty() {
            "-".to_owned()
        } else {
            indexes.join(", ")
        },
        spec.shard_count.unwrap_or_default(),
        spec.replication_factor.unwrap_or(1),
    );
    let cache = spec.search_cache.unwrap_or_default();
    out.push_str(
        &match (cache.enabled.unwrap_or(true), cache.ttl_ms.unwrap_or(0)) {
            (false, _) => "  search cache  off\n".to_owned(),
            (true, 0) => "  search cache  on, for the gateway's TTL\n".to_owned(),
            (true, ms) => format!("  search cache  on, for {ms} ms\n"),
        },
    );
    if let Some(t) = &c.tuning {
        out.push_str(&format!(
            "  tuned         ef={} for recall@{} {} ({}{} queries: mean {:.4}, 95% lower bound {:.4}) at {} ms since the epoch\n",
            hnsw.ef.unwrap_or_default(),
            t.k,
            t.target_recall,
            if t.filter_json.is_empty() {
                String::new()
            } else {
                format!("filter {}, ", t.filter_json)
            },
            t.queries,
            t.measured_recall,
            t.recall_lower_bound,
            t.tuned_at_unix_ms,
        ));
    }
    for shard in &c.shards {
        let replicas: Vec<String> = shard
            .replicas
            .iter()
            .map(|r| {
                format!(
                    "{}/core {} at {} ({}{})",
                    r.worker_id,
                    r.core,
                    r.address,
                    replica_state_name(r.state()),
                    r.status.as_ref().map(status_text).unwrap_or_default()
                )
            })
            .collect();
        out.push_str(&format!(
            "    shard {:<4} hashes {:#018x}..={:#018x}  points {:<10} {}\n",
            shard.shard_id,
            shard.hash_range_start,
            shard.hash_range_end,
            shard.point_count,
            replicas.join(", ")
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn indexes_parse_as_field_and_kind() {
        let i = parse_index("author.name:keyword").unwrap();
        assert_eq!(i.field, "author.name");
        assert_eq!(i.kind(), PayloadFieldKind::Keyword);
        assert_eq!(
            parse_index("year:numeric").unwrap().kind(),
            PayloadFieldKind::Numeric
        );
        assert!(parse_index("year").is_err());
        assert!(parse_index("year:date").is_err());
        assert!(parse_index(":keyword").is_err());
    }

    #[test]
    fn create_flags_become_a_spec() {
        let args = CreateArgs {
            name: "docs".into(),
            dimension: 384,
            metric: MetricArg::Dot,
            shards: Some(2),
            replication_factor: Some(3),
            m: None,
            ef_construction: None,
            ef: Some(128),
            quantization: Some(QuantizationArg::Int8),
            indexes: vec![parse_index("title:keyword").unwrap()],
            cache: CacheArgs {
                search_cache: Some(OnOff::Off),
                search_cache_ttl_ms: None,
            },
        };
        let spec = args.spec();
        assert_eq!(spec.metric(), Metric::Dot);
        assert_eq!(spec.shard_count, Some(2));
        assert_eq!(spec.replication_factor, Some(3));
        assert_eq!(
            spec.hnsw,
            Some(HnswConfig {
                m: None,
                ef_construction: None,
                ef: Some(128)
            })
        );
        assert_eq!(spec.quantization(), Quantization::Int8);
        assert_eq!(spec.payload_indexes.len(), 1);
        assert_eq!(
            spec.search_cache,
            Some(SearchCacheSettings {
                enabled: Some(false),
                ttl_ms: None
            })
        );
    }

    #[test]
    fn replica_status_reads_as_role_applied_and_lag() {
        let mut status = ReplicaStatus {
            leader_id: 2,
            term: 4,
            applied_lsn: 120,
            lag: Some(3),
            ..ReplicaStatus::default()
        };
        status.set_role(ReplicaRole::Follower);
        assert_eq!(status_text(&status), ", follower of 2, applied 120, lag 3");
        status.set_role(ReplicaRole::Leader);
        status.lag = Some(0);
        assert_eq!(status_text(&status), ", leader (term 4), applied 120");
        status.term = 0;
        assert_eq!(status_text(&status), ", applied 120");
        status.set_role(ReplicaRole::NoLeader);
        status.lag = None;
        assert_eq!(status_text(&status), ", no leader, applied 120");
    }

    #[test]
    fn an_empty_list_says_so() {
        assert_eq!(table(&[]), "no collections\n");
    }
}
