//! One worker core of Vectron.
#![warn(missing_docs)]

mod filter;
mod payload_index;

pub use filter::{Filter, FilterError};
