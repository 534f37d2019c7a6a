//! What `/metrics` learns from an engine about its closes, in virtual
//! time: each RST counted under exactly one reason (their sum is the RSTs
//! that left, read from the frames with etherparse), the close request →
//! wire histograms for RSTs and FINs, the linger lateness histogram; and a
//! paced `close_matching` that is cancelled midway (what it closed stays
//! closed and was reset at the peer engine, the rest stay established).
//!
//! Two engines exchange frames directly; B is the peer.

mod support;

use std::time::{Duration, Instant};

use lingerd_abi::Errno;
use lingerd_dataplane::engine::QueueEngine;
use lingerd_dataplane::engine::api::{CTL_CLIENT, CloseMode, Detail, Filter, Request};
use lingerd_dataplane::shared::counters::{Counters, Log2Histogram};
use lingerd_dataplane::table::Handle;
use lingerd_dataplane::tcp::State;
use lingerd_dataplane::tcp::linger::Linger;
use support::engine::{CLIENT, config, connect_many, drain, rst_port};

const PORT: u16 = 80;
const FIRST_PORT: u16 = 30_000;

fn pair(n: usize, t0: Instant) -> (QueueEngine, QueueEngine, Vec<Handle>, Vec<(Handle, u16)>) {
    let mut a = QueueEngine::new(config(1), t0);
    let mut b = QueueEngine::new(config(2), t0);
    let (accepted, connected) = connect_many(&mut a, &mut b, PORT, n, FIRST_PORT, t0);
    (a, b, accepted, connected)
}

/// Sends everything A has at `now` (counting its RSTs) to B, and B's
/// answers back, until both are quiet; `deliver: false` drops A's frames
/// (a peer that hears nothing). Returns A's RSTs.
fn exchange(a: &mut QueueEngine, b: &mut QueueEngine, now: Instant, deliver: bool) -> usize {
    let mut buf = [0u8; 2048];
    let mut rsts = 0;
    loop {
        let mut moved = false;
        while let Some(len) = a.poll_transmit(now, &mut buf) {
            rsts += usize::from(rst_port(&buf[..len]).is_some());
            if deliver {
                b.handle_rx(now, &buf[..len]);
            }
            moved = true;
        }
        while let Some(len) = b.poll_transmit(now, &mut buf) {
            a.handle_rx(now, &buf[..len]);
            moved = true;
        }
        if !moved {
            return rsts;
        }
    }
}

/// RSTs counted under every reason of the `rst_sent` family.
fn rst_sent(c: &Counters) -> u64 {
    c.fields()
        .iter()
        .filter(|f| matches!(f.family, Some(("rst_sent", _, _))))
        .map(|f| f.value)
        .sum()
}

fn only_bucket(h: &Log2Histogram, ns: u64) -> usize {
    let i = (0..h.buckets.len())
        .find(|&i| Log2Histogram::bound_ns(i).is_none_or(|b| ns <= b))
        .unwrap();
    assert_eq!(h.buckets[i], h.count(), "all in one bucket: {h:?}");
    i
}

#[test]
fn each_rst_counts_once_and_closes_are_timed_to_the_wire() {
    let t0 = Instant::now();
    let (mut a, mut b, conns, _) = pair(5, t0);
    let at = |ms: u64, us: u64| t0 + Duration::from_millis(ms) + Duration::from_micros(us);
    let mut rsts = 0;

    // Two aborts at 10 ms whose RSTs leave 50 µs later.
    for &h in &conns[..2] {
        a.handle_request(at(10, 0), CLIENT, 1, Request::Abort { handle: h });
    }
    rsts += exchange(&mut a, &mut b, at(10, 50), true);
    let c = a.counters().clone();
    assert_eq!(c.rst_abort, 2);
    assert_eq!(c.close_rst_wire.count(), 2);
    assert_eq!(c.close_rst_wire.sum_ns, 100_000);
    only_bucket(&c.close_rst_wire, 50_000);

    // A graceful close (linger off) whose FIN leaves 30 µs later. The FIN
    // is stamped in whole microseconds, so allow one either way.
    a.handle_request(
        at(20, 0),
        CLIENT,
        2,
        Request::Close {
            handle: conns[2],
            nonblocking: false,
        },
    );
    rsts += exchange(&mut a, &mut b, at(20, 30), true);
    let fin = &a.counters().close_fin_wire;
    assert_eq!(fin.count(), 1);
    assert!((29_000..=31_000).contains(&fin.sum_ns), "{fin:?}");

    // A blocking linger close of 100 ms to a peer that hears nothing: the
    // FIN is timed, then the RST leaves 3 ms after the deadline.
    let h = conns[3];
    a.handle_request(
        at(30, 0),
        CLIENT,
        3,
        Request::SetLinger {
            handle: h,
            linger: Linger { on: true, ms: 100 },
        },
    );
    a.handle_request(
        at(30, 0),
        CLIENT,
        4,
        Request::Close {
            handle: h,
            nonblocking: false,
        },
    );
    rsts += exchange(&mut a, &mut b, at(30, 0), false);
    assert_eq!(a.counters().close_fin_wire.count(), 2);
    a.handle_timeout(at(133, 0));
    rsts += exchange(&mut a, &mut b, at(133, 0), false);
    let c = a.counters().clone();
    assert_eq!(c.rst_linger_expired, 1);
    assert_eq!(c.closes_aborted_linger, 1);
    assert_eq!(c.linger_rst_late.count(), 1);
    assert_eq!(c.linger_rst_late.sum_ns, 3_000_000, "3 ms late");
    assert_eq!(
        c.close_rst_wire.count(),
        2,
        "a linger RST is not a request's"
    );

    // Data B sent that A's client never read: the close resets, timed as a
    // close request, counted as close_unread and not as an abort.
    let _ = drain(&mut b);
    let h = conns[4];
    let port = a.tuple(h).unwrap().remote_port;
    let bh = find_b(&b, port);
    b.handle_request(
        at(140, 0),
        CLIENT,
        9,
        Request::Send {
            handle: bh,
            data: b"unread".to_vec(),
        },
    );
    rsts += exchange(&mut a, &mut b, at(140, 0), true);
    a.handle_request(
        at(150, 0),
        CLIENT,
        5,
        Request::Close {
            handle: h,
            nonblocking: false,
        },
    );
    rsts += exchange(&mut a, &mut b, at(150, 10), true);
    let c = a.counters().clone();
    assert_eq!((c.rst_close_unread, c.rst_abort), (1, 2));
    assert_eq!(c.close_rst_wire.count(), 3);
    assert_eq!(c.closes_aborted, 3);

    // Every RST that left is counted under exactly one reason.
    assert_eq!(rst_sent(&c), rsts as u64, "{c:?}");
    assert_eq!(rsts, 4);
}

/// B's connection from `port`.
fn find_b(b: &QueueEngine, port: u16) -> Handle {
    let mut rows = Vec::new();
    b.list_connections(
        Instant::now(),
        &Filter {
            local_port: Some(port),
            ..Filter::default()
        },
        0,
        16,
        u32::MAX,
        &mut rows,
    );
    assert_eq!(rows.len(), 1, "{rows:?}");
    rows[0].handle
}

#[test]
fn a_cancelled_close_matching_leaves_the_rest_open() {
    const N: usize = 10;
    const JOB: u64 = 42;
    let t0 = Instant::now();
    let (mut a, mut b, _, _) = pair(N, t0);
    let _ = drain(&mut b);
    a.handle_request(
        t0,
        CTL_CLIENT,
        JOB,
        Request::CloseMatching {
            filter: Filter {
                local_port: Some(PORT),
                states: State::Established.bit(),
                ..Filter::default()
            },
            mode: CloseMode::Abort,
            pace_per_s: 4,
        },
    );
    // 1.6 s at 4 closes a second: about six closes.
    let mut now = t0;
    while now < t0 + Duration::from_millis(1600) {
        now += Duration::from_millis(10);
        a.handle_timeout(now);
        exchange(&mut a, &mut b, now, true);
    }
    let p = a.match_progress(CTL_CLIENT, JOB).expect("running");
    assert!((5..=7).contains(&p.closed), "{p:?}");
    assert!(p.walked > 0 && p.slots > 0, "{p:?}");
    assert_eq!(a.match_progress(CTL_CLIENT, JOB + 1), None);
    assert_eq!(a.match_progress(CLIENT, JOB), None, "another client's id");
    assert_eq!(a.cancel_match(CLIENT, JOB), None, "not CLIENT's job");

    let closed = a.cancel_match(CTL_CLIENT, JOB).expect("cancelled");
    assert_eq!(closed, p.closed);
    let done: Vec<_> = drain(&mut a)
        .into_iter()
        .filter(|c| c.client == CTL_CLIENT && !c.is_event)
        .collect();
    assert_eq!(done.len(), 1, "{done:?}");
    assert_eq!(done[0].result, Errno::OperationAborted);
    assert_eq!(done[0].detail, Detail::Count(closed));
    assert_eq!(a.match_progress(CTL_CLIENT, JOB), None);
    assert_eq!(a.cancel_match(CTL_CLIENT, JOB), None, "once");

    // Ten more seconds: nothing else closes.
    for _ in 0..100 {
        now += Duration::from_millis(100);
        a.handle_timeout(now);
        exchange(&mut a, &mut b, now, true);
    }
    assert!(drain(&mut a).iter().all(|c| c.client != CTL_CLIENT));
    assert_eq!(
        a.connection_count(),
        1 + N - closed as usize,
        "the listener and the rest"
    );
    let resets = drain(&mut b)
        .iter()
        .filter(|c| c.detail == Detail::Reset)
        .count();
    let mut open = Vec::new();
    b.list_connections(now, &Filter::default(), 0, 64, u32::MAX, &mut open);
    let established = open
        .iter()
        .filter(|c| c.state == State::Established)
        .count();
    assert_eq!(
        (resets, established),
        (closed as usize, N - closed as usize),
        "the peer: the closed ones reset, the rest established"
    );
}
