//! The kernel-socket generator of `gen-lab`: the same job as `gen` (open N
//! connections from a set of sources to a set of targets, send a request,
//! read the answer, hold, then close them all in one mode) done with Linux
//! TCP sockets, so that one run reports lingerd ÷ kernel.
//!
//! The open-files limit (20,000 per process) splits the job over worker
//! processes of at most [`PER_PROCESS`] sockets: this binary re-run as
//! `lingerd-bench gen-kernel-worker` under `ip netns exec` in the peer
//! namespace. Worker *k* takes connections `first..first + count` of the
//! whole; connection *i* goes from source `i mod S` to target `(i div S)
//! mod T` on port `1024 + i div (S × T)`, bound explicitly (with
//! `SO_REUSEADDR`, so one port serves every target), so 4-tuples never
//! repeat across workers. It connects without blocking, at most
//! `--window` connections unanswered at a time (the device's backlog is
//! not overrun), sends the request, reads the expected bytes, and says
//! `ready`. On `go` (to every worker at once) each closes all its
//! connections in the mode, timed with `CLOCK_MONOTONIC`:
//!
//! - `abort`: `SO_LINGER {1,0}` and `close()` (an RST).
//! - `graceful`: `SO_LINGER {1, ⌈close-timeout⌉ s}` and a blocking
//!   `close()`, which returns once the FIN is acknowledged; a close that
//!   lasts the whole linger time is a timeout.
//! - `linger=MS`: the same with `⌈MS / 1000⌉ s` (Linux lingers in seconds).
//! - `half`: `shutdown(SHUT_WR)` on all, then each is read until the
//!   device's EOF (confirmed) and closed; at the close timeout the rest are
//!   reset and counted as timeouts.
//! - `peer`: each waits for the device's EOF or RST (either confirms; an
//!   RST is also counted as a device reset), bounded by the timeout; the
//!   device may close before `go` and that counts too.
//!
//! Every wait is bounded; a worker whose stdin closes exits; the workers
//! are killed and reaped when [`run`] returns or fails. It owns its worker
//! processes and their sockets; in the namespace it is given it sets only
//! `net.ipv4.tcp_tw_reuse = 1`, so that a run's ports can be reused while an
//! earlier run's graceful closes sit in TIME-WAIT.

use std::net::{Ipv4Addr, SocketAddrV4};
use std::os::fd::OwnedFd;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail, ensure};
use lingerd_lab::proc::{Ending, Proc, Stderr};
use rustix::event::epoll;
use rustix::io::Errno;
use rustix::net::{AddressFamily, Shutdown, SocketFlags, SocketType, sockopt};

use super::server::{MAX_RESPONSE, Orders, raise_nofile, say, wait};
use super::{Close, EPHEMERAL, capacity};
use crate::clock::now_ns;

/// The most sockets one worker process holds.
pub const PER_PROCESS: usize = super::server::PER_PROCESS;

/// The longest request (it travels as hex on the worker's command line).
pub const MAX_REQUEST: usize = 32 * 1024;

/// Connections a worker has unanswered at most, by default.
pub const DEFAULT_WINDOW: usize = 256;

/// What the kernel generator is asked to do.
#[derive(Clone, Debug)]
pub struct KernelGenConfig {
    /// The namespace the workers run in (the lab's peer namespace).
    pub ns: String,
    /// Kernel-held addresses of that namespace to open from (the caller
    /// added them).
    pub sources: Vec<Ipv4Addr>,
    /// Where to connect.
    pub targets: Vec<SocketAddrV4>,
    /// Connections in all.
    pub connections: usize,
    /// Sent once on each connection when established.
    pub request: Option<Vec<u8>>,
    /// The answer's exact length (0: nothing awaited).
    pub expect_bytes: u64,
    /// How the connections end.
    pub close: Close,
    /// The linger time of `graceful`, the wait for the device's FIN of
    /// `half`.
    pub close_timeout: Duration,
    /// The longest any phase (opening, waiting for the device in `peer`)
    /// may take.
    pub timeout: Duration,
    /// This binary (re-run as `gen-kernel-worker`).
    pub bin: PathBuf,
}

/// What the kernel generator did.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct KernelOutcome {
    /// Worker processes.
    pub processes: usize,
    /// Connections established (handshake completed).
    pub established: u64,
    /// Connections that received the expected bytes (every established
    /// one when nothing is expected).
    pub answered: u64,
    /// Connections that failed before their answer (refused, reset,
    /// closed early, or not done within the timeout).
    pub failed: u64,
    /// Connections closed in the close phase.
    pub closes: u64,
    /// Closes confirmed the mode's way (see the module text).
    pub confirmed: u64,
    /// RSTs the device sent while the connections were held or closing.
    pub device_resets: u64,
    /// Closes that hit their deadline (then reset).
    pub timeouts: u64,
    /// The first close's start (ns, `CLOCK_MONOTONIC`; 0 when none).
    pub first_close_ns: u64,
    /// The last close's end (ns).
    pub last_close_ns: u64,
    /// `closes` ÷ (last end − first start), over all workers.
    pub closes_per_s: f64,
    /// Established and never confirmed closed.
    pub lost: u64,
}

/// The `gen-kernel-worker` subcommand's arguments.
#[derive(Clone, Debug, clap::Args)]
pub struct WorkerArgs {
    /// Source addresses (comma-separated).
    #[arg(long, value_delimiter = ',', required = true)]
    pub sources: Vec<Ipv4Addr>,
    /// Targets (comma-separated ADDR:PORT).
    #[arg(long, value_delimiter = ',', required = true)]
    pub targets: Vec<SocketAddrV4>,
    /// The first connection's index in the whole job.
    #[arg(long, default_value_t = 0)]
    pub first: usize,
    /// Connections of this worker.
    #[arg(long)]
    pub count: usize,
    /// The request, hex-encoded.
    #[arg(long)]
    pub request_hex: Option<String>,
    /// The answer's exact length.
    #[arg(long, default_value_t = 0)]
    pub expect_bytes: u64,
    /// The close mode.
    #[arg(long)]
    pub close: Close,
    /// See [`KernelGenConfig::close_timeout`].
    #[arg(long, default_value = "5s")]
    pub close_timeout: lingerd_abi::vocab::Duration,
    /// See [`KernelGenConfig::timeout`].
    #[arg(long, default_value = "120s")]
    pub timeout: lingerd_abi::vocab::Duration,
    /// Connections unanswered at most.
    #[arg(long, default_value_t = DEFAULT_WINDOW)]
    pub window: usize,
}

/// Hex text of `b`.
fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Bytes of hex text `s`.
fn unhex(s: &str) -> Result<Vec<u8>> {
    ensure!(s.len().is_multiple_of(2), "hex text of odd length");
    (0..s.len())
        .step_by(2)
        .map(|i| {
            s.get(i..i + 2)
                .and_then(|d| u8::from_str_radix(d, 16).ok())
                .with_context(|| format!("'{}' is not hex", s.get(i..i + 2).unwrap_or("?")))
        })
        .collect()
}

/// Where connection `i` of the whole job goes: (source, local port,
/// target); `None` past the 4-tuple capacity.
pub fn tuple(
    i: usize,
    sources: &[Ipv4Addr],
    targets: &[SocketAddrV4],
) -> Option<(Ipv4Addr, u16, SocketAddrV4)> {
    let (s, t) = (sources.len(), targets.len());
    if i >= capacity(s, t) {
        return None;
    }
    let pair = i % (s * t);
    let port = EPHEMERAL.0 + (i / (s * t)) as u16;
    Some((sources[pair % s], port, targets[pair / s]))
}

/// The linger time Linux is given for `close` (`None`: not a lingering
/// mode): whole seconds, rounded up, at least 1.
pub fn linger_secs(close: Close, close_timeout: Duration) -> Option<u64> {
    let ms = match close {
        Close::Graceful => close_timeout.as_millis() as u64,
        Close::Linger { ms } => u64::from(ms),
        Close::Abort | Close::Half | Close::Peer => return None,
    };
    Some(ms.div_ceil(1000).max(1))
}

/// Shares of `n` over workers of at most [`PER_PROCESS`].
pub fn shares(n: usize) -> Vec<usize> {
    crate::lab::kernel::shares(n)
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum St {
    Connecting,
    Sending,
    Reading,
    Held,
    Gone,
}

struct Slot {
    fd: Option<OwnedFd>,
    st: St,
    sent: usize,
    got: u64,
}

const STDIN: u64 = u64::MAX;

/// One worker's state.
struct Gen<'a> {
    args: &'a WorkerArgs,
    request: Vec<u8>,
    ep: OwnedFd,
    slots: Vec<Slot>,
    orders: Orders,
    established: u64,
    answered: u64,
    failed: u64,
    closes: u64,
    confirmed: u64,
    resets: u64,
    timeouts: u64,
    first_ns: u64,
    last_ns: u64,
    /// Unanswered connections now (the window).
    pending: usize,
    /// Connections held or answered and then closed by the device.
    held: usize,
}

impl Gen<'_> {
    /// Starts connection `k` of this worker.
    fn start(&mut self, k: usize) -> Result<()> {
        let (src, port, to) = tuple(self.args.first + k, &self.args.sources, &self.args.targets)
            .context("past the 4-tuple capacity")?;
        let fd = rustix::net::socket_with(
            AddressFamily::INET,
            SocketType::STREAM,
            SocketFlags::NONBLOCK | SocketFlags::CLOEXEC,
            None,
        )
        .context("socket")?;
        sockopt::set_socket_reuseaddr(&fd, true)?;
        let from = SocketAddrV4::new(src, port);
        if let Err(e) = rustix::net::bind(&fd, &from) {
            bail!("bind {from}: {e} (is {src} an address of this namespace?)");
        }
        match rustix::net::connect(&fd, &to) {
            Ok(()) | Err(Errno::INPROGRESS) => {}
            Err(_) => {
                self.failed += 1;
                self.slots[k].st = St::Gone;
                return Ok(());
            }
        }
        epoll::add(
            &self.ep,
            &fd,
            epoll::EventData::new_u64(k as u64),
            epoll::EventFlags::OUT,
        )?;
        self.slots[k].fd = Some(fd);
        self.slots[k].st = St::Connecting;
        self.pending += 1;
        Ok(())
    }

    /// Ends connection `k` before its answer.
    fn fail(&mut self, k: usize) {
        let s = &mut self.slots[k];
        if let Some(fd) = s.fd.take() {
            let _ = sockopt::set_socket_linger(&fd, Some(Duration::ZERO));
        }
        if matches!(s.st, St::Connecting | St::Sending | St::Reading) {
            self.pending -= 1;
        }
        s.st = St::Gone;
        self.failed += 1;
    }

    /// Connection `k` is answered: held until the close phase.
    fn hold(&mut self, k: usize) -> Result<()> {
        self.answered += 1;
        self.pending -= 1;
        self.held += 1;
        let s = &mut self.slots[k];
        s.st = St::Held;
        let fd = s.fd.as_ref().expect("a live slot has its socket");
        if self.args.close == Close::Peer {
            // Watched from now on: the device may close at any time.
            epoll::modify(
                &self.ep,
                fd,
                epoll::EventData::new_u64(k as u64),
                epoll::EventFlags::IN | epoll::EventFlags::RDHUP,
            )?;
        } else {
            epoll::delete(&self.ep, fd)?;
        }
        Ok(())
    }

    /// Writes what is left of the request; `Ok(false)`: the socket failed.
    fn send(&mut self, k: usize) -> Result<bool> {
        let s = &mut self.slots[k];
        let fd = s.fd.as_ref().expect("a live slot has its socket");
        while s.sent < self.request.len() {
            match rustix::io::write(fd, &self.request[s.sent..]) {
                Ok(n) => s.sent += n,
                Err(Errno::AGAIN) => return Ok(true),
                Err(Errno::INTR) => {}
                Err(_) => return Ok(false),
            }
        }
        if self.args.expect_bytes == 0 {
            self.hold(k)?;
            return Ok(true);
        }
        let s = &mut self.slots[k];
        s.st = St::Reading;
        epoll::modify(
            &self.ep,
            s.fd.as_ref().expect("a live slot has its socket"),
            epoll::EventData::new_u64(k as u64),
            epoll::EventFlags::IN | epoll::EventFlags::RDHUP,
        )?;
        Ok(true)
    }

    /// An event on connection `k` while opening (or held, in peer mode).
    fn on_event(&mut self, k: usize) -> Result<()> {
        match self.slots[k].st {
            St::Connecting => {
                let fd = self.slots[k].fd.as_ref().expect("live");
                match sockopt::socket_error(fd)? {
                    Ok(()) => {}
                    Err(_) => {
                        self.fail(k);
                        return Ok(());
                    }
                }
                self.established += 1;
                if !self.request.is_empty() {
                    self.slots[k].st = St::Sending;
                    if !self.send(k)? {
                        self.fail(k);
                    }
                } else if self.args.expect_bytes == 0 {
                    self.hold(k)?;
                } else {
                    self.slots[k].st = St::Reading;
                    let fd = self.slots[k].fd.as_ref().expect("live");
                    epoll::modify(
                        &self.ep,
                        fd,
                        epoll::EventData::new_u64(k as u64),
                        epoll::EventFlags::IN | epoll::EventFlags::RDHUP,
                    )?;
                }
            }
            St::Sending => {
                if !self.send(k)? {
                    self.fail(k);
                }
            }
            St::Reading => {
                let mut buf = [0u8; 16 * 1024];
                loop {
                    let fd = self.slots[k].fd.as_ref().expect("live");
                    match rustix::io::read(fd, &mut buf[..]) {
                        Ok(0) => {
                            self.fail(k);
                            return Ok(());
                        }
                        Ok(n) => {
                            self.slots[k].got += n as u64;
                            if self.slots[k].got >= self.args.expect_bytes {
                                return self.hold(k);
                            }
                        }
                        Err(Errno::AGAIN) => return Ok(()),
                        Err(Errno::INTR) => {}
                        Err(_) => {
                            self.fail(k);
                            return Ok(());
                        }
                    }
                }
            }
            St::Held => self.on_device_close(k, false),
            St::Gone => {}
        }
        Ok(())
    }

    /// A held (peer) or half-closed connection became readable: at the
    /// device's EOF or RST it is closed; data is discarded. `half`: only
    /// an EOF confirms.
    fn on_device_close(&mut self, k: usize, half: bool) {
        let mut buf = [0u8; 16 * 1024];
        let t = now_ns();
        let confirmed = loop {
            let fd = self.slots[k].fd.as_ref().expect("live");
            match rustix::io::read(fd, &mut buf[..]) {
                Ok(0) => break true,
                Ok(_) | Err(Errno::INTR) => {}
                Err(Errno::AGAIN) => return,
                Err(Errno::CONNRESET) => {
                    self.resets += 1;
                    break !half;
                }
                Err(_) => break false,
            }
        };
        drop(self.slots[k].fd.take());
        self.slots[k].st = St::Gone;
        self.held -= 1;
        self.closes += 1;
        self.confirmed += u64::from(confirmed);
        self.first_ns = self.first_ns.min(t);
        self.last_ns = self.last_ns.max(now_ns());
    }

    /// Handles the orders read; `Ok(true)` on `go`.
    fn orders(&mut self) -> Result<bool> {
        let mut go = false;
        for line in self.orders.read()? {
            match line.as_str() {
                "go" => go = true,
                "" => {}
                other => bail!("unknown order {other:?}"),
            }
        }
        Ok(go)
    }

    fn open(&mut self, deadline: Instant) -> Result<()> {
        let window = self.args.window.max(1);
        let mut next = 0;
        let mut events: Vec<epoll::Event> = Vec::with_capacity(1024);
        while next < self.args.count || self.pending > 0 {
            while next < self.args.count && self.pending < window {
                self.start(next)?;
                next += 1;
            }
            if Instant::now() >= deadline {
                break;
            }
            wait(&self.ep, &mut events, 100)?;
            for ev in &events {
                match ev.data.u64() {
                    STDIN => {
                        if self.orders()? {
                            bail!("go before ready");
                        }
                        if self.orders.eof {
                            bail!("the orchestrator went away");
                        }
                    }
                    k => self.on_event(k as usize)?,
                }
            }
        }
        // What is not answered by now failed (timed out): reset.
        for k in 0..self.slots.len() {
            match self.slots[k].st {
                St::Connecting | St::Sending | St::Reading => self.fail(k),
                St::Held | St::Gone => {}
            }
        }
        self.failed += (self.args.count - next) as u64;
        Ok(())
    }

    /// Waits for `go` (peer mode: serving the device's closes meanwhile).
    fn await_go(&mut self, deadline: Instant) -> Result<bool> {
        let mut events: Vec<epoll::Event> = Vec::with_capacity(1024);
        while Instant::now() < deadline {
            wait(&self.ep, &mut events, 100)?;
            for ev in &events {
                match ev.data.u64() {
                    STDIN => {
                        if self.orders()? {
                            return Ok(true);
                        }
                        if self.orders.eof {
                            return Ok(false);
                        }
                    }
                    k => self.on_event(k as usize)?,
                }
            }
        }
        bail!("no go within {:?}", self.args.timeout.to_std())
    }

    fn held_slots(&self) -> Vec<usize> {
        (0..self.slots.len())
            .filter(|&k| self.slots[k].st == St::Held)
            .collect()
    }

    /// Resets connection `k` (closing) and counts the close.
    fn abort(&mut self, k: usize) {
        if let Some(fd) = self.slots[k].fd.take() {
            self.first_ns = self.first_ns.min(now_ns());
            let _ = sockopt::set_socket_linger(&fd, Some(Duration::ZERO));
            drop(fd);
            self.last_ns = self.last_ns.max(now_ns());
            self.closes += 1;
            self.held -= 1;
        }
        self.slots[k].st = St::Gone;
    }

    fn close_abort(&mut self) -> Result<()> {
        let held = self.held_slots();
        self.first_ns = self.first_ns.min(now_ns());
        for k in held {
            let fd = self.slots[k].fd.take().expect("held");
            // Fails only on a socket the device reset meanwhile: closed all
            // the same.
            let _ = sockopt::set_socket_linger(&fd, Some(Duration::ZERO));
            drop(fd);
            self.slots[k].st = St::Gone;
            self.held -= 1;
            self.closes += 1;
            self.confirmed += 1;
        }
        self.last_ns = self.last_ns.max(now_ns());
        Ok(())
    }

    fn close_lingering(&mut self, secs: u64, deadline: Instant) -> Result<()> {
        let held = self.held_slots();
        let linger = Duration::from_secs(secs);
        let mut buf = [0u8; 16 * 1024];
        self.first_ns = self.first_ns.min(now_ns());
        for k in held {
            if Instant::now() >= deadline {
                // Out of time: the rest are reset and counted as timeouts.
                self.timeouts += 1;
                self.abort(k);
                continue;
            }
            let fd = self.slots[k].fd.take().expect("held");
            // Unread bytes would turn the FIN into an RST: drain them.
            let mut reset = false;
            loop {
                match rustix::io::read(&fd, &mut buf[..]) {
                    Ok(0) | Err(Errno::AGAIN) => break,
                    Ok(_) | Err(Errno::INTR) => {}
                    Err(Errno::CONNRESET) => {
                        reset = true;
                        break;
                    }
                    Err(_) => break,
                }
            }
            rustix::io::ioctl_fionbio(&fd, false)?;
            sockopt::set_socket_linger(&fd, Some(linger))?;
            let t = Instant::now();
            drop(fd);
            let took = t.elapsed();
            self.slots[k].st = St::Gone;
            self.held -= 1;
            self.closes += 1;
            if reset {
                self.resets += 1;
            } else if took + Duration::from_millis(1) >= linger {
                self.timeouts += 1;
            } else {
                self.confirmed += 1;
            }
        }
        self.last_ns = self.last_ns.max(now_ns());
        Ok(())
    }

    /// `half` and `peer`: waits for the device's EOF on every held
    /// connection until `deadline`; the rest are reset as timeouts.
    fn close_waiting(&mut self, half: bool, deadline: Instant) -> Result<()> {
        if half {
            let held = self.held_slots();
            self.first_ns = self.first_ns.min(now_ns());
            for k in held {
                let fd = self.slots[k].fd.as_ref().expect("held");
                match rustix::net::shutdown(fd, Shutdown::Write) {
                    Ok(()) => epoll::add(
                        &self.ep,
                        fd,
                        epoll::EventData::new_u64(k as u64),
                        epoll::EventFlags::IN | epoll::EventFlags::RDHUP,
                    )?,
                    Err(Errno::NOTCONN) => {
                        // Reset by the device meanwhile.
                        self.resets += 1;
                        self.abort(k);
                    }
                    Err(e) => return Err(e).context("shutdown"),
                }
            }
        }
        let mut events: Vec<epoll::Event> = Vec::with_capacity(1024);
        while self.held > 0 && Instant::now() < deadline {
            let left = deadline.saturating_duration_since(Instant::now());
            wait(
                &self.ep,
                &mut events,
                (left.as_millis() as u64).clamp(1, 100),
            )?;
            for ev in &events {
                match ev.data.u64() {
                    STDIN => {
                        let _ = self.orders()?;
                        if self.orders.eof {
                            bail!("the orchestrator went away");
                        }
                    }
                    k => {
                        let k = k as usize;
                        if self.slots[k].st == St::Held {
                            self.on_device_close(k, half);
                        }
                    }
                }
            }
        }
        for k in self.held_slots() {
            self.timeouts += 1;
            self.abort(k);
        }
        Ok(())
    }
}

/// The `gen-kernel-worker` subcommand (see the module text): says `ready
/// ESTABLISHED ANSWERED FAILED`, waits for `go`, closes, says `done FIRST
/// LAST CLOSES CONFIRMED RESETS TIMEOUTS` and exits.
pub fn worker(args: &WorkerArgs) -> Result<()> {
    ensure!(
        args.count <= PER_PROCESS,
        "at most {PER_PROCESS} connections per worker (the open-files limit)"
    );
    ensure!(
        args.first.saturating_add(args.count) <= capacity(args.sources.len(), args.targets.len()),
        "connections {}..{} exceed the 4-tuple capacity of {} sources × {} targets",
        args.first,
        args.first.saturating_add(args.count),
        args.sources.len(),
        args.targets.len()
    );
    ensure!(
        args.expect_bytes <= MAX_RESPONSE,
        "--expect-bytes is at most {MAX_RESPONSE}"
    );
    ensure!(
        args.timeout.as_millis() > 0,
        "--timeout must be longer than 0"
    );
    let request = match &args.request_hex {
        Some(h) => unhex(h).context("--request-hex")?,
        None => Vec::new(),
    };
    raise_nofile()?;
    let ep = epoll::create(epoll::CreateFlags::CLOEXEC)?;
    Orders::watch(&ep, STDIN)?;
    let mut g = Gen {
        args,
        request,
        ep,
        slots: (0..args.count)
            .map(|_| Slot {
                fd: None,
                st: St::Gone,
                sent: 0,
                got: 0,
            })
            .collect(),
        orders: Orders::default(),
        established: 0,
        answered: 0,
        failed: 0,
        closes: 0,
        confirmed: 0,
        resets: 0,
        timeouts: 0,
        first_ns: u64::MAX,
        last_ns: 0,
        pending: 0,
        held: 0,
    };
    let timeout = args.timeout.to_std();
    g.open(Instant::now() + timeout)?;
    say(&format!(
        "ready {} {} {}",
        g.established, g.answered, g.failed
    ))?;
    if !g.await_go(Instant::now() + timeout)? {
        return Ok(());
    }
    let close_timeout = args.close_timeout.to_std();
    match args.close {
        Close::Abort => g.close_abort()?,
        Close::Graceful | Close::Linger { .. } => {
            let secs = linger_secs(args.close, close_timeout).expect("a lingering mode");
            g.close_lingering(secs, Instant::now() + timeout)?;
        }
        Close::Half => g.close_waiting(true, Instant::now() + close_timeout)?,
        Close::Peer => g.close_waiting(false, Instant::now() + timeout)?,
    }
    let first = if g.first_ns == u64::MAX {
        0
    } else {
        g.first_ns
    };
    say(&format!(
        "done {first} {} {} {} {} {}",
        g.last_ns, g.closes, g.confirmed, g.resets, g.timeouts
    ))?;
    Ok(())
}

/// Numbers of a worker's line after its word; exactly `n` of them.
fn numbers(rest: &str, n: usize, what: &str) -> Result<Vec<u64>> {
    let v: Vec<u64> = rest
        .split_whitespace()
        .map(str::parse)
        .collect::<Result<_, _>>()
        .map_err(|_| anyhow!("bad {what} line {rest:?}"))?;
    ensure!(v.len() == n, "bad {what} line {rest:?}");
    Ok(v)
}

/// Runs the kernel generator (see the module text); `progress` is told
/// each step.
pub fn run(cfg: &KernelGenConfig, mut progress: impl FnMut(&str)) -> Result<KernelOutcome> {
    ensure!(cfg.connections >= 1, "no connections asked");
    ensure!(!cfg.sources.is_empty(), "no source address");
    ensure!(!cfg.targets.is_empty(), "no target");
    let cap = capacity(cfg.sources.len(), cfg.targets.len());
    ensure!(
        cfg.connections <= cap,
        "{} connections exceed the {cap} 4-tuples of {} sources × {} targets",
        cfg.connections,
        cfg.sources.len(),
        cfg.targets.len()
    );
    let request = cfg.request.clone().unwrap_or_default();
    ensure!(
        request.len() <= MAX_REQUEST,
        "a request of at most {MAX_REQUEST} bytes"
    );
    ensure!(
        cfg.expect_bytes <= MAX_RESPONSE,
        "an answer of at most {MAX_RESPONSE} bytes"
    );
    ensure!(cfg.timeout >= Duration::from_millis(1), "a timeout of 0");
    if cfg.close == Close::Half {
        ensure!(
            cfg.close_timeout >= Duration::from_millis(1),
            "a close timeout of 0"
        );
    }
    ensure!(
        !cfg.ns.is_empty() && !cfg.ns.contains('/'),
        "bad namespace name {:?}",
        cfg.ns
    );
    ensure!(cfg.bin.is_file(), "no binary at {}", cfg.bin.display());
    super::dut::ns_sysctl(&cfg.ns, &[("net.ipv4.tcp_tw_reuse", "1")])?;
    let shares = shares(cfg.connections);
    let list = |v: Vec<String>| v.join(",");
    let sources = list(cfg.sources.iter().map(ToString::to_string).collect());
    let targets = list(cfg.targets.iter().map(ToString::to_string).collect());
    let ms = |d: Duration| format!("{}ms", d.as_millis().max(1));
    let mut workers = Vec::with_capacity(shares.len());
    let mut first = 0;
    progress(&format!(
        "kernel generator: {} connections, {} processes",
        cfg.connections,
        shares.len()
    ));
    for (i, &count) in shares.iter().enumerate() {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &cfg.ns])
            .arg(&cfg.bin)
            .arg("gen-kernel-worker")
            .args(["--sources", &sources, "--targets", &targets])
            .args(["--first", &first.to_string(), "--count", &count.to_string()])
            .args(["--expect-bytes", &cfg.expect_bytes.to_string()])
            .args(["--close", &cfg.close.to_string()])
            .args(["--close-timeout", &ms(cfg.close_timeout)])
            .args(["--timeout", &ms(cfg.timeout)]);
        if !request.is_empty() {
            cmd.args(["--request-hex", &hex(&request)]);
        }
        let name = format!("kernel generator {i}");
        workers.push(
            Proc::spawn(&name, cmd, Stderr::Inherit, Ending::EofThenKill)
                .with_context(|| format!("starting {name}"))?,
        );
        first += count;
    }
    let margin = Duration::from_secs(10);
    let mut out = KernelOutcome {
        processes: workers.len(),
        first_close_ns: u64::MAX,
        ..KernelOutcome::default()
    };
    let deadline = Instant::now() + cfg.timeout + margin;
    for w in &mut workers {
        let left = deadline.saturating_duration_since(Instant::now());
        let v = numbers(&w.expect_rest("ready", left)?, 3, "ready")?;
        out.established += v[0];
        out.answered += v[1];
        out.failed += v[2];
    }
    progress(&format!(
        "kernel generator: {} established, {} answered, {} failed; closing ({})",
        out.established, out.answered, out.failed, cfg.close
    ));
    for w in &mut workers {
        w.say("go")?;
    }
    let deadline = Instant::now() + cfg.timeout.max(cfg.close_timeout) + margin;
    for w in &mut workers {
        let left = deadline.saturating_duration_since(Instant::now());
        let v = numbers(&w.expect_rest("done", left)?, 6, "done")?;
        if v[2] > 0 {
            out.first_close_ns = out.first_close_ns.min(v[0]);
            out.last_close_ns = out.last_close_ns.max(v[1]);
        }
        out.closes += v[2];
        out.confirmed += v[3];
        out.device_resets += v[4];
        out.timeouts += v[5];
    }
    if out.first_close_ns == u64::MAX {
        out.first_close_ns = 0;
    }
    let secs = out.last_close_ns.saturating_sub(out.first_close_ns) as f64 / 1e9;
    out.closes_per_s = if out.closes > 0 {
        out.closes as f64 / secs.max(1e-9)
    } else {
        0.0
    };
    out.lost = out.established.saturating_sub(out.confirmed);
    progress(&format!(
        "kernel generator: {} closes, {} confirmed, {:.0}/s",
        out.closes, out.confirmed, out.closes_per_s
    ));
    for w in &mut workers {
        let _ = w.wait_exit(Duration::from_secs(2));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tuples_never_repeat() {
        let src = [Ipv4Addr::new(198, 18, 0, 2), Ipv4Addr::new(198, 18, 0, 3)];
        let tgt = [
            SocketAddrV4::new(Ipv4Addr::new(198, 18, 0, 1), 80),
            SocketAddrV4::new(Ipv4Addr::new(198, 18, 0, 1), 81),
            SocketAddrV4::new(Ipv4Addr::new(198, 18, 0, 1), 82),
        ];
        let cap = capacity(2, 3);
        let mut seen = std::collections::HashSet::new();
        for i in 0..cap {
            assert!(seen.insert(tuple(i, &src, &tgt).unwrap()), "{i}");
        }
        assert_eq!(tuple(0, &src, &tgt), Some((src[0], 1024, tgt[0])));
        assert_eq!(tuple(1, &src, &tgt), Some((src[1], 1024, tgt[0])));
        assert_eq!(tuple(2, &src, &tgt), Some((src[0], 1024, tgt[1])));
        assert_eq!(tuple(6, &src, &tgt), Some((src[0], 1025, tgt[0])));
        assert_eq!(tuple(cap - 1, &src, &tgt), Some((src[1], 65_535, tgt[2])));
        assert_eq!(tuple(cap, &src, &tgt), None);
    }

    #[test]
    fn linger_times_round_up_to_seconds() {
        let t = Duration::from_millis(1500);
        assert_eq!(linger_secs(Close::Graceful, t), Some(2));
        assert_eq!(linger_secs(Close::Linger { ms: 1 }, t), Some(1));
        assert_eq!(linger_secs(Close::Linger { ms: 2000 }, t), Some(2));
        assert_eq!(linger_secs(Close::Graceful, Duration::ZERO), Some(1));
        assert_eq!(linger_secs(Close::Abort, t), None);
        assert_eq!(linger_secs(Close::Peer, t), None);
    }

    #[test]
    fn hex_round_trips_and_refuses_garbage() {
        let b = b"GET / HTTP/1.1\r\n\x00\xff";
        assert_eq!(unhex(&hex(b)).unwrap(), b);
        assert!(unhex("abc").is_err());
        assert!(unhex("zz").is_err());
        assert!(unhex("é1").is_err());
        assert!(numbers("1 2", 3, "ready").is_err());
        assert!(numbers("1 x 3", 3, "ready").is_err());
        assert_eq!(numbers(" 1 2 3 ", 3, "ready").unwrap(), vec![1, 2, 3]);
    }

    #[test]
    fn run_refuses_bad_jobs_before_starting_anything() {
        let cfg = KernelGenConfig {
            ns: "lgd-none".into(),
            sources: vec![Ipv4Addr::new(198, 18, 0, 2)],
            targets: vec![SocketAddrV4::new(Ipv4Addr::new(198, 18, 0, 1), 80)],
            connections: 10,
            request: None,
            expect_bytes: 0,
            close: Close::Abort,
            close_timeout: Duration::from_secs(1),
            timeout: Duration::from_secs(1),
            bin: "/nonexistent/lingerd-bench".into(),
        };
        let err = |c: &KernelGenConfig| run(c, |_| {}).unwrap_err().to_string();
        assert!(
            err(&KernelGenConfig {
                connections: 70_000,
                ..cfg.clone()
            })
            .contains("4-tuples")
        );
        assert!(
            err(&KernelGenConfig {
                sources: vec![],
                ..cfg.clone()
            })
            .contains("source")
        );
        assert!(
            err(&KernelGenConfig {
                request: Some(vec![0; MAX_REQUEST + 1]),
                ..cfg.clone()
            })
            .contains("request")
        );
        assert!(
            err(&KernelGenConfig {
                ns: "a/b".into(),
                ..cfg.clone()
            })
            .contains("namespace")
        );
        assert!(err(&cfg).contains("no binary"));
    }
}
