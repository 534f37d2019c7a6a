//! System test: a lingerd engine on AF_XDP against the Linux kernel's TCP.
//!
//! Root and a lab (`deploy/lab up`, removed by a guard even on panic). The
//! engine runs in the dut namespace on the veth's queue 0 in sleep mode,
//! answering for 198.18.0.3 (not configured on the kernel's interface) and
//! steering only port 7; it echoes what it receives. From the peer namespace
//! a std `TcpStream` connects, sends, reads the echo; the engine aborts and
//! the kernel's read fails with ECONNRESET. The same run checks that the
//! kernel still serves what is not steered (a kernel listener on the dut's
//! own 198.18.0.1, XDP_PASS), ARP both ways (the peer resolves the engine;
//! the engine resolves a second peer address for its own connect), that a
//! stale program attached the legacy way is replaced at start, and that
//! dropping the port leaves no XDP program on the interface.
//!
//! Each test is ignored unless asked for (`--ignored`; `deploy/test` runs
//! them): it needs root and network namespaces, and one that cannot make
//! its lab fails. It owns its lab and
//! threads; it touches no other namespace and no address outside
//! 198.18.0.0/15.

use std::io::{ErrorKind, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use lingerd_abi::Errno;
use lingerd_dataplane::engine::QueueEngine;
use lingerd_dataplane::engine::api::{ClientId, Completion, Detail, Request};
use lingerd_dataplane::engine::config::{EngineConfig, Prefix};
use lingerd_dataplane::engine::counters::Counters;
use lingerd_dataplane::port::afxdp::{
    AfXdpConfig, AfXdpPort, AfXdpStats, IdleMode, PortInfo, XdpAttach,
};
use lingerd_dataplane::port::{Hooks, LoopView, Port, core_loop};
use lingerd_dataplane::sys::netns;
use lingerd_dataplane::table::Handle;
use lingerd_dataplane::wire::EthernetAddress;
use lingerd_lab::Lab;

const ENGINE_IP: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 3);
const PEER_IP2: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 4);
const ECHO_PORT: u16 = 7;
const KERNEL_PORT: u16 = 9;
const PEER_LISTEN_PORT: u16 = 8080;
const CLIENT: ClientId = ClientId(1);
const STEP: Duration = Duration::from_secs(10);

/// Runs `f` in a new thread inside namespace `ns`.
fn in_ns<T: Send + 'static>(
    ns: String,
    f: impl FnOnce() -> T + Send + 'static,
) -> thread::JoinHandle<T> {
    thread::spawn(move || {
        netns::enter(&ns).unwrap_or_else(|e| panic!("entering {ns}: {e}"));
        f()
    })
}

/// A kernel listener that accepts one connection within `STEP`, echoes one
/// read back and returns what it read. Bounded: non-blocking accept polled
/// every 10 ms.
fn kernel_echo_once(
    ns: String,
    addr: SocketAddrV4,
) -> (mpsc::Receiver<()>, thread::JoinHandle<Vec<u8>>) {
    let (ready_tx, ready_rx) = mpsc::channel();
    let h = in_ns(ns, move || {
        let l = TcpListener::bind(addr).expect("bind kernel listener");
        l.set_nonblocking(true).unwrap();
        ready_tx.send(()).unwrap();
        let until = Instant::now() + STEP;
        let (mut s, _) = loop {
            match l.accept() {
                Ok(c) => break c,
                Err(e) if e.kind() == ErrorKind::WouldBlock && Instant::now() < until => {
                    thread::sleep(Duration::from_millis(10));
                }
                Err(e) => panic!("kernel listener on {addr}: {e}"),
            }
        };
        s.set_nonblocking(false).unwrap();
        s.set_read_timeout(Some(STEP)).unwrap();
        let mut buf = [0u8; 64];
        let n = s.read(&mut buf).expect("kernel listener read");
        s.write_all(&buf[..n]).unwrap();
        buf[..n].to_vec()
    });
    (ready_rx, h)
}

/// What the test asks of the engine thread.
enum Cmd {
    /// Abort every accepted connection.
    AbortAll,
    /// Connect to this peer address.
    Connect(SocketAddrV4),
}

struct EngineRun {
    counters: Counters,
    stats: AfXdpStats,
}

/// The engine thread's hooks: echo what arrives, obey `Cmd`s, report
/// every completion on `events`.
struct Echo<'a> {
    stop: &'a AtomicBool,
    cmds: &'a mpsc::Receiver<Cmd>,
    events: &'a mpsc::Sender<Completion>,
    pending: Vec<Completion>,
    accepted: Vec<Handle>,
    user_data: u64,
}

impl Hooks<AfXdpStats> for Echo<'_> {
    fn done(&mut self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }

    fn on_completion(&mut self, c: Completion) {
        let _ = self.events.send(c.clone());
        self.pending.push(c);
    }

    fn requests(&mut self, engine: &mut QueueEngine, now: Instant, _view: LoopView<AfXdpStats>) {
        let user_data = &mut self.user_data;
        for c in self.pending.drain(..) {
            match c.detail {
                Detail::Accepted { .. } => self.accepted.push(c.handle),
                Detail::Data(data) => {
                    let len = data.len() as u32;
                    *user_data += 1;
                    engine.handle_request(
                        now,
                        CLIENT,
                        *user_data,
                        Request::Send {
                            handle: c.handle,
                            data,
                        },
                    );
                    *user_data += 1;
                    engine.handle_request(
                        now,
                        CLIENT,
                        *user_data,
                        Request::RecvDone {
                            handle: c.handle,
                            len,
                        },
                    );
                }
                _ => {}
            }
        }
        while let Ok(cmd) = self.cmds.try_recv() {
            *user_data += 1;
            match cmd {
                Cmd::AbortAll => {
                    for &handle in &self.accepted {
                        engine.handle_request(now, CLIENT, *user_data, Request::Abort { handle });
                    }
                }
                Cmd::Connect(remote) => engine.handle_request(
                    now,
                    CLIENT,
                    *user_data,
                    Request::Connect {
                        remote: remote.into(),
                        local_port: None,
                        local_addr: None,
                    },
                ),
            }
        }
    }
}

/// The engine thread: port open, listener on 7, echo, commands.
fn spawn_engine(
    lab: &Lab,
    stop: Arc<AtomicBool>,
    cmds: mpsc::Receiver<Cmd>,
    events: mpsc::Sender<Completion>,
    info_tx: mpsc::Sender<Result<PortInfo, String>>,
) -> thread::JoinHandle<Option<EngineRun>> {
    let iface = lab.get("LAB_DUT_IF");
    let mac = lab
        .get("LAB_DUT_MAC")
        .parse::<EthernetAddress>()
        .expect("the lab's MAC");
    in_ns(lab.get("LAB_DUT_NS"), move || {
        let mut cfg = AfXdpConfig::new(&iface, 0, vec![ENGINE_IP]);
        cfg.ports = vec![ECHO_PORT];
        let engine_cfg = EngineConfig::new(
            0,
            mac,
            Prefix::new(ENGINE_IP.into(), 24).expect("an IPv4 prefix length"),
        );
        cfg.ephemeral = Some(engine_cfg.tcp.ephemeral_ports);
        let mut port = match AfXdpPort::open(&cfg) {
            Ok(p) => p,
            Err(e) => {
                info_tx.send(Err(e.to_string())).unwrap();
                return None;
            }
        };
        info_tx.send(Ok(port.info().clone())).unwrap();
        let t0 = Instant::now();
        let mut engine = QueueEngine::new(engine_cfg, t0);
        engine.handle_request(
            t0,
            CLIENT,
            1,
            Request::Listen {
                port: ECHO_PORT,
                backlog: 16,
            },
        );
        let mut echo = Echo {
            stop: &stop,
            cmds: &cmds,
            events: &events,
            pending: Vec::new(),
            accepted: Vec::new(),
            user_data: 100,
        };
        core_loop::run(
            &mut port,
            &mut engine,
            IdleMode::Sleep {
                max: Duration::from_millis(5),
            },
            None,
            &mut echo,
        )
        .expect("engine loop");
        Some(EngineRun {
            counters: engine.counters().clone(),
            stats: port.stats().expect("xdp statistics"),
        })
    })
}

/// Waits for the first event matching `pred`, at most `STEP`.
fn wait_event(
    events: &mpsc::Receiver<Completion>,
    what: &str,
    pred: impl Fn(&Completion) -> bool,
) -> Completion {
    let until = Instant::now() + STEP;
    loop {
        let left = until.saturating_duration_since(Instant::now());
        match events.recv_timeout(left) {
            Ok(c) if pred(&c) => return c,
            Ok(_) => {}
            Err(_) => panic!("no {what} from the engine within {STEP:?}"),
        }
    }
}

#[test]
#[ignore = "needs root and netns"]
fn afxdp_engine_against_kernel_tcp() {
    let lab = lingerd_lab::need("system_afxdp", &lingerd_lab::unique_id("sa"), 1);
    let dut_ns = lab.get("LAB_DUT_NS");
    let peer_ns = lab.get("LAB_PEER_NS");
    let peer_if = lab.get("LAB_PEER_IF");
    let dut_addr: Ipv4Addr = lab.get("LAB_DUT_ADDR").parse().unwrap();
    lab.ip(
        "LAB_PEER_NS",
        &["addr", "add", &format!("{PEER_IP2}/24"), "dev", &peer_if],
    );

    // A program left behind the legacy way (netlink, generic mode), as by a
    // crashed older instance or `ip link set xdp`: the port must take it off.
    let dut_if = lab.get("LAB_DUT_IF");
    let stale = concat!(env!("OUT_DIR"), "/lingerd.bpf.o");
    lab.ip(
        "LAB_DUT_NS",
        &[
            "link",
            "set",
            "dev",
            &dut_if,
            "xdpgeneric",
            "obj",
            stale,
            "sec",
            "xdp",
        ],
    );
    let link = lab.ip("LAB_DUT_NS", &["link", "show", &dut_if]);
    assert!(
        link.contains("xdpgeneric"),
        "stale program not attached: {link}"
    );

    // The engine, on AF_XDP in the dut namespace.
    let stop = Arc::new(AtomicBool::new(false));
    let (cmd_tx, cmd_rx) = mpsc::channel();
    let (ev_tx, ev_rx) = mpsc::channel();
    let (info_tx, info_rx) = mpsc::channel();
    let engine = spawn_engine(&lab, stop.clone(), cmd_rx, ev_tx, info_tx);
    let info = match info_rx
        .recv_timeout(STEP)
        .expect("engine thread said nothing")
    {
        Ok(info) => info,
        Err(e) => panic!("AF_XDP port did not open: {e}"),
    };
    eprintln!("system_afxdp: {info}");
    let link = lab.ip("LAB_DUT_NS", &["link", "show", &dut_if]);
    assert!(
        link.contains("prog/xdp"),
        "no XDP program on the dut: {link}"
    );
    // veth has native XDP: the stale generic program is gone, ours is native.
    assert_eq!(info.xdp, XdpAttach::Native, "{info}");
    assert!(
        !link.contains("xdpgeneric"),
        "stale generic program still there: {link}"
    );

    // 1. Echo through the engine, then abort -> ECONNRESET in the kernel.
    let (echoed_tx, echoed_rx) = mpsc::channel();
    let client = in_ns(peer_ns.clone(), move || {
        let to = SocketAddr::V4(SocketAddrV4::new(ENGINE_IP, ECHO_PORT));
        let mut s = TcpStream::connect_timeout(&to, STEP).expect("connect to the engine");
        s.set_read_timeout(Some(STEP)).unwrap();
        s.write_all(b"hello lingerd").unwrap();
        let mut buf = [0u8; 13];
        s.read_exact(&mut buf).expect("read the echo");
        echoed_tx.send(buf.to_vec()).unwrap();
        let mut more = [0u8; 16];
        s.read(&mut more)
    });
    let echo = echoed_rx.recv_timeout(STEP).expect("no echo within 10 s");
    assert_eq!(echo, b"hello lingerd");
    wait_event(&ev_rx, "Accepted", |c| {
        matches!(c.detail, Detail::Accepted { .. })
    });
    cmd_tx.send(Cmd::AbortAll).unwrap();
    let after_abort = client.join().expect("client thread");
    match after_abort {
        Err(e) if e.kind() == ErrorKind::ConnectionReset => {}
        other => panic!("after the engine's abort the kernel read gave {other:?}, not ECONNRESET"),
    }

    // 2. Not steered: the kernel's own listener on the dut address.
    let (ready, kernel) =
        kernel_echo_once(dut_ns.clone(), SocketAddrV4::new(dut_addr, KERNEL_PORT));
    ready.recv_timeout(STEP).unwrap();
    let reply = in_ns(peer_ns.clone(), move || {
        let to = SocketAddr::V4(SocketAddrV4::new(dut_addr, KERNEL_PORT));
        let mut s = TcpStream::connect_timeout(&to, STEP).expect("connect to the dut's kernel");
        s.set_read_timeout(Some(STEP)).unwrap();
        s.write_all(b"pass").unwrap();
        let mut buf = [0u8; 4];
        s.read_exact(&mut buf).expect("read from the dut's kernel");
        buf
    })
    .join()
    .unwrap();
    assert_eq!(&reply, b"pass");
    assert_eq!(kernel.join().unwrap(), b"pass");

    // 3. ARP the other way: the engine connects to an address it has not
    // seen, so it must ask, and the peer's reply must be steered to it.
    let (ready, peer_listener) = kernel_echo_once(
        peer_ns.clone(),
        SocketAddrV4::new(PEER_IP2, PEER_LISTEN_PORT),
    );
    ready.recv_timeout(STEP).unwrap();
    cmd_tx
        .send(Cmd::Connect(SocketAddrV4::new(PEER_IP2, PEER_LISTEN_PORT)))
        .unwrap();
    let connected = wait_event(&ev_rx, "Connected", |c| {
        matches!(c.detail, Detail::Connected { .. }) || (!c.is_event && c.result != Errno::Ok)
    });
    assert_eq!(connected.result, Errno::Ok, "engine connect: {connected:?}");
    let neigh = lab.ip("LAB_PEER_NS", &["neigh", "show", &ENGINE_IP.to_string()]);
    assert!(
        neigh.contains(&lab.get("LAB_DUT_MAC")),
        "the peer did not resolve {ENGINE_IP}: {neigh:?}"
    );

    stop.store(true, Ordering::Relaxed);
    let run = engine.join().expect("engine thread").expect("engine ran");
    drop(peer_listener); // it gives up by itself within STEP
    assert!(run.counters.arp_replies_sent >= 1, "{:?}", run.counters);
    assert!(run.counters.arp_requests_sent >= 1, "{:?}", run.counters);
    assert_eq!(run.stats.xdp.rx_invalid_descs, 0, "{:?}", run.stats);
    assert_eq!(run.stats.xdp.tx_invalid_descs, 0, "{:?}", run.stats);
    eprintln!("system_afxdp: port {:?}", run.stats);

    // 4. The port is gone: so is the program.
    let link = lab.ip("LAB_DUT_NS", &["link", "show", &lab.get("LAB_DUT_IF")]);
    assert!(
        !link.contains("prog/xdp"),
        "XDP program left behind: {link}"
    );
}

/// A burst of several TX rings' worth of frames, queued before one flush,
/// all reaches the wire. The TX ring takes a batch whole or not at all, so
/// a port that offered everything pending at once stalled for good as soon
/// as more frames waited than the ring had slots (the lab lost every RST
/// after the first few thousand of a 10k abort burst).
#[test]
#[ignore = "needs root and netns"]
fn afxdp_burst_larger_than_the_tx_ring_is_sent_whole() {
    const RING: u32 = 64;
    const BURST: u64 = 4 * RING as u64;
    let lab = lingerd_lab::need("system_afxdp", &lingerd_lab::unique_id("sb"), 1);
    let iface = lab.get("LAB_DUT_IF");
    let dut_mac = lab
        .get("LAB_DUT_MAC")
        .parse::<EthernetAddress>()
        .expect("the lab's MAC");
    let peer_mac = lab
        .get("LAB_PEER_MAC")
        .parse::<EthernetAddress>()
        .expect("the lab's MAC");
    let before = lab.peer_stat("rx_packets").unwrap();
    let sender = in_ns(lab.get("LAB_DUT_NS"), move || {
        let mut cfg = AfXdpConfig::new(&iface, 0, vec![ENGINE_IP]);
        cfg.xsk.ring_size = RING;
        cfg.xsk.frames = 1024;
        let mut port = AfXdpPort::open(&cfg).map_err(|e| e.to_string())?;
        // Local experimental EtherType: the peer's kernel counts and drops it.
        let mut frame = [0u8; 60];
        frame[..6].copy_from_slice(&peer_mac.0);
        frame[6..12].copy_from_slice(&dut_mac.0);
        frame[12..14].copy_from_slice(&0x88b5u16.to_be_bytes());
        for _ in 0..BURST {
            let queued = port.tx_frame(|buf| {
                buf[..frame.len()].copy_from_slice(&frame);
                Some(frame.len())
            });
            assert_eq!(queued, lingerd_dataplane::port::afxdp::TxOutcome::Queued);
        }
        assert_eq!(port.tx_in_flight() as u64, BURST);
        let until = Instant::now() + STEP;
        while port.tx_in_flight() > 0 && Instant::now() < until {
            port.flush().map_err(|e| e.to_string())?;
            thread::sleep(Duration::from_millis(1));
        }
        Ok::<usize, String>(port.tx_in_flight())
    });
    let left = sender.join().expect("sender thread").expect("AF_XDP port");
    assert_eq!(
        left, 0,
        "frames still waiting for the TX ring after {STEP:?}"
    );
    let until = Instant::now() + STEP;
    let mut got = 0;
    while Instant::now() < until {
        got = lab.peer_stat("rx_packets").unwrap() - before;
        if got >= BURST {
            break;
        }
        thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(got, BURST, "the peer received {got} of {BURST} frames");
}
