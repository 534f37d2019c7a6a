//! `lingerd-bench ring-latency`: the time from a client's abort request to
//! its RST on the wire, read on the peer side, with many linger timers
//! armed on the dut's core (issue 5, item 6).
//!
//! One run, on a lab of its own (removed on every exit path):
//! 1. **kernel** (unless `--kernel-samples 0`): a thread in the dut
//!    namespace, pinned to the dut's core, accepts the samples' connections
//!    on a kernel socket; each gets `SO_LINGER {1,0}` and is `close()`d at
//!    the sample pace, stamped just before the call. No timer is armed
//!    there: it is the kernel's abort path on the same lab, peer and clock.
//! 2. **lingerd**: the real daemon and its client ([`lingerd_bench::lab::setup::start_dut`]).
//!    The load generator opens `--timers` + `--samples` connections; the
//!    timer connections are *muted* at the peer (`loadgen::Config::muted`:
//!    their FINs are dropped unacknowledged). The client closes them with
//!    `SO_LINGER {1, --linger}` and a blocking close, so each one's linger
//!    deadline is armed in the engine; the run waits until the daemon's
//!    `lingerd_linger_timers_armed` gauge (`/metrics`, dut loopback) shows
//!    them all. Then the client aborts the samples one at a time at
//!    `--pace`, stamping each request just before it enters the ring.
//!
//! Latency is request → the peer's arrival of the RST, both on
//! `CLOCK_MONOTONIC` ([`lingerd_bench::clock`]). The peer in both parts is
//! the same load generator (lingerd's engine on AF_XDP, pinned off the dut's
//! core), busy-polling in `--idle busy`. The linger gauge is read before the
//! first sample and after the last; `timers_armed` is the smaller, and the
//! engine counters show that no lingering close ended in between. The FIN
//! retransmissions of the lingering connections (the peer never
//! acknowledges) come in waves of one frame per lingering connection,
//! backing off (RTO 0.2 s, doubling): by default (`--quiet 2s`) the
//! samples start once the dut has retransmitted nothing for 2 s, so that
//! they measure the abort path with the timers armed rather than the queue
//! behind a wave; `--quiet 0s` samples at once, inside the waves. Either
//! way the retransmissions during the samples are counted and reported.
//!
//! `--port dpdk` (a build with feature `dpdk`) runs the lingerd part on
//! the memif lab instead (`lab --port dpdk`'s set-up: no namespace, the
//! daemon the memif server on its core, the generator a `DpdkPort` on the
//! memif client on the other, after the same idle check); there is no
//! kernel part there (the kernel cannot speak memif), and `/metrics` is on
//! this namespace's loopback at a port free when the run starts. The
//! generator stops polling before the daemon stops and closes its end
//! after (see `LoadGen::pause`).
//!
//! It owns the lab (or this process's EAL and the runtime directories of
//! the daemon it starts), its scratch directory, its processes and threads
//! (each stopped in a guard); nothing outside 198.18.0.0/15 or the lab's
//! namespaces.

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::os::fd::AsFd;
use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use lingerd_bench::clock::{Pacer, now_ns};
use lingerd_bench::lab::kernel::listener;
use lingerd_bench::lab::loadgen::{self, LoadGen, Outcome, PER_PORT, Seen};
use lingerd_bench::lab::{Mode, dut, stats};
use lingerd_bench::measure::progress;
use lingerd_bench::report::{Goal, Report, counts_as_integers};
use lingerd_dataplane::port::afxdp::IdleMode;
use lingerd_dataplane::sys::netns;
use lingerd_lab::Lab;
use serde_json::Value;

use crate::lab_cmd::PortArg;
use crate::xsk_ceiling::parse_mac;
use lingerd_bench::lab::memif::RuntimeDirs;
use lingerd_bench::lab::setup::{
    DUT_CORE, DUT_ENGINE_ADDR, DutPlace, DutPlan, FIRST_PORT, Idle, bar, generator_cpu,
    lingerd_bin, on_lab, open_all, sample, spinner, start_dut,
};

/// The goal of issue 5, item 6: p99 request → wire, busy-poll, 1M timers.
const GOAL_P99_US: f64 = 50.0;
/// The daemon's `/metrics` listener, on the dut namespace's loopback.
const METRICS: SocketAddr = SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::LOCALHOST, 9187));

/// Arguments of `ring-latency`.
#[derive(clap::Args, Debug)]
pub(crate) struct Args {
    /// afxdp (the netns lab, with the kernel figure) or dpdk (memif, no
    /// kernel figure; feature dpdk).
    #[arg(long, value_enum, default_value = "afxdp")]
    port: PortArg,
    /// --port dpdk: the most CPU (in CPUs, summed over the machine) other
    /// processes may use during the idle check (default 0.15).
    #[arg(long)]
    max_busy: Option<f64>,
    /// --port dpdk: run even when the machine is busier than --max-busy
    /// (the result says so: "machine_idle": false).
    #[arg(long)]
    allow_busy: bool,
    /// Linger timers to arm on the dut's core (0 to 1,000,000).
    #[arg(long, default_value_t = 1_000_000)]
    timers: usize,
    /// Aborts to time (1 to 64,512).
    #[arg(long, default_value_t = 10_000)]
    samples: usize,
    /// Aborts per second (1 to 100,000): one at a time, spaced.
    #[arg(long, default_value_t = 1000)]
    pace: u32,
    /// The lingering closes' linger time, whole seconds from 10s to 60m
    /// (longer than the run).
    #[arg(long, default_value = "120s")]
    linger: lingerd_abi::vocab::Duration,
    /// Before the samples, wait until the dut has retransmitted nothing for
    /// this long (the lingering FINs' retransmission waves, 1M frames each,
    /// back off exponentially); at most half the linger time. 0: sample at
    /// once, inside the waves.
    #[arg(long, default_value = "2s")]
    quiet: lingerd_abi::vocab::Duration,
    /// Samples of the kernel figure (0: skip it; default: --samples).
    #[arg(long)]
    kernel_samples: Option<usize>,
    /// The daemon's (and the peer's) idle mode.
    #[arg(long, value_enum, default_value = "busy")]
    idle: Idle,
    /// Print one JSON object as the last line.
    #[arg(long)]
    json: bool,
    /// SYNs per second of the load generator.
    #[arg(long, default_value_t = 100_000)]
    open_rate: u32,
    /// Lab id (1 to 10 letters or digits); default "rl" + pid.
    #[arg(long)]
    id: Option<String>,
    /// Leave the lab (and the scratch directory) up at the end.
    #[arg(long)]
    keep_lab: bool,
    /// The lingerd binary (default: `lingerd` beside this one, or $LINGERD_BIN).
    #[arg(long)]
    lingerd: Option<std::path::PathBuf>,
}

/// Request → wire latencies of one part.
struct Part {
    latency: stats::Latency,
    /// Samples whose RST never arrived.
    lost: usize,
    /// Samples answered by a FIN instead.
    unexpected: usize,
}

/// What the lingerd part measured besides its latencies.
struct LingerdPart {
    part: Part,
    /// `lingerd_linger_timers_armed`, before the first and after the last
    /// sample.
    linger_before: u64,
    linger_after: u64,
    /// `lingerd_timers_armed` (the whole wheel) before the first sample.
    wheel: u64,
    /// Lingering closes that ended during the samples (counters' delta).
    linger_ended: u64,
    /// Retransmissions by the dut during the samples.
    retransmits: u64,
    /// Seconds waited for the retransmissions to pause (`--quiet`).
    quiet_wait_s: f64,
    /// Frames the peer dropped unread (the lingering connections' FINs).
    muted_frames: u64,
    open_seconds: f64,
    request_errors: u64,
}

/// `lingerd-bench ring-latency`.
pub(crate) fn run(args: Args) -> Result<()> {
    ensure!(
        args.timers <= 1_000_000,
        "--timers must be between 0 and 1000000"
    );
    ensure!(
        (1..=PER_PORT).contains(&args.samples),
        "--samples must be between 1 and {PER_PORT}"
    );
    let kernel_samples = args.kernel_samples.unwrap_or(args.samples);
    ensure!(
        kernel_samples <= PER_PORT,
        "--kernel-samples must be between 0 and {PER_PORT}"
    );
    ensure!(
        (1..=100_000).contains(&args.pace),
        "--pace must be between 1 and 100000"
    );
    ensure!(
        args.linger.as_millis().is_multiple_of(1000)
            && (10_000..=3_600_000).contains(&args.linger.as_millis()),
        "--linger must be whole seconds between 10s and 60m"
    );
    if cfg!(debug_assertions) {
        progress("warning: debug build; use --release for meaningful figures");
    }
    let exe = std::env::current_exe()?;
    let lingerd = lingerd_bin(args.lingerd.as_deref())?;
    if args.port == PortArg::Dpdk {
        ensure!(
            args.id.is_none() && !args.keep_lab && args.kernel_samples.is_none(),
            "--id, --keep-lab and --kernel-samples are for --port afxdp: the memif lab makes \
             no namespace and has no kernel part"
        );
        let (l, idle) = memif_run(&args, &exe, &lingerd)?;
        return report(&args, None, &l, Some(idle));
    }
    ensure!(
        args.max_busy.is_none() && !args.allow_busy,
        "--max-busy and --allow-busy are for --port dpdk"
    );
    let (kernel, lingerd) = on_lab(args.id.as_deref(), "rl", args.keep_lab, |lab, scratch| {
        let kernel = if kernel_samples > 0 {
            Some(kernel_part(&args, lab, kernel_samples)?)
        } else {
            None
        };
        let l = lingerd_part(&args, &At::Lab(lab), scratch, &exe, &lingerd)?;
        Ok((kernel, l))
    })?;
    report(&args, kernel.as_ref(), &lingerd, None)
}

/// Where the lingerd part runs.
enum At<'a> {
    /// On the netns lab (AF_XDP), `/metrics` at [`METRICS`] in the dut
    /// namespace.
    Lab(&'a Lab),
    /// On the memif lab: the generator on this EAL, the daemon the server
    /// of `socket`, `/metrics` at `metrics` here.
    #[cfg(feature = "dpdk")]
    Memif {
        eal: &'static lingerd_dataplane::port::dpdk::Eal,
        socket: &'a Path,
        metrics: SocketAddr,
    },
}

impl At<'_> {
    fn side(&self) -> Result<loadgen::Side> {
        Ok(match self {
            At::Lab(lab) => loadgen::Side::AfXdp {
                ns: lab.get("LAB_PEER_NS"),
                iface: lab.get("LAB_PEER_IF"),
                mac: parse_mac(&lab.get("LAB_PEER_MAC"))?,
            },
            #[cfg(feature = "dpdk")]
            At::Memif { eal, socket, .. } => loadgen::Side::Dpdk {
                eal,
                device: lingerd_bench::lab::memif::loadgen_device(socket),
            },
        })
    }

    fn place(&self) -> DutPlace<'_> {
        match self {
            At::Lab(lab) => DutPlace::Lab(lab),
            #[cfg(feature = "dpdk")]
            At::Memif { socket, .. } => DutPlace::Memif { socket },
        }
    }

    fn metrics(&self) -> SocketAddr {
        match self {
            At::Lab(_) => METRICS,
            #[cfg(feature = "dpdk")]
            At::Memif { metrics, .. } => *metrics,
        }
    }

    fn scrape(&self) -> Result<String> {
        lingerd_bench::lab::setup::scrape_dut(self.place(), self.metrics())
    }
}

#[cfg(not(feature = "dpdk"))]
fn memif_run(_args: &Args, _exe: &Path, _lingerd: &Path) -> Result<(LingerdPart, bool)> {
    bail!(
        "this lingerd-bench was built without the `dpdk` feature: build it (and lingerd) with \
         --features dpdk for --port dpdk"
    )
}

/// `--port dpdk`: the idle check, this process's EAL (shut down on every
/// exit path), then the lingerd part on memif. Returns it and whether the
/// machine was idle.
#[cfg(feature = "dpdk")]
fn memif_run(args: &Args, exe: &Path, lingerd: &Path) -> Result<(LingerdPart, bool)> {
    use lingerd_bench::lab::memif;
    use lingerd_dataplane::port::dpdk::{Eal, EalConfig};

    struct EalStop(&'static Eal);
    impl Drop for EalStop {
        fn drop(&mut self) {
            if let Err(e) = self.0.shutdown() {
                progress(format!("warning: DPDK shutdown: {e}"));
            }
        }
    }

    let check =
        crate::dpdk_ceiling::idle_check(args.max_busy.unwrap_or(memif::MAX_BUSY), args.allow_busy)?;
    progress(format!(
        "other processes use {:.2} CPUs ({})",
        check.busy,
        if check.idle { "idle" } else { "BUSY" }
    ));
    let scratch = tempfile::Builder::new()
        .prefix("lingerd-memif-rl-")
        .tempdir()?;
    memif::undo_on_panic();
    memif::remove_on_panic(scratch.path());
    // A loopback port free now, for the daemon's /metrics.
    let metrics = std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?.local_addr()?;
    let eal = Eal::init(&EalConfig::default())?;
    let _eal = EalStop(eal);
    let socket = scratch.path().join("memif.sock");
    let at = At::Memif {
        eal,
        socket: &socket,
        metrics,
    };
    let l = lingerd_part(args, &at, scratch.path(), exe, lingerd)?;
    Ok((l, check.idle))
}

/// The peer's idle mode: the daemon's (busy-polling on its own core).
fn peer_idle(idle: Idle) -> IdleMode {
    match idle {
        Idle::Busy => IdleMode::BusyPoll,
        Idle::Sleep => IdleMode::Sleep {
            max: Duration::from_millis(1),
        },
    }
}

/// Waits until the peer has seen `n` closes or `limit` passed, with a bar.
fn await_closes(generator: &LoadGen, n: usize, limit: Duration) {
    let pb = bar(n as u64, "aborts");
    let t0 = Instant::now();
    loop {
        let closed = generator.progress.closed.load(Ordering::Relaxed);
        pb.set_position(closed);
        if closed as usize >= n || t0.elapsed() > limit || generator.finished() {
            break;
        }
        std::thread::sleep(loadgen::WATCH);
    }
    pb.finish();
}

/// Pairs request times with the peer's arrivals: only the connections
/// whose key has a request time are samples.
fn pair(times: &[(u32, u64)], out: &Outcome) -> Part {
    let by_key: HashMap<u32, u64> = times.iter().copied().collect();
    let mut pairs = Vec::with_capacity(times.len());
    let mut unexpected = 0;
    for c in &out.conns {
        let Some(&t) = by_key.get(&c.key()) else {
            continue;
        };
        match c.seen {
            Seen::Rst => pairs.push((t, c.closed_ns)),
            Seen::Fin => unexpected += 1,
            Seen::Open => {}
        }
    }
    Part {
        lost: times.len() - pairs.len() - unexpected,
        unexpected,
        latency: stats::latency(pairs),
    }
}

/// The kernel part: `n` connections from the load generator to a kernel
/// listener in the dut, each closed with `SO_LINGER {1,0}` at the pace.
fn kernel_part(args: &Args, lab: &Lab, n: usize) -> Result<Part> {
    let sp = spinner("kernel");
    sp.set_message(format!("{n} kernel sockets: connecting"));
    let dut_ns = lab.get("LAB_DUT_NS");
    let dut_addr: Ipv4Addr = lab.get("LAB_DUT_ADDR").parse()?;
    let (ready_tx, ready_rx) = mpsc::channel::<Result<usize>>();
    let (go_tx, go_rx) = mpsc::channel::<()>();
    let pace = args.pace;
    let closer = std::thread::Builder::new()
        .name("kernel-closer".into())
        .spawn(move || -> Result<Vec<(u32, u64)>> {
            // On the dut's core, as the daemon's loop is.
            core_affinity::set_for_current(core_affinity::CoreId { id: DUT_CORE });
            netns::enter(&dut_ns).with_context(|| format!("entering {dut_ns}"))?;
            let l = listener(SocketAddrV4::new(dut_addr, FIRST_PORT), 4096)?;
            l.set_nonblocking(true)?;
            let _ = ready_tx.send(Ok(0));
            let mut conns = Vec::with_capacity(n);
            let deadline = Instant::now() + Duration::from_secs(120);
            while conns.len() < n {
                match l.accept() {
                    Ok((s, peer)) => {
                        rustix::net::sockopt::set_socket_linger(s.as_fd(), Some(Duration::ZERO))?;
                        let std::net::SocketAddr::V4(peer) = peer else {
                            bail!("an IPv6 peer");
                        };
                        conns.push((s, loadgen::key(peer.port(), FIRST_PORT)));
                    }
                    Err(_) if Instant::now() < deadline => {
                        std::thread::sleep(Duration::from_millis(1));
                    }
                    Err(e) => bail!("accepted {} of {n}: {e}", conns.len()),
                }
            }
            let _ = ready_tx.send(Ok(conns.len()));
            go_rx
                .recv_timeout(Duration::from_secs(120))
                .context("no go")?;
            let pacer = Pacer::new(pace);
            let mut times = Vec::with_capacity(n);
            for (i, (s, k)) in conns.into_iter().enumerate() {
                pacer.wait(i);
                times.push((k, now_ns()));
                drop(s); // close(): SO_LINGER {1,0} sends the RST now
            }
            Ok(times)
        })?;
    ready_rx
        .recv_timeout(Duration::from_secs(30))
        .context("kernel listener")??;
    let generator = LoadGen::start(loadgen::Config {
        side: loadgen::Side::AfXdp {
            ns: lab.get("LAB_PEER_NS"),
            iface: lab.get("LAB_PEER_IF"),
            mac: parse_mac(&lab.get("LAB_PEER_MAC"))?,
        },
        dut: dut_addr.into(),
        dut_ports: vec![FIRST_PORT],
        connections: n,
        muted: 0,
        open_rate: args.open_rate.min(20_000),
        in_flight: 512,
        close_on_fin: false,
        bare_closes: false,
        idle: peer_idle(args.idle),
        cpu: generator_cpu(),
    })?;
    open_all(&generator, n, args.open_rate.min(20_000))?;
    let accepted = ready_rx
        .recv_timeout(Duration::from_secs(130))
        .context("kernel accepts")??;
    ensure!(accepted == n, "kernel accepted {accepted} of {n}");
    sp.set_message(format!("{n} kernel sockets: aborting at {pace}/s"));
    go_tx.send(()).context("kernel closer gone")?;
    await_closes(
        &generator,
        n,
        Duration::from_secs_f64(n as f64 / f64::from(pace)) + Duration::from_secs(30),
    );
    let times = closer
        .join()
        .map_err(|_| anyhow::anyhow!("kernel closer panicked"))??;
    let out = generator.stop()?;
    let part = pair(&times, &out);
    sp.finish_with_message(format!(
        "p99 {:.1} µs over {} samples",
        part.latency.p99_us, part.latency.count
    ));
    Ok(part)
}

/// The counters a lingering close ends by.
fn linger_ends(text: &str) -> Result<u64> {
    let mut n = 0;
    for c in [
        "lingerd_closes_total{outcome=\"aborted_linger\"}",
        "lingerd_closes_total{outcome=\"graceful\"}",
        "lingerd_closes_total{outcome=\"aborted\"}",
        "lingerd_retransmit_timeouts_total",
    ] {
        n += sample(text, c)?;
    }
    Ok(n)
}

/// Waits (bounded by half the linger time) until `lingerd_retransmits_total`
/// has not moved for `--quiet`; returns the last scrape, or `None` with
/// `--quiet 0s`.
fn await_quiet(args: &Args, at: &At<'_>) -> Result<Option<String>> {
    if args.quiet == lingerd_abi::vocab::Duration::ZERO {
        return Ok(None);
    }
    let sp = spinner("quiet");
    let quiet = args.quiet.to_std();
    let limit = Instant::now() + args.linger.to_std() / 2;
    let mut text = at.scrape()?;
    let (mut last, mut since) = (sample(&text, "lingerd_retransmits_total")?, Instant::now());
    while since.elapsed() < quiet && Instant::now() < limit {
        std::thread::sleep(Duration::from_millis(100));
        text = at.scrape()?;
        let now = sample(&text, "lingerd_retransmits_total")?;
        if now != last {
            (last, since) = (now, Instant::now());
        }
        sp.set_message(format!(
            "waiting for a pause in the FIN retransmissions ({now} so far)"
        ));
    }
    sp.finish_with_message(format!("{last} retransmissions before the samples"));
    Ok(Some(text))
}

/// The lingerd part.
fn lingerd_part(
    args: &Args,
    at: &At<'_>,
    scratch: &Path,
    exe: &Path,
    lingerd: &Path,
) -> Result<LingerdPart> {
    let (t, n) = (args.timers, args.timers + args.samples);
    let mut gen_cfg = loadgen::Config {
        side: at.side()?,
        dut: DUT_ENGINE_ADDR.into(),
        dut_ports: Vec::new(),
        connections: n,
        muted: t,
        open_rate: args.open_rate,
        in_flight: 4096,
        close_on_fin: false,
        bare_closes: false,
        idle: peer_idle(args.idle),
        cpu: generator_cpu(),
    };
    gen_cfg.dut_ports = (0..gen_cfg.ports_wanted())
        .map(|i| FIRST_PORT + i as u16)
        .collect();
    let ports = gen_cfg.dut_ports.clone();
    // Before the daemon: its EAL runtime directory goes after it is gone.
    let mut eal_dirs = RuntimeDirs::default();
    let mut dut = start_dut(&DutPlan {
        place: at.place(),
        family: lingerd_bench::lab::Family::V4,
        scratch,
        exe,
        lingerd,
        idle: args.idle,
        ports: &ports,
        connections: n,
        mode: Mode::Abort,
        bulk: false,
        pace: args.pace,
        timer_ports: if t > 0 { loadgen::ports_needed(t) } else { 0 },
        timer_linger: args.linger,
        metrics: Some(at.metrics()),
        max_rst_per_sec: 0,
    })?;
    if let DutPlace::Memif { .. } = at.place() {
        eal_dirs.add(dut.daemon.pid());
        if let Some(dir) = dut.daemon.config_file().parent() {
            lingerd_bench::lab::memif::remove_on_panic(dir);
        }
    }
    let generator = LoadGen::start(gen_cfg)?;
    // Whatever the middle's outcome, the generator stops polling before the
    // daemon stops and closes its port after (on memif the side that stays
    // must not poll: see `LoadGen::pause`).
    let middle = armed_then_sampled(args, at, &generator, &mut dut, t);
    generator.pause(Duration::from_secs(10));
    dut.stop();
    let m = match middle {
        Ok(m) => m,
        Err(e) => {
            drop(generator.stop());
            return Err(e);
        }
    };
    let out = generator.stop()?;
    drop(eal_dirs);
    let Middle {
        open_seconds,
        linger_before,
        wheel,
        before,
        after,
        quiet_wait_s,
        v,
        muted_frames,
    } = m;

    let times = dut::read_times(&dut.times_file)?;
    Ok(LingerdPart {
        part: pair(&times, &out),
        linger_before,
        linger_after: sample(&after, "lingerd_linger_timers_armed")?,
        wheel,
        linger_ended: linger_ends(&after)?
            .saturating_sub(linger_ends(&before)?)
            // The samples' own aborts are among closes_aborted.
            .saturating_sub(args.samples as u64),
        retransmits: sample(&after, "lingerd_retransmits_total")?
            .saturating_sub(sample(&before, "lingerd_retransmits_total")?),
        muted_frames,
        quiet_wait_s,
        open_seconds,
        request_errors: v[2],
    })
}

/// What the middle of the lingerd part measured.
struct Middle {
    open_seconds: f64,
    linger_before: u64,
    wheel: u64,
    before: String,
    after: String,
    quiet_wait_s: f64,
    v: [u64; 5],
    muted_frames: u64,
}

/// Opens every connection, arms the `t` linger timers, waits for quiet and
/// times the samples.
fn armed_then_sampled(
    args: &Args,
    at: &At<'_>,
    generator: &LoadGen,
    dut: &mut lingerd_bench::lab::setup::Dut,
    t: usize,
) -> Result<Middle> {
    let n = t + args.samples;
    let open_seconds = open_all(generator, n, args.open_rate)?;

    // The lingering closes, then their timers in the engine.
    let sp = spinner("arming");
    sp.set_message(format!("{t} closes with SO_LINGER {{1, {}}}", args.linger));
    let accepted = dut
        .client
        .expect_rest("accepted", Duration::from_secs(300))?;
    let counts: Vec<usize> = accepted
        .split_whitespace()
        .map(str::parse)
        .collect::<Result<_, _>>()?;
    ensure!(
        counts == [args.samples, t],
        "the client reports {accepted:?}, wanted {} samples and {t} lingering",
        args.samples
    );
    sp.finish_and_clear();
    let pb = bar(t as u64, "armed");
    let limit = Instant::now() + Duration::from_secs(60);
    let before = loop {
        let text = at.scrape()?;
        let armed = sample(&text, "lingerd_linger_timers_armed")?;
        pb.set_position(armed);
        if armed >= t as u64 {
            break text;
        }
        if Instant::now() > limit {
            pb.abandon();
            bail!("only {armed} of {t} linger timers armed in the dut after 60 s");
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    pb.finish();
    let linger_before = sample(&before, "lingerd_linger_timers_armed")?;
    let wheel = sample(&before, "lingerd_timers_armed")?;
    progress(format!(
        "{linger_before} linger timers armed in the dut's engine (lingerd_linger_timers_armed; \
         {wheel} timers in its wheel)"
    ));
    let t_quiet = Instant::now();
    let before = await_quiet(args, at)?.unwrap_or(before);
    let quiet_wait_s = t_quiet.elapsed().as_secs_f64();

    // The samples.
    dut.client.say("go")?;
    await_closes(
        generator,
        args.samples,
        Duration::from_secs_f64(args.samples as f64 / f64::from(args.pace))
            + Duration::from_secs(30),
    );
    let v = dut.done()?;
    // A census pass that began after the last sample (publishes every 100 ms).
    std::thread::sleep(Duration::from_millis(500));
    let after = at.scrape()?;
    let muted_frames = generator.progress.muted.load(Ordering::Relaxed);
    Ok(Middle {
        open_seconds,
        linger_before,
        wheel,
        before,
        after,
        quiet_wait_s,
        v,
        muted_frames,
    })
}

fn report(
    args: &Args,
    kernel: Option<&Part>,
    l: &LingerdPart,
    machine_idle: Option<bool>,
) -> Result<()> {
    let timers_armed = l.linger_before.min(l.linger_after);
    let lat = &l.part.latency;
    let mut r = Report::default();
    r.info(
        "timers_armed",
        "linger timers armed in the dut's engine (gauge, before and after)",
        timers_armed as f64,
        "",
    );
    r.info(
        "wheel_timers",
        "timers in the dut's wheel before the samples",
        l.wheel as f64,
        "",
    );
    r.info("samples", "aborts timed", lat.count as f64, "");
    r.info(
        "p50_us",
        "abort request → RST at the peer, p50",
        lat.p50_us,
        "µs",
    );
    r.goal(
        "p99_us",
        "abort request → RST at the peer, p99",
        lat.p99_us,
        "µs",
        Goal::AtMost(GOAL_P99_US),
    );
    r.info(
        "p999_us",
        "abort request → RST at the peer, p99.9",
        lat.p999_us,
        "µs",
    );
    r.info(
        "max_us",
        "abort request → RST at the peer, max",
        lat.max_us,
        "µs",
    );
    r.info(
        "ratio_to_goal",
        format!("goal ({GOAL_P99_US} µs) ÷ p99: ≥ 1 meets it"),
        Goal::AtMost(GOAL_P99_US).ratio(lat.p99_us),
        "",
    );
    r.info(
        "lost",
        "samples whose RST never arrived",
        l.part.lost as f64,
        "",
    );
    r.info(
        "unexpected",
        "samples answered by a FIN",
        l.part.unexpected as f64,
        "",
    );
    if let Some(k) = kernel {
        let kl = &k.latency;
        r.info(
            "kernel_p50_us",
            "Linux close() → RST at the peer, p50 (no timers)",
            kl.p50_us,
            "µs",
        );
        r.info(
            "kernel_p99_us",
            "Linux close() → RST at the peer, p99 (no timers)",
            kl.p99_us,
            "µs",
        );
        r.info(
            "kernel_p999_us",
            "Linux close() → RST at the peer, p99.9",
            kl.p999_us,
            "µs",
        );
        r.info(
            "kernel_max_us",
            "Linux close() → RST at the peer, max",
            kl.max_us,
            "µs",
        );
        r.info("kernel_samples", "kernel closes timed", kl.count as f64, "");
        r.info(
            "kernel_lost",
            "kernel RSTs that never arrived",
            k.lost as f64,
            "",
        );
        r.info(
            "ratio_to_kernel",
            "lingerd p99 ÷ kernel p99 (< 1: lingerd is faster)",
            crate::lab_cmd::ratio(lat.p99_us, kl.p99_us),
            "",
        );
    }
    r.info(
        "linger_ended",
        "lingering closes that ended during the samples",
        l.linger_ended as f64,
        "",
    );
    r.info(
        "dut_retransmits",
        "dut retransmissions during the samples (unacknowledged FINs)",
        l.retransmits as f64,
        "",
    );
    r.info(
        "peer_muted_frames",
        "frames of lingering connections the peer dropped unread",
        l.muted_frames as f64,
        "",
    );
    r.info(
        "quiet_wait_s",
        "waited for a pause in the retransmissions before sampling",
        l.quiet_wait_s,
        "s",
    );
    r.info(
        "open_seconds",
        "time to open every connection",
        l.open_seconds,
        "s",
    );
    r.info(
        "request_errors",
        "abort requests that failed",
        l.request_errors as f64,
        "",
    );
    println!("{}", r.table());
    if args.json {
        let idle = match args.idle {
            Idle::Busy => "busy",
            Idle::Sleep => "sleep",
        };
        let port = match args.port {
            PortArg::Afxdp => "afxdp",
            PortArg::Dpdk => "dpdk",
        };
        let mut j = r.json(&[
            ("port", Value::String(port.into())),
            (
                "machine_idle",
                machine_idle.map_or(Value::Null, Value::Bool),
            ),
            ("timers", Value::from(args.timers)),
            ("pace", Value::from(args.pace)),
            ("linger_s", Value::from(args.linger.as_millis() / 1000)),
            ("quiet_ms", Value::from(args.quiet.as_millis())),
            ("idle", Value::String(idle.into())),
            ("goal_p99_us", Value::from(GOAL_P99_US)),
            ("goal_met", Value::Bool(lat.p99_us <= GOAL_P99_US)),
        ]);
        counts_as_integers(
            &mut j,
            &[
                "timers_armed",
                "wheel_timers",
                "samples",
                "lost",
                "unexpected",
                "kernel_samples",
                "kernel_lost",
                "linger_ended",
                "dut_retransmits",
                "peer_muted_frames",
                "request_errors",
            ],
        );
        println!("{j}");
    }
    ensure!(
        l.part.lost == 0 && l.part.unexpected == 0,
        "{} of {} aborts were never seen as an RST by the peer ({} lost, {} FIN): the \
         percentiles cover only the {} that arrived",
        l.part.lost + l.part.unexpected,
        args.samples,
        l.part.lost,
        l.part.unexpected,
        lat.count
    );
    if let Some(k) = kernel {
        ensure!(
            k.lost == 0 && k.unexpected == 0,
            "{} kernel RSTs never arrived ({} FIN)",
            k.lost,
            k.unexpected
        );
    }
    ensure!(
        timers_armed >= args.timers as u64 && l.linger_ended == 0,
        "only {timers_armed} of {} linger timers stayed armed ({} lingering closes ended \
         during the samples): the figures are not those of a core with {} timers",
        args.timers,
        l.linger_ended,
        args.timers
    );
    Ok(())
}
