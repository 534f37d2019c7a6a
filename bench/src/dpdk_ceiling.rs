//! `lingerd-bench dpdk-ceiling`: how many 54-byte RST frames go from one
//! process to another over a memif pair, counted at the receiver; the
//! memif lab's ceiling, the twin of `xsk-ceiling`.
//!
//! The sender is this process: a memif client sending through
//! `DpdkPort::tx_frame`/`flush`, the path the engine loop uses, pinned to
//! `--tx-cpu`. The receiver is a child (this binary, hidden `--receiver`
//! role): a memif server counting frames with bare `rx_burst` calls, pinned
//! to `--rx-cpu`, reporting its count, the time from its first frame to
//! its last and its per-second counts. Both processes busy-poll a whole
//! core, so the figure depends on every other process on the machine: the
//! command first measures the CPU that other processes use for a second
//! (`/proc/stat`), refuses above `--max-busy` (unless `--allow-busy`, which
//! marks the result), and reports what others used during the run too.
//!
//! `lingerd-bench lab --port dpdk` measures the same ceiling in its own run
//! ([`measure`], on the EAL it already has) and uses the same idle check
//! ([`idle_check`], [`others_cpus`]).
//!
//! It owns its child (ended by its pid on every exit path, its EAL runtime
//! directory removed when it had to be killed), a temp dir for the memif
//! socket (removed at the end) and its EAL (shut down at the end, which
//! removes its runtime directory); it touches no network namespace and no
//! interface.

use std::io::{BufRead, BufReader};
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use lingerd_bench::lab::memif::{MAX_BUSY, RuntimeDirs, remove_on_panic, undo_on_panic};
use lingerd_dataplane::port::Port;
use lingerd_dataplane::port::dpdk::{DpdkConfig, DpdkPort, Eal, EalConfig};
use lingerd_dataplane::wire::{
    ControlSegment, EthernetAddress, RST_FRAME_LEN, RstTemplate, SeqNumber,
};

/// Arguments of `dpdk-ceiling`.
#[derive(clap::Args, Debug)]
pub(crate) struct Args {
    /// Print one JSON object instead of a table.
    #[arg(long)]
    json: bool,
    /// How long the sender runs, 1s to 60s (`5s`, `1500ms`).
    #[arg(long, default_value = "5s")]
    duration: lingerd_abi::vocab::Duration,
    /// The most CPU (in CPUs, summed over the machine) other processes may
    /// use during the idle check before the run is refused.
    #[arg(long, default_value_t = MAX_BUSY)]
    max_busy: f64,
    /// Run even when the machine is busier than --max-busy (the result
    /// says so: "idle": false).
    #[arg(long)]
    allow_busy: bool,
    /// The sender's CPU.
    #[arg(long, default_value_t = 0)]
    tx_cpu: usize,
    /// The receiver's CPU.
    #[arg(long, default_value_t = 1)]
    rx_cpu: usize,
    /// Internal: be the receiver, a memif server on this socket file.
    #[arg(long, hide = true, value_name = "SOCKET")]
    receiver: Option<PathBuf>,
}

/// Counters of `/proc/stat`'s `cpu` line, in clock ticks.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct CpuTicks {
    busy: u64,
    total: u64,
}

pub(crate) fn cpu_ticks() -> Result<CpuTicks> {
    let stat = std::fs::read_to_string("/proc/stat").context("reading /proc/stat")?;
    let line = stat
        .lines()
        .find(|l| l.starts_with("cpu "))
        .context("no cpu line in /proc/stat")?;
    let v: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .map(|x| x.parse().unwrap_or(0))
        .collect();
    // user nice system idle iowait irq softirq steal (guest is in user).
    let get = |i: usize| v.get(i).copied().unwrap_or(0);
    let idle = get(3) + get(4);
    let busy = get(0) + get(1) + get(2) + get(5) + get(6) + get(7);
    Ok(CpuTicks {
        busy,
        total: busy + idle,
    })
}

/// utime + stime of a process, in clock ticks (0 once it is gone).
pub(crate) fn process_ticks(pid: u32) -> u64 {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return 0;
    };
    // Fields after the command name, which is in parentheses.
    let Some((_, rest)) = stat.rsplit_once(')') else {
        return 0;
    };
    let f: Vec<&str> = rest.split_whitespace().collect();
    // rest starts at field 3 (state): utime is field 14, stime 15.
    let get = |i: usize| {
        f.get(i - 3)
            .and_then(|x| x.parse::<u64>().ok())
            .unwrap_or(0)
    };
    get(14) + get(15)
}

/// CPUs (summed) that processes other than `ours` used between two samples.
pub(crate) fn others_cpus(a: CpuTicks, b: CpuTicks, ours: u64) -> f64 {
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get()) as f64;
    let total = b.total.saturating_sub(a.total) as f64;
    if total <= 0.0 {
        return 0.0;
    }
    let busy = b.busy.saturating_sub(a.busy).saturating_sub(ours) as f64;
    busy / total * cpus
}

/// Ends the receiver by its pid unless it already exited; one that had to
/// be killed (or died of a signal) leaves its EAL runtime directory, which
/// goes too (`dirs`, also a panic's to undo).
struct ChildGuard {
    child: Child,
    // Dropped after `drop` has reaped the child.
    _dirs: RuntimeDirs,
}

impl ChildGuard {
    fn new(child: Child) -> ChildGuard {
        let mut dirs = RuntimeDirs::default();
        dirs.add(child.id());
        ChildGuard { child, _dirs: dirs }
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}

/// Removes the temp dir.
struct DirGuard(PathBuf);

impl Drop for DirGuard {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn pin(cpu: usize) -> Result<()> {
    if !core_affinity::set_for_current(core_affinity::CoreId { id: cpu }) {
        bail!("cannot pin to CPU {cpu}");
    }
    Ok(())
}

/// The memif device `name` (`net_memif0`) in `role` on `socket`, MAC
/// 02:00:00:00:00:`host`.
fn memif(name: &str, role: &str, socket: &Path, host: u8) -> DpdkConfig {
    DpdkConfig::new(&format!(
        "{name},role={role},socket={},socket-abstract=no,mac=02:00:00:00:00:{host:02x}",
        socket.display()
    ))
}

/// The receiver's first line, once its memif server listens.
const READY: &str = "ready";

/// What the receiver saw.
#[derive(Debug, Default)]
pub(crate) struct Received {
    frames: u64,
    first_to_last: f64,
    per_second: Vec<u64>,
}

impl Received {
    /// Frames ÷ first-to-last time.
    pub(crate) fn pps(&self) -> f64 {
        if self.first_to_last > 0.0 {
            self.frames as f64 / self.first_to_last
        } else {
            0.0
        }
    }

    /// The median of the whole seconds, without the first and the last.
    pub(crate) fn median_pps(&self) -> f64 {
        let mut inner: Vec<u64> = match self.per_second.len() {
            0..=2 => self.per_second.clone(),
            n => self.per_second[1..n - 1].to_vec(),
        };
        inner.sort_unstable();
        inner.get(inner.len() / 2).map_or(0.0, |&x| x as f64)
    }
}

/// The receiver role: counts frames until 1 s passes without one (after
/// the first), or `limit`.
fn receiver(socket: &Path, cpu: usize, limit: Duration) -> Result<()> {
    pin(cpu)?;
    let eal = Eal::init(&EalConfig::default())?;
    let result = (|| -> Result<Received> {
        let mut port = DpdkPort::open(eal, &memif("net_memif0", "server", socket, 2))?;
        // Listening: the socket file exists from bind(), before listen(),
        // and a client that connects in between fails for good.
        println!("{READY}");
        let start = Instant::now();
        let mut got = Received::default();
        let mut first: Option<Instant> = None;
        let mut last = start;
        let mut spins = 0u32;
        loop {
            let n = port.rx_burst(64, |_| {}) as u64;
            spins = spins.wrapping_add(1);
            if n > 0 {
                got.frames += n;
                // Reading the clock costs: once per burst that moved.
                let now = Instant::now();
                let t0 = *first.get_or_insert(now);
                last = now;
                let sec = (now - t0).as_secs() as usize;
                if got.per_second.len() <= sec {
                    got.per_second.resize(sec + 1, 0);
                }
                got.per_second[sec] += n;
            } else if spins.is_multiple_of(1_024) {
                let now = Instant::now();
                let quiet = first.is_some() && now - last > Duration::from_secs(1);
                if quiet || now - start > limit {
                    break;
                }
            }
        }
        got.first_to_last = first.map_or(0.0, |t0| (last - t0).as_secs_f64());
        println!(
            "{}",
            serde_json::json!({
                "received": got.frames,
                "first_to_last": got.first_to_last,
                "per_second": got.per_second,
            })
        );
        // No more polling: the sender disconnects only now (22.11's memif
        // unmaps the rings in the interrupt thread when the peer goes, with
        // no lock against a thread in rx_burst), then closes our stdin.
        std::io::Write::flush(&mut std::io::stdout())?;
        let mut rest = String::new();
        while std::io::stdin().read_line(&mut rest)? > 0 {
            rest.clear();
        }
        Ok(got)
    })();
    eal.shutdown()?;
    result.map(drop)
}

/// What the sender did.
#[derive(Debug, Default)]
pub(crate) struct Sent {
    frames: u64,
    no_frame: u64,
    seconds: f64,
    eal_args: Vec<String>,
}

/// The sender on the calling thread, pinned to `cpu`, on `eal` (the thread
/// registered with it for as long as the port is open), through the memif
/// client device `name`; once sent, `before_close` runs with the port
/// still open (connected, not polled), and its result is returned too.
fn sender<R>(
    eal: &'static Eal,
    name: &str,
    socket: &Path,
    cpu: usize,
    secs: f64,
    frame: &[u8; RST_FRAME_LEN],
    before_close: impl FnOnce() -> Result<R>,
) -> Result<(Sent, R)> {
    pin(cpu)?;
    let _lcore = eal.register_thread()?;
    let mut port = DpdkPort::open(eal, &memif(name, "client", socket, 1))?;
    let up_by = Instant::now() + Duration::from_secs(10);
    while !port.link_up() {
        if Instant::now() > up_by {
            bail!("the memif pair did not connect within 10 s");
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    let seconds = crate::xsk_ceiling::send_for(&mut port, frame, secs, 64)?;
    // The receiver drains the ring before the client disconnects (a
    // disconnect drops what the ring still holds).
    std::thread::sleep(Duration::from_millis(100));
    let stats = port.stats()?;
    let sent = Sent {
        frames: stats.port.tx_frames - port.tx_in_flight() as u64,
        no_frame: stats.port.tx_no_frame,
        seconds,
        eal_args: eal.args().to_vec(),
    };
    let r = before_close()?;
    Ok((sent, r))
}

/// The idle check: what other processes use over one second.
#[derive(Clone, Copy, Debug)]
pub(crate) struct IdleCheck {
    /// CPUs (summed) other processes used.
    pub(crate) busy: f64,
    /// At most `max_busy`.
    pub(crate) idle: bool,
}

/// Samples a second of what every other process uses; refuses above
/// `max_busy` unless `allow_busy` (then warns on stderr).
pub(crate) fn idle_check(max_busy: f64, allow_busy: bool) -> Result<IdleCheck> {
    let a = cpu_ticks()?;
    std::thread::sleep(Duration::from_secs(1));
    let b = cpu_ticks()?;
    let busy = others_cpus(a, b, 0);
    let idle = busy <= max_busy;
    if !idle {
        let msg = format!(
            "other processes use {busy:.2} CPUs (more than --max-busy {max_busy}): memif's figure would measure them"
        );
        if !allow_busy {
            bail!("{msg}; run when the machine is idle, or pass --allow-busy");
        }
        eprintln!("warning: {msg}; going on (--allow-busy)");
    }
    Ok(IdleCheck { busy, idle })
}

/// One ceiling measurement: what was sent and received, and what other
/// processes used meanwhile.
#[derive(Debug)]
pub(crate) struct Ceiling {
    pub(crate) sent: Sent,
    pub(crate) got: Received,
    /// CPUs (summed) other processes used during the run.
    pub(crate) others_during: f64,
}

/// The frame the sender repeats: an RST from 198.18.0.1 to 198.18.0.2.
fn rst_frame() -> [u8; RST_FRAME_LEN] {
    let tmpl = RstTemplate::new(
        EthernetAddress([2, 0, 0, 0, 0, 1]),
        EthernetAddress([2, 0, 0, 0, 0, 2]),
        Ipv4Addr::new(198, 18, 0, 1),
    );
    let mut frame = [0u8; RST_FRAME_LEN];
    tmpl.build_array(
        &mut frame,
        &ControlSegment::rst(Ipv4Addr::new(198, 18, 0, 2), 40_000, 9, SeqNumber(1)),
    );
    frame
}

/// Measures the memif ceiling: the receiver as a child of this binary (a
/// memif server on `dir`/`ceiling.sock`, pinned to `rx_cpu`), the sender
/// on a thread of this process pinned to `tx_cpu`, on `eal`, through the
/// memif client device `name` (unique within the process), for
/// `duration`. The receiver is ended by its pid on every exit path.
pub(crate) fn measure(
    eal: &'static Eal,
    name: &str,
    dir: &Path,
    tx_cpu: usize,
    rx_cpu: usize,
    duration: lingerd_abi::vocab::Duration,
) -> Result<Ceiling> {
    let seconds = duration.to_std().as_secs_f64();
    let socket = dir.join("ceiling.sock");
    let exe = std::env::current_exe().context("finding this binary")?;
    let mut child = ChildGuard::new(
        Command::new(exe)
            .arg("dpdk-ceiling")
            .arg("--receiver")
            .arg(&socket)
            .args(["--rx-cpu", &rx_cpu.to_string()])
            .args(["--duration", &duration.to_string()])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .context("starting the receiver")?,
    );
    let rx_pid = child.child.id();
    // Its first line once its memif server listens (a blocking read,
    // bounded by the receiver's own time limit).
    let mut stdout = BufReader::new(child.child.stdout.take().context("receiver stdout")?);
    let mut line = String::new();
    stdout
        .read_line(&mut line)
        .context("reading the receiver's start")?;
    if line.trim() != READY {
        bail!("the receiver did not open its memif server (it said {line:?})");
    }

    let frame = rst_frame();
    let run_a = cpu_ticks()?;
    let ours_a = process_ticks(std::process::id()) + process_ticks(rx_pid);
    // A thread of its own: pinning is per thread, and the caller's thread
    // keeps its CPUs (children it starts later inherit them).
    // The receiver's count is read while the sender's port is still
    // connected (see `receiver`); then the sender disconnects and the
    // receiver's stdin closes.
    let read_count = || -> Result<String> {
        let mut line = String::new();
        stdout
            .read_line(&mut line)
            .context("reading the receiver's count")?;
        Ok(line)
    };
    let (sent, line) = std::thread::scope(|sc| {
        std::thread::Builder::new()
            .name("ceiling-tx".into())
            .spawn_scoped(sc, || {
                sender(eal, name, &socket, tx_cpu, seconds, &frame, read_count)
            })
            .context("spawning the sender")?
            .join()
            .map_err(|_| anyhow::anyhow!("the sender panicked"))?
    })?;
    let run_b = cpu_ticks()?;
    let ours_b = process_ticks(std::process::id()) + process_ticks(rx_pid);
    let others_during = others_cpus(run_a, run_b, ours_b.saturating_sub(ours_a));
    drop(child.child.stdin.take());
    let status = child.child.wait().context("waiting for the receiver")?;
    if !status.success() {
        bail!("the receiver failed ({status})");
    }
    let v: serde_json::Value =
        serde_json::from_str(line.trim()).with_context(|| format!("receiver said {line:?}"))?;
    let got = Received {
        frames: v["received"].as_u64().unwrap_or(0),
        first_to_last: v["first_to_last"].as_f64().unwrap_or(0.0),
        per_second: v["per_second"]
            .as_array()
            .map(|a| a.iter().filter_map(serde_json::Value::as_u64).collect())
            .unwrap_or_default(),
    };
    Ok(Ceiling {
        sent,
        got,
        others_during,
    })
}

/// `lingerd-bench dpdk-ceiling`.
pub(crate) fn run(args: Args) -> Result<()> {
    let seconds = args.duration.to_std().as_secs_f64();
    if !(1.0..=60.0).contains(&seconds) {
        bail!("--duration must be within 1s..=60s");
    }
    let limit = Duration::from_secs_f64(seconds + 30.0);
    if let Some(socket) = &args.receiver {
        return receiver(socket, args.rx_cpu, limit);
    }
    let IdleCheck {
        busy: busy_before,
        idle,
    } = idle_check(args.max_busy, args.allow_busy)?;

    let dir = std::env::temp_dir().join(format!("lingerd-dpdk-ceiling-{}", std::process::id()));
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let _dir = DirGuard(dir.clone());
    undo_on_panic();
    remove_on_panic(&dir);
    let eal = Eal::init(&EalConfig::default())?;
    let measured = measure(
        eal,
        "net_memif0",
        &dir,
        args.tx_cpu,
        args.rx_cpu,
        args.duration,
    );
    eal.shutdown()?;
    let Ceiling {
        sent,
        got,
        others_during: busy_during,
    } = measured?;

    if args.json {
        let v = serde_json::json!({
            "bench": "dpdk-ceiling",
            "device": "net_memif",
            "frame_len": RST_FRAME_LEN,
            "pps": got.pps().round(),
            "pps_median": got.median_pps().round(),
            "per_second": got.per_second,
            "sent": sent.frames,
            "received": got.frames,
            "seconds": sent.seconds,
            "tx_no_frame": sent.no_frame,
            "tx_cpu": args.tx_cpu,
            "rx_cpu": args.rx_cpu,
            "eal_args": sent.eal_args,
            "idle": idle,
            "others_cpu_before": (busy_before * 100.0).round() / 100.0,
            "others_cpu_during": (busy_during * 100.0).round() / 100.0,
            "max_busy": args.max_busy,
        });
        println!("{v}");
    } else {
        println!(
            "dpdk-ceiling over memif, {RST_FRAME_LEN}-byte RST frames, sender CPU {}, receiver CPU {}",
            args.tx_cpu, args.rx_cpu
        );
        println!(
            "  received: {:>10.0} pps (median of whole seconds {:.0}; sent {}, received {}, {:.2} s)",
            got.pps(),
            got.median_pps(),
            sent.frames,
            got.frames,
            sent.seconds
        );
        println!(
            "  other processes: {busy_before:.2} CPUs before ({}), {busy_during:.2} during",
            if idle { "idle" } else { "BUSY" }
        );
    }
    Ok(())
}
