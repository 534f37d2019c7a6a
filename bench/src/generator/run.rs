//! The generator's engines: one thread per queue, each a `QueueEngine` on
//! its own port queue, opening its share of the connections, sending the
//! request, closing in the chosen mode, and timing what the device does.
//!
//! A run has three phases. **Open**: connections are opened at
//! `open_rate` (at most `in_flight` handshakes unanswered), each from a
//! (source, target, port) that no other connection of the run uses; once
//! established the request (if any) is sent and `expect_bytes` of answer
//! awaited. **Hold**: when every connection is resolved (ready, failed, or
//! its answer timed out) the run waits `hold`. **Close**: connections are
//! closed at `close_rate` in the [`Close`] mode, and each close is
//! confirmed by what the wire says (see [`Close`]). A connection that
//! was established and never confirmed closed is *lost*.
//!
//! With one queue the generator picks each connection's port itself, so
//! the 4-tuples are a bijection of the connection index. With several,
//! each engine picks ports whose answers hash to its own queue
//! (`lingerd_dataplane::flow`) and moves to the next source when a
//! (source, target) pair runs out; frames that arrive on another queue are
//! handed over in process, as in the daemon.
//!
//! It owns its threads, engines and ports (the XDP program is detached,
//! the DPDK device closed, when the last thread ends, panics included);
//! it never touches an address that is not one of the plan's sources.

use std::net::{Ipv4Addr, SocketAddrV4};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail, ensure};
use hdrhistogram::Histogram;
use lingerd_abi::Errno;
use lingerd_abi::vocab::Shutdown;
use lingerd_dataplane::capture::{CaptureReader, CaptureTap, TapConfig, capture};
use lingerd_dataplane::engine::QueueEngine;
use lingerd_dataplane::engine::api::{ClientId, Completion, Detail, Outcome, Request};
use lingerd_dataplane::engine::config::{EngineConfig, Prefix};
use lingerd_dataplane::engine::counters::Counters as EngineCounters;
use lingerd_dataplane::flow::FlowSteer;
use lingerd_dataplane::port::afxdp::{AfXdpConfig, AfXdpPort, IdleMode, Steering, XskConfig};
use lingerd_dataplane::port::core_loop::CoreIo;
#[cfg(feature = "dpdk")]
use lingerd_dataplane::port::dpdk::{DpdkConfig, DpdkPort, Eal};
use lingerd_dataplane::port::handoff::Handoff;
use lingerd_dataplane::port::{Hooks, LoopView, Port, core_loop};
use lingerd_dataplane::table::Handle;
use lingerd_dataplane::tcp::linger::Linger;
use lingerd_dataplane::wire::EthernetAddress;

use super::{Close, EPHEMERAL, PER_PAIR, Source, capacity};

const ME: ClientId = ClientId(1);

/// The most closes one loop iteration starts. A kernel behind a veth
/// takes frames into a per-CPU backlog of `netdev_max_backlog` (1,000 by
/// default) and drops the rest of a larger burst: RSTs the device never
/// sees. Bursts of this size leave it room, and cost nothing at speed (the
/// loop turns far more often than the rate needs).
const CLOSE_BURST: usize = 256;

/// The most frames that may wait in the engine's queue to the port when a
/// close starts (see the close phase in `requests`).
const TX_QUEUED: usize = 1024;

/// Where the generator's frames go in and out.
#[derive(Clone, Debug)]
pub enum PortChoice {
    /// AF_XDP on these queues of an interface (one thread each).
    AfXdp {
        /// The interface.
        iface: String,
        /// Its queues, one engine each.
        queues: Vec<u32>,
        /// Its Ethernet address.
        mac: EthernetAddress,
    },
    /// One queue of a DPDK device on this process's EAL.
    #[cfg(feature = "dpdk")]
    Dpdk {
        /// The EAL (the caller shuts it down after the run).
        eal: &'static Eal,
        /// The device.
        device: DpdkConfig,
    },
}

impl PortChoice {
    /// The NIC queue of engine `q`.
    fn queue(&self, q: usize) -> u32 {
        match self {
            PortChoice::AfXdp { queues, .. } => queues[q],
            #[cfg(feature = "dpdk")]
            PortChoice::Dpdk { .. } => 0,
        }
    }

    fn queues(&self) -> usize {
        match self {
            PortChoice::AfXdp { queues, .. } => queues.len(),
            #[cfg(feature = "dpdk")]
            PortChoice::Dpdk { .. } => 1,
        }
    }
}

/// Everything a run needs, checked by [`Plan::check`].
#[derive(Clone, Debug)]
pub struct Plan {
    /// The port.
    pub port: PortChoice,
    /// Source addresses (the generator answers ARP for them).
    pub sources: Vec<Source>,
    /// The next hop for targets on no source's link.
    pub gateway: Option<Ipv4Addr>,
    /// The device's listeners.
    pub targets: Vec<SocketAddrV4>,
    /// Connections to open.
    pub connections: usize,
    /// SYNs per second.
    pub open_rate: u32,
    /// Handshakes unanswered at most.
    pub in_flight: usize,
    /// Sent once per connection when established (`None`: nothing).
    pub request: Option<Arc<[u8]>>,
    /// Answer bytes that make a request answered (0 with a request: the
    /// request is answered once sent).
    pub expect_bytes: u64,
    /// The wait between the last connection resolved and the first close.
    pub hold: Duration,
    /// How to close.
    pub close: Close,
    /// Closes per second.
    pub close_rate: u32,
    /// How long an answer, a graceful close's acknowledgement or (half,
    /// peer) the device's FIN may take before it counts as a timeout.
    pub close_timeout: Duration,
    /// The whole run's bound: what is not done by then is reported as is.
    pub duration: Duration,
    /// Sleep when idle, or busy-poll.
    pub idle: IdleMode,
    /// Copy every frame sent and received, up to this many bytes of each,
    /// for the caller to write (`--pcap`); `None`: no capture.
    pub capture_snaplen: Option<u32>,
}

impl Plan {
    /// The errors a user can make, each said plainly.
    pub fn check(&self) -> Result<()> {
        ensure!(self.connections > 0, "--connections must be at least 1");
        let mut addrs: Vec<Ipv4Addr> = self.sources.iter().map(|s| s.addr).collect();
        addrs.sort_unstable();
        ensure!(
            addrs.windows(2).all(|w| w[0] != w[1]),
            "a source address is given twice"
        );
        let nq = self.port.queues();
        ensure!(nq > 0, "give at least one queue");
        let cap = capacity(self.sources.len(), self.targets.len());
        // Several queues: each engine uses only ports that hash to it, about
        // 1/nq of each pair's range; keep a margin.
        let cap = if nq > 1 { cap / 10 * 9 } else { cap };
        ensure!(
            self.connections <= cap,
            "{} connections need more 4-tuples than {} source(s) × {} target(s) × {} ports give \
             ({cap}); add sources or targets",
            self.connections,
            self.sources.len(),
            self.targets.len(),
            PER_PAIR
        );
        for t in &self.targets {
            ensure!(
                self.gateway.is_some() || self.sources.iter().any(|s| s.on_link(*t.ip())),
                "target {t} is on no source's link: give --gateway"
            );
            ensure!(
                !self.sources.iter().any(|s| s.addr == *t.ip()),
                "target {t} is one of the sources"
            );
        }
        ensure!(
            self.request.is_some() || self.expect_bytes == 0,
            "--expect-bytes needs a request (--request or --request-bytes)"
        );
        ensure!(
            u32::try_from(self.close_timeout.as_millis()).is_ok_and(|ms| ms > 0 && ms <= 3_600_000),
            "--close-timeout must be between 1ms and 1h"
        );
        ensure!(self.in_flight > 0, "--in-flight must be at least 1");
        Ok(())
    }
}

/// What the generator counted, summed over its queues.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    /// Connects issued.
    pub issued: u64,
    /// Handshakes completed.
    pub established: u64,
    /// Connects the device refused (RST to the SYN).
    pub refused: u64,
    /// Connects whose SYNs went unanswered (ETIMEDOUT).
    pub unanswered_syns: u64,
    /// Connects that failed otherwise (no 4-tuple free, no neighbour, …).
    pub connect_errors: u64,
    /// Requests answered with `expect_bytes`.
    pub answered: u64,
    /// Requests not answered in time, or ended before the answer.
    pub unanswered: u64,
    /// Answer bytes received.
    pub bytes_received: u64,
    /// Closes the generator started.
    pub closes_sent: u64,
    /// Closes confirmed at the wire.
    pub confirmed: u64,
    /// RSTs from the device (any time).
    pub device_rsts: u64,
    /// Device RSTs while a request was outstanding.
    pub resets_during_data: u64,
    /// The device closed first where the mode expected us to.
    pub device_closed_first: u64,
    /// Answers, acknowledgements or device FINs that did not come within
    /// `close_timeout`.
    pub timeouts: u64,
    /// `linger=`: deadlines that expired (an RST instead of a FIN's
    /// acknowledgement).
    pub linger_expired: u64,
    /// Established and never confirmed closed.
    pub lost: u64,
}

impl Counts {
    fn add(&mut self, o: &Counts) {
        self.issued += o.issued;
        self.established += o.established;
        self.refused += o.refused;
        self.unanswered_syns += o.unanswered_syns;
        self.connect_errors += o.connect_errors;
        self.answered += o.answered;
        self.unanswered += o.unanswered;
        self.bytes_received += o.bytes_received;
        self.closes_sent += o.closes_sent;
        self.confirmed += o.confirmed;
        self.device_rsts += o.device_rsts;
        self.resets_during_data += o.resets_during_data;
        self.device_closed_first += o.device_closed_first;
        self.timeouts += o.timeouts;
        self.linger_expired += o.linger_expired;
        self.lost += o.lost;
    }
}

/// Latencies, nanoseconds.
#[derive(Clone, Debug)]
pub struct Latencies {
    /// SYN → established.
    pub connect: Histogram<u64>,
    /// Request sent → `expect_bytes` received.
    pub response: Histogram<u64>,
    /// Close started → confirmed (for `peer`: ready → the device's FIN).
    pub close: Histogram<u64>,
}

impl Latencies {
    fn new() -> Latencies {
        let h = || Histogram::new_with_bounds(1, 3_600_000_000_000, 3).expect("valid bounds");
        Latencies {
            connect: h(),
            response: h(),
            close: h(),
        }
    }

    fn add(&mut self, o: &Latencies) {
        // Same bounds everywhere: adding cannot fail.
        let _ = self.connect.add(&o.connect);
        let _ = self.response.add(&o.response);
        let _ = self.close.add(&o.close);
    }
}

/// The width of a timeline bucket.
pub const BUCKET: Duration = Duration::from_millis(10);

/// Per [`BUCKET`] since the run's start: connections established and
/// closes confirmed.
#[derive(Clone, Debug, Default)]
pub struct Timeline {
    /// Established per bucket.
    pub established: Vec<u64>,
    /// Confirmed closes per bucket.
    pub confirmed: Vec<u64>,
}

impl Timeline {
    fn bump(v: &mut Vec<u64>, at_ns: u64) {
        let i = (at_ns / BUCKET.as_nanos() as u64) as usize;
        if v.len() <= i {
            v.resize(i + 1, 0);
        }
        v[i] += 1;
    }

    fn add(&mut self, o: &Timeline) {
        for (mine, theirs) in [
            (&mut self.established, &o.established),
            (&mut self.confirmed, &o.confirmed),
        ] {
            if mine.len() < theirs.len() {
                mine.resize(theirs.len(), 0);
            }
            for (m, t) in mine.iter_mut().zip(theirs) {
                *m += t;
            }
        }
    }
}

/// Live counters of one queue, read by the supervising thread.
#[derive(Debug, Default)]
pub struct Progress {
    /// Connects issued.
    pub issued: AtomicU64,
    /// Established.
    pub established: AtomicU64,
    /// Requests answered.
    pub answered: AtomicU64,
    /// Connections resolved for the open phase (ready, failed, or their
    /// answer timed out).
    pub resolved: AtomicU64,
    /// Closes started.
    pub closes_sent: AtomicU64,
    /// Closes confirmed.
    pub confirmed: AtomicU64,
    /// Failed connects, device RSTs and timeouts.
    pub errors: AtomicU64,
    /// Set when the queue's thread has ended (its work done and drained, or stopped).
    pub finished: AtomicBool,
}

/// The supervisor's orders.
#[derive(Debug)]
struct Control {
    stop: AtomicBool,
    /// When the close phase begins, ns since the run's start (`u64::MAX`:
    /// not yet).
    close_at_ns: AtomicU64,
}

/// What one queue saw.
#[derive(Debug)]
struct Share {
    counts: Counts,
    latencies: Latencies,
    timeline: Timeline,
    /// The first close started (ns since the run's start).
    first_close_ns: Option<u64>,
    /// The last close confirmed.
    last_confirm_ns: Option<u64>,
    info: String,
    engine_connections: usize,
    failures: Vec<(Errno, u64)>,
    engine_counters: EngineCounters,
}

/// What a run did.
#[derive(Debug)]
pub struct Results {
    /// Summed counters.
    pub counts: Counts,
    /// Merged latencies.
    pub latencies: Latencies,
    /// Summed timeline.
    pub timeline: Timeline,
    /// The close phase's start (ns since the run's start), if reached.
    pub close_phase_ns: Option<u64>,
    /// The first close started.
    pub first_close_ns: Option<u64>,
    /// The last close confirmed.
    pub last_confirm_ns: Option<u64>,
    /// The open phase's length (first SYN → every connection resolved).
    pub open_phase: Option<Duration>,
    /// Each queue's port line.
    pub ports: Vec<String>,
    /// Connections still in the engines at the end (TIME-WAIT included).
    pub engine_connections: usize,
    /// Connect failures by errno.
    pub failures: Vec<(Errno, u64)>,
    /// Why the run ended early, if it did.
    pub cut_short: Option<String>,
    /// The engines' counters, summed.
    pub engine_counters: EngineCounters,
}

impl Results {
    /// Connections per second over the open phase.
    pub fn opens_per_s(&self) -> f64 {
        match self.open_phase {
            Some(d) if d > Duration::ZERO => self.counts.established as f64 / d.as_secs_f64(),
            _ => 0.0,
        }
    }

    /// Confirmed closes per second: confirmed ÷ (last confirmation − first
    /// close started; for `peer`, − the close phase's start).
    pub fn closes_per_s(&self) -> f64 {
        let start = self.first_close_ns.or(self.close_phase_ns);
        match (start, self.last_confirm_ns) {
            (Some(a), Some(b)) if b > a => self.counts.confirmed as f64 / ((b - a) as f64 / 1e9),
            _ => 0.0,
        }
    }
}

/// A running generator.
pub struct Generator {
    /// Each queue's capture reader (with its queue), when capturing.
    captures: Vec<(u32, CaptureReader)>,
    threads: Vec<JoinHandle<Result<Share>>>,
    progress: Vec<Arc<Progress>>,
    control: Arc<Control>,
    t0: Instant,
    connections: usize,
    hold: Duration,
    resolved_at: Option<Instant>,
    close_phase_ns: Option<u64>,
}

/// A sum of the queues' live counters.
#[derive(Clone, Copy, Debug, Default)]
pub struct Snapshot {
    /// Connects issued.
    pub issued: u64,
    /// Established.
    pub established: u64,
    /// Answered.
    pub answered: u64,
    /// Resolved for the open phase.
    pub resolved: u64,
    /// Closes started.
    pub closes_sent: u64,
    /// Closes confirmed.
    pub confirmed: u64,
    /// Errors.
    pub errors: u64,
}

impl Generator {
    /// Checks the plan and starts one thread per queue.
    pub fn start(plan: &Plan) -> Result<Generator> {
        plan.check()?;
        let t0 = Instant::now();
        let control = Arc::new(Control {
            stop: AtomicBool::new(false),
            close_at_ns: AtomicU64::new(u64::MAX),
        });
        let nq = plan.port.queues();
        let flows: Vec<FlowSteer> = (0..nq)
            .map(|q| FlowSteer::software(q as u8, nq as u8))
            .collect();
        let mut handoffs: Vec<Option<Handoff>> = if nq > 1 {
            Handoff::group(flows.clone())
                .into_iter()
                .map(Some)
                .collect()
        } else {
            (0..nq).map(|_| None).collect()
        };
        let mut threads = Vec::new();
        let mut progress = Vec::new();
        let port_offset = getrandom::u32().context("drawing a port offset")? as usize % PER_PAIR;
        let steering = match &plan.port {
            PortChoice::AfXdp { iface, queues, .. } => {
                ensure!(nq <= 64, "at most 64 queues");
                let cfg = afxdp_config(plan, iface, queues[0]);
                Some(Arc::new(Mutex::new(
                    Steering::attach(iface, cfg.attach, &cfg.addrs, &cfg.ports, cfg.ephemeral)
                        .with_context(|| format!("attaching the XDP program to {iface}"))?,
                )))
            }
            #[cfg(feature = "dpdk")]
            PortChoice::Dpdk { .. } => None,
        };
        let unix_ns = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        let mut captures = Vec::new();
        for q in 0..nq {
            let p = Arc::new(Progress::default());
            let tap = plan.capture_snaplen.map(|snaplen| {
                let queue = plan.port.queue(q);
                let (tap, reader) = capture(TapConfig {
                    queue,
                    filter: None,
                    snaplen,
                    batches: 64,
                    clock: (t0, unix_ns),
                });
                captures.push((queue, reader));
                tap
            });
            progress.push(Arc::clone(&p));
            let plan = plan.clone();
            let control = Arc::clone(&control);
            let flow = (nq > 1).then(|| flows[q].clone());
            let handoff = handoffs[q].take();
            let steering = steering.clone();
            let thread = std::thread::Builder::new()
                .name(format!("gen-q{q}"))
                .spawn(move || {
                    let job = Job {
                        plan: &plan,
                        q,
                        nq,
                        t0,
                        control: &control,
                        progress: &p,
                        flow,
                        port_offset,
                    };
                    let r = queue_thread(&job, handoff, steering, tap);
                    p.finished.store(true, Ordering::Relaxed);
                    r
                })
                .context("spawning a generator thread")?;
            threads.push(thread);
        }
        Ok(Generator {
            captures,
            threads,
            progress,
            control,
            t0,
            connections: plan.connections,
            hold: plan.hold,
            resolved_at: None,
            close_phase_ns: None,
        })
    }

    /// The queues' counters summed.
    pub fn snapshot(&self) -> Snapshot {
        let mut s = Snapshot::default();
        for p in &self.progress {
            s.issued += p.issued.load(Ordering::Relaxed);
            s.established += p.established.load(Ordering::Relaxed);
            s.answered += p.answered.load(Ordering::Relaxed);
            s.resolved += p.resolved.load(Ordering::Relaxed);
            s.closes_sent += p.closes_sent.load(Ordering::Relaxed);
            s.confirmed += p.confirmed.load(Ordering::Relaxed);
            s.errors += p.errors.load(Ordering::Relaxed);
        }
        s
    }

    /// Moves the phases on; call often. Returns `true` when the close
    /// phase began in this call.
    pub fn tick(&mut self) -> bool {
        if self.close_phase_ns.is_some() {
            return false;
        }
        let now = Instant::now();
        if self.resolved_at.is_none() && self.snapshot().resolved >= self.connections as u64 {
            self.resolved_at = Some(now);
        }
        match self.resolved_at {
            Some(at) if now >= at + self.hold => {
                let ns = now.saturating_duration_since(self.t0).as_nanos() as u64;
                self.close_phase_ns = Some(ns);
                self.control.close_at_ns.store(ns, Ordering::Relaxed);
                true
            }
            _ => false,
        }
    }

    /// Whether every queue's work is over (or a thread ended early).
    pub fn finished(&self) -> bool {
        self.progress
            .iter()
            .all(|p| p.finished.load(Ordering::Relaxed))
            || self.threads.iter().any(JoinHandle::is_finished)
    }

    /// The capture readers, one per queue with its queue number (empty
    /// without `capture_snaplen`); taken once.
    pub fn take_captures(&mut self) -> Vec<(u32, CaptureReader)> {
        std::mem::take(&mut self.captures)
    }

    /// When the run began.
    pub fn started(&self) -> Instant {
        self.t0
    }

    /// Stops every queue and sums what they saw. `cut_short` says why the
    /// run ended before its work was done, if it did.
    pub fn stop(mut self, cut_short: Option<String>) -> Result<Results> {
        self.control.stop.store(true, Ordering::Relaxed);
        let mut out = Results {
            counts: Counts::default(),
            latencies: Latencies::new(),
            timeline: Timeline::default(),
            close_phase_ns: self.close_phase_ns,
            first_close_ns: None,
            last_confirm_ns: None,
            open_phase: self
                .resolved_at
                .map(|r| r.saturating_duration_since(self.t0)),
            ports: Vec::new(),
            engine_connections: 0,
            failures: Vec::new(),
            cut_short,
            engine_counters: EngineCounters::default(),
        };
        let mut errors = Vec::new();
        for (q, t) in self.threads.drain(..).enumerate() {
            match t.join() {
                Ok(Ok(s)) => {
                    out.counts.add(&s.counts);
                    out.latencies.add(&s.latencies);
                    out.timeline.add(&s.timeline);
                    out.first_close_ns = min_opt(out.first_close_ns, s.first_close_ns);
                    out.last_confirm_ns = out.last_confirm_ns.max(s.last_confirm_ns);
                    out.ports.push(s.info);
                    out.engine_connections += s.engine_connections;
                    out.engine_counters.add(&s.engine_counters);
                    for (e, n) in s.failures {
                        match out.failures.iter_mut().find(|(f, _)| *f == e) {
                            Some((_, m)) => *m += n,
                            None => out.failures.push((e, n)),
                        }
                    }
                }
                Ok(Err(e)) => errors.push(format!("queue {q}: {e:#}")),
                Err(_) => errors.push(format!("queue {q}: the thread panicked")),
            }
        }
        if !errors.is_empty() {
            bail!("{}", errors.join("; "));
        }
        Ok(out)
    }
}

impl Drop for Generator {
    fn drop(&mut self) {
        self.control.stop.store(true, Ordering::Relaxed);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

fn min_opt(a: Option<u64>, b: Option<u64>) -> Option<u64> {
    match (a, b) {
        (Some(x), Some(y)) => Some(x.min(y)),
        (x, None) => x,
        (None, y) => y,
    }
}

fn afxdp_config(plan: &Plan, iface: &str, queue: u32) -> AfXdpConfig {
    let mut cfg = AfXdpConfig::new(iface, queue, plan.sources.iter().map(|s| s.addr));
    // Mostly receiving, in bursts as fast as the device sends: a large UMEM
    // and the largest fill ring.
    cfg.xsk = XskConfig::with_frames(65_536);
    cfg
}

/// One queue's orders.
struct Job<'a> {
    plan: &'a Plan,
    q: usize,
    nq: usize,
    t0: Instant,
    control: &'a Control,
    progress: &'a Progress,
    flow: Option<FlowSteer>,
    /// Where this run's ports start in the ephemeral range (one queue).
    port_offset: usize,
}

fn queue_thread(
    job: &Job<'_>,
    mut handoff: Option<Handoff>,
    steering: Option<Arc<Mutex<Steering>>>,
    tap: Option<CaptureTap>,
) -> Result<Share> {
    match &job.plan.port {
        PortChoice::AfXdp { iface, queues, mac } => {
            let steering = steering.ok_or_else(|| anyhow!("no XDP program"))?;
            let cfg = afxdp_config(job.plan, iface, queues[job.q]);
            let port = {
                let mut s = steering.lock().unwrap_or_else(|e| e.into_inner());
                AfXdpPort::open_queue(&cfg, &mut s)
                    .with_context(|| format!("AF_XDP on {iface} queue {}", queues[job.q]))?
            };
            let info = port.info().to_string();
            let share = drive(job, port, *mac, handoff.as_mut(), info, tap);
            // The program stays attached until the last queue's socket is
            // closed (the port drops inside `drive`, the Arc here).
            drop(steering);
            share
        }
        #[cfg(feature = "dpdk")]
        PortChoice::Dpdk { eal, device } => {
            let _lcore = eal.register_thread()?;
            let port = DpdkPort::open(eal, device)
                .with_context(|| format!("DPDK device {}", device.device))?;
            let up_by = Instant::now() + Duration::from_secs(10);
            while !port.link_up() {
                ensure!(
                    Instant::now() < up_by && !job.control.stop.load(Ordering::Relaxed),
                    "DPDK device {} did not come up within 10s",
                    device.device
                );
                std::thread::sleep(Duration::from_millis(1));
            }
            let info = port.info().to_string();
            let mac = EthernetAddress(port.info().device.mac);
            drive(job, port, mac, handoff.as_mut(), info, tap)
        }
    }
}

fn engine_config(job: &Job<'_>, mac: EthernetAddress) -> Result<EngineConfig> {
    let plan = job.plan;
    let first = plan.sources[0];
    let mut e = EngineConfig::new(
        job.q as u8,
        mac,
        Prefix::new(first.addr.into(), first.prefix_len).expect("an IPv4 prefix length"),
    );
    for s in &plan.sources[1..] {
        e.addrs
            .push(Prefix::new(s.addr.into(), s.prefix_len).expect("an IPv4 prefix length"));
    }
    e.gateway = plan.gateway;
    e.flow = job.flow.clone();
    let share = plan.connections.div_ceil(job.nq);
    e.max_connections = u32::try_from(share + 4096)
        .ok()
        .and_then(u32::checked_next_power_of_two)
        .context("too many connections for one queue")?;
    e.tcp.ephemeral_ports = EPHEMERAL;
    // What outlives a run: TIME-WAIT after our FIN, an orphan after a
    // background close. Short, so that the tail after the last
    // confirmation is short too.
    e.tcp.time_wait_ms = 1_000;
    e.tcp.orphan_timeout_ms = 10_000;
    let word = || getrandom::u64().context("drawing a secret from getrandom(2)");
    e.isn_secret = [word()?, word()?];
    e.hash_key = word()?;
    Ok(e)
}

/// Where a connection is.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
enum St {
    /// Not opened yet.
    #[default]
    Idle,
    /// SYN sent.
    Connecting,
    /// Request sent, answer awaited.
    Requesting,
    /// Open and idle: waits for the close phase (or, `peer`, the device).
    Ready,
    /// Our close started, confirmation awaited.
    Closing,
    /// Finished (confirmed, reset, timed out).
    Done,
    /// Never established.
    Failed,
}

#[derive(Clone, Copy, Debug, Default)]
struct Conn {
    handle: Option<Handle>,
    st: St,
    /// Established once (so that a later failure counts as lost or not).
    established: bool,
    /// Resolved for the open phase.
    resolved: bool,
    /// Sources tried (several queues: the next one on EADDRINUSE).
    src: u16,
    /// Answer bytes so far.
    got: u32,
    /// Start of the current timed step, ns since the run's start.
    t_ns: u64,
}

/// What a completion's `user_data` says (kind in the top byte, the
/// connection's index below).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Connect = 1,
    Send = 2,
    Recv = 3,
    Linger = 4,
    Close = 5,
    Shutdown = 6,
    /// Closes of handles already finished: nothing to learn.
    Release = 7,
}

fn ud(kind: Kind, j: usize) -> u64 {
    (kind as u64) << 56 | j as u64
}

fn split_ud(ud: u64) -> (Option<Kind>, usize) {
    let kind = match ud >> 56 {
        1 => Kind::Connect,
        2 => Kind::Send,
        3 => Kind::Recv,
        4 => Kind::Linger,
        5 => Kind::Close,
        6 => Kind::Shutdown,
        7 => Kind::Release,
        _ => return (None, 0),
    };
    (Some(kind), (ud & ((1 << 56) - 1)) as usize)
}

/// The loop's state for one queue.
struct Gen<'a> {
    job: &'a Job<'a>,
    conns: Vec<Conn>,
    next_open: usize,
    unanswered_handshakes: usize,
    close_cursor: usize,
    closes_issued: usize,
    first_close_ns: Option<u64>,
    last_confirm_ns: Option<u64>,
    /// Work found in completions, done in the next `requests`.
    to_send: Vec<usize>,
    to_release: Vec<usize>,
    to_retry: Vec<usize>,
    recv_done: Vec<(Handle, u32)>,
    next_sweep_ns: u64,
    counts: Counts,
    latencies: Latencies,
    timeline: Timeline,
    failures: Vec<(Errno, u64)>,
    finished: usize,
    resolved: usize,
    tail_until: Option<Instant>,
    drained: bool,
    port_offset: usize,
    /// The capture this queue's frames are copied into (`--pcap`).
    tap: Option<CaptureTap>,
}

impl<'a> Gen<'a> {
    fn new(job: &'a Job<'a>, conns: usize) -> Gen<'a> {
        Gen {
            job,
            conns: vec![Conn::default(); conns],
            next_open: 0,
            unanswered_handshakes: 0,
            close_cursor: 0,
            closes_issued: 0,
            first_close_ns: None,
            last_confirm_ns: None,
            to_send: Vec::new(),
            to_release: Vec::new(),
            to_retry: Vec::new(),
            recv_done: Vec::new(),
            next_sweep_ns: 0,
            counts: Counts::default(),
            latencies: Latencies::new(),
            timeline: Timeline::default(),
            failures: Vec::new(),
            finished: 0,
            resolved: 0,
            tail_until: None,
            drained: false,
            port_offset: job.port_offset,
            tap: None,
        }
    }

    fn now_ns(&self, now: Instant) -> u64 {
        now.saturating_duration_since(self.job.t0).as_nanos() as u64
    }

    /// The (source, target, port) of connection `j` (this queue's index).
    fn tuple(&self, j: usize) -> (Ipv4Addr, SocketAddrV4, Option<u16>) {
        let plan = self.job.plan;
        let (s, t) = (plan.sources.len(), plan.targets.len());
        let target = plan.targets[j % t];
        if self.job.nq == 1 {
            let k = j / t;
            // From a per-run offset, as a kernel's ephemeral ports are:
            // back-to-back runs against one device do not reuse the same
            // 4-tuples first (the device may still hold the last run's).
            let port = EPHEMERAL.0 + ((k + self.port_offset) % PER_PAIR) as u16;
            let src = plan.sources[(k / PER_PAIR) % s].addr;
            (src, target, Some(port))
        } else {
            let src = plan.sources[usize::from(self.conns[j].src) % s].addr;
            (src, target, None)
        }
    }

    fn open(&mut self, engine: &mut QueueEngine, now: Instant, j: usize) {
        let (src, remote, port) = self.tuple(j);
        let t = self.now_ns(now);
        let c = &mut self.conns[j];
        c.st = St::Connecting;
        c.t_ns = t;
        self.unanswered_handshakes += 1;
        engine.handle_request(
            now,
            ME,
            ud(Kind::Connect, j),
            Request::Connect {
                remote: remote.into(),
                local_port: port,
                local_addr: Some(src.into()),
            },
        );
    }

    fn resolve(&mut self, j: usize) {
        let c = &mut self.conns[j];
        if !c.resolved {
            c.resolved = true;
            self.resolved += 1;
            self.job
                .progress
                .resolved
                .store(self.resolved as u64, Ordering::Relaxed);
        }
    }

    fn finish(&mut self, j: usize) {
        let c = &mut self.conns[j];
        if !matches!(c.st, St::Done | St::Failed) {
            c.st = St::Done;
            self.finished += 1;
        }
        self.resolve(j);
    }

    fn confirm(&mut self, j: usize, t: u64) {
        let start = self.conns[j].t_ns;
        let _ = self.latencies.close.record(t.saturating_sub(start).max(1));
        Timeline::bump(&mut self.timeline.confirmed, t);
        self.counts.confirmed += 1;
        self.last_confirm_ns = self.last_confirm_ns.max(Some(t));
        self.job.progress.confirmed.fetch_add(1, Ordering::Relaxed);
        self.finish(j);
    }

    fn error(&self) {
        self.job.progress.errors.fetch_add(1, Ordering::Relaxed);
    }

    /// Starts connection `j`'s close in the plan's mode.
    fn close(&mut self, engine: &mut QueueEngine, now: Instant, j: usize) {
        let Some(h) = self.conns[j].handle else {
            return;
        };
        let t = self.now_ns(now);
        self.first_close_ns.get_or_insert(t);
        self.counts.closes_sent += 1;
        self.job
            .progress
            .closes_sent
            .fetch_add(1, Ordering::Relaxed);
        let c = &mut self.conns[j];
        c.st = St::Closing;
        c.t_ns = t;
        let linger = |ms: u32| Request::SetLinger {
            handle: h,
            linger: Linger { on: true, ms },
        };
        match self.job.plan.close {
            Close::Abort => {
                engine.handle_request(now, ME, ud(Kind::Close, j), Request::Abort { handle: h });
            }
            Close::Graceful | Close::Linger { .. } => {
                let ms = match self.job.plan.close {
                    Close::Linger { ms } => ms,
                    _ => self.job.plan.close_timeout.as_millis() as u32,
                };
                engine.handle_request(now, ME, ud(Kind::Linger, j), linger(ms));
                engine.handle_request(
                    now,
                    ME,
                    ud(Kind::Close, j),
                    Request::Close {
                        handle: h,
                        nonblocking: false,
                    },
                );
            }
            Close::Half => engine.handle_request(
                now,
                ME,
                ud(Kind::Shutdown, j),
                Request::Shutdown {
                    handle: h,
                    how: Shutdown::Send,
                },
            ),
            Close::Peer => {}
        }
    }

    fn release(engine: &mut QueueEngine, now: Instant, j: usize, h: Handle) {
        engine.handle_request(
            now,
            ME,
            ud(Kind::Release, j),
            Request::Close {
                handle: h,
                nonblocking: true,
            },
        );
    }

    /// Answers, acknowledgements and device FINs overdue: counted as
    /// timeouts and aborted (so nothing is left open at the device).
    fn sweep(&mut self, engine: &mut QueueEngine, now: Instant) {
        let t = self.now_ns(now);
        if t < self.next_sweep_ns {
            return;
        }
        self.next_sweep_ns = t + 100_000_000;
        let limit = self.job.plan.close_timeout.as_nanos() as u64;
        let closing_watch = matches!(self.job.plan.close, Close::Half);
        for j in 0..self.conns.len() {
            let c = self.conns[j];
            let overdue = t.saturating_sub(c.t_ns) > limit;
            match c.st {
                St::Requesting if overdue => {
                    self.counts.timeouts += 1;
                    self.counts.unanswered += 1;
                    self.error();
                    self.conns[j].st = St::Ready;
                    self.resolve(j);
                }
                St::Closing if overdue && closing_watch => {
                    self.counts.timeouts += 1;
                    self.error();
                    if let Some(h) = c.handle {
                        engine.handle_request(
                            now,
                            ME,
                            ud(Kind::Release, j),
                            Request::Abort { handle: h },
                        );
                    }
                    self.finish(j);
                }
                _ => {}
            }
        }
    }

    fn requests(&mut self, engine: &mut QueueEngine, now: Instant, tx_in_flight: usize) {
        let plan = self.job.plan;
        let nq = self.job.nq;
        for j in std::mem::take(&mut self.to_retry) {
            self.open(engine, now, j);
        }
        // Paced opens: this queue's share of the rate and of the handshakes
        // in flight.
        // Warm-up: the first connection to each target goes alone; the rest
        // wait until one is established (its neighbour is known by then: a
        // frame to an unresolved neighbour is dropped, its SYN retried a
        // second later), or a second has passed.
        let warming = self.counts.established == 0
            && now.saturating_duration_since(self.job.t0) < Duration::from_secs(1);
        if self.next_open < self.conns.len() {
            let rate = f64::from(plan.open_rate) / nq as f64;
            let elapsed = now.saturating_duration_since(self.job.t0).as_secs_f64();
            let due = ((elapsed * rate) as usize + 1).min(self.conns.len());
            let room = (plan.in_flight / nq)
                .max(1)
                .saturating_sub(self.unanswered_handshakes);
            let mut until = due.min(self.next_open + room).min(self.next_open + 256);
            if warming {
                until = until.min(plan.targets.len());
            }
            while self.next_open < until {
                let j = self.next_open;
                self.next_open += 1;
                self.open(engine, now, j);
            }
            self.job
                .progress
                .issued
                .store(self.next_open as u64, Ordering::Relaxed);
        }
        for j in std::mem::take(&mut self.to_send) {
            let (Some(h), Some(req)) = (self.conns[j].handle, plan.request.as_ref()) else {
                continue;
            };
            engine.handle_request(
                now,
                ME,
                ud(Kind::Send, j),
                Request::Send {
                    handle: h,
                    data: req.to_vec(),
                },
            );
        }
        for (h, len) in std::mem::take(&mut self.recv_done) {
            engine.handle_request(
                now,
                ME,
                ud(Kind::Recv, 0),
                Request::RecvDone { handle: h, len },
            );
        }
        for j in std::mem::take(&mut self.to_release) {
            if let Some(h) = self.conns[j].handle {
                Gen::release(engine, now, j, h);
            }
        }
        self.sweep(engine, now);
        // The close phase, paced.
        let close_at = self.job.control.close_at_ns.load(Ordering::Relaxed);
        let t = self.now_ns(now);
        // The first close waits until every queued frame has left: the
        // last handshakes' ACKs may still be in the engine's TX queue, and a
        // close that overtook one would leave the device a half-open
        // connection to reset instead of an established one.
        let flushed = self.first_close_ns.is_some() || engine.tx_backlog() == 0;
        if close_at != u64::MAX && t >= close_at && plan.close.we_close() && flushed {
            let rate = f64::from(plan.close_rate) / nq as f64;
            let elapsed = (t - close_at) as f64 / 1e9;
            let due = (elapsed * rate) as usize + 1;
            // Backpressure: a close completes when its RST or FIN is queued,
            // so closes start only while the queue to the port is short;
            // then a completion is at most TX_QUEUED frames ahead of the
            // wire, and a close confirmed is one that leaves.
            let room = TX_QUEUED.saturating_sub(engine.tx_backlog());
            let mut budget = due
                .saturating_sub(self.closes_issued)
                .min(CLOSE_BURST)
                .min(room);
            while budget > 0 && self.close_cursor < self.conns.len() {
                let j = self.close_cursor;
                self.close_cursor += 1;
                match self.conns[j].st {
                    St::Ready => {}
                    St::Requesting => {
                        self.counts.unanswered += 1;
                    }
                    _ => continue,
                }
                self.close(engine, now, j);
                self.closes_issued += 1;
                budget -= 1;
            }
        }
        if self.finished == self.conns.len() && self.tail_until.is_none() {
            // Everything confirmed: keep the loop a little longer so that
            // the device's last FINs are acknowledged and TIME-WAIT ends.
            self.tail_until = Some(now + Duration::from_secs(3));
        }
        if let Some(until) = self.tail_until {
            // Over once nothing is left to send (the last RSTs may still
            // wait in the engine's or the port's TX queue) and the last
            // connections have ended, or the tail's time is up.
            self.drained = engine.tx_backlog() == 0
                && tx_in_flight == 0
                && (engine.connection_count() == 0 || now >= until);
        }
    }

    fn on_completion(&mut self, c: Completion) {
        let (Some(kind), j) = split_ud(c.user_data) else {
            return;
        };
        if j >= self.conns.len() {
            return;
        }
        let t = self.now_ns(Instant::now());
        let plan = self.job.plan;
        match (c.is_event, kind, &c.detail) {
            (true, _, Detail::Connecting) => self.conns[j].handle = Some(c.handle),
            (false, Kind::Connect, Detail::Connected { .. }) if c.result == Errno::Ok => {
                self.unanswered_handshakes = self.unanswered_handshakes.saturating_sub(1);
                let start = self.conns[j].t_ns;
                let _ = self
                    .latencies
                    .connect
                    .record(t.saturating_sub(start).max(1));
                Timeline::bump(&mut self.timeline.established, t);
                self.counts.established += 1;
                self.job
                    .progress
                    .established
                    .fetch_add(1, Ordering::Relaxed);
                let conn = &mut self.conns[j];
                conn.established = true;
                conn.t_ns = t;
                if plan.request.is_some() {
                    conn.st = St::Requesting;
                    self.to_send.push(j);
                } else {
                    conn.st = St::Ready;
                    self.resolve(j);
                }
            }
            (false, Kind::Connect, _) => {
                // The connect failed.
                self.unanswered_handshakes = self.unanswered_handshakes.saturating_sub(1);
                let conn = &mut self.conns[j];
                let tried = usize::from(conn.src) + 1;
                if c.result == Errno::AddrInUse && self.job.nq > 1 && tried < plan.sources.len() {
                    conn.src += 1;
                    self.to_retry.push(j);
                    return;
                }
                conn.st = St::Failed;
                match c.result {
                    Errno::ConnRefused => self.counts.refused += 1,
                    Errno::TimedOut => self.counts.unanswered_syns += 1,
                    _ => self.counts.connect_errors += 1,
                }
                match self.failures.iter_mut().find(|(e, _)| *e == c.result) {
                    Some((_, n)) => *n += 1,
                    None => self.failures.push((c.result, 1)),
                }
                self.error();
                self.finished += 1;
                self.resolve(j);
            }
            (false, Kind::Send, _) => {
                // The request was queued (or not).
                if c.result != Errno::Ok {
                    self.counts.unanswered += 1;
                    self.error();
                    self.conns[j].st = St::Ready;
                    self.resolve(j);
                } else if plan.expect_bytes == 0 && self.conns[j].st == St::Requesting {
                    self.answered(j, t);
                }
            }
            (true, _, Detail::Data(bytes)) => {
                let len = bytes.len() as u32;
                self.counts.bytes_received += u64::from(len);
                self.recv_done.push((c.handle, len));
                let conn = &mut self.conns[j];
                conn.got = conn.got.saturating_add(len);
                if conn.st == St::Requesting && u64::from(conn.got) >= plan.expect_bytes {
                    self.answered(j, t);
                }
            }
            (true, _, Detail::PeerClosed) => self.device_fin(j, t),
            (true, _, Detail::Reset) => {
                self.counts.device_rsts += 1;
                self.error();
                let st = self.conns[j].st;
                if st == St::Requesting {
                    self.counts.resets_during_data += 1;
                    self.counts.unanswered += 1;
                }
                if st == St::Ready && plan.close == Close::Peer {
                    // The device closed first, abortively: what peer waits
                    // for.
                    self.confirm(j, t);
                } else if st != St::Done {
                    self.finish(j);
                }
                self.to_release.push(j);
            }
            (false, Kind::Close, Detail::Closed(outcome)) if self.conns[j].st == St::Closing => {
                match outcome {
                    Outcome::Aborted | Outcome::Graceful => self.confirm(j, t),
                    Outcome::AbortedLinger => {
                        if matches!(plan.close, Close::Linger { .. }) {
                            self.counts.linger_expired += 1;
                        } else {
                            self.counts.timeouts += 1;
                        }
                        self.error();
                        self.finish(j);
                    }
                    Outcome::ResetByPeer => {
                        self.counts.device_rsts += 1;
                        self.error();
                        self.finish(j);
                    }
                    Outcome::Background => self.finish(j),
                }
            }
            (false, Kind::Close | Kind::Linger | Kind::Shutdown, _)
                if c.result != Errno::Ok && self.conns[j].st == St::Closing =>
            {
                // A close step refused (a handle that died meanwhile).
                self.finish(j);
            }
            _ => {}
        }
    }

    fn answered(&mut self, j: usize, t: u64) {
        let start = self.conns[j].t_ns;
        let _ = self
            .latencies
            .response
            .record(t.saturating_sub(start).max(1));
        self.counts.answered += 1;
        self.job.progress.answered.fetch_add(1, Ordering::Relaxed);
        let conn = &mut self.conns[j];
        conn.st = St::Ready;
        conn.t_ns = t;
        self.resolve(j);
    }

    /// The device's FIN.
    fn device_fin(&mut self, j: usize, t: u64) {
        let plan = self.job.plan;
        match (self.conns[j].st, plan.close) {
            (St::Closing, Close::Half) | (St::Ready, Close::Peer) => {
                self.confirm(j, t);
                self.to_release.push(j);
            }
            // Graceful, linger: the FIN after the acknowledgement of ours;
            // the close's completion confirms.
            (St::Closing, _) => {}
            (St::Requesting | St::Ready, _) => {
                if self.conns[j].st == St::Requesting {
                    self.counts.unanswered += 1;
                }
                self.counts.device_closed_first += 1;
                self.error();
                self.finish(j);
                self.to_release.push(j);
            }
            _ => {}
        }
    }
}

impl<S> Hooks<S> for Gen<'_> {
    fn done(&mut self) -> bool {
        self.drained || self.job.control.stop.load(Ordering::Relaxed)
    }

    fn requests(&mut self, engine: &mut QueueEngine, now: Instant, view: LoopView<S>) {
        Gen::requests(self, engine, now, view.tx_in_flight);
    }

    fn on_completion(&mut self, c: Completion) {
        Gen::on_completion(self, c);
    }

    fn io(&mut self) -> CoreIo<'_> {
        CoreIo {
            sink: None,
            capture: self.tap.as_mut(),
        }
    }
}

fn drive<P: Port>(
    job: &Job<'_>,
    mut port: P,
    mac: EthernetAddress,
    handoff: Option<&mut Handoff>,
    info: String,
    tap: Option<CaptureTap>,
) -> Result<Share> {
    let plan = job.plan;
    let mine = (plan.connections + job.nq - 1 - job.q) / job.nq;
    let mut engine = QueueEngine::new(engine_config(job, mac)?, job.t0);
    let mut g = Gen::new(job, mine);
    g.tap = tap;
    core_loop::run(&mut port, &mut engine, plan.idle, handoff, &mut g).context("generator loop")?;
    if let Some(tap) = g.tap.take() {
        tap.finish();
    }
    let info = match port.stats() {
        Ok(s) => format!("{info}; at the end: {s:?}"),
        Err(e) => format!("{info}; statistics unreadable: {e}"),
    };
    let mut counts = g.counts;
    counts.issued = g.next_open as u64;
    counts.lost = g
        .conns
        .iter()
        .filter(|c| c.established && !matches!(c.st, St::Done))
        .count() as u64;
    Ok(Share {
        counts,
        latencies: g.latencies,
        timeline: g.timeline,
        first_close_ns: g.first_close_ns,
        last_confirm_ns: g.last_confirm_ns,
        info,
        engine_connections: engine.connection_count(),
        failures: g.failures,
        engine_counters: engine.counters().clone(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_data_round_trips() {
        for (k, j) in [
            (Kind::Connect, 0),
            (Kind::Close, 999_999),
            (Kind::Release, (1 << 56) - 1),
        ] {
            assert_eq!(split_ud(ud(k, j)), (Some(k), j));
        }
        for bad in [0, 8 << 56, u64::MAX] {
            assert_eq!(split_ud(bad).0, None);
        }
    }

    fn plan() -> Plan {
        Plan {
            port: PortChoice::AfXdp {
                iface: "veth0".into(),
                queues: vec![0],
                mac: EthernetAddress([2, 0, 0, 0, 0, 1]),
            },
            sources: super::super::parse_sources("198.18.0.200/24").unwrap(),
            gateway: None,
            targets: super::super::parse_targets("198.18.0.1:80").unwrap(),
            connections: 1000,
            open_rate: 1000,
            in_flight: 100,
            request: None,
            expect_bytes: 0,
            hold: Duration::ZERO,
            close: Close::Abort,
            close_rate: 1000,
            close_timeout: Duration::from_secs(5),
            duration: Duration::from_secs(60),
            idle: IdleMode::Sleep {
                max: Duration::from_millis(1),
            },
            capture_snaplen: None,
        }
    }

    #[test]
    fn plans_are_checked() {
        plan().check().unwrap();
        let mut p = plan();
        p.connections = PER_PAIR + 1;
        assert!(p.check().unwrap_err().to_string().contains("4-tuples"));
        let mut p = plan();
        p.targets = super::super::parse_targets("198.19.0.1:80").unwrap();
        assert!(p.check().unwrap_err().to_string().contains("--gateway"));
        p.gateway = Some(Ipv4Addr::new(198, 18, 0, 254));
        p.check().unwrap();
        let mut p = plan();
        p.sources = super::super::parse_sources("198.18.0.200/24")
            .unwrap()
            .repeat(2);
        assert!(p.check().unwrap_err().to_string().contains("twice"));
        let mut p = plan();
        p.expect_bytes = 10;
        assert!(
            p.check()
                .unwrap_err()
                .to_string()
                .contains("needs a request")
        );
        let mut p = plan();
        p.targets = super::super::parse_targets("198.18.0.200:80").unwrap();
        assert!(
            p.check()
                .unwrap_err()
                .to_string()
                .contains("one of the sources")
        );
    }

    #[test]
    fn one_queue_tuples_never_repeat() {
        let mut p = plan();
        p.sources = super::super::parse_sources("198.18.0.200-198.18.0.201/24").unwrap();
        p.targets = super::super::parse_targets("198.18.0.1:80-81").unwrap();
        let job = Job {
            plan: &p,
            q: 0,
            nq: 1,
            t0: Instant::now(),
            control: &Control {
                stop: AtomicBool::new(false),
                close_at_ns: AtomicU64::new(u64::MAX),
            },
            progress: &Progress::default(),
            flow: None,
            port_offset: 12_345,
        };
        let n = capacity(2, 2);
        let g = Gen::new(&job, n);
        let mut seen = std::collections::HashSet::new();
        for j in 0..n {
            let (s, t, port) = g.tuple(j);
            assert!(
                seen.insert((s, t, port.unwrap())),
                "connection {j} repeats a 4-tuple"
            );
        }
        assert_eq!(seen.len(), n);
    }
}
