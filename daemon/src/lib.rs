//! The daemon's library half: the parts of `lingerd` that tests (and later
//! the `run` command) drive directly.
//!
//! It owns client attach ([`attach`]: the control socket, credentials,
//! per-client sealed regions and eventfds) and the mapping of those regions
//! (`sys`, the only place in the daemon allowed `unsafe`). It may not make
//! protocol decisions (the dataplane's) nor run dataplane cores; the binary
//! (`main.rs`, `cli.rs`) wires everything together.
#![deny(unsafe_code)]

pub mod attach;
mod sys;
