//! The lingerd binary.
//!
//! It owns the control thread, core pinning (`pin`), signals and one pinned
//! dataplane engine per queue (`run`, configured by `convert`, with the
//! daemon's own app in `app`), SIGHUP reloads (`reload`), the log level of
//! its runtime lines (`log`) and `lingerd ctl`'s command line (`ctl_cmd`);
//! client attach, metrics and the ctl socket live in the library half. It
//! may not implement protocol logic itself: that lives in
//! `lingerd-dataplane`.
//! The command line lives in `cli.rs`; this file only maps the outcome to
//! an exit status.
#![deny(unsafe_code)]

use std::process::ExitCode;

use clap::Parser;

mod app;
mod cli;
mod convert;
mod ctl_cmd;
mod log;
mod pin;
mod reload;
mod run;
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
