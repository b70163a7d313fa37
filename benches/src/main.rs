//! `vectron-bench`: Vectron's load generators and benchmarks, one module per subcommand.
//! Each prints JSON lines of results on stdout.

mod ann;
mod ann_checks;
mod core;
mod dataset;
mod wal;

use clap::{Parser, Subcommand};

/// Vectron benchmarks.
#[derive(Debug, Parser)]
#[command(name = "vectron-bench", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Build an HNSW index on an fvecs dataset and sweep ef: one JSON line per ef, in the
    /// shape of hnswlib_baseline.py.
    Ann(ann::Args),
    /// Memory, save/open, delete and filter checks on an fvecs dataset (JSON lines).
    AnnChecks(ann_checks::Args),
    /// A running worker's cores over gRPC: open a shard per core, ingest, search; one
    /// JSON line with ingest and search throughput, latency and recall.
    Core(core::Args),
    /// Write-ahead log: durable appends from concurrent writers against a raw
    /// `pwrite + fdatasync` baseline, or replay speed against `cat`.
    Wal(wal::Args),
}

fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::Ann(args) => ann::run(&args),
        Command::AnnChecks(args) => ann_checks::run(&args),
        Command::Core(args) => core::run(&args),
        Command::Wal(args) => wal::run(&args),
    }
}
