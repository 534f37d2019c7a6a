//! Frame arrival: Ethernet → ARP, IPv4 or IPv6 (its extension headers
//! walked) → TCP → the connection, a listener, or the stateless RST
//! responder; or ICMPv6 → Neighbor Discovery or Packet Too Big.
//!
//! It owns demultiplexing and the segments that have no connection record:
//! passive opens (with SYN cookies when a backlog is full) and RFC 9293
//! §3.10.7.1 resets, for both families through one path; answering
//! Neighbor Solicitations for our addresses; and validating a Packet Too
//! Big against the connection it quotes (RFC 5927 §4.1) before lowering
//! its MSS. Every parse failure is a counter (fragments under
//! [`wire::Error::Fragmented`]), never a panic or a log line. Connection
//! logic stays in `tcp`.

use std::net::{IpAddr, Ipv6Addr};
use std::time::Instant;

use super::{CtlFrame, MIN_MSS_V6, QueueEngine};
use crate::shared::{CtlSegment, Disposition, NoSink, RxSink};
use crate::table::{FourTuple, Handle, InsertError};
use crate::tcp::state::State;
use crate::tcp::tcb::TcbFlags;
use crate::tcp::{input, open};
use crate::wire::{
    self, ArpOperation, ArpPacket, ArpRepr, EtherType, EthernetAddress, EthernetFrame,
    Icmpv6Message, Icmpv6Packet, IpProtocol, Ipv4Packet, Ipv4Repr, Ipv6Packet, Ipv6Repr, NdiscRepr,
    PacketTooBigRepr, SeqNumber, TcpFlags, TcpPacket, TcpPseudoHeader, TcpRepr,
};

/// The all-nodes multicast group (RFC 4291 §2.7.1), where an answer to
/// duplicate address detection goes.
const ALL_NODES: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1);

/// Whether `ip` is an IPv6 unicast link-local address (fe80::/10): always
/// on-link.
fn is_link_local(ip: IpAddr) -> bool {
    matches!(ip, IpAddr::V6(a) if a.segments()[0] & 0xffc0 == 0xfe80)
}

impl QueueEngine {
    /// Takes one received Ethernet frame. Payload for clients is delivered
    /// as owned copies ([`Detail::Data`](crate::shared::Detail::Data)); see
    /// [`handle_rx_into`](Self::handle_rx_into) for the copy-once path.
    pub fn handle_rx(&mut self, now: Instant, frame: &[u8]) {
        self.handle_rx_into(now, frame, &mut NoSink);
    }

    /// Hints the CPU to fetch the 4-tuple index bucket a TCP frame will be
    /// looked up in. Call it for every frame of a received burst before
    /// handling them ([`Port::rx_burst_ahead`](crate::port::Port::rx_burst_ahead)),
    /// so that the burst's index misses overlap instead of following each
    /// other. A hint only: it reads a few header bytes at fixed offsets
    /// (untagged Ethernet, IPv4 with any header length or IPv6 without
    /// extension headers), checks nothing else and changes nothing; any
    /// other frame is ignored.
    #[inline]
    pub fn prefetch_rx(&self, frame: &[u8]) {
        if let Some(tuple) = tcp_tuple_hint(frame) {
            let _ = self.table.prefetch(&tuple);
        }
    }

    /// Takes one received Ethernet frame, handing in-order payload to
    /// `sink`, which writes it straight into the client's receive memory
    /// (what it declines is delivered as an owned copy, in order).
    pub fn handle_rx_into(&mut self, now: Instant, frame: &[u8], sink: &mut dyn RxSink) {
        self.counters.rx_frames += 1;
        let now_ms = self.enter(now);
        if let Err(e) = self.rx_frame(now, now_ms, frame, sink) {
            self.counters.rx_parse_errors[e.index()] += 1;
        }
    }

    fn rx_frame(
        &mut self,
        now: Instant,
        now_ms: u64,
        frame: &[u8],
        sink: &mut dyn RxSink,
    ) -> wire::Result<()> {
        let eth = EthernetFrame::new_checked(frame)?;
        let dst = eth.dst_addr();
        // Unicast to us, broadcast (ARP), or an IPv6 multicast group
        // (33:33:…, RFC 2464 §7: Neighbor Solicitations to a
        // solicited-node group); which groups are ours is checked by IP.
        let ipv6_multicast = dst.0[0] == 0x33 && dst.0[1] == 0x33;
        if dst != self.cfg.mac && !dst.is_broadcast() && !ipv6_multicast {
            self.counters.rx_not_ours += 1;
            return Ok(());
        }
        match eth.ethertype() {
            EtherType::Arp => self.rx_arp(now_ms, eth.payload()),
            EtherType::Ipv4 => self.rx_ipv4(now, now_ms, eth.src_addr(), eth.payload(), sink),
            EtherType::IPV6 => self.rx_ipv6(now, now_ms, eth.src_addr(), eth.payload(), sink),
            EtherType::Unknown(_) => {
                self.counters.rx_not_ours += 1;
                Ok(())
            }
        }
    }

    /// Whether `ip` is one of our addresses (the engine's table addresses).
    pub(super) fn is_local(&self, ip: IpAddr) -> bool {
        self.local_addrs().any(|a| a == ip)
    }

    /// Our addresses, as the table knows them (at most
    /// [`super::config::MAX_ADDRS`]).
    pub(super) fn local_addrs(&self) -> impl Iterator<Item = IpAddr> + '_ {
        self.table.local_addrs().iter().skip(1).copied()
    }

    /// Whether `ip` is reached directly: inside one of our prefixes, or an
    /// IPv6 link-local address.
    pub(super) fn is_on_link(&self, ip: IpAddr) -> bool {
        is_link_local(ip) || self.cfg.addrs.iter().any(|a| a.contains(ip))
    }

    fn rx_arp(&mut self, now_ms: u64, payload: &[u8]) -> wire::Result<()> {
        let packet = ArpPacket::new_checked(payload)?;
        let ArpRepr::EthernetIpv4 {
            operation,
            source_hardware_addr,
            source_protocol_addr,
            target_protocol_addr,
            ..
        } = ArpRepr::parse(&packet)?;
        if !self.is_local(target_protocol_addr.into()) {
            self.counters.rx_not_ours += 1;
            return Ok(());
        }
        // RFC 826: the sender's mapping is worth keeping when it asks us.
        if self.is_on_link(source_protocol_addr.into())
            && self
                .neighbors
                .learn(source_protocol_addr.into(), source_hardware_addr, now_ms)
        {
            self.on_neighbor_resolved(now_ms);
        }
        if operation == ArpOperation::Request {
            self.counters.arp_replies_sent += 1;
            self.push_reply(CtlFrame::Arp {
                op: ArpOperation::Reply,
                target_mac: source_hardware_addr,
                target_ip: source_protocol_addr,
                sender_ip: target_protocol_addr,
            });
        }
        Ok(())
    }

    fn rx_ipv4(
        &mut self,
        now: Instant,
        now_ms: u64,
        src_mac: EthernetAddress,
        payload: &[u8],
        sink: &mut dyn RxSink,
    ) -> wire::Result<()> {
        let packet = Ipv4Packet::new_checked(payload)?;
        let ip = Ipv4Repr::parse(&packet)?;
        let (src, dst) = (IpAddr::V4(ip.src_addr), IpAddr::V4(ip.dst_addr));
        if !self.is_local(dst) || ip.protocol != IpProtocol::Tcp {
            self.counters.rx_not_ours += 1;
            return Ok(());
        }
        self.glean(now_ms, src, src_mac);
        let tcp = TcpPacket::new_checked(packet.payload())?;
        let seg = TcpRepr::parse(&tcp, ip.src_addr, ip.dst_addr, true)?;
        self.rx_tcp(now, now_ms, src, dst, &seg, sink);
        Ok(())
    }

    /// Gleaning: an on-link sender's MAC is as good as an ARP reply or a
    /// Neighbor Advertisement.
    fn glean(&mut self, now_ms: u64, src: IpAddr, src_mac: EthernetAddress) {
        if self.is_on_link(src) && self.neighbors.touch(src, src_mac, now_ms) {
            self.on_neighbor_resolved(now_ms);
        }
    }

    /// An IPv6 packet: its extension headers walked (bounded; a fragment
    /// is an [`wire::Error::Fragmented`] drop) to TCP or ICMPv6.
    fn rx_ipv6(
        &mut self,
        now: Instant,
        now_ms: u64,
        src_mac: EthernetAddress,
        payload: &[u8],
        sink: &mut dyn RxSink,
    ) -> wire::Result<()> {
        let packet = Ipv6Packet::new_checked(payload)?;
        let ip = Ipv6Repr::parse(&packet)?;
        let body = packet.payload();
        let chain = wire::ipv6_walk(ip.next_header, body)?;
        let upper = chain.upper(body);
        let (src, dst) = (IpAddr::V6(ip.src_addr), IpAddr::V6(ip.dst_addr));
        match chain.protocol() {
            Some(IpProtocol::Tcp) if self.is_local(dst) => {
                let tcp = TcpPacket::new_checked(upper)?;
                let pseudo = TcpPseudoHeader::ipv6(ip.src_addr, ip.dst_addr);
                let seg = TcpRepr::parse_pseudo(&tcp, pseudo, true)?;
                if ip.src_addr.is_unspecified() {
                    return Err(wire::Error::Malformed);
                }
                self.glean(now_ms, src, src_mac);
                self.rx_tcp(now, now_ms, src, dst, &seg, sink);
                Ok(())
            }
            Some(IpProtocol::ICMPV6) => self.rx_icmpv6(now_ms, src_mac, &ip, upper),
            _ => {
                self.counters.rx_not_ours += 1;
                Ok(())
            }
        }
    }

    /// Whether an IPv6 destination is ours for Neighbor Discovery: one of
    /// our addresses, the solicited-node group of one, or all nodes.
    fn nd_dst_is_ours(&self, dst: Ipv6Addr) -> bool {
        dst == ALL_NODES
            || self.local_addrs().any(|a| match a {
                IpAddr::V6(a) => a == dst || wire::solicited_node(a) == dst,
                IpAddr::V4(_) => false,
            })
    }

    fn rx_icmpv6(
        &mut self,
        now_ms: u64,
        src_mac: EthernetAddress,
        ip: &Ipv6Repr,
        message: &[u8],
    ) -> wire::Result<()> {
        let packet = Icmpv6Packet::new_checked(message)?;
        match packet.msg_type() {
            Icmpv6Message::NeighborSolicit | Icmpv6Message::NeighborAdvert
                if self.nd_dst_is_ours(ip.dst_addr) =>
            {
                match NdiscRepr::parse(ip, &packet, true)? {
                    NdiscRepr::NeighborSolicit {
                        target_addr,
                        lladdr,
                    } => self.rx_solicit(now_ms, src_mac, ip.src_addr, target_addr, lladdr),
                    NdiscRepr::NeighborAdvert {
                        target_addr,
                        lladdr,
                        ..
                    } => {
                        // RFC 4861 §7.2.5: the target's link-layer address
                        // (on Ethernet the frame's source when the option
                        // is left out of a solicited advert).
                        let mac = lladdr.unwrap_or(src_mac);
                        if self.neighbors.learn(target_addr.into(), mac, now_ms) {
                            self.on_neighbor_resolved(now_ms);
                        }
                    }
                }
                Ok(())
            }
            Icmpv6Message::PacketTooBig if self.is_local(ip.dst_addr.into()) => {
                let ptb = PacketTooBigRepr::parse(ip, &packet, true)?;
                self.rx_packet_too_big(now_ms, &ptb);
                Ok(())
            }
            _ => {
                self.counters.rx_not_ours += 1;
                Ok(())
            }
        }
    }

    /// A Neighbor Solicitation: learn the sender (RFC 4861 §7.2.3, when it
    /// gave its link-layer address) and answer for our own addresses.
    fn rx_solicit(
        &mut self,
        now_ms: u64,
        src_mac: EthernetAddress,
        src: Ipv6Addr,
        target: Ipv6Addr,
        lladdr: Option<EthernetAddress>,
    ) {
        if !self.is_local(target.into()) {
            self.counters.rx_not_ours += 1;
            return;
        }
        let dad = src.is_unspecified();
        if let Some(mac) = lladdr
            && !dad
            && self.neighbors.learn(src.into(), mac, now_ms)
        {
            self.on_neighbor_resolved(now_ms);
        }
        self.counters.nd_adverts_sent += 1;
        self.push_reply(if dad {
            CtlFrame::NdAdvert {
                target,
                dst_ip: ALL_NODES,
                dst_mac: wire::ipv6_multicast_mac(ALL_NODES),
                solicited: false,
            }
        } else {
            CtlFrame::NdAdvert {
                target,
                dst_ip: src,
                dst_mac: lladdr.unwrap_or(src_mac),
                solicited: true,
            }
        });
    }

    /// A Packet Too Big about one of our segments (RFC 8201, RFC 5927
    /// §4.1): believed only when it quotes a connection of ours and a
    /// sequence number we sent and is not yet acknowledged
    /// (SND.UNA =< SEG.SEQ < SND.MAX); then the connection's MSS is lowered
    /// to fit the reported MTU (never below [`MIN_MSS_V6`]) and the
    /// segment that did not fit is sent again at the new size.
    fn rx_packet_too_big(&mut self, now_ms: u64, ptb: &PacketTooBigRepr) {
        let q = &ptb.invoking;
        let tuple = FourTuple {
            local_addr: q.src_addr.into(),
            remote_addr: q.dst_addr.into(),
            local_port: q.src_port,
            remote_port: q.dst_port,
        };
        let Some(handle) = self.table.lookup(&tuple) else {
            self.counters.ptb_ignored += 1;
            return;
        };
        let Some(tcb) = self.table.get_mut(handle) else {
            self.counters.ptb_ignored += 1;
            return;
        };
        let outstanding = tcb.snd_max.distance_from(tcb.snd_una);
        let fits = ptb
            .path_mtu()
            .saturating_sub(60)
            .clamp(u32::from(MIN_MSS_V6), u32::from(u16::MAX)) as u16;
        if !q.seq.is_in_window(tcb.snd_una, outstanding) || fits >= tcb.mss {
            self.counters.ptb_ignored += 1;
            return;
        }
        tcb.mss = fits;
        tcb.flags.insert(TcbFlags::RETRANSMIT_ONE);
        self.counters.ptb_mss_lowered += 1;
        self.sync(handle, now_ms);
    }

    /// A TCP segment for one of our addresses, of either family.
    fn rx_tcp(
        &mut self,
        now: Instant,
        now_ms: u64,
        src: IpAddr,
        dst: IpAddr,
        seg: &TcpRepr<'_>,
        sink: &mut dyn RxSink,
    ) {
        let tuple = FourTuple {
            local_addr: dst,
            remote_addr: src,
            local_port: seg.dst_port,
            remote_port: seg.src_port,
        };
        match self.table.lookup(&tuple) {
            Some(handle) => self.rx_conn(now, now_ms, handle, tuple, seg, sink),
            None => self.rx_no_conn(now, now_ms, tuple, seg, sink),
        }
    }

    fn rx_conn(
        &mut self,
        now: Instant,
        now_ms: u64,
        handle: Handle,
        tuple: FourTuple,
        seg: &TcpRepr<'_>,
        sink: &mut dyn RxSink,
    ) {
        let before = self.table.get(handle).map(|t| t.state);
        let d = self
            .in_conn(handle, now_ms, sink, |tcb, cx| {
                input::on_segment(tcb, cx, seg)
            })
            .unwrap_or(Disposition::Keep);
        let after = self.table.get(handle).map(|t| t.state);
        if before == Some(State::SynReceived)
            && after != Some(State::SynReceived)
            && let Some(l) = self.listeners.get_mut(&tuple.local_port)
        {
            l.pending = l.pending.saturating_sub(1);
        }
        self.apply(handle, d, now_ms);
        if d == Disposition::Reopen {
            self.rx_no_conn(now, now_ms, tuple, seg, sink);
        }
    }

    /// A segment that matches no connection: a listener's, or the
    /// responder's (RFC 9293 §3.10.7.1, always on, never answering an RST,
    /// within the core's bound on answers to peers).
    fn rx_no_conn(
        &mut self,
        now: Instant,
        now_ms: u64,
        tuple: FourTuple,
        seg: &TcpRepr<'_>,
        sink: &mut dyn RxSink,
    ) {
        let f = seg.flags;
        if f.rst() {
            return;
        }
        if let Some(listener) = self.listeners.get(&tuple.local_port).copied() {
            if f.syn() && !f.ack() {
                self.passive_open(now, now_ms, listener, tuple, seg);
                return;
            }
            if f.ack() && !f.syn() && self.cookie_open(now_ms, listener, tuple, seg, sink) {
                return;
            }
        }
        if !self.replies.admit(now_ms) {
            self.counters.rst_reply_limited += 1;
            return;
        }
        self.counters.rst_responder += 1;
        let (seq, ack, flags) = if f.ack() {
            (seg.ack, SeqNumber(0), TcpFlags::RST)
        } else {
            (
                SeqNumber(0),
                seg.seq.wrapping_add(seg.segment_len()),
                TcpFlags::RST | TcpFlags::ACK,
            )
        };
        self.push_reply(CtlFrame::Tcp {
            local: tuple.local_addr,
            clock: crate::shared::RstClock::UNTIMED,
            seg: CtlSegment {
                remote_ip: tuple.remote_addr,
                local_port: tuple.local_port,
                remote_port: tuple.remote_port,
                seq,
                ack,
                flags,
                window: 0,
            },
        });
    }

    /// LISTEN + SYN (RFC 9293 §3.10.7.2): a SYN-RECEIVED record, or a SYN
    /// cookie when the backlog is full.
    fn passive_open(
        &mut self,
        now: Instant,
        now_ms: u64,
        listener: super::Listener,
        tuple: FourTuple,
        seg: &TcpRepr<'_>,
    ) {
        let Some(owner) = self
            .table
            .get(listener.handle)
            .map(|l| (l.owner, l.user_data))
        else {
            return;
        };
        if listener.pending >= listener.backlog {
            let now_s = now_ms / 1000;
            let (cookie, mss) =
                self.isn
                    .cookie(&tuple, seg.seq.0, seg.options.mss.unwrap_or(536), now_s);
            self.counters.syn_cookies_sent += 1;
            self.push_reply(CtlFrame::CookieSynAck {
                tuple,
                seq: SeqNumber(cookie),
                ack: seg.seq.wrapping_add(1),
                mss: mss.min(self.tcp_cfg(tuple.is_ipv6()).mss),
            });
            return;
        }
        let now_us = now.saturating_duration_since(self.epoch).as_micros() as u64;
        let iss = SeqNumber(self.isn.isn(&tuple, now_us));
        let birth = self.birth(owner.0, owner.1, now_ms, tuple.is_ipv6());
        let tcb = open::passive(birth, iss, seg);
        match self.table.insert(tuple, tcb) {
            Ok(handle) => {
                if let Some(l) = self.listeners.get_mut(&tuple.local_port) {
                    l.pending += 1;
                }
                self.sync(handle, now_ms);
            }
            Err(InsertError::Full | InsertError::Exists(_) | InsertError::Address) => {
                self.counters.syn_dropped += 1
            }
        }
    }

    /// The ACK completing a cookie handshake: an ESTABLISHED record straight
    /// away (no options beyond the MSS survive a cookie).
    fn cookie_open(
        &mut self,
        now_ms: u64,
        listener: super::Listener,
        tuple: FourTuple,
        seg: &TcpRepr<'_>,
        sink: &mut dyn RxSink,
    ) -> bool {
        let now_s = now_ms / 1000;
        let peer_isn = seg.seq.wrapping_sub(1);
        let ours = seg.ack.wrapping_sub(1);
        let Some(mss) = self.isn.check_cookie(&tuple, peer_isn.0, ours.0, now_s) else {
            return false;
        };
        let Some((owner, user_data)) = self
            .table
            .get(listener.handle)
            .map(|l| (l.owner, l.user_data))
        else {
            return false;
        };
        let birth = self.birth(owner, user_data, now_ms, tuple.is_ipv6());
        let tcb = open::from_cookie(birth, mss, seg);
        match self.table.insert(tuple, tcb) {
            Ok(handle) => {
                self.counters.syn_cookies_accepted += 1;
                self.counters.accepted += 1;
                self.completions.push_back(super::Completion {
                    client: owner,
                    user_data,
                    handle,
                    result: lingerd_abi::Errno::Ok,
                    detail: super::api::Detail::Accepted {
                        listener: listener.handle,
                        remote: std::net::SocketAddr::new(tuple.remote_addr, tuple.remote_port),
                    },
                    is_event: true,
                });
                // Any data on the ACK is processed as on an established connection.
                if !seg.payload.is_empty() || seg.flags.fin() {
                    let d = self
                        .in_conn(handle, now_ms, sink, |tcb, cx| {
                            input::on_segment(tcb, cx, seg)
                        })
                        .unwrap_or(Disposition::Keep);
                    self.apply(handle, d, now_ms);
                } else {
                    self.sync(handle, now_ms);
                }
                true
            }
            Err(_) => {
                self.counters.syn_dropped += 1;
                true
            }
        }
    }
}

/// The 4-tuple a received TCP frame names, read at fixed offsets for
/// [`QueueEngine::prefetch_rx`]: `None` for anything but untagged
/// Ethernet carrying IPv4 (any header length) or IPv6 (no extension
/// header) and TCP, or a frame too short to hold the ports. Nothing is
/// validated: the frame's real parse comes after.
#[inline]
fn tcp_tuple_hint(frame: &[u8]) -> Option<FourTuple> {
    const ETH: usize = 14;
    let ethertype = u16::from_be_bytes(frame.get(12..14)?.try_into().ok()?);
    let (remote, local, tcp) = match ethertype {
        0x0800 => {
            let ip = frame.get(ETH..ETH + 20)?;
            let ihl = usize::from(ip[0] & 0x0f) * 4;
            if ip[0] >> 4 != 4 || ip[9] != 6 || ihl < 20 {
                return None;
            }
            let src: [u8; 4] = ip[12..16].try_into().ok()?;
            let dst: [u8; 4] = ip[16..20].try_into().ok()?;
            (IpAddr::from(src), IpAddr::from(dst), ETH + ihl)
        }
        0x86dd => {
            let ip = frame.get(ETH..ETH + 40)?;
            if ip[0] >> 4 != 6 || ip[6] != 6 {
                return None;
            }
            let src: [u8; 16] = ip[8..24].try_into().ok()?;
            let dst: [u8; 16] = ip[24..40].try_into().ok()?;
            (IpAddr::from(src), IpAddr::from(dst), ETH + 40)
        }
        _ => return None,
    };
    let ports = frame.get(tcp..tcp.checked_add(4)?)?;
    Some(FourTuple {
        local_addr: local,
        remote_addr: remote,
        local_port: u16::from_be_bytes([ports[2], ports[3]]),
        remote_port: u16::from_be_bytes([ports[0], ports[1]]),
    })
}

#[cfg(test)]
mod tests {
    use std::net::{Ipv4Addr, Ipv6Addr};

    use etherparse::PacketBuilder;

    use super::*;

    fn v4_frame(options: &[u8]) -> Vec<u8> {
        let mut ip = etherparse::Ipv4Header::new(
            20,
            64,
            etherparse::IpNumber::TCP,
            [198, 18, 0, 2],
            [198, 18, 0, 1],
        )
        .expect("an IPv4 header");
        ip.options = options.try_into().expect("IPv4 options");
        let builder = PacketBuilder::ethernet2([2; 6], [3; 6])
            .ip(etherparse::IpHeaders::Ipv4(ip, Default::default()))
            .tcp(40_000, 8080, 1, 1000);
        let mut out = Vec::new();
        builder.write(&mut out, &[]).expect("a frame");
        out
    }

    #[test]
    fn the_hint_reads_both_families_tuples_and_declines_the_rest() {
        let want = FourTuple {
            local_addr: Ipv4Addr::new(198, 18, 0, 1).into(),
            remote_addr: Ipv4Addr::new(198, 18, 0, 2).into(),
            local_port: 8080,
            remote_port: 40_000,
        };
        assert_eq!(tcp_tuple_hint(&v4_frame(&[])), Some(want));
        // A longer IPv4 header moves the ports.
        assert_eq!(tcp_tuple_hint(&v4_frame(&[1, 1, 1, 1])), Some(want));

        let (a, b): (Ipv6Addr, Ipv6Addr) = (
            "2001:db8::2".parse().unwrap(),
            "2001:db8::1".parse().unwrap(),
        );
        let mut v6 = Vec::new();
        PacketBuilder::ethernet2([2; 6], [3; 6])
            .ipv6(a.octets(), b.octets(), 64)
            .tcp(40_000, 8080, 1, 1000)
            .write(&mut v6, &[])
            .expect("a frame");
        assert_eq!(
            tcp_tuple_hint(&v6),
            Some(FourTuple {
                local_addr: b.into(),
                remote_addr: a.into(),
                local_port: 8080,
                remote_port: 40_000,
            })
        );

        let mut udp = Vec::new();
        PacketBuilder::ethernet2([2; 6], [3; 6])
            .ipv4([198, 18, 0, 2], [198, 18, 0, 1], 64)
            .udp(40_000, 8080)
            .write(&mut udp, &[])
            .expect("a frame");
        assert_eq!(tcp_tuple_hint(&udp), None, "not TCP");
        let v4 = v4_frame(&[]);
        assert_eq!(tcp_tuple_hint(&v4[..14 + 20 + 3]), None, "ports cut short");
        assert_eq!(tcp_tuple_hint(&v4[..13]), None, "no ethertype");
        let mut bad_ihl = v4.clone();
        bad_ihl[14] = 0x43;
        assert_eq!(tcp_tuple_hint(&bad_ihl), None, "header length below 20");
        let mut far_ihl = v4;
        far_ihl[14] = 0x4f;
        assert_eq!(tcp_tuple_hint(&far_ihl), None, "ports past the frame's end");
    }
}
