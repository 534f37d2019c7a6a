//! The lingerd binary.
//!
//! It will own the control thread, core pinning, client attach, metrics and
//! signals, and drive one dataplane engine per queue. It may not implement
//! protocol logic itself: that lives in `lingerd-dataplane`. For now it has
//! `check-config` and a `run` that validates and then refuses to start,
//! because the AF_XDP port is not wired yet. The command line lives in
//! `cli.rs`; this file only maps the outcome to an exit status.
#![deny(unsafe_code)]

use std::process::ExitCode;

use clap::Parser;

mod cli;
#[cfg(test)]
mod drift_tests;
mod summary;

fn main() -> ExitCode {
    let args = cli::Cli::parse();
    match cli::run(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("lingerd: {e:#}");
            ExitCode::from(cli::exit_code(&e))
        }
    }
}
