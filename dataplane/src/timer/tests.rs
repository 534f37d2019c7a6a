//! Wheel tests: scenarios, and the wheel against a `BTreeMap` model under
//! random arm / cancel / re-arm / advance (polled unbounded or with a small
//! cascade budget per call). Touches only the public wheel API
//! and a `Vec<TimerLink>` store.

use std::collections::{BTreeMap, BTreeSet};

use proptest::prelude::*;

use super::*;

fn store(n: usize) -> Vec<TimerLink> {
    vec![TimerLink::UNARMED; n]
}

/// Polls until `None`, returning what came out (and asserting no duplicate).
fn drain(wheel: &mut Wheel, links: &mut Vec<TimerLink>, now: u64) -> BTreeSet<u32> {
    let mut out = BTreeSet::new();
    while let Some(idx) = wheel.poll_expired(links, now) {
        assert!(out.insert(idx), "entry {idx} returned twice at {now}");
        assert!(
            !links[idx as usize].is_armed(),
            "returned entry still armed"
        );
    }
    out
}

/// Like [`drain`], but through `poll_expired_within` with `budget` cascade
/// moves per call, calling again while `next_deadline` says something is
/// due (as the engine's loop does); returns what came out and the calls.
fn drain_within(
    wheel: &mut Wheel,
    links: &mut Vec<TimerLink>,
    now: u64,
    budget: usize,
) -> (BTreeSet<u32>, usize) {
    let mut out = BTreeSet::new();
    let mut calls = 0;
    loop {
        calls += 1;
        let mut moves = budget;
        while let Some(idx) = wheel.poll_expired_within(links, now, &mut moves) {
            assert!(out.insert(idx), "entry {idx} returned twice at {now}");
        }
        if wheel.next_deadline().is_none_or(|d| d > now) {
            return (out, calls);
        }
        assert!(calls < 1_000_000, "bounded polling does not converge");
    }
}

#[test]
fn test_bounded_cascade_loses_nothing_and_is_never_early() {
    const N: u32 = 10_000;
    let mut links = store(N as usize + 1);
    let mut w = Wheel::new(0);
    // One level-2 slot (4096..8191) holding N deadlines 5000..5999, and one
    // later entry: the cascade at 4096 moves N entries to level 1.
    for i in 0..N {
        w.arm(&mut links, i, 5000 + u64::from(i % 1000));
    }
    w.arm(&mut links, N, 9000);
    let mut moves = 100;
    assert_eq!(w.poll_expired_within(&mut links, 4500, &mut moves), None);
    assert_eq!(moves, 0);
    // Cut short: the rest of the slot is due for cascading now.
    assert!(w.next_deadline().unwrap() <= 4500);
    // An entry cancelled and one re-armed in the middle of the cascade.
    assert!(w.cancel(&mut links, N - 1));
    w.arm(&mut links, N - 2, 4200);
    let (out, calls) = drain_within(&mut w, &mut links, 4500, 100);
    assert_eq!(out, BTreeSet::from([N - 2]));
    assert!(calls >= 100, "{calls} calls for ~{N} moves at 100 a call");
    assert!(w.next_deadline().unwrap() > 4500);
    assert!(drain_within(&mut w, &mut links, 4999, 7).0.is_empty());
    let (out, _) = drain_within(&mut w, &mut links, 5499, 7);
    assert_eq!(out.len(), N as usize / 2);
    assert!(out.iter().all(|&i| 5000 + u64::from(i % 1000) <= 5499));
    let (out, _) = drain_within(&mut w, &mut links, 8999, 3);
    // The other half, but for N - 1 (cancelled) and N - 2 (fired at 4200).
    assert_eq!(out.len(), N as usize / 2 - 2);
    assert_eq!(drain(&mut w, &mut links, 9000), BTreeSet::from([N]));
    assert!(w.is_empty());
}

#[test]
fn test_fires_in_its_tick_not_before() {
    let mut links = store(4);
    let mut w = Wheel::new(1000);
    w.arm(&mut links, 0, 1001);
    w.arm(&mut links, 1, 1064);
    w.arm(&mut links, 2, 1000 + 65_535_000);
    assert_eq!(w.len(), 3);
    assert_eq!(w.poll_expired(&mut links, 1000), None);
    assert_eq!(w.next_deadline(), Some(1001));
    assert_eq!(drain(&mut w, &mut links, 1001), BTreeSet::from([0]));
    assert!(drain(&mut w, &mut links, 1063).is_empty());
    assert_eq!(drain(&mut w, &mut links, 1064), BTreeSet::from([1]));
    assert!(drain(&mut w, &mut links, 1000 + 65_535_000 - 1).is_empty());
    assert_eq!(w.len(), 1);
    assert_eq!(
        drain(&mut w, &mut links, 1000 + 65_535_000),
        BTreeSet::from([2])
    );
    assert!(w.is_empty());
    assert_eq!(w.next_deadline(), None);
}

#[test]
fn test_deadline_in_the_past_fires_on_next_poll() {
    let mut links = store(2);
    let mut w = Wheel::new(500);
    w.arm(&mut links, 0, 10);
    w.arm(&mut links, 1, 500);
    assert!(w.next_deadline().unwrap() <= 10);
    assert_eq!(drain(&mut w, &mut links, 500), BTreeSet::from([0, 1]));
    // A `now` that goes backwards does not move the wheel back.
    w.arm(&mut links, 0, 501);
    assert!(drain(&mut w, &mut links, 3).is_empty());
    assert_eq!(w.now(), 500);
    assert_eq!(drain(&mut w, &mut links, 501), BTreeSet::from([0]));
}

#[test]
fn test_cancel_and_rearm_are_idempotent_and_move_the_entry() {
    let mut links = store(3);
    let mut w = Wheel::new(0);
    assert!(!w.cancel(&mut links, 0));
    w.arm(&mut links, 0, 5000);
    w.arm(&mut links, 1, 5000);
    w.arm(&mut links, 2, 5000);
    assert!(w.is_armed(&links, 1));
    // Cancel the middle of a bucket list, then its head.
    assert!(w.cancel(&mut links, 1));
    assert!(!w.cancel(&mut links, 1));
    assert!(!w.is_armed(&links, 1));
    w.arm(&mut links, 2, 7); // re-arm earlier
    w.arm(&mut links, 0, 6000); // re-arm later
    assert_eq!(w.len(), 2);
    assert_eq!(links[0].deadline(), Some(6000));
    assert_eq!(drain(&mut w, &mut links, 5999), BTreeSet::from([2]));
    assert_eq!(drain(&mut w, &mut links, 6000), BTreeSet::from([0]));
    assert!(w.is_empty());
}

#[test]
fn test_far_deadlines_beyond_the_top_level_are_refiled_not_lost() {
    let mut links = store(4);
    let start = (5u64 << 36) + (63 << 30) + 12_345; // in the last top-level slot
    let mut w = Wheel::new(start);
    let far = [
        start + WHEEL_RANGE_MS - 1,
        start + WHEEL_RANGE_MS,
        start + 3 * WHEEL_RANGE_MS + 17,
        u64::MAX,
    ];
    for (i, &d) in far.iter().enumerate() {
        w.arm(&mut links, i as u32, d);
    }
    for (i, &d) in far.iter().enumerate() {
        let d = d.min(MAX_DEADLINE);
        assert!(w.next_deadline().unwrap() <= d);
        assert!(
            drain(&mut w, &mut links, d - 1).is_empty(),
            "entry {i} early"
        );
        assert_eq!(
            drain(&mut w, &mut links, d),
            BTreeSet::from([i as u32]),
            "entry {i}"
        );
    }
}

#[test]
fn test_hundred_thousand_entries_expire_in_one_tick_each_once() {
    const N: u32 = 100_000;
    const T: u64 = 70_000;
    let mut links = store(N as usize);
    let mut w = Wheel::new(0);
    // Half armed from far away (they cascade through levels 2, 1, 0), half
    // armed late (filed directly at level 0): both paths meet in one tick.
    for i in 0..N / 2 {
        w.arm(&mut links, i, T);
    }
    assert!(drain(&mut w, &mut links, T - 40).is_empty());
    for i in N / 2..N {
        w.arm(&mut links, i, T);
    }
    assert_eq!(w.len(), N as usize);
    assert!(drain(&mut w, &mut links, T - 1).is_empty());
    assert_eq!(w.next_deadline(), Some(T));
    let out = drain(&mut w, &mut links, T);
    assert_eq!(out.len(), N as usize);
    assert_eq!(out.first(), Some(&0));
    assert_eq!(out.last(), Some(&(N - 1)));
    assert!(w.is_empty());
    assert_eq!(w.poll_expired(&mut links, T + 1), None);
}

#[test]
fn test_entries_armed_while_a_tick_is_being_drained_are_honoured() {
    let mut links = store(6);
    let mut w = Wheel::new(0);
    for i in 0..3 {
        w.arm(&mut links, i, 100);
    }
    let first = w.poll_expired(&mut links, 200).unwrap();
    // Mid-drain: the wheel is at tick 100, the caller's clock at 200.
    w.arm(&mut links, 3, 50); // past: due now
    w.arm(&mut links, 4, 150); // between wheel time and the caller's now
    w.arm(&mut links, 5, 201); // future
    let mut rest = drain(&mut w, &mut links, 200);
    rest.insert(first);
    assert_eq!(rest, BTreeSet::from([0, 1, 2, 3, 4]));
    assert_eq!(drain(&mut w, &mut links, 201), BTreeSet::from([5]));
}

#[derive(Clone, Debug)]
enum Op {
    Arm(u32, u64),
    Cancel(u32),
    Advance(u64),
}

fn delta() -> impl Strategy<Value = u64> {
    prop_oneof![
        4 => 0u64..70,
        3 => 0u64..5_000,
        2 => 0u64..(1 << 24),
        1 => 0u64..(1 << 38),
        1 => prop_oneof![Just(WHEEL_RANGE_MS - 1), Just(WHEEL_RANGE_MS), Just(WHEEL_RANGE_MS + 1), Just(3 << 36)],
    ]
}

fn op(entries: u32) -> impl Strategy<Value = Op> {
    prop_oneof![
        5 => (0..entries, delta()).prop_map(|(i, d)| Op::Arm(i, d)),
        // Deadlines in the past, relative to the model's clock.
        1 => (0..entries, 0u64..1000).prop_map(|(i, d)| Op::Arm(i, u64::MAX - d)),
        2 => (0..entries).prop_map(Op::Cancel),
        3 => delta().prop_map(Op::Advance),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// The wheel against a `BTreeMap` of armed deadlines: after every
    /// advance, exactly the entries with deadline ≤ now have come out, each
    /// once, and `next_deadline` never exceeds the true earliest deadline.
    #[test]
    fn wheel_matches_btreemap_model(
        start in prop_oneof![Just(0u64), 0u64..(1 << 40)],
        ops in prop::collection::vec(op(48), 1..300),
        budget in prop_oneof![Just(usize::MAX), 1usize..4],
    ) {
        let mut links = store(48);
        let mut w = Wheel::new(start);
        let mut model: BTreeMap<u32, u64> = BTreeMap::new();
        let mut now = start;
        for op in ops {
            match op {
                Op::Arm(i, d) => {
                    // u64::MAX - k encodes "k ms in the past".
                    let deadline = if d > u64::MAX - 1000 { now.saturating_sub(u64::MAX - d) } else { now + d };
                    w.arm(&mut links, i, deadline);
                    model.insert(i, deadline.min(MAX_DEADLINE));
                }
                Op::Cancel(i) => {
                    prop_assert_eq!(w.cancel(&mut links, i), model.remove(&i).is_some());
                }
                Op::Advance(d) => {
                    now += d;
                    let out = if budget == usize::MAX {
                        drain(&mut w, &mut links, now)
                    } else {
                        drain_within(&mut w, &mut links, now, budget).0
                    };
                    let expected: BTreeSet<u32> =
                        model.iter().filter(|&(_, &dl)| dl <= now).map(|(&i, _)| i).collect();
                    prop_assert_eq!(&out, &expected, "now {}", now);
                    model.retain(|_, dl| *dl > now);
                }
            }
            prop_assert_eq!(w.len(), model.len());
            for i in 0..48u32 {
                prop_assert_eq!(links[i as usize].deadline(), model.get(&i).copied());
            }
            let earliest = model.values().min().copied();
            match (w.next_deadline(), earliest) {
                (None, None) => {}
                (Some(nd), Some(e)) => prop_assert!(nd <= e, "next_deadline {} > earliest {}", nd, e),
                (nd, e) => prop_assert!(false, "next_deadline {:?} vs earliest {:?}", nd, e),
            }
        }
    }
}
