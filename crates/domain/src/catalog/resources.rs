//! The compute a plan or a shared instance reserves on a node — cores,
//! memory (MiB), disk (GiB) — within the catalog's limits.

use super::rules::bounded;
use crate::ValidationErrors;

/// The compute a plan reserves on a node: whole cores, memory in MiB, disk in GiB.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Resources {
    /// CPU cores (Proxmox `cores`, Docker `NanoCpus / 1e9`), at least 1.
    pub cpu_cores: u32,
    /// Memory in MiB (Proxmox `memory`), at least 128.
    pub memory_mib: u32,
    /// Root disk in GiB (Proxmox `rootfs` size), at least 1.
    pub storage_gib: u32,
}

impl Resources {
    /// Smallest memory a plan may reserve, in MiB.
    pub const MIN_MEMORY_MIB: u32 = 128;

    pub(super) fn validate(
        cpu: i64,
        mem: i64,
        disk: i64,
        errors: &mut ValidationErrors,
    ) -> Option<Self> {
        let cpu_cores = errors.check("cpu_cores", bounded(cpu, 1, 512));
        let memory_mib = errors.check(
            "memory_mib",
            bounded(mem, i64::from(Self::MIN_MEMORY_MIB), 4 * 1024 * 1024),
        );
        let storage_gib = errors.check("storage_gib", bounded(disk, 1, 1024 * 1024));
        Some(Self {
            cpu_cores: cpu_cores?,
            memory_mib: memory_mib?,
            storage_gib: storage_gib?,
        })
    }
}
