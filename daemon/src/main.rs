//! The lingerd binary: parses the command line (`cli`, with `lingerd
//! ctl`'s flags and output in `ctl_cmd` and `check-config`'s summary in
//! `summary`) and maps the outcome to an exit status.
//!
//! Everything `run` does lives in the library half
//! (`lingerd_daemon::run::Daemon`). It may not implement protocol logic
//! (that lives in `lingerd-dataplane`) nor daemon behaviour of its own.
#![deny(unsafe_code)]

use std::process::ExitCode;

use clap::Parser;

mod cli;
mod ctl_capture;
mod ctl_cmd;
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
