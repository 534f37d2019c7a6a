//! The shared-memory ABI between the lingerd daemon and its clients.
//!
//! Everything a client and a dataplane core must agree on byte for byte
//! lives here and nowhere else: error codes with stable numbers
//! ([`Errno`]), the region layout (header page, per-core request and
//! completion rings, TX and RX data arenas: [`layout`]), the 64-byte entries
//! with their opcodes and outcome codes ([`entry`]), and the one ring
//! cursor both sides use ([`sys`], the crate's only `unsafe`), and the
//! attach handshake's messages ([`attach`]). The crate has
//! no dependencies and performs no I/O beyond the memory it is handed.
#![deny(unsafe_code)]

pub mod attach;
pub mod entry;
mod errno;
pub mod layout;
pub mod sys;

pub use errno::Errno;
