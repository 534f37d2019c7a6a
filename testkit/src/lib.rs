//! Test scaffolding shared by lingerd's tests, fuzz targets and benchmarks;
//! never linked into the daemon or the client library.
//!
//! It owns what only tests need: the in-process frame pair with a virtual
//! clock, the fuzz harnesses and their seeds, the one PRNG the tests
//! draw from, and the RST frame of either family the ceiling senders send, and an
//! etherparse reading of a TCP frame to hold built frames against. It may use the production crates' public API only; nothing in
//! a production crate may depend on it.
#![deny(unsafe_code)]

pub mod filter;
pub mod frames;
pub mod fuzz;
pub mod mem;
pub mod oracle;
pub mod rng;
pub mod sys;
