//! The DPDK port: one RX/TX queue pair of a DPDK ethdev (a memif, ring,
//! tap, af_packet or null vdev; NIC drivers later), one mempool per queue.
//!
//! [`DpdkPort::open_queues`] probes the device named by
//! [`DpdkConfig::device`] on the process-wide EAL ([`Eal`]), configures one
//! queue pair per core (RSS over TCP/IPv4 where the driver hashes), starts
//! it and returns one port per queue; [`DpdkPort::open`] is the one-queue
//! case. It implements [`Port`] as the AF_XDP port does, so the same
//! [`core_loop`](crate::port::core_loop) drives it: `tx_frame` →
//! [`TxOutcome`] lets the engine write straight into the mbuf's data room,
//! `flush` is `rte_eth_tx_burst`, and `wait` is a bounded sleep (no RX
//! interrupt). There is no steering: DPDK owns the whole device, and the
//! engine drops frames that are not for its MAC and answers ARP itself.
//! Frames of a flow another queue owns move over [`crate::port::handoff`]
//! as with AF_XDP.
//!
//! It owns the queue, its mbufs and its counters; it may not parse frames
//! or keep protocol state (the engine's), nor use `unsafe` (all of it is in
//! [`crate::sys::dpdk`], behind owned mbuf tokens). The EAL's lifecycle is
//! the caller's: initialise it once ([`Eal::init`]), register each
//! dataplane thread ([`Eal::register_thread`]), and after the ports are
//! dropped call [`Eal::shutdown`].

use std::fmt;
use std::io;
use std::os::fd::BorrowedFd;
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

use rustix::event::{PollFd, PollFlags, Timespec};

/// The loop's idle mode and the TX outcome (defined in [`crate::port`]).
pub use crate::port::{IdleMode, TxOutcome};
use crate::port::{Port, RxPass};
use crate::sys::dpdk::{DeviceConfig, EthDevice, EthQueue};
pub use crate::sys::dpdk::{
    DeviceInfo, DpdkError, Eal, EalConfig, EalMemory, EthStats, LcoreGuard, Mbuf, PCI_BUS,
};

/// The longest single sleep of [`DpdkPort::wait`]: DPDK 22.11's memif has
/// no RX interrupt to sleep on, so an idle loop wakes this often to poll.
pub const WAIT_SLICE: Duration = Duration::from_micros(250);

/// How to open the port.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DpdkConfig {
    /// The device: vdev arguments (`net_memif0,role=server,socket=/run/lingerd/memif0.sock,socket-abstract=no`,
    /// `net_af_packet0,iface=eth1`, `net_ring0`) or the name of a device
    /// EAL probed from its own arguments.
    pub device: String,
    /// RX/TX queue pairs, one per dataplane core.
    pub queues: u16,
    /// RX descriptors per queue.
    pub rx_ring: u16,
    /// TX descriptors per queue; also the most frames that may wait for the
    /// PMD in [`DpdkPort::tx_in_flight`].
    pub tx_ring: u16,
    /// Mbufs in each queue's mempool.
    pub mbufs: u32,
    /// Per-lcore cache of each mempool (0 = none).
    pub mempool_cache: u32,
    /// The most frames one `rx_burst` or `tx_burst` call moves.
    pub burst: u16,
}

impl DpdkConfig {
    /// Defaults for `device`: one queue, 1,024-entry rings, 8,191 mbufs
    /// with a 256-mbuf cache, bursts of 64.
    pub fn new(device: &str) -> DpdkConfig {
        DpdkConfig {
            device: device.to_owned(),
            queues: 1,
            rx_ring: 1_024,
            tx_ring: 1_024,
            mbufs: 8_191,
            mempool_cache: 256,
            burst: 64,
        }
    }

    /// The value of `key=` in the device arguments, if present.
    fn device_arg(&self, key: &str) -> Option<&str> {
        self.device
            .split(',')
            .skip(1)
            .filter_map(|kv| kv.split_once('='))
            .find(|(k, _)| k.trim() == key)
            .map(|(_, v)| v.trim())
    }

    /// For a memif server on a socket file: removes the file when it is
    /// stale (nobody accepts on it), as a crashed run leaves it and memif
    /// then fails to probe. A live socket is left alone (probing then fails
    /// and says so).
    fn remove_stale_memif_socket(&self) {
        if !self.device.starts_with("net_memif")
            || self.device_arg("role") != Some("server")
            || self.device_arg("socket-abstract") != Some("no")
        {
            return;
        }
        let Some(path) = self.device_arg("socket").map(Path::new) else {
            return;
        };
        if path.exists()
            && let Err(e) = UnixStream::connect(path)
            && e.kind() == io::ErrorKind::ConnectionRefused
        {
            let _ = std::fs::remove_file(path);
        }
    }
}

/// What the port got; printed at start-up.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DpdkInfo {
    /// The device.
    pub device: DeviceInfo,
    /// This port's queue.
    pub queue: u16,
    /// Mbufs in its mempool.
    pub mbufs: u32,
}

impl fmt::Display for DpdkInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let m = self.device.mac;
        write!(
            f,
            "DPDK {} ({}, port {}) queue {} of {}: MAC {:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}, RSS {}, {} mbufs",
            self.device.name,
            self.device.driver,
            self.device.port_id,
            self.queue,
            self.device.queues,
            m[0],
            m[1],
            m[2],
            m[3],
            m[4],
            m[5],
            if self.device.rss { "on" } else { "off" },
            self.mbufs
        )
    }
}

/// The port's own counters (the device's are in [`EthStats`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DpdkCounters {
    /// Frames received and handed on.
    pub rx_frames: u64,
    /// Chained (multi-segment) frames received and dropped unread.
    pub rx_chained: u64,
    /// Frames queued for the PMD.
    pub tx_frames: u64,
    /// Times a frame was wanted for TX and no mbuf was free.
    pub tx_no_frame: u64,
    /// Times the sleep-mode loop slept.
    pub sleeps: u64,
    /// Iterations of the engine loop.
    pub loops: u64,
}

/// Everything countable about a port: ours plus the device's.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DpdkStats {
    /// The port's counters.
    pub port: DpdkCounters,
    /// The device's ethdev statistics.
    pub dev: EthStats,
}

/// One queue pair of a DPDK device.
#[derive(Debug)]
pub struct DpdkPort {
    queue: EthQueue,
    info: DpdkInfo,
    counters: DpdkCounters,
    burst: u16,
    rx: Vec<Mbuf>,
}

impl DpdkPort {
    /// Opens `cfg.device` with one queue pair (`cfg.queues` must be 1).
    pub fn open(eal: &'static Eal, cfg: &DpdkConfig) -> Result<DpdkPort, DpdkError> {
        if cfg.queues != 1 {
            return Err(DpdkError::Config(format!(
                "{} queues asked: open them with DpdkPort::open_queues",
                cfg.queues
            )));
        }
        let mut ports = DpdkPort::open_queues(eal, cfg)?;
        ports
            .pop()
            .ok_or_else(|| DpdkError::Config("no queue was opened".into()))
    }

    /// Opens `cfg.device` with `cfg.queues` queue pairs and returns one port
    /// per queue, in queue order. The device stops and closes when the last
    /// of them is dropped.
    pub fn open_queues(eal: &'static Eal, cfg: &DpdkConfig) -> Result<Vec<DpdkPort>, DpdkError> {
        if cfg.burst == 0 {
            return Err(DpdkError::Config("burst must be at least 1".into()));
        }
        cfg.remove_stale_memif_socket();
        let queues = EthDevice::open(
            eal,
            &DeviceConfig {
                devargs: cfg.device.clone(),
                queues: cfg.queues,
                rx_ring: cfg.rx_ring,
                tx_ring: cfg.tx_ring,
                mbufs: cfg.mbufs,
                mempool_cache: cfg.mempool_cache,
            },
        )?;
        Ok(queues
            .into_iter()
            .map(|queue| DpdkPort {
                info: DpdkInfo {
                    device: queue.device().info().clone(),
                    queue: queue.queue(),
                    mbufs: cfg.mbufs,
                },
                queue,
                counters: DpdkCounters::default(),
                burst: cfg.burst,
                rx: Vec::with_capacity(usize::from(cfg.burst)),
            })
            .collect())
    }

    /// What the port got.
    pub fn info(&self) -> &DpdkInfo {
        &self.info
    }

    /// Whether the device's link is up (memif: the peer is connected).
    pub fn link_up(&self) -> bool {
        self.queue.device().link_up()
    }

    /// Mbufs left in this queue's mempool.
    pub fn mbufs_available(&self) -> u32 {
        self.queue.pool_available()
    }
}

impl Port for DpdkPort {
    type Stats = DpdkStats;

    /// Counters, ours and the device's.
    fn stats(&self) -> io::Result<DpdkStats> {
        let dev = self.queue.stats().map_err(io::Error::other)?;
        Ok(DpdkStats {
            port: self.counters,
            dev,
        })
    }

    /// Receives up to `max` frames (in calls of at most the configured burst), hands
    /// each to `on_frame` and frees them. Returns how many were received
    /// (chained frames included, which are dropped unread and counted).
    fn rx_burst(&mut self, max: usize, mut on_frame: impl FnMut(&[u8])) -> usize {
        self.rx_burst_ahead(max, |pass, frame| {
            if pass == RxPass::Handle {
                on_frame(frame);
            }
        })
    }

    /// As [`rx_burst`](Port::rx_burst), each single-segment frame shown
    /// to `on_frame` for the first pass, then again for the second. Takes
    /// up to `max` frames in calls of at most the configured burst.
    fn rx_burst_ahead(&mut self, max: usize, mut on_frame: impl FnMut(RxPass, &[u8])) -> usize {
        let mut mbufs = std::mem::take(&mut self.rx);
        // At most `burst` per call into the PMD, as many calls as `max`
        // allows while each comes back full.
        let mut n = 0;
        while n < max {
            let want = u16::try_from(max - n).unwrap_or(u16::MAX).min(self.burst);
            let got = self.queue.rx_burst(&mut mbufs, want);
            n += got;
            if got < usize::from(want) {
                break;
            }
        }
        for m in mbufs.iter().filter(|m| m.segments() == 1) {
            on_frame(RxPass::Ahead, m.data());
        }
        for m in &mbufs {
            if m.segments() == 1 {
                on_frame(RxPass::Handle, m.data());
                self.counters.rx_frames += 1;
            } else {
                self.counters.rx_chained += 1;
            }
        }
        self.queue.release(&mut mbufs);
        self.rx = mbufs;
        n
    }

    /// Takes a free mbuf, lets `write` fill its data room (`None`: nothing
    /// to send) and queues it for the PMD.
    fn tx_frame(&mut self, write: impl FnOnce(&mut [u8]) -> Option<usize>) -> TxOutcome {
        let Some(mut mbuf) = self.queue.tx_alloc() else {
            self.counters.tx_no_frame += 1;
            return TxOutcome::NoFrame;
        };
        if mbuf.write(write) == 0 {
            // Dropping the token returns the mbuf to its pool.
            drop(mbuf);
            return TxOutcome::Empty;
        }
        self.queue.tx_submit(mbuf);
        self.counters.tx_frames += 1;
        TxOutcome::Queued
    }

    /// Hands queued frames to the PMD (`rte_eth_tx_burst`); those it does
    /// not take stay queued for the next flush. Returns how many it took.
    fn flush(&mut self) -> io::Result<usize> {
        Ok(self.queue.tx_flush(self.burst))
    }

    /// Frames queued and not yet taken by the PMD.
    fn tx_in_flight(&self) -> usize {
        self.queue.tx_pending()
    }

    /// Counts one iteration of the engine loop.
    fn count_loop(&mut self) {
        self.counters.loops += 1;
    }

    /// Sleeps for `timeout`, at most [`WAIT_SLICE`], or until `also` is
    /// readable: there is no RX interrupt to wake on, so the loop polls
    /// again after the slice. Returns whether `also` woke it (`Ok(false)`
    /// says nothing of frames).
    fn wait(&mut self, timeout: Duration, also: Option<BorrowedFd<'_>>) -> io::Result<bool> {
        self.counters.sleeps += 1;
        let slice = timeout.min(WAIT_SLICE);
        let Some(also) = also else {
            std::thread::sleep(slice);
            return Ok(false);
        };
        let mut fds = [PollFd::from_borrowed_fd(also, PollFlags::IN)];
        let limit = Timespec::try_from(slice).ok();
        match rustix::event::poll(&mut fds, limit.as_ref()) {
            Ok(ready) => Ok(ready > 0),
            Err(rustix::io::Errno::INTR) => Ok(false),
            Err(e) => Err(e.into()),
        }
    }
}
