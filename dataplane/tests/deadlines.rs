//! Deadlines are never early: a linger deadline of N ms, requested at any
//! instant (not only on a millisecond boundary), ends in its RST no sooner
//! than N ms of engine time after the request, and at most a couple of
//! milliseconds after (docs/close-semantics.md#deadlines).
//!
//! The peer is the scripted raw peer of `support::raw_peer`; time is
//! virtual, moved in sub-millisecond steps with the timers run at each.

mod support;

use std::time::Duration;

use proptest::prelude::*;
use support::raw_peer::RawPeer;

/// How late the RST may be: the wheel's millisecond, plus the step.
const LATE_US: u64 = 2_000;

/// Linger {on, `linger_ms`} on an established connection with 100 bytes
/// the peer never acknowledges; the close is requested `offset_us` after a
/// millisecond boundary; time then moves in steps of `step_us`. Returns the
/// microseconds from the request to the RST.
fn request_to_rst_us(linger_ms: u32, offset_us: u64, step_us: u64) -> u64 {
    let mut p = RawPeer::new(|_| {});
    p.establish_passive();
    p.set_linger(true, linger_ms);
    p.write(&[1u8; 100]);
    assert_eq!(p.expect_one().payload_len, 100);
    p.now += Duration::from_micros(offset_us);
    let requested = p.now;
    let ud = p.close(false);
    let bound = u64::from(linger_ms) * 1000 + 10 * LATE_US;
    let mut waited = 0;
    while waited <= bound {
        p.now += Duration::from_micros(step_us);
        waited += step_us;
        p.run_timers();
        if p.recv_all().iter().any(|s| s.flags.rst) {
            assert!(p.answer(ud).is_some(), "the close completes with its RST");
            return (p.now - requested).as_micros() as u64;
        }
    }
    panic!("no RST within {bound} µs: {}", p.dump());
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn a_linger_deadline_never_fires_early(
        linger_ms in prop_oneof![Just(1u32), Just(2), Just(50), 1u32..300],
        offset_us in 0u64..1000,
        step_us in prop_oneof![Just(100u64), Just(250), Just(333), Just(1000)],
    ) {
        let us = request_to_rst_us(linger_ms, offset_us, step_us);
        let n = u64::from(linger_ms) * 1000;
        prop_assert!(us >= n, "RST {us} µs after a {linger_ms} ms linger close: early");
        prop_assert!(us <= n + LATE_US, "RST {us} µs after a {linger_ms} ms linger close: too late");
    }
}

#[test]
fn a_close_requested_just_before_a_millisecond_boundary_waits_the_whole_linger() {
    // 0.9 ms into a millisecond: rounding the request down would end the
    // linger 0.9 ms early.
    let us = request_to_rst_us(2_000, 900, 100);
    assert!(us >= 2_000_000, "RST after {us} µs");
}
