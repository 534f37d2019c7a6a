//! The one place where the YAML configuration becomes dataplane values,
//! for the shapes that really differ.
//!
//! The values both sides share (linger settings, the client-exit policy,
//! the TIME-WAIT RST policy, prefixes) are one `lingerd_abi::vocab` type
//! each and pass through untouched. What is left differs in shape: the
//! `tcp:` section's flat fields become a `TcpConfig` with its `RtoBounds`;
//! the configured queues become one [`QueuePlan`] each (its `EngineConfig`
//! and the core to pin it to), with an AF_XDP socket configuration per
//! queue ([`afxdp_port`]) or, for `port: dpdk`, one EAL command line and
//! device for all of them (`dpdk_plan`: the short device form becomes the
//! vdev's arguments); the `xdp:` words become the AF_XDP port's
//! (`zero_copy: on` is `Require`; `idle` gains the sleep cap); on a reload,
//! the engine's [`Tunables`] and the new [`ExitRule`]. Pure: no I/O; the interface's MAC and the secrets are
//! arguments, so every mapping is tested here.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use lingerd_abi::vocab::ClientExitPolicy;
use lingerd_config::{Config, Idle, PortKind, XdpMode};
use lingerd_dataplane::engine::config::{EngineConfig, Prefix, ReasmConfig, TcpConfig, Tunables};
use lingerd_dataplane::flow::FlowSteer;
use lingerd_dataplane::port::afxdp::{AfXdpConfig, AttachMode, IdleMode, XskConfig, ZeroCopy};
use lingerd_dataplane::tcp::rtt::RtoBounds;
use lingerd_dataplane::wire::EthernetAddress;

/// The longest a sleeping core waits in poll(2) before looking at its
/// request sources again (sleep mode only).
pub(crate) const SLEEP_CAP_MS: u64 = 2;

/// Secrets drawn once per start: ISN key, SYN-cookie key, 4-tuple hash key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Secrets {
    /// RFC 6528 secret.
    pub(crate) isn: [u64; 2],
    /// SYN-cookie secret, drawn apart from the ISN one.
    pub(crate) cookie: [u64; 2],
    /// Table hash key.
    pub(crate) hash: u64,
}

/// Everything one dataplane thread needs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct QueuePlan {
    /// Index among the configured queues (the engine's `core` byte, the
    /// top byte of its handles).
    pub(crate) index: u8,
    /// The NIC queue.
    pub(crate) queue: u32,
    /// The CPU to pin the thread to.
    pub(crate) cpu: u32,
    /// The engine's configuration.
    pub(crate) engine: EngineConfig,
}

/// A configured timer in the dataplane's milliseconds (the configuration's
/// ranges keep every timer far below `u32::MAX` ms).
fn millis(d: lingerd_config::Duration) -> u32 {
    d.as_millis_u32().unwrap_or(u32::MAX)
}

/// The dataplane's TCP parameters from the `tcp:` section.
pub(crate) fn tcp_config(c: &lingerd_config::Tcp) -> TcpConfig {
    TcpConfig {
        mss: c.mss,
        time_wait_ms: millis(c.time_wait),
        orphan_timeout_ms: millis(c.orphan_timeout),
        syn_received_timeout_ms: millis(c.syn_received_timeout),
        syn_retries: c.syn_retries,
        max_retransmits: c.max_retransmits,
        rto: RtoBounds {
            min_ms: millis(c.rto_min),
            max_ms: millis(c.rto_max),
            initial_ms: millis(c.rto_initial),
        },
        delayed_ack_ms: millis(c.delayed_ack),
        send_buffer: c.send_buffer,
        recv_buffer: c.recv_buffer,
        window_shift: c.window_shift,
        timestamps: c.timestamps,
        // Always offered (not a YAML field): only tests switch it off.
        sack: true,
        time_wait_rst: c.time_wait_rst,
        challenge_acks_per_s: c.challenge_acks_per_s,
        ephemeral_ports: (c.ephemeral_ports[0], c.ephemeral_ports[1]),
    }
}

/// What happens to connections when a client goes away or the daemon
/// stops: `close.on_client_exit`, and how long a stopping queue waits for
/// those closes (the longest default linger plus a second).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct ExitRule {
    /// `close.on_client_exit`.
    pub(crate) policy: ClientExitPolicy,
    /// The bound on a stopping queue's drain.
    pub(crate) drain_cap: std::time::Duration,
}

/// The exit rule of `c`.
pub(crate) fn exit_rule(c: &Config) -> ExitRule {
    let l = c.close.default_linger;
    ExitRule {
        policy: c.close.on_client_exit,
        drain_cap: std::time::Duration::from_millis(1000 + u64::from(if l.on { l.ms } else { 0 })),
    }
}

impl ExitRule {
    /// The rule after a reload to `new`: its policy, and a drain bound that
    /// never shrinks (connections made before the reload keep the longer
    /// default linger they were given).
    pub(crate) fn reloaded(self, new: ExitRule) -> ExitRule {
        ExitRule {
            policy: new.policy,
            drain_cap: self.drain_cap.max(new.drain_cap),
        }
    }
}

/// The engine's reloadable values (`tcp` timeouts, retries and policies,
/// `close.default_linger`, each core's share of `close.max_rst_per_sec`)
/// from `c`.
pub(crate) fn tunables(c: &Config) -> Tunables {
    Tunables::of(&tcp_config(&c.tcp), c.close.default_linger, rst_share(c))
}

/// Each core's share of `close.max_rst_per_sec`: the limit divided by the
/// number of queues, rounded up (so the host may exceed the limit by fewer
/// than one RST per second per core; a share of 0 would mean unpaced).
/// Shares are fixed: an idle core lends nothing to a busy one. 0 stays 0
/// (unpaced).
pub(crate) fn rst_share(c: &Config) -> u32 {
    let cores = c.queues.len().max(1) as u32;
    c.close.max_rst_per_sec.div_ceil(cores)
}

/// The cores' idle behaviour: the configured port's `idle`.
pub(crate) fn port_idle(c: &Config) -> IdleMode {
    idle_mode(match c.port {
        PortKind::Afxdp => c.xdp.idle,
        PortKind::Dpdk => c.dpdk.idle,
    })
}

/// The cores' idle behaviour.
pub(crate) fn idle_mode(i: Idle) -> IdleMode {
    match i {
        Idle::Busy => IdleMode::BusyPoll,
        Idle::Sleep => IdleMode::Sleep {
            max: std::time::Duration::from_millis(SLEEP_CAP_MS),
        },
    }
}

/// XDP attach mode.
pub(crate) fn attach_mode(m: XdpMode) -> AttachMode {
    match m {
        XdpMode::Auto => AttachMode::Auto,
        XdpMode::Native => AttachMode::Native,
        XdpMode::Generic => AttachMode::Generic,
    }
}

/// The engine's addresses with their prefix lengths, both families, in
/// the file's order: an engine picks, per family, the first address on the
/// peer's link, else the first of that family, as a connect's source.
fn engine_addresses(c: &Config) -> Vec<Prefix> {
    c.addresses.clone()
}

/// The engine's IPv4 gateway: with [`engine_gateway6`], the one place the
/// configured gateways become the engine's.
fn engine_gateway(c: &Config) -> Option<Ipv4Addr> {
    match c.gateway.v4()?.ip.addr {
        IpAddr::V4(a) => Some(a),
        IpAddr::V6(_) => None,
    }
}

/// The engine's IPv6 gateway, link-local or not (a `%scope` names the
/// interface the engine runs on, which the configuration checked).
fn engine_gateway6(c: &Config) -> Option<Ipv6Addr> {
    match c.gateway.v6()?.ip.addr {
        IpAddr::V6(a) => Some(a),
        IpAddr::V4(_) => None,
    }
}

/// The daemon's addresses, IPv4 and IPv6, as the steering program wants
/// them (it steers frames for each, and the ICMPv6 meant for the IPv6
/// ones, to the socket).
pub(crate) fn addresses(c: &Config) -> Vec<IpAddr> {
    engine_addresses(c).iter().map(|a| a.addr()).collect()
}

/// The listening ports (the steering program also steers the ephemeral
/// range, for answers to our own connects).
pub(crate) fn ports(c: &Config) -> Vec<u16> {
    c.listen.iter().map(|l| l.port).collect()
}

/// One plan per configured queue. `mac` is the port's address (the
/// interface's, or the DPDK device's).
pub(crate) fn plan(c: &Config, mac: EthernetAddress, secrets: Secrets) -> Vec<QueuePlan> {
    let n = c.queues.len();
    let tcp = tcp_config(&c.tcp);
    let addrs = engine_addresses(c);
    c.queue_cores()
        .enumerate()
        .map(|(i, (queue, cpu))| {
            let index = i as u8;
            let engine = EngineConfig {
                core: index,
                mac,
                addrs: addrs.clone(),
                gateway: engine_gateway(c),
                gateway6: engine_gateway6(c),
                max_connections: c.tcp.max_connections_per_core(n),
                tcp: tcp.clone(),
                reassembly: ReasmConfig {
                    budget_bytes: c.tcp.reassembly_per_core,
                    per_conn_bytes: c.tcp.reassembly_per_connection,
                },
                default_linger: c.close.default_linger,
                isn_secret: secrets.isn,
                cookie_secret: secrets.cookie,
                hash_key: secrets.hash,
                flow: (n > 1).then(|| FlowSteer::software(index, n as u8)),
                max_rst_per_s: rst_share(c),
                max_replies_per_s: lingerd_dataplane::shared::reply_limit::DEFAULT_REPLIES_PER_S,
            };
            QueuePlan {
                index,
                queue,
                cpu,
                engine,
            }
        })
        .collect()
}

/// The AF_XDP socket of `queue` (`port: afxdp`).
pub(crate) fn afxdp_port(c: &Config, queue: u32) -> AfXdpConfig {
    let xsk = XskConfig {
        zero_copy: match c.xdp.zero_copy {
            lingerd_config::ZeroCopy::Auto => ZeroCopy::Auto,
            lingerd_config::ZeroCopy::On => ZeroCopy::Require,
            lingerd_config::ZeroCopy::Off => ZeroCopy::Off,
        },
        ..XskConfig::with_frames(c.xdp.frames)
    };
    AfXdpConfig {
        iface: c.interface.clone(),
        queue,
        attach: attach_mode(c.xdp.mode),
        xsk,
        addrs: addresses(c),
        ports: ports(c),
        ephemeral: Some((c.tcp.ephemeral_ports[0], c.tcp.ephemeral_ports[1])),
    }
}

/// The DPDK side of `port: dpdk`: the EAL's command line and the device
/// every queue pair belongs to.
#[cfg(feature = "dpdk")]
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct DpdkPlan {
    /// The EAL (`dpdk.eal_args` appended to lingerd's own arguments).
    pub(crate) eal: lingerd_dataplane::port::dpdk::EalConfig,
    /// The device, one queue pair per configured queue.
    pub(crate) port: lingerd_dataplane::port::dpdk::DpdkConfig,
}

/// The DPDK plan of `c` (`port: dpdk`, already validated); `Err` for what
/// only this build can refuse (a PCI device without a PCI bus).
#[cfg(feature = "dpdk")]
pub(crate) fn dpdk_plan(c: &Config) -> Result<DpdkPlan, String> {
    use lingerd_config::DeviceKind;
    use lingerd_dataplane::port::dpdk::{DpdkConfig, EalConfig, PCI_BUS};

    let d = &c.dpdk;
    let queues = c.queues.len();
    let mut extra = d.eal_args.clone();
    let (device, pci) = match &d.device {
        Some(dev) if dev.kind == DeviceKind::Pci => {
            extra.extend(["-a".to_owned(), dev.pci.clone()]);
            (dev.pci.clone(), true)
        }
        Some(dev) => {
            let mut args = format!("{}0", dev.kind.driver().unwrap_or("net_null"));
            for (k, v) in &dev.options {
                args.push_str(&format!(",{k}={v}"));
            }
            // lingerd's defaults for what the short form leaves out: memif
            // on a socket file (removed at stop), af_packet with one queue
            // pair per core.
            match dev.kind {
                DeviceKind::Memif if dev.option("socket-abstract").is_none() => {
                    args.push_str(",socket-abstract=no");
                }
                DeviceKind::AfPacket if dev.option("qpairs").is_none() => {
                    args.push_str(&format!(",qpairs={queues}"));
                }
                _ => {}
            }
            (args, false)
        }
        None => {
            let named = lingerd_config::eal_devices(&d.eal_args);
            let first = named
                .first()
                .ok_or("dpdk.eal_args names no device (--vdev=... or -a ...)")?;
            (first.name.clone(), first.pci)
        }
    };
    if pci && !PCI_BUS {
        return Err(format!(
            "DPDK device {device} is a PCI device, and this lingerd links DPDK statically with \
             the vdev drivers only (memif, ring, null, tap, af_packet): build it with \
             LINGERD_DPDK_SHARED=1 to drive NICs"
        ));
    }
    Ok(DpdkPlan {
        eal: EalConfig {
            pci,
            extra,
            ..EalConfig::default()
        },
        port: DpdkConfig {
            queues: queues as u16,
            mbufs: d.mempool_size,
            burst: d.burst_size,
            ..DpdkConfig::new(&device)
        },
    })
}

#[cfg(test)]
mod tests {
    use lingerd_abi::vocab::{Linger, TimeWaitRst};

    use super::*;

    const SECRETS: Secrets = Secrets {
        isn: [1, 2],
        cookie: [4, 5],
        hash: 3,
    };
    const MAC: EthernetAddress = EthernetAddress([2, 0, 0, 0, 0, 1]);

    fn parse(yaml: &str) -> Config {
        Config::parse(yaml, "t.yaml").expect("valid")
    }

    /// The one guard against drift left: the configuration's defaults
    /// (`lingerd_config::Tcp::default()`, where they are defined) map to
    /// the dataplane's own `TcpConfig::default()` that its tests and
    /// benchmarks use.
    #[test]
    fn defaults_map_to_dataplane_defaults() {
        let c = parse("interface: eth0\naddresses: [198.18.0.3/24]\n");
        let plans = plan(&c, MAC, SECRETS);
        assert_eq!(plans.len(), 1);
        let p = &plans[0];
        assert_eq!((p.index, p.queue, p.cpu), (0, 0, 1));
        assert_eq!(p.engine.tcp, TcpConfig::default());
        assert_eq!(p.engine.default_linger, Linger::default());
        assert_eq!(p.engine.flow, None, "one queue: no flow steering");
        assert_eq!(p.engine.addrs, ["198.18.0.3/24".parse::<Prefix>().unwrap()]);
        assert_eq!(p.engine.mac, MAC);
        assert_eq!(p.engine.isn_secret, [1, 2]);
        assert_eq!(p.engine.cookie_secret, [4, 5]);
        assert_eq!(p.engine.hash_key, 3);
        let port = afxdp_port(&c, p.queue);
        assert_eq!(port.iface, "eth0");
        assert_eq!(port.attach, AttachMode::Auto);
        assert_eq!(port.xsk.zero_copy, ZeroCopy::Auto);
        assert_eq!(port.xsk.frames, 8192);
        assert!(port.ports.is_empty());
        assert_eq!(port.ephemeral, Some((32_768, 60_999)));
        assert_eq!(idle_mode(c.xdp.idle), IdleMode::BusyPoll);
        assert_eq!(c.close.on_client_exit, ClientExitPolicy::Linger);
        assert_eq!(exit_rule(&c).policy, ClientExitPolicy::Linger);
    }

    #[test]
    fn every_field_is_carried() {
        let c = parse(
            "interface: lgd1-d\nqueues: [0, 1]\ncores: [0, 1]\naddresses: [198.18.0.3/24, 198.19.0.3/16]\n\
             gateway: {ip: 198.18.0.254}\nlisten: [{port: 7, backlog: 10}, {port: 80, backlog: 100}]\n\
             tcp: {time_wait: 1s, orphan_timeout: 2s, syn_received_timeout: 3s, syn_retries: 4,\n\
               max_retransmits: 5, rto_min: 10ms, rto_max: 20s, rto_initial: 300ms, delayed_ack: 0s,\n\
               mss: 1400, send_buffer: 1048576, recv_buffer: 32768, reassembly_per_core: 1048576,\n\
               reassembly_per_connection: 65536, window_shift: 3, timestamps: false,\n\
               time_wait_rst: ignore, challenge_acks_per_s: 2, max_connections: 1001, ephemeral_ports: [40000, 40999]}\n\
             close: {default_linger: {on: true, secs: 2}, on_client_exit: abort}\n\
             xdp: {mode: generic, zero_copy: off, frames: 4096, idle: sleep}\n",
        );
        let plans = plan(&c, MAC, SECRETS);
        assert_eq!(plans.len(), 2);
        let t = &plans[1].engine.tcp;
        assert_eq!(
            (
                t.time_wait_ms,
                t.orphan_timeout_ms,
                t.syn_received_timeout_ms
            ),
            (1000, 2000, 3000)
        );
        assert_eq!((t.syn_retries, t.max_retransmits), (4, 5));
        assert_eq!(
            t.rto,
            RtoBounds {
                min_ms: 10,
                max_ms: 20_000,
                initial_ms: 300
            }
        );
        assert_eq!((t.delayed_ack_ms, t.mss), (0, 1400));
        assert_eq!(
            (t.send_buffer, t.recv_buffer, t.window_shift),
            (1 << 20, 32_768, 3)
        );
        assert!(!t.timestamps);
        assert_eq!(
            plans[1].engine.reassembly,
            ReasmConfig {
                budget_bytes: 1 << 20,
                per_conn_bytes: 65_536
            }
        );
        assert_eq!(t.time_wait_rst, TimeWaitRst::Ignore);
        assert_eq!(t.challenge_acks_per_s, 2);
        assert_eq!(t.ephemeral_ports, (40_000, 40_999));
        for (i, p) in plans.iter().enumerate() {
            assert_eq!((p.index as usize, p.queue, p.cpu), (i, i as u32, i as u32));
            assert_eq!(p.engine.core as usize, i);
            assert_eq!(
                p.engine.max_connections, 501,
                "1001 split over 2, rounded up"
            );
            assert_eq!(
                p.engine.gateway,
                Some(std::net::Ipv4Addr::new(198, 18, 0, 254))
            );
            assert_eq!(p.engine.addrs.len(), 2);
            assert_eq!(p.engine.addrs[1].prefix_len(), 16);
            assert_eq!(p.engine.default_linger, Linger { on: true, ms: 2000 });
            let flow = p.engine.flow.as_ref().expect("two queues: flow steering");
            assert_eq!((flow.me as usize, flow.queues), (i, 2));
            let port = afxdp_port(&c, p.queue);
            assert_eq!(port.queue, p.queue);
            assert_eq!(port.attach, AttachMode::Generic);
            assert_eq!(port.xsk.zero_copy, ZeroCopy::Off);
            assert_eq!(port.xsk.frames, 4096);
            assert_eq!(port.ports, [7, 80]);
            assert_eq!(port.ephemeral, Some((40_000, 40_999)));
            assert_eq!(port.addrs.len(), 2);
        }
        assert_eq!(
            idle_mode(c.xdp.idle),
            IdleMode::Sleep {
                max: std::time::Duration::from_millis(SLEEP_CAP_MS)
            }
        );
        assert_eq!(exit_rule(&c).policy, ClientExitPolicy::Abort);
    }

    #[test]
    fn dual_stack_addresses_reach_the_engine_and_the_steering_program() {
        let c = parse(
            "interface: eth0\naddresses: [2001:db8::1/64, 198.18.0.3/24, 2001:2::1/48]\n\
             gateway: [{ip: 'fe80::1%eth0'}, {ip: 198.18.0.254}]\n",
        );
        let p = &plan(&c, MAC, SECRETS)[0];
        let addrs: Vec<String> = p.engine.addrs.iter().map(|a| a.to_string()).collect();
        assert_eq!(addrs, ["2001:db8::1/64", "198.18.0.3/24", "2001:2::1/48"]);
        assert_eq!(p.engine.gateway, Some(Ipv4Addr::new(198, 18, 0, 254)));
        assert_eq!(p.engine.gateway6, Some("fe80::1".parse().unwrap()));
        let steer: Vec<String> = afxdp_port(&c, 0)
            .addrs
            .iter()
            .map(|a| a.to_string())
            .collect();
        assert_eq!(steer, ["2001:db8::1", "198.18.0.3", "2001:2::1"]);
        // A v6-only daemon: no IPv4 gateway for the engine.
        let c =
            parse("interface: eth0\naddresses: [2001:db8::1/64]\ngateway: {ip: 2001:db8::fe}\n");
        assert_eq!(plan(&c, MAC, SECRETS)[0].engine.gateway, None);
        assert_eq!(
            plan(&c, MAC, SECRETS)[0].engine.gateway6,
            Some("2001:db8::fe".parse().unwrap())
        );
        assert_eq!(
            afxdp_port(&c, 0).addrs,
            [IpAddr::from(
                "2001:db8::1".parse::<std::net::Ipv6Addr>().unwrap()
            )]
        );
    }

    /// The configuration refuses more addresses than an engine's table can
    /// index.
    #[test]
    fn the_address_limit_is_the_engines() {
        assert_eq!(
            lingerd_config::MAX_ADDRESSES,
            lingerd_dataplane::engine::config::MAX_ADDRS
        );
    }

    #[test]
    fn reload_values_match_start_up() {
        let c = parse(
            "interface: eth0\naddresses: [198.18.0.3/24]\n\
             tcp: {time_wait: 1s, rto_min: 10ms, time_wait_rst: ignore}\n\
             close: {default_linger: {on: true, secs: 2}, on_client_exit: abort}\n",
        );
        let p = &plan(&c, MAC, SECRETS)[0];
        assert_eq!(tunables(&c), p.engine.tunables());
        assert_eq!(tunables(&c).time_wait_ms, 1000);
        let rule = exit_rule(&c);
        assert_eq!(rule.policy, ClientExitPolicy::Abort);
        assert_eq!(rule.drain_cap, std::time::Duration::from_millis(3000));
        // A shorter default linger does not shorten the drain bound.
        let shorter = exit_rule(&parse(
            "interface: eth0\naddresses: [198.18.0.3/24]\nclose: {on_client_exit: graceful}\n",
        ));
        assert_eq!(
            rule.reloaded(shorter),
            ExitRule {
                policy: ClientExitPolicy::Graceful,
                drain_cap: std::time::Duration::from_millis(3000)
            }
        );
    }

    #[test]
    fn rst_limit_is_shared_out_rounding_up() {
        let base = "interface: eth0\naddresses: [198.18.0.3/24]\n";
        for (queues, limit, share) in [
            ("[1]", 10_000, 10_000),
            ("[0, 1]", 10_000, 5_000),
            ("[0, 1, 2]", 10_000, 3_334),
            ("[0, 1, 2]", 2, 1),
            ("[0, 1]", 0, 0),
        ] {
            let c = parse(&format!(
                "{base}queues: {queues}\ncores: {queues}\nclose: {{max_rst_per_sec: {limit}}}\n"
            ));
            assert_eq!(rst_share(&c), share, "{queues} {limit}");
            assert_eq!(tunables(&c).max_rst_per_s, share);
            assert!(
                plan(&c, MAC, SECRETS)
                    .iter()
                    .all(|p| p.engine.max_rst_per_s == share)
            );
        }
    }

    #[cfg(feature = "dpdk")]
    #[test]
    fn dpdk_short_forms_become_vdev_arguments() {
        use lingerd_dataplane::port::dpdk::PCI_BUS;
        let dpdk = |extra: &str| {
            parse(&format!(
                "port: dpdk\naddresses: [198.18.0.3/24]\nqueues: [0, 1]\ncores: [0, 1]\n{extra}"
            ))
        };
        let c = dpdk(
            "dpdk: {device: \"memif:socket=/run/lingerd/m.sock,role=server\", \
             mempool_size: 4095, burst_size: 32, idle: sleep, eal_args: [--log-level=info]}\n",
        );
        let p = dpdk_plan(&c).unwrap();
        assert_eq!(
            p.port.device,
            "net_memif0,socket=/run/lingerd/m.sock,role=server,socket-abstract=no"
        );
        assert_eq!((p.port.queues, p.port.mbufs, p.port.burst), (2, 4095, 32));
        assert_eq!(p.eal.extra, ["--log-level=info"]);
        assert!(!p.eal.pci);
        assert!(p.eal.args().contains(&"--no-pci".to_owned()));
        assert_eq!(
            port_idle(&c),
            IdleMode::Sleep {
                max: std::time::Duration::from_millis(SLEEP_CAP_MS)
            }
        );
        let c = dpdk("dpdk: {device: \"af_packet:iface=lgd1-d\"}\n");
        let p = dpdk_plan(&c).unwrap();
        assert_eq!(p.port.device, "net_af_packet0,iface=lgd1-d,qpairs=2");
        assert_eq!(port_idle(&c), IdleMode::BusyPoll);
        let c = dpdk("dpdk: {eal_args: [\"--vdev=net_tap0,iface=dtap9\"]}\n");
        let p = dpdk_plan(&c).unwrap();
        assert_eq!(p.port.device, "net_tap0");
        assert_eq!(p.eal.extra, ["--vdev=net_tap0,iface=dtap9"]);
        let c = dpdk("dpdk: {device: \"03:00.0\"}\n");
        match (dpdk_plan(&c), PCI_BUS) {
            (Ok(p), true) => {
                assert_eq!(p.port.device, "0000:03:00.0");
                assert!(p.eal.pci);
                assert_eq!(p.eal.extra, ["-a", "0000:03:00.0"]);
                assert!(!p.eal.args().contains(&"--no-pci".to_owned()));
            }
            (Err(e), false) => assert!(e.contains("LINGERD_DPDK_SHARED=1"), "{e}"),
            (r, pci_bus) => panic!("PCI bus {pci_bus}: {r:?}"),
        }
    }

    #[test]
    fn zero_copy_and_modes() {
        assert_eq!(attach_mode(XdpMode::Native), AttachMode::Native);
        assert_eq!(attach_mode(XdpMode::Auto), AttachMode::Auto);
        let c = parse("interface: eth0\naddresses: [198.18.0.3/24]\nxdp: {zero_copy: on}\n");
        assert_eq!(afxdp_port(&c, 0).xsk.zero_copy, ZeroCopy::Require);
        assert_eq!(
            attach_mode(XdpMode::Generic),
            AttachMode::Generic,
            "the xdp words keep their meaning"
        );
    }
}
