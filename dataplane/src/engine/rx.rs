//! Frame arrival: Ethernet → ARP or IPv4 → TCP → the connection, a
//! listener, or the stateless RST responder.
//!
//! It owns demultiplexing and the segments that have no connection record:
//! passive opens (with SYN cookies when a backlog is full) and RFC 9293
//! §3.10.7.1 resets. Every parse failure is a counter, never a panic or a
//! log line. Connection logic stays in `tcp`.

use std::net::{IpAddr, Ipv4Addr};
use std::time::Instant;

use super::{CtlFrame, QueueEngine};
use crate::shared::{Disposition, NoSink, RxSink};
use crate::table::{FourTuple, Handle, InsertError};
use crate::tcp::state::State;
use crate::tcp::{input, open};
use crate::wire::{
    self, ArpOperation, ArpPacket, ArpRepr, ControlSegment, EtherType, EthernetAddress,
    EthernetFrame, IpProtocol, Ipv4Packet, Ipv4Repr, SeqNumber, TcpFlags, TcpPacket, TcpRepr,
};

impl QueueEngine {
    /// Takes one received Ethernet frame. Payload for clients is delivered
    /// as owned copies ([`Detail::Data`](crate::shared::Detail::Data)); see
    /// [`handle_rx_into`](Self::handle_rx_into) for the copy-once path.
    pub fn handle_rx(&mut self, now: Instant, frame: &[u8]) {
        self.handle_rx_into(now, frame, &mut NoSink);
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
        if dst != self.cfg.mac && !dst.is_broadcast() {
            self.counters.rx_not_ours += 1;
            return Ok(());
        }
        match eth.ethertype() {
            EtherType::Arp => self.rx_arp(now_ms, eth.payload()),
            EtherType::Ipv4 => self.rx_ipv4(now, now_ms, eth.src_addr(), eth.payload(), sink),
            EtherType::Unknown(_) => {
                self.counters.rx_not_ours += 1;
                Ok(())
            }
        }
    }

    fn is_local(&self, ip: Ipv4Addr) -> bool {
        self.cfg.addrs.iter().any(|a| a.addr() == IpAddr::V4(ip))
    }

    fn is_on_link(&self, ip: Ipv4Addr) -> bool {
        self.cfg.addrs.iter().any(|a| a.contains_v4(ip))
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
        if !self.is_local(target_protocol_addr) {
            self.counters.rx_not_ours += 1;
            return Ok(());
        }
        // RFC 826: the sender's mapping is worth keeping when it asks us.
        if self.is_on_link(source_protocol_addr)
            && self
                .neighbors
                .learn(source_protocol_addr, source_hardware_addr, now_ms)
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
        if !self.is_local(ip.dst_addr) || ip.protocol != IpProtocol::Tcp {
            self.counters.rx_not_ours += 1;
            return Ok(());
        }
        // Gleaning: an on-link sender's MAC is as good as an ARP reply.
        if self.is_on_link(ip.src_addr) && self.neighbors.touch(ip.src_addr, src_mac, now_ms) {
            self.on_neighbor_resolved(now_ms);
        }
        let tcp_bytes = packet.payload();
        let tcp = TcpPacket::new_checked(tcp_bytes)?;
        let seg = TcpRepr::parse(&tcp, ip.src_addr, ip.dst_addr, true)?;
        let tuple = FourTuple {
            local_addr: ip.dst_addr,
            remote_addr: ip.src_addr,
            local_port: seg.dst_port,
            remote_port: seg.src_port,
        };
        match self.table.lookup(&tuple) {
            Some(handle) => self.rx_conn(now, now_ms, handle, tuple, &seg, sink),
            None => self.rx_no_conn(now, now_ms, tuple, &seg, sink),
        }
        Ok(())
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
            seg: ControlSegment {
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
                mss: mss.min(self.cfg.tcp.mss),
            });
            return;
        }
        let now_us = now.saturating_duration_since(self.epoch).as_micros() as u64;
        let iss = SeqNumber(self.isn.isn(&tuple, now_us));
        let tcb = open::passive(self.birth(owner.0, owner.1, now_ms), iss, seg);
        match self.table.insert(tuple, tcb) {
            Ok(handle) => {
                if let Some(l) = self.listeners.get_mut(&tuple.local_port) {
                    l.pending += 1;
                }
                self.sync(handle, now_ms);
            }
            Err(InsertError::Full | InsertError::Exists(_)) => self.counters.syn_dropped += 1,
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
        let tcb = open::from_cookie(self.birth(owner, user_data, now_ms), mss, seg);
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
                        remote: std::net::SocketAddrV4::new(tuple.remote_addr, tuple.remote_port),
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
