//! The per-core connection table: a slab of fixed-size records plus a
//! 4-tuple index.
//!
//! It owns slot allocation (FIFO free list, generations, retirement) and the
//! mapping from 4-tuples and handles to slots. It knows nothing of TCP: the
//! record type is a parameter. It may not read clocks or touch packets.

mod handle;

pub use handle::{FourTuple, GENERATION_BITS, Handle, MAX_GENERATION};
