//! End-to-end tests of the `vectron` binary: real processes on loopback, one test
//! binary, one module per concern.

mod auth;
mod cli;
mod cluster_key;
mod control;
mod gateway;
mod indexing;
mod python_sdk;
mod registration;
mod replication;
mod search_cache;
mod search_stream;
mod support;
mod tls;
mod worker;
