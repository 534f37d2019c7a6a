//! `lingerd-bench`: the benchmark driver (placeholder until `micro` lands).
#![deny(unsafe_code)]

fn main() {}
