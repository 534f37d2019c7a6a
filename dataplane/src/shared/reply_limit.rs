//! The per-core bound on segments that *answer* a peer: the stateless
//! responder's RSTs (RFC 9293 §3.10.7.1), the RSTs a handshake sends for an
//! unacceptable ACK, and RFC 5961 challenge ACKs.
//!
//! These are not paced (pacing is for the RSTs lingerd originates, which
//! must all leave); they are limited, as Linux limits challenge ACKs
//! (`tcp_challenge_ack_limit`) and ICMP errors (`icmp_ratelimit`,
//! `icmp_msgs_per_sec`) and FreeBSD its closed-port RSTs (`icmplim`): a
//! flood of segments for connections we do not have (or spoofed RSTs and
//! SYNs at ones we have) must not turn a core into a reflector. What is over
//! the limit is not sent, and counted; a peer that really has a connection
//! retransmits and is answered later.
//!
//! A shared counter of challenge ACKs is a side channel (CVE-2016-5696: an
//! off-path attacker exhausts it and learns from the missing ACKs whether
//! a spoofed segment hit a connection's window), which is why each
//! connection keeps its own budget (`tcp.challenge_acks_per_s`) and this
//! bound is only a ceiling far above it, and why its cost is randomised:
//! each answer takes 0, 1 or 2 tokens (1 on average), so an attacker cannot
//! count the bucket down to the token, as Linux did for the same reason
//! (randomised challenge-ACK limit in 4.7; randomised ICMP credit, 2024).
//!
//! It owns the bucket's arithmetic and its small random generator. It may
//! not decide what asks it nor count what it refuses (the engine's and
//! `tcp`'s), nor read a clock: time is the engine's millisecond, passed in.

/// Answers per second one core may send when the configuration says
/// nothing else ([`crate::engine::config::EngineConfig::max_replies_per_s`]).
/// Ten times Linux's old global challenge-ACK limit, per core: a peer of
/// a healthy connection never meets it, a flood is cut to this.
pub const DEFAULT_REPLIES_PER_S: u32 = 10_000;

/// Credit units per token: the bucket gains `rate` units per millisecond,
/// which is exactly `rate` tokens per second, with no rounding.
const UNITS_PER_TOKEN: i64 = 1000;

/// How much the bucket holds when full, in milliseconds of its rate (at
/// least one token): the burst an idle core may answer at once.
const BURST_MS: i64 = 100;

/// The bound: a token bucket with a randomised cost per answer.
#[derive(Clone, Debug)]
pub struct ReplyLimit {
    /// Tokens per second; 0: no limit.
    rate: u32,
    /// Credit, in [`UNITS_PER_TOKEN`] per token. An answer may leave it
    /// below zero (down to one token's debt): the cost is drawn after the
    /// answer is allowed, and a debt rather than a floor keeps the mean
    /// cost at exactly one token.
    credit: i64,
    /// The engine millisecond `credit` was last brought up to date.
    at_ms: u64,
    /// xorshift64 state (never 0).
    rng: u64,
}

impl ReplyLimit {
    /// A full bucket of `rate` answers per second (0: unlimited); `seed`
    /// (any value, a per-engine secret) starts the random costs.
    pub fn new(rate: u32, seed: u64) -> ReplyLimit {
        ReplyLimit {
            rate,
            credit: depth(rate),
            at_ms: 0,
            // xorshift must not start at 0.
            rng: seed | 1,
        }
    }

    /// The rate (answers per second, 0: unlimited).
    pub fn rate(&self) -> u32 {
        self.rate
    }

    /// Whether one more answer may go at the engine millisecond `now_ms`
    /// (spending its cost when it may).
    pub fn admit(&mut self, now_ms: u64) -> bool {
        if self.rate == 0 {
            return true;
        }
        let elapsed = now_ms.saturating_sub(self.at_ms);
        self.at_ms = self.at_ms.max(now_ms);
        let gained =
            i64::try_from(elapsed.saturating_mul(u64::from(self.rate))).unwrap_or(i64::MAX);
        self.credit = self.credit.saturating_add(gained).min(depth(self.rate));
        if self.credit < UNITS_PER_TOKEN {
            return false;
        }
        // 0, 1 or 2 tokens: from at least one token, at most one in debt.
        let cost = (self.next_random() % 3) as i64 * UNITS_PER_TOKEN;
        self.credit -= cost;
        true
    }

    /// xorshift64 (Marsaglia): fast, and enough to blur a count; not a
    /// secret of its own (the seed is).
    fn next_random(&mut self) -> u64 {
        let mut x = self.rng;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.rng = x;
        x
    }
}

/// The bucket's depth in credit units at `rate` tokens per second.
fn depth(rate: u32) -> i64 {
    (i64::from(rate) * BURST_MS / 1000).max(1) * UNITS_PER_TOKEN
}

#[cfg(test)]
mod tests {
    use super::*;

    fn admitted(l: &mut ReplyLimit, at_ms: u64, tries: usize) -> usize {
        (0..tries).filter(|_| l.admit(at_ms)).count()
    }

    #[test]
    fn unlimited_admits_everything() {
        let mut l = ReplyLimit::new(0, 7);
        assert_eq!(admitted(&mut l, 0, 100_000), 100_000);
    }

    #[test]
    fn a_flood_gets_the_rate_on_average_and_the_burst_is_bounded() {
        let rate = 10_000;
        let mut l = ReplyLimit::new(rate, 0x1234_5678);
        // The full bucket: 1,000 tokens, each answer costing 0 to 2: about
        // 1,000 answers, never more than twice that.
        let burst = admitted(&mut l, 0, 100_000);
        assert!((800..=1_250).contains(&burst), "burst {burst}");
        // Then a flood of 100 segments every millisecond for 10 s: about
        // 10 per millisecond get an answer.
        let mut sent = 0;
        for ms in 1..=10_000 {
            sent += admitted(&mut l, ms, 100);
        }
        let per_s = sent as f64 / 10.0;
        assert!(
            (per_s - f64::from(rate)).abs() <= f64::from(rate) * 0.05,
            "{per_s} answers/s at {rate}/s"
        );
    }

    #[test]
    fn the_count_is_not_exact_from_one_refill_to_the_next() {
        // The same flood against two seeds: the number of answers per
        // refill differs (what an attacker would count is blurred).
        let per_ms = |seed: u64| -> Vec<usize> {
            let mut l = ReplyLimit::new(10_000, seed);
            let _ = admitted(&mut l, 0, 10_000);
            (1..=50).map(|ms| admitted(&mut l, ms, 100)).collect()
        };
        let a = per_ms(1);
        assert!(a.iter().any(|&n| n != 10), "{a:?}");
        assert_ne!(a, per_ms(2));
    }

    #[test]
    fn a_slow_rate_still_answers_once_and_time_going_back_is_harmless() {
        let mut l = ReplyLimit::new(1, 3);
        assert!(l.admit(5));
        // The clock never goes back in the engine; if it did, nothing is
        // gained.
        let _ = admitted(&mut l, 5, 10);
        assert!(!l.admit(4));
        assert!(admitted(&mut l, 10_000, 10) >= 1);
    }
}
