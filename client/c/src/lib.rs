//! `liblingerd.so` (package `lingerd-c`): the C face of `lingerd-client`.
//!
//! It owns the C ABI only ([`sys`]: opaque pointers, out-parameters, the
//! per-thread last error), declared in `include/lingerd.h` and shown by
//! `examples/echo_abort.c`. Every function is one call of
//! [`lingerd_client::Client`]; behaviour lives there, never here. `unsafe`
//! lives only in `sys`.
#![deny(unsafe_code)]

pub mod sys;
