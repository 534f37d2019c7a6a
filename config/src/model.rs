//! The configuration's shape: one struct per YAML section, its defaults,
//! its units and the per-field ranges garde checks.
//!
//! Every struct denies unknown fields, so a typo is an error that names the
//! expected fields. Every field but `interface` (required with `port:
//! afxdp`, the default) and `addresses` has a default. Units are in the field names (`_ms`, `_per_s`) or, for sizes,
//! bytes unless said otherwise. Checks that involve more than one field
//! (queues and cores pair up, no duplicate ports, ring sizes are powers of
//! two, …) live in `check.rs`; whether a field may change on reload is in
//! `reload.rs` and repeated on each field here as **restart** or **reload**.
//!
//! Values the rest of lingerd shares (linger settings, policies,
//! prefixes, MAC addresses) are `lingerd_abi::vocab` types, deserialized
//! directly; their defaults are theirs. This module knows nothing of the
//! dataplane: the daemon turns the sections into `EngineConfig`,
//! `TcpConfig` and `LayoutParams`.
//!
//! Every type here also serializes, and a serialized `Config` parses back
//! to an equal one (`Config::to_yaml`), so a test can build a daemon's
//! configuration as a value.

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::ops::RangeInclusive;
use std::path::PathBuf;

use garde::Validate;
use lingerd_abi::vocab::{ClientExitPolicy, Duration, Linger, MAX_LINGER_MS, Prefix, TimeWaitRst};
use serde::{Deserialize, Serialize};

use crate::dpdk::DpdkDevice;
use crate::net::{GatewayIp, GatewayMac};

/// The largest linger time the Winsock/BSD `l_linger` field can express, in
/// seconds (it is a `u_short`): `lingerd_abi::vocab::MAX_LINGER_MS` in
/// seconds.
pub const MAX_LINGER_SECS: u32 = MAX_LINGER_MS / 1000;
/// Most dataplane cores (and queues): the ABI's `MAX_CORES`.
pub const MAX_CORES: usize = lingerd_abi::layout::MAX_CORES as usize;
/// Highest CPU number accepted in `cores` (glibc's `CPU_SETSIZE` − 1).
pub const MAX_CPU: u32 = 1023;
/// Most connections per host the table sizing accepts (2^28).
pub const MAX_CONNECTIONS: u32 = 1 << 28;

/// A whole lingerd configuration, validated.
///
/// Obtain one with [`Config::load`] or [`Config::parse`]: both run the
/// per-field checks and the semantic pass, so a `Config` they return is
/// internally consistent. The fields are public plain data for the daemon
/// to convert; a value built by hand is not checked.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, Validate)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// **restart**. The NIC lingerd attaches to (1 to 15 bytes, Linux's
    /// `IFNAMSIZ` − 1). Required with `port: afxdp`; with `port: dpdk` the
    /// device is `dpdk.device` and this stays unset.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    #[garde(length(max = 15))]
    pub interface: String,
    /// **restart**. NIC queue ids, one dataplane core each. Default `[0]`.
    #[serde(default = "default_queues")]
    #[garde(length(min = 1, max = MAX_CORES))]
    pub queues: Vec<u32>,
    /// **restart**. CPU ids the dataplane cores are pinned to, paired with
    /// `queues` by position. Default `[1]` (core 0 is left to the OS).
    #[serde(default = "default_cores")]
    #[garde(length(min = 1, max = MAX_CORES), inner(range(max = MAX_CPU)))]
    pub cores: Vec<u32>,
    /// **restart**. The addresses lingerd answers for, each with its on-link
    /// prefix: IPv4 (`198.18.0.1/24`) or IPv6 (`2001:db8::1/64`), mixed
    /// freely (dual-stack). Required, at least one. Refused: unspecified,
    /// loopback, multicast and IPv4-mapped IPv6 addresses, an IPv4
    /// network or broadcast address (prefixes up to /30), an IPv6
    /// subnet-router anycast address (host bits all zero, prefixes up to
    /// /126), and duplicates.
    #[garde(length(min = 1, max = 256))]
    pub addresses: Vec<Prefix>,
    /// **restart**. Next hops for destinations outside every local prefix,
    /// at most one per family: one map (`{ip: 198.18.0.254}`) or a list
    /// (`[{ip: 198.18.0.254}, {ip: fe80::1}]`). An IPv4 gateway, and an
    /// IPv6 one other than link-local, must lie inside one of `addresses`'
    /// prefixes of its family; an IPv6 link-local gateway (fe80::/10) is on
    /// the link of `interface` by definition and may be written with that
    /// scope (`fe80::1%eth0`), and needs an IPv6 address in `addresses`.
    /// Absent (the default) means on-link peers only.
    #[serde(default, skip_serializing_if = "Gateways::is_empty")]
    #[garde(skip)]
    pub gateway: Gateways,
    /// **restart**. Listening ports. Default none (lingerd then only makes
    /// outgoing connections, as a load generator does).
    #[serde(default)]
    #[garde(length(max = 1024), dive)]
    pub listen: Vec<Listen>,
    /// TCP timers, sizes and policies.
    #[serde(default)]
    #[garde(dive)]
    pub tcp: Tcp,
    /// What closes do by default (all **reload**).
    #[serde(default)]
    #[garde(dive)]
    pub close: Close,
    /// AF_XDP socket setup (all **restart**).
    #[serde(default)]
    #[garde(dive)]
    pub xdp: Xdp,
    /// The client attach socket and the shared-memory ring sizes.
    #[serde(default)]
    #[garde(dive)]
    pub clients: Clients,
    /// The Prometheus endpoint (**restart**).
    #[serde(default)]
    #[garde(skip)]
    pub metrics: Metrics,
    /// Logging (**reload**).
    #[serde(default)]
    #[garde(skip)]
    pub log: Log,
    /// **restart**. Which port the dataplane runs on: `afxdp` (the default)
    /// or `dpdk` (a binary built with the `dpdk` feature).
    #[serde(default)]
    #[garde(skip)]
    pub port: PortKind,
    /// DPDK setup (all **restart**); only with `port: dpdk`.
    #[serde(default)]
    #[garde(dive)]
    pub dpdk: Dpdk,
}

pub(crate) fn default_queues() -> Vec<u32> {
    vec![0]
}

pub(crate) fn default_cores() -> Vec<u32> {
    vec![1]
}

/// The next hop for off-link destinations of one address family.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Gateway {
    /// Its address, IPv4 or IPv6 (`fe80::1%eth0` for a link-local one
    /// with its scope); see [`Config::gateway`] for where it must lie.
    pub ip: GatewayIp,
    /// `auto` (ARP or Neighbor Discovery, the default) or a fixed unicast
    /// MAC.
    #[serde(default)]
    pub mac: GatewayMac,
}

/// The `gateway` field: no gateway, one, or one per family, in file order.
///
/// It is read from one map or a list of maps and written back in the same
/// form, so that a problem is reported at `gateway.ip` or `gateway[1].ip`
/// as written. Two values are equal when they hold the same gateways,
/// whichever form they were written in.
#[derive(Clone, Debug, Default)]
pub struct Gateways {
    list: Vec<Gateway>,
    listed: bool,
}

impl PartialEq for Gateways {
    fn eq(&self, other: &Gateways) -> bool {
        self.list == other.list
    }
}

impl Eq for Gateways {}

impl Gateways {
    /// One gateway, written as a map.
    pub fn one(g: Gateway) -> Gateways {
        Gateways {
            list: vec![g],
            listed: false,
        }
    }

    /// Gateways written as a list.
    pub fn list(list: Vec<Gateway>) -> Gateways {
        Gateways { list, listed: true }
    }

    /// Whether there is none.
    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    /// Every gateway, in file order.
    pub fn iter(&self) -> impl Iterator<Item = &Gateway> {
        self.list.iter()
    }

    /// The IPv4 gateway (the semantic pass allows at most one).
    pub fn v4(&self) -> Option<&Gateway> {
        self.list.iter().find(|g| g.ip.addr.is_ipv4())
    }

    /// The IPv6 gateway (the semantic pass allows at most one).
    pub fn v6(&self) -> Option<&Gateway> {
        self.list.iter().find(|g| g.ip.addr.is_ipv6())
    }

    /// Whether they were written as a list (`gateway[i]` paths).
    pub(crate) fn listed(&self) -> bool {
        self.listed
    }
}

impl Serialize for Gateways {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self.list.as_slice() {
            [one] if !self.listed => one.serialize(s),
            list => list.serialize(s),
        }
    }
}

impl<'de> Deserialize<'de> for Gateways {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Gateways, D::Error> {
        use serde::de::value::{MapAccessDeserializer, SeqAccessDeserializer};
        use serde::de::{MapAccess, SeqAccess, Visitor};

        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Gateways;

            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(
                    "a gateway {ip, mac} or a list of them (at most one per address family)",
                )
            }

            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Gateways, A::Error> {
                Gateway::deserialize(MapAccessDeserializer::new(map)).map(Gateways::one)
            }

            fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Gateways, A::Error> {
                Vec::<Gateway>::deserialize(SeqAccessDeserializer::new(seq)).map(Gateways::list)
            }

            fn visit_unit<E: serde::de::Error>(self) -> Result<Gateways, E> {
                Ok(Gateways::default())
            }

            fn visit_none<E: serde::de::Error>(self) -> Result<Gateways, E> {
                Ok(Gateways::default())
            }
        }
        d.deserialize_any(V)
    }
}

/// One listening port on every address.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Validate)]
#[serde(deny_unknown_fields)]
pub struct Listen {
    /// TCP port, 1..=65535.
    #[garde(range(min = 1))]
    pub port: u16,
    /// Connections that may wait in SYN-RECEIVED and ESTABLISHED before
    /// the client accepts them. Default 4096.
    #[serde(default = "default_backlog")]
    #[garde(range(min = 1, max = 1 << 24))]
    pub backlog: u32,
}

fn default_backlog() -> u32 {
    4096
}

/// TCP timers (durations: `60s`, `200ms`), sizes (bytes) and policies. The
/// defaults are `lingerd_abi::vocab::tcp_defaults`, shared with the
/// dataplane's own `TcpConfig::default()`.
///
/// Timers and per-connection budgets are **reload**: a new value applies to
/// timers armed after the reload. Sizes and negotiated options are
/// **restart**: they shape the tables and what connections already agreed.
/// The timers' ranges are checked by the semantic pass (`check.rs`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, Validate)]
#[serde(default, deny_unknown_fields)]
pub struct Tcp {
    /// **reload**. TIME-WAIT length (2×MSL), 0s..=4m (0s skips TIME-WAIT:
    /// lab use only).
    #[garde(skip)]
    pub time_wait: Duration,
    /// **reload**. Bound on a background graceful close, 1ms..=60m.
    #[garde(skip)]
    pub orphan_timeout: Duration,
    /// **reload**. How long a handshake may sit in SYN-RECEIVED,
    /// 100ms..=5m.
    #[garde(skip)]
    pub syn_received_timeout: Duration,
    /// **reload**. SYN retransmissions before a connect fails, 1..=20.
    #[garde(range(min = 1, max = 20))]
    pub syn_retries: u8,
    /// **reload**. Data retransmissions before the connection is aborted,
    /// 1..=30.
    #[garde(range(min = 1, max = 30))]
    pub max_retransmits: u8,
    /// **reload**. RTO lower bound (RFC 6298 §2.4), 1ms..=60s.
    #[garde(skip)]
    pub rto_min: Duration,
    /// **reload**. RTO upper bound (RFC 6298 §2.5), ≥ `rto_min`, ≤ 10m.
    #[garde(skip)]
    pub rto_max: Duration,
    /// **reload**. RTO before the first RTT sample (RFC 6298 §2.1), within
    /// `rto_min..=rto_max`.
    #[garde(skip)]
    pub rto_initial: Duration,
    /// **reload**. Delayed-ACK timeout, 0s..=500ms (RFC 9293 §3.8.6.3).
    #[garde(skip)]
    pub delayed_ack: Duration,
    /// **restart**. The MSS we advertise, 536..=8960 bytes.
    #[garde(range(min = 536, max = 8960))]
    pub mss: u16,
    /// **restart**. Send buffer per connection, 1 KiB..=1 GiB.
    #[garde(range(min = 1024, max = 1 << 30))]
    pub send_buffer: u32,
    /// **restart**. Receive buffer per connection, 1 KiB..=1 GiB and no more
    /// than a window of `65535 << window_shift` can advertise.
    #[garde(range(min = 1024, max = 1 << 30))]
    pub recv_buffer: u32,
    /// **restart**. Out-of-order data one core may hold for all its
    /// connections (the reassembly pool, allocated when the core starts, in
    /// 2 KiB chunks), 0..=1 GiB; 0 keeps none (every segment beyond a hole
    /// is dropped and must be sent again). Default 4 MiB.
    #[garde(range(max = 1 << 30))]
    pub reassembly_per_core: u32,
    /// **restart**. Out-of-order data one connection may hold, 2 KiB..=1
    /// GiB and at most `reassembly_per_core`; about twice `recv_buffer`
    /// lets a whole window wait behind one hole. Default 128 KiB.
    #[garde(range(min = 2048, max = 1 << 30))]
    pub reassembly_per_connection: u32,
    /// **restart**. Window scale shift we offer (RFC 7323 §2.3), 0..=14.
    #[garde(range(max = 14))]
    pub window_shift: u8,
    /// **restart**. Offer and use timestamps (RFC 7323).
    #[garde(skip)]
    pub timestamps: bool,
    /// **reload**. `close` (RFC 9293 §3.10.7.4) or `ignore` (RFC 1337).
    #[garde(skip)]
    pub time_wait_rst: TimeWaitRst,
    /// **reload**. Challenge ACKs one connection may send per second
    /// (RFC 5961 §7); 0 sends none.
    #[garde(skip)]
    pub challenge_acks_per_s: u16,
    /// **restart**. Connection table size for the whole host, divided evenly
    /// among the cores; 1..=2^28. Default 2^20.
    #[garde(range(min = 1, max = MAX_CONNECTIONS))]
    pub max_connections: u32,
    /// **restart**. `[lo, hi]`, inclusive: source ports for active opens;
    /// 1024 ≤ lo ≤ hi.
    #[garde(skip)]
    pub ephemeral_ports: [u16; 2],
}

impl Default for Tcp {
    fn default() -> Self {
        use lingerd_abi::vocab::tcp_defaults as d;
        Tcp {
            time_wait: d::TIME_WAIT,
            orphan_timeout: d::ORPHAN_TIMEOUT,
            syn_received_timeout: d::SYN_RECEIVED_TIMEOUT,
            syn_retries: d::SYN_RETRIES,
            max_retransmits: d::MAX_RETRANSMITS,
            rto_min: d::RTO_MIN,
            rto_max: d::RTO_MAX,
            rto_initial: d::RTO_INITIAL,
            delayed_ack: d::DELAYED_ACK,
            mss: d::MSS,
            send_buffer: d::SEND_BUFFER,
            recv_buffer: d::RECV_BUFFER,
            reassembly_per_core: d::REASSEMBLY_PER_CORE,
            reassembly_per_connection: d::REASSEMBLY_PER_CONNECTION,
            window_shift: d::WINDOW_SHIFT,
            timestamps: d::TIMESTAMPS,
            time_wait_rst: d::TIME_WAIT_RST,
            challenge_acks_per_s: d::CHALLENGE_ACKS_PER_S,
            max_connections: 1 << 20,
            ephemeral_ports: [d::EPHEMERAL_PORTS.0, d::EPHEMERAL_PORTS.1],
        }
    }
}

impl Tcp {
    /// Each timer by its YAML name, with its allowed range (inclusive),
    /// for the semantic pass.
    pub(crate) fn timers(&self) -> [(&'static str, Duration, RangeInclusive<Duration>); 7] {
        let ms = Duration::from_millis;
        let s = Duration::from_secs;
        [
            ("time_wait", self.time_wait, Duration::ZERO..=s(240)),
            ("orphan_timeout", self.orphan_timeout, ms(1)..=s(3600)),
            (
                "syn_received_timeout",
                self.syn_received_timeout,
                ms(100)..=s(300),
            ),
            ("rto_min", self.rto_min, ms(1)..=s(60)),
            ("rto_max", self.rto_max, ms(1)..=s(600)),
            ("rto_initial", self.rto_initial, ms(1)..=s(600)),
            ("delayed_ack", self.delayed_ack, Duration::ZERO..=ms(500)),
        ]
    }

    /// The connection table size of one core when there are `cores` cores
    /// (the host-wide `max_connections` divided, rounded up).
    pub fn max_connections_per_core(&self, cores: usize) -> u32 {
        let cores = cores.max(1) as u32;
        self.max_connections.div_ceil(cores)
    }
}

/// Close defaults and pacing (all **reload**).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, Validate)]
#[serde(default, deny_unknown_fields)]
pub struct Close {
    /// **reload**. Linger setting of a new connection. Default off. In the
    /// YAML either the setting's text (`off`, `on,5s`: the grammar of
    /// `lingerd ctl`) or a map `{on, secs}` / `{on, ms}` (not both; neither
    /// means 0), at most 65,535 s.
    #[serde(deserialize_with = "crate::net::linger_yaml")]
    #[garde(skip)]
    pub default_linger: Linger,
    /// **reload**. Policy when a client's control socket hangs up:
    /// `linger`, `graceful` or `abort`.
    #[garde(skip)]
    pub on_client_exit: ClientExitPolicy,
    /// **reload**. RSTs per second lingerd may originate (aborts, expired
    /// linger and deadline times, unread data, data after close, client
    /// exit, orphan timeouts; never RSTs answering a peer), shared out
    /// over the queues (each gets this ÷ queues, rounded up); 0 = unpaced.
    #[garde(skip)]
    pub max_rst_per_sec: u32,
}

/// XDP attach mode.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum XdpMode {
    /// Native where the driver has it, else generic.
    #[default]
    Auto,
    /// Driver mode; fail if the driver lacks it.
    Native,
    /// SKB (generic) mode.
    Generic,
}

/// AF_XDP zero-copy.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ZeroCopy {
    /// Zero-copy where the driver has it, else copy.
    #[default]
    Auto,
    /// Zero-copy; fail to bind otherwise.
    On,
    /// Copy mode.
    Off,
}

/// What a dataplane core does when it has no work.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Idle {
    /// Busy-poll: lowest latency, a full core each.
    #[default]
    Busy,
    /// `poll(2)` with need_wakeup on the socket and on the clients' request
    /// rings (a client's request rings its doorbell and wakes the core): for
    /// laptops, CI and low-power appliances.
    Sleep,
}

/// AF_XDP socket setup (all **restart**).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, Validate)]
#[serde(default, deny_unknown_fields)]
pub struct Xdp {
    /// **restart**. Attach mode.
    #[garde(skip)]
    pub mode: XdpMode,
    /// **restart**. Zero-copy.
    #[garde(skip)]
    pub zero_copy: ZeroCopy,
    /// **restart**. UMEM frames per queue, a power of two in 512..=2^20.
    /// Half of them wait in the fill ring for received frames (the slack a
    /// core has while it is off its CPU), half are for TX; each AF_XDP ring
    /// has `frames / 2` entries, at most 16,384.
    #[garde(range(min = 512, max = 1 << 20))]
    pub frames: u32,
    /// **restart**. Idle behaviour of the cores.
    #[garde(skip)]
    pub idle: Idle,
}

impl Default for Xdp {
    fn default() -> Self {
        Xdp {
            mode: XdpMode::Auto,
            zero_copy: ZeroCopy::Auto,
            frames: 8192,
            idle: Idle::Busy,
        }
    }
}

/// The dataplane's port.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PortKind {
    /// AF_XDP sockets on `interface`, with lingerd's XDP program.
    #[default]
    Afxdp,
    /// A DPDK device (`dpdk:` section).
    Dpdk,
}

/// Most mbufs in one queue's mempool.
pub const MAX_MEMPOOL: u32 = 1 << 20;
/// The largest burst: the per-core loop moves at most 64 frames each way
/// per iteration.
pub const MAX_BURST: u16 = 64;

/// DPDK setup (all **restart**); only with `port: dpdk`.
///
/// The device is named either by `device` (the short form) or by
/// `eal_args` alone (exactly one `--vdev=…` or `-a …`); lingerd builds
/// the rest of the EAL command line itself (no PCI scan unless a PCI
/// device is named, no telemetry, hugepages when some are free and
/// mounted, else 256 MiB of ordinary memory).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, Validate)]
#[serde(default, deny_unknown_fields)]
pub struct Dpdk {
    /// **restart**. The device in the short form:
    /// `memif:socket=/run/lingerd/memif0.sock,role=server`,
    /// `af_packet:iface=eth1`, `tap:iface=dtap0` or a PCI address
    /// (`0000:03:00.0`). Absent: `eal_args` names it.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[garde(skip)]
    pub device: Option<DpdkDevice>,
    /// **restart**. More EAL arguments, appended after lingerd's own
    /// (`--log-level=info`, `--vdev=net_tap0,iface=x`, `-a 0000:03:00.0`).
    #[garde(length(max = 64), inner(length(min = 1, max = 4096)))]
    pub eal_args: Vec<String>,
    /// **restart**. Mbufs in each queue's mempool, 2048..=2^20 (DPDK is
    /// most frugal with 2^n − 1). Default 8191.
    #[garde(range(min = 2048, max = MAX_MEMPOOL))]
    pub mempool_size: u32,
    /// **restart**. The most frames one RX or TX burst moves, 1..=64.
    /// Default 64.
    #[garde(range(min = 1, max = MAX_BURST))]
    pub burst_size: u16,
    /// **restart**. Idle behaviour of the cores (`sleep`: a bounded sleep,
    /// since DPDK's vdevs have no RX interrupt here, cut short by a
    /// client's doorbell).
    #[garde(skip)]
    pub idle: Idle,
}

impl Default for Dpdk {
    fn default() -> Self {
        Dpdk {
            device: None,
            eal_args: Vec::new(),
            mempool_size: 8191,
            burst_size: MAX_BURST,
            idle: Idle::Busy,
        }
    }
}

/// The client attach socket and the per-client shared region's sizes
/// (they become the ABI's `LayoutParams`, with `cores` = number of queues).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, Validate)]
#[serde(default, deny_unknown_fields)]
pub struct Clients {
    /// **restart**. Absolute path of the `SOCK_SEQPACKET` attach socket
    /// (at most 107 bytes, the size of `sun_path` less its NUL).
    #[garde(skip)]
    pub socket: PathBuf,
    /// **reload** (checked at each attach). Uids allowed to attach, checked
    /// with `SO_PEERCRED`. Default `[0]`.
    #[garde(length(max = 1024))]
    pub allow_uids: Vec<u32>,
    /// **restart**. Entries per request and per completion ring, a power
    /// of two in 2..=2^20.
    #[garde(range(min = 2, max = lingerd_abi::layout::MAX_RING_ENTRIES))]
    pub ring_entries: u32,
    /// **restart**. Bytes per data chunk, a power of two in 64..=65536.
    #[garde(range(min = 64, max = lingerd_abi::layout::MAX_CHUNK_SIZE))]
    pub chunk_size: u32,
    /// **restart**. Chunks in the TX (client → daemon) arena, ≤ 2^20.
    #[garde(range(max = lingerd_abi::layout::MAX_CHUNKS))]
    pub tx_chunks: u32,
    /// **restart**. Chunks in the RX (daemon → client) arena, ≤ 2^20.
    #[garde(range(max = lingerd_abi::layout::MAX_CHUNKS))]
    pub rx_chunks: u32,
}

impl Clients {
    /// The `lingerd ctl` socket: beside the attach socket, its extension
    /// replaced by `ctl` (`/run/lingerd/lingerd.sock` →
    /// `/run/lingerd/lingerd.ctl`), so daemons that share a runtime
    /// directory keep apart.
    pub fn ctl_socket(&self) -> PathBuf {
        self.socket.with_extension("ctl")
    }
}

impl Default for Clients {
    fn default() -> Self {
        Clients {
            socket: PathBuf::from("/run/lingerd/lingerd.sock"),
            allow_uids: vec![0],
            ring_entries: 4096,
            chunk_size: 2048,
            tx_chunks: 4096,
            rx_chunks: 4096,
        }
    }
}

/// The Prometheus endpoint.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Metrics {
    /// **restart**. Address of the `/metrics` HTTP listener; `null`
    /// disables it. Default 127.0.0.1:9187.
    pub listen: Option<SocketAddr>,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics {
            listen: Some(SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::LOCALHOST, 9187))),
        }
    }
}

/// Log verbosity.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogLevel {
    /// Errors only.
    Error,
    /// Errors and warnings.
    Warn,
    /// The default.
    #[default]
    Info,
    /// Verbose.
    Debug,
    /// Everything (never on the per-packet path).
    Trace,
}

impl LogLevel {
    /// The lowercase name, as written in the YAML and understood by
    /// `tracing`'s filters.
    pub fn as_str(self) -> &'static str {
        match self {
            LogLevel::Error => "error",
            LogLevel::Warn => "warn",
            LogLevel::Info => "info",
            LogLevel::Debug => "debug",
            LogLevel::Trace => "trace",
        }
    }
}

/// Logging.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Log {
    /// **reload**. Verbosity.
    pub level: LogLevel,
}
