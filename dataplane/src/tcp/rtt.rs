//! Retransmission timeout estimation, RFC 6298.
//!
//! It owns SRTT, RTTVAR, the current RTO and its exponential backoff, in
//! milliseconds with Linux-style fixed point (SRTT×8, RTTVAR×4) so the state
//! fits in 12 bytes of the connection record. It takes RTT samples; choosing
//! which segments may be sampled (Karn's rule, timestamps) is the caller's.

/// RTO estimator state for one connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RttEstimator {
    /// SRTT in 1/8 ms; 0 before the first sample.
    srtt8: u32,
    /// RTTVAR in 1/4 ms.
    rttvar4: u32,
    /// The un-backed-off RTO in ms.
    rto_ms: u32,
    /// Number of consecutive backoffs (RFC 6298 §5.5).
    backoff: u8,
}

pub use crate::shared::config::RtoBounds;

impl RttEstimator {
    /// A fresh estimator (RFC 6298 §2.1).
    pub fn new(bounds: &RtoBounds) -> RttEstimator {
        RttEstimator {
            srtt8: 0,
            rttvar4: 0,
            rto_ms: bounds.initial_ms,
            backoff: 0,
        }
    }

    /// Feeds one RTT measurement in ms (RFC 6298 §2.2, §2.3) and clears the
    /// backoff (§5.7 lets the next sample reset it).
    pub fn on_sample(&mut self, rtt_ms: u32, bounds: &RtoBounds) {
        let r = rtt_ms.max(1);
        if self.srtt8 == 0 {
            // §2.2: SRTT <- R, RTTVAR <- R/2.
            self.srtt8 = r.saturating_mul(8);
            self.rttvar4 = r.saturating_mul(2);
        } else {
            // §2.3 with beta = 1/4, alpha = 1/8.
            let srtt = self.srtt8 / 8;
            let err = srtt.abs_diff(r);
            self.rttvar4 = self.rttvar4 - self.rttvar4 / 4 + err;
            self.srtt8 = self.srtt8 - self.srtt8 / 8 + r;
        }
        // RTO <- SRTT + max(G, K*RTTVAR), G = 1 ms tick, K = 4.
        let rto = (self.srtt8 / 8).saturating_add(self.rttvar4.max(1));
        self.rto_ms = rto.clamp(bounds.min_ms, bounds.max_ms);
        self.backoff = 0;
    }

    /// The timeout to arm now, with backoff applied and clamped (§5.5).
    pub fn rto_ms(&self, bounds: &RtoBounds) -> u32 {
        let backed = u64::from(self.rto_ms) << self.backoff.min(16);
        backed.min(u64::from(bounds.max_ms)) as u32
    }

    /// The retransmission timer expired: double the RTO (§5.5).
    pub fn on_timeout(&mut self) {
        self.backoff = self.backoff.saturating_add(1);
    }

    /// Consecutive timeouts so far, for giving up on a connection.
    pub fn backoffs(&self) -> u8 {
        self.backoff
    }

    /// The smoothed RTT in ms, if any sample was taken.
    pub fn srtt_ms(&self) -> Option<u32> {
        (self.srtt8 != 0).then_some(self.srtt8 / 8)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_sample_sets_srtt_and_half_variance() {
        let b = RtoBounds {
            min_ms: 1,
            ..RtoBounds::default()
        };
        let mut e = RttEstimator::new(&b);
        assert_eq!(e.rto_ms(&b), 1_000);
        e.on_sample(100, &b);
        assert_eq!(e.srtt_ms(), Some(100));
        // RTO = 100 + 4 * 50.
        assert_eq!(e.rto_ms(&b), 300);
    }

    #[test]
    fn converges_and_respects_the_floor() {
        let b = RtoBounds::default();
        let mut e = RttEstimator::new(&b);
        for _ in 0..100 {
            e.on_sample(10, &b);
        }
        assert_eq!(e.srtt_ms(), Some(10));
        assert_eq!(e.rto_ms(&b), 200, "clamped to min_ms");
    }

    #[test]
    fn backoff_doubles_up_to_the_ceiling_and_a_sample_resets_it() {
        let b = RtoBounds::default();
        let mut e = RttEstimator::new(&b);
        e.on_timeout();
        assert_eq!(e.rto_ms(&b), 2_000);
        for _ in 0..40 {
            e.on_timeout();
        }
        assert_eq!(e.rto_ms(&b), 60_000);
        e.on_sample(50, &b);
        assert_eq!(e.backoffs(), 0);
        assert_eq!(e.rto_ms(&b), 200);
    }
}
