//! What a connection sends next: SYN, SYN-ACK, data, FIN, ACK, window probes
//! (RFC 9293 §3.8, RFC 7323, RFC 5681/6582 retransmissions).
//!
//! It owns the choice of the next segment and the send-side bookkeeping that
//! sending implies (SND.NXT, RTT timing, the retransmission timer, the
//! advertised window). It writes payload bytes into the caller's buffer and
//! returns a [`Plan`]; the engine builds the frame headers. It may not touch
//! the table, the wheel or the port.

use super::cx::Cx;
use super::state::State;
use super::tcb::{Deadline, Tcb, TcbFlags};
use crate::wire::{SeqNumber, TcpFlags, TcpOptions};

/// One segment to send: header fields, plus `payload_len` bytes already
/// copied into the caller's buffer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Plan {
    /// SEG.SEQ.
    pub(crate) seq: SeqNumber,
    /// SEG.ACK.
    pub(crate) ack: SeqNumber,
    /// Control bits.
    pub(crate) flags: TcpFlags,
    /// SEG.WND as sent (already scaled down).
    pub(crate) window: u16,
    /// Options.
    pub(crate) options: TcpOptions,
    /// Payload bytes written to the buffer.
    pub(crate) payload_len: usize,
}

/// Whether the connection has something to send right now.
pub(crate) fn has_output(tcb: &Tcb) -> bool {
    if tcb.flags.intersects(
        TcbFlags::NEED_ACK | TcbFlags::NEED_SYN | TcbFlags::RETRANSMIT_ONE | TcbFlags::PROBE,
    ) {
        return true;
    }
    if !tcb.state.is_synchronized() {
        return false;
    }
    let queued = tcb.queued() as u32;
    let sent = data_sent(tcb);
    if sent < queued && tcb.flight() < tcb.snd_wnd.min(tcb.cc.cwnd) {
        return true;
    }
    // The FIN is due when all data is sent and SND.NXT sits on the FIN's
    // sequence number (not yet sent, or rewound by a timeout).
    tcb.state.fin_outstanding()
        && tcb.flags.contains(TcbFlags::FIN_QUEUED)
        && sent == queued
        && tcb.snd_nxt == tcb.snd_una.wrapping_add(queued)
}

/// Starts the persist timer (RFC 9293 §3.8.6.1, MUST-36/37) when data waits
/// behind a zero send window with nothing in flight and no timer running:
/// otherwise a lost window update would stall the connection for good, as
/// nothing else would ever look at it again. Its expiry sends the probe
/// (`timers`). Called whenever the engine re-files a connection.
pub(crate) fn arm_persist(tcb: &mut Tcb, arm_ms: u64, rto: &super::rtt::RtoBounds) {
    if tcb.state.is_synchronized()
        && tcb.snd_wnd == 0
        && tcb.flight() == 0
        && data_sent(tcb) < tcb.queued() as u32
        && !tcb.rtx_at.is_set()
    {
        tcb.rtx_at = Deadline::after(arm_ms, tcb.rtt.rto_ms(rto));
    }
}

/// Data bytes already sent from the front of the buffer.
fn data_sent(tcb: &Tcb) -> u32 {
    let queued = tcb.queued() as u32;
    tcb.snd_nxt.distance_from(tcb.snd_una).min(queued)
}

/// The window to advertise now, scaled, never shrinking the right edge
/// (RFC 9293 §3.8.6.2.2 SHLD-14), and RCV.ADV updated to match.
fn advertise(tcb: &mut Tcb, cx: &Cx<'_>, syn: bool) -> u16 {
    let space = tcb.receive_space(cx.cfg.recv_buffer);
    // RFC 7323 §2.2: the window of a SYN segment is never scaled.
    let shift = if syn { 0 } else { tcb.rcv_wscale };
    let mut wnd = (space >> shift).min(0xffff);
    let edge = tcb.rcv_nxt.wrapping_add(wnd << shift);
    if edge.diff(tcb.rcv_adv) < 0 {
        let kept = tcb.rcv_adv.distance_from(tcb.rcv_nxt);
        wnd = ((kept + (1 << shift) - 1) >> shift).min(0xffff);
    } else {
        tcb.rcv_adv = edge;
    }
    wnd as u16
}

fn syn_options(tcb: &Tcb, cx: &Cx<'_>, answering: bool) -> TcpOptions {
    let ts = cx.cfg.timestamps && (!answering || tcb.flags.contains(TcbFlags::TIMESTAMPS));
    let ws = cx.cfg.window_shift > 0 && (!answering || tcb.rcv_wscale > 0 || tcb.snd_wscale > 0);
    TcpOptions {
        mss: Some(cx.cfg.mss),
        window_scale: ws.then_some(cx.cfg.window_shift),
        sack_permitted: false,
        timestamps: ts.then_some((cx.now_ms as u32, if answering { tcb.ts_recent } else { 0 })),
    }
}

fn arm_rtx(tcb: &mut Tcb, cx: &Cx<'_>) {
    if !tcb.rtx_at.is_set() {
        tcb.rtx_at = Deadline::after(cx.arm_ms, tcb.rtt.rto_ms(&cx.cfg.rto));
    }
}

/// Plans the next segment, copying its payload into `payload`.
pub(crate) fn next_segment(tcb: &mut Tcb, cx: &mut Cx<'_>, payload: &mut [u8]) -> Option<Plan> {
    match tcb.state {
        State::Closed | State::Listen => {
            // Nothing goes out: drop every output request, or has_output
            // stays true and poll_transmit requeues the record for ever (a
            // reset that lands after a persist timeout or three dup ACKs
            // left PROBE or RETRANSMIT_ONE behind).
            tcb.flags.remove(
                TcbFlags::NEED_ACK
                    | TcbFlags::NEED_SYN
                    | TcbFlags::RETRANSMIT_ONE
                    | TcbFlags::PROBE,
            );
            None
        }
        State::SynSent | State::SynReceived if tcb.flags.contains(TcbFlags::NEED_SYN) => {
            Some(syn(tcb, cx))
        }
        State::SynSent => None,
        _ => data_fin_ack(tcb, cx, payload),
    }
}

fn syn(tcb: &mut Tcb, cx: &mut Cx<'_>) -> Plan {
    tcb.flags.remove(TcbFlags::NEED_SYN | TcbFlags::NEED_ACK);
    let answering = tcb.state == State::SynReceived;
    let options = syn_options(tcb, cx, answering);
    tcb.snd_nxt = tcb.iss.wrapping_add(1);
    if tcb.snd_max.diff(tcb.snd_nxt) < 0 {
        tcb.snd_max = tcb.snd_nxt;
    }
    arm_rtx(tcb, cx);
    let (flags, ack, window) = if answering {
        (
            TcpFlags::SYN | TcpFlags::ACK,
            tcb.rcv_nxt,
            advertise(tcb, cx, true),
        )
    } else {
        (TcpFlags::SYN, SeqNumber(0), advertise(tcb, cx, true))
    };
    Plan {
        seq: tcb.iss,
        ack,
        flags,
        window,
        options,
        payload_len: 0,
    }
}

fn data_fin_ack(tcb: &mut Tcb, cx: &mut Cx<'_>, payload: &mut [u8]) -> Option<Plan> {
    let queued = tcb.queued() as u32;
    //= rfc9293#3.7.1
    //# Eff.snd.MSS = min(SendMSS+20, MMS_S) - TCPhdrsize - IPoptionsize
    // TCPhdrsize counts our options: with timestamps (RFC 7323 §3.2, 10
    // bytes padded to 12) a full segment carries 12 bytes less data, or its
    // frame exceeds the link MTU (the kernel's veth drops it, found by the
    // daemon's graceful-close system test).
    let options = if tcb.flags.contains(TcbFlags::TIMESTAMPS) {
        12
    } else {
        0
    };
    let mss = u32::from(tcb.mss)
        .saturating_sub(options)
        .max(1)
        .min(payload.len() as u32);
    let mut seq = tcb.snd_nxt;
    let mut offset = data_sent(tcb);
    let mut len;
    let retransmission;
    if tcb.flags.contains(TcbFlags::RETRANSMIT_ONE) {
        // Fast retransmit / partial ACK: the first unacknowledged segment,
        // SND.NXT untouched (RFC 5681 §3.2 step 3, RFC 6582 §3.2 step 3);
        // never beyond the peer's window, and never data not yet sent.
        tcb.flags.remove(TcbFlags::RETRANSMIT_ONE);
        seq = tcb.snd_una;
        offset = 0;
        let sent = tcb.snd_max.distance_from(tcb.snd_una).min(queued);
        len = queued.min(mss).min(tcb.snd_wnd).min(sent);
        retransmission = true;
        cx.counters.retransmits += 1;
    } else {
        let avail = queued - offset;
        let wnd = tcb.snd_wnd.min(tcb.cc.cwnd);
        let usable = wnd.saturating_sub(tcb.flight());
        len = avail.min(usable).min(mss);
        if tcb.flags.contains(TcbFlags::PROBE) {
            // Zero-window probe (RFC 9293 §3.8.6.1): one byte beyond the window.
            tcb.flags.remove(TcbFlags::PROBE);
            len = avail.min(1);
        } else if avail > 0 && len == 0 && tcb.snd_wnd == 0 && tcb.flight() == 0 {
            // Persist timer: the peer closed its window with data waiting.
            arm_rtx(tcb, cx);
        }
        retransmission = tcb.snd_nxt.diff(tcb.snd_max) < 0;
    }
    // The FIN follows the last data byte, at SND.UNA + queued; it goes out
    // when this segment ends right there (first time, after a timeout
    // rewound SND.NXT, or in a one-segment retransmission reaching it).
    let fin = tcb.state.fin_outstanding()
        && tcb.flags.contains(TcbFlags::FIN_QUEUED)
        && offset + len == queued
        && seq.wrapping_add(len) == tcb.snd_una.wrapping_add(queued);
    let need_ack = tcb.flags.contains(TcbFlags::NEED_ACK);
    if len == 0 && !fin && !need_ack {
        return None;
    }
    if len > 0 {
        let copied = tcb.send.as_ref().map_or(0, |b| {
            b.copy_out(offset as usize, &mut payload[..len as usize])
        });
        len = copied as u32;
    }
    let mut flags = TcpFlags::ACK;
    if fin {
        flags |= TcpFlags::FIN;
        tcb.flags.insert(TcbFlags::FIN_SENT);
    }
    if len > 0 && offset + len == queued {
        flags |= TcpFlags::PSH;
    }
    let seg_len = len + u32::from(fin);
    if seg_len > 0 {
        let end = seq.wrapping_add(seg_len);
        if seq == tcb.snd_nxt {
            tcb.snd_nxt = end;
        }
        if tcb.snd_max.diff(end) < 0 {
            tcb.snd_max = end;
        }
        if retransmission {
            // Karn's rule: a retransmitted segment is never timed.
            tcb.flags.remove(TcbFlags::RTT_TIMING);
        } else if !tcb.flags.contains(TcbFlags::RTT_TIMING) {
            tcb.flags.insert(TcbFlags::RTT_TIMING);
            tcb.rtt_seq = end;
            tcb.rtt_start = cx.now_ms as u32;
        }
        arm_rtx(tcb, cx);
        tcb.last_active = cx.now_ms;
    }
    if len == 0 && !fin && tcb.dup_acks_owed > 1 {
        // A pure duplicate ACK; more are owed, so stay on the transmit list.
        tcb.dup_acks_owed -= 1;
    } else {
        tcb.dup_acks_owed = 0;
        tcb.flags.remove(TcbFlags::NEED_ACK);
    }
    tcb.unacked_segments = 0;
    tcb.ack_at = Deadline::NONE;
    let window = advertise(tcb, cx, false);
    let options = TcpOptions {
        timestamps: tcb
            .flags
            .contains(TcbFlags::TIMESTAMPS)
            .then_some((cx.now_ms as u32, tcb.ts_recent)),
        ..TcpOptions::default()
    };
    Some(Plan {
        seq,
        ack: tcb.rcv_nxt,
        flags,
        window,
        options,
        payload_len: len as usize,
    })
}
