//! Smoke runs of `vectron-bench`: each subcommand runs briefly and prints the JSON it
//! promises.

mod wal;
