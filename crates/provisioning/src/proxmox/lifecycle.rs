//! Operations on an existing container, each run to the end of its task:
//! power actions (start, shutdown, stop; a container already in the wanted
//! state is success), resize (cores and memory in its config, then the
//! root disk, which never shrinks) and destroy (out of HA and stopped
//! first, purged).

use serde::Deserialize;
use serde_json::Value;
use tenantry_domain::catalog::Resources;

use super::errors::{ApiError, Class};
use super::params::{Vmid, disk_size_bytes};
use super::tasks::{self, Upid};
use super::{ProxmoxDriver, as_u64};
use crate::{DriverError, InstanceRef};

/// Seconds a shutdown waits for the container's init before PVE stops it
/// hard (`forceStop=1`).
const SHUTDOWN_TIMEOUT_SECS: u32 = 60;

/// `GET /nodes/{node}/lxc/{vmid}/config`, the fields resize reads.
#[derive(Debug, Deserialize)]
struct CtConfig {
    #[serde(default)]
    cores: Option<Value>,
    #[serde(default)]
    memory: Option<Value>,
    #[serde(default)]
    rootfs: Option<String>,
}

impl ProxmoxDriver {
    /// Waits for the task a call returned, if it returned one.
    async fn finish(&self, data: &Value) -> Result<(), DriverError> {
        match Upid::from_data(data)? {
            Some(upid) => {
                tasks::wait(
                    &self.client,
                    &upid,
                    self.cfg.task_poll_interval,
                    self.cfg.task_deadline,
                )
                .await
            }
            None => Ok(()),
        }
    }

    /// Runs a power action (`start`, `shutdown`, `stop`) to its end. A
    /// container already in the wanted state is success (PVE says `CT 105
    /// already running` / `not running`).
    pub(crate) async fn power(&self, vmid: Vmid, action: &str) -> Result<(), DriverError> {
        let vmid_s = vmid.to_string();
        let params: Vec<(&str, String)> = match action {
            "shutdown" => vec![
                ("forceStop", "1".into()),
                ("timeout", SHUTDOWN_TIMEOUT_SECS.to_string()),
            ],
            _ => Vec::new(),
        };
        let call = self
            .client
            .post(
                &["nodes", self.node(), "lxc", &vmid_s, "status", action],
                &params,
            )
            .await;
        let data = match call {
            Ok(data) => data,
            Err(e) if settled(action, &e) => return Ok(()),
            Err(e) => return Err(e.into()),
        };
        self.finish(&data).await
    }

    pub(crate) async fn resize_once(
        &self,
        instance: &InstanceRef,
        resources: &Resources,
    ) -> Result<(), DriverError> {
        let ct = self.located(instance).await?;
        let vmid = ct.vmid.to_string();
        let config: CtConfig = self
            .client
            .get(&["nodes", self.node(), "lxc", &vmid, "config"], &[])
            .await?;
        let cores = config.cores.as_ref().and_then(as_u64);
        let memory = config.memory.as_ref().and_then(as_u64);
        let mut changes = Vec::new();
        if cores != Some(u64::from(resources.cpu_cores)) {
            changes.push(("cores", resources.cpu_cores.to_string()));
        }
        if memory != Some(u64::from(resources.memory_mib)) {
            changes.push(("memory", resources.memory_mib.to_string()));
        }
        if !changes.is_empty() {
            let data = self
                .client
                .put(&["nodes", self.node(), "lxc", &vmid, "config"], &changes)
                .await?;
            self.finish(&data).await?;
        }
        let wanted = u64::from(resources.storage_gib) << 30;
        let current = config.rootfs.as_deref().and_then(disk_size_bytes);
        if current.is_some_and(|c| c >= wanted) {
            return Ok(());
        }
        let call = self
            .client
            .put(
                &["nodes", self.node(), "lxc", &vmid, "resize"],
                &[
                    ("disk", "rootfs".into()),
                    ("size", format!("{}G", resources.storage_gib)),
                ],
            )
            .await;
        match call {
            Ok(data) => self.finish(&data).await,
            // Disks never shrink; an equal size is done already.
            Err(ApiError::Http { ref message, .. })
                if message.contains("already at specified size")
                    || message.contains("unable to shrink") =>
            {
                Ok(())
            }
            Err(e) => Err(e.into()),
        }
    }

    /// One try at destroy: the HA resource goes first (PVE refuses to
    /// destroy an HA resource without `purge`, and hands a stop of one to
    /// the HA stack, which stops it later), then a running container is
    /// stopped, then destroyed with `purge=1` (backup and replication jobs,
    /// HA) and `destroy-unreferenced-disks=1`.
    pub(crate) async fn destroy_once(&self, instance: &InstanceRef) -> Result<(), DriverError> {
        let Some(ct) = self.locate(instance).await? else {
            return Ok(());
        };
        if self.ha_listed(ct.vmid).await? {
            self.remove_ha(ct.vmid).await?;
        }
        if ct.running() {
            self.power(ct.vmid, "stop").await?;
        }
        let vmid = ct.vmid.to_string();
        let call = self
            .client
            .delete(
                &["nodes", self.node(), "lxc", &vmid],
                &[
                    ("purge", "1".into()),
                    ("destroy-unreferenced-disks", "1".into()),
                ],
            )
            .await;
        match call {
            Ok(data) => self.finish(&data).await,
            Err(e) if e.class() == Class::DoesNotExist => Ok(()),
            Err(e) => Err(e.into()),
        }
    }
}

/// Whether a power action's error means the container is already where the
/// action would take it.
pub(crate) fn settled(action: &str, e: &ApiError) -> bool {
    matches!(
        (action, e.class()),
        ("start", Class::AlreadyRunning) | ("shutdown" | "stop", Class::NotRunning)
    )
}
