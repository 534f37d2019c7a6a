//! Ports move Ethernet frames between a NIC queue (or an in-process pipe)
//! and an engine; the engine never sees a port.
//!
//! A port owns the I/O: the rings or queues frames travel through, the clock
//! it reads (or, for tests, the virtual clock it keeps) and the loop that
//! alternates between "frames in", "timers" and "frames out". It may not look
//! inside frames or keep protocol state: everything TCP lives in the engine,
//! which is sans-IO and gets time as an argument.
//!
//! [`Endpoint`] is the narrow, frame-level view a port needs of whatever sits
//! behind it, so the same shell drives the lingerd engine, a reference stack
//! (smoltcp, in the tests) or a trivial echo. Ports today: [`mem`], the
//! in-process pair with a virtual clock and seeded impairments (for protocol
//! tests and benches), and `afxdp` (feature `afxdp`): one NIC queue on an
//! AF_XDP socket with lingerd's own XDP program; and `dpdk` (feature
//! `dpdk`): one queue pair of a DPDK device (memif, ring, tap, af_packet).

#[cfg(feature = "afxdp")]
pub mod afxdp;
#[cfg(feature = "dpdk")]
pub mod dpdk;
pub mod handoff;
pub mod mem;

use std::time::Instant;

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
    /// `buf` is at least [`mem::MAX_FRAME_LEN`] bytes when a [`mem::Pair`]
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
