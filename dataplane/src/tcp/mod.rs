//! TCP: the connection control block, the RFC 9293 state machine, close
//! semantics, RFC 5961 validation, RTO and congestion control, ISNs.
//!
//! It owns protocol decisions for one connection at a time, among them the
//! close matrix ([`matrix`]). It may not touch ports, rings, tables or
//! clocks, and it does not import the engine: the engine hands it parsed
//! segments, requests and the current time through `cx::Cx` (built from
//! the leaf module [`crate::shared`]), and collects what it wants to send
//! (`output`) and what to do with the record (`shared::Disposition`).

pub mod close;
pub mod congestion;
pub(crate) mod cx;
pub(crate) mod input;
pub mod isn;
pub mod linger;
pub mod matrix;
pub(crate) mod open;
pub(crate) mod output;
pub mod reasm;
pub mod rtt;
pub mod sack;
pub mod sendbuf;
pub mod state;
pub mod tcb;
pub(crate) mod teardown;
pub(crate) mod timers;

pub use state::State;
pub use tcb::Tcb;
