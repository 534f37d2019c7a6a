//! The per-core loop: any [`Port`] around one `QueueEngine`, with the
//! caller's per-iteration work behind [`Hooks`].
//!
//! One iteration: RX burst (in two passes, [`Port::rx_burst_ahead`]: every
//! frame's index bucket asked for, then the frames handled) → engine →
//! the hooks' requests → timers → TX
//! burst → flush → completions to the hooks, then, in sleep mode and only
//! when the iteration did nothing, [`Port::wait`] until a frame arrives,
//! the engine's next timer (`poll_timeout`) or the idle cap, whichever is
//! first. Before that sleep the hooks may arm a wake descriptor
//! ([`Hooks::before_sleep`], [`Hooks::wake_fd`]: the daemon's are its
//! clients' doorbells), which the port's wait watches beside its frames,
//! so a request wakes the core at once; the cap bounds how long anything
//! that rings no doorbell waits. With several queues (a [`Handoff`]) each received
//! frame is first routed to its owner, and the frames other queues passed
//! to this one are fed to the engine after the RX burst. Every
//! [`STATS_EVERY`] the loop reads the port's statistics and shows them to
//! the hooks in [`LoopView::stats`]: the only way to see them while the
//! loop borrows the port. While the hooks hold a capture
//! ([`CoreIo::capture`], `lingerd ctl capture`), every frame of the RX
//! burst (as the port received it, before any hand-off) and of the TX
//! burst (as the engine wrote it) is offered to it; without one, each
//! burst costs one branch more than it did before captures existed.
//!
//! It owns only the order of these steps; protocol decisions are the
//! engine's, frames the port's, what a request or a completion means the
//! hooks'. It may not parse frames.

use std::io;
use std::os::fd::BorrowedFd;
use std::time::{Duration, Instant};

use super::{Port, RxPass, TxOutcome};
use crate::capture::{CaptureTap, Direction};
use crate::engine::QueueEngine;
use crate::engine::api::Completion;
use crate::port::handoff::Handoff;
use crate::shared::{NoSink, RxSink};

/// Frames taken off the RX ring per iteration: as many as the loop may
/// send ([`TX_BURST`]), so that answers to a burst of frames sent (the
/// peers' FIN|ACKs to a burst of FINs) are taken as fast as they come.
pub const RX_BURST: usize = 256;
/// Frames the engine may write per iteration: as many as one client's
/// burst of requests may produce (the daemon takes up to 256 per client
/// per iteration), so that a burst of aborts leaves in the iteration that
/// took it instead of queueing behind the next ones.
pub const TX_BURST: usize = 256;
/// How often the loop reads the port's statistics for [`LoopView::stats`]
/// (a syscall for AF_XDP: never more often than this, whatever the loop
/// rate).
pub const STATS_EVERY: Duration = Duration::from_millis(100);

/// What the loop tells the hooks each iteration.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LoopView<S> {
    /// Frames handed to the port and not yet back as sent (as of the
    /// previous iteration's flush).
    pub tx_in_flight: usize,
    /// The port's statistics, read in the first iteration and then at most
    /// every [`STATS_EVERY`]; `None` in the iterations between reads (and
    /// if the read failed).
    pub stats: Option<S>,
    /// How long this loop has spent in iterations that did work (received,
    /// sent or completed something), summed since it started: the busy
    /// part of a busy-polling core, which `top` shows as 100% whatever it
    /// does. Measured on the loop's own clock reads, so it costs nothing
    /// extra.
    pub busy: Duration,
}

/// What the loop does when there is nothing to do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IdleMode {
    /// Spin: lowest latency, one whole core (dataplane cores in production).
    BusyPoll,
    /// [`Port::wait`] with the engine's next timer as timeout, at most
    /// `max` (laptops, CI, tests: tests never busy-poll).
    Sleep {
        /// The longest sleep (bounds request latency).
        max: Duration,
    },
}

/// What the owner of a core does in the loop, besides frames and timers.
///
/// `S` is the port's [`Port::Stats`].
pub trait Hooks<S> {
    /// Checked before every iteration: `true` ends the loop.
    fn done(&mut self) -> bool;

    /// Called once per iteration, after the received frames reached the
    /// engine and before its timers run: feed client requests
    /// (`handle_request`), take the port's figures from `view`, decide
    /// whether the next [`done`](Hooks::done) says stop.
    fn requests(&mut self, engine: &mut QueueEngine, now: Instant, view: LoopView<S>);

    /// Receives every completion the engine produced, in order, after the
    /// iteration's TX burst.
    fn on_completion(&mut self, c: Completion);

    /// What frames meet besides the engine, lent for one burst (see
    /// [`CoreIo`]). The default: neither a sink nor a capture.
    fn io(&mut self) -> CoreIo<'_> {
        CoreIo::default()
    }

    /// Called when the loop is about to sleep: arm what makes
    /// [`wake_fd`](Hooks::wake_fd) readable (the daemon asks its clients to
    /// ring their doorbells), then look once more. `false`: work arrived
    /// meanwhile, do not sleep. The default arms nothing and sleeps.
    fn before_sleep(&mut self) -> bool {
        true
    }

    /// A descriptor the port's [`Port::wait`] also watches: readable when
    /// the hooks have work. The default: none.
    fn wake_fd(&self) -> Option<BorrowedFd<'_>> {
        None
    }

    /// Called after every [`before_sleep`](Hooks::before_sleep), slept or
    /// not: disarm and consume the wakeup.
    fn after_sleep(&mut self) {}
}

/// What the hooks lend the loop for one burst, besides the engine.
#[derive(Default)]
pub struct CoreIo<'a> {
    /// Where received payload goes: the clients' receive memory, written
    /// once as each frame is handled (`QueueEngine::handle_rx_into`).
    /// `None`: payload travels as owned copies in the completions.
    pub sink: Option<&'a mut dyn RxSink>,
    /// The capture running on this core (`lingerd ctl capture`): offered
    /// every frame received and sent. `None`: no capture, and one branch
    /// per burst is all it costs.
    pub capture: Option<&'a mut CaptureTap>,
}

/// Runs `engine` on `port` until `hooks` says it is done.
///
/// With `handoff`, received frames go through it (to this engine, to their
/// owner's inbox, or both for ARP) and this queue's inbox is drained into
/// the engine every iteration. Returns an I/O error from the port (a flush
/// or a wait that failed).
pub fn run<P: Port, H: Hooks<P::Stats>>(
    port: &mut P,
    engine: &mut QueueEngine,
    mode: IdleMode,
    mut handoff: Option<&mut Handoff>,
    hooks: &mut H,
) -> io::Result<()> {
    let mut stats_due = Instant::now();
    let mut busy = Duration::ZERO;
    // The previous iteration's start and whether it did work.
    let mut previous: Option<(Instant, bool)> = None;
    while !hooks.done() {
        port.count_loop();
        let now = Instant::now();
        if let Some((then, true)) = previous {
            busy += now.saturating_duration_since(then);
        }
        let stats = (now >= stats_due).then(|| {
            stats_due = now + STATS_EVERY;
            port.stats().ok()
        });
        let view = LoopView {
            tx_in_flight: port.tx_in_flight(),
            stats: stats.flatten(),
            busy,
        };
        let mut no_sink = NoSink;
        let io = hooks.io();
        let sink: &mut dyn RxSink = match io.sink {
            Some(sink) => sink,
            None => &mut no_sink,
        };
        // Two passes over each burst: every frame's index bucket asked for
        // (a frame another queue owns only wastes the hint), then the
        // frames handled, their lookups' misses overlapped.
        let mut received = match (handoff.as_deref_mut(), io.capture) {
            (None, None) => port.rx_burst_ahead(RX_BURST, |pass, frame| match pass {
                RxPass::Ahead => engine.prefetch_rx(frame),
                RxPass::Handle => engine.handle_rx_into(now, frame, sink),
            }),
            (Some(h), None) => port.rx_burst_ahead(RX_BURST, |pass, frame| match pass {
                RxPass::Ahead => engine.prefetch_rx(frame),
                RxPass::Handle => {
                    if h.route(frame) {
                        engine.handle_rx_into(now, frame, sink);
                    }
                }
            }),
            (h, Some(tap)) => {
                tap.set_clock(now);
                let mut h = h;
                port.rx_burst_ahead(RX_BURST, |pass, frame| match pass {
                    RxPass::Ahead => engine.prefetch_rx(frame),
                    RxPass::Handle => {
                        tap.offer(Direction::Received, frame);
                        if h.as_deref_mut().is_none_or(|h| h.route(frame)) {
                            engine.handle_rx_into(now, frame, sink);
                        }
                    }
                })
            }
        };
        if let Some(h) = handoff.as_deref_mut() {
            received += h.drain(RX_BURST, |frame| engine.handle_rx_into(now, frame, sink));
        }
        hooks.requests(engine, now, view);
        if engine.poll_timeout().is_some_and(|t| t <= now) {
            engine.handle_timeout(now);
        }
        let mut sent = 0;
        match hooks.io().capture {
            None => {
                while sent < TX_BURST {
                    match port.tx_frame(|buf| engine.poll_transmit(now, buf)) {
                        TxOutcome::Queued => sent += 1,
                        TxOutcome::Empty | TxOutcome::NoFrame => break,
                    }
                }
            }
            Some(tap) => {
                while sent < TX_BURST {
                    let written = port.tx_frame(|buf| {
                        let n = engine.poll_transmit(now, buf)?;
                        tap.offer(Direction::Sent, buf.get(..n).unwrap_or(buf));
                        Some(n)
                    });
                    match written {
                        TxOutcome::Queued => sent += 1,
                        TxOutcome::Empty | TxOutcome::NoFrame => break,
                    }
                }
                tap.end_iteration(now);
            }
        }
        port.flush()?;
        let mut completed = 0;
        while let Some(c) = engine.poll_completion() {
            hooks.on_completion(c);
            completed += 1;
        }
        previous = Some((now, received > 0 || sent > 0 || completed > 0));
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
                if hooks.before_sleep() {
                    port.wait(timeout, hooks.wake_fd())?;
                }
                hooks.after_sleep();
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::collections::VecDeque;
    use std::net::Ipv4Addr;

    use super::*;
    use crate::engine::config::{EngineConfig, Prefix};
    use crate::wire::EthernetAddress;

    const ENGINE_MAC: [u8; 6] = [2, 0, 0, 0, 0, 1];
    const PEER_MAC: [u8; 6] = [2, 0, 0, 0, 0, 2];
    const ENGINE_IP: [u8; 4] = [198, 18, 0, 1];
    const PEER_IP: [u8; 4] = [198, 18, 0, 2];

    /// An ARP request from the peer for the engine's address.
    fn arp_who_has() -> Vec<u8> {
        let mut f = vec![0xff; 6];
        f.extend_from_slice(&PEER_MAC);
        f.extend_from_slice(&[0x08, 0x06, 0, 1, 0x08, 0, 6, 4, 0, 1]);
        f.extend_from_slice(&PEER_MAC);
        f.extend_from_slice(&PEER_IP);
        f.extend_from_slice(&[0; 6]);
        f.extend_from_slice(&ENGINE_IP);
        f
    }

    /// A port fed from a script, recording what the loop did with it.
    #[derive(Default)]
    struct Script {
        rx: VecDeque<Vec<u8>>,
        tx: Vec<Vec<u8>>,
        flushes: usize,
        waits: Vec<Duration>,
        /// Whether each wait was also given a wake descriptor.
        woken_by: Vec<bool>,
        loops: u64,
        /// Whether a wait really sleeps its timeout.
        sleeps: bool,
    }

    impl Port for Script {
        type Stats = u64;

        fn rx_burst(&mut self, max: usize, mut on_frame: impl FnMut(&[u8])) -> usize {
            let mut n = 0;
            while n < max
                && let Some(f) = self.rx.pop_front()
            {
                on_frame(&f);
                n += 1;
            }
            n
        }

        fn tx_frame(&mut self, write: impl FnOnce(&mut [u8]) -> Option<usize>) -> TxOutcome {
            let mut buf = vec![0u8; 2048];
            match write(&mut buf) {
                Some(n) if n > 0 => {
                    buf.truncate(n);
                    self.tx.push(buf);
                    TxOutcome::Queued
                }
                _ => TxOutcome::Empty,
            }
        }

        fn flush(&mut self) -> io::Result<usize> {
            self.flushes += 1;
            Ok(0)
        }

        fn tx_in_flight(&self) -> usize {
            0
        }

        fn wait(&mut self, timeout: Duration, also: Option<BorrowedFd<'_>>) -> io::Result<bool> {
            self.waits.push(timeout);
            self.woken_by.push(also.is_some());
            if self.sleeps {
                std::thread::sleep(timeout);
            }
            Ok(false)
        }

        fn stats(&self) -> io::Result<u64> {
            Ok(self.loops)
        }

        fn count_loop(&mut self) {
            self.loops += 1;
        }
    }

    /// Stops after `iterations` calls of `requests`, remembering the views.
    struct Count {
        iterations: usize,
        views: Vec<LoopView<u64>>,
    }

    impl Hooks<u64> for Count {
        fn done(&mut self) -> bool {
            self.views.len() >= self.iterations
        }

        fn requests(&mut self, _engine: &mut QueueEngine, _now: Instant, view: LoopView<u64>) {
            self.views.push(view);
        }

        fn on_completion(&mut self, _c: Completion) {}
    }

    fn engine() -> QueueEngine {
        let cfg = EngineConfig::new(
            0,
            EthernetAddress(ENGINE_MAC),
            Prefix::new(Ipv4Addr::from(ENGINE_IP).into(), 24).expect("an IPv4 prefix length"),
        );
        QueueEngine::new(cfg, Instant::now())
    }

    #[test]
    fn frames_in_reach_the_engine_and_its_answer_goes_out() {
        let mut port = Script::default();
        port.rx.push_back(arp_who_has());
        let mut hooks = Count {
            iterations: 3,
            views: Vec::new(),
        };
        let mode = IdleMode::Sleep {
            max: Duration::from_millis(1),
        };
        run(&mut port, &mut engine(), mode, None, &mut hooks).unwrap();
        assert_eq!(port.loops, 3, "one count per iteration, none after done");
        assert_eq!(port.flushes, 3);
        assert_eq!(port.tx.len(), 1, "one ARP reply");
        let reply = &port.tx[0];
        assert_eq!(&reply[..6], &PEER_MAC, "to the asker");
        assert_eq!(&reply[12..14], &[0x08, 0x06]);
        // The stats are read in the first iteration only (100 ms apart).
        assert_eq!(hooks.views[0].stats, Some(1), "read after the first count");
        assert!(hooks.views[1..].iter().all(|v| v.stats.is_none()));
    }

    #[test]
    fn busy_time_grows_in_iterations_that_work_and_not_in_idle_ones() {
        let mut port = Script {
            sleeps: true,
            ..Script::default()
        };
        port.rx.push_back(arp_who_has());
        let mut hooks = Count {
            iterations: 4,
            views: Vec::new(),
        };
        let mode = IdleMode::Sleep {
            max: Duration::from_millis(20),
        };
        run(&mut port, &mut engine(), mode, None, &mut hooks).unwrap();
        let busy: Vec<Duration> = hooks.views.iter().map(|v| v.busy).collect();
        // Nothing before the first iteration; the first (ARP in, reply
        // out) counts up to the second's start; the second and third were
        // idle and slept 20 ms each, which do not count.
        assert_eq!(busy[0], Duration::ZERO);
        assert!(busy[1] > Duration::ZERO, "{busy:?}");
        assert_eq!(busy[2], busy[1], "{busy:?}");
        assert_eq!(busy[3], busy[1], "{busy:?}");
        assert_eq!(port.waits.len(), 3, "every idle iteration slept");
    }

    #[test]
    fn sleep_mode_waits_only_when_idle_and_busy_mode_never() {
        let max = Duration::from_millis(1);
        let mut port = Script::default();
        port.rx.push_back(arp_who_has());
        let mut hooks = Count {
            iterations: 3,
            views: Vec::new(),
        };
        run(
            &mut port,
            &mut engine(),
            IdleMode::Sleep { max },
            None,
            &mut hooks,
        )
        .unwrap();
        // The first iteration received and sent: no wait; the two idle ones
        // waited at most the cap (no engine timer is armed).
        assert_eq!(port.waits, [max, max]);

        let mut port = Script::default();
        let mut hooks = Count {
            iterations: 3,
            views: Vec::new(),
        };
        run(
            &mut port,
            &mut engine(),
            IdleMode::BusyPoll,
            None,
            &mut hooks,
        )
        .unwrap();
        assert!(port.waits.is_empty());
        assert_eq!(port.loops, 3);
    }

    /// Arms a wake descriptor before each sleep; says "work arrived" on
    /// the sleeps listed in `busy_at` (counted from 0).
    struct Doorbell {
        iterations: usize,
        fd: std::os::fd::OwnedFd,
        busy_at: Vec<usize>,
        armed: usize,
        disarmed: usize,
    }

    impl Hooks<u64> for Doorbell {
        fn done(&mut self) -> bool {
            self.iterations == 0
        }

        fn requests(&mut self, _engine: &mut QueueEngine, _now: Instant, _view: LoopView<u64>) {
            self.iterations -= 1;
        }

        fn on_completion(&mut self, _c: Completion) {}

        fn before_sleep(&mut self) -> bool {
            let idle = !self.busy_at.contains(&self.armed);
            self.armed += 1;
            idle
        }

        fn wake_fd(&self) -> Option<BorrowedFd<'_>> {
            use std::os::fd::AsFd;
            Some(self.fd.as_fd())
        }

        fn after_sleep(&mut self) {
            self.disarmed += 1;
        }
    }

    #[test]
    fn the_hooks_wake_fd_goes_to_the_wait_and_late_work_skips_the_sleep() {
        let max = Duration::from_millis(1);
        let mut port = Script::default();
        let mut hooks = Doorbell {
            iterations: 4,
            fd: std::fs::File::open("/dev/null").unwrap().into(),
            busy_at: vec![1],
            armed: 0,
            disarmed: 0,
        };
        run(
            &mut port,
            &mut engine(),
            IdleMode::Sleep { max },
            None,
            &mut hooks,
        )
        .unwrap();
        // Four idle iterations: four arms, each disarmed; the second found
        // work and did not sleep; the three sleeps watched the descriptor.
        assert_eq!((hooks.armed, hooks.disarmed), (4, 4));
        assert_eq!(port.waits, [max, max, max]);
        assert_eq!(port.woken_by, [true, true, true]);
    }

    /// Holds a capture tap and lends it to the loop.
    struct Capturing {
        iterations: usize,
        tap: Option<CaptureTap>,
    }

    impl Hooks<u64> for Capturing {
        fn done(&mut self) -> bool {
            self.iterations == 0
        }

        fn requests(&mut self, _engine: &mut QueueEngine, _now: Instant, _view: LoopView<u64>) {
            self.iterations -= 1;
        }

        fn on_completion(&mut self, _c: Completion) {}

        fn io(&mut self) -> CoreIo<'_> {
            CoreIo {
                sink: None,
                capture: self.tap.as_mut(),
            }
        }
    }

    #[test]
    fn a_capture_sees_each_frame_received_and_sent_once_in_order() {
        use crate::capture::{Batch, TapConfig, capture};
        let mut port = Script::default();
        port.rx.push_back(arp_who_has());
        port.rx.push_back(vec![0u8; 10]); // runt: dropped by the engine, captured
        let (tap, reader) = capture(TapConfig {
            queue: 4,
            filter: None,
            snaplen: 2048,
            batches: 4,
            clock: (Instant::now(), 0),
        });
        let mut hooks = Capturing {
            iterations: 3,
            tap: Some(tap),
        };
        let mode = IdleMode::Sleep {
            max: Duration::from_millis(1),
        };
        run(&mut port, &mut engine(), mode, None, &mut hooks).unwrap();
        hooks.tap.take().expect("still installed").finish();
        let mut seen = Vec::new();
        while let Some(b) = reader.next_batch() {
            let batch = Batch::parse(&b).unwrap();
            assert_eq!(batch.queue, 4);
            seen.extend(batch.records().map(|r| (r.direction, r.bytes.to_vec())));
        }
        assert_eq!(port.tx.len(), 1, "the ARP reply");
        assert_eq!(
            seen,
            [
                (Direction::Received, arp_who_has()),
                (Direction::Received, vec![0u8; 10]),
                (Direction::Sent, port.tx[0].clone()),
            ]
        );
        assert_eq!(reader.stats().seen, 3);
    }
}
