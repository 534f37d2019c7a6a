//! `lingerd-bench gen-lab`: the generator judged on the netns lab against a
//! real server nobody here wrote. It makes a lab, starts the device under
//! test in the dut namespace (the kernel, nginx, HAProxy in HTTP or TCP
//! mode: `generator::dut`), runs `lingerd-bench gen` against it from the
//! peer namespace (a child under `ip netns exec`, so its interface is the
//! namespace's), looks at what the device was left holding (`ss`), then
//! runs the kernel-socket generator (`generator::kernel`) doing the same
//! job against the same device, and reports both sides and their ratio.
//!
//! The device's CPU time is read when `gen` says its close phase begins
//! and when it ends: divided by the confirmed closes, it is the device's
//! CPU time per close. Everything is on one 2-core machine, the device and
//! the generators included: the figures are ratios within one run.
//!
//! It owns the lab (down on every exit path), its scratch directory and
//! the processes it starts; it adds addresses only inside the lab's peer
//! namespace.

use std::io::{BufRead, BufReader, Read};
use std::net::{Ipv4Addr, SocketAddrV4};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use comfy_table::{Table, presets};
use lingerd_bench::generator::dut::{self, Dut, DutConfig, DutKind};
use lingerd_bench::generator::kernel::{self, KernelGenConfig, KernelOutcome};
use lingerd_bench::generator::server::ServerStats;
use lingerd_bench::generator::{CLOSE_PHASE_MARK, Close, PER_PAIR, Rate};
use lingerd_bench::lab::setup::{check_interrupted, stop_on_signals};
use lingerd_lab::Lab;

use crate::lab_cmd::PortArg;
use serde_json::{Value, json};

/// The device's address and port (the lab's dut kernel address).
const DUT_LISTEN: SocketAddrV4 = SocketAddrV4::new(Ipv4Addr::new(198, 18, 0, 1), 80);
/// lingerd's sources start here (held by no kernel).
const GEN_FIRST: u8 = 100;
/// The kernel generator's sources start here (added to the peer's veth).
const KERNEL_FIRST: u8 = 160;
/// The most sources either side may take (the /24 has room for both).
const MAX_SOURCES: usize = 50;

/// Arguments of `gen-lab`.
#[derive(clap::Args, Debug)]
pub(crate) struct Args {
    /// The device under test.
    #[arg(long, value_enum)]
    dut: DutKind,
    /// gen's port: afxdp on the peer's veth, or dpdk (net_af_packet on the
    /// same veth; a build with the dpdk feature).
    #[arg(long, value_enum, default_value = "afxdp")]
    port: PortArg,
    /// Connections each generator opens.
    #[arg(long, default_value_t = 10_000)]
    connections: usize,
    /// The kernel generator's connections (default: --connections).
    #[arg(long)]
    kernel_connections: Option<usize>,
    /// Skip the kernel generator (no ratio is reported).
    #[arg(long)]
    no_kernel: bool,
    /// abort, graceful, linger=DURATION, half or peer.
    #[arg(long, default_value = "abort")]
    close: Close,
    /// lingerd's SYNs per second.
    #[arg(long, default_value = "50k")]
    open_rate: Rate,
    /// lingerd's closes per second.
    #[arg(long, default_value = "1M")]
    close_rate: Rate,
    /// Open and close only: send no request.
    #[arg(long)]
    no_request: bool,
    /// Response size the device is asked for (bytes).
    #[arg(long, default_value_t = 200)]
    response_bytes: u64,
    /// The device's idle timeout (HAProxy `timeout client`, nginx
    /// keepalive, the kernel server's idle close): what `--close peer`
    /// waits for. Default: 1 hour.
    #[arg(long)]
    client_timeout: Option<lingerd_abi::vocab::Duration>,
    /// How long an answer, an acknowledgement or a FIN may take.
    #[arg(long, default_value = "10s")]
    close_timeout: lingerd_abi::vocab::Duration,
    /// Bound on each generator's run.
    #[arg(long, default_value = "10m")]
    duration: lingerd_abi::vocab::Duration,
    /// Print one JSON object as the last line.
    #[arg(long)]
    json: bool,
    /// lingerd's run as an SVG (opens and closes over time, latencies).
    #[arg(long, value_name = "FILE")]
    svg: Option<PathBuf>,
    /// Every frame of lingerd's run, as pcapng (gen --pcap).
    #[arg(long, value_name = "FILE")]
    pcap: Option<PathBuf>,
    /// Lab id (1 to 10 letters or digits); default "gl" + pid.
    #[arg(long)]
    id: Option<String>,
}

/// What `gen` printed, and what the device did meanwhile.
struct GenRun {
    report: Value,
    /// Device CPU time from the close phase's start to the run's end.
    dut_cpu_in_close: Option<Duration>,
}

fn sources(first: u8, n: usize) -> Result<Vec<Ipv4Addr>> {
    let k = n.div_ceil(PER_PAIR).max(1);
    ensure!(
        k <= MAX_SOURCES,
        "{n} connections need {k} source addresses on the lab's /24; at most {MAX_SOURCES}"
    );
    Ok((0..k)
        .map(|i| Ipv4Addr::new(198, 18, 0, first + i as u8))
        .collect())
}

fn range_arg(addrs: &[Ipv4Addr]) -> String {
    match (addrs.first(), addrs.last()) {
        (Some(a), Some(b)) if a == b => format!("{a}/24"),
        (Some(a), Some(b)) => format!("{a}-{b}/24"),
        _ => String::new(),
    }
}

/// The lingerd-bench binary (this one).
fn this_binary() -> Result<PathBuf> {
    std::env::current_exe().context("finding this binary")
}

pub(crate) fn run(args: Args) -> Result<()> {
    stop_on_signals()?;
    lingerd_lab::down_all_on_panic();
    ensure!(
        lingerd_lab::is_root(),
        "gen-lab needs root (network namespaces, XDP)"
    );
    ensure!(args.connections > 0, "--connections must be at least 1");
    let kernel_n = args.kernel_connections.unwrap_or(args.connections);
    ensure!(
        args.connections <= args.dut.max_connections() && kernel_n <= args.dut.max_connections(),
        "{} holds at most {} connections here (the open-files limit is 20,000 per process)",
        args.dut,
        args.dut.max_connections()
    );
    let gen_sources = sources(GEN_FIRST, args.connections)?;
    let kernel_sources = sources(KERNEL_FIRST, kernel_n)?;
    let bin = this_binary()?;
    let id = args
        .id
        .clone()
        .unwrap_or_else(|| lingerd_lab::unique_id("gl"));
    eprintln!("gen-lab: making lab {id}");
    let lab = Lab::up(&id, 1).map_err(|e| anyhow::anyhow!("making the lab: {e}"))?;
    let scratch = tempfile::Builder::new()
        .prefix("lingerd-gen-lab-")
        .tempdir()
        .context("scratch directory")?;
    let dut_ns = lab.get("LAB_DUT_NS");
    let peer_ns = lab.get("LAB_PEER_NS");
    let peer_if = lab.get("LAB_PEER_IF");

    eprintln!("gen-lab: starting {} in {dut_ns}", args.dut);
    let mut device = Dut::start(
        args.dut,
        &DutConfig {
            ns: dut_ns.clone(),
            listen: DUT_LISTEN,
            connections: args.connections.max(kernel_n),
            response_bytes: args.response_bytes,
            client_timeout: args.client_timeout.map(|d| d.to_std()),
            scratch: scratch.path().to_owned(),
            bin: bin.clone(),
        },
    )?;
    let (request, expect) = if args.no_request {
        (None, 0)
    } else {
        let len = device
            .response_len()
            .context("the device's answer length is unknown")?;
        (Some(device.request().to_vec()), len)
    };
    let request_file = scratch.path().join("request");
    if let Some(r) = &request {
        std::fs::write(&request_file, r).context("writing the request file")?;
    }

    // lingerd.
    let mut cmd = Command::new("ip");
    cmd.args(["netns", "exec", &peer_ns])
        .arg(&bin)
        .arg("gen")
        .args(match args.port {
            PortArg::Afxdp => ["--interface".to_owned(), peer_if.clone()],
            PortArg::Dpdk => [
                "--dpdk".to_owned(),
                format!("net_af_packet0,iface={peer_if}"),
            ],
        })
        .args(["--source", &range_arg(&gen_sources)])
        .args(["--target", &DUT_LISTEN.to_string()])
        .args(["--connections", &args.connections.to_string()])
        .args(["--open-rate", &args.open_rate.0.to_string()])
        .args(["--close", &args.close.to_string()])
        .args(["--close-rate", &args.close_rate.0.to_string()])
        .args(["--close-timeout", &args.close_timeout.to_string()])
        .args(["--duration", &args.duration.to_string()])
        .arg("--json");
    if request.is_some() {
        cmd.arg("--request").arg(&request_file);
        cmd.args(["--expect-bytes", &expect.to_string()]);
    }
    if let Some(svg) = &args.svg {
        cmd.arg("--svg").arg(svg);
    }
    if let Some(pcap) = &args.pcap {
        cmd.arg("--pcap").arg(pcap);
    }
    eprintln!(
        "gen-lab: lingerd gen, {} connections, close {}",
        args.connections, args.close
    );
    let ran = run_gen(cmd, &device)?;
    let states = settle(&dut_ns)?;
    let leftover = dut::leftover(&states);
    check_interrupted()?;
    // The kernel server's own counts (the device's for `kernel`, the
    // backend's behind HAProxy; none for nginx).
    let server = device.server_stats().ok();

    // The kernel generator, same job, same device.
    let kernel = if args.no_kernel {
        None
    } else {
        for a in &kernel_sources {
            lab.ip(
                "LAB_PEER_NS",
                &["addr", "add", &format!("{a}/24"), "dev", &peer_if],
            );
        }
        eprintln!(
            "gen-lab: kernel-socket generator, {kernel_n} connections, close {}",
            args.close
        );
        let out = kernel::run(
            &KernelGenConfig {
                ns: peer_ns.clone(),
                sources: kernel_sources.clone(),
                targets: vec![DUT_LISTEN],
                connections: kernel_n,
                request: request.clone(),
                expect_bytes: expect,
                close: args.close,
                close_timeout: args.close_timeout.to_std(),
                timeout: args.duration.to_std(),
                bin: bin.clone(),
            },
            |line| eprintln!("gen-lab: kernel: {line}"),
        )?;
        let states = settle(&dut_ns)?;
        Some((out, dut::leftover(&states)))
    };
    drop(device);
    report(
        &args,
        &ran,
        &states,
        leftover,
        server.as_ref(),
        kernel.as_ref(),
    )
}

/// Runs `gen`, forwarding its progress, sampling the device's CPU time at
/// the close phase's start and at the end.
fn run_gen(mut cmd: Command, device: &Dut) -> Result<GenRun> {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .context("starting lingerd-bench gen")?;
    let stderr = child.stderr.take().context("gen's stderr")?;
    let mut stdout = child.stdout.take().context("gen's stdout")?;
    let cpu_at_close: Mutex<Option<Duration>> = Mutex::new(None);
    let pids = device.pids();
    let mut out = String::new();
    std::thread::scope(|s| -> Result<()> {
        let watcher = s.spawn(|| {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if line == CLOSE_PHASE_MARK {
                    *cpu_at_close.lock().unwrap_or_else(|e| e.into_inner()) =
                        dut::cpu_time_of(&pids).ok();
                }
                eprintln!("  {line}");
            }
        });
        stdout
            .read_to_string(&mut out)
            .context("reading gen's report")?;
        let _ = watcher.join();
        Ok(())
    })?;
    let status = child.wait().context("waiting for gen")?;
    let cpu_end = device.cpu_time().ok();
    print!(
        "{}",
        out.lines()
            .filter(|l| !l.starts_with('{'))
            .fold(String::new(), |a, l| a + l + "\n")
    );
    ensure!(status.success(), "lingerd-bench gen failed ({status})");
    let last = out
        .lines()
        .rev()
        .find(|l| l.starts_with('{'))
        .context("gen printed no JSON report")?;
    let report: Value = serde_json::from_str(last).context("gen's JSON report")?;
    let start = *cpu_at_close.lock().unwrap_or_else(|e| e.into_inner());
    Ok(GenRun {
        report,
        dut_cpu_in_close: match (start, cpu_end) {
            (Some(a), Some(b)) => Some(b.saturating_sub(a)),
            _ => None,
        },
    })
}

/// The device's sockets once they stop changing (at most 10 s).
fn settle(ns: &str) -> Result<std::collections::BTreeMap<String, u64>> {
    let until = Instant::now() + Duration::from_secs(10);
    let mut last = dut::sockets_by_state(ns)?;
    loop {
        std::thread::sleep(Duration::from_millis(300));
        let now = dut::sockets_by_state(ns)?;
        if (now == last && dut::leftover(&now) == 0) || Instant::now() >= until {
            return Ok(now);
        }
        last = now;
    }
}

fn report(
    args: &Args,
    ran: &GenRun,
    states: &std::collections::BTreeMap<String, u64>,
    leftover: u64,
    server: Option<&ServerStats>,
    kernel: Option<&(KernelOutcome, u64)>,
) -> Result<()> {
    let g = &ran.report;
    let num = |k: &str| g.get(k).and_then(Value::as_f64).unwrap_or(0.0);
    let closes_per_s = num("closes_per_s");
    let confirmed = num("confirmed");
    let cpu_per_close_us = ran
        .dut_cpu_in_close
        .filter(|_| confirmed > 0.0)
        .map(|d| d.as_secs_f64() * 1e6 / confirmed);
    let ratio = kernel
        .map(|(k, _)| k.closes_per_s)
        .filter(|&k| k > 0.0)
        .map(|k| closes_per_s / k);
    let mut t = Table::new();
    t.load_style(presets::UTF8_FULL_CONDENSED);
    t.set_header(["", "lingerd gen", "kernel sockets"]);
    let k = kernel.map(|(k, _)| k);
    let kv = |f: &dyn Fn(&KernelOutcome) -> String| k.map_or("-".to_owned(), f);
    t.add_row([
        "connections".to_owned(),
        format!("{}", num("established")),
        kv(&|k| k.established.to_string()),
    ]);
    t.add_row([
        "answered".to_owned(),
        format!("{}", num("answered")),
        kv(&|k| k.answered.to_string()),
    ]);
    t.add_row([
        "closes/s".to_owned(),
        format!("{closes_per_s:.0}"),
        kv(&|k| format!("{:.0}", k.closes_per_s)),
    ]);
    t.add_row([
        "confirmed".to_owned(),
        format!("{confirmed}"),
        kv(&|k| k.confirmed.to_string()),
    ]);
    t.add_row([
        "lost".to_owned(),
        format!("{}", num("lost")),
        kv(&|k| k.lost.to_string()),
    ]);
    t.add_row([
        "device RSTs".to_owned(),
        format!("{}", num("device_rsts")),
        kv(&|k| k.device_resets.to_string()),
    ]);
    t.add_row([
        "device leftover".to_owned(),
        leftover.to_string(),
        kernel.map_or("-".to_owned(), |(_, l)| l.to_string()),
    ]);
    println!(
        "lingerd-bench gen-lab: --dut {} --close {} (device and generators share this machine: \
         compare ratios, not rates)",
        args.dut, args.close
    );
    println!("{t}");
    if let Some(r) = ratio {
        println!("ratio lingerd ÷ kernel closes/s: {r:.2}");
    }
    if let Some(us) = cpu_per_close_us {
        println!("device CPU per close (lingerd's close phase): {us:.2} µs");
    }
    println!("device sockets after lingerd's run: {states:?}");
    if args.json {
        let mut m = serde_json::Map::new();
        m.insert("dut".into(), json!(args.dut.to_string()));
        m.insert("close".into(), json!(args.close.to_string()));
        m.insert(
            "port".into(),
            json!(match args.port {
                PortArg::Afxdp => "afxdp",
                PortArg::Dpdk => "dpdk",
            }),
        );
        m.insert("connections".into(), json!(args.connections));
        for key in [
            "established",
            "answered",
            "closes_per_s",
            "confirmed",
            "lost",
            "device_rsts",
            "timeouts",
            "connect_p50_us",
            "connect_p99_us",
            "connect_p999_us",
            "response_p50_us",
            "response_p99_us",
            "response_p999_us",
            "close_p50_us",
            "close_p99_us",
            "close_p999_us",
            "close_max_us",
            "engine",
        ] {
            if let Some(v) = g.get(key) {
                m.insert(key.into(), v.clone());
            }
        }
        m.insert("dut_leftover".into(), json!(leftover));
        m.insert("dut_states".into(), json!(states));
        m.insert("dut_cpu_us_per_close".into(), json!(cpu_per_close_us));
        if let Some(s) = server.filter(|s| s.accepted > 0) {
            m.insert(
                "dut_server".into(),
                json!({
                    "accepted": s.accepted,
                    "answered": s.answered,
                    "eofs": s.eofs,
                    "resets": s.resets,
                    "errors": s.errors,
                    "idle_closed": s.idle_closed,
                    "open": s.open,
                }),
            );
        }
        if let Some((k, l)) = kernel {
            m.insert("kernel_closes_per_s".into(), json!(k.closes_per_s.round()));
            m.insert("kernel_established".into(), json!(k.established));
            m.insert("kernel_confirmed".into(), json!(k.confirmed));
            m.insert("kernel_lost".into(), json!(k.lost));
            m.insert("kernel_processes".into(), json!(k.processes));
            m.insert("kernel_dut_leftover".into(), json!(l));
            m.insert("ratio_to_kernel".into(), json!(ratio));
        }
        println!("{}", Value::Object(m));
    }
    if leftover > 0 {
        bail!("the device still holds {leftover} connections after lingerd's close phase");
    }
    Ok(())
}
