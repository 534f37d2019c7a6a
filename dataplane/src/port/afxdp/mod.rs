//! The AF_XDP port: one NIC queue, one UMEM, one socket, our XDP program.
//!
//! [`AfXdpPort::open`] attaches lingerd's steering program to the interface
//! ([`steering`]), binds an AF_XDP socket to the queue with its own UMEM
//! ([`crate::sys::xsk`], copy or zero-copy, need_wakeup) and registers it in
//! the program's socket map. What it got — native or generic XDP, copy or
//! zero-copy — is in [`PortInfo`], which the caller prints at start-up.
//! The port implements [`Port`], so the per-core loop
//! ([`crate::port::core_loop`]) drives it.
//!
//! It owns the socket, its frames and the program on its interface; it may
//! not parse frames or keep protocol state (the engine's), nor use `unsafe`
//! (all of it is in `sys::xsk` behind owned frame tokens). Multi-queue: one
//! [`Steering`] per interface, attached once, and one port per queue opened
//! with [`AfXdpPort::open_queue`], which registers its socket in it; frames
//! that reach the wrong queue move over [`crate::port::handoff`].

pub mod steering;

use std::fmt;
use std::io;
use std::net::IpAddr;
use std::os::fd::BorrowedFd;
use std::time::Duration;

/// The loop's idle mode and the TX outcome, where AF_XDP callers have
/// always found them (defined in [`crate::port`]).
pub use crate::port::{IdleMode, TxOutcome};
use crate::port::{Port, RxPass};
pub use steering::{AttachMode, Steering, XdpAttach};

pub use crate::sys::xsk::{BindMode, Frame, XskConfig, XskStats, ZeroCopy};
use crate::sys::xsk::{XskError, XskQueue};

/// Why the port could not start.
#[derive(Debug, thiserror::Error)]
pub enum AfXdpError {
    /// The interface does not exist in this network namespace.
    #[error("interface {iface}: {source}")]
    Interface {
        /// The name.
        iface: String,
        /// What the lookup said.
        source: io::Error,
    },
    /// Another process holds an XDP link on the interface.
    #[error(
        "{iface} has an XDP program attached by a running process (bpf_link); not replacing it"
    )]
    Busy {
        /// The interface.
        iface: String,
    },
    /// Loading, filling or attaching the XDP program failed.
    #[error("XDP program: could not {what}: {detail}")]
    Xdp {
        /// The step.
        what: &'static str,
        /// The loader's message.
        detail: String,
    },
    /// The socket or its UMEM.
    #[error(transparent)]
    Xsk(#[from] XskError),
}

/// How to open the port.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AfXdpConfig {
    /// The interface.
    pub iface: String,
    /// The NIC queue.
    pub queue: u32,
    /// XDP attach mode.
    pub attach: AttachMode,
    /// Socket and UMEM sizes, copy policy, need_wakeup.
    pub xsk: XskConfig,
    /// The daemon's addresses, either family: IPv4 and IPv6 to them (and
    /// ARP or Neighbor Solicitations asking for them) are steered to the
    /// socket, as `xdp/lingerd.bpf.c` says.
    pub addrs: Vec<IpAddr>,
    /// Destination TCP ports to steer; empty = all.
    pub ports: Vec<u16>,
    /// With `ports` set: the engine's ephemeral port range (inclusive), also
    /// steered, so that answers to its own connects reach it.
    pub ephemeral: Option<(u16, u16)>,
}

impl AfXdpConfig {
    /// Defaults for `iface` queue `queue` answering for `addrs` (IPv4,
    /// IPv6 or both: anything that turns into an [`IpAddr`]).
    pub fn new<A: Into<IpAddr>>(
        iface: &str,
        queue: u32,
        addrs: impl IntoIterator<Item = A>,
    ) -> AfXdpConfig {
        AfXdpConfig {
            iface: iface.to_owned(),
            queue,
            attach: AttachMode::Auto,
            xsk: XskConfig::default(),
            addrs: addrs.into_iter().map(Into::into).collect(),
            ports: Vec::new(),
            ephemeral: None,
        }
    }
}

/// What the port got from the kernel; printed at start-up.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PortInfo {
    /// The interface.
    pub iface: String,
    /// The queue.
    pub queue: u32,
    /// Native or generic XDP.
    pub xdp: XdpAttach,
    /// Copy or zero-copy.
    pub bind: BindMode,
    /// need_wakeup in use.
    pub need_wakeup: bool,
    /// UMEM frames.
    pub frames: u32,
    /// Bytes per frame.
    pub frame_size: u32,
}

impl PortInfo {
    /// `"copy"` or `"zero-copy"`.
    pub fn bind_str(&self) -> &'static str {
        match self.bind {
            BindMode::Copy => "copy",
            BindMode::ZeroCopy => "zero-copy",
        }
    }
}

impl fmt::Display for PortInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "AF_XDP {} queue {}: XDP {}, {} mode, need_wakeup {}, UMEM {} x {} B",
            self.iface,
            self.queue,
            self.xdp.as_str(),
            self.bind_str(),
            if self.need_wakeup { "on" } else { "off" },
            self.frames,
            self.frame_size
        )
    }
}

/// The port's own counters (the kernel's are in [`XskStats`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PortCounters {
    /// Frames received.
    pub rx_frames: u64,
    /// Frames handed to the TX ring.
    pub tx_frames: u64,
    /// Times a frame was wanted for TX and none was free.
    pub tx_no_frame: u64,
    /// Syscalls made to wake the kernel (TX sendto, fill-ring poll).
    pub wakeups: u64,
    /// Times the sleep-mode loop slept in poll(2).
    pub sleeps: u64,
    /// Iterations of the engine loop.
    pub loops: u64,
}

/// Everything countable about a port: ours plus the kernel's.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AfXdpStats {
    /// The port's counters.
    pub port: PortCounters,
    /// `XDP_STATISTICS` of the socket.
    pub xdp: XskStats,
}

/// One queue of an interface on AF_XDP, with lingerd's XDP program.
#[derive(Debug)]
pub struct AfXdpPort {
    // The socket goes first, then the program is detached.
    xsk: XskQueue,
    /// Owned when the port attached the program itself ([`AfXdpPort::open`]);
    /// `None` for a queue of a shared [`Steering`].
    steering: Option<Steering>,
    info: PortInfo,
    counters: PortCounters,
    rx: Vec<Frame>,
}

impl AfXdpPort {
    /// Attaches the program, binds the socket, registers it.
    pub fn open(cfg: &AfXdpConfig) -> Result<AfXdpPort, AfXdpError> {
        let mut steering = Steering::attach(
            &cfg.iface,
            cfg.attach,
            &cfg.addrs,
            &cfg.ports,
            cfg.ephemeral,
        )?;
        let mut port = AfXdpPort::open_queue(cfg, &mut steering)?;
        port.steering = Some(steering);
        Ok(port)
    }

    /// Binds a socket to `cfg.queue` and registers it in `steering`, the
    /// program another caller attached to `cfg.iface` (one per interface,
    /// shared by every queue's port; it must outlive them to keep steering).
    /// `cfg`'s attach mode, addresses and ports are the steering's business
    /// and are not looked at here.
    pub fn open_queue(cfg: &AfXdpConfig, steering: &mut Steering) -> Result<AfXdpPort, AfXdpError> {
        let xsk = XskQueue::new(&cfg.iface, cfg.queue, &cfg.xsk)?;
        steering.register(cfg.queue, &xsk)?;
        let info = PortInfo {
            iface: cfg.iface.clone(),
            queue: cfg.queue,
            xdp: steering.mode(),
            bind: xsk.bind_mode(),
            need_wakeup: xsk.need_wakeup(),
            frames: cfg.xsk.frames,
            frame_size: cfg.xsk.frame_size,
        };
        Ok(AfXdpPort {
            rx: Vec::with_capacity(cfg.xsk.ring_size as usize),
            xsk,
            steering: None,
            info,
            counters: PortCounters::default(),
        })
    }

    /// What the port got.
    pub fn info(&self) -> &PortInfo {
        &self.info
    }

    /// The steering program when this port owns it (to add queues later,
    /// or detach early).
    pub fn steering(&mut self) -> Option<&mut Steering> {
        self.steering.as_mut()
    }
}

impl Port for AfXdpPort {
    type Stats = AfXdpStats;

    /// Counters, ours and the kernel's.
    fn stats(&self) -> io::Result<AfXdpStats> {
        let mut port = self.counters;
        port.wakeups = self.xsk.wakeups();
        Ok(AfXdpStats {
            port,
            xdp: self.xsk.statistics()?,
        })
    }

    /// Receives up to `max` frames, hands each to `on_frame`, recycles them
    /// and tops up the fill ring. Returns how many.
    fn rx_burst(&mut self, max: usize, mut on_frame: impl FnMut(&[u8])) -> usize {
        self.rx_burst_ahead(max, |pass, frame| {
            if pass == RxPass::Handle {
                on_frame(frame);
            }
        })
    }

    /// Receives up to `max` frames, shows each to `on_frame` for the
    /// first pass, then again for the second and frees it.
    fn rx_burst_ahead(&mut self, max: usize, mut on_frame: impl FnMut(RxPass, &[u8])) -> usize {
        let mut frames = std::mem::take(&mut self.rx);
        let n = self.xsk.rx_burst(&mut frames, max);
        for frame in &frames {
            on_frame(RxPass::Ahead, self.xsk.data(frame));
        }
        for frame in frames.drain(..) {
            on_frame(RxPass::Handle, self.xsk.data(&frame));
            self.xsk.release(frame);
        }
        self.rx = frames;
        self.counters.rx_frames += n as u64;
        self.xsk.refill();
        n
    }

    /// Takes a free frame, lets `write` fill it (`None`: nothing to send)
    /// and queues it for the TX ring.
    fn tx_frame(&mut self, write: impl FnOnce(&mut [u8]) -> Option<usize>) -> TxOutcome {
        let Some(mut frame) = self.xsk.tx_alloc() else {
            self.counters.tx_no_frame += 1;
            return TxOutcome::NoFrame;
        };
        let mut wrote = None;
        self.xsk.write(&mut frame, |buf| {
            wrote = write(buf);
            wrote.unwrap_or(0)
        });
        match wrote {
            Some(n) if n > 0 => {
                self.xsk.tx_submit(frame);
                self.counters.tx_frames += 1;
                TxOutcome::Queued
            }
            _ => {
                self.xsk.release(frame);
                TxOutcome::Empty
            }
        }
    }

    /// Pushes queued frames into the TX ring (kicking the kernel when it
    /// asks), then reaps completions. Returns frames pushed.
    fn flush(&mut self) -> io::Result<usize> {
        let pushed = self.xsk.tx_flush()?;
        self.xsk.reap_completions();
        Ok(pushed)
    }

    /// Frames sent but not yet back from the completion ring.
    fn tx_in_flight(&self) -> usize {
        self.xsk.tx_in_flight()
    }

    /// Counts one iteration of the engine loop.
    fn count_loop(&mut self) {
        self.counters.loops += 1;
    }

    /// Sleeps in poll(2) until a frame arrives, `also` is readable or
    /// `timeout` passes.
    fn wait(&mut self, timeout: Duration, also: Option<BorrowedFd<'_>>) -> io::Result<bool> {
        self.counters.sleeps += 1;
        self.xsk.wait_rx(Some(timeout), also)
    }
}
