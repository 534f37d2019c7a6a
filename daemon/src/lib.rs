//! The daemon's library half: everything `lingerd run` does, behind
//! [`run::Daemon`] (`start`, `serve`, `shutdown`), and the pieces tests
//! drive directly.
//!
//! It owns the daemon's start-up checks and threads ([`run`]), one
//! dataplane core's shell around the per-core loop (`queue`, with the
//! daemon's own discard service in `app`), client attach ([`attach`]: the
//! control socket, credentials, per-client sealed regions and eventfds,
//! mapped by the ABI's `lingerd_abi::sys::map_region`), the clients' side
//! of a core ([`cores`]), `lingerd ctl` ([`ctl`]: the ctl socket, its
//! protocol and the per-core jobs), `/metrics` ([`metrics`]), SIGHUP
//! reloads (`reload`), core pinning (`pin`), the mapping from the
//! configuration to dataplane values (`convert`) and the logger
//! ([`logging`]). The daemon has no `unsafe` of its own. It may not make
//! protocol decisions (the dataplane's); the binary (`main.rs`, `cli.rs`)
//! only parses the command line and maps outcomes to exit statuses.
#![deny(unsafe_code)]

mod app;
pub mod attach;
mod convert;
pub mod cores;
pub mod ctl;
#[cfg(test)]
mod drift_tests;
pub mod logging;
pub mod metrics;
pub mod pin;
mod queue;
mod reload;
pub mod run;
pub mod stoppable;
