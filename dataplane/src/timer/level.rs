//! The wheel's geometry as pure functions: which level and slot a deadline
//! is filed in, and when a slot starts, given the wheel's current time.
//!
//! This file owns the constants (6 levels × 64 slots, 1 ms tick) and the
//! arithmetic only; it holds no state and touches no links. Everything here
//! is a pure function of `(elapsed, when)` so it can be tested exhaustively.

/// Number of levels.
pub const LEVELS: usize = 6;
/// Slots per level (one `u64` occupancy bitmap each).
pub const SLOTS: usize = 64;
/// log2 of [`SLOTS`].
pub(crate) const SLOT_BITS: u32 = 6;
/// Milliseconds covered by one full rotation of the top level: 2^36.
pub const WHEEL_RANGE_MS: u64 = 1 << (SLOT_BITS * LEVELS as u32);

const TOP: usize = LEVELS - 1;
const TOP_SHIFT: u32 = SLOT_BITS * TOP as u32;

/// Milliseconds covered by one slot of `level`: 64^level.
#[inline]
pub const fn granularity(level: usize) -> u64 {
    1 << (SLOT_BITS * level as u32)
}

/// Milliseconds covered by one rotation of `level`: 64^(level + 1).
#[inline]
pub const fn level_range(level: usize) -> u64 {
    1 << (SLOT_BITS * (level as u32 + 1))
}

/// The level a deadline `when` is filed at when the wheel has processed time
/// up to `elapsed` (callers only file `when > elapsed`; `when <= elapsed` is
/// due and yields 0).
///
/// It is the level of the most significant bit in which `elapsed` and `when`
/// differ: an entry sits at the lowest level whose current rotation still
/// contains its deadline. Deadlines whose highest differing bit is at or
/// above bit 36 (beyond one rotation of the top level) are clamped to the
/// top level (5).
#[inline]
pub const fn level_for(elapsed: u64, when: u64) -> usize {
    // `| 63` makes equal or same-tick values land on level 0.
    let masked = (elapsed ^ when) | (SLOTS as u64 - 1);
    let significant = 63 - masked.leading_zeros();
    let level = (significant / SLOT_BITS) as usize;
    if level > TOP { TOP } else { level }
}

/// The slot of `level` a deadline `when > elapsed` is filed in, `level`
/// being `level_for(elapsed, when)`.
///
/// Below the top level this is simply the deadline's 6-bit field. At the top
/// level a deadline beyond the current rotation (a *far* deadline) goes to the
/// latest slot whose start is still ≤ `when`: its own field if it lies in the
/// next rotation at or before the current slot, otherwise the current slot
/// itself (which, for the top level, means "the same slot one rotation
/// later"). When that slot comes due the entry is re-filed, so nothing fires
/// early and nothing is lost; a deadline needs at most one re-filing per
/// 2^36 ms of distance.
#[inline]
pub const fn slot_for(level: usize, elapsed: u64, when: u64) -> usize {
    let field = ((when >> (SLOT_BITS * level as u32)) & (SLOTS as u64 - 1)) as usize;
    if level < TOP || (elapsed ^ when) >> (TOP_SHIFT + SLOT_BITS) == 0 {
        return field;
    }
    let current = ((elapsed >> TOP_SHIFT) & (SLOTS as u64 - 1)) as usize;
    let next_rotation =
        (when >> (TOP_SHIFT + SLOT_BITS)) == (elapsed >> (TOP_SHIFT + SLOT_BITS)) + 1;
    if next_rotation && field <= current {
        field
    } else {
        current
    }
}

/// The earliest occupied slot of one level and the time it starts, given the
/// level's occupancy bitmap and the wheel's time `elapsed`.
///
/// Slots after the current one belong to the current rotation; the current
/// slot and those before it belong to the next rotation (only the top level
/// ever uses that: lower levels only hold deadlines of their current
/// rotation, strictly after the current slot). Level 0's current slot is the
/// wheel's due list and must be masked out by the caller.
#[inline]
pub const fn next_slot(level: usize, occupied: u64, elapsed: u64) -> Option<(usize, u64)> {
    if occupied == 0 {
        return None;
    }
    let shift = SLOT_BITS * level as u32;
    let current = ((elapsed >> shift) & (SLOTS as u64 - 1)) as u32;
    // Bits strictly above `current`; `!1 << 63` is 0, as wanted.
    let after = occupied & (!1u64 << current);
    let base = elapsed & !(level_range(level) - 1);
    if after != 0 {
        let slot = after.trailing_zeros() as usize;
        Some((slot, base + ((slot as u64) << shift)))
    } else {
        let slot = occupied.trailing_zeros() as usize;
        Some((slot, base + level_range(level) + ((slot as u64) << shift)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The definition `level_for` implements, spelled out slowly.
    fn naive_level(elapsed: u64, when: u64) -> usize {
        (0..LEVELS)
            .find(|&l| elapsed / level_range(l) == when / level_range(l))
            .unwrap_or(TOP)
    }

    #[test]
    fn geometry_constants() {
        assert_eq!(granularity(0), 1);
        assert_eq!(granularity(1), 64);
        assert_eq!(level_range(0), 64);
        assert_eq!(level_range(5), WHEEL_RANGE_MS);
        assert_eq!(WHEEL_RANGE_MS, 68_719_476_736);
    }

    #[test]
    fn level_for_matches_definition_exhaustively_near_zero() {
        for elapsed in 0..300u64 {
            for when in elapsed..elapsed + 9000 {
                assert_eq!(
                    level_for(elapsed, when),
                    naive_level(elapsed, when),
                    "{elapsed} {when}"
                );
            }
        }
    }

    #[test]
    fn level_for_matches_definition_at_every_level_boundary() {
        let bases = [
            0u64,
            1,
            63,
            64,
            4095,
            4096,
            123_456_789,
            (1 << 36) - 1,
            1 << 36,
            (1 << 47) + 5,
        ];
        for &elapsed in &bases {
            for bit in 0..48 {
                for delta in [-2i64, -1, 0, 1, 2] {
                    let when = (elapsed + (1u64 << bit)).saturating_add_signed(delta);
                    if when < elapsed {
                        continue;
                    }
                    assert_eq!(
                        level_for(elapsed, when),
                        naive_level(elapsed, when),
                        "{elapsed} {when}"
                    );
                }
            }
        }
    }

    #[test]
    fn level_for_specific_values() {
        assert_eq!(level_for(0, 0), 0);
        assert_eq!(level_for(0, 63), 0);
        assert_eq!(level_for(0, 64), 1);
        assert_eq!(level_for(63, 64), 1);
        assert_eq!(level_for(64, 127), 0);
        assert_eq!(level_for(0, 4096), 2);
        assert_eq!(level_for(0, (1 << 36) - 1), 5);
        assert_eq!(level_for(0, 1 << 36), 5);
        assert_eq!(level_for(0, u64::MAX), 5);
        // Linger max: 65,535 s (18.2 h).
        assert_eq!(level_for(0, 65_535_000), 4);
    }

    /// Whatever slot is chosen, it starts no later than the deadline and no
    /// earlier than the next tick: filing never makes an entry fire early,
    /// and slot starts are strictly in the future.
    #[test]
    fn chosen_slot_starts_between_now_and_deadline() {
        let elapseds = [
            0u64,
            5,
            64 * 64 + 3,
            (1 << 35) + 77,
            (63 << 30) + 9,
            (1 << 36) + (62 << 30),
        ];
        for &elapsed in &elapseds {
            for bit in 0..47 {
                for delta in [0u64, 1, 12_345, 37 << 30] {
                    let when = elapsed + (1u64 << bit) + delta;
                    let level = level_for(elapsed, when);
                    let slot = slot_for(level, elapsed, when);
                    let (found, start) = next_slot(level, 1 << slot, elapsed).unwrap();
                    assert_eq!(found, slot);
                    assert!(
                        start <= when,
                        "{elapsed} {when}: L{level} s{slot} starts {start}"
                    );
                    assert!(
                        start > elapsed,
                        "{elapsed} {when}: L{level} s{slot} starts {start}"
                    );
                    if level < TOP || (elapsed ^ when) >> 36 == 0 {
                        // Exact: the slot starts at the deadline rounded down to the level's granularity.
                        assert_eq!(start, when & !(granularity(level) - 1));
                    } else {
                        // Far: the latest top-level slot that starts by the deadline.
                        let horizon = when.min(elapsed + WHEEL_RANGE_MS);
                        assert!(
                            start > horizon - granularity(TOP),
                            "{elapsed} {when}: far slot starts {start}"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn next_slot_prefers_current_rotation_and_wraps_for_the_rest() {
        // elapsed in slot 10 of level 0.
        let elapsed = 64 * 3 + 10;
        assert_eq!(next_slot(0, 0, elapsed), None);
        assert_eq!(
            next_slot(0, (1 << 11) | (1 << 3), elapsed),
            Some((11, 64 * 3 + 11))
        );
        assert_eq!(next_slot(0, 1 << 3, elapsed), Some((3, 64 * 4 + 3)));
        assert_eq!(next_slot(0, 1 << 10, elapsed), Some((10, 64 * 4 + 10)));
        assert_eq!(next_slot(1, 1 << 4, elapsed), Some((4, 4 * 64)));
    }
}
