//! The daemon's library half: the parts of `lingerd` that tests (and later
//! the `run` command) drive directly.
//!
//! It owns client attach ([`attach`]: the control socket, credentials,
//! per-client sealed regions and eventfds), mapped by the ABI's
//! `lingerd_abi::sys::map_region`, and `lingerd ctl` ([`ctl`]: the ctl
//! socket, its protocol and the per-core jobs); the daemon has no `unsafe`
//! of its own.
//! It may not make
//! protocol decisions (the dataplane's) nor run dataplane cores; the binary
//! (`main.rs`, `cli.rs`) wires everything together.
#![deny(unsafe_code)]

pub mod attach;
pub mod cores;
pub mod ctl;
pub mod metrics;
pub mod stoppable;
