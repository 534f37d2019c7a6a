//! What the lab commands (`lingerd-bench lab`, `ring-latency`) share: the
//! lab and its scratch directory ([`on_lab`]), the device under test (the
//! daemon with a generated configuration and its client, [`start_dut`]:
//! on AF_XDP in the netns lab, or on DPDK on a memif server socket in this
//! namespace), the wait for the load generator's connections
//! ([`open_all`]), the binary to run ([`lingerd_bin`]), SIGINT/SIGTERM as a
//! flag the waits check ([`stop_on_signals`], [`interrupted`]: the command
//! then unwinds through its guards) and the progress display.
//!
//! It owns what it starts: the lab (down on every exit path), the scratch
//! directory (tempfile), the daemon and client processes (stopped on drop);
//! nothing outside the lab's namespaces, 198.18.0.0/15 and the scratch
//! directory (the memif socket).

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use indicatif::{ProgressBar, ProgressStyle};
use lingerd_config::{ClientExitPolicy, Config, PortKind, Prefix, ZeroCopy};
use lingerd_dataplane::sys::netns;
use lingerd_lab::Lab;
use lingerd_lab::daemon::{Daemon, Launch};
use lingerd_lab::proc::{Ending, Proc, Stderr};

use super::loadgen::{self, LoadGen};
use super::{Addressing, Family, Mode};
use crate::measure::progress;

/// The daemon's IPv4 address in the lab (held by no kernel):
/// [`Addressing::of`]`(Family::V4).dut`.
pub const DUT_ENGINE_ADDR: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 11);
/// The first port the dut's client listens on.
pub const FIRST_PORT: u16 = 8080;
/// The CPU the dut's one queue is pinned to.
pub const DUT_CORE: usize = 1;

/// A CPU for the load generator: the first one the dut's core is not, so
/// that the two never share a core (on 2 CPUs, the other one).
pub fn generator_cpu() -> Option<usize> {
    core_affinity::get_core_ids()?
        .into_iter()
        .map(|c| c.id)
        .find(|&id| id != DUT_CORE)
}

/// `--idle` values.
#[derive(Clone, Copy, Debug, clap::ValueEnum)]
pub enum Idle {
    /// The daemon busy-polls its core (the measurement).
    Busy,
    /// The daemon sleeps when idle (CI, laptops).
    Sleep,
}

/// Set by SIGINT or SIGTERM once [`stop_on_signals`] ran.
static SIGNALLED: OnceLock<Arc<AtomicBool>> = OnceLock::new();

/// From now on SIGINT and SIGTERM set a flag ([`interrupted`]) instead of
/// killing the process, so that a command stopped by Ctrl-C unwinds
/// through its guards (children stopped, sockets and directories removed).
/// Its waits must check the flag (every wait here does).
pub fn stop_on_signals() -> Result<()> {
    let flag = SIGNALLED.get_or_init(|| Arc::new(AtomicBool::new(false)));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(sig, Arc::clone(flag))
            .context("installing a signal handler")?;
    }
    Ok(())
}

/// Whether SIGINT or SIGTERM arrived (after [`stop_on_signals`]).
pub fn interrupted() -> bool {
    SIGNALLED.get().is_some_and(|f| f.load(Ordering::Relaxed))
}

/// An error when [`interrupted`]: for the waits of a command to return.
pub fn check_interrupted() -> Result<()> {
    if interrupted() {
        bail!("interrupted (SIGINT or SIGTERM): stopping and cleaning up");
    }
    Ok(())
}

/// A progress bar of `len` steps, labelled `what` (on stderr).
pub fn bar(len: u64, what: &str) -> ProgressBar {
    let pb = ProgressBar::new(len);
    pb.set_style(
        ProgressStyle::with_template("{prefix:>10} [{bar:40}] {pos}/{len} {per_sec} {msg}")
            .expect("valid template")
            .progress_chars("=> "),
    );
    pb.set_prefix(what.to_owned());
    pb
}

/// A spinner labelled `what` (on stderr), ticking on its own.
pub fn spinner(what: &str) -> ProgressBar {
    let pb = ProgressBar::new_spinner();
    pb.set_prefix(what.to_owned());
    pb.set_style(
        ProgressStyle::with_template("{prefix:>10} {spinner} {elapsed} {msg}").expect("valid"),
    );
    pb.enable_steady_tick(Duration::from_millis(200));
    pb
}

/// The lingerd binary: `--lingerd`, `$LINGERD_BIN`, or beside this one.
pub fn lingerd_bin(arg: Option<&Path>) -> Result<PathBuf> {
    let p = match (arg, std::env::var_os("LINGERD_BIN")) {
        (Some(p), _) => p.to_owned(),
        (None, Some(p)) => PathBuf::from(p),
        (None, None) => std::env::current_exe()?
            .parent()
            .context("exe has no directory")?
            .join("lingerd"),
    };
    ensure!(
        p.is_file(),
        "no lingerd binary at {} (cargo build --release -p lingerd, or --lingerd PATH)",
        p.display()
    );
    Ok(p)
}

/// Where the device under test runs.
#[derive(Clone, Copy, Debug)]
pub enum DutPlace<'a> {
    /// On AF_XDP on the lab's dut veth, in its dut namespace.
    Lab(&'a Lab),
    /// On DPDK (`port: dpdk`), the server of a memif on this socket file,
    /// in this process's namespace (the `lingerd` binary must be built
    /// with the `dpdk` feature).
    Memif {
        /// The memif socket file (in the run's scratch directory).
        socket: &'a Path,
    },
}

/// The daemon's configuration for a run: one queue on `place`'s device,
/// no listeners of its own, `/metrics` at `metrics` (in the dut namespace)
/// or none, and a shutdown that aborts what clients left (the drain is
/// bounded by the default linger, off: about a second), RSTs paced at
/// `max_rst_per_sec` (`close.max_rst_per_sec`, 0 = unpaced). Where clients
/// attach is the lab daemon's to set.
fn daemon_config(
    place: DutPlace<'_>,
    family: Family,
    idle: Idle,
    connections: usize,
    metrics: Option<SocketAddr>,
    max_rst_per_sec: u32,
) -> Result<Config> {
    let engine: Prefix = Addressing::of(family).dut_prefix();
    let idle = match idle {
        Idle::Busy => lingerd_config::Idle::Busy,
        Idle::Sleep => lingerd_config::Idle::Sleep,
    };
    let mut c = match place {
        DutPlace::Lab(lab) => {
            let mut c = Config::with_defaults(lab.get("LAB_DUT_IF"), vec![engine]);
            c.xdp.zero_copy = ZeroCopy::Off;
            c.xdp.frames = 16_384;
            c.xdp.idle = idle;
            c
        }
        DutPlace::Memif { socket } => {
            let mut c = Config::with_defaults("", vec![engine]);
            c.port = PortKind::Dpdk;
            let device = format!("memif:socket={},role=server", socket.display());
            c.dpdk.device = Some(
                device
                    .parse()
                    .map_err(|e| anyhow::anyhow!("dpdk.device {device:?}: {e}"))?,
            );
            c.dpdk.idle = idle;
            c
        }
    };
    c.queues = vec![0];
    c.cores = vec![DUT_CORE as u32];
    c.tcp.time_wait = lingerd_config::Duration::from_secs(1);
    c.tcp.orphan_timeout = lingerd_config::Duration::from_secs(30);
    // Too many for a u32 is too many for lingerd too: it refuses the file.
    let max = (connections as u64 + 65_536).next_power_of_two();
    c.tcp.max_connections = u32::try_from(max).unwrap_or(u32::MAX);
    c.close.on_client_exit = ClientExitPolicy::Abort;
    c.close.max_rst_per_sec = max_rst_per_sec;
    c.metrics.listen = metrics;
    Ok(c)
}

/// What [`start_dut`] starts: the daemon and its client (in the dut
/// namespace on the lab).
pub struct DutPlan<'a> {
    /// Where.
    pub place: DutPlace<'a>,
    /// The daemon's address family (its `addresses` entry:
    /// [`Addressing::dut_prefix`]).
    pub family: Family,
    /// The run's scratch directory (the daemon's log, the request times).
    pub scratch: &'a Path,
    /// This binary (re-run as `lab-dut-client`).
    pub exe: &'a Path,
    /// The `lingerd` binary.
    pub lingerd: &'a Path,
    /// The daemon's idle mode.
    pub idle: Idle,
    /// The ports the client listens on.
    pub ports: &'a [u16],
    /// Connections the client accepts (lingering ones included).
    pub connections: usize,
    /// How the client closes them.
    pub mode: Mode,
    /// One `close_matching` request instead of one per connection.
    pub bulk: bool,
    /// Closes per second (0: as fast as possible).
    pub pace: u32,
    /// The first `timer_ports` ports' connections close lingering before
    /// `go` (`lab-dut-client --timer-ports`).
    pub timer_ports: usize,
    /// Their linger time.
    pub timer_linger: lingerd_abi::vocab::Duration,
    /// The daemon's `/metrics` address (in the dut namespace), or none.
    pub metrics: Option<SocketAddr>,
    /// The daemon's `close.max_rst_per_sec` (0: unpaced).
    pub max_rst_per_sec: u32,
}

/// The daemon and its client, up and listening (stopped on drop: the
/// client first, then the daemon by SIGTERM).
pub struct Dut {
    /// The client (`lab-dut-client`); dropped first.
    pub client: Proc,
    /// The daemon.
    pub daemon: Daemon,
    /// Where the client writes its request times.
    pub times_file: PathBuf,
}

/// Starts `lingerd run` with a generated configuration (in the dut
/// namespace on the lab, as an appliance runs it) and attaches its client;
/// returns once the client listens.
pub fn start_dut(plan: &DutPlan<'_>) -> Result<Dut> {
    let config = daemon_config(
        plan.place,
        plan.family,
        plan.idle,
        plan.connections,
        plan.metrics,
        plan.max_rst_per_sec,
    )?;
    let sp = spinner("lingerd");
    sp.set_message("starting the daemon");
    let log = plan.scratch.join("lingerd.log");
    let launch = Launch {
        bin: plan.lingerd,
        config: &config,
        env: &[],
        stderr: Stderr::File(&log),
    };
    let daemon = match plan.place {
        DutPlace::Lab(lab) => Daemon::start(lab, &launch),
        DutPlace::Memif { .. } => Daemon::start_here("memif", &launch),
    }
    .inspect_err(|_| sp.finish_and_clear())?;
    let socket = daemon.socket().to_owned();

    // Its client (in the dut namespace on the lab).
    sp.set_message("attaching the dut's client");
    let times_file = plan.scratch.join("requests.bin");
    let port_list: Vec<String> = plan.ports.iter().map(u16::to_string).collect();
    let timeout = Duration::from_secs(300);
    let mut cmd = match plan.place {
        DutPlace::Lab(lab) => {
            let mut cmd = Command::new("ip");
            cmd.args(["netns", "exec", &lab.get("LAB_DUT_NS")])
                .arg(plan.exe);
            cmd
        }
        DutPlace::Memif { .. } => Command::new(plan.exe),
    };
    cmd.arg("lab-dut-client")
        .arg("--socket")
        .arg(&socket)
        .args(["--ports", &port_list.join(",")])
        .args(["--connections", &plan.connections.to_string()])
        .args(["--mode", &plan.mode.to_string()])
        .args(["--pace", &plan.pace.to_string()])
        .args(["--timer-ports", &plan.timer_ports.to_string()])
        .args(["--timer-linger", &plan.timer_linger.to_string()])
        .args(["--family", &plan.family.to_string()])
        .arg("--out")
        .arg(&times_file)
        .args(["--timeout", &format!("{}s", timeout.as_secs())]);
    if plan.bulk {
        cmd.arg("--bulk");
    }
    let mut client = Proc::spawn("dut client", cmd, Stderr::Inherit, Ending::EofThenKill)?;
    client.expect_rest("listening", Duration::from_secs(30))?;
    sp.finish_with_message("daemon up, client attached and listening");
    Ok(Dut {
        client,
        daemon,
        times_file,
    })
}

impl Dut {
    /// The client's `done` report: requests, completions, failed requests,
    /// first and last request time (ns).
    pub fn done(&mut self) -> Result<[u64; 5]> {
        let done = self.client.expect_rest("done", Duration::from_secs(60))?;
        let v: Vec<u64> = done
            .split_whitespace()
            .map(str::parse)
            .collect::<Result<_, _>>()?;
        v.try_into()
            .map_err(|_| anyhow::anyhow!("bad client report {done:?}"))
    }

    /// Tells the client to leave, then stops the daemon (SIGTERM); how the
    /// daemon exited (`None`: it had to be killed).
    pub fn stop(&mut self) -> Option<std::process::ExitStatus> {
        let _ = self.client.say("exit");
        self.client.stop();
        self.daemon.stop().0
    }
}

/// Waits, with a progress bar, until the load generator has established
/// all `n` connections; fails at the first failed connect or after a time
/// that allows for `open_rate`. Returns the seconds it took.
pub fn open_all(generator: &LoadGen, n: usize, open_rate: u32) -> Result<f64> {
    let open_t0 = Instant::now();
    let p = &generator.progress;
    let pb = bar(n as u64, "opening");
    let open_limit = Duration::from_secs(60)
        + Duration::from_secs_f64(n as f64 / f64::from(open_rate.max(1)) * 3.0);
    loop {
        let est = p.established.load(Ordering::Relaxed);
        pb.set_position(est);
        if est as usize == n {
            break;
        }
        let failed = p.failed.load(Ordering::Relaxed);
        if interrupted() {
            pb.abandon();
        }
        check_interrupted()?;
        if failed > 0 || generator.finished() || open_t0.elapsed() > open_limit {
            pb.abandon();
            bail!(
                "opening: {est} of {n} established, {failed} failed within {:?}",
                open_t0.elapsed(),
            );
        }
        std::thread::sleep(loadgen::WATCH);
    }
    pb.finish();
    Ok(open_t0.elapsed().as_secs_f64())
}

/// Runs `f` on a lab of its own (id `id`, default `prefix` + pid) with a
/// scratch directory; both are removed afterwards, on every exit path,
/// unless `keep` (for debugging: then they are left up and named).
pub fn on_lab<T>(
    id: Option<&str>,
    prefix: &str,
    keep: bool,
    f: impl FnOnce(&Lab, &Path) -> Result<T>,
) -> Result<T> {
    on_lab_for(id, prefix, keep, Family::V4, f)
}

/// [`on_lab`] with a lab that carries `family` (dual-stack for IPv6).
pub fn on_lab_for<T>(
    id: Option<&str>,
    prefix: &str,
    keep: bool,
    family: Family,
    f: impl FnOnce(&Lab, &Path) -> Result<T>,
) -> Result<T> {
    let id = id.map_or_else(
        || format!("{prefix}{}", std::process::id() % 100_000_000),
        str::to_owned,
    );
    lingerd_lab::down_all_on_panic();
    let lab = Lab::up_for(&id, 1, family).map_err(anyhow::Error::msg)?;
    let scratch = tempfile::Builder::new()
        .prefix(&format!("lingerd-lab-{id}-"))
        .tempdir()?;
    let result = f(&lab, scratch.path());
    if keep {
        progress(format!(
            "--keep-lab: lab {id} left up (deploy/lab down --id {id}), scratch {}",
            scratch.keep().display()
        ));
        // Not dropped: no `deploy/lab down`.
        std::mem::forget(lab);
    } else {
        drop(lab);
    }
    result
}

/// `GET /metrics` from the daemon at `addr`, inside the lab's dut namespace.
pub fn scrape_metrics(lab: &Lab, addr: SocketAddr) -> Result<String> {
    let ns = lab.get("LAB_DUT_NS");
    std::thread::spawn(move || -> Result<String> {
        netns::enter(&ns).with_context(|| format!("entering {ns}"))?;
        scrape_here(addr)
    })
    .join()
    .map_err(|_| anyhow::anyhow!("scrape panicked"))?
}

/// `GET /metrics` from the daemon at `addr` where it runs: inside the
/// lab's dut namespace, or here for the memif lab.
pub fn scrape_dut(place: DutPlace<'_>, addr: SocketAddr) -> Result<String> {
    match place {
        DutPlace::Lab(lab) => scrape_metrics(lab, addr),
        DutPlace::Memif { .. } => scrape_here(addr),
    }
}

/// `GET /metrics` from the daemon at `addr`, in this thread's namespace
/// (the memif lab's daemon runs in ours).
pub fn scrape_here(addr: SocketAddr) -> Result<String> {
    let step = Duration::from_secs(5);
    let mut s = TcpStream::connect_timeout(&addr, step).context("connect to /metrics")?;
    s.set_read_timeout(Some(step))?;
    s.write_all(b"GET /metrics HTTP/1.0\r\n\r\n")?;
    let mut body = String::new();
    s.read_to_string(&mut body)?;
    Ok(body)
}

/// The value of `selector` in a `/metrics` text, summed over the series it
/// matches: `name` (every queue's), or `name{key="value",…}` (the series
/// of `name` that have those labels, among others).
pub fn sample(text: &str, selector: &str) -> Result<u64> {
    let (name, want) = match selector.split_once('{') {
        Some((n, rest)) => (n, rest.trim_end_matches('}')),
        None => (selector, ""),
    };
    let want: Vec<&str> = want.split(',').filter(|l| !l.is_empty()).collect();
    let mut found = None;
    for l in text.lines().filter(|l| !l.starts_with('#')) {
        let Some((series, value)) = l.rsplit_once(' ') else {
            continue;
        };
        let (base, labels) = match series.split_once('{') {
            Some((b, rest)) => (b, rest.trim_end_matches('}')),
            None => (series, ""),
        };
        let have: Vec<&str> = labels.split(',').collect();
        if base == name && want.iter().all(|w| have.contains(w)) {
            let v: u64 = value
                .parse()
                .with_context(|| format!("{selector}: not a count: {l}"))?;
            found = Some(found.unwrap_or(0) + v);
        }
    }
    found.with_context(|| format!("{selector} missing from /metrics"))
}

#[cfg(test)]
mod tests {
    use super::sample;

    #[test]
    fn a_sample_sums_the_series_its_selector_matches() {
        let text = "# TYPE lingerd_closes counter\n\
                    lingerd_closes_total{queue=\"0\",outcome=\"graceful\"} 3\n\
                    lingerd_closes_total{queue=\"1\",outcome=\"graceful\"} 4\n\
                    lingerd_closes_total{queue=\"1\",outcome=\"aborted\"} 9\n\
                    lingerd_timers_armed{queue=\"0\"} 5\n\
                    # EOF\n";
        assert_eq!(sample(text, "lingerd_closes_total").unwrap(), 16);
        assert_eq!(
            sample(text, "lingerd_closes_total{outcome=\"graceful\"}").unwrap(),
            7
        );
        assert_eq!(
            sample(
                text,
                "lingerd_closes_total{queue=\"1\",outcome=\"aborted\"}"
            )
            .unwrap(),
            9
        );
        assert_eq!(sample(text, "lingerd_timers_armed").unwrap(), 5);
        assert!(
            sample(text, "lingerd_closes").is_err(),
            "a family name is not a sample"
        );
        assert!(sample(text, "lingerd_closes_total{outcome=\"background\"}").is_err());
    }
}
