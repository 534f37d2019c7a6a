//! The few lines `check-config` prints about a valid configuration: what an
//! operator wants to eyeball before a restart (which NIC, which cores,
//! which addresses, how big the tables and the per-client region are).
//! Formatting only; it reads a `Config` and returns text.

use std::fmt::Write;

use lingerd_abi::layout::Layout;
use lingerd_config::{Config, GatewayMac, PortKind};

/// A short, multi-line, human summary of `c`, each line indented by two
/// spaces and ending in a newline.
pub(crate) fn summary(c: &Config) -> String {
    let mut s = String::new();
    let pairs: Vec<String> = c
        .queue_cores()
        .map(|(q, core)| format!("queue {q} on core {core}"))
        .collect();
    match c.port {
        PortKind::Afxdp => {
            let _ = writeln!(s, "  interface {}: {}", c.interface, pairs.join(", "));
        }
        PortKind::Dpdk => {
            let device = match &c.dpdk.device {
                Some(d) => d.to_string(),
                None => format!("from eal_args {:?}", c.dpdk.eal_args),
            };
            let _ = writeln!(s, "  dpdk device {device}: {}", pairs.join(", "));
        }
    }
    let addrs: Vec<String> = c.addresses.iter().map(|a| a.to_string()).collect();
    let _ = write!(s, "  addresses {}", addrs.join(", "));
    if c.gateway.is_empty() {
        let _ = writeln!(s, "; no gateway (on-link peers only)");
    } else {
        let gws: Vec<String> = c
            .gateway
            .iter()
            .map(|gw| {
                let mac = match (gw.mac, gw.ip.addr.is_ipv4()) {
                    (GatewayMac::Auto, true) => "ARP".to_owned(),
                    (GatewayMac::Auto, false) => "ND".to_owned(),
                    (GatewayMac::Fixed(m), _) => m.to_string(),
                };
                format!("{} ({mac})", gw.ip)
            })
            .collect();
        let _ = writeln!(s, "; gateway {}", gws.join(", "));
    }
    if c.listen.is_empty() {
        let _ = writeln!(s, "  listen: none (outgoing connections only)");
    } else {
        let ports: Vec<String> = c
            .listen
            .iter()
            .map(|l| format!("{} (backlog {})", l.port, l.backlog))
            .collect();
        let _ = writeln!(s, "  listen {}", ports.join(", "));
    }
    let t = &c.tcp;
    let _ = writeln!(
        s,
        "  tcp: {} connections ({} per core), mss {}, time_wait {}, ephemeral ports {}-{}",
        t.max_connections,
        t.max_connections_per_core(c.queues.len()),
        t.mss,
        t.time_wait,
        t.ephemeral_ports[0],
        t.ephemeral_ports[1]
    );
    let l = c.close.default_linger;
    let linger = if l.on {
        format!("on, {} ms", l.ms)
    } else {
        "off".to_owned()
    };
    let pacing = match c.close.max_rst_per_sec {
        0 => "unpaced".to_owned(),
        n => format!("{n}/s"),
    };
    let _ = writeln!(
        s,
        "  close: default linger {linger}, on client exit {}, RSTs {pacing}",
        lower(c.close.on_client_exit)
    );
    let x = &c.xdp;
    let d = &c.dpdk;
    let _ = match c.port {
        PortKind::Afxdp => writeln!(
            s,
            "  xdp: mode {}, zero-copy {}, {} frames per queue, idle {}",
            lower(x.mode),
            lower(x.zero_copy),
            x.frames,
            lower(x.idle)
        ),
        PortKind::Dpdk => writeln!(
            s,
            "  dpdk: {} mbufs per queue, bursts of {}, idle {}, EAL arguments {:?}",
            d.mempool_size,
            d.burst_size,
            lower(d.idle),
            d.eal_args
        ),
    };
    let cl = &c.clients;
    let region = Layout::new(c.layout_params())
        .map(|l| format!("{:.1} MiB", l.total as f64 / (1024.0 * 1024.0)))
        .unwrap_or_else(|_| "invalid".to_owned());
    let _ = writeln!(
        s,
        "  clients: {} (uids {:?}), rings of {} entries, {region} shared region per client",
        cl.socket.display(),
        cl.allow_uids,
        cl.ring_entries
    );
    let metrics = match c.metrics.listen {
        Some(a) => a.to_string(),
        None => "off".to_owned(),
    };
    let _ = writeln!(s, "  metrics {metrics}; log level {}", c.log.level.as_str());
    s
}

/// `XdpMode::Auto` → `auto`: the YAML spelling of a unit enum.
fn lower(v: impl std::fmt::Debug) -> String {
    format!("{v:?}").to_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_names_the_essentials() {
        let c = Config::parse(
            "interface: eth0\nqueues: [0, 1]\ncores: [2, 3]\naddresses: [198.18.0.1/24]\n\
             listen: [{port: 80}]\nclose: {default_linger: {on: true, secs: 5}}\n",
            "t.yaml",
        )
        .unwrap();
        let s = summary(&c);
        assert!(
            s.contains("interface eth0: queue 0 on core 2, queue 1 on core 3"),
            "{s}"
        );
        assert!(s.contains("addresses 198.18.0.1/24; no gateway"), "{s}");
        assert!(s.contains("listen 80 (backlog 4096)"), "{s}");
        assert!(s.contains("1048576 connections (524288 per core)"), "{s}");
        assert!(s.contains("default linger on, 5000 ms"), "{s}");
        assert!(s.contains("on client exit linger"), "{s}");
        assert!(s.contains("MiB shared region per client"), "{s}");
        assert!(s.lines().all(|l| l.starts_with("  ")), "{s}");
    }

    #[test]
    fn summary_names_both_gateways() {
        let c = Config::parse(
            "interface: eth0\naddresses: [198.18.0.1/24, 2001:db8::1/64]\n\
             gateway: [{ip: 198.18.0.254}, {ip: 'fe80::1%eth0', mac: '02:00:5e:00:00:01'}]\n",
            "t.yaml",
        )
        .unwrap();
        let s = summary(&c);
        assert!(
            s.contains(
                "addresses 198.18.0.1/24, 2001:db8::1/64; gateway 198.18.0.254 (ARP), fe80::1%eth0 (02:00:5e:00:00:01)"
            ),
            "{s}"
        );
    }

    #[test]
    fn summary_of_a_dpdk_file() {
        let c = Config::parse(
            "port: dpdk\naddresses: [198.18.0.1/24]\n\
             dpdk: {device: \"af_packet:iface=eth1\", burst_size: 32, idle: sleep}\n",
            "t.yaml",
        )
        .unwrap();
        let s = summary(&c);
        assert!(
            s.contains("dpdk device af_packet:iface=eth1: queue 0 on core 1"),
            "{s}"
        );
        assert!(
            s.contains("dpdk: 8191 mbufs per queue, bursts of 32, idle sleep"),
            "{s}"
        );
        assert!(!s.contains("xdp:"), "{s}");
    }
}
