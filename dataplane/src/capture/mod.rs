//! Packet capture for `lingerd ctl capture`: what a core copies of the
//! frames its port receives and sends, while an operator asks for it.
//!
//! Three parts: [`bpf`] (the filter: classic BPF as libpcap compiles it,
//! checked, then interpreted over each frame), [`tap`] (one core's bounded
//! pool of batch buffers, filled by the core and emptied by a reader, that
//! drops copies, counted, when the reader falls behind, and never frames)
//! and [`batch`] (the records' layout, and its checked parser). The loop
//! (`port::core_loop`) offers a tap every frame of each burst when one is
//! installed; with none, it pays one branch per burst.
//!
//! It owns these mechanisms, not their use: which cores capture, for how
//! long and where the batches go are the daemon's; pcapng is written by
//! `lingerd ctl`. It may not touch ports, engines or clocks (the loop
//! passes its iteration's time in).

pub mod batch;
pub mod bpf;
pub mod tap;

pub use batch::{Batch, Direction, Record};
pub use bpf::{Insn, Program, ProgramError};
pub use tap::{CaptureReader, CaptureTap, TapConfig, TapStats, capture};
