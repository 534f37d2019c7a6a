//! `lingerd ctl capture`'s session, in process and without root: the real
//! ctl socket and session, a core thread running `CoreClients` that offers
//! the capture tap it is lent two frames per loop iteration (a received
//! ACK and a sent RST, as the per-core loop would), and the real
//! `CtlClient` reading the batches. It judges what reaches `lingerd ctl`:
//! the start, the batches, the count cut exactly, the filter (compiled by
//! libpcap) deciding, the end on Ctrl-C and at the duration, one capture at
//! a time, hostile programs and unknown queues refused. The AF_XDP
//! end-to-end test is `system_run::capture_counts_every_rst_the_peer_saw`.
//!
//! It owns only scaffolding: a scratch directory removed on drop and the
//! core thread, stopped and joined on drop.

mod support;

use std::net::Ipv4Addr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use lingerd_daemon::cores::{CoreClients, CoreCommand};
use lingerd_daemon::ctl::client::{CtlClient, Message};
use lingerd_daemon::ctl::filter;
use lingerd_daemon::ctl::proto::{self, Body, CaptureSpec, Op, Request};
use lingerd_daemon::ctl::server::{CtlConfig, CtlListener, CtlServer};
use lingerd_daemon::metrics::MetricsHub;
use lingerd_dataplane::capture::Direction;
use lingerd_dataplane::engine::QueueEngine;
use lingerd_dataplane::engine::config::{EngineConfig, Prefix};
use lingerd_dataplane::wire::EthernetAddress;
use support::Scratch;

/// The NIC queue of the one core.
const QUEUE: u32 = 5;

/// An Ethernet + IPv4 + TCP frame with these TCP flags.
fn tcp(flags: u8) -> Vec<u8> {
    let mut f = vec![0u8; 54];
    f[12] = 0x08;
    f[14] = 0x45;
    f[23] = 6;
    f[47] = flags;
    f
}

struct Harness {
    socket: std::path::PathBuf,
    server: Option<CtlServer>,
    stop: Arc<AtomicBool>,
    core: Option<JoinHandle<()>>,
    _scratch: Scratch,
}

impl Harness {
    fn start() -> Harness {
        let scratch = Scratch::new("ctlcap", 0o700);
        let socket = scratch.join("run/lingerd.ctl");
        let listener = CtlListener::bind(CtlConfig {
            socket: socket.clone(),
            allow_uids: vec![rustix::process::getuid().as_raw()],
            queues: vec![QUEUE],
        })
        .expect("bind the ctl socket");
        let (tx, rx) = mpsc::channel::<CoreCommand>();
        let stop = Arc::new(AtomicBool::new(false));
        let core = {
            let stop = stop.clone();
            std::thread::spawn(move || {
                let t0 = Instant::now();
                let cfg = EngineConfig::new(
                    0,
                    EthernetAddress([2, 0, 0, 0, 0, 1]),
                    Prefix::new(Ipv4Addr::new(198, 18, 0, 1).into(), 24)
                        .expect("an IPv4 prefix length"),
                );
                let mut e = QueueEngine::new(cfg, t0);
                let mut clients = CoreClients::new(0, rx).unwrap();
                let (ack, rst) = (tcp(0x10), tcp(0x14));
                while !stop.load(Ordering::Relaxed) && t0.elapsed() < Duration::from_secs(120) {
                    let now = Instant::now();
                    clients.poll(&mut e, now);
                    // The loop's part: a burst received, a burst sent.
                    if let Some(tap) = clients.io().capture {
                        tap.set_clock(now);
                        tap.offer(Direction::Received, &ack);
                        tap.offer(Direction::Sent, &rst);
                        tap.end_iteration(now);
                    }
                    clients.drain(&mut e);
                    std::thread::sleep(Duration::from_micros(200));
                }
            })
        };
        let server = listener
            .serve(vec![tx], Arc::new(MetricsHub::new(1)))
            .expect("serve");
        Harness {
            socket,
            server: Some(server),
            stop,
            core: Some(core),
            _scratch: scratch,
        }
    }

    /// Starts a capture; returns the client and the first reply.
    fn capture(&self, spec: CaptureSpec) -> (CtlClient, Body) {
        let mut c = CtlClient::connect(&self.socket, Some(Duration::from_millis(100))).unwrap();
        c.send(&Request {
            v: proto::VERSION,
            op: Op::Capture(spec),
        })
        .unwrap();
        let first = loop {
            match c.next_message().unwrap() {
                None => continue,
                Some(Message::Reply(b)) => break b,
                Some(Message::Batch(_)) => panic!("a batch before the start"),
            }
        };
        (c, first)
    }
}

impl Drop for Harness {
    fn drop(&mut self) {
        if let Some(s) = self.server.take() {
            s.stop();
        }
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.core.take() {
            let _ = t.join();
        }
    }
}

/// What a capture delivered until its end: the directions of its records
/// and the final reply.
fn until_end(c: &mut CtlClient, within: Duration) -> (Vec<Direction>, Body) {
    let until = Instant::now() + within;
    let mut seen = Vec::new();
    loop {
        assert!(Instant::now() < until, "no end within {within:?}");
        match c.next_message().unwrap() {
            None => {}
            Some(Message::Batch(b)) => {
                assert_eq!(b.queue, QUEUE);
                seen.extend(b.records().map(|r| r.direction));
            }
            Some(Message::Reply(end)) => return (seen, end),
        }
    }
}

#[test]
fn a_count_is_cut_exactly_and_the_figures_add_up() {
    let h = Harness::start();
    let (mut c, first) = h.capture(CaptureSpec {
        count: 1001,
        ..CaptureSpec::default()
    });
    assert_eq!(
        first,
        Body::CaptureStarted {
            queues: vec![QUEUE],
            snaplen: lingerd_dataplane::capture::tap::MAX_SNAPLEN
        }
    );
    let (seen, end) = until_end(&mut c, Duration::from_secs(30));
    assert_eq!(seen.len(), 1001);
    assert_eq!(seen[0], Direction::Received);
    assert_eq!(seen[1], Direction::Sent);
    let Body::Captured {
        written,
        per_queue,
        reason,
    } = end
    else {
        panic!("{end:?}");
    };
    assert_eq!((written, reason.as_str()), (1001, "count reached"));
    let q = &per_queue[0];
    assert_eq!((q.queue, q.written), (QUEUE, 1001));
    assert!(q.matched >= 1001 && q.seen == q.matched, "{q:?}");
    // The next capture may start: the first one is over.
    let (_c, again) = h.capture(CaptureSpec {
        count: 1,
        ..CaptureSpec::default()
    });
    assert!(matches!(again, Body::CaptureStarted { .. }), "{again:?}");
}

#[test]
fn the_compiled_filter_decides_and_a_second_capture_is_refused() {
    let h = Harness::start();
    let (mut c, first) = h.capture(CaptureSpec {
        program: filter::compile("tcp[tcpflags] & tcp-rst != 0").unwrap(),
        count: 300,
        ..CaptureSpec::default()
    });
    assert!(matches!(first, Body::CaptureStarted { .. }), "{first:?}");
    let (_c2, busy) = h.capture(CaptureSpec::default());
    let Body::Error { message } = busy else {
        panic!("{busy:?}");
    };
    assert!(message.contains("already running"), "{message}");
    let (seen, end) = until_end(&mut c, Duration::from_secs(30));
    assert_eq!(seen.len(), 300);
    assert!(seen.iter().all(|d| *d == Direction::Sent), "only the RSTs");
    let Body::Captured { per_queue, .. } = end else {
        panic!("{end:?}");
    };
    assert!(
        per_queue[0].seen >= 2 * per_queue[0].matched - 2,
        "{per_queue:?}"
    );
}

#[test]
fn ctrl_c_ends_the_capture_with_its_last_batches_and_figures() {
    let h = Harness::start();
    let (mut c, first) = h.capture(CaptureSpec::default());
    assert!(matches!(first, Body::CaptureStarted { .. }));
    // Let some batches come, then shut our end as Ctrl-C does.
    let mut before = 0;
    let until = Instant::now() + Duration::from_secs(10);
    while before < 200 && Instant::now() < until {
        if let Some(Message::Batch(b)) = c.next_message().unwrap() {
            before += b.count;
        }
    }
    assert!(before >= 200);
    c.shutdown_send().unwrap();
    let (after, end) = until_end(&mut c, Duration::from_secs(10));
    let Body::Captured {
        written,
        per_queue,
        reason,
    } = end
    else {
        panic!("{end:?}");
    };
    assert_eq!(reason, "lingerd ctl asked to stop");
    assert_eq!(written, u64::from(before) + after.len() as u64);
    let q = &per_queue[0];
    assert_eq!(
        q.written + q.dropped,
        q.matched,
        "each copy written or counted"
    );
}

#[test]
fn a_duration_ends_the_capture() {
    let h = Harness::start();
    let t0 = Instant::now();
    let (mut c, _) = h.capture(CaptureSpec {
        duration_ms: 300,
        ..CaptureSpec::default()
    });
    let (_, end) = until_end(&mut c, Duration::from_secs(10));
    let took = t0.elapsed();
    assert!(
        matches!(&end, Body::Captured { reason, .. } if reason == "duration reached"),
        "{end:?}"
    );
    assert!(
        took >= Duration::from_millis(300) && took < Duration::from_secs(5),
        "{took:?}"
    );
}

#[test]
fn hostile_programs_and_unknown_queues_are_refused_before_any_core_sees_them() {
    let h = Harness::start();
    for (spec, why) in [
        (
            CaptureSpec {
                program: vec![(0x15, 9, 0, 1), (0x06, 0, 0, 1)],
                ..CaptureSpec::default()
            },
            "jump",
        ),
        (
            CaptureSpec {
                program: vec![(0x00, 0, 0, 1)],
                ..CaptureSpec::default()
            },
            "return",
        ),
        (
            CaptureSpec {
                queues: vec![QUEUE + 1],
                ..CaptureSpec::default()
            },
            "not one of",
        ),
    ] {
        let (_c, reply) = h.capture(spec);
        let Body::Error { message } = reply else {
            panic!("{reply:?}");
        };
        assert!(message.contains(why), "{why}: {message}");
    }
    // Still serving: a good capture starts.
    let (_c, ok) = h.capture(CaptureSpec {
        count: 1,
        ..CaptureSpec::default()
    });
    assert!(matches!(ok, Body::CaptureStarted { .. }), "{ok:?}");
}
