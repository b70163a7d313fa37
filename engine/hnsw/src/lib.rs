//! A single-core HNSW index for Vectron's shards.
//!
//! One core owns an index: it adds, links and deletes with `&mut self` and searches
//! with `&self` plus a reusable [`SearchScratch`]. There are no locks, atomics or
//! background threads. The layout follows hnswlib (one flat level-0 arena of
//! fixed-stride blocks, neighbour ids followed by the vector) with kernels inlined into
//! the search loop and chosen once per call for the CPU (AVX-512 when present).
//!
//! - **Writes are visible at once.** [`HnswIndex::add`] stores a vector and returns its
//!   [`NodeId`]; until [`HnswIndex::link_pending`] links it into the graph, searches find
//!   it by exact scan. [`HnswIndex::insert`] does both.
//! - **Deletes** tombstone at once; [`HnswIndex::reclaim_step`] (in bounded steps) or
//!   [`HnswIndex::reclaim_deleted`] (all at once) reconnects the graph around tombstones
//!   and frees their ids for reuse.
//! - **Filters** ([`Filter`]) keep traversal on the graph, or switch to an exact scan of
//!   the matching ids when few match.
//! - **int8** ([`Quantization::Int8`]) traverses on 8-bit codes and rescores the
//!   candidates with the f32 vectors, as far down the list as one could still belong to
//!   the top k. The codes sit in their own arena and level-0
//!   neighbour ids take 3 bytes (4 past 16.7 M slots), so the memory held per vector
//!   (codes and graph, the f32 vectors staying in the mapped file) is about 0.37× of
//!   the f32 index at 128 dimensions.
//! - **Files**: [`HnswIndex::save`] / [`HnswIndex::open`]; the opened index maps the file
//!   and keeps accepting writes (format in `FORMAT.md`, little-endian, versioned).
//!
//! Scores are similarities for every metric: higher is better.
//!
//! ```
//! use vectron_hnsw::{HnswIndex, IndexConfig, Metric, SearchScratch};
//!
//! let mut index = HnswIndex::new(IndexConfig::new(3, Metric::Cosine))?;
//! let a = index.add(&[1.0, 0.0, 0.0])?; // searchable now, linked later
//! let b = index.insert(&[0.0, 1.0, 0.0])?; // stored and linked
//! assert_eq!(index.pending_len(), 1);
//! index.link_pending(64);
//!
//! let mut scratch = SearchScratch::new();
//! let hits = index.search(&[0.9, 0.1, 0.0], 1, 32, None, &mut scratch)?;
//! assert_eq!(hits[0].id, a);
//! index.delete(a)?;
//! let hits = index.search(&[0.9, 0.1, 0.0], 1, 32, None, &mut scratch)?;
//! assert_eq!(hits[0].id, b);
//! # Ok::<(), vectron_hnsw::HnswError>(())
//! ```
#![warn(missing_docs)]
#![doc(test(attr(deny(warnings))))]

#[cfg(target_endian = "big")]
compile_error!(
    "vectron-hnsw stores and maps little-endian data in place: big-endian targets are not supported"
);

mod distance;
mod error;
mod filter;
mod format;
mod graph;
mod index;
mod metric;
mod quant;
mod search;
mod storage;

pub use crate::distance::DistanceKernel;
pub use crate::error::{Corruption, HnswError};
pub use crate::filter::{Filter, IdFilter};
pub use crate::format::{FORMAT_VERSION, IndexSaver, WrittenIndex};
pub use crate::index::{
    HnswIndex, IndexConfig, MAX_POINTS, MemoryUsage, NodeId, Quantization, SearchHit, SearchScratch,
};
pub use crate::metric::{Metric, UnknownMetric};
