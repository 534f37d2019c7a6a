//! Frame departure: control frames first (RSTs, ARP, cookie SYN-ACKs), then
//! connections with output, one frame per `poll_transmit` call.
//!
//! It owns frame assembly: next-hop resolution (ARP requests, parking
//! connections that wait for one), the Ethernet and IPv4 headers, and the
//! per-core RST templates that make an abort one copy and two incremental
//! checksums. What a connection sends is decided in `tcp::output`.

use std::net::Ipv4Addr;
use std::time::Instant;

use super::{CtlFrame, QueueEngine};
use crate::tcp::cx::Cx;
use crate::tcp::output;
use crate::tcp::tcb::{NEVER, TcbFlags};
use crate::wire::{
    ArpOperation, ArpPacket, ArpRepr, EtherType, EthernetAddress, EthernetFrame, EthernetRepr,
    IpProtocol, Ipv4Packet, Ipv4Repr, RST_FRAME_LEN, RstTemplate, TcpFlags, TcpOptions, TcpPacket,
    TcpRepr,
};

const ETH: usize = crate::wire::ETHERNET_HEADER_LEN;
const IP: usize = crate::wire::IPV4_HEADER_LEN;
const TTL: u8 = 64;

impl QueueEngine {
    /// Writes the next frame to send into `buf` and returns its length, or
    /// `None` when there is nothing to send. `buf` should hold at least
    /// 14 + 20 + 60 + MSS bytes; a smaller one gets smaller segments.
    #[must_use]
    pub fn poll_transmit(&mut self, now: Instant, buf: &mut [u8]) -> Option<usize> {
        let now_ms = self.now_ms(now);
        // Control frames go first, and a connection that has to wait for
        // ARP queues a request there: so look at them again after each one.
        'poll: loop {
            while let Some(frame) = self.ctl.pop_front() {
                if let Some(len) = self.build_ctl(now_ms, frame, buf) {
                    self.counters.tx_frames += 1;
                    return Some(len);
                }
            }
            while let Some(handle) = self.tx_list.pop_front() {
                let Some(tuple) = self.table.tuple(handle) else {
                    continue;
                };
                if let Some(tcb) = self.table.get_mut(handle) {
                    tcb.flags.clear(TcbFlags::ON_TX_LIST);
                } else {
                    continue;
                }
                let Some(mac) = self.next_hop_mac(now_ms, tuple.local_addr, tuple.remote_addr)
                else {
                    self.counters.tx_no_neighbor += 1;
                    self.neighbors.park(handle);
                    self.arm_parked(handle, now_ms);
                    continue 'poll;
                };
                let room = buf.len().saturating_sub(ETH + IP + 60);
                let listener = self.listeners.get(&tuple.local_port).map(|l| l.handle);
                let tcb = self.table.get_mut(handle)?;
                let mut cx = Cx {
                    now_ms,
                    handle,
                    tuple,
                    listener,
                    cfg: &self.cfg.tcp,
                    counters: &mut self.counters,
                    completions: &mut self.completions,
                    pool: &mut self.pool,
                };
                let limit = room.min(self.scratch.len());
                let plan = output::next_segment(tcb, &mut cx, &mut self.scratch[..limit]);
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

    /// Gives a connection parked for ARP a retransmission deadline, as if
    /// the segment it could not send had been lost on the wire (what Linux
    /// does when its neighbour queue drops a frame): if the neighbour never
    /// answers, the timer retries, asking again, and the connection's own
    /// bounds (SYN retries, linger and orphan deadlines) end the wait.
    /// Without it nothing wakes a parked connection but an ARP answer, and a
    /// connect or a lingering close would wait for ever.
    fn arm_parked(&mut self, handle: crate::table::Handle, now_ms: u64) {
        use crate::timer::TimerStore;
        let Some(tcb) = self.table.get_mut(handle) else {
            return;
        };
        if tcb.rtx_at == NEVER {
            let rto = tcb.rtt.rto_ms(&self.cfg.tcp.rto);
            tcb.rtx_at = now_ms.saturating_add(u64::from(rto));
        }
        let deadline = tcb.next_deadline();
        let slot = handle.slot();
        if self.table.timer_link(slot).deadline() != Some(deadline) {
            self.wheel.arm(&mut self.table, slot, deadline);
        }
    }

    /// The MAC to send to for `remote`, or `None` after asking for it.
    fn next_hop_mac(
        &mut self,
        now_ms: u64,
        local: Ipv4Addr,
        remote: Ipv4Addr,
    ) -> Option<EthernetAddress> {
        let on_link = self.cfg.addrs.iter().any(|a| a.on_link(remote));
        let hop = if on_link { remote } else { self.cfg.gateway? };
        if let Some(mac) = self.neighbors.lookup(hop, now_ms) {
            return Some(mac);
        }
        if self.neighbors.should_request(hop, now_ms) {
            self.counters.arp_requests_sent += 1;
            self.ctl.push_back(CtlFrame::Arp {
                op: ArpOperation::Request,
                target_mac: EthernetAddress::BROADCAST,
                target_ip: hop,
                sender_ip: local,
            });
        }
        None
    }

    fn build_ctl(&mut self, now_ms: u64, frame: CtlFrame, buf: &mut [u8]) -> Option<usize> {
        match frame {
            CtlFrame::Tcp { local, seg } => {
                let mac = self.next_hop_mac(now_ms, local, seg.remote_ip)?;
                if buf.len() < RST_FRAME_LEN {
                    return None;
                }
                let template = self.rst_template(local, mac);
                template.build(buf, &seg).ok()
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

    /// The RST template for (local address, next hop), built once.
    fn rst_template(&mut self, local: Ipv4Addr, mac: EthernetAddress) -> &RstTemplate {
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
                self.rst_templates
                    .push((local, mac, RstTemplate::new(self.cfg.mac, mac, local)));
                self.rst_templates.len() - 1
            }
        };
        &self.rst_templates[pos].2
    }
}

/// Writes Ethernet + IPv4 + TCP for `seg` into `buf`.
fn emit_tcp(
    buf: &mut [u8],
    src_mac: EthernetAddress,
    dst_mac: EthernetAddress,
    src: Ipv4Addr,
    dst: Ipv4Addr,
    seg: &TcpRepr<'_>,
) -> Option<usize> {
    let tcp_len = seg.buffer_len();
    let len = ETH + IP + tcp_len;
    if buf.len() < len {
        return None;
    }
    let frame = &mut buf[..len];
    EthernetRepr {
        src_addr: src_mac,
        dst_addr: dst_mac,
        ethertype: EtherType::Ipv4,
    }
    .emit(&mut EthernetFrame::new_unchecked(&mut frame[..]));
    Ipv4Repr {
        src_addr: src,
        dst_addr: dst,
        protocol: IpProtocol::Tcp,
        payload_len: tcp_len,
        ttl: TTL,
    }
    .emit(&mut Ipv4Packet::new_unchecked(&mut frame[ETH..]));
    seg.emit(
        &mut TcpPacket::new_unchecked(&mut frame[ETH + IP..]),
        src,
        dst,
    );
    Some(len)
}
