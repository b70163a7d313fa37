//! The `vectron` binary: one subcommand per process kind. It only wires crates together;
//! the logic lives in the crates.

use clap::Parser;

/// Vectron: a distributed vector database with thread-per-core shards.
#[derive(Debug, Parser)]
#[command(name = "vectron", version)]
struct Cli {}

fn main() -> anyhow::Result<()> {
    let _cli = Cli::parse();
    Ok(())
}
