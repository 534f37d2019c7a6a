//! RST pacing (`close.max_rst_per_sec`, an engine's share in
//! `EngineConfig::max_rst_per_s`) in virtual time: a shell loop that sleeps
//! until `poll_timeout` and sends what `poll_transmit` gives sees every RST
//! of a mass abort leave, in abort order, spaced by the rate; with the rate
//! at 0 they all leave at once. A reload changes the rate of the RSTs
//! already waiting. RSTs answering a peer (the responder) never wait.
//!
//! Two engines exchange frames directly; A's RSTs are read with etherparse,
//! never with lingerd's own `wire`, and are handed to B, whose connections
//! must all be reset.

mod support;

use std::time::{Duration, Instant};

use lingerd_abi::Errno;
use lingerd_dataplane::engine::QueueEngine;
use lingerd_dataplane::engine::api::Request;
use lingerd_dataplane::table::Handle;
use lingerd_dataplane::tcp::State;
use support::engine::{CLIENT, config, connect_many, drain, rst_port};

const PORT: u16 = 80;
const FIRST_PORT: u16 = 20_000;

/// A (pacing at `rate`) with `n` connections accepted from B, B's ports
/// `FIRST_PORT..`: A's handles in accept order, and B's handle and port of
/// each of its connections.
fn established(
    n: usize,
    rate: u32,
    t0: Instant,
) -> (QueueEngine, QueueEngine, Vec<Handle>, Vec<(Handle, u16)>) {
    let mut cfg = config(1);
    cfg.max_rst_per_s = rate;
    let mut a = QueueEngine::new(cfg, t0);
    let mut b = QueueEngine::new(config(2), t0);
    let (accepted, connected) = connect_many(&mut a, &mut b, PORT, n, FIRST_PORT, t0);
    (a, b, accepted, connected)
}

/// Aborts every handle at `now`, checking that each abort completes at
/// once (the completion is posted when the close is decided, before its
/// RST leaves), and returns B's ports in abort order.
fn abort_all(a: &mut QueueEngine, handles: &[Handle], now: Instant) -> Vec<u16> {
    let mut order = Vec::with_capacity(handles.len());
    for &handle in handles {
        order.push(a.tuple(handle).expect("open").remote_port);
        a.handle_request(now, CLIENT, handle.raw(), Request::Abort { handle });
    }
    let done = drain(a);
    for &h in handles {
        assert!(
            done.iter()
                .any(|c| c.user_data == h.raw() && !c.is_event && c.result == Errno::Ok),
            "abort of {h:?} completed when decided"
        );
    }
    assert_eq!(
        a.connection_count(),
        1,
        "records freed at once (the listener stays)"
    );
    order
}

/// The shell's loop in virtual time: sleep until `poll_timeout` (never
/// past `until`), run timers when due, send everything `poll_transmit`
/// gives (to B). Returns each RST's destination port and departure time
/// (ms after `from`). `at` is called with the virtual time before each
/// iteration and may change the engine (a reload).
fn run(
    a: &mut QueueEngine,
    b: &mut QueueEngine,
    from: Instant,
    until: Instant,
    mut at: impl FnMut(&mut QueueEngine, Instant),
) -> Vec<(u16, f64)> {
    let mut buf = [0u8; 2048];
    let mut sent = Vec::new();
    let mut now = from;
    loop {
        at(a, now);
        if a.poll_timeout().is_some_and(|t| t <= now) {
            a.handle_timeout(now);
        }
        while let Some(len) = a.poll_transmit(now, &mut buf) {
            if let Some(port) = rst_port(&buf[..len]) {
                let ms = now.duration_since(from).as_secs_f64() * 1e3;
                sent.push((port, ms));
            }
            b.handle_rx(now, &buf[..len]);
        }
        // B's answers (none expected to an RST) go back.
        while let Some(len) = b.poll_transmit(now, &mut buf) {
            a.handle_rx(now, &buf[..len]);
        }
        let Some(next) = a.poll_timeout() else {
            break;
        };
        if next > until {
            break;
        }
        // A wake-up never goes backwards; a "due now" answer after the
        // iteration above would be a busy loop: the test fails on it.
        assert!(
            next > now,
            "poll_timeout {next:?} not after {now:?} with nothing sent"
        );
        now = next;
    }
    sent
}

#[test]
fn five_thousand_aborts_at_a_thousand_per_second_leave_spaced_in_order_in_five_seconds() {
    let n = 5_000;
    let rate = 1_000u32;
    let t0 = Instant::now();
    let (mut a, mut b, handles, theirs) = established(n, rate, t0);
    let start = t0 + Duration::from_millis(1);
    let order = abort_all(&mut a, &handles, start);
    assert_eq!(a.paced_rsts_waiting(), n, "all wait in the pacing queue");
    assert_eq!(a.tx_backlog(), 0, "waiting RSTs are not a transmit backlog");
    let sent = run(
        &mut a,
        &mut b,
        start,
        start + Duration::from_secs(60),
        |_, _| {},
    );

    assert_eq!(sent.len(), n, "every RST left");
    let ports: Vec<u16> = sent.iter().map(|s| s.0).collect();
    assert_eq!(ports, order, "in abort order");
    // After the bucket's initial burst, one per 1/rate, never closer.
    let gap_ms = 1e3 / f64::from(rate);
    let burst = sent.iter().take_while(|s| s.1 == 0.0).count();
    assert!(burst >= 1 && burst <= n / 100, "initial burst {burst}");
    for w in sent[burst..].windows(2) {
        let gap = w[1].1 - w[0].1;
        assert!(
            (gap - gap_ms).abs() < 1e-3,
            "gap {gap} ms between {:?} and {:?}",
            w[0],
            w[1]
        );
    }
    let total_s = sent[n - 1].1 / 1e3;
    let expect_s = n as f64 / f64::from(rate);
    assert!(
        (total_s - expect_s).abs() <= expect_s * 0.01,
        "{total_s} s for {n} RSTs at {rate}/s"
    );

    // Every connection of B was reset; A's figures say what happened.
    assert_eq!(b.counters().rst_received, n as u64);
    assert!(
        theirs
            .iter()
            .all(|&(h, _)| b.state(h) == Some(State::Closed))
    );
    let c = a.counters();
    assert_eq!(c.rst_paced, n as u64);
    assert_eq!(c.rst_abort, n as u64);
    assert_eq!(c.rst_pacing_overflow, 0);
    assert_eq!(a.paced_rsts_waiting(), 0);
    // The last one waited about the whole run; the sum is about n²/2 gaps.
    let last_wait = sent[n - 1].1;
    assert!(a.paced_rst_wait_max_ms().abs_diff(last_wait as u64) <= 1);
    let sum: f64 = sent.iter().map(|s| s.1.floor()).sum();
    assert!(
        (c.rst_paced_wait_ms as f64 - sum).abs() <= n as f64,
        "wait sum {} vs {sum}",
        c.rst_paced_wait_ms
    );
}

#[test]
fn unpaced_aborts_leave_at_once_as_before() {
    let n = 5_000;
    let t0 = Instant::now();
    let (mut a, mut b, handles, _) = established(n, 0, t0);
    let order = abort_all(&mut a, &handles, t0);
    assert_eq!(a.paced_rsts_waiting(), 0);
    assert_eq!(a.tx_backlog(), n, "straight to the control queue");
    let sent = run(&mut a, &mut b, t0, t0 + Duration::from_secs(60), |_, _| {});
    assert_eq!(sent.len(), n);
    assert!(
        sent.iter().all(|s| s.1 == 0.0),
        "all in the first iteration"
    );
    assert_eq!(sent.iter().map(|s| s.0).collect::<Vec<_>>(), order);
    assert_eq!(a.counters().rst_paced, 0);
    assert_eq!(b.counters().rst_received, n as u64);
}

#[test]
fn a_reload_changes_the_rate_of_waiting_rsts_within_a_token() {
    let n = 3_000;
    let t0 = Instant::now();
    let (mut a, mut b, handles, _) = established(n, 1_000, t0);
    let order = abort_all(&mut a, &handles, t0);
    let slow_until = t0 + Duration::from_secs(1);
    let fast_until = t0 + Duration::from_secs(2);
    let mut reloads = Vec::new();
    let sent = run(
        &mut a,
        &mut b,
        t0,
        t0 + Duration::from_secs(60),
        |e, now| {
            let to = if now >= fast_until {
                0
            } else if now >= slow_until {
                500
            } else {
                return;
            };
            if e.config().max_rst_per_s != to {
                let mut t = e.config().tunables();
                t.max_rst_per_s = to;
                e.retune(t);
                reloads.push((to, now));
            }
        },
    );
    assert_eq!(sent.len(), n, "nothing lost across reloads");
    assert_eq!(sent.iter().map(|s| s.0).collect::<Vec<_>>(), order);
    assert_eq!(reloads.len(), 2, "{reloads:?}");
    let in_window = |lo: f64, hi: f64| sent.iter().filter(|s| s.1 >= lo && s.1 < hi).count();
    // 1000/s for the first second (plus the initial burst), then 500/s:
    // the rate of the RSTs already waiting changed.
    let first = in_window(0.0, 1000.0);
    assert!((1_000..=1_011).contains(&first), "first second: {first}");
    let second = in_window(1000.0, 2000.0);
    assert!((499..=511).contains(&second), "second second: {second}");
    // Then 0 = unpaced: everything left in the iteration of the reload,
    // the first wake-up (a token at 500/s) at or after the second second.
    let reload_ms = reloads[1].1.duration_since(t0).as_secs_f64() * 1e3;
    assert!((2000.0..=2002.0).contains(&reload_ms), "{reload_ms}");
    let rest = sent.iter().filter(|s| s.1 >= reload_ms).count();
    assert_eq!(rest, n - first - second);
    assert!(sent.iter().all(|s| s.1 <= reload_ms));
    assert_eq!(b.counters().rst_received, n as u64);
}

#[test]
fn the_responder_is_not_held_back_by_waiting_rsts() {
    let n = 200;
    let t0 = Instant::now();
    // One RST per second: nearly all of the aborts' RSTs wait.
    let (mut a, mut b, handles, theirs) = established(n, 1, t0);
    abort_all(&mut a, &handles, t0);
    let mut buf = [0u8; 2048];
    let first = a
        .poll_transmit(t0, &mut buf)
        .expect("the bucket's one token");
    assert!(rst_port(&buf[..first]).is_some());
    assert!(a.poll_transmit(t0, &mut buf).is_none(), "the rest wait");
    // B still holds the other connections and sends on one: A knows
    // nothing of it any more and answers at once with an RST.
    let reset = rst_port(&buf[..first]);
    let &(victim, victim_port) = theirs
        .iter()
        .find(|c| Some(c.1) != reset)
        .expect("a connection B still has");
    b.handle_request(
        t0,
        CLIENT,
        9,
        Request::Send {
            handle: victim,
            data: b"late".to_vec(),
        },
    );
    let t1 = t0 + Duration::from_millis(1);
    while let Some(len) = b.poll_transmit(t1, &mut buf) {
        a.handle_rx(t1, &buf[..len]);
    }
    assert_eq!(a.counters().rst_responder, 1);
    let len = a.poll_transmit(t1, &mut buf).expect("the responder's RST");
    assert_eq!(rst_port(&buf[..len]), Some(victim_port));
    assert!(
        a.poll_transmit(t1, &mut buf).is_none(),
        "the paced ones still wait"
    );
    assert_eq!(a.paced_rsts_waiting(), n - 1);
    let next = a.poll_timeout().expect("a wake-up for the next token");
    assert_eq!(next, t0 + Duration::from_secs(1));
}
