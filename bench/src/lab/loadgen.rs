//! The load generator: lingerd itself in the client role. A `QueueEngine` on
//! a port opens N connections to the dut's listeners and timestamps, per
//! connection, the dut's RST or FIN. The port is the [`Side`]'s: an
//! `AfXdpPort` bound to the peer's veth end (the netns lab), or (feature
//! `dpdk`) a `DpdkPort` on the client end of the daemon's memif; one loop,
//! generic over [`Port`], drives either.
//!
//! Addressing: the engine answers for [`GEN_ADDR`] (198.18.0.12/24), or
//! 2001:db8::12/64 when the dut's address is IPv6 ([`Config::us`]), an
//! address no kernel in the lab holds, so its XDP program (steering only
//! that address, and ARP for it) never takes a frame the peer's kernel
//! wants, and the kernel baseline on 198.18.0.2 can share the interface.
//! The engine's `Connect` takes its first on-link address, so one address
//! gives at most [`PER_PORT`] connections per dut port: connection *i* goes
//! to `dut_ports[i / PER_PORT]` from an ephemeral port of 1024..=65535; the
//! cursor wraps exactly at a block boundary, so no 4-tuple repeats.
//!
//! Muted connections (`Config::muted`, for `ring-latency`): the first
//! `muted` connections take dut ports of their own, and once they are open
//! the generator stays silent on them: every frame from those ports that
//! carries no SYN is dropped before the engine sees it
//! (a `lingerd_testkit::filter::Filtered` port), so the dut's FIN is never acknowledged and a
//! lingering close there keeps its deadline armed. A SYN-ACK still passes
//! (the handshake completes, retransmitted SYN-ACKs are answered); the
//! frames dropped are counted in [`Progress::muted`].
//!
//! Opening is paced (`open_rate` SYNs/s, at most `in_flight` handshakes
//! unanswered) so that the dut's backlog and SYN cookies behave. Closes are
//! the engine's events: `Reset` (ECONNRESET) or `PeerClosed` (FIN), stamped
//! with [`now_ns`] when the loop hands them over, i.e. in the iteration that
//! received the frame. After a FIN the generator closes its end (so the
//! dut's close completes: LastAck on our side, no TIME-WAIT). With
//! `Config::bare_closes` the RSTs and FINs of established connections are
//! counted (and a FIN answered) on the frame instead, before the engine
//! ([`super::rst_tally`]), stamped once per received burst; the engine
//! gets what that classifier does not recognise.
//!
//! [`Receiver`] is the generator's receive path alone (the same port, CPU,
//! priority and loop), counting RSTs: the receiver of the lab's fair
//! ceiling.
//!
//! It runs in its own thread, which enters the peer namespace (setns) and
//! never leaves it (AF_XDP), or registers with the process's EAL for as
//! long as its port is open (DPDK); the main thread watches [`Progress`]
//! and sets `stop`. The loop sleeps when idle unless told to busy-poll. It
//! owns the engine, the port (its XDP program is detached, its DPDK device
//! closed, when the thread ends, panics included) and nothing else; the
//! EAL's lifecycle is the caller's.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow};
use lingerd_abi::Errno;
use lingerd_dataplane::engine::QueueEngine;
use lingerd_dataplane::engine::api::{ClientId, Completion, Detail, Request};
use lingerd_dataplane::engine::config::{EngineConfig, Prefix};
use lingerd_dataplane::port::afxdp::{AfXdpConfig, AfXdpPort, AfXdpStats, IdleMode, XskConfig};
#[cfg(feature = "dpdk")]
use lingerd_dataplane::port::dpdk::{DpdkConfig, DpdkPort, DpdkStats, Eal};
use lingerd_dataplane::port::{Hooks, LoopView, Port, core_loop};
use lingerd_dataplane::sys::netns;
use lingerd_dataplane::table::Handle;
use lingerd_dataplane::wire::{
    EtherType, EthernetAddress, EthernetFrame, IpProtocol, Ipv4Packet, Ipv6Packet, TcpFlags,
    TcpPacket,
};

use lingerd_testkit::filter::Filtered;

use super::rst_tally::{Closed, Tallied, Tally};
use super::{Addressing, Family};

use crate::clock::now_ns;

/// The generator's address (on the lab's /24, held by no kernel).
pub const GEN_ADDR: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 12);
/// Ephemeral ports the generator uses: 1024..=65535.
pub const EPHEMERAL: (u16, u16) = (1024, 65_535);
/// Connections per dut port (the ephemeral range's size).
pub const PER_PORT: usize = (EPHEMERAL.1 - EPHEMERAL.0) as usize + 1;
const ME: ClientId = ClientId(1);

/// How a connection ended, as the peer saw it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Seen {
    /// Still open (or never established).
    #[default]
    Open,
    /// An RST from the dut.
    Rst,
    /// A FIN from the dut.
    Fin,
}

/// One connection's record.
#[derive(Clone, Copy, Debug, Default)]
pub struct Conn {
    /// Our port (0 until established).
    pub local_port: u16,
    /// The dut's port.
    pub remote_port: u16,
    /// Established.
    pub established: bool,
    /// When the RST or FIN arrived (`CLOCK_MONOTONIC` ns; 0 = not yet).
    pub closed_ns: u64,
    /// What arrived.
    pub seen: Seen,
    handle: Option<Handle>,
}

impl Conn {
    /// The key the dut's client uses for the same connection.
    pub fn key(&self) -> u32 {
        key(self.local_port, self.remote_port)
    }
}

/// `(peer port, dut port)` as one number: the same on both sides.
pub fn key(peer_port: u16, dut_port: u16) -> u32 {
    u32::from(peer_port) << 16 | u32::from(dut_port)
}

/// Where the generator's frames go in and out.
#[derive(Clone, Debug)]
pub enum Side {
    /// AF_XDP on one queue of a veth end in a namespace (the netns lab).
    AfXdp {
        /// The peer namespace.
        ns: String,
        /// The peer's veth end.
        iface: String,
        /// Its MAC.
        mac: EthernetAddress,
    },
    /// A one-queue DPDK device on this process's EAL (the memif lab: the
    /// client end of the daemon's memif). The engine takes the device's
    /// MAC; the device must come up (its peer connect) within
    /// [`LINK_WAIT`].
    #[cfg(feature = "dpdk")]
    Dpdk {
        /// The EAL, initialised by the caller (and shut down by it once
        /// the generator is stopped).
        eal: &'static Eal,
        /// The device (`net_memif1,role=client,socket=…`).
        device: DpdkConfig,
    },
}

/// How the lab's generator waits when idle (and the fair ceiling's
/// receiver with it): sleeping, at most 1 ms.
pub const LAB_IDLE: IdleMode = IdleMode::Sleep {
    max: Duration::from_millis(1),
};

/// How long a DPDK device may take to come up.
#[cfg(feature = "dpdk")]
pub const LINK_WAIT: Duration = Duration::from_secs(10);

/// How to run the generator.
#[derive(Clone, Debug)]
pub struct Config {
    /// The port.
    pub side: Side,
    /// The dut's address, IPv4 or IPv6: the generator takes its own
    /// address of that family ([`Config::us`]).
    pub dut: IpAddr,
    /// The dut's listening ports, [`PER_PORT`] connections each at most
    /// ([`Config::ports_wanted`] of them).
    pub dut_ports: Vec<u16>,
    /// Connections to open.
    pub connections: usize,
    /// The first `muted` connections are not acknowledged once open (see
    /// the module's doc); they use the first `ports_needed(muted)` ports,
    /// the others the ports after them. 0: none.
    pub muted: usize,
    /// SYNs per second.
    pub open_rate: u32,
    /// Handshakes unanswered at most.
    pub in_flight: usize,
    /// Close our end when the dut's FIN arrives.
    pub close_on_fin: bool,
    /// Count the dut's RSTs of established connections (and, with
    /// `close_on_fin`, its FINs, answered with our FIN) with the bare
    /// classifier ([`super::rst_tally`]) instead of the engine: the
    /// receiving side of a teardown then costs less per close than the
    /// dut's. Frames it does not handle go to the engine as before.
    pub bare_closes: bool,
    /// Busy-poll (measurement) or sleep.
    pub idle: IdleMode,
    /// The CPU to pin the thread to: one the dut's core does not use, so
    /// that the receiver keeps draining its ring while the dut busy-polls.
    /// `None`: wherever the scheduler puts it.
    pub cpu: Option<usize>,
}

impl Config {
    /// The generator's own address and prefix length: [`Addressing`] of
    /// the dut's family (198.18.0.12/24, [`GEN_ADDR`]; 2001:db8::12/64).
    pub fn us(&self) -> Addressing {
        Addressing::of(Family::of(self.dut))
    }
}

/// Ports needed for `n` connections.
pub fn ports_needed(n: usize) -> usize {
    n.div_ceil(PER_PORT).max(1)
}

impl Config {
    /// Dut ports this configuration needs: the muted connections' own,
    /// then the others'.
    pub fn ports_wanted(&self) -> usize {
        match self.muted.min(self.connections) {
            0 => ports_needed(self.connections),
            m if m == self.connections => ports_needed(m),
            m => ports_needed(m) + ports_needed(self.connections - m),
        }
    }

    /// The dut port of connection `i`.
    fn port_of(&self, i: usize) -> u16 {
        let m = self.muted.min(self.connections);
        if m == 0 || i < m {
            self.dut_ports[i / PER_PORT]
        } else {
            self.dut_ports[ports_needed(m) + (i - m) / PER_PORT]
        }
    }

    /// The muted connections' dut ports.
    fn muted_ports(&self) -> &[u16] {
        match self.muted {
            0 => &[],
            m => &self.dut_ports[..ports_needed(m.min(self.connections))],
        }
    }
}

/// Whether `frame` may reach the engine: anything but a TCP segment from
/// one of `muted_ports` without SYN.
fn audible(frame: &[u8], muted_ports: &[u16]) -> bool {
    let Ok(eth) = EthernetFrame::new_checked(frame) else {
        return true;
    };
    if eth.ethertype() != EtherType::Ipv4 {
        return true;
    }
    let Ok(ip) = Ipv4Packet::new_checked(eth.payload()) else {
        return true;
    };
    if ip.protocol() != IpProtocol::Tcp {
        return true;
    }
    let Ok(tcp) = TcpPacket::new_checked(ip.payload()) else {
        return true;
    };
    !muted_ports.contains(&tcp.src_port()) || tcp.flags().contains(TcpFlags::SYN)
}

/// Live counters, read by the main thread.
#[derive(Debug, Default)]
pub struct Progress {
    /// Connects issued.
    pub issued: AtomicU64,
    /// Established.
    pub established: AtomicU64,
    /// Connects that failed.
    pub failed: AtomicU64,
    /// RSTs or FINs seen (first per connection).
    pub closed: AtomicU64,
    /// Frames of muted connections dropped unread.
    pub muted: AtomicU64,
    /// Set by the main thread: leave the loop.
    pub stop: AtomicBool,
    /// Set by the generator: the loop has ended (the port is no longer
    /// polled, but still open until `release`).
    pub polling_ended: AtomicBool,
    /// Set by the main thread: close the port and return.
    pub release: AtomicBool,
}

/// The generator's port counters at the end.
#[derive(Clone, Copy, Debug)]
pub enum PortStats {
    /// An AF_XDP socket's.
    AfXdp(AfXdpStats),
    /// A DPDK device's.
    #[cfg(feature = "dpdk")]
    Dpdk(DpdkStats),
}

impl PortStats {
    /// Frames that arrived for the generator and were dropped before it
    /// read them (AF_XDP: the socket's RX drops and full RX ring; DPDK:
    /// the device's missed frames and mbuf shortages).
    pub fn rx_dropped(&self) -> u64 {
        match self {
            PortStats::AfXdp(s) => s.xdp.rx_dropped + s.xdp.rx_ring_full,
            #[cfg(feature = "dpdk")]
            PortStats::Dpdk(s) => s.dev.imissed + s.dev.rx_nombuf,
        }
    }
}

/// What the generator reports when stopped.
#[derive(Debug)]
pub struct Outcome {
    /// Every connection, in the order opened.
    pub conns: Vec<Conn>,
    /// The port's counters at the end.
    pub port: PortStats,
    /// The port's start-up line.
    pub info: String,
    /// Connections still in the engine at the end.
    pub engine_connections: usize,
    /// Connect failures by errno.
    pub failures: Vec<(Errno, u64)>,
    /// The engine's non-zero counters at the end (name, value).
    pub counters: Vec<(&'static str, u64)>,
    /// RSTs and FINs counted by the bare classifier
    /// (`Config::bare_closes`), not the engine.
    pub bare_closes: u64,
    /// FINs the dut sent again after the classifier answered one.
    pub fins_again: u64,
}

impl Outcome {
    /// Established connections the peer still sees open.
    pub fn lost(&self) -> usize {
        self.conns
            .iter()
            .filter(|c| c.established && c.seen == Seen::Open)
            .count()
    }
}

/// A running generator.
#[derive(Debug)]
pub struct LoadGen {
    /// Live counters.
    pub progress: Arc<Progress>,
    thread: Option<JoinHandle<Result<Outcome>>>,
}

impl LoadGen {
    /// Starts the thread: it enters `cfg.ns`, opens the port and begins
    /// opening connections.
    pub fn start(cfg: Config) -> Result<LoadGen> {
        anyhow::ensure!(
            cfg.dut_ports.len() >= cfg.ports_wanted(),
            "{} connections ({} muted) need {} dut ports",
            cfg.connections,
            cfg.muted,
            cfg.ports_wanted()
        );
        let progress = Arc::new(Progress::default());
        let p = Arc::clone(&progress);
        let thread = std::thread::Builder::new()
            .name("loadgen".into())
            .spawn(move || run(&cfg, &p))
            .context("spawning the load generator")?;
        Ok(LoadGen {
            progress,
            thread: Some(thread),
        })
    }

    /// Whether the thread has ended (an error, or stopped).
    pub fn finished(&self) -> bool {
        self.thread.as_ref().is_none_or(JoinHandle::is_finished)
    }

    /// Ends the loop but keeps the port open, connected and unpolled, and
    /// returns once the loop has ended (or the thread has, or `within`
    /// passed). On memif the peer may then close its end: 22.11's memif
    /// unmaps the rings when the peer goes, with no lock against a thread
    /// polling them, so the side that stays must not poll.
    pub fn pause(&self, within: Duration) {
        self.progress.stop.store(true, Ordering::Relaxed);
        let until = Instant::now() + within;
        while !self.progress.polling_ended.load(Ordering::Relaxed)
            && !self.finished()
            && Instant::now() < until
        {
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    /// Stops the loop, closes the port and returns what it saw.
    pub fn stop(mut self) -> Result<Outcome> {
        self.progress.stop.store(true, Ordering::Relaxed);
        self.progress.release.store(true, Ordering::Relaxed);
        self.thread
            .take()
            .expect("joined once")
            .join()
            .map_err(|_| anyhow!("load generator panicked"))?
    }
}

impl Drop for LoadGen {
    fn drop(&mut self) {
        self.progress.stop.store(true, Ordering::Relaxed);
        self.progress.release.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The loop's state, seen by the loop's hooks ([`Gen`]).
struct State {
    conns: Vec<Conn>,
    next: usize,
    answered: usize,
    to_close: VecDeque<Handle>,
    failures: Vec<(Errno, u64)>,
    t0: Instant,
}

fn engine_config(cfg: &Config, mac: EthernetAddress) -> EngineConfig {
    let us = cfg.us();
    let mut e = EngineConfig::new(
        0,
        mac,
        Prefix::new(us.generator, us.prefix_len).expect("a prefix length of its family"),
    );
    e.max_connections = (cfg.connections as u32 + 4096).next_power_of_two();
    e.tcp.ephemeral_ports = EPHEMERAL;
    // Our end closes second (after the dut's FIN): LastAck, no TIME-WAIT;
    // short timers anyway so that nothing outlives a run.
    e.tcp.time_wait_ms = 1_000;
    e.tcp.orphan_timeout_ms = 10_000;
    e.isn_secret = [now_ns(), 0x6c67_6764];
    e.hash_key = now_ns().rotate_left(17);
    e
}

/// Pins the calling thread and sets its priority, as the generator's.
fn prepare_thread(cpu: Option<usize>, idle: IdleMode) -> Result<()> {
    if let Some(cpu) = cpu {
        anyhow::ensure!(
            core_affinity::set_for_current(core_affinity::CoreId { id: cpu }),
            "could not pin the load generator to CPU {cpu}"
        );
    }
    // Sleeping between bursts, the generator gets the highest nice
    // priority (this thread only: Linux applies PRIO_PROCESS to the calling
    // thread): when the dut's frames arrive it must drain its ring before
    // anything else on its CPU runs, or its fill ring empties and the
    // frames are dropped (a loss the dut did not cause). Busy-polling, it
    // keeps the default, or it would starve the dut's client on that CPU.
    if matches!(idle, IdleMode::Sleep { .. }) {
        rustix::process::setpriority_process(None, -20)
            .context("raising the load generator's priority (needs root)")?;
    }
    Ok(())
}

/// The generator's AF_XDP port on `iface` (in the current namespace),
/// steering frames for `us`.
fn open_afxdp(iface: &str, us: IpAddr) -> Result<AfXdpPort> {
    let mut pcfg = AfXdpConfig::new(iface, 0, vec![us]);
    // The generator mostly receives (one RST or FIN per connection, in
    // bursts as fast as the dut sends): the fill ring must hold a burst for
    // as long as the thread is off the CPU, so it gets a large UMEM and the
    // largest ring.
    pcfg.xsk = XskConfig::with_frames(65_536);
    AfXdpPort::open(&pcfg).with_context(|| format!("AF_XDP on {iface}"))
}

fn run(cfg: &Config, progress: &Progress) -> Result<Outcome> {
    prepare_thread(cfg.cpu, cfg.idle)?;
    match &cfg.side {
        Side::AfXdp { ns, iface, mac } => {
            netns::enter(ns).with_context(|| format!("entering {ns}"))?;
            let port = open_afxdp(iface, cfg.us().generator)?;
            let info = port.info().to_string();
            let (port, ran) = drive(cfg, port, *mac, progress)?;
            let stats = port.stats()?;
            await_release(progress);
            Ok(ran.outcome(PortStats::AfXdp(stats), info))
        }
        #[cfg(feature = "dpdk")]
        Side::Dpdk { eal, device } => {
            // Declared first, dropped last: the port closes while the
            // thread is still registered.
            let _lcore = eal.register_thread()?;
            let port = DpdkPort::open(eal, device)
                .with_context(|| format!("DPDK device {}", device.device))?;
            let up_by = Instant::now() + LINK_WAIT;
            while !port.link_up() {
                anyhow::ensure!(
                    Instant::now() < up_by && !progress.stop.load(Ordering::Relaxed),
                    "DPDK device {} did not come up within {LINK_WAIT:?}",
                    device.device
                );
                std::thread::sleep(Duration::from_millis(1));
            }
            let info = port.info().to_string();
            let mac = EthernetAddress(port.info().device.mac);
            let (port, ran) = drive(cfg, port, mac, progress)?;
            let stats = port.stats()?;
            await_release(progress);
            Ok(ran.outcome(PortStats::Dpdk(stats), info))
        }
    }
}

/// Says the loop has ended and waits for [`Progress::release`] (the port
/// stays open meanwhile, unpolled: see [`LoadGen::pause`]).
fn await_release(progress: &Progress) {
    progress.polling_ended.store(true, Ordering::Relaxed);
    while !progress.release.load(Ordering::Relaxed) {
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// What [`drive`] saw: an [`Outcome`] but for the port's figures.
struct Ran {
    conns: Vec<Conn>,
    engine_connections: usize,
    failures: Vec<(Errno, u64)>,
    counters: Vec<(&'static str, u64)>,
    bare_closes: u64,
    fins_again: u64,
}

impl Ran {
    fn outcome(self, port: PortStats, info: String) -> Outcome {
        Outcome {
            conns: self.conns,
            port,
            info,
            engine_connections: self.engine_connections,
            failures: self.failures,
            counters: self.counters,
            bare_closes: self.bare_closes,
            fins_again: self.fins_again,
        }
    }
}

/// The engine on `port` until `stop`: returns the port (for its counters)
/// and what was seen.
fn drive<P: Port>(
    cfg: &Config,
    port: P,
    mac: EthernetAddress,
    progress: &Progress,
) -> Result<(P, Ran)> {
    let t0 = Instant::now();
    let mut engine = QueueEngine::new(engine_config(cfg, mac), t0);
    let tally = cfg.bare_closes.then(|| {
        RefCell::new(Tally::new(
            cfg.dut,
            cfg.us().generator,
            &cfg.dut_ports,
            cfg.close_on_fin,
        ))
    });
    let mut gen_hooks = Gen {
        st: State {
            conns: vec![Conn::default(); cfg.connections],
            next: 0,
            answered: 0,
            to_close: VecDeque::new(),
            failures: Vec::new(),
            t0,
        },
        cfg,
        progress,
        tally: tally.as_ref(),
    };
    let muted_ports = cfg.muted_ports();
    let keep = |frame: &[u8]| {
        let keep = audible(frame, muted_ports);
        if !keep {
            progress.muted.fetch_add(1, Ordering::Relaxed);
        }
        keep
    };
    let counted = |n: u64| {
        progress.closed.fetch_add(n, Ordering::Relaxed);
    };
    let mut tallied = Tallied::new(Filtered::new(port, keep), tally.as_ref(), counted);
    core_loop::run(&mut tallied, &mut engine, cfg.idle, None, &mut gen_hooks)
        .context("load generator loop")?;
    let port = tallied.into_inner().into_inner();
    let mut st = gen_hooks.st;
    if let Some(t) = &tally {
        // The RSTs counted on the frame: the engine never saw them.
        let t = t.borrow();
        for c in st
            .conns
            .iter_mut()
            .filter(|c| c.established && c.seen == Seen::Open)
        {
            if let Some((at, how)) = t.counted_at(c.local_port, c.remote_port) {
                c.seen = match how {
                    Closed::Rst => Seen::Rst,
                    Closed::Fin => Seen::Fin,
                };
                c.closed_ns = at;
            }
        }
    }
    Ok((
        port,
        Ran {
            conns: st.conns,
            engine_connections: engine.connection_count(),
            counters: crate::generator::report::nonzero(engine.counters()),
            failures: st.failures,
            bare_closes: tally.as_ref().map_or(0, |t| t.borrow().counted()),
            fins_again: tally.as_ref().map_or(0, |t| t.borrow().fins_again()),
        },
    ))
}

/// The generator's side of the loop: opens, closes, completions.
struct Gen<'a> {
    st: State,
    cfg: &'a Config,
    progress: &'a Progress,
    tally: Option<&'a RefCell<Tally>>,
}

impl<S> Hooks<S> for Gen<'_> {
    fn done(&mut self) -> bool {
        self.progress.stop.load(Ordering::Relaxed)
    }

    fn requests(&mut self, engine: &mut QueueEngine, now: Instant, _view: LoopView<S>) {
        requests(&mut self.st, self.cfg, engine, now, self.progress);
    }

    fn on_completion(&mut self, c: Completion) {
        on_completion(
            &mut self.st,
            self.progress,
            self.cfg.close_on_fin,
            self.tally,
            c,
        );
    }
}

fn requests(st: &mut State, cfg: &Config, engine: &mut QueueEngine, now: Instant, p: &Progress) {
    // Paced opens: the rate allows `due` so far, the in-flight cap the rest.
    if st.next < cfg.connections {
        let elapsed = now.saturating_duration_since(st.t0).as_secs_f64();
        let due = ((elapsed * f64::from(cfg.open_rate)) as usize + 1).min(cfg.connections);
        let room = cfg.in_flight.saturating_sub(st.next - st.answered);
        let until = due.min(st.next + room).min(st.next + 256);
        while st.next < until {
            let i = st.next;
            let port = cfg.port_of(i);
            let remote = SocketAddr::new(cfg.dut, port);
            st.conns[i].remote_port = port;
            engine.handle_request(
                now,
                ME,
                i as u64,
                Request::Connect {
                    remote,
                    local_port: None,
                    local_addr: None,
                },
            );
            st.next += 1;
        }
        p.issued.store(st.next as u64, Ordering::Relaxed);
    }
    while let Some(h) = st.to_close.pop_front() {
        engine.handle_request(
            now,
            ME,
            u64::MAX,
            Request::Close {
                handle: h,
                nonblocking: true,
            },
        );
    }
}

fn on_completion(
    st: &mut State,
    p: &Progress,
    close_on_fin: bool,
    tally: Option<&RefCell<Tally>>,
    c: Completion,
) {
    let Some(conn) = st.conns.get_mut(c.user_data as usize) else {
        return; // our own closes (user_data u64::MAX)
    };
    match (c.is_event, &c.detail) {
        (true, Detail::Connecting) => conn.handle = Some(c.handle),
        (false, Detail::Connected { local_port }) if c.result == Errno::Ok => {
            conn.local_port = *local_port;
            conn.established = true;
            if let Some(t) = tally {
                t.borrow_mut()
                    .established(conn.local_port, conn.remote_port);
            }
            st.answered += 1;
            p.established.fetch_add(1, Ordering::Relaxed);
        }
        (false, _) if !conn.established && c.result != Errno::Ok => {
            st.answered += 1;
            p.failed.fetch_add(1, Ordering::Relaxed);
            match st.failures.iter_mut().find(|(e, _)| *e == c.result) {
                Some((_, n)) => *n += 1,
                None => st.failures.push((c.result, 1)),
            }
        }
        (true, Detail::Reset | Detail::PeerClosed)
            if conn.established
                && conn.seen == Seen::Open
                && tally.is_none_or(|t| {
                    t.borrow_mut()
                        .engine_close(conn.local_port, conn.remote_port)
                }) =>
        {
            conn.closed_ns = now_ns();
            conn.seen = if c.detail == Detail::Reset {
                Seen::Rst
            } else {
                Seen::Fin
            };
            p.closed.fetch_add(1, Ordering::Relaxed);
            if conn.seen == Seen::Fin
                && close_on_fin
                && let Some(h) = conn.handle
            {
                st.to_close.push_back(h);
            }
        }
        _ => {}
    }
}

/// The generator's receive path alone, for the lab's fair ceiling: the
/// same thread set-up (CPU, priority), the same AF_XDP port and the same
/// loop waking the same way (an engine of the generator's configuration
/// with no connection, `IdleMode` as given, the generator's address of the
/// family), but every received TCP RST (IPv4 or IPv6) is counted and
/// dropped before the engine. It sends nothing.
#[derive(Debug)]
pub struct Receiver {
    /// RSTs counted so far.
    pub rsts: Arc<AtomicU64>,
    /// Set once the port is open and the loop runs.
    pub ready: Arc<AtomicBool>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<Result<()>>>,
}

impl Receiver {
    /// Starts it on `side` (AF_XDP only), answering for the generator's
    /// address of `family`.
    pub fn start(
        side: &Side,
        family: Family,
        cpu: Option<usize>,
        idle: IdleMode,
    ) -> Result<Receiver> {
        let (ns, iface, mac) = match side {
            Side::AfXdp { ns, iface, mac } => (ns.clone(), iface.clone(), *mac),
            #[cfg(feature = "dpdk")]
            Side::Dpdk { .. } => anyhow::bail!("the counting receiver runs on AF_XDP only"),
        };
        let rsts = Arc::new(AtomicU64::new(0));
        let ready = Arc::new(AtomicBool::new(false));
        let stop = Arc::new(AtomicBool::new(false));
        let (r, go, end) = (Arc::clone(&rsts), Arc::clone(&ready), Arc::clone(&stop));
        let thread = std::thread::Builder::new()
            .name("rst-receiver".into())
            .spawn(move || -> Result<()> {
                prepare_thread(cpu, idle)?;
                netns::enter(&ns).with_context(|| format!("entering {ns}"))?;
                let cfg = Config {
                    side: Side::AfXdp {
                        ns,
                        iface: iface.clone(),
                        mac,
                    },
                    dut: Addressing::of(family).dut,
                    dut_ports: Vec::new(),
                    connections: 0,
                    muted: 0,
                    open_rate: 1,
                    in_flight: 1,
                    close_on_fin: false,
                    bare_closes: false,
                    idle,
                    cpu,
                };
                let port = open_afxdp(&iface, cfg.us().generator)?;
                let mut engine = QueueEngine::new(engine_config(&cfg, mac), Instant::now());
                let count = |frame: &[u8]| {
                    if is_rst(frame) {
                        r.fetch_add(1, Ordering::Relaxed);
                    }
                    false
                };
                let mut port = Filtered::new(port, count);
                go.store(true, Ordering::Relaxed);
                core_loop::run(&mut port, &mut engine, idle, None, &mut Until(&end))
                    .context("counting receiver loop")
            })
            .context("spawning the counting receiver")?;
        Ok(Receiver {
            rsts,
            ready,
            stop,
            thread: Some(thread),
        })
    }

    /// Whether its thread has ended (an error).
    pub fn finished(&self) -> bool {
        self.thread.as_ref().is_none_or(JoinHandle::is_finished)
    }

    /// Stops the loop and returns the RSTs counted.
    pub fn stop(mut self) -> Result<u64> {
        self.stop.store(true, Ordering::Relaxed);
        self.thread
            .take()
            .expect("joined once")
            .join()
            .map_err(|_| anyhow!("counting receiver panicked"))??;
        Ok(self.rsts.load(Ordering::Relaxed))
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Hooks that only end the loop when told.
struct Until<'a>(&'a AtomicBool);

impl<S> Hooks<S> for Until<'_> {
    fn done(&mut self) -> bool {
        self.0.load(Ordering::Relaxed)
    }
    fn requests(&mut self, _: &mut QueueEngine, _: Instant, _: LoopView<S>) {}
    fn on_completion(&mut self, _: Completion) {}
}

/// Whether `frame` is a TCP segment with RST, over IPv4 or IPv6 (with no
/// extension header).
fn is_rst(frame: &[u8]) -> bool {
    let Ok(eth) = EthernetFrame::new_checked(frame) else {
        return false;
    };
    let rst =
        |tcp: &[u8]| TcpPacket::new_checked(tcp).is_ok_and(|t| t.flags().contains(TcpFlags::RST));
    if eth.ethertype() == EtherType::Ipv4 {
        Ipv4Packet::new_checked(eth.payload())
            .is_ok_and(|ip| ip.protocol() == IpProtocol::Tcp && rst(ip.payload()))
    } else if eth.ethertype().is_ipv6() {
        // No extension header: the ceiling's sender puts none.
        Ipv6Packet::new_checked(eth.payload())
            .is_ok_and(|ip| ip.next_header() == IpProtocol::Tcp && rst(ip.payload()))
    } else {
        false
    }
}

/// How long to wait between looks at the progress counters.
pub const WATCH: Duration = Duration::from_millis(50);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rsts_of_both_families_are_counted() {
        use lingerd_dataplane::wire::SeqNumber;
        let mac = EthernetAddress([2, 0, 0, 0, 0, 1]);
        for f in Family::ALL {
            let a = Addressing::of(f);
            let frame = lingerd_testkit::frames::rst_frame(
                mac,
                mac,
                (a.dut, 9),
                (a.generator, 40_000),
                SeqNumber(1),
            )
            .expect("one family");
            assert!(is_rst(&frame), "{f}");
            assert!(!is_rst(&frame[..frame.len() - 1]), "{f}: truncated");
        }
        let cfg_dut: IpAddr = "2001:db8::11".parse().unwrap();
        assert_eq!(Family::of(cfg_dut), Family::V6);
    }

    #[test]
    fn keys_and_ports() {
        assert_eq!(key(1024, 8080), (1024 << 16) | 8080);
        assert_eq!(PER_PORT, 64_512);
        assert_eq!(ports_needed(2000), 1);
        assert_eq!(ports_needed(100_000), 2);
        assert_eq!(ports_needed(1_000_000), 16);
    }

    #[test]
    fn muted_connections_have_ports_of_their_own() {
        let mut cfg = Config {
            side: Side::AfXdp {
                ns: String::new(),
                iface: String::new(),
                mac: EthernetAddress([2, 0, 0, 0, 0, 1]),
            },
            dut: Ipv4Addr::new(198, 18, 0, 11).into(),
            dut_ports: (8080..8100).collect(),
            connections: 1_010_000,
            muted: 1_000_000,
            open_rate: 1,
            in_flight: 1,
            close_on_fin: false,
            bare_closes: false,
            idle: IdleMode::Sleep {
                max: Duration::from_millis(1),
            },
            cpu: None,
        };
        assert_eq!(cfg.ports_wanted(), 17);
        assert_eq!(cfg.muted_ports(), &(8080..8096).collect::<Vec<_>>()[..]);
        assert_eq!(cfg.port_of(999_999), 8095);
        assert_eq!(cfg.port_of(1_000_000), 8096);
        assert_eq!(cfg.port_of(1_009_999), 8096);
        cfg.muted = 0;
        assert_eq!(cfg.ports_wanted(), 16);
        assert!(cfg.muted_ports().is_empty());
        assert_eq!(cfg.port_of(PER_PORT), 8081);
    }
}
