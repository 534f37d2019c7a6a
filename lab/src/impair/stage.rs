//! The stage's I/O shell: two AF_PACKET sockets in the middle namespace,
//! one [`Path`] per direction between them, and the stats file.
//!
//! Frames read on the peer side go through the `to_dut` path and out of
//! the dut side, and the other way round. It sleeps in `ppoll` until a
//! frame arrives or the next one is due (no busy polling). It owns the
//! sockets and the stats file; the decisions are [`Path`]'s, the syscalls
//! [`super::sys`]'s.

use std::io;
use std::path::{Path as FsPath, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use super::path::{Counters, Path};
use super::spec::Spec;
use super::sys::{self, PacketSocket, Recv};

/// How often, at most, the stats file is rewritten while the counters
/// move (so it may lag by about twice this; SIGUSR1 writes it at once).
pub const STATS_INTERVAL: Duration = Duration::from_millis(50);
/// Frames read from one socket before the other gets a turn.
const RECV_BATCH: usize = 256;
/// Ethernet header plus one VLAN tag, on top of the MTU.
const ETH_OVERHEAD: usize = 18;
/// The `to_dut` stream of the seed; `to_peer` is the next.
const TO_DUT_STREAM: u64 = 0;

/// What the stage writes to its stats file (JSON).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Stats {
    /// The spec in canonical form.
    pub spec: String,
    /// The seed of the random streams.
    pub seed: u64,
    /// False once the stage has stopped (the last write).
    pub running: bool,
    /// How many times the file was written, this time included (a reader
    /// that sent SIGUSR1 waits for it to grow).
    pub writes: u64,
    /// Peer -> dut.
    pub to_dut: Counters,
    /// Dut -> peer.
    pub to_peer: Counters,
}

impl Stats {
    /// Reads a stats file.
    pub fn read(path: &FsPath) -> Result<Stats, String> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
        serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))
    }
}

/// Where and how the stage runs.
#[derive(Debug, Clone)]
pub struct Config {
    /// The middle namespace's interface towards the dut.
    pub dut_if: String,
    /// The middle namespace's interface towards the peer.
    pub peer_if: String,
    /// What to do to the frames.
    pub spec: Spec,
    /// Seed of the random streams (a run replays with the same seed).
    pub seed: u64,
    /// The stats file, rewritten atomically (a temporary file, then rename).
    pub stats: PathBuf,
}

fn write_stats(path: &FsPath, stats: &mut Stats) -> io::Result<()> {
    stats.writes += 1;
    let tmp = path.with_extension("json.tmp");
    let text = serde_json::to_string_pretty(stats).map_err(io::Error::other)?;
    std::fs::write(&tmp, text + "\n")?;
    std::fs::rename(&tmp, path)
}

fn max_frame(ifname: &str) -> io::Result<usize> {
    let p = format!("/sys/class/net/{ifname}/mtu");
    let mtu: usize = std::fs::read_to_string(&p)?
        .trim()
        .parse()
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, format!("{p}: {e}")))?;
    Ok(mtu.saturating_add(ETH_OVERHEAD))
}

/// One direction: where frames come from and go to.
struct Direction {
    path: Path,
    from: PacketSocket,
    to: usize,
    max_frame: usize,
}

/// Runs the stage until `stop` is set; `dump` set asks for a stats write
/// now. Returns the final stats, also written to the stats file.
pub fn run(cfg: &Config, stop: &AtomicBool, dump: &AtomicBool) -> io::Result<Stats> {
    let dut_sock = PacketSocket::open(sys::if_index(&cfg.dut_if)?)?;
    let peer_sock = PacketSocket::open(sys::if_index(&cfg.peer_if)?)?;
    let mut dirs = [
        Direction {
            path: Path::new(cfg.spec.to_dut, cfg.seed, TO_DUT_STREAM),
            from: peer_sock,
            to: 1,
            max_frame: max_frame(&cfg.dut_if)?,
        },
        Direction {
            path: Path::new(cfg.spec.to_peer, cfg.seed, TO_DUT_STREAM + 1),
            from: dut_sock,
            to: 0,
            max_frame: max_frame(&cfg.peer_if)?,
        },
    ];
    let buf_len = dirs.iter().map(|d| d.max_frame).max().unwrap_or(0) + 1;
    let mut buf = vec![0u8; buf_len];
    let mut stats = Stats {
        spec: cfg.spec.to_string(),
        seed: cfg.seed,
        running: true,
        writes: 0,
        to_dut: Counters::default(),
        to_peer: Counters::default(),
    };
    // The first write tells deploy/lab the sockets are bound.
    write_stats(&cfg.stats, &mut stats)?;
    let mut written = Instant::now();
    let mut send_error_logged = false;
    let start = Instant::now();
    loop {
        let now = start.elapsed();
        for i in 0..2 {
            while let Some(frame) = dirs[i].path.poll_frame(now) {
                let to = dirs[i].to;
                match dirs[to].from.send(&frame) {
                    Ok(()) => dirs[i].path.counters.frames_out += 1,
                    Err(e) => {
                        dirs[i].path.counters.send_errors += 1;
                        if !std::mem::replace(&mut send_error_logged, true) {
                            eprintln!("lingerd-impair: {e} (counted in send_errors; logged once)");
                        }
                    }
                }
            }
        }
        let stopping = stop.load(Ordering::Relaxed);
        let fresh = Stats {
            to_dut: dirs[0].path.counters,
            to_peer: dirs[1].path.counters,
            running: !stopping,
            ..stats.clone()
        };
        if stopping
            || dump.swap(false, Ordering::Relaxed)
            || (fresh != stats && written.elapsed() >= STATS_INTERVAL)
        {
            stats = fresh;
            write_stats(&cfg.stats, &mut stats)?;
            written = Instant::now();
        }
        if stopping {
            return Ok(stats);
        }
        let mut wait = STATS_INTERVAL;
        for d in &dirs {
            if let Some(due) = d.path.poll_deadline() {
                wait = wait.min(due.saturating_sub(now));
            }
        }
        let readable = sys::poll_readable([&dirs[0].from, &dirs[1].from], wait)?;
        let now = start.elapsed();
        for (d, ready) in dirs.iter_mut().zip(readable) {
            if !ready {
                continue;
            }
            for _ in 0..RECV_BATCH {
                match d.from.recv(&mut buf)? {
                    Recv::Frame(n) if n <= d.max_frame => {
                        d.path.handle_frame(now, buf[..n].to_vec());
                    }
                    Recv::Frame(_) | Recv::Truncated(_) => d.path.counters.oversize += 1,
                    Recv::Outgoing => {}
                    Recv::Empty => break,
                }
            }
            d.path.counters.kernel_drops = d.from.kernel_drops()?;
        }
    }
}
