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
//! It owns the hash, the table and the frame classification; it keeps no
//! state and performs no I/O.

use std::net::Ipv4Addr;

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

/// The RSS hash of a received IPv4/TCP frame's tuple.
pub fn rss_hash(key: &[u8], src: Ipv4Addr, dst: Ipv4Addr, sport: u16, dport: u16) -> u32 {
    let mut input = [0u8; 12];
    input[..4].copy_from_slice(&src.octets());
    input[4..8].copy_from_slice(&dst.octets());
    input[8..10].copy_from_slice(&sport.to_be_bytes());
    input[10..].copy_from_slice(&dport.to_be_bytes());
    toeplitz(key, &input)
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
    pub fn owner(&self, remote: Ipv4Addr, local: Ipv4Addr, rport: u16, lport: u16) -> u8 {
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
    pub fn owns_local(&self, local: Ipv4Addr, lport: u16, remote: Ipv4Addr, rport: u16) -> bool {
        self.owner(remote, local, rport, lport) == self.me
    }

    /// Classifies a received Ethernet frame: ARP to all, IPv4/TCP to its
    /// owner, anything else (or anything malformed) to this engine, which
    /// counts and drops it.
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
                let src = Ipv4Addr::new(ip[12], ip[13], ip[14], ip[15]);
                let dst = Ipv4Addr::new(ip[16], ip[17], ip[18], ip[19]);
                let sport = u16::from_be_bytes([tcp[0], tcp[1]]);
                let dport = u16::from_be_bytes([tcp[2], tcp[3]]);
                match self.owner(src, dst, sport, dport) {
                    q if q == self.me => FrameOwner::Local,
                    q => FrameOwner::Queue(q),
                }
            }
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

    #[test]
    fn one_queue_owns_everything() {
        let s = FlowSteer::software(0, 1);
        let a = Ipv4Addr::new(198, 18, 0, 2);
        let b = Ipv4Addr::new(198, 18, 0, 3);
        assert!(s.owns_local(b, 40_000, a, 80));
        assert_eq!(s.classify(&[0u8; 60]), FrameOwner::Local);
    }

    #[test]
    fn two_queues_split_ports_and_agree() {
        let a = Ipv4Addr::new(198, 18, 0, 2);
        let b = Ipv4Addr::new(198, 18, 0, 3);
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
