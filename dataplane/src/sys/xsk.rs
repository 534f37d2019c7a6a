//! One AF_XDP socket with its own UMEM, behind owned [`Frame`] tokens.
//!
//! xsk-rs leaves frame ownership to its caller: every ring operation is
//! `unsafe` because a descriptor handed to the kernel (fill or TX ring) must
//! not be touched again until the kernel gives it back (RX or completion
//! ring). This module turns that rule into types. A [`Frame`] is a token for
//! one UMEM frame that user space owns right now; it is neither `Clone` nor
//! `Copy`, it is created only here (from the UMEM's initial descriptors, the
//! RX ring and the completion ring) and it is consumed by every operation
//! that gives the frame to the kernel ([`XskQueue::tx_submit`] and, through
//! the free list, the fill ring). Safe code therefore cannot read, write or
//! resubmit a frame the kernel owns. Tokens carry the id of the queue that
//! issued them, checked on every use, so a token of one UMEM can never index
//! another.
//!
//! Frame lifecycle: free list → fill ring → RX ring → caller → free list;
//! free list → caller (written) → TX ring → completion ring → free list.
//!
//! It owns the rings, the UMEM mapping and the free list; it knows nothing of
//! XDP programs (the port's steering does), of frames' contents or of engines.

use std::io;
use std::num::NonZeroU32;
use std::os::fd::{AsRawFd, BorrowedFd, RawFd};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use rustix::event::{PollFd, PollFlags, Timespec};
use xsk_rs::config::{
    BindFlags, FrameSize, Interface, LibxdpFlags, QueueSize, SocketConfig, UmemConfig,
};
use xsk_rs::{CompQueue, FillQueue, FrameDesc, RxQueue, Socket, TxQueue, Umem};

/// Issues the ids that tie frames to their queue.
static NEXT_OWNER: AtomicU64 = AtomicU64::new(1);

/// One UMEM frame that user space owns. See the module documentation.
#[derive(Debug)]
#[must_use = "a dropped Frame is a UMEM frame lost until the queue is dropped"]
pub struct Frame {
    desc: FrameDesc,
    owner: u64,
}

impl Frame {
    /// Bytes of packet data in the frame (as received, or as written).
    pub fn len(&self) -> usize {
        self.desc.lengths().data()
    }

    /// Whether the frame holds no data.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Whether the kernel copies frames or the NIC DMAs into the UMEM.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BindMode {
    /// Zero-copy: the driver works on the UMEM directly.
    ZeroCopy,
    /// Copy mode: the kernel copies between its buffers and the UMEM.
    Copy,
}

/// What to ask of `bind(2)` about copying.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ZeroCopy {
    /// Try zero-copy, fall back to copy mode.
    #[default]
    Auto,
    /// Zero-copy or fail.
    Require,
    /// Copy mode.
    Off,
}

/// Sizes and flags of one socket and its UMEM.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct XskConfig {
    /// Frames in the UMEM.
    pub frames: u32,
    /// Bytes per frame (a power of two, 2048 or 4096).
    pub frame_size: u32,
    /// Entries of each of the four rings (a power of two).
    pub ring_size: u32,
    /// Zero-copy policy.
    pub zero_copy: ZeroCopy,
    /// Bind with `XDP_USE_NEED_WAKEUP` (the kernel says when it needs a
    /// syscall to go on; without it, every TX flush makes one).
    pub need_wakeup: bool,
}

impl Default for XskConfig {
    fn default() -> Self {
        XskConfig {
            frames: 4096,
            frame_size: 2048,
            ring_size: 2048,
            zero_copy: ZeroCopy::Auto,
            need_wakeup: true,
        }
    }
}

/// Frames the kernel sends per `sendto` in copy mode (`TX_BATCH_SIZE` in
/// net/xdp/xsk.c).
const COPY_TX_BATCH: usize = 32;
/// The most kicks one flush makes.
const MAX_KICKS: usize = 8;

impl XskConfig {
    /// The largest ring [`XskConfig::with_frames`] asks for.
    pub const MAX_RING: u32 = 16_384;

    /// A UMEM of `frames` frames with rings sized to it: half the frames
    /// can wait in the fill ring, so a core that is off its CPU for a
    /// moment has that many frames of slack before the kernel drops, and
    /// the other half are for TX. Rings have at most [`Self::MAX_RING`]
    /// entries (and at least 64).
    pub fn with_frames(frames: u32) -> XskConfig {
        XskConfig {
            frames,
            ring_size: (frames / 2).clamp(64, Self::MAX_RING).next_power_of_two(),
            ..XskConfig::default()
        }
    }
}

/// Why a queue could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum XskError {
    /// A size is not acceptable to xsk-rs (not a power of two, too small).
    #[error("bad AF_XDP size: {0}")]
    Config(String),
    /// Mapping or registering the UMEM failed.
    #[error("creating the UMEM failed: {0}")]
    Umem(String),
    /// Creating or binding the socket failed (both modes, when `Auto`).
    #[error("creating the AF_XDP socket on {iface} queue {queue} failed: {reason}")]
    Socket {
        /// The interface.
        iface: String,
        /// The queue.
        queue: u32,
        /// What xsk-rs said.
        reason: String,
    },
}

/// The kernel's `XDP_STATISTICS` for one socket, plus our own ring counts.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct XskStats {
    /// Received frames dropped for other reasons.
    pub rx_dropped: u64,
    /// Received frames dropped for an invalid descriptor.
    pub rx_invalid_descs: u64,
    /// Frames not sent for an invalid descriptor.
    pub tx_invalid_descs: u64,
    /// Received frames dropped because the RX ring was full.
    pub rx_ring_full: u64,
    /// Times the kernel found the fill ring empty.
    pub rx_fill_ring_empty_descs: u64,
    /// Times the kernel found the TX ring empty.
    pub tx_ring_empty_descs: u64,
}

/// One AF_XDP socket bound to `(interface, queue)` with its own UMEM.
#[derive(Debug)]
pub struct XskQueue {
    owner: u64,
    // Ring handles keep the socket alive; all of them go before the UMEM.
    tx: TxQueue,
    rx: RxQueue,
    fq: FillQueue,
    cq: CompQueue,
    umem: Umem,
    /// Frames user space owns and nobody uses.
    free: Vec<Frame>,
    /// Descriptors of submitted frames not yet in the TX ring (the ring was
    /// full). Their tokens are gone: they belong to the TX path.
    tx_pending: Vec<FrameDesc>,
    /// Scratch descriptors for the ring calls; always `ring_size` long, so
    /// no call pays for clearing it.
    scratch: Vec<FrameDesc>,
    /// Frames in the fill ring or on their way back through RX.
    in_fill: u32,
    /// Frames in the TX ring or not yet back through the completion ring.
    in_tx: u32,
    fill_target: u32,
    bind: BindMode,
    need_wakeup: bool,
    /// Syscalls made to kick the kernel (TX `sendto`, fill `poll`).
    wakeups: u64,
}

impl XskQueue {
    /// Creates a UMEM and binds a socket to `(iface, queue)` with
    /// `XSK_LIBXDP_FLAGS_INHIBIT_PROG_LOAD` (the port loads its own XDP
    /// program), then gives half the frames to the fill ring.
    pub fn new(iface: &str, queue: u32, cfg: &XskConfig) -> Result<XskQueue, XskError> {
        let bad = |e: &dyn std::fmt::Display| XskError::Config(e.to_string());
        let ring = QueueSize::new(cfg.ring_size).map_err(|e| bad(&e))?;
        let frame_size = FrameSize::new(cfg.frame_size).map_err(|e| bad(&e))?;
        let frames = NonZeroU32::new(cfg.frames).ok_or_else(|| bad(&"zero frames"))?;
        let umem_cfg = UmemConfig::builder()
            .frame_size(frame_size)
            .fill_queue_size(ring)
            .comp_queue_size(ring)
            .build()
            .map_err(|e| bad(&e))?;
        let (umem, descs) =
            Umem::new(umem_cfg, frames, false).map_err(|e| XskError::Umem(e.to_string()))?;
        let ifname: Interface = iface.parse().map_err(|e| bad(&e))?;

        let attempts: &[BindMode] = match cfg.zero_copy {
            ZeroCopy::Auto => &[BindMode::ZeroCopy, BindMode::Copy],
            ZeroCopy::Require => &[BindMode::ZeroCopy],
            ZeroCopy::Off => &[BindMode::Copy],
        };
        let mut last_err = String::new();
        for &bind in attempts {
            let mut flags = match bind {
                BindMode::ZeroCopy => BindFlags::XDP_ZEROCOPY,
                BindMode::Copy => BindFlags::XDP_COPY,
            };
            if cfg.need_wakeup {
                flags |= BindFlags::XDP_USE_NEED_WAKEUP;
            }
            let sock_cfg = SocketConfig::builder()
                .rx_queue_size(ring)
                .tx_queue_size(ring)
                .libxdp_flags(LibxdpFlags::XSK_LIBXDP_FLAGS_INHIBIT_PROG_LOAD)
                .bind_flags(flags)
                .build();
            // SAFETY: xsk-rs requires the inhibit flag when the UMEM is
            // shared and `(iface, queue)` is already bound from it. This UMEM
            // was created just above and is used by no other socket, and the
            // flag is set anyway: both halves hold, upheld by this function.
            let made = unsafe { Socket::new(sock_cfg, &umem, &ifname, queue) };
            match made {
                Ok((tx, rx, Some((fq, cq)))) => {
                    let owner = NEXT_OWNER.fetch_add(1, Ordering::Relaxed);
                    let free = descs
                        .into_iter()
                        .map(|desc| Frame { desc, owner })
                        .collect();
                    let mut q = XskQueue {
                        owner,
                        tx,
                        rx,
                        fq,
                        cq,
                        umem,
                        free,
                        tx_pending: Vec::with_capacity(cfg.ring_size as usize),
                        scratch: vec![FrameDesc::default(); cfg.ring_size as usize],
                        in_fill: 0,
                        in_tx: 0,
                        fill_target: (cfg.frames / 2).min(cfg.ring_size),
                        bind,
                        need_wakeup: cfg.need_wakeup,
                        wakeups: 0,
                    };
                    q.refill();
                    return Ok(q);
                }
                Ok((_, _, None)) => {
                    last_err = "no fill/completion ring returned (queue already bound?)".into();
                }
                Err(e) => last_err = e.to_string(),
            }
        }
        Err(XskError::Socket {
            iface: iface.to_owned(),
            queue,
            reason: last_err,
        })
    }

    /// Copy or zero-copy, as bound.
    pub fn bind_mode(&self) -> BindMode {
        self.bind
    }

    /// Whether the socket was bound with `XDP_USE_NEED_WAKEUP`.
    pub fn need_wakeup(&self) -> bool {
        self.need_wakeup
    }

    /// Frames free for TX right now.
    pub fn free_frames(&self) -> usize {
        self.free.len()
    }

    /// Frames in the TX ring or awaiting completion, including those not
    /// yet pushed into the ring.
    pub fn tx_in_flight(&self) -> usize {
        self.in_tx as usize + self.tx_pending.len()
    }

    /// Syscalls made to wake the kernel so far.
    pub fn wakeups(&self) -> u64 {
        self.wakeups
    }

    fn check(&self, frame: &Frame) {
        assert_eq!(
            frame.owner, self.owner,
            "a Frame of another AF_XDP queue was used here"
        );
    }

    /// Tops the fill ring up to its target from the free list and wakes the
    /// kernel if it asked for it. Returns the frames given.
    pub fn refill(&mut self) -> usize {
        let want = self.fill_target.saturating_sub(self.in_fill) as usize;
        let n = want.min(self.free.len());
        if n == 0 {
            return 0;
        }
        let start = self.free.len() - n;
        for (slot, f) in self.scratch.iter_mut().zip(&self.free[start..]) {
            *slot = f.desc;
        }
        let n = n.min(self.scratch.len());
        // SAFETY: each descriptor comes from a `Frame` token of this queue
        // (checked when it entered the free list), so it is a frame of this
        // UMEM that user space owns and that no other token names. The
        // tokens of the frames the ring accepts are dropped right below,
        // before anything else can use them: from here the kernel owns them.
        let given = unsafe { self.fq.produce(&self.scratch[..n]) };
        self.free.truncate(self.free.len() - given);
        self.in_fill += given as u32;
        if given > 0 && self.need_wakeup && self.fq.needs_wakeup() {
            self.wakeups += 1;
            // A zero-timeout poll only kicks the driver; errors here are
            // transient (the next refill tries again).
            let _ = self.fq.wakeup(self.rx.fd_mut(), 0);
        }
        given
    }

    /// Takes up to `max` received frames off the RX ring, appending their
    /// tokens to `out`. Returns how many.
    pub fn rx_burst(&mut self, out: &mut Vec<Frame>, max: usize) -> usize {
        let max = max.min(self.scratch.len()).max(1);
        // SAFETY: the RX ring only returns frames of the UMEM this socket is
        // bound with, each one we gave to the fill ring; consuming moves
        // them back to user space, and each becomes exactly one token below.
        let n = unsafe { self.rx.consume(&mut self.scratch[..max]) };
        self.in_fill -= n as u32;
        out.extend(self.scratch[..n].iter().map(|&desc| Frame {
            desc,
            owner: self.owner,
        }));
        n
    }

    /// The received (or written) bytes of `frame`.
    pub fn data(&self, frame: &Frame) -> &[u8] {
        self.check(frame);
        // SAFETY: `frame` is a token of this queue, so its descriptor names
        // a frame of this UMEM that user space owns (the kernel does not
        // write it); the returned slice borrows `self`, so no `&mut` access
        // through `write` can overlap it.
        let data = unsafe { self.umem.data(&frame.desc) };
        data.contents()
    }

    /// Lets `fill` write a frame into `frame`'s whole data area and sets its
    /// length to what `fill` returns (clamped to the area). Returns the
    /// length.
    pub fn write(&mut self, frame: &mut Frame, fill: impl FnOnce(&mut [u8]) -> usize) -> usize {
        self.check(frame);
        // SAFETY: `frame` is a token of this queue held by `&mut`: a frame of
        // this UMEM owned by user space, named by no other token, and not
        // readable through `data` while `self` is borrowed mutably here.
        let mut data = unsafe { self.umem.data_mut(&mut frame.desc) };
        let cap = {
            let mut cursor = data.cursor();
            let cap = cursor.buf_len();
            cursor.set_pos(cap);
            cap
        };
        let len = fill(data.contents_mut()).min(cap);
        data.cursor().set_pos(len);
        len
    }

    /// A free frame for TX, if any.
    pub fn tx_alloc(&mut self) -> Option<Frame> {
        self.free.pop()
    }

    /// Gives a frame back to the free list (after reading an RX frame, or
    /// an unused TX frame).
    pub fn release(&mut self, frame: Frame) {
        self.check(&frame);
        self.free.push(frame);
    }

    /// Queues `frame` for transmission with its current length; it goes
    /// into the TX ring at the next [`tx_flush`](Self::tx_flush).
    pub fn tx_submit(&mut self, frame: Frame) {
        self.check(&frame);
        self.tx_pending.push(frame.desc);
    }

    /// Pushes queued frames into the TX ring and kicks the kernel when it
    /// needs it. Returns the frames pushed (the rest wait for room).
    ///
    /// The ring takes a batch whole or not at all (libxdp's reserve), so
    /// the batch shrinks until it fits: offering everything pending would
    /// stall for good once more frames wait than the ring has slots.
    pub fn tx_flush(&mut self) -> io::Result<usize> {
        let mut pushed = 0;
        let mut batch = self.tx_pending.len().min(self.scratch.len());
        while batch > 0 {
            // SAFETY: every pending descriptor came from a consumed `Frame`
            // token of this queue (checked in `tx_submit`): a frame of this
            // UMEM named nowhere else in user space. Those the ring accepts
            // are removed from `tx_pending` below; the kernel owns them until
            // the completion ring returns them.
            pushed = unsafe { self.tx.produce(&self.tx_pending[..batch]) };
            if pushed > 0 {
                break;
            }
            batch /= 2;
        }
        if pushed > 0 {
            self.tx_pending.drain(..pushed);
            self.in_tx += pushed as u32;
        }
        if self.in_tx > 0 && (!self.need_wakeup || self.tx.needs_wakeup()) {
            // Copy mode sends at most 32 frames per syscall (the kernel's
            // TX batch): kick once per 32 frames just pushed, so that a
            // burst leaves in this flush rather than 32 per loop iteration.
            let kicks = match self.bind {
                BindMode::Copy => pushed.div_ceil(COPY_TX_BATCH).clamp(1, MAX_KICKS),
                BindMode::ZeroCopy => 1,
            };
            for _ in 0..kicks {
                self.wakeups += 1;
                self.tx.wakeup()?;
            }
        }
        Ok(pushed)
    }

    /// Moves frames the kernel has sent from the completion ring to the
    /// free list. Returns how many.
    pub fn reap_completions(&mut self) -> usize {
        if self.in_tx == 0 {
            return 0;
        }
        let want = (self.in_tx as usize).min(self.scratch.len());
        // SAFETY: the completion ring returns only frames we pushed into
        // this socket's TX ring (of this UMEM), each once; each becomes
        // exactly one token below.
        let n = unsafe { self.cq.consume(&mut self.scratch[..want]) };
        self.in_tx -= n as u32;
        let owner = self.owner;
        self.free
            .extend(self.scratch[..n].iter().map(|&desc| Frame { desc, owner }));
        n
    }

    /// Waits up to `timeout` (None: forever) for the RX ring to have
    /// frames or `also` to be readable. `Ok(false)` on timeout or signal.
    pub fn wait_rx(
        &mut self,
        timeout: Option<Duration>,
        also: Option<BorrowedFd<'_>>,
    ) -> io::Result<bool> {
        let Some(also) = also else {
            let ms = timeout.map_or(-1, |t| t.as_millis().min(i32::MAX as u128) as i32);
            return self.rx.poll(ms);
        };
        // SAFETY: the descriptor is this queue's socket, which `self` keeps
        // open for as long as `&mut self` is borrowed, and the borrowed fd
        // does not outlive this call.
        let socket = unsafe { BorrowedFd::borrow_raw(self.as_raw_fd()) };
        let mut fds = [
            PollFd::from_borrowed_fd(socket, PollFlags::IN),
            PollFd::from_borrowed_fd(also, PollFlags::IN),
        ];
        // A timeout too long for a timespec waits without one.
        let limit = timeout.and_then(|t| Timespec::try_from(t).ok());
        match rustix::event::poll(&mut fds, limit.as_ref()) {
            Ok(ready) => Ok(ready > 0),
            Err(rustix::io::Errno::INTR) => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    /// The kernel's statistics for this socket.
    pub fn statistics(&self) -> io::Result<XskStats> {
        let s = self.tx.fd().xdp_statistics()?;
        Ok(XskStats {
            rx_dropped: s.rx_dropped(),
            rx_invalid_descs: s.rx_invalid_descs(),
            tx_invalid_descs: s.tx_invalid_descs(),
            rx_ring_full: s.rx_ring_full(),
            rx_fill_ring_empty_descs: s.rx_fill_ring_empty_descs(),
            tx_ring_empty_descs: s.tx_ring_empty_descs(),
        })
    }
}

impl AsRawFd for XskQueue {
    fn as_raw_fd(&self) -> RawFd {
        self.tx.fd().as_raw_fd()
    }
}
