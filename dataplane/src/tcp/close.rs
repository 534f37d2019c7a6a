//! Close semantics for one connection: the linger matrix, abort, shutdown
//! and the completions they owe (CLOSE-SEMANTICS.md §2–§4).
//!
//! It owns the decisions "what does this close do in this state with this
//! linger setting" and the bookkeeping of pending close/connect requests.
//! It may not free records or send frames: it returns a [`Disposition`] or
//! a control segment, and sets output flags, like `input`.

use lingerd_abi::Errno;

use super::cx::Cx;
use super::input::{Ctl, Disposition};
use super::linger::CloseKind;
use super::state::State;
use super::tcb::{NEVER, Tcb, TcbFlags};
use crate::engine::api::{CloseOutcome, Detail};
use lingerd_abi::Shutdown;

/// Completes a pending connect successfully.
pub(crate) fn finish_connect(tcb: &mut Tcb, cx: &mut Cx<'_>) {
    if tcb.flags.has(TcbFlags::CONNECT_PENDING) {
        tcb.flags.clear(TcbFlags::CONNECT_PENDING);
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
    if tcb.flags.has(TcbFlags::CONNECT_PENDING) {
        tcb.flags.clear(TcbFlags::CONNECT_PENDING);
        cx.complete(tcb.owner, tcb.user_data, err, Detail::None);
    }
    tcb.state = State::Closed;
}

/// Completes a pending blocking close with `outcome` (result 0, as Winsock
/// requires; the outcome is the extension of §2 rule 5). The handle is dead
/// from here on.
pub(crate) fn complete_close(tcb: &mut Tcb, cx: &mut Cx<'_>, outcome: CloseOutcome) {
    if !tcb.flags.has(TcbFlags::CLOSE_PENDING) {
        return;
    }
    tcb.flags.clear(TcbFlags::CLOSE_PENDING);
    tcb.flags.set(TcbFlags::ORPHAN);
    count_outcome(cx, outcome);
    cx.complete(tcb.owner, tcb.user_data, Errno::Ok, Detail::Closed(outcome));
}

/// Counts a close by its outcome.
pub(crate) fn count_outcome(cx: &mut Cx<'_>, outcome: CloseOutcome) {
    let c = &mut cx.counters;
    match outcome {
        CloseOutcome::Graceful => c.closes_graceful += 1,
        CloseOutcome::Background => c.closes_background += 1,
        CloseOutcome::AbortedLinger => c.closes_aborted_linger += 1,
        CloseOutcome::Aborted => c.closes_aborted += 1,
        CloseOutcome::ResetByPeer => c.closes_reset_by_peer += 1,
    }
}

/// A blocking linger close finishes gracefully once all data and our FIN are
/// acknowledged (§2: "all data acknowledged and our FIN acknowledged").
pub(crate) fn check_close_done(tcb: &mut Tcb, cx: &mut Cx<'_>) {
    if tcb.flags.has(TcbFlags::CLOSE_PENDING)
        && tcb.flags.has(TcbFlags::FIN_SENT)
        && tcb.all_acked()
    {
        complete_close(tcb, cx, CloseOutcome::Graceful);
        // The linger deadline no longer applies; what is left (FIN-WAIT-2,
        // TIME-WAIT) is bounded by the orphan timeout or 2×MSL.
        tcb.close_at = match tcb.state {
            State::TimeWait => tcb.close_at,
            _ => cx
                .now_ms
                .saturating_add(u64::from(cx.cfg.orphan_timeout_ms)),
        };
    }
}

/// Enters TIME-WAIT for 2×MSL (RFC 9293 §3.10.7.4): timers other than the
/// lifetime one stop, the send buffer goes back to the pool.
pub(crate) fn enter_time_wait(tcb: &mut Tcb, cx: &mut Cx<'_>) {
    tcb.state = State::TimeWait;
    cx.counters.time_wait_entered += 1;
    tcb.rtx_at = NEVER;
    tcb.close_at = cx.now_ms.saturating_add(u64::from(cx.cfg.time_wait_ms));
    tcb.flags.clear(TcbFlags::LINGER_DEADLINE);
    cx.release_send(tcb);
    check_close_done(tcb, cx);
}

/// Completes every outstanding request on the handle with
/// OPERATION_ABORTED (§2 rule 2).
fn cancel_outstanding(tcb: &mut Tcb, cx: &mut Cx<'_>) {
    if tcb.flags.has(TcbFlags::CONNECT_PENDING) {
        tcb.flags.clear(TcbFlags::CONNECT_PENDING);
        cx.complete(
            tcb.owner,
            tcb.user_data,
            Errno::OperationAborted,
            Detail::None,
        );
    }
    if tcb.flags.has(TcbFlags::CLOSE_PENDING) {
        tcb.flags.clear(TcbFlags::CLOSE_PENDING);
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
/// hard close (CLOSE-SEMANTICS.md §7). Then the right edge, SND.UNA +
/// SND.WND, is used, as Linux does (`tcp_acceptable_seq`). [decision] §7
/// says SEQ = SND.NXT; this is the one case where the two cannot agree.
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

/// The hard close primitive (§3): cancels outstanding requests, discards the
/// queues, and returns the RST to send, `<SEQ=SND.NXT><ACK=RCV.NXT><RST,ACK>`,
/// in the states that send one (RFC 9293 §3.10.4 ABORT; none in SYN-SENT,
/// CLOSING, LAST-ACK, TIME-WAIT). The caller frees the record.
pub(crate) fn hard_close(tcb: &mut Tcb, cx: &mut Cx<'_>) -> Option<Ctl> {
    cancel_outstanding(tcb, cx);
    cx.release_send(tcb);
    let ctl = tcb
        .state
        .abort_sends_rst()
        .then(|| Ctl::rst_ack(rst_seq(tcb), tcb.rcv_nxt));
    tcb.state = State::Closed;
    ctl
}

/// Resets a connection the client still holds (shutdown(RECEIVE) with data
/// that can never be delivered): RST out, record kept until close, later
/// operations fail with ECONNABORTED.
pub(crate) fn local_abort(tcb: &mut Tcb, cx: &mut Cx<'_>) -> Option<Ctl> {
    cx.release_send(tcb);
    let ctl = tcb
        .state
        .abort_sends_rst()
        .then(|| Ctl::rst_ack(rst_seq(tcb), tcb.rcv_nxt));
    cx.counters.rst_abort += u64::from(ctl.is_some());
    cx.event(tcb, Errno::ConnAborted, Detail::Reset);
    tcb.state = State::Closed;
    tcb.flags.set(TcbFlags::LOCAL_ABORT);
    tcb.rtx_at = NEVER;
    tcb.close_at = NEVER;
    tcb.ack_at = NEVER;
    ctl
}

/// Queues our FIN after the data (RFC 9293 §3.10.4 CLOSE / shutdown SEND).
fn queue_fin(tcb: &mut Tcb) {
    if tcb.flags.has(TcbFlags::FIN_QUEUED) {
        return;
    }
    tcb.flags.set(TcbFlags::FIN_QUEUED | TcbFlags::SHUT_WR);
    tcb.state = match tcb.state {
        State::Established => State::FinWait1,
        State::CloseWait => State::LastAck,
        s => s,
    };
}

/// The error a dead-but-held handle reports, if the connection is dead.
pub(crate) fn dead_error(tcb: &Tcb) -> Option<Errno> {
    if tcb.state != State::Closed {
        None
    } else if tcb.flags.has(TcbFlags::PEER_RESET) {
        Some(Errno::ConnReset)
    } else if tcb.flags.has(TcbFlags::TIMED_OUT) {
        Some(Errno::TimedOut)
    } else if tcb.flags.has(TcbFlags::LOCAL_ABORT) {
        Some(Errno::ConnAborted)
    } else {
        // Ended gracefully (see `finished`): no longer connected.
        Some(Errno::NotConn)
    }
}

/// The connection ended by itself (our FIN acknowledged in LAST-ACK,
/// TIME-WAIT over or replaced by a new incarnation). The record is freed if
/// the client gave the handle up; otherwise it is kept in CLOSED, out of the
/// 4-tuple index and with no timer, until the client closes it (§2 rule 1:
/// only a close kills a handle, so the client's close still completes, with
/// GRACEFUL, instead of failing with ENOTSOCK).
pub(crate) fn finished(tcb: &mut Tcb, cx: &mut Cx<'_>) -> Disposition {
    cx.release_send(tcb);
    tcb.state = State::Closed;
    tcb.rtx_at = NEVER;
    tcb.close_at = NEVER;
    tcb.ack_at = NEVER;
    if tcb.closed_by_client() {
        Disposition::Free
    } else {
        Disposition::Unindex
    }
}

/// `close(handle, nonblocking)` on a connection (not a listener). The
/// completion is posted here (or later, for a blocking linger close).
pub(crate) fn close(
    tcb: &mut Tcb,
    cx: &mut Cx<'_>,
    user_data: u64,
    nonblocking: bool,
) -> Disposition {
    let owner = tcb.owner;
    let done = |tcb: &mut Tcb, cx: &mut Cx<'_>, outcome: CloseOutcome| {
        count_outcome(cx, outcome);
        tcb.flags.set(TcbFlags::ORPHAN);
        cx.complete(owner, user_data, Errno::Ok, Detail::Closed(outcome));
    };
    match tcb.state {
        // The connection already ended under the client (peer reset, local
        // abort, timeout, or a graceful end after shutdown): closing just
        // releases the handle.
        State::Closed => {
            let outcome = if tcb.flags.has(TcbFlags::PEER_RESET) {
                CloseOutcome::ResetByPeer
            } else if tcb.flags.0 & (TcbFlags::LOCAL_ABORT | TcbFlags::TIMED_OUT) != 0 {
                CloseOutcome::Aborted
            } else {
                CloseOutcome::Graceful
            };
            done(tcb, cx, outcome);
            return Disposition::Free;
        }
        // §2 rule 7: nothing is sent in SYN-SENT; the connect is cancelled.
        State::SynSent => {
            cancel_outstanding(tcb, cx);
            tcb.state = State::Closed;
            done(tcb, cx, CloseOutcome::Aborted);
            return Disposition::Free;
        }
        // Both FINs are acknowledged already: nothing left to linger for.
        State::TimeWait => {
            done(tcb, cx, CloseOutcome::Graceful);
            return Disposition::Keep;
        }
        _ => {}
    }
    // §2 rule 6: unread data turns any close into a hard close.
    if tcb.unconsumed > 0 {
        cx.counters.abort_on_close_unread += 1;
        return abort_now(tcb, cx, user_data);
    }
    match tcb.linger.close_kind() {
        CloseKind::Hard => abort_now(tcb, cx, user_data),
        CloseKind::Background => {
            graceful_in_background(tcb, cx, u64::from(cx.cfg.orphan_timeout_ms), false);
            done(tcb, cx, CloseOutcome::Background);
            Disposition::Keep
        }
        CloseKind::Linger { ms } => {
            let pending_data = tcb.queued() > 0 || tcb.flight() > 0;
            if nonblocking && tcb.flags.has(TcbFlags::SHUT_WR) && !tcb.all_acked() {
                // Rule 3c [decision]: after shutdown(SEND) a non-blocking
                // close returns at once; the linger deadline still bounds it.
                graceful_in_background(tcb, cx, u64::from(ms), true);
                done(tcb, cx, CloseOutcome::Background);
                return Disposition::Keep;
            }
            if nonblocking && pending_data {
                // §2: EWOULDBLOCK, the handle stays valid, nothing started.
                cx.counters.requests_failed += 1;
                cx.complete(owner, user_data, Errno::WouldBlock, Detail::None);
                return Disposition::Keep;
            }
            // Blocking, or non-blocking with nothing queued (which §2 says
            // behaves like the blocking call): FIN now, complete when it is
            // acknowledged or when `ms` expire.
            queue_fin(tcb);
            tcb.flags.set(TcbFlags::CLOSE_PENDING);
            tcb.user_data = user_data;
            tcb.close_at = cx.now_ms.saturating_add(u64::from(ms));
            check_close_done(tcb, cx);
            Disposition::Keep
        }
    }
}

/// Hard close in answer to a request: RST (where the state sends one), free,
/// complete with ABORTED.
fn abort_now(tcb: &mut Tcb, cx: &mut Cx<'_>, user_data: u64) -> Disposition {
    let owner = tcb.owner;
    let ctl = hard_close(tcb, cx);
    cx.counters.rst_abort += u64::from(ctl.is_some());
    count_outcome(cx, CloseOutcome::Aborted);
    tcb.flags.set(TcbFlags::ORPHAN);
    cx.complete(
        owner,
        user_data,
        Errno::Ok,
        Detail::Closed(CloseOutcome::Aborted),
    );
    ctl.map_or(Disposition::Free, Disposition::ResetAndFree)
}

/// `abort(handle)` (§3): identical to close with linger `{on, 0}`.
pub(crate) fn abort(tcb: &mut Tcb, cx: &mut Cx<'_>, user_data: u64) -> Disposition {
    if tcb.state == State::Closed {
        return close(tcb, cx, user_data, false);
    }
    abort_now(tcb, cx, user_data)
}

/// Starts a graceful close that the client no longer watches, bounded by
/// `bound_ms` (orphan timeout, or the linger deadline of rule 3c).
fn graceful_in_background(tcb: &mut Tcb, cx: &mut Cx<'_>, bound_ms: u64, linger_deadline: bool) {
    queue_fin(tcb);
    tcb.flags.set(TcbFlags::ORPHAN);
    if linger_deadline {
        tcb.flags.set(TcbFlags::LINGER_DEADLINE);
    }
    if tcb.state != State::TimeWait {
        tcb.close_at = cx.now_ms.saturating_add(bound_ms);
    }
}

/// `shutdown(handle, how)` (§4). Returns the disposition and posts the
/// completion.
pub(crate) fn shutdown(
    tcb: &mut Tcb,
    cx: &mut Cx<'_>,
    user_data: u64,
    how: Shutdown,
) -> Disposition {
    let owner = tcb.owner;
    let fail = |cx: &mut Cx<'_>, e: Errno| {
        cx.counters.requests_failed += 1;
        cx.complete(owner, user_data, e, Detail::None);
        Disposition::Keep
    };
    if let Some(e) = dead_error(tcb) {
        return fail(cx, e);
    }
    if matches!(
        tcb.state,
        State::Listen | State::SynSent | State::SynReceived
    ) {
        return fail(cx, Errno::NotConn);
    }
    let mut disposition = Disposition::Keep;
    if how.send() {
        queue_fin(tcb);
    }
    if how.receive() {
        tcb.flags.set(TcbFlags::SHUT_RD);
        if tcb.unconsumed > 0 {
            // [decision] Winsock semantics: data that can never be read
            // resets the connection.
            cx.counters.abort_on_close_unread += 1;
            let ctl = local_abort(tcb, cx);
            disposition = ctl.map_or(Disposition::Unindex, Disposition::ResetAndUnindex);
        }
    }
    cx.complete(owner, user_data, Errno::Ok, Detail::None);
    disposition
}

/// A close done by `close_matching` (§6): no per-connection completion (the
/// job reports a count), the handle is dead afterwards.
pub(crate) fn close_for_match(
    tcb: &mut Tcb,
    cx: &mut Cx<'_>,
    mode: crate::engine::api::MatchMode,
) -> Disposition {
    use crate::engine::api::MatchMode;
    if tcb.state == State::Closed {
        // Already dead (reset, aborted): only the record was left.
        cancel_outstanding(tcb, cx);
        return Disposition::Free;
    }
    if tcb.unconsumed > 0 || mode == MatchMode::Abort {
        if tcb.unconsumed > 0 {
            cx.counters.abort_on_close_unread += 1;
        }
        let ctl = hard_close(tcb, cx);
        cx.counters.rst_abort += u64::from(ctl.is_some());
        count_outcome(cx, CloseOutcome::Aborted);
        tcb.flags.set(TcbFlags::ORPHAN);
        return ctl.map_or(Disposition::Free, Disposition::ResetAndFree);
    }
    if tcb.state == State::SynSent {
        cancel_outstanding(tcb, cx);
        tcb.state = State::Closed;
        count_outcome(cx, CloseOutcome::Aborted);
        return Disposition::Free;
    }
    cancel_outstanding(tcb, cx);
    match mode {
        MatchMode::Linger { ms } => graceful_in_background(tcb, cx, u64::from(ms), true),
        _ => graceful_in_background(tcb, cx, u64::from(cx.cfg.orphan_timeout_ms), false),
    }
    count_outcome(cx, CloseOutcome::Background);
    Disposition::Keep
}
