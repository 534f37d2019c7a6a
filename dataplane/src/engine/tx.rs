//! Frame departure: control frames first (RSTs, ARP, Neighbor Discovery,
//! cookie SYN-ACKs), then the paced RSTs whose token has accrued, then
//! connections with output, one frame per `poll_transmit` call.
//!
//! It owns frame assembly for both families: next-hop resolution (ARP
//! requests and Neighbor Solicitations, parking connections that wait for
//! one), the Ethernet, IPv4 and IPv6 headers, and the per-core RST
//! templates of each family that make an abort one copy and two
//! incremental checksums. What a connection sends is decided in
//! `tcp::output`.

use std::net::{IpAddr, Ipv6Addr};
use std::time::Instant;

use super::{AnyRstTemplate, CtlFrame, MAX_REPLY_FRAMES, QueueEngine};
use crate::shared::{NoSink, RstClock};
use crate::tcp::output;
use crate::tcp::tcb::{Deadline, TcbFlags};
use crate::wire::{
    self, ArpOperation, ArpPacket, ArpRepr, EtherType, EthernetAddress, EthernetFrame,
    EthernetRepr, IpProtocol, Ipv4Packet, Ipv4Repr, Ipv6Packet, Ipv6Repr, NdiscFlags, NdiscRepr,
    RstTemplate, RstTemplateV6, TcpFlags, TcpOptions, TcpPacket, TcpPseudoHeader, TcpRepr,
};

const ETH: usize = crate::wire::ETHERNET_HEADER_LEN;
const IP4: usize = crate::wire::IPV4_HEADER_LEN;
const IP6: usize = crate::wire::IPV6_HEADER_LEN;
const TTL: u8 = 64;

/// The IP header length of a connection whose local address is `local`.
fn ip_header_len(local: IpAddr) -> usize {
    if local.is_ipv6() { IP6 } else { IP4 }
}

impl QueueEngine {
    /// Writes the next frame to send into `buf` and returns its length, or
    /// `None` when there is nothing to send. `buf` should hold at least
    /// 14 + 20 + 60 + MSS bytes; a smaller one gets smaller segments.
    #[must_use]
    pub fn poll_transmit(&mut self, now: Instant, buf: &mut [u8]) -> Option<usize> {
        let now_ms = self.enter(now);
        // Control frames go first, and a connection that has to wait for
        // ARP queues a request there: so look at them again after each one.
        'poll: loop {
            while let Some(frame) = self.ctl.pop_front() {
                if let Some(len) = self.build_ctl(now_ms, frame, buf) {
                    self.counters.tx_frames += 1;
                    return Some(len);
                }
            }
            // Then the RSTs of our own closes that wait for a pacing token,
            // oldest first, while tokens last. One still waiting for its
            // next hop has spent its token and queues for ARP as any other.
            let now_ns = self.now_ns(now);
            let rate = self.cfg.max_rst_per_s;
            // A close whose RST this is reports its outcome now: the RST is
            // in `buf` (or, its next hop unknown, waits for ARP as any
            // control frame does).
            if let Some(d) = self.pacer.pop(now_ns, now_ms, rate) {
                self.count_paced(d.waited_ms);
                self.post_held(d.completion);
                if let Some(len) = self.build_ctl(now_ms, d.frame, buf) {
                    self.counters.tx_frames += 1;
                    return Some(len);
                }
                continue 'poll;
            }
            while let Some(handle) = self.tx_list.pop_front() {
                let Some(tuple) = self.table.tuple(handle) else {
                    continue;
                };
                if let Some(tcb) = self.table.get_mut(handle) {
                    tcb.flags.remove(TcbFlags::ON_TX_LIST);
                } else {
                    continue;
                }
                let Some(mac) = self.next_hop_mac(now_ms, tuple.local_addr, tuple.remote_addr)
                else {
                    self.counters.tx_no_neighbor += 1;
                    self.neighbors.park(handle);
                    self.arm_while_parked(handle, now_ms);
                    continue 'poll;
                };
                let room = buf
                    .len()
                    .saturating_sub(ETH + ip_header_len(tuple.local_addr) + 60);
                let limit = room.min(self.scratch.len());
                // The payload scratch is lent out so the closure may fill it.
                let mut scratch = std::mem::take(&mut self.scratch);
                let plan = self
                    .in_conn(handle, now_ms, &mut NoSink, |tcb, cx| {
                        let plan = output::next_segment(tcb, cx, &mut scratch[..limit]);
                        if tcb.fin_asked_us != 0 && plan.as_ref().is_some_and(|p| p.flags.fin()) {
                            // The FIN a close request queued leaves now.
                            let now_us = (cx.now_ns / 1000) as u32 | 1;
                            let waited_us = now_us.wrapping_sub(tcb.fin_asked_us);
                            cx.counters
                                .close_fin_wire
                                .record_ns(u64::from(waited_us) * 1000);
                            tcb.fin_asked_us = 0;
                        }
                        plan
                    })
                    .flatten();
                self.scratch = scratch;
                self.sync(handle, now_ms);
                let Some(plan) = plan else { continue };
                let seg = TcpRepr {
                    src_port: tuple.local_port,
                    dst_port: tuple.remote_port,
                    seq: plan.seq,
                    ack: plan.ack,
                    flags: plan.flags,
                    window: plan.window,
                    urgent: 0,
                    options: plan.options,
                    payload: &self.scratch[..plan.payload_len],
                };
                let len = emit_tcp(
                    buf,
                    self.cfg.mac,
                    mac,
                    tuple.local_addr,
                    tuple.remote_addr,
                    &seg,
                )?;
                self.counters.tx_frames += 1;
                return Some(len);
            }
            return None;
        }
    }

    /// A neighbour resolved: connections and control frames that waited
    /// for it go out again.
    pub(super) fn on_neighbor_resolved(&mut self, now_ms: u64) {
        for h in self.neighbors.take_waiting() {
            self.sync(h, now_ms);
        }
        self.ctl.extend(self.ctl_waiting.drain(..));
    }

    /// A connection waiting for its next hop's MAC keeps a retransmission
    /// deadline, so that an unanswered ARP request is repeated when it
    /// fires and a connect that never resolves fails with ETIMEDOUT after
    /// its SYN retries (RFC 1122 §2.3.2.2; docs/close-semantics.md#errors: every
    /// request gets a completion). Without it an unsent SYN armed nothing
    /// and the connect never completed. Only the timer is filed here: the
    /// connection must not go back on the transmit list being drained.
    fn arm_while_parked(&mut self, handle: crate::table::Handle, now_ms: u64) {
        let rto = &self.cfg.tcp.rto;
        let arm_ms = self.arm_from(now_ms);
        let Some(tcb) = self.table.get_mut(handle) else {
            return;
        };
        if tcb.rtx_at.is_set() {
            return;
        }
        tcb.rtx_at = Deadline::after(arm_ms, tcb.rtt.rto_ms(rto));
        if let Some(deadline) = tcb.next_deadline().ms() {
            self.wheel.arm(&mut self.table, handle.slot(), deadline);
        }
    }

    /// The MAC to send to for `remote` (a stale one while a refresh is
    /// asked for), or `None` after asking for it: by ARP for IPv4, by a
    /// Neighbor Solicitation for IPv6. Off-link peers are reached through
    /// the gateway of their family.
    fn next_hop_mac(
        &mut self,
        now_ms: u64,
        local: IpAddr,
        remote: IpAddr,
    ) -> Option<EthernetAddress> {
        let hop = if self.is_on_link(remote) {
            remote
        } else {
            match remote {
                IpAddr::V4(_) => IpAddr::V4(self.cfg.gateway?),
                IpAddr::V6(_) => IpAddr::V6(self.cfg.gateway6?),
            }
        };
        let known = self.neighbors.lookup_any(hop, now_ms);
        if let Some((mac, true)) = known {
            return Some(mac);
        }
        if self.neighbors.should_request(hop, now_ms) {
            match (hop, local) {
                (IpAddr::V4(target_ip), IpAddr::V4(sender_ip)) => {
                    self.counters.arp_requests_sent += 1;
                    self.ctl.push_back(CtlFrame::Arp {
                        op: ArpOperation::Request,
                        target_mac: EthernetAddress::BROADCAST,
                        target_ip,
                        sender_ip,
                    });
                }
                (IpAddr::V6(target), IpAddr::V6(src_ip)) => {
                    self.counters.nd_solicits_sent += 1;
                    self.ctl.push_back(CtlFrame::NdSolicit { target, src_ip });
                }
                // A local address of the other family: no tuple has one.
                _ => {}
            }
        }
        known.map(|(mac, _)| mac)
    }

    fn build_ctl(&mut self, now_ms: u64, frame: CtlFrame, buf: &mut [u8]) -> Option<usize> {
        match frame {
            CtlFrame::Tcp { local, seg, clock } => {
                let Some(mac) = self.next_hop_mac(now_ms, local, seg.remote_ip) else {
                    // Never resolved: wait for ARP (bounded) rather than
                    // lose the RST of one of our closes.
                    if self.ctl_waiting.len() < MAX_REPLY_FRAMES {
                        self.ctl_waiting.push_back(frame);
                    } else {
                        self.counters.tx_no_neighbor += 1;
                    }
                    return None;
                };
                let len = match (self.rst_template(local, mac), seg.remote_ip) {
                    (AnyRstTemplate::V4(t), IpAddr::V4(r)) => t.build(buf, &seg.with_remote_ip(r)),
                    (AnyRstTemplate::V6(t), IpAddr::V6(r)) => t.build(buf, &seg.with_remote_ip(r)),
                    // A segment whose peer is of the other family than its
                    // local address: no connection has one.
                    _ => return None,
                }
                .ok()?;
                self.time_departure(clock);
                Some(len)
            }
            CtlFrame::NdAdvert {
                target,
                dst_ip,
                dst_mac,
                solicited,
            } => {
                let flags = if solicited {
                    NdiscFlags::SOLICITED | NdiscFlags::OVERRIDE
                } else {
                    NdiscFlags::OVERRIDE
                };
                NdiscRepr::NeighborAdvert {
                    flags,
                    target_addr: target,
                    lladdr: Some(self.cfg.mac),
                }
                .emit_frame(buf, self.cfg.mac, dst_mac, target, dst_ip)
                .ok()
            }
            CtlFrame::NdSolicit { target, src_ip } => {
                let group = wire::solicited_node(target);
                NdiscRepr::NeighborSolicit {
                    target_addr: target,
                    lladdr: Some(self.cfg.mac),
                }
                .emit_frame(
                    buf,
                    self.cfg.mac,
                    wire::ipv6_multicast_mac(group),
                    src_ip,
                    group,
                )
                .ok()
            }
            CtlFrame::Arp {
                op,
                target_mac,
                target_ip,
                sender_ip,
            } => {
                let repr = ArpRepr::EthernetIpv4 {
                    operation: op,
                    source_hardware_addr: self.cfg.mac,
                    source_protocol_addr: sender_ip,
                    target_hardware_addr: if op == ArpOperation::Request {
                        EthernetAddress([0; 6])
                    } else {
                        target_mac
                    },
                    target_protocol_addr: target_ip,
                };
                let len = ETH + repr.buffer_len();
                if buf.len() < len {
                    return None;
                }
                EthernetRepr {
                    src_addr: self.cfg.mac,
                    dst_addr: target_mac,
                    ethertype: EtherType::Arp,
                }
                .emit(&mut EthernetFrame::new_unchecked(&mut buf[..len]));
                repr.emit(&mut ArpPacket::new_unchecked(&mut buf[ETH..len]));
                Some(len)
            }
            CtlFrame::CookieSynAck {
                tuple,
                seq,
                ack,
                mss,
            } => {
                let mac = self.next_hop_mac(now_ms, tuple.local_addr, tuple.remote_addr)?;
                let seg = TcpRepr {
                    src_port: tuple.local_port,
                    dst_port: tuple.remote_port,
                    seq,
                    ack,
                    flags: TcpFlags::SYN | TcpFlags::ACK,
                    window: (self.cfg.tcp.recv_buffer.min(0xffff)) as u16,
                    urgent: 0,
                    options: TcpOptions {
                        mss: Some(mss),
                        ..TcpOptions::default()
                    },
                    payload: &[],
                };
                emit_tcp(
                    buf,
                    self.cfg.mac,
                    mac,
                    tuple.local_addr,
                    tuple.remote_addr,
                    &seg,
                )
            }
        }
    }

    /// An RST of our own is leaving: how long after its close request, or
    /// after its deadline, into the histograms.
    #[inline]
    fn time_departure(&mut self, clock: RstClock) {
        if let Some(t) = clock.request_ns() {
            let waited = self.now_ns.saturating_sub(t);
            self.counters.close_rst_wire.record_ns(waited);
        } else if let Some(t) = clock.deadline_ns() {
            let late = self.now_ns.saturating_sub(t);
            self.counters.linger_rst_late.record_ns(late);
        }
    }

    /// The RST template for (local address, next hop), built once, of the
    /// local address's family.
    fn rst_template(&mut self, local: IpAddr, mac: EthernetAddress) -> &AnyRstTemplate {
        let pos = match self
            .rst_templates
            .iter()
            .position(|(ip, m, _)| *ip == local && *m == mac)
        {
            Some(pos) => pos,
            None => {
                if self.rst_templates.len() >= 64 {
                    self.rst_templates.clear();
                }
                let template = match local {
                    IpAddr::V4(ip) => AnyRstTemplate::V4(RstTemplate::new(self.cfg.mac, mac, ip)),
                    IpAddr::V6(ip) => AnyRstTemplate::V6(RstTemplateV6::new(self.cfg.mac, mac, ip)),
                };
                self.rst_templates.push((local, mac, template));
                self.rst_templates.len() - 1
            }
        };
        &self.rst_templates[pos].2
    }
}

/// Writes Ethernet + IPv4 or IPv6 (no extension headers) + TCP for `seg`
/// into `buf`. `None` when `buf` is too short or the two addresses are of
/// different families.
fn emit_tcp(
    buf: &mut [u8],
    src_mac: EthernetAddress,
    dst_mac: EthernetAddress,
    src: IpAddr,
    dst: IpAddr,
    seg: &TcpRepr<'_>,
) -> Option<usize> {
    let tcp_len = seg.buffer_len();
    let ip_len = ip_header_len(src);
    let len = ETH + ip_len + tcp_len;
    if buf.len() < len {
        return None;
    }
    let frame = &mut buf[..len];
    let (ethertype, pseudo) = match (src, dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            Ipv4Repr {
                src_addr: s,
                dst_addr: d,
                protocol: IpProtocol::Tcp,
                payload_len: tcp_len,
                ttl: TTL,
            }
            .emit(&mut Ipv4Packet::new_unchecked(&mut frame[ETH..]));
            (EtherType::Ipv4, TcpPseudoHeader::ipv4(s, d))
        }
        (IpAddr::V6(s), IpAddr::V6(d)) => {
            emit_ipv6(&mut frame[ETH..], s, d, tcp_len);
            (EtherType::IPV6, TcpPseudoHeader::ipv6(s, d))
        }
        _ => return None,
    };
    EthernetRepr {
        src_addr: src_mac,
        dst_addr: dst_mac,
        ethertype,
    }
    .emit(&mut EthernetFrame::new_unchecked(&mut frame[..]));
    seg.emit_pseudo(
        &mut TcpPacket::new_unchecked(&mut frame[ETH + ip_len..]),
        pseudo,
    );
    Some(len)
}

/// Writes an IPv6 header for `tcp_len` bytes of TCP into `buf`.
fn emit_ipv6(buf: &mut [u8], src: Ipv6Addr, dst: Ipv6Addr, tcp_len: usize) {
    Ipv6Repr {
        src_addr: src,
        dst_addr: dst,
        next_header: IpProtocol::Tcp,
        payload_len: tcp_len,
        hop_limit: TTL,
        traffic_class: 0,
        flow_label: 0,
    }
    .emit(&mut Ipv6Packet::new_unchecked(buf));
}
