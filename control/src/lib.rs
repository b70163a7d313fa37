//! Vectron's control plane: the placement driver. It holds the cluster's source of truth
//! (workers, collections, shards and where their replicas live) in a state machine
//! replicated with Raft ([openraft]) over tonic, persisted in redb, so losing a control
//! node loses nothing.
//!
//! ```text
//!   workers ──RegisterWorker / Heartbeat──►┐
//!   gateway ──Create / Drop / GetRouting /  ├─► ControlNode (leader) ──Raft──► followers
//!             WatchRouting──────────────────┘        │
//!                                                    ├─ placement::place   (pure)
//!                                                    ├─ ControlState::apply (pure)
//!                                                    └─ reconciler: silent workers → down
//! ```
//!
//! - [`ControlNode`] runs one node: `vectron control` wraps it.
//! - [`ControlClient`] is what workers, the gateway and tools use: it follows the leader
//!   and retries what is safe to retry.
//! - [`place`] is the placement policy, a pure function tested from text cases.
//! - [`ShardLayout`] and [`point_hash`] say which shard owns a point, the one definition
//!   shared by the gateway and the workers.
//!
//! ```no_run
//! use vectron_control::{ControlClient, ControlConfig, ControlNode};
//! use vectron_proto::v1::{CollectionSpec, Metric};
//!
//! # #[tokio::main]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! // A one-node control plane with its store under ./control-1.
//! let node = ControlNode::start(ControlConfig::new(
//!     1,
//!     "127.0.0.1:7101".parse()?,
//!     "./control-1",
//! ))
//! .await?;
//!
//! let client = ControlClient::new([node.address()])?;
//! let info = client
//!     .create_collection(CollectionSpec {
//!         name: "docs".into(),
//!         dimension: 384,
//!         metric: Metric::Cosine.into(),
//!         ..Default::default()
//!     })
//!     .await?;
//! println!("{} shards", info.shards.len());
//! node.shutdown().await?;
//! # Ok(())
//! # }
//! ```
#![warn(missing_docs)]
#![doc(test(attr(deny(warnings))))]

mod client;
mod consensus;
mod error;
mod liveness;
mod node;
mod placement;
mod service;
mod spec;
mod state;
mod status_text;

pub use client::{ClientError, ControlClient, RetryPolicy, RoutingWatch};
pub use consensus::store::StoreError;
pub use error::{LEADER_ADDR_HEADER, LEADER_ID_HEADER, NOT_LEADER_HEADER, RegistrationError};
pub use node::{ConfigError, ControlConfig, ControlNode, NodeError};
pub use placement::{CoreLoad, PlacementError, Slot, WorkerLoad, live_cores, place};
pub use service::validate_zone;
pub use spec::{
    CollectionConfig, CollectionRequest, DEFAULT_EF, DEFAULT_EF_CONSTRUCTION, DEFAULT_M,
    HnswParams, MAX_DIMENSION, MAX_NAME_LEN, MAX_PAYLOAD_FIELD_LEN, MAX_REPLICATION_FACTOR,
    MAX_SHARD_COUNT, Metric, PayloadIndexSpec, PayloadKind, Quantization, SpecError,
    validate_collection_name,
};
pub use state::CommandError;
pub use status_text::render_status;
pub use vectron_proto::hashing::{HashRange, ShardLayout, point_hash};
