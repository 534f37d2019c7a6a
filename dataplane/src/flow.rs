//! Flow ownership across queues: which queue's engine owns a 4-tuple.
//!
//! A connection belongs to the queue its frames arrive on. The
//! owner is a pure function of the 4-tuple, computed the way a NIC's RSS
//! does it: the Toeplitz hash (Microsoft RSS specification, "Verifying the
//! RSS hash calculation") of source address, destination address, source
//! port and destination port of the *received* frame, its low bits indexing
//! an indirection table of queues. With the NIC's own key and table
//! (`ethtool -x`) the owner is the queue the frame arrives on, so nothing
//! moves between cores; when the key is unknown (veth has no RSS at all) the
//! same function with a default key and a round-robin table still names one
//! owner per tuple, and the port shell hands frames that arrive elsewhere to
//! it over an in-process ring ([`crate::port::handoff::Handoff`]).
//!
//! Active opens pick their source port so that the answer's tuple hashes to
//! their own queue ([`FlowSteer::owns_local`], used by the engine's
//! ephemeral-port search), so in the common case only the SYN of a passive
//! open or a stray frame crosses cores.
//!
//! IPv6 frames are hashed the same way over their 16-byte addresses (the
//! specification's "IPv6 with TCP" input), after the extension headers
//! are walked with `wire::ipv6_walk`; Neighbor Discovery goes to every
//! engine as ARP does, and a Packet Too Big to the owner of the connection
//! it quotes.
//!
//! It owns the hash, the table and the frame classification; it keeps no
//! state and performs no I/O.

use std::net::{IpAddr, Ipv6Addr};

use crate::wire::{self, Icmpv6Message, IpProtocol};

/// The Toeplitz key most NICs ship with (the RSS specification's example
/// key); used when the NIC's own key is unknown.
pub const DEFAULT_RSS_KEY: [u8; 40] = [
    0x6d, 0x5a, 0x56, 0xda, 0x25, 0x5b, 0x0e, 0xc2, 0x41, 0x67, 0x25, 0x3d, 0x43, 0xa3, 0x8f, 0xb0,
    0xd0, 0xca, 0x2b, 0xcb, 0xae, 0x7b, 0x30, 0xb4, 0x77, 0xcb, 0x2d, 0xa3, 0x80, 0x30, 0xf2, 0x0c,
    0x6a, 0x42, 0xb7, 0x3b, 0xbe, 0xac, 0x01, 0xfa,
];

/// The Toeplitz hash of `input` under `key` (the key must be at least
/// `input.len() + 4` bytes long; bits beyond the key count as zero).
pub fn toeplitz(key: &[u8], input: &[u8]) -> u32 {
    let bit =
        |i: usize| -> u32 { u32::from(key.get(i / 8).is_some_and(|b| b & (0x80 >> (i % 8)) != 0)) };
    // The 32-bit window of the key starting at bit 0, slid one bit per input bit.
    let mut window: u32 = 0;
    for i in 0..32 {
        window = (window << 1) | bit(i);
    }
    let mut hash = 0u32;
    for (n, byte) in input.iter().enumerate() {
        for b in 0..8 {
            if byte & (0x80 >> b) != 0 {
                hash ^= window;
            }
            window = (window << 1) | bit(n * 8 + b + 32);
        }
    }
    hash
}

/// The RSS hash of a received TCP frame's tuple: source address,
/// destination address, source port, destination port (12 bytes of input
/// for IPv4, 36 for IPv6). Two addresses of different families are hashed
/// as given (no frame carries such a pair).
pub fn rss_hash(key: &[u8], src: IpAddr, dst: IpAddr, sport: u16, dport: u16) -> u32 {
    let mut input = [0u8; 36];
    let mut at = 0;
    for addr in [src, dst] {
        let len = match addr {
            IpAddr::V4(a) => {
                input[at..at + 4].copy_from_slice(&a.octets());
                4
            }
            IpAddr::V6(a) => {
                input[at..at + 16].copy_from_slice(&a.octets());
                16
            }
        };
        at += len;
    }
    input[at..at + 2].copy_from_slice(&sport.to_be_bytes());
    input[at + 2..at + 4].copy_from_slice(&dport.to_be_bytes());
    toeplitz(key, &input[..at + 4])
}

/// Which queue owns which flow, as seen by one queue (`me`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FlowSteer {
    /// This engine's index among the queues (position in `indirection`'s
    /// values), not the NIC queue id.
    pub me: u8,
    /// Number of queues (engines).
    pub queues: u8,
    /// The Toeplitz key.
    pub key: Vec<u8>,
    /// Indirection table: hash's low bits → queue index. Its length is a
    /// power of two.
    pub indirection: Vec<u8>,
    /// Whether `key`/`indirection` are the NIC's own (the owner is then the
    /// arrival queue) or our default (frames may arrive anywhere).
    pub from_nic: bool,
}

/// Where a received frame goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FrameOwner {
    /// This queue's engine.
    Local,
    /// Another queue's engine (its index).
    Queue(u8),
    /// Every engine (ARP: each keeps its own neighbour cache).
    All,
}

impl FlowSteer {
    /// Default key, round-robin table of 128 entries over `queues`.
    pub fn software(me: u8, queues: u8) -> FlowSteer {
        let n = queues.max(1);
        FlowSteer {
            me,
            queues: n,
            key: DEFAULT_RSS_KEY.to_vec(),
            indirection: (0..128u32).map(|i| (i % u32::from(n)) as u8).collect(),
            from_nic: false,
        }
    }

    /// The queue index owning a frame received from `remote:rport` to
    /// `local:lport`.
    pub fn owner(&self, remote: IpAddr, local: IpAddr, rport: u16, lport: u16) -> u8 {
        if self.queues <= 1 || self.indirection.is_empty() {
            return self.me;
        }
        let h = rss_hash(&self.key, remote, local, rport, lport);
        let mask = self.indirection.len().next_power_of_two() - 1;
        self.indirection
            .get(h as usize & mask)
            .copied()
            .unwrap_or(self.me)
    }

    /// Whether this queue owns the flow whose frames come from
    /// `remote:rport` to `local:lport` (the ephemeral-port search asks).
    pub fn owns_local(&self, local: IpAddr, lport: u16, remote: IpAddr, rport: u16) -> bool {
        self.owner(remote, local, rport, lport) == self.me
    }

    /// Classifies a received Ethernet frame: ARP and IPv6 Neighbor
    /// Discovery to all, IPv4/TCP and IPv6/TCP to its owner, a Packet Too
    /// Big to the owner of the connection it quotes, anything else (or
    /// anything malformed) to this engine, which counts and drops it.
    pub fn classify(&self, frame: &[u8]) -> FrameOwner {
        if self.queues <= 1 || frame.len() < 14 {
            return FrameOwner::Local;
        }
        match u16::from_be_bytes([frame[12], frame[13]]) {
            0x0806 => FrameOwner::All,
            0x0800 => {
                let ip = &frame[14..];
                if ip.len() < 20 || ip[9] != 6 || ip[6] & 0x3f != 0 || ip[7] != 0 {
                    // Not TCP, or a fragment: the engine drops it.
                    return FrameOwner::Local;
                }
                let ihl = usize::from(ip[0] & 0x0f) * 4;
                let Some(tcp) = ip.get(ihl..ihl + 4) else {
                    return FrameOwner::Local;
                };
                let src = IpAddr::from([ip[12], ip[13], ip[14], ip[15]]);
                let dst = IpAddr::from([ip[16], ip[17], ip[18], ip[19]]);
                let sport = u16::from_be_bytes([tcp[0], tcp[1]]);
                let dport = u16::from_be_bytes([tcp[2], tcp[3]]);
                self.queue_of(src, dst, sport, dport)
            }
            0x86dd => self.classify_ipv6(&frame[14..]),
            _ => FrameOwner::Local,
        }
    }

    /// The owner of a frame from `src:sport` to `dst:dport`.
    fn queue_of(&self, src: IpAddr, dst: IpAddr, sport: u16, dport: u16) -> FrameOwner {
        match self.owner(src, dst, sport, dport) {
            q if q == self.me => FrameOwner::Local,
            q => FrameOwner::Queue(q),
        }
    }

    /// [`classify`](Self::classify) for an IPv6 packet (the Ethernet
    /// payload).
    fn classify_ipv6(&self, packet: &[u8]) -> FrameOwner {
        let Ok(ip) = wire::Ipv6Packet::new_checked(packet) else {
            return FrameOwner::Local;
        };
        let payload = ip.payload();
        let Ok(chain) = wire::ipv6_walk(ip.next_header(), payload) else {
            // Fragments and chains past the bounds: the engine drops them.
            return FrameOwner::Local;
        };
        let upper = chain.upper(payload);
        match chain.protocol() {
            Some(IpProtocol::Tcp) => {
                let Some(tcp) = upper.first_chunk::<4>() else {
                    return FrameOwner::Local;
                };
                let sport = u16::from_be_bytes([tcp[0], tcp[1]]);
                let dport = u16::from_be_bytes([tcp[2], tcp[3]]);
                let (src, dst): (Ipv6Addr, Ipv6Addr) = (ip.src_addr(), ip.dst_addr());
                self.queue_of(src.into(), dst.into(), sport, dport)
            }
            Some(IpProtocol::ICMPV6) => match upper.first().map(|&t| Icmpv6Message::from(t)) {
                Some(Icmpv6Message::NeighborSolicit | Icmpv6Message::NeighborAdvert) => {
                    FrameOwner::All
                }
                Some(Icmpv6Message::PacketTooBig) => {
                    let quote = upper.get(wire::ICMPV6_HEADER_LEN..).unwrap_or(&[]);
                    match wire::Icmpv6InvokingTcp::parse(quote) {
                        // The quote is our segment: its destination is the peer.
                        Ok(q) => self.queue_of(
                            q.dst_addr.into(),
                            q.src_addr.into(),
                            q.dst_port,
                            q.src_port,
                        ),
                        Err(_) => FrameOwner::Local,
                    }
                }
                _ => FrameOwner::Local,
            },
            _ => FrameOwner::Local,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The RSS specification's IPv4/TCP verification table
    /// (destination, source, "IPv4 with TCP" hash).
    #[test]
    fn toeplitz_matches_the_rss_specification() {
        let cases = [
            ("161.142.100.80", 1766, "66.9.149.187", 2794, 0x51cc_c178u32),
            ("65.69.140.83", 4739, "199.92.111.2", 14230, 0xc626_b0ea),
            ("12.22.207.184", 38024, "24.19.198.95", 12898, 0x5c2b_394a),
            ("209.142.163.6", 2217, "38.27.205.30", 48228, 0xafc7_327f),
            ("202.188.127.2", 1303, "153.39.163.191", 44251, 0x10e8_28a2),
        ];
        for (dst, dport, src, sport, want) in cases {
            let got = rss_hash(
                &DEFAULT_RSS_KEY,
                src.parse().unwrap(),
                dst.parse().unwrap(),
                sport,
                dport,
            );
            assert_eq!(got, want, "{src}:{sport} -> {dst}:{dport}");
        }
    }

    /// The RSS specification's IPv6/TCP verification table
    /// (destination, source, "IPv6 with TCP" hash).
    #[test]
    fn toeplitz_matches_the_rss_specification_for_ipv6() {
        let cases = [
            (
                "3ffe:2501:200:3::1",
                1766,
                "3ffe:2501:200:1fff::7",
                2794,
                0x4020_7d3du32,
            ),
            (
                "ff02::1",
                4739,
                "3ffe:501:8::260:97ff:fe40:efab",
                14230,
                0xdde5_1bbf,
            ),
            (
                "fe80::200:f8ff:fe21:67cf",
                38024,
                "3ffe:1900:4545:3:200:f8ff:fe21:67cf",
                44251,
                0x02d1_feef,
            ),
        ];
        for (dst, dport, src, sport, want) in cases {
            let got = rss_hash(
                &DEFAULT_RSS_KEY,
                src.parse().unwrap(),
                dst.parse().unwrap(),
                sport,
                dport,
            );
            assert_eq!(got, want, "[{src}]:{sport} -> [{dst}]:{dport}");
        }
    }

    /// An Ethernet + IPv6 frame with `next` and `upper` after the header.
    fn v6_frame(src: Ipv6Addr, dst: Ipv6Addr, next: u8, upper: &[u8]) -> Vec<u8> {
        let mut f = vec![0u8; 54];
        f[12..14].copy_from_slice(&0x86ddu16.to_be_bytes());
        f[14] = 0x60;
        f[18..20].copy_from_slice(&(upper.len() as u16).to_be_bytes());
        f[20] = next;
        f[21] = 64;
        f[22..38].copy_from_slice(&src.octets());
        f[38..54].copy_from_slice(&dst.octets());
        f.extend_from_slice(upper);
        f
    }

    #[test]
    fn classify_routes_v6_tcp_nd_to_all_and_ptb_to_its_connection() {
        let s = FlowSteer::software(0, 2);
        let peer: Ipv6Addr = "2001:db8::2".parse().unwrap();
        let us: Ipv6Addr = "2001:db8::1".parse().unwrap();
        let mut seen = [false; 2];
        for port in 1000..1100u16 {
            let mut tcp = [0u8; 20];
            tcp[0..2].copy_from_slice(&port.to_be_bytes());
            tcp[2..4].copy_from_slice(&80u16.to_be_bytes());
            let frame = v6_frame(peer, us, 6, &tcp);
            let want = s.owner(peer.into(), us.into(), port, 80);
            match s.classify(&frame) {
                FrameOwner::Local => {
                    assert_eq!(want, 0);
                    seen[0] = true;
                }
                FrameOwner::Queue(1) => {
                    assert_eq!(want, 1);
                    seen[1] = true;
                }
                other => panic!("{other:?}"),
            }
            // A Packet Too Big quoting our segment back to this peer goes
            // to the same queue.
            let mut ptb = vec![2u8, 0, 0, 0, 0, 0, 5, 0];
            let mut quote = [0u8; wire::Icmpv6InvokingTcp::QUOTE_LEN];
            wire::Icmpv6InvokingTcp {
                src_addr: us,
                dst_addr: peer,
                src_port: 80,
                dst_port: port,
                seq: wire::SeqNumber(1),
            }
            .emit(&mut quote);
            ptb.extend_from_slice(&quote);
            let frame = v6_frame("2001:db8::fe".parse().unwrap(), us, 58, &ptb);
            assert_eq!(
                s.classify(&frame),
                if want == 0 {
                    FrameOwner::Local
                } else {
                    FrameOwner::Queue(want)
                }
            );
        }
        assert_eq!(seen, [true, true]);
        let ns = [135u8, 0, 0, 0, 0, 0, 0, 0];
        assert_eq!(s.classify(&v6_frame(peer, us, 58, &ns)), FrameOwner::All);
        // A fragment stays local (the engine drops it).
        let mut frag = vec![6u8, 0, 0, 8, 0, 0, 0, 1];
        frag.extend_from_slice(&[0u8; 20]);
        assert_eq!(
            s.classify(&v6_frame(peer, us, 44, &frag)),
            FrameOwner::Local
        );
    }

    #[test]
    fn one_queue_owns_everything() {
        let s = FlowSteer::software(0, 1);
        let a = IpAddr::from([198, 18, 0, 2]);
        let b = IpAddr::from([198, 18, 0, 3]);
        assert!(s.owns_local(b, 40_000, a, 80));
        assert_eq!(s.classify(&[0u8; 60]), FrameOwner::Local);
    }

    #[test]
    fn two_queues_split_ports_and_agree() {
        let a = IpAddr::from([198, 18, 0, 2]);
        let b = IpAddr::from([198, 18, 0, 3]);
        let q0 = FlowSteer::software(0, 2);
        let q1 = FlowSteer::software(1, 2);
        let mut mine = [0u32; 2];
        for port in 32_768..33_768u16 {
            let o0 = q0.owns_local(b, port, a, 80);
            let o1 = q1.owns_local(b, port, a, 80);
            assert_ne!(o0, o1, "exactly one owner for port {port}");
            mine[usize::from(o1)] += 1;
        }
        // Roughly even (the hash is linear, but over 1000 ports it spreads).
        assert!(mine[0] > 300 && mine[1] > 300, "{mine:?}");
    }

    #[test]
    fn classify_routes_tcp_and_broadcasts_arp() {
        let s = FlowSteer::software(0, 2);
        let mut arp = [0u8; 42];
        arp[12..14].copy_from_slice(&0x0806u16.to_be_bytes());
        assert_eq!(s.classify(&arp), FrameOwner::All);
        let mut tcp = [0u8; 54];
        tcp[12..14].copy_from_slice(&0x0800u16.to_be_bytes());
        tcp[14] = 0x45;
        tcp[23] = 6;
        tcp[26..30].copy_from_slice(&[198, 18, 0, 2]);
        tcp[30..34].copy_from_slice(&[198, 18, 0, 3]);
        let mut seen = [false; 2];
        for port in 1000..1100u16 {
            tcp[34..36].copy_from_slice(&port.to_be_bytes());
            tcp[36..38].copy_from_slice(&80u16.to_be_bytes());
            match s.classify(&tcp) {
                FrameOwner::Local => seen[0] = true,
                FrameOwner::Queue(1) => seen[1] = true,
                other => panic!("{other:?}"),
            }
        }
        assert_eq!(seen, [true, true]);
        // A fragment stays local (the engine drops it).
        tcp[20] = 0x20;
        assert_eq!(s.classify(&tcp), FrameOwner::Local);
    }
}
