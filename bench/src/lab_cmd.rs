//! `lingerd-bench lab`: the end-to-end close benchmark on the netns lab.
//!
//! One run, in order, on one lab of its own (`deploy/lab up`, down on every
//! exit path, panics included):
//! 1. the **xsk ceiling**: RST frames through our AF_XDP port and a bare
//!    xsk-rs loop on the dut's veth end, counted at the peer
//!    ([`crate::xsk_ceiling::ceiling`]);
//! 2. the **Linux kernel baseline**: the same teardown by kernel sockets,
//!    server in the dut, clients in the peer ([`lingerd_bench::lab::kernel`]);
//! 3. **lingerd**: the real daemon (`ip netns exec <dut> lingerd run
//!    --config <generated>`), a `lingerd` client attached to it in the dut
//!    ([`lingerd_bench::lab::dut`]) and lingerd itself as the load generator
//!    in the peer ([`lingerd_bench::lab::loadgen`]): N connections opened,
//!    then closed by the client; the peer timestamps each RST/FIN.
//!
//! `closes_per_s` is closes seen on the wire ÷ (last arrival − first close
//! request); latency is request → arrival per connection (one request for
//! `--bulk`), both on `CLOCK_MONOTONIC`. `lost` counts established
//! connections the peer never saw closed. Progress bars go to stderr, the
//! table then (with `--json`) one JSON object to stdout.
//!
//! It owns the lab, its scratch directory, and the processes and threads it
//! starts (each stopped when dropped); it touches no other namespace and no
//! address outside 198.18.0.0/15.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, ensure};
use lingerd_bench::lab::dut::{self, BULK_KEY};
use lingerd_bench::lab::loadgen::{self, LoadGen, Seen};
use lingerd_bench::lab::plot::{self, Series};
use lingerd_bench::lab::{Mode, kernel, stats};
use lingerd_bench::measure::progress;
use lingerd_bench::report::{Report, counts_as_integers};
use lingerd_dataplane::port::afxdp::IdleMode;
use serde_json::Value;

use lingerd_lab::Lab;

use lingerd_bench::lab::setup::{
    DUT_ENGINE_ADDR, DutPlan, FIRST_PORT, Idle, bar, generator_cpu, lingerd_bin, on_lab, open_all,
    spinner, start_dut,
};

use crate::xsk_ceiling::{self, parse_mac};

/// Arguments of `lab`.
#[derive(clap::Args, Debug)]
pub(crate) struct Args {
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
    /// Print one JSON object as the last line.
    #[arg(long)]
    json: bool,
    /// Write closes over time and the latency CDF to this SVG.
    #[arg(long, value_name = "FILE")]
    svg: Option<PathBuf>,
    /// Lab id (1 to 10 letters or digits); default "lb" + pid.
    #[arg(long)]
    id: Option<String>,
    /// Leave the lab (and the scratch directory) up at the end, for debugging.
    #[arg(long)]
    keep_lab: bool,
    /// The daemon's idle mode during the run.
    #[arg(long, value_enum, default_value = "busy")]
    idle: Idle,
    /// Kernel baseline size (default: min(connections, 100000)).
    #[arg(long)]
    kernel_connections: Option<usize>,
    /// SYNs per second of the load generator.
    #[arg(long, default_value_t = 100_000)]
    open_rate: u32,
    /// How long each xsk-ceiling sender runs, 500ms to 30s.
    #[arg(long, default_value = "2s")]
    ceiling_duration: lingerd_abi::vocab::Duration,
    /// The lingerd binary (default: `lingerd` beside this one, or $LINGERD_BIN).
    #[arg(long)]
    lingerd: Option<PathBuf>,
}

/// Everything one run measured, for the report.
struct Measured {
    ceiling_pps: f64,
    port_pps: f64,
    kernel: kernel::KernelResult,
    kernel_confirmed: u64,
    lingerd: Option<LingerdRun>,
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
    let m = on_lab(args.id.as_deref(), "lb", args.keep_lab, |lab, scratch| {
        measure_all(&args, lab, scratch, &exe, &lingerd, kernel_n)
    })?;
    report(&args, &m)
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
    let (port, bare) = xsk_ceiling::ceiling(lab, args.ceiling_duration.to_std().as_secs_f64())?;
    sp.finish_with_message(format!(
        "bare {:.0} pps, port {:.0} pps",
        bare.pps(),
        port.pps()
    ));

    let sp = spinner("kernel");
    let plan = kernel::Plan {
        exe: exe.to_owned(),
        dut_ns: lab.get("LAB_DUT_NS"),
        peer_ns: lab.get("LAB_PEER_NS"),
        dut_addr: lab.get("LAB_DUT_ADDR").parse()?,
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
        ceiling_pps: bare.pps(),
        port_pps: port.pps(),
        kernel: k,
        kernel_confirmed,
        lingerd: None,
    };
    match run_lingerd(args, lab, scratch, exe, lingerd) {
        Ok(l) => m.lingerd = Some(l),
        Err(e) => {
            print_partial(&m);
            return Err(e);
        }
    }
    Ok(m)
}

fn print_partial(m: &Measured) {
    progress(format!(
        "measured so far: xsk ceiling {:.0} pps (port {:.0}); kernel {:.0} closes/s, \
         {} of {} confirmed by the peer ({} resets, {} EOFs, {} other); lingerd figures pending",
        m.ceiling_pps,
        m.port_pps,
        m.kernel.closes_per_s,
        m.kernel_confirmed,
        m.kernel.connections,
        m.kernel.resets,
        m.kernel.eofs,
        m.kernel.other
    ));
}

fn run_lingerd(
    args: &Args,
    lab: &Lab,
    scratch: &Path,
    exe: &Path,
    lingerd: &Path,
) -> Result<LingerdRun> {
    let n = args.connections;
    let ports: Vec<u16> = (0..loadgen::ports_needed(n))
        .map(|i| FIRST_PORT + i as u16)
        .collect();
    let mut dut = start_dut(&DutPlan {
        lab,
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
        metrics: None,
    })?;
    let times_file = dut.times_file.clone();

    // The load generator, in the peer namespace.
    let gen_cfg = loadgen::Config {
        side: loadgen::Side::AfXdp {
            ns: lab.get("LAB_PEER_NS"),
            iface: lab.get("LAB_PEER_IF"),
            mac: parse_mac(&lab.get("LAB_PEER_MAC"))?,
        },
        dut: DUT_ENGINE_ADDR,
        dut_ports: ports.clone(),
        connections: n,
        muted: 0,
        open_rate: args.open_rate,
        in_flight: 4096,
        close_on_fin: !args.mode.expects_rst(),
        idle: IdleMode::Sleep {
            max: Duration::from_millis(1),
        },
        cpu: generator_cpu(),
    };
    let generator = LoadGen::start(gen_cfg)?;
    let p = &generator.progress;
    let open_seconds = match open_all(&generator, n, args.open_rate) {
        Ok(s) => s,
        Err(e) => return Err(e.context(format!("{:?}", generator.stop().map(|o| o.failures)))),
    };
    dut.client
        .expect_rest("accepted", Duration::from_secs(60))?;

    // Teardown.
    let pb = bar(n as u64, "closing");
    let mut close_limit = Duration::from_secs(60);
    if let Mode::Linger { ms } = args.mode {
        close_limit += Duration::from_millis(u64::from(ms));
    }
    if args.pace > 0 {
        close_limit += Duration::from_secs_f64(n as f64 / f64::from(args.pace));
    }
    dut.client.say("go")?;
    let close_t0 = Instant::now();
    loop {
        let closed = p.closed.load(Ordering::Relaxed);
        pb.set_position(closed);
        if closed as usize >= n || close_t0.elapsed() > close_limit || generator.finished() {
            break;
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
        let now_seen = generator.progress.closed.load(Ordering::Relaxed);
        if now_seen != seen {
            (seen, moved) = (now_seen, Instant::now());
        }
        if now_seen as usize >= n || moved.elapsed() >= Duration::from_millis(500) {
            break;
        }
        if Instant::now() >= settle_until {
            break;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    if !args.mode.expects_rst() {
        std::thread::sleep(Duration::from_millis(200));
    }
    let out = generator.stop()?;
    if out.lost() > 0 {
        // What the receiving side saw, to tell a drop on the wire from
        // one in the generator.
        eprintln!(
            "[lingerd-bench] load generator at the end: {:?}; engine {:?}",
            out.port, out.counters
        );
    }
    dut.stop();

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
    r.info(
        "xsk_ceiling_pps",
        "AF_XDP TX ceiling (bare xsk-rs, peer-counted)",
        m.ceiling_pps,
        "pps",
    );
    r.info(
        "xsk_port_pps",
        "lingerd's AF_XDP port sender (peer-counted)",
        m.port_pps,
        "pps",
    );
    r.info(
        "kernel_closes_per_s",
        format!(
            "Linux close() ({} sockets, {} processes)",
            m.kernel.connections, m.kernel.processes
        ),
        m.kernel.closes_per_s,
        "/s",
    );
    let rc = ratio(l.closes_per_s, m.ceiling_pps);
    let rk = ratio(l.closes_per_s, m.kernel.closes_per_s);
    r.info("ratio_to_ceiling", "lingerd ÷ xsk ceiling", rc, "");
    r.info("ratio_to_kernel", "lingerd ÷ kernel", rk, "");
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
    r.info(
        "kernel_confirmed",
        "kernel closes confirmed by its peer",
        m.kernel_confirmed as f64,
        "",
    );
    r.info(
        "request_errors",
        "close requests that failed",
        l.request_errors as f64,
        "",
    );
    r.info(
        "peer_rx_dropped",
        "frames the load generator's socket dropped",
        l.rx_dropped as f64,
        "",
    );
    println!("{}", r.table());
    progress(format!("load generator: {}", l.gen_info));
    progress(format!("{} close requests", l.requests));

    if let Some(path) = &args.svg {
        let kernel_series = stats::over_time(m.kernel.t0_ns, &m.kernel.arrivals_ns, 400);
        let fig = plot::Figure {
            title: format!(
                "lingerd lab: {} connections, {}{}",
                args.connections,
                args.mode,
                if args.bulk { " (bulk)" } else { "" }
            ),
            over_time: vec![
                Series {
                    label: format!("lingerd ({:.0}/s)", l.closes_per_s),
                    points: stats::over_time(l.first_request_ns, &l.arrivals, 400),
                },
                Series {
                    label: format!(
                        "Linux kernel, {} sockets ({:.0}/s)",
                        m.kernel.connections, m.kernel.closes_per_s
                    ),
                    points: kernel_series,
                },
            ],
            cdf: vec![Series {
                label: "lingerd".into(),
                points: l.latency.cdf.clone(),
            }],
        };
        plot::write_svg(path, &fig)?;
        progress(format!("wrote {}", path.display()));
    }
    if args.json {
        let mut j = r.json(&[
            ("mode", Value::String(args.mode.to_string())),
            ("bulk", Value::Bool(args.bulk)),
            ("pace", Value::from(args.pace)),
            ("kernel_connections", Value::from(m.kernel.connections)),
            (
                "dut",
                Value::String("lingerd run (daemon process) + lingerd client".into()),
            ),
        ]);
        counts_as_integers(
            &mut j,
            &[
                "connections",
                "lost",
                "closed",
                "unexpected",
                "kernel_confirmed",
                "request_errors",
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
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::net::{Ipv4Addr, SocketAddrV4};
    use std::os::fd::AsFd;
    use std::process::Command;
    use std::sync::mpsc;

    use lingerd_bench::lab::kernel::listener;
    use lingerd_bench::lab::setup::DUT_CORE;
    use lingerd_config::{ClientExitPolicy, Config, Idle, Listen, Prefix, ZeroCopy};
    use lingerd_dataplane::sys::netns;
    use lingerd_lab::proc::{Ending, Proc, Stderr};

    use super::*;

    /// The load generator on its own, against the Linux kernel as the dut
    /// (a correctness test of the generator: every RST is seen, once, and
    /// nothing is lost; no figure is reported).
    #[test]
    #[ignore = "needs root and netns"]
    fn loadgen_sees_every_kernel_rst() {
        const N: usize = 2000;
        let test = "loadgen_sees_every_kernel_rst";
        let lab = lingerd_lab::need(test, &lingerd_lab::unique_id("tg"), 1);
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
                rustix::net::sockopt::set_socket_linger(s.as_fd(), Some(Duration::ZERO)).unwrap();
            }
        });
        ready_rx.recv_timeout(Duration::from_secs(10)).unwrap();
        let generator = LoadGen::start(loadgen::Config {
            side: loadgen::Side::AfXdp {
                ns: lab.get("LAB_PEER_NS"),
                iface: lab.get("LAB_PEER_IF"),
                mac: parse_mac(&lab.get("LAB_PEER_MAC")).unwrap(),
            },
            dut: dut_addr,
            dut_ports: vec![FIRST_PORT],
            connections: N,
            muted: 0,
            open_rate: 20_000,
            in_flight: 512,
            close_on_fin: false,
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
        let out = generator.stop().unwrap();
        let established = out.conns.iter().filter(|c| c.established).count();
        let rst = out.conns.iter().filter(|c| c.seen == Seen::Rst).count();
        assert_eq!(established, N, "failures {:?}", out.failures);
        assert_eq!(rst, N);
        assert_eq!(out.lost(), 0);
        let mut keys: Vec<u32> = out.conns.iter().map(loadgen::Conn::key).collect();
        keys.sort_unstable();
        keys.dedup();
        assert_eq!(keys.len(), N, "every connection has its own key");
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
            dut: DUT_ENGINE_ADDR,
            dut_ports: ports,
            connections: n,
            muted: 0,
            open_rate: 100_000,
            in_flight: 4096,
            close_on_fin: false,
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
