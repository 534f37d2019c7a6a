//! Measures `RstTemplate::build_array` per frame: `cargo run --release -p
//! lingerd-dataplane --example rst_speed`. A quick figure for the ≤ 25 ns
//! target until the criterion `wire` group lands in `bench/`; it owns no
//! state and touches nothing but its own buffers.

use std::hint::black_box;
use std::net::Ipv4Addr;
use std::time::Instant;

use lingerd_dataplane::wire::{
    ControlSegment, EthernetAddress, RST_FRAME_LEN, RstTemplate, SeqNumber, checksum,
};

fn main() {
    let template = RstTemplate::new(
        EthernetAddress([2, 0, 0, 0, 0, 1]),
        EthernetAddress([2, 0, 0, 0, 0, 2]),
        Ipv4Addr::new(198, 18, 0, 1),
    );
    // Frames land in a ring of buffers, as in a UMEM, not in one hot line.
    let mut ring = vec![[0u8; RST_FRAME_LEN]; 256];
    const N: u32 = 20_000_000;
    for round in 0..3 {
        let start = Instant::now();
        for i in 0..N {
            let seg = ControlSegment::rst_ack(
                Ipv4Addr::from(0xc612_0000 | (i & 0xffff)),
                80,
                (i as u16) | 1,
                SeqNumber(0),
                SeqNumber(i.wrapping_mul(2_654_435_761)),
            );
            template.build_array(&mut ring[(i & 255) as usize], black_box(&seg));
        }
        let elapsed = start.elapsed();
        black_box(&ring);
        println!(
            "round {round}: RstTemplate::build_array {:.2} ns/frame ({N} frames)",
            elapsed.as_nanos() as f64 / f64::from(N)
        );
    }
    let data = vec![0xa5u8; 1500];
    let start = Instant::now();
    let mut acc = 0u16;
    for _ in 0..1_000_000 {
        acc ^= checksum::data(black_box(&data));
    }
    let elapsed = start.elapsed();
    black_box(acc);
    println!(
        "checksum::data over 1500 bytes: {:.1} ns ({:.1} GB/s)",
        elapsed.as_nanos() as f64 / 1e6,
        1500.0 * 1e6 / elapsed.as_nanos() as f64
    );
}
