//! `wire_parse`: arbitrary bytes through every `wire` view and `Repr`
//! (Ethernet, ARP, IPv4, TCP and its options, the RST template). The checks
//! live in `lingerd_testkit::fuzz::wire_parse`, shared with the corpus
//! replay in `cargo test`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    lingerd_testkit::fuzz::wire_parse(data);
});
