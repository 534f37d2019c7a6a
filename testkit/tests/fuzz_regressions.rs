//! Replays every input that once crashed a fuzz target
//! (`fuzz/regressions/<target>/*`, copied there from `fuzz/artifacts/`)
//! through the same harness, so that a fixed bug stays fixed in a plain
//! `cargo test`. Each file's commit message says what it found.
//!
//! Add a crash with
//! `cp fuzz/artifacts/<target>/crash-<sha1> fuzz/regressions/<target>/`
//! in the commit that fixes it.

use std::fs;
use std::path::Path;
use std::time::Instant;

use lingerd_dataplane::engine::QueueEngine;
use lingerd_dataplane::engine::api::{ClientId, Detail, Request};
use lingerd_dataplane::engine::config::{EngineConfig, Prefix};
use lingerd_dataplane::wire::{
    EtherType, EthernetFrame, EthernetRepr, IpProtocol, Ipv4Packet, Ipv4Repr, SeqNumber, TcpFlags,
    TcpOptions, TcpPacket, TcpRepr,
};
use lingerd_testkit::fuzz;
use lingerd_testkit::fuzz::engine::{LOCAL_IP, LOCAL_MAC, PEER_IP, PEER_MAC};

/// Runs `harness` on every file in `fuzz/regressions/<target>/`; returns
/// how many there were.
fn replay(target: &str, harness: impl Fn(&[u8])) -> usize {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/regressions")
        .join(target);
    let Ok(entries) = fs::read_dir(&dir) else {
        return 0;
    };
    let mut paths: Vec<_> = entries.map(|e| e.unwrap().path()).collect();
    paths.sort();
    for path in &paths {
        eprintln!("{}", path.display());
        harness(&fs::read(path).unwrap());
    }
    paths.len()
}

/// `wire_parse` crashes: short unchecked views (commit "wire: options,
/// payload and ARP addresses never panic on a short buffer").
#[test]
fn wire_parse_regressions() {
    assert!(replay("wire_parse", fuzz::wire_parse) > 0);
}

/// `engine_rx` crashes: a connect that never completed (commits "engine:
/// poll_transmit sends the ARP request it queues before saying None" and
/// "engine: a connection parked for ARP keeps a retransmission deadline"),
/// and a `poll_transmit` that never returned ("tcp: a closed record drops
/// PROBE and RETRANSMIT_ONE"; without it the timeout input hangs).
#[test]
fn engine_rx_regressions() {
    let n = replay("engine_rx", |data| {
        let _ = fuzz::engine_rx(data);
    });
    assert!(n >= 2);
}

/// A segment from the peer (198.18.0.2:40000 → :80), no options or data.
fn segment(flags: TcpFlags, seq: u32, ack: u32) -> Vec<u8> {
    let mut f = vec![0u8; 54];
    EthernetRepr {
        src_addr: PEER_MAC,
        dst_addr: LOCAL_MAC,
        ethertype: EtherType::Ipv4,
    }
    .emit(&mut EthernetFrame::new_unchecked(&mut f[..]));
    Ipv4Repr {
        src_addr: PEER_IP,
        dst_addr: LOCAL_IP,
        protocol: IpProtocol::Tcp,
        payload_len: 20,
        ttl: 64,
    }
    .emit(&mut Ipv4Packet::new_unchecked(&mut f[14..]));
    TcpRepr {
        src_port: 40_000,
        dst_port: 80,
        seq: SeqNumber(seq),
        ack: SeqNumber(ack),
        flags,
        window: 65_535,
        urgent: 0,
        options: TcpOptions::default(),
        payload: &[],
    }
    .emit(
        &mut TcpPacket::new_unchecked(&mut f[34..]),
        PEER_IP,
        LOCAL_IP,
    );
    f
}

/// The same bug as the timeout input, reached the way a shell meets it:
/// three duplicate ACKs (fast retransmit pending) and an RST at RCV.NXT in
/// one receive burst, then `poll_transmit`. It used to spin for ever on the
/// closed record; the engine harness drains after every frame, so it can
/// only find the variant where the pending segment waits for ARP.
#[test]
fn dup_acks_then_rst_in_one_burst() {
    let t0 = Instant::now();
    let mut cfg = EngineConfig::new(
        0,
        LOCAL_MAC,
        Prefix::new(LOCAL_IP.into(), 24).expect("an IPv4 prefix length"),
    );
    cfg.tcp.timestamps = false;
    let client = ClientId(7);
    let mut e = QueueEngine::new(cfg, t0);
    let mut buf = vec![0u8; 2048];
    e.handle_request(
        t0,
        client,
        1,
        Request::Listen {
            port: 80,
            backlog: 8,
        },
    );
    e.handle_rx(t0, &segment(TcpFlags::SYN, 1000, 0));
    assert!(e.poll_transmit(t0, &mut buf).is_some(), "SYN-ACK");
    let iss = u32::from_be_bytes(buf[38..42].try_into().unwrap());
    e.handle_rx(t0, &segment(TcpFlags::ACK, 1001, iss + 1));
    let conn = std::iter::from_fn(|| e.poll_completion())
        .find_map(|c| matches!(c.detail, Detail::Accepted { .. }).then_some(c.handle))
        .expect("accepted");
    let data = vec![1; 5000];
    e.handle_request(t0, client, 2, Request::Send { handle: conn, data });
    let sent = std::iter::from_fn(|| e.poll_transmit(t0, &mut buf)).count();
    assert!(sent >= 3, "data segments in flight");

    for _ in 0..3 {
        e.handle_rx(t0, &segment(TcpFlags::ACK, 1001, iss + 1));
    }
    e.handle_rx(t0, &segment(TcpFlags::RST, 1001, 0));
    // If the bug is back, this first call never returns: the test hangs.
    let after = std::iter::from_fn(|| e.poll_transmit(t0, &mut buf))
        .take(100)
        .count();
    assert_eq!(after, 0, "nothing to send for a reset connection");
    assert_eq!(e.tx_backlog(), 0);
}
