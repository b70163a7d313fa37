//! The Rust client of Vectron, a distributed vector database.
//!
//! A [`Client`] holds one HTTP/2 connection to a gateway and multiplexes every call
//! over it. Calls return one error type, [`Error`], mapped from gRPC status codes.
//! Idempotent calls (reads, searches, upserts, deletes by id) are retried with backoff
//! when the server answers `UNAVAILABLE`; nothing else is retried.
//!
//! ```no_run
//! use serde_json::json;
//! use vectron_client::{Client, CollectionSpec, Condition, Filter, Metric, Point, SearchRequest, payload};
//!
//! # #[tokio::main]
//! # async fn main() -> Result<(), vectron_client::Error> {
//! let client = Client::connect("127.0.0.1:6334").await?;
//! client.create_collection(CollectionSpec::new("articles", 4, Metric::Cosine)).await?;
//!
//! let point = Point::new("moon-1", vec![0.1, 0.9, 0.2, 0.0])
//!     .with_payload(payload::to_struct(json!({"title": "Moon", "year": 1969}))?);
//! client.upsert("articles", vec![point]).await?;
//!
//! let request = SearchRequest::new("articles", vec![0.1, 0.8, 0.3, 0.0], 10)
//!     .with_ef(128)
//!     .with_filter(Filter::must([Condition::keyword("title", "Moon")]))
//!     .with_payload();
//! for hit in client.search(request).await?.hits {
//!     println!("{} {:.3} {:?}", hit.id, hit.score, hit.payload.map(payload::from_struct));
//! }
//! # Ok(())
//! # }
//! ```
//!
//! The message types are those of the API contract, re-exported from
//! [`vectron_proto::v1`]; the `.proto` files document every field.
#![warn(missing_docs)]
#![doc(test(attr(deny(warnings))))]

mod client;
mod error;
pub mod payload;

pub use client::{Client, ClientBuilder, MAX_POINTS_PER_REQUEST};
pub use error::Error;
/// Every message and enum of the API contract.
pub use vectron_proto::v1 as api;
pub use vectron_proto::v1::{
    CollectionInfo, CollectionSpec, CollectionState, Condition, CoreStats, CoreStatsResponse,
    Filter, HnswConfig, Metric, PayloadFieldKind, PayloadIndex, Point, Quantization, Range,
    ReadConsistency, Rerank, ScoredPoint, ScrollRequest, ScrollResponse, SearchRequest,
    SearchResponse, UpsertRequest, UpsertResponse,
};
