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
    if let Some(room) = sack_room(tcb) {
        if (room > 0 || first_due(tcb)) && next_hole(tcb).is_some() {
            return true;
        }
        if room > 0 && (next_hole(tcb).is_some() || (sent < queued && tcb.flight() < tcb.snd_wnd)) {
            return true;
        }
    } else if sent < queued && tcb.flight() < tcb.snd_wnd.min(tcb.cc.cwnd) {
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

/// In an RFC 6675 recovery, what cwnd leaves beside the pipe; `None`
/// outside one (or without SACK), when cwnd counts the whole flight.
fn sack_room(tcb: &Tcb) -> Option<u32> {
    if !(tcb.cc.sack && tcb.cc.in_recovery) {
        return None;
    }
    let buf = tcb.send.as_ref()?;
    let pipe = buf.board.pipe(
        tcb.flight(),
        tcb.snd_una,
        tcb.cc.dupthresh,
        u32::from(tcb.mss),
    );
    Some(tcb.cc.cwnd.saturating_sub(pipe))
}

/// A recovery just began and its first retransmission has not gone: it
/// goes whatever the pipe (RFC 6675 §5 step 4.2).
fn first_due(tcb: &Tcb) -> bool {
    tcb.send.as_ref().is_some_and(|b| b.board.rexmit_first)
}

/// The hole to retransmit next in an RFC 6675 recovery, `[start, end)`,
/// cut to the peer's window (never a byte beyond SND.UNA + SND.WND, so
/// nothing goes into a zero window) and to what was sent.
fn next_hole(tcb: &Tcb) -> Option<(SeqNumber, SeqNumber)> {
    let board = &tcb.send.as_ref()?.board;
    let (start, end) = if board.rexmit_first {
        // RFC 6675 §5 step 4.2: the first segment goes at once, whatever
        // the scoreboard says about it.
        let end = board.ranges().first().map_or(tcb.snd_max, |&(l, _)| l);
        (tcb.snd_una, end)
    } else {
        board.next_hole(tcb.snd_una, tcb.cc.dupthresh, u32::from(tcb.mss))?
    };
    let wnd_end = tcb.snd_una.wrapping_add(tcb.snd_wnd);
    let sent_end = tcb.snd_una.wrapping_add(
        tcb.snd_max
            .distance_from(tcb.snd_una)
            .min(tcb.queued() as u32),
    );
    let mut end = end;
    for limit in [wnd_end, sent_end] {
        if limit.diff(end) < 0 {
            end = limit;
        }
    }
    (end.diff(start) > 0).then_some((start, end))
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
        // RFC 2018 §2: offered on a SYN, answered only to a SYN that offered it.
        sack_permitted: cx.cfg.sack && (!answering || tcb.cc.sack),
        timestamps: ts.then_some((cx.now_ms as u32, if answering { tcb.ts_recent } else { 0 })),
        sack: crate::wire::SackBlocks::default(),
    }
}

fn arm_rtx(tcb: &mut Tcb, cx: &Cx<'_>) {
    if !tcb.rtx_at.is_set() {
        super::timers::arm_rtx(tcb, cx.arm_ms, &cx.cfg.rto);
    } else {
        super::timers::arm_probe(tcb, cx.arm_ms, &cx.cfg.rto);
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
    let timestamps = tcb.flags.contains(TcbFlags::TIMESTAMPS);
    // RFC 2018 §4: every ACK sent while out-of-order data is held carries
    // SACK blocks, as many as fit beside timestamps (3) or alone (4).
    let sack = if tcb.cc.sack && tcb.reasm.is_some() {
        cx.reasm
            .sack_blocks(tcb.reasm, tcb.rcv_nxt, if timestamps { 3 } else { 4 })
    } else {
        crate::wire::SackBlocks::default()
    };
    let options = if timestamps { 12 } else { 0 } + sack.wire_len() as u32;
    let mss = u32::from(tcb.mss)
        .saturating_sub(options)
        .max(1)
        .min(payload.len() as u32);
    let mut seq = tcb.snd_nxt;
    let mut offset = data_sent(tcb);
    let mut len;
    let retransmission;
    let room = sack_room(tcb);
    let hole = if room.is_some_and(|r| r > 0) || first_due(tcb) {
        next_hole(tcb)
    } else {
        None
    };
    if let Some(room) = room {
        // RFC 6675 §5 (C): a recovery with SACK sends while the pipe is
        // below cwnd, holes first, then new data.
        tcb.flags.remove(TcbFlags::RETRANSMIT_ONE);
        if let Some((start, end)) = hole {
            seq = start;
            offset = start.distance_from(tcb.snd_una);
            len = end.distance_from(start).min(mss);
            retransmission = true;
            if let Some(buf) = tcb.send.as_mut() {
                buf.board.rexmit_first = false;
                if start == tcb.snd_una {
                    buf.board.rxt_mark = Some((start, tcb.snd_max));
                }
                let rxt_end = start.wrapping_add(len);
                if rxt_end.diff(buf.board.high_rxt) > 0 {
                    buf.board.high_rxt = rxt_end;
                }
            }
            cx.counters.retransmits += 1;
            cx.counters.sack_retransmits += 1;
        } else {
            let avail = queued - offset;
            let usable = tcb.snd_wnd.saturating_sub(tcb.flight()).min(room);
            len = avail.min(usable).min(mss);
            retransmission = tcb.snd_nxt.diff(tcb.snd_max) < 0;
        }
    } else if tcb.flags.contains(TcbFlags::RETRANSMIT_ONE) {
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
    if len == 0 && !fin {
        // A pure ACK names the next new octet, SND.MAX, not a SND.NXT that
        // a timeout rewound (as BSD's tcp_output does): a peer that has
        // acknowledged beyond the rewound SND.NXT finds that sequence
        // number old, drops the segment with its ACK field unread and
        // answers with an ACK of its own; two ends both rewound would
        // trade such ACKs for ever.
        seq = tcb.snd_max;
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
    cx.counters.sack_blocks_sent += sack.len() as u64;
    let options = TcpOptions {
        timestamps: timestamps.then_some((cx.now_ms as u32, tcb.ts_recent)),
        sack,
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
