//! One worker core of Vectron.
#![warn(missing_docs)]

mod filter;
mod payload_index;
mod stats;

pub use filter::{Filter, FilterError};
pub use stats::{CoreCounters, Latency};
