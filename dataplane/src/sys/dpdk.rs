//! DPDK behind safe types: the process-wide EAL, ethdev devices and their
//! queues, mempools, and owned [`Mbuf`] tokens.
//!
//! The FFI comes from bindgen over the system's libdpdk headers (allowlist
//! in `build.rs`) plus `dataplane/dpdk/shim.c`, which gives the
//! static-inline fast path (bursts, mbuf fields) callable symbols.
//!
//! Ownership rules, turned into types here:
//! - An [`Mbuf`] is a token for one mbuf that user space owns right now:
//!   neither `Clone` nor `Copy`, freed to its mempool when dropped, consumed
//!   by [`EthQueue::tx_submit`]. A frame handed to the PMD by `tx_burst` is
//!   the PMD's (its token is forgotten, not dropped); frames it did not take
//!   stay queued as tokens. Safe code can therefore neither reuse nor leak an
//!   mbuf, nor free one twice.
//! - The EAL ([`Eal`]) is initialised once per process ([`Eal::init`]) and
//!   shut down once ([`Eal::shutdown`]), which refuses while a device is open,
//!   a thread is registered or any mbuf is still held by a token: memory an
//!   mbuf points into is never released under it. After the shutdown nothing
//!   here can be used again (22.11 cannot initialise EAL twice).
//! - An [`EthDevice`] is stopped, closed (which removes a memif server's
//!   socket file), removed from the vdev bus if we probed it, and its
//!   mempools freed (or kept until shutdown if a token still holds one of
//!   their mbufs) when its last [`EthQueue`] goes.
//!
//! It owns DPDK's global state, devices, pools and mbufs; it knows nothing
//! of frames' contents, engines or loops (`port::dpdk` does).

use std::ffi::{CStr, CString, c_char, c_int};
use std::fmt;
use std::path::PathBuf;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};

/// The bindgen output and the shim's declarations (generated code: the
/// house lints on unsafe blocks apply to the callers below, not here).
#[allow(
    non_camel_case_types,
    non_snake_case,
    non_upper_case_globals,
    dead_code,
    unreachable_pub,
    missing_docs,
    clippy::all,
    clippy::pedantic,
    clippy::undocumented_unsafe_blocks,
    clippy::multiple_unsafe_ops_per_block
)]
mod ffi {
    include!(concat!(env!("OUT_DIR"), "/dpdk.rs"));
}

use ffi::{rte_mbuf, rte_mempool};

/// Whether this build can drive PCI devices: a shared build
/// (`LINGERD_DPDK_SHARED=1`) loads every driver DPDK ships, PCI bus
/// included; the static build links only the vdev bus and its drivers
/// (memif, ring, null, tap, af_packet).
pub const PCI_BUS: bool = !cfg!(lingerd_dpdk_static);

/// Data room of every mbuf we create: `RTE_MBUF_DEFAULT_BUF_SIZE` (2,048
/// bytes of data after 128 of headroom), which a 1,514-byte frame fits.
pub fn mbuf_buf_size() -> u16 {
    // SAFETY: returns a compile-time constant; no memory is touched.
    unsafe { ffi::lingerd_mbuf_default_buf_size() }
}

/// Why a DPDK call failed.
#[derive(Debug, thiserror::Error)]
pub enum DpdkError {
    /// `rte_eal_init` failed.
    #[error("DPDK EAL initialisation failed: {0}")]
    EalInit(String),
    /// The EAL was already initialised with other arguments.
    #[error("the DPDK EAL runs with {running:?}; cannot start it again with {wanted:?}")]
    EalArgs {
        /// The arguments it runs with.
        running: Vec<String>,
        /// The ones asked for now.
        wanted: Vec<String>,
    },
    /// The EAL was shut down; 22.11 cannot start it again in this process.
    #[error("the DPDK EAL was shut down in this process and cannot start again")]
    EalGone,
    /// [`Eal::shutdown`] found something still in use.
    #[error("cannot shut DPDK down yet: {0}")]
    Busy(String),
    /// A setting DPDK would reject or we cannot pass.
    #[error("bad DPDK setting: {0}")]
    Config(String),
    /// A DPDK call failed.
    #[error("{what}: {reason}")]
    Call {
        /// The step.
        what: String,
        /// `rte_strerror` of the code.
        reason: String,
    },
}

/// `rte_strerror(code)` (positive errno or rte_errno value).
fn strerror(code: c_int) -> String {
    let code = code.checked_abs().unwrap_or(c_int::MAX);
    // SAFETY: rte_strerror returns a pointer to a static or thread-local
    // NUL-terminated string for any code; it is copied before the next call.
    let s = unsafe { ffi::rte_strerror(code) };
    if s.is_null() {
        return format!("error {code}");
    }
    // SAFETY: non-null, NUL-terminated (see above), read once right here.
    unsafe { CStr::from_ptr(s) }.to_string_lossy().into_owned()
}

/// The calling thread's `rte_errno`.
fn rte_errno() -> c_int {
    // SAFETY: reads a thread-local integer.
    unsafe { ffi::lingerd_errno() }
}

fn call_err(what: impl Into<String>, code: c_int) -> DpdkError {
    DpdkError::Call {
        what: what.into(),
        reason: strerror(code),
    }
}

/// How EAL gets its memory.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EalMemory {
    /// Hugepages when some are free and hugetlbfs is mounted, else
    /// `NoHuge` with 256 MiB.
    Auto,
    /// `--no-huge -m <megabytes> --no-shconf`: ordinary pages (tests, CI,
    /// non-root). memif then runs in copy mode, which it does anyway.
    NoHuge {
        /// The memory EAL reserves.
        megabytes: u32,
    },
    /// `--in-memory` on the mounted hugepages (no files left in hugetlbfs).
    Hugepages,
}

/// The EAL's command line, which lingerd builds itself.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EalConfig {
    /// `--file-prefix`: names the runtime directory
    /// (`/var/run/dpdk/<prefix>` as root), removed at shutdown.
    pub file_prefix: String,
    /// Hugepages or not.
    pub memory: EalMemory,
    /// Scan the PCI bus (a NIC is named with `-a` in `extra`); `false`
    /// (the default) passes `--no-pci`, so nothing probes the host's own
    /// PCI devices. A static build has no PCI bus ([`PCI_BUS`]).
    pub pci: bool,
    /// More EAL arguments, appended last (so they override ours), e.g.
    /// `--log-level=info` or `--vdev=...`.
    pub extra: Vec<String>,
}

impl Default for EalConfig {
    fn default() -> Self {
        EalConfig {
            file_prefix: format!("lingerd-{}", std::process::id()),
            memory: EalMemory::Auto,
            pci: false,
            extra: Vec::new(),
        }
    }
}

/// Free 2 MiB hugepages and a hugetlbfs mount exist.
fn hugepages_usable() -> bool {
    let free = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines()
                .find_map(|l| l.strip_prefix("HugePages_Free:"))
                .and_then(|v| v.trim().parse::<u64>().ok())
        })
        .unwrap_or(0);
    let mounted = std::fs::read_to_string("/proc/mounts")
        .is_ok_and(|m| m.lines().any(|l| l.split(' ').nth(2) == Some("hugetlbfs")));
    free > 0 && mounted
}

/// The CPUs this process may run on, as `/proc/self/status` lists them
/// (`0-1`, `0,2-3`).
fn allowed_cpus() -> Option<String> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let list = status
        .lines()
        .find_map(|l| l.strip_prefix("Cpus_allowed_list:"))?
        .trim()
        .to_owned();
    (!list.is_empty()
        && list
            .chars()
            .all(|c| c.is_ascii_digit() || c == '-' || c == ','))
    .then_some(list)
}

impl EalConfig {
    /// The whole argv given to `rte_eal_init`.
    ///
    /// `--no-pci` (unless [`EalConfig::pci`]: nothing probes the host's own
    /// devices), `--no-telemetry`, one lcore (the initialising thread) that
    /// may float over every CPU the process may use (EAL would otherwise pin
    /// that thread to CPU 0), warnings only in the log, then the memory mode
    /// and `extra`.
    pub fn args(&self) -> Vec<String> {
        let mut args = vec!["lingerd".to_owned()];
        if !self.pci {
            args.push("--no-pci".to_owned());
        }
        args.extend([
            "--no-telemetry".to_owned(),
            format!("--file-prefix={}", self.file_prefix),
            "--log-level=warning".to_owned(),
        ]);
        if let Some(cpus) = allowed_cpus() {
            args.push(format!("--lcores=0@({cpus})"));
        }
        let memory = match self.memory {
            EalMemory::Auto if hugepages_usable() => EalMemory::Hugepages,
            EalMemory::Auto => EalMemory::NoHuge { megabytes: 256 },
            ref m => m.clone(),
        };
        match memory {
            EalMemory::NoHuge { megabytes } => {
                args.extend([
                    "--no-huge".to_owned(),
                    "-m".to_owned(),
                    megabytes.to_string(),
                    "--no-shconf".to_owned(),
                ]);
            }
            _ => args.push("--in-memory".to_owned()),
        }
        args.extend(self.extra.iter().cloned());
        args
    }
}

/// A mempool pointer kept until shutdown because tokens still held mbufs
/// of it when its device closed.
struct KeptPool(NonNull<rte_mempool>);

// SAFETY: a mempool is a process-wide object whose operations are
// thread-safe (the default "ring_mp_mc" ops); the pointer is only read for
// `rte_mempool_in_use_count` and freed once, under the state lock.
unsafe impl Send for KeptPool {}

/// What the EAL has open, guarded by one lock.
struct EalState {
    running: bool,
    devices: usize,
    threads: usize,
    kept_pools: Vec<KeptPool>,
}

/// The process-wide DPDK environment (one per process).
pub struct Eal {
    args: Vec<String>,
    runtime_dir: PathBuf,
    state: Mutex<EalState>,
}

impl fmt::Debug for Eal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Eal")
            .field("args", &self.args)
            .field("runtime_dir", &self.runtime_dir)
            .finish_non_exhaustive()
    }
}

static EAL: OnceLock<Result<Eal, String>> = OnceLock::new();

/// Removes the runtime directory at process exit if [`Eal::shutdown`] did
/// not run (a test that panicked, an early `exit`): files only, DPDK's
/// memory is not touched.
extern "C" fn remove_runtime_dir_at_exit() {
    if let Some(Ok(eal)) = EAL.get() {
        eal.remove_runtime_dir();
    }
}

impl Eal {
    /// Initialises the EAL with `cfg` the first time; later calls return
    /// the same EAL when their arguments are the same, an error otherwise.
    /// The calling thread becomes lcore 0.
    pub fn init(cfg: &EalConfig) -> Result<&'static Eal, DpdkError> {
        let wanted = cfg.args();
        let eal = EAL.get_or_init(|| Eal::start(&wanted));
        let eal = eal.as_ref().map_err(|e| DpdkError::EalInit(e.clone()))?;
        if eal.args != wanted {
            return Err(DpdkError::EalArgs {
                running: eal.args.clone(),
                wanted,
            });
        }
        if !eal.lock().running {
            return Err(DpdkError::EalGone);
        }
        Ok(eal)
    }

    /// The EAL, when [`Eal::init`] succeeded and it is still running.
    pub fn get() -> Option<&'static Eal> {
        let eal = EAL.get()?.as_ref().ok()?;
        eal.lock().running.then_some(eal)
    }

    fn start(args: &[String]) -> Result<Eal, String> {
        let owned: Vec<CString> = args
            .iter()
            .map(|a| CString::new(a.as_str()).map_err(|_| format!("NUL byte in {a:?}")))
            .collect::<Result<_, _>>()?;
        // EAL may keep pointers into argv and permutes it: both the strings
        // and the array live for the rest of the process.
        let strings: &'static mut [CString] = Box::leak(owned.into_boxed_slice());
        let argv: &'static mut [*mut c_char] = Box::leak(
            strings
                .iter_mut()
                .map(|s| s.as_ptr().cast_mut())
                .collect::<Vec<_>>()
                .into_boxed_slice(),
        );
        let argc = c_int::try_from(argv.len()).map_err(|_| "too many EAL arguments".to_owned())?;
        // SAFETY: argc matches argv's length; every entry points to a
        // NUL-terminated string that lives (leaked) for the whole process,
        // as EAL may keep them; `get_or_init` runs this at most once.
        let rc = unsafe { ffi::rte_eal_init(argc, argv.as_mut_ptr()) };
        if rc < 0 {
            return Err(format!("{} (arguments {args:?})", strerror(rte_errno())));
        }
        // SAFETY: after a successful init this returns a pointer to EAL's
        // own NUL-terminated path, copied at once.
        let dir = unsafe { ffi::rte_eal_get_runtime_dir() };
        let runtime_dir = if dir.is_null() {
            PathBuf::new()
        } else {
            // SAFETY: non-null and NUL-terminated (see above).
            PathBuf::from(
                unsafe { CStr::from_ptr(dir) }
                    .to_string_lossy()
                    .into_owned(),
            )
        };
        // SAFETY: registers a plain `extern "C" fn()` with no arguments that
        // only touches the filesystem and a `OnceLock` already set by then.
        let _ = unsafe { libc::atexit(remove_runtime_dir_at_exit) };
        Ok(Eal {
            args: args.to_vec(),
            runtime_dir,
            state: Mutex::new(EalState {
                running: true,
                devices: 0,
                threads: 0,
                kept_pools: Vec::new(),
            }),
        })
    }

    fn lock(&self) -> MutexGuard<'_, EalState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The EAL's arguments.
    pub fn args(&self) -> &[String] {
        &self.args
    }

    /// `/var/run/dpdk/<prefix>` (or the non-root equivalent).
    pub fn runtime_dir(&self) -> &std::path::Path {
        &self.runtime_dir
    }

    fn remove_runtime_dir(&self) {
        if self.runtime_dir.as_os_str().is_empty() {
            return;
        }
        let _ = std::fs::remove_dir_all(&self.runtime_dir);
        // The shared parent (`/var/run/dpdk`) goes only when empty.
        if let Some(parent) = self.runtime_dir.parent() {
            let _ = std::fs::remove_dir(parent);
        }
    }

    /// Gives the calling thread an lcore id (`rte_thread_register`), so that
    /// it gets mempool caches; released when the guard drops, on this
    /// thread. A thread that already has one (lcore 0, the initialiser)
    /// gets a guard that releases nothing.
    pub fn register_thread(&'static self) -> Result<LcoreGuard, DpdkError> {
        let mut state = self.lock();
        if !state.running {
            return Err(DpdkError::EalGone);
        }
        let lcore = current_lcore();
        if lcore.is_some() {
            return Ok(LcoreGuard {
                eal: self,
                lcore,
                registered: false,
                _thread: std::marker::PhantomData,
            });
        }
        // SAFETY: the EAL is initialised and running (checked under the
        // lock, which shutdown takes too); registering the current thread
        // has no other precondition.
        let rc = unsafe { ffi::rte_thread_register() };
        if rc < 0 {
            return Err(call_err("rte_thread_register", rte_errno()));
        }
        state.threads += 1;
        Ok(LcoreGuard {
            eal: self,
            lcore: current_lcore(),
            registered: true,
            _thread: std::marker::PhantomData,
        })
    }

    /// Stops DPDK for good: frees the kept mempools, runs
    /// `rte_eal_cleanup` and removes the runtime directory. Refuses (and
    /// changes nothing) while a device is open, a thread is registered or a
    /// token still holds an mbuf. Calling it again is a no-op.
    pub fn shutdown(&self) -> Result<(), DpdkError> {
        let mut state = self.lock();
        if !state.running {
            return Ok(());
        }
        if state.devices > 0 {
            return Err(DpdkError::Busy(format!(
                "{} device(s) still open",
                state.devices
            )));
        }
        if state.threads > 0 {
            return Err(DpdkError::Busy(format!(
                "{} thread(s) still registered",
                state.threads
            )));
        }
        let held: u32 = state
            .kept_pools
            .iter()
            // SAFETY: a kept pool is still allocated (freed only below).
            .map(|p| unsafe { ffi::rte_mempool_in_use_count(p.0.as_ptr()) })
            .sum();
        if held > 0 {
            return Err(DpdkError::Busy(format!("{held} mbuf(s) still held")));
        }
        for pool in state.kept_pools.drain(..) {
            // SAFETY: no mbuf of the pool is in use (checked above), no
            // device uses it (all closed), and it is freed exactly once.
            unsafe { ffi::rte_mempool_free(pool.0.as_ptr()) };
        }
        // SAFETY: no device is open, no thread registered and no mbuf held
        // (all checked under the lock, which every user of EAL objects takes
        // first), so nothing can touch EAL memory after this; `running`
        // turns false below, so it runs once.
        let rc = unsafe { ffi::rte_eal_cleanup() };
        state.running = false;
        self.remove_runtime_dir();
        if rc < 0 {
            return Err(call_err("rte_eal_cleanup", -rc));
        }
        Ok(())
    }
}

/// The calling thread's lcore id, `None` for a thread EAL does not know.
pub fn current_lcore() -> Option<u32> {
    // SAFETY: reads a thread-local integer.
    let id = unsafe { ffi::lingerd_lcore_id() };
    (id != ffi::LCORE_ID_ANY).then_some(id)
}

/// A thread's lcore registration; see [`Eal::register_thread`]. Not `Send`:
/// it must be dropped on the thread it registered.
#[derive(Debug)]
pub struct LcoreGuard {
    eal: &'static Eal,
    lcore: Option<u32>,
    registered: bool,
    _thread: std::marker::PhantomData<*const ()>,
}

impl LcoreGuard {
    /// The lcore id the thread has.
    pub fn lcore(&self) -> Option<u32> {
        self.lcore
    }
}

impl Drop for LcoreGuard {
    fn drop(&mut self) {
        if !self.registered {
            return;
        }
        let mut state = self.eal.lock();
        // SAFETY: this thread was registered by `register_thread` (the guard
        // is not Send, so this is that thread), and shutdown cannot have run
        // while the registration was counted.
        unsafe { ffi::rte_thread_unregister() };
        state.threads -= 1;
    }
}

/// One mbuf that user space owns (see the module documentation).
#[repr(transparent)]
#[derive(Debug)]
#[must_use = "a dropped Mbuf goes back to its mempool"]
pub struct Mbuf {
    ptr: NonNull<rte_mbuf>,
}

// SAFETY: the token is the only reference to its mbuf; freeing it (drop)
// is thread-safe with the mempool ops we create ("ring_mp_mc"), and a
// thread without an lcore id simply bypasses the per-lcore cache.
unsafe impl Send for Mbuf {}

impl Mbuf {
    /// Bytes of the first (for our mbufs, only) segment.
    pub fn data(&self) -> &[u8] {
        // SAFETY: the token owns the mbuf, so nothing writes it meanwhile
        // (the borrow of `self` prevents `write`); mtod and data_len describe
        // bytes inside its data room, initialised (written by the PMD or by
        // us; mempool memory starts zeroed).
        let ptr = unsafe { ffi::lingerd_mbuf_data(self.ptr.as_ptr()) };
        // SAFETY: reads a field of the owned mbuf.
        let len = unsafe { ffi::lingerd_mbuf_data_len(self.ptr.as_ptr()) };
        if ptr.is_null() {
            return &[];
        }
        // SAFETY: as above: `len` bytes from `ptr` lie in the owned mbuf's
        // data room and live as long as the token is borrowed.
        unsafe { std::slice::from_raw_parts(ptr, usize::from(len)) }
    }

    /// Length of the first segment.
    pub fn len(&self) -> usize {
        self.data().len()
    }

    /// Whether the first segment is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Segments in the chain (1 for everything this port sends; a PMD
    /// could hand a chained frame to RX, which the port drops).
    pub fn segments(&self) -> u16 {
        // SAFETY: reads a field of the owned mbuf.
        unsafe { ffi::lingerd_mbuf_nb_segs(self.ptr.as_ptr()) }
    }

    /// Lets `fill` write a frame at the start of the data area (data already
    /// there plus the tailroom) and sets the mbuf's length to what it
    /// returns, clamped to the area; `None` leaves the length at 0. Returns
    /// the length. A chained mbuf is not written (length unchanged, 0).
    pub fn write(&mut self, fill: impl FnOnce(&mut [u8]) -> Option<usize>) -> usize {
        if self.segments() != 1 {
            return 0;
        }
        let m = self.ptr.as_ptr();
        // SAFETY: computes the data pointer of the owned mbuf.
        let ptr = unsafe { ffi::lingerd_mbuf_data(m) };
        // SAFETY: reads a field of the owned mbuf.
        let len = unsafe { ffi::lingerd_mbuf_data_len(m) };
        // SAFETY: reads fields of the owned mbuf.
        let tail = unsafe { ffi::lingerd_mbuf_tailroom(m) };
        let cap = usize::from(len) + usize::from(tail);
        if ptr.is_null() {
            return 0;
        }
        // SAFETY: data_len + tailroom bytes from mtod end at the end of this
        // mbuf's buffer, which the token owns exclusively (`&mut self`);
        // the bytes are initialised (mempool memory starts zeroed).
        let area = unsafe { std::slice::from_raw_parts_mut(ptr, cap) };
        let len = fill(area).unwrap_or(0).min(cap);
        let len16 = u16::try_from(len).unwrap_or(u16::MAX);
        // SAFETY: a single-segment owned mbuf; len16 <= data_len + tailroom,
        // the room its buffer has from the data offset.
        unsafe { ffi::lingerd_mbuf_set_len(m, len16) };
        usize::from(len16)
    }
}

impl Drop for Mbuf {
    fn drop(&mut self) {
        // SAFETY: the token owns the mbuf and is dropped once; its mempool
        // outlives it (a device frees its pools only when none of their
        // mbufs is in use, and EAL shutdown refuses while one is).
        unsafe { ffi::lingerd_pktmbuf_free(self.ptr.as_ptr()) }
    }
}

/// Frees every token in `mbufs` in one call, leaving it empty.
fn free_bulk(mbufs: &mut Vec<Mbuf>) {
    if mbufs.is_empty() {
        return;
    }
    let n = u32::try_from(mbufs.len()).unwrap_or(u32::MAX);
    // SAFETY: `Mbuf` is repr(transparent) over a non-null `*mut rte_mbuf`,
    // so the vector is an array of `n` owned mbuf pointers; each is freed
    // here once, and its token is forgotten right below, never dropped.
    unsafe { ffi::lingerd_pktmbuf_free_bulk(mbufs.as_mut_ptr().cast::<*mut rte_mbuf>(), n) };
    for m in mbufs.drain(..) {
        std::mem::forget(m);
    }
}

/// How to open a device.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeviceConfig {
    /// Device arguments: a vdev with its options
    /// (`net_memif0,role=server,socket=/run/x.sock,socket-abstract=no`) or
    /// the name of a device EAL already probed.
    pub devargs: String,
    /// RX/TX queue pairs (one per core); RSS spreads flows over them where
    /// the driver supports it.
    pub queues: u16,
    /// RX descriptors per queue.
    pub rx_ring: u16,
    /// TX descriptors per queue.
    pub tx_ring: u16,
    /// Mbufs per queue's mempool.
    pub mbufs: u32,
    /// Per-lcore cache of each mempool (0 = none).
    pub mempool_cache: u32,
}

/// What the device is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeviceInfo {
    /// ethdev name (`net_memif0`).
    pub name: String,
    /// ethdev port id.
    pub port_id: u16,
    /// Driver name (`net_memif`).
    pub driver: String,
    /// The device's MAC address.
    pub mac: [u8; 6],
    /// Queue pairs configured.
    pub queues: u16,
    /// RSS configured (several queues and a driver that hashes TCP/IPv4).
    pub rss: bool,
    /// The largest frame the device receives.
    pub max_rx_pktlen: u32,
}

/// ethdev statistics (`rte_eth_stats`) of a device and of one queue.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EthStats {
    /// Frames received by the device.
    pub ipackets: u64,
    /// Frames sent by the device.
    pub opackets: u64,
    /// Bytes received.
    pub ibytes: u64,
    /// Bytes sent.
    pub obytes: u64,
    /// Frames dropped by the device for lack of room in an RX queue.
    pub imissed: u64,
    /// Receive errors.
    pub ierrors: u64,
    /// Send errors.
    pub oerrors: u64,
    /// RX mbuf allocation failures.
    pub rx_nombuf: u64,
    /// Frames received on this queue (where the driver counts per queue).
    pub queue_ipackets: u64,
    /// Frames sent on this queue (likewise).
    pub queue_opackets: u64,
}

/// How long a memif device whose peer went away is left alone before it
/// is closed (see `EthDevice`'s `Drop`).
const MEMIF_SETTLE: std::time::Duration = std::time::Duration::from_millis(50);

static NEXT_POOL: AtomicU64 = AtomicU64::new(0);

/// One ethdev, configured and started; shared by its queues.
#[derive(Debug)]
pub struct EthDevice {
    eal: &'static Eal,
    info: DeviceInfo,
    /// We probed it with `rte_dev_probe` (so we remove it after close).
    probed: bool,
    configured: bool,
    started: bool,
    pools: Vec<NonNull<rte_mempool>>,
}

// SAFETY: the device's state is only changed in `open` (before it is
// shared) and `drop` (after the last queue is gone); the pool pointers are
// process-wide objects whose alloc/free operations are thread-safe.
unsafe impl Send for EthDevice {}
// SAFETY: as above: shared access only reads the plain fields or calls
// ethdev functions that are safe to call concurrently (stats, link).
unsafe impl Sync for EthDevice {}

impl EthDevice {
    /// Probes (or finds) the device, configures `cfg.queues` queue pairs,
    /// each with its own mempool, starts it, and returns one [`EthQueue`]
    /// per queue.
    pub fn open(eal: &'static Eal, cfg: &DeviceConfig) -> Result<Vec<EthQueue>, DpdkError> {
        let mut state = eal.lock();
        if !state.running {
            return Err(DpdkError::EalGone);
        }
        if cfg.queues == 0 || cfg.rx_ring == 0 || cfg.tx_ring == 0 || cfg.mbufs == 0 {
            return Err(DpdkError::Config(
                "queues, rx_ring, tx_ring and mbufs must be at least 1".into(),
            ));
        }
        // rte_mempool_create's own limits, said clearly instead of EINVAL.
        if cfg.mempool_cache > 512 || u64::from(cfg.mempool_cache) * 3 > u64::from(cfg.mbufs) * 2 {
            return Err(DpdkError::Config(format!(
                "a mempool cache of {} needs at most 512 and 1.5 x cache <= mbufs ({})",
                cfg.mempool_cache, cfg.mbufs
            )));
        }
        let name = cfg
            .devargs
            .split(',')
            .next()
            .unwrap_or("")
            .trim()
            .to_owned();
        if name.is_empty() || name.len() >= ffi::RTE_ETH_NAME_MAX_LEN as usize {
            return Err(DpdkError::Config(format!(
                "device {:?}: no name, or a name too long",
                cfg.devargs
            )));
        }
        let c_name = CString::new(name.as_str())
            .map_err(|_| DpdkError::Config(format!("NUL byte in {name:?}")))?;
        let mut port_id = 0u16;
        // SAFETY: a NUL-terminated name and a valid out-pointer.
        let found = unsafe { ffi::rte_eth_dev_get_port_by_name(c_name.as_ptr(), &mut port_id) };
        let probed = found != 0;
        if probed {
            let c_args = CString::new(cfg.devargs.as_str())
                .map_err(|_| DpdkError::Config(format!("NUL byte in {:?}", cfg.devargs)))?;
            // SAFETY: EAL is running (checked under the lock); the argument
            // is a NUL-terminated string DPDK copies.
            let rc = unsafe { ffi::rte_dev_probe(c_args.as_ptr()) };
            if rc < 0 {
                return Err(call_err(format!("probing {}", cfg.devargs), -rc));
            }
            // SAFETY: as above.
            let rc = unsafe { ffi::rte_eth_dev_get_port_by_name(c_name.as_ptr(), &mut port_id) };
            if rc != 0 {
                return Err(call_err(format!("finding {name} after probing it"), -rc));
            }
        }
        state.devices += 1;
        drop(state);
        let mut dev = EthDevice {
            eal,
            info: DeviceInfo {
                name: name.clone(),
                port_id,
                driver: String::new(),
                mac: [0; 6],
                queues: cfg.queues,
                rss: false,
                max_rx_pktlen: 0,
            },
            probed,
            configured: false,
            started: false,
            pools: Vec::new(),
        };
        // From here `dev`'s Drop undoes whatever was done on an error.
        dev.configure(cfg)?;
        let dev = Arc::new(dev);
        Ok((0..cfg.queues)
            .zip(dev.pools.clone())
            .map(|(queue, pool)| EthQueue {
                dev: Arc::clone(&dev),
                queue,
                pool,
                scratch: Vec::with_capacity(usize::from(cfg.rx_ring.max(cfg.tx_ring))),
                pending: Vec::with_capacity(usize::from(cfg.tx_ring)),
                max_pending: usize::from(cfg.tx_ring),
            })
            .collect())
    }

    fn configure(&mut self, cfg: &DeviceConfig) -> Result<(), DpdkError> {
        let port = self.info.port_id;
        let mut dev_info = ffi::rte_eth_dev_info::default();
        // SAFETY: a valid port id and out-pointer.
        let rc = unsafe { ffi::rte_eth_dev_info_get(port, &mut dev_info) };
        if rc != 0 {
            return Err(call_err("rte_eth_dev_info_get", -rc));
        }
        if !dev_info.driver_name.is_null() {
            // SAFETY: the driver's static NUL-terminated name.
            self.info.driver = unsafe { CStr::from_ptr(dev_info.driver_name) }
                .to_string_lossy()
                .into_owned();
        }
        self.info.max_rx_pktlen = dev_info.max_rx_pktlen;
        if cfg.queues > dev_info.max_rx_queues || cfg.queues > dev_info.max_tx_queues {
            return Err(DpdkError::Config(format!(
                "{} has at most {} RX and {} TX queues, {} asked",
                self.info.name, dev_info.max_rx_queues, dev_info.max_tx_queues, cfg.queues
            )));
        }
        let mut conf = ffi::rte_eth_conf::default();
        // SAFETY: returns a constant.
        let want_hash = unsafe { ffi::lingerd_rss_ip_tcp() };
        let hash = dev_info.flow_type_rss_offloads & want_hash;
        if cfg.queues > 1 && hash != 0 {
            conf.rxmode.mq_mode = ffi::rte_eth_rx_mq_mode_RTE_ETH_MQ_RX_RSS;
            conf.rx_adv_conf.rss_conf.rss_hf = hash;
            self.info.rss = true;
        }
        // SAFETY: a valid port and a fully initialised configuration that
        // DPDK copies.
        let rc = unsafe { ffi::rte_eth_dev_configure(port, cfg.queues, cfg.queues, &conf) };
        if rc != 0 {
            return Err(call_err(format!("configuring {}", self.info.name), -rc));
        }
        self.configured = true;
        // SAFETY: a valid port id.
        let socket = unsafe { ffi::rte_eth_dev_socket_id(port) };
        let socket = if socket < 0 {
            ffi::SOCKET_ID_ANY
        } else {
            socket
        };
        for queue in 0..cfg.queues {
            let pool_name = format!(
                "ld{}_{}",
                std::process::id() % 100_000,
                NEXT_POOL.fetch_add(1, Ordering::Relaxed)
            );
            let c_pool = CString::new(pool_name).map_err(|_| DpdkError::Config("pool".into()))?;
            // SAFETY: EAL is running (this device is counted, so shutdown
            // refuses); the name is NUL-terminated and copied by DPDK.
            let pool = unsafe {
                ffi::rte_pktmbuf_pool_create(
                    c_pool.as_ptr(),
                    cfg.mbufs,
                    cfg.mempool_cache,
                    0,
                    mbuf_buf_size(),
                    socket,
                )
            };
            let pool = NonNull::new(pool).ok_or_else(|| {
                call_err(
                    format!("creating a pool of {} mbufs", cfg.mbufs),
                    rte_errno(),
                )
            })?;
            self.pools.push(pool);
            // SAFETY: a configured port, a queue below the configured count,
            // default queue settings (null) and a live mempool that outlives
            // the queue (freed only after close).
            let rc = unsafe {
                ffi::rte_eth_rx_queue_setup(
                    port,
                    queue,
                    cfg.rx_ring,
                    socket as u32,
                    std::ptr::null(),
                    pool.as_ptr(),
                )
            };
            if rc != 0 {
                return Err(call_err(format!("setting up RX queue {queue}"), -rc));
            }
            // SAFETY: as above, for TX (no mempool).
            let rc = unsafe {
                ffi::rte_eth_tx_queue_setup(
                    port,
                    queue,
                    cfg.tx_ring,
                    socket as u32,
                    std::ptr::null(),
                )
            };
            if rc != 0 {
                return Err(call_err(format!("setting up TX queue {queue}"), -rc));
            }
        }
        // SAFETY: a configured port with all its queues set up.
        let rc = unsafe { ffi::rte_eth_dev_start(port) };
        if rc != 0 {
            return Err(call_err(format!("starting {}", self.info.name), -rc));
        }
        self.started = true;
        let mut mac = ffi::rte_ether_addr::default();
        // SAFETY: a valid port and out-pointer.
        let rc = unsafe { ffi::rte_eth_macaddr_get(port, &mut mac) };
        if rc != 0 {
            return Err(call_err("rte_eth_macaddr_get", -rc));
        }
        self.info.mac = mac.addr_bytes;
        Ok(())
    }

    /// What the device is.
    pub fn info(&self) -> &DeviceInfo {
        &self.info
    }

    /// Whether the link is up (for memif: the peer is connected).
    pub fn link_up(&self) -> bool {
        let mut link = ffi::rte_eth_link::default();
        // SAFETY: a started port and a valid out-pointer.
        let rc = unsafe { ffi::rte_eth_link_get_nowait(self.info.port_id, &mut link) };
        rc == 0 && link.link_status() != 0
    }

    /// The device's statistics, with `queue`'s own counters.
    pub fn stats(&self, queue: u16) -> Result<EthStats, DpdkError> {
        let mut s = ffi::rte_eth_stats::default();
        // SAFETY: a valid port and out-pointer.
        let rc = unsafe { ffi::rte_eth_stats_get(self.info.port_id, &mut s) };
        if rc != 0 {
            return Err(call_err("rte_eth_stats_get", -rc));
        }
        let q = usize::from(queue);
        Ok(EthStats {
            ipackets: s.ipackets,
            opackets: s.opackets,
            ibytes: s.ibytes,
            obytes: s.obytes,
            imissed: s.imissed,
            ierrors: s.ierrors,
            oerrors: s.oerrors,
            rx_nombuf: s.rx_nombuf,
            queue_ipackets: s.q_ipackets.get(q).copied().unwrap_or(0),
            queue_opackets: s.q_opackets.get(q).copied().unwrap_or(0),
        })
    }
}

impl Drop for EthDevice {
    fn drop(&mut self) {
        let port = self.info.port_id;
        if self.started && self.info.driver == "net_memif" && !self.link_up() {
            // 22.11's memif frees a device's regions both in close and, in
            // EAL's interrupt thread, when the peer disconnects, with no lock
            // between the two; the link reads down before the interrupt
            // thread is done. Let it finish before closing.
            std::thread::sleep(MEMIF_SETTLE);
        }
        let mut state = self.eal.lock();
        if self.started {
            // Frames still in RX queues (net_ring keeps them in its rings,
            // which close does not empty) go back to their pools: at most a
            // ring's worth per queue, in bounded bursts.
            let mut buf = [std::ptr::null_mut::<rte_mbuf>(); 64];
            for queue in 0..self.info.queues {
                for _ in 0..1_024 {
                    // SAFETY: a started port, a configured queue, and room
                    // for 64 pointers; no EthQueue exists any more, so no
                    // other thread polls this queue.
                    let n = unsafe { ffi::lingerd_rx_burst(port, queue, buf.as_mut_ptr(), 64) };
                    if n == 0 {
                        break;
                    }
                    // SAFETY: the first n entries are mbufs just received,
                    // owned here and freed once.
                    unsafe { ffi::lingerd_pktmbuf_free_bulk(buf.as_mut_ptr(), u32::from(n)) };
                }
            }
            // SAFETY: a started port no queue object uses any more.
            let _ = unsafe { ffi::rte_eth_dev_stop(port) };
        }
        if self.configured || self.probed {
            // SAFETY: a stopped port; close releases its queues (and a memif
            // server's socket file).
            let _ = unsafe { ffi::rte_eth_dev_close(port) };
        }
        if self.probed
            && let Ok(name) = CString::new(self.info.name.as_str())
        {
            // SAFETY: NUL-terminated bus and device names; the device is
            // closed, so its removal frees nothing still in use.
            let _ = unsafe { ffi::rte_eal_hotplug_remove(c"vdev".as_ptr(), name.as_ptr()) };
        }
        for pool in self.pools.drain(..) {
            // SAFETY: a live pool of this device, which no queue uses now.
            let in_use = unsafe { ffi::rte_mempool_in_use_count(pool.as_ptr()) };
            if in_use == 0 {
                // SAFETY: no mbuf of it is held anywhere, the device that
                // used it is closed, and it is freed once.
                unsafe { ffi::rte_mempool_free(pool.as_ptr()) };
            } else {
                state.kept_pools.push(KeptPool(pool));
            }
        }
        state.devices -= 1;
    }
}

/// One RX/TX queue pair of a started device, with its mempool.
#[derive(Debug)]
pub struct EthQueue {
    dev: Arc<EthDevice>,
    queue: u16,
    pool: NonNull<rte_mempool>,
    scratch: Vec<*mut rte_mbuf>,
    /// Submitted and not yet taken by the PMD, in order.
    pending: Vec<Mbuf>,
    max_pending: usize,
}

// SAFETY: the queue is used by one thread at a time (`&mut self` for every
// burst); the pool pointer is a process-wide object, and `scratch` only
// holds pointers between a burst and the tokens made from them.
unsafe impl Send for EthQueue {}

impl EthQueue {
    /// The device.
    pub fn device(&self) -> &EthDevice {
        &self.dev
    }

    /// The queue id.
    pub fn queue(&self) -> u16 {
        self.queue
    }

    /// Receives up to `max` frames, appending their tokens to `out`.
    /// Returns how many.
    pub fn rx_burst(&mut self, out: &mut Vec<Mbuf>, max: u16) -> usize {
        let max = usize::from(max).min(self.scratch.capacity()).max(1);
        self.scratch.clear();
        self.scratch.resize(max, std::ptr::null_mut());
        // SAFETY: a started port and configured queue that only this object
        // polls (`&mut self`), and room for `max` pointers.
        let n = unsafe {
            ffi::lingerd_rx_burst(
                self.dev.info.port_id,
                self.queue,
                self.scratch.as_mut_ptr(),
                max as u16,
            )
        };
        let n = usize::from(n).min(max);
        // Each received mbuf becomes exactly one token.
        out.extend(
            self.scratch[..n]
                .iter()
                .filter_map(|&p| NonNull::new(p))
                .map(|ptr| Mbuf { ptr }),
        );
        n
    }

    /// Frees received (or unused) tokens in one call, leaving `mbufs` empty.
    pub fn release(&mut self, mbufs: &mut Vec<Mbuf>) {
        free_bulk(mbufs);
    }

    /// An empty mbuf for TX, `None` when the mempool is empty or as many
    /// frames wait as the TX ring holds.
    pub fn tx_alloc(&mut self) -> Option<Mbuf> {
        if self.pending.len() >= self.max_pending {
            return None;
        }
        // SAFETY: a live mempool of this queue.
        let ptr = unsafe { ffi::lingerd_pktmbuf_alloc(self.pool.as_ptr()) };
        NonNull::new(ptr).map(|ptr| Mbuf { ptr })
    }

    /// Queues `mbuf` for transmission; it goes to the PMD at the next
    /// [`tx_flush`](Self::tx_flush).
    pub fn tx_submit(&mut self, mbuf: Mbuf) {
        self.pending.push(mbuf);
    }

    /// Frames submitted and not yet taken by the PMD.
    pub fn tx_pending(&self) -> usize {
        self.pending.len()
    }

    /// Hands queued frames to the PMD, at most `burst` per `tx_burst` call,
    /// until it takes no more. Those it does not take stay queued, in
    /// order. Returns how many it took.
    pub fn tx_flush(&mut self, burst: u16) -> usize {
        let burst = usize::from(burst.max(1));
        let mut taken = 0;
        while taken < self.pending.len() {
            let n = (self.pending.len() - taken).min(burst);
            let first = self.pending[taken..].as_mut_ptr().cast::<*mut rte_mbuf>();
            // SAFETY: `Mbuf` is repr(transparent) over a non-null mbuf
            // pointer, so `first` points to an array of at least `n` owned
            // mbufs; the PMD owns the first `k` it takes, whose tokens are
            // forgotten below (never dropped), and leaves the rest ours.
            let k = unsafe {
                ffi::lingerd_tx_burst(self.dev.info.port_id, self.queue, first, n as u16)
            };
            taken += usize::from(k).min(n);
            if usize::from(k) < n {
                break;
            }
        }
        for m in self.pending.drain(..taken) {
            std::mem::forget(m);
        }
        taken
    }

    /// Mbufs left in this queue's mempool (its caches included).
    pub fn pool_available(&self) -> u32 {
        // SAFETY: a live mempool of this queue.
        unsafe { ffi::rte_mempool_avail_count(self.pool.as_ptr()) }
    }

    /// The device's statistics with this queue's counters.
    pub fn stats(&self) -> Result<EthStats, DpdkError> {
        self.dev.stats(self.queue)
    }
}

impl Drop for EthQueue {
    fn drop(&mut self) {
        // Queued frames go back to the pool before the device may close.
        free_bulk(&mut self.pending);
    }
}
