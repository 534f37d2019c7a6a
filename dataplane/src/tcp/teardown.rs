//! How a connection ends: the primitives every close path shares (hard
//! close, local abort, TIME-WAIT, the natural end, completing pending
//! connect and close requests, counting outcomes).
//!
//! It owns these state changes for one connection; the choice of which to
//! make is the caller's: the close matrix (`close`), segment arrival
//! (`input`) or a deadline (`timers`). It may not free records or send
//! frames: it returns a [`Disposition`] or a control segment.

use lingerd_abi::Errno;

use super::cx::Cx;
use super::matrix::End;
use super::state::State;
use super::tcb::{Deadline, Pending, Tcb, TcbFlags};
use crate::shared::CtlSegment;
use crate::shared::{Detail, Disposition, Outcome};

/// Completes a pending connect successfully.
pub(crate) fn finish_connect(tcb: &mut Tcb, cx: &mut Cx<'_>) {
    if tcb.pending == Pending::Connect {
        tcb.pending = Pending::Nothing;
        cx.counters.connected += 1;
        let local_port = cx.tuple.local_port;
        cx.complete(
            tcb.owner,
            tcb.user_data,
            Errno::Ok,
            Detail::Connected { local_port },
        );
    }
}

/// Fails a pending connect.
pub(crate) fn fail_connect(tcb: &mut Tcb, cx: &mut Cx<'_>, err: Errno) {
    if tcb.pending == Pending::Connect {
        tcb.pending = Pending::Nothing;
        cx.complete(tcb.owner, tcb.user_data, err, Detail::None);
    }
    tcb.state = State::Closed;
}

/// Completes a pending blocking close with `outcome` (result 0, as Winsock
/// requires; the outcome is the extension of docs/close-semantics.md#outcomes). The handle is dead
/// from here on.
pub(crate) fn complete_close(tcb: &mut Tcb, cx: &mut Cx<'_>, outcome: Outcome) {
    if tcb.pending != Pending::Close {
        return;
    }
    tcb.pending = Pending::Nothing;
    tcb.flags.insert(TcbFlags::ORPHAN);
    count_outcome(cx, outcome);
    cx.complete(tcb.owner, tcb.user_data, Errno::Ok, Detail::Closed(outcome));
}

/// Counts a close by its outcome.
pub(crate) fn count_outcome(cx: &mut Cx<'_>, outcome: Outcome) {
    let c = &mut cx.counters;
    match outcome {
        Outcome::Graceful => c.closes_graceful += 1,
        Outcome::Background => c.closes_background += 1,
        Outcome::AbortedLinger => c.closes_aborted_linger += 1,
        Outcome::Aborted => c.closes_aborted += 1,
        Outcome::ResetByPeer => c.closes_reset_by_peer += 1,
    }
}

/// A blocking linger close finishes gracefully once all data and our FIN are
/// acknowledged (docs/close-semantics.md#linger-matrix).
pub(crate) fn check_close_done(tcb: &mut Tcb, cx: &mut Cx<'_>) {
    if tcb.pending == Pending::Close && tcb.flags.contains(TcbFlags::FIN_SENT) && tcb.all_acked() {
        complete_close(tcb, cx, Outcome::Graceful);
        // The linger deadline no longer applies; what is left (FIN-WAIT-2,
        // TIME-WAIT) is bounded by the orphan timeout or 2×MSL.
        tcb.close_at = match tcb.state {
            State::TimeWait => tcb.close_at,
            _ => Deadline::after(cx.arm_ms, cx.cfg.orphan_timeout_ms),
        };
    }
}

/// Enters TIME-WAIT for 2×MSL (RFC 9293 §3.10.7.4): timers other than the
/// lifetime one stop, the send buffer goes back to the pool.
pub(crate) fn enter_time_wait(tcb: &mut Tcb, cx: &mut Cx<'_>) {
    tcb.state = State::TimeWait;
    cx.counters.time_wait_entered += 1;
    tcb.rtx_at = Deadline::NONE;
    tcb.close_at = Deadline::after(cx.arm_ms, cx.cfg.time_wait_ms);
    tcb.flags
        .remove(TcbFlags::LINGER_DEADLINE | TcbFlags::HARD_DEADLINE);
    cx.release_send(tcb);
    check_close_done(tcb, cx);
}

/// Completes every outstanding request on the handle with
/// OPERATION_ABORTED (docs/close-semantics.md#rule-cancel).
pub(crate) fn cancel_outstanding(tcb: &mut Tcb, cx: &mut Cx<'_>) {
    if tcb.pending != Pending::Nothing {
        tcb.pending = Pending::Nothing;
        cx.complete(
            tcb.owner,
            tcb.user_data,
            Errno::OperationAborted,
            Detail::None,
        );
    }
}

/// The SEQ of our RST: SND.NXT (the highest sent), unless that lies beyond
/// the right edge of the peer's window, which only zero-window probes (or a
/// window the peer shrank) can cause. A peer accepts an RST only at exactly
/// its RCV.NXT and nothing at all in a zero window (RFC 9293 §3.10.7.4,
/// RFC 5961 §3.2): an RST at SND.NXT after an unacknowledged probe byte is
/// dropped unseen, and the peer that stopped reading never learns of the
/// hard close. Then the right edge, SND.UNA + SND.WND, is used, as Linux
/// does (`tcp_acceptable_seq`): the [decision] of docs/close-semantics.md#rst-seq.
pub(crate) fn rst_seq(tcb: &Tcb) -> crate::wire::SeqNumber {
    // Before ESTABLISHED the window plays no part (the SYN is what is
    // outstanding, and a simultaneous open has not recorded SND.WND yet).
    let edge = tcb.snd_una.wrapping_add(tcb.snd_wnd);
    if tcb.state.is_synchronized() && tcb.snd_max.diff(edge) > 0 {
        edge
    } else {
        tcb.snd_max
    }
}

/// The hard close primitive (docs/close-semantics.md#abort): cancels outstanding requests, discards the
/// queues, and returns the RST to send, `<SEQ=SND.NXT><ACK=RCV.NXT><RST,ACK>`,
/// in the states that send one (RFC 9293 §3.10.5 ABORT call; none in SYN-SENT,
/// CLOSING, LAST-ACK, TIME-WAIT). The caller frees the record.
pub(crate) fn hard_close(tcb: &mut Tcb, cx: &mut Cx<'_>) -> Option<CtlSegment> {
    cancel_outstanding(tcb, cx);
    cx.release_send(tcb);
    let ctl = tcb
        .state
        .abort_sends_rst()
        .then(|| cx.rst_ack(rst_seq(tcb), tcb.rcv_nxt));
    tcb.state = State::Closed;
    ctl
}

/// Resets a connection the client still holds (shutdown(RECEIVE) with data
/// that can never be delivered): RST out, record kept until close, later
/// operations fail with ECONNABORTED. The caller counts the RST's reason.
pub(crate) fn local_abort(tcb: &mut Tcb, cx: &mut Cx<'_>) -> Option<CtlSegment> {
    cx.release_send(tcb);
    let ctl = tcb
        .state
        .abort_sends_rst()
        .then(|| cx.rst_ack(rst_seq(tcb), tcb.rcv_nxt));
    cx.event(tcb, Errno::ConnAborted, Detail::Reset);
    tcb.state = State::Closed;
    tcb.end = Some(End::LocalAbort);
    tcb.rtx_at = Deadline::NONE;
    tcb.close_at = Deadline::NONE;
    tcb.ack_at = Deadline::NONE;
    ctl
}

/// Queues our FIN after the data (RFC 9293 §3.10.4 CLOSE / shutdown SEND).
pub(crate) fn queue_fin(tcb: &mut Tcb) {
    if tcb.flags.contains(TcbFlags::FIN_QUEUED) {
        return;
    }
    tcb.flags.insert(TcbFlags::FIN_QUEUED | TcbFlags::SHUT_WR);
    tcb.state = match tcb.state {
        State::Established => State::FinWait1,
        State::CloseWait => State::LastAck,
        s => s,
    };
}

/// Why the connection ended, if it has (its state is CLOSED and the client
/// still holds the handle).
pub(crate) fn end_of(tcb: &Tcb) -> Option<End> {
    if tcb.state != State::Closed {
        None
    } else {
        // A record without a reason ended by itself (see `finished`).
        Some(tcb.end.unwrap_or(End::Finished))
    }
}

/// The error a dead-but-held handle reports, if the connection is dead.
pub(crate) fn dead_error(tcb: &Tcb) -> Option<Errno> {
    end_of(tcb).map(End::errno)
}

/// The connection ended by itself (our FIN acknowledged in LAST-ACK,
/// TIME-WAIT over or replaced by a new incarnation). The record is freed if
/// the client gave the handle up; otherwise it is kept in CLOSED, out of the
/// 4-tuple index and with no timer, until the client closes it (docs/close-semantics.md#handle-death:
/// only a close kills a handle, so the client's close still completes, with
/// GRACEFUL, instead of failing with ENOTSOCK).
pub(crate) fn finished(tcb: &mut Tcb, cx: &mut Cx<'_>) -> Disposition {
    cx.release_send(tcb);
    tcb.state = State::Closed;
    tcb.end = Some(End::Finished);
    tcb.rtx_at = Deadline::NONE;
    tcb.close_at = Deadline::NONE;
    tcb.ack_at = Deadline::NONE;
    if tcb.closed_by_client() {
        Disposition::Free
    } else {
        Disposition::Unindex
    }
}
