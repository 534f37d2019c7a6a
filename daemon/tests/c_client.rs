//! The C face: `client/c/examples/echo_abort.c` compiled with `cc` against
//! `client/c/include/lingerd.h` and the `liblingerd.so` cargo built for this
//! test (lingerd-c is a dev-dependency, built as rlib and cdylib), run
//! against the in-process daemon of `support`. It must exit 0 after its
//! echo and abort round trips. Without `cc` (gcc, from `deploy/bootstrap`)
//! it fails: it never passes without having run.

mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use support::{Daemon, Scratch};

/// The directory holding `liblingerd.so` for this build: `deps/` next to
/// this test binary, else the profile directory cargo uplifts into.
fn cdylib_dir() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let deps = exe.parent().unwrap().to_path_buf();
    let profile = deps.parent().unwrap().to_path_buf();
    let newest = [deps, profile]
        .into_iter()
        .filter_map(|d| {
            let m = std::fs::metadata(d.join("liblingerd.so")).ok()?;
            Some((m.modified().ok()?, d))
        })
        .max_by_key(|(t, _)| *t);
    newest
        .map(|(_, d)| d)
        .expect("cargo builds liblingerd.so with this test (lingerd-c is a dev-dependency)")
}

fn have_cc() -> bool {
    Command::new("cc")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

#[test]
fn c_echo_abort_exits_zero() {
    assert!(
        have_cc(),
        "no `cc` on PATH: the C client test needs gcc (deploy/bootstrap installs it)"
    );
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let lib = cdylib_dir();
    let out = Scratch::new("c", 0o700);
    let bin = out.join("echo_abort");
    let cc = Command::new("cc")
        .args(["-std=c11", "-Wall", "-Wextra", "-Werror", "-o"])
        .arg(&bin)
        .arg(root.join("client/c/examples/echo_abort.c"))
        .arg("-I")
        .arg(root.join("client/c/include"))
        .arg("-L")
        .arg(&lib)
        .arg("-llingerd")
        // DT_RPATH (not RUNPATH) and no inherited LD_LIBRARY_PATH: the
        // library loaded is the one linked, not another build's copy.
        .arg("-Wl,--disable-new-dtags")
        .arg(format!("-Wl,-rpath,{}", lib.display()))
        .output()
        .expect("run cc");
    assert!(
        cc.status.success(),
        "cc failed:\n{}",
        String::from_utf8_lossy(&cc.stderr)
    );

    let d = Daemon::start(vec![0], None);
    let mut child = Command::new(&bin)
        .env_remove("LD_LIBRARY_PATH")
        .arg(&d.socket)
        .arg("7")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run echo_abort");
    let end = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if Instant::now() > end {
            let _ = child.kill();
            let _ = child.wait();
            panic!("echo_abort did not finish within 60 s");
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let output = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        status.success(),
        "echo_abort: {status}\nstdout:\n{stdout}\nstderr:\n{stderr}"
    );
    assert!(stdout.contains("echo_abort: ok"), "{stdout}");
    // Its ld_detach hung up: the daemon saw the client go.
    assert!(d.gone.recv_timeout(Duration::from_secs(5)).is_ok());
}
