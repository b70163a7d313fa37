//! `vectron-bench`: Vectron's benchmark tools, one subcommand per module.

mod ann;
mod ann_checks;
mod dataset;

use clap::{Parser, Subcommand};

/// Vectron benchmarks.
#[derive(Debug, Parser)]
#[command(name = "vectron-bench", version, about)]
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
}

fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::Ann(args) => ann::run(&args),
        Command::AnnChecks(args) => ann_checks::run(&args),
    }
}
