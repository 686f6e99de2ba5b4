//! The [`Driver`] operations on a Proxmox VE node, each retried while it
//! fails with a transient error: create, find, start, stop, destroy,
//! resize, upstream, high availability, and the status of an instance and
//! of the node.

use std::collections::BTreeSet;

use async_trait::async_trait;
use serde::Deserialize;
use serde_json::Value;
use tenantry_domain::catalog::Resources;
use uuid::Uuid;

use super::ProxmoxDriver;
use super::errors::Class;
use super::locate::pick_ours;
use super::params::owner_tag;
use crate::{
    Driver, DriverError, InstanceRef, InstanceSpec, InstanceState, InstanceStatus, NodeMetrics,
    NodeStatus, Upstream,
};

/// `GET /version`.
#[derive(Debug, Deserialize)]
struct Version {
    version: String,
}

#[async_trait]
impl Driver for ProxmoxDriver {
    /// Creates (or adopts) the container; for a spec with
    /// `high_availability`, then makes it an HA resource.
    async fn create_instance(&self, spec: &InstanceSpec) -> Result<InstanceRef, DriverError> {
        let uncertain = std::sync::Mutex::new(BTreeSet::new());
        let created = self
            .retrying("create", || self.create_once(spec, &uncertain))
            .await?;
        if spec.high_availability {
            self.retrying("high availability", || self.set_ha_once(&created, true))
                .await?;
        }
        Ok(created)
    }

    async fn find_instance(&self, instance_id: Uuid) -> Result<Option<InstanceRef>, DriverError> {
        let tag = owner_tag(instance_id);
        self.retrying("find", || async {
            let cts = self.list().await?;
            Ok(pick_ours(&cts, &tag).map(|ct| InstanceRef {
                instance_id,
                external_id: ct.vmid.to_string(),
            }))
        })
        .await
    }

    async fn start(&self, instance: &InstanceRef) -> Result<(), DriverError> {
        self.retrying("start", || async {
            let ct = self.located(instance).await?;
            if ct.running() {
                return Ok(());
            }
            self.power(ct.vmid, "start").await
        })
        .await
    }

    async fn stop(&self, instance: &InstanceRef) -> Result<(), DriverError> {
        self.retrying("stop", || async {
            let ct = self.located(instance).await?;
            if !ct.running() {
                return Ok(());
            }
            self.power(ct.vmid, "shutdown").await
        })
        .await
    }

    async fn destroy(&self, instance: &InstanceRef) -> Result<(), DriverError> {
        self.retrying("destroy", || self.destroy_once(instance))
            .await
    }

    async fn resize(
        &self,
        instance: &InstanceRef,
        resources: &Resources,
    ) -> Result<(), DriverError> {
        self.retrying("resize", || self.resize_once(instance, resources))
            .await
    }

    async fn instance_status(&self, instance: &InstanceRef) -> Result<InstanceStatus, DriverError> {
        self.retrying("status", || async {
            let Some(ct) = self.locate(instance).await? else {
                return Ok(InstanceStatus {
                    state: InstanceState::Missing,
                    cpu: None,
                    memory_bytes: None,
                    uptime_secs: None,
                    disk_bytes: None,
                });
            };
            let running = ct.running();
            Ok(InstanceStatus {
                state: if running {
                    InstanceState::Running
                } else {
                    InstanceState::Stopped
                },
                // PVE's `cpu` is a fraction of the container's `cpus`.
                cpu: ct.cpu.map(|c| c * ct.cpus.unwrap_or(1.0)),
                memory_bytes: ct.mem,
                uptime_secs: ct.uptime.filter(|_| running),
                disk_bytes: ct.disk.filter(|_| running),
            })
        })
        .await
    }

    async fn node_status(&self) -> Result<NodeStatus, DriverError> {
        self.retrying("node status", || async {
            let version: Version = self.client.get(&["version"], &[]).await?;
            let online = match self
                .client
                .get::<Value>(&["nodes", self.node(), "status"], &[])
                .await
            {
                Ok(_) => true,
                Err(e) if e.class() == Class::NodeUnreachable => false,
                Err(e) => return Err(e.into()),
            };
            Ok(NodeStatus {
                version: version.version,
                online,
            })
        })
        .await
    }

    /// The container's IPv4 address (first interface other than `lo` with
    /// one) and `internal_port`; `host_port` is not used (a container has
    /// its own address). `None` while the container has no address: when
    /// it is stopped too (PVE answers `{"data":null}` then, not an error).
    async fn upstream(
        &self,
        instance: &InstanceRef,
        internal_port: u16,
        _host_port: Option<u16>,
    ) -> Result<Option<Upstream>, DriverError> {
        self.retrying("upstream", || self.upstream_once(instance, internal_port))
            .await
    }

    async fn set_high_availability(
        &self,
        instance: &InstanceRef,
        enabled: bool,
    ) -> Result<(), DriverError> {
        self.retrying("high availability", || self.set_ha_once(instance, enabled))
            .await
    }

    async fn node_metrics(&self) -> Result<NodeMetrics, DriverError> {
        self.retrying("node metrics", || self.node_metrics_once())
            .await
    }
}
