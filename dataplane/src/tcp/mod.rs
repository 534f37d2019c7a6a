//! TCP: the connection control block, the RFC 9293 state machine, close
//! semantics, RFC 5961 validation, RTO and congestion control, ISNs.
//!
//! It owns protocol decisions for one connection at a time. It may not touch
//! ports, rings or clocks: the engine hands it parsed segments, requests and
//! the current time, and collects what it wants to send.

pub mod isn;
pub mod linger;
pub mod rtt;
pub mod sendbuf;
pub mod siphash;
pub mod state;
