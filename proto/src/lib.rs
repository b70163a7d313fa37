//! Vectron's gRPC contracts, generated from the `.proto` files beside this crate.
//!
//! [`v1`] is the public API that SDKs and the gateway speak: collections, points,
//! search and stats. [`control::v1`] is the control plane's internal contract: worker
//! registration and heartbeats, routing, cluster status and the Raft transport between
//! control nodes. [`replication::v1`] is Raft between the cores that hold a shard's
//! replicas. Messages are [prost] types; clients and servers are [tonic]
//! services. The `.proto` files are the reference documentation of every field.
//!
//! ```no_run
//! use vectron_proto::v1::{collections_client::CollectionsClient, ListCollectionsRequest};
//!
//! # #[tokio::main]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let mut client = CollectionsClient::connect("http://127.0.0.1:6334").await?;
//! let listed = client.list(ListCollectionsRequest {}).await?.into_inner();
//! for info in listed.collections {
//!     let spec = info.spec.unwrap_or_default();
//!     println!("{}: {} dimensions", spec.name, spec.dimension);
//! }
//! # Ok(())
//! # }
//! ```
#![warn(missing_docs)]
#![doc(test(attr(deny(warnings))))]

/// The internal contract of a worker core, package `vectron.core.v1`: what the
/// gateway sends to the core that owns a shard.
pub mod core {
    /// Version 1.
    pub mod v1 {
        #![expect(
            unused_qualifications,
            clippy::allow_attributes,
            clippy::allow_attributes_without_reason,
            reason = "generated code: full paths and its own bare allows"
        )]
        tonic::include_proto!("vectron.core.v1");
    }
}

/// The public API, package `vectron.v1`.
pub mod v1 {
    #![expect(
        unused_qualifications,
        clippy::allow_attributes,
        clippy::allow_attributes_without_reason,
        reason = "generated code: full paths and its own bare allows"
    )]
    tonic::include_proto!("vectron.v1");
}

mod builders;
pub mod cluster;
pub mod hashing;
pub mod json;
pub mod keys;
pub mod rules;
/// Internal contracts of the control plane.
pub mod control {
    /// The control plane, package `vectron.control.v1`: workers, collections, routing,
    /// cluster status, membership, and Raft between control nodes.
    pub mod v1 {
        #![expect(
            unused_qualifications,
            clippy::allow_attributes,
            clippy::allow_attributes_without_reason,
            reason = "generated code: full paths and its own bare allows"
        )]
        tonic::include_proto!("vectron.control.v1");
    }
}

/// Raft between worker cores, package `vectron.replication.v1`.
pub mod replication {
    /// Version 1.
    pub mod v1 {
        #![expect(
            unused_qualifications,
            clippy::allow_attributes,
            clippy::allow_attributes_without_reason,
            reason = "generated code: full paths and its own bare allows"
        )]
        tonic::include_proto!("vectron.replication.v1");
    }
}

/// The encoded `FileDescriptorSet` of every contract in this crate, for gRPC reflection
/// and for tools that inspect messages dynamically.
pub const FILE_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/vectron_descriptor.bin"));
