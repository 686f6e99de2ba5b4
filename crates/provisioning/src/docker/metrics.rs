//! Usage as `docker stats` computes it: CPU in cores and memory less the
//! page cache, summed over running containers, and the disk of the file
//! system holding the engine's root directory (a local engine only).

use bollard::models::{ContainerStatsResponse, ContainerSummary};
use bollard::query_parameters::StatsOptions;
use futures_util::StreamExt;

use super::DockerDriver;
use super::containers::{id_of, running};

/// CPU use as a fraction of one core from a non-streamed stats answer (the
/// engine's two samples a second apart), as `docker stats` computes it.
pub(crate) fn cpu_cores_used(s: &ContainerStatsResponse) -> Option<f64> {
    let cpu = s.cpu_stats.as_ref()?;
    let pre = s.precpu_stats.as_ref()?;
    let total = cpu.cpu_usage.as_ref()?.total_usage?;
    let pre_total = pre.cpu_usage.as_ref()?.total_usage.unwrap_or(0);
    let system = cpu.system_cpu_usage?;
    let pre_system = pre.system_cpu_usage.unwrap_or(0);
    let online = cpu.online_cpus.filter(|n| *n > 0).or_else(|| {
        cpu.cpu_usage
            .as_ref()?
            .percpu_usage
            .as_ref()
            .and_then(|p| u32::try_from(p.len()).ok())
    })?;
    let cpu_delta = total.checked_sub(pre_total)?;
    let system_delta = system.checked_sub(pre_system).filter(|d| *d > 0)?;
    #[expect(
        clippy::cast_precision_loss,
        reason = "nanosecond counters; a ratio needs no more than f64's 52 bits"
    )]
    let used = cpu_delta as f64 / system_delta as f64 * f64::from(online);
    Some(used)
}

/// Memory in use as `docker stats` shows it: usage less the page cache
/// (`cache` on cgroup v1, `inactive_file` on v2).
pub(crate) fn memory_used(s: &ContainerStatsResponse) -> Option<u64> {
    let m = s.memory_stats.as_ref()?;
    let usage = m.usage?;
    let cache = m
        .stats
        .as_ref()
        .and_then(|st| st.get("inactive_file").or_else(|| st.get("cache")).copied())
        .unwrap_or(0);
    Some(usage.saturating_sub(cache))
}

/// Total and used bytes of the file system holding `path`.
pub(crate) fn disk_of(path: &str) -> Option<(u64, u64)> {
    let st = rustix::fs::statvfs(path).ok()?;
    let total = st.f_blocks.checked_mul(st.f_frsize)?;
    let free = st.f_bfree.checked_mul(st.f_frsize)?;
    Some((total, total.saturating_sub(free)))
}

impl DockerDriver {
    async fn stats_of(&self, id: &str) -> Option<ContainerStatsResponse> {
        let docker = self.engine().await.ok()?;
        let opts = StatsOptions {
            stream: false,
            one_shot: false,
        };
        docker.stats(id, Some(opts)).next().await?.ok()
    }

    /// CPU (cores) and memory (bytes) of running containers, summed.
    pub(crate) async fn usage(&self, cs: &[ContainerSummary]) -> (Option<f64>, Option<u64>) {
        let ids: Vec<String> = cs.iter().filter(|c| running(c)).map(id_of).collect();
        if ids.is_empty() {
            return (None, None);
        }
        let stats: Vec<Option<ContainerStatsResponse>> = futures_util::stream::iter(ids)
            .map(|id| async move { self.stats_of(&id).await })
            .buffer_unordered(8)
            .collect()
            .await;
        let mut cpu = None;
        let mut mem = None;
        for s in stats.iter().flatten() {
            if let Some(c) = cpu_cores_used(s) {
                *cpu.get_or_insert(0.0) += c;
            }
            if let Some(m) = memory_used(s) {
                *mem.get_or_insert(0) += m;
            }
        }
        (cpu, mem)
    }
}
