//! `lingerd-client`: the library a lingerd client links.
//!
//! It owns the client side of attach (the control socket's one exchange and
//! the checks on the sealed region, `handshake`) and the client side of the
//! rings ([`Client`]: submit, reap, TX/RX chunk ownership, blocking calls
//! and a non-blocking ticket API). The C library over it is the package
//! `lingerd-c` (`liblingerd.so`). It depends on `lingerd-abi` and OS crates
//! only, and may not reach into the daemon or the dataplane. It has no
//! `unsafe`: mapping the region is the ABI's (`lingerd_abi::sys::map_region`).
#![forbid(unsafe_code)]

mod client;
mod handshake;
mod slots;

pub use client::{ATTACH_TIMEOUT, Client, Done, Request, Ticket, WAIT_SLICE};
pub use handshake::AttachError;
pub use lingerd_abi::Errno;
pub use lingerd_abi::attach::RefuseReason;
pub use lingerd_abi::entry::{Body, MatchFilter};
pub use lingerd_abi::vocab::{CloseMode, Linger, Outcome, Prefix, Shutdown};
