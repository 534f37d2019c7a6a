//! lingerd's engine against smoltcp, an independent TCP nobody here wrote:
//! handshakes both ways, data under loss, graceful close from either side,
//! abort, linger expiry against a zero window, and shutdown(SEND).
//!
//! The engine is host 1 (198.18.0.1), smoltcp host 2; the Pair's trace is
//! decoded by the etherparse-based oracle in `support`, never by our `wire`.

mod support;

use std::time::{Duration, Instant};

use lingerd_abi::Errno;
use lingerd_dataplane::engine::QueueEngine;
use lingerd_dataplane::engine::api::{CloseOutcome, Completion, Detail, Request};
use lingerd_dataplane::port::mem::{Direction, LinkConfig, Pair};
use lingerd_dataplane::table::Handle;
use smoltcp::iface::SocketHandle;
use smoltcp::socket::tcp::State as SmolState;
use support::engine::{self, accepted, call, drain};
use support::smoltcp_peer::{SmolConfig, SmolPeer};
use support::{count_rst, dump, sent};

const PORT: u16 = 80;

fn lossless() -> LinkConfig {
    LinkConfig::default()
}

fn lossy(seed: u64) -> LinkConfig {
    LinkConfig {
        loss: 0.10,
        seed,
        ..LinkConfig::default()
    }
}

fn pattern(len: usize, salt: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31) ^ salt)
        .collect()
}

type EnginePair = Pair<QueueEngine, SmolPeer>;

/// An engine (A) and smoltcp (B) in a Pair, plus what each application
/// side has received and the engine's non-data completions.
struct Lab {
    pair: EnginePair,
    /// Bytes the engine delivered (and the test consumed with RecvDone).
    at_lingerd: Vec<u8>,
    /// Bytes smoltcp's application read.
    at_smol: Vec<u8>,
    /// Engine completions other than data.
    events: Vec<Completion>,
    /// Consume delivered data (RecvDone) as it arrives.
    consume: bool,
}

impl Lab {
    #[allow(dead_code)] // kept for scenarios that read the clock
    fn now(&self) -> Instant {
        self.pair.now()
    }

    /// A request whose single immediate completion is returned.
    fn call(&mut self, user_data: u64, req: Request) -> Completion {
        let now = self.pair.now();
        call(&mut self.pair.a, now, user_data, req)
    }

    /// Moves engine completions into `events`/`at_lingerd` and smoltcp's
    /// received bytes into `at_smol`.
    fn collect(&mut self, hs: SocketHandle) {
        let now = self.pair.now();
        for c in drain(&mut self.pair.a) {
            match &c.detail {
                Detail::Data(d) if c.is_event => {
                    self.at_lingerd.extend_from_slice(d);
                    if self.consume {
                        self.pair.a.handle_request(
                            now,
                            engine::CLIENT,
                            0,
                            Request::RecvDone {
                                handle: c.handle,
                                len: d.len() as u32,
                            },
                        );
                        let echo = drain(&mut self.pair.a);
                        self.events
                            .extend(echo.into_iter().filter(|e| e.user_data != 0 || e.is_event));
                    }
                }
                _ => self.events.push(c),
            }
        }
        self.at_smol.extend(self.pair.b.recv(hs));
    }

    /// Drives for `d` of virtual time in 5 ms steps, collecting as it goes.
    fn run(&mut self, hs: SocketHandle, d: Duration) {
        let step = Duration::from_millis(5);
        let mut left = d;
        while !left.is_zero() {
            let _ = self.pair.drive_for(step.min(left));
            left = left.saturating_sub(step);
            self.collect(hs);
        }
    }

    /// The completion answering `user_data`, if it arrived.
    #[allow(dead_code)] // kept for scenarios that wait on one answer
    fn answer(&self, user_data: u64) -> Option<&Completion> {
        self.events
            .iter()
            .find(|c| c.user_data == user_data && !c.is_event)
    }
}

/// The engine listens, smoltcp connects; returns the lab, the engine's
/// accepted handle and smoltcp's socket.
fn accept_from_smoltcp(links: LinkConfig) -> (Lab, Handle, SocketHandle) {
    let t0 = Instant::now();
    let mut e = engine::engine(1, t0);
    engine::listen(&mut e, t0, PORT);
    let mut s = SmolPeer::new(SmolConfig::host(2), t0);
    let hs = s.connect(engine::addr(1, PORT), 40_000);
    let pair = Pair::symmetric(t0, e, s, links);
    let mut lab = Lab {
        pair,
        at_lingerd: Vec::new(),
        at_smol: Vec::new(),
        events: Vec::new(),
        consume: true,
    };
    for _ in 0..400 {
        lab.run(hs, Duration::from_millis(25));
        if accepted(&lab.events).is_some() && lab.pair.b.state(hs) == SmolState::Established {
            break;
        }
    }
    let h =
        accepted(&lab.events).unwrap_or_else(|| panic!("no accept: {}", dump(lab.pair.trace())));
    (lab, h, hs)
}

/// Queues all of `data` on `h`, retrying on ENOBUFS while driving.
fn send_all(lab: &mut Lab, h: Handle, hs: SocketHandle, data: &[u8]) {
    let mut queued = 0;
    for _ in 0..20_000 {
        if queued == data.len() {
            return;
        }
        let end = (queued + 4_096).min(data.len());
        let c = lab.call(
            10,
            Request::Send {
                handle: h,
                data: data[queued..end].to_vec(),
            },
        );
        match c.result {
            Errno::Ok => queued = end,
            Errno::NoBufs => lab.run(hs, Duration::from_millis(10)),
            e => panic!("send failed: {e:?}"),
        }
    }
    panic!("could not queue {} bytes", data.len());
}

#[test]
fn smoltcp_client_lingerd_server_data_both_ways_under_loss() {
    let (mut lab, h, hs) = accept_from_smoltcp(lossy(3));
    let up = pattern(20_000, 1);
    let down = pattern(100_000, 2);
    let mut up_off = 0;
    let mut queued = 0;
    for _ in 0..20_000 {
        up_off += lab.pair.b.send(hs, &up[up_off..]);
        if queued < down.len() {
            let end = (queued + 4_096).min(down.len());
            let c = lab.call(
                10,
                Request::Send {
                    handle: h,
                    data: down[queued..end].to_vec(),
                },
            );
            if c.result == Errno::Ok {
                queued = end;
            } else {
                assert_eq!(
                    c.result,
                    Errno::NoBufs,
                    "only a full buffer may refuse a send"
                );
            }
        }
        lab.run(hs, Duration::from_millis(10));
        if lab.at_smol.len() == down.len() && lab.at_lingerd.len() == up.len() {
            break;
        }
    }
    assert_eq!(lab.at_smol.len(), down.len(), "{}", dump(lab.pair.trace()));
    assert!(
        lab.at_smol == down,
        "smoltcp received lingerd's bytes in order"
    );
    assert!(
        lab.at_lingerd == up,
        "lingerd received smoltcp's bytes in order"
    );
    assert!(
        lab.pair.a.counters().retransmits > 0,
        "10% loss made lingerd retransmit"
    );
}

#[test]
fn abort_is_seen_by_smoltcp_as_a_reset_with_one_rst_at_snd_nxt() {
    let (mut lab, h, hs) = accept_from_smoltcp(lossless());
    send_all(&mut lab, h, hs, b"hello");
    lab.run(hs, Duration::from_millis(50));
    assert_eq!(lab.at_smol, b"hello");
    lab.pair.clear_trace();
    let c = lab.call(6, Request::Abort { handle: h });
    assert_eq!(
        (c.result, c.detail),
        (Errno::Ok, Detail::Closed(CloseOutcome::Aborted))
    );
    lab.run(hs, Duration::from_millis(50));
    assert!(
        lab.pair.b.was_reset(hs),
        "smoltcp saw a reset: {}",
        dump(lab.pair.trace())
    );
    assert_eq!(count_rst(lab.pair.trace(), Direction::AToB), 1);
    let ours = sent(lab.pair.trace(), Direction::AToB);
    assert_eq!(
        ours.len(),
        1,
        "nothing but the RST: {}",
        dump(lab.pair.trace())
    );
    assert!(ours[0].flags.rst && !ours[0].flags.fin);
    assert_eq!(
        lab.pair.a.connection_count(),
        1,
        "only the listener is left"
    );
    let after = lab.call(
        7,
        Request::Send {
            handle: h,
            data: b"x".to_vec(),
        },
    );
    assert_eq!(
        after.result,
        Errno::NotSock,
        "the handle is dead after a successful close"
    );
}
