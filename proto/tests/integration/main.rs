//! Integration tests of the generated contracts: one binary, one module per concern.

mod roundtrip;
mod service;
