//! Fuzz harnesses, shared by the cargo-fuzz targets in `testkit/fuzz/` and
//! by the ordinary tests that replay the committed corpus and crash inputs
//! (`testkit/tests/fuzz_corpus.rs`, `testkit/tests/fuzz_regressions.rs`), so
//! that one piece of code judges an input whether libFuzzer or `cargo test`
//! runs it.
//!
//! Each harness takes arbitrary bytes, drives the dataplane's public API
//! only, and panics when an invariant breaks; it keeps no state between
//! calls, reads no clock other than one `Instant` taken as the engine's
//! epoch, and touches no file or socket. The structured harnesses decode
//! their bytes into inputs that derive [`Arbitrary`] ([`decode`]); the seeds
//! are kept as such values and written as bytes by an [`Encoder`] that
//! mirrors `arbitrary`'s format.
//!
//! - [`wire_parse`]: every `wire` view and `Repr` over hostile bytes.
//! - [`engine_rx`]: a [`QueueEngine`](lingerd_dataplane::engine::QueueEngine) fed a
//!   sequence of frames, clock steps and client requests decoded from the
//!   bytes ([`engine::Op`]).
//! - [`ring_entries`]: the daemon side of a client's rings
//!   ([`ClientRings`](lingerd_dataplane::rings::ClientRings)) over a shared region the
//!   input writes, honestly or not ([`rings::Op`]).
//!
//! [`seeds`] holds the seed corpus as code.

use arbitrary::{Arbitrary, Unstructured};

pub mod engine;
pub mod rings;
pub mod seeds;
mod wire;

pub use engine::engine_rx;
pub use rings::ring_entries;
pub use wire::wire_parse;

/// Decodes a whole fuzz input the way libFuzzer's `fuzz_target!(|input: T|)`
/// does (`arbitrary_take_rest`), so the corpus replay and the fuzzer read
/// the same bytes as the same value. `None` only if `arbitrary` gives up,
/// which our input types never make it do (short inputs read as zeroes).
pub fn decode<T: for<'a> Arbitrary<'a>>(data: &[u8]) -> Option<T> {
    T::arbitrary_take_rest(Unstructured::new(data)).ok()
}

/// Up to `max` bytes behind a one-byte length (`len % (max + 1)`), fewer
/// when the input ends first: the `arbitrary` reader of a short byte
/// string, so that a fuzzer's byte strings cost one length byte, not one
/// continuation byte per byte as a derived `Vec<u8>` would.
fn short_bytes(u: &mut Unstructured<'_>, max: u8) -> arbitrary::Result<Vec<u8>> {
    let len = usize::from(u8::arbitrary(u)? % max.wrapping_add(1));
    Ok(u.bytes(len.min(u.len()))?.to_vec())
}

/// Up to `max` bytes behind a two-byte length (`len % (max + 1)`).
fn long_bytes(u: &mut Unstructured<'_>, max: u16) -> arbitrary::Result<Vec<u8>> {
    let len = usize::from(u16::arbitrary(u)? % max.wrapping_add(1));
    Ok(u.bytes(len.min(u.len()))?.to_vec())
}

/// Writes values the way `arbitrary` 1.x reads them, so the seeds can be
/// kept as values and still be committed as the bytes a fuzzer starts from.
/// The round-trip tests (`decode` of an encoding gives the value back) hold
/// it to the `arbitrary` version in use.
#[derive(Debug, Default)]
pub struct Encoder {
    out: Vec<u8>,
}

impl Encoder {
    /// The bytes written so far.
    pub fn finish(self) -> Vec<u8> {
        self.out
    }

    /// A byte.
    pub fn u8(&mut self, v: u8) {
        self.out.push(v);
    }

    /// An `i8`.
    pub fn i8(&mut self, v: i8) {
        self.out.extend(v.to_le_bytes());
    }

    /// A `u16` (little-endian, as `arbitrary` reads integers).
    pub fn u16(&mut self, v: u16) {
        self.out.extend(v.to_le_bytes());
    }

    /// An `i16`.
    pub fn i16(&mut self, v: i16) {
        self.out.extend(v.to_le_bytes());
    }

    /// A `u32`.
    pub fn u32(&mut self, v: u32) {
        self.out.extend(v.to_le_bytes());
    }

    /// A `bool` (the low bit of a byte); also the tag of an `Option` and the
    /// "one more" byte before each element of a `Vec`.
    pub fn bool(&mut self, v: bool) {
        self.out.push(u8::from(v));
    }

    /// The variant `index` of a derived enum with `count` variants: the
    /// smallest `u32` that `(u32 * count) >> 32` maps to `index`.
    pub fn variant(&mut self, index: u32, count: u32) {
        debug_assert!(index < count);
        let v = (u64::from(index) << 32).div_ceil(u64::from(count));
        self.u32(v as u32);
    }

    /// A byte string for [`short_bytes`] (cut to `max`).
    fn short_bytes(&mut self, bytes: &[u8], max: u8) {
        let bytes = &bytes[..bytes.len().min(usize::from(max))];
        self.u8(bytes.len() as u8);
        self.out.extend_from_slice(bytes);
    }

    /// A byte string for [`long_bytes`] (cut to `max`).
    fn long_bytes(&mut self, bytes: &[u8], max: u16) {
        let bytes = &bytes[..bytes.len().min(usize::from(max))];
        self.u16(bytes.len() as u16);
        self.out.extend_from_slice(bytes);
    }

    /// Raw bytes, as a fixed-size field reads them.
    fn raw(&mut self, bytes: &[u8]) {
        self.out.extend_from_slice(bytes);
    }
}
