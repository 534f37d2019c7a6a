//! What the memif lab (`lingerd-bench lab --port dpdk`) adds to the lab
//! pieces: the load generator's memif client device (`loadgen_device`,
//! feature `dpdk`), the EAL runtime directory a DPDK process of ours leaves
//! when it dies without shutting down ([`eal_runtime_dir`],
//! [`remove_eal_runtime_dir`], [`RuntimeDirs`]), and the reason the kernel
//! baseline has no memif figure ([`KERNEL_NOT_COMPARABLE`]) and the
//! default idle threshold ([`MAX_BUSY`]).
//!
//! The release profile aborts on panic, so no guard runs then: after
//! [`undo_on_panic`], a panic first stops the processes registered with
//! [`RuntimeDirs`] (SIGTERM, then SIGKILL after a grace), removes their
//! runtime directories and this process's own, and the directories given
//! to [`remove_on_panic`] (the run's scratch directory, with its memif
//! socket files).
//!
//! It owns only the runtime directories named after pids it is given (a
//! process of this run: the daemon, a ceiling receiver), which it removes
//! once those processes are gone, and what it is told to undo on a panic;
//! it starts nothing and touches no namespace, interface or other
//! process's files.

use std::path::{Path, PathBuf};
use std::sync::{Mutex, Once};
use std::time::{Duration, Instant};

/// The most CPU (in CPUs, summed over the machine) other processes may
/// use during the idle check before a memif measurement is refused
/// (`--max-busy` of `dpdk-ceiling` and `lab --port dpdk`).
pub const MAX_BUSY: f64 = 0.15;

/// Why `lab --port dpdk` reports no kernel figures: the Linux kernel cannot
/// speak memif, so a kernel run would go over the netns lab's veth, a
/// different link with a different ceiling, and its ratio to a memif run
/// would compare two links rather than two stacks.
pub const KERNEL_NOT_COMPARABLE: &str = "the Linux kernel cannot speak memif: a kernel \
     baseline would run over the netns lab's veth (about 2 Mpps), a different link, so its \
     figure is not comparable with a memif run; see lab --port afxdp for lingerd vs the kernel";

/// The EAL runtime directory of lingerd's process `pid` (its
/// `--file-prefix` is `lingerd-<pid>`): `/var/run/dpdk/lingerd-<pid>` as
/// root, `$XDG_RUNTIME_DIR/dpdk/…` (or `/tmp/dpdk/…`) otherwise, as DPDK
/// 22.11 places it.
pub fn eal_runtime_dir(pid: u32) -> PathBuf {
    let base = if rustix::process::geteuid().is_root() {
        PathBuf::from("/var/run")
    } else {
        std::env::var_os("XDG_RUNTIME_DIR").map_or_else(|| PathBuf::from("/tmp"), PathBuf::from)
    };
    base.join("dpdk").join(format!("lingerd-{pid}"))
}

/// Removes the EAL runtime directory of `pid` (a process of ours that is
/// gone) and the shared `dpdk` directory above it when that is empty.
/// Nothing to remove is not an error.
pub fn remove_eal_runtime_dir(pid: u32) {
    let dir = eal_runtime_dir(pid);
    if dir.exists() {
        let _ = std::fs::remove_dir_all(&dir);
    }
    if let Some(parent) = dir.parent() {
        let _ = std::fs::remove_dir(parent);
    }
}

/// What a panic must undo (see the module text).
struct Undo {
    pids: Vec<u32>,
    dirs: Vec<PathBuf>,
}

static UNDO: Mutex<Undo> = Mutex::new(Undo {
    pids: Vec::new(),
    dirs: Vec::new(),
});

fn undo() -> std::sync::MutexGuard<'static, Undo> {
    UNDO.lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// How long a process stopped by the panic hook may take after SIGTERM.
const PANIC_GRACE: Duration = Duration::from_secs(5);

/// Installs, once, a panic hook that undoes what is registered (see the
/// module text) before the previous hook runs.
pub fn undo_on_panic() {
    static INSTALL: Once = Once::new();
    INSTALL.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let (pids, dirs) = {
                let mut u = undo();
                (std::mem::take(&mut u.pids), std::mem::take(&mut u.dirs))
            };
            for pid in pids {
                stop_child(pid);
                remove_eal_runtime_dir(pid);
            }
            for dir in dirs {
                let _ = std::fs::remove_dir_all(dir);
            }
            remove_eal_runtime_dir(std::process::id());
            previous(info);
        }));
    });
}

/// SIGTERM to our child `pid`, SIGKILL after [`PANIC_GRACE`]; reaped.
fn stop_child(pid: u32) {
    use rustix::process::{Pid, Signal, WaitOptions, kill_process, waitpid};
    let Some(p) = i32::try_from(pid).ok().and_then(Pid::from_raw) else {
        return;
    };
    let gone = || !matches!(waitpid(Some(p), WaitOptions::NOHANG), Ok(None));
    if gone() {
        return;
    }
    let _ = kill_process(p, Signal::TERM);
    let until = Instant::now() + PANIC_GRACE;
    while Instant::now() < until {
        if gone() {
            return;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let _ = kill_process(p, Signal::KILL);
    let _ = waitpid(Some(p), WaitOptions::empty());
}

/// Removes `dir` if a panic happens (after [`undo_on_panic`]).
pub fn remove_on_panic(dir: &Path) {
    undo().dirs.push(dir.to_owned());
}

/// The pids of DPDK processes (our children) this run started; their
/// runtime directories are removed when it drops (declare it before the
/// processes, so that it drops after them), and a panic stops them (after
/// [`undo_on_panic`]).
#[derive(Debug, Default)]
pub struct RuntimeDirs(Vec<u32>);

impl RuntimeDirs {
    /// Remembers `pid`.
    pub fn add(&mut self, pid: u32) {
        self.0.push(pid);
        undo().pids.push(pid);
    }
}

impl Drop for RuntimeDirs {
    fn drop(&mut self) {
        undo().pids.retain(|p| !self.0.contains(p));
        for &pid in &self.0 {
            remove_eal_runtime_dir(pid);
        }
    }
}

/// The load generator's device: the client end of the daemon's memif on
/// `socket`, as DPDK device `net_memif1` (`net_memif0` is the ceiling's
/// sender in the same process), MAC 02:00:00:00:00:0c. The client end of
/// a memif allocates the shared rings: 2^14 slots each way (`rsize=14`,
/// the most memif allows), so that a burst of the daemon's closes waits in
/// the ring while the generator's thread is off its CPU. memif copies
/// frames out of the ring into mbufs that the engine frees at once, so the
/// default mempool suffices.
#[cfg(feature = "dpdk")]
pub fn loadgen_device(socket: &std::path::Path) -> lingerd_dataplane::port::dpdk::DpdkConfig {
    lingerd_dataplane::port::dpdk::DpdkConfig::new(&format!(
        "net_memif1,role=client,socket={},socket-abstract=no,rsize=14,mac=02:00:00:00:00:0c",
        socket.display()
    ))
}
