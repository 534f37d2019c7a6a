//! `engine_rx`: a `QueueEngine` with a listener on port 80 driven by frames,
//! clock steps and client requests decoded from the input (an `arbitrary`
//! `Input`). The harness and
//! its invariants live in `lingerd_testkit::fuzz::engine_rx`, shared
//! with the corpus replay in `cargo test`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = lingerd_testkit::fuzz::engine_rx(data);
});
