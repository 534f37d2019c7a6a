//! The dut's client: a `lingerd` client process attached to the daemon in
//! the dut namespace. It listens, takes the load generator's connections and,
//! on `go`, tears them down the way the benchmark asks, timestamping each
//! request with `CLOCK_MONOTONIC` just before it enters the ring.
//!
//! It is this binary re-run as `lingerd-bench lab-dut-client` under `ip
//! netns exec <dut>`; it talks to the orchestrator in lines (stdout:
//! `listening`, `accepted N`, `done …`; stdin: `go`, `exit`). Per-handle
//! modes submit one `Abort` or `Close` per connection through the
//! non-blocking API (`submit` until the ring is full, then reap); `--bulk`
//! submits one `CloseMatching` per ring. `--pace N` spaces requests (or
//! passes the pace to `CloseMatching`). Linger mode sets `SO_LINGER {1, ms}`
//! on every connection before `go` (untimed), then closes blocking-style
//! (the completion comes when the close ends). The request times go to a
//! file as `(key u32, ns u64)` little-endian records ([`super::loadgen::key`];
//! a bulk request is one record with key `u32::MAX`).
//!
//! Lingering connections (`--timer-ports K --timer-linger 120s`, for
//! `ring-latency`): the connections accepted on the first K ports are
//! closed before `go`, untimed, with `SO_LINGER {1, 120 s}` and a blocking
//! close (their completions come when the linger ends, after this process
//! has gone); `accepted` then says `accepted S T`, S connections left for
//! the timed teardown and T closes lingering.
//!
//! Every wait is bounded by `--timeout`; when stdin closes it detaches and
//! exits. It owns its attachment and its file, nothing else.

use std::fs::File;
use std::io::{BufRead, BufWriter, Write};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use lingerd_client::{Client, CloseMode, Done, Errno, Linger, MatchFilter, Prefix, Request};

use super::Mode;
use super::loadgen::key;
use super::{Addressing, Family};
use crate::clock::{Pacer, now_ns};

/// Key of the one record a bulk request writes.
pub const BULK_KEY: u32 = u32::MAX;

/// The `lab-dut-client` subcommand's arguments.
#[derive(Clone, Debug)]
pub struct Args {
    /// The run's address family: the bulk filter names the load
    /// generator's address of it ([`Addressing::generator`]).
    pub family: Family,
    /// The daemon's client socket.
    pub socket: PathBuf,
    /// Ports to listen on.
    pub ports: Vec<u16>,
    /// Connections to expect.
    pub connections: usize,
    /// How to close.
    pub mode: Mode,
    /// One `CloseMatching` instead of per-handle requests.
    pub bulk: bool,
    /// Closes per second (0: as fast as the rings take them).
    pub pace: u32,
    /// Where the request times go.
    pub out: PathBuf,
    /// The longest any step may take.
    pub timeout: Duration,
    /// Connections on the first `timer_ports` ports are closed lingering
    /// before `go` (0: none).
    pub timer_ports: usize,
    /// Their linger time, ms.
    pub timer_linger_ms: u32,
}

/// An errno as an error.
fn errno(e: Errno) -> anyhow::Error {
    anyhow::anyhow!("lingerd: {e:?}")
}

fn say(line: &str) -> Result<()> {
    let mut out = std::io::stdout().lock();
    writeln!(out, "{line}")?;
    out.flush()?;
    Ok(())
}

fn order() -> Result<String> {
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line)?;
    ensure!(!line.is_empty(), "orchestrator went away");
    Ok(line.trim().to_owned())
}

/// Submits `req`, reaping completions into `done` while the ring is full
/// (bounded by `deadline`).
fn submit(c: &mut Client, req: Request<'_>, done: &mut Vec<Done>, deadline: Instant) -> Result<()> {
    loop {
        match c.submit(req) {
            Ok(_) => return Ok(()),
            Err(Errno::NoBufs) => {
                if c.poll_completions(done).map_err(errno)? == 0 {
                    ensure!(Instant::now() < deadline, "ring full past the timeout");
                    c.wait(Duration::from_micros(200)).map_err(errno)?;
                }
            }
            Err(e) => bail!("submit {req:?}: {e:?}"),
        }
    }
}

/// Reaps until `n` completions are in `done` (bounded by `deadline`).
fn reap_until(c: &mut Client, n: usize, done: &mut Vec<Done>, deadline: Instant) -> Result<()> {
    while done.len() < n {
        if c.poll_completions(done).map_err(errno)? == 0 {
            ensure!(
                Instant::now() < deadline,
                "{} of {n} completions before the timeout",
                done.len()
            );
            c.wait(Duration::from_millis(1)).map_err(errno)?;
        }
    }
    Ok(())
}

/// `SO_LINGER {1, ms}` on every connection of `conns`, all confirmed.
fn set_linger(
    c: &mut Client,
    conns: &[(u64, u32)],
    ms: u32,
    done: &mut Vec<Done>,
    deadline: Instant,
) -> Result<()> {
    for &(h, _) in conns {
        let linger = Linger { on: true, ms };
        submit(c, Request::SetLinger { handle: h, linger }, done, deadline)?;
    }
    reap_until(c, conns.len(), done, deadline)?;
    let bad = done.iter().filter(|d| d.result != Errno::Ok).count();
    ensure!(bad == 0, "{bad} SetLinger requests failed");
    done.clear();
    Ok(())
}

/// The `lab-dut-client` subcommand.
pub fn run(args: &Args) -> Result<()> {
    let deadline = Instant::now() + args.timeout;
    let mut c = loop {
        match Client::attach(&args.socket) {
            Ok(c) => break c,
            Err(e) => {
                ensure!(
                    Instant::now() < deadline,
                    "attaching to {}: {e}",
                    args.socket.display()
                );
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    };
    c.set_call_timeout(Duration::from_secs(10));
    let mut listeners = Vec::new();
    for &p in &args.ports {
        let backlog = 65_535;
        listeners.push((
            c.listen(p, backlog)
                .map_err(|e| anyhow::anyhow!("listen {p}: {e:?}"))?,
            p,
        ));
    }
    say("listening")?;

    // Accept everything the load generator opens.
    let mut conns: Vec<(u64, u32)> = Vec::with_capacity(args.connections);
    while conns.len() < args.connections {
        let mut any = false;
        for &(l, port) in &listeners {
            loop {
                match c.accept(l, Duration::ZERO) {
                    Ok((h, peer)) => {
                        conns.push((h, key(peer.port(), port)));
                        any = true;
                    }
                    Err(Errno::WouldBlock | Errno::TimedOut) => break,
                    Err(e) => bail!("accept: {e:?}"),
                }
            }
        }
        if !any {
            ensure!(
                Instant::now() < deadline,
                "accepted {} of {} before the timeout",
                conns.len(),
                args.connections
            );
            c.wait(Duration::from_millis(5)).map_err(errno)?;
        }
    }
    let mut done = Vec::new();
    let timer_ports = &args.ports[..args.timer_ports.min(args.ports.len())];
    let (lingering, conns): (Vec<_>, Vec<_>) = conns
        .into_iter()
        .partition(|&(_, k)| timer_ports.contains(&((k & 0xffff) as u16)));
    if !lingering.is_empty() {
        set_linger(
            &mut c,
            &lingering,
            args.timer_linger_ms,
            &mut done,
            deadline,
        )?;
        for &(h, _) in &lingering {
            let req = Request::Close {
                handle: h,
                nonblocking: false,
            };
            submit(&mut c, req, &mut done, deadline)?;
        }
        // A close that ended at once (an error, or a FIN acknowledged
        // already) would not linger.
        let _ = c.poll_completions(&mut done).map_err(errno)?;
        ensure!(
            done.is_empty(),
            "{} lingering closes completed at once: {:?}",
            done.len(),
            done.first()
        );
    }
    if let Mode::Linger { ms } = args.mode {
        set_linger(&mut c, &conns, ms, &mut done, deadline)?;
    }
    say(&format!("accepted {} {}", conns.len(), lingering.len()))?;
    ensure!(order()? == "go", "expected go");

    let mut times: Vec<(u32, u64)> = Vec::with_capacity(conns.len());
    let expected = if args.bulk {
        let mode = match args.mode {
            Mode::Abort => CloseMode::Abort,
            Mode::Graceful => CloseMode::Graceful,
            Mode::Linger { ms } => CloseMode::Linger { ms },
        };
        let filter = MatchFilter {
            remote: Some(Prefix::host(Addressing::of(args.family).generator)),
            ..MatchFilter::default()
        };
        let rings = c.cores().len();
        times.push((BULK_KEY, now_ns()));
        for ring in 0..rings {
            let req = Request::CloseMatching {
                ring,
                filter,
                mode,
                pace_per_s: args.pace,
            };
            submit(&mut c, req, &mut done, deadline)?;
        }
        rings
    } else {
        let pacer = Pacer::new(args.pace);
        for (i, &(h, k)) in conns.iter().enumerate() {
            pacer.wait(i);
            let req = match args.mode {
                Mode::Abort => Request::Abort { handle: h },
                Mode::Graceful => Request::Close {
                    handle: h,
                    nonblocking: true,
                },
                Mode::Linger { .. } => Request::Close {
                    handle: h,
                    nonblocking: false,
                },
            };
            times.push((k, now_ns()));
            submit(&mut c, req, &mut done, deadline)?;
            // Reap as we go, as a client should: the daemon takes a request
            // only while the completion ring has room for its answer, so a
            // client that reaps only when its request ring is full makes
            // every request wait for the whole ring.
            c.poll_completions(&mut done).map_err(errno)?;
        }
        conns.len()
    };
    let last_request = now_ns();
    reap_until(&mut c, expected, &mut done, deadline)?;
    let errors = done.iter().filter(|d| d.result != Errno::Ok).count();
    let mut w = BufWriter::new(File::create(&args.out).context("request times file")?);
    for (k, t) in &times {
        w.write_all(&k.to_le_bytes())?;
        w.write_all(&t.to_le_bytes())?;
    }
    w.flush()?;
    let first = times.first().map_or(0, |t| t.1);
    say(&format!(
        "done {} {} {errors} {first} {last_request}",
        times.len(),
        done.len()
    ))?;
    let _ = order();
    Ok(())
}

/// Reads a request-times file.
pub fn read_times(path: &std::path::Path) -> Result<Vec<(u32, u64)>> {
    let bytes = std::fs::read(path)?;
    ensure!(bytes.len() % 12 == 0, "truncated request-times file");
    Ok(bytes
        .chunks_exact(12)
        .map(|r| {
            (
                u32::from_le_bytes(r[..4].try_into().expect("4 bytes")),
                u64::from_le_bytes(r[4..].try_into().expect("8 bytes")),
            )
        })
        .collect())
}
