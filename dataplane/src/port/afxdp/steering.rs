//! Loading, attaching and filling lingerd's XDP program (`xdp/lingerd.bpf.c`).
//!
//! [`Steering`] owns the program on one interface: it is loaded and attached
//! with aya (loader only; the program is C, compiled by clang in `build.rs`
//! and embedded here), its maps are filled from the daemon's addresses (IPv4
//! in `daemon_addrs`, IPv6 in `daemon_addrs6`) and ports, and sockets are registered in `xsks` by queue. Dropping it detaches
//! the program. It may not touch sockets' rings or frames (that is
//! `sys::xsk`) nor any interface but its own.
//!
//! Crash recovery: aya attaches through a bpf_link where the kernel has them
//! (≥ 5.9, as here), and a bpf_link dies with the process that holds it, so a
//! crashed lingerd leaves nothing behind. A program attached the legacy way
//! (netlink: aya's fallback on old kernels, `ip link set xdp`, libxdp, other
//! tools) would stay and make our attach fail, so before attaching we detach
//! whatever netlink program sits on the interface in generic and in native
//! mode ([`crate::sys::netlink::detach_xdp`]). A bpf_link held by a live
//! process cannot be taken that way (EBUSY): then we refuse to start with
//! [`AfXdpError::Busy`] rather than fight another daemon.

use std::io;
use std::net::IpAddr;
use std::os::fd::AsRawFd;

use aya::Ebpf;
use aya::maps::{Array, HashMap, XskMap};
use aya::programs::{Xdp, XdpMode};

use super::AfXdpError;
use crate::sys::netlink;

/// The compiled program, aligned as the ELF parser wants.
static PROGRAM: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/lingerd.bpf.o"));

/// The program's name in the object (its `SEC("xdp")` function).
const PROGRAM_NAME: &str = "lingerd_steer";

/// Which XDP attach mode to ask for.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum AttachMode {
    /// Native where the driver has it, else generic.
    #[default]
    Auto,
    /// Native (driver) mode or fail.
    Native,
    /// Generic (SKB) mode.
    Generic,
}

/// The XDP mode the program runs in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum XdpAttach {
    /// In the driver, before an skb exists.
    Native,
    /// Generic (SKB) mode, after the kernel built an skb.
    Generic,
}

impl XdpAttach {
    /// `"native"` or `"generic"`.
    pub fn as_str(self) -> &'static str {
        match self {
            XdpAttach::Native => "native",
            XdpAttach::Generic => "generic",
        }
    }
}

/// `struct config` of the program as one native-endian u64: `filter_ports`
/// (u32), then `eph_lo` and `eph_hi` (u16, host order).
fn config_value(filter_ports: bool, ephemeral: Option<(u16, u16)>) -> u64 {
    let (lo, hi) = ephemeral.unwrap_or((1, 0));
    let mut bytes = [0u8; 8];
    bytes[..4].copy_from_slice(&u32::from(filter_ports).to_ne_bytes());
    bytes[4..6].copy_from_slice(&lo.to_ne_bytes());
    bytes[6..].copy_from_slice(&hi.to_ne_bytes());
    u64::from_ne_bytes(bytes)
}

/// lingerd's XDP program, attached to one interface.
#[derive(Debug)]
pub struct Steering {
    ebpf: Ebpf,
    iface: String,
    attach: XdpAttach,
    link: Option<aya::programs::xdp::XdpLinkId>,
}

fn ebpf_err(what: &'static str) -> impl FnOnce(String) -> AfXdpError {
    move |detail| AfXdpError::Xdp { what, detail }
}

impl Steering {
    /// Loads the program, fills `daemon_addrs` (the IPv4 ones of `addrs`),
    /// `daemon_addrs6` (the IPv6 ones), `ports` and the ephemeral range
    /// (with an empty `ports` every TCP port is steered and the range does
    /// not matter) and attaches it to `iface`, first detaching any program
    /// left there through netlink.
    pub fn attach(
        iface: &str,
        mode: AttachMode,
        addrs: &[IpAddr],
        ports: &[u16],
        ephemeral: Option<(u16, u16)>,
    ) -> Result<Steering, AfXdpError> {
        let if_index = netlink::if_index(iface).map_err(|e| AfXdpError::Interface {
            iface: iface.to_owned(),
            source: e,
        })?;
        for flags in [netlink::XDP_FLAGS_SKB_MODE, netlink::XDP_FLAGS_DRV_MODE] {
            match netlink::detach_xdp(if_index, flags) {
                Ok(()) => {}
                Err(e) if e.raw_os_error() == Some(libc::EBUSY) => {
                    return Err(AfXdpError::Busy {
                        iface: iface.to_owned(),
                    });
                }
                // A driver without native XDP refuses the native detach.
                Err(e)
                    if matches!(
                        e.raw_os_error(),
                        Some(libc::EOPNOTSUPP | libc::EINVAL | libc::ENODEV)
                    ) => {}
                Err(e) => return Err(ebpf_err("detach a stale XDP program")(e.to_string())),
            }
        }

        let mut ebpf =
            Ebpf::load(PROGRAM).map_err(|e| ebpf_err("load the object")(e.to_string()))?;
        {
            let mut map: HashMap<_, u32, u8> = ebpf
                .map_mut("daemon_addrs")
                .ok_or_else(|| ebpf_err("find map daemon_addrs")(String::new()))?
                .try_into()
                .map_err(|e: aya::maps::MapError| ebpf_err("open daemon_addrs")(e.to_string()))?;
            for a in addrs {
                if let IpAddr::V4(a) = a {
                    map.insert(u32::from_ne_bytes(a.octets()), 1, 0)
                        .map_err(|e| ebpf_err("fill daemon_addrs")(e.to_string()))?;
                }
            }
        }
        {
            let mut map: HashMap<_, [u8; 16], u8> = ebpf
                .map_mut("daemon_addrs6")
                .ok_or_else(|| ebpf_err("find map daemon_addrs6")(String::new()))?
                .try_into()
                .map_err(|e: aya::maps::MapError| ebpf_err("open daemon_addrs6")(e.to_string()))?;
            for a in addrs {
                if let IpAddr::V6(a) = a {
                    map.insert(a.octets(), 1, 0)
                        .map_err(|e| ebpf_err("fill daemon_addrs6")(e.to_string()))?;
                }
            }
        }
        {
            let mut map: HashMap<_, u16, u8> = ebpf
                .map_mut("ports")
                .ok_or_else(|| ebpf_err("find map ports")(String::new()))?
                .try_into()
                .map_err(|e: aya::maps::MapError| ebpf_err("open ports")(e.to_string()))?;
            for p in ports {
                map.insert(u16::from_ne_bytes(p.to_be_bytes()), 1, 0)
                    .map_err(|e| ebpf_err("fill ports")(e.to_string()))?;
            }
        }
        {
            let mut map: Array<_, u64> = ebpf
                .map_mut("config")
                .ok_or_else(|| ebpf_err("find map config")(String::new()))?
                .try_into()
                .map_err(|e: aya::maps::MapError| ebpf_err("open config")(e.to_string()))?;
            map.set(0, config_value(!ports.is_empty(), ephemeral), 0)
                .map_err(|e| ebpf_err("fill config")(e.to_string()))?;
        }

        let prog: &mut Xdp = ebpf
            .program_mut(PROGRAM_NAME)
            .ok_or_else(|| ebpf_err("find the program")(PROGRAM_NAME.to_owned()))?
            .try_into()
            .map_err(|e: aya::programs::ProgramError| {
                ebpf_err("open the program")(e.to_string())
            })?;
        prog.load()
            .map_err(|e| ebpf_err("load the program (verifier)")(e.to_string()))?;
        let tries: &[(XdpMode, XdpAttach)] = match mode {
            AttachMode::Auto => &[
                (XdpMode::Driver, XdpAttach::Native),
                (XdpMode::Skb, XdpAttach::Generic),
            ],
            AttachMode::Native => &[(XdpMode::Driver, XdpAttach::Native)],
            AttachMode::Generic => &[(XdpMode::Skb, XdpAttach::Generic)],
        };
        let mut last = String::new();
        for &(xdp_mode, attach) in tries {
            match prog.attach_to_if_index(if_index, xdp_mode) {
                Ok(link) => {
                    return Ok(Steering {
                        ebpf,
                        iface: iface.to_owned(),
                        attach,
                        link: Some(link),
                    });
                }
                Err(e) => last = format!("{}: {e}", attach.as_str()),
            }
        }
        Err(ebpf_err("attach the program")(last))
    }

    /// The mode the program was attached in.
    pub fn mode(&self) -> XdpAttach {
        self.attach
    }

    /// Steers queue `queue`'s frames to the socket `fd`.
    pub fn register(&mut self, queue: u32, fd: &impl AsRawFd) -> Result<(), AfXdpError> {
        let mut map: XskMap<_> = self
            .ebpf
            .map_mut("xsks")
            .ok_or_else(|| ebpf_err("find map xsks")(String::new()))?
            .try_into()
            .map_err(|e: aya::maps::MapError| ebpf_err("open xsks")(e.to_string()))?;
        map.set(queue, fd.as_raw_fd(), 0)
            .map_err(|e| ebpf_err("register the socket in xsks")(e.to_string()))
    }

    /// Detaches the program now (also done on drop).
    pub fn detach(&mut self) -> io::Result<()> {
        let Some(link) = self.link.take() else {
            return Ok(());
        };
        let prog: &mut Xdp = self
            .ebpf
            .program_mut(PROGRAM_NAME)
            .and_then(|p| p.try_into().ok())
            .ok_or_else(|| io::Error::other("program vanished"))?;
        prog.detach(link).map_err(io::Error::other)
    }

    /// The interface.
    pub fn iface(&self) -> &str {
        &self.iface
    }
}

impl Drop for Steering {
    fn drop(&mut self) {
        // Dropping the Ebpf would detach as well; doing it here keeps the
        // order explicit (program off, then maps and sockets go).
        let _ = self.detach();
    }
}
