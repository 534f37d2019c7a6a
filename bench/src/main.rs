//! `lingerd-bench`: the benchmark driver. Each subcommand lives in its own
//! module and owns its arguments; this file only dispatches.
#![deny(unsafe_code)]

mod xsk_ceiling;

use clap::{Parser, Subcommand};

/// lingerd's benchmarks.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// AF_XDP TX ceiling on the lab's veth: the port's sender vs a bare xsk-rs loop.
    XskCeiling(xsk_ceiling::Args),
}

fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::XskCeiling(args) => xsk_ceiling::run(args),
    }
}
