//! The entry points of the close matrix: close, abort, shutdown, bulk close
//! and client exit (docs/close-semantics.md#the-matrix).
//!
//! It owns turning a request into the matrix's inputs, asking
//! [`matrix::decide`] and carrying the answer out with `execute`, always
//! in the same order: cancel, count, orphan, reply, then the wire (RST or
//! FIN) and the record. It may not free records or send frames: it returns
//! a `Disposition`, like `input` and `timers`.

use lingerd_abi::Errno;

use super::cx::Cx;
use super::matrix::{self, CloseAction, CloseRequest, FinBound, Life, Reply, SendSide, Wire};
use super::state::State;
use super::tcb::{Deadline, Pending, Tcb, TcbFlags};
use super::teardown::{
    cancel_outstanding, check_close_done, count_outcome, end_of, hard_close, local_abort, queue_fin,
};
use crate::shared::{ClientExitPolicy, CloseMode, Detail, Disposition};
use lingerd_abi::vocab::Shutdown;

/// The matrix's view of a connection.
fn facts(tcb: &Tcb) -> (Life, bool, SendSide) {
    let life = match end_of(tcb) {
        Some(end) => Life::Ended(end),
        None => Life::Live(tcb.state),
    };
    let send = if tcb.flags.contains(TcbFlags::SHUT_WR) && !tcb.all_acked() {
        SendSide::ShutPending
    } else if tcb.queued() > 0 || tcb.flight() > 0 {
        SendSide::Pending
    } else {
        SendSide::Drained
    };
    (life, tcb.unconsumed > 0, send)
}

/// Decides and executes `request`. `linger_ms` bounds a FIN whose bound is
/// a linger time (the connection's own, or a bulk close's).
fn run(
    tcb: &mut Tcb,
    cx: &mut Cx<'_>,
    request: CloseRequest,
    user_data: u64,
    linger_ms: u32,
) -> Disposition {
    let (life, unread, send) = facts(tcb);
    let action = matrix::decide(life, tcb.linger.close_kind(), unread, send, request);
    execute(tcb, cx, action, user_data, linger_ms)
}

/// Carries out one cell of the matrix, in the order of its fields.
pub(crate) fn execute(
    tcb: &mut Tcb,
    cx: &mut Cx<'_>,
    action: CloseAction,
    user_data: u64,
    linger_ms: u32,
) -> Disposition {
    let owner = tcb.owner;
    if action.cancel {
        cancel_outstanding(tcb, cx);
    }
    if let Some(outcome) = action.count {
        count_outcome(cx, outcome);
    }
    if action.orphan {
        tcb.flags.insert(TcbFlags::ORPHAN);
    }
    match action.reply {
        Reply::Nothing | Reply::WhenAcked => {}
        Reply::Closed(outcome) => {
            cx.complete(owner, user_data, Errno::Ok, Detail::Closed(outcome));
        }
        Reply::Ok => cx.complete(owner, user_data, Errno::Ok, Detail::None),
        Reply::Fail(e) => {
            cx.counters.requests_failed += 1;
            cx.complete(owner, user_data, e, Detail::None);
        }
    }
    match action.wire {
        Wire::Nothing => Disposition::Keep,
        Wire::Release => {
            cx.release_send(tcb);
            tcb.state = State::Closed;
            Disposition::Free
        }
        Wire::Reset { unread, .. } => {
            let ctl = hard_close(tcb, cx);
            // Each RST counts under one reason.
            let sent = u64::from(ctl.is_some());
            if unread {
                cx.counters.rst_close_unread += sent;
            } else {
                cx.counters.rst_abort += sent;
            }
            ctl.map_or(Disposition::Free, Disposition::ResetAndFree)
        }
        Wire::Fin(bound) => {
            // A close request that queues the FIN times it to the wire
            // (a FIN queued before, by shutdown(SEND), is not this close's).
            if !tcb.flags.contains(TcbFlags::FIN_QUEUED)
                && let Some(ns) = cx.rst_clock.request_ns()
            {
                tcb.fin_asked_us = (ns / 1000) as u32 | 1;
            }
            queue_fin(tcb);
            let ms = match bound {
                FinBound::OrphanTimeout => cx.cfg.orphan_timeout_ms,
                FinBound::LingerTime | FinBound::HardDeadline | FinBound::Blocking => linger_ms,
            };
            match bound {
                FinBound::OrphanTimeout => {}
                FinBound::LingerTime => tcb.flags.insert(TcbFlags::LINGER_DEADLINE),
                FinBound::HardDeadline => tcb.flags.insert(TcbFlags::HARD_DEADLINE),
                FinBound::Blocking => {
                    tcb.pending = Pending::Close;
                    tcb.user_data = user_data;
                }
            }
            // TIME-WAIT keeps its 2×MSL: both FINs are acknowledged.
            if tcb.state != State::TimeWait {
                tcb.close_at = Deadline::after(cx.arm_ms, ms);
            }
            if bound == FinBound::Blocking {
                check_close_done(tcb, cx);
            }
            Disposition::Keep
        }
        Wire::Shutdown { how, abort, .. } => {
            if how != Shutdown::Receive {
                queue_fin(tcb);
            }
            if how != Shutdown::Send {
                tcb.flags.insert(TcbFlags::SHUT_RD);
            }
            if !abort {
                return Disposition::Keep;
            }
            // [decision] Winsock semantics: data that can never be read
            // resets the connection (docs/close-semantics.md#shutdown).
            let ctl = local_abort(tcb, cx);
            cx.counters.rst_close_unread += u64::from(ctl.is_some());
            ctl.map_or(Disposition::Unindex, Disposition::ResetAndUnindex)
        }
    }
}

/// `close(handle, nonblocking)` on a connection or listener; the completion
/// is posted here, or later for a blocking linger close.
pub(crate) fn close(
    tcb: &mut Tcb,
    cx: &mut Cx<'_>,
    user_data: u64,
    nonblocking: bool,
) -> Disposition {
    let request = if nonblocking {
        CloseRequest::CloseNonblocking
    } else {
        CloseRequest::Close
    };
    let ms = tcb.linger.ms;
    run(tcb, cx, request, user_data, ms)
}

/// `abort(handle)` (docs/close-semantics.md#abort): close with linger
/// `{on, 0}`.
pub(crate) fn abort(tcb: &mut Tcb, cx: &mut Cx<'_>, user_data: u64) -> Disposition {
    run(tcb, cx, CloseRequest::Abort, user_data, 0)
}

/// `shutdown(handle, how)` (docs/close-semantics.md#shutdown), `how` as
/// the client sent it: anything but 0, 1, 2 fails with EINVAL.
pub(crate) fn shutdown(
    tcb: &mut Tcb,
    cx: &mut Cx<'_>,
    user_data: u64,
    how: Shutdown,
) -> Disposition {
    run(tcb, cx, CloseRequest::Shutdown(how), user_data, 0)
}

/// A close done by `close_matching` (docs/close-semantics.md#bulk-close):
/// no per-connection completion (the job reports a count), the handle is
/// dead afterwards.
pub(crate) fn close_for_match(tcb: &mut Tcb, cx: &mut Cx<'_>, mode: CloseMode) -> Disposition {
    let (sweep, ms) = match mode {
        CloseMode::Graceful => (matrix::Sweep::Graceful, 0),
        CloseMode::Abort => (matrix::Sweep::Abort, 0),
        CloseMode::Linger { ms } => (matrix::Sweep::Linger, ms),
        CloseMode::Deadline { ms } => (matrix::Sweep::Deadline, ms),
    };
    run(tcb, cx, CloseRequest::Sweep(sweep), 0, ms)
}

/// Its client went away (docs/close-semantics.md#client-exit): `policy`
/// for the connection, nobody told.
pub(crate) fn client_exit(tcb: &mut Tcb, cx: &mut Cx<'_>, policy: ClientExitPolicy) -> Disposition {
    // Nobody listens any more: no events for this connection from here.
    tcb.flags.insert(TcbFlags::ORPHAN);
    let ms = tcb.linger.ms;
    run(tcb, cx, CloseRequest::ClientExit(policy), 0, ms)
}
