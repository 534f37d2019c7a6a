//! `port: dpdk` and the `dpdk:` section from the user's side: the short
//! device forms, devices named in `eal_args`, the sizes, the sections that
//! belong to the other port, and a binary built without the feature; each
//! mistake checked for its message and the line and column it points at.

mod support;

use lingerd_config::{Build, Config, ConfigError, DeviceKind, Idle, PortKind};

const NAME: &str = "dpdk.yaml";
/// A DPDK file's required lines; tests append to it, so line 3 is theirs.
const BASE: &str = "port: dpdk\naddresses: [198.18.0.1/24]\n";
const MEMIF: &str = "dpdk: {device: \"memif:socket=/run/lingerd/memif0.sock,role=server\"}\n";

fn ok(extra: &str) -> Config {
    support::parse_ok(BASE, NAME, extra)
}

fn err(extra: &str) -> ConfigError {
    support::parse_err(BASE, NAME, extra)
}

/// Some problem says `needle` at `line:col`, and the rendering names the
/// file at that place.
#[track_caller]
fn assert_has(e: &ConfigError, line: u64, col: u64, needle: &str) {
    support::assert_has(e, line, col, needle);
    let text = e.to_string();
    assert!(
        text.contains(&format!("{NAME}:{line}:{col}")),
        "no {NAME}:{line}:{col} in:\n{text}"
    );
}

#[test]
fn memif_short_form_with_defaults() {
    let c = ok(MEMIF);
    assert_eq!(c.port, PortKind::Dpdk);
    assert_eq!(c.interface, "", "no interface with DPDK");
    let d = c.dpdk.device.as_ref().expect("a device");
    assert_eq!(d.kind, DeviceKind::Memif);
    assert_eq!(d.option("socket"), Some("/run/lingerd/memif0.sock"));
    assert_eq!(d.option("role"), Some("server"));
    assert_eq!(c.dpdk.mempool_size, 8191);
    assert_eq!(c.dpdk.burst_size, 64);
    assert_eq!(c.dpdk.idle, Idle::Busy);
    assert!(c.dpdk.eal_args.is_empty());
    // Serialized and read back, it is the same configuration.
    assert_eq!(Config::parse(&c.to_yaml(), "again").unwrap(), c);
}

#[test]
fn every_field_is_read() {
    let c = ok("queues: [0, 1]\ncores: [0, 1]\n\
         dpdk:\n  device: af_packet:iface=lgd1-d\n  eal_args: [--log-level=info]\n  \
         mempool_size: 4095\n  burst_size: 32\n  idle: sleep\n");
    let d = c.dpdk.device.as_ref().unwrap();
    assert_eq!(d.kind, DeviceKind::AfPacket);
    assert_eq!(d.option("iface"), Some("lgd1-d"));
    assert_eq!(c.dpdk.eal_args, ["--log-level=info"]);
    assert_eq!(c.dpdk.mempool_size, 4095);
    assert_eq!(c.dpdk.burst_size, 32);
    assert_eq!(c.dpdk.idle, Idle::Sleep);
    assert_eq!(c.queues, [0, 1]);
}

#[test]
fn pci_and_tap_forms() {
    let c = ok("dpdk: {device: \"03:00.0\"}\n");
    let d = c.dpdk.device.unwrap();
    assert_eq!((d.kind, d.pci.as_str()), (DeviceKind::Pci, "0000:03:00.0"));
    let c = ok("dpdk: {device: \"tap:iface=dtap0\"}\n");
    assert_eq!(c.dpdk.device.unwrap().kind, DeviceKind::Tap);
}

#[test]
fn eal_args_alone_name_the_device() {
    let c = ok("dpdk:\n  eal_args: [\"--vdev=net_tap0,iface=dtap0\", --log-level=debug]\n");
    assert_eq!(c.dpdk.device, None);
    let devs = lingerd_config::eal_devices(&c.dpdk.eal_args);
    assert_eq!(devs.len(), 1);
    assert_eq!(devs[0].name, "net_tap0");
    let c = ok("dpdk:\n  eal_args: [-a, \"0000:03:00.0\"]\n");
    assert!(lingerd_config::eal_devices(&c.dpdk.eal_args)[0].pci);
}

#[test]
fn no_device_at_all() {
    let e = err("dpdk: {mempool_size: 4095}\n");
    assert_has(&e, 3, 7, "port: dpdk needs a device");
    // Without a dpdk section the problem has no line to point at, but it is
    // still reported.
    let e = err("");
    assert!(e.to_string().contains("port: dpdk needs a device"), "{e}");
}

#[test]
fn device_named_twice() {
    let e = err("dpdk:\n  device: tap\n  eal_args: [--no-huge, \"--vdev=net_ring0\"]\n");
    assert_has(&e, 5, 25, "name the device once");
    let e = err("dpdk:\n  eal_args: [\"--vdev=net_ring0\", -a, \"03:00.0\"]\n");
    assert_has(&e, 4, 34, "a second device (0000:03:00.0)");
}

#[test]
fn bad_short_forms() {
    let cases: &[(&str, &str)] = &[
        ("eth1", "is not a DPDK device"),
        ("memif:socket=/x.sock", "needs role=server or role=client"),
        ("memif:role=server", "needs socket=PATH"),
        (
            "memif:socket=x.sock,role=server",
            "must be an absolute path",
        ),
        ("memif:socket=/x.sock,role=master", "write server or client"),
        (
            "memif:socket=/x.sock,role=server,socket-abstract=yes",
            "socket files",
        ),
        (
            "memif:socket=/x.sock,role=server,rol=client",
            "has no option `rol`",
        ),
        ("af_packet", "needs iface=NAME"),
        ("af_packet:iface=a/b", "is not an interface name"),
        ("af_packet:iface=eth1,iface=eth2", "given twice"),
        ("af_packet:iface", "is not key=value"),
        ("tap:iface=", "has no value"),
        ("0000:03:00.9", "is not a DPDK device"),
    ];
    for (device, needle) in cases {
        let e = err(&format!("dpdk:\n  device: \"{device}\"\n"));
        assert_has(&e, 4, 11, needle);
    }
}

#[test]
fn sizes_out_of_range() {
    let e = err(&format!(
        "{}  mempool_size: 1000\n  burst_size: 65\n",
        "dpdk:\n  device: tap\n"
    ));
    assert_has(&e, 5, 17, "lower than 2048");
    assert_has(&e, 6, 15, "greater than 64");
    let e = err("dpdk:\n  device: tap\n  burst_size: 0\n");
    assert_has(&e, 5, 15, "lower than 1");
}

#[test]
fn af_packet_qpairs_must_match_the_queues() {
    let e = err("queues: [0, 1]\ncores: [0, 1]\ndpdk: {device: \"af_packet:iface=e,qpairs=1\"}\n");
    assert_has(&e, 5, 16, "qpairs=1 but 2 queue(s)");
    ok("queues: [0, 1]\ncores: [0, 1]\ndpdk: {device: \"af_packet:iface=e,qpairs=2\"}\n");
}

#[test]
fn dpdk_queues_count_from_zero() {
    let e = err(&format!("queues: [1]\n{MEMIF}"));
    assert_has(&e, 3, 10, "queues are 0, 1, … in order");
}

#[test]
fn the_other_ports_fields_are_refused() {
    let e = err(&format!("interface: eth0\n{MEMIF}"));
    assert_has(&e, 3, 12, "`interface` is for port: afxdp");
    let e = err(&format!("xdp: {{idle: sleep}}\n{MEMIF}"));
    assert_has(&e, 3, 6, "with port: dpdk, the idle mode is dpdk.idle");
    // And the other way round: a dpdk section without port: dpdk.
    let e = Config::parse(
        "interface: eth0\naddresses: [198.18.0.1/24]\ndpdk: {burst_size: 32}\n",
        NAME,
    )
    .unwrap_err();
    assert_has(&e, 3, 7, "applies to port: dpdk only");
    // AF_XDP still needs its interface.
    let e = Config::parse("addresses: [198.18.0.1/24]\n", NAME).unwrap_err();
    assert!(
        e.to_string()
            .contains("`interface` is required with port: afxdp"),
        "{e}"
    );
}

#[test]
fn unknown_port_and_dpdk_fields() {
    let e = Config::parse("port: netmap\naddresses: [198.18.0.1/24]\n", NAME).unwrap_err();
    assert_eq!(e.location(), Some((1, 7)), "{e}");
    let e = err("dpdk: {device: tap, mempool: 4095}\n");
    assert_eq!(e.location(), Some((3, 21)), "{e}");
    assert!(e.to_string().contains("mempool_size"), "{e}");
}

#[test]
fn a_build_without_dpdk_says_so_at_the_port() {
    let text = format!("{BASE}{MEMIF}");
    let e = Config::parse_for(&text, NAME, Build { dpdk: false }).unwrap_err();
    assert_has(&e, 1, 7, "this binary was built without the `dpdk` feature");
    assert!(Config::parse_for(&text, NAME, Build { dpdk: true }).is_ok());
    // An AF_XDP file loads in either build.
    let afxdp = "interface: eth0\naddresses: [198.18.0.1/24]\n";
    assert!(Config::parse_for(afxdp, NAME, Build { dpdk: false }).is_ok());
}

#[test]
fn port_and_dpdk_fields_are_restart_only() {
    let fields = Config::fields();
    for name in [
        "port",
        "dpdk.device",
        "dpdk.eal_args",
        "dpdk.mempool_size",
        "dpdk.burst_size",
        "dpdk.idle",
    ] {
        let (_, apply) = fields
            .iter()
            .find(|(n, _)| *n == name)
            .unwrap_or_else(|| panic!("{name} not classified"));
        assert_eq!(*apply, lingerd_config::Apply::Restart, "{name}");
    }
    let a = ok(MEMIF);
    let b = ok("dpdk: {device: \"memif:socket=/run/lingerd/memif0.sock,role=client\"}\n");
    assert_eq!(a.reload_from(b).unwrap_err().changed, ["dpdk.device"]);
}

#[test]
fn the_shipped_dpdk_example() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/config/dpdk.yaml");
    let c = Config::load(&path).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(c.port, PortKind::Dpdk);
    let d = c.dpdk.device.as_ref().unwrap();
    assert_eq!(d.kind, DeviceKind::Memif);
    assert_eq!(d.option("role"), Some("server"));
    assert_eq!(c.dpdk.idle, Idle::Sleep);
    let e = Config::load_for(&path, Build { dpdk: false }).unwrap_err();
    assert!(
        e.to_string().contains("built without the `dpdk` feature"),
        "{e}"
    );
}

#[test]
fn a_link_local_gateway_has_no_interface_to_scope_to() {
    let base = "port: dpdk\naddresses: [198.18.0.1/24, 2001:db8::1/64]\n";
    let e = support::parse_err(
        base,
        NAME,
        &format!("gateway: {{ip: 'fe80::1%eth0'}}\n{MEMIF}"),
    );
    assert_has(&e, 3, 15, "there is no `interface` to scope it to");
    // Unscoped, it is on the device's link.
    let c = support::parse_ok(base, NAME, &format!("gateway: {{ip: 'fe80::1'}}\n{MEMIF}"));
    assert!(c.gateway.v6().is_some());
}
