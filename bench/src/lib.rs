//! `lingerd-bench` as a library: the scenarios, fixtures and measuring
//! helpers behind the `lingerd-bench` binary and its tests.
//!
//! It owns benchmark set-up (tables, timers, frames, pairs of engines, a
//! smoltcp reference peer), the timing discipline (warm-up, repeated runs,
//! medians) and the report (a human table on stdout, one JSON object as the
//! last line). It drives the dataplane only through its public API and never
//! changes its behaviour; it asserts correctness (frame counts, states) but
//! never timings.
#![deny(unsafe_code)]

pub mod clock;
pub mod engine;
pub mod fixtures;
pub mod generator;
pub mod lab;
pub mod measure;
pub mod micro;
pub mod report;
pub mod smol;
pub mod sys;
