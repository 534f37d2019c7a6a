//! The lingerd binary.
//!
//! It will own the control thread, core pinning, client attach, metrics and
//! signals, and drive one dataplane engine per queue. It may not implement
//! protocol logic itself: that lives in `lingerd-dataplane`. Until the port
//! and daemon issues land it only reports its version.
#![deny(unsafe_code)]

fn main() {
    println!(
        "lingerd {} (dataplane only; `run` arrives with the AF_XDP port)",
        env!("CARGO_PKG_VERSION")
    );
}
