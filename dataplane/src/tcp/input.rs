//! Segment arrival for an existing connection: RFC 9293 §3.10.7.3 (SYN-SENT)
//! and §3.10.7.4 (the synchronized states and SYN-RECEIVED), with the
//! RFC 5961 checks on RST, SYN and ACK, and lingerd's close rules for data
//! that can no longer be delivered.
//!
//! It owns the transitions a segment causes. It may not send anything itself:
//! it sets flags (`NEED_ACK`, ...) that the output path turns into segments,
//! and returns a [`Disposition`](crate::shared::Disposition) for what needs the engine (freeing the
//! record, a control segment built from the incoming one). Listeners and
//! segments matching nothing are the engine's (`engine::rx`).

use lingerd_abi::Errno;

use super::cx::Cx;
use super::matrix::End;
use super::state::State;
use super::tcb::{Deadline, Pending, Tcb, TcbFlags};
use super::teardown::{check_close_done, enter_time_wait, hard_close, local_abort};
use crate::shared::config::{TcpConfig, TimeWaitRst};
use crate::shared::{Detail, Disposition, Outcome};
use crate::wire::{TcpOptions, TcpRepr};

/// Negotiates options from the peer's SYN or SYN-ACK (RFC 9293 §3.7.1,
/// RFC 7323 §1.3: scaling and timestamps only when both SYNs carry them).
pub(crate) fn negotiate(tcb: &mut Tcb, cfg: &TcpConfig, opts: &TcpOptions, we_offered: bool) {
    let peer_mss = opts.mss.unwrap_or(536).max(64);
    tcb.mss = peer_mss.min(cfg.mss);
    tcb.cc = super::congestion::NewReno::new(u32::from(tcb.mss), tcb.iss);
    // RFC 2018 §2: SACK is used only when both SYNs carry SACK-permitted.
    tcb.cc.sack = cfg.sack && opts.sack_permitted;
    match opts.window_shift() {
        Some(shift) if we_offered || cfg.window_shift > 0 => {
            tcb.snd_wscale = shift;
            tcb.rcv_wscale = cfg.window_shift;
        }
        _ => {
            tcb.snd_wscale = 0;
            tcb.rcv_wscale = 0;
        }
    }
    match opts.timestamps {
        Some((tsval, _)) if cfg.timestamps => {
            tcb.flags.insert(TcbFlags::TIMESTAMPS);
            tcb.ts_recent = tsval;
        }
        _ => tcb.flags.remove(TcbFlags::TIMESTAMPS),
    }
}

/// Handles one segment for `tcb`.
pub(crate) fn on_segment(tcb: &mut Tcb, cx: &mut Cx<'_>, seg: &TcpRepr<'_>) -> Disposition {
    tcb.last_active = cx.now_ms;
    match tcb.state {
        // Listeners are not in the 4-tuple index and dead records are taken
        // out of it, so neither ever sees a segment.
        State::Closed | State::Listen => Disposition::Keep,
        State::SynSent => syn_sent(tcb, cx, seg),
        _ => synchronized(tcb, cx, seg),
    }
}

/// RFC 9293 §3.10.7.3.
fn syn_sent(tcb: &mut Tcb, cx: &mut Cx<'_>, seg: &TcpRepr<'_>) -> Disposition {
    let f = seg.flags;
    // First: the ACK must acknowledge our SYN: ISS < SEG.ACK <= SND.NXT.
    if f.ack() && !(seg.ack.diff(tcb.iss) > 0 && seg.ack.diff(tcb.snd_max) <= 0) {
        if f.rst() {
            return Disposition::Keep;
        }
        cx.counters.rst_unacceptable_ack += 1;
        return Disposition::Reply(cx.rst(seg.ack));
    }
    // Second: an RST counts only if it acknowledges our SYN (RFC 5961 §3.2
    // leaves SYN-SENT to this check).
    if f.rst() {
        if !f.ack() {
            return Disposition::Keep;
        }
        super::teardown::fail_connect(tcb, cx, Errno::ConnRefused);
        return Disposition::Free;
    }
    // Fourth: the SYN.
    if !f.syn() {
        return Disposition::Keep;
    }
    tcb.irs = seg.seq;
    tcb.rcv_nxt = seg.seq.wrapping_add(1);
    tcb.rcv_adv = tcb.rcv_nxt;
    negotiate(tcb, cx.cfg, &seg.options, true);
    if f.ack() {
        tcb.snd_una = seg.ack;
        if tcb.snd_nxt.diff(tcb.snd_una) < 0 {
            tcb.snd_nxt = tcb.snd_una;
        }
        // RFC 7323 §2.2: the window in a SYN is never scaled.
        set_window(tcb, seg, u32::from(seg.window));
        sample_rtt(tcb, cx, seg);
        tcb.rtx_at = Deadline::NONE;
        tcb.flags.remove(TcbFlags::NEED_SYN);
        tcb.state = State::Established;
        tcb.flags.insert(TcbFlags::NEED_ACK);
        super::teardown::finish_connect(tcb, cx);
    } else {
        // Simultaneous open: answer with SYN-ACK from SYN-RECEIVED, and
        // record the peer's (unscaled) window from its SYN (RFC 9293
        // §3.10.7.3: SND.WND <- SEG.WND, SND.WL1 <- SEG.SEQ).
        tcb.snd_wnd = u32::from(seg.window);
        tcb.max_snd_wnd = tcb.snd_wnd;
        tcb.snd_wl1 = seg.seq;
        tcb.state = State::SynReceived;
        tcb.flags.insert(TcbFlags::NEED_SYN);
        tcb.snd_nxt = tcb.iss;
    }
    Disposition::Keep
}

/// RFC 9293 §3.10.7.4 "Otherwise", in its order of checks.
fn synchronized(tcb: &mut Tcb, cx: &mut Cx<'_>, seg: &TcpRepr<'_>) -> Disposition {
    let f = seg.flags;

    // Retransmitted SYN while in SYN-RECEIVED: our SYN-ACK was lost.
    if tcb.state == State::SynReceived && f.syn() && !f.ack() && !f.rst() && seg.seq == tcb.irs {
        tcb.flags.insert(TcbFlags::NEED_SYN);
        return Disposition::Keep;
    }
    // A SYN in TIME-WAIT with a sequence number beyond the old connection's
    // may start a new incarnation (RFC 6191 §2 without timestamps; RFC 9293
    // §3.10.7.4 allows it).
    if tcb.state == State::TimeWait
        && f.syn()
        && !f.ack()
        && !f.rst()
        && seg.seq.diff(tcb.rcv_nxt) > 0
    {
        // The old incarnation is over; a handle the client still holds
        // outlives it (see `teardown::finished`).
        super::teardown::finished(tcb, cx);
        return Disposition::Reopen;
    }

    // First: is the segment acceptable? RFC 9293 §3.10.7.4, the four cases.
    let rcv_wnd = tcb.rcv_wnd();
    let payload_len = seg.payload.len() as u32;
    let seg_len = seg.segment_len();
    let acceptable = if seg_len == 0 {
        if rcv_wnd == 0 {
            seg.seq == tcb.rcv_nxt
        } else {
            seg.seq.is_in_window(tcb.rcv_nxt, rcv_wnd)
        }
    } else if rcv_wnd == 0 {
        // RFC 9293: with a zero window only ACKs, URGs and RSTs are
        // processed; data is dropped below (the window has no room).
        seg.seq == tcb.rcv_nxt
    } else {
        seg.seq.is_in_window(tcb.rcv_nxt, rcv_wnd)
            || seg
                .seq
                .wrapping_add(seg_len - 1)
                .is_in_window(tcb.rcv_nxt, rcv_wnd)
    };
    if !acceptable {
        cx.counters.rx_unacceptable += 1;
        if f.rst() {
            return Disposition::Keep;
        }
        let ahead = seg.seq.diff(tcb.rcv_nxt);
        if rcv_wnd == 0
            && f.ack()
            && !f.syn()
            && tcb.state != State::SynReceived
            && ahead > 0
            && ahead as u32 <= cx.cfg.recv_buffer
        {
            // RFC 9293 §3.10.7.4: with a zero receive window "special
            // allowance should be made to accept valid ACKs". A peer that
            // sent into a window it believed open (an older, larger window
            // update overtook the zero one) numbers its pure ACKs beyond
            // RCV.NXT; ignoring them left our own data unacknowledged, so
            // the client could not send, never read, and the window stayed
            // shut. The ACK field is taken (RFC 5961 checks included), the
            // data is not.
            if let Some(d) = on_ack(tcb, cx, seg) {
                return d;
            }
            tcb.flags.insert(TcbFlags::NEED_ACK);
            return if tcb.state == State::Closed {
                Disposition::Free
            } else {
                Disposition::Keep
            };
        }
        if tcb.state == State::TimeWait && f.fin() {
            // A retransmitted FIN: ACK it again and restart 2×MSL.
            tcb.close_at = Deadline::after(cx.arm_ms, cx.cfg.time_wait_ms);
        }
        tcb.flags.insert(TcbFlags::NEED_ACK);
        return Disposition::Keep;
    }

    // Second: RST (RFC 5961 §3.2): exact match resets, anything else in the
    // window earns a challenge ACK.
    if f.rst() {
        if seg.seq != tcb.rcv_nxt {
            challenge_ack(tcb, cx);
            return Disposition::Keep;
        }
        return on_reset(tcb, cx);
    }

    // Fourth: SYN in a synchronized state (RFC 5961 §4.2): challenge ACK.
    if f.syn() {
        challenge_ack(tcb, cx);
        return Disposition::Keep;
    }

    // RFC 7323 §4.3 step 2: TS.Recent follows every acceptable segment
    // that does not lie beyond what we acknowledged, whether or not its ACK
    // acknowledges new data (a pure receiver must still echo fresh values,
    // or the sender's RTT samples grow with the connection's age).
    update_ts_recent(tcb, seg);

    // Fifth: ACK.
    if !f.ack() {
        return Disposition::Keep;
    }
    if tcb.state == State::SynReceived {
        if !(seg.ack.diff(tcb.snd_una) > 0 && seg.ack.diff(tcb.snd_max) <= 0) {
            cx.counters.rst_unacceptable_ack += 1;
            return Disposition::Reply(cx.rst(seg.ack));
        }
        // A close queued during a simultaneous open (§3.10.4: FIN after
        // the handshake) moves straight on to FIN-WAIT-1.
        tcb.state = if tcb.flags.contains(TcbFlags::FIN_QUEUED) {
            State::FinWait1
        } else {
            State::Established
        };
        tcb.flags.remove(TcbFlags::NEED_SYN);
        // Keep the deadline of a close by the client (orphan or linger,
        // e.g. close_matching caught the handshake); drop the handshake's.
        if !tcb.closed_by_client() {
            tcb.close_at = Deadline::NONE;
        }
        tcb.rtx_at = Deadline::NONE;
        set_window(tcb, seg, u32::from(seg.window) << tcb.snd_wscale);
        if tcb.flags.contains(TcbFlags::ACTIVE_OPEN) {
            super::teardown::finish_connect(tcb, cx);
        } else {
            let Some(listener) = cx.listener else {
                // The listener was closed during the handshake: connections
                // not yet accepted are hard-closed (docs/close-semantics.md#listeners).
                cx.counters.rst_listener_closed += 1;
                return Disposition::ResetAndFree(cx.rst_ack(tcb.snd_max, tcb.rcv_nxt));
            };
            cx.counters.accepted += 1;
            let remote = std::net::SocketAddr::new(cx.tuple.remote_addr, cx.tuple.remote_port);
            cx.event(tcb, Errno::Ok, Detail::Accepted { listener, remote });
        }
    }
    if let Some(d) = on_ack(tcb, cx, seg) {
        return d;
    }

    // Seventh: segment text.
    let mut fin_in_order = f.fin();
    // Whether in-order data arrived while a reassembly queue was held: it
    // fills all or part of a gap (RFC 5681 §4.2: ACK at once).
    let mut filled_gap = false;
    if payload_len > 0 {
        let start = seg.seq;
        let skip = tcb.rcv_nxt.diff(start).max(0) as u32;
        // Nothing may arrive past a FIN already seen out of order.
        let room = match cx.reasm.fin(tcb.reasm) {
            Some(fin) => rcv_wnd.min(fin.diff(tcb.rcv_nxt).max(0) as u32),
            None => rcv_wnd,
        };
        if skip > 0 && skip >= payload_len {
            // Entirely old data (a retransmission): just ACK.
            tcb.flags.insert(TcbFlags::NEED_ACK);
        } else if start.diff(tcb.rcv_nxt) > 0 {
            out_of_order(tcb, cx, seg, rcv_wnd);
            fin_in_order = false;
        } else if tcb.state.can_receive() {
            if tcb.closed_by_client() || tcb.flags.contains(TcbFlags::SHUT_RD) {
                return data_after_close(tcb, cx);
            }
            let take = (payload_len - skip).min(room);
            if take > 0 {
                let data = &seg.payload[skip as usize..(skip + take) as usize];
                tcb.rcv_nxt = tcb.rcv_nxt.wrapping_add(take);
                tcb.unconsumed = tcb.unconsumed.saturating_add(take);
                cx.data(tcb, data);
                if tcb.reasm.is_some() {
                    filled_gap = true;
                    // The duplicate ACKs still owed name the old RCV.NXT;
                    // one cumulative ACK replaces them.
                    tcb.dup_acks_owed = 0;
                    tcb.flags.insert(TcbFlags::NEED_ACK);
                } else {
                    schedule_ack(tcb, cx);
                }
            }
            if skip + take < payload_len {
                // Trimmed to the window: the FIN (if any) lies beyond it.
                fin_in_order = false;
                tcb.flags.insert(TcbFlags::NEED_ACK);
            }
        } else {
            // CLOSE-WAIT, CLOSING, LAST-ACK, TIME-WAIT: the peer already sent
            // FIN, so new data is a protocol error; ignore it (RFC 9293).
            fin_in_order = false;
        }
    } else if f.fin() && seg.seq.diff(tcb.rcv_nxt) > 0 {
        // A bare FIN out of order.
        out_of_order(tcb, cx, seg, rcv_wnd);
        fin_in_order = false;
    }

    // Eighth: FIN, only once everything before it has arrived, and only
    // once: after the peer's FIN its sequence space is closed, so a FIN at
    // RCV.NXT is forged or broken and is dropped without moving RCV.NXT
    // (moving it would make every later ACK from the peer look old, and
    // the two ends would trade ACKs forever). A FIN in this segment ends
    // the stream here, whatever the queue holds beyond it (the queue is
    // released once the FIN moves the state on); otherwise the queue
    // continues the stream, and may end it with the FIN it remembered.
    if fin_in_order
        && !tcb.flags.contains(TcbFlags::FIN_RECEIVED)
        && seg.seq.wrapping_add(payload_len) == tcb.rcv_nxt
    {
        on_fin(tcb, cx);
    } else if filled_gap {
        let n = cx.data_from_queue(tcb);
        cx.counters.ooo_bytes_delivered += u64::from(n);
        if cx.reasm.fin(tcb.reasm) == Some(tcb.rcv_nxt) {
            cx.reasm.take_fin(&mut tcb.reasm);
            if !tcb.flags.contains(TcbFlags::FIN_RECEIVED) {
                on_fin(tcb, cx);
            }
        }
    }
    if tcb.state == State::Closed {
        return Disposition::Free;
    }
    Disposition::Keep
}

/// A segment (payload, FIN or both) beyond RCV.NXT: kept in the reassembly
/// queue, trimmed to the window, when the connection can still deliver it;
/// either way a duplicate ACK per segment asks for the hole (RFC 5681 §4.2:
/// "immediately", and the sender counts them).
fn out_of_order(tcb: &mut Tcb, cx: &mut Cx<'_>, seg: &TcpRepr<'_>, rcv_wnd: u32) {
    tcb.dup_acks_owed = tcb.dup_acks_owed.saturating_add(1).min(8);
    tcb.flags.insert(TcbFlags::NEED_ACK);
    if !tcb.may_reassemble() {
        return;
    }
    let kept = cx.reasm.insert(
        &mut tcb.reasm,
        tcb.rcv_nxt,
        rcv_wnd,
        seg.seq,
        seg.payload,
        seg.flags.fin(),
    );
    if kept.kept > 0 || kept.fin_kept {
        cx.counters.ooo_segments_kept += 1;
    }
    cx.counters.ooo_bytes_pruned += u64::from(kept.pruned);
}

/// The ACK field of a segment in a synchronized state. Returns a disposition
/// when processing must stop here.
fn on_ack(tcb: &mut Tcb, cx: &mut Cx<'_>, seg: &TcpRepr<'_>) -> Option<Disposition> {
    // RFC 5961 §5.2: acceptable when SND.UNA - MAX.SND.WND <= SEG.ACK <= SND.NXT
    // (SND.NXT here is the highest sent, which a timeout does not rewind).
    let beyond = seg.ack.diff(tcb.snd_max);
    let behind = seg.ack.diff(tcb.snd_una);
    if beyond > 0 || i64::from(behind) < -i64::from(tcb.max_snd_wnd) {
        challenge_ack(tcb, cx);
        return Some(Disposition::Keep);
    }
    let mss = u32::from(tcb.mss);
    if behind > 0 {
        let acked = behind as u32;
        let fin_acked = tcb.flags.contains(TcbFlags::FIN_SENT) && seg.ack == tcb.snd_max;
        let data_acked = acked - u32::from(fin_acked);
        if let Some(buf) = tcb.send.as_mut() {
            buf.consume(data_acked as usize);
        }
        tcb.snd_una = seg.ack;
        if tcb.snd_nxt.diff(tcb.snd_una) < 0 {
            tcb.snd_nxt = tcb.snd_una;
        }
        sample_rtt(tcb, cx, seg);
        let undone = spurious_recovery(tcb, cx, seg);
        if let Some(buf) = tcb.send.as_mut() {
            buf.board.advance(tcb.snd_una);
        }
        let news = take_sack(tcb, cx, seg);
        if !undone
            && tcb.cc.on_new_ack(acked, seg.ack, mss)
                == super::congestion::AckAction::RetransmitFirst
        {
            tcb.flags.insert(TcbFlags::RETRANSMIT_ONE);
        }
        // RFC 6675 §2: an ACK that SACKs new data counts as a duplicate
        // even when it also moves SND.UNA; a hole with DupThresh segments'
        // worth SACKed above it is lost now, not at the next timeout.
        if !undone
            && news
            && tcb.flight() > 0
            && tcb.cc.may_recover(seg.ack)
            && tcb
                .send
                .as_ref()
                .is_some_and(|b| b.board.is_lost(tcb.snd_una, tcb.cc.dupthresh, mss))
        {
            let before = (tcb.cc.cwnd, tcb.cc.ssthresh);
            tcb.cc.enter_recovery(tcb.flight(), tcb.snd_max, mss);
            begin_recovery(tcb, cx, before);
            cx.counters.fast_retransmits += 1;
        }
        if tcb.flight() > 0 {
            super::timers::arm_rtx(tcb, cx.arm_ms, &cx.cfg.rto);
        } else {
            tcb.rtx_at = Deadline::NONE;
        }
        if tcb.queued() == 0 {
            cx.release_send(tcb);
        }
    } else if behind == 0 {
        let news = take_sack(tcb, cx, seg);
        // RFC 5681 §2: a duplicate ACK is empty and repeats the window;
        // with SACK, RFC 6675 §2 counts every ACK that SACKs new data
        // (the peer's window grows as its application reads, and its
        // data segments carry blocks too). Never the answer to a window
        // probe: a zero window means the peer took nothing, not that a
        // segment was lost, and only probes may go into it (RFC 9293
        // §3.8.6.1).
        let repeat = seg.payload.is_empty()
            && !seg.flags.fin()
            && u32::from(seg.window) << tcb.snd_wscale == tcb.snd_wnd;
        if tcb.flight() > 0 && tcb.snd_wnd != 0 && (repeat || news) {
            let flight = tcb.flight();
            let before = (tcb.cc.cwnd, tcb.cc.ssthresh);
            let mut enter = tcb.cc.on_dup_ack(flight, seg.ack, tcb.snd_max, mss)
                == super::congestion::AckAction::RetransmitFirst;
            if !enter
                && tcb.cc.sack
                && tcb.cc.may_recover(seg.ack)
                && tcb
                    .send
                    .as_ref()
                    .is_some_and(|b| b.board.is_lost(tcb.snd_una, tcb.cc.dupthresh, mss))
            {
                // RFC 6675 §5: DupThresh segments' worth SACKed above
                // SND.UNA is a loss even before DupThresh duplicate ACKs.
                tcb.cc.enter_recovery(flight, tcb.snd_max, mss);
                enter = true;
            }
            if enter {
                begin_recovery(tcb, cx, before);
                cx.counters.fast_retransmits += 1;
            }
        } else if tcb.cc.in_recovery && news {
            // A window update or data segment carrying SACK news during
            // recovery: the pipe may have shrunk.
            tcb.flags.insert(TcbFlags::RETRANSMIT_ONE);
        }
        if news && tcb.cc.in_recovery {
            lost_retransmission(tcb, mss);
        }
    }
    // Window update (RFC 9293 §3.10.7.4: SND.WL1 < SEG.SEQ, or equal with
    // SND.WL2 <= SEG.ACK).
    if tcb.snd_wl1.diff(seg.seq) < 0 || (tcb.snd_wl1 == seg.seq && tcb.snd_wl2.diff(seg.ack) <= 0) {
        let was_zero = tcb.snd_wnd == 0;
        set_window(tcb, seg, u32::from(seg.window) << tcb.snd_wscale);
        let probe_out = tcb.flight() == 1 && tcb.queued() > 0;
        if was_zero && tcb.snd_wnd > 0 && (tcb.flight() == 0 || probe_out) {
            // The window reopened. The persist timer is no longer needed,
            // and a probe byte the peer did not take goes again, in order,
            // with what follows it: sending resumes from SND.UNA.
            tcb.snd_nxt = tcb.snd_una;
            tcb.rtx_at = Deadline::NONE;
            tcb.flags.remove(TcbFlags::PROBE);
        }
    }
    let our_fin_acked = tcb.flags.contains(TcbFlags::FIN_SENT) && tcb.snd_una == tcb.snd_max;
    match tcb.state {
        State::FinWait1 if our_fin_acked => {
            tcb.state = State::FinWait2;
            if tcb.flags.contains(TcbFlags::ORPHAN) {
                if tcb.flags.contains(TcbFlags::LINGER_DEADLINE) {
                    // Data and FIN acknowledged before the linger time ran
                    // out: the close went gracefully, as SO_LINGER's does
                    // (docs/close-semantics.md#bulk-close), and the deadline
                    // no longer applies.
                    tcb.flags.remove(TcbFlags::LINGER_DEADLINE);
                    tcb.close_at = Deadline::after(cx.arm_ms, cx.cfg.orphan_timeout_ms);
                } else {
                    // An orphan's FIN-WAIT-2 is bounded (docs/close-semantics.md#orphan-timeout:
                    // every background close is bounded); the orphan deadline already runs.
                    tcb.close_at = tcb
                        .close_at
                        .earliest(Deadline::after(cx.arm_ms, cx.cfg.orphan_timeout_ms));
                }
            }
        }
        State::Closing if our_fin_acked => enter_time_wait(tcb, cx),
        State::LastAck if our_fin_acked => {
            check_close_done(tcb, cx);
            return Some(super::teardown::finished(tcb, cx));
        }
        _ => {}
    }
    check_close_done(tcb, cx);
    None
}

/// Feeds the peer's SACK blocks to the scoreboard (after SND.UNA moved):
/// only when SACK was negotiated and data is outstanding; every block is
/// checked there against SND.UNA..SND.MAX. Returns whether they SACKed
/// bytes the scoreboard did not hold yet.
fn take_sack(tcb: &mut Tcb, cx: &mut Cx<'_>, seg: &TcpRepr<'_>) -> bool {
    if !tcb.cc.sack || seg.options.sack.is_empty() {
        return false;
    }
    let (una, max) = (tcb.snd_una, tcb.snd_max);
    let Some(buf) = tcb.send.as_mut() else {
        cx.counters.sack_blocks_ignored += seg.options.sack.len() as u64;
        return false;
    };
    let held = buf.board.sacked();
    let (ok, bad) = buf.board.add(seg.options.sack.as_slice(), una, max);
    cx.counters.sack_blocks_received += u64::from(ok);
    cx.counters.sack_blocks_ignored += u64::from(bad);
    buf.board.sacked() > held
}

/// In a recovery, the segment at SND.UNA went again and data sent after
/// it is SACKed: that retransmission was lost too, and it goes once more
/// now rather than at the retransmission timeout.
fn lost_retransmission(tcb: &mut Tcb, mss: u32) {
    let (una, thresh) = (tcb.snd_una, tcb.cc.dupthresh);
    let Some(buf) = tcb.send.as_mut() else {
        return;
    };
    if buf.board.retransmission_lost(una, thresh, mss) {
        buf.board.rxt_mark = None;
        buf.board.high_rxt = una;
        buf.board.rexmit_first = true;
        tcb.flags.insert(TcbFlags::RETRANSMIT_ONE);
    }
}

/// A recovery just began (cwnd and ssthresh were `before`): the first
/// hole goes at once, and the state that may undo it is armed.
pub(super) fn begin_recovery(tcb: &mut Tcb, cx: &mut Cx<'_>, before: (u32, u32)) {
    tcb.flags.insert(TcbFlags::RETRANSMIT_ONE);
    let ts = tcb.flags.contains(TcbFlags::TIMESTAMPS);
    let now32 = cx.now_ms as u32;
    if let Some(buf) = tcb.send.as_mut() {
        buf.board.high_rxt = tcb.snd_una;
        buf.board.rexmit_first = true;
        buf.board.rxt_mark = None;
        buf.board.undo = ts.then_some(super::sack::Undo {
            cwnd: before.0,
            ssthresh: before.1,
            first: tcb.snd_una,
            tsval: now32,
        });
    }
}

/// Eifel detection (RFC 3522): the first ACK to cover the first byte a
/// fast recovery retransmitted echoes a timestamp older than that
/// retransmission, so the original got there and the recovery was caused
/// by reordering. The window comes back (RFC 4015) and the duplicate
/// threshold rises. Returns whether it undid a recovery.
fn spurious_recovery(tcb: &mut Tcb, cx: &mut Cx<'_>, seg: &TcpRepr<'_>) -> bool {
    let Some(buf) = tcb.send.as_mut() else {
        return false;
    };
    let Some(undo) = buf.board.undo else {
        return false;
    };
    if seg.ack.diff(undo.first) <= 0 {
        return false;
    }
    buf.board.undo = None;
    let echoed_original = tcb.flags.contains(TcbFlags::TIMESTAMPS)
        && seg
            .options
            .timestamps
            .is_some_and(|(_, tsecr)| tsecr != 0 && (tsecr.wrapping_sub(undo.tsval) as i32) < 0);
    if !echoed_original {
        return false;
    }
    tcb.cc.undo(undo.cwnd, undo.ssthresh, seg.ack);
    buf.board.high_rxt = tcb.snd_una;
    cx.counters.spurious_recoveries_undone += 1;
    true
}

fn set_window(tcb: &mut Tcb, seg: &TcpRepr<'_>, wnd: u32) {
    tcb.snd_wnd = wnd;
    tcb.max_snd_wnd = tcb.max_snd_wnd.max(wnd);
    tcb.snd_wl1 = seg.seq;
    tcb.snd_wl2 = seg.ack;
}

/// RFC 7323 §4.3: `SEG.TSval >= TS.Recent and SEG.SEQ <= Last.ACK.sent`
/// (RCV.NXT standing in for Last.ACK.sent) → TS.Recent = SEG.TSval.
fn update_ts_recent(tcb: &mut Tcb, seg: &TcpRepr<'_>) {
    if tcb.flags.contains(TcbFlags::TIMESTAMPS)
        && let Some((tsval, _)) = seg.options.timestamps
        && tsval.wrapping_sub(tcb.ts_recent) as i32 >= 0
        && seg.seq.diff(tcb.rcv_nxt) <= 0
    {
        tcb.ts_recent = tsval;
    }
}

/// Takes an RTT sample from the timestamp echo (RFC 7323 §4) or from the
/// timed segment (Karn's rule: never from a retransmission).
fn sample_rtt(tcb: &mut Tcb, cx: &mut Cx<'_>, seg: &TcpRepr<'_>) {
    let now32 = cx.now_ms as u32;
    if tcb.flags.contains(TcbFlags::TIMESTAMPS)
        && let Some((_, tsecr)) = seg.options.timestamps
        && tsecr != 0
    {
        let rtt = now32.wrapping_sub(tsecr);
        if rtt < 60_000 {
            tcb.rtt.on_sample(rtt, &cx.cfg.rto);
            tcb.flags.remove(TcbFlags::RTT_TIMING);
            return;
        }
    }
    if tcb.flags.contains(TcbFlags::RTT_TIMING) && seg.ack.diff(tcb.rtt_seq) >= 0 {
        tcb.rtt
            .on_sample(now32.wrapping_sub(tcb.rtt_start), &cx.cfg.rto);
        tcb.flags.remove(TcbFlags::RTT_TIMING);
    }
}

/// Delayed ACK (RFC 9293 §3.8.6.3, RFC 5681 §4.2): at least every second
/// full-sized segment, and within `delayed_ack_ms`.
fn schedule_ack(tcb: &mut Tcb, cx: &mut Cx<'_>) {
    tcb.unacked_segments = tcb.unacked_segments.saturating_add(1);
    if tcb.unacked_segments >= 2 {
        tcb.flags.insert(TcbFlags::NEED_ACK);
    } else if !tcb.ack_at.is_set() {
        tcb.ack_at = Deadline::after(cx.arm_ms, cx.cfg.delayed_ack_ms);
    }
}

/// RFC 5961 §7: a challenge ACK, within the connection's own budget and
/// the core's bound on answers to peers (`shared::reply_limit`, a ceiling
/// far above one connection's budget, randomised so it is no side channel).
fn challenge_ack(tcb: &mut Tcb, cx: &mut Cx<'_>) {
    let now32 = cx.now_ms as u32;
    if now32.wrapping_sub(tcb.challenge_window_start) >= 1_000 {
        tcb.challenge_window_start = now32;
        tcb.challenge_count = 0;
    }
    if tcb.challenge_count >= cx.cfg.challenge_acks_per_s {
        cx.counters.challenge_acks_suppressed += 1;
    } else if !cx.replies.admit(cx.now_ms) {
        cx.counters.challenge_acks_limited += 1;
    } else {
        tcb.challenge_count += 1;
        tcb.flags.insert(TcbFlags::NEED_ACK);
        cx.counters.challenge_acks += 1;
    }
}

/// An acceptable RST (SEG.SEQ == RCV.NXT), per state (RFC 9293 §3.10.7.4 second).
fn on_reset(tcb: &mut Tcb, cx: &mut Cx<'_>) -> Disposition {
    cx.counters.rst_received += 1;
    match tcb.state {
        State::SynReceived => {
            if tcb.flags.contains(TcbFlags::ACTIVE_OPEN) {
                super::teardown::fail_connect(tcb, cx, Errno::ConnRefused);
            }
            Disposition::Free
        }
        State::TimeWait if cx.cfg.time_wait_rst == TimeWaitRst::Ignore => Disposition::Keep,
        State::TimeWait if tcb.closed_by_client() => Disposition::Free,
        // TIME-WAIT after shutdown(SEND), handle still held: as below.
        _ => {
            cx.release_send(tcb);
            if tcb.pending == Pending::Close {
                super::teardown::complete_close(tcb, cx, Outcome::ResetByPeer);
                return Disposition::Free;
            }
            if tcb.flags.contains(TcbFlags::ORPHAN) {
                return Disposition::Free;
            }
            // The client still holds the handle: tell it, keep the record
            // (operations now fail with ECONNRESET) until it closes.
            cx.event(tcb, Errno::ConnReset, Detail::Reset);
            tcb.state = State::Closed;
            tcb.end = Some(End::PeerReset);
            tcb.rtx_at = Deadline::NONE;
            tcb.close_at = Deadline::NONE;
            tcb.ack_at = Deadline::NONE;
            Disposition::Unindex
        }
    }
}

/// Data arrived that can never be delivered: after close (RFC 9293 §3.10.7.4
/// seventh; RFC 2525 §2.17) or after shutdown(RECEIVE) ([decision]: Winsock
/// semantics, docs/close-semantics.md#shutdown). The connection is reset.
fn data_after_close(tcb: &mut Tcb, cx: &mut Cx<'_>) -> Disposition {
    if tcb.closed_by_client() {
        if tcb.pending == Pending::Close {
            super::teardown::complete_close(tcb, cx, Outcome::Aborted);
        }
        let ctl = hard_close(tcb, cx);
        cx.counters.rst_data_after_close += u64::from(ctl.is_some());
        return ctl.map_or(Disposition::Free, Disposition::ResetAndFree);
    }
    let ctl = local_abort(tcb, cx);
    cx.counters.rst_data_after_close += u64::from(ctl.is_some());
    ctl.map_or(Disposition::Unindex, Disposition::ResetAndUnindex)
}

/// The peer's FIN, in order (RFC 9293 §3.10.7.4 eighth).
fn on_fin(tcb: &mut Tcb, cx: &mut Cx<'_>) {
    tcb.rcv_nxt = tcb.rcv_nxt.wrapping_add(1);
    tcb.flags
        .insert(TcbFlags::NEED_ACK | TcbFlags::FIN_RECEIVED);
    let our_fin_acked = tcb.flags.contains(TcbFlags::FIN_SENT) && tcb.snd_una == tcb.snd_max;
    match tcb.state {
        State::SynReceived | State::Established => {
            tcb.state = State::CloseWait;
            if !tcb.flags.contains(TcbFlags::SHUT_RD) {
                cx.event(tcb, Errno::Ok, Detail::PeerClosed);
            }
        }
        State::FinWait1 => {
            // After shutdown(SEND) the client still reads: it is owed its
            // EOF (docs/close-semantics.md#shutdown: the graceful pattern waits for
            // it). An orphan gets no event (`Cx::event` drops it).
            if !tcb.flags.contains(TcbFlags::SHUT_RD) {
                cx.event(tcb, Errno::Ok, Detail::PeerClosed);
            }
            if our_fin_acked {
                enter_time_wait(tcb, cx);
            } else {
                tcb.state = State::Closing;
            }
        }
        State::FinWait2 => {
            if !tcb.flags.contains(TcbFlags::SHUT_RD) {
                cx.event(tcb, Errno::Ok, Detail::PeerClosed);
            }
            enter_time_wait(tcb, cx);
        }
        _ => {}
    }
    check_close_done(tcb, cx);
}
