//! A [`Port`] that drops chosen received frames before the loop sees them.
//!
//! Benchmarks use it to build a test peer that must stay silent on some
//! connections (the load generator not acknowledging a FIN, so that the
//! other side's linger deadline stays armed) out of the public loop
//! ([`lingerd_dataplane::port::core_loop::run`]), which has no such knob: a
//! daemon's engine sees every frame. It owns only the predicate; the frames
//! it drops are released unread, and everything else is the wrapped port's.

use std::io;
use std::os::fd::BorrowedFd;
use std::time::Duration;

use lingerd_dataplane::port::{Port, TxOutcome};

/// `port`, minus the received frames `keep` refuses.
#[derive(Debug)]
pub struct Filtered<P, F> {
    port: P,
    keep: F,
}

impl<P: Port, F: FnMut(&[u8]) -> bool> Filtered<P, F> {
    /// Wraps `port`; `keep` sees every received frame and returns whether
    /// the loop gets it.
    pub fn new(port: P, keep: F) -> Filtered<P, F> {
        Filtered { port, keep }
    }

    /// The wrapped port (for its statistics after the loop).
    pub fn into_inner(self) -> P {
        self.port
    }
}

impl<P: Port, F: FnMut(&[u8]) -> bool> Port for Filtered<P, F> {
    type Stats = P::Stats;

    /// Counts every frame received, kept or not: a dropped frame was still
    /// work for the loop.
    fn rx_burst(&mut self, max: usize, mut on_frame: impl FnMut(&[u8])) -> usize {
        let keep = &mut self.keep;
        self.port.rx_burst(max, |frame| {
            if keep(frame) {
                on_frame(frame);
            }
        })
    }

    fn tx_frame(&mut self, write: impl FnOnce(&mut [u8]) -> Option<usize>) -> TxOutcome {
        self.port.tx_frame(write)
    }

    fn flush(&mut self) -> io::Result<usize> {
        self.port.flush()
    }

    fn tx_in_flight(&self) -> usize {
        self.port.tx_in_flight()
    }

    fn wait(&mut self, timeout: Duration, also: Option<BorrowedFd<'_>>) -> io::Result<bool> {
        self.port.wait(timeout, also)
    }

    fn stats(&self) -> io::Result<P::Stats> {
        self.port.stats()
    }

    fn count_loop(&mut self) {
        self.port.count_loop();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A port whose RX hands out the frames it was given and whose TX
    /// remembers what was written.
    #[derive(Default)]
    struct Script {
        rx: Vec<Vec<u8>>,
        tx: Vec<Vec<u8>>,
        loops: u64,
    }

    impl Port for Script {
        type Stats = u64;
        fn rx_burst(&mut self, max: usize, mut on_frame: impl FnMut(&[u8])) -> usize {
            let n = max.min(self.rx.len());
            for f in self.rx.drain(..n) {
                on_frame(&f);
            }
            n
        }
        fn tx_frame(&mut self, write: impl FnOnce(&mut [u8]) -> Option<usize>) -> TxOutcome {
            let mut buf = vec![0u8; 64];
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
            Ok(0)
        }
        fn tx_in_flight(&self) -> usize {
            self.tx.len()
        }
        fn wait(&mut self, _: Duration, _: Option<BorrowedFd<'_>>) -> io::Result<bool> {
            Ok(false)
        }
        fn stats(&self) -> io::Result<u64> {
            Ok(self.loops)
        }
        fn count_loop(&mut self) {
            self.loops += 1;
        }
    }

    #[test]
    fn drops_only_what_keep_refuses_and_passes_the_rest_through() {
        let script = Script {
            rx: vec![vec![1], vec![2, 2], vec![3], vec![4, 4]],
            ..Script::default()
        };
        let mut refused = 0;
        let mut port = Filtered::new(script, |f: &[u8]| {
            let keep = f.len() == 1;
            refused += usize::from(!keep);
            keep
        });
        let mut seen = Vec::new();
        assert_eq!(port.rx_burst(3, |f| seen.push(f[0])), 3, "all received");
        assert_eq!(port.rx_burst(8, |f| seen.push(f[0])), 1);
        assert_eq!(seen, [1, 3]);
        port.count_loop();
        assert_eq!(port.stats().unwrap(), 1);
        let out = port.tx_frame(|buf| {
            buf[0] = 9;
            Some(1)
        });
        assert_eq!(out, TxOutcome::Queued);
        assert_eq!(port.tx_in_flight(), 1);
        let inner = port.into_inner();
        assert_eq!(inner.tx, [vec![9]]);
        assert_eq!(refused, 2);
    }
}
