//! `lingerd ctl`: the operator's view of a running daemon — list
//! connections like `ss`, close them like `ss -K` (through
//! `close_matching`, as jobs that can be listed and cancelled), read the
//! per-queue figures.
//!
//! Five parts, each with its own rules: [`proto`] (the versioned messages
//! and what a person may type), [`server`] (the 0600 ctl socket and its
//! sessions, in the daemon; a capture's session is `capture`'s), [`core`]
//! (the jobs each dataplane core runs for sessions, in bounded slices),
//! [`jobs`] (the kills running, with their ids and per-core progress, for
//! `jobs` and `cancel`), [`client`] (the `lingerd ctl` end, with
//! [`pcapng`] and [`filter`] for `lingerd ctl capture`).
//! The operator acts as [`lingerd_dataplane::engine::api::CTL_CLIENT`], an
//! admin id of its own: a kill reaches every owner's connections and each
//! owner is told (a reset event, ECONNABORTED). This module may not make
//! protocol decisions: listing and closing are the engine's.

mod capture;
pub mod client;
pub mod core;
pub mod filter;
pub mod jobs;
pub mod pcapng;
pub mod proto;
pub mod server;
