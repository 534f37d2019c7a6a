//! Guards against drift between the configuration's defaults and limits
//! and the dataplane's own (`lingerd-config` may not depend on the
//! dataplane, so the daemon, which sees both, checks they agree).

use lingerd_dataplane::engine::api::ClientExitPolicy;
use lingerd_dataplane::engine::config::{TcpConfig, TimeWaitRst};
use lingerd_dataplane::tcp::linger::{Linger, MAX_LINGER_MS};

#[test]
fn linger_limit_matches_the_dataplane() {
    assert_eq!(lingerd_config::MAX_LINGER_MS, MAX_LINGER_MS);
    let mut l = Linger::default();
    assert!(l.set(true, lingerd_config::MAX_LINGER_MS).is_ok());
    let c = lingerd_config::Linger::default();
    let d = Linger::default();
    assert_eq!((c.on, c.ms), (d.on, d.ms));
}

#[test]
fn tcp_defaults_match_the_dataplane() {
    let c = lingerd_config::Tcp::default();
    let d = TcpConfig::default();
    assert_eq!(c.mss, d.mss);
    assert_eq!(c.time_wait_ms, d.time_wait_ms);
    assert_eq!(c.orphan_timeout_ms, d.orphan_timeout_ms);
    assert_eq!(c.syn_received_timeout_ms, d.syn_received_timeout_ms);
    assert_eq!(c.syn_retries, d.syn_retries);
    assert_eq!(c.max_retransmits, d.max_retransmits);
    assert_eq!(c.rto_min_ms, d.rto.min_ms);
    assert_eq!(c.rto_max_ms, d.rto.max_ms);
    assert_eq!(c.rto_initial_ms, d.rto.initial_ms);
    assert_eq!(c.delayed_ack_ms, d.delayed_ack_ms);
    assert_eq!(c.send_buffer, d.send_buffer);
    assert_eq!(c.recv_buffer, d.recv_buffer);
    assert_eq!(c.window_shift, d.window_shift);
    assert_eq!(c.timestamps, d.timestamps);
    assert_eq!(c.challenge_acks_per_s, d.challenge_acks_per_s);
    assert_eq!(
        (c.ephemeral_ports[0], c.ephemeral_ports[1]),
        d.ephemeral_ports
    );
    assert_eq!(c.time_wait_rst, lingerd_config::TimeWaitRst::Close);
    assert_eq!(d.time_wait_rst, TimeWaitRst::Close);
}

#[test]
fn client_exit_default_matches_the_dataplane() {
    assert_eq!(
        lingerd_config::OnClientExit::default(),
        lingerd_config::OnClientExit::Linger
    );
    assert_eq!(ClientExitPolicy::default(), ClientExitPolicy::Linger);
}
