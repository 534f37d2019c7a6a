//! The sender's SACK scoreboard (RFC 2018, RFC 6675) and the state that
//! undoes a spurious recovery (Eifel detection, RFC 3522, with the RFC 4015
//! response).
//!
//! It owns a short sorted list of byte ranges above SND.UNA that the peer
//! reported holding, the highest sequence retransmitted in the current
//! recovery (RFC 6675 HighRxt), and what the window was before recovery
//! began. It lives inside the connection's send buffer, which exists only
//! while data is outstanding, so an idle connection's record does not grow.
//! It validates every block it is given (a hostile peer can send anything)
//! and never panics; it does not decide cwnd and does not send: `input`
//! feeds it and `output` asks it which hole goes next.
//!
//! Why RFC 6675 with Eifel rather than RACK-TLP (RFC 8985): RACK needs a
//! send time for every segment in flight, memory this design avoids. The
//! lab's reordering holds a frame back behind a few later ones, which the
//! RFC 6675 loss rule (DupThresh segments SACKed above a hole) tolerates,
//! and when a recovery does start on reordering, the timestamp echo of the
//! first ACK covering the retransmission shows whether the original got
//! there first; the window is then restored and the duplicate threshold
//! raised (as Linux raises its reordering metric).

use crate::wire::SeqNumber;

/// Ranges the scoreboard keeps; a peer's SACK option names at most four, so
/// eight holds the blocks of a few ACKs. When full, the highest range is
/// forgotten (a hole above it is then simply not yet known to be SACKed).
pub const MAX_RANGES: usize = 8;

/// What the window was before a recovery began, and which transmission
/// would prove it spurious.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Undo {
    /// cwnd before the reduction.
    pub cwnd: u32,
    /// ssthresh before the reduction.
    pub ssthresh: u32,
    /// The first retransmitted byte (SND.UNA when recovery began).
    pub first: SeqNumber,
    /// Our TSval when recovery began: an ACK covering `first` that echoes
    /// an older one answers the original transmission.
    pub tsval: u32,
}

/// One connection's scoreboard.
#[derive(Clone, Debug, Default)]
pub struct Scoreboard {
    ranges: [(SeqNumber, SeqNumber); MAX_RANGES],
    len: u8,
    /// RFC 6675 HighRxt: below this, holes were already retransmitted in
    /// this recovery.
    pub high_rxt: SeqNumber,
    /// Armed while a recovery may still turn out spurious.
    pub undo: Option<Undo>,
    /// The segment at SND.UNA is still to be retransmitted because a
    /// recovery just began (RFC 6675 §5 step 4.2).
    pub rexmit_first: bool,
    /// SND.UNA and SND.MAX when the segment at SND.UNA was last
    /// retransmitted: while SND.UNA stays there, data sent after that
    /// retransmission being SACKed shows the retransmission was lost too.
    pub rxt_mark: Option<(SeqNumber, SeqNumber)>,
    /// The retransmission timer is armed as a tail loss probe (shorter
    /// than the RTO), not as the RTO itself.
    pub probe_armed: bool,
}

impl Scoreboard {
    /// The SACKed ranges, lowest first, disjoint.
    pub fn ranges(&self) -> &[(SeqNumber, SeqNumber)] {
        &self.ranges[..usize::from(self.len).min(MAX_RANGES)]
    }

    /// Forgets every range and the recovery state.
    pub fn clear(&mut self) {
        self.len = 0;
        self.undo = None;
        self.rexmit_first = false;
        self.rxt_mark = None;
        self.probe_armed = false;
    }

    /// Forgets the ranges only (RFC 2018 §8: after a timeout the sender
    /// may not rely on them).
    pub fn clear_ranges(&mut self) {
        self.len = 0;
    }

    /// Adds the peer's blocks. A block counts only when `snd_una <= left <
    /// right <= snd_max`; others (D-SACK blocks below SND.UNA, forged or
    /// stale ones) are ignored. Returns `(accepted, rejected)` block counts.
    pub fn add(
        &mut self,
        blocks: &[(SeqNumber, SeqNumber)],
        snd_una: SeqNumber,
        snd_max: SeqNumber,
    ) -> (u32, u32) {
        let (mut ok, mut bad) = (0, 0);
        for &(left, right) in blocks.iter().take(crate::wire::SackBlocks::MAX) {
            let valid = right.diff(left) > 0 && left.diff(snd_una) >= 0 && right.diff(snd_max) <= 0;
            if valid {
                self.insert(left, right);
                ok += 1;
            } else {
                bad += 1;
            }
        }
        (ok, bad)
    }

    fn insert(&mut self, mut left: SeqNumber, mut right: SeqNumber) {
        // Merge with every range it touches; keep the rest in order.
        let mut out = [(SeqNumber(0), SeqNumber(0)); MAX_RANGES + 1];
        let mut n = 0;
        let mut placed = false;
        for &(l, r) in self.ranges() {
            if r.diff(left) < 0 {
                out[n] = (l, r);
                n += 1;
            } else if l.diff(right) > 0 {
                if !placed {
                    out[n] = (left, right);
                    n += 1;
                    placed = true;
                }
                out[n] = (l, r);
                n += 1;
            } else {
                if l.diff(left) < 0 {
                    left = l;
                }
                if r.diff(right) > 0 {
                    right = r;
                }
            }
        }
        if !placed {
            out[n] = (left, right);
            n += 1;
        }
        let keep = n.min(MAX_RANGES);
        self.ranges[..keep].copy_from_slice(&out[..keep]);
        self.len = keep as u8;
    }

    /// The cumulative ACK moved to `snd_una`: ranges below it go.
    pub fn advance(&mut self, snd_una: SeqNumber) {
        let mut n = 0;
        for i in 0..usize::from(self.len).min(MAX_RANGES) {
            let (mut l, r) = self.ranges[i];
            if r.diff(snd_una) <= 0 {
                continue;
            }
            if l.diff(snd_una) < 0 {
                l = snd_una;
            }
            self.ranges[n] = (l, r);
            n += 1;
        }
        self.len = n as u8;
        if self.high_rxt.diff(snd_una) < 0 {
            self.high_rxt = snd_una;
        }
    }

    /// Bytes SACKed in total.
    pub fn sacked(&self) -> u32 {
        self.ranges()
            .iter()
            .fold(0u32, |a, &(l, r)| a.saturating_add(r.distance_from(l)))
    }

    /// Bytes SACKed at or above `seq`.
    fn sacked_above(&self, seq: SeqNumber) -> u32 {
        self.ranges()
            .iter()
            .filter(|(l, _)| l.diff(seq) >= 0)
            .fold(0u32, |a, &(l, r)| a.saturating_add(r.distance_from(l)))
    }

    /// Bytes SACKed beyond `seq`, counting the part of a range that
    /// straddles it.
    fn sacked_beyond(&self, seq: SeqNumber) -> u32 {
        self.ranges().iter().fold(0u32, |a, &(l, r)| {
            let from = if l.diff(seq) < 0 { seq } else { l };
            if r.diff(from) > 0 {
                a.saturating_add(r.distance_from(from))
            } else {
                a
            }
        })
    }

    /// Whether the retransmission of the segment at `snd_una` was lost as
    /// well: more than `(dupthresh - 1) × mss` bytes sent after it are
    /// SACKed while it is still not acknowledged (as Linux marks lost
    /// retransmissions). RFC 6675 alone retransmits a hole once per
    /// recovery and leaves the rest to the retransmission timeout.
    pub fn retransmission_lost(&self, snd_una: SeqNumber, dupthresh: u8, mss: u32) -> bool {
        let need = u32::from(dupthresh.max(1) - 1).saturating_mul(mss);
        self.rxt_mark
            .is_some_and(|(una, max)| una == snd_una && self.sacked_beyond(max) > need)
    }

    /// RFC 6675 IsLost for the byte at `seq`: more than `(dupthresh - 1) ×
    /// mss` bytes SACKed above it.
    pub fn is_lost(&self, seq: SeqNumber, dupthresh: u8, mss: u32) -> bool {
        let need = u32::from(dupthresh.max(1) - 1).saturating_mul(mss);
        self.sacked_above(seq) > need
    }

    /// The next hole to retransmit (RFC 6675 NextSeg rule 1): the lowest
    /// unSACKed span at or above `max(snd_una, HighRxt)` that is lost;
    /// `[start, end)`, `end` the next SACKed byte.
    pub fn next_hole(
        &self,
        snd_una: SeqNumber,
        dupthresh: u8,
        mss: u32,
    ) -> Option<(SeqNumber, SeqNumber)> {
        let mut at = if self.high_rxt.diff(snd_una) > 0 {
            self.high_rxt
        } else {
            snd_una
        };
        for &(l, r) in self.ranges() {
            if at.diff(l) < 0 {
                return self.is_lost(at, dupthresh, mss).then_some((at, l));
            }
            if r.diff(at) > 0 {
                at = r;
            }
        }
        None
    }

    /// Lost bytes not yet retransmitted (what RFC 6675's pipe leaves out).
    pub fn lost_unsent(&self, snd_una: SeqNumber, dupthresh: u8, mss: u32) -> u32 {
        let mut at = if self.high_rxt.diff(snd_una) > 0 {
            self.high_rxt
        } else {
            snd_una
        };
        let mut lost = 0u32;
        for &(l, r) in self.ranges() {
            if at.diff(l) < 0 && self.is_lost(at, dupthresh, mss) {
                lost = lost.saturating_add(l.distance_from(at));
            }
            if r.diff(at) > 0 {
                at = r;
            }
        }
        lost
    }

    /// RFC 6675 pipe: bytes in flight less those SACKed and those lost and
    /// not yet sent again.
    pub fn pipe(&self, flight: u32, snd_una: SeqNumber, dupthresh: u8, mss: u32) -> u32 {
        flight
            .saturating_sub(self.sacked())
            .saturating_sub(self.lost_unsent(snd_una, dupthresh, mss))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: u32) -> SeqNumber {
        SeqNumber(v)
    }

    #[test]
    fn blocks_merge_and_bad_ones_are_ignored() {
        let mut b = Scoreboard::default();
        let (una, max) = (s(1000), s(10_000));
        assert_eq!(
            b.add(&[(s(3000), s(4000)), (s(2000), s(2500))], una, max),
            (2, 0)
        );
        assert_eq!(b.add(&[(s(2500), s(3000))], una, max), (1, 0));
        assert_eq!(b.ranges(), &[(s(2000), s(4000))]);
        let hostile = [
            (s(500), s(900)),       // below SND.UNA (a D-SACK)
            (s(9000), s(11_000)),   // beyond SND.MAX
            (s(5000), s(5000)),     // empty
            (s(6000), s(5000)),     // reversed
            (s(u32::MAX), s(1500)), // wraps around SND.UNA
        ];
        assert_eq!(b.add(&hostile, una, max), (0, 4), "only four are looked at");
        assert_eq!(b.ranges(), &[(s(2000), s(4000))]);
        assert_eq!(b.sacked(), 2000);
    }

    #[test]
    fn a_full_board_forgets_the_highest_range() {
        let mut b = Scoreboard::default();
        for i in 0..(MAX_RANGES as u32 + 3) {
            b.add(&[(s(100 + i * 20), s(110 + i * 20))], s(0), s(1000));
        }
        assert_eq!(b.ranges().len(), MAX_RANGES);
        assert_eq!(b.ranges()[0], (s(100), s(110)));
        assert!(b.ranges().windows(2).all(|w| w[0].1.diff(w[1].0) < 0));
    }

    #[test]
    fn holes_are_lost_only_with_enough_sacked_above() {
        let mss = 100;
        let mut b = Scoreboard::default();
        let una = s(0);
        b.add(&[(s(100), s(200))], una, s(1000));
        assert_eq!(
            b.next_hole(una, 3, mss),
            None,
            "one segment above: reordering"
        );
        b.add(&[(s(200), s(400))], una, s(1000));
        assert_eq!(b.next_hole(una, 3, mss), Some((s(0), s(100))));
        assert_eq!(b.pipe(1000, una, 3, mss), 1000 - 300 - 100);
        b.high_rxt = s(100);
        assert_eq!(b.next_hole(una, 3, mss), None);
        assert_eq!(b.pipe(1000, una, 3, mss), 700);
        b.advance(s(400));
        assert!(b.ranges().is_empty());
        assert_eq!(b.high_rxt, s(400));
    }
}
