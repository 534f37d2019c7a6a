//! The per-core loop: an AF_XDP port around one `QueueEngine`.
//!
//! One iteration: RX burst → engine → client requests → timers → TX burst →
//! completions, then, in sleep mode and only when the iteration did nothing,
//! poll(2) on the socket until a frame arrives, the engine's next timer
//! (`poll_timeout`) or the idle cap, whichever is first. The cap bounds how
//! long requests wait while client rings have no doorbell of their own. It
//! owns only the loop; protocol decisions are the engine's, frames the
//! port's.

use std::io;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use super::{AfXdpPort, TxOutcome};
use crate::engine::QueueEngine;
use crate::engine::api::Completion;

/// Frames taken off the RX ring per iteration.
pub const RX_BURST: usize = 64;
/// Frames the engine may write per iteration.
pub const TX_BURST: usize = 64;

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
    mut on_completion: impl FnMut(Completion),
    mut requests: impl FnMut(&mut QueueEngine, Instant),
) -> io::Result<()> {
    while !stop.load(Ordering::Relaxed) {
        port.count_loop();
        let now = Instant::now();
        let received = port.rx_burst(RX_BURST, |frame| engine.handle_rx(now, frame));
        requests(engine, now);
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
