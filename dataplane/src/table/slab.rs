//! The [`Table`]: the slab of connection records, slot allocation and
//! handle validation, tied to the 4-tuple index.
//!
//! It owns slot lifetimes: the FIFO free list (threaded through the spare
//! word of each free slot's [`TimerLink`], so it costs no bytes), the
//! per-slot generation with its live and retired marks, and keeping the
//! index in step with the slab. It treats the record `R` as opaque and may
//! only touch a slot's timer link while the slot is free or through the
//! [`TimerStore`] it lends to the wheel.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::handle::{FIRST_GENERATION, FourTuple, Handle, MAX_GENERATION};
use super::hash::{Key, TupleHasher};
use super::index::Index;
use crate::timer::{NIL, TimerLink, TimerStore, Wheel};

/// The largest capacity a table accepts: 2^30 slots (the index's 32-bit
/// tags need the bucket count ≤ 2^32; ~200 GiB of records at this size).
pub const MAX_CAPACITY: u32 = 1 << 30;

/// Set in a slot's generation word while it holds a connection.
const LIVE: u32 = 1 << 31;
/// Set in a slot's generation word once it may never be used again.
const RETIRED: u32 = 1 << 30;
/// Set while a live slot has been taken out of the 4-tuple index (its
/// connection is dead but the client still holds the handle).
const UNINDEXED: u32 = 1 << 29;
/// Where a live slot's local-address index sits in its generation word.
const LOCAL_SHIFT: u32 = 24;
/// The local-address index bits of the generation word (5 bits).
const LOCAL_MASK: u32 = 0x1f << LOCAL_SHIFT;

/// The most local addresses one table keys connections by: the index of a
/// connection's local address takes 5 bits of its slot's generation word.
pub const MAX_LOCAL_ADDRS: usize = 1 << (29 - LOCAL_SHIFT);

/// One slab entry: 40 bytes of metadata followed by the record. `repr(C)`
/// keeps the metadata together at the front (left to itself the compiler
/// puts the align-4 fields after the record), and the key (remote address,
/// ports, generation word: [`KEY_BYTES`]) at the very front, so a lookup's
/// key compare and generation check touch the one or two cache lines of
/// those bytes, the ones [`Table::lookup_burst`] prefetches.
#[derive(Debug)]
#[repr(C)]
struct Slot<R> {
    /// The peer's address as a native-endian `u128` (IPv4 v4-mapped; bytes,
    /// so that the slot keeps 8-byte alignment), meaningless while free.
    remote: [u8; 16],
    /// `local_port:16 | remote_port:16` (meaningless while free).
    ports: u32,
    /// `LIVE | RETIRED | UNINDEXED | local:5 | generation:24`. The
    /// generation is that of the current (or, while free, the next)
    /// occupant; `local` is the live occupant's local address, an index
    /// into the table's address list.
    generation: u32,
    /// The wheel's link while the slot's timer is armed; while the slot is
    /// free, its spare word is the free list's `next`.
    link: TimerLink,
    record: R,
}

/// The bytes at the front of a [`Slot`] that a lookup reads: remote
/// address, ports and generation word.
const KEY_BYTES: usize = 24;

impl<R> Slot<R> {
    /// The stored key of a live slot.
    #[inline(always)]
    fn key(&self) -> Key {
        Key {
            remote: u128::from_ne_bytes(self.remote),
            ports: self.ports,
            local: ((self.generation & LOCAL_MASK) >> LOCAL_SHIFT) as u8,
        }
    }

    /// Whether this slot holds `key` (checked only on a tag match).
    #[inline(always)]
    fn holds(&self, key: &Key) -> bool {
        u128::from_ne_bytes(self.remote) == key.remote
            && self.ports == key.ports
            && (self.generation & LOCAL_MASK) >> LOCAL_SHIFT == u32::from(key.local)
    }
}

/// The high bits of an IPv4 address mapped into IPv6 (`::ffff:0:0/96`).
const V4_MAPPED: u128 = 0xffff << 32;

/// What an entry of `Table::local_v4` holds for a local address that is
/// not IPv4: no `u32` widened equals it.
const NOT_V4: u64 = u64::MAX;

/// An address as 128 bits (IPv4 v4-mapped) and whether it is IPv6.
#[inline(always)]
fn addr_bits(addr: IpAddr) -> (u128, bool) {
    match addr {
        IpAddr::V4(a) => (V4_MAPPED | u128::from(u32::from(a)), false),
        IpAddr::V6(a) => (u128::from(a), true),
    }
}

/// Why [`Table::insert`] failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InsertError {
    /// Every usable slot is taken (capacity minus retired slots).
    Full,
    /// The tuple is already in the table, under this handle.
    Exists(Handle),
    /// The tuple's local address is not one of the table's (or its two
    /// addresses are of different families).
    Address,
}

impl fmt::Display for InsertError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            InsertError::Full => f.write_str("connection table is full"),
            InsertError::Exists(h) => write!(f, "4-tuple already in the connection table as {h:?}"),
            InsertError::Address => {
                f.write_str("4-tuple's local address is not one of the table's addresses")
            }
        }
    }
}

impl std::error::Error for InsertError {}

/// A tuple's hash under one table's key, computed by [`Table::prefetch`] and
/// consumed by [`Table::lookup_hashed`]. Meaningful only for the table that
/// made it (another table's hash makes a lookup miss, never return a wrong
/// handle).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TupleHash(u64);

/// Where a table's memory goes; see [`Table::memory`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MemoryUsage {
    /// Bytes reserved for the slab (`capacity × size_of` one slot). Reserved
    /// up front, committed by the OS page by page as slots are first used.
    pub slab_bytes: usize,
    /// Bytes of the index's bucket array (allocated and zero-filled up front).
    pub index_bytes: usize,
    /// Bytes of the free list beyond the slab: always 0, it is intrusive.
    pub free_list_bytes: usize,
    /// Bytes of the `Table` value itself (hasher key, counters, pointers).
    pub header_bytes: usize,
    /// Size of one slot: metadata plus the record.
    pub slot_bytes: usize,
    /// Per-slot metadata (timer link, remote address, ports, generation
    /// with the local address's index) without the record.
    pub slot_metadata_bytes: usize,
}

impl MemoryUsage {
    /// Everything: slab + index + free list + header.
    pub fn total_bytes(&self) -> usize {
        self.slab_bytes + self.index_bytes + self.free_list_bytes + self.header_bytes
    }
}

/// The connection table of one core: a fixed-capacity slab of records `R`,
/// each keyed by a [`FourTuple`] and named by a [`Handle`].
///
/// Handles are never reissued: a removed slot's generation is bumped, and a
/// slot whose generation would pass [`MAX_GENERATION`] is retired instead of
/// freed. Freed slots are reused first-in first-out, after every never-used
/// slot, so a slot rests as long as possible before its next life.
///
/// The table is also the wheel's [`TimerStore`]: entry index = slot index.
/// A slot's timer must be disarmed before the slot is removed
/// ([`remove_cancelling`](Self::remove_cancelling) does both).
pub struct Table<R> {
    /// Slots in use or used once: grows to `capacity` and never reallocates
    /// (reserved at construction).
    slots: Vec<Slot<R>>,
    index: Index,
    hasher: TupleHasher,
    /// The local addresses connections may have; a slot keeps its local
    /// address as an index into this list.
    locals: Vec<IpAddr>,
    /// `locals` as [`addr_bits`] gives them: what a lookup of an IPv6
    /// tuple compares.
    local_bits: Vec<(u128, bool)>,
    /// `locals` as an IPv4 tuple's lookup compares them: an IPv4 address
    /// as its `u32` widened, any other entry as [`NOT_V4`], which no `u32`
    /// equals.
    local_v4: Vec<u64>,
    capacity: u32,
    len: u32,
    retired: u32,
    free_head: u32,
    free_tail: u32,
    /// Generation given to never-used slots ([`FIRST_GENERATION`] except
    /// in tests, which may start higher).
    first_generation: u32,
    core: u8,
}

impl<R: fmt::Debug> fmt::Debug for Table<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Table")
            .field("core", &self.core)
            .field("len", &self.len)
            .field("capacity", &self.capacity)
            .field("retired", &self.retired)
            .finish_non_exhaustive()
    }
}

impl<R> Table<R> {
    /// An empty table for `core` with room for `capacity` connections,
    /// hashing tuples under the secret `hash_key` (draw it from a random
    /// source, one per core), whose connections have one of `local_addrs`
    /// (of either family) as their local address. Allocates the slab
    /// (reserved, not touched) and the index (zero-filled) once; nothing
    /// allocates afterwards.
    ///
    /// # Panics
    /// If `capacity` exceeds [`MAX_CAPACITY`], `local_addrs` holds more than
    /// [`MAX_LOCAL_ADDRS`] addresses, or the allocation fails.
    pub fn with_capacity(
        core: u8,
        capacity: u32,
        hash_key: u64,
        local_addrs: &[IpAddr],
    ) -> Table<R> {
        Table::with_first_generation(core, capacity, hash_key, local_addrs, FIRST_GENERATION)
    }

    /// Like [`with_capacity`](Self::with_capacity), with fresh slots starting
    /// at `first_generation` (tests use it to reach retirement quickly).
    pub(crate) fn with_first_generation(
        core: u8,
        capacity: u32,
        hash_key: u64,
        local_addrs: &[IpAddr],
        first_generation: u32,
    ) -> Table<R> {
        assert!(
            capacity <= MAX_CAPACITY,
            "table capacity {capacity} exceeds {MAX_CAPACITY}"
        );
        assert!(
            local_addrs.len() <= MAX_LOCAL_ADDRS,
            "{} local addresses exceed {MAX_LOCAL_ADDRS}",
            local_addrs.len()
        );
        assert!((FIRST_GENERATION..=MAX_GENERATION).contains(&first_generation));
        let slots = Vec::with_capacity(capacity as usize);
        crate::sys::advise_huge_pages(&slots);
        Table {
            slots,
            index: Index::with_capacity(capacity),
            hasher: TupleHasher::new(hash_key),
            locals: local_addrs.to_vec(),
            local_bits: local_addrs.iter().map(|&a| addr_bits(a)).collect(),
            local_v4: local_addrs
                .iter()
                .map(|a| match a {
                    IpAddr::V4(a) => u64::from(u32::from(*a)),
                    IpAddr::V6(_) => NOT_V4,
                })
                .collect(),
            capacity,
            len: 0,
            retired: 0,
            free_head: NIL,
            free_tail: NIL,
            first_generation,
            core,
        }
    }

    /// The core (queue engine) this table belongs to; every handle it issues
    /// carries it.
    #[inline]
    pub fn core(&self) -> u8 {
        self.core
    }

    /// Live connections.
    #[inline]
    pub fn len(&self) -> usize {
        self.len as usize
    }

    /// Whether no connection is live.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Slots, fixed at construction (live + free + retired).
    #[inline]
    pub fn capacity(&self) -> u32 {
        self.capacity
    }

    /// Slots retired because their generations are exhausted.
    #[inline]
    pub fn retired(&self) -> u32 {
        self.retired
    }

    /// Slots ever used: cursors walking the table with
    /// [`handle_at`](Self::handle_at) can stop here.
    #[inline]
    pub fn slots_in_use(&self) -> u32 {
        self.slots.len() as u32
    }

    /// The local addresses this table's connections may have.
    pub fn local_addrs(&self) -> &[IpAddr] {
        &self.locals
    }

    /// The stored form of `tuple`: `None` when its local address is not
    /// one of the table's or its addresses' families differ. A scan of at
    /// most [`MAX_LOCAL_ADDRS`] addresses (usually one or two).
    ///
    /// Kept to a few instructions: a lookup that does more keeps fewer
    /// lookups in flight at once, and the cache misses of a burst of
    /// single lookups stop overlapping (measured: comparing `IpAddr`s here
    /// instead of these words doubled a random cold lookup).
    #[inline(always)]
    fn key_of(&self, tuple: &FourTuple) -> Option<Key> {
        let ports = (u32::from(tuple.local_port) << 16) | u32::from(tuple.remote_port);
        // IPv4 first, on 32-bit words: most of the traffic, and the
        // cheapest compare.
        if let (IpAddr::V4(local), IpAddr::V4(remote)) = (tuple.local_addr, tuple.remote_addr) {
            let local = u64::from(u32::from(local));
            let index = self.local_v4.iter().position(|&l| l == local)?;
            return Some(Key {
                remote: V4_MAPPED | u128::from(u32::from(remote)),
                ports,
                local: index as u8,
            });
        }
        let (local, local_v6) = addr_bits(tuple.local_addr);
        let (remote, remote_v6) = addr_bits(tuple.remote_addr);
        if local_v6 != remote_v6 {
            return None;
        }
        let index = self
            .local_bits
            .iter()
            .position(|&l| l == (local, local_v6))?;
        Some(Key {
            remote,
            ports,
            local: index as u8,
        })
    }

    /// The tuple a stored key stands for.
    /// The local address listed at `index` (a live slot's index always
    /// is; the unspecified address otherwise).
    #[inline]
    fn listed_local(&self, index: u8) -> IpAddr {
        self.locals
            .get(usize::from(index))
            .copied()
            .unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED))
    }

    fn tuple_of(&self, key: &Key) -> FourTuple {
        let local_addr = self.listed_local(key.local);
        let remote_addr = match local_addr {
            IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::from(key.remote as u32)),
            IpAddr::V6(_) => IpAddr::V6(Ipv6Addr::from(key.remote)),
        };
        FourTuple {
            local_addr,
            remote_addr,
            local_port: (key.ports >> 16) as u16,
            remote_port: key.ports as u16,
        }
    }

    /// Adds a connection. Fails with [`InsertError::Exists`] if the tuple is
    /// already present (the record is dropped), [`InsertError::Address`] if
    /// its local address is not one of the table's, and
    /// [`InsertError::Full`] if no slot is free. O(1) expected; no
    /// allocation.
    pub fn insert(&mut self, tuple: FourTuple, record: R) -> Result<Handle, InsertError> {
        let key = self.key_of(&tuple).ok_or(InsertError::Address)?;
        let hash = self.hasher.hash(&key);
        let slots = &self.slots;
        let local_bits = u32::from(key.local) << LOCAL_SHIFT;
        let vacant = match self
            .index
            .find_or_vacant(hash, |s| slots[s as usize].holds(&key))
        {
            Ok(slot) => return Err(InsertError::Exists(self.live_handle(slot))),
            Err(vacant) => vacant,
        };
        let slot = if self.slots.len() < self.capacity as usize {
            let slot = self.slots.len() as u32;
            // Never reallocates: `len < capacity` of the reservation.
            self.slots.push(Slot {
                link: TimerLink::UNARMED,
                remote: key.remote.to_ne_bytes(),
                ports: key.ports,
                generation: self.first_generation | LIVE | local_bits,
                record,
            });
            slot
        } else if self.free_head != NIL {
            let slot = self.free_head;
            let entry = &mut self.slots[slot as usize];
            self.free_head = entry.link.spare();
            if self.free_head == NIL {
                self.free_tail = NIL;
            }
            entry.link = TimerLink::UNARMED;
            entry.remote = key.remote.to_ne_bytes();
            entry.ports = key.ports;
            entry.generation = (entry.generation & MAX_GENERATION) | LIVE | local_bits;
            entry.record = record;
            slot
        } else {
            return Err(InsertError::Full);
        };
        self.index.fill(vacant, slot);
        self.len += 1;
        Ok(self.live_handle(slot))
    }

    /// The handle of the connection with this tuple.
    #[inline]
    pub fn lookup(&self, tuple: &FourTuple) -> Option<Handle> {
        let key = self.key_of(tuple)?;
        self.find(&key, self.hasher.hash(&key))
    }

    #[inline]
    fn find(&self, key: &Key, hash: u64) -> Option<Handle> {
        let slots = &self.slots;
        let slot = self.index.find(hash, |s| slots[s as usize].holds(key))?;
        Some(self.live_handle(slot))
    }

    /// Hashes `tuple` and prefetches its home bucket, so that a later
    /// [`lookup_hashed`](Self::lookup_hashed) finds it in cache. Issue it
    /// for a whole RX burst first, then look each up: the misses overlap.
    #[inline]
    pub fn prefetch(&self, tuple: &FourTuple) -> TupleHash {
        let Some(key) = self.key_of(tuple) else {
            return TupleHash(0);
        };
        let hash = self.hasher.hash(&key);
        self.index.prefetch(hash);
        TupleHash(hash)
    }

    /// [`lookup`](Self::lookup) with a hash from [`prefetch`](Self::prefetch).
    #[inline]
    pub fn lookup_hashed(&self, tuple: &FourTuple, hash: TupleHash) -> Option<Handle> {
        self.find(&self.key_of(tuple)?, hash.0)
    }

    /// Looks up a burst of tuples, `out[i]` for `tuples[i]` (the shorter of
    /// the two lengths is processed), in three passes per group of 32: hash
    /// and prefetch buckets, find each candidate slot by tag and prefetch
    /// its record, then confirm the tuples. Same results as
    /// [`lookup`](Self::lookup) one by one.
    pub fn lookup_burst(&self, tuples: &[FourTuple], out: &mut [Option<Handle>]) {
        const GROUP: usize = 32;
        for (tuples, out) in tuples.chunks(GROUP).zip(out.chunks_mut(GROUP)) {
            let mut hashes = [TupleHash(0); GROUP];
            for (tuple, hash) in tuples.iter().zip(hashes.iter_mut()) {
                *hash = self.prefetch(tuple);
            }
            for hash in hashes.iter().take(tuples.len()) {
                if let Some(slot) = self.index.first_candidate(hash.0)
                    && let Some(entry) = self.slots.get(slot as usize)
                {
                    crate::sys::prefetch_read_span(entry, KEY_BYTES);
                }
            }
            for ((tuple, hash), out) in tuples.iter().zip(hashes).zip(out.iter_mut()) {
                *out = self.lookup_hashed(tuple, hash);
            }
        }
    }

    /// Hints the CPU to fetch the whole slot `handle` names: its generation
    /// and tuple, which [`prefetch_remove`](Self::prefetch_remove) reads,
    /// and the record, every line of which a request on the connection
    /// (an abort, a close) may touch. Bounds-checked and otherwise
    /// unchecked: a stale or foreign handle only wastes the hint.
    #[inline]
    pub fn prefetch_slot(&self, handle: Handle) {
        if let Some(entry) = self.slots.get(handle.slot() as usize) {
            crate::sys::prefetch_read_span(entry, size_of::<Slot<R>>());
        }
    }

    /// Hints the CPU to fetch slot `slot` (its metadata: timer link,
    /// tuple, generation). Out-of-range slots are ignored.
    #[inline]
    pub fn prefetch_slot_at(&self, slot: u32) {
        if let Some(entry) = self.slots.get(slot as usize) {
            crate::sys::prefetch_read(entry);
        }
    }

    /// Hints the CPU to fetch what [`remove`](Self::remove) of `handle`
    /// will touch: the slot and the index bucket its tuple hashes to. Issue
    /// it for a burst of handles before removing them (bulk abort, expiry),
    /// so that the index misses overlap. Does nothing for a stale handle.
    #[inline]
    pub fn prefetch_remove(&self, handle: Handle) {
        if let Some(slot) = self.slot_of(handle) {
            let entry = &self.slots[slot];
            if entry.generation & UNINDEXED == 0 {
                self.index
                    .prefetch_for_remove(self.hasher.hash(&entry.key()));
            }
        }
    }

    /// [`prefetch_remove`](Self::prefetch_remove) by slot, for a walk over
    /// the slab (bulk teardown): when slot `slot` holds an indexed
    /// connection, hints the CPU to fetch the index bucket its removal
    /// will touch. Reads the slot's key, so issue it for a slot whose line
    /// is already on its way ([`prefetch_slot_at`](Self::prefetch_slot_at)
    /// a few slots earlier). Free, unindexed and out-of-range slots are
    /// ignored.
    #[inline]
    pub fn prefetch_remove_at(&self, slot: u32) {
        if let Some(entry) = self.slots.get(slot as usize)
            && entry.generation & (LIVE | UNINDEXED) == LIVE
        {
            self.index
                .prefetch_for_remove(self.hasher.hash(&entry.key()));
        }
    }

    /// The slot a live handle names, or `None` for a stale, foreign or
    /// never-issued handle.
    #[inline]
    fn slot_of(&self, handle: Handle) -> Option<usize> {
        let slot = handle.slot() as usize;
        let entry = self.slots.get(slot)?;
        (entry.generation & !(UNINDEXED | LOCAL_MASK) == (handle.generation() | LIVE)
            && handle.core() == self.core)
            .then_some(slot)
    }

    #[inline]
    fn live_handle(&self, slot: u32) -> Handle {
        Handle::new(
            self.core,
            slot,
            self.slots[slot as usize].generation & MAX_GENERATION,
        )
    }

    /// Whether `handle` names a live connection of this table.
    #[inline]
    pub fn contains(&self, handle: Handle) -> bool {
        self.slot_of(handle).is_some()
    }

    /// The record of a live handle; `None` if it is stale.
    #[inline]
    pub fn get(&self, handle: Handle) -> Option<&R> {
        let slot = self.slot_of(handle)?;
        Some(&self.slots[slot].record)
    }

    /// The record of a live handle, mutably; `None` if it is stale.
    #[inline]
    pub fn get_mut(&mut self, handle: Handle) -> Option<&mut R> {
        let slot = self.slot_of(handle)?;
        Some(&mut self.slots[slot].record)
    }

    /// The local address of a live handle's connection (its tuple's
    /// `local_addr`, without building the rest of the tuple).
    #[inline]
    pub fn local_addr(&self, handle: Handle) -> Option<IpAddr> {
        let slot = self.slot_of(handle)?;
        let local = (self.slots[slot].generation & LOCAL_MASK) >> LOCAL_SHIFT;
        Some(self.listed_local(local as u8))
    }

    /// The tuple of a live handle.
    #[inline]
    pub fn tuple(&self, handle: Handle) -> Option<FourTuple> {
        let slot = self.slot_of(handle)?;
        Some(self.tuple_of(&self.slots[slot].key()))
    }

    /// The handle of the connection in `slot`, if that slot is live. With
    /// [`slots_in_use`](Self::slots_in_use) this lets a cursor walk the
    /// table in bounded slices, resuming at a slot number (connections
    /// inserted or removed meanwhile may or may not be seen).
    #[inline]
    pub fn handle_at(&self, slot: u32) -> Option<Handle> {
        let entry = self.slots.get(slot as usize)?;
        (entry.generation & LIVE != 0)
            .then(|| Handle::new(self.core, slot, entry.generation & MAX_GENERATION))
    }

    /// The memory this table holds, from the real allocation sizes.
    pub fn memory(&self) -> MemoryUsage {
        MemoryUsage {
            slab_bytes: self.slots.capacity() * size_of::<Slot<R>>(),
            index_bytes: self.index.memory_bytes(),
            free_list_bytes: 0,
            header_bytes: size_of::<Self>(),
            slot_bytes: size_of::<Slot<R>>(),
            slot_metadata_bytes: Self::slot_metadata_bytes(),
        }
    }

    /// Total bytes held: slab + index + free list + header.
    pub fn memory_bytes(&self) -> usize {
        self.memory().total_bytes()
    }

    /// [`memory_bytes`](Self::memory_bytes) divided by the capacity (rounded
    /// up): what one connection costs when the table is full.
    pub fn bytes_per_connection(&self) -> usize {
        self.memory_bytes().div_ceil(self.capacity.max(1) as usize)
    }

    /// Bytes of per-slot metadata beside the record (timer link, remote
    /// address, ports, generation): the slot size for a zero-sized record.
    pub const fn slot_metadata_bytes() -> usize {
        size_of::<Slot<()>>()
    }

    /// Longest probe distance in the index (diagnostics; O(buckets)).
    pub fn index_max_displacement(&self) -> usize {
        self.index.max_displacement()
    }
}

impl<R: Default> Table<R> {
    /// Removes a live connection and returns its record (the slot keeps a
    /// default one); `None` if the handle is stale. The slot goes to the
    /// back of the free list with its generation bumped, or is retired if
    /// the generation is exhausted. O(1) expected; no allocation.
    ///
    /// # Panics
    /// If the slot's timer is still armed: freeing it would corrupt the
    /// wheel's lists. Cancel first, or use
    /// [`remove_cancelling`](Self::remove_cancelling).
    pub fn remove(&mut self, handle: Handle) -> Option<R> {
        self.remove_with(handle, std::mem::take)
    }

    /// [`remove`](Self::remove) that hands the record to `take` in place
    /// instead of moving it out: `take` returns what the caller needs of
    /// it (its buffers), and the rest stays in the free slot until the
    /// next occupant's record replaces (and drops) it, or for good in a
    /// retired slot. Spares copying a whole record out and a default one
    /// in on every close. Same panics as `remove`.
    pub fn remove_with<T>(&mut self, handle: Handle, take: impl FnOnce(&mut R) -> T) -> Option<T> {
        let slot = self.slot_of(handle)?;
        assert!(
            !self.slots[slot].link.is_armed(),
            "removing {handle:?} while its timer is armed"
        );
        if self.slots[slot].generation & UNINDEXED == 0 {
            let hash = self.hasher.hash(&self.slots[slot].key());
            let removed = self.index.remove(hash, slot as u32);
            debug_assert!(removed, "live slot missing from the index");
        }
        self.len -= 1;
        let entry = &mut self.slots[slot];
        let taken = take(&mut entry.record);
        let generation = entry.generation & MAX_GENERATION;
        if generation == MAX_GENERATION {
            entry.generation = RETIRED | generation;
            self.retired += 1;
            return Some(taken);
        }
        entry.generation = generation + 1;
        entry.link.set_spare(NIL);
        if self.free_tail == NIL {
            self.free_head = slot as u32;
        } else {
            self.slots[self.free_tail as usize]
                .link
                .set_spare(slot as u32);
        }
        self.free_tail = slot as u32;
        Some(taken)
    }

    /// Takes a live connection out of the 4-tuple index while keeping its
    /// slot, record and handle: packets for its tuple no longer find it (and
    /// the tuple may be used again), the client's handle still does until
    /// [`remove`](Self::remove). Does nothing for a stale handle or one
    /// already unindexed.
    pub fn unindex(&mut self, handle: Handle) {
        let Some(slot) = self.slot_of(handle) else {
            return;
        };
        if self.slots[slot].generation & UNINDEXED != 0 {
            return;
        }
        let hash = self.hasher.hash(&self.slots[slot].key());
        let removed = self.index.remove(hash, slot as u32);
        debug_assert!(removed, "live slot missing from the index");
        self.slots[slot].generation |= UNINDEXED;
    }

    /// Cancels the slot's timer in `wheel` (if armed) and removes the
    /// connection.
    pub fn remove_cancelling(&mut self, handle: Handle, wheel: &mut Wheel) -> Option<R> {
        self.remove_cancelling_with(handle, wheel, std::mem::take)
    }

    /// [`remove_cancelling`](Self::remove_cancelling) with the record
    /// handed to `take` in place, as [`remove_with`](Self::remove_with).
    pub fn remove_cancelling_with<T>(
        &mut self,
        handle: Handle,
        wheel: &mut Wheel,
        take: impl FnOnce(&mut R) -> T,
    ) -> Option<T> {
        if !self.contains(handle) {
            return None;
        }
        wheel.cancel(self, handle.slot());
        self.remove_with(handle, take)
    }
}

impl<R> TimerStore for Table<R> {
    #[inline]
    fn timer_link(&self, idx: u32) -> &TimerLink {
        &self.slots[idx as usize].link
    }

    #[inline]
    fn timer_link_mut(&mut self, idx: u32) -> &mut TimerLink {
        &mut self.slots[idx as usize].link
    }
}
