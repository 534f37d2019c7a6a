//! Per-connection linger options (docs/close-semantics.md#linger-options).
//!
//! The `{on, time}` pair, with Winsock's `SO_LINGER` / `SO_DONTLINGER`
//! rules and the three rows of the linger matrix it selects, is shared
//! vocabulary: it is declared once, in `lingerd_abi::vocab`, and named here
//! under the path the connection's close logic uses. What a close does
//! with the pair is decided by that close logic, not here.

pub use lingerd_abi::vocab::{CloseKind, Linger, LingerRange, MAX_LINGER_MS};
