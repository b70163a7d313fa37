//! A Vectron data node: `N` pinned core threads, each owning its shards and serving
//! `vectron.core.v1.CoreService` on its own gRPC port (`base_port + i`), plus one admin
//! thread (this crate's tokio runtime) serving per-core statistics over HTTP.
//!
//! ```text
//!   admin thread (tokio): HTTP /v1/stats/cores, /metrics, /healthz; signals;
//!                          control agent (register, heartbeat, open/close shards)
//!        │  CoreCommand messages (bounded channels), never shared memory
//!        ▼
//!   core 0 (monoio, CPU 0) :P+0     core 1 (monoio, CPU 1) :P+1     …
//! ```
//!
//! ```no_run
//! # async fn run() -> Result<(), vectron_worker::WorkerError> {
//! use vectron_worker::{Worker, WorkerConfig};
//!
//! let worker = Worker::start(WorkerConfig::new("./vectron-data/worker")).await?;
//! for core in worker.cores() {
//!     println!("core {} serves {}", core.index, core.addr);
//! }
//! worker.shutdown().await;
//! # Ok(())
//! # }
//! ```
#![warn(missing_docs)]

mod admin;
mod agent;
mod config;
mod identity;
mod worker;

pub use crate::config::{WorkerConfig, parse_sync_policy};
pub use crate::worker::{Worker, WorkerError, run, shutdown_signal};
