//! `lingerd-bench transfer`: echo goodput through the lab's impairment
//! stage. A kernel client in the peer namespace writes N bytes and reads
//! them back, first from a kernel echo server in the dut namespace, then
//! from lingerd (the daemon on the dut veth, an echo client of this
//! process attached to it), across the same stage (`--impair`, seeded) in
//! the same run; the ratio of the two goodputs is the figure.
//!
//! It owns the lab (an impaired one, down on every exit path), the daemon
//! it starts and the threads it spawns; it reads the daemon's `/metrics`
//! for retransmissions and out-of-order segments kept. Nothing outside the
//! lab's namespaces and 198.18.0.0/15.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, TcpListener, TcpStream};
use std::path::PathBuf;
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use lingerd_bench::lab::setup::{DUT_ENGINE_ADDR, lingerd_bin, sample, scrape_metrics};
use lingerd_bench::measure::progress;
use lingerd_client::{Client, Errno};
use lingerd_config::{Config, Idle, Prefix, ZeroCopy};
use lingerd_dataplane::sys::netns;
use lingerd_lab::Lab;
use lingerd_lab::daemon::{Daemon, Launch};
use lingerd_lab::proc::Stderr;
use rustix::net::sockopt;
use serde_json::{Value, json};

/// The kernel echo server's port (on the dut's kernel address).
const KERNEL_PORT: u16 = 7001;
/// lingerd's echo port (on the engine's address).
const LINGERD_PORT: u16 = 7002;
/// Where the daemon serves `/metrics`, inside the dut namespace.
const METRICS: SocketAddr = SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::LOCALHOST, 9187));

/// Arguments of `transfer`.
#[derive(clap::Args, Debug)]
pub(crate) struct Args {
    /// The impairment, in `deploy/lab up --impair` grammar.
    #[arg(long, default_value = "loss 1% reorder 5% delay 10ms")]
    impair: String,
    /// The stage's seed (the same seed replays the same fates).
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Bytes echoed in each run (1 KiB to 1 GiB).
    #[arg(long, default_value_t = 8 << 20)]
    bytes: usize,
    /// How long each run may take.
    #[arg(long, default_value = "300s")]
    timeout: lingerd_abi::vocab::Duration,
    /// Print one JSON object as the last line.
    #[arg(long)]
    json: bool,
    /// Lab id (1 to 10 letters or digits); default "tr" + pid.
    #[arg(long)]
    id: Option<String>,
    /// The lingerd binary (default: `lingerd` beside this one, or $LINGERD_BIN).
    #[arg(long)]
    lingerd: Option<PathBuf>,
    /// Run the daemon's core busy-polling instead of asleep when idle (no
    /// wakeups at all; it takes one of the two CPUs the stage and the
    /// client share).
    #[arg(long)]
    busy_poll: bool,
    /// The kernel ends' congestion control (one of
    /// net.ipv4.tcp_available_congestion_control: cubic, reno, bbr…), set
    /// on the kernel client in both runs and on the kernel echo server.
    /// The default is Linux's own default, whatever this host's sysctl
    /// says, so that runs on different hosts compare. A loss-agnostic one
    /// (bbr) keeps its rate through random loss that halves a loss-based
    /// one's (lingerd's NewReno, cubic, reno).
    #[arg(long, value_name = "NAME", default_value = "cubic")]
    kernel_cc: String,
}

/// The byte at offset `i` of the stream (any misplaced byte shows).
fn pattern(i: usize) -> u8 {
    (i % 65_521 % 251) as u8
}

/// One run's outcome at the kernel client.
struct Run {
    seconds: f64,
    mismatched: usize,
    /// The kernel client's congestion control, as its socket reported it.
    cc: String,
}

impl Run {
    /// Bytes per second, both ways counted once (N bytes there and back).
    fn goodput(&self, bytes: usize) -> f64 {
        bytes as f64 / self.seconds.max(1e-9)
    }
}

/// Runs `f` on a thread inside namespace `ns`.
fn in_ns<T: Send + 'static>(
    ns: String,
    f: impl FnOnce() -> Result<T> + Send + 'static,
) -> thread::JoinHandle<Result<T>> {
    thread::spawn(move || {
        netns::enter(&ns).with_context(|| format!("entering {ns}"))?;
        f()
    })
}

/// The kernel client: connects to `to`, writes `n` bytes while reading
/// them back, and compares.
fn client(
    ns: String,
    to: SocketAddrV4,
    n: usize,
    limit: Duration,
    cc: String,
) -> thread::JoinHandle<Result<Run>> {
    in_ns(ns, move || {
        let s = TcpStream::connect_timeout(&to.into(), Duration::from_secs(10))
            .with_context(|| format!("connect to {to}"))?;
        // Before the first byte: the whole transfer runs under it.
        set_congestion(&s, &cc)?;
        let cc = sockopt::tcp_congestion(&s).context("reading TCP_CONGESTION")?;
        s.set_read_timeout(Some(limit))?;
        s.set_write_timeout(Some(limit))?;
        let t0 = Instant::now();
        let mut w = s.try_clone()?;
        let writer = thread::spawn(move || -> std::io::Result<()> {
            let data: Vec<u8> = (0..n).map(pattern).collect();
            w.write_all(&data)
        });
        let mut back = vec![0u8; n];
        (&s).read_exact(&mut back)
            .with_context(|| format!("reading the echo from {to}"))?;
        let seconds = t0.elapsed().as_secs_f64();
        writer
            .join()
            .map_err(|_| anyhow::anyhow!("writer panicked"))?
            .context("writing")?;
        let mismatched = back
            .iter()
            .enumerate()
            .filter(|&(i, &b)| b != pattern(i))
            .count();
        Ok(Run {
            seconds,
            mismatched,
            cc,
        })
    })
}

/// Sets `s`'s congestion control to `name`, saying what the host offers
/// when it is not there.
fn set_congestion(s: &TcpStream, name: &str) -> Result<()> {
    sockopt::set_tcp_congestion(s, name).with_context(|| {
        let offered =
            std::fs::read_to_string("/proc/sys/net/ipv4/tcp_available_congestion_control")
                .unwrap_or_default();
        format!(
            "congestion control {name:?} (this host offers: {})",
            offered.trim()
        )
    })
}

/// Kernel ↔ kernel: an echo server on the dut's kernel address.
fn kernel_run(lab: &Lab, args: &Args, limit: Duration) -> Result<Run> {
    let dut_addr: Ipv4Addr = lab.get("LAB_DUT_ADDR").parse().context("LAB_DUT_ADDR")?;
    let at = SocketAddrV4::new(dut_addr, KERNEL_PORT);
    let listener = in_ns(lab.get("LAB_DUT_NS"), move || {
        TcpListener::bind(at).with_context(|| format!("listening on {at}"))
    })
    .join()
    .map_err(|_| anyhow::anyhow!("listener panicked"))??;
    let cc = args.kernel_cc.clone();
    let server = thread::spawn(move || -> Result<()> {
        let (mut s, _) = listener.accept()?;
        set_congestion(&s, &cc)?;
        s.set_read_timeout(Some(limit))?;
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = s.read(&mut buf)?;
            if n == 0 {
                return Ok(());
            }
            s.write_all(&buf[..n])?;
        }
    });
    let run = client(
        lab.get("LAB_PEER_NS"),
        at,
        args.bytes,
        limit,
        args.kernel_cc.clone(),
    )
    .join()
    .map_err(|_| anyhow::anyhow!("client panicked"))??;
    // The client's socket is closed: the server sees EOF and ends.
    let _ = server.join();
    Ok(run)
}

/// The daemon's configuration: one queue on the dut veth, sleep mode unless `--busy-poll` (the
/// stage and the client share the two CPUs), `/metrics` on loopback.
fn daemon_config(lab: &Lab, busy_poll: bool) -> Result<Config> {
    let engine = Prefix::new(DUT_ENGINE_ADDR.into(), 24).context("a /24")?;
    let mut c = Config::with_defaults(lab.get("LAB_DUT_IF"), vec![engine]);
    c.queues = vec![0];
    c.cores = vec![1];
    // The kernel's own ceiling for a send buffer (net.ipv4.tcp_wmem's
    // default maximum, 4 MiB), and a receive buffer as large: the kernel
    // pair autotunes its buffers to these sizes over a clean 10 ms path,
    // and 1 MiB capped lingerd at about 30 MB/s there.
    c.tcp.send_buffer = 4 << 20;
    c.tcp.recv_buffer = 4 << 20;
    // A whole window may wait behind one hole (twice the window, as the
    // default is twice the default window).
    c.tcp.reassembly_per_connection = 8 << 20;
    c.tcp.reassembly_per_core = 32 << 20;
    c.tcp.window_shift = 7;
    // The echo client's writes as large as the kernel echo server's (64 KiB
    // reads, each written whole): a send is one request and one answer per
    // chunk, so 2 KiB chunks made every 64 KiB a train of 32 round trips to
    // the daemon's core. Received data still arrives a segment per RX
    // chunk, so those stay many.
    c.clients.chunk_size = 64 << 10;
    c.clients.tx_chunks = 256;
    c.clients.rx_chunks = 4096;
    c.xdp.zero_copy = ZeroCopy::Off;
    c.xdp.idle = if busy_poll { Idle::Busy } else { Idle::Sleep };
    c.metrics.listen = Some(METRICS);
    Ok(c)
}

/// Kernel client ↔ lingerd: the daemon, and an echo client attached to it.
fn lingerd_run(lab: &Lab, args: &Args, limit: Duration) -> Result<(Run, String)> {
    let bin = lingerd_bin(args.lingerd.as_deref())?;
    let config = daemon_config(lab, args.busy_poll)?;
    let mut daemon = Daemon::start(
        lab,
        &Launch {
            bin: &bin,
            config: &config,
            env: &[],
            stderr: Stderr::Capture,
        },
    )
    .map_err(anyhow::Error::msg)?;
    let mut app = Client::attach(daemon.socket()).map_err(|e| anyhow::anyhow!("attach: {e}"))?;
    let listener = app
        .listen(LINGERD_PORT, 16)
        .map_err(|e| anyhow::anyhow!("listen: {e:?}"))?;
    let to = SocketAddrV4::new(DUT_ENGINE_ADDR, LINGERD_PORT);
    let kernel = client(
        lab.get("LAB_PEER_NS"),
        to,
        args.bytes,
        limit,
        args.kernel_cc.clone(),
    );
    let (h, _) = app
        .accept(listener, Duration::from_secs(10))
        .map_err(|e| anyhow::anyhow!("accept: {e:?}"))?;
    let until = Instant::now() + limit;
    let mut buf = vec![0u8; 64 * 1024];
    let mut echoed = 0usize;
    let mut last_report = Instant::now();
    while echoed < args.bytes {
        if Instant::now() > until {
            bail!(
                "lingerd echoed {echoed} of {} bytes within {limit:?}",
                args.bytes
            );
        }
        if kernel.is_finished() {
            break;
        }
        match app.recv(h, &mut buf, Duration::from_millis(5)) {
            Ok(0) => bail!("EOF from the kernel client after {echoed} bytes"),
            Ok(n) => {
                // The send buffer may take only part of it while the
                // connection is behind (recovering, or the window full):
                // the rest goes when room frees up.
                let mut sent = 0;
                while sent < n {
                    ensure!(
                        Instant::now() <= until,
                        "lingerd took {sent} of {n} bytes within {limit:?}"
                    );
                    match app.send(h, &buf[sent..n]) {
                        Ok(k) if k > 0 => sent += k,
                        Ok(_) | Err(Errno::WouldBlock | Errno::NoBufs | Errno::TimedOut) => {
                            thread::sleep(Duration::from_millis(1))
                        }
                        Err(e) => bail!("send: {e:?}"),
                    }
                }
                echoed += n;
            }
            Err(Errno::WouldBlock | Errno::TimedOut) => {}
            Err(e) => bail!("recv: {e:?}"),
        }
        if last_report.elapsed() > Duration::from_secs(5) {
            progress(format!("lingerd: {echoed} of {} bytes echoed", args.bytes));
            last_report = Instant::now();
        }
    }
    let run = kernel
        .join()
        .map_err(|_| anyhow::anyhow!("client panicked"))??;
    let metrics = scrape_metrics(lab, METRICS)?;
    let _ = app.abort(h);
    drop(app);
    let (status, stderr) = daemon.stop();
    ensure!(
        status.is_some_and(|s| s.success()),
        "lingerd exited {status:?}: {stderr}"
    );
    Ok((run, metrics))
}

/// `lingerd-bench transfer`.
pub(crate) fn run(args: Args) -> Result<()> {
    ensure!(
        (1024..=1 << 30).contains(&args.bytes),
        "--bytes must be between 1024 and 1073741824"
    );
    let limit = args.timeout.to_std();
    let id = args
        .id
        .clone()
        .unwrap_or_else(|| format!("tr{}", std::process::id() % 100_000_000));
    lingerd_lab::down_all_on_panic();
    progress(format!(
        "lab {id} with the stage {:?} (seed {})",
        args.impair, args.seed
    ));
    let lab = Lab::up_impaired(&id, 1, &args.impair, Some(args.seed), None)
        .map_err(anyhow::Error::msg)?;
    progress(format!("kernel <-> kernel: {} bytes echoed", args.bytes));
    let kernel = kernel_run(&lab, &args, limit)?;
    progress(format!("kernel <-> lingerd: {} bytes echoed", args.bytes));
    let (lingerd, metrics) = lingerd_run(&lab, &args, limit)?;
    let retransmits = sample(&metrics, "lingerd_retransmits_total")?;
    let fast_retransmits = sample(&metrics, "lingerd_fast_retransmits_total")?;
    let ooo_kept = sample(&metrics, "lingerd_ooo_segments_kept_total")?;
    let sack_retransmits = sample(&metrics, "lingerd_sack_retransmits_total")?;
    let sack_blocks_sent = sample(&metrics, "lingerd_sack_blocks_sent_total")?;
    let sack_blocks_received = sample(&metrics, "lingerd_sack_blocks_received_total")?;
    let undone = sample(&metrics, "lingerd_spurious_recoveries_undone_total")?;
    // Absent from a daemon older than tail loss probes (`--lingerd`).
    let probes = sample(&metrics, "lingerd_loss_probes_total").ok();
    let ratio = lingerd.goodput(args.bytes) / kernel.goodput(args.bytes);
    let mismatched = lingerd.mismatched + kernel.mismatched;
    if args.json {
        let j: Value = json!({
            "impair": args.impair,
            "seed": args.seed,
            "bytes": args.bytes,
            "goodput_ratio": (ratio * 1e4).round() / 1e4,
            "lingerd_goodput_bps": lingerd.goodput(args.bytes).round(),
            "kernel_goodput_bps": kernel.goodput(args.bytes).round(),
            "lingerd_seconds": lingerd.seconds,
            "kernel_seconds": kernel.seconds,
            "retransmits": retransmits,
            "fast_retransmits": fast_retransmits,
            "ooo_segments_kept": ooo_kept,
            "sack_retransmits": sack_retransmits,
            "sack_blocks_sent": sack_blocks_sent,
            "sack_blocks_received": sack_blocks_received,
            "spurious_recoveries_undone": undone,
            "loss_probes": probes,
            "busy_poll": args.busy_poll,
            "kernel_cc": kernel.cc,
            "bytes_mismatched": mismatched,
        });
        println!("{j}");
    } else {
        println!(
            "echo of {} bytes through {:?} (seed {})",
            args.bytes, args.impair, args.seed
        );
        println!(
            "  kernel <-> kernel : {:>10.2} MB/s ({:.2} s), congestion control {}",
            kernel.goodput(args.bytes) / 1e6,
            kernel.seconds,
            kernel.cc
        );
        println!(
            "  kernel <-> lingerd: {:>10.2} MB/s ({:.2} s), {ratio:.3}x the kernel",
            lingerd.goodput(args.bytes) / 1e6,
            lingerd.seconds
        );
        println!(
            "  lingerd retransmitted {retransmits} segments ({fast_retransmits} fast, \
             {sack_retransmits} SACK holes, {undone} recoveries undone, {} loss probes), kept \
             {ooo_kept} out of order; SACK blocks {sack_blocks_sent} sent, \
             {sack_blocks_received} received; {mismatched} bytes mismatched",
            probes.map_or_else(|| "no".to_string(), |p| p.to_string())
        );
    }
    ensure!(mismatched == 0, "{mismatched} bytes came back wrong");
    Ok(())
}
