//! Every YAML file shipped in `deploy/config/` loads and validates, and the
//! three named examples say what their comments promise.

use std::path::{Path, PathBuf};

use lingerd_config::{Config, Idle, XdpMode};

fn deploy_config() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/config")
}

fn example(name: &str) -> Config {
    let path = deploy_config().join(name);
    Config::load(&path).unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn every_yaml_in_deploy_config_is_valid() {
    let mut seen = Vec::new();
    for entry in std::fs::read_dir(deploy_config()).unwrap() {
        let path = entry.unwrap().path();
        let is_yaml = matches!(
            path.extension().and_then(|e| e.to_str()),
            Some("yaml" | "yml")
        );
        if is_yaml {
            if let Err(e) = Config::load(&path) {
                panic!("{e}");
            }
            seen.push(path.file_name().unwrap().to_string_lossy().into_owned());
        }
    }
    seen.sort();
    for expected in ["lab.yaml", "lingerd.yaml", "loadbalancer.yaml"] {
        assert!(
            seen.iter().any(|s| s == expected),
            "{expected} missing: {seen:?}"
        );
    }
}

#[test]
fn lab_example_matches_the_lab_topology() {
    let c = example("lab.yaml");
    assert_eq!(c.interface, "lgdID-d");
    assert_eq!(c.addresses[0].to_string(), "198.18.0.1/24");
    assert_eq!(c.queues, [0]);
    assert_eq!(c.cores, [1]);
    assert_eq!(c.xdp.idle, Idle::Sleep);
    assert_eq!(c.xdp.mode, XdpMode::Generic);
}

#[test]
fn loadbalancer_example_has_big_tables() {
    let c = example("loadbalancer.yaml");
    assert_eq!(c.tcp.max_connections, 10_000_000);
    assert_eq!(c.tcp.max_connections_per_core(c.queues.len()), 2_500_000);
    assert_eq!(
        c.queue_cores().collect::<Vec<_>>(),
        [(0, 2), (1, 4), (2, 6), (3, 8)]
    );
    assert_eq!(c.close.default_linger.ms, 5_000);
    let layout = lingerd_abi::layout::Layout::new(c.layout_params()).unwrap();
    assert!(layout.total > 0);
}

#[test]
fn minimal_example_is_mostly_defaults() {
    let c = example("lingerd.yaml");
    let mut d = Config::with_defaults("eth0", c.addresses.clone());
    d.gateway = c.gateway.clone();
    d.listen = c.listen.clone();
    assert_eq!(c, d);
}
