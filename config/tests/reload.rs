//! The reload rule: reloadable changes are accepted, any restart-only change
//! refuses the whole new file and names every such field.

use lingerd_config::{Apply, ClientExitPolicy, Config, Duration, LogLevel};

const RUNNING: &str = "\
interface: eth0
queues: [0, 1]
cores: [2, 3]
addresses: [198.18.0.1/24]
listen: [{port: 80}]
tcp: {time_wait: 60s, max_connections: 100000}
close: {default_linger: {on: false, secs: 0}, max_rst_per_sec: 0}
clients: {allow_uids: [0], ring_entries: 4096}
log: {level: info}
";

fn running() -> Config {
    Config::parse(RUNNING, "running.yaml").unwrap()
}

/// The running file with `from` replaced by `to` (which must occur).
fn edited(edits: &[(&str, &str)]) -> Config {
    let mut text = RUNNING.to_owned();
    for (from, to) in edits {
        assert!(text.contains(from), "{from}");
        text = text.replacen(from, to, 1);
    }
    Config::parse(&text, "new.yaml").unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn test_reload_unchanged_is_accepted() {
    let old = running();
    assert_eq!(old.reload_from(running()), Ok(running()));
    assert!(old.changed_fields(&running()).is_empty());
}

#[test]
fn test_reload_accepts_reloadable_changes() {
    let old = running();
    let new = edited(&[
        ("time_wait: 60s", "time_wait: 1s, orphan_timeout: 5s"),
        (
            "{on: false, secs: 0}",
            "{on: true, secs: 2}, on_client_exit: abort",
        ),
        ("max_rst_per_sec: 0", "max_rst_per_sec: 50000"),
        ("allow_uids: [0]", "allow_uids: [0, 1000]"),
        ("level: info", "level: debug"),
    ]);
    let applied = old.reload_from(new.clone()).unwrap();
    assert_eq!(applied, new);
    assert_eq!(applied.tcp.time_wait, Duration::from_secs(1));
    assert_eq!(applied.close.default_linger.ms, 2000);
    assert_eq!(applied.close.on_client_exit, ClientExitPolicy::Abort);
    assert_eq!(applied.log.level, LogLevel::Debug);
    let names: Vec<_> = old
        .changed_fields(&new)
        .into_iter()
        .map(|(n, _)| n)
        .collect();
    assert_eq!(
        names,
        [
            "tcp.time_wait",
            "tcp.orphan_timeout",
            "close.default_linger",
            "close.on_client_exit",
            "close.max_rst_per_sec",
            "clients.allow_uids",
            "log.level",
        ]
    );
}

#[test]
fn test_reload_refuses_restart_only_and_names_each() {
    let old = running();
    let new = edited(&[
        ("interface: eth0", "interface: eth1"),
        ("cores: [2, 3]", "cores: [4, 5]"),
        ("max_connections: 100000", "max_connections: 200000"),
        ("ring_entries: 4096", "ring_entries: 8192"),
        ("level: info", "level: debug"),
    ]);
    let err = old.reload_from(new).unwrap_err();
    assert_eq!(
        err.changed,
        [
            "interface",
            "cores",
            "tcp.max_connections",
            "clients.ring_entries"
        ]
    );
    assert_eq!(
        err.to_string(),
        "reload refused, the running configuration is kept: restart-only fields changed: \
         interface, cores, tcp.max_connections, clients.ring_entries; restart lingerd to apply"
    );
}

#[test]
fn test_reload_refuses_a_single_restart_only_field() {
    let err = running()
        .reload_from(edited(&[("listen: [{port: 80}]", "listen: [{port: 81}]")]))
        .unwrap_err();
    assert_eq!(err.changed, ["listen"]);
    assert!(
        err.to_string()
            .contains("restart-only field changed: listen;")
    );
}

#[test]
fn test_a_default_made_explicit_is_no_change() {
    let new = edited(&[(
        "log: {level: info}",
        "log: {level: info}\nxdp: {frames: 8192}",
    )]);
    assert_eq!(running().reload_from(new), Ok(running()));
}

#[test]
fn test_field_table_covers_the_documented_split() {
    let fields = Config::fields();
    let class = |name: &str| {
        fields
            .iter()
            .find(|(n, _)| *n == name)
            .unwrap_or_else(|| panic!("{name} not classified"))
            .1
    };
    for restart in [
        "interface",
        "queues",
        "cores",
        "addresses",
        "gateway",
        "listen",
        "tcp.mss",
        "tcp.send_buffer",
        "tcp.recv_buffer",
        "tcp.window_shift",
        "tcp.max_connections",
        "tcp.ephemeral_ports",
        "tcp.reassembly_per_core",
        "tcp.reassembly_per_connection",
        "xdp.mode",
        "xdp.frames",
        "clients.socket",
        "clients.ring_entries",
        "clients.chunk_size",
        "metrics.listen",
    ] {
        assert_eq!(class(restart), Apply::Restart, "{restart}");
    }
    for reload in [
        "tcp.time_wait",
        "tcp.orphan_timeout",
        "tcp.syn_received_timeout",
        "tcp.rto_min",
        "tcp.rto_max",
        "tcp.delayed_ack",
        "close.default_linger",
        "close.on_client_exit",
        "close.max_rst_per_sec",
        "clients.allow_uids",
        "log.level",
    ] {
        assert_eq!(class(reload), Apply::Reload, "{reload}");
    }
    let mut names: Vec<_> = fields.iter().map(|(n, _)| *n).collect();
    let total = names.len();
    names.sort_unstable();
    names.dedup();
    assert_eq!(names.len(), total, "a field is listed twice");
    assert_eq!(total, 47);
}
