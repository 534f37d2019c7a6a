//! The per-core hierarchical timing wheel: linger deadlines, TIME_WAIT,
//! retransmission and every other per-connection timer of one core.
//!
//! It owns the wheel's geometry ([`level_for`] and friends), its list heads
//! and bitmaps ([`Wheel`]) and the layout of the intrusive [`TimerLink`].
//! It owns no entries: the links live inside the caller's storage (the
//! connection table's slots) and are reached through [`TimerStore`]. It may
//! not read a clock, allocate after construction, or touch anything in an
//! entry but its link.
//!
//! # Geometry
//!
//! A 1 ms tick; 6 levels of 64 slots, one `occupied: u64` bitmap per level
//! (the next slot is a `trailing_zeros` away), after the Linux
//! (`kernel/time/timer.c`) and tokio wheels:
//!
//! | level | slot granularity      | one rotation covers         |
//! |-------|-----------------------|-----------------------------|
//! | 0     | 1 ms                  | 64 ms                       |
//! | 1     | 64 ms                 | 4.096 s                     |
//! | 2     | 4.096 s               | 262.1 s (4.4 min)           |
//! | 3     | 262.1 s               | 4.66 h                      |
//! | 4     | 4.66 h                | 12.4 days                   |
//! | 5     | 12.4 days             | 2^36 ms = 795 days          |
//!
//! An entry is filed at the level of the highest bit in which its deadline
//! differs from the wheel's time ([`level_for`]), in the slot given by the
//! deadline's 6 bits at that level. When a higher-level slot comes due its
//! entries *cascade*: each is re-filed relative to the slot's start, landing
//! lower (or in the due list). The Winsock maximum linger of 65,535 s (18.2 h)
//! is a level-4 deadline.
//!
//! Deadlines further than one top-level rotation (beyond 2^36 ms, about 2.2
//! years) are clamped into the top level, in the latest slot that starts no
//! later than the deadline, and re-filed when that slot comes due; they cost
//! one extra cascade per 2^36 ms. Deadlines are stored in 48 bits: anything
//! above [`MAX_DEADLINE`] (2^48 − 1 ms, about 8,900 years) is saturated to
//! it, which is the only place the wheel deviates from the deadline asked for.
//!
//! # What precision is given up
//!
//! None for expiry. Unlike Linux, which fires higher-level timers at their
//! slot's granularity (late by up to 12.5 %), this wheel cascades like
//! tokio's, so the guarantee is exact at tick resolution:
//!
//! > `poll_expired(store, now)` returns, over repeated calls until `None`,
//! > exactly the armed entries whose deadline is ≤ `now`, each once; it never
//! > returns an entry whose deadline is > `now`.
//!
//! So an entry comes out of the first polling round whose `now` reaches its
//! deadline, never earlier, never a tick later. What is given up is order
//! *within* a tick (entries of one tick come out in no particular order) and
//! [`Wheel::next_deadline`]'s precision: it reports the start of the
//! earliest occupied slot, which may precede the real deadline by up to that
//! slot's granularity (an early wake-up that finds nothing, never a late one).
//!
//! # Cost
//!
//! `arm`, `cancel` and re-arm are O(1): a head push or an unlink through the
//! bucket remembered in the link, touching at most the entry and its two
//! list neighbours. `poll_expired` is amortised O(1) per entry plus a scan of
//! six bitmaps. The wheel itself is ~1.6 KiB (384 heads + 6 bitmaps) and
//! never allocates.

mod level;
mod link;
mod wheel;

#[cfg(test)]
mod tests;

pub use level::{
    LEVELS, SLOTS, WHEEL_RANGE_MS, granularity, level_for, level_range, next_slot, slot_for,
};
pub use link::{MAX_DEADLINE, NIL, TimerLink, TimerStore};
pub use wheel::Wheel;
