//! The semantic pass: the checks garde's per-field rules cannot express
//! because they involve several fields or a property of a value (queues and
//! cores pair up, no duplicates, powers of two, the gateway on a local link,
//! the shared region fits, the port's own section and what this binary
//! can run).
//!
//! Each problem is appended to a garde `Report` at the path of the field
//! that is wrong (`listen[1].port`, `tcp.ephemeral_ports[0]`), so the
//! loader can map it back to a line and column exactly as it does for
//! garde's own rules. This module only reads a `Config`; it never fixes one.

use std::collections::HashMap;
use std::hash::Hash;
use std::net::IpAddr;

use garde::{Error, Path, Report};
use lingerd_abi::layout::{Layout, LayoutError, LayoutParams};

use crate::dpdk::{DeviceKind, eal_devices};
use crate::load::Build;
use crate::model::{Config, Dpdk, PortKind, Xdp};
use crate::net::{GatewayMac, is_link_local_v6};

/// `sun_path` is 108 bytes including the terminating NUL.
const MAX_SOCKET_PATH: usize = 107;

/// Appends every semantic problem of `c` to `report`.
pub(crate) fn check(c: &Config, build: Build, report: &mut Report) {
    let mut p = Problems { report };
    check_port(c, build, &mut p);
    check_interface(c, &mut p);
    check_queues_cores(c, &mut p);
    check_addresses(c, &mut p);
    check_gateway(c, &mut p);
    check_listen(c, &mut p);
    check_tcp(c, &mut p);
    check_xdp(c, &mut p);
    check_clients(c, &mut p);
}

struct Problems<'a> {
    report: &'a mut Report,
}

impl Problems<'_> {
    fn at(&mut self, path: Path, msg: impl std::fmt::Display) {
        self.report.append(path, Error::new(msg.to_string()));
    }
}

fn key(k: &'static str) -> Path {
    Path::new(k)
}

fn field(section: &'static str, k: &'static str) -> Path {
    Path::new(section).join(k)
}

/// Reports the second and later occurrence of each value of `items`, at
/// `path(i)`, naming the index of the first.
fn no_duplicates<T: Eq + Hash + Copy + std::fmt::Display>(
    p: &mut Problems<'_>,
    items: impl IntoIterator<Item = T>,
    what: &str,
    list: &str,
    path: impl Fn(usize) -> Path,
) {
    let mut first: HashMap<T, usize> = HashMap::new();
    for (i, v) in items.into_iter().enumerate() {
        if let Some(&j) = first.get(&v) {
            p.at(
                path(i),
                format_args!("{what} {v} is listed twice (first at {list}[{j}])"),
            );
        } else {
            first.insert(v, i);
        }
    }
}

/// The port's own section is the only one given, this binary can run it,
/// and a DPDK device is named exactly once.
fn check_port(c: &Config, build: Build, p: &mut Problems<'_>) {
    match c.port {
        PortKind::Afxdp => {
            if c.interface.is_empty() {
                p.at(
                    key("interface"),
                    "`interface` is required with port: afxdp (the NIC lingerd attaches to)",
                );
            }
            if c.dpdk != Dpdk::default() {
                p.at(
                    key("dpdk"),
                    "the dpdk section applies to port: dpdk only; add `port: dpdk` or remove it",
                );
            }
        }
        PortKind::Dpdk => {
            if !build.dpdk {
                p.at(
                    key("port"),
                    "this binary was built without the `dpdk` feature, so it cannot run port: dpdk \
                     (build lingerd with `--features dpdk`, or use port: afxdp)",
                );
            }
            if !c.interface.is_empty() {
                p.at(
                    key("interface"),
                    "port: dpdk takes its device from dpdk.device (or dpdk.eal_args); \
                     `interface` is for port: afxdp, remove it",
                );
            }
            if c.xdp != Xdp::default() {
                p.at(
                    key("xdp"),
                    "the xdp section applies to port: afxdp only (with port: dpdk, the idle mode \
                     is dpdk.idle); remove it",
                );
            }
            for (i, &q) in c.queues.iter().enumerate() {
                if q as usize != i {
                    p.at(
                        key("queues").join(i),
                        format_args!(
                            "with port: dpdk, queues are 0, 1, … in order (lingerd configures one \
                             RX/TX pair per core): write {i} here"
                        ),
                    );
                    break;
                }
            }
            check_dpdk(&c.dpdk, c.queues.len(), p);
        }
    }
}

fn check_dpdk(d: &Dpdk, queues: usize, p: &mut Problems<'_>) {
    let named = eal_devices(&d.eal_args);
    match (&d.device, named.as_slice()) {
        (None, []) => p.at(
            key("dpdk"),
            "port: dpdk needs a device: dpdk.device (memif:…, af_packet:…, tap:…, a PCI \
             address) or one --vdev=… / -a … in dpdk.eal_args",
        ),
        (Some(_), [first, ..]) => p.at(
            field("dpdk", "eal_args").join(first.index),
            format_args!(
                "eal_args names device {} and dpdk.device is set: name the device once",
                first.name
            ),
        ),
        (None, [_, second, ..]) => p.at(
            field("dpdk", "eal_args").join(second.index),
            format_args!(
                "eal_args names a second device ({}): lingerd runs on one device",
                second.name
            ),
        ),
        _ => {}
    }
    if let Some(dev) = &d.device
        && dev.kind == DeviceKind::AfPacket
        && let Some(q) = dev.option("qpairs")
        && q.parse::<usize>().ok() != Some(queues)
    {
        p.at(
            field("dpdk", "device"),
            format_args!(
                "af_packet qpairs={q} but {queues} queue(s) are configured: leave qpairs out \
                 (lingerd sets it) or make them agree"
            ),
        );
    }
    for (i, a) in d.eal_args.iter().enumerate() {
        if a.contains('\0') {
            p.at(
                field("dpdk", "eal_args").join(i),
                "an EAL argument cannot hold a NUL byte",
            );
        }
    }
}

fn check_interface(c: &Config, p: &mut Problems<'_>) {
    let name = &c.interface;
    // Linux's dev_valid_name(): not "." or "..", no '/', ':' or whitespace.
    let bad = name == "."
        || name == ".."
        || name
            .chars()
            .any(|ch| ch == '/' || ch == ':' || ch.is_whitespace() || ch.is_control());
    if bad {
        p.at(
            key("interface"),
            format_args!("`{name}` is not a valid interface name (no '/', ':' or spaces)"),
        );
    }
}

fn check_queues_cores(c: &Config, p: &mut Problems<'_>) {
    if c.queues.len() != c.cores.len() {
        // Point at the list the user wrote: a defaulted one has no line.
        let at = if c.cores == crate::model::default_cores() {
            "queues"
        } else {
            "cores"
        };
        p.at(
            key(at),
            format_args!(
                "queues has {} entries and cores {}: each queue needs exactly one core, paired by position",
                c.queues.len(),
                c.cores.len()
            ),
        );
    }
    no_duplicates(p, c.queues.iter().copied(), "queue", "queues", |i| {
        key("queues").join(i)
    });
    no_duplicates(p, c.cores.iter().copied(), "core", "cores", |i| {
        key("cores").join(i)
    });
}

fn check_addresses(c: &Config, p: &mut Problems<'_>) {
    if let Some(extra) = c.addresses.get(crate::MAX_ADDRESSES) {
        p.at(
            key("addresses").join(crate::MAX_ADDRESSES),
            format_args!(
                "{extra}: lingerd answers for at most {} addresses (IPv4 and IPv6 together)",
                crate::MAX_ADDRESSES
            ),
        );
    }
    for (i, a) in c.addresses.iter().enumerate() {
        let why = match a.addr() {
            IpAddr::V4(ip) => {
                if ip.is_unspecified() {
                    Some("the unspecified address")
                } else if ip.is_loopback() {
                    Some("a loopback address")
                } else if ip.is_multicast() {
                    Some("a multicast address")
                } else if ip.is_broadcast() {
                    Some("the limited broadcast address")
                } else if a.prefix_len() <= 30 && a.addr() == a.network() {
                    Some("the network address of its prefix")
                } else if a.prefix_len() <= 30 && a.addr() == a.last() {
                    Some("the broadcast address of its prefix")
                } else {
                    None
                }
            }
            IpAddr::V6(ip) => {
                if ip.is_unspecified() {
                    Some("the unspecified address")
                } else if ip.is_loopback() {
                    Some("the loopback address")
                } else if ip.is_multicast() {
                    Some("a multicast address")
                } else if ip.to_ipv4_mapped().is_some() {
                    Some("an IPv4-mapped address (write the IPv4 address itself)")
                } else if a.prefix_len() <= 126 && a.addr() == a.network() {
                    Some("the subnet-router anycast address of its prefix")
                } else {
                    None
                }
            }
        };
        if let Some(why) = why {
            p.at(
                key("addresses").join(i),
                format_args!("{a} cannot be a local address: it is {why}"),
            );
        }
    }
    no_duplicates(
        p,
        c.addresses.iter().map(|a| a.addr()),
        "address",
        "addresses",
        |i| key("addresses").join(i),
    );
}

fn family(a: IpAddr) -> &'static str {
    if a.is_ipv4() { "IPv4" } else { "IPv6" }
}

fn check_gateway(c: &Config, p: &mut Problems<'_>) {
    let path = |i: usize, k: &'static str| {
        if c.gateway.listed() {
            key("gateway").join(i).join(k)
        } else {
            field("gateway", k)
        }
    };
    let mut first: [Option<usize>; 2] = [None, None];
    for (i, gw) in c.gateway.iter().enumerate() {
        let ip = gw.ip.addr;
        let fam = family(ip);
        let slot = &mut first[usize::from(ip.is_ipv6())];
        if let Some(j) = *slot {
            p.at(
                path(i, "ip"),
                format_args!(
                    "a second {fam} gateway ({ip}; the first is gateway[{j}]): give at most one per address family"
                ),
            );
            continue;
        }
        *slot = Some(i);
        let bad = match ip {
            IpAddr::V4(v4) => v4.is_unspecified() || v4.is_multicast() || v4.is_broadcast(),
            IpAddr::V6(v6) => {
                v6.is_unspecified() || v6.is_multicast() || v6.to_ipv4_mapped().is_some()
            }
        } || ip.is_loopback();
        let link_local = is_link_local_v6(ip);
        if bad {
            p.at(
                path(i, "ip"),
                format_args!("gateway {ip} is not a unicast address a next hop can have"),
            );
        } else if c.addresses.iter().any(|a| a.addr() == ip) {
            p.at(
                path(i, "ip"),
                format_args!("gateway {ip} is one of lingerd's own addresses"),
            );
        } else if link_local {
            if !c.addresses.iter().any(|a| a.addr().is_ipv6()) {
                p.at(
                    path(i, "ip"),
                    format_args!(
                        "gateway {ip} is IPv6 but `addresses` has no IPv6 address to reach it from"
                    ),
                );
            }
        } else if !c.addresses.iter().any(|a| a.contains(ip)) {
            p.at(
                path(i, "ip"),
                format_args!(
                    "gateway {ip} is not inside any of the addresses' {fam} prefixes, so it cannot be reached"
                ),
            );
        }
        if let Some(scope) = &gw.ip.scope
            && *scope != c.interface
        {
            let msg = if c.interface.is_empty() {
                format!(
                    "gateway {}: there is no `interface` to scope it to (port: dpdk); write {ip} without %{scope}",
                    gw.ip
                )
            } else {
                format!(
                    "gateway {}: lingerd sends on `{}` only; a link-local gateway's scope must be %{}",
                    gw.ip, c.interface, c.interface
                )
            };
            p.at(path(i, "ip"), msg);
        }
        if let GatewayMac::Fixed(mac) = gw.mac
            && (mac.is_multicast() || mac.is_zero())
        {
            p.at(
                path(i, "mac"),
                format_args!("gateway MAC {mac} is not a unicast address"),
            );
        }
    }
}

fn check_listen(c: &Config, p: &mut Problems<'_>) {
    no_duplicates(p, c.listen.iter().map(|l| l.port), "port", "listen", |i| {
        key("listen").join(i).join("port")
    });
    let [lo, hi] = c.tcp.ephemeral_ports;
    let per_core = c.tcp.max_connections_per_core(c.queues.len());
    for (i, l) in c.listen.iter().enumerate() {
        if lo <= hi && (lo..=hi).contains(&l.port) {
            p.at(
                key("listen").join(i).join("port"),
                format_args!(
                    "port {} is inside tcp.ephemeral_ports [{lo}, {hi}], which outgoing connections draw from",
                    l.port
                ),
            );
        }
        if l.backlog > per_core {
            p.at(
                key("listen").join(i).join("backlog"),
                format_args!(
                    "backlog {} is larger than a core's connection table ({per_core} = tcp.max_connections / cores)",
                    l.backlog
                ),
            );
        }
    }
}

fn check_tcp(c: &Config, p: &mut Problems<'_>) {
    let t = &c.tcp;
    for (name, value, range) in t.timers() {
        if !range.contains(&value) {
            p.at(
                field("tcp", name),
                format_args!(
                    "{name} {value} is outside {}..={}",
                    range.start(),
                    range.end()
                ),
            );
        }
    }
    if t.rto_max < t.rto_min {
        p.at(
            field("tcp", "rto_max"),
            format_args!("rto_max {} is below rto_min {}", t.rto_max, t.rto_min),
        );
    } else if !(t.rto_min..=t.rto_max).contains(&t.rto_initial) {
        p.at(
            field("tcp", "rto_initial"),
            format_args!(
                "rto_initial {} is outside rto_min..=rto_max ({}..={})",
                t.rto_initial, t.rto_min, t.rto_max
            ),
        );
    }
    let max_window = 65_535u64 << t.window_shift.min(14);
    if u64::from(t.recv_buffer) > max_window {
        p.at(
            field("tcp", "recv_buffer"),
            format_args!(
                "recv_buffer {} is more than a window with window_shift {} can advertise ({max_window})",
                t.recv_buffer, t.window_shift
            ),
        );
    }
    if t.reassembly_per_connection > t.reassembly_per_core && t.reassembly_per_core > 0 {
        p.at(
            field("tcp", "reassembly_per_connection"),
            format_args!(
                "reassembly_per_connection {} is more than reassembly_per_core {}",
                t.reassembly_per_connection, t.reassembly_per_core
            ),
        );
    }
    if t.send_buffer < u32::from(t.mss) {
        p.at(
            field("tcp", "send_buffer"),
            format_args!(
                "send_buffer {} is smaller than one segment (mss {})",
                t.send_buffer, t.mss
            ),
        );
    }
    let [lo, hi] = t.ephemeral_ports;
    let ports = field("tcp", "ephemeral_ports");
    if lo < 1024 {
        p.at(
            ports.join(0usize),
            format_args!("ephemeral range starts at {lo}: it must start at 1024 or above"),
        );
    }
    if lo > hi {
        p.at(
            ports.join(1usize),
            format_args!("ephemeral range [{lo}, {hi}] is empty: write [lo, hi] with lo <= hi"),
        );
    }
}

fn check_xdp(c: &Config, p: &mut Problems<'_>) {
    if !c.xdp.frames.is_power_of_two() {
        p.at(
            field("xdp", "frames"),
            format_args!("frames {} is not a power of two", c.xdp.frames),
        );
    }
}

fn check_clients(c: &Config, p: &mut Problems<'_>) {
    let cl = &c.clients;
    let sock = &cl.socket;
    let len = sock.as_os_str().len();
    if !sock.is_absolute() {
        p.at(
            field("clients", "socket"),
            format_args!("socket path `{}` must be absolute", sock.display()),
        );
    } else if len > MAX_SOCKET_PATH {
        p.at(
            field("clients", "socket"),
            format_args!(
                "socket path is {len} bytes; a Unix socket path holds at most {MAX_SOCKET_PATH}"
            ),
        );
    } else if sock.file_name().is_none() {
        p.at(
            field("clients", "socket"),
            format_args!(
                "socket path `{}` names a directory, not a file",
                sock.display()
            ),
        );
    } else if cl.ctl_socket() == *sock {
        p.at(
            field("clients", "socket"),
            format_args!(
                "socket path `{}` ends in `.ctl`, the name of the `lingerd ctl` socket beside it; use another extension (e.g. `.sock`)",
                sock.display()
            ),
        );
    } else if cl.ctl_socket().as_os_str().len() > MAX_SOCKET_PATH {
        p.at(
            field("clients", "socket"),
            format_args!(
                "the `lingerd ctl` socket beside it, `{}`, would be longer than {MAX_SOCKET_PATH} bytes; shorten the path",
                cl.ctl_socket().display()
            ),
        );
    }
    let mut sizes_ok = true;
    if !cl.ring_entries.is_power_of_two() {
        sizes_ok = false;
        p.at(
            field("clients", "ring_entries"),
            format_args!("ring_entries {} is not a power of two", cl.ring_entries),
        );
    }
    if !cl.chunk_size.is_power_of_two() {
        sizes_ok = false;
        p.at(
            field("clients", "chunk_size"),
            format_args!("chunk_size {} is not a power of two", cl.chunk_size),
        );
    }
    // The ABI is the authority on the region; ask it, once the parts garde
    // and the checks above cover are known good.
    if sizes_ok && !c.queues.is_empty() && c.queues.len() <= crate::model::MAX_CORES {
        let params = LayoutParams {
            cores: c.queues.len() as u32,
            ring_entries: cl.ring_entries,
            chunk_size: cl.chunk_size,
            tx_chunks: cl.tx_chunks,
            rx_chunks: cl.rx_chunks,
        };
        if let Err(e) = Layout::new(params) {
            let what = match e {
                LayoutError::TooLarge => "does not fit the address space",
                LayoutError::Cores => "has an unusable number of cores",
                LayoutError::RingEntries => "has unusable ring_entries",
                LayoutError::ChunkSize => "has an unusable chunk_size",
                LayoutError::Chunks => "has too many chunks",
            };
            p.at(
                key("clients"),
                format_args!("the per-client shared region {what} ({params:?})"),
            );
        }
    }
}
