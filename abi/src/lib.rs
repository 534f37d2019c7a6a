//! The shared-memory ABI between the lingerd daemon and its clients.
//!
//! Everything a client and a dataplane core must agree on byte for byte lives
//! here and nowhere else: error codes with stable numbers (this file), and,
//! as the client rings land, the region layout, the 64-byte request and
//! completion entries and the opcodes. The crate has no dependencies and
//! performs no I/O; it only defines types and their encodings.
#![deny(unsafe_code)]

mod errno;

pub use errno::Errno;
