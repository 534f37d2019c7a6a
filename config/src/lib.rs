//! lingerd's configuration: YAML in, validated plain types out.
//!
//! It owns the file's shape and defaults (`model`), the few value shapes
//! of its own (`net`: the gateway's address and `auto|MAC`, the linger map; `dpdk`:
//! the DPDK device's short form and the devices named in EAL arguments), the
//! checks across fields (`check`), loading with
//! errors that name the file, line and column (`load`), and the split
//! between restart-only and reloadable fields (`reload`). It reads only the
//! file it is given and may not depend on the dataplane: the daemon turns
//! these values into `EngineConfig` and friends, and `LayoutParams` comes
//! from here because the ABI crate is the authority on the shared region.
//! The values lingerd shares across crates (prefixes, MAC addresses,
//! linger settings, policies) are `lingerd_abi::vocab` types, re-exported
//! here for convenience.
//!
//! ```
//! let c = lingerd_config::Config::parse(
//!     "interface: eth0\naddresses: [198.18.0.1/24]\n",
//!     "example.yaml",
//! )
//! .unwrap();
//! assert_eq!(c.queues, [0]);
//! assert_eq!(c.tcp.time_wait, lingerd_config::Duration::from_secs(60));
//! ```
#![deny(unsafe_code)]

mod check;

/// The most entries `addresses` may have, IPv4 and IPv6 together: a
/// connection record keeps its local address as a 5-bit index into the
/// engine's address list, one value of which names listeners
/// (`lingerd_dataplane::engine::config::MAX_ADDRS`, which the daemon
/// checks equals this).
pub const MAX_ADDRESSES: usize = 31;
mod dpdk;
mod load;
mod model;
mod net;
mod reload;

pub use dpdk::{DeviceKind, DpdkDevice, EalDevice, eal_devices};
pub use lingerd_abi::vocab::{
    ClientExitPolicy, Duration, Linger, MAX_LINGER_MS, MacAddr, ParseError, Prefix, TimeWaitRst,
};
pub use load::{Build, ConfigError, Invalid, MAX_FILE_BYTES};
pub use model::{
    Clients, Close, Config, Dpdk, Gateway, Gateways, Idle, Listen, Log, LogLevel, MAX_BURST,
    MAX_CONNECTIONS, MAX_CORES, MAX_CPU, MAX_LINGER_SECS, MAX_MEMPOOL, Metrics, PortKind, Tcp, Xdp,
    XdpMode, ZeroCopy,
};
pub use net::{GatewayIp, GatewayMac, is_link_local_v6};
pub use reload::{Apply, ReloadError};

use lingerd_abi::layout::LayoutParams;

impl Config {
    /// A configuration with the two required fields and every other one at
    /// the default the YAML loader gives it, as if the file held only
    /// `interface:` and `addresses:`. Not validated: [`Config::parse`] and
    /// [`Config::load`] are the way in for anything a user wrote. Tests
    /// start from it and edit fields to build a daemon's configuration as a
    /// value (then write it with [`Config::to_yaml`]).
    pub fn with_defaults(interface: impl Into<String>, addresses: Vec<Prefix>) -> Config {
        // The same defaults as the `#[serde(default ...)]` attributes in
        // `model`: the same functions and `Default` impls, none restated.
        Config {
            interface: interface.into(),
            queues: model::default_queues(),
            cores: model::default_cores(),
            addresses,
            gateway: crate::model::Gateways::default(),
            listen: Vec::new(),
            tcp: Tcp::default(),
            close: Close::default(),
            xdp: Xdp::default(),
            clients: Clients::default(),
            metrics: Metrics::default(),
            log: Log::default(),
            port: PortKind::default(),
            dpdk: Dpdk::default(),
        }
    }

    /// The configuration as YAML that [`Config::parse`] reads back to an
    /// equal `Config` (every field written out, defaults included). Tests
    /// use it to start a daemon from a value instead of hand-written YAML.
    pub fn to_yaml(&self) -> String {
        // Every field is a plain value, a string-serialized vocabulary
        // type, a sequence or a map: serializing cannot fail.
        serde_saphyr::to_string(self).unwrap_or_default()
    }

    /// `(queue, core)` pairs: one dataplane core per NIC queue.
    pub fn queue_cores(&self) -> impl Iterator<Item = (u32, u32)> + '_ {
        self.queues.iter().copied().zip(self.cores.iter().copied())
    }

    /// The shared-region parameters of every client (validated by the
    /// loader against `lingerd_abi::layout::Layout::new`).
    pub fn layout_params(&self) -> LayoutParams {
        LayoutParams {
            cores: self.queues.len() as u32,
            ring_entries: self.clients.ring_entries,
            chunk_size: self.clients.chunk_size,
            tx_chunks: self.clients.tx_chunks,
            rx_chunks: self.clients.rx_chunks,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_with_defaults_is_the_minimal_file_and_round_trips() {
        let minimal = Config::parse(
            "interface: eth0\naddresses: [198.18.0.1/24, 198.19.0.1/16]\n",
            "minimal.yaml",
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let c = Config::with_defaults(
            "eth0",
            vec![
                "198.18.0.1/24".parse().unwrap(),
                "198.19.0.1/16".parse().unwrap(),
            ],
        );
        assert_eq!(c, minimal);
        let yaml = c.to_yaml();
        let back = Config::parse(&yaml, "to_yaml").unwrap_or_else(|e| panic!("{e}\n{yaml}"));
        assert_eq!(back, c, "{yaml}");
    }

    #[test]
    fn test_with_defaults_takes_any_interface_text() {
        // Not validated (an empty name, no address), and a name YAML would
        // read as another type stays a string.
        assert_eq!(Config::with_defaults("", Vec::new()).interface, "");
        for name in ["true", "0", "null", "a: b", "#x"] {
            let c = Config::with_defaults(name, Vec::new());
            assert_eq!(c.interface, name);
            assert!(c.addresses.is_empty());
        }
    }
}
