//! The lingerd dataplane: everything one pinned core does for its NIC queue.
//!
//! It owns the wire formats (`wire`), the connection table (`table`) and the
//! per-core timing wheel (`timer`); the TCP engine and the ports are built on
//! these. Data flows one way: a port hands frames to the engine, the engine
//! answers through client rings. Nothing in this crate reads a clock, opens a
//! socket or spawns a thread except the port shells; time always comes in as
//! an argument. `unsafe` is allowed only under `sys`.
#![deny(unsafe_code)]

pub mod capture;
pub mod engine;
pub mod flow;
pub mod port;
pub mod rings;
pub mod shared;
pub mod sys;
pub mod table;
pub mod tcp;
pub mod timer;
pub mod wire;
