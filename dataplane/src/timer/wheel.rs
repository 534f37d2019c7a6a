//! The [`Wheel`]: bucket heads, occupancy bitmaps and the current time.
//!
//! It owns the list discipline (push at a bucket's head, O(1) unlink through
//! the link's remembered bucket), cascading, and the due list. It owns no
//! entries: links live in the caller's [`TimerStore`] and the wheel only
//! rewrites the links it has filed. It never allocates after construction
//! and never reads a clock: time arrives as `now_ms` arguments.

use super::level::{LEVELS, SLOT_BITS, SLOTS, level_for, next_slot, slot_for};

/// No cascade in progress (see [`Wheel::cascading`]).
const NO_CASCADE: usize = usize::MAX;
use super::link::{MAX_DEADLINE, NIL, TimerStore};

/// A per-core hierarchical timing wheel with a 1 ms tick; see the
/// [module documentation](super) for the geometry and the exact guarantee.
///
/// Call order: [`arm`](Self::arm) / [`cancel`](Self::cancel) at any time;
/// [`poll_expired`](Self::poll_expired) in a loop until it returns `None`
/// once per event-loop iteration; [`next_deadline`](Self::next_deadline) to
/// decide how long the loop may sleep.
#[derive(Clone, Debug)]
pub struct Wheel {
    /// Time (ms) up to which the wheel has advanced. Deadlines ≤ `elapsed`
    /// sit in the due list, which is level 0's slot `elapsed % 64`.
    elapsed: u64,
    /// List heads, bucket `level * 64 + slot`.
    heads: [u32; LEVELS * SLOTS],
    /// One bit per non-empty bucket.
    occupied: [u64; LEVELS],
    /// Armed entries.
    len: usize,
    /// A lower bound on the deadlines in the due list (they may be earlier
    /// than `elapsed` when armed in the past).
    due_floor: u64,
    /// The bucket whose entries are being cascaded, or [`NO_CASCADE`]. A
    /// cascade below the top level may be cut short by a bounded poll
    /// ([`Wheel::poll_expired_within`]); `elapsed` is then the bucket's start
    /// and stays there until the bucket is empty, so the rest of its entries
    /// (deadlines ≥ that start) are neither early nor skipped.
    cascading: usize,
}

impl Wheel {
    /// An empty wheel whose time starts at `now_ms`. Times are milliseconds
    /// since an epoch of the caller's choosing and must stay below
    /// [`MAX_DEADLINE`](super::MAX_DEADLINE) (later values are saturated).
    pub fn new(now_ms: u64) -> Wheel {
        Wheel {
            elapsed: now_ms.min(MAX_DEADLINE),
            heads: [NIL; LEVELS * SLOTS],
            occupied: [0; LEVELS],
            len: 0,
            due_floor: u64::MAX,
            cascading: NO_CASCADE,
        }
    }

    /// The time the wheel has advanced to (the latest `now_ms` passed to a
    /// [`poll_expired`](Self::poll_expired) that returned `None`, or the
    /// tick being drained).
    #[inline]
    pub fn now(&self) -> u64 {
        self.elapsed
    }

    /// Number of armed entries.
    #[inline]
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether no entry is armed.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Whether entry `idx` is armed (in this or, by misuse, another wheel).
    #[inline]
    pub fn is_armed<S: TimerStore + ?Sized>(&self, store: &S, idx: u32) -> bool {
        store.timer_link(idx).is_armed()
    }

    /// Arms entry `idx` to expire at `deadline_ms`, re-arming it if it was
    /// armed. A deadline at or before the wheel's time is returned by the
    /// next [`poll_expired`](Self::poll_expired); a deadline above
    /// [`MAX_DEADLINE`](super::MAX_DEADLINE) is saturated to it. O(1), no
    /// allocation.
    #[inline]
    pub fn arm<S: TimerStore + ?Sized>(&mut self, store: &mut S, idx: u32, deadline_ms: u64) {
        debug_assert_ne!(idx, NIL, "NIL is not an entry");
        if store.timer_link(idx).is_armed() {
            self.unlink(store, idx);
        } else {
            self.len += 1;
        }
        self.file(store, idx, deadline_ms.min(MAX_DEADLINE));
    }

    /// Disarms entry `idx`. Returns whether it was armed. O(1).
    #[inline]
    pub fn cancel<S: TimerStore + ?Sized>(&mut self, store: &mut S, idx: u32) -> bool {
        if !store.timer_link(idx).is_armed() {
            return false;
        }
        self.unlink(store, idx);
        store.timer_link_mut(idx).clear();
        self.len -= 1;
        true
    }

    /// Advances the wheel to `now_ms` and returns one entry whose deadline is
    /// ≤ `now_ms`, already unlinked and disarmed, or `None` when there is no
    /// such entry left.
    ///
    /// Call it in a loop until `None`. Each expired entry is returned exactly
    /// once; none is returned before its deadline. Entries armed between
    /// calls are honoured. A `now_ms` earlier than the wheel's time is
    /// treated as the wheel's time. Amortised O(1) per entry (an entry
    /// cascades at most five times per 2^36 ms of distance), plus O(levels)
    /// per call; no allocation however many entries share a tick. One call
    /// may cascade a whole slot (every entry in it): use
    /// [`poll_expired_within`](Self::poll_expired_within) to bound that.
    pub fn poll_expired<S: TimerStore + ?Sized>(
        &mut self,
        store: &mut S,
        now_ms: u64,
    ) -> Option<u32> {
        let mut moves = usize::MAX;
        self.poll_expired_within(store, now_ms, &mut moves)
    }

    /// The entry a [`poll_expired_within`](Self::poll_expired_within)
    /// at the current tick would return next, without taking it: the
    /// head of the due list, or `None` when that list is empty (then the
    /// next poll may advance time or cascade). A hint for prefetching.
    #[inline]
    pub fn due_head(&self) -> Option<u32> {
        let head = self.heads[(self.elapsed & (SLOTS as u64 - 1)) as usize];
        (head != NIL).then_some(head)
    }

    /// [`poll_expired`](Self::poll_expired) with a budget of cascade moves:
    /// each entry re-filed from a higher level to a lower one takes one from
    /// `moves`, and when `moves` reaches 0 the cascade stops where it is and
    /// the call returns `None` once the due list is empty, even though more
    /// entries may be due. [`next_deadline`](Self::next_deadline) then
    /// reports a time ≤ the wheel's time ("due now") until the rest has been
    /// polled, so nothing is lost: the remaining entries come out of later
    /// calls, in the same tick of the wheel.
    ///
    /// Exception: a top-level slot (deadlines at least 12.4 days from the
    /// time they were armed) cascades in one go, because its far entries go
    /// back into the very slot being emptied.
    pub fn poll_expired_within<S: TimerStore + ?Sized>(
        &mut self,
        store: &mut S,
        now_ms: u64,
        moves: &mut usize,
    ) -> Option<u32> {
        let now = now_ms.min(MAX_DEADLINE);
        loop {
            let due = (self.elapsed & (SLOTS as u64 - 1)) as usize;
            let head = self.heads[due];
            if head != NIL {
                self.unlink(store, head);
                store.timer_link_mut(head).clear();
                self.len -= 1;
                return Some(head);
            }
            if self.cascading != NO_CASCADE {
                if *moves == 0 {
                    return None;
                }
                self.cascade_some(store, moves);
                continue;
            }
            self.due_floor = u64::MAX;
            match self.next_expiration() {
                Some((level, slot, start)) if start <= now => {
                    self.elapsed = start;
                    if level == 0 {
                        // The slot just became the due list.
                        continue;
                    }
                    // Cascade: every entry of the slot moves to a lower level
                    // (or to the due list if its deadline is `start`).
                    let bucket = level * SLOTS + slot;
                    if level < LEVELS - 1 {
                        // Entries go strictly lower (their deadlines share
                        // this slot's bits at `level`), so the bucket can be
                        // emptied from its head, a budget at a time.
                        self.cascading = bucket;
                        continue;
                    }
                    // Top level: far entries are re-filed into this same
                    // slot, so detach the list first and walk it once.
                    let mut idx = self.heads[bucket];
                    self.heads[bucket] = NIL;
                    self.occupied[level] &= !(1 << slot);
                    while idx != NIL {
                        let link = store.timer_link(idx);
                        let next = link.next();
                        let deadline = link.deadline().unwrap_or(start);
                        self.file(store, idx, deadline);
                        idx = next;
                    }
                }
                _ => {
                    if now > self.elapsed {
                        self.elapsed = now;
                    }
                    return None;
                }
            }
        }
    }

    /// Moves entries of the bucket being cascaded down, from its head, until
    /// it is empty (the cascade ends) or `moves` is spent.
    fn cascade_some<S: TimerStore + ?Sized>(&mut self, store: &mut S, moves: &mut usize) {
        let bucket = self.cascading;
        while *moves > 0 {
            let idx = self.heads[bucket];
            if idx == NIL {
                break;
            }
            *moves -= 1;
            let deadline = store.timer_link(idx).deadline().unwrap_or(self.elapsed);
            self.unlink(store, idx);
            self.file(store, idx, deadline);
        }
        if self.heads[bucket] == NIL {
            self.cascading = NO_CASCADE;
        }
    }

    /// A time no later than the earliest armed deadline, or `None` if
    /// nothing is armed. It is the start of the earliest occupied slot, so it
    /// may be earlier than that deadline (by less than the slot's
    /// granularity) but never later; waking then and polling is always safe.
    /// A value ≤ the wheel's time means something is already due.
    pub fn next_deadline(&self) -> Option<u64> {
        let due = (self.elapsed & (SLOTS as u64 - 1)) as usize;
        if self.cascading != NO_CASCADE {
            // A cut-short cascade: its slot started at `elapsed`.
            return Some(self.due_floor.min(self.elapsed));
        }
        if self.heads[due] != NIL {
            return Some(self.due_floor.min(self.elapsed));
        }
        self.next_expiration().map(|(_, _, start)| start)
    }

    /// The earliest occupied slot outside the due list: lower levels always
    /// expire before higher ones, so the first non-empty level decides.
    #[inline]
    fn next_expiration(&self) -> Option<(usize, usize, u64)> {
        let due_bit = 1u64 << (self.elapsed & (SLOTS as u64 - 1));
        for level in 0..LEVELS {
            let mut occupied = self.occupied[level];
            if level == 0 {
                occupied &= !due_bit;
            }
            if let Some((slot, start)) = next_slot(level, occupied, self.elapsed) {
                return Some((level, slot, start));
            }
        }
        None
    }

    /// Pushes an unlinked entry (counted in `len` already) onto the head of
    /// the bucket its deadline belongs to.
    #[inline]
    fn file<S: TimerStore + ?Sized>(&mut self, store: &mut S, idx: u32, deadline: u64) {
        let (level, slot) = if deadline <= self.elapsed {
            self.due_floor = self.due_floor.min(deadline);
            (0, (self.elapsed & (SLOTS as u64 - 1)) as usize)
        } else {
            let level = level_for(self.elapsed, deadline);
            (level, slot_for(level, self.elapsed, deadline))
        };
        let bucket = (level << SLOT_BITS) | slot;
        let old = self.heads[bucket];
        store.timer_link_mut(idx).file(bucket, deadline, old);
        if old != NIL {
            store.timer_link_mut(old).set_prev(idx);
        }
        self.heads[bucket] = idx;
        self.occupied[level] |= 1 << slot;
    }

    /// Removes an armed entry from its bucket's list. Leaves the entry's own
    /// link stale; callers either clear or re-file it.
    #[inline]
    fn unlink<S: TimerStore + ?Sized>(&mut self, store: &mut S, idx: u32) {
        let link = *store.timer_link(idx);
        let Some(bucket) = link.bucket() else {
            return;
        };
        let (prev, next) = (link.prev(), link.next());
        if prev == NIL {
            self.heads[bucket] = next;
            if next == NIL {
                self.occupied[bucket >> SLOT_BITS] &= !(1 << (bucket & (SLOTS - 1)));
            }
        } else {
            store.timer_link_mut(prev).set_next(next);
        }
        if next != NIL {
            store.timer_link_mut(next).set_prev(prev);
        }
    }
}
