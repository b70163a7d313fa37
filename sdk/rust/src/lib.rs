//! The Rust client of Vectron, a distributed vector database.
//!
//! A [`Client`] holds one HTTP/2 connection to a gateway and multiplexes every call
//! over it. Calls return one error type, [`Error`], mapped from gRPC status codes.
//! Idempotent calls (reads, searches, upserts, deletes by id) are retried with backoff
//! when the server answers `UNAVAILABLE`; nothing else is retried.
//!
//! The walk-through of `examples/quickstart.rs`: connect to a running `vectron dev`,
//! create a collection, upsert points with payloads, search with a filter.
//!
//! ```no_run
//! use serde_json::json;
//! use vectron_client::{
//!     Client, CollectionSpec, Condition, Error, Filter, Metric, PayloadFieldKind, PayloadIndex,
//!     Point, SearchRequest, payload,
//! };
//!
//! # #[tokio::main]
//! # async fn main() -> Result<(), Error> {
//! let client = Client::connect("http://127.0.0.1:6334").await?;
//!
//! let mut spec = CollectionSpec::new("books", 4, Metric::Cosine);
//! spec.payload_indexes.push(PayloadIndex {
//!     field: "genre".into(),
//!     kind: PayloadFieldKind::Keyword.into(),
//! });
//! match client.create_collection(spec).await {
//!     Ok(_) | Err(Error::AlreadyExists(_)) => {}
//!     Err(e) => return Err(e),
//! }
//!
//! let points = vec![
//!     Point::new("1", vec![0.9, 0.1, 0.0, 0.1])
//!         .with_payload(payload::to_struct(json!({"title": "Dune", "genre": "sci-fi"}))?),
//!     Point::new("3", vec![0.9, 0.2, 0.0, 0.0])
//!         .with_payload(payload::to_struct(json!({"title": "Emma", "genre": "novel"}))?),
//! ];
//! client.upsert("books", points).await?; // durable and searchable when it returns
//!
//! let request = SearchRequest::new("books", vec![0.9, 0.2, 0.0, 0.05], 3)
//!     .with_ef(128)
//!     .with_filter(Filter::must([Condition::keyword("genre", "sci-fi")]))
//!     .with_payload();
//! for hit in client.search(request).await?.hits {
//!     println!("{} {:.3} {:?}", hit.id, hit.score, hit.payload.map(payload::from_struct));
//! }
//! # Ok(())
//! # }
//! ```
//!
//! For bulk loads, [`Client::upsert_stream`] sends batches over one client stream and
//! answers once all of them are durable.
//!
//! Reads are eventual by default: a replica that has applied every write acknowledged
//! through the same gateway answers. `client.with_read_consistency(ReadConsistency::
//! Linearizable)` (or [`ClientBuilder::read_consistency`]) gives a client whose gets,
//! counts, scrolls and searches see every acknowledged write, from each shard's leader;
//! a request that sets its own `consistency` keeps it.
//!
//! # TLS
//!
//! With the cargo feature `tls` (on by default; rustls with the ring provider, no
//! system OpenSSL), an `https://` endpoint speaks TLS and trusts the system's root
//! certificates; [`ClientBuilder::tls`] with a [`Tls`] trusts a given certificate
//! authority instead, checks another name, or presents a client certificate.
//!
//! The message types are those of the API contract, re-exported from
//! [`vectron_proto::v1`]; the `.proto` files document every field.
#![warn(missing_docs)]
#![doc(test(attr(deny(warnings))))]

mod client;
mod error;
pub mod payload;

#[cfg(feature = "tls")]
pub use client::Tls;
pub use client::{Client, ClientBuilder, MAX_POINTS_PER_REQUEST, SearchStream};
pub use error::Error;
/// Every message and enum of the API contract.
pub use vectron_proto::v1 as api;
pub use vectron_proto::v1::{
    Access, CollectionGrant, CollectionInfo, CollectionSpec, CollectionState, Condition, CoreStats,
    CoreStatsResponse, CreateKeyRequest, CreateKeyResponse, CreateTokenRequest,
    CreateTokenResponse, CreateUserRequest, EfTuning, Filter, HnswConfig, KeyInfo, KeyRole,
    LoginResponse, Metric, PayloadFieldKind, PayloadIndex, PayloadIndexStatus, Plan, Point,
    Quantization, Range, ReadConsistency, Rerank, ScoredPoint, ScrollRequest, ScrollResponse,
    SearchCacheSettings, SearchRequest, SearchResponse, SearchStreamEvent, UpdateCollectionRequest,
    UpsertRequest, UpsertResponse, UserInfo,
};
