//! `lingerd-bench lab`: the end-to-end close benchmark on the netns lab.
//!
//! One run, in order, on one lab of its own (`deploy/lab up`, down on every
//! exit path, panics included):
//! 1. the **xsk ceiling**: RST frames through our AF_XDP port and a bare
//!    xsk-rs loop on the dut's veth end, counted at the peer
//!    ([`crate::xsk_ceiling::ceiling`]); then the **fair ceiling**: the bare
//!    sender again, counted by the load generator's own AF_XDP receive path
//!    (its socket, CPU, priority and waking: `fair_ceiling_pps`,
//!    `ratio_to_fair_ceiling`; [`crate::xsk_ceiling::fair_ceiling`]);
//! 2. the **Linux kernel baseline**: the same teardown by kernel sockets,
//!    server in the dut, clients in the peer ([`lingerd_bench::lab::kernel`]);
//! 3. **lingerd**: the real daemon (`ip netns exec <dut> lingerd run
//!    --config <generated>`), a `lingerd` client attached to it in the dut
//!    ([`lingerd_bench::lab::dut`]) and lingerd itself as the load generator
//!    in the peer ([`lingerd_bench::lab::loadgen`]): N connections opened,
//!    then closed by the client; the peer timestamps each RST/FIN, counted
//!    on the frame by its bare classifier (`peer_bare_closes`,
//!    [`lingerd_bench::lab::rst_tally`]), which answers a FIN with FIN|ACK.
//!
//! `closes_per_s` is closes seen on the wire ÷ (last arrival − first close
//! request); latency is request → arrival per connection (one request for
//! `--bulk`), both on `CLOCK_MONOTONIC`. `lost` counts established
//! connections the peer never saw closed. Progress bars go to stderr, the
//! table then (with `--json`) one JSON object to stdout.
//!
//! `--port dpdk` (a build with feature `dpdk`) runs the same workload on
//! the memif lab instead, with no namespace: after an idle check (memif
//! busy-polls both cores; `--max-busy`, `--allow-busy`, as `dpdk-ceiling`),
//! 1. the **memif ceiling**: `dpdk-ceiling`'s sender and receiver, sender
//!    on the generator's CPU, receiver on the daemon's
//!    (`crate::dpdk_ceiling::measure`);
//! 2. **lingerd**: the daemon (`lingerd run`, `port: dpdk`, the server of a
//!    memif on a socket file in the scratch directory) on its core, its
//!    client as above, and the load generator on a `DpdkPort` on the memif
//!    client end, on the other core; `ratio_to_ceiling` is to the ceiling
//!    of the same run.
//!
//! There is no kernel baseline on memif (the kernel cannot speak it): the
//! `kernel_*` keys are null and `kernel_note` says why.
//!
//! `--capture FILE` (afxdp) adds a fourth step: the lingerd teardown again,
//! on a fresh daemon and generator, with `lingerd ctl capture -w FILE`
//! copying every frame from just before the closes until they settled;
//! the report puts its rate beside the first one's (`capture_ratio`, goal
//! ≥ 0.7: issue 15), with the packets it wrote and the copies it dropped.
//!
//! It owns the lab (or, with DPDK, this process's EAL and the runtime
//! directories of the DPDK processes it starts), its scratch directory,
//! and the processes and threads it starts (each stopped when dropped,
//! SIGINT and SIGTERM included); it touches no other namespace and no
//! address outside 198.18.0.0/15.

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, ensure};
use lingerd_bench::lab::dut::{self, BULK_KEY};
use lingerd_bench::lab::loadgen::{self, LoadGen, Seen};
use lingerd_bench::lab::memif::{self, KERNEL_NOT_COMPARABLE, MAX_BUSY, RuntimeDirs};
use lingerd_bench::lab::plot::{self, Series};
use lingerd_bench::lab::{Addressing, Family, Mode, kernel, stats};
use lingerd_bench::measure::progress;
use lingerd_bench::report::{Goal, Report, counts_as_integers};
use serde_json::Value;

use lingerd_lab::Lab;
use lingerd_lab::proc::{Ending, Proc, Stderr};

use lingerd_bench::lab::setup::{
    Dut, DutPlace, DutPlan, FIRST_PORT, Idle, bar, check_interrupted, generator_cpu, interrupted,
    lingerd_bin, on_lab_for, open_all, sample, scrape_dut, spinner, start_dut, stop_on_signals,
};

use crate::xsk_ceiling::{self, parse_mac};

/// `--port` values.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum PortArg {
    /// AF_XDP on the netns lab's veth (with the kernel baseline).
    Afxdp,
    /// DPDK over memif, no namespace (a build with feature `dpdk`).
    Dpdk,
}

/// Arguments of `lab`.
#[derive(clap::Args, Debug)]
pub(crate) struct Args {
    /// afxdp (the netns lab) or dpdk (memif; feature dpdk).
    #[arg(long, value_enum, default_value = "afxdp")]
    port: PortArg,
    /// The address family of the run: v4 (the default) or v6 (the lab's
    /// 2001:db8::/64).
    #[arg(long, default_value = "v4")]
    family: Family,
    /// --port dpdk: the most CPU (in CPUs, summed over the machine) other
    /// processes may use during the idle check before the run is refused
    /// (default 0.15).
    #[arg(long)]
    max_busy: Option<f64>,
    /// --port dpdk: run even when the machine is busier than --max-busy
    /// (the result says so: "idle": false).
    #[arg(long)]
    allow_busy: bool,
    /// Connections to open and tear down (1 to 1,000,000).
    #[arg(long, default_value_t = 100_000)]
    connections: usize,
    /// abort, graceful or linger=DURATION (linger=200ms).
    #[arg(long, default_value = "abort")]
    mode: Mode,
    /// One close_matching request instead of one request per connection.
    #[arg(long)]
    bulk: bool,
    /// Closes per second (0: as fast as possible).
    #[arg(long, default_value_t = 0)]
    pace: u32,
    /// The daemon's `close.max_rst_per_sec` (0: unpaced); with a limit the
    /// report adds the RST span and rate against it.
    #[arg(long, default_value_t = 0)]
    max_rst_per_sec: u32,
    /// Print one JSON object as the last line.
    #[arg(long)]
    json: bool,
    /// Write closes over time and the latency CDF to this SVG.
    #[arg(long, value_name = "FILE")]
    svg: Option<PathBuf>,
    /// Lab id (1 to 10 letters or digits); default "lb" + pid (afxdp).
    #[arg(long)]
    id: Option<String>,
    /// Leave the lab (and the scratch directory) up at the end, for
    /// debugging (afxdp).
    #[arg(long)]
    keep_lab: bool,
    /// The daemon's idle mode during the run.
    #[arg(long, value_enum, default_value = "busy")]
    idle: Idle,
    /// Kernel baseline size (default: min(connections, 100000); afxdp).
    #[arg(long)]
    kernel_connections: Option<usize>,
    /// SYNs per second of the load generator.
    #[arg(long, default_value_t = 100_000)]
    open_rate: u32,
    /// How long each ceiling sender runs, 500ms to 30s (dpdk: at least 1s).
    #[arg(long, default_value = "2s")]
    ceiling_duration: lingerd_abi::vocab::Duration,
    /// The lingerd binary (default: `lingerd` beside this one, or $LINGERD_BIN).
    #[arg(long)]
    lingerd: Option<PathBuf>,
    /// Run the lingerd teardown a second time with `lingerd ctl capture -w
    /// FILE` on (every frame), and report both rates (afxdp).
    #[arg(long, value_name = "FILE")]
    capture: Option<PathBuf>,
}

/// The ceiling a run measured.
enum Ceiling {
    /// AF_XDP on the veth: the bare xsk-rs sender and our port's, counted
    /// at the peer's kernel, and the bare sender counted by the load
    /// generator's own receive path (`fair_pps`).
    Xsk {
        bare_pps: f64,
        port_pps: f64,
        fair_pps: f64,
    },
    /// memif: `dpdk-ceiling`'s figures.
    #[cfg_attr(not(feature = "dpdk"), allow(dead_code))]
    Memif {
        pps: f64,
        median_pps: f64,
        idle: bool,
        others_before: f64,
        others_during: f64,
    },
}

impl Ceiling {
    fn pps(&self) -> f64 {
        match self {
            Ceiling::Xsk { bare_pps, .. } => *bare_pps,
            Ceiling::Memif { pps, .. } => *pps,
        }
    }
}

/// Everything one run measured, for the report.
struct Measured {
    ceiling: Ceiling,
    /// The kernel baseline and the closes its peer confirmed (none on
    /// memif).
    kernel: Option<(kernel::KernelResult, u64)>,
    lingerd: Option<LingerdRun>,
    /// The same teardown with a capture on (`--capture`).
    with_capture: Option<LingerdRun>,
}

/// What `lingerd ctl capture` said at its end.
struct Captured {
    packets: u64,
    dropped: u64,
}

struct LingerdRun {
    closed: usize,
    lost: usize,
    unexpected: usize,
    closes_per_s: f64,
    latency: stats::Latency,
    first_request_ns: u64,
    arrivals: Vec<u64>,
    open_seconds: f64,
    requests: usize,
    request_errors: usize,
    gen_info: String,
    rx_dropped: u64,
    /// Closes the generator counted on the frame (its bare classifier).
    bare_closes: u64,
    /// FINs the dut sent again after the generator answered one.
    fins_again: u64,
    /// The capture that ran during the teardown, if one did.
    captured: Option<Captured>,
    /// Nanoseconds the daemon's core spent in loop iterations that did
    /// work during the teardown (`lingerd_loop_busy_ns_total` before the
    /// closes and after they settled); `None` when the daemon does not
    /// publish it (a build from before the figure, under `--lingerd`).
    daemon_busy_ns: Option<u64>,
}

/// `lingerd-bench lab`.
pub(crate) fn run(args: Args) -> Result<()> {
    ensure!(
        (1..=1_000_000).contains(&args.connections),
        "--connections must be between 1 and 1000000"
    );
    ensure!(
        (0.5..=30.0).contains(&args.ceiling_duration.to_std().as_secs_f64()),
        "--ceiling-duration must be within 500ms..=30s"
    );
    let kernel_n = args
        .kernel_connections
        .unwrap_or(args.connections.min(100_000));
    ensure!(
        (1..=200_000).contains(&kernel_n),
        "--kernel-connections must be between 1 and 200000"
    );
    if cfg!(debug_assertions) {
        progress("warning: debug build; use --release for meaningful figures");
    }
    let exe = std::env::current_exe()?;
    let lingerd = lingerd_bin(args.lingerd.as_deref())?;
    stop_on_signals()?;
    let m = match args.port {
        PortArg::Afxdp => {
            ensure!(
                args.max_busy.is_none() && !args.allow_busy,
                "--max-busy and --allow-busy are for --port dpdk (memif busy-polls; AF_XDP's \
                 veth figure does not depend on idle cores)"
            );
            on_lab_for(
                args.id.as_deref(),
                "lb",
                args.keep_lab,
                args.family,
                |lab, scratch| measure_all(&args, lab, scratch, &exe, &lingerd, kernel_n),
            )?
        }
        PortArg::Dpdk => {
            ensure!(
                args.id.is_none()
                    && !args.keep_lab
                    && args.kernel_connections.is_none()
                    && args.capture.is_none(),
                "--id, --keep-lab, --kernel-connections and --capture are for --port afxdp: the \
                 memif lab makes no namespace and has no kernel baseline"
            );
            ensure!(
                args.ceiling_duration.to_std() >= Duration::from_secs(1),
                "--ceiling-duration must be at least 1s with --port dpdk"
            );
            measure_dpdk(&args, &exe, &lingerd)?
        }
    };
    report(&args, &m)
}

#[cfg(not(feature = "dpdk"))]
fn measure_dpdk(_args: &Args, _exe: &Path, _lingerd: &Path) -> Result<Measured> {
    anyhow::bail!(
        "this lingerd-bench was built without the `dpdk` feature: build it (and lingerd) with \
         --features dpdk for --port dpdk"
    )
}

/// `--port dpdk`: the idle check, this process's EAL (shut down on every
/// exit path), the memif ceiling, then lingerd on memif.
#[cfg(feature = "dpdk")]
fn measure_dpdk(args: &Args, exe: &Path, lingerd: &Path) -> Result<Measured> {
    use lingerd_dataplane::port::dpdk::{Eal, EalConfig};

    use crate::dpdk_ceiling;

    /// Shuts the EAL down when dropped (after the ports and threads,
    /// which the run drops first): the runtime directory goes with it.
    struct EalStop(&'static Eal);
    impl Drop for EalStop {
        fn drop(&mut self) {
            if let Err(e) = self.0.shutdown() {
                progress(format!("warning: DPDK shutdown: {e}"));
            }
        }
    }

    let max_busy = args.max_busy.unwrap_or(MAX_BUSY);
    let sp = spinner("idle");
    sp.set_message("a second of what other processes use (memif busy-polls both cores)");
    let check = dpdk_ceiling::idle_check(max_busy, args.allow_busy);
    sp.finish_and_clear();
    let check = check?;
    progress(format!(
        "other processes use {:.2} CPUs ({})",
        check.busy,
        if check.idle {
            "idle"
        } else {
            "BUSY: figures are low, ratios within this run only"
        }
    ));
    let scratch = tempfile::Builder::new()
        .prefix("lingerd-memif-lab-")
        .tempdir()?;
    // The release profile aborts on panic: no guard would run.
    memif::undo_on_panic();
    memif::remove_on_panic(scratch.path());
    let eal = Eal::init(&EalConfig::default())?;
    let _eal = EalStop(eal);
    let (gen_cpu, dut_cpu) = (
        generator_cpu().context("no CPU for the load generator beside the daemon's")?,
        lingerd_bench::lab::setup::DUT_CORE,
    );

    let sp = spinner("ceiling");
    sp.set_message(format!(
        "memif ceiling: RSTs from CPU {gen_cpu} to CPU {dut_cpu} for {}",
        args.ceiling_duration
    ));
    let c = dpdk_ceiling::measure(
        eal,
        "net_memif0",
        scratch.path(),
        gen_cpu,
        dut_cpu,
        args.ceiling_duration,
    )
    .inspect_err(|_| sp.finish_and_clear())?;
    sp.finish_with_message(format!(
        "{:.0} pps (median of whole seconds {:.0}; others used {:.2} CPUs)",
        c.got.pps(),
        c.got.median_pps(),
        c.others_during
    ));
    check_interrupted()?;
    let mut m = Measured {
        ceiling: Ceiling::Memif {
            pps: c.got.pps(),
            median_pps: c.got.median_pps(),
            idle: check.idle,
            others_before: check.busy,
            others_during: c.others_during,
        },
        kernel: None,
        lingerd: None,
        with_capture: None,
    };
    let socket = scratch.path().join("memif.sock");
    let side = loadgen::Side::Dpdk {
        eal,
        device: lingerd_bench::lab::memif::loadgen_device(&socket),
    };
    let place = DutPlace::Memif { socket: &socket };
    match run_lingerd(args, place, side, scratch.path(), exe, lingerd, None) {
        Ok(l) => m.lingerd = Some(l),
        Err(e) => {
            print_partial(&m);
            return Err(e);
        }
    }
    Ok(m)
}

fn measure_all(
    args: &Args,
    lab: &Lab,
    scratch: &Path,
    exe: &Path,
    lingerd: &Path,
    kernel_n: usize,
) -> Result<Measured> {
    let sp = spinner("ceiling");
    sp.set_message("AF_XDP TX ceiling on the dut's veth (port, then bare xsk-rs)");
    let (port, bare) = xsk_ceiling::ceiling(
        lab,
        args.family,
        args.ceiling_duration.to_std().as_secs_f64(),
    )?;
    sp.finish_with_message(format!(
        "bare {:.0} pps, port {:.0} pps",
        bare.pps(),
        port.pps()
    ));
    let sp = spinner("fair ceiling");
    sp.set_message("bare xsk-rs sender, counted by the load generator's AF_XDP receive path");
    let fair = xsk_ceiling::fair_ceiling(
        lab,
        args.family,
        args.ceiling_duration.to_std().as_secs_f64(),
        generator_cpu(),
    )
    .inspect_err(|_| sp.finish_and_clear())?;
    sp.finish_with_message(format!(
        "{:.0} pps (sent {}, counted {})",
        fair.pps(),
        fair.sent,
        fair.received
    ));

    let sp = spinner("kernel");
    let plan = kernel::Plan {
        exe: exe.to_owned(),
        dut_ns: lab.get("LAB_DUT_NS"),
        peer_ns: lab.get("LAB_PEER_NS"),
        dut_addr: lab.dut_addr(args.family),
        connections: kernel_n,
        mode: args.mode,
        scratch: scratch.to_owned(),
        timeout: Duration::from_secs(120),
    };
    let k = kernel::run(&plan, |step| {
        sp.set_message(format!("{kernel_n} sockets: {step}"))
    })?;
    sp.finish_with_message(format!(
        "{:.0} closes/s ({} processes per side)",
        k.closes_per_s, k.processes
    ));
    let kernel_confirmed = k.confirmed(args.mode);
    let mut m = Measured {
        ceiling: Ceiling::Xsk {
            bare_pps: bare.pps(),
            port_pps: port.pps(),
            fair_pps: fair.pps(),
        },
        kernel: Some((k, kernel_confirmed)),
        lingerd: None,
        with_capture: None,
    };
    let side = || -> Result<loadgen::Side> {
        Ok(loadgen::Side::AfXdp {
            ns: lab.get("LAB_PEER_NS"),
            iface: lab.get("LAB_PEER_IF"),
            mac: parse_mac(&lab.get("LAB_PEER_MAC"))?,
        })
    };
    match run_lingerd(
        args,
        DutPlace::Lab(lab),
        side()?,
        scratch,
        exe,
        lingerd,
        None,
    ) {
        Ok(l) => m.lingerd = Some(l),
        Err(e) => {
            print_partial(&m);
            return Err(e);
        }
    }
    if let Some(file) = &args.capture {
        progress(format!(
            "the same teardown with lingerd ctl capture -w {}",
            file.display()
        ));
        let place = DutPlace::Lab(lab);
        m.with_capture = Some(run_lingerd(
            args,
            place,
            side()?,
            scratch,
            exe,
            lingerd,
            Some(file),
        )?);
    }
    Ok(m)
}

fn print_partial(m: &Measured) {
    let ceiling = match m.ceiling {
        Ceiling::Xsk {
            bare_pps,
            port_pps,
            fair_pps,
        } => format!("xsk ceiling {bare_pps:.0} pps (port {port_pps:.0}, fair {fair_pps:.0})"),
        Ceiling::Memif { pps, .. } => format!("memif ceiling {pps:.0} pps"),
    };
    let kernel = match &m.kernel {
        Some((k, confirmed)) => format!(
            "kernel {:.0} closes/s, {confirmed} of {} confirmed by the peer ({} resets, {} EOFs, \
             {} other)",
            k.closes_per_s, k.connections, k.resets, k.eofs, k.other
        ),
        None => "no kernel baseline".into(),
    };
    progress(format!(
        "measured so far: {ceiling}; {kernel}; lingerd figures pending"
    ));
}

fn run_lingerd(
    args: &Args,
    place: DutPlace<'_>,
    side: loadgen::Side,
    scratch: &Path,
    exe: &Path,
    lingerd: &Path,
    capture: Option<&Path>,
) -> Result<LingerdRun> {
    let n = args.connections;
    let ports: Vec<u16> = (0..loadgen::ports_needed(n))
        .map(|i| FIRST_PORT + i as u16)
        .collect();
    // Before the daemon: its EAL runtime directory goes after it is gone.
    let mut eal_dirs = RuntimeDirs::default();
    let metrics = match place {
        // The dut namespace's own loopback.
        DutPlace::Lab(_) => DUT_METRICS,
        // A loopback port free now, in this namespace.
        DutPlace::Memif { .. } => {
            std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?.local_addr()?
        }
    };
    let busy_ns = || sample(&scrape_dut(place, metrics)?, "lingerd_loop_busy_ns_total");
    let mut dut = start_dut(&DutPlan {
        place,
        family: args.family,
        scratch,
        exe,
        lingerd,
        idle: args.idle,
        ports: &ports,
        connections: n,
        mode: args.mode,
        bulk: args.bulk,
        pace: args.pace,
        timer_ports: 0,
        timer_linger: lingerd_abi::vocab::Duration::ZERO,
        metrics: Some(metrics),
        max_rst_per_sec: args.max_rst_per_sec,
    })?;
    if let DutPlace::Memif { .. } = place {
        eal_dirs.add(dut.daemon.pid());
        // Its configuration and client runtime directory.
        if let Some(dir) = dut.daemon.config_file().parent() {
            memif::remove_on_panic(dir);
        }
    }
    let times_file = dut.times_file.clone();

    // The load generator (in the peer namespace on the lab).
    let gen_cfg = loadgen::Config {
        side,
        dut: Addressing::of(args.family).dut,
        dut_ports: ports.clone(),
        connections: n,
        muted: 0,
        open_rate: args.open_rate,
        in_flight: 4096,
        close_on_fin: !args.mode.expects_rst(),
        // The RSTs, or the FINs (answered), are counted on the frame, not
        // through the engine's table (the generator must not be the bound).
        bare_closes: true,
        idle: loadgen::LAB_IDLE,
        cpu: generator_cpu(),
    };
    let generator = LoadGen::start(gen_cfg)?;
    // Open, tear down, settle; whatever its outcome, the generator stops
    // polling (its port open) before the daemon stops, and closes its port
    // after (on memif the side that stays must not poll: see
    // `LoadGen::pause`).
    let ran = open_and_close(
        args,
        &generator,
        &mut dut,
        capture.map(|f| (lingerd, f)),
        &busy_ns,
    );
    generator.pause(Duration::from_secs(10));
    match dut.stop() {
        Some(s) if s.success() => {}
        other => {
            let log = std::fs::read_to_string(scratch.join("lingerd.log")).unwrap_or_default();
            let tail: Vec<&str> = log.lines().rev().take(20).collect();
            progress(format!(
                "warning: the daemon did not stop cleanly ({other:?}); the end of its log:\n{}",
                tail.into_iter().rev().collect::<Vec<_>>().join("\n")
            ));
        }
    }
    let Teardown {
        open_seconds,
        done: v,
        captured,
        daemon_busy_ns,
    } = match ran {
        Ok(r) => r,
        Err(e) if interrupted() => return Err(e),
        Err(e) => {
            let failures = generator.stop().map(|o| o.failures);
            return Err(e.context(format!("connect failures by errno: {failures:?}")));
        }
    };
    drop(eal_dirs);
    let out = generator.stop()?;
    if out.lost() > 0 {
        // What the receiving side saw, to tell a drop on the wire from
        // one in the generator.
        eprintln!(
            "[lingerd-bench] load generator at the end: {:?}; engine {:?}",
            out.port, out.counters
        );
    }

    let times = dut::read_times(&times_file)?;
    let by_key: HashMap<u32, u64> = times.iter().copied().collect();
    let bulk_t = by_key.get(&BULK_KEY).copied();
    let first_request_ns = times.iter().map(|t| t.1).min().unwrap_or(0);
    let want = if args.mode.expects_rst() {
        Seen::Rst
    } else {
        Seen::Fin
    };
    let mut arrivals = Vec::with_capacity(n);
    let mut pairs = Vec::with_capacity(n);
    let mut unexpected = 0;
    for c in out.conns.iter().filter(|c| c.seen != Seen::Open) {
        arrivals.push(c.closed_ns);
        if c.seen != want {
            unexpected += 1;
        }
        if let Some(t) = bulk_t.or_else(|| by_key.get(&c.key()).copied()) {
            pairs.push((t, c.closed_ns));
        }
    }
    arrivals.sort_unstable();
    let last = arrivals.last().copied().unwrap_or(first_request_ns);
    Ok(LingerdRun {
        closed: arrivals.len(),
        lost: out.lost(),
        unexpected,
        closes_per_s: stats::rate(arrivals.len(), first_request_ns, last),
        latency: stats::latency(pairs),
        first_request_ns,
        arrivals,
        open_seconds,
        requests: v[0] as usize,
        request_errors: v[2] as usize,
        gen_info: out.info,
        rx_dropped: out.port.rx_dropped(),
        bare_closes: out.bare_closes,
        fins_again: out.fins_again,
        captured,
        daemon_busy_ns,
    })
}

/// The run's middle: waits for every connection to open, has the client
/// close them all, and waits for the peer to see the closes settle.
/// With `capture` (the lingerd binary and the file), `lingerd ctl capture`
/// runs from just before the closes until they settled. Returns the
/// seconds opening took, the client's `done` report, what the capture
/// said, and the daemon's busy nanoseconds over the teardown (`busy_ns`
/// read once the opening's last work is published and again once the
/// closes' is).
fn open_and_close(
    args: &Args,
    generator: &LoadGen,
    dut: &mut Dut,
    capture: Option<(&Path, &Path)>,
    busy_ns: &dyn Fn() -> Result<u64>,
) -> Result<Teardown> {
    let n = args.connections;
    let p = &generator.progress;
    let open_seconds = open_all(generator, n, args.open_rate)?;
    dut.client
        .expect_rest("accepted", Duration::from_secs(60))?;
    std::thread::sleep(METRICS_SETTLE);
    let busy_before = busy_ns()
        .inspect_err(|e| progress(format!("no daemon busy time: {e:#}")))
        .ok();
    let mut capturing = match capture {
        Some((bin, file)) => Some(start_capture(bin, dut.daemon.config_file(), file)?),
        None => None,
    };

    // Teardown.
    let pb = bar(n as u64, "closing");
    let mut close_limit = Duration::from_secs(60);
    if let Mode::Linger { ms } = args.mode {
        close_limit += Duration::from_millis(u64::from(ms));
    }
    if args.pace > 0 {
        close_limit += Duration::from_secs_f64(n as f64 / f64::from(args.pace));
    }
    if args.max_rst_per_sec > 0 {
        close_limit += Duration::from_secs_f64(n as f64 / f64::from(args.max_rst_per_sec));
    }
    dut.client.say("go")?;
    let close_t0 = Instant::now();
    loop {
        let closed = p.closed.load(Ordering::Relaxed);
        pb.set_position(closed);
        if closed as usize >= n || close_t0.elapsed() > close_limit || generator.finished() {
            break;
        }
        if let Err(e) = check_interrupted() {
            pb.abandon();
            return Err(e);
        }
        std::thread::sleep(loadgen::WATCH);
    }
    pb.finish();
    let v = dut.done()?;
    // Every close request has its completion, but an abort completes when
    // its RST is queued, not when it is on the wire: wait until the peer
    // has seen every connection close, or until nothing new arrived for
    // half a second (at most 10 s), before counting what is lost. Graceful:
    // also let our own FINs be answered before the engine stops.
    let settle_until = Instant::now() + Duration::from_secs(10);
    let (mut seen, mut moved) = (0, Instant::now());
    loop {
        let now_seen = p.closed.load(Ordering::Relaxed);
        if now_seen != seen {
            (seen, moved) = (now_seen, Instant::now());
        }
        if now_seen as usize >= n || moved.elapsed() >= Duration::from_millis(500) {
            break;
        }
        if Instant::now() >= settle_until {
            break;
        }
        check_interrupted()?;
        std::thread::sleep(Duration::from_millis(5));
    }
    if !args.mode.expects_rst() {
        std::thread::sleep(Duration::from_millis(200));
    }
    let captured = match capturing.as_mut() {
        Some(c) => Some(stop_capture(c)?),
        None => None,
    };
    let busy = match busy_before {
        Some(before) => {
            std::thread::sleep(METRICS_SETTLE);
            Some(busy_ns()?.saturating_sub(before))
        }
        None => None,
    };
    Ok(Teardown {
        open_seconds,
        done: v,
        captured,
        daemon_busy_ns: busy,
    })
}

/// What [`open_and_close`] saw.
struct Teardown {
    /// Seconds opening every connection took.
    open_seconds: f64,
    /// The client's `done` report.
    done: [u64; 5],
    /// What the capture said, if one ran.
    captured: Option<Captured>,
    /// The daemon's busy nanoseconds over the teardown, if it publishes
    /// them.
    daemon_busy_ns: Option<u64>,
}

/// The daemon's `/metrics` in the netns lab's dut namespace.
const DUT_METRICS: SocketAddr = SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::LOCALHOST, 9188));

/// How long to wait before reading the daemon's busy time, so that the
/// work before is in the figures it publishes (every 100 ms).
const METRICS_SETTLE: Duration = Duration::from_millis(250);

/// `lingerd ctl capture -w FILE` against the daemon of `config`, every
/// frame, once it says the capture runs.
fn start_capture(bin: &Path, config: &Path, file: &Path) -> Result<Proc> {
    let mut cmd = std::process::Command::new(bin);
    cmd.arg("ctl")
        .arg("--config")
        .arg(config)
        .args(["capture", "-w"])
        .arg(file);
    let p = Proc::spawn(
        "lingerd ctl capture",
        cmd,
        Stderr::Capture,
        Ending::TermThenKill,
    )?;
    let until = Instant::now() + Duration::from_secs(10);
    loop {
        match p.log_line(until) {
            Some(l) if l.contains("capturing on queue") => return Ok(p),
            Some(l) => progress(l),
            None => anyhow::bail!("lingerd ctl capture did not start within 10 s"),
        }
    }
}

/// Ends the capture as Ctrl-C does and reads its closing lines.
fn stop_capture(p: &mut Proc) -> Result<Captured> {
    let (status, stderr) = p.stop();
    ensure!(
        status.is_some_and(|s| s.success()),
        "lingerd ctl capture failed ({status:?}): {stderr}"
    );
    let figure = |suffix: &str| {
        stderr
            .lines()
            .find_map(|l| {
                l.strip_suffix(suffix)
                    .or_else(|| l.split_once(suffix).map(|x| x.0))
            })
            .and_then(|n| n.trim().parse::<u64>().ok())
            .with_context(|| format!("no {suffix:?} in lingerd ctl capture's summary: {stderr}"))
    };
    Ok(Captured {
        packets: figure(" packets captured")?,
        dropped: figure(" copies dropped")?,
    })
}

pub(crate) fn ratio(a: f64, b: f64) -> f64 {
    if b > 0.0 { a / b } else { 0.0 }
}

fn report(args: &Args, m: &Measured) -> Result<()> {
    let l = m.lingerd.as_ref().context("no lingerd run")?;
    let mut r = Report::default();
    r.info(
        "closes_per_s",
        format!("lingerd {} closes/s on the wire (peer-counted)", args.mode),
        l.closes_per_s,
        "/s",
    );
    match m.ceiling {
        Ceiling::Xsk {
            bare_pps,
            port_pps,
            fair_pps,
        } => {
            r.info(
                "xsk_ceiling_pps",
                "AF_XDP TX ceiling (bare xsk-rs, peer-counted)",
                bare_pps,
                "pps",
            );
            r.info(
                "xsk_port_pps",
                "lingerd's AF_XDP port sender (peer-counted)",
                port_pps,
                "pps",
            );
            r.info(
                "fair_ceiling_pps",
                "bare xsk-rs sender, counted by the load generator's receive path",
                fair_pps,
                "pps",
            );
        }
        Ceiling::Memif { pps, .. } => r.info(
            "dpdk_ceiling_pps",
            "memif ceiling, this run (DpdkPort sender, counted by a memif receiver)",
            pps,
            "pps",
        ),
    }
    if let Some((k, _)) = &m.kernel {
        r.info(
            "kernel_closes_per_s",
            format!(
                "Linux close() ({} sockets, {} processes)",
                k.connections, k.processes
            ),
            k.closes_per_s,
            "/s",
        );
    }
    let ceiling_name = match m.ceiling {
        Ceiling::Xsk { .. } => "lingerd ÷ xsk ceiling",
        Ceiling::Memif { .. } => "lingerd ÷ memif ceiling (same run)",
    };
    r.info(
        "ratio_to_ceiling",
        ceiling_name,
        ratio(l.closes_per_s, m.ceiling.pps()),
        "",
    );
    // The daemon's own cost: its core's busy time over the teardown, per
    // close, and as a share of the teardown's span (near 1: the daemon is
    // the bound; well below: something else is, the client or the peer).
    if let Some(busy) = l.daemon_busy_ns {
        let span_ns = l
            .arrivals
            .last()
            .map_or(0, |&t| t.saturating_sub(l.first_request_ns));
        r.info(
            "daemon_busy_ns_per_close",
            "daemon core: busy ns per close (loop iterations that did work)",
            ratio(busy as f64, l.closed as f64),
            "ns",
        );
        r.info(
            "daemon_busy_share",
            "daemon core: busy share of the teardown (first request → last close)",
            ratio(busy as f64, span_ns as f64),
            "",
        );
    }
    if let Ceiling::Xsk { fair_pps, .. } = m.ceiling {
        r.info(
            "ratio_to_fair_ceiling",
            "lingerd ÷ fair ceiling (same receiver)",
            ratio(l.closes_per_s, fair_pps),
            "",
        );
    }
    if args.max_rst_per_sec > 0 {
        // The pacing check of issue 15 as a benchmark: the RSTs' span at
        // the peer (first close request to last arrival) against
        // closes ÷ limit, at most 10% over (and the rate at most 10% over
        // the limit).
        let limit = f64::from(args.max_rst_per_sec);
        let span = l
            .arrivals
            .last()
            .map_or(0.0, |&t| t.saturating_sub(l.first_request_ns) as f64 / 1e9);
        let expect = l.closed as f64 / limit;
        r.info(
            "rst_limit",
            "close.max_rst_per_sec of the daemon",
            limit,
            "/s",
        );
        r.info(
            "rst_span_s",
            format!("first request → last close at the peer (closes ÷ limit: {expect:.2} s)"),
            span,
            "s",
        );
        r.goal(
            "rst_rate_to_limit",
            "closes/s at the peer ÷ limit",
            ratio(l.closes_per_s, limit),
            "",
            Goal::AtMost(1.1),
        );
        r.goal(
            "rst_span_to_expected",
            "RST span ÷ (closes ÷ limit)",
            ratio(span, expect),
            "",
            Goal::AtMost(1.1),
        );
    }
    if let Some(c) = &m.with_capture {
        // Issue 15's capture goal: with capture on, at least 0.7× the
        // rate with it off, both measured in this run.
        r.info(
            "capture_closes_per_s",
            "the same teardown, lingerd ctl capture on (every frame)",
            c.closes_per_s,
            "/s",
        );
        r.goal(
            "capture_ratio",
            "closes/s with capture on ÷ off (same run)",
            ratio(c.closes_per_s, l.closes_per_s),
            "",
            Goal::AtLeast(0.7),
        );
        let (packets, dropped) = c
            .captured
            .as_ref()
            .map_or((0.0, 0.0), |x| (x.packets as f64, x.dropped as f64));
        r.info("capture_packets", "packets the capture wrote", packets, "");
        r.info(
            "capture_copies_dropped",
            "copies the capture dropped (its buffers full; the frames went on)",
            dropped,
            "",
        );
        r.info(
            "capture_lost",
            "capture run: established, never seen closed",
            c.lost as f64,
            "",
        );
    }
    if let Some((k, _)) = &m.kernel {
        let rk = ratio(l.closes_per_s, k.closes_per_s);
        r.info("ratio_to_kernel", "lingerd ÷ kernel", rk, "");
    }
    r.info("p50_us", "request → wire, p50", l.latency.p50_us, "µs");
    r.info("p99_us", "request → wire, p99", l.latency.p99_us, "µs");
    r.info("p999_us", "request → wire, p99.9", l.latency.p999_us, "µs");
    r.info("max_us", "request → wire, max", l.latency.max_us, "µs");
    r.info(
        "connections",
        "connections opened",
        args.connections as f64,
        "",
    );
    r.info("closed", "closes seen by the peer", l.closed as f64, "");
    r.info("lost", "established, never seen closed", l.lost as f64, "");
    r.info(
        "unexpected",
        "closes of the wrong kind (FIN for RST or back)",
        l.unexpected as f64,
        "",
    );
    r.info(
        "open_seconds",
        "time to open every connection",
        l.open_seconds,
        "s",
    );
    if let Some((_, confirmed)) = &m.kernel {
        r.info(
            "kernel_confirmed",
            "kernel closes confirmed by its peer",
            *confirmed as f64,
            "",
        );
    }
    r.info(
        "request_errors",
        "close requests that failed",
        l.request_errors as f64,
        "",
    );
    r.info(
        "peer_rx_dropped",
        "frames the load generator's port dropped",
        l.rx_dropped as f64,
        "",
    );
    r.info(
        "peer_bare_closes",
        "closes the load generator counted on the frame (no engine table work)",
        l.bare_closes as f64,
        "",
    );
    r.info(
        "peer_fins_again",
        "FINs the dut sent again after the generator answered one",
        l.fins_again as f64,
        "",
    );
    println!("{}", r.table());
    if m.kernel.is_none() {
        progress(format!("no kernel baseline: {KERNEL_NOT_COMPARABLE}"));
    }
    progress(format!("load generator: {}", l.gen_info));
    progress(format!("{} close requests", l.requests));
    // For a profile of the teardown alone: `perf record -k CLOCK_MONOTONIC`
    // samples carry these times (`perf report --time START,END`).
    if let (Some(first), Some(last)) = (l.arrivals.first(), l.arrivals.last()) {
        let s = |ns: u64| format!("{}.{:06}", ns / 1_000_000_000, ns % 1_000_000_000 / 1_000);
        progress(format!(
            "teardown on CLOCK_MONOTONIC: first request {}, first close seen {}, last {}",
            s(l.first_request_ns),
            s(*first),
            s(*last)
        ));
    }

    if let Some(path) = &args.svg {
        let mut over_time = vec![Series {
            label: format!("lingerd ({:.0}/s)", l.closes_per_s),
            points: stats::over_time(l.first_request_ns, &l.arrivals, 400),
        }];
        if let Some((k, _)) = &m.kernel {
            over_time.push(Series {
                label: format!(
                    "Linux kernel, {} sockets ({:.0}/s)",
                    k.connections, k.closes_per_s
                ),
                points: stats::over_time(k.t0_ns, &k.arrivals_ns, 400),
            });
        }
        let fig = plot::Figure {
            title: format!(
                "lingerd lab{}: {} connections, {}{}",
                match m.ceiling {
                    Ceiling::Xsk { .. } => "",
                    Ceiling::Memif { .. } => " (DPDK, memif)",
                },
                args.connections,
                args.mode,
                if args.bulk { " (bulk)" } else { "" }
            ),
            over_time,
            cdf: vec![Series {
                label: "lingerd".into(),
                points: l.latency.cdf.clone(),
            }],
            panels: plot::Panel::lab(),
        };
        plot::write_svg(path, &fig)?;
        progress(format!("wrote {}", path.display()));
    }
    if args.json {
        let mut extra = vec![
            ("mode", Value::String(args.mode.to_string())),
            ("family", Value::String(args.family.to_string())),
            ("bulk", Value::Bool(args.bulk)),
            ("pace", Value::from(args.pace)),
        ];
        match &m.ceiling {
            Ceiling::Xsk { .. } => extra.extend([
                ("port", Value::String("afxdp".into())),
                (
                    "dut",
                    Value::String("lingerd run (daemon process) + lingerd client".into()),
                ),
            ]),
            Ceiling::Memif {
                median_pps,
                idle,
                others_before,
                others_during,
                ..
            } => extra.extend([
                ("port", Value::String("dpdk".into())),
                (
                    "dut",
                    Value::String(
                        "lingerd run (daemon process, port: dpdk, memif server) + lingerd client"
                            .into(),
                    ),
                ),
                ("dpdk_ceiling_median_pps", Value::from(median_pps.round())),
                ("idle", Value::Bool(*idle)),
                (
                    "others_cpu_before",
                    Value::from((others_before * 100.0).round() / 100.0),
                ),
                (
                    "others_cpu_during_ceiling",
                    Value::from((others_during * 100.0).round() / 100.0),
                ),
                ("max_busy", Value::from(args.max_busy.unwrap_or(MAX_BUSY))),
                ("xsk_ceiling_pps", Value::Null),
                ("xsk_port_pps", Value::Null),
                ("fair_ceiling_pps", Value::Null),
                ("ratio_to_fair_ceiling", Value::Null),
            ]),
        }
        match &m.kernel {
            Some((k, _)) => extra.push(("kernel_connections", Value::from(k.connections))),
            None => extra.extend([
                ("kernel_closes_per_s", Value::Null),
                ("ratio_to_kernel", Value::Null),
                ("kernel_confirmed", Value::Null),
                ("kernel_connections", Value::Null),
                ("kernel_note", Value::String(KERNEL_NOT_COMPARABLE.into())),
            ]),
        }
        let mut j = r.json(&extra);
        counts_as_integers(
            &mut j,
            &[
                "connections",
                "lost",
                "closed",
                "unexpected",
                "kernel_confirmed",
                "request_errors",
                "peer_bare_closes",
                "peer_fins_again",
                "capture_packets",
                "capture_copies_dropped",
                "capture_lost",
            ],
        );
        println!("{j}");
    }
    // A run that lost connections measured only the closes that arrived:
    // its rate and latency are not figures of the whole teardown.
    ensure!(
        l.lost == 0,
        "{} of {} connections were never seen closed by the peer: closes_per_s and the \
         latency cover only the {} closes that arrived (try --pace)",
        l.lost,
        args.connections,
        l.closed
    );
    if let Some(c) = &m.with_capture {
        ensure!(
            c.lost == 0,
            "the capture run lost {} of {} connections",
            c.lost,
            args.connections
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::net::{Ipv4Addr, SocketAddrV4};
    use std::os::fd::AsFd;
    use std::process::Command;
    use std::sync::mpsc;

    use lingerd_bench::lab::kernel::listener;
    use lingerd_bench::lab::setup::{DUT_CORE, DUT_ENGINE_ADDR};
    use lingerd_config::{ClientExitPolicy, Config, Idle, Listen, Prefix, ZeroCopy};
    use lingerd_dataplane::port::afxdp::IdleMode;
    use lingerd_dataplane::sys::netns;
    use lingerd_lab::proc::{Ending, Proc, Stderr};

    use super::*;

    /// The load generator on its own, against the Linux kernel as the dut
    /// (a correctness test of the generator: every RST is seen, once, and
    /// nothing is lost; no figure is reported).
    #[test]
    #[ignore = "needs root and netns"]
    fn loadgen_sees_every_kernel_rst() {
        kernel_closes("loadgen_sees_every_kernel_rst", "tg", true);
    }

    /// The same with the kernel closing gracefully: every FIN is seen once
    /// and answered by the generator's classifier, and the kernel accepts
    /// the answer (no FIN sent twice, no socket left in FIN-WAIT).
    #[test]
    #[ignore = "needs root and netns"]
    fn loadgen_answers_every_kernel_fin() {
        kernel_closes("loadgen_answers_every_kernel_fin", "tf", false);
    }

    /// 2,000 kernel connections from the generator (bare classifier on),
    /// closed by the kernel with an RST (`abort`) or a FIN.
    fn kernel_closes(test: &str, id: &str, abort: bool) {
        const N: usize = 2000;
        let lab = lingerd_lab::need(test, &lingerd_lab::unique_id(id), 1);
        let dut_ns = lab.get("LAB_DUT_NS");
        let dut_addr: Ipv4Addr = lab.get("LAB_DUT_ADDR").parse().unwrap();
        let (ready_tx, ready_rx) = mpsc::channel();
        let (go_tx, go_rx) = mpsc::channel::<()>();
        let server = std::thread::spawn(move || {
            netns::enter(&dut_ns).unwrap();
            let l = listener(SocketAddrV4::new(dut_addr, FIRST_PORT), 4096).unwrap();
            ready_tx.send(0).unwrap();
            l.set_nonblocking(true).unwrap();
            let mut conns = Vec::new();
            let deadline = Instant::now() + Duration::from_secs(60);
            while conns.len() < N && Instant::now() < deadline {
                match l.accept() {
                    Ok((s, _)) => conns.push(s),
                    Err(_) => std::thread::sleep(Duration::from_millis(1)),
                }
            }
            ready_tx.send(conns.len()).unwrap();
            let _ = go_rx.recv_timeout(Duration::from_secs(60));
            for s in conns {
                if abort {
                    rustix::net::sockopt::set_socket_linger(s.as_fd(), Some(Duration::ZERO))
                        .unwrap();
                }
            }
        });
        ready_rx.recv_timeout(Duration::from_secs(10)).unwrap();
        let generator = LoadGen::start(loadgen::Config {
            side: loadgen::Side::AfXdp {
                ns: lab.get("LAB_PEER_NS"),
                iface: lab.get("LAB_PEER_IF"),
                mac: parse_mac(&lab.get("LAB_PEER_MAC")).unwrap(),
            },
            dut: dut_addr.into(),
            dut_ports: vec![FIRST_PORT],
            connections: N,
            muted: 0,
            open_rate: 20_000,
            in_flight: 512,
            close_on_fin: !abort,
            // The classifier against the kernel's RSTs and FINs.
            bare_closes: true,
            idle: IdleMode::Sleep {
                max: Duration::from_millis(1),
            },
            cpu: generator_cpu(),
        })
        .unwrap();
        assert_eq!(ready_rx.recv_timeout(Duration::from_secs(70)).unwrap(), N);
        let p = &generator.progress;
        let deadline = Instant::now() + Duration::from_secs(30);
        while (p.established.load(Ordering::Relaxed) as usize) < N && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        go_tx.send(()).unwrap();
        server.join().unwrap();
        let deadline = Instant::now() + Duration::from_secs(30);
        while (p.closed.load(Ordering::Relaxed) as usize) < N && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        // Let the kernel take the answers (and retransmit if it did not).
        std::thread::sleep(Duration::from_millis(500));
        let out = generator.stop().unwrap();
        let established = out.conns.iter().filter(|c| c.established).count();
        let want = if abort { Seen::Rst } else { Seen::Fin };
        let seen = out.conns.iter().filter(|c| c.seen == want).count();
        assert_eq!(established, N, "failures {:?}", out.failures);
        assert_eq!(seen, N);
        assert_eq!(out.lost(), 0);
        // Every close counted by the bare classifier, none by the engine.
        assert_eq!(out.bare_closes, N as u64, "{:?}", out.counters);
        assert_eq!(out.fins_again, 0, "the kernel sent FINs again");
        let mut keys: Vec<u32> = out.conns.iter().map(loadgen::Conn::key).collect();
        keys.sort_unstable();
        keys.dedup();
        assert_eq!(keys.len(), N, "every connection has its own key");
        if !abort {
            // Our FIN|ACKs took every kernel socket past FIN-WAIT.
            let o = lab.exec(
                "LAB_DUT_NS",
                "ss",
                &["-Htan", "state", "fin-wait-1", "state", "fin-wait-2"],
            );
            assert!(o.status.success());
            let left = String::from_utf8_lossy(&o.stdout).lines().count();
            assert_eq!(left, 0, "{left} kernel sockets still in FIN-WAIT");
            let o = lab.exec("LAB_DUT_NS", "ss", &["-Htan", "state", "time-wait"]);
            let tw = String::from_utf8_lossy(&o.stdout).lines().count();
            assert_eq!(tw, N, "every kernel socket in TIME-WAIT");
        }
    }

    /// Scale check of the load generator against the real daemon with no
    /// client attached (its `listen:` ports, the admin's), torn down by the
    /// daemon's exit policy (SIGTERM, `on_client_exit: abort`): every
    /// connection opens and the peer sees every RST. Manual (needs a
    /// `lingerd` binary in `$LINGERD_BIN`):
    /// `LINGERD_BIN=target/release/lingerd LAB_N=100000 cargo test --release
    /// -p lingerd-bench --bin lingerd-bench -- --ignored daemon_exit`.
    /// Prints both veths' counters. On 2026-11-21 (main bb19843) it fails:
    /// opening works (100k in 1.1 s), but the daemon exits with RST frames
    /// still in its AF_XDP TX ring (N=5000: 10,001 frames queued, 7,625 left
    /// the dut's veth, no drops; 2,376 RSTs never sent).
    #[test]
    #[ignore = "manual scale check; needs $LINGERD_BIN"]
    fn loadgen_against_the_daemon_exit_policy() {
        let test = "loadgen_against_the_daemon_exit_policy";
        let n: usize = std::env::var("LAB_N").map_or(5000, |v| v.parse().unwrap());
        let bin = lingerd_bin(None).unwrap();
        let lab = lingerd_lab::need(test, &lingerd_lab::unique_id("td"), 1);
        let scratch = tempfile::Builder::new()
            .prefix("lingerd-td-")
            .tempdir()
            .unwrap();
        let dir = scratch.path();
        let ports: Vec<u16> = (0..loadgen::ports_needed(n))
            .map(|i| FIRST_PORT + i as u16)
            .collect();
        let engine = Prefix::new(DUT_ENGINE_ADDR.into(), 24).unwrap();
        let mut config = Config::with_defaults(lab.get("LAB_DUT_IF"), vec![engine]);
        config.queues = vec![0];
        config.cores = vec![DUT_CORE as u32];
        config.listen = ports
            .iter()
            .map(|&port| Listen {
                port,
                backlog: 65535,
            })
            .collect();
        config.tcp.max_connections = u32::try_from((n + 65_536).next_power_of_two()).unwrap();
        config.close.on_client_exit = ClientExitPolicy::Abort;
        config.xdp.zero_copy = ZeroCopy::Off;
        config.xdp.idle = Idle::Sleep;
        config.clients.socket = dir.join("s.sock");
        config.metrics.listen = None;
        std::fs::write(dir.join("d.yaml"), config.to_yaml()).unwrap();
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &lab.get("LAB_DUT_NS")])
            .arg(&bin)
            .args(["run", "--config"])
            .arg(dir.join("d.yaml"));
        let mut daemon = Proc::spawn(
            "lingerd run",
            cmd,
            Stderr::File(&dir.join("log")),
            Ending::TermThenKill,
        )
        .unwrap();
        std::thread::sleep(Duration::from_secs(2));
        assert!(
            daemon.exited().is_none(),
            "{:?}",
            std::fs::read_to_string(dir.join("log"))
        );
        let generator = LoadGen::start(loadgen::Config {
            side: loadgen::Side::AfXdp {
                ns: lab.get("LAB_PEER_NS"),
                iface: lab.get("LAB_PEER_IF"),
                mac: parse_mac(&lab.get("LAB_PEER_MAC")).unwrap(),
            },
            dut: DUT_ENGINE_ADDR.into(),
            dut_ports: ports,
            connections: n,
            muted: 0,
            open_rate: 100_000,
            in_flight: 4096,
            close_on_fin: false,
            bare_closes: false,
            idle: IdleMode::Sleep {
                max: Duration::from_millis(1),
            },
            cpu: generator_cpu(),
        })
        .unwrap();
        let p = &generator.progress;
        let t0 = Instant::now();
        let deadline = t0 + Duration::from_secs(120);
        while (p.established.load(Ordering::Relaxed) as usize) < n
            && p.failed.load(Ordering::Relaxed) == 0
            && Instant::now() < deadline
        {
            std::thread::sleep(Duration::from_millis(50));
        }
        eprintln!(
            "opened {} in {:?}",
            p.established.load(Ordering::Relaxed),
            t0.elapsed()
        );
        let t1 = Instant::now();
        daemon.stop();
        let deadline = Instant::now() + Duration::from_secs(30);
        while (p.closed.load(Ordering::Relaxed) as usize) < n && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        let out = generator.stop().unwrap();
        eprintln!(
            "closed {} after SIGTERM in {:?}; port {:?}",
            out.conns.iter().filter(|c| c.seen == Seen::Rst).count(),
            t1.elapsed(),
            out.port
        );
        eprintln!(
            "{}",
            std::fs::read_to_string(dir.join("log")).unwrap_or_default()
        );
        for (ns, dev) in [
            ("LAB_DUT_NS", lab.get("LAB_DUT_IF")),
            ("LAB_PEER_NS", lab.get("LAB_PEER_IF")),
        ] {
            for cmd in [&["ip", "-s", "link", "show"][..], &["ethtool", "-S"][..]] {
                let mut args: Vec<&str> = cmd[1..].to_vec();
                args.push(&dev);
                let o = lab.exec(ns, cmd[0], &args);
                eprintln!("{ns} {}", String::from_utf8_lossy(&o.stdout));
            }
        }
        assert_eq!(
            out.conns.iter().filter(|c| c.established).count(),
            n,
            "{:?}",
            out.failures
        );
        assert_eq!(out.lost(), 0);
    }
}
