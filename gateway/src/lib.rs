//! Vectron's gateway: the public API, as gRPC (`vectron.v1`: `Collections`, `Points`,
//! `Stats`) and as HTTP/JSON (the routes of `docs/api.md`), both doors leading to the
//! same handlers with the same validation, limits and errors.
//!
//! ```text
//!   gRPC (tonic) ─┐                       ┌─► control plane: collections, routing (watched)
//!                 ├─► validate ─► route ──┤
//!   HTTP (axum) ──┘      │                └─► worker cores, one HTTP/2 connection each:
//!                        │                      writes split by shard, sent concurrently;
//!                        │                      searches fanned out to every shard, merged
//!                        └─ search cache (moka, TinyLFU + TTL) and in-flight dedup
//! ```
//!
//! The gateway keeps the control plane's routing table (collection → shards → the core
//! serving each, and its epoch), follows its changes, and refreshes it at once when a
//! core answers that a call was routed by a stale epoch, retrying that call once. It
//! holds no data: every point lives on the core that owns its shard.
//!
//! ```no_run
//! use vectron_gateway::{Gateway, GatewayConfig};
//!
//! # #[tokio::main]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let mut config = GatewayConfig::new(["127.0.0.1:7101"]);
//! config.grpc_addr = "127.0.0.1:6334".parse()?;
//! config.http_addr = "127.0.0.1:6333".parse()?;
//! let gateway = Gateway::start(config).await?;
//! println!("gRPC on {}, HTTP on {}", gateway.grpc_addr(), gateway.http_addr());
//! gateway.shutdown().await;
//! # Ok(())
//! # }
//! ```
#![warn(missing_docs)]
#![doc(test(attr(deny(warnings))))]

mod admission;
mod auth;
mod cache;
mod config;
mod cores;
mod error;
mod grpc;
mod http;
mod merge;
mod payload;
mod plans;
mod points;
mod quota;
mod routing;
mod search;
mod server;
mod service;
mod stream;
mod tls;

pub use crate::admission::AdmissionConfig;
pub use crate::config::{
    AuthConfig, CacheConfig, CoreChannelConfig, GatewayConfig, Limits, MIN_ADMIN_KEY_LEN, TlsConfig,
};
pub use crate::error::{GatewayError, code_name, http_status};
pub use crate::server::{Gateway, GatewayLoad, StartError};
pub use crate::tls::{CERT_RELOAD_CHECK, TlsError};
