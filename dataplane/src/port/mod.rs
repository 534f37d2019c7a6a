//! Ports move Ethernet frames between a NIC queue (or an in-process pipe)
//! and an engine; the engine never sees a port.
//!
//! A port owns the I/O: the rings or queues frames travel through, the clock
//! it reads (or, for tests, the virtual clock it keeps) and how it waits for
//! work. It may not look inside frames or keep protocol state: everything
//! TCP lives in the engine, which is sans-IO and gets time as an argument.
//!
//! Two views of a port live here. [`Port`] is what a NIC queue offers the
//! one per-core loop ([`core_loop`]): bursts of frames in and out, a wait
//! with a timeout, statistics. `afxdp` (feature `afxdp`: one NIC queue on an
//! AF_XDP socket with lingerd's own XDP program) and `dpdk` (feature `dpdk`:
//! one queue pair of a DPDK device: memif, ring, tap, af_packet) implement
//! it. [`Endpoint`] is the narrow,
//! frame-level view the in-process pair (`lingerd_testkit::mem`) needs of whatever sits
//! behind it (the lingerd engine, a reference stack, a trivial echo) for
//! protocol tests with a virtual clock. Frames that reach the wrong queue
//! of a multi-queue interface move over [`handoff`].

#[cfg(feature = "afxdp")]
pub mod afxdp;
pub mod core_loop;
#[cfg(feature = "dpdk")]
pub mod dpdk;
pub mod handoff;

use std::fmt::Debug;
use std::io;
use std::os::fd::BorrowedFd;
use std::time::{Duration, Instant};

pub use core_loop::{CoreIo, Hooks, IdleMode, LoopView};

/// What [`Port::tx_frame`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TxOutcome {
    /// A frame was queued for transmission.
    Queued,
    /// The writer had nothing to send.
    Empty,
    /// No free frame (all in flight): flush and reap first.
    NoFrame,
}

/// Which pass of [`Port::rx_burst_ahead`] a frame is shown in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RxPass {
    /// The first pass: every frame of the burst, before any is handled, to
    /// ask for what handling it will touch. A hint: nothing may depend on
    /// it.
    Ahead,
    /// The second pass: each frame, in order, to handle.
    Handle,
}

/// One NIC queue as the per-core loop drives it: frames in by bursts,
/// frames out one at a time into the port's own buffers (no copy), a flush
/// that hands them to the device, and a bounded wait for the next frame.
///
/// A port never parses what it carries. Frames given to `on_frame` are
/// borrowed for the call only; a frame written by `tx_frame` belongs to the
/// port from then on. Every method returns promptly except
/// [`wait`](Port::wait), which sleeps at most its timeout.
pub trait Port {
    /// Everything countable about the port (its own counters and the
    /// device's), as [`stats`](Port::stats) reads it.
    type Stats: Copy + Debug;

    /// Receives up to `max` frames and hands each, in order, to
    /// `on_frame`; gives their buffers back to the device afterwards.
    /// Returns how many frames were received.
    fn rx_burst(&mut self, max: usize, on_frame: impl FnMut(&[u8])) -> usize;

    /// [`rx_burst`](Port::rx_burst) in two passes over the burst:
    /// `on_frame` sees every frame with [`RxPass::Ahead`] first (to start
    /// fetching what handling it will touch), then each again, in order,
    /// with [`RxPass::Handle`]. The default makes the second pass only.
    fn rx_burst_ahead(&mut self, max: usize, mut on_frame: impl FnMut(RxPass, &[u8])) -> usize {
        self.rx_burst(max, |frame| on_frame(RxPass::Handle, frame))
    }

    /// Takes a free TX buffer and lets `write` fill it with one frame
    /// (`None` or `Some(0)`: nothing to send, the buffer goes back). A
    /// queued frame leaves at the next [`flush`](Port::flush).
    fn tx_frame(&mut self, write: impl FnOnce(&mut [u8]) -> Option<usize>) -> TxOutcome;

    /// Hands the queued frames to the device (waking it when it asks) and
    /// takes back the buffers of frames it has sent. Returns the frames
    /// handed over.
    fn flush(&mut self) -> io::Result<usize>;

    /// Frames handed over (or queued) and not yet given back as sent.
    fn tx_in_flight(&self) -> usize;

    /// Sleeps until a frame may have arrived, `also` (the hooks' wake fd,
    /// [`Hooks::wake_fd`]) became readable, or `timeout` passed
    /// (`Ok(false)`: timed out). A port without a way to be woken by frames
    /// still wakes for `also`; with neither it sleeps the whole timeout.
    fn wait(&mut self, timeout: Duration, also: Option<BorrowedFd<'_>>) -> io::Result<bool>;

    /// Reads the statistics (may be a syscall: the loop calls it at most
    /// every [`core_loop::STATS_EVERY`]).
    fn stats(&self) -> io::Result<Self::Stats>;

    /// Counts one iteration of the loop (the figure is in the stats).
    fn count_loop(&mut self);
}

/// Anything that speaks Ethernet frames and keeps its timers on a clock
/// someone else drives.
///
/// The contract is the quinn-style sans-IO one: inputs are
/// [`receive`](Endpoint::receive) and [`on_timeout`](Endpoint::on_timeout),
/// outputs are [`transmit`](Endpoint::transmit) and
/// [`next_timeout`](Endpoint::next_timeout). A driver calls `transmit` until
/// it returns `None` after every input, and calls `on_timeout` once
/// `next_timeout` is at or before its clock. `now` never goes backwards
/// between calls on one endpoint.
pub trait Endpoint {
    /// Hands one received Ethernet frame (without FCS) to the endpoint.
    fn receive(&mut self, now: Instant, frame: &[u8]);

    /// Writes the next frame to send into `buf` and returns its length, or
    /// `None` when there is nothing to send. One frame per call.
    ///
    /// `buf` is at least `lingerd_testkit::mem::MAX_FRAME_LEN` bytes when its `Pair`
    /// calls; an endpoint whose frame does not fit may panic (a test bug).
    fn transmit(&mut self, now: Instant, buf: &mut [u8]) -> Option<usize>;

    /// The instant at which [`on_timeout`](Endpoint::on_timeout) should be
    /// called next, `None` when no timer is armed. An instant at or before
    /// the driver's clock means "now".
    fn next_timeout(&self) -> Option<Instant>;

    /// Lets the endpoint process the timers due at `now`.
    fn on_timeout(&mut self, now: Instant);
}

/// The lingerd engine behind a port: frames in and out, timers on the
/// port's clock. Completions are the rings' business, not the port's.
impl Endpoint for crate::engine::QueueEngine {
    fn receive(&mut self, now: Instant, frame: &[u8]) {
        self.handle_rx(now, frame);
    }

    fn transmit(&mut self, now: Instant, buf: &mut [u8]) -> Option<usize> {
        self.poll_transmit(now, buf)
    }

    fn next_timeout(&self) -> Option<Instant> {
        self.poll_timeout()
    }

    fn on_timeout(&mut self, now: Instant) {
        self.handle_timeout(now);
    }
}
