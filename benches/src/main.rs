//! `vectron-bench`: Vectron's load generators and benchmarks, one module per subcommand.
//! Each prints one JSON line of results on stdout.

use clap::{Parser, Subcommand};

mod wal;

/// Vectron benchmarks.
#[derive(Debug, Parser)]
#[command(name = "vectron-bench", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Write-ahead log: durable appends from concurrent writers against a raw
    /// `pwrite + fdatasync` baseline, or replay speed against `cat`.
    Wal(wal::Args),
}

fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::Wal(args) => wal::run(&args),
    }
}
