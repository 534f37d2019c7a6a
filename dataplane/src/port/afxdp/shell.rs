//! The per-core loop: an AF_XDP port around one `QueueEngine`.
//!
//! One iteration: RX burst → engine → client requests → timers → TX burst →
//! completions, then, in sleep mode and only when the iteration did nothing,
//! poll(2) on the socket until a frame arrives, the engine's next timer
//! (`poll_timeout`) or the idle cap, whichever is first. The cap bounds how
//! long requests wait while client rings have no doorbell of their own. It
//! owns only the loop; protocol decisions are the engine's, frames the
//! port's. With several queues ([`run_engine_with`] and a
//! [`Handoff`]) each received frame is first routed to its owner, and the
//! frames other queues passed to this one are fed to the engine after the
//! RX burst. Every [`STATS_EVERY`] the loop reads the port's statistics
//! (one `getsockopt(XDP_STATISTICS)`) and shows them to the request source
//! in [`LoopView::stats`]: the only way to see them while the loop borrows
//! the port. [`run_engine_filtered`] lets a test peer drop chosen frames
//! before the engine sees them (benchmarks only).

use std::io;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use super::{AfXdpPort, AfXdpStats, TxOutcome};
use crate::engine::QueueEngine;
use crate::engine::api::Completion;
use crate::port::handoff::Handoff;

/// Frames taken off the RX ring per iteration.
pub const RX_BURST: usize = 64;
/// Frames the engine may write per iteration.
pub const TX_BURST: usize = 64;
/// How often the loop reads the port's statistics for [`LoopView::stats`]
/// (a syscall: never more often than this, whatever the loop rate).
pub const STATS_EVERY: Duration = Duration::from_millis(100);

/// What the loop tells the request source each iteration.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LoopView {
    /// Frames handed to the TX ring and not yet back from the completion
    /// ring (as of the previous iteration's flush).
    pub tx_in_flight: usize,
    /// The port's counters and the kernel's `XDP_STATISTICS`, read in the
    /// first iteration and then at most every [`STATS_EVERY`]; `None` in
    /// the iterations between reads (and if the kernel refused the read,
    /// which it does not for a bound socket).
    pub stats: Option<AfXdpStats>,
}

/// What the loop does when there is nothing to do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IdleMode {
    /// Spin: lowest latency, one whole core (dataplane cores in production).
    BusyPoll,
    /// poll(2) with the engine's next timer as timeout, at most `max`
    /// (laptops, CI, tests: TESTING.md forbids busy-polling in tests).
    Sleep {
        /// The longest sleep (bounds request latency).
        max: Duration,
    },
}

/// Runs `engine` on `port` until `stop` is set.
///
/// `requests` is called once per iteration to feed client requests
/// (`handle_request`); `on_completion` receives every completion, in order.
/// Returns an I/O error from the socket (a wakeup or poll that failed).
pub fn run_engine(
    port: &mut AfXdpPort,
    engine: &mut QueueEngine,
    mode: IdleMode,
    stop: &AtomicBool,
    on_completion: impl FnMut(Completion),
    requests: impl FnMut(&mut QueueEngine, Instant),
) -> io::Result<()> {
    run_engine_filtered(port, engine, mode, stop, |_| true, on_completion, requests)
}

/// [`run_engine`] for one queue of several: received frames go through
/// `handoff` (to this engine, to their owner's inbox, or both for ARP), and
/// this queue's inbox is drained into the engine every iteration; the
/// request source also sees the port's TX state ([`LoopView`]).
pub fn run_engine_with(
    port: &mut AfXdpPort,
    engine: &mut QueueEngine,
    mode: IdleMode,
    stop: &AtomicBool,
    handoff: Option<&mut Handoff>,
    on_completion: impl FnMut(Completion),
    requests: impl FnMut(&mut QueueEngine, Instant, LoopView),
) -> io::Result<()> {
    run_loop(
        port,
        engine,
        mode,
        stop,
        handoff,
        |_| true,
        on_completion,
        requests,
    )
}

/// [`run_engine`] that feeds the engine only the received frames `keep`
/// accepts (the others are released unread): a test peer that must stay
/// silent on some connections, e.g. the benchmarks' load generator not
/// acknowledging a FIN so that the other side's linger deadline stays
/// armed. Not for the daemon, whose engine sees every frame.
pub fn run_engine_filtered(
    port: &mut AfXdpPort,
    engine: &mut QueueEngine,
    mode: IdleMode,
    stop: &AtomicBool,
    keep: impl FnMut(&[u8]) -> bool,
    on_completion: impl FnMut(Completion),
    requests: impl FnMut(&mut QueueEngine, Instant),
) -> io::Result<()> {
    let mut requests = requests;
    run_loop(
        port,
        engine,
        mode,
        stop,
        None,
        keep,
        on_completion,
        |e, now, _| requests(e, now),
    )
}

#[allow(clippy::too_many_arguments)] // the public entry points name them
fn run_loop(
    port: &mut AfXdpPort,
    engine: &mut QueueEngine,
    mode: IdleMode,
    stop: &AtomicBool,
    mut handoff: Option<&mut Handoff>,
    mut keep: impl FnMut(&[u8]) -> bool,
    mut on_completion: impl FnMut(Completion),
    mut requests: impl FnMut(&mut QueueEngine, Instant, LoopView),
) -> io::Result<()> {
    let mut stats_due = Instant::now();
    while !stop.load(Ordering::Relaxed) {
        port.count_loop();
        let now = Instant::now();
        let stats = (now >= stats_due).then(|| {
            stats_due = now + STATS_EVERY;
            port.stats().ok()
        });
        let view = LoopView {
            tx_in_flight: port.tx_in_flight(),
            stats: stats.flatten(),
        };
        let mut received = match handoff.as_deref_mut() {
            None => port.rx_burst(RX_BURST, |frame| {
                if keep(frame) {
                    engine.handle_rx(now, frame);
                }
            }),
            Some(h) => port.rx_burst(RX_BURST, |frame| {
                if keep(frame) && h.route(frame) {
                    engine.handle_rx(now, frame);
                }
            }),
        };
        if let Some(h) = handoff.as_deref_mut() {
            received += h.drain(RX_BURST, |frame| engine.handle_rx(now, frame));
        }
        requests(engine, now, view);
        if engine.poll_timeout().is_some_and(|t| t <= now) {
            engine.handle_timeout(now);
        }
        let mut sent = 0;
        while sent < TX_BURST {
            match port.tx_frame(|buf| engine.poll_transmit(now, buf)) {
                TxOutcome::Queued => sent += 1,
                TxOutcome::Empty | TxOutcome::NoFrame => break,
            }
        }
        port.flush()?;
        let mut completed = 0;
        while let Some(c) = engine.poll_completion() {
            on_completion(c);
            completed += 1;
        }
        if let IdleMode::Sleep { max } = mode
            && received == 0
            && sent == 0
            && completed == 0
            && engine.tx_backlog() == 0
            && !handoff.as_deref().is_some_and(Handoff::pending)
        {
            let after = Instant::now();
            let timeout = engine
                .poll_timeout()
                .map_or(max, |t| t.saturating_duration_since(after).min(max));
            if !timeout.is_zero() {
                port.wait(timeout)?;
            }
        }
    }
    Ok(())
}
