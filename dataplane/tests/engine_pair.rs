//! Two lingerd engines talking through a mem `Pair` (A = host 1, the
//! connecting side; B = host 2, listening): connect/accept, data both ways
//! under loss, abort, graceful close, and bulk teardown with
//! `CloseMatching` over 1,000 connections (abort, graceful, paced), judged
//! on the wire by the etherparse oracle and at B by its completions.

mod support;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use lingerd_abi::Errno;
use lingerd_dataplane::engine::QueueEngine;
use lingerd_dataplane::engine::api::{CloseMode, Completion, Detail, Filter, Outcome, Request};
use lingerd_dataplane::table::Handle;
use lingerd_dataplane::tcp::State;
use lingerd_testkit::mem::{Direction, LinkConfig, Pair};
use support::engine::{self, CLIENT, drain};
use support::{dump, sent};

const PORT: u16 = 80;

fn lossy(seed: u64) -> LinkConfig {
    LinkConfig {
        loss: 0.05,
        seed,
        ..LinkConfig::default()
    }
}

fn pattern(len: usize, salt: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(29) ^ salt)
        .collect()
}

/// Which engine.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Side {
    A,
    B,
}

/// Two engines and what each client has seen.
struct Duo {
    pair: Pair<QueueEngine, QueueEngine>,
    /// Non-data completions, per side.
    ev_a: Vec<Completion>,
    ev_b: Vec<Completion>,
    /// Data delivered, per handle, per side (consumed with RecvDone).
    data_a: HashMap<Handle, Vec<u8>>,
    data_b: HashMap<Handle, Vec<u8>>,
    next_user_data: u64,
}

impl Duo {
    /// A and B on `links`, B listening on [`PORT`] with a backlog large
    /// enough that no SYN cookie is needed.
    fn new(links: LinkConfig) -> Duo {
        let t0 = Instant::now();
        let a = engine::engine(1, t0);
        let mut b = engine::engine(2, t0);
        let c = engine::call(
            &mut b,
            t0,
            1,
            Request::Listen {
                port: PORT,
                backlog: 4_096,
            },
        );
        assert_eq!(c.result, Errno::Ok);
        Duo {
            pair: Pair::symmetric(t0, a, b, links),
            ev_a: Vec::new(),
            ev_b: Vec::new(),
            data_a: HashMap::new(),
            data_b: HashMap::new(),
            next_user_data: 1_000,
        }
    }

    fn engine(&mut self, side: Side) -> &mut QueueEngine {
        match side {
            Side::A => &mut self.pair.a,
            Side::B => &mut self.pair.b,
        }
    }

    fn events(&self, side: Side) -> &[Completion] {
        match side {
            Side::A => &self.ev_a,
            Side::B => &self.ev_b,
        }
    }

    /// Submits a request; returns its user_data. Completions are collected.
    fn request(&mut self, side: Side, req: Request) -> u64 {
        self.next_user_data += 1;
        let ud = self.next_user_data;
        let now = self.pair.now();
        self.engine(side).handle_request(now, CLIENT, ud, req);
        self.collect();
        ud
    }

    /// Submits a request that must complete at once; returns the answer.
    fn call(&mut self, side: Side, req: Request) -> Completion {
        let ud = self.request(side, req);
        self.answer(side, ud)
            .cloned()
            .unwrap_or_else(|| panic!("no immediate answer to {ud}"))
    }

    /// The answer to `user_data` on `side`, if any.
    fn answer(&self, side: Side, user_data: u64) -> Option<&Completion> {
        self.events(side)
            .iter()
            .find(|c| c.user_data == user_data && !c.is_event)
    }

    fn collect(&mut self) {
        let now = self.pair.now();
        for side in [Side::A, Side::B] {
            let mut out = Vec::new();
            for c in drain(self.engine(side)) {
                if let (true, Detail::Data(d)) = (c.is_event, &c.detail) {
                    let e = self.engine(side);
                    e.handle_request(
                        now,
                        CLIENT,
                        0,
                        Request::RecvDone {
                            handle: c.handle,
                            len: d.len() as u32,
                        },
                    );
                    // RecvDone answers (user_data 0) are not kept.
                    out.extend(drain(e).into_iter().filter(|x| x.user_data != 0));
                    let data = match side {
                        Side::A => &mut self.data_a,
                        Side::B => &mut self.data_b,
                    };
                    data.entry(c.handle).or_default().extend_from_slice(d);
                } else {
                    out.push(c);
                }
            }
            match side {
                Side::A => self.ev_a.extend(out),
                Side::B => self.ev_b.extend(out),
            }
        }
    }

    fn run(&mut self, d: Duration) {
        let step = Duration::from_millis(5);
        let mut left = d;
        while !left.is_zero() {
            let _ = self.pair.drive_for(step.min(left));
            left = left.saturating_sub(step);
            self.collect();
        }
    }

    /// Drives in 5 ms steps until `done` holds (at most `limit`).
    fn run_until(&mut self, limit: Duration, mut done: impl FnMut(&Duo) -> bool) -> bool {
        let steps = limit.as_millis() / 5;
        for _ in 0..steps {
            if done(self) {
                return true;
            }
            self.run(Duration::from_millis(5));
        }
        done(self)
    }

    /// B's accepted handles, in order.
    fn accepted_b(&self) -> Vec<Handle> {
        self.ev_b
            .iter()
            .filter(|c| matches!(c.detail, Detail::Accepted { .. }))
            .map(|c| c.handle)
            .collect()
    }

    /// Opens `n` connections from A to B; returns A's and B's handles
    /// (unordered with respect to each other).
    fn connect_n(&mut self, n: usize) -> (Vec<Handle>, Vec<Handle>) {
        let before = self.accepted_b().len();
        let uds: Vec<u64> = (0..n)
            .map(|_| {
                self.request(
                    Side::A,
                    Request::Connect {
                        remote: engine::addr(2, PORT),
                        local_port: None,
                        local_addr: None,
                    },
                )
            })
            .collect();
        let up = self.run_until(Duration::from_secs(60), |d| {
            d.accepted_b().len() == before + n
                && uds.iter().all(|&u| d.answer(Side::A, u).is_some())
        });
        assert!(
            up,
            "{n} connections up: accepted {}, answered {}, A {:?}, B {:?}, A {:?}",
            self.accepted_b().len() - before,
            uds.iter()
                .filter(|&&u| self.answer(Side::A, u).is_some())
                .count(),
            self.pair.a.states_histogram(),
            self.pair.b.states_histogram(),
            self.pair.a.counters()
        );
        let a: Vec<Handle> = uds
            .iter()
            .map(|&u| {
                let c = self.answer(Side::A, u).expect("answered");
                assert_eq!(c.result, Errno::Ok, "connect {u}");
                c.handle
            })
            .collect();
        (a, self.accepted_b().split_off(before))
    }

    /// Sends all of `data` on `h`, retrying on ENOBUFS while driving.
    fn send_all(&mut self, side: Side, h: Handle, data: &[u8]) {
        let mut queued = 0;
        for _ in 0..20_000 {
            if queued == data.len() {
                return;
            }
            let end = (queued + 8_192).min(data.len());
            let c = self.call(
                side,
                Request::Send {
                    handle: h,
                    data: data[queued..end].to_vec(),
                },
            );
            match c.result {
                Errno::Ok => queued = end,
                Errno::NoBufs => self.run(Duration::from_millis(10)),
                e => panic!("send: {e:?}"),
            }
        }
        panic!(
            "could not queue {} bytes ({side:?}): {}",
            data.len(),
            dump(&self.pair.trace()[self.pair.trace().len().saturating_sub(40)..])
        );
    }

    /// Events on `side` for handle `h`.
    fn events_for(&self, side: Side, h: Handle) -> Vec<&Completion> {
        self.events(side)
            .iter()
            .filter(|c| c.handle == h && c.is_event)
            .collect()
    }
}

/// RSTs A sent, per A-side port.
fn rsts_per_port(trace: &[lingerd_testkit::mem::TraceEntry]) -> HashMap<u16, usize> {
    let mut m = HashMap::new();
    for s in sent(trace, Direction::AToB) {
        if s.flags.rst {
            *m.entry(s.src.port()).or_default() += 1;
        }
    }
    m
}

#[test]
fn connect_accept_data_both_ways() {
    for links in [LinkConfig::default(), lossy(4), lossy(9)] {
        let mut d = Duo::new(links.clone());
        let (a, b) = d.connect_n(1);
        let (ha, hb) = (a[0], b[0]);
        assert_eq!(d.pair.a.state(ha), Some(State::Established));
        assert_eq!(d.pair.b.state(hb), Some(State::Established));
        let ab = pattern(200_000, 1);
        let ba = pattern(150_000, 2);
        d.send_all(Side::A, ha, &ab[..100_000]);
        d.send_all(Side::B, hb, &ba[..75_000]);
        d.send_all(Side::A, ha, &ab[100_000..]);
        d.send_all(Side::B, hb, &ba[75_000..]);
        let got = d.run_until(Duration::from_secs(120), |d| {
            d.data_b.get(&hb).map_or(0, Vec::len) == ab.len()
                && d.data_a.get(&ha).map_or(0, Vec::len) == ba.len()
        });
        assert!(got, "loss {}: all data", links.loss);
        assert!(d.data_b[&hb] == ab && d.data_a[&ha] == ba, "in order");
        if links.loss > 0.0 {
            assert!(d.pair.a.counters().retransmits > 0);
        }
    }
}

#[test]
fn abort_peer_sees_one_rst_then_reset_by_peer_on_close() {
    let mut d = Duo::new(LinkConfig::default());
    let (a, b) = d.connect_n(1);
    let (ha, hb) = (a[0], b[0]);
    d.send_all(Side::A, ha, b"before the abort");
    d.run(Duration::from_millis(50));
    d.pair.clear_trace();
    let c = d.call(Side::A, Request::Abort { handle: ha });
    assert_eq!(c.detail, Detail::Closed(Outcome::Aborted));
    d.run(Duration::from_millis(100));
    let ours = sent(d.pair.trace(), Direction::AToB);
    assert_eq!(ours.len(), 1, "{}", dump(d.pair.trace()));
    assert!(ours[0].flags.rst);
    let resets: Vec<_> = d
        .events_for(Side::B, hb)
        .into_iter()
        .filter(|c| c.detail == Detail::Reset)
        .collect();
    assert_eq!(resets.len(), 1);
    assert_eq!(resets[0].result, Errno::ConnReset);
    assert_eq!(d.pair.a.connection_count(), 0);
    // B still holds a dead handle: operations fail with ECONNRESET.
    assert_eq!(d.pair.b.state(hb), Some(State::Closed));
    let s = d.call(
        Side::B,
        Request::Send {
            handle: hb,
            data: b"x".to_vec(),
        },
    );
    assert_eq!(s.result, Errno::ConnReset);
    let c = d.call(
        Side::B,
        Request::Close {
            handle: hb,
            nonblocking: false,
        },
    );
    assert_eq!(c.detail, Detail::Closed(Outcome::ResetByPeer));
    assert_eq!(d.pair.b.connection_count(), 1, "only the listener");
    assert!(
        sent(d.pair.trace(), Direction::BToA).is_empty(),
        "B answers nothing"
    );
}

#[test]
fn graceful_close_active_time_wait_passive_freed() {
    for links in [LinkConfig::default(), lossy(4)] {
        let mut d = Duo::new(links);
        let (a, b) = d.connect_n(1);
        let (ha, hb) = (a[0], b[0]);
        let data = pattern(50_000, 3);
        d.send_all(Side::A, ha, &data);
        let c = d.call(
            Side::A,
            Request::Close {
                handle: ha,
                nonblocking: false,
            },
        );
        assert_eq!(c.detail, Detail::Closed(Outcome::Background));
        let eof = d.run_until(Duration::from_secs(60), |d| {
            d.events_for(Side::B, hb)
                .iter()
                .any(|c| c.detail == Detail::PeerClosed)
        });
        assert!(eof);
        assert!(d.data_b[&hb] == data, "all data before EOF");
        let c = d.call(
            Side::B,
            Request::Close {
                handle: hb,
                nonblocking: false,
            },
        );
        assert_eq!(c.detail, Detail::Closed(Outcome::Background));
        let done = d.run_until(Duration::from_secs(60), |d| {
            d.pair.b.state(hb).is_none() && d.pair.a.state(ha) == Some(State::TimeWait)
        });
        assert!(
            done,
            "A {:?} B {:?}",
            d.pair.a.state(ha),
            d.pair.b.state(hb)
        );
        assert_eq!(d.pair.a.states_histogram()[State::TimeWait as usize], 1);
        assert_eq!(d.pair.b.connection_count(), 1);
        for dir in [Direction::AToB, Direction::BToA] {
            assert!(sent(d.pair.trace(), dir).iter().all(|s| !s.flags.rst));
        }
        // TIME-WAIT ends after 2×MSL (60 s by default).
        d.run(Duration::from_secs(61));
        assert_eq!(d.pair.a.connection_count(), 0);
    }
}

/// Checks a finished `CloseMatching`: exactly one final completion with
/// `Count(n)`, progress events (if any) strictly increasing and below `n`.
/// Returns the progress counts.
fn check_job(d: &Duo, ud: u64, n: u64) -> Vec<u64> {
    let finals: Vec<_> = d
        .ev_a
        .iter()
        .filter(|c| c.user_data == ud && !c.is_event)
        .collect();
    assert_eq!(finals.len(), 1, "the job completes once");
    assert_eq!(
        (finals[0].result, &finals[0].detail),
        (Errno::Ok, &Detail::Count(n))
    );
    let progress: Vec<u64> = d
        .ev_a
        .iter()
        .filter(|c| c.user_data == ud && c.is_event)
        .map(|c| match c.detail {
            Detail::Count(k) => k,
            ref other => panic!("progress carries a count, not {other:?}"),
        })
        .collect();
    assert!(progress.windows(2).all(|w| w[0] < w[1]), "{progress:?}");
    assert!(progress.iter().all(|&k| k > 0 && k < n), "{progress:?}");
    progress
}

/// One RST per connection from A, and each of B's connections was reset
/// exactly once (ECONNRESET).
fn check_one_rst_each(d: &Duo, b: &[Handle], n: usize) {
    let per_port = rsts_per_port(d.pair.trace());
    assert_eq!(per_port.len(), n, "every connection got an RST");
    assert!(
        per_port.values().all(|&k| k == 1),
        "no RST sent twice: {:?}",
        per_port
            .iter()
            .filter(|&(_, &k)| k != 1)
            .collect::<Vec<_>>()
    );
    for &hb in b {
        let resets: Vec<_> = d
            .events_for(Side::B, hb)
            .into_iter()
            .filter(|c| c.detail == Detail::Reset)
            .collect();
        assert_eq!(resets.len(), 1, "{hb:?}");
        assert_eq!(resets[0].result, Errno::ConnReset);
    }
}

#[test]
fn close_matching_abort_1000_then_graceful_1000() {
    const N: usize = 1_000;
    let mut d = Duo::new(LinkConfig::default());
    let (a, b) = d.connect_n(N);
    assert_eq!(d.pair.a.connection_count(), N);
    d.pair.clear_trace();
    let ud = d.request(
        Side::A,
        Request::CloseMatching {
            filter: Filter::default(),
            mode: CloseMode::Abort,
            pace_per_s: 0,
        },
    );
    let done = d.run_until(Duration::from_secs(5), |d| d.answer(Side::A, ud).is_some());
    assert!(done);
    d.run(Duration::from_millis(100));
    check_job(&d, ud, N as u64);
    check_one_rst_each(&d, &b, N);
    assert_eq!(d.pair.a.connection_count(), 0, "all freed, no TIME-WAIT");
    assert!(
        sent(d.pair.trace(), Direction::AToB)
            .iter()
            .all(|s| s.flags.rst && !s.flags.fin)
    );
    // No events for A's closed handles beyond the `Connecting` that named
    // each one, and they are dead.
    assert!(a.iter().all(|&h| {
        d.events_for(Side::A, h)
            .iter()
            .all(|c| c.detail == Detail::Connecting)
    }));
    let c = d.call(Side::A, Request::Abort { handle: a[0] });
    assert_eq!(c.result, Errno::NotSock);
    for hb in b {
        d.request(
            Side::B,
            Request::Close {
                handle: hb,
                nonblocking: true,
            },
        );
    }
    assert_eq!(d.pair.b.connection_count(), 1);

    // Again, gracefully.
    let (_a, b) = d.connect_n(N);
    d.pair.clear_trace();
    let ud = d.request(
        Side::A,
        Request::CloseMatching {
            filter: Filter::default(),
            mode: CloseMode::Graceful,
            pace_per_s: 0,
        },
    );
    let done = d.run_until(Duration::from_secs(5), |d| {
        d.answer(Side::A, ud).is_some()
            && b.iter().all(|&h| {
                d.events_for(Side::B, h)
                    .iter()
                    .any(|c| c.detail == Detail::PeerClosed)
            })
    });
    assert!(done, "every peer saw EOF");
    check_job(&d, ud, N as u64);
    for &hb in &b {
        d.request(
            Side::B,
            Request::Close {
                handle: hb,
                nonblocking: true,
            },
        );
    }
    let done = d.run_until(Duration::from_secs(5), |d| {
        d.pair.b.connection_count() == 1
            && d.pair.a.states_histogram()[State::TimeWait as usize] == N as u64
    });
    assert!(done, "A {:?}", d.pair.a.states_histogram());
    assert!(rsts_per_port(d.pair.trace()).is_empty(), "no RST");
}

/// `pace_per_s = 2,000` over 1,000 connections takes about half a second:
/// RSTs are spread out at roughly that rate, progress events come in
/// between, the job completes once with the full count.
#[test]
fn close_matching_paced_abort() {
    const N: usize = 1_000;
    const PACE: u32 = 2_000;
    let mut d = Duo::new(LinkConfig::default());
    let (_a, b) = d.connect_n(N);
    d.pair.clear_trace();
    let started = d.pair.now();
    let ud = d.request(
        Side::A,
        Request::CloseMatching {
            filter: Filter::default(),
            mode: CloseMode::Abort,
            pace_per_s: PACE,
        },
    );
    let done = d.run_until(Duration::from_secs(5), |d| d.answer(Side::A, ud).is_some());
    assert!(done);
    let took = d.pair.now() - started;
    d.run(Duration::from_millis(100));
    let progress = check_job(&d, ud, N as u64);
    assert!(
        progress.len() >= 10,
        "progress events while it runs: {progress:?}"
    );
    check_one_rst_each(&d, &b, N);
    let expected = Duration::from_secs_f64(N as f64 / f64::from(PACE));
    assert!(
        took >= expected.mul_f64(0.8) && took <= expected.mul_f64(1.3),
        "{N} closes at {PACE}/s took {took:?}"
    );
    // The rate over any 100 ms window stays near the pace (a burst of at
    // most 10 ms worth on top).
    let times: Vec<Instant> = d
        .pair
        .trace()
        .iter()
        .filter(|e| e.direction == Direction::AToB)
        .map(|e| e.sent_at)
        .collect();
    let window = Duration::from_millis(100);
    let most = times
        .iter()
        .map(|&t0| {
            times
                .iter()
                .filter(|&&t| t >= t0 && t < t0 + window)
                .count()
        })
        .max()
        .unwrap_or(0);
    let allowed = (f64::from(PACE) * (window.as_secs_f64() + 0.010)).ceil() as usize + 1;
    assert!(most <= allowed, "{most} RSTs in 100 ms, allowed {allowed}");
}

/// Connections that sat idle for longer than a neighbour entry lives
/// (60 s) are mass-aborted: every RST still reaches the peer.
#[test]
fn close_matching_abort_after_long_idle_reaches_every_peer() {
    const N: usize = 200;
    let mut d = Duo::new(LinkConfig::default());
    let (_a, b) = d.connect_n(N);
    d.run(Duration::from_secs(120));
    d.pair.clear_trace();
    let ud = d.request(
        Side::A,
        Request::CloseMatching {
            filter: Filter::default(),
            mode: CloseMode::Abort,
            pace_per_s: 0,
        },
    );
    let done = d.run_until(Duration::from_secs(5), |d| d.answer(Side::A, ud).is_some());
    assert!(done);
    d.run(Duration::from_secs(3));
    check_job(&d, ud, N as u64);
    check_one_rst_each(&d, &b, N);
}
