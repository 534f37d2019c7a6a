//! The restart-only / reloadable split and the reload rule.
//!
//! A SIGHUP reload validates the whole new file (the loader's job), then
//! [`Config::reload_from`] accepts it only if every changed field is
//! reloadable; otherwise it refuses the whole file, names every
//! restart-only field that changed, and the daemon keeps running on the old
//! configuration. Nothing is ever half applied.
//!
//! | reloadable (applies to timers armed and connections made afterwards) | restart-only (shapes tables, sockets or what peers agreed) |
//! |---|---|
//! | `tcp.*_ms` timeouts, `tcp.syn_retries`, `tcp.max_retransmits` | `port`, `interface`, `queues`, `cores`, `addresses`, `gateway`, `listen` |
//! | `tcp.time_wait_rst`, `tcp.challenge_acks_per_s` | `tcp.mss`, `tcp.*_buffer`, `tcp.window_shift`, `tcp.timestamps` |
//! | `close.*` (default linger, client-exit policy, RST pacing) | `tcp.max_connections`, `tcp.ephemeral_ports` |
//! | `clients.allow_uids` (checked at each attach) | `xdp.*`, `dpdk.*`, `clients.socket`, `clients` ring and chunk sizes |
//! | `log.level` | `metrics.listen` |
//!
//! The split is written once, in `visit`, which destructures every struct
//! exhaustively: a new field does not compile until it is classified.

use crate::model::{Clients, Close, Config, Dpdk, Log, Metrics, Tcp, Xdp};

/// When a change to a field takes effect.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Apply {
    /// On SIGHUP: the running daemon picks it up.
    Reload,
    /// Only when lingerd restarts; a reload that changes it is refused.
    Restart,
}

/// A reload was refused; the running configuration stays in force.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "reload refused, the running configuration is kept: restart-only field{} changed: {}; restart lingerd to apply",
    if .changed.len() == 1 { "" } else { "s" },
    .changed.join(", ")
)]
pub struct ReloadError {
    /// Every restart-only field whose value differs, in file order
    /// (dotted paths such as `clients.ring_entries`).
    pub changed: Vec<&'static str>,
}

/// Calls `f(name, apply, equal)` for every leaf field of `Config`, in file
/// order, comparing `a` with `b`.
fn visit(a: &Config, b: &Config, f: &mut dyn FnMut(&'static str, Apply, bool)) {
    use Apply::{Reload, Restart};
    macro_rules! cmp {
        ($name:literal, $apply:expr, $x:expr, $y:expr) => {
            f($name, $apply, *$x == $y)
        };
    }
    let Config {
        interface,
        queues,
        cores,
        addresses,
        gateway,
        listen,
        tcp,
        close,
        xdp,
        clients,
        metrics,
        log,
        port,
        dpdk,
    } = a;
    cmp!("interface", Restart, interface, b.interface);
    cmp!("queues", Restart, queues, b.queues);
    cmp!("cores", Restart, cores, b.cores);
    cmp!("addresses", Restart, addresses, b.addresses);
    cmp!("gateway", Restart, gateway, b.gateway);
    cmp!("listen", Restart, listen, b.listen);

    let Tcp {
        time_wait,
        orphan_timeout,
        syn_received_timeout,
        syn_retries,
        max_retransmits,
        rto_min,
        rto_max,
        rto_initial,
        delayed_ack,
        mss,
        send_buffer,
        recv_buffer,
        reassembly_per_core,
        reassembly_per_connection,
        window_shift,
        timestamps,
        time_wait_rst,
        challenge_acks_per_s,
        max_connections,
        ephemeral_ports,
    } = tcp;
    let t = &b.tcp;
    cmp!("tcp.time_wait", Reload, time_wait, t.time_wait);
    cmp!(
        "tcp.orphan_timeout",
        Reload,
        orphan_timeout,
        t.orphan_timeout
    );
    cmp!(
        "tcp.syn_received_timeout",
        Reload,
        syn_received_timeout,
        t.syn_received_timeout
    );
    cmp!("tcp.syn_retries", Reload, syn_retries, t.syn_retries);
    cmp!(
        "tcp.max_retransmits",
        Reload,
        max_retransmits,
        t.max_retransmits
    );
    cmp!("tcp.rto_min", Reload, rto_min, t.rto_min);
    cmp!("tcp.rto_max", Reload, rto_max, t.rto_max);
    cmp!("tcp.rto_initial", Reload, rto_initial, t.rto_initial);
    cmp!("tcp.delayed_ack", Reload, delayed_ack, t.delayed_ack);
    cmp!("tcp.mss", Restart, mss, t.mss);
    cmp!("tcp.send_buffer", Restart, send_buffer, t.send_buffer);
    cmp!("tcp.recv_buffer", Restart, recv_buffer, t.recv_buffer);
    cmp!(
        "tcp.reassembly_per_core",
        Restart,
        reassembly_per_core,
        t.reassembly_per_core
    );
    cmp!(
        "tcp.reassembly_per_connection",
        Restart,
        reassembly_per_connection,
        t.reassembly_per_connection
    );
    cmp!("tcp.window_shift", Restart, window_shift, t.window_shift);
    cmp!("tcp.timestamps", Restart, timestamps, t.timestamps);
    cmp!("tcp.time_wait_rst", Reload, time_wait_rst, t.time_wait_rst);
    cmp!(
        "tcp.challenge_acks_per_s",
        Reload,
        challenge_acks_per_s,
        t.challenge_acks_per_s
    );
    cmp!(
        "tcp.max_connections",
        Restart,
        max_connections,
        t.max_connections
    );
    cmp!(
        "tcp.ephemeral_ports",
        Restart,
        ephemeral_ports,
        t.ephemeral_ports
    );

    let Close {
        default_linger,
        on_client_exit,
        max_rst_per_sec,
    } = close;
    let c = &b.close;
    cmp!(
        "close.default_linger",
        Reload,
        default_linger,
        c.default_linger
    );
    cmp!(
        "close.on_client_exit",
        Reload,
        on_client_exit,
        c.on_client_exit
    );
    cmp!(
        "close.max_rst_per_sec",
        Reload,
        max_rst_per_sec,
        c.max_rst_per_sec
    );

    let Xdp {
        mode,
        zero_copy,
        frames,
        idle,
    } = xdp;
    let x = &b.xdp;
    cmp!("xdp.mode", Restart, mode, x.mode);
    cmp!("xdp.zero_copy", Restart, zero_copy, x.zero_copy);
    cmp!("xdp.frames", Restart, frames, x.frames);
    cmp!("xdp.idle", Restart, idle, x.idle);

    let Clients {
        socket,
        allow_uids,
        ring_entries,
        chunk_size,
        tx_chunks,
        rx_chunks,
    } = clients;
    let cl = &b.clients;
    cmp!("clients.socket", Restart, socket, cl.socket);
    cmp!("clients.allow_uids", Reload, allow_uids, cl.allow_uids);
    cmp!(
        "clients.ring_entries",
        Restart,
        ring_entries,
        cl.ring_entries
    );
    cmp!("clients.chunk_size", Restart, chunk_size, cl.chunk_size);
    cmp!("clients.tx_chunks", Restart, tx_chunks, cl.tx_chunks);
    cmp!("clients.rx_chunks", Restart, rx_chunks, cl.rx_chunks);

    let Metrics { listen } = metrics;
    cmp!("metrics.listen", Restart, listen, b.metrics.listen);

    let Log { level } = log;
    cmp!("log.level", Reload, level, b.log.level);

    cmp!("port", Restart, port, b.port);
    let Dpdk {
        device,
        eal_args,
        mempool_size,
        burst_size,
        idle,
    } = dpdk;
    let d = &b.dpdk;
    cmp!("dpdk.device", Restart, device, d.device);
    cmp!("dpdk.eal_args", Restart, eal_args, d.eal_args);
    cmp!("dpdk.mempool_size", Restart, mempool_size, d.mempool_size);
    cmp!("dpdk.burst_size", Restart, burst_size, d.burst_size);
    cmp!("dpdk.idle", Restart, idle, d.idle);
}

impl Config {
    /// Every field that differs between `self` and `new`, with when it
    /// takes effect, in file order.
    pub fn changed_fields(&self, new: &Config) -> Vec<(&'static str, Apply)> {
        let mut out = Vec::new();
        visit(self, new, &mut |name, apply, equal| {
            if !equal {
                out.push((name, apply));
            }
        });
        out
    }

    /// The reload rule: `new` (already validated by the loader) replaces
    /// `self` if it changes only reloadable fields; otherwise the error names
    /// every restart-only field that changed and `self` stays in force.
    pub fn reload_from(&self, new: Config) -> Result<Config, ReloadError> {
        let changed: Vec<&'static str> = self
            .changed_fields(&new)
            .into_iter()
            .filter(|&(_, apply)| apply == Apply::Restart)
            .map(|(name, _)| name)
            .collect();
        if changed.is_empty() {
            Ok(new)
        } else {
            Err(ReloadError { changed })
        }
    }

    /// Every leaf field's dotted name and when a change to it takes effect,
    /// in file order (the table in this module's docs).
    pub fn fields() -> Vec<(&'static str, Apply)> {
        let c = Config::with_defaults("lo", Vec::new());
        let mut out = Vec::new();
        visit(&c, &c, &mut |name, apply, _| out.push((name, apply)));
        out
    }
}
