//! The kernel server behind `gen-lab`'s devices: `lingerd-bench
//! gen-lab-server`, one process of several sharing a port with
//! `SO_REUSEPORT` in the dut namespace ([`super::dut`] starts them). Each is
//! an epoll loop over nonblocking kernel sockets: it accepts, writes its
//! response once on a connection's first data, reads and discards the
//! rest, closes on EOF (the generator's FIN gets the server's FIN: the
//! device's part of a graceful close), closes on an error (counting
//! resets), and, with `--idle-close`, closes connections idle that long (the
//! device that closes first, for `--close peer`). A process at its
//! connection limit stops accepting until one closes.
//!
//! It also holds the few line-protocol helpers that both worker kinds of
//! the generator ([`super::kernel`]) use: orders on stdin read through the
//! same epoll loop (a closed stdin means exit), answers on stdout. It owns
//! its sockets and nothing else.

use std::io::Write;
use std::net::SocketAddrV4;
use std::os::fd::{AsFd, OwnedFd};

use anyhow::{Context, Result, bail, ensure};
use rustix::event::epoll;
use rustix::io::Errno;
use rustix::net::{AddressFamily, SocketFlags, SocketType, sockopt};

use crate::clock::now_ns;

/// The most sockets one process holds (the hard open-files limit is
/// 20,000; the rest is headroom), as in [`crate::lab::kernel::PER_PROCESS`].
pub const PER_PROCESS: usize = crate::lab::kernel::PER_PROCESS;

/// The largest response the server sends (bytes).
pub const MAX_RESPONSE: u64 = 16 << 20;

/// The `gen-lab-server` subcommand's arguments.
#[derive(Clone, Debug, clap::Args)]
pub struct ServerArgs {
    /// Where to listen (the port is shared with the other processes).
    #[arg(long)]
    pub listen: SocketAddrV4,
    /// Bytes written once on each connection's first data.
    #[arg(long)]
    pub response_bytes: u64,
    /// Connections this process holds at most (it stops accepting there).
    #[arg(long, default_value_t = PER_PROCESS)]
    pub max_conns: usize,
    /// Close connections idle this long (the device closes first).
    #[arg(long)]
    pub idle_close: Option<lingerd_abi::vocab::Duration>,
    /// Answer with an HTTP/1.1 200 response of that size (a backend for
    /// HAProxy in HTTP mode) instead of raw bytes.
    #[arg(long)]
    pub http: bool,
}

/// What a server process counted (its answer to `stats`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ServerStats {
    /// Connections accepted.
    pub accepted: u64,
    /// Responses written in full.
    pub answered: u64,
    /// Connections closed on the client's EOF.
    pub eofs: u64,
    /// Connections closed on ECONNRESET (or EPIPE).
    pub resets: u64,
    /// Connections closed on another error.
    pub errors: u64,
    /// Connections closed for being idle.
    pub idle_closed: u64,
    /// Connections open now.
    pub open: u64,
}

impl ServerStats {
    const KEYS: [&'static str; 7] = [
        "accepted",
        "answered",
        "eofs",
        "resets",
        "errors",
        "idle_closed",
        "open",
    ];

    fn values(&self) -> [u64; 7] {
        [
            self.accepted,
            self.answered,
            self.eofs,
            self.resets,
            self.errors,
            self.idle_closed,
            self.open,
        ]
    }

    /// The `stats` line's text after the word (`accepted=N …`).
    pub fn to_line(&self) -> String {
        Self::KEYS
            .iter()
            .zip(self.values())
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(" ")
    }

    /// Parses [`ServerStats::to_line`]'s text.
    pub fn parse(line: &str) -> Result<ServerStats> {
        let mut v = [None; 7];
        for word in line.split_whitespace() {
            let (k, n) = word
                .split_once('=')
                .with_context(|| format!("server stats: '{word}' is not KEY=N"))?;
            let i = Self::KEYS
                .iter()
                .position(|&key| key == k)
                .with_context(|| format!("server stats: unknown key '{k}'"))?;
            v[i] = Some(
                n.parse::<u64>()
                    .with_context(|| format!("server stats: {k}={n} is not a count"))?,
            );
        }
        let get = |i: usize| v[i].with_context(|| format!("server stats lack {}", Self::KEYS[i]));
        Ok(ServerStats {
            accepted: get(0)?,
            answered: get(1)?,
            eofs: get(2)?,
            resets: get(3)?,
            errors: get(4)?,
            idle_closed: get(5)?,
            open: get(6)?,
        })
    }

    /// The sum of two processes' counts.
    pub fn add(&mut self, o: &ServerStats) {
        self.accepted += o.accepted;
        self.answered += o.answered;
        self.eofs += o.eofs;
        self.resets += o.resets;
        self.errors += o.errors;
        self.idle_closed += o.idle_closed;
        self.open += o.open;
    }
}

/// The bytes the server answers with: `n` raw bytes, or (`http`) an
/// HTTP/1.1 200 response of `n` bytes in all when `n` holds its headers
/// (of the smallest such response otherwise).
pub fn response(n: u64, http: bool) -> Vec<u8> {
    if !http {
        return b"lingerd\n"
            .iter()
            .copied()
            .cycle()
            .take(n as usize)
            .collect();
    }
    let head = |len: u64| {
        format!(
            "HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nContent-Length: {len}\r\n\r\n"
        )
    };
    // The body length is n minus the head, whose length depends on the
    // body length's digits: find a digit count that agrees (none does for
    // a few sizes, such as a head plus 10: then one byte less).
    let fixed = head(0).len() as u64 - 1;
    let body = (1..=20u64)
        .filter_map(|d| Some((d, n.checked_sub(fixed + d)?)))
        .find(|&(d, len)| len.to_string().len() as u64 == d)
        .or_else(|| {
            (1..=20u64)
                .filter_map(|d| Some((d, n.checked_sub(fixed + d + 1)?)))
                .find(|&(d, len)| len.to_string().len() as u64 == d)
        })
        .map_or(0, |(_, len)| len);
    let mut out = head(body).into_bytes();
    out.extend(b"lingerd\n".iter().copied().cycle().take(body as usize));
    out
}

/// Raises the soft open-files limit to the hard one.
pub(crate) fn raise_nofile() -> Result<()> {
    use rustix::process::{Resource, getrlimit, setrlimit};
    let mut lim = getrlimit(Resource::Nofile);
    lim.current = lim.maximum;
    setrlimit(Resource::Nofile, lim).context("raising RLIMIT_NOFILE")?;
    Ok(())
}

/// The hard open-files limit of this process (`None`: unlimited).
pub fn nofile_limit() -> Option<u64> {
    rustix::process::getrlimit(rustix::process::Resource::Nofile).maximum
}

/// One line to the orchestrator.
pub(crate) fn say(line: &str) -> Result<()> {
    let mut out = std::io::stdout().lock();
    writeln!(out, "{line}")?;
    out.flush()?;
    Ok(())
}

/// The orchestrator's orders: lines on stdin, read without blocking when
/// epoll says stdin is readable (so one loop serves sockets and orders).
#[derive(Debug, Default)]
pub(crate) struct Orders {
    buf: Vec<u8>,
    /// Stdin reached its end: the orchestrator is gone.
    pub(crate) eof: bool,
}

impl Orders {
    /// Registers stdin with `ep` under `key`; stdin must be a pipe.
    pub(crate) fn watch(ep: &OwnedFd, key: u64) -> Result<()> {
        epoll::add(
            ep,
            std::io::stdin().as_fd(),
            epoll::EventData::new_u64(key),
            epoll::EventFlags::IN,
        )
        .context("watching stdin (a worker's stdin must be a pipe from its orchestrator)")
    }

    /// Reads what stdin holds (once: it is readable) and returns the
    /// complete lines.
    pub(crate) fn read(&mut self) -> Result<Vec<String>> {
        let mut chunk = [0u8; 512];
        match rustix::io::read(std::io::stdin().as_fd(), &mut chunk[..]) {
            Ok(0) => self.eof = true,
            Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
            Err(Errno::AGAIN | Errno::INTR) => {}
            Err(e) => return Err(e).context("reading stdin"),
        }
        ensure!(
            self.buf.len() <= 4096,
            "an order line longer than 4096 bytes"
        );
        let mut lines = Vec::new();
        while let Some(i) = self.buf.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = self.buf.drain(..=i).collect();
            lines.push(String::from_utf8_lossy(&line).trim().to_owned());
        }
        Ok(lines)
    }
}

/// An epoll wait of at most `ms` milliseconds into `events`.
pub(crate) fn wait(ep: &OwnedFd, events: &mut Vec<epoll::Event>, ms: u64) -> Result<()> {
    events.clear();
    let t = rustix::time::Timespec {
        tv_sec: (ms / 1000) as i64,
        tv_nsec: ((ms % 1000) * 1_000_000) as i64,
    };
    match epoll::wait(ep, rustix::buffer::spare_capacity(events), Some(&t)) {
        Ok(_) | Err(Errno::INTR) => Ok(()),
        Err(e) => Err(e).context("epoll_wait"),
    }
}

/// A nonblocking listener on `addr` sharing its port (`SO_REUSEPORT`).
fn reuseport_listener(addr: SocketAddrV4) -> Result<OwnedFd> {
    let fd = rustix::net::socket_with(
        AddressFamily::INET,
        SocketType::STREAM,
        SocketFlags::NONBLOCK | SocketFlags::CLOEXEC,
        None,
    )?;
    sockopt::set_socket_reuseaddr(&fd, true)?;
    sockopt::set_socket_reuseport(&fd, true)?;
    rustix::net::bind(&fd, &addr).with_context(|| format!("bind {addr}"))?;
    // The kernel caps the backlog at net.core.somaxconn (the dut raises it).
    rustix::net::listen(&fd, 65_535).with_context(|| format!("listen on {addr}"))?;
    Ok(fd)
}

/// One accepted connection.
struct Conn {
    fd: OwnedFd,
    /// Response bytes written (`None`: no data seen yet).
    sent: Option<usize>,
    /// Last activity, ns.
    last_ns: u64,
}

const LISTENER: u64 = u64::MAX;
const STDIN: u64 = u64::MAX - 1;

/// Why a connection closes.
#[derive(Clone, Copy)]
enum End {
    Eof,
    Reset,
    Error,
    Idle,
}

struct Server<'a> {
    args: &'a ServerArgs,
    response: Vec<u8>,
    ep: OwnedFd,
    listener: OwnedFd,
    accepting: bool,
    conns: Vec<Option<Conn>>,
    free: Vec<usize>,
    stats: ServerStats,
}

/// What to watch on a connection: writability only while a response is
/// pending.
fn interest(c: &Conn, response_len: usize) -> epoll::EventFlags {
    let sending = c.sent.is_some_and(|s| s < response_len);
    let base = epoll::EventFlags::IN | epoll::EventFlags::RDHUP;
    if sending {
        base | epoll::EventFlags::OUT
    } else {
        base
    }
}

impl Server<'_> {
    fn accept(&mut self) -> Result<()> {
        while self.stats.open < self.args.max_conns as u64 {
            let fd = match rustix::net::accept_with(
                &self.listener,
                SocketFlags::NONBLOCK | SocketFlags::CLOEXEC,
            ) {
                Ok(fd) => fd,
                Err(Errno::AGAIN) => return Ok(()),
                Err(Errno::INTR | Errno::CONNABORTED) => continue,
                Err(Errno::MFILE | Errno::NFILE | Errno::NOBUFS | Errno::NOMEM) => {
                    // Out of descriptors or memory: pause until one closes.
                    self.pause()?;
                    return Ok(());
                }
                Err(e) => return Err(e).context("accept"),
            };
            let i = self.free.pop().unwrap_or_else(|| {
                self.conns.push(None);
                self.conns.len() - 1
            });
            epoll::add(
                &self.ep,
                &fd,
                epoll::EventData::new_u64(i as u64),
                epoll::EventFlags::IN | epoll::EventFlags::RDHUP,
            )?;
            self.conns[i] = Some(Conn {
                fd,
                sent: None,
                last_ns: now_ns(),
            });
            self.stats.accepted += 1;
            self.stats.open += 1;
        }
        self.pause()
    }

    fn pause(&mut self) -> Result<()> {
        if self.accepting {
            epoll::delete(&self.ep, &self.listener)?;
            self.accepting = false;
        }
        Ok(())
    }

    fn close(&mut self, i: usize, why: End) -> Result<()> {
        let Some(c) = self.conns[i].take() else {
            return Ok(());
        };
        drop(c.fd); // leaves epoll with it
        self.free.push(i);
        self.stats.open -= 1;
        match why {
            End::Eof => self.stats.eofs += 1,
            End::Reset => self.stats.resets += 1,
            End::Error => self.stats.errors += 1,
            End::Idle => self.stats.idle_closed += 1,
        }
        if !self.accepting {
            epoll::add(
                &self.ep,
                &self.listener,
                epoll::EventData::new_u64(LISTENER),
                epoll::EventFlags::IN,
            )?;
            self.accepting = true;
        }
        Ok(())
    }

    /// Serves connection `i` after an event: reads, answers, closes.
    fn serve(&mut self, i: usize) -> Result<()> {
        let mut buf = [0u8; 16 * 1024];
        let Some(c) = self.conns[i].as_mut() else {
            return Ok(());
        };
        c.last_ns = now_ns();
        loop {
            match rustix::io::read(&c.fd, &mut buf[..]) {
                Ok(0) => return self.close(i, End::Eof),
                Ok(_) => {
                    if c.sent.is_none() {
                        c.sent = Some(0);
                    }
                }
                Err(Errno::AGAIN) => break,
                Err(Errno::INTR) => {}
                Err(Errno::CONNRESET) => return self.close(i, End::Reset),
                Err(_) => return self.close(i, End::Error),
            }
        }
        let before = interest(c, self.response.len());
        if let Some(sent) = c.sent.as_mut() {
            while *sent < self.response.len() {
                match rustix::io::write(&c.fd, &self.response[*sent..]) {
                    Ok(n) => {
                        *sent += n;
                        if *sent == self.response.len() {
                            self.stats.answered += 1;
                        }
                    }
                    Err(Errno::AGAIN) => break,
                    Err(Errno::INTR) => {}
                    Err(Errno::CONNRESET | Errno::PIPE) => return self.close(i, End::Reset),
                    Err(_) => return self.close(i, End::Error),
                }
            }
        }
        // Watch for writability only while a response is pending (the
        // flags are rewritten when that changes).
        let Some(c) = self.conns[i].as_ref() else {
            return Ok(());
        };
        let after = interest(c, self.response.len());
        if before != after || after.contains(epoll::EventFlags::OUT) {
            epoll::modify(&self.ep, &c.fd, epoll::EventData::new_u64(i as u64), after)?;
        }
        Ok(())
    }

    /// Closes every connection idle for `idle_ns` or longer.
    fn close_idle(&mut self, idle_ns: u64) -> Result<()> {
        let now = now_ns();
        for i in 0..self.conns.len() {
            if self.conns[i]
                .as_ref()
                .is_some_and(|c| now.saturating_sub(c.last_ns) >= idle_ns)
            {
                self.close(i, End::Idle)?;
            }
        }
        Ok(())
    }
}

/// The `gen-lab-server` subcommand: says `listening`, then serves until
/// stdin closes; answers `stats` with `stats KEY=N …` ([`ServerStats`]).
pub fn serve(args: &ServerArgs) -> Result<()> {
    ensure!(
        (1..=PER_PROCESS).contains(&args.max_conns),
        "--max-conns must be 1..={PER_PROCESS} (the open-files limit)"
    );
    ensure!(
        args.response_bytes <= MAX_RESPONSE,
        "--response-bytes is at most {MAX_RESPONSE}"
    );
    if let Some(d) = args.idle_close {
        ensure!(d.as_millis() > 0, "--idle-close must be longer than 0");
    }
    raise_nofile()?;
    let ep = epoll::create(epoll::CreateFlags::CLOEXEC)?;
    let listener = reuseport_listener(args.listen)?;
    epoll::add(
        &ep,
        &listener,
        epoll::EventData::new_u64(LISTENER),
        epoll::EventFlags::IN,
    )?;
    Orders::watch(&ep, STDIN)?;
    let mut s = Server {
        args,
        response: response(args.response_bytes, args.http),
        ep,
        listener,
        accepting: true,
        conns: Vec::new(),
        free: Vec::new(),
        stats: ServerStats::default(),
    };
    let mut orders = Orders::default();
    let idle_ns = args
        .idle_close
        .map(|d| d.as_millis().saturating_mul(1_000_000));
    // Idle connections are looked for this often (a tenth of the idle
    // time, 5 ms to 100 ms).
    let scan_ms = args
        .idle_close
        .map_or(1000, |d| (d.as_millis() / 10).clamp(5, 100));
    let mut next_scan = now_ns();
    let mut events: Vec<epoll::Event> = Vec::with_capacity(1024);
    say("listening")?;
    loop {
        wait(&s.ep, &mut events, scan_ms)?;
        for ev in &events {
            match ev.data.u64() {
                LISTENER => s.accept()?,
                STDIN => {
                    for line in orders.read()? {
                        match line.as_str() {
                            "stats" => say(&format!("stats {}", s.stats.to_line()))?,
                            "exit" => return Ok(()),
                            "" => {}
                            other => bail!("unknown order {other:?}"),
                        }
                    }
                    if orders.eof {
                        return Ok(());
                    }
                }
                i => s.serve(i as usize)?,
            }
        }
        if let Some(idle) = idle_ns {
            let now = now_ns();
            if now >= next_scan {
                s.close_idle(idle)?;
                next_scan = now + scan_ms * 1_000_000;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn responses_have_the_asked_size() {
        assert_eq!(response(0, false), b"");
        assert_eq!(response(10, false), b"lingerd\nli");
        for n in [78, 80, 99, 100, 101, 150, 1000, 1_000_000] {
            let r = response(n, true);
            assert_eq!(r.len() as u64, n, "{n}");
            let text = String::from_utf8_lossy(&r);
            let head_end = text.find("\r\n\r\n").unwrap() + 4;
            let len: u64 = text
                .split("Content-Length: ")
                .nth(1)
                .and_then(|t| t.split("\r\n").next())
                .unwrap()
                .parse()
                .unwrap();
            assert_eq!(head_end as u64 + len, n);
        }
        // No head fits 88 bytes exactly (9 bytes of body need 87, 10 need
        // 89): one byte less.
        assert_eq!(response(88, true).len(), 87);
        // Too small for the head: the smallest response, with no body.
        let r = response(5, true);
        assert!(r.ends_with(b"Content-Length: 0\r\n\r\n"));
    }

    #[test]
    fn stats_lines_round_trip_and_refuse_garbage() {
        let s = ServerStats {
            accepted: 5,
            answered: 4,
            eofs: 3,
            resets: 1,
            errors: 0,
            idle_closed: 2,
            open: 0,
        };
        assert_eq!(ServerStats::parse(&s.to_line()).unwrap(), s);
        assert!(ServerStats::parse("accepted=1").is_err());
        assert!(ServerStats::parse("bogus=1").is_err());
        assert!(ServerStats::parse("accepted=x").is_err());
    }
}
