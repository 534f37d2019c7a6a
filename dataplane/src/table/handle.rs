//! Connection handles and 4-tuples: the two ways to name a connection.
//!
//! A [`Handle`] is what clients hold: `core:8 | slot:32 | generation:24`
//! packed in a `u64`. The generation makes a handle unique for the lifetime of
//! the table: a slot whose generation would wrap is retired, never reused, so
//! a stale handle can never name a newer connection. Generations start at
//! [`FIRST_GENERATION`] (1), so no issued handle has generation 0 and the
//! raw value 0 never names anything: it is [`Handle::INVALID`], the "no
//! handle" of the ring ABI and of C callers (`LD_INVALID_HANDLE`). A
//! [`FourTuple`] is what packets carry. This module only packs and unpacks;
//! the table decides validity.

use std::fmt;
use std::net::IpAddr;

/// Bits of the generation field.
pub const GENERATION_BITS: u32 = 24;
/// The largest generation a slot may carry; past it the slot is retired.
pub const MAX_GENERATION: u32 = (1 << GENERATION_BITS) - 1;
/// The generation of a never-used slot. Not 0: a handle with generation 0
/// is never issued, which keeps [`Handle::INVALID`] (raw 0) free.
pub const FIRST_GENERATION: u32 = 1;

/// A client's name for one connection: `core:8 | slot:32 | generation:24`.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Handle(u64);

impl Handle {
    /// The raw value 0, which names no connection ever (generation 0 is
    /// never issued): what a completion carries when no handle applies, and
    /// what C callers may use as "no handle".
    pub const INVALID: Handle = Handle(0);

    /// Packs a handle. `generation` is masked to 24 bits.
    #[inline]
    pub const fn new(core: u8, slot: u32, generation: u32) -> Handle {
        Handle(
            ((core as u64) << 56)
                | ((slot as u64) << GENERATION_BITS)
                | (generation & MAX_GENERATION) as u64,
        )
    }

    /// Rebuilds a handle from its raw `u64` (as carried by the ring ABI).
    /// Any value is accepted; the table decides whether it names anything.
    #[inline]
    pub const fn from_raw(raw: u64) -> Handle {
        Handle(raw)
    }

    /// The raw `u64` form.
    #[inline]
    pub const fn raw(self) -> u64 {
        self.0
    }

    /// The owning core (queue engine).
    #[inline]
    pub const fn core(self) -> u8 {
        (self.0 >> 56) as u8
    }

    /// The slot index in that core's table.
    #[inline]
    pub const fn slot(self) -> u32 {
        (self.0 >> GENERATION_BITS) as u32
    }

    /// The slot's generation when the handle was issued.
    #[inline]
    pub const fn generation(self) -> u32 {
        (self.0 as u32) & MAX_GENERATION
    }
}

impl fmt::Debug for Handle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Handle({}:{}:{})",
            self.core(),
            self.slot(),
            self.generation()
        )
    }
}

/// The 4-tuple that identifies a TCP connection, seen from our side. Both
/// addresses are of one family (IPv4 or IPv6); a table refuses a tuple that
/// mixes them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FourTuple {
    /// Our address.
    pub local_addr: IpAddr,
    /// The peer's address.
    pub remote_addr: IpAddr,
    /// Our port.
    pub local_port: u16,
    /// The peer's port.
    pub remote_port: u16,
}

impl FourTuple {
    /// Whether this is an IPv6 connection (judged by our address).
    #[inline]
    pub const fn is_ipv6(&self) -> bool {
        self.local_addr.is_ipv6()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn handle_fields_round_trip_at_their_limits() {
        for (core, slot, generation) in
            [(0, 0, 0), (255, u32::MAX, MAX_GENERATION), (7, 123_456, 42)]
        {
            let h = Handle::new(core, slot, generation);
            assert_eq!(
                (h.core(), h.slot(), h.generation()),
                (core, slot, generation)
            );
            assert_eq!(Handle::from_raw(h.raw()), h);
        }
    }

    #[test]
    fn the_first_handle_of_every_core_is_not_the_invalid_one() {
        for core in [0, 1, 255] {
            let first = Handle::new(core, 0, FIRST_GENERATION);
            assert_ne!(first, Handle::INVALID);
            assert_ne!(first.raw(), 0);
        }
        assert_eq!(Handle::INVALID.raw(), 0);
    }

    #[test]
    fn handle_generation_is_masked_not_spilled_into_slot() {
        let h = Handle::new(1, 5, MAX_GENERATION + 2);
        assert_eq!((h.core(), h.slot(), h.generation()), (1, 5, 1));
    }
}
