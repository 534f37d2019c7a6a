//! The close matrix: what a close, abort, shutdown or bulk close does to one
//! connection, as a pure function of a handful of facts about it
//! (docs/close-semantics.md#the-matrix).
//!
//! It owns the decision only: [`decide`] reads no record, posts nothing and
//! sends nothing, so every input can be enumerated and the whole contract
//! printed as one table ([`render_table`], checked against the document by a
//! snapshot test). Carrying a [`CloseAction`] out is `close::execute`'s job.

use lingerd_abi::Errno;
use lingerd_abi::vocab::Shutdown;

use super::linger::CloseKind;
use super::state::State;
use crate::shared::{ClientExitPolicy, Outcome};

/// Why a connection the client still holds has ended
/// (docs/close-semantics.md#dead-handles).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum End {
    /// The peer reset it.
    PeerReset,
    /// Retransmissions (or the handshake) timed out.
    TimedOut,
    /// We reset it while the client held it (data after shutdown(RECEIVE),
    /// shutdown(RECEIVE) with data unread).
    LocalAbort,
    /// It ended by itself: both FINs acknowledged after a shutdown(SEND).
    Finished,
}

impl End {
    /// Every reason, in table order.
    pub const ALL: [End; 4] = [
        End::PeerReset,
        End::TimedOut,
        End::LocalAbort,
        End::Finished,
    ];

    /// The error a request on the dead handle gets.
    pub const fn errno(self) -> Errno {
        match self {
            End::PeerReset => Errno::ConnReset,
            End::TimedOut => Errno::TimedOut,
            End::LocalAbort => Errno::ConnAborted,
            End::Finished => Errno::NotConn,
        }
    }

    /// The outcome a close of the dead handle reports.
    pub const fn outcome(self) -> Outcome {
        match self {
            End::PeerReset => Outcome::ResetByPeer,
            End::TimedOut | End::LocalAbort => Outcome::Aborted,
            End::Finished => Outcome::Graceful,
        }
    }

    const fn label(self) -> &'static str {
        match self {
            End::PeerReset => "CLOSED (peer reset)",
            End::TimedOut => "CLOSED (timed out)",
            End::LocalAbort => "CLOSED (local abort)",
            End::Finished => "CLOSED (finished)",
        }
    }
}

/// The connection as the matrix sees it: alive in a state, or ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Life {
    /// In this state (never [`State::Closed`]: a closed record has an [`End`]).
    Live(State),
    /// Dead, the client still holding the handle.
    Ended(End),
}

/// The send side, as far as a non-blocking linger close cares
/// (docs/close-semantics.md#non-blocking).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SendSide {
    /// Nothing queued, nothing in flight.
    Drained,
    /// Data queued or in flight.
    Pending,
    /// shutdown(SEND) was called and its data or FIN is not yet all
    /// acknowledged.
    ShutPending,
}

/// How a bulk close treats what it matched.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Sweep {
    /// Background graceful close bounded by the orphan timeout.
    Graceful,
    /// Hard close.
    Abort,
    /// Background graceful close bounded by the sweep's linger time, as
    /// SO_LINGER bounds it: dropped once data and FIN are acknowledged.
    Linger,
    /// Background graceful close, hard-closed at the sweep's deadline
    /// unless gone both ways by then.
    Deadline,
}

/// What is asked of the connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CloseRequest {
    /// `close`, blocking.
    Close,
    /// `close`, non-blocking.
    CloseNonblocking,
    /// `abort`.
    Abort,
    /// `shutdown(how)`.
    Shutdown(Shutdown),
    /// `close_matching` caught it (no completion of its own).
    Sweep(Sweep),
    /// Its client went away (nobody to tell).
    ClientExit(ClientExitPolicy),
}

/// Where a FIN's graceful close is bounded, and who waits for it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FinBound {
    /// Nobody waits; hard-closed when the orphan timeout expires.
    OrphanTimeout,
    /// Nobody waits; hard-closed when the linger time expires with data or
    /// the FIN still unacknowledged.
    LingerTime,
    /// Nobody waits; hard-closed when the deadline expires unless both
    /// FINs are through (FIN-WAIT-2 is reset too).
    HardDeadline,
    /// The close completes when all is acknowledged, or hard-closes
    /// (ABORTED_LINGER) when the linger time expires.
    Blocking,
}

/// What happens on the wire and to the record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Wire {
    /// Nothing: the record stays as it is.
    Nothing,
    /// No segment; the record is freed.
    Release,
    /// Hard close: the record is freed, with an RST in the states that
    /// send one (`rst`, [`State::abort_sends_rst`]).
    Reset {
        /// Forced by data the client never read (counted apart).
        unread: bool,
        /// An RST goes out.
        rst: bool,
    },
    /// FIN after the queued data.
    Fin(FinBound),
    /// shutdown: FIN after the queued data (SEND, BOTH), the receive side
    /// shut (RECEIVE, BOTH), and with unread data a local abort that
    /// leaves the handle dead but held (`abort`), with an RST in the states
    /// that send one (`rst`).
    Shutdown {
        /// Which sides.
        how: Shutdown,
        /// Unread data can never be delivered: the connection is aborted.
        abort: bool,
        /// The abort sends an RST.
        rst: bool,
    },
}

/// What the request's own completion says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reply {
    /// None (bulk close, client exit).
    Nothing,
    /// Now: OK with this outcome (also the one counted).
    Closed(Outcome),
    /// Now: OK (shutdown).
    Ok,
    /// Now: this error; nothing else happens.
    Fail(Errno),
    /// Later: when all is acknowledged (GRACEFUL) or the linger time
    /// expires (ABORTED_LINGER).
    WhenAcked,
}

/// One cell of the matrix. [`close::execute`](super::close) carries it out
/// in field order: cancel, count, orphan, reply, wire.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CloseAction {
    /// Complete a pending connect or close with OPERATION_ABORTED.
    pub cancel: bool,
    /// Count a close with this outcome.
    pub count: Option<Outcome>,
    /// The handle is dead to the client from here on.
    pub orphan: bool,
    /// The request's completion.
    pub reply: Reply,
    /// The wire and the record.
    pub wire: Wire,
}

impl CloseAction {
    const fn fail(e: Errno) -> CloseAction {
        CloseAction {
            cancel: false,
            count: None,
            orphan: false,
            reply: Reply::Fail(e),
            wire: Wire::Nothing,
        }
    }

    /// A handle closed now with `outcome`, counted, and told (`tell`) or not.
    const fn closed(cancel: bool, outcome: Outcome, tell: bool, wire: Wire) -> CloseAction {
        CloseAction {
            cancel,
            count: Some(outcome),
            orphan: true,
            reply: if tell {
                Reply::Closed(outcome)
            } else {
                Reply::Nothing
            },
            wire,
        }
    }
}

/// The close matrix (docs/close-semantics.md#the-matrix). Pure: the same
/// inputs always give the same action.
pub fn decide(
    life: Life,
    linger: CloseKind,
    unread: bool,
    send: SendSide,
    request: CloseRequest,
) -> CloseAction {
    use Outcome::{Aborted, Background, Graceful};
    let request = match request {
        // A client's exit is a sweep whose mode follows the policy (for
        // `Linger`, each connection's own setting, as an OS does).
        CloseRequest::ClientExit(policy) => CloseRequest::Sweep(match (policy, linger) {
            (ClientExitPolicy::Abort, _) | (ClientExitPolicy::Linger, CloseKind::Hard) => {
                Sweep::Abort
            }
            (ClientExitPolicy::Graceful, _) | (ClientExitPolicy::Linger, CloseKind::Background) => {
                Sweep::Graceful
            }
            (ClientExitPolicy::Linger, CloseKind::Linger { .. }) => Sweep::Linger,
        }),
        r => r,
    };
    let state = match life {
        Life::Live(State::Closed) => {
            return decide(Life::Ended(End::Finished), linger, unread, send, request);
        }
        Life::Live(s) => s,
        Life::Ended(end) => {
            return match request {
                // Only a close kills a handle (#dead-handles): it completes
                // with how the connection ended.
                CloseRequest::Close | CloseRequest::CloseNonblocking | CloseRequest::Abort => {
                    CloseAction::closed(false, end.outcome(), true, Wire::Release)
                }
                CloseRequest::Shutdown(_) => CloseAction::fail(end.errno()),
                _ => CloseAction {
                    cancel: true,
                    count: None,
                    orphan: true,
                    reply: Reply::Nothing,
                    wire: Wire::Release,
                },
            };
        }
    };
    let told = |r: CloseRequest| !matches!(r, CloseRequest::Sweep(_));
    let reset = |unread: bool| Wire::Reset {
        unread,
        rst: state.abort_sends_rst(),
    };
    match (state, request) {
        // A listener is closed at once; a sweep drops it uncounted.
        (State::Listen, CloseRequest::Shutdown(_)) => CloseAction::fail(Errno::NotConn),
        (State::Listen, CloseRequest::Sweep(_)) => CloseAction {
            cancel: false,
            count: None,
            orphan: true,
            reply: Reply::Nothing,
            wire: Wire::Release,
        },
        (State::Listen, r) => CloseAction::closed(false, Graceful, told(r), Wire::Release),
        (State::SynSent | State::SynReceived, CloseRequest::Shutdown(_)) => {
            CloseAction::fail(Errno::NotConn)
        }
        (_, CloseRequest::Shutdown(how)) => CloseAction {
            cancel: false,
            count: None,
            orphan: false,
            reply: Reply::Ok,
            wire: Wire::Shutdown {
                how,
                abort: how.receive() && unread,
                rst: how.receive() && unread && state.abort_sends_rst(),
            },
        },
        // #abort: a hard close whatever the linger setting.
        (_, CloseRequest::Abort) => CloseAction::closed(true, Aborted, true, reset(false)),
        // #syn-sent: nothing is sent, the connect is cancelled.
        (State::SynSent, r) => CloseAction::closed(true, Aborted, told(r), Wire::Release),
        // Both FINs are acknowledged already: nothing left to linger for.
        (State::TimeWait, CloseRequest::Close | CloseRequest::CloseNonblocking) => {
            CloseAction::closed(false, Graceful, true, Wire::Nothing)
        }
        // #unread-data: data never read turns any close into a hard close.
        (_, r) if unread => CloseAction::closed(true, Aborted, told(r), reset(true)),
        (_, CloseRequest::Sweep(Sweep::Abort)) => {
            CloseAction::closed(true, Aborted, false, reset(false))
        }
        (_, CloseRequest::Sweep(Sweep::Graceful)) => {
            CloseAction::closed(true, Background, false, Wire::Fin(FinBound::OrphanTimeout))
        }
        (_, CloseRequest::Sweep(Sweep::Linger)) => {
            CloseAction::closed(true, Background, false, Wire::Fin(FinBound::LingerTime))
        }
        (_, CloseRequest::Sweep(Sweep::Deadline)) => {
            CloseAction::closed(true, Background, false, Wire::Fin(FinBound::HardDeadline))
        }
        // #linger-matrix, by the linger setting.
        (_, r) => match (linger, r == CloseRequest::CloseNonblocking, send) {
            (CloseKind::Hard, _, _) => CloseAction::closed(true, Aborted, true, reset(false)),
            (CloseKind::Background, _, _) => {
                CloseAction::closed(false, Background, true, Wire::Fin(FinBound::OrphanTimeout))
            }
            // #non-blocking: after shutdown(SEND) a non-blocking close
            // returns at once, still bounded by the linger time.
            (CloseKind::Linger { .. }, true, SendSide::ShutPending) => {
                CloseAction::closed(false, Background, true, Wire::Fin(FinBound::LingerTime))
            }
            (CloseKind::Linger { .. }, true, SendSide::Pending) => {
                CloseAction::fail(Errno::WouldBlock)
            }
            (CloseKind::Linger { .. }, _, _) => CloseAction {
                // A connect still pending (simultaneous open) is cancelled
                // before the close takes its place (#rule-cancel).
                cancel: true,
                count: None,
                orphan: false,
                reply: Reply::WhenAcked,
                wire: Wire::Fin(FinBound::Blocking),
            },
        },
    }
}

/// The inputs of one row of the rendered table, each dimension as a label.
const DIMENSIONS: [&str; 5] = ["request", "state", "unread", "linger", "send side"];

/// Every value of each input of [`decide`], with its label, in table order.
struct Domain {
    requests: Vec<(CloseRequest, &'static str)>,
    lives: Vec<(Life, &'static str)>,
    unread: Vec<(bool, &'static str)>,
    linger: Vec<(CloseKind, &'static str)>,
    send: Vec<(SendSide, &'static str)>,
}

fn domain() -> Domain {
    let requests = vec![
        (CloseRequest::Close, "close"),
        (CloseRequest::CloseNonblocking, "close (non-blocking)"),
        (CloseRequest::Abort, "abort"),
        (
            CloseRequest::Shutdown(Shutdown::Receive),
            "shutdown(RECEIVE)",
        ),
        (CloseRequest::Shutdown(Shutdown::Send), "shutdown(SEND)"),
        (CloseRequest::Shutdown(Shutdown::Both), "shutdown(BOTH)"),
        (
            CloseRequest::Sweep(Sweep::Graceful),
            "close_matching graceful",
        ),
        (CloseRequest::Sweep(Sweep::Abort), "close_matching abort"),
        (CloseRequest::Sweep(Sweep::Linger), "close_matching linger"),
        (
            CloseRequest::Sweep(Sweep::Deadline),
            "close_matching deadline",
        ),
        (
            CloseRequest::ClientExit(ClientExitPolicy::Linger),
            "client exit, policy linger",
        ),
        (
            CloseRequest::ClientExit(ClientExitPolicy::Graceful),
            "client exit, policy graceful",
        ),
        (
            CloseRequest::ClientExit(ClientExitPolicy::Abort),
            "client exit, policy abort",
        ),
    ];
    let mut lives: Vec<(Life, &'static str)> = State::ALL
        .into_iter()
        .filter(|s| *s != State::Closed)
        .map(|s| (Life::Live(s), s.name()))
        .collect();
    lives.extend(End::ALL.map(|e| (Life::Ended(e), e.label())));
    let unread = vec![(false, "no"), (true, "yes")];
    let linger = vec![
        (CloseKind::Background, "off"),
        (CloseKind::Hard, "on, 0"),
        (CloseKind::Linger { ms: 1 }, "on, t > 0"),
    ];
    let send = vec![
        (SendSide::Drained, "drained"),
        (SendSide::Pending, "pending"),
        (SendSide::ShutPending, "shut, pending"),
    ];
    Domain {
        requests,
        lives,
        unread,
        linger,
        send,
    }
}

fn outcome_name(o: Outcome) -> &'static str {
    match o {
        Outcome::Graceful => "GRACEFUL",
        Outcome::Background => "BACKGROUND",
        Outcome::AbortedLinger => "ABORTED_LINGER",
        Outcome::Aborted => "ABORTED",
        Outcome::ResetByPeer => "RESET_BY_PEER",
    }
}

/// The action as the table's last columns.
fn action_cells(a: &CloseAction) -> [String; 5] {
    let yes = |b: bool| if b { "yes" } else { "" }.to_string();
    let reply = match a.reply {
        Reply::Nothing => String::new(),
        Reply::Closed(o) => format!("OK, {}", outcome_name(o)),
        Reply::Ok => "OK".to_string(),
        Reply::Fail(e) => e.winsock_name().to_string(),
        Reply::WhenAcked => "later: when acked, or at linger expiry".to_string(),
    };
    let wire = match a.wire {
        Wire::Nothing => "-".to_string(),
        Wire::Release => "free".to_string(),
        Wire::Reset { unread, rst } => format!(
            "{}{}, free",
            if rst { "RST" } else { "no RST (state)" },
            if unread { " (unread)" } else { "" }
        ),
        Wire::Fin(FinBound::OrphanTimeout) => "FIN, orphan timeout".to_string(),
        Wire::Fin(FinBound::LingerTime) => "FIN, linger time while unacked".to_string(),
        Wire::Fin(FinBound::HardDeadline) => "FIN, RST at the deadline".to_string(),
        Wire::Fin(FinBound::Blocking) => "FIN, wait for ACK or linger time".to_string(),
        Wire::Shutdown { how, abort, rst } => {
            let mut parts = Vec::new();
            if how.send() {
                parts.push("FIN");
            }
            if how.receive() {
                parts.push("stop receiving");
            }
            if abort {
                parts.push(if rst {
                    "RST (unread), handle kept"
                } else {
                    "no RST (state), handle kept"
                });
            }
            parts.join(", ")
        }
    };
    [
        yes(a.cancel),
        a.count
            .map_or(String::new(), |o| outcome_name(o).to_string()),
        yes(a.orphan),
        reply,
        wire,
    ]
}

/// The whole matrix as a Markdown table: every input of [`decide`] is
/// covered by exactly one row. Rows are merged where the action does not
/// depend on an input (shown as "any"), and values of an input that lead to
/// the same sub-table share a row.
pub fn render_table() -> String {
    let Domain {
        requests,
        lives,
        unread,
        linger,
        send,
    } = domain();
    let labels: [Vec<&'static str>; 5] = [
        requests.iter().map(|x| x.1).collect(),
        lives.iter().map(|x| x.1).collect(),
        unread.iter().map(|x| x.1).collect(),
        linger.iter().map(|x| x.1).collect(),
        send.iter().map(|x| x.1).collect(),
    ];
    let sizes = labels.each_ref().map(Vec::len);
    let cell = |idx: &[usize; 5]| {
        decide(
            lives[idx[1]].0,
            linger[idx[3]].0,
            unread[idx[2]].0,
            send[idx[4]].0,
            requests[idx[0]].0,
        )
    };
    let mut out = String::new();
    out.push_str("| ");
    out.push_str(&DIMENSIONS.join(" | "));
    out.push_str(" | cancel | count | orphan | reply | wire, record |\n");
    out.push_str(&"|---".repeat(DIMENSIONS.len() + 5));
    out.push_str("|\n");
    let mut prefix: [Vec<usize>; 5] = Default::default();
    emit(0, &mut prefix, &sizes, &labels, &cell, &mut out);
    out
}

/// Every action in the sub-space where the dimensions before `d` take the
/// values `prefix` (their first value stands for the group) and those from
/// `d` on take every value, in order.
fn signature(
    d: usize,
    fixed: &[usize; 5],
    sizes: &[usize; 5],
    cell: &dyn Fn(&[usize; 5]) -> CloseAction,
) -> Vec<CloseAction> {
    let mut out = Vec::new();
    let mut idx = *fixed;
    fn walk(
        k: usize,
        idx: &mut [usize; 5],
        sizes: &[usize; 5],
        cell: &dyn Fn(&[usize; 5]) -> CloseAction,
        out: &mut Vec<CloseAction>,
    ) {
        if k == 5 {
            out.push(cell(idx));
            return;
        }
        for v in 0..sizes[k] {
            idx[k] = v;
            walk(k + 1, idx, sizes, cell, out);
        }
    }
    walk(d, &mut idx, sizes, cell, &mut out);
    out
}

fn emit(
    d: usize,
    prefix: &mut [Vec<usize>; 5],
    sizes: &[usize; 5],
    labels: &[Vec<&'static str>; 5],
    cell: &dyn Fn(&[usize; 5]) -> CloseAction,
    out: &mut String,
) {
    let mut fixed = [0usize; 5];
    for (k, p) in prefix.iter().enumerate().take(d) {
        fixed[k] = p[0];
    }
    // Group the values of dimension `d` by the sub-table they lead to.
    let mut groups: Vec<(Vec<usize>, Vec<CloseAction>)> = Vec::new();
    for v in 0..sizes[d] {
        fixed[d] = v;
        let sig = signature(d + 1, &fixed, sizes, cell);
        match groups.iter_mut().find(|g| g.1 == sig) {
            Some(g) => g.0.push(v),
            None => groups.push((vec![v], sig)),
        }
    }
    for (values, sig) in groups {
        prefix[d] = values;
        if d + 1 == 5 || sig.iter().all(|a| *a == sig[0]) {
            out.push('|');
            for (k, vals) in prefix.iter().enumerate() {
                out.push(' ');
                if k > d || (vals.len() == sizes[k] && sizes[k] > 1) {
                    out.push_str("any");
                } else {
                    let names: Vec<&str> = vals.iter().map(|&v| labels[k][v]).collect();
                    out.push_str(&names.join(" / "));
                }
                out.push_str(" |");
            }
            for c in action_cells(&sig[0]) {
                out.push(' ');
                out.push_str(&c);
                out.push_str(" |");
            }
            out.push('\n');
        } else {
            emit(d + 1, prefix, sizes, labels, cell, out);
        }
    }
    prefix[d] = Vec::new();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_covers_every_input_exactly_once() {
        let Domain {
            requests,
            lives,
            unread,
            linger,
            send,
        } = domain();
        let table = render_table();
        let rows: Vec<Vec<&str>> = table
            .lines()
            .skip(2)
            .map(|l| {
                l.trim()
                    .trim_matches('|')
                    .split('|')
                    .map(str::trim)
                    .collect()
            })
            .collect();
        let covers =
            |cell: &str, label: &str| cell == "any" || cell.split(" / ").any(|c| c == label);
        for r in &requests {
            for l in &lives {
                for u in &unread {
                    for k in &linger {
                        for s in &send {
                            let inputs = [r.1, l.1, u.1, k.1, s.1];
                            let hits: Vec<_> = rows
                                .iter()
                                .filter(|row| (0..5).all(|i| covers(row[i], inputs[i])))
                                .collect();
                            assert_eq!(hits.len(), 1, "{inputs:?}");
                            let want = action_cells(&decide(l.0, k.0, u.0, s.0, r.0));
                            let got: Vec<String> =
                                hits[0][5..].iter().map(|c| c.to_string()).collect();
                            assert_eq!(got, want.to_vec(), "{inputs:?}");
                        }
                    }
                }
            }
        }
    }
}
