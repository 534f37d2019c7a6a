//! Core pinning and the host facts it depends on.
//!
//! Before any thread starts, `check_cores` refuses a configured CPU that
//! is outside the process's allowed mask (`sched_getaffinity`, through
//! `core_affinity`: a cpuset, `taskset` or systemd's `CPUAffinity=` may have
//! narrowed it) and warns when a CPU sits on another NUMA node than the NIC
//! (`/sys/class/net/IF/device/numa_node`, absent for virtual interfaces).
//! Each dataplane thread then pins itself with `pin_current`. The safe
//! `core_affinity` crate makes the syscalls, so no `unsafe` is needed here.
//! It reads sysfs and sets the calling thread's affinity; nothing else.

use std::fs;
use std::path::Path;

/// Why pinning cannot be done as configured.
#[derive(Debug, thiserror::Error)]
pub enum PinError {
    /// A configured CPU is outside the allowed mask.
    #[error(
        "core {cpu} is not in this process's allowed CPU set {allowed:?} (cpuset, taskset or CPUAffinity=)"
    )]
    NotAllowed {
        /// The CPU.
        cpu: u32,
        /// What the process may use.
        allowed: Vec<u32>,
    },
    /// The affinity could not be read or set.
    #[error("could not {0} the CPU affinity")]
    Affinity(&'static str),
}

/// CPUs this thread may run on.
pub(crate) fn allowed_cpus() -> Result<Vec<u32>, PinError> {
    let ids = core_affinity::get_core_ids().ok_or(PinError::Affinity("read"))?;
    Ok(ids.into_iter().map(|c| c.id as u32).collect())
}

/// The NUMA node of a NIC, when the kernel knows one (`-1` and a missing
/// file, as for veth, mean none).
pub(crate) fn nic_node(sysfs_net: &Path, iface: &str) -> Option<u32> {
    let s = fs::read_to_string(sysfs_net.join(iface).join("device/numa_node")).ok()?;
    s.trim()
        .parse::<i64>()
        .ok()
        .and_then(|n| u32::try_from(n).ok())
}

/// The NUMA node of a CPU (`/sys/devices/system/cpu/cpuN/nodeK`).
pub(crate) fn cpu_node(sysfs_cpu: &Path, cpu: u32) -> Option<u32> {
    fs::read_dir(sysfs_cpu.join(format!("cpu{cpu}")))
        .ok()?
        .filter_map(Result::ok)
        .find_map(|e| e.file_name().to_str()?.strip_prefix("node")?.parse().ok())
}

/// Checks every configured CPU against `allowed`; returns one warning per
/// CPU on another NUMA node than the NIC.
pub(crate) fn check_cores(
    cpus: &[u32],
    allowed: &[u32],
    nic: Option<u32>,
    node_of: impl Fn(u32) -> Option<u32>,
) -> Result<Vec<String>, PinError> {
    let mut warnings = Vec::new();
    for &cpu in cpus {
        if !allowed.contains(&cpu) {
            return Err(PinError::NotAllowed {
                cpu,
                allowed: allowed.to_vec(),
            });
        }
        if let (Some(nic), Some(node)) = (nic, node_of(cpu))
            && nic != node
        {
            warnings.push(format!(
                "core {cpu} is on NUMA node {node} but the NIC is on node {nic}: \
                 every frame crosses the interconnect"
            ));
        }
    }
    Ok(warnings)
}

/// Pins the calling thread to `cpu`.
pub(crate) fn pin_current(cpu: u32) -> Result<(), PinError> {
    if core_affinity::set_for_current(core_affinity::CoreId { id: cpu as usize }) {
        Ok(())
    } else {
        Err(PinError::Affinity("set"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_a_core_outside_the_mask() {
        let e = check_cores(&[0, 5], &[0, 1], None, |_| None).unwrap_err();
        assert!(matches!(e, PinError::NotAllowed { cpu: 5, .. }), "{e}");
        assert!(e.to_string().contains("core 5 is not in"), "{e}");
    }

    #[test]
    fn warns_on_numa_mismatch_only() {
        let w = check_cores(&[0, 1], &[0, 1], Some(0), Some).unwrap();
        assert_eq!(w.len(), 1);
        assert!(w[0].starts_with("core 1 is on NUMA node 1"), "{w:?}");
        assert!(
            check_cores(&[0, 1], &[0, 1], None, Some)
                .unwrap()
                .is_empty()
        );
    }

    #[test]
    fn reads_sysfs_layouts() {
        let dir = std::env::temp_dir().join(format!("lingerd-pin-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(dir.join("net/eth9/device")).unwrap();
        fs::write(dir.join("net/eth9/device/numa_node"), "1\n").unwrap();
        fs::create_dir_all(dir.join("net/veth9")).unwrap();
        fs::create_dir_all(dir.join("cpu/cpu3/node1")).unwrap();
        assert_eq!(nic_node(&dir.join("net"), "eth9"), Some(1));
        assert_eq!(nic_node(&dir.join("net"), "veth9"), None);
        assert_eq!(cpu_node(&dir.join("cpu"), 3), Some(1));
        assert_eq!(cpu_node(&dir.join("cpu"), 4), None);
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn this_thread_has_an_allowed_cpu() {
        let cpus = allowed_cpus().unwrap();
        assert!(!cpus.is_empty());
    }
}
