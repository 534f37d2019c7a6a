//! A daemon in the test process: an attach thread running the real
//! [`Acceptor`] on a real socket, and a dataplane thread running
//! `ClientRings` over two `QueueEngine`s that shuttle frames in memory.
//! Engine A (198.18.0.1, core tag 0) serves ring 0, engine B (198.18.0.2,
//! core tag 1) serves ring 1, so one client can listen through ring 0 and
//! connect to it through ring 1, and every call it makes completes through
//! the socket + memfd + eventfd path.
//!
//! It owns only test scaffolding: a scratch directory removed on drop,
//! the two threads (stopped and joined on drop, each loop bounded by a
//! stop flag and a lifetime cap), and what the tests observe (`Gone`
//! events, attach counters, connection counts). It makes no protocol
//! decisions; a `Gone` client gets `ClientExitPolicy::Abort`.
#![allow(dead_code)]

use std::collections::HashMap;
use std::fs;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use lingerd_abi::layout::{Layout, LayoutParams};
use lingerd_daemon::attach::{Acceptor, AcceptorConfig, AttachEvent, AttachStats, EventFd};
use lingerd_dataplane::engine::QueueEngine;
use lingerd_dataplane::engine::api::{ClientExitPolicy, ClientId};
use lingerd_dataplane::engine::config::{EngineConfig, Prefix};
use lingerd_dataplane::rings::ClientRings;
use lingerd_dataplane::wire::EthernetAddress;

/// The most a harness thread runs, whatever happens.
const LIFETIME: Duration = Duration::from_secs(120);

/// A scratch directory (tempfile), removed on drop.
pub(crate) struct Scratch(tempfile::TempDir);

impl Scratch {
    /// `/tmp/lingerd-<name>-XXXXXX` with `mode`.
    pub(crate) fn new(name: &str, mode: u32) -> Scratch {
        let dir = tempfile::Builder::new()
            .prefix(&format!("lingerd-{name}-"))
            .permissions(fs::Permissions::from_mode(mode))
            .tempdir()
            .unwrap();
        // The umask may have taken bits off: set them as asked.
        fs::set_permissions(dir.path(), fs::Permissions::from_mode(mode)).unwrap();
        Scratch(dir)
    }

    /// The directory.
    pub(crate) fn path(&self) -> &Path {
        self.0.path()
    }

    /// A path inside.
    pub(crate) fn join(&self, rel: &str) -> PathBuf {
        self.0.path().join(rel)
    }
}

/// The small layout every test uses: 2 cores, 64-entry rings, 256-byte
/// chunks (so a few hundred bytes already span several chunks).
pub(crate) fn layout() -> Layout {
    Layout::new(LayoutParams {
        cores: 2,
        ring_entries: 64,
        chunk_size: 256,
        tx_chunks: 32,
        rx_chunks: 64,
    })
    .unwrap()
}

/// Engine A's address (ring 0).
pub(crate) fn addr_a(port: u16) -> SocketAddrV4 {
    SocketAddrV4::new(Ipv4Addr::new(198, 18, 0, 1), port)
}

fn engine(core: u8, host: u8, t0: Instant) -> QueueEngine {
    let mut cfg = EngineConfig::new(
        core,
        EthernetAddress([2, 0, 0, 0, 0, host]),
        Prefix::new(Ipv4Addr::new(198, 18, 0, host).into(), 24).expect("an IPv4 prefix length"),
    );
    cfg.isn_secret = [u64::from(host), 0x5eed];
    cfg.hash_key = 0xfeed ^ u64::from(host);
    QueueEngine::new(cfg, t0)
}

/// What the dataplane thread shows the test.
#[derive(Default)]
pub(crate) struct Observed {
    /// Connections (and listeners) per engine, updated every iteration.
    pub(crate) connections: [AtomicUsize; 2],
    /// Clients whose rings are live.
    pub(crate) clients: AtomicUsize,
}

/// The in-process daemon.
pub(crate) struct Daemon {
    /// The attach socket.
    pub(crate) socket: PathBuf,
    /// `Gone` events, as the acceptor reported them.
    pub(crate) gone: Receiver<ClientId>,
    /// The acceptor's counters, refreshed by its thread.
    pub(crate) stats: Arc<Mutex<AttachStats>>,
    /// The dataplane's state.
    pub(crate) observed: Arc<Observed>,
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
    _scratch: Scratch,
}

impl Daemon {
    /// Starts a daemon whose socket is `<scratch>/run/lingerd.sock`; the
    /// runtime directory `run` is created by the acceptor (0700) unless
    /// `run_mode` asks the test to make it first with that mode. The
    /// scratch directory is 0711 so other uids may traverse it.
    pub(crate) fn start(allow_uids: Vec<u32>, run_mode: Option<u32>) -> Daemon {
        let scratch = Scratch::new("attach", 0o711);
        if let Some(mode) = run_mode {
            fs::create_dir(scratch.join("run")).unwrap();
            fs::set_permissions(scratch.join("run"), fs::Permissions::from_mode(mode)).unwrap();
        }
        let socket = scratch.join("run/lingerd.sock");
        let mut cfg = AcceptorConfig::new(&socket, allow_uids, layout());
        cfg.hello_timeout = Duration::from_secs(2);
        let acceptor = Acceptor::bind(cfg).expect("bind the attach socket");
        let stop = Arc::new(AtomicBool::new(false));
        let stats = Arc::new(Mutex::new(AttachStats::default()));
        let observed = Arc::new(Observed::default());
        let (gone_tx, gone) = mpsc::channel();
        let (events_tx, events_rx) = mpsc::channel();
        let attach = {
            let (stop, stats) = (stop.clone(), stats.clone());
            std::thread::spawn(move || attach_thread(acceptor, stop, stats, events_tx, gone_tx))
        };
        let dataplane = {
            let (stop, observed) = (stop.clone(), observed.clone());
            std::thread::spawn(move || dataplane_thread(events_rx, stop, observed))
        };
        Daemon {
            socket,
            gone,
            stats,
            observed,
            stop,
            threads: vec![attach, dataplane],
            _scratch: scratch,
        }
    }

    /// The socket path as a string.
    pub(crate) fn socket_str(&self) -> &str {
        self.socket.to_str().unwrap()
    }

    /// Polls `f` every millisecond until it holds or `limit` passes.
    pub(crate) fn eventually(&self, limit: Duration, mut f: impl FnMut() -> bool) -> bool {
        let end = Instant::now() + limit;
        while Instant::now() < end {
            if f() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        f()
    }

    /// The acceptor's counters now.
    pub(crate) fn stats(&self) -> AttachStats {
        *self.stats.lock().unwrap()
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

fn attach_thread(
    mut acceptor: Acceptor,
    stop: Arc<AtomicBool>,
    stats: Arc<Mutex<AttachStats>>,
    events: Sender<AttachEvent>,
    gone: Sender<ClientId>,
) {
    let end = Instant::now() + LIFETIME;
    while !stop.load(Ordering::Relaxed) && Instant::now() < end {
        while let Some(e) = acceptor.poll(Duration::from_millis(2)) {
            if let AttachEvent::Gone(c) = &e {
                let _ = gone.send(*c);
            }
            let _ = events.send(e);
        }
        *stats.lock().unwrap() = acceptor.stats();
    }
}

struct Attached {
    rings: [ClientRings; 2],
    wake: EventFd,
    _doorbell: EventFd,
}

fn dataplane_thread(events: Receiver<AttachEvent>, stop: Arc<AtomicBool>, obs: Arc<Observed>) {
    let t0 = Instant::now();
    let mut engines = [engine(0, 1, t0), engine(1, 2, t0)];
    let mut clients: HashMap<ClientId, Attached> = HashMap::new();
    let mut buf = vec![0u8; 2048];
    while !stop.load(Ordering::Relaxed) && t0.elapsed() < LIFETIME {
        let now = Instant::now();
        while let Ok(e) = events.try_recv() {
            match e {
                AttachEvent::New {
                    client,
                    region,
                    layout,
                    wake,
                    doorbell,
                    ..
                } => {
                    let rings = [0, 1].map(|core| {
                        ClientRings::new(client, core, region.clone(), layout).unwrap()
                    });
                    clients.insert(
                        client,
                        Attached {
                            rings,
                            wake,
                            _doorbell: doorbell,
                        },
                    );
                }
                AttachEvent::Gone(client) => {
                    clients.remove(&client);
                    for e in &mut engines {
                        e.handle_client_exit(now, client, ClientExitPolicy::Abort);
                    }
                }
            }
        }
        for c in clients.values_mut() {
            for (ring, e) in c.rings.iter_mut().zip(engines.iter_mut()) {
                ring.poll_requests(e, now, 256);
            }
        }
        // Shuttle frames both ways until quiet (bounded).
        let [a, b] = &mut engines;
        for _ in 0..1_000 {
            let mut moved = false;
            if let Some(n) = a.poll_transmit(now, &mut buf) {
                b.handle_rx(now, &buf[..n]);
                moved = true;
            }
            if let Some(n) = b.poll_transmit(now, &mut buf) {
                a.handle_rx(now, &buf[..n]);
                moved = true;
            }
            if !moved {
                break;
            }
        }
        for (i, e) in engines.iter_mut().enumerate() {
            e.handle_timeout(now);
            while let Some(c) = e.poll_completion() {
                // Completions for a client that left are dropped.
                if let Some(a) = clients.get_mut(&c.client) {
                    a.rings[i].deliver(c);
                }
            }
            obs.connections[i].store(e.connection_count(), Ordering::Relaxed);
        }
        for c in clients.values_mut() {
            let mut wake = false;
            for r in &mut c.rings {
                wake |= r.flush();
            }
            if wake {
                let _ = c.wake.signal();
            }
        }
        obs.clients.store(clients.len(), Ordering::Relaxed);
        std::thread::sleep(Duration::from_micros(200));
    }
}
