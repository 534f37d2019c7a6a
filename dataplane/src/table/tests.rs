//! Table tests: scenarios for the free list, generations, retirement and
//! errors; the table against a `HashMap` model under random operations; and
//! the table serving as the timer wheel's store. Uses only the public API
//! plus the test-only generation constructor.

use std::collections::{BTreeSet, HashMap};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use proptest::prelude::*;

use super::*;
use crate::timer::{TimerStore, Wheel};

const LOCAL4: IpAddr = IpAddr::V4(Ipv4Addr::new(198, 18, 0, 1));
const LOCAL6: IpAddr = IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1));
/// The local addresses of the test tables: one of each family.
const LOCALS: [IpAddr; 2] = [LOCAL4, LOCAL6];

fn t(n: u32) -> FourTuple {
    FourTuple {
        local_addr: LOCAL4,
        remote_addr: IpAddr::V4(Ipv4Addr::from(0x0A00_0000 + (n >> 16))),
        local_port: 80,
        remote_port: n as u16,
    }
}

/// Like [`t`], over IPv6: peer `2001:db8::a00:0 + n >> 16`.
fn t6(n: u32) -> FourTuple {
    FourTuple {
        local_addr: LOCAL6,
        remote_addr: IpAddr::V6(Ipv6Addr::from(
            0x2001_0db8_u128 << 96 | u128::from(0x0A00_0000 + (n >> 16)),
        )),
        local_port: 80,
        remote_port: n as u16,
    }
}

/// [`t`] for even `n`, [`t6`] for odd: both families in one table.
fn tm(n: u32) -> FourTuple {
    if n.is_multiple_of(2) { t(n) } else { t6(n) }
}

#[test]
fn test_insert_lookup_get_remove_round_trip() {
    let mut table: Table<u64> = Table::with_capacity(3, 100, 0x1234, &LOCALS);
    assert!(table.is_empty());
    let h = table.insert(t(1), 11).unwrap();
    assert_eq!(
        (h.core(), h.slot(), h.generation()),
        (3, 0, FIRST_GENERATION)
    );
    assert_eq!(table.lookup(&t(1)), Some(h));
    assert_eq!(table.lookup(&t(2)), None);
    assert_eq!(table.get(h), Some(&11));
    *table.get_mut(h).unwrap() += 1;
    assert_eq!(table.tuple(h), Some(t(1)));
    assert_eq!(table.handle_at(0), Some(h));
    assert_eq!(table.handle_at(1), None);
    assert_eq!(table.len(), 1);
    assert_eq!(table.remove(h), Some(12));
    assert_eq!(table.remove(h), None);
    assert_eq!(table.lookup(&t(1)), None);
    assert_eq!(table.handle_at(0), None);
    assert!(table.is_empty());
}

#[test]
fn test_insert_existing_tuple_is_exists_with_the_live_handle() {
    let mut table: Table<u8> = Table::with_capacity(0, 4, 9, &LOCALS);
    let h = table.insert(t(7), 1).unwrap();
    assert_eq!(table.insert(t(7), 2), Err(InsertError::Exists(h)));
    assert_eq!(table.get(h), Some(&1));
    assert_eq!(table.len(), 1);
}

#[test]
fn test_full_table_refuses_then_accepts_after_a_remove() {
    let mut table: Table<u8> = Table::with_capacity(0, 3, 9, &LOCALS);
    let hs: Vec<Handle> = (0..3).map(|i| table.insert(t(i), 0).unwrap()).collect();
    assert_eq!(table.insert(t(3), 0), Err(InsertError::Full));
    // Exists wins over Full: it is the more specific answer.
    assert_eq!(table.insert(t(1), 0), Err(InsertError::Exists(hs[1])));
    table.remove(hs[1]).unwrap();
    let h = table.insert(t(3), 0).unwrap();
    assert_eq!((h.slot(), h.generation()), (1, FIRST_GENERATION + 1));
    assert_eq!(InsertError::Full.to_string(), "connection table is full");
}

#[test]
fn test_freed_slots_are_reused_fifo_after_fresh_ones() {
    let mut table: Table<u8> = Table::with_capacity(0, 6, 9, &LOCALS);
    let hs: Vec<Handle> = (0..4).map(|i| table.insert(t(i), 0).unwrap()).collect();
    for &i in &[2usize, 0, 3] {
        table.remove(hs[i]).unwrap();
    }
    // Two never-used slots first, then the freed ones in the order freed.
    let slots: Vec<u32> = (10..15)
        .map(|i| table.insert(t(i), 0).unwrap().slot())
        .collect();
    assert_eq!(slots, [4, 5, 2, 0, 3]);
    assert_eq!(table.insert(t(20), 0), Err(InsertError::Full));
}

#[test]
fn test_stale_handles_never_work_again_even_after_reuse() {
    let mut table: Table<u32> = Table::with_capacity(1, 1, 5, &LOCALS);
    let old = table.insert(t(1), 1).unwrap();
    table.remove(old).unwrap();
    let new = table.insert(t(1), 2).unwrap();
    assert_eq!(old.slot(), new.slot());
    assert_ne!(old, new);
    assert_eq!(table.get(old), None);
    assert_eq!(table.get_mut(old), None);
    assert_eq!(table.tuple(old), None);
    assert_eq!(table.remove(old), None);
    assert_eq!(table.get(new), Some(&2));
    // Wrong core, out-of-range slot, and a future generation are all refused.
    assert_eq!(
        table.get(Handle::new(2, new.slot(), new.generation())),
        None
    );
    assert_eq!(table.get(Handle::new(1, 1, 0)), None);
    assert_eq!(table.get(Handle::new(1, 0, new.generation() + 1)), None);
}

#[test]
fn test_slot_is_retired_when_its_generation_is_exhausted() {
    let mut table: Table<u8> = Table::with_first_generation(0, 2, 5, &LOCALS, MAX_GENERATION - 1);
    let mut seen = BTreeSet::new();
    let a = table.insert(t(1), 0).unwrap();
    let b = table.insert(t(2), 0).unwrap();
    assert_eq!(a.generation(), MAX_GENERATION - 1);
    for h in [a, b] {
        assert!(seen.insert(h));
        table.remove(h).unwrap();
    }
    let a2 = table.insert(t(3), 0).unwrap();
    let b2 = table.insert(t(4), 0).unwrap();
    assert_eq!(a2.generation(), MAX_GENERATION);
    for h in [a2, b2] {
        assert!(seen.insert(h));
        table.remove(h).unwrap();
    }
    // Both slots retired: the table is permanently full, no handle reissued.
    assert_eq!(table.retired(), 2);
    assert_eq!(table.insert(t(5), 0), Err(InsertError::Full));
    assert!(table.is_empty());
    for h in seen {
        assert_eq!(table.get(h), None);
        assert_eq!(table.handle_at(h.slot()), None);
    }
}

#[test]
fn test_memory_accounting_matches_allocations_and_targets() {
    assert_eq!(Table::<()>::slot_metadata_bytes(), 40);
    let table: Table<[u64; 22]> = Table::with_capacity(0, 1_000_000, 1, &LOCALS);
    let m = table.memory();
    assert_eq!(m.slot_bytes, 40 + 176);
    assert_eq!(m.slab_bytes, 1_000_000 * 216);
    // 1M × 4/3 → 2^21 buckets of 8 bytes.
    assert_eq!(m.index_bytes, (1 << 21) * 8);
    assert_eq!(m.free_list_bytes, 0);
    assert_eq!(table.memory_bytes(), m.total_bytes());
    assert_eq!(
        m.total_bytes(),
        m.slab_bytes + m.index_bytes + m.header_bytes
    );
    // 216 + 16.8 (1M sits just above 0.75 × 2^20, the index's worst region).
    assert_eq!(table.bytes_per_connection(), 233);
    assert!(table.bytes_per_connection() <= 256, "design target");
    // At 10M the index costs 13.4 B per connection.
    let big: Table<()> = Table::with_capacity(0, 10_000_000, 1, &LOCALS);
    assert_eq!(big.memory().index_bytes, (1 << 24) * 8);
    assert!(big.memory().index_bytes / 10_000_000 <= 16);
}

#[test]
fn test_lookup_burst_agrees_with_single_lookups() {
    let mut table: Table<u8> = Table::with_capacity(0, 1000, 77, &LOCALS);
    for i in (0..1000).step_by(2) {
        table.insert(t(i), 0).unwrap();
    }
    let tuples: Vec<FourTuple> = (0..100).map(|i| t(i * 7)).collect();
    let mut out = vec![None; tuples.len()];
    table.lookup_burst(&tuples, &mut out);
    for (tuple, got) in tuples.iter().zip(&out) {
        assert_eq!(*got, table.lookup(tuple));
        assert_eq!(got.is_some(), (tuple.remote_port % 2) == 0);
    }
    let h = table.prefetch(&t(4));
    assert_eq!(table.lookup_hashed(&t(4), h), table.lookup(&t(4)));
}

#[test]
fn test_prefetch_remove_is_only_a_hint() {
    let mut table: Table<u8> = Table::with_capacity(0, 10, 77, &LOCALS);
    let h = table.insert(t(1), 5).unwrap();
    table.prefetch_remove(h);
    table.prefetch_remove_at(h.slot());
    assert_eq!(table.lookup(&t(1)), Some(h));
    table.unindex(h);
    table.prefetch_remove(h);
    table.prefetch_remove_at(h.slot());
    assert_eq!(table.remove(h), Some(5));
    // Stale and foreign handles, free and out-of-range slots are ignored.
    table.prefetch_remove(h);
    table.prefetch_remove(Handle::new(9, 0, 0));
    table.prefetch_remove_at(h.slot());
    table.prefetch_remove_at(u32::MAX);
    assert!(table.is_empty());
    assert_eq!(table.lookup(&t(1)), None);
}

#[test]
fn test_full_table_keeps_probe_runs_short() {
    let mut table: Table<()> = Table::with_capacity(0, 100_000, 0xC0FFEE, &LOCALS);
    for i in 0..100_000 {
        table.insert(t(i), ()).unwrap();
    }
    // Load 100k / 2^18 buckets = 0.38; runs of a few dozen at most.
    assert!(
        table.index_max_displacement() < 64,
        "{}",
        table.index_max_displacement()
    );
    for i in 0..100_000 {
        assert!(table.lookup(&t(i)).is_some());
    }
}

#[test]
fn test_table_as_timer_store_fires_deadlines_by_slot() {
    let mut table: Table<u32> = Table::with_capacity(0, 1000, 3, &LOCALS);
    let mut wheel = Wheel::new(0);
    let hs: Vec<Handle> = (0..1000).map(|i| table.insert(t(i), i).unwrap()).collect();
    for (i, &h) in hs.iter().enumerate() {
        wheel.arm(&mut table, h.slot(), 10 + (i as u64 % 100) * 1000);
    }
    // Removing a connection with an armed timer needs the wheel.
    for &h in hs.iter().step_by(10) {
        assert!(table.remove_cancelling(h, &mut wheel).is_some());
        assert!(table.remove_cancelling(h, &mut wheel).is_none());
    }
    assert_eq!(wheel.len(), 900);
    let mut fired = 0;
    for tick in (0..=100_000u64).step_by(250) {
        while let Some(slot) = wheel.poll_expired(&mut table, tick) {
            let h = table.handle_at(slot).expect("fired slot is live");
            let rec = *table.get(h).unwrap();
            assert_ne!(rec % 10, 0, "cancelled timer fired");
            let deadline = 10 + (u64::from(rec) % 100) * 1000;
            assert!(
                deadline <= tick && deadline + 250 > tick,
                "{deadline} at {tick}"
            );
            assert!(!table.timer_link(slot).is_armed());
            table.remove(h).unwrap();
            fired += 1;
        }
    }
    assert_eq!(fired, 900);
    assert!(table.is_empty() && wheel.is_empty());
}

#[test]
#[should_panic(expected = "while its timer is armed")]
fn test_removing_an_armed_slot_panics_instead_of_corrupting_the_wheel() {
    let mut table: Table<u8> = Table::with_capacity(0, 2, 3, &LOCALS);
    let mut wheel = Wheel::new(0);
    let h = table.insert(t(1), 0).unwrap();
    wheel.arm(&mut table, h.slot(), 5);
    let _ = table.remove(h);
}

#[test]
fn test_v6_tuples_insert_look_up_and_come_back_whole() {
    let mut table: Table<u32> = Table::with_capacity(0, 100, 0x66, &LOCALS);
    let v4 = t(7);
    // The same low 32 bits as `v4`'s peer, v4-mapped, over IPv6: a
    // different connection (its local address's index differs).
    let mapped = FourTuple {
        local_addr: LOCAL6,
        remote_addr: IpAddr::V6(Ipv4Addr::from(0x0A00_0000).to_ipv6_mapped()),
        ..v4
    };
    let h4 = table.insert(v4, 4).unwrap();
    let h6 = table.insert(t6(7), 6).unwrap();
    let hm = table.insert(mapped, 9).unwrap();
    assert_eq!(table.lookup(&v4), Some(h4));
    assert_eq!(table.lookup(&t6(7)), Some(h6));
    assert_eq!(table.lookup(&mapped), Some(hm));
    assert_eq!(table.lookup(&t6(8)), None);
    assert_eq!(table.tuple(h4), Some(v4));
    assert_eq!(table.tuple(h6), Some(t6(7)));
    assert_eq!(table.tuple(hm), Some(mapped));
    assert_eq!(table.insert(t6(7), 0), Err(InsertError::Exists(h6)));
    let mut out = [None; 3];
    table.lookup_burst(&[t6(7), v4, t6(9)], &mut out);
    assert_eq!(out, [Some(h6), Some(h4), None]);
    assert_eq!(table.remove(h6), Some(6));
    assert_eq!(table.lookup(&t6(7)), None);
    assert_eq!(table.lookup(&v4), Some(h4));
}

#[test]
fn test_a_local_address_outside_the_list_or_mixed_families_is_refused() {
    let mut table: Table<u8> = Table::with_capacity(0, 10, 1, &[LOCAL4]);
    assert_eq!(table.insert(t6(1), 0), Err(InsertError::Address));
    let other = FourTuple {
        local_addr: IpAddr::V4(Ipv4Addr::new(198, 18, 0, 9)),
        ..t(1)
    };
    assert_eq!(table.insert(other, 0), Err(InsertError::Address));
    let mixed = FourTuple {
        remote_addr: t6(1).remote_addr,
        ..t(1)
    };
    assert_eq!(table.insert(mixed, 0), Err(InsertError::Address));
    assert_eq!(table.lookup(&mixed), None);
    assert!(table.is_empty());
    assert!(InsertError::Address.to_string().contains("local address"));
}

#[test]
fn test_every_one_of_max_local_addrs_addresses_keys_its_own_connections() {
    let locals: Vec<IpAddr> = (0..MAX_LOCAL_ADDRS as u128)
        .map(|i| IpAddr::V6(Ipv6Addr::from((0x2001_0db8_u128 << 96) | (i + 1))))
        .collect();
    let mut table: Table<usize> = Table::with_capacity(0, 100, 3, &locals);
    let tuples: Vec<FourTuple> = locals
        .iter()
        .map(|&local_addr| FourTuple {
            local_addr,
            ..t6(5)
        })
        .collect();
    let handles: Vec<Handle> = tuples
        .iter()
        .enumerate()
        .map(|(i, &tuple)| table.insert(tuple, i).unwrap())
        .collect();
    for (i, (tuple, h)) in tuples.iter().zip(&handles).enumerate() {
        assert_eq!(table.lookup(tuple), Some(*h));
        assert_eq!(table.tuple(*h), Some(*tuple));
        assert_eq!(table.get(*h), Some(&i));
    }
    // A slot reused under another local address forgets the old one.
    assert_eq!(table.remove(handles[31]), Some(31));
    let h = table.insert(tuples[31], 0).unwrap();
    assert_eq!(table.tuple(h), Some(tuples[31]));
}

#[test]
#[should_panic(expected = "local addresses exceed")]
fn test_more_than_max_local_addrs_addresses_are_refused() {
    let locals = vec![LOCAL4; MAX_LOCAL_ADDRS + 1];
    let _: Table<u8> = Table::with_capacity(0, 1, 1, &locals);
}

#[derive(Clone, Debug)]
enum Op {
    Insert(u32),
    /// Remove the n-th live handle (mod count) or, if none, a stale one.
    Remove(usize),
    Lookup(u32),
    /// Arm (Some) or cancel (None) the n-th live connection's timer.
    Timer(usize, Option<u64>),
    Advance(u64),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0u32..40).prop_map(Op::Insert),
        3 => any::<usize>().prop_map(Op::Remove),
        2 => (0u32..40).prop_map(Op::Lookup),
        2 => (any::<usize>(), prop::option::of(0u64..300)).prop_map(|(i, d)| Op::Timer(i, d)),
        1 => (0u64..200).prop_map(Op::Advance),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// The table (small, so slots recycle and sometimes retire) against a
    /// `HashMap` model, with the wheel running over it: every live handle
    /// works, every removed handle stays dead forever, no handle is issued
    /// twice, and timers fire exactly when the model says.
    #[test]
    fn table_matches_hashmap_model(
        capacity in 1u32..24,
        first_generation in prop_oneof![Just(FIRST_GENERATION), Just(MAX_GENERATION - 2)],
        key in any::<u64>(),
        ops in prop::collection::vec(op(), 1..400),
    ) {
        let mut table: Table<u32> = Table::with_first_generation(5, capacity, key, &LOCALS, first_generation);
        let mut wheel = Wheel::new(0);
        let mut now = 0u64;
        let mut model: HashMap<FourTuple, (Handle, u32)> = HashMap::new();
        let mut deadlines: HashMap<Handle, u64> = HashMap::new();
        let mut dead: Vec<Handle> = Vec::new();
        let mut issued: BTreeSet<Handle> = BTreeSet::new();
        for op in ops {
            match op {
                Op::Insert(n) => {
                    let result = table.insert(tm(n), n);
                    match model.get(&tm(n)) {
                        Some(&(h, _)) => prop_assert_eq!(result, Err(InsertError::Exists(h))),
                        None if model.len() as u32 + table.retired() == capacity => {
                            prop_assert_eq!(result, Err(InsertError::Full));
                        }
                        None => {
                            let h = result.expect("room left");
                            prop_assert!(issued.insert(h), "handle {:?} issued twice", h);
                            prop_assert_ne!(h, Handle::INVALID);
                            prop_assert_eq!(h.core(), 5);
                            model.insert(tm(n), (h, n));
                        }
                    }
                }
                Op::Remove(i) => {
                    let mut live: Vec<Handle> = model.values().map(|&(h, _)| h).collect();
                    live.sort();
                    if live.is_empty() {
                        if let Some(&h) = dead.get(i % dead.len().max(1)) {
                            prop_assert_eq!(table.remove_cancelling(h, &mut wheel), None);
                        }
                    } else {
                        let h = live[i % live.len()];
                        let tuple = table.tuple(h).unwrap();
                        let (_, rec) = model.remove(&tuple).unwrap();
                        prop_assert_eq!(table.remove_cancelling(h, &mut wheel), Some(rec));
                        deadlines.remove(&h);
                        dead.push(h);
                    }
                }
                Op::Lookup(n) => {
                    prop_assert_eq!(table.lookup(&tm(n)), model.get(&tm(n)).map(|&(h, _)| h));
                }
                Op::Timer(i, d) => {
                    let mut live: Vec<Handle> = model.values().map(|&(h, _)| h).collect();
                    live.sort();
                    if let Some(&h) = live.get(i % live.len().max(1)) {
                        match d {
                            Some(d) => {
                                wheel.arm(&mut table, h.slot(), now + d);
                                deadlines.insert(h, now + d);
                            }
                            None => {
                                prop_assert_eq!(wheel.cancel(&mut table, h.slot()), deadlines.remove(&h).is_some());
                            }
                        }
                    }
                }
                Op::Advance(d) => {
                    now += d;
                    let mut fired = BTreeSet::new();
                    while let Some(slot) = wheel.poll_expired(&mut table, now) {
                        let h = table.handle_at(slot).expect("timer of a free slot fired");
                        prop_assert!(fired.insert(h));
                    }
                    let expected: BTreeSet<Handle> =
                        deadlines.iter().filter(|&(_, &dl)| dl <= now).map(|(&h, _)| h).collect();
                    prop_assert_eq!(&fired, &expected);
                    deadlines.retain(|_, dl| *dl > now);
                }
            }
            prop_assert_eq!(table.len(), model.len());
            prop_assert_eq!(wheel.len(), deadlines.len());
            for (tuple, &(h, rec)) in &model {
                prop_assert_eq!(table.get(h), Some(&rec));
                prop_assert_eq!(table.tuple(h), Some(*tuple));
                prop_assert_eq!(table.handle_at(h.slot()), Some(h));
            }
            for &h in &dead {
                prop_assert_eq!(table.get(h), None);
            }
        }
    }
}
