//! Congestion control: slow start, congestion avoidance, fast retransmit and
//! fast recovery, initial window per RFC 6928. Recovery is NewReno (RFC
//! 5681, RFC 6582) when the peer did not permit SACK, and RFC 6675's
//! (cwnd = ssthresh, sending governed by the scoreboard's pipe) when it did.
//!
//! It owns cwnd, ssthresh, the duplicate-ACK count and threshold, whether
//! SACK is in use and the recovery point.
//! It decides *whether* to retransmit; the connection decides *what* and
//! performs the send. Byte counts are u32; sequence numbers are
//! [`SeqNumber`]s.

use crate::wire::SeqNumber;

/// What the connection must do after an ACK was processed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AckAction {
    /// Nothing special.
    None,
    /// Retransmit the first unacknowledged segment now (fast retransmit on
    /// the third duplicate ACK, or a partial ACK during recovery).
    RetransmitFirst,
}

/// NewReno state for one connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NewReno {
    /// Congestion window, bytes.
    pub cwnd: u32,
    /// Slow-start threshold, bytes.
    pub ssthresh: u32,
    /// SND.MAX when the last recovery (or timeout) began: one past RFC
    /// 6582 `recover`, the highest sequence number sent then.
    pub recover: SeqNumber,
    /// Consecutive duplicate ACKs.
    pub dupacks: u8,
    /// Inside fast recovery.
    pub in_recovery: bool,
    /// Duplicate ACKs (or SACKed segments) that signal a loss: 3 (RFC 5681),
    /// raised each time a recovery proves spurious (reordering), at most
    /// [`MAX_DUPTHRESH`].
    pub dupthresh: u8,
    /// SACK was negotiated: recovery follows RFC 6675.
    pub sack: bool,
}

/// The highest duplicate threshold reordering can push the sender to.
pub const MAX_DUPTHRESH: u8 = 16;

impl NewReno {
    /// RFC 6928 initial window: min(10×MSS, max(2×MSS, 14600)).
    pub fn new(mss: u32, iss: SeqNumber) -> NewReno {
        let iw = (10 * mss).min((2 * mss).max(14_600));
        NewReno {
            cwnd: iw,
            ssthresh: u32::MAX,
            recover: iss,
            dupacks: 0,
            in_recovery: false,
            dupthresh: 3,
            sack: false,
        }
    }

    /// Enters fast recovery (RFC 5681 §3.2 step 2, RFC 6675 §5 step 4):
    /// halve, remember `recover`. With SACK, cwnd is ssthresh and the pipe
    /// decides what may go; without, cwnd is inflated by the dupthresh
    /// segments that left the network.
    pub fn enter_recovery(&mut self, flight: u32, snd_max: SeqNumber, mss: u32) {
        self.ssthresh = (flight / 2).max(2 * mss);
        self.cwnd = if self.sack {
            self.ssthresh
        } else {
            self.ssthresh + u32::from(self.dupthresh) * mss
        };
        self.recover = snd_max;
        self.in_recovery = true;
    }

    /// Whether a duplicate ACK for `ack` may start a recovery (RFC 6582
    /// §3.2 step 2: the ACK covers more than the highest sequence number
    /// sent when the last episode began, so one loss episode never halves
    /// cwnd twice). `recover` is SND.MAX then, one past that number: an
    /// ACK equal to it covers the whole episode, and a loss of the first
    /// segment sent after it is a new one.
    pub fn may_recover(&self, ack: SeqNumber) -> bool {
        !self.in_recovery && ack.diff(self.recover) >= 0
    }

    /// A recovery proved spurious (RFC 4015 §3.2): the window before it
    /// comes back, and the threshold rises so the same reordering does
    /// not fire again.
    pub fn undo(&mut self, cwnd: u32, ssthresh: u32, ack: SeqNumber) {
        self.cwnd = self.cwnd.max(cwnd);
        self.ssthresh = ssthresh;
        self.in_recovery = false;
        self.recover = ack;
        self.dupacks = 0;
        self.dupthresh = self.dupthresh.saturating_add(2).min(MAX_DUPTHRESH);
    }

    /// New data was acknowledged: `acked` bytes, cumulative ACK now `ack`.
    pub fn on_new_ack(&mut self, acked: u32, ack: SeqNumber, mss: u32) -> AckAction {
        self.dupacks = 0;
        if self.in_recovery {
            if ack.diff(self.recover) >= 0 {
                // RFC 6582 §3.2 step 3, full acknowledgment: deflate.
                self.in_recovery = false;
                self.cwnd = self.ssthresh;
                return AckAction::None;
            }
            if self.sack {
                // RFC 6675: cwnd stays; the pipe shrank, so whatever it
                // allows (the next hole first) goes.
                return AckAction::RetransmitFirst;
            }
            // Partial acknowledgment: retransmit the next hole, deflate by
            // the amount acknowledged, add back one MSS (step 3, partial).
            self.cwnd = self.cwnd.saturating_sub(acked).saturating_add(mss).max(mss);
            return AckAction::RetransmitFirst;
        }
        if self.cwnd < self.ssthresh {
            // RFC 5681 §3.1 slow start (appropriate byte counting, L = 1 SMSS).
            self.cwnd = self.cwnd.saturating_add(acked.min(mss));
        } else {
            // Congestion avoidance: one MSS per window acknowledged,
            // counted in bytes (RFC 3465 §2.1), so a peer that delays its
            // ACKs (one per two segments) does not halve the growth.
            let inc = (u64::from(acked) * u64::from(mss) / u64::from(self.cwnd.max(1))).max(1);
            self.cwnd = self.cwnd.saturating_add(inc as u32);
        }
        AckAction::None
    }

    /// A duplicate ACK (RFC 5681 §2 definition) arrived. `flight` is bytes
    /// outstanding, `ack` the duplicated ACK, `snd_max` the highest sequence
    /// number sent.
    pub fn on_dup_ack(
        &mut self,
        flight: u32,
        ack: SeqNumber,
        snd_max: SeqNumber,
        mss: u32,
    ) -> AckAction {
        self.dupacks = self.dupacks.saturating_add(1);
        if self.in_recovery {
            if !self.sack {
                // RFC 5681 §3.2 step 4: inflate for each segment that left.
                self.cwnd = self.cwnd.saturating_add(mss);
            }
            return AckAction::None;
        }
        if self.dupacks == self.dupthresh && self.may_recover(ack) {
            self.enter_recovery(flight, snd_max, mss);
            return AckAction::RetransmitFirst;
        }
        AckAction::None
    }

    /// The retransmission timer expired (RFC 5681 §3.1 eq. 4, RFC 6582 §3.2 step 4).
    pub fn on_timeout(&mut self, flight: u32, snd_max: SeqNumber, mss: u32) {
        self.ssthresh = (flight / 2).max(2 * mss);
        self.cwnd = mss;
        self.recover = snd_max;
        self.in_recovery = false;
        self.dupacks = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MSS: u32 = 1000;

    #[test]
    fn slow_start_then_avoidance() {
        let mut c = NewReno::new(MSS, SeqNumber(0));
        assert_eq!(c.cwnd, 10 * MSS);
        c.on_new_ack(MSS, SeqNumber(1000), MSS);
        assert_eq!(c.cwnd, 11 * MSS);
        c.ssthresh = c.cwnd;
        c.on_new_ack(MSS, SeqNumber(2000), MSS);
        assert_eq!(c.cwnd, 11 * MSS + MSS / 11);
    }

    #[test]
    fn avoidance_counts_bytes_not_acks() {
        let mut one = NewReno::new(MSS, SeqNumber(0));
        one.cwnd = 20 * MSS;
        one.ssthresh = one.cwnd;
        let mut two = one;
        // The same two segments: one ACK each, or one ACK for both.
        one.on_new_ack(MSS, SeqNumber(1000), MSS);
        one.on_new_ack(MSS, SeqNumber(2000), MSS);
        two.on_new_ack(2 * MSS, SeqNumber(2000), MSS);
        assert!(two.cwnd + 2 >= one.cwnd, "{} vs {}", two.cwnd, one.cwnd);
        assert!(two.cwnd > 20 * MSS + MSS / 20);
    }

    #[test]
    fn three_dupacks_enter_recovery_once_and_full_ack_exits() {
        let mut c = NewReno::new(MSS, SeqNumber(0));
        let (ack, max) = (SeqNumber(5000), SeqNumber(15000));
        assert_eq!(c.on_dup_ack(10 * MSS, ack, max, MSS), AckAction::None);
        assert_eq!(c.on_dup_ack(10 * MSS, ack, max, MSS), AckAction::None);
        assert_eq!(
            c.on_dup_ack(10 * MSS, ack, max, MSS),
            AckAction::RetransmitFirst
        );
        assert!(c.in_recovery);
        assert_eq!(c.ssthresh, 5 * MSS);
        assert_eq!(c.cwnd, 8 * MSS);
        c.on_dup_ack(10 * MSS, ack, max, MSS);
        assert_eq!(c.cwnd, 9 * MSS, "inflation");
        assert_eq!(
            c.on_new_ack(2 * MSS, SeqNumber(7000), MSS),
            AckAction::RetransmitFirst,
            "partial ACK"
        );
        assert!(c.in_recovery);
        assert_eq!(c.on_new_ack(8 * MSS, max, MSS), AckAction::None);
        assert!(!c.in_recovery);
        assert_eq!(c.cwnd, 5 * MSS);
    }

    #[test]
    fn a_loss_just_after_a_full_ack_starts_a_new_recovery() {
        let mut c = NewReno::new(MSS, SeqNumber(0));
        let max = SeqNumber(15000);
        for _ in 0..3 {
            c.on_dup_ack(10 * MSS, SeqNumber(5000), max, MSS);
        }
        assert!(c.in_recovery);
        c.on_new_ack(10 * MSS, max, MSS);
        assert!(!c.in_recovery);
        // The first segment sent after the episode began, at `max`, is
        // lost: its duplicate ACKs name `max` itself.
        let later = SeqNumber(20000);
        assert_eq!(c.on_dup_ack(5 * MSS, max, later, MSS), AckAction::None);
        assert_eq!(c.on_dup_ack(5 * MSS, max, later, MSS), AckAction::None);
        assert_eq!(
            c.on_dup_ack(5 * MSS, max, later, MSS),
            AckAction::RetransmitFirst
        );
    }

    #[test]
    fn timeout_collapses_the_window() {
        let mut c = NewReno::new(MSS, SeqNumber(0));
        c.on_timeout(8 * MSS, SeqNumber(8000), MSS);
        assert_eq!((c.cwnd, c.ssthresh), (MSS, 4 * MSS));
        // Dup ACKs for data below `recover` do not start another recovery.
        for _ in 0..3 {
            assert_eq!(
                c.on_dup_ack(MSS, SeqNumber(4000), SeqNumber(8000), MSS),
                AckAction::None
            );
        }
    }
}
