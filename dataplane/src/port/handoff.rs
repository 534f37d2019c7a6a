//! Handing frames between queue engines of one process.
//!
//! A frame that arrives on one queue but belongs to a flow another queue
//! owns ([`crate::flow::FlowSteer::classify`]) is copied into the owner's
//! inbox, a bounded lock-free ring (crossbeam's `ArrayQueue`), and the
//! owner's shell feeds it to its engine on its next iteration. ARP goes to
//! every engine (each keeps its own neighbour cache). One [`Handoff`] per
//! engine thread; [`Handoff::group`] makes all of them for one interface.
//!
//! It owns the inboxes and their counters; it never parses beyond what
//! `classify` reads and keeps no protocol state. A full inbox drops the
//! frame and counts it (TCP retransmits; the alternative is blocking a
//! dataplane core on another).

use std::sync::Arc;

use crossbeam_queue::ArrayQueue;

use crate::flow::{FlowSteer, FrameOwner};

/// Frames an inbox holds.
pub const INBOX_FRAMES: usize = 4096;

/// What a [`Handoff`] counted.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct HandoffCounters {
    /// Frames this queue received for another queue and passed on.
    pub forwarded: u64,
    /// ARP frames copied to every other queue.
    pub broadcast: u64,
    /// Frames taken from this queue's inbox.
    pub received: u64,
    /// Frames dropped because the owner's inbox was full.
    pub dropped: u64,
}

/// A queue's inbox. There is no doorbell: a sleeping owner sees frames
/// within its idle cap (sleep mode) or at once (busy mode).
struct Inbox {
    frames: ArrayQueue<Vec<u8>>,
}

/// One engine's end of the in-process frame exchange.
pub struct Handoff {
    steer: FlowSteer,
    inboxes: Arc<[Inbox]>,
    counters: HandoffCounters,
}

impl std::fmt::Debug for Handoff {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Handoff")
            .field("me", &self.steer.me)
            .field("queues", &self.steer.queues)
            .field("counters", &self.counters)
            .finish()
    }
}

impl Handoff {
    /// One handoff per queue index, sharing inboxes; `steers[i].me == i`.
    pub fn group(steers: Vec<FlowSteer>) -> Vec<Handoff> {
        let inboxes: Arc<[Inbox]> = (0..steers.len())
            .map(|_| Inbox {
                frames: ArrayQueue::new(INBOX_FRAMES),
            })
            .collect();
        steers
            .into_iter()
            .map(|steer| Handoff {
                steer,
                inboxes: inboxes.clone(),
                counters: HandoffCounters::default(),
            })
            .collect()
    }

    /// The counters so far.
    pub fn counters(&self) -> HandoffCounters {
        self.counters
    }

    /// The flow steering this engine uses.
    pub fn steer(&self) -> &FlowSteer {
        &self.steer
    }

    fn push(&mut self, to: usize, frame: &[u8]) {
        let Some(inbox) = self.inboxes.get(to) else {
            return;
        };
        if inbox.frames.push(frame.to_vec()).is_err() {
            self.counters.dropped += 1;
        }
    }

    /// Routes one received frame: `true` when this engine must process it
    /// (its own flow, or ARP, which also goes to the others).
    pub fn route(&mut self, frame: &[u8]) -> bool {
        match self.steer.classify(frame) {
            FrameOwner::Local => true,
            FrameOwner::Queue(q) => {
                self.counters.forwarded += 1;
                self.push(usize::from(q), frame);
                false
            }
            FrameOwner::All => {
                for q in 0..self.inboxes.len() {
                    if q != usize::from(self.steer.me) {
                        self.counters.broadcast += 1;
                        self.push(q, frame);
                    }
                }
                true
            }
        }
    }

    /// Feeds up to `max` frames of this engine's inbox to `on_frame`;
    /// returns how many.
    pub fn drain(&mut self, max: usize, mut on_frame: impl FnMut(&[u8])) -> usize {
        let Some(inbox) = self.inboxes.get(usize::from(self.steer.me)) else {
            return 0;
        };
        let mut n = 0;
        while n < max {
            let Some(frame) = inbox.frames.pop() else {
                break;
            };
            on_frame(&frame);
            n += 1;
        }
        self.counters.received += n as u64;
        n
    }

    /// Whether frames wait in this engine's inbox.
    pub fn pending(&self) -> bool {
        self.inboxes
            .get(usize::from(self.steer.me))
            .is_some_and(|i| !i.frames.is_empty())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tcp_frame(sport: u16) -> Vec<u8> {
        let mut f = vec![0u8; 54];
        f[12..14].copy_from_slice(&0x0800u16.to_be_bytes());
        f[14] = 0x45;
        f[23] = 6;
        f[26..30].copy_from_slice(&[198, 18, 0, 2]);
        f[30..34].copy_from_slice(&[198, 18, 0, 3]);
        f[34..36].copy_from_slice(&sport.to_be_bytes());
        f[36..38].copy_from_slice(&80u16.to_be_bytes());
        f
    }

    #[test]
    fn frames_reach_their_owner_once() {
        let mut hs = Handoff::group(vec![FlowSteer::software(0, 2), FlowSteer::software(1, 2)]);
        let mut local = [0usize; 2];
        for sport in 1000..1200u16 {
            let f = tcp_frame(sport);
            if hs[0].route(&f) {
                local[0] += 1;
            }
        }
        let mut got = 0;
        while hs[1].drain(64, |_| got += 1) > 0 {}
        assert_eq!(local[0] + got, 200);
        assert!(got > 0 && local[0] > 0);
        assert_eq!(hs[0].counters().forwarded as usize, got);
        assert_eq!(hs[1].counters().received as usize, got);
        // The receiving side routes them to itself.
        for sport in 1000..1200u16 {
            let f = tcp_frame(sport);
            if hs[1].steer().classify(&f) == FrameOwner::Local {
                local[1] += 1;
            }
        }
        assert_eq!(local[1], got);
    }

    #[test]
    fn arp_goes_everywhere() {
        let mut hs = Handoff::group(vec![FlowSteer::software(0, 2), FlowSteer::software(1, 2)]);
        let mut arp = vec![0u8; 42];
        arp[12..14].copy_from_slice(&0x0806u16.to_be_bytes());
        assert!(hs[0].route(&arp));
        assert!(hs[1].pending());
        assert_eq!(hs[1].drain(8, |f| assert_eq!(f.len(), 42)), 1);
    }
}
