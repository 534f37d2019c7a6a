//! The per-core client plumbing: commands attach and detach clients, every
//! request is answered into the right client's ring, and a detached
//! client's connections get the exit policy while its late completions are
//! dropped, not misdelivered. The client side is driven straight through
//! the ABI over an in-process region.

use std::net::Ipv4Addr;
use std::sync::Arc;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use lingerd_abi::Errno;
use lingerd_abi::entry::{self, Body, Op};
use lingerd_abi::layout::{ENTRY_SIZE, Layout, LayoutParams};
use lingerd_abi::sys::{Consumer, Producer, SharedRegion};
use lingerd_daemon::attach::EventFd;
use lingerd_daemon::cores::{CoreClients, CoreCommand, Peer, REPORT_EVERY};
use lingerd_dataplane::engine::QueueEngine;
use lingerd_dataplane::engine::api::{ClientExitPolicy, ClientId};
use lingerd_dataplane::engine::config::{EngineConfig, Prefix};
use lingerd_dataplane::tcp::linger::Linger;
use lingerd_dataplane::wire::EthernetAddress;

struct Side {
    tx: Producer,
    rx: Consumer,
    wake: Arc<EventFd>,
    doorbell: Arc<EventFd>,
}

fn client(cmds: &mpsc::Sender<CoreCommand>, id: u16) -> Side {
    let layout = Layout::new(LayoutParams {
        cores: 1,
        ring_entries: 16,
        chunk_size: 256,
        tx_chunks: 4,
        rx_chunks: 4,
    })
    .unwrap();
    let region = Arc::new(SharedRegion::anonymous(layout.total));
    let wake = Arc::new(EventFd::new().unwrap());
    let doorbell = Arc::new(EventFd::new().unwrap());
    cmds.send(CoreCommand::Attach {
        client: ClientId(id),
        peer: Peer {
            pid: 4000 + i32::from(id),
            uid: 1000 + u32::from(id),
        },
        region: region.clone(),
        layout,
        wake: wake.clone(),
        doorbell: doorbell.clone(),
    })
    .unwrap();
    Side {
        tx: Producer::new(region.clone(), layout.request_ring(0).unwrap(), 16).unwrap(),
        rx: Consumer::new(region, layout.completion_ring(0).unwrap(), 16).unwrap(),
        wake,
        doorbell,
    }
}

fn answers(s: &mut Side) -> Vec<entry::Completion> {
    let n = s.rx.available();
    let out = (0..n)
        .filter_map(|_| s.rx.pop())
        .map(|b| entry::Completion::decode(&b).unwrap())
        .collect();
    s.rx.release();
    out
}

fn engine(t0: Instant) -> QueueEngine {
    let cfg = EngineConfig::new(
        0,
        EthernetAddress([2, 0, 0, 0, 0, 1]),
        Prefix::new(Ipv4Addr::new(198, 18, 0, 1).into(), 24).expect("an IPv4 prefix length"),
    );
    QueueEngine::new(cfg, t0)
}

#[test]
fn requests_are_answered_per_client_and_detach_applies_the_policy() {
    let t0 = Instant::now();
    let mut e = engine(t0);
    let (cmds, rx) = mpsc::channel();
    let mut core = CoreClients::new(0, rx).unwrap();
    let mut a = client(&cmds, 1);
    let mut b = client(&cmds, 2);
    core.poll(&mut e, t0);
    core.drain(&mut e);
    assert_eq!(core.len(), 2);

    // Each listens on its own port; a wants to be woken.
    let _ = a.rx.available();
    a.rx.set_need_wakeup(true);
    a.tx.push(&entry::encode_request(
        10,
        &Op::Listen {
            port: 80,
            backlog: 8,
        },
    ));
    a.tx.publish();
    b.tx.push(&entry::encode_request(
        20,
        &Op::Listen {
            port: 81,
            backlog: 8,
        },
    ));
    b.tx.publish();
    core.poll(&mut e, t0);
    core.drain(&mut e);
    let got_a = answers(&mut a);
    let got_b = answers(&mut b);
    assert_eq!(got_a.len(), 1);
    assert_eq!(
        (got_a[0].user_data, got_a[0].result, got_a[0].body),
        (10, Errno::Ok, Body::Reply)
    );
    assert_eq!(
        (got_b.len(), got_b[0].user_data, got_b[0].result),
        (1, 20, Errno::Ok)
    );
    assert!(a.wake.drain().unwrap() > 0, "a asked to be woken and was");
    assert_eq!(b.wake.drain().unwrap(), 0, "b did not ask");

    // b's listener handle is not a's to close.
    let lb = got_b[0].handle;
    a.tx.push(&entry::encode_request(
        11,
        &Op::Close {
            handle: lb,
            nonblocking: false,
        },
    ));
    a.tx.publish();
    core.poll(&mut e, t0);
    core.drain(&mut e);
    let got = answers(&mut a);
    assert_eq!((got[0].user_data, got[0].result), (11, Errno::Perm));

    // a goes away: its listener is closed by the exit policy, b's stays.
    assert_eq!(e.connection_count(), 2);
    cmds.send(CoreCommand::Detach {
        client: ClientId(1),
        policy: ClientExitPolicy::Abort,
    })
    .unwrap();
    core.poll(&mut e, t0);
    core.drain(&mut e);
    e.handle_timeout(t0);
    assert_eq!(core.len(), 1);
    assert_eq!(e.connection_count(), 1, "only b's listener is left");
    assert_eq!(core.stats().requests, 3, "totals survive the detach");
}

/// Whether `fd` is readable now.
fn readable(fd: std::os::fd::BorrowedFd<'_>) -> bool {
    use rustix::event::{PollFd, PollFlags, Timespec, poll};
    let mut fds = [PollFd::from_borrowed_fd(fd, PollFlags::IN)];
    let now = Timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    poll(&mut fds, Some(&now)).unwrap() > 0
}

#[test]
fn a_sleeping_core_is_woken_by_a_doorbell_and_a_detached_one_is_forgotten() {
    let t0 = Instant::now();
    let mut e = engine(t0);
    let (cmds, rx) = mpsc::channel();
    let mut core = CoreClients::new(0, rx).unwrap();
    let mut a = client(&cmds, 1);
    let b = client(&cmds, 2);
    core.poll(&mut e, t0);
    assert!(!a.tx.needs_wakeup(), "an awake core asks no client to ring");

    // The core is about to sleep: every client is asked to ring.
    assert!(core.arm_doorbells(), "nothing pending: it may sleep");
    assert!(a.tx.needs_wakeup() && b.tx.needs_wakeup());
    assert!(!readable(core.doorbells()), "nobody rang yet");
    a.tx.push(&entry::encode_request(1, &Op::GetLinger { handle: 9 }));
    a.tx.publish();
    assert!(a.tx.needs_wakeup());
    a.doorbell.signal().unwrap();
    assert!(readable(core.doorbells()), "a rang: the core's wait wakes");

    // Awake again: nobody need ring, and the epoll is quiet until the
    // next ring (the eventfd's own counter is left for other cores).
    core.disarm_doorbells();
    assert!(!a.tx.needs_wakeup() && !b.tx.needs_wakeup());
    assert!(!readable(core.doorbells()));
    assert!(!core.arm_doorbells(), "a's request is pending: stay awake");
    core.disarm_doorbells();
    core.poll(&mut e, t0);
    core.drain(&mut e);
    assert_eq!(answers(&mut a).len(), 1);
    b.doorbell.signal().unwrap();
    assert!(readable(core.doorbells()), "each ring is an edge");
    core.disarm_doorbells();

    // b detaches: its doorbell no longer wakes the core.
    cmds.send(CoreCommand::Detach {
        client: ClientId(2),
        policy: ClientExitPolicy::Abort,
    })
    .unwrap();
    core.poll(&mut e, t0);
    b.doorbell.signal().unwrap();
    assert!(
        !readable(core.doorbells()),
        "a detached client cannot wake it"
    );
}

#[test]
fn retune_reaches_the_engine_and_is_acknowledged() {
    let t0 = Instant::now();
    let mut e = engine(t0);
    let (cmds, rx) = mpsc::channel();
    let mut core = CoreClients::new(3, rx).unwrap();
    let mut t = e.config().tunables();
    t.time_wait_ms = 1_234;
    t.default_linger = Linger { on: true, ms: 0 };
    let (applied, acks) = mpsc::channel();
    cmds.send(CoreCommand::Retune {
        tunables: t,
        applied,
    })
    .unwrap();
    assert!(acks.try_recv().is_err(), "nothing applied before the poll");
    core.poll(&mut e, t0);
    assert_eq!(acks.try_recv(), Ok(3), "the core's index, once applied");
    assert_eq!(e.config().tunables(), t);
    assert_eq!(e.config().tcp.time_wait_ms, 1_234);
}

#[test]
fn a_misbehaving_client_is_named_in_the_log_at_most_every_ten_seconds() {
    let t0 = Instant::now();
    let mut e = engine(t0);
    let (cmds, rx) = mpsc::channel();
    let mut core = CoreClients::new(0, rx).unwrap();
    let mut good = client(&cmds, 1);
    let mut bad = client(&cmds, 2);
    core.poll(&mut e, t0);
    core.drain(&mut e);
    assert!(
        core.misbehaviour_reports(t0).is_empty(),
        "nobody misbehaved"
    );

    // The good client listens; the bad one closes that listener (EPERM),
    // sends a malformed entry (EINVAL) and claims a ring tail far ahead.
    good.tx.push(&entry::encode_request(
        1,
        &Op::Listen {
            port: 80,
            backlog: 8,
        },
    ));
    good.tx.publish();
    core.poll(&mut e, t0);
    core.drain(&mut e);
    let listener = answers(&mut good)[0].handle;
    bad.tx.push(&entry::encode_request(
        2,
        &Op::Close {
            handle: listener,
            nonblocking: false,
        },
    ));
    bad.tx.push(&[0xff; ENTRY_SIZE]);
    bad.tx.publish();
    core.poll(&mut e, t0);
    core.drain(&mut e);
    let mut got: Vec<Errno> = answers(&mut bad).iter().map(|c| c.result).collect();
    got.sort_by_key(|e| *e as u32);
    assert_eq!(got, [Errno::Perm, Errno::Inval]);
    let lines = core.misbehaviour_reports(t0);
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert!(
        lines[0].starts_with("client 2 (pid 4002, uid 1002) on queue 0: 1 malformed request entries, 1 requests on handles it does not own, 0 out-of-range ring indexes"),
        "{}",
        lines[0]
    );

    // More of the same within ten seconds: counted, not logged yet.
    for _ in 0..50 {
        bad.tx.push(&[0xff; ENTRY_SIZE]);
        bad.tx.publish();
        core.poll(&mut e, t0);
        core.drain(&mut e);
        let _ = answers(&mut bad);
    }
    let t1 = t0 + Duration::from_secs(5);
    assert!(core.misbehaviour_reports(t1).is_empty(), "rate-limited");
    let t2 = t0 + REPORT_EVERY;
    let lines = core.misbehaviour_reports(t2);
    assert_eq!(lines.len(), 1);
    assert!(
        lines[0].contains(": 50 malformed request entries"),
        "{}",
        lines[0]
    );
    assert!(lines[0].contains("(totals 51, 1, 0)"), "{}", lines[0]);
    assert!(
        core.misbehaviour_reports(t2 + REPORT_EVERY).is_empty(),
        "quiet again"
    );
    assert_eq!(core.stats().refused, 1);
    assert_eq!(core.stats().invalid, 51);
}
