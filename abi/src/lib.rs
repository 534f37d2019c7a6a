//! The shared-memory ABI between the lingerd daemon and its clients, and the
//! vocabulary every lingerd crate speaks.
//!
//! Everything a client and a dataplane core must agree on byte for byte
//! lives here and nowhere else: error codes with stable numbers
//! ([`Errno`]), the region layout (header page, per-core request and
//! completion rings, TX and RX data arenas: [`layout`]), the 64-byte entries
//! with their opcodes and outcome codes ([`entry`]), and the one ring
//! cursor both sides use ([`sys`], the crate's only `unsafe`), and the
//! attach handshake's messages ([`attach`]). The value types the
//! configuration, the command lines, the engine and the client share
//! (linger settings, close modes and outcomes, durations, prefixes, MAC
//! addresses) are declared once, in [`vocab`], with their text forms.
//! Without features the crate has no dependencies and performs no I/O
//! beyond the memory it is handed; `serde` adds (de)serialisation of the
//! vocabulary, `mmap` the region mapping.
#![deny(unsafe_code)]

pub mod attach;
pub mod entry;
mod errno;
pub mod layout;
pub mod sys;
pub mod vocab;

pub use errno::Errno;
pub use vocab::{
    ClientExitPolicy, CloseKind, CloseMode, Duration, Linger, MacAddr, Outcome, ParseError, Prefix,
    Shutdown, TimeWaitRst,
};
