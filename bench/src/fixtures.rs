//! Benchmark inputs: 4-tuples, received frames, filled connection tables,
//! RST templates and control segments, and the parse-and-look-up path the
//! `foundation` figures time.
//!
//! It owns the address plan of the micro benchmarks (we are 198.18.0.1:80,
//! peers are 10.x.y.z on ports 1024..65023; over IPv6 we are
//! `[2001:db8::1]:80` and peers are in 2001:db8:a::/96) and builds frames
//! through the dataplane's own `emit` paths. It keeps no state between
//! calls.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use lingerd_dataplane::table::{FourTuple, Handle, Table};
use lingerd_dataplane::tcp::Tcb;
use lingerd_dataplane::wire::{
    self, ControlSegment, EtherType, EthernetAddress, EthernetFrame, EthernetRepr, IpProtocol,
    Ipv4Packet, Ipv4Repr, RstTemplate, SeqNumber, TcpFlags, TcpOptions, TcpPacket, TcpRepr,
};
use lingerd_testkit::rng::SplitMix64;

use crate::measure::progress;

/// Our address in the micro benchmarks.
pub const LOCAL_IP: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 1);
/// Our IPv6 address in the micro benchmarks.
pub const LOCAL_IP6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1);
/// Our port.
pub const LOCAL_PORT: u16 = 80;
/// Our MAC.
pub const LOCAL_MAC: EthernetAddress = EthernetAddress([2, 0, 0, 0, 0, 1]);
/// The next hop's MAC.
pub const PEER_MAC: EthernetAddress = EthernetAddress([2, 0, 0, 0, 0, 2]);
/// The secret of the benchmark tables' tuple hash.
pub const HASH_KEY: u64 = 0x5eed_1234_abcd_9876;
/// Length of a bare Ethernet + IPv4 + TCP frame.
pub const FRAME_LEN: usize = 54;
/// Ports per peer address in [`tuple`].
const PORTS_PER_PEER: u32 = 64_000;

/// A received frame in a 64-byte buffer (one cache line, as a NIC ring's
/// frames are at least).
pub type FrameBuf = [u8; 64];

/// The `i`-th connection of the plan: peer `10.0.0.0 + i / 64000`, port
/// `1024 + i % 64000`. Distinct for every `i < 2^24 · 64000`.
#[inline]
pub fn tuple(i: u32) -> FourTuple {
    FourTuple {
        local_addr: IpAddr::V4(LOCAL_IP),
        remote_addr: IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + i / PORTS_PER_PEER)),
        local_port: LOCAL_PORT,
        remote_port: 1024 + (i % PORTS_PER_PEER) as u16,
    }
}

/// The `i`-th connection of the IPv6 plan: peer
/// `2001:db8:a:: + i / 64000`, port `1024 + i % 64000`.
#[inline]
pub fn tuple6(i: u32) -> FourTuple {
    let peer = (0x2001_0db8_000a_u128 << 80) | u128::from(i / PORTS_PER_PEER);
    FourTuple {
        local_addr: IpAddr::V6(LOCAL_IP6),
        remote_addr: IpAddr::V6(Ipv6Addr::from(peer)),
        local_port: LOCAL_PORT,
        remote_port: 1024 + (i % PORTS_PER_PEER) as u16,
    }
}

/// The IPv4 address of an IPv4 plan's tuple.
fn v4(ip: IpAddr) -> Ipv4Addr {
    match ip {
        IpAddr::V4(a) => a,
        IpAddr::V6(a) => panic!("the IPv4 plan has no IPv6 address ({a})"),
    }
}

/// A `Table<Tcb>` of `capacity` slots holding connections `0..n` (slot `i`
/// holds [`tuple()`]`(i)`), and their handles.
pub fn filled_table(n: u32, capacity: u32) -> (Table<Tcb>, Vec<Handle>) {
    filled_table_of(n, capacity, tuple)
}

/// [`filled_table`] with the IPv6 plan ([`tuple6`]).
pub fn filled_table_v6(n: u32, capacity: u32) -> (Table<Tcb>, Vec<Handle>) {
    filled_table_of(n, capacity, tuple6)
}

/// A table (our addresses of both families) holding `make(0..n)`.
fn filled_table_of(n: u32, capacity: u32, make: fn(u32) -> FourTuple) -> (Table<Tcb>, Vec<Handle>) {
    let locals = [IpAddr::V4(LOCAL_IP), IpAddr::V6(LOCAL_IP6)];
    let mut table = Table::with_capacity(0, capacity, HASH_KEY, &locals);
    let mut handles = Vec::with_capacity(n as usize);
    let step = (n / 4).max(1);
    for i in 0..n {
        let h = table
            .insert(make(i), Tcb::default())
            .expect("the plan's tuples are distinct and the table has room");
        handles.push(h);
        if (i + 1) % step == 0 && n >= 4_000_000 {
            progress(format!("  table fill {}/{}", i + 1, n));
        }
    }
    (table, handles)
}

/// The frame a peer sends on connection `tuple`: a bare ACK, checksums
/// filled, addressed to us.
pub fn rx_frame(tuple: &FourTuple, seq: u32, ack: u32) -> FrameBuf {
    let (remote, local) = (v4(tuple.remote_addr), v4(tuple.local_addr));
    let mut buf = [0u8; 64];
    let frame = &mut buf[..FRAME_LEN];
    EthernetRepr {
        src_addr: PEER_MAC,
        dst_addr: LOCAL_MAC,
        ethertype: EtherType::Ipv4,
    }
    .emit(&mut EthernetFrame::new_unchecked(&mut frame[..]));
    Ipv4Repr {
        src_addr: remote,
        dst_addr: local,
        protocol: IpProtocol::Tcp,
        payload_len: 20,
        ttl: 64,
    }
    .emit(&mut Ipv4Packet::new_unchecked(&mut frame[14..34]));
    TcpRepr {
        src_port: tuple.remote_port,
        dst_port: tuple.local_port,
        seq: SeqNumber(seq),
        ack: SeqNumber(ack),
        flags: TcpFlags::ACK,
        window: 502,
        urgent: 0,
        options: TcpOptions::default(),
        payload: &[],
    }
    .emit(
        &mut TcpPacket::new_unchecked(&mut frame[34..]),
        remote,
        local,
    );
    buf
}

/// `count` frames for connections drawn uniformly at random from `0..n`.
pub fn random_frames(n: u32, count: usize, seed: u64) -> Vec<FrameBuf> {
    let mut rng = SplitMix64::new(seed);
    (0..count)
        .map(|_| {
            let i = rng.below(u64::from(n)) as u32;
            let r = rng.next_u64();
            rx_frame(&tuple(i), r as u32, (r >> 32) as u32)
        })
        .collect()
}

/// Parses Ethernet, IPv4 (header checksum verified) and TCP (checksum
/// verified) with the dataplane's `wire` and returns the connection's
/// 4-tuple seen from our side: exactly what the engine's receive path does
/// before its table lookup.
#[inline]
pub fn parse_tuple(frame: &[u8]) -> wire::Result<FourTuple> {
    let eth = EthernetFrame::new_checked(frame)?;
    if eth.ethertype() != EtherType::Ipv4 {
        return Err(wire::Error::Unsupported);
    }
    let packet = Ipv4Packet::new_checked(eth.payload())?;
    let ip = Ipv4Repr::parse(&packet)?;
    if ip.protocol != IpProtocol::Tcp {
        return Err(wire::Error::Unsupported);
    }
    let tcp = TcpPacket::new_checked(packet.payload())?;
    let seg = TcpRepr::parse(&tcp, ip.src_addr, ip.dst_addr, true)?;
    Ok(FourTuple {
        local_addr: IpAddr::V4(ip.dst_addr),
        remote_addr: IpAddr::V4(ip.src_addr),
        local_port: seg.dst_port,
        remote_port: seg.src_port,
    })
}

/// Parses `frame` and looks its connection up: the `parse_lookup` figure.
#[inline]
pub fn parse_lookup(table: &Table<Tcb>, frame: &[u8]) -> Option<Handle> {
    parse_tuple(frame).ok().and_then(|t| table.lookup(&t))
}

/// Parses a burst of frames, then looks them all up with
/// [`Table::lookup_burst`] (prefetching buckets and records): the
/// `parse_lookup_burst` figure. Returns how many were found.
pub fn parse_lookup_burst(table: &Table<Tcb>, frames: &[FrameBuf]) -> usize {
    const BURST: usize = 32;
    let blank = tuple(0);
    let mut found = 0;
    for burst in frames.chunks(BURST) {
        let mut tuples = [blank; BURST];
        let mut n = 0;
        for f in burst {
            if let Ok(t) = parse_tuple(&f[..FRAME_LEN]) {
                tuples[n] = t;
                n += 1;
            }
        }
        let mut out = [None; BURST];
        table.lookup_burst(&tuples[..n], &mut out[..n]);
        found += out[..n].iter().filter(|h| h.is_some()).count();
    }
    found
}

/// Frames of a receive ring: [`RX_RING`] reused buffers, as a NIC (or the
/// kernel's copy into the UMEM) fills them, so frames are hot in cache when
/// the engine reads them, unlike a 64 MB array of a million frames.
pub const RX_RING: usize = 64;

/// [`parse_lookup_burst`] the realistic way: each burst of 32 of `frames`
/// (connections random among the table's) is first copied into the next 32
/// buffers of a [`RX_RING`]-buffer ring (untimed: that is the kernel's or
/// the NIC's work), then parsed and looked up from there (timed). Returns
/// (found, time spent parsing and looking up).
pub fn parse_lookup_burst_ring(
    table: &Table<Tcb>,
    frames: &[FrameBuf],
) -> (usize, std::time::Duration) {
    const BURST: usize = 32;
    let mut ring = [[0u8; 64]; RX_RING];
    let mut at = 0;
    let mut found = 0;
    let mut spent = std::time::Duration::ZERO;
    for burst in frames.chunks(BURST) {
        let slots = &mut ring[at..at + burst.len()];
        slots.copy_from_slice(burst);
        let start = std::time::Instant::now();
        found += parse_lookup_burst(table, std::hint::black_box(slots));
        spent += start.elapsed();
        at = (at + BURST) % RX_RING;
    }
    (found, spent)
}

/// The RST template of the micro benchmarks.
pub fn rst_template() -> RstTemplate {
    RstTemplate::new(LOCAL_MAC, PEER_MAC, LOCAL_IP)
}

/// `count` RST|ACK segments for random connections of the plan.
pub fn rst_segments(count: usize, seed: u64) -> Vec<ControlSegment> {
    let mut rng = SplitMix64::new(seed);
    (0..count)
        .map(|_| {
            let t = tuple(rng.below(10_000_000) as u32);
            let r = rng.next_u64();
            ControlSegment::rst_ack(
                v4(t.remote_addr),
                t.local_port,
                t.remote_port,
                SeqNumber(r as u32),
                SeqNumber((r >> 32) as u32),
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_parse_back_to_their_tuples() {
        for i in [0, 1, 63_999, 64_000, 9_999_999] {
            let t = tuple(i);
            let f = rx_frame(&t, 1, 2);
            assert_eq!(parse_tuple(&f[..FRAME_LEN]), Ok(t));
        }
        let mut bad = rx_frame(&tuple(5), 1, 2);
        bad[50] ^= 1;
        assert_eq!(parse_tuple(&bad[..FRAME_LEN]), Err(wire::Error::Checksum));
    }

    #[test]
    fn lookups_find_every_random_frame_single_and_burst() {
        let (table, handles) = filled_table(10_000, 10_000);
        assert_eq!(handles.len(), 10_000);
        let frames = random_frames(10_000, 1_000, 3);
        assert!(
            frames
                .iter()
                .all(|f| parse_lookup(&table, &f[..FRAME_LEN]).is_some())
        );
        assert_eq!(parse_lookup_burst(&table, &frames), 1_000);
        assert_eq!(parse_lookup_burst_ring(&table, &frames).0, 1_000);
    }

    #[test]
    fn rst_segments_build_valid_frames() {
        let template = rst_template();
        let mut frame = [0u8; 54];
        for seg in rst_segments(10, 1) {
            template.build_array(&mut frame, &seg);
            let tcp = TcpPacket::new_checked(&frame[34..]).unwrap();
            assert!(tcp.verify_checksum(LOCAL_IP, seg.remote_ip));
            assert!(tcp.flags().rst());
        }
    }
}
