//! One worker core of Vectron: the shards it owns and the gRPC service it serves.
#![warn(missing_docs)]

mod checkpoint;
mod cluster;
mod core;
mod error;
mod filter;
mod handle;
mod machine;
mod payload_index;
mod replica;
mod runtime;
mod service;
mod shard;
mod spec;
mod stats;

pub use crate::core::{Core, CoreConfig, DEFAULT_UNINDEXED_BYTES, unindexed_bound};
pub use crate::error::ShardError;
pub use crate::filter::{Filter, FilterError};
pub use crate::handle::{PendingWrite, ShardHandle, WriteAck};
pub use crate::machine::ShardMachine;
pub use crate::replica::ReplicaHost;
pub use crate::runtime::{
    CoreCommand, CoreHandle, CoreInfo, CoreSettings, StartError, allowed_cpus, driver_name,
    keep_off_cpus, spawn_core,
};
pub use crate::service::{InFlight, ShardAdministration, WRITE_PIECE, router, status};
pub use crate::shard::{HitOut, PointOut};
pub use crate::spec::{ReplicaSpec, ShardSpec};
pub use crate::stats::{CoreCounters, Latency};
pub use vectron_replica::GroupSettings;
