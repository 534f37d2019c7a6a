//! Parsing and validation from the user's side: good files, typos, wrong
//! types, out-of-range values and cross-field mistakes, each checked for the
//! message and for the file, line and column it points at.

mod support;

use std::net::{IpAddr, Ipv4Addr};

use support::assert_has;

use lingerd_config::{
    ClientExitPolicy, Config, ConfigError, Duration, GatewayMac, Idle, LogLevel, MacAddr,
    TimeWaitRst, ZeroCopy,
};

const NAME: &str = "test.yaml";
/// The two required fields; tests append to it, so line 3 is theirs.
const BASE: &str = "interface: eth0\naddresses: [198.18.0.1/24]\n";

fn ok(extra: &str) -> Config {
    support::parse_ok(BASE, NAME, extra)
}

fn err(extra: &str) -> ConfigError {
    support::parse_err(BASE, NAME, extra)
}

/// The first problem is at `line:col`, the message says `needle`, and the
/// rendering names the file at that place.
#[track_caller]
fn assert_at(e: &ConfigError, line: u64, col: u64, needle: &str) {
    let text = e.to_string();
    assert_eq!(e.location(), Some((line, col)), "{text}");
    assert!(text.contains(needle), "no `{needle}` in:\n{text}");
    assert!(
        text.contains(&format!("{NAME}:{line}:{col}")),
        "no {NAME}:{line}:{col} in:\n{text}"
    );
}

// --- good files -----------------------------------------------------------

#[test]
fn test_minimal_gets_defaults() {
    let c = ok("");
    assert_eq!(c.interface, "eth0");
    assert_eq!(c.queues, [0]);
    assert_eq!(c.cores, [1]);
    assert_eq!(c.addresses[0].addr(), Ipv4Addr::new(198, 18, 0, 1));
    assert_eq!(c.addresses[0].prefix_len(), 24);
    assert!(c.gateway.is_empty());
    assert!(c.listen.is_empty());
    assert_eq!(c.tcp.time_wait, Duration::from_secs(60));
    assert_eq!(c.tcp.ephemeral_ports, [32_768, 60_999]);
    assert_eq!(c.close.default_linger.ms, 0);
    assert!(!c.close.default_linger.on);
    assert_eq!(c.close.on_client_exit, ClientExitPolicy::Linger);
    assert_eq!(c.xdp.frames, 8192);
    assert_eq!(c.xdp.idle, Idle::Busy);
    assert_eq!(c.clients.ring_entries, 4096);
    assert_eq!(c.clients.allow_uids, [0]);
    assert_eq!(c.metrics.listen.unwrap().to_string(), "127.0.0.1:9187");
    assert_eq!(c.log.level, LogLevel::Info);
    assert_eq!(c, Config::with_defaults("eth0", c.addresses.clone()));
}

#[test]
fn test_every_field_written_out() {
    let c = ok(r#"queues: [0, 1]
cores: [2, 3]
gateway: {ip: 198.18.0.254, mac: "02:00:5e:00:00:01"}
listen: [{port: 80, backlog: 65536}, {port: 443}]
tcp:
  time_wait: 30s
  orphan_timeout: 20s
  syn_received_timeout: 5s
  syn_retries: 3
  max_retransmits: 8
  rto_min: 100ms
  rto_max: 30s
  rto_initial: 500ms
  delayed_ack: 0s
  mss: 8960
  send_buffer: 1048576
  recv_buffer: 1048576
  window_shift: 5
  timestamps: false
  time_wait_rst: ignore
  challenge_acks_per_s: 0
  max_connections: 10000000
  ephemeral_ports: [1024, 65535]
close: {default_linger: {on: true, ms: 1500}, on_client_exit: graceful, max_rst_per_sec: 100000}
xdp: {mode: native, zero_copy: on, frames: 65536, idle: sleep}
clients: {socket: /run/x.sock, allow_uids: [0, 1000], ring_entries: 2, chunk_size: 64, tx_chunks: 0, rx_chunks: 1}
metrics: {listen: null}
log: {level: trace}
"#);
    assert_eq!(c.queue_cores().collect::<Vec<_>>(), [(0, 2), (1, 3)]);
    let gw = c.gateway.v4().unwrap();
    assert_eq!(gw.ip.addr, Ipv4Addr::new(198, 18, 0, 254));
    assert_eq!(c.gateway.v6(), None);
    assert_eq!(gw.mac, GatewayMac::Fixed(MacAddr([2, 0, 0x5e, 0, 0, 1])));
    assert_eq!(c.listen[1].backlog, 4096);
    assert_eq!(c.tcp.time_wait_rst, TimeWaitRst::Ignore);
    assert!(!c.tcp.timestamps);
    assert_eq!(c.close.default_linger.ms, 1500);
    assert_eq!(c.close.on_client_exit, ClientExitPolicy::Graceful);
    assert_eq!(c.xdp.zero_copy, ZeroCopy::On);
    assert_eq!(c.metrics.listen, None);
    assert_eq!(c.log.level, LogLevel::Trace);
    let p = c.layout_params();
    assert_eq!((p.cores, p.ring_entries, p.chunk_size), (2, 2, 64));
}

#[test]
fn test_linger_in_seconds_becomes_ms() {
    let c = ok("close: {default_linger: {on: true, secs: 65535}}\n");
    assert_eq!(c.close.default_linger.ms, lingerd_config::MAX_LINGER_MS);
    let c = ok("close: {default_linger: {on: true}}\n");
    assert_eq!(c.close.default_linger.ms, 0);
}

#[test]
fn test_partial_sections_keep_other_defaults() {
    let c = ok("tcp: {time_wait: 1s}\nxdp: {zero_copy: off}\n");
    assert_eq!(c.tcp.time_wait, Duration::from_secs(1));
    assert_eq!(c.tcp.mss, 1460);
    assert_eq!(c.xdp.zero_copy, ZeroCopy::Off);
    assert_eq!(c.xdp.frames, 8192);
}

// --- typos ----------------------------------------------------------------

#[test]
fn test_typo_top_level_names_expected_fields() {
    let e = err("queus: [0]\n");
    assert_at(&e, 3, 1, "unknown field `queus`");
    let text = e.to_string();
    assert!(
        text.contains("expected one of interface, queues, cores, addresses, gateway, listen, tcp, close, xdp, clients, metrics, log"),
        "{text}"
    );
    assert!(text.starts_with("test.yaml: invalid configuration at line 3 column 1"));
}

#[test]
fn test_typo_nested_block_style() {
    let e = err("tcp:\n  time_wait: 1s\n  time_wiat_ms: 5\n");
    assert_at(
        &e,
        5,
        3,
        "unknown field `time_wiat_ms`, expected one of time_wait",
    );
}

#[test]
fn test_typo_in_linger() {
    let e = err("close: {default_linger: {on: true, sec: 5}}\n");
    assert_at(
        &e,
        3,
        36,
        "unknown field `sec`, expected one of on, secs, ms",
    );
}

#[test]
fn test_unknown_enum_variant_lists_choices() {
    let e = err("close: {on_client_exit: rst}\n");
    assert_at(
        &e,
        3,
        25,
        "unknown variant `rst`, expected one of linger, graceful, abort",
    );
}

#[test]
fn test_missing_required_field() {
    let e = Config::parse("interface: eth0\n", NAME).unwrap_err();
    assert_at(&e, 1, 1, "missing field `addresses`");
}

#[test]
fn test_duplicate_key_is_an_error() {
    let e = err("interface: eth1\n");
    assert_at(&e, 3, 1, "duplicate mapping key `interface`");
}

#[test]
fn test_empty_and_comment_only_files() {
    for text in ["", "\n", "# nothing here\n"] {
        let e = Config::parse(text, NAME).unwrap_err();
        let msg = e.to_string();
        assert!(msg.contains("holds no YAML document"), "{msg}");
        assert!(msg.starts_with("test.yaml: invalid configuration"), "{msg}");
    }
}

// --- wrong types ----------------------------------------------------------

#[test]
fn test_scalar_where_list_expected() {
    let e = err("queues: two\n");
    assert_at(&e, 3, 9, "expected sequence");
}

#[test]
fn test_string_where_number_expected() {
    let e = err("listen:\n  - port: http\n");
    assert_at(&e, 4, 11, "http");
}

#[test]
fn test_negative_number() {
    let e = err("tcp: {syn_retries: -1}\n");
    assert_eq!(e.location(), Some((3, 20)), "{e}");
    let e = err("tcp: {time_wait: -1s}\n");
    assert_at(&e, 3, 18, "a duration is a number and a unit");
}

#[test]
fn test_yaml_1_1_booleans_are_refused() {
    let e = err("tcp: {timestamps: yes}\n");
    assert_at(&e, 3, 19, "invalid boolean");
    let e = err("close: {default_linger: {on: on}}\n");
    assert_at(&e, 3, 30, "invalid boolean");
}

#[test]
fn test_bad_address_and_prefix() {
    let e = Config::parse("interface: eth0\naddresses: [198.18.0.1/33]\n", NAME).unwrap_err();
    assert_at(&e, 2, 13, "prefix length `33` is not a number in 0..=32");
    let e = Config::parse("interface: eth0\naddresses: [198.18.0.1]\n", NAME).unwrap_err();
    assert_at(&e, 2, 13, "has no prefix length");
    let e = Config::parse("interface: eth0\naddresses: [198.18.0.300/24]\n", NAME).unwrap_err();
    assert_at(&e, 2, 13, "is not an IPv4 address");
}

#[test]
fn test_bad_gateway_mac() {
    let e = err("gateway: {ip: 198.18.0.254, mac: 02:00}\n");
    assert_at(&e, 3, 34, "neither `auto` nor a MAC address");
}

// --- out of range (garde) -------------------------------------------------

#[test]
fn test_window_shift_above_14() {
    let e = err("tcp:\n  window_shift: 15\n");
    assert_at(&e, 4, 17, "greater than 14");
    assert!(e.to_string().contains("tcp.window_shift"));
}

#[test]
fn test_delayed_ack_above_500() {
    let e = err("tcp: {delayed_ack: 501ms}\n");
    assert_at(&e, 3, 20, "delayed_ack 501ms is outside 0s..=500ms");
    assert!(e.to_string().contains("tcp.delayed_ack"));
    // A number without its unit is refused: seconds or milliseconds?
    let e = err("tcp: {time_wait: 1000}\n");
    assert_at(&e, 3, 18, "give a unit");
}

#[test]
fn test_reassembly_budgets() {
    let e = err("tcp: {reassembly_per_connection: 100}\n");
    assert_at(&e, 3, 34, "lower than 2048");
    assert!(e.to_string().contains("tcp.reassembly_per_connection"));
    let e = err("tcp: {reassembly_per_core: 65536, reassembly_per_connection: 131072}\n");
    assert_at(
        &e,
        3,
        62,
        "reassembly_per_connection 131072 is more than reassembly_per_core 65536",
    );
    // 0 per core keeps no out-of-order data at all, whatever the share.
    let c = ok("tcp: {reassembly_per_core: 0}\n");
    assert_eq!(c.tcp.reassembly_per_core, 0);
}

#[test]
fn test_port_zero() {
    let e = err("listen: [{port: 0}]\n");
    assert_at(&e, 3, 17, "lower than 1");
}

#[test]
fn test_u16_overflow() {
    let e = err("tcp: {ephemeral_ports: [1024, 70000]}\n");
    assert_eq!(e.location().map(|(l, _)| l), Some(3), "{e}");
}

#[test]
fn test_linger_secs_above_65535() {
    let e = err("close:\n  default_linger: {on: true, secs: 65536}\n");
    assert_at(&e, 4, 19, "linger secs 65536 is above 65535");
    let e = err("close: {default_linger: {on: true, ms: 65535001}}\n");
    assert_at(&e, 3, 25, "linger ms 65535001 is above 65535000");
    let e = err("close: {default_linger: {on: true, secs: 1, ms: 1000}}\n");
    assert_at(&e, 3, 25, "give `secs` or `ms`, not both");
}

#[test]
fn test_too_many_queues() {
    let list: Vec<String> = (0..65).map(|i| i.to_string()).collect();
    let e = err(&format!(
        "queues: [{}]\ncores: [{}]\n",
        list.join(", "),
        list.join(", ")
    ));
    assert_has(&e, 3, 9, "length is greater than 64 for `queues`");
    assert_has(&e, 4, 8, "length is greater than 64 for `cores`");
}

#[test]
fn test_cpu_number_out_of_range() {
    let e = err("cores: [4096]\n");
    assert_at(&e, 3, 9, "greater than 1023");
}

#[test]
fn test_interface_name_too_long() {
    let e = Config::parse(
        "interface: a-very-long-ifname\naddresses: [198.18.0.1/24]\n",
        NAME,
    )
    .unwrap_err();
    assert_at(&e, 1, 12, "length is greater than 15");
}

// --- semantic pass --------------------------------------------------------

#[test]
fn test_duplicate_ports_point_at_the_second() {
    let e = err("listen:\n  - port: 80\n  - port: 443\n  - port: 80\n");
    assert_at(&e, 6, 11, "port 80 is listed twice (first at listen[0])");
}

#[test]
fn test_duplicate_queues_and_cores() {
    let e = err("queues: [0, 1, 0]\ncores: [2, 2, 3]\n");
    assert_has(&e, 3, 16, "queue 0 is listed twice (first at queues[0])");
    assert_has(&e, 4, 12, "core 2 is listed twice (first at cores[0])");
}

#[test]
fn test_queues_and_cores_differ_in_length() {
    // cores left at its default: the error points at queues, the list written.
    let e = err("queues: [0, 1]\n");
    assert_at(&e, 3, 9, "queues has 2 entries and cores 1");
    let e = err("cores: [1, 2]\n");
    assert_at(&e, 3, 8, "queues has 1 entries and cores 2");
}

#[test]
fn test_duplicate_and_unusable_addresses() {
    let e = Config::parse(
        "interface: eth0\naddresses:\n  - 198.18.0.1/24\n  - 198.18.0.1/32\n  - 198.18.1.0/24\n  - 127.0.0.1/8\n",
        NAME,
    )
    .unwrap_err();
    assert_has(&e, 4, 5, "address 198.18.0.1 is listed twice");
    assert_has(&e, 5, 5, "network address of its prefix");
    assert_has(&e, 6, 5, "loopback");
}

#[test]
fn test_gateway_must_be_on_link() {
    let e = err("gateway: {ip: 10.0.0.1}\n");
    assert_at(&e, 3, 15, "not inside any of the addresses' IPv4 prefixes");
    let e = err("gateway: {ip: 198.18.0.1}\n");
    assert_at(&e, 3, 15, "one of lingerd's own addresses");
    let e = err("gateway: {ip: 198.18.0.254, mac: \"ff:ff:ff:ff:ff:ff\"}\n");
    assert_at(&e, 3, 34, "not a unicast address");
}

#[test]
fn test_ring_entries_power_of_two() {
    let e = err("clients:\n  ring_entries: 1000\n");
    assert_at(&e, 4, 17, "ring_entries 1000 is not a power of two");
    let e = err("clients: {chunk_size: 3000}\n");
    assert_at(&e, 3, 23, "chunk_size 3000 is not a power of two");
    let e = err("xdp: {frames: 5000}\n");
    assert_at(&e, 3, 15, "frames 5000 is not a power of two");
}

#[test]
fn test_ephemeral_range_sane() {
    let e = err("tcp: {ephemeral_ports: [2000, 1500]}\n");
    assert_at(&e, 3, 31, "is empty");
    let e = err("tcp: {ephemeral_ports: [80, 1500]}\n");
    assert_at(&e, 3, 25, "must start at 1024 or above");
    let e = err("listen: [{port: 40000}]\n");
    assert_at(&e, 3, 17, "inside tcp.ephemeral_ports [32768, 60999]");
}

#[test]
fn test_rto_bounds_ordered() {
    let e = err("tcp: {rto_min: 500ms, rto_max: 400ms}\n");
    assert_at(&e, 3, 32, "rto_max 400ms is below rto_min 500ms");
    // rto_initial is left at its default (1s): the nearest ancestor
    // written in the file, `tcp`, carries the location.
    let e = err("tcp: {rto_min: 2s}\n");
    assert_at(
        &e,
        3,
        6,
        "rto_initial 1s is outside rto_min..=rto_max (2s..=1m)",
    );
}

#[test]
fn test_recv_buffer_beyond_window() {
    let e = err("tcp: {window_shift: 0, recv_buffer: 65536}\n");
    assert_at(&e, 3, 37, "more than a window with window_shift 0");
}

#[test]
fn test_socket_path_absolute_and_short() {
    let e = err("clients: {socket: lingerd.sock}\n");
    assert_at(&e, 3, 19, "must be absolute");
    let long = format!("/run/{}.sock", "x".repeat(110));
    let e = err(&format!("clients: {{socket: {long}}}\n"));
    assert_at(&e, 3, 19, "a Unix socket path holds at most 107");
    // The ctl socket beside it (`.ctl` for the extension) must fit too.
    let e = err(&format!("clients: {{socket: /run/{}}}\n", "x".repeat(100)));
    assert_at(&e, 3, 19, "the `lingerd ctl` socket beside it");
    let e = err("clients: {socket: /run/lingerd/x.ctl}\n");
    assert_at(&e, 3, 19, "ends in `.ctl`");
}

#[test]
fn test_ctl_socket_beside_the_attach_socket() {
    let c = lingerd_config::Clients::default();
    assert_eq!(
        c.ctl_socket(),
        std::path::PathBuf::from("/run/lingerd/lingerd.ctl")
    );
}

#[test]
fn test_interface_name_characters() {
    let e = Config::parse("interface: eth0/1\naddresses: [198.18.0.1/24]\n", NAME).unwrap_err();
    assert_at(&e, 1, 12, "not a valid interface name");
}

#[test]
fn test_backlog_bounded_by_table() {
    let e = err("tcp: {max_connections: 1000}\nlisten: [{port: 80, backlog: 2000}]\n");
    assert_at(
        &e,
        4,
        30,
        "backlog 2000 is larger than a core's connection table (1000",
    );
}

#[test]
fn test_all_validation_problems_reported_at_once() {
    let e = err("listen: [{port: 0}, {port: 80}, {port: 80}]\nclients: {ring_entries: 3}\n");
    let text = e.to_string();
    assert!(text.contains("(3 problems)"), "{text}");
    let blocks = text
        .lines()
        .filter(|l| l.starts_with("error: line "))
        .count();
    assert_eq!(blocks, 3, "{text}");
}

// --- files ----------------------------------------------------------------

#[test]
fn test_load_names_the_file() {
    let dir = std::env::temp_dir().join(format!("lingerd-config-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("bad.yaml");
    std::fs::write(
        &path,
        "interface: eth0\naddresses: [198.18.0.1/24]\nlog: {levle: info}\n",
    )
    .unwrap();
    let e = Config::load(&path).unwrap_err();
    let text = e.to_string();
    assert!(
        text.starts_with(&format!("{}: invalid configuration", path.display())),
        "{text}"
    );
    assert!(text.contains(&format!("{}:3:7", path.display())), "{text}");

    let missing = dir.join("missing.yaml");
    let e = Config::load(&missing).unwrap_err();
    assert!(matches!(e, ConfigError::Read { .. }));
    assert!(
        e.to_string()
            .starts_with(&format!("{}: cannot read", missing.display()))
    );

    let big = dir.join("big.yaml");
    std::fs::write(
        &big,
        vec![b'#'; lingerd_config::MAX_FILE_BYTES as usize + 1],
    )
    .unwrap();
    assert!(matches!(
        Config::load(&big),
        Err(ConfigError::TooLarge { .. })
    ));

    let latin1 = dir.join("latin1.yaml");
    std::fs::write(&latin1, b"interface: eth\xe9\n").unwrap();
    assert!(matches!(
        Config::load(&latin1),
        Err(ConfigError::NotUtf8 { offset: 14, .. })
    ));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn test_error_is_send_sync_for_anyhow() {
    fn assert_send_sync<T: Send + Sync + 'static>() {}
    assert_send_sync::<ConfigError>();
}

// --- the shared vocabulary in the YAML ---------------------------------------

#[test]
fn test_linger_in_the_ctl_grammar() {
    let c = ok("close: {default_linger: \"on,2s\"}\n");
    assert_eq!(
        c.close.default_linger,
        lingerd_config::Linger { on: true, ms: 2000 }
    );
    let c = ok("close: {default_linger: \"off,250ms\"}\n");
    assert_eq!(
        c.close.default_linger,
        lingerd_config::Linger { on: false, ms: 250 }
    );
    let e = err("close:\n  default_linger: on,5\n");
    assert_at(&e, 4, 19, "give a unit");
    let e = err("close:\n  default_linger: \"on,70000s\"\n");
    assert_at(&e, 4, 19, "longest linger");
}

#[test]
fn test_dual_stack_addresses_and_gateways() {
    let c = Config::parse(
        "interface: eth0\naddresses: [198.18.0.1/24, 2001:db8::1/64, 'fe80::2/64']\n\
         gateway:\n  - {ip: 198.18.0.254}\n  - {ip: 'fe80::1%eth0', mac: \"02:00:5e:00:00:01\"}\n",
        NAME,
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        c.addresses[1].addr(),
        "2001:db8::1".parse::<IpAddr>().unwrap()
    );
    assert_eq!(c.addresses[1].prefix_len(), 64);
    assert_eq!(
        c.gateway.v4().unwrap().ip.addr,
        Ipv4Addr::new(198, 18, 0, 254)
    );
    let v6 = c.gateway.v6().unwrap();
    assert_eq!(v6.ip.addr, "fe80::1".parse::<IpAddr>().unwrap());
    assert_eq!(v6.ip.scope.as_deref(), Some("eth0"));
    // A v6-only daemon with a global v6 gateway on its link, one map.
    let c = Config::parse(
        "interface: eth0\naddresses: [2001:db8::1/64]\ngateway: {ip: 2001:db8::fe}\n",
        NAME,
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert!(c.gateway.v4().is_none());
    assert_eq!(c.gateway.v6().unwrap().ip.to_string(), "2001:db8::fe");
    // The metrics endpoint may listen on IPv6 too.
    let c = ok("metrics: {listen: '[::1]:9187'}\n");
    assert_eq!(c.metrics.listen.unwrap().to_string(), "[::1]:9187");
    // A link-local gateway without a scope is on `interface` too.
    assert!(
        Config::parse(
            "interface: eth0\naddresses: [2001:db8::1/64]\ngateway: {ip: 'fe80::1'}\n",
            NAME
        )
        .is_ok()
    );
}

#[test]
fn test_bad_v6_addresses_are_refused_in_place() {
    let e = Config::parse("interface: eth0\naddresses: [2001:db8::1/129]\n", NAME).unwrap_err();
    assert_at(&e, 2, 13, "0..=128");
    let e = Config::parse(
        "interface: eth0\naddresses:\n  - 2001:db8::1/64\n  - ::1/128\n  - ff02::1/64\n  - 2001:db8::/64\n  - ::ffff:198.18.0.1/120\n  - 2001:db8::1/48\n",
        NAME,
    )
    .unwrap_err();
    assert_has(&e, 4, 5, "loopback");
    assert_has(&e, 5, 5, "multicast");
    assert_has(&e, 6, 5, "subnet-router anycast");
    assert_has(&e, 7, 5, "IPv4-mapped");
    assert_has(&e, 8, 5, "address 2001:db8::1 is listed twice");
}

#[test]
fn test_more_addresses_than_the_engine_indexes_are_refused() {
    let list = |n: u16| -> String {
        (1..=n)
            .map(|i| format!("  - 2001:db8::{i:x}/64\n"))
            .collect::<String>()
    };
    let max = lingerd_config::MAX_ADDRESSES as u16;
    let ok = format!("interface: eth0\naddresses:\n{}", list(max));
    Config::parse(&ok, NAME).unwrap_or_else(|e| panic!("{e}"));
    let bad = format!("interface: eth0\naddresses:\n{}", list(max + 1));
    let e = Config::parse(&bad, NAME).unwrap_err();
    assert_at(&e, 3 + u64::from(max), 5, "at most 31 addresses");
}

#[test]
fn test_bad_v6_gateways_are_refused_in_place() {
    let v6 = "interface: eth0\naddresses: [198.18.0.1/24, 2001:db8::1/64]\n";
    let e = |extra: &str| support::parse_err(v6, NAME, extra);
    // Not on any v6 prefix (a v4 prefix does not count).
    assert_at(
        &e("gateway: {ip: 2001:db9::1}\n"),
        3,
        15,
        "not inside any of the addresses' IPv6 prefixes",
    );
    // Two of one family, in the list form: the second is at gateway[1].
    assert_at(
        &e("gateway: [{ip: 198.18.0.254}, {ip: 198.18.0.253}]\n"),
        3,
        36,
        "a second IPv4 gateway",
    );
    // A scope that is not `interface`.
    assert_at(
        &e("gateway: {ip: 'fe80::1%eth1'}\n"),
        3,
        15,
        "scope must be %eth0",
    );
    // A scope on a global address, garbage, multicast.
    assert_at(
        &e("gateway: {ip: '2001:db8::fe%eth0'}\n"),
        3,
        15,
        "only an IPv6 link-local address",
    );
    assert_at(
        &e("gateway: {ip: 2001:db8::zz}\n"),
        3,
        15,
        "not an IPv4 or IPv6 address",
    );
    assert_at(
        &e("gateway: {ip: 'ff02::1'}\n"),
        3,
        15,
        "not a unicast address",
    );
    // An own address.
    assert_at(
        &e("gateway: {ip: 2001:db8::1}\n"),
        3,
        15,
        "one of lingerd's own addresses",
    );
    // A link-local v6 gateway with only v4 addresses.
    assert_at(
        &err("gateway: {ip: 'fe80::1'}\n"),
        3,
        15,
        "no IPv6 address to reach it from",
    );
    // Not a map or a list.
    assert!(
        err("gateway: 198.18.0.254\n")
            .to_string()
            .contains("a gateway {ip, mac} or a list")
    );
}

/// Every field away from its default, so the round trip has to carry each.
const EVERYTHING: &str = r#"queues: [0, 1]
cores: [2, 3]
gateway: {ip: 198.18.0.254, mac: "02:00:5e:00:00:01"}
listen: [{port: 80, backlog: 100}, {port: 443, backlog: 200}]
tcp:
  time_wait: 1s
  orphan_timeout: 2s
  syn_received_timeout: 3s
  syn_retries: 4
  max_retransmits: 5
  rto_min: 10ms
  rto_max: 20s
  rto_initial: 300ms
  delayed_ack: 0s
  mss: 1400
  send_buffer: 1048576
  recv_buffer: 32768
  reassembly_per_core: 8388608
  reassembly_per_connection: 2097152
  window_shift: 3
  timestamps: false
  time_wait_rst: ignore
  challenge_acks_per_s: 0
  max_connections: 1001
  ephemeral_ports: [40000, 40999]
close: {default_linger: {on: true, ms: 1500}, on_client_exit: abort, max_rst_per_sec: 100000}
xdp: {mode: generic, zero_copy: off, frames: 4096, idle: sleep}
clients: {socket: /run/x.sock, allow_uids: [0, 1000], ring_entries: 2, chunk_size: 64, tx_chunks: 0, rx_chunks: 1}
metrics: {listen: null}
log: {level: debug}
"#;

#[test]
fn test_a_config_serializes_and_parses_back_equal() {
    for c in [
        ok(""),
        ok(EVERYTHING),
        ok("gateway: {ip: 198.18.0.254}\nmetrics: {listen: \"127.0.0.1:9999\"}\n"),
        support::parse_ok(
            "interface: eth0\naddresses: [198.18.0.1/24, 2001:db8::1/64]\n",
            NAME,
            "gateway: [{ip: 198.18.0.254}, {ip: 'fe80::1%eth0', mac: auto}]\n",
        ),
    ] {
        let yaml = c.to_yaml();
        let back = Config::parse(&yaml, "to_yaml").unwrap_or_else(|e| panic!("{e}\n{yaml}"));
        assert_eq!(back, c, "{yaml}");
        // JSON (serde_json) carries the same text forms.
        let json = serde_json::to_string(&c).unwrap();
        let back: Config = serde_json::from_str(&json).unwrap_or_else(|e| panic!("{e}\n{json}"));
        assert_eq!(back, c, "{json}");
    }
    let yaml = ok(EVERYTHING).to_yaml();
    for needle in [
        "on,1500ms",
        "02:00:5e:00:00:01",
        "198.18.0.1/24",
        "abort",
        "ignore",
    ] {
        assert!(yaml.contains(needle), "no {needle} in:\n{yaml}");
    }
}

#[test]
fn test_a_config_built_as_a_value_loads() {
    let mut c = Config::with_defaults("lgd0", vec!["198.18.0.1/24".parse().unwrap()]);
    c.close.on_client_exit = ClientExitPolicy::Graceful;
    c.close.default_linger = "on,5s".parse().unwrap();
    c.metrics.listen = None;
    let back = Config::parse(&c.to_yaml(), "value").unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(back, c);
}
