//! `lingerd` (package `lingerd-client`): the library a lingerd client links.
//!
//! It owns the client side of attach (the control socket's one exchange and
//! the checks on the sealed region, `handshake`), the client side of the
//! rings ([`Client`]: submit, reap, TX/RX chunk ownership, blocking calls
//! and a non-blocking ticket API), and the C ABI over it (`ffi`, built into
//! `liblingerd.so`, declared in `include/lingerd.h`). It depends on
//! `lingerd-abi` and OS crates only, and may not reach into the daemon or
//! the dataplane. `unsafe` lives only in `ffi` (C pointers); mapping the
//! region is the ABI's (`lingerd_abi::sys::map_region`).
//!
//! The Rust crate is named `lingerd` so that the cdylib is `liblingerd.so`.
#![deny(unsafe_code)]

mod client;
pub mod ffi;
mod handshake;
mod slots;

pub use client::{ATTACH_TIMEOUT, Client, Done, Request, Ticket, WAIT_SLICE};
pub use handshake::AttachError;
pub use lingerd_abi::Errno;
pub use lingerd_abi::attach::RefuseReason;
pub use lingerd_abi::entry::{Body, MatchFilter, WirePrefix};
pub use lingerd_abi::vocab::{CloseMode, Linger, Outcome, Prefix, Shutdown};
