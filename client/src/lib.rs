//! The library a lingerd client links.
//!
//! It will own the client side of the shared-memory rings (attach, submit,
//! reap) and expose CLOSE-SEMANTICS.md as a Rust API and a C ABI. It depends
//! on `lingerd-abi` only and may not reach into the daemon or dataplane.
//! Today it re-exports the ABI's error codes; the ring client arrives with the
//! daemon issue.
#![deny(unsafe_code)]

pub use lingerd_abi::Errno;
