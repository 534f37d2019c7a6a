//! The per-core connection table: a slab of fixed-size records plus a
//! 4-tuple index, for IPv4 and IPv6 connections alike.
//!
//! It owns slot allocation (FIFO free list, generations, retirement) and the
//! mapping from 4-tuples and handles to slots. It knows nothing of TCP: the
//! record type is a parameter. It may not read clocks or touch packets, and
//! it touches a slot's timer link only while the slot is free.
//!
//! # Memory per connection
//!
//! | part            | bytes                    | notes                                          |
//! |-----------------|--------------------------|------------------------------------------------|
//! | slot metadata   | 40                       | remote address 16, ports 4, generation + local index 4, timer link 16 |
//! | record `R`      | `size_of::<R>()`         | ~170 for the engine's TCB, padded to 8         |
//! | index           | 8 × buckets / capacity   | 10.7 (best) to 21.3 (worst); 13.4 at 10M       |
//! | free list       | 0                        | threaded through free slots' timer links       |
//!
//! The index has a power-of-two number of 8-byte buckets with load ≤ 3/4 at
//! full capacity, so its per-connection share depends on where the capacity
//! falls between powers of two: capacities just under `0.75 × 2^k`
//! (786,432, 12,582,912) are the cheapest, ≈ 10.7 B. For 10 million
//! connections and a 176-byte TCB: 40 + 176 + 13.4 ≈ 229 B per connection,
//! 2.3 GB per 10M, the same for IPv4 and IPv6. [`Table::memory`] reports
//! the real figures.
//!
//! # Addresses
//!
//! A slot stores the remote address in full (16 bytes; IPv4 v4-mapped) and
//! the local address as a 5-bit index into the table's address list (at
//! most [`MAX_LOCAL_ADDRS`]), kept in spare bits of the generation word; the
//! listed local address also gives the connection's family. Inserting a
//! tuple whose local address is not listed fails with
//! [`InsertError::Address`]; looking one up finds nothing.
//!
//! The slab is reserved at construction and only touched as slots are first
//! used (fresh slots are handed out before recycled ones), so resident
//! memory tracks the high-water mark while the reported figure is the full
//! reservation.

mod handle;
mod hash;
mod index;
mod slab;

#[cfg(test)]
mod tests;

pub use handle::{FIRST_GENERATION, FourTuple, GENERATION_BITS, Handle, MAX_GENERATION};
pub use slab::{InsertError, MAX_CAPACITY, MAX_LOCAL_ADDRS, MemoryUsage, Table, TupleHash};
