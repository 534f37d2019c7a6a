//! The stage's I/O shell: two AF_PACKET sockets in the middle namespace,
//! one [`Path`] per direction between them, and the stats file.
//!
//! Frames read on the peer side go through the `to_dut` path and out of
//! the dut side, and the other way round, each direction on its own
//! thread, which sleeps in `ppoll` until a frame arrives or the next one
//! is due (no busy polling); the calling thread writes the stats file
//! every [`STATS_INTERVAL`] while the counters move. It owns the
//! sockets and the stats file; the decisions are [`Path`]'s, the syscalls
//! `super::sys`'s.

use std::io;
use std::path::{Path as FsPath, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::path::{Counters, Path};
use super::spec::Spec;
use super::sys::{self, PacketSocket, Recv};

/// How often the stats file is rewritten while the counters move (so it
/// may lag by about twice this; SIGUSR1 writes it within this).
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

/// One direction's thread: reads `from`, impairs, writes `to`, and
/// publishes its counters in `shared` after every round.
struct Direction {
    path: Path,
    from: Arc<PacketSocket>,
    to: Arc<PacketSocket>,
    max_frame: usize,
    shared: Arc<Mutex<Counters>>,
}

impl Direction {
    fn run(mut self, start: Instant, stop: &AtomicBool) -> io::Result<()> {
        let mut buf = vec![0u8; self.max_frame + 1];
        let mut send_error_logged = false;
        loop {
            let now = start.elapsed();
            while let Some(frame) = self.path.poll_frame(now) {
                match self.to.send(&frame) {
                    Ok(()) => self.path.counters.frames_out += 1,
                    Err(e) => {
                        self.path.counters.send_errors += 1;
                        if !std::mem::replace(&mut send_error_logged, true) {
                            eprintln!("lingerd-impair: {e} (counted in send_errors; logged once)");
                        }
                    }
                }
            }
            *self.shared.lock().unwrap_or_else(|e| e.into_inner()) = self.path.counters;
            if stop.load(Ordering::Relaxed) {
                return Ok(());
            }
            let wait = self
                .path
                .poll_deadline()
                .map_or(STATS_INTERVAL, |due| due.saturating_sub(now))
                .min(STATS_INTERVAL);
            if !sys::poll_readable(&self.from, wait)? {
                continue;
            }
            let now = start.elapsed();
            for _ in 0..RECV_BATCH {
                match self.from.recv(&mut buf)? {
                    Recv::Frame(n) if n <= self.max_frame => {
                        self.path.handle_frame(now, buf[..n].to_vec());
                    }
                    Recv::Frame(_) | Recv::Truncated(_) => self.path.counters.oversize += 1,
                    Recv::Outgoing => {}
                    Recv::Empty => break,
                }
            }
            self.path.counters.kernel_drops += self.from.take_kernel_drops()?;
        }
    }
}

/// Runs the stage until `stop` is set; `dump` set asks for a stats write
/// now. Each direction runs on its own thread (they share nothing but the
/// sockets); this one writes the stats file. Returns the final stats, also
/// written to the stats file.
pub fn run(cfg: &Config, stop: &AtomicBool, dump: &AtomicBool) -> io::Result<Stats> {
    let dut_sock = Arc::new(PacketSocket::open(sys::if_index(&cfg.dut_if)?)?);
    let peer_sock = Arc::new(PacketSocket::open(sys::if_index(&cfg.peer_if)?)?);
    let shared = [
        Arc::new(Mutex::new(Counters::default())),
        Arc::new(Mutex::new(Counters::default())),
    ];
    let dirs = [
        Direction {
            path: Path::new(cfg.spec.to_dut, cfg.seed, TO_DUT_STREAM),
            from: Arc::clone(&peer_sock),
            to: Arc::clone(&dut_sock),
            max_frame: max_frame(&cfg.dut_if)?,
            shared: Arc::clone(&shared[0]),
        },
        Direction {
            path: Path::new(cfg.spec.to_peer, cfg.seed, TO_DUT_STREAM + 1),
            from: dut_sock,
            to: peer_sock,
            max_frame: max_frame(&cfg.peer_if)?,
            shared: Arc::clone(&shared[1]),
        },
    ];
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
    let start = Instant::now();
    let ended = std::thread::scope(|scope| {
        let threads = dirs.map(|d| scope.spawn(move || d.run(start, stop)));
        let read = |i: usize| *shared[i].lock().unwrap_or_else(|e| e.into_inner());
        let mut failed = None;
        // A direction that ended (it failed) or a failed write stops all.
        while !stop.load(Ordering::Relaxed) {
            std::thread::sleep(STATS_INTERVAL);
            if threads.iter().any(|t| t.is_finished()) {
                break;
            }
            let fresh = Stats {
                to_dut: read(0),
                to_peer: read(1),
                ..stats.clone()
            };
            if dump.swap(false, Ordering::Relaxed) || fresh != stats {
                stats = fresh;
                if let Err(e) = write_stats(&cfg.stats, &mut stats) {
                    failed = Some(e);
                    break;
                }
            }
        }
        stop.store(true, Ordering::Relaxed);
        for t in threads {
            let e = match t.join() {
                Ok(Ok(())) => continue,
                Ok(Err(e)) => e,
                Err(_) => io::Error::other("a direction's thread panicked"),
            };
            failed.get_or_insert(e);
        }
        stats = Stats {
            to_dut: read(0),
            to_peer: read(1),
            running: false,
            ..stats.clone()
        };
        write_stats(&cfg.stats, &mut stats)?;
        failed.map_or(Ok(()), Err)
    });
    ended.map(|()| stats)
}
