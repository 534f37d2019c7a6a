//! Moving the calling thread into a named network namespace.
//!
//! Tests and benchmarks run an engine in the lab's dut namespace and a
//! kernel client in its peer namespace from one process: each side is a
//! thread that first calls [`enter`]. `setns(CLONE_NEWNET)` changes only the
//! calling thread; sockets, interface lookups and XDP attach from that thread
//! then see the namespace. sysfs does not follow (it shows the namespace it
//! was mounted in): read `/sys/class/net` through `ip netns exec` instead.
//! Owns nothing beyond the call; it never creates or deletes a namespace.
//! The call itself is rustix's safe `setns` wrapper.

use std::fs::File;
use std::io;
use std::os::fd::AsFd;

use rustix::thread::{LinkNameSpaceType, move_into_link_name_space};

/// Moves the calling thread into the namespace `ip netns` knows as `name`
/// (`/run/netns/<name>`).
pub fn enter(name: &str) -> io::Result<()> {
    if name.contains('/') || name.is_empty() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "bad namespace name",
        ));
    }
    let file = File::open(format!("/run/netns/{name}"))?;
    move_into_link_name_space(file.as_fd(), Some(LinkNameSpaceType::Network))?;
    Ok(())
}
