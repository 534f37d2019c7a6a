//! What a connection does when one of its deadlines passes: retransmission
//! and persist (RFC 6298 §5, RFC 9293 §3.8.6.1), delayed ACK, and the
//! lifetime deadline (linger, orphan, TIME-WAIT, SYN-RECEIVED).
//!
//! With SACK, the retransmission timer first runs as a tail loss probe
//! (the timing of RFC 8985 §7): a loss that leaves too few segments behind
//! it for duplicate ACKs is repaired after about two round trips instead
//! of a whole RTO.
//!
//! It owns the expiry rules only; the engine's wheel decides *when* this
//! runs (never before the earliest deadline, within the tick after it).

use lingerd_abi::Errno;

use super::cx::Cx;
use super::matrix::End;
use super::state::State;
use super::tcb::{Deadline, Pending, Tcb, TcbFlags};
use super::teardown::{complete_close, fail_connect, hard_close};
use crate::shared::{Detail, Disposition, Outcome, RstClock};

/// Runs every deadline of `tcb` that has passed.
pub(crate) fn on_timer(tcb: &mut Tcb, cx: &mut Cx<'_>) -> Disposition {
    let now = cx.now_ms;
    if tcb.ack_at.is_due(now) {
        tcb.ack_at = Deadline::NONE;
        tcb.flags.insert(TcbFlags::NEED_ACK);
    }
    if let Some(due) = tcb.close_at.ms().filter(|&d| d <= now) {
        tcb.close_at = Deadline::NONE;
        let d = on_lifetime_expired(tcb, cx, due);
        if d != Disposition::Keep {
            return d;
        }
    }
    if tcb.rtx_at.is_due(now) {
        tcb.rtx_at = Deadline::NONE;
        return on_retransmit_timeout(tcb, cx);
    }
    Disposition::Keep
}

/// The lifetime deadline, due at `due_ms`: TIME-WAIT over, handshake too
/// slow, linger deadline (RST, outcome ABORTED_LINGER:
/// docs/close-semantics.md#linger-matrix), orphan timeout
/// (docs/close-semantics.md#orphan-timeout). A linger or `deadline=` RST is
/// timed against `due_ms` (how late it leaves).
fn on_lifetime_expired(tcb: &mut Tcb, cx: &mut Cx<'_>, due_ms: u64) -> Disposition {
    let late_from = RstClock::deadline(due_ms.saturating_mul(1_000_000));
    match tcb.state {
        State::TimeWait if tcb.flags.contains(TcbFlags::NEED_ACK) => {
            // The ACK of the peer's FIN has not gone out yet (a TIME-WAIT
            // of 0 ends in the loop iteration that entered it, before its
            // transmit): the last ACK goes first, the record a tick later.
            tcb.close_at = Deadline::after(cx.arm_ms, 1);
            Disposition::Keep
        }
        State::TimeWait => super::teardown::finished(tcb, cx),
        State::Closed => Disposition::Free,
        State::SynReceived if !tcb.flags.contains(TcbFlags::ACTIVE_OPEN) => Disposition::Free,
        _ if tcb.pending == Pending::Close => {
            complete_close(tcb, cx, Outcome::AbortedLinger);
            let ctl = hard_close(tcb, cx);
            cx.counters.rst_linger_expired += u64::from(ctl.is_some());
            *cx.rst_clock = late_from;
            ctl.map_or(Disposition::Free, Disposition::ResetAndFree)
        }
        _ if tcb.flags.contains(TcbFlags::ORPHAN) => {
            let (hard, lingered) = (
                tcb.flags.contains(TcbFlags::HARD_DEADLINE),
                tcb.flags.contains(TcbFlags::LINGER_DEADLINE),
            );
            let ctl = hard_close(tcb, cx);
            let sent = u64::from(ctl.is_some());
            if hard {
                cx.counters.rst_deadline_expired += sent;
                *cx.rst_clock = late_from;
            } else if lingered {
                cx.counters.rst_linger_expired += sent;
                *cx.rst_clock = late_from;
            } else {
                cx.counters.orphan_timeouts += 1;
                cx.counters.rst_orphan_timeout += sent;
            }
            ctl.map_or(Disposition::Free, Disposition::ResetAndFree)
        }
        _ => Disposition::Keep,
    }
}

/// The retransmission timer (also the SYN retry and persist timer).
fn on_retransmit_timeout(tcb: &mut Tcb, cx: &mut Cx<'_>) -> Disposition {
    match tcb.state {
        State::SynSent | State::SynReceived => {
            if tcb.rtt.backoffs() >= cx.cfg.syn_retries {
                if tcb.flags.contains(TcbFlags::ACTIVE_OPEN) {
                    fail_connect(tcb, cx, Errno::TimedOut);
                }
                return Disposition::Free;
            }
            tcb.rtt.on_timeout();
            tcb.flags.insert(TcbFlags::NEED_SYN);
            cx.counters.retransmits += 1;
            rearm(tcb, cx);
            Disposition::Keep
        }
        State::Closed | State::Listen | State::TimeWait => Disposition::Keep,
        _ => {
            let flight = tcb.flight();
            let probe = tcb
                .send
                .as_mut()
                .is_some_and(|b| std::mem::take(&mut b.board.probe_armed));
            if probe {
                if !tail_loss_probe(tcb, cx) {
                    // A recovery began since the probe was armed (or the
                    // window closed): this was no RTO, which runs from now.
                    rearm(tcb, cx);
                }
                return Disposition::Keep;
            }
            if tcb.snd_wnd == 0 && tcb.queued() > 0 && flight <= 1 {
                // Persist: the peer's window is closed with data waiting
                // (at most a previous one-byte probe outstanding). Probe
                // again, backing off; a live peer answering with a zero
                // window is never timed out (RFC 9293 §3.8.6.1: keep
                // probing), an orphan is bounded by its lifetime deadline.
                tcb.snd_nxt = tcb.snd_una;
                tcb.rtt.on_timeout();
                tcb.flags.insert(TcbFlags::PROBE);
                rearm(tcb, cx);
                return Disposition::Keep;
            }
            if flight == 0 {
                return Disposition::Keep;
            }
            if tcb.rtt.backoffs() >= cx.cfg.max_retransmits {
                cx.counters.retransmit_timeouts += 1;
                if tcb.closed_by_client() {
                    complete_close(tcb, cx, Outcome::Aborted);
                    hard_close(tcb, cx);
                    return Disposition::Free;
                }
                cx.event(tcb, Errno::TimedOut, Detail::Reset);
                cx.release_send(tcb);
                tcb.state = State::Closed;
                tcb.end = Some(End::TimedOut);
                tcb.close_at = Deadline::NONE;
                tcb.ack_at = Deadline::NONE;
                return Disposition::Unindex;
            }
            // RFC 6298 §5.4–5.6 and RFC 5681 §3.1: back off, collapse cwnd,
            // go back to SND.UNA; Karn: stop timing.
            tcb.cc.on_timeout(flight, tcb.snd_max, u32::from(tcb.mss));
            if let Some(buf) = tcb.send.as_mut() {
                // Go-back-N from SND.UNA: the scoreboard is not relied on
                // after a timeout (RFC 2018 §8), and a timeout is no
                // spurious fast recovery to undo.
                buf.board.clear();
            }
            tcb.rtt.on_timeout();
            tcb.snd_nxt = tcb.snd_una;
            tcb.flags.remove(TcbFlags::RTT_TIMING);
            cx.counters.retransmits += 1;
            rearm(tcb, cx);
            Disposition::Keep
        }
    }
}

/// The floor of the loss probe's timeout (Linux's too): below it, a
/// delayed or coalesced ACK would be taken for a loss.
const PROBE_MIN_MS: u32 = 10;

/// Arms the retransmission timer for the data in flight. With SACK,
/// outside a recovery and with more than one segment out, it first runs as
/// a tail loss probe: 2 × SRTT, at least [`PROBE_MIN_MS`], never later
/// than the RTO. (One segment out may be waiting for a delayed ACK.)
pub(crate) fn arm_rtx(tcb: &mut Tcb, arm_ms: u64, bounds: &super::rtt::RtoBounds) {
    arm(tcb, arm_ms, bounds, false);
}

/// After a send with the RTO already running: turns it into a loss probe
/// if one is now allowed (the flight grew past one segment), and leaves it
/// alone otherwise (sending does not restart the RTO, RFC 6298 §5.1).
pub(crate) fn arm_probe(tcb: &mut Tcb, arm_ms: u64, bounds: &super::rtt::RtoBounds) {
    if !tcb.send.as_ref().is_some_and(|b| b.board.probe_armed) {
        arm(tcb, arm_ms, bounds, true);
    }
}

fn arm(tcb: &mut Tcb, arm_ms: u64, bounds: &super::rtt::RtoBounds, only_probe: bool) {
    let rto = tcb.rtt.rto_ms(bounds);
    let eligible = tcb.cc.sack
        && !tcb.cc.in_recovery
        && tcb.state.is_synchronized()
        && tcb.flight() > u32::from(tcb.mss)
        && tcb.cc.may_recover(tcb.snd_una);
    let ms = match tcb.rtt.srtt_ms() {
        Some(srtt) if eligible => srtt.saturating_mul(2).max(PROBE_MIN_MS).min(rto),
        _ => rto,
    };
    if only_probe && ms >= rto {
        return;
    }
    if let Some(buf) = tcb.send.as_mut() {
        buf.board.probe_armed = ms < rto;
    }
    tcb.rtx_at = Deadline::after(arm_ms, ms);
}

/// The probe timer expired with no ACK since: the segment at SND.UNA is
/// taken for lost and goes again as the start of a recovery (cwnd halved
/// once; the timestamp undo of a spurious one applies as to any other),
/// and the RTO runs from here. Returns false when a recovery may not
/// start, and the expiry is then handled as an RTO.
fn tail_loss_probe(tcb: &mut Tcb, cx: &mut Cx<'_>) -> bool {
    let mss = u32::from(tcb.mss);
    if tcb.cc.in_recovery
        || tcb.snd_wnd == 0
        || tcb.flight() <= mss
        || !tcb.cc.may_recover(tcb.snd_una)
    {
        return false;
    }
    let before = (tcb.cc.cwnd, tcb.cc.ssthresh);
    tcb.cc.enter_recovery(tcb.flight(), tcb.snd_max, mss);
    super::input::begin_recovery(tcb, cx, before);
    cx.counters.loss_probes += 1;
    rearm(tcb, cx);
    true
}

/// Re-arms the (backed-off) retransmission timer here rather than leaving it
/// to the output path: a connection whose next hop is unresolved never gets
/// there, and must still time out (RFC 6298 §5.5 restarts the timer on
/// expiry).
fn rearm(tcb: &mut Tcb, cx: &Cx<'_>) {
    tcb.rtx_at = Deadline::after(cx.arm_ms, tcb.rtt.rto_ms(&cx.cfg.rto));
}
