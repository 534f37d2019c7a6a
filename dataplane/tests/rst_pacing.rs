//! RST pacing (`close.max_rst_per_sec`, an engine's share in
//! `EngineConfig::max_rst_per_s`) in virtual time: a shell loop that sleeps
//! until `poll_timeout` and sends what `poll_transmit` gives sees every RST
//! of a mass abort leave, in abort order, spaced by the rate; with the rate
//! at 0 they all leave at once. Each abort's completion comes with its RST:
//! not before it left (paced), at once (unpaced). A reload changes the rate
//! of the RSTs already waiting. RSTs answering a peer (the responder) never
//! wait, but have their own bound (`EngineConfig::max_replies_per_s`), as do
//! challenge ACKs across connections.
//!
//! Two engines exchange frames directly; A's RSTs are read with etherparse,
//! never with lingerd's own `wire`, and are handed to B, whose connections
//! must all be reset.

mod support;

use std::time::{Duration, Instant};

use std::collections::HashMap;

use lingerd_abi::Errno;
use lingerd_dataplane::engine::QueueEngine;
use lingerd_dataplane::engine::api::{Completion, Detail, Outcome, Request};
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

/// Aborts every handle at `now` (`user_data` = the handle) and returns B's
/// ports in abort order. The records are freed at once; the completions
/// are the caller's to check (they come when the RSTs leave).
fn abort_all(a: &mut QueueEngine, handles: &[Handle], now: Instant) -> Vec<u16> {
    let mut order = Vec::with_capacity(handles.len());
    for &handle in handles {
        order.push(a.tuple(handle).expect("open").remote_port);
        a.handle_request(now, CLIENT, handle.raw(), Request::Abort { handle });
    }
    assert_eq!(
        a.connection_count(),
        1,
        "records freed at once (the listener stays)"
    );
    order
}

/// The aborts' completions in `done` (`user_data` = the aborted handle),
/// as (B's port, ms after `from` the completion was seen); each must say
/// OK, ABORTED.
fn abort_completions(
    done: &[(Completion, f64)],
    handles: &[Handle],
    order: &[u16],
) -> Vec<(u16, f64)> {
    let port_of: HashMap<u64, u16> = handles
        .iter()
        .zip(order)
        .map(|(h, &p)| (h.raw(), p))
        .collect();
    done.iter()
        .filter(|(c, _)| !c.is_event)
        .map(|(c, ms)| {
            assert_eq!(c.result, Errno::Ok, "{c:?}");
            assert_eq!(c.detail, Detail::Closed(Outcome::Aborted), "{c:?}");
            (port_of[&c.user_data], *ms)
        })
        .collect()
}

/// The shell's loop in virtual time: sleep until `poll_timeout` (never
/// past `until`), run timers when due, send everything `poll_transmit`
/// gives (to B), then take A's completions, as the core loop does. Returns
/// each RST's destination port and departure time (ms after `from`); A's
/// completions go to `done` with the time they were taken. `at` is called
/// with the virtual time before each iteration and may change the engine
/// (a reload).
fn run_collecting(
    a: &mut QueueEngine,
    b: &mut QueueEngine,
    from: Instant,
    until: Instant,
    done: &mut Vec<(Completion, f64)>,
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
        let ms = now.duration_since(from).as_secs_f64() * 1e3;
        while let Some(len) = a.poll_transmit(now, &mut buf) {
            if let Some(port) = rst_port(&buf[..len]) {
                sent.push((port, ms));
            }
            b.handle_rx(now, &buf[..len]);
        }
        done.extend(std::iter::from_fn(|| a.poll_completion()).map(|c| (c, ms)));
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

/// [`run_collecting`] when the completions do not matter.
fn run(
    a: &mut QueueEngine,
    b: &mut QueueEngine,
    from: Instant,
    until: Instant,
    at: impl FnMut(&mut QueueEngine, Instant),
) -> Vec<(u16, f64)> {
    run_collecting(a, b, from, until, &mut Vec::new(), at)
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

#[test]
fn a_paced_abort_completes_when_its_rst_leaves_not_before() {
    let n = 2_000;
    let rate = 1_000u32;
    let t0 = Instant::now();
    let (mut a, mut b, handles, _) = established(n, rate, t0);
    let order = abort_all(&mut a, &handles, t0);
    // Decided, freed, but not answered: each answer waits for its RST.
    assert!(
        drain(&mut a).is_empty(),
        "no completion before any RST left"
    );
    assert_eq!(a.closes_waiting_for_rst(), n);
    let mut done = Vec::new();
    let sent = run_collecting(
        &mut a,
        &mut b,
        t0,
        t0 + Duration::from_secs(60),
        &mut done,
        |_, _| {},
    );
    assert_eq!(sent.len(), n);
    let answered = abort_completions(&done, &handles, &order);
    assert_eq!(answered.len(), n, "every abort answered once");
    // In the same order as the RSTs, each in the iteration its RST left:
    // never before, never later.
    assert_eq!(answered, sent, "each completion with its own RST");
    let last = answered[n - 1].1 / 1e3;
    let expect = n as f64 / f64::from(rate);
    assert!(
        (last - expect).abs() <= expect * 0.02,
        "the last abort answered after {last} s, its RST's time"
    );
    assert_eq!(a.closes_waiting_for_rst(), 0);
}

#[test]
fn unpaced_aborts_complete_at_once_and_overflow_does_not_hold_them() {
    let t0 = Instant::now();
    let (mut a, _b, handles, _) = established(100, 0, t0);
    let order = abort_all(&mut a, &handles, t0);
    let done: Vec<(Completion, f64)> = drain(&mut a).into_iter().map(|c| (c, 0.0)).collect();
    assert_eq!(abort_completions(&done, &handles, &order).len(), 100);

    // Paced, but the queue full (it holds one RST per record: a table of
    // 64 here): the RST that finds it full leaves unpaced, and so does
    // its answer.
    let mut cfg = config(1);
    cfg.max_rst_per_s = 1;
    cfg.max_connections = 64;
    let mut a = QueueEngine::new(cfg, t0);
    let mut b = QueueEngine::new(config(2), t0);
    let (handles, _) = connect_many(&mut a, &mut b, PORT, 63, FIRST_PORT, t0);
    let order = abort_all(&mut a, &handles, t0);
    let c = a.counters();
    assert_eq!(c.rst_pacing_overflow, 0, "63 records, room for 64");
    assert!(drain(&mut a).is_empty());
    assert_eq!(a.closes_waiting_for_rst(), 63);
    let mut done = Vec::new();
    let sent = run_collecting(
        &mut a,
        &mut b,
        t0,
        t0 + Duration::from_secs(120),
        &mut done,
        |_, _| {},
    );
    assert_eq!(abort_completions(&done, &handles, &order), sent);
}

#[test]
fn a_linger_expiry_paced_completes_with_aborted_linger_when_its_rst_leaves() {
    let t0 = Instant::now();
    // Two connections; the one-token bucket is spent by the first abort,
    // so the expired linger close's RST waits for the next token.
    let (mut a, mut b, handles, _) = established(2, 1, t0);
    a.handle_request(t0, CLIENT, 1, Request::Abort { handle: handles[0] });
    a.handle_request(
        t0,
        CLIENT,
        2,
        Request::SetLinger {
            handle: handles[1],
            linger: lingerd_dataplane::tcp::linger::Linger { on: true, ms: 100 },
        },
    );
    let _ = drain(&mut a);
    // Data B never acknowledges (B does not see it): the blocking close
    // lingers until its deadline.
    a.handle_request(
        t0,
        CLIENT,
        3,
        Request::Send {
            handle: handles[1],
            data: b"unacknowledged".to_vec(),
        },
    );
    a.handle_request(
        t0,
        CLIENT,
        4,
        Request::Close {
            handle: handles[1],
            nonblocking: false,
        },
    );
    let mut buf = [0u8; 2048];
    let mut departures = Vec::new();
    let mut answers = Vec::new();
    let mut now = t0;
    while now < t0 + Duration::from_secs(5) {
        if a.poll_timeout().is_some_and(|t| t <= now) {
            a.handle_timeout(now);
        }
        while let Some(len) = a.poll_transmit(now, &mut buf) {
            if rst_port(&buf[..len]).is_some() {
                departures.push(now - t0);
            }
        }
        answers.extend(
            std::iter::from_fn(|| a.poll_completion())
                .filter(|c| c.user_data == 4)
                .map(|c| (c, now - t0)),
        );
        now += Duration::from_millis(1);
    }
    let _ = &mut b;
    assert_eq!(departures.len(), 2, "{departures:?}");
    assert_eq!(answers.len(), 1, "{answers:?}");
    let (c, at) = &answers[0];
    assert_eq!(c.detail, Detail::Closed(Outcome::AbortedLinger));
    assert!(
        departures[1] >= Duration::from_secs(1) - Duration::from_millis(1),
        "the second RST waits for the next token: {departures:?}"
    );
    assert_eq!(*at, departures[1], "answered when its RST left");
}

/// Frames for a connection A does not have: B's segments on a 4-tuple
/// that A never saw, `n` of them within one millisecond of virtual time
/// each.
fn stray_ack(seq: u32, port: u16) -> Vec<u8> {
    let mut b = etherparse::PacketBuilder::ethernet2([2, 0, 0, 0, 0, 2], [2, 0, 0, 0, 0, 1])
        .ipv4([198, 18, 0, 2], [198, 18, 0, 1], 64)
        .tcp(port, PORT, seq, 1024);
    b = b.ack(1);
    let mut out = Vec::with_capacity(b.size(0));
    b.write(&mut out, &[]).expect("frame");
    out
}

#[test]
fn the_responder_is_bounded_per_core_and_counts_what_it_withholds() {
    let t0 = Instant::now();
    let mut cfg = config(1);
    cfg.max_replies_per_s = 1_000;
    let mut a = QueueEngine::new(cfg, t0);
    let mut buf = [0u8; 2048];
    // A flood: 50 segments for unknown connections every millisecond for
    // 2 s (25,000/s).
    let mut rsts = 0u64;
    for ms in 0..2_000u64 {
        let now = t0 + Duration::from_millis(ms);
        for i in 0..50u32 {
            let f = stray_ack(i, 1024 + (ms as u16 % 1000) * 50 + i as u16);
            a.handle_rx(now, &f);
        }
        while let Some(len) = a.poll_transmit(now, &mut buf) {
            rsts += u64::from(rst_port(&buf[..len]).is_some());
        }
    }
    let c = a.counters();
    assert_eq!(c.rst_responder, rsts);
    assert_eq!(c.rst_responder + c.rst_reply_limited, 100_000);
    // 1,000/s for 2 s, plus the bucket's 100 ms burst, the cost random
    // per answer (1 on average).
    assert!(
        (1_800..=2_400).contains(&rsts),
        "{rsts} responder RSTs in 2 s at 1,000/s"
    );

    // With no bound every segment is answered, as before.
    let mut cfg = config(1);
    cfg.max_replies_per_s = 0;
    let mut a = QueueEngine::new(cfg, t0);
    for i in 0..5_000u32 {
        a.handle_rx(t0, &stray_ack(i, 1024 + i as u16));
    }
    assert_eq!(a.counters().rst_responder, 5_000);
    assert_eq!(a.counters().rst_reply_limited, 0);
}

#[test]
fn challenge_acks_across_connections_meet_the_core_bound() {
    let t0 = Instant::now();
    let mut cfg = config(1);
    cfg.max_replies_per_s = 100;
    let mut a = QueueEngine::new(cfg, t0);
    let mut b = QueueEngine::new(config(2), t0);
    let n = 1_000;
    let (_, theirs) = connect_many(&mut a, &mut b, PORT, n, FIRST_PORT, t0);
    let _ = drain(&mut a);
    // Each of B's connections sends a byte that A never sees: its
    // sequence number is A's RCV.NXT on that connection.
    for (i, &(h, _)) in theirs.iter().enumerate() {
        b.handle_request(
            t0,
            CLIENT,
            100_000 + i as u64,
            Request::Send {
                handle: h,
                data: b"x".to_vec(),
            },
        );
    }
    let mut buf = [0u8; 2048];
    let mut next = Vec::new();
    while let Some(len) = b.poll_transmit(t0, &mut buf) {
        let s = etherparse::SlicedPacket::from_ethernet(&buf[..len]).expect("frame");
        if let Some(etherparse::TransportSlice::Tcp(t)) = s.transport {
            next.push((t.source_port(), t.sequence_number()));
        }
    }
    assert_eq!(next.len(), n);
    let before = a.counters().challenge_acks;
    // An RST inside the window but not at RCV.NXT on every connection
    // (RFC 5961 §3.2: a challenge ACK each): each connection's own budget
    // allows it, the core's bound only ~10 (100 ms of 100/s) at once.
    let now = t0 + Duration::from_millis(1);
    for &(port, seq) in &next {
        let mut f = Vec::new();
        etherparse::PacketBuilder::ethernet2([2, 0, 0, 0, 0, 2], [2, 0, 0, 0, 0, 1])
            .ipv4([198, 18, 0, 2], [198, 18, 0, 1], 64)
            .tcp(port, PORT, seq.wrapping_add(1), 1024)
            .rst()
            .write(&mut f, &[])
            .expect("frame");
        a.handle_rx(now, &f);
    }
    let c = a.counters();
    let sent = c.challenge_acks - before;
    assert!((1..=25).contains(&sent), "{sent} challenge ACKs at once");
    assert_eq!(sent + c.challenge_acks_limited, n as u64);
    assert_eq!(c.challenge_acks_suppressed, 0, "no connection over its own");
    assert_eq!(c.rst_received, 0, "none reset a connection");
}
