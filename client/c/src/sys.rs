//! The C ABI of `liblingerd.so`, declared in `client/c/include/lingerd.h`.
//!
//! It owns only the translation between C and [`Client`]: opaque
//! `ld_client` pointers, out-parameters, and the thread-local last error
//! and last close outcome. It may not implement behaviour of its own; every
//! call is one [`Client`] method. It is the only place in the C library
//! allowed `unsafe` (C pointers).
//!
//! Conventions (Winsock's): a function returns 0 (or a count) on success
//! and -1 (`SOCKET_ERROR`) on failure, the reason then being
//! `ld_last_error()` (per thread, left unchanged by successes). NULL for
//! any pointer argument that is not documented as optional is `LD_EINVAL`,
//! never a crash. What C can get wrong and we cannot see — a dangling or
//! freed `ld_client`, a buffer shorter than its length — is undefined
//! behaviour, as with any C API; safe Rust code cannot reach any of it. An
//! `ld_client` is internally locked, so it may be shared by threads, but a
//! blocking call holds the lock for its duration: one client per thread is
//! the fast way.
#![allow(unsafe_code)]

use std::cell::Cell;
use std::ffi::{CStr, c_char, c_int, c_void};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::os::unix::ffi::OsStrExt;
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use lingerd_abi::Errno;
use lingerd_abi::entry::{MatchFilter, Outcome};
use lingerd_abi::layout::VERSION;
use lingerd_abi::vocab::Prefix;

use lingerd_abi::vocab::CloseMode;
use lingerd_client::Client;

/// `SOCKET_ERROR`.
const ERR: c_int = -1;

thread_local! {
    static LAST_ERROR: Cell<c_int> = const { Cell::new(0) };
    static LAST_OUTCOME: Cell<c_int> = const { Cell::new(0) };
}

/// The opaque `ld_client`.
#[derive(Debug)]
pub struct LdClient {
    inner: Mutex<Client>,
}

/// `struct ld_linger`: Winsock's `LINGER`.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct LdLinger {
    /// Non-zero: linger on.
    pub l_onoff: u16,
    /// Seconds.
    pub l_linger: u16,
}

/// `LD_AF_INET`: an IPv4 address in `addr[0..4]`, the rest zero.
pub const LD_AF_INET: u16 = 4;
/// `LD_AF_INET6`: an IPv6 address in all 16 bytes.
pub const LD_AF_INET6: u16 = 6;

/// `struct ld_peer`: an IPv4 or IPv6 peer.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct LdPeer {
    /// `LD_AF_INET` or `LD_AF_INET6`.
    pub family: u16,
    /// Port.
    pub port: u16,
    /// Address octets, most significant first (IPv4: the first four).
    pub addr: [u8; 16],
}

impl LdPeer {
    fn from_socket_addr(a: SocketAddr) -> LdPeer {
        let (family, octets) = match a.ip() {
            IpAddr::V4(v4) => {
                let mut o = [0u8; 16];
                o[..4].copy_from_slice(&v4.octets());
                (LD_AF_INET, o)
            }
            IpAddr::V6(v6) => (LD_AF_INET6, v6.octets()),
        };
        LdPeer {
            family,
            port: a.port(),
            addr: octets,
        }
    }

    fn to_socket_addr(self) -> Option<SocketAddr> {
        Some(SocketAddr::new(ip_of(self.family, self.addr)?, self.port))
    }
}

/// The address `family`/`addr` stand for; `None` for an unknown family
/// or an IPv4 address with non-zero bytes after its four octets.
fn ip_of(family: u16, addr: [u8; 16]) -> Option<IpAddr> {
    match family {
        LD_AF_INET if addr[4..].iter().all(|&b| b == 0) => Some(IpAddr::V4(Ipv4Addr::new(
            addr[0], addr[1], addr[2], addr[3],
        ))),
        LD_AF_INET6 => Some(IpAddr::V6(Ipv6Addr::from(addr))),
        _ => None,
    }
}

/// `struct ld_filter`: `close_matching`'s filter; `flags` says which
/// fields are set (`LD_MATCH_*`).
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct LdFilter {
    /// `LD_MATCH_LOCAL | LD_MATCH_REMOTE | LD_MATCH_LOCAL_PORT | LD_MATCH_REMOTE_PORT`.
    pub flags: u32,
    /// Local prefix family (`LD_AF_*`).
    pub local_family: u16,
    /// Remote prefix family (`LD_AF_*`).
    pub remote_family: u16,
    /// Local prefix address.
    pub local_addr: [u8; 16],
    /// Remote prefix address.
    pub remote_addr: [u8; 16],
    /// Local prefix length.
    pub local_len: u8,
    /// Remote prefix length.
    pub remote_len: u8,
    /// Local port.
    pub local_port: u16,
    /// Remote port.
    pub remote_port: u16,
    /// State set, 0 = any.
    pub states: u16,
    /// Minimum idle time, ms.
    pub min_idle_ms: u32,
}

fn fail(e: Errno) -> c_int {
    LAST_ERROR.with(|l| l.set(e as c_int));
    ERR
}

fn status(r: Result<(), Errno>) -> c_int {
    match r {
        Ok(()) => 0,
        Err(e) => fail(e),
    }
}

fn count(r: Result<u64, Errno>) -> i64 {
    match r {
        Ok(n) => i64::try_from(n).unwrap_or(i64::MAX),
        Err(e) => i64::from(fail(e)),
    }
}

/// Runs `f` on the client behind `c`, or EINVAL for NULL.
///
/// # Safety
/// `c` is NULL or a pointer `ld_attach` returned and `ld_detach` has not
/// freed.
unsafe fn with<T>(
    c: *const LdClient,
    f: impl FnOnce(&mut Client) -> Result<T, Errno>,
) -> Result<T, Errno> {
    // SAFETY: `c` is NULL (handled: `as_ref` gives `None`) or, by this
    // function's contract (lingerd.h's for C callers), a pointer `ld_attach` returned that
    // has not been passed to `ld_detach`: a live, aligned `LdClient` that
    // we only use through `&` (the mutex provides the `&mut`).
    let client = unsafe { c.as_ref() }.ok_or(Errno::Inval)?;
    let mut guard: MutexGuard<'_, Client> = client.inner.lock().unwrap_or_else(|p| p.into_inner());
    f(&mut guard)
}

/// Writes `v` through `out`, EINVAL for NULL.
///
/// # Safety
/// `out` is NULL or valid for writing a `T` (alignment not required).
unsafe fn put<T>(out: *mut T, v: T) -> Result<(), Errno> {
    if out.is_null() {
        return Err(Errno::Inval);
    }
    // SAFETY: non-NULL (checked); by this function's contract `out` points
    // to writable storage for a `T`. Unaligned writes are allowed, so a
    // misaligned pointer is not UB here.
    unsafe { out.write_unaligned(v) };
    Ok(())
}

/// Reads a `T` from `p`, EINVAL for NULL.
///
/// # Safety
/// `p` is NULL or valid for reading an initialised `T` (alignment not
/// required).
unsafe fn get<T>(p: *const T) -> Result<T, Errno> {
    if p.is_null() {
        return Err(Errno::Inval);
    }
    // SAFETY: non-NULL (checked); by this function's contract `p` points
    // to a readable, initialised `T` (plain integers: every bit pattern is
    // valid). Unaligned reads are allowed.
    Ok(unsafe { p.read_unaligned() })
}

fn timeout_of(ms: c_int, default: Duration) -> Duration {
    u64::try_from(ms).map_or(default, Duration::from_millis)
}

/// `ld_attach`: attaches to the daemon at `path`; NULL on failure.
///
/// # Safety
/// `path` is NULL or a NUL-terminated string valid for the call.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ld_attach(path: *const c_char) -> *mut LdClient {
    if path.is_null() {
        fail(Errno::Inval);
        return std::ptr::null_mut();
    }
    // SAFETY: non-NULL (checked); by this function's contract `path` is a
    // NUL-terminated string that stays valid during the call.
    let path = unsafe { CStr::from_ptr(path) };
    let path = std::ffi::OsStr::from_bytes(path.to_bytes());
    match Client::attach(path) {
        Ok(c) => Box::into_raw(Box::new(LdClient {
            inner: Mutex::new(c),
        })),
        Err(e) => {
            fail(e.errno());
            std::ptr::null_mut()
        }
    }
}

/// `ld_detach`: detaches (the daemon applies its exit policy to what is
/// left open) and frees `c`. NULL is ignored.
///
/// # Safety
/// `c` is NULL or a pointer `ld_attach` returned, not yet detached; it is
/// invalid afterwards.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ld_detach(c: *mut LdClient) {
    if c.is_null() {
        return;
    }
    // SAFETY: non-NULL (checked); by this function's contract `c` came from
    // `Box::into_raw` in `ld_attach` and is detached once, so we own it.
    drop(unsafe { Box::from_raw(c) });
}

// Every function below takes `c`, which must be NULL or a pointer
// `ld_attach` returned and `ld_detach` has not freed, and pointer
// arguments that must be NULL or valid for what their type says (a
// buffer: for its length). NULL is reported as LD_EINVAL. Each `# Safety`
// section says "The ffi contract" for this.

/// `ld_listen`: a listener through ring 0.
///
/// # Safety
/// The ffi contract; `out` valid for a `u64` write.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ld_listen(
    c: *const LdClient,
    port: u16,
    backlog: u32,
    out: *mut u64,
) -> c_int {
    // SAFETY: our caller's contract is ld_listen_on's.
    unsafe { ld_listen_on(c, 0, port, backlog, out) }
}

/// `ld_listen_on`: a listener through ring `ring`.
///
/// # Safety
/// The ffi contract; `out` valid for a `u64` write.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ld_listen_on(
    c: *const LdClient,
    ring: u32,
    port: u16,
    backlog: u32,
    out: *mut u64,
) -> c_int {
    if out.is_null() {
        return fail(Errno::Inval);
    }
    // SAFETY: `c` per the ffi contract.
    let r = unsafe { with(c, |c| c.listen_on(ring as usize, port, backlog)) };
    // SAFETY: `out` per the ffi contract.
    status(r.and_then(|h| unsafe { put(out, h) }))
}

/// `ld_accept`: waits up to `timeout_ms` (negative: the call timeout) for
/// a connection on `listener`; `peer` may be NULL.
///
/// # Safety
/// The ffi contract; `out` valid for a `u64` write, `peer` NULL or valid
/// for an `ld_peer` write.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ld_accept(
    c: *const LdClient,
    listener: u64,
    timeout_ms: c_int,
    out: *mut u64,
    peer: *mut LdPeer,
) -> c_int {
    if out.is_null() {
        return fail(Errno::Inval);
    }
    let timeout = timeout_of(timeout_ms, Duration::from_secs(10));
    // SAFETY: `c` per the ffi contract.
    let r = unsafe { with(c, |c| c.accept(listener, timeout)) };
    status(r.and_then(|(h, p)| {
        if !peer.is_null() {
            let v = LdPeer::from_socket_addr(p);
            // SAFETY: `peer` per the ffi contract.
            unsafe { put(peer, v) }?;
        }
        // SAFETY: `out` per the ffi contract.
        unsafe { put(out, h) }
    }))
}

/// `ld_connect`: active open through ring 0 to `peer`.
///
/// # Safety
/// The ffi contract; `peer` valid for reading an `ld_peer`, `out` for a
/// `u64` write.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ld_connect(
    c: *const LdClient,
    peer: *const LdPeer,
    out: *mut u64,
) -> c_int {
    // SAFETY: our caller's contract is ld_connect_on's.
    unsafe { ld_connect_on(c, 0, peer, out) }
}

/// `ld_connect_on`: active open through ring `ring`. An unknown family
/// is EINVAL.
///
/// # Safety
/// The ffi contract; `peer` valid for reading an `ld_peer`, `out` for a
/// `u64` write.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ld_connect_on(
    c: *const LdClient,
    ring: u32,
    peer: *const LdPeer,
    out: *mut u64,
) -> c_int {
    if out.is_null() {
        return fail(Errno::Inval);
    }
    // SAFETY: `peer` per the ffi contract.
    let remote = match unsafe { get(peer) }.map(LdPeer::to_socket_addr) {
        Ok(Some(a)) => a,
        Ok(None) => return fail(Errno::Inval),
        Err(e) => return fail(e),
    };
    // SAFETY: `c` per the ffi contract.
    let r = unsafe { with(c, |c| c.connect_on(ring as usize, remote, 0)) };
    // SAFETY: `out` per the ffi contract.
    status(r.and_then(|h| unsafe { put(out, h) }))
}

/// `ld_send`: sends `len` bytes; returns the bytes accepted or -1.
///
/// # Safety
/// The ffi contract; `buf` valid for reading `len` bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ld_send(
    c: *const LdClient,
    h: u64,
    buf: *const c_void,
    len: usize,
) -> i64 {
    if len == 0 {
        // SAFETY: `c` per the ffi contract.
        return count(unsafe { with(c, |_| Ok(0)) });
    }
    if buf.is_null() || len > isize::MAX as usize {
        return i64::from(fail(Errno::Inval));
    }
    // SAFETY: non-NULL and at most isize::MAX (checked); by the ffi
    // contract `buf` points to `len` readable bytes that nothing writes
    // during the call.
    let data = unsafe { std::slice::from_raw_parts(buf.cast::<u8>(), len) };
    // SAFETY: `c` per the ffi contract.
    count(unsafe { with(c, |c| c.send(h, data).map(|n| n as u64)) })
}

/// `ld_recv`: receives up to `len` bytes, waiting up to `timeout_ms`
/// (negative: the call timeout); returns the count, 0 at end of stream, or
/// -1 (`LD_EWOULDBLOCK` for a zero timeout, `LD_ETIMEDOUT`, `LD_ECONNRESET`…).
///
/// # Safety
/// The ffi contract; `buf` valid for writing `len` bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ld_recv(
    c: *const LdClient,
    h: u64,
    buf: *mut c_void,
    len: usize,
    timeout_ms: c_int,
) -> i64 {
    if buf.is_null() || len == 0 || len > isize::MAX as usize {
        return i64::from(fail(Errno::Inval));
    }
    // SAFETY: non-NULL, non-empty and at most isize::MAX (checked); by the
    // ffi contract `buf` points to `len` writable bytes that nothing else
    // touches during the call.
    let out = unsafe { std::slice::from_raw_parts_mut(buf.cast::<u8>(), len) };
    let timeout = timeout_of(timeout_ms, Duration::from_secs(10));
    // SAFETY: `c` per the ffi contract.
    count(unsafe { with(c, |c| c.recv(h, out, timeout).map(|n| n as u64)) })
}

/// `ld_shutdown`: `how` = `LD_SD_RECEIVE`, `LD_SD_SEND` or `LD_SD_BOTH`.
///
/// # Safety
/// The ffi contract.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ld_shutdown(c: *const LdClient, h: u64, how: c_int) -> c_int {
    let how = u8::try_from(how).unwrap_or(u8::MAX);
    // SAFETY: `c` per the ffi contract.
    status(unsafe { with(c, |c| c.shutdown_raw(h, how)) })
}

/// `ld_setlinger`: `SO_LINGER`.
///
/// # Safety
/// The ffi contract; `l` valid for reading an `ld_linger`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ld_setlinger(c: *const LdClient, h: u64, l: *const LdLinger) -> c_int {
    // SAFETY: `l` per the ffi contract.
    let l = match unsafe { get(l) } {
        Ok(l) => l,
        Err(e) => return fail(e),
    };
    // SAFETY: `c` per the ffi contract.
    status(unsafe { with(c, |c| c.set_linger(h, l.l_onoff != 0, l.l_linger)) })
}

/// `ld_setdontlinger`: `SO_DONTLINGER` (non-zero = do not linger).
///
/// # Safety
/// The ffi contract.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ld_setdontlinger(c: *const LdClient, h: u64, dont: c_int) -> c_int {
    // SAFETY: `c` per the ffi contract.
    status(unsafe { with(c, |c| c.set_dont_linger(h, dont != 0)) })
}

/// `ld_getlinger`: the current setting (milliseconds rounded up to seconds).
///
/// # Safety
/// The ffi contract; `out` valid for writing an `ld_linger`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ld_getlinger(c: *const LdClient, h: u64, out: *mut LdLinger) -> c_int {
    if out.is_null() {
        return fail(Errno::Inval);
    }
    // SAFETY: `c` per the ffi contract.
    let r = unsafe { with(c, |c| c.get_linger(h)) };
    status(r.and_then(|l| {
        let v = LdLinger {
            l_onoff: u16::from(l.on),
            l_linger: u16::try_from(l.ms.div_ceil(1000)).unwrap_or(u16::MAX),
        };
        // SAFETY: `out` per the ffi contract.
        unsafe { put(out, v) }
    }))
}

fn closed(r: Result<Outcome, Errno>) -> c_int {
    status(r.map(|o| LAST_OUTCOME.with(|l| l.set(o as c_int))))
}

/// `ld_closesocket`: blocking close (docs/close-semantics.md#linger-matrix).
///
/// # Safety
/// The ffi contract.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ld_closesocket(c: *const LdClient, h: u64) -> c_int {
    // SAFETY: `c` per the ffi contract.
    closed(unsafe { with(c, |c| c.close(h, true)) })
}

/// `ld_closesocket_nonblocking`: non-blocking close (`LD_EWOULDBLOCK` when
/// it would have to linger; the handle then stays valid).
///
/// # Safety
/// The ffi contract.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ld_closesocket_nonblocking(c: *const LdClient, h: u64) -> c_int {
    // SAFETY: `c` per the ffi contract.
    closed(unsafe { with(c, |c| c.close(h, false)) })
}

/// `ld_abort`: hard close whatever the linger setting (docs/close-semantics.md#abort).
///
/// # Safety
/// The ffi contract.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ld_abort(c: *const LdClient, h: u64) -> c_int {
    // SAFETY: `c` per the ffi contract.
    closed(unsafe { with(c, |c| c.abort(h)) })
}

/// `ld_close_matching`: bulk teardown on every ring; `filter` NULL matches
/// everything. Returns the count closed or -1.
///
/// # Safety
/// The ffi contract; `filter` NULL or valid for reading an `ld_filter`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ld_close_matching(
    c: *const LdClient,
    filter: *const LdFilter,
    mode: c_int,
    linger_ms: u32,
    pace_per_s: u32,
) -> i64 {
    let f = if filter.is_null() {
        MatchFilter::default()
    } else {
        // SAFETY: `filter` per the ffi contract (non-NULL here).
        match unsafe { get(filter) }.map(|f| match_filter(&f)) {
            Ok(Some(m)) => m,
            Ok(None) => return i64::from(fail(Errno::Inval)),
            Err(e) => return i64::from(fail(e)),
        }
    };
    let mode = match mode {
        0 => CloseMode::Graceful,
        1 => CloseMode::Abort,
        2 => CloseMode::Linger { ms: linger_ms },
        3 => CloseMode::Deadline { ms: linger_ms },
        _ => return i64::from(fail(Errno::Inval)),
    };
    // SAFETY: `c` per the ffi contract.
    count(unsafe { with(c, |c| c.close_matching(&f, mode, pace_per_s)) })
}

/// The filter `f` describes; `None` for unknown flags, an unknown family
/// or a length beyond its family's bits (of a prefix the flags select).
fn match_filter(f: &LdFilter) -> Option<MatchFilter> {
    if f.flags & !0xf != 0 {
        return None;
    }
    let prefix = |bit: u32, family: u16, addr: [u8; 16], len: u8| -> Option<Option<Prefix>> {
        if f.flags & bit == 0 {
            return Some(None);
        }
        Prefix::new(ip_of(family, addr)?, len).map(Some)
    };
    Some(MatchFilter {
        local: prefix(1, f.local_family, f.local_addr, f.local_len)?,
        remote: prefix(2, f.remote_family, f.remote_addr, f.remote_len)?,
        local_port: (f.flags & 4 != 0).then_some(f.local_port),
        remote_port: (f.flags & 8 != 0).then_some(f.remote_port),
        states: f.states,
        min_idle_ms: f.min_idle_ms,
    })
}

/// `ld_abi_version`: the ABI version this library speaks
/// (`LD_ABI_VERSION` of the header it was built with).
#[unsafe(no_mangle)]
pub extern "C" fn ld_abi_version() -> u32 {
    VERSION
}

/// `ld_last_error`: the calling thread's last error (`LD_E*`), 0 if none.
#[unsafe(no_mangle)]
pub extern "C" fn ld_last_error() -> c_int {
    LAST_ERROR.with(Cell::get)
}

/// `ld_last_outcome`: how the calling thread's last successful close or
/// abort ended (`LD_OUTCOME_*`), 0 if none.
#[unsafe(no_mangle)]
pub extern "C" fn ld_last_outcome() -> c_int {
    LAST_OUTCOME.with(Cell::get)
}

/// `ld_strerror`: the Winsock name of an error code (a static string).
#[unsafe(no_mangle)]
pub extern "C" fn ld_strerror(code: c_int) -> *const c_char {
    let name: &'static CStr = match u16::try_from(code).ok().and_then(Errno::from_u16) {
        Some(Errno::Ok) => c"0",
        Some(Errno::NotSock) => c"WSAENOTSOCK",
        Some(Errno::Perm) => c"EPERM",
        Some(Errno::WouldBlock) => c"WSAEWOULDBLOCK",
        Some(Errno::Inval) => c"WSAEINVAL",
        Some(Errno::NotConn) => c"WSAENOTCONN",
        Some(Errno::ConnReset) => c"WSAECONNRESET",
        Some(Errno::ConnAborted) => c"WSAECONNABORTED",
        Some(Errno::NetDown) => c"WSAENETDOWN",
        Some(Errno::InProgress) => c"WSAEINPROGRESS",
        Some(Errno::OperationAborted) => c"WSA_OPERATION_ABORTED",
        Some(Errno::NoBufs) => c"WSAENOBUFS",
        Some(Errno::TimedOut) => c"WSAETIMEDOUT",
        Some(Errno::ConnRefused) => c"WSAECONNREFUSED",
        Some(Errno::Shutdown) => c"WSAESHUTDOWN",
        Some(Errno::AddrInUse) => c"WSAEADDRINUSE",
        Some(Errno::NetUnreach) => c"WSAENETUNREACH",
        None => c"unknown",
    };
    name.as_ptr()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn null_pointers_are_einval_not_crashes() {
        let mut h = 0u64;
        let null = std::ptr::null::<LdClient>();
        // Each block below: NULL is allowed for every pointer and reported
        // as EINVAL; `h` is a live u64.
        // SAFETY: as said.
        let c = unsafe { ld_attach(std::ptr::null()) };
        assert_eq!(c, std::ptr::null_mut());
        assert_eq!(ld_last_error(), Errno::Inval as c_int);
        // SAFETY: as above.
        assert_eq!(unsafe { ld_listen(null, 80, 1, &mut h) }, ERR);
        // SAFETY: as above.
        assert_eq!(unsafe { ld_abort(null, 1) }, ERR);
        // SAFETY: as above.
        assert_eq!(unsafe { ld_send(null, 1, std::ptr::null(), 5) }, -1);
        // SAFETY: as above.
        assert_eq!(unsafe { ld_recv(null, 1, std::ptr::null_mut(), 5, 0) }, -1);
        // SAFETY: as above.
        assert_eq!(unsafe { ld_setlinger(null, 1, std::ptr::null()) }, ERR);
        // SAFETY: as above.
        let n = unsafe { ld_close_matching(null, std::ptr::null(), 9, 0, 0) };
        assert_eq!(n, -1);
        assert_eq!(ld_last_error(), Errno::Inval as c_int);
        // SAFETY: as above.
        unsafe { ld_detach(std::ptr::null_mut()) };
    }

    #[test]
    fn attach_to_nothing_is_an_error_code() {
        let p = c"/nonexistent/lingerd.sock";
        // SAFETY: a NUL-terminated static string.
        assert_eq!(unsafe { ld_attach(p.as_ptr()) }, std::ptr::null_mut());
        assert_eq!(ld_last_error(), Errno::NetDown as c_int);
    }

    #[test]
    fn strerror_names_every_code_and_unknowns() {
        for e in Errno::ALL {
            // SAFETY: ld_strerror returns a pointer to a static C string.
            let s = unsafe { CStr::from_ptr(ld_strerror(e as c_int)) };
            assert_eq!(s.to_str().unwrap(), e.winsock_name());
        }
        // SAFETY: as above.
        let s = unsafe { CStr::from_ptr(ld_strerror(-5)) };
        assert_eq!(s.to_bytes(), b"unknown");
    }

    #[test]
    fn filter_flags_and_lengths_are_validated() {
        let mut v4 = [0u8; 16];
        v4[..4].copy_from_slice(&[198, 18, 0, 0]);
        let f = LdFilter {
            flags: 1 | 4,
            local_family: LD_AF_INET,
            remote_family: 0,
            local_addr: v4,
            remote_addr: [0xff; 16],
            local_len: 24,
            remote_len: 200,
            local_port: 80,
            remote_port: 0,
            states: 0,
            min_idle_ms: 0,
        };
        // The unselected remote prefix's bytes are not looked at.
        let m = match_filter(&f).unwrap();
        assert_eq!(m.local, Some("198.18.0.0/24".parse().unwrap()));
        assert_eq!(m.local_port, Some(80));
        assert_eq!(m.remote, None);
        assert!(match_filter(&LdFilter { flags: 16, ..f }).is_none());
        assert!(match_filter(&LdFilter { local_len: 33, ..f }).is_none());
        assert!(
            match_filter(&LdFilter {
                local_family: 0,
                ..f
            })
            .is_none()
        );
        // Stray bytes after an IPv4 address.
        assert!(
            match_filter(&LdFilter {
                local_addr: [1; 16],
                ..f
            })
            .is_none()
        );

        let v6: Ipv6Addr = "2001:db8::".parse().unwrap();
        let f6 = LdFilter {
            flags: 2,
            remote_family: LD_AF_INET6,
            remote_addr: v6.octets(),
            remote_len: 32,
            ..f
        };
        let m = match_filter(&f6).unwrap();
        assert_eq!(m.remote, Some("2001:db8::/32".parse().unwrap()));
        assert_eq!(m.local, None);
        assert!(
            match_filter(&LdFilter {
                remote_len: 128,
                ..f6
            })
            .is_some()
        );
        assert!(
            match_filter(&LdFilter {
                remote_len: 129,
                ..f6
            })
            .is_none()
        );
    }

    #[test]
    fn peers_of_both_families_round_trip_and_unknown_families_are_refused() {
        for a in [
            "198.18.0.2:80",
            "[2001:db8::2]:443",
            "[::ffff:198.18.0.2]:1",
        ] {
            let a: SocketAddr = a.parse().unwrap();
            assert_eq!(LdPeer::from_socket_addr(a).to_socket_addr(), Some(a), "{a}");
        }
        let p = LdPeer::from_socket_addr("198.18.0.2:80".parse().unwrap());
        assert_eq!(p.family, LD_AF_INET);
        assert_eq!(&p.addr[..4], &[198, 18, 0, 2]);
        for family in [0u16, 2, 10, 5, u16::MAX] {
            assert_eq!(LdPeer { family, ..p }.to_socket_addr(), None, "{family}");
        }
        // NULL peer: EINVAL, not a crash.
        let mut h = 0u64;
        // SAFETY: NULL client and peer are allowed (EINVAL); `h` is live.
        let r = unsafe { ld_connect(std::ptr::null(), std::ptr::null(), &mut h) };
        assert_eq!(r, ERR);
        assert_eq!(ld_last_error(), Errno::Inval as c_int);
    }

    #[test]
    fn the_header_names_this_libraries_abi_version_and_layouts() {
        let h = include_str!("../include/lingerd.h");
        assert!(
            h.contains(&format!("#define LD_ABI_VERSION {VERSION}\n")),
            "lingerd.h's LD_ABI_VERSION is not {VERSION}"
        );
        assert_eq!(ld_abi_version(), VERSION);
        assert!(h.contains(&format!("#define LD_AF_INET  {LD_AF_INET}\n")));
        assert!(h.contains(&format!("#define LD_AF_INET6 {LD_AF_INET6}\n")));
        // The C structs' sizes as a C compiler lays them out.
        assert_eq!(std::mem::size_of::<LdPeer>(), 20);
        assert_eq!(std::mem::size_of::<LdFilter>(), 52);
    }
}
