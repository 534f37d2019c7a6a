//! Build script of `lingerd-dataplane`: compiles our XDP program and, with
//! the `dpdk` feature, binds and links DPDK.
//!
//! With the `afxdp` feature: `clang -O2 -g -target bpf` turns
//! `xdp/lingerd.bpf.c` into `$OUT_DIR/lingerd.bpf.o`, which the AF_XDP port
//! embeds with `include_bytes!`.
//!
//! With the `dpdk` feature: finds libdpdk (>= 22.11) with pkg-config
//! (`PKG_CONFIG_PATH` is honoured, so a DPDK built from source works),
//! compiles `dpdk/shim.c` and runs bindgen over `dpdk/shim.h` with
//! pkg-config's cflags passed verbatim (they carry `-include rte_config.h`
//! and DPDK's own `-march`; never `-march=native`), and writes the
//! allowlisted bindings to `$OUT_DIR/dpdk.rs`. Linking is static by default
//! with a fixed driver set under `--whole-archive` (drivers register in
//! constructors nothing references; `net_af_xdp` is left out on purpose,
//! since its libbpf/libxdp would bind to xsk-rs's vendored copies). Setting
//! `LINGERD_DPDK_SHARED=1` links pkg-config's shared libraries instead; EAL
//! then loads every driver from its plugin directory at start.
//!
//! It touches nothing outside OUT_DIR, and each branch returns at once
//! without its feature, so the protocol crate builds without clang or DPDK.

use std::env;
use std::path::PathBuf;
use std::process::Command;

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    // Set for a static DPDK build, which links no PCI bus.
    println!("cargo::rustc-check-cfg=cfg(lingerd_dpdk_static)");
    xdp_program();
    dpdk();
}

fn xdp_program() {
    if env::var_os("CARGO_FEATURE_AFXDP").is_none() {
        return;
    }
    let src = "xdp/lingerd.bpf.c";
    println!("cargo:rerun-if-changed={src}");
    println!("cargo:rerun-if-env-changed=LINGERD_CLANG");
    let out =
        PathBuf::from(env::var_os("OUT_DIR").expect("cargo sets OUT_DIR")).join("lingerd.bpf.o");
    let clang = env::var("LINGERD_CLANG").unwrap_or_else(|_| "clang".to_owned());
    // Debian keeps <asm/types.h> under the multiarch directory, which clang
    // does not search for the bpf target.
    let multiarch = match env::var("CARGO_CFG_TARGET_ARCH").as_deref() {
        Ok("aarch64") => "/usr/include/aarch64-linux-gnu",
        _ => "/usr/include/x86_64-linux-gnu",
    };
    let status = Command::new(&clang)
        .args(["-O2", "-g", "-target", "bpf", "-Wall", "-Werror"])
        .arg(format!("-I{multiarch}"))
        .args(["-c", src, "-o"])
        .arg(&out)
        .status()
        .unwrap_or_else(|e| {
            panic!("cannot run `{clang}` to build the XDP program ({e}); run deploy/bootstrap")
        });
    assert!(
        status.success(),
        "`{clang}` failed to compile {src} ({status}); needs clang and libbpf-dev (deploy/bootstrap)"
    );
}

/// The poll-mode drivers and buses linked whole into a static build.
#[cfg(feature = "dpdk")]
const DPDK_DRIVERS: &[&str] = &[
    "rte_net_memif",
    "rte_net_ring",
    "rte_net_null",
    "rte_net_tap",
    "rte_net_af_packet",
    "rte_bus_vdev",
    "rte_mempool_ring",
];

/// The DPDK libraries those drivers and lingerd's calls need, users before
/// what they use (static archives resolve left to right).
#[cfg(feature = "dpdk")]
const DPDK_LIBS: &[&str] = &[
    "rte_ethdev",
    "rte_gso",
    "rte_hash",
    "rte_rcu",
    "rte_net",
    "rte_mbuf",
    "rte_mempool",
    "rte_ring",
    "rte_meter",
    "rte_eal",
    "rte_telemetry",
    "rte_kvargs",
];

/// System libraries the static DPDK archives need.
#[cfg(feature = "dpdk")]
const DPDK_SYSTEM_LIBS: &[&str] = &["numa", "bsd", "atomic", "m", "dl", "pthread"];

#[cfg(feature = "dpdk")]
fn dpdk() {
    println!("cargo:rerun-if-changed=dpdk/shim.c");
    println!("cargo:rerun-if-changed=dpdk/shim.h");
    println!("cargo:rerun-if-env-changed=LINGERD_DPDK_SHARED");
    println!("cargo:rerun-if-env-changed=PKG_CONFIG_PATH");
    println!("cargo:rerun-if-env-changed=PKG_CONFIG");

    let lib = pkg_config::Config::new()
        .atleast_version("22.11")
        .cargo_metadata(false)
        .probe("libdpdk")
        .unwrap_or_else(|e| {
            panic!(
                "the `dpdk` feature needs DPDK 22.11 or newer (libdpdk.pc), \
                 which pkg-config did not find: run deploy/bootstrap (libdpdk-dev). ({e})"
            )
        });
    let cflags = pkg_config_words(&["--cflags", "libdpdk"]);

    let mut shim = cc::Build::new();
    shim.file("dpdk/shim.c").warnings(true);
    for flag in &cflags {
        shim.flag(flag);
    }
    // Emits the shim's own link line first: it must precede DPDK's archives.
    shim.compile("lingerd_dpdk_shim");

    let out = PathBuf::from(env::var_os("OUT_DIR").expect("cargo sets OUT_DIR")).join("dpdk.rs");
    bindgen::Builder::default()
        .header("dpdk/shim.h")
        .rust_target(bindgen::RustTarget::stable(85, 0).expect("a known Rust version"))
        .rust_edition(bindgen::RustEdition::Edition2024)
        .clang_args(&cflags)
        .allowlist_function("lingerd_.*")
        .allowlist_function("rte_eal_(init|cleanup|get_runtime_dir|hotplug_remove)")
        .allowlist_function("rte_thread_(register|unregister)")
        .allowlist_function("rte_dev_probe")
        .allowlist_function("rte_strerror")
        .allowlist_function(
            "rte_eth_(dev_(configure|start|stop|close|info_get|get_port_by_name|socket_id)\
             |rx_queue_setup|tx_queue_setup|stats_get|macaddr_get|link_get_nowait)",
        )
        .allowlist_function("rte_pktmbuf_pool_create")
        .allowlist_function("rte_mempool_(free|avail_count|in_use_count)")
        .allowlist_type("rte_eth_(conf|dev_info|stats|link|rx_mq_mode|tx_mq_mode)")
        .allowlist_type("rte_ether_addr")
        .allowlist_var("RTE_ETH_NAME_MAX_LEN|RTE_MAX_ETHPORTS|SOCKET_ID_ANY|LCORE_ID_ANY")
        .opaque_type("rte_mbuf")
        .opaque_type("rte_mempool")
        .derive_default(true)
        .layout_tests(false)
        .generate_comments(false)
        .generate()
        .unwrap_or_else(|e| panic!("bindgen over dpdk/shim.h failed: {e}"))
        .write_to_file(&out)
        .unwrap_or_else(|e| panic!("writing {}: {e}", out.display()));

    if env::var("LINGERD_DPDK_SHARED").as_deref() == Ok("1") {
        // pkg-config's shared libraries; `-Wl,` flags (--as-needed) cannot be
        // passed on to the binaries of other crates and are left out.
        for word in pkg_config_words(&["--libs", "libdpdk"]) {
            if let Some(dir) = word.strip_prefix("-L") {
                println!("cargo:rustc-link-search=native={dir}");
            } else if let Some(name) = word.strip_prefix("-l") {
                println!("cargo:rustc-link-lib=dylib={name}");
            }
        }
        return;
    }
    println!("cargo:rustc-cfg=lingerd_dpdk_static");
    for dir in &lib.link_paths {
        println!("cargo:rustc-link-search=native={}", dir.display());
    }
    for name in DPDK_DRIVERS {
        println!("cargo:rustc-link-lib=static:+whole-archive,-bundle={name}");
    }
    for name in DPDK_LIBS {
        println!("cargo:rustc-link-lib=static:-bundle={name}");
    }
    for name in DPDK_SYSTEM_LIBS {
        println!("cargo:rustc-link-lib=dylib={name}");
    }
}

#[cfg(not(feature = "dpdk"))]
fn dpdk() {}

/// `pkg-config ARGS` split into words, verbatim.
#[cfg(feature = "dpdk")]
fn pkg_config_words(args: &[&str]) -> Vec<String> {
    let pkg_config = env::var("PKG_CONFIG").unwrap_or_else(|_| "pkg-config".to_owned());
    let out = Command::new(&pkg_config)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run `{pkg_config}` ({e}); run deploy/bootstrap"));
    assert!(
        out.status.success(),
        "`{pkg_config} {}` failed: {}; run deploy/bootstrap (libdpdk-dev)",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr).trim()
    );
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .map(str::to_owned)
        .collect()
}
