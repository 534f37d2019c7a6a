//! Build script of `lingerd-dataplane`: compiles our XDP program.
//!
//! Only with the `afxdp` feature: `clang -O2 -g -target bpf` turns
//! `xdp/lingerd.bpf.c` into `$OUT_DIR/lingerd.bpf.o`, which the AF_XDP port
//! embeds with `include_bytes!`. It touches nothing outside OUT_DIR and never
//! runs without the feature, so the protocol crate builds without clang.

use std::env;
use std::path::PathBuf;
use std::process::Command;

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
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
