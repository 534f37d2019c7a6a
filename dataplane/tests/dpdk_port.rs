//! The DPDK port through real PMDs, without root, hugepages or hardware:
//! `net_ring` loopbacks (frames out and in, counters, mbuf exhaustion →
//! `NoFrame`, the TX queue bound, several queues) and an in-process memif
//! pair carrying lingerd engine ↔ lingerd engine (connect, data both ways,
//! abort, graceful close, linger against a zero window, shutdown), judged on
//! the wire by the etherparse oracle and by the engines' completions, and
//! lingerd engine ↔ smoltcp (abort, graceful, linger, shutdown); and
//! memif pairs whose ends run on their own registered threads, bare and
//! under the daemon's `core_loop::run` (connect, abort, ECONNRESET).
//!
//! EAL runs once per process, so this binary has its own runner
//! (`harness = false`): it runs the cases in order (an argument selects
//! those whose name contains it), then drops every port, shuts DPDK down
//! and checks that neither the memif socket files (in a temp dir of this
//! pid) nor EAL's runtime directory are left behind.

mod support;

use std::collections::HashMap;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use lingerd_abi::Errno;
use lingerd_dataplane::engine::QueueEngine;
use lingerd_dataplane::engine::api::{Completion, Detail, Outcome, Request};
use lingerd_dataplane::port::Endpoint;
use lingerd_dataplane::port::core_loop::{self, Hooks, LoopView};
use lingerd_dataplane::port::dpdk::{
    DpdkConfig, DpdkPort, DpdkStats, Eal, EalConfig, EalMemory, IdleMode, TxOutcome,
};
use lingerd_dataplane::port::{Port, RxPass};
use lingerd_dataplane::table::Handle;
use lingerd_dataplane::tcp::State;
use lingerd_dataplane::tcp::linger::Linger;
use support::engine::{self, CLIENT, drain};
use support::smoltcp_peer::{SmolConfig, SmolPeer};
use support::{Segment, summarize};

/// What every case gets.
struct Ctx {
    eal: &'static Eal,
    /// This process's temp dir (memif sockets).
    dir: PathBuf,
}

/// One case of this binary.
type Case = fn(&Ctx);

fn main() {
    let filter = std::env::args().skip(1).find(|a| !a.starts_with('-'));
    let dir = std::env::temp_dir().join(format!("lingerd-dpdk-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let eal = Eal::init(&EalConfig {
        memory: EalMemory::NoHuge { megabytes: 256 },
        ..EalConfig::default()
    })
    .expect("EAL starts without hugepages or root");
    let runtime_dir = eal.runtime_dir().to_owned();
    assert!(runtime_dir.is_dir(), "EAL made {}", runtime_dir.display());

    let cases: &[(&str, Case)] = &[
        (
            "ring_loopback_frames_and_counters",
            ring_loopback_frames_and_counters,
        ),
        (
            "ring_mempool_exhaustion_is_no_frame",
            ring_mempool_exhaustion_is_no_frame,
        ),
        (
            "ring_tx_queue_bound_is_no_frame",
            ring_tx_queue_bound_is_no_frame,
        ),
        ("ring_several_queues", ring_several_queues),
        ("lcore_registration", lcore_registration),
        (
            "memif_core_loops_connect_then_abort",
            memif_core_loops_connect_then_abort,
        ),
        (
            "memif_ports_on_registered_threads",
            memif_ports_on_registered_threads,
        ),
        (
            "memif_engines_connect_and_data_both_ways",
            memif_engines_connect_and_data_both_ways,
        ),
        ("memif_engines_abort", memif_engines_abort),
        ("memif_engines_graceful_close", memif_engines_graceful_close),
        (
            "memif_engines_linger_zero_window",
            memif_engines_linger_zero_window,
        ),
        ("memif_engines_shutdown_send", memif_engines_shutdown_send),
        ("memif_engine_against_smoltcp", memif_engine_against_smoltcp),
    ];
    let ctx = Ctx {
        eal,
        dir: dir.clone(),
    };
    let mut failed = Vec::new();
    let mut ran = 0;
    for (name, case) in cases {
        if filter.as_deref().is_some_and(|f| !name.contains(f)) {
            continue;
        }
        ran += 1;
        let t0 = Instant::now();
        let ok = catch_unwind(AssertUnwindSafe(|| case(&ctx))).is_ok();
        println!(
            "test {name} ... {} ({:.2} s)",
            if ok { "ok" } else { "FAILED" },
            t0.elapsed().as_secs_f64()
        );
        if !ok {
            failed.push(*name);
        }
    }

    // Every port is gone: DPDK shuts down and leaves nothing behind.
    eal.shutdown()
        .expect("EAL shuts down once every port is closed");
    assert!(Eal::get().is_none(), "no EAL after shutdown");
    let leftovers: Vec<_> = std::fs::read_dir(&dir)
        .expect("temp dir")
        .map(|e| e.expect("entry").path())
        .collect();
    std::fs::remove_dir_all(&dir).expect("temp dir removed");
    assert!(leftovers.is_empty(), "socket files left: {leftovers:?}");
    assert!(
        !runtime_dir.exists(),
        "{} left behind",
        runtime_dir.display()
    );
    println!(
        "\ntest result: {}. {} passed; {} failed (shutdown clean)",
        if failed.is_empty() { "ok" } else { "FAILED" },
        ran - failed.len(),
        failed.len()
    );
    if !failed.is_empty() {
        eprintln!("failed: {failed:?}");
        std::process::exit(1);
    }
}

/// A recognisable 60-byte frame: broadcast destination, index in the payload.
fn test_frame(i: u8) -> Vec<u8> {
    let mut f = vec![0xffu8; 6];
    f.extend_from_slice(&[2, 0, 0, 0, 0, 0x42, 0x88, 0xb5]);
    f.extend((0..46u8).map(|b| b.wrapping_mul(7) ^ i));
    f
}

/// Receives until `n` frames came or 2 s passed.
fn receive(port: &mut DpdkPort, n: usize) -> Vec<Vec<u8>> {
    let mut got = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(2);
    while got.len() < n && Instant::now() < deadline {
        if port.rx_burst(64, |f| got.push(f.to_vec())) == 0 {
            let _ = port.wait(Duration::from_millis(1), None);
        }
    }
    got
}

fn send(port: &mut DpdkPort, frame: &[u8]) -> TxOutcome {
    port.tx_frame(|buf| {
        buf[..frame.len()].copy_from_slice(frame);
        Some(frame.len())
    })
}

fn ring_loopback_frames_and_counters(ctx: &Ctx) {
    let mut cfg = DpdkConfig::new("net_ring0");
    cfg.mbufs = 1_023;
    cfg.mempool_cache = 0;
    let mut port = DpdkPort::open(ctx.eal, &cfg).expect("net_ring0");
    assert_eq!(port.info().device.driver, "net_ring");
    assert!(port.link_up());
    let full = port.mbufs_available();
    let frames: Vec<Vec<u8>> = (0..32).map(test_frame).collect();
    for f in &frames {
        assert_eq!(send(&mut port, f), TxOutcome::Queued);
    }
    assert_eq!(port.tx_in_flight(), 32);
    assert_eq!(port.flush().expect("flush"), 32);
    assert_eq!(port.tx_in_flight(), 0);
    // Nothing to send: the mbuf goes straight back.
    assert_eq!(port.tx_frame(|_| None), TxOutcome::Empty);
    let got = receive(&mut port, 32);
    assert_eq!(got, frames, "the same frames, in order");
    let s = port.stats().expect("stats");
    assert_eq!(s.port.tx_frames, 32);
    assert_eq!(s.port.rx_frames, 32);
    assert_eq!(s.port.tx_no_frame, 0);
    assert_eq!((s.dev.opackets, s.dev.ipackets), (32, 32));
    assert_eq!(port.mbufs_available(), full, "every mbuf is back");

    // The two-pass burst: every frame ahead first, then each to handle,
    // in order both times.
    for f in &frames[..8] {
        assert_eq!(send(&mut port, f), TxOutcome::Queued);
    }
    assert_eq!(port.flush().expect("flush"), 8);
    let mut seen = Vec::new();
    let n = port.rx_burst_ahead(64, |pass, f| seen.push((pass, f.to_vec())));
    assert_eq!(n, 8, "the ring hands the 8 frames over in one burst");
    let want: Vec<(RxPass, Vec<u8>)> = [RxPass::Ahead, RxPass::Handle]
        .into_iter()
        .flat_map(|pass| frames[..8].iter().map(move |f| (pass, f.clone())))
        .collect();
    assert_eq!(seen, want);
    assert_eq!(port.mbufs_available(), full, "every mbuf is back again");
}

fn ring_mempool_exhaustion_is_no_frame(ctx: &Ctx) {
    let mut cfg = DpdkConfig::new("net_ring1");
    cfg.mbufs = 63;
    cfg.mempool_cache = 0;
    let mut port = DpdkPort::open(ctx.eal, &cfg).expect("net_ring1");
    let f = test_frame(1);
    for i in 0..63 {
        assert_eq!(send(&mut port, &f), TxOutcome::Queued, "frame {i}");
        if i % 16 == 15 {
            port.flush().expect("flush");
        }
    }
    port.flush().expect("flush");
    // All 63 mbufs sit in the ring: the pool is empty.
    assert_eq!(port.mbufs_available(), 0);
    assert_eq!(send(&mut port, &f), TxOutcome::NoFrame);
    assert_eq!(port.stats().expect("stats").port.tx_no_frame, 1);
    assert_eq!(receive(&mut port, 63).len(), 63);
    assert_eq!(port.mbufs_available(), 63);
    assert_eq!(
        send(&mut port, &f),
        TxOutcome::Queued,
        "mbufs are free again"
    );
}

fn ring_tx_queue_bound_is_no_frame(ctx: &Ctx) {
    let mut cfg = DpdkConfig::new("net_ring2");
    cfg.tx_ring = 16;
    let mut port = DpdkPort::open(ctx.eal, &cfg).expect("net_ring2");
    let f = test_frame(2);
    for _ in 0..16 {
        assert_eq!(send(&mut port, &f), TxOutcome::Queued);
    }
    assert_eq!(
        send(&mut port, &f),
        TxOutcome::NoFrame,
        "a TX ring's worth waits"
    );
    assert_eq!(port.tx_in_flight(), 16);
    assert_eq!(port.flush().expect("flush"), 16);
    assert_eq!(send(&mut port, &f), TxOutcome::Queued);
    port.flush().expect("flush");
    assert_eq!(receive(&mut port, 17).len(), 17);
}

fn ring_several_queues(ctx: &Ctx) {
    let mut cfg = DpdkConfig::new("net_ring3");
    cfg.queues = 4;
    cfg.mbufs = 255;
    let err = DpdkPort::open_queues(ctx.eal, &cfg).expect_err("cache too big for the pool");
    assert!(err.to_string().contains("mempool cache"), "{err}");
    cfg.mempool_cache = 32;
    assert!(
        DpdkPort::open(ctx.eal, &cfg).is_err(),
        "open is for one queue"
    );
    let mut ports = DpdkPort::open_queues(ctx.eal, &cfg).expect("4 queues");
    assert_eq!(ports.len(), 4);
    for (q, port) in ports.iter_mut().enumerate() {
        assert_eq!(usize::from(port.info().queue), q);
        assert_eq!(port.info().device.queues, 4);
        assert!(!port.info().device.rss, "net_ring does not hash");
        let f = test_frame(q as u8);
        assert_eq!(send(port, &f), TxOutcome::Queued);
        port.flush().expect("flush");
    }
    // net_ring loops each queue back to itself.
    for (q, port) in ports.iter_mut().enumerate() {
        assert_eq!(receive(port, 1), vec![test_frame(q as u8)], "queue {q}");
    }
    // The device closes with its last queue, not before.
    let last = ports.pop().expect("a port");
    drop(ports);
    assert!(last.link_up());
    drop(last);
}

fn lcore_registration(ctx: &Ctx) {
    let eal = ctx.eal;
    std::thread::spawn(move || {
        assert_eq!(
            lingerd_dataplane::sys::dpdk::current_lcore(),
            None,
            "a new thread has no lcore"
        );
        let guard = eal.register_thread().expect("rte_thread_register");
        let id = guard.lcore().expect("an lcore id");
        assert_ne!(id, 0, "lcore 0 is the initialising thread");
        assert_eq!(lingerd_dataplane::sys::dpdk::current_lcore(), Some(id));
        assert!(
            eal.shutdown().is_err(),
            "no shutdown while a thread is registered"
        );
        drop(guard);
        assert_eq!(lingerd_dataplane::sys::dpdk::current_lcore(), None);
    })
    .join()
    .expect("thread");
}

/// A memif pair whose ends live on two threads with lcore ids (so their
/// mempools use per-lcore caches), as dataplane cores do: 20,000 frames
/// from client to server, each received once and intact.
fn memif_ports_on_registered_threads(ctx: &Ctx) {
    const FRAMES: usize = 20_000;
    let sock = ctx.dir.join("threads.sock");
    let dev = |id: u32, role: &str| {
        DpdkConfig::new(&format!(
            "net_memif{id},role={role},socket={},socket-abstract=no",
            sock.display()
        ))
    };
    let server = DpdkPort::open(ctx.eal, &dev(900, "server")).expect("server");
    let client = DpdkPort::open(ctx.eal, &dev(901, "client")).expect("client");
    let eal = ctx.eal;
    let rx = std::thread::spawn(move || {
        let _lcore = eal.register_thread().expect("register");
        let mut port = server;
        let mut got = 0usize;
        let mut intact = true;
        let until = Instant::now() + Duration::from_secs(20);
        while got < FRAMES && Instant::now() < until {
            let n = port.rx_burst(64, |f| {
                intact &= f == test_frame((got % 251) as u8).as_slice();
                got += 1;
            });
            if n == 0 {
                let _ = port.wait(Duration::from_micros(100), None);
            }
        }
        (port, got, intact)
    });
    let tx = std::thread::spawn(move || {
        let _lcore = eal.register_thread().expect("register");
        let mut port = client;
        let until = Instant::now() + Duration::from_secs(20);
        while !port.link_up() && Instant::now() < until {
            std::thread::sleep(Duration::from_millis(1));
        }
        let mut sent = 0usize;
        while sent < FRAMES && Instant::now() < until {
            match send(&mut port, &test_frame((sent % 251) as u8)) {
                TxOutcome::Queued => sent += 1,
                _ => {
                    port.flush().expect("flush");
                    let _ = port.wait(Duration::from_micros(100), None);
                }
            }
            if sent.is_multiple_of(64) {
                port.flush().expect("flush");
            }
        }
        while port.tx_in_flight() > 0 && Instant::now() < until {
            port.flush().expect("flush");
        }
        (port, sent)
    });
    let (client, sent) = tx.join().expect("sender");
    let (server, got, intact) = rx.join().expect("receiver");
    assert_eq!((sent, got), (FRAMES, FRAMES), "every frame once");
    assert!(intact, "in order and intact");
    assert_eq!(server.stats().expect("stats").port.rx_frames, FRAMES as u64);
    drop(client);
    let until = Instant::now() + Duration::from_secs(2);
    while server.link_up() && Instant::now() < until {
        std::thread::sleep(Duration::from_millis(1));
    }
    drop(server);
}

/// The hooks of one side of [`memif_core_loops_connect_then_abort`].
struct AbortHooks {
    /// A connects then aborts; B only listens.
    connector: bool,
    started: bool,
    handle: Option<Handle>,
    events: Vec<Completion>,
    until: Instant,
}

impl Hooks<DpdkStats> for AbortHooks {
    fn done(&mut self) -> bool {
        let finished = if self.connector {
            self.events
                .iter()
                .any(|c| c.detail == Detail::Closed(Outcome::Aborted))
        } else {
            self.events.iter().any(|c| c.detail == Detail::Reset)
        };
        finished || Instant::now() > self.until
    }

    fn requests(&mut self, engine: &mut QueueEngine, now: Instant, _view: LoopView<DpdkStats>) {
        if !self.connector {
            return;
        }
        if !self.started {
            self.started = true;
            engine.handle_request(
                now,
                CLIENT,
                7,
                Request::Connect {
                    remote: engine::addr(2, PORT),
                    local_port: None,
                    local_addr: None,
                },
            );
        }
        if self.handle.is_none()
            && let Some(c) = self
                .events
                .iter()
                .find(|c| c.user_data == 7 && !c.is_event && c.result == Errno::Ok)
        {
            self.handle = Some(c.handle);
            engine.handle_request(now, CLIENT, 8, Request::Abort { handle: c.handle });
        }
    }

    fn on_completion(&mut self, c: Completion) {
        self.events.push(c);
    }
}

/// The daemon's loop ([`core_loop::run`]) on DPDK ports: one core thread
/// per side with an lcore id, A connects to B over memif, then aborts; B's
/// client sees ECONNRESET.
fn memif_core_loops_connect_then_abort(ctx: &Ctx) {
    let sock = ctx.dir.join("loops.sock");
    let dev = |id: u32, role: &str, host: u8| {
        let mut cfg = DpdkConfig::new(&format!(
            "net_memif{id},role={role},socket={},socket-abstract=no,mac=02:00:00:00:00:{host:02x}",
            sock.display()
        ));
        cfg.mbufs = 4_095;
        cfg
    };
    let server = DpdkPort::open(ctx.eal, &dev(910, "server", 2)).expect("server");
    let client = DpdkPort::open(ctx.eal, &dev(911, "client", 1)).expect("client");
    let eal = ctx.eal;
    let core = |mut port: DpdkPort, host: u8| {
        std::thread::spawn(move || {
            let _lcore = eal.register_thread().expect("register");
            let t0 = Instant::now();
            let mut engine = engine::engine(host, t0);
            if host == 2 {
                engine::listen(&mut engine, t0, PORT);
            }
            let mut hooks = AbortHooks {
                connector: host == 1,
                started: false,
                handle: None,
                events: Vec::new(),
                until: t0 + Duration::from_secs(10),
            };
            let mode = IdleMode::Sleep {
                max: Duration::from_millis(1),
            };
            core_loop::run(&mut port, &mut engine, mode, None, &mut hooks).expect("loop");
            let loops = port.stats().expect("stats").port.loops;
            (port, hooks.events, loops)
        })
    };
    let b = core(server, 2);
    let a = core(client, 1);
    let (client, a_events, a_loops) = a.join().expect("A");
    let (server, b_events, b_loops) = b.join().expect("B");
    assert!(
        a_events
            .iter()
            .any(|c| c.user_data == 8 && c.detail == Detail::Closed(Outcome::Aborted)),
        "A aborted: {a_events:?}"
    );
    let resets: Vec<_> = b_events
        .iter()
        .filter(|c| c.detail == Detail::Reset)
        .collect();
    assert_eq!(resets.len(), 1, "B: {b_events:?}");
    assert_eq!(resets[0].result, Errno::ConnReset);
    assert!(a_loops > 0 && b_loops > 0, "the loop counts its iterations");
    drop(client);
    let until = Instant::now() + Duration::from_secs(2);
    while server.link_up() && Instant::now() < until {
        std::thread::sleep(Duration::from_millis(1));
    }
    drop(server);
}

// ---- lingerd engine ↔ lingerd engine over an in-process memif pair ----

const PORT: u16 = 80;

fn pattern(len: usize, salt: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31) ^ salt)
        .collect()
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Side {
    A,
    B,
}

/// A memif port and the engine behind it, with what its client saw and
/// what arrived on the wire.
struct End {
    /// `None` only while the pair is torn down ([`Duo`]'s `Drop`).
    port: Option<DpdkPort>,
    engine: QueueEngine,
    events: Vec<Completion>,
    data: HashMap<Handle, Vec<u8>>,
    /// Whether the client consumes delivered data (RecvDone).
    reads: bool,
    /// TCP segments this end received, with when.
    wire: Vec<(Instant, Segment)>,
}

/// A = host 1, memif client, connecting; B = host 2, memif server,
/// listening on [`PORT`].
struct Duo {
    a: End,
    b: End,
    /// smoltcp in A's place (A's engine then idles), for the cases judged
    /// by a stack nobody here wrote.
    smol: Option<SmolPeer>,
    next_user_data: u64,
}

static NEXT_MEMIF: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);

impl End {
    fn port(&mut self) -> &mut DpdkPort {
        self.port.as_mut().expect("open until the pair drops")
    }

    fn port_ref(&self) -> &DpdkPort {
        self.port.as_ref().expect("open until the pair drops")
    }

    /// One iteration of this end's loop: RX, timers, TX, completions (data
    /// read and returned when `reads`). Returns whether anything moved.
    fn step(&mut self) -> bool {
        let now = Instant::now();
        self.port().count_loop();
        let (engine, wire) = (&mut self.engine, &mut self.wire);
        let n = self.port.as_mut().expect("open").rx_burst(64, |f| {
            if let Some(s) = summarize(f) {
                wire.push((now, s));
            }
            engine.handle_rx(now, f);
        });
        if self.engine.poll_timeout().is_some_and(|t| t <= now) {
            self.engine.handle_timeout(now);
        }
        let mut sent = 0;
        while sent < 64 {
            match self
                .port
                .as_mut()
                .expect("open")
                .tx_frame(|buf| self.engine.poll_transmit(now, buf))
            {
                TxOutcome::Queued => sent += 1,
                TxOutcome::Empty | TxOutcome::NoFrame => break,
            }
        }
        self.port().flush().expect("flush");
        let mut completions = drain(&mut self.engine);
        while let Some(i) = completions
            .iter()
            .position(|c| self.reads && c.is_event && matches!(c.detail, Detail::Data(_)))
        {
            let c = completions.remove(i);
            let Detail::Data(d) = &c.detail else {
                unreachable!()
            };
            self.data.entry(c.handle).or_default().extend_from_slice(d);
            self.engine.handle_request(
                now,
                CLIENT,
                0,
                Request::RecvDone {
                    handle: c.handle,
                    len: d.len() as u32,
                },
            );
            completions.extend(
                drain(&mut self.engine)
                    .into_iter()
                    .filter(|x| x.user_data != 0),
            );
        }
        let moved = n > 0 || sent > 0 || !completions.is_empty();
        self.events.extend(completions);
        moved
    }
}

/// One iteration of smoltcp's loop on `port`: RX, timers, TX. Returns
/// whether anything moved.
fn pump_smoltcp(port: &mut DpdkPort, smol: &mut SmolPeer) -> bool {
    let now = Instant::now();
    let n = port.rx_burst(64, |f| smol.receive(now, f));
    if smol.next_timeout().is_some_and(|t| t <= now) {
        smol.on_timeout(now);
    }
    let mut sent = 0;
    while sent < 64 {
        match port.tx_frame(|buf| smol.transmit(now, buf)) {
            TxOutcome::Queued => sent += 1,
            TxOutcome::Empty | TxOutcome::NoFrame => break,
        }
    }
    port.flush().expect("flush");
    n > 0 || sent > 0
}

/// Closes the client first and waits until the server has seen the
/// disconnect before closing it (the port then lets memif's interrupt
/// thread finish): DPDK 22.11's memif frees a device's regions both on
/// close and, in EAL's interrupt thread, on the peer's disconnect, without
/// a lock between the two.
impl Drop for Duo {
    fn drop(&mut self) {
        drop(self.a.port.take());
        let until = Instant::now() + Duration::from_secs(2);
        while self.b.port.as_ref().is_some_and(DpdkPort::link_up) && Instant::now() < until {
            std::thread::sleep(Duration::from_millis(1));
        }
        drop(self.b.port.take());
    }
}

impl Duo {
    fn new(ctx: &Ctx) -> Duo {
        let n = NEXT_MEMIF.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let sock = ctx.dir.join(format!("memif{n}.sock"));
        let dev = |id: u32, role: &str, host: u8| {
            let mut cfg = DpdkConfig::new(&format!(
                "net_memif{id},role={role},socket={},socket-abstract=no,mac=02:00:00:00:00:{host:02x}",
                sock.display()
            ));
            cfg.mbufs = 4_095;
            cfg
        };
        let pb = DpdkPort::open(ctx.eal, &dev(2 * n, "server", 2)).expect("memif server");
        assert!(sock.exists(), "the server made its socket file");
        let pa = DpdkPort::open(ctx.eal, &dev(2 * n + 1, "client", 1)).expect("memif client");
        assert_eq!(pa.info().device.mac, [2, 0, 0, 0, 0, 1]);
        assert_eq!(pb.info().device.mac, [2, 0, 0, 0, 0, 2]);
        let deadline = Instant::now() + Duration::from_secs(5);
        while !(pa.link_up() && pb.link_up()) {
            assert!(Instant::now() < deadline, "memif pair connects");
            std::thread::sleep(Duration::from_millis(5));
        }
        let t0 = Instant::now();
        let mut b = engine::engine(2, t0);
        let c = engine::call(
            &mut b,
            t0,
            1,
            Request::Listen {
                port: PORT,
                backlog: 1_024,
            },
        );
        assert_eq!(c.result, Errno::Ok);
        let end = |port, engine| End {
            port: Some(port),
            engine,
            events: Vec::new(),
            data: HashMap::new(),
            reads: true,
            wire: Vec::new(),
        };
        Duo {
            a: end(pa, engine::engine(1, t0)),
            b: end(pb, b),
            smol: None,
            next_user_data: 1_000,
        }
    }

    /// smoltcp, when it stands on A.
    fn smol(&mut self) -> &mut SmolPeer {
        self.smol.as_mut().expect("smoltcp stands on A")
    }

    fn end(&mut self, side: Side) -> &mut End {
        match side {
            Side::A => &mut self.a,
            Side::B => &mut self.b,
        }
    }

    /// One iteration of each end's loop: RX, timers, TX, completions (on
    /// A, smoltcp's instead when it stands there). Returns whether anything
    /// moved.
    fn step(&mut self) -> bool {
        let a = match self.smol.as_mut() {
            Some(smol) => pump_smoltcp(self.a.port.as_mut().expect("open"), smol),
            None => self.a.step(),
        };
        let b = self.b.step();
        a || b
    }

    /// Drives both ends for `d`, sleeping (port `wait`) when idle.
    fn run(&mut self, d: Duration) {
        let until = Instant::now() + d;
        while Instant::now() < until {
            if !self.step() {
                let _ = self.a.port().wait(Duration::from_micros(100), None);
            }
        }
    }

    /// Drives until `done` holds, at most `limit`.
    fn run_until(&mut self, limit: Duration, mut done: impl FnMut(&Duo) -> bool) -> bool {
        let until = Instant::now() + limit;
        while Instant::now() < until {
            if done(self) {
                return true;
            }
            if !self.step() {
                let _ = self.a.port().wait(Duration::from_micros(100), None);
            }
        }
        done(self)
    }

    fn request(&mut self, side: Side, req: Request) -> u64 {
        self.next_user_data += 1;
        let ud = self.next_user_data;
        let end = self.end(side);
        end.engine.handle_request(Instant::now(), CLIENT, ud, req);
        let c = drain(&mut end.engine);
        end.events.extend(c);
        ud
    }

    fn answer(&self, side: Side, ud: u64) -> Option<&Completion> {
        let end = match side {
            Side::A => &self.a,
            Side::B => &self.b,
        };
        end.events.iter().find(|c| c.user_data == ud && !c.is_event)
    }

    fn call(&mut self, side: Side, req: Request) -> Completion {
        let ud = self.request(side, req);
        self.answer(side, ud)
            .cloned()
            .unwrap_or_else(|| panic!("no immediate answer to {ud}"))
    }

    fn events_for(&self, side: Side, h: Handle) -> Vec<&Completion> {
        let end = match side {
            Side::A => &self.a,
            Side::B => &self.b,
        };
        end.events
            .iter()
            .filter(|c| c.handle == h && c.is_event)
            .collect()
    }

    /// RSTs that `side` received.
    fn rsts_at(&self, side: Side) -> Vec<Instant> {
        let end = match side {
            Side::A => &self.a,
            Side::B => &self.b,
        };
        end.wire
            .iter()
            .filter(|(_, s)| s.flags.rst)
            .map(|(t, _)| *t)
            .collect()
    }

    /// Connects A to B (ARP first, through the port); returns A's and B's
    /// handles.
    fn connect(&mut self) -> (Handle, Handle) {
        let ud = self.request(
            Side::A,
            Request::Connect {
                remote: engine::addr(2, PORT),
                local_port: None,
                local_addr: None,
            },
        );
        let up = self.run_until(Duration::from_secs(10), |d| {
            d.answer(Side::A, ud).is_some()
                && d.b
                    .events
                    .iter()
                    .any(|c| matches!(c.detail, Detail::Accepted { .. }))
        });
        assert!(up, "connected: A {:?}", self.a.events);
        let c = self.answer(Side::A, ud).expect("answered");
        assert_eq!(c.result, Errno::Ok);
        let ha = c.handle;
        let hb = engine::accepted(&self.b.events).expect("accepted");
        assert_eq!(self.a.engine.state(ha), Some(State::Established));
        assert_eq!(self.b.engine.state(hb), Some(State::Established));
        (ha, hb)
    }

    /// Queues all of `data` on `h`, driving while the send buffer is full.
    fn send_all(&mut self, side: Side, h: Handle, data: &[u8]) {
        let mut queued = 0;
        let until = Instant::now() + Duration::from_secs(30);
        while queued < data.len() {
            assert!(Instant::now() < until, "queued {queued} of {}", data.len());
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
                Errno::NoBufs => self.run(Duration::from_millis(2)),
                e => panic!("send: {e:?}"),
            }
        }
    }

    /// Every frame each port received is counted by the device too, and
    /// every checksum on the wire was right.
    fn check_ports(&self) {
        for end in [&self.a, &self.b] {
            let s = end.port_ref().stats().expect("stats");
            assert_eq!(s.port.rx_frames, s.dev.ipackets, "{s:?}");
            assert_eq!(s.port.rx_chained, 0);
            assert!(s.port.loops > 0);
            assert!(end.wire.iter().all(|(_, seg)| seg.checksum_ok));
        }
    }
}

fn memif_engines_connect_and_data_both_ways(ctx: &Ctx) {
    let mut d = Duo::new(ctx);
    let (ha, hb) = d.connect();
    let ab = pattern(300_000, 1);
    let ba = pattern(200_000, 2);
    d.send_all(Side::A, ha, &ab);
    d.send_all(Side::B, hb, &ba);
    let got = d.run_until(Duration::from_secs(30), |d| {
        d.b.data.get(&hb).map_or(0, Vec::len) == ab.len()
            && d.a.data.get(&ha).map_or(0, Vec::len) == ba.len()
    });
    assert!(got, "all data arrived");
    assert!(
        d.b.data[&hb] == ab && d.a.data[&ha] == ba,
        "in order, intact"
    );
    assert!(d.rsts_at(Side::A).is_empty() && d.rsts_at(Side::B).is_empty());
    d.check_ports();
}

fn memif_engines_abort(ctx: &Ctx) {
    let mut d = Duo::new(ctx);
    let (ha, hb) = d.connect();
    d.send_all(Side::A, ha, b"before the abort");
    d.run(Duration::from_millis(20));
    let c = d.call(Side::A, Request::Abort { handle: ha });
    assert_eq!(c.detail, Detail::Closed(Outcome::Aborted));
    let reset = d.run_until(Duration::from_secs(5), |d| {
        d.events_for(Side::B, hb)
            .iter()
            .any(|c| c.detail == Detail::Reset)
    });
    assert!(reset, "B sees the reset");
    let resets: Vec<_> = d
        .events_for(Side::B, hb)
        .into_iter()
        .filter(|c| c.detail == Detail::Reset)
        .collect();
    assert_eq!(resets.len(), 1);
    assert_eq!(resets[0].result, Errno::ConnReset);
    d.run(Duration::from_millis(50));
    assert_eq!(d.rsts_at(Side::B).len(), 1, "exactly one RST on the wire");
    assert!(d.rsts_at(Side::A).is_empty());
    assert_eq!(d.a.engine.connection_count(), 0);
    assert_eq!(d.b.engine.state(hb), Some(State::Closed));
    assert_eq!(d.b.data[&hb], b"before the abort");
    d.check_ports();
}

fn memif_engines_graceful_close(ctx: &Ctx) {
    let mut d = Duo::new(ctx);
    let (ha, hb) = d.connect();
    let data = pattern(100_000, 3);
    d.send_all(Side::A, ha, &data);
    let c = d.call(
        Side::A,
        Request::Close {
            handle: ha,
            nonblocking: false,
        },
    );
    assert_eq!(c.detail, Detail::Closed(Outcome::Background));
    let eof = d.run_until(Duration::from_secs(10), |d| {
        d.events_for(Side::B, hb)
            .iter()
            .any(|c| c.detail == Detail::PeerClosed)
    });
    assert!(eof, "B sees EOF");
    assert!(d.b.data[&hb] == data, "all data before EOF");
    let c = d.call(
        Side::B,
        Request::Close {
            handle: hb,
            nonblocking: false,
        },
    );
    assert_eq!(c.detail, Detail::Closed(Outcome::Background));
    let done = d.run_until(Duration::from_secs(10), |d| {
        d.b.engine.state(hb).is_none() && d.a.engine.state(ha) == Some(State::TimeWait)
    });
    assert!(
        done,
        "A {:?} B {:?}",
        d.a.engine.state(ha),
        d.b.engine.state(hb)
    );
    assert_eq!(d.b.engine.connection_count(), 1, "only the listener");
    assert!(d.rsts_at(Side::A).is_empty() && d.rsts_at(Side::B).is_empty());
    let fins = |side: Side| match side {
        Side::A => d.a.wire.iter().filter(|(_, s)| s.flags.fin).count(),
        Side::B => d.b.wire.iter().filter(|(_, s)| s.flags.fin).count(),
    };
    assert_eq!((fins(Side::A), fins(Side::B)), (1, 1), "one FIN each way");
    d.check_ports();
}

fn memif_engines_linger_zero_window(ctx: &Ctx) {
    const LINGER_MS: u32 = 300;
    let mut d = Duo::new(ctx);
    let (ha, hb) = d.connect();
    d.b.reads = false;
    let c = d.call(
        Side::A,
        Request::SetLinger {
            handle: ha,
            linger: Linger {
                on: true,
                ms: LINGER_MS,
            },
        },
    );
    assert_eq!(c.result, Errno::Ok);
    // B never reads: its window closes, A keeps data it cannot send.
    let mut queued = 0usize;
    let mut filled = false;
    for _ in 0..400 {
        let c = d.call(
            Side::A,
            Request::Send {
                handle: ha,
                data: pattern(8_192, 4),
            },
        );
        queued += usize::from(c.result == Errno::Ok);
        d.run(Duration::from_millis(5));
        if queued > 0 && d.a.wire.last().is_some_and(|(_, s)| s.window == 0) {
            filled = true;
            break;
        }
    }
    assert!(filled, "B advertises a zero window ({queued} sends)");
    // And A holds data the window does not take.
    let c = d.call(
        Side::A,
        Request::Send {
            handle: ha,
            data: pattern(8_192, 6),
        },
    );
    assert_eq!(c.result, Errno::Ok);
    d.run(Duration::from_millis(20));
    assert!(d.rsts_at(Side::B).is_empty());
    let closed_at = Instant::now();
    let ud = d.request(
        Side::A,
        Request::Close {
            handle: ha,
            nonblocking: false,
        },
    );
    assert!(
        d.answer(Side::A, ud).is_none(),
        "a blocking linger close waits"
    );
    let done = d.run_until(Duration::from_secs(5), |d| d.answer(Side::A, ud).is_some());
    assert!(done, "the close completes");
    let c = d.answer(Side::A, ud).expect("answer");
    assert_eq!(
        (c.result, &c.detail),
        (Errno::Ok, &Detail::Closed(Outcome::AbortedLinger))
    );
    d.run(Duration::from_millis(50));
    let rsts = d.rsts_at(Side::B);
    assert_eq!(rsts.len(), 1, "exactly one RST");
    let after = rsts[0] - closed_at;
    assert!(
        // The engine's timers tick in milliseconds: up to 1 ms early.
        after >= Duration::from_millis(u64::from(LINGER_MS) - 1)
            && after < Duration::from_millis(u64::from(LINGER_MS) + 500),
        "RST {after:?} after the close, deadline {LINGER_MS} ms"
    );
    assert!(
        d.events_for(Side::B, hb)
            .iter()
            .any(|c| c.detail == Detail::Reset && c.result == Errno::ConnReset)
    );
    assert_eq!(
        d.a.engine.state(ha),
        None,
        "no TIME-WAIT after a hard close"
    );
    assert_eq!(d.a.engine.counters().rst_linger_expired, 1);
    d.check_ports();
}

fn memif_engines_shutdown_send(ctx: &Ctx) {
    let mut d = Duo::new(ctx);
    let (ha, hb) = d.connect();
    d.send_all(Side::A, ha, b"request");
    let c = d.call(
        Side::A,
        Request::Shutdown {
            handle: ha,
            how: lingerd_abi::Shutdown::Send,
        },
    );
    assert_eq!(c.result, Errno::Ok);
    let eof = d.run_until(Duration::from_secs(5), |d| {
        d.events_for(Side::B, hb)
            .iter()
            .any(|c| c.detail == Detail::PeerClosed)
    });
    assert!(eof, "B sees EOF after the data");
    assert_eq!(d.b.data[&hb], b"request");
    let c = d.call(
        Side::A,
        Request::Send {
            handle: ha,
            data: b"late".to_vec(),
        },
    );
    assert_eq!(c.result, Errno::Shutdown, "no sending after SHUT_WR");
    // The other direction still works.
    let reply = pattern(50_000, 5);
    d.send_all(Side::B, hb, &reply);
    let got = d.run_until(Duration::from_secs(10), |d| {
        d.a.data.get(&ha).map_or(0, Vec::len) == reply.len()
    });
    assert!(got && d.a.data[&ha] == reply, "B's reply arrives whole");
    assert_eq!(d.a.engine.state(ha), Some(State::FinWait2));
    assert!(d.rsts_at(Side::A).is_empty() && d.rsts_at(Side::B).is_empty());
    d.check_ports();
}

/// smoltcp (in A's place) opens a connection to lingerd's B; returns its
/// socket and B's handle once B accepted it.
fn open_from_smoltcp(d: &mut Duo, local_port: u16) -> (smoltcp::iface::SocketHandle, Handle) {
    let accepted = |d: &Duo| {
        d.b.events
            .iter()
            .filter(|c| matches!(c.detail, Detail::Accepted { .. }))
            .count()
    };
    let before = accepted(d);
    let hs = d.smol().connect(engine::addr(2, PORT), local_port);
    let up = d.run_until(Duration::from_secs(10), |d| accepted(d) > before);
    assert!(
        up,
        "lingerd accepted smoltcp's connection: {:?}",
        d.b.events
    );
    let hb =
        d.b.events
            .iter()
            .rev()
            .find(|c| matches!(c.detail, Detail::Accepted { .. }))
            .map(|c| c.handle)
            .expect("accepted");
    (hs, hb)
}

/// lingerd's engine judged by smoltcp through the real memif port, in the
/// four ways a connection ends here: abort (smoltcp is reset), graceful
/// close (smoltcp reads every byte, then the FIN), a linger close
/// acknowledged in time (GRACEFUL), and shutdown(SEND) (smoltcp sees the
/// FIN and may still send to lingerd).
fn memif_engine_against_smoltcp(ctx: &Ctx) {
    use smoltcp::socket::tcp::State as Smol;
    let mut d = Duo::new(ctx);
    d.smol = Some(SmolPeer::new(SmolConfig::host(1), Instant::now()));

    // Abort.
    let (hs, hb) = open_from_smoltcp(&mut d, 41_001);
    d.smol().send(hs, b"hi");
    assert!(d.run_until(Duration::from_secs(5), |d| {
        d.b.data.get(&hb).is_some_and(|v| v == b"hi")
    }));
    let c = d.call(Side::B, Request::Abort { handle: hb });
    assert_eq!(c.detail, Detail::Closed(Outcome::Aborted));
    assert!(
        d.run_until(Duration::from_secs(5), |d| d
            .smol
            .as_ref()
            .is_some_and(|s| s.was_reset(hs))),
        "smoltcp saw the abort's RST"
    );

    // Graceful close: every byte, then the FIN.
    let (hs, hb) = open_from_smoltcp(&mut d, 41_002);
    let data = pattern(20_000, 9);
    d.send_all(Side::B, hb, &data);
    let c = d.call(
        Side::B,
        Request::Close {
            handle: hb,
            nonblocking: false,
        },
    );
    assert_eq!(c.detail, Detail::Closed(Outcome::Background));
    let mut got = Vec::new();
    let until = Instant::now() + Duration::from_secs(10);
    while !(got.len() == data.len() && d.smol().state(hs) == Smol::CloseWait) {
        assert!(Instant::now() < until, "smoltcp read {} bytes", got.len());
        d.step();
        got.extend(d.smol().recv(hs));
    }
    assert_eq!(got, data, "smoltcp reads everything, in order, then EOF");
    d.smol().close(hs);
    assert!(
        d.run_until(Duration::from_secs(5), |d| d.b.engine.state(hb)
            == Some(State::TimeWait)),
        "lingerd closed first: TIME-WAIT once smoltcp's FIN is in"
    );

    // Linger {on, 2 s}, acknowledged in time: GRACEFUL.
    let (hs, hb) = open_from_smoltcp(&mut d, 41_003);
    let c = d.call(
        Side::B,
        Request::SetLinger {
            handle: hb,
            linger: Linger {
                on: true,
                ms: 2_000,
            },
        },
    );
    assert_eq!(c.result, Errno::Ok);
    d.send_all(Side::B, hb, &pattern(5_000, 3));
    let ud = d.request(
        Side::B,
        Request::Close {
            handle: hb,
            nonblocking: false,
        },
    );
    let done = d.run_until(Duration::from_secs(5), |d| d.answer(Side::B, ud).is_some());
    assert!(done, "the linger close completed before its deadline");
    assert_eq!(
        d.answer(Side::B, ud).map(|c| c.detail.clone()),
        Some(Detail::Closed(Outcome::Graceful))
    );
    assert!(!d.smol().was_reset(hs));

    // shutdown(SEND): smoltcp sees the FIN and still sends.
    let (hs, hb) = open_from_smoltcp(&mut d, 41_004);
    let c = d.call(
        Side::B,
        Request::Shutdown {
            handle: hb,
            how: lingerd_abi::Shutdown::Send,
        },
    );
    assert_eq!(c.result, Errno::Ok);
    assert!(d.run_until(Duration::from_secs(5), |d| {
        d.smol
            .as_ref()
            .is_some_and(|s| s.state(hs) == Smol::CloseWait)
    }));
    d.smol().send(hs, b"after");
    assert!(
        d.run_until(Duration::from_secs(5), |d| d
            .b
            .data
            .get(&hb)
            .is_some_and(|v| v == b"after")),
        "lingerd still receives after shutdown(SEND)"
    );
}
