//! `ring_entries`: the daemon side of a client's rings over a shared region
//! that the input writes (requests, raw entries, TX chunks, scribbles over
//! the header, slots and arenas, hostile cursors), with the daemon's loop
//! run in between, decoded from the input (an `arbitrary` `Input`). The
//! harness and its invariants live in
//! `lingerd_testkit::fuzz::ring_entries`, shared with the corpus
//! replay and the property test in `cargo test`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = lingerd_testkit::fuzz::ring_entries(data);
});
