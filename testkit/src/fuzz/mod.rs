//! Fuzz harnesses, shared by the cargo-fuzz targets in `testkit/fuzz/` and
//! by the ordinary tests that replay the committed corpus and crash inputs
//! (`testkit/tests/fuzz_corpus.rs`, `testkit/tests/fuzz_regressions.rs`), so
//! that one piece of code judges an input whether libFuzzer or `cargo test`
//! runs it.
//!
//! Each harness takes arbitrary bytes, drives the dataplane's public API
//! only, and panics when an
//! invariant breaks; it keeps no state between calls, reads no clock other
//! than one `Instant` taken as the engine's epoch, and touches no file or
//! socket.
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

pub mod engine;
pub mod rings;
pub mod seeds;
mod wire;

pub use engine::engine_rx;
pub use rings::ring_entries;
pub use wire::wire_parse;

/// Reads fuzzer bytes front to back. Past the end every read yields zeroes,
/// so any input decodes to something and a decoder never fails.
#[derive(Debug, Clone)]
pub struct Reader<'a> {
    data: &'a [u8],
}

impl<'a> Reader<'a> {
    /// A reader over `data`.
    pub fn new(data: &'a [u8]) -> Reader<'a> {
        Reader { data }
    }

    /// Whether every byte has been read.
    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    /// The next byte (0 past the end).
    pub fn u8(&mut self) -> u8 {
        match self.data.split_first() {
            Some((&b, rest)) => {
                self.data = rest;
                b
            }
            None => 0,
        }
    }

    /// The next two bytes, big-endian.
    pub fn u16(&mut self) -> u16 {
        u16::from_be_bytes([self.u8(), self.u8()])
    }

    /// The next four bytes, big-endian.
    pub fn u32(&mut self) -> u32 {
        u32::from_be_bytes([self.u8(), self.u8(), self.u8(), self.u8()])
    }

    /// Up to `n` next bytes (fewer at the end).
    pub fn bytes(&mut self, n: usize) -> &'a [u8] {
        let (head, rest) = self.data.split_at(n.min(self.data.len()));
        self.data = rest;
        head
    }
}

#[cfg(test)]
mod tests {
    use super::Reader;

    #[test]
    fn reader_reads_zeroes_past_the_end() {
        let mut r = Reader::new(&[1, 2, 3]);
        assert_eq!(r.u16(), 0x0102);
        assert_eq!(r.u32(), 0x0300_0000);
        assert!(r.is_empty());
        assert_eq!(r.bytes(4), &[] as &[u8]);
        assert_eq!(r.u8(), 0);
    }
}
