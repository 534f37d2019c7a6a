//! The client's two tables of ids, each indexed by a slot the id carries,
//! so filing a completion never hashes: [`HandleTable`], keyed by the
//! daemon's connection handles, and [`TicketTable`], keyed by the client's
//! own request tickets.
//!
//! It owns the layout of those tables, not what they store (that is
//! `client`'s). A handle packs `core:8 | slot:32 | generation:24`, with the
//! slot reused from the low end of the core's table, so a table of pages
//! indexed by core and slot stays as dense as the daemon's. A ticket is
//! made here: a slab key (reused from the low end too) beside a wrapping
//! sequence number, which plays the generation's part. Ids come from the
//! daemon and from this process; a hostile handle costs at most one page
//! and a directory entry per page up to its slot, never a panic.

use slab::Slab;

/// Slots per page of a [`HandleTable`].
const PAGE_BITS: u32 = 10;
const PAGE: usize = 1 << PAGE_BITS;
/// Bits of a handle's generation (the low bits).
const GENERATION_BITS: u32 = 24;

/// Where a handle's entry lives: core, page and index in the page.
fn place(handle: u64) -> (usize, usize, usize) {
    let core = (handle >> 56) as usize;
    let slot = (handle >> GENERATION_BITS) as u32 as usize;
    (core, slot >> PAGE_BITS, slot & (PAGE - 1))
}

type Page<V> = Box<[Option<(u64, V)>]>;

/// A map from daemon handles, indexed by the handle's core and slot.
///
/// Each slot holds the entry of one handle, checked against the whole
/// handle (so its generation) on every look-up. The daemon reuses a slot
/// only once its connection is gone, but this client may still hold the
/// older handle's state (a reset the application has not closed yet): such
/// an older entry stays reachable in a short side list, searched only when
/// the slot holds a different handle.
#[derive(Debug)]
pub(crate) struct HandleTable<V> {
    /// Per core, pages of slots, allocated on first use.
    cores: Vec<Vec<Option<Page<V>>>>,
    /// Entries whose slot holds another generation.
    displaced: Vec<(u64, V)>,
}

impl<V> Default for HandleTable<V> {
    fn default() -> Self {
        HandleTable {
            cores: Vec::new(),
            displaced: Vec::new(),
        }
    }
}

impl<V> HandleTable<V> {
    fn slot(&self, handle: u64) -> Option<&Option<(u64, V)>> {
        let (core, page, index) = place(handle);
        self.cores.get(core)?.get(page)?.as_ref()?.get(index)
    }

    fn slot_mut(&mut self, handle: u64) -> Option<&mut Option<(u64, V)>> {
        let (core, page, index) = place(handle);
        self.cores
            .get_mut(core)?
            .get_mut(page)?
            .as_mut()?
            .get_mut(index)
    }

    /// The entry of `handle`, if any.
    pub(crate) fn get(&self, handle: u64) -> Option<&V> {
        match self.slot(handle) {
            Some(Some((h, v))) if *h == handle => Some(v),
            _ => self
                .displaced
                .iter()
                .find_map(|(h, v)| (*h == handle).then_some(v)),
        }
    }

    /// The entry of `handle`, if any, to change.
    pub(crate) fn get_mut(&mut self, handle: u64) -> Option<&mut V> {
        if matches!(self.slot(handle), Some(Some((h, _))) if *h == handle) {
            return self.slot_mut(handle)?.as_mut().map(|(_, v)| v);
        }
        self.displaced
            .iter_mut()
            .find_map(|(h, v)| (*h == handle).then_some(v))
    }

    /// The entry of `handle`, made with `V::default()` if it had none.
    pub(crate) fn get_or_insert_default(&mut self, handle: u64) -> &mut V
    where
        V: Default,
    {
        if self.get(handle).is_some() {
            return self.get_mut(handle).expect("just found");
        }
        let (core, page, index) = place(handle);
        if self.cores.len() <= core {
            self.cores.resize_with(core + 1, Vec::new);
        }
        let pages = &mut self.cores[core];
        if pages.len() <= page {
            pages.resize_with(page + 1, || None);
        }
        let slots = pages[page].get_or_insert_with(|| (0..PAGE).map(|_| None).collect());
        if slots[index].is_none() {
            &mut slots[index].insert((handle, V::default())).1
        } else {
            self.displaced.push((handle, V::default()));
            &mut self.displaced.last_mut().expect("just pushed").1
        }
    }

    /// Takes the entry of `handle` out, if any.
    pub(crate) fn remove(&mut self, handle: u64) -> Option<V> {
        if let Some(slot) = self.slot_mut(handle)
            && slot.as_ref().is_some_and(|(h, _)| *h == handle)
        {
            return slot.take().map(|(_, v)| v);
        }
        let at = self.displaced.iter().position(|(h, _)| *h == handle)?;
        Some(self.displaced.swap_remove(at).1)
    }
}

/// A map from the tickets it hands out: a slab whose key is the low half
/// of the ticket, checked against the whole ticket on every look-up.
///
/// A ticket is `sequence:32 | key + 1:32`: never 0, and unique among the
/// last 2^32 tickets of a key, so a stray answer for a finished request
/// does not land on the request that reuses its key.
#[derive(Debug)]
pub(crate) struct TicketTable<V> {
    entries: Slab<(u64, V)>,
    sequence: u32,
}

impl<V> Default for TicketTable<V> {
    fn default() -> Self {
        TicketTable {
            entries: Slab::new(),
            sequence: 0,
        }
    }
}

impl<V> TicketTable<V> {
    /// The ticket the next [`insert`](Self::insert) files under, or `None`
    /// when four billion entries are already waiting.
    pub(crate) fn next_ticket(&self) -> Option<u64> {
        let key = u32::try_from(self.entries.vacant_key() + 1).ok()?;
        Some(u64::from(self.sequence) << 32 | u64::from(key))
    }

    /// Files `value` under [`next_ticket`](Self::next_ticket) (which moves
    /// on) and returns that ticket.
    pub(crate) fn insert(&mut self, value: V) -> Option<u64> {
        let ticket = self.next_ticket()?;
        self.entries.insert((ticket, value));
        self.sequence = self.sequence.wrapping_add(1);
        Some(ticket)
    }

    fn key(&self, ticket: u64) -> Option<usize> {
        let key = (ticket as u32 as usize).checked_sub(1)?;
        self.entries
            .get(key)
            .is_some_and(|(t, _)| *t == ticket)
            .then_some(key)
    }

    /// The entry of `ticket`, if any, to change.
    pub(crate) fn get_mut(&mut self, ticket: u64) -> Option<&mut V> {
        let key = self.key(ticket)?;
        self.entries.get_mut(key).map(|(_, v)| v)
    }

    /// The entry of `ticket`, if any.
    pub(crate) fn get(&self, ticket: u64) -> Option<&V> {
        let key = self.key(ticket)?;
        self.entries.get(key).map(|(_, v)| v)
    }

    /// Takes the entry of `ticket` out, if any.
    pub(crate) fn remove(&mut self, ticket: u64) -> Option<V> {
        let key = self.key(ticket)?;
        Some(self.entries.remove(key).1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn handle(core: u64, slot: u64, generation: u64) -> u64 {
        (core << 56) | (slot << GENERATION_BITS) | generation
    }

    #[test]
    fn a_table_of_a_million_handles_files_and_forgets_them() {
        let mut m: HandleTable<u32> = HandleTable::default();
        for slot in 0..1_000_000u64 {
            *m.get_or_insert_default(handle(0, slot, 1)) = slot as u32;
        }
        assert_eq!(m.get(handle(0, 123_456, 1)), Some(&123_456));
        assert_eq!(m.get(handle(0, 123_456, 2)), None);
        assert_eq!(m.get(handle(1, 123_456, 1)), None);
        for slot in 0..1_000_000u64 {
            assert_eq!(m.remove(handle(0, slot, 1)), Some(slot as u32));
        }
        assert!(m.displaced.is_empty());
        assert_eq!(m.get(handle(0, 5, 1)), None);
    }

    #[test]
    fn a_reused_slot_keeps_both_generations() {
        let mut m: HandleTable<u32> = HandleTable::default();
        let (old, new) = (handle(3, 7, 1), handle(3, 7, 2));
        *m.get_or_insert_default(old) = 10;
        *m.get_or_insert_default(new) = 20;
        assert_eq!((m.get(old), m.get(new)), (Some(&10), Some(&20)));
        *m.get_mut(new).unwrap() += 1;
        assert_eq!(*m.get_or_insert_default(new), 21);
        assert_eq!(m.remove(old), Some(10));
        assert_eq!(m.remove(old), None);
        assert_eq!(m.get(new), Some(&21));
        assert_eq!(m.remove(new), Some(21));
        assert_eq!(m.get(new), None);
    }

    #[test]
    fn hostile_handles_cost_no_panic() {
        let mut m: HandleTable<u8> = HandleTable::default();
        for h in [u64::MAX, 0, handle(255, u32::MAX.into(), 0)] {
            assert_eq!(m.get(h), None);
            *m.get_or_insert_default(h) = 1;
            assert_eq!(m.remove(h), Some(1));
        }
    }

    #[test]
    fn tickets_are_never_zero_and_never_name_a_finished_request() {
        let mut t: TicketTable<&str> = TicketTable::default();
        let first = t.next_ticket().unwrap();
        assert_eq!(t.insert("a"), Some(first));
        assert_ne!(first, 0);
        let second = t.insert("b").unwrap();
        assert_eq!(t.get(first), Some(&"a"));
        assert_eq!(t.remove(first), Some("a"));
        // The key is reused, under a new ticket.
        let third = t.insert("c").unwrap();
        assert_eq!(third as u32, first as u32);
        assert_ne!(third, first);
        assert_eq!(t.get_mut(first), None);
        assert_eq!(t.remove(first), None);
        assert_eq!(t.get(third), Some(&"c"));
        assert_eq!(t.get(second), Some(&"b"));
        assert_eq!(t.get(0), None);
        assert_eq!(t.get(u64::MAX), None);
    }
}
