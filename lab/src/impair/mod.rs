//! The lab's impairment stage: a user-space bridge in a middle namespace
//! that drops, reorders, duplicates and delays frames, each direction on
//! its own, from a seed.
//!
//! `deploy/lab up --impair SPEC` creates the middle namespace and runs the
//! `lingerd-impair` binary there; the dut and the peer keep their
//! addresses and MACs. [`spec`] is the grammar, [`path`] the decisions
//! (pure, on a caller's clock), [`stage`] the socket loop and the stats
//! file, `sys` the only unsafe code. This module never touches the dut or
//! peer namespaces, only the middle one's two interfaces.

mod lab;
pub mod path;
pub mod spec;
pub mod stage;
mod sys;

pub use lab::{STAGE_BIN_ENV, need_impaired};
