//! The Linux kernel baseline: the same teardown done by kernel TCP sockets,
//! server in the dut namespace, clients in the peer namespace.
//!
//! The open-files limit (20,000 per process, not raisable here) means no
//! process may hold more than [`PER_PROCESS`] sockets, so the baseline runs
//! pairs of worker processes (this binary re-run as `lingerd-bench
//! kernel-worker` under `ip netns exec`): server *i* listens on
//! `198.18.0.1:9000+i` in the dut and accepts its share; client *i* connects
//! that share from the peer. When every pair is ready the orchestrator says
//! `go` to all servers at once; each sets nothing more (the linger option was
//! set beforehand) and times its `close()` calls with `CLOCK_MONOTONIC`.
//! `closes_per_s` is all closes divided by (last server's end − first
//! server's start): measured by the closing side. Each client counts what it
//! saw (ECONNRESET or EOF) with its arrival time, which confirms the closes
//! on the wire and draws the kernel's curve in the SVG.
//!
//! Abort is `SO_LINGER {1,0}` then `close()`; graceful is a plain `close()`
//! (the client closes its end on EOF); linger=MS is `SO_LINGER {1, ⌈MS/1000⌉
//! s}` (Linux counts seconds) then a blocking `close()` that returns when
//! the FIN is acknowledged. The workers talk to the orchestrator in lines
//! on stdin/stdout; every wait is bounded, and a worker whose stdin closes
//! exits. It owns its processes (killed and reaped on drop) and their
//! sockets; it touches nothing outside the lab's two namespaces.

use std::fs::File;
use std::io::{BufRead, BufWriter, ErrorKind, Read, Write};
use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream};
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, ensure};
use lingerd_lab::proc::{Ending, Proc, Stderr};
use rustix::event::epoll;
use rustix::net::{AddressFamily, SocketFlags, SocketType, sockopt};

use super::Mode;
use crate::clock::now_ns;

/// The most sockets one worker process holds (the hard open-files limit is
/// 20,000; the rest is headroom for the runtime's own descriptors).
pub const PER_PROCESS: usize = 15_000;
/// The first server port; pair *i* uses `BASE_PORT + i`.
pub const BASE_PORT: u16 = 9000;

/// Which side a worker plays.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// Listens in the dut, accepts, closes on `go`.
    Server,
    /// Connects from the peer, counts RST/EOF arrivals.
    Client,
}

/// A worker's orders (the `kernel-worker` subcommand's arguments).
#[derive(Clone, Debug)]
pub struct WorkerArgs {
    /// Server or client.
    pub role: Role,
    /// The server's address, IPv4 or IPv6.
    pub addr: IpAddr,
    /// The server's port.
    pub port: u16,
    /// Connections of this pair.
    pub count: usize,
    /// How the server closes.
    pub mode: Mode,
    /// Clients: where the arrival times go (u64 LE nanoseconds).
    pub out: Option<PathBuf>,
    /// The longest any step may take.
    pub timeout: Duration,
}

/// Raises the soft open-files limit to the hard one.
fn raise_nofile() -> Result<()> {
    use rustix::process::{Resource, getrlimit, setrlimit};
    let mut lim = getrlimit(Resource::Nofile);
    lim.current = lim.maximum;
    setrlimit(Resource::Nofile, lim).context("raising RLIMIT_NOFILE")?;
    Ok(())
}

fn say(line: &str) -> Result<()> {
    let mut out = std::io::stdout().lock();
    writeln!(out, "{line}")?;
    out.flush()?;
    Ok(())
}

/// Reads one line from stdin: the orchestrator's order (EOF = give up).
fn order() -> Result<String> {
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line)?;
    ensure!(!line.is_empty(), "orchestrator went away");
    Ok(line.trim().to_owned())
}

/// A kernel TCP listener on `addr` (IPv4 or IPv6) with `backlog` (std's
/// is fixed at 128).
pub fn listener(addr: impl Into<SocketAddr>, backlog: i32) -> Result<TcpListener> {
    let addr: SocketAddr = addr.into();
    let family = if addr.is_ipv4() {
        AddressFamily::INET
    } else {
        AddressFamily::INET6
    };
    let fd: OwnedFd =
        rustix::net::socket_with(family, SocketType::STREAM, SocketFlags::CLOEXEC, None)?;
    sockopt::set_socket_reuseaddr(&fd, true)?;
    rustix::net::bind(&fd, &addr).with_context(|| format!("bind {addr}"))?;
    rustix::net::listen(&fd, backlog)?;
    Ok(TcpListener::from(fd))
}

/// Linux's linger option for `mode` (`None`: off).
fn linger_of(mode: Mode) -> Option<Duration> {
    match mode {
        Mode::Abort => Some(Duration::ZERO),
        Mode::Graceful => None,
        Mode::Linger { ms } => Some(Duration::from_secs(u64::from(ms.div_ceil(1000)))),
    }
}

/// The `kernel-worker` subcommand.
pub fn worker(args: &WorkerArgs) -> Result<()> {
    raise_nofile()?;
    ensure!(
        args.count <= PER_PROCESS,
        "at most {PER_PROCESS} sockets per process"
    );
    match args.role {
        Role::Server => server(args),
        Role::Client => client(args),
    }
}

fn server(args: &WorkerArgs) -> Result<()> {
    let l = listener(SocketAddr::new(args.addr, args.port), 4096)?;
    say("listening")?;
    let mut conns = Vec::with_capacity(args.count);
    let deadline = Instant::now() + args.timeout;
    l.set_nonblocking(true)?;
    while conns.len() < args.count {
        match l.accept() {
            Ok((s, _)) => conns.push(s),
            Err(e) if e.kind() == ErrorKind::WouldBlock => {
                ensure!(
                    Instant::now() < deadline,
                    "accepted {} of {} before the timeout",
                    conns.len(),
                    args.count
                );
                std::thread::sleep(Duration::from_millis(1));
            }
            Err(e) => return Err(e.into()),
        }
    }
    let linger = linger_of(args.mode);
    for s in &conns {
        s.set_nonblocking(false)?;
        if linger.is_some() {
            sockopt::set_socket_linger(s.as_fd(), linger)?;
        }
    }
    say(&format!("ready {}", conns.len()))?;
    ensure!(order()? == "go", "expected go");
    let t0 = now_ns();
    let n = conns.len();
    for s in conns {
        drop(s);
    }
    let t1 = now_ns();
    drop(l);
    say(&format!("done {t0} {t1} {n}"))?;
    // Stay until told, so the graceful peers' FINs find their sockets.
    let _ = order();
    Ok(())
}

fn client(args: &WorkerArgs) -> Result<()> {
    let to = SocketAddr::new(args.addr, args.port);
    let mut conns = Vec::with_capacity(args.count);
    let deadline = Instant::now() + args.timeout;
    while conns.len() < args.count {
        match TcpStream::connect_timeout(&to, Duration::from_secs(5)) {
            Ok(s) => conns.push(Some(s)),
            Err(e) => {
                ensure!(
                    Instant::now() < deadline,
                    "connected {} of {} to {to}: {e}",
                    conns.len(),
                    args.count
                );
                std::thread::sleep(Duration::from_millis(5));
            }
        }
    }
    let ep = epoll::create(epoll::CreateFlags::CLOEXEC)?;
    for (i, s) in conns.iter().enumerate() {
        let s = s.as_ref().expect("just connected");
        s.set_nonblocking(true)?;
        epoll::add(
            &ep,
            s,
            epoll::EventData::new_u64(i as u64),
            epoll::EventFlags::IN | epoll::EventFlags::RDHUP,
        )?;
    }
    say(&format!("ready {}", conns.len()))?;
    let (mut resets, mut eofs, mut other) = (0u64, 0u64, 0u64);
    let mut arrivals = Vec::with_capacity(conns.len());
    let mut events: Vec<epoll::Event> = Vec::with_capacity(1024);
    let mut buf = [0u8; 256];
    let deadline = Instant::now() + args.timeout;
    let slice = rustix::time::Timespec {
        tv_sec: 0,
        tv_nsec: 100_000_000,
    };
    while arrivals.len() < conns.len() && Instant::now() < deadline {
        events.clear();
        epoll::wait(
            &ep,
            rustix::buffer::spare_capacity(&mut events),
            Some(&slice),
        )?;
        for ev in &events {
            let i = ev.data.u64() as usize;
            let Some(s) = conns[i].as_mut() else { continue };
            let t = now_ns();
            match s.read(&mut buf) {
                Ok(0) => eofs += 1,
                Ok(_) => continue,
                Err(e) if e.kind() == ErrorKind::WouldBlock => continue,
                Err(e) if e.kind() == ErrorKind::ConnectionReset => resets += 1,
                Err(_) => other += 1,
            }
            arrivals.push(t);
            let _ = epoll::delete(&ep, &*s);
            // Graceful: our FIN answers theirs; abort: the socket is dead.
            conns[i] = None;
        }
    }
    if let Some(path) = &args.out {
        let mut w = BufWriter::new(File::create(path)?);
        for t in &arrivals {
            w.write_all(&t.to_le_bytes())?;
        }
        w.flush()?;
    }
    say(&format!("done {resets} {eofs} {other}"))?;
    let _ = order();
    Ok(())
}

/// A worker process (`lingerd-bench kernel-worker ARGS` in namespace
/// `ns`): stdin closed, then killed after a moment, on drop.
fn spawn_worker(exe: &Path, ns: &str, name: String, args: &[String]) -> Result<Proc> {
    let mut cmd = Command::new("ip");
    cmd.args(["netns", "exec", ns])
        .arg(exe)
        .arg("kernel-worker")
        .args(args);
    Ok(Proc::spawn(
        &name,
        cmd,
        Stderr::Inherit,
        Ending::EofThenKill,
    )?)
}

/// The worker's next line, which must start with `word` (by `deadline`);
/// returns the rest.
fn expect(w: &mut Proc, word: &str, deadline: Instant) -> Result<String> {
    let left = deadline.saturating_duration_since(Instant::now());
    Ok(w.expect_rest(word, left)?)
}

/// What the kernel baseline measured.
#[derive(Clone, Debug, Default)]
pub struct KernelResult {
    /// Connections torn down.
    pub connections: usize,
    /// Worker pairs (processes per side).
    pub processes: usize,
    /// Closes per second by the closing side.
    pub closes_per_s: f64,
    /// Seconds from the first server's start to the last server's end.
    pub close_seconds: f64,
    /// ECONNRESETs the clients saw.
    pub resets: u64,
    /// EOFs the clients saw.
    pub eofs: u64,
    /// Other errors the clients saw.
    pub other: u64,
    /// Servers' first close start (ns, `CLOCK_MONOTONIC`).
    pub t0_ns: u64,
    /// Arrival times at the clients, sorted (ns).
    pub arrivals_ns: Vec<u64>,
}

impl KernelResult {
    /// Closes the peer saw the expected way (ECONNRESET for abort, EOF
    /// otherwise).
    pub fn confirmed(&self, mode: Mode) -> u64 {
        if mode.expects_rst() {
            self.resets
        } else {
            self.eofs
        }
    }
}

/// Where the baseline runs.
#[derive(Clone, Debug)]
pub struct Plan {
    /// This binary (re-run as `kernel-worker`).
    pub exe: PathBuf,
    /// The dut namespace (servers).
    pub dut_ns: String,
    /// The peer namespace (clients).
    pub peer_ns: String,
    /// The dut's kernel address, IPv4 or IPv6.
    pub dut_addr: IpAddr,
    /// Connections in all.
    pub connections: usize,
    /// How the servers close.
    pub mode: Mode,
    /// Scratch directory for the arrival files.
    pub scratch: PathBuf,
    /// The longest any step may take.
    pub timeout: Duration,
}

/// Shares of `n` over pairs of at most [`PER_PROCESS`].
pub fn shares(n: usize) -> Vec<usize> {
    let pairs = n.div_ceil(PER_PROCESS).max(1);
    (0..pairs)
        .map(|i| n / pairs + usize::from(i < n % pairs))
        .collect()
}

/// Runs the baseline; `progress` is told each step (for the bar).
pub fn run(plan: &Plan, mut progress: impl FnMut(&str)) -> Result<KernelResult> {
    let shares = shares(plan.connections);
    let deadline = Instant::now() + plan.timeout;
    let secs = format!("{}s", plan.timeout.as_secs().max(1));
    let mode = plan.mode.to_string();
    let addr = plan.dut_addr.to_string();
    let mut servers = Vec::new();
    let mut clients = Vec::new();
    for (i, &k) in shares.iter().enumerate() {
        let port = (BASE_PORT + i as u16).to_string();
        let common = |role: &str| -> Vec<String> {
            ["--role", role, "--addr", &addr, "--port", &port, "--count"]
                .iter()
                .map(|s| (*s).to_owned())
                .chain([k.to_string(), "--mode".into(), mode.clone()])
                .chain(["--timeout".into(), secs.clone()])
                .collect()
        };
        let mut s = spawn_worker(
            &plan.exe,
            &plan.dut_ns,
            format!("kernel server {i}"),
            &common("server"),
        )?;
        expect(&mut s, "listening", deadline)?;
        servers.push(s);
        let mut args = common("client");
        args.push("--out".into());
        args.push(
            plan.scratch
                .join(format!("kernel-{i}.bin"))
                .display()
                .to_string(),
        );
        clients.push(spawn_worker(
            &plan.exe,
            &plan.peer_ns,
            format!("kernel client {i}"),
            &args,
        )?);
    }
    progress("connecting");
    for w in servers.iter_mut().chain(clients.iter_mut()) {
        expect(w, "ready", deadline)?;
    }
    progress("closing");
    for s in &mut servers {
        s.say("go")?;
    }
    let (mut t0, mut t1, mut closed) = (u64::MAX, 0u64, 0usize);
    for s in &mut servers {
        let rest = expect(s, "done", deadline)?;
        let v: Vec<u64> = rest
            .split_whitespace()
            .map(str::parse)
            .collect::<Result<_, _>>()?;
        ensure!(v.len() == 3, "bad server report {rest:?}");
        t0 = t0.min(v[0]);
        t1 = t1.max(v[1]);
        closed += v[2] as usize;
    }
    let mut r = KernelResult {
        connections: closed,
        processes: shares.len(),
        t0_ns: t0,
        ..KernelResult::default()
    };
    for (i, c) in clients.iter_mut().enumerate() {
        let rest = expect(c, "done", deadline)?;
        let v: Vec<u64> = rest
            .split_whitespace()
            .map(str::parse)
            .collect::<Result<_, _>>()?;
        ensure!(v.len() == 3, "bad client report {rest:?}");
        r.resets += v[0];
        r.eofs += v[1];
        r.other += v[2];
        let mut bytes = Vec::new();
        File::open(plan.scratch.join(format!("kernel-{i}.bin")))?.read_to_end(&mut bytes)?;
        r.arrivals_ns.extend(
            bytes
                .chunks_exact(8)
                .map(|b| u64::from_le_bytes(b.try_into().expect("8 bytes"))),
        );
    }
    r.arrivals_ns.sort_unstable();
    r.close_seconds = t1.saturating_sub(t0) as f64 / 1e9;
    r.closes_per_s = closed as f64 / r.close_seconds.max(1e-9);
    for w in servers.iter_mut().chain(clients.iter_mut()) {
        let _ = w.say("exit");
    }
    Ok(r)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shares_respect_the_process_limit() {
        assert_eq!(shares(2000), vec![2000]);
        assert_eq!(shares(15_000), vec![15_000]);
        assert_eq!(shares(15_001), vec![7501, 7500]);
        let s = shares(100_000);
        assert_eq!(s.iter().sum::<usize>(), 100_000);
        assert!(s.iter().all(|&k| k <= PER_PROCESS));
        assert_eq!(s.len(), 7);
    }

    #[test]
    fn linger_options() {
        assert_eq!(linger_of(Mode::Abort), Some(Duration::ZERO));
        assert_eq!(linger_of(Mode::Graceful), None);
        assert_eq!(
            linger_of(Mode::Linger { ms: 1 }),
            Some(Duration::from_secs(1))
        );
        assert_eq!(
            linger_of(Mode::Linger { ms: 2500 }),
            Some(Duration::from_secs(3))
        );
    }
}
