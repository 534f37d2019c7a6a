//! The intrusive part of the wheel: the [`TimerLink`] embedded in each entry
//! of the caller's storage, and the [`TimerStore`] trait through which the
//! wheel reaches it.
//!
//! This file owns the link's bit layout (16 bytes: two `u32` list pointers and
//! one word packing the bucket a link sits in with its 48-bit deadline). It
//! does not own any storage and never allocates: the caller's slab (the
//! connection table, or a plain `Vec<TimerLink>` in tests) holds the links,
//! and only the wheel may change an armed link.

/// "No entry": the null value of the `u32` list pointers.
pub const NIL: u32 = u32::MAX;

/// The latest deadline a link can hold, in milliseconds: 2^48 − 1 (about
/// 8,900 years). Later deadlines are saturated to it when armed.
pub const MAX_DEADLINE: u64 = (1 << DEADLINE_BITS) - 1;

const DEADLINE_BITS: u32 = 48;

/// The timer fields of one entry: where it sits in the wheel and when it is
/// due. 16 bytes, no padding.
///
/// Layout: `prev: u32`, `next: u32` (neighbours in the wheel bucket's doubly
/// linked list, [`NIL`]-terminated) and one `u64` holding
/// `bucket:16 | deadline:48`, where `bucket` is 0 when the link is not armed
/// and `1 + level * 64 + slot` when it is. Knowing its bucket is what makes
/// [`cancel`](super::Wheel::cancel) O(1) without recomputing anything.
///
/// While a link is *not* armed its `next` word is spare and the owner may use
/// it (the connection table threads its free list through it); see
/// [`spare`](Self::spare).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TimerLink {
    prev: u32,
    next: u32,
    word: u64,
}

impl Default for TimerLink {
    #[inline]
    fn default() -> TimerLink {
        TimerLink::UNARMED
    }
}

impl TimerLink {
    /// A link that is not in any wheel.
    pub const UNARMED: TimerLink = TimerLink {
        prev: NIL,
        next: NIL,
        word: 0,
    };

    /// Whether the link is currently filed in a wheel (armed and not yet
    /// returned by `poll_expired` nor cancelled).
    #[inline]
    pub const fn is_armed(&self) -> bool {
        self.word >> DEADLINE_BITS != 0
    }

    /// The armed deadline in milliseconds (after saturation to
    /// [`MAX_DEADLINE`]), or `None` when the link is not armed.
    #[inline]
    pub const fn deadline(&self) -> Option<u64> {
        if self.is_armed() {
            Some(self.word & MAX_DEADLINE)
        } else {
            None
        }
    }

    /// The owner's spare word while the link is not armed (the `next` field).
    /// Meaningless while armed.
    #[inline]
    pub const fn spare(&self) -> u32 {
        self.next
    }

    /// Sets the owner's spare word. Only for links that are not armed: the
    /// wheel owns `next` while the link is armed.
    #[inline]
    pub fn set_spare(&mut self, value: u32) {
        debug_assert!(!self.is_armed(), "spare word of an armed timer link");
        self.next = value;
    }

    /// The wheel bucket (`level * 64 + slot`) the link is filed in.
    #[inline]
    pub(crate) const fn bucket(&self) -> Option<usize> {
        match self.word >> DEADLINE_BITS {
            0 => None,
            b => Some(b as usize - 1),
        }
    }

    #[inline]
    pub(crate) const fn prev(&self) -> u32 {
        self.prev
    }

    #[inline]
    pub(crate) const fn next(&self) -> u32 {
        self.next
    }

    #[inline]
    pub(crate) fn set_prev(&mut self, prev: u32) {
        self.prev = prev;
    }

    #[inline]
    pub(crate) fn set_next(&mut self, next: u32) {
        self.next = next;
    }

    /// Files the link at the head of `bucket` with the given deadline
    /// (already saturated to [`MAX_DEADLINE`]).
    #[inline]
    pub(crate) fn file(&mut self, bucket: usize, deadline: u64, next: u32) {
        debug_assert!(deadline <= MAX_DEADLINE && bucket < u16::MAX as usize);
        self.prev = NIL;
        self.next = next;
        self.word = ((bucket as u64 + 1) << DEADLINE_BITS) | deadline;
    }

    /// Marks the link unarmed, clearing both pointers.
    #[inline]
    pub(crate) fn clear(&mut self) {
        *self = TimerLink::UNARMED;
    }
}

/// The caller's storage as the wheel sees it: one [`TimerLink`] per entry,
/// addressed by a `u32` index (never [`NIL`]).
///
/// Implementations must return the same link for the same index every time
/// and must not move or alter links behind the wheel's back while they are
/// armed. Indices out of range may panic.
pub trait TimerStore {
    /// The link of entry `idx`.
    fn timer_link(&self, idx: u32) -> &TimerLink;
    /// The link of entry `idx`, mutably.
    fn timer_link_mut(&mut self, idx: u32) -> &mut TimerLink;
}

impl TimerStore for [TimerLink] {
    #[inline]
    fn timer_link(&self, idx: u32) -> &TimerLink {
        &self[idx as usize]
    }

    #[inline]
    fn timer_link_mut(&mut self, idx: u32) -> &mut TimerLink {
        &mut self[idx as usize]
    }
}

impl TimerStore for Vec<TimerLink> {
    #[inline]
    fn timer_link(&self, idx: u32) -> &TimerLink {
        &self[idx as usize]
    }

    #[inline]
    fn timer_link_mut(&mut self, idx: u32) -> &mut TimerLink {
        &mut self[idx as usize]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn link_is_sixteen_bytes() {
        assert_eq!(size_of::<TimerLink>(), 16);
    }

    #[test]
    fn filed_link_reports_bucket_and_deadline_and_clear_disarms() {
        let mut l = TimerLink::default();
        assert!(!l.is_armed());
        assert_eq!(l.deadline(), None);
        l.file(383, MAX_DEADLINE, 7);
        assert!(l.is_armed());
        assert_eq!(l.bucket(), Some(383));
        assert_eq!(l.deadline(), Some(MAX_DEADLINE));
        assert_eq!((l.prev(), l.next()), (NIL, 7));
        l.file(0, 0, NIL);
        assert_eq!((l.bucket(), l.deadline()), (Some(0), Some(0)));
        l.clear();
        assert_eq!(l, TimerLink::UNARMED);
        l.set_spare(42);
        assert_eq!(l.spare(), 42);
        assert!(!l.is_armed());
    }
}
