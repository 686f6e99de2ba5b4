//! The [`Driver`] operations on a Docker host, each retried while it fails
//! with a transient error: create, find, start, stop, destroy, purge,
//! resize, and the status and metrics of an instance and of the host.

use async_trait::async_trait;
use bollard::models::ContainerSummary;
use bollard::query_parameters::ListContainersOptions;
use tenantry_domain::catalog::Resources;
use uuid::Uuid;

use super::containers::{id_of, label, main_of, not_found, running};
use super::errors::Call;
use super::metrics::disk_of;
use super::spec::{self, COMPOSE_PROJECT, LABEL_MAIN};
use super::{DockerDriver, Endpoint};
use crate::{
    Driver, DriverError, InstanceRef, InstanceSpec, InstanceState, InstanceStatus, NodeMetrics,
    NodeStatus, Upstream,
};

#[async_trait]
impl Driver for DockerDriver {
    async fn create_instance(&self, spec: &InstanceSpec) -> Result<InstanceRef, DriverError> {
        spec::validate(spec)?;
        self.retrying("create", || self.create_once(spec)).await
    }

    async fn find_instance(&self, instance_id: Uuid) -> Result<Option<InstanceRef>, DriverError> {
        self.retrying("find", || async {
            let cs = self.ours(instance_id).await?;
            let Some(main) = main_of(&cs) else {
                return Ok(None);
            };
            let external_id = label(main, COMPOSE_PROJECT)
                .map(str::to_owned)
                .unwrap_or_else(|| id_of(main));
            Ok(Some(InstanceRef {
                instance_id,
                external_id,
            }))
        })
        .await
    }

    async fn start(&self, instance: &InstanceRef) -> Result<(), DriverError> {
        self.retrying("start", || async {
            let cs = self.ours(instance.instance_id).await?;
            if cs.is_empty() {
                return Err(not_found(instance));
            }
            // The product's container last: its helpers first.
            let mut order: Vec<&ContainerSummary> = cs.iter().filter(|c| !running(c)).collect();
            order.sort_by_key(|c| label(c, LABEL_MAIN) == Some("true"));
            for c in order {
                self.start_container(&id_of(c)).await?;
            }
            Ok(())
        })
        .await
    }

    async fn stop(&self, instance: &InstanceRef) -> Result<(), DriverError> {
        self.retrying("stop", || async {
            let cs = self.ours(instance.instance_id).await?;
            if cs.is_empty() {
                return Err(not_found(instance));
            }
            // The product's container first, then what it uses.
            let mut order: Vec<&ContainerSummary> = cs.iter().filter(|c| running(c)).collect();
            order.sort_by_key(|c| label(c, LABEL_MAIN) != Some("true"));
            for c in order {
                self.stop_container(&id_of(c)).await?;
            }
            Ok(())
        })
        .await
    }

    async fn destroy(&self, instance: &InstanceRef) -> Result<(), DriverError> {
        self.retrying("destroy", || async {
            let cs = self.ours(instance.instance_id).await?;
            let project = Self::project_of(instance, &cs);
            self.remove_all(instance.instance_id, project.as_deref())
                .await
        })
        .await
    }

    async fn purge_data(&self, instance: &InstanceRef) -> Result<(), DriverError> {
        self.retrying("purge", || async {
            let cs = self.ours(instance.instance_id).await?;
            let project = Self::project_of(instance, &cs);
            self.remove_all(instance.instance_id, project.as_deref())
                .await?;
            self.remove_volumes(instance.instance_id, project.as_deref())
                .await
        })
        .await
    }

    async fn resize(
        &self,
        instance: &InstanceRef,
        resources: &Resources,
    ) -> Result<(), DriverError> {
        self.retrying("resize", || async {
            let cs = self.ours(instance.instance_id).await?;
            let main = main_of(&cs).ok_or_else(|| not_found(instance))?;
            self.update_resources(&id_of(main), resources).await
        })
        .await
    }

    async fn upstream(
        &self,
        instance: &InstanceRef,
        _internal_port: u16,
        host_port: Option<u16>,
    ) -> Result<Option<Upstream>, DriverError> {
        // The app answers on the published port at the engine's host (the
        // host ports are tried there too before a deploy counts as ready).
        let Some(port) = host_port else {
            return Ok(None);
        };
        self.retrying("upstream", || async {
            let cs = self.ours(instance.instance_id).await?;
            main_of(&cs).ok_or_else(|| not_found(instance))?;
            Ok(Some(Upstream {
                host: self
                    .cfg
                    .probe_host
                    .clone()
                    .unwrap_or_else(|| self.endpoint.probe_host()),
                port,
            }))
        })
        .await
    }

    async fn set_high_availability(
        &self,
        instance: &InstanceRef,
        enabled: bool,
    ) -> Result<(), DriverError> {
        self.retrying("high availability", || async {
            let cs = self.ours(instance.instance_id).await?;
            if cs.is_empty() {
                return Err(not_found(instance));
            }
            for c in &cs {
                self.set_restart_policy(&id_of(c), enabled).await?;
            }
            Ok(())
        })
        .await
    }

    async fn instance_status(&self, instance: &InstanceRef) -> Result<InstanceStatus, DriverError> {
        self.retrying("status", || async {
            let cs = self.ours(instance.instance_id).await?;
            let Some(main) = main_of(&cs) else {
                return Ok(InstanceStatus {
                    state: InstanceState::Missing,
                    cpu: None,
                    memory_bytes: None,
                    uptime_secs: None,
                    disk_bytes: None,
                });
            };
            let all_running = cs.iter().all(running);
            let (cpu, memory_bytes) = self.usage(&cs).await;
            let uptime_secs = if running(main) {
                let inspect = self
                    .engine()
                    .await?
                    .inspect_container(&id_of(main), None)
                    .await
                    .call("inspect container")?;
                inspect
                    .state
                    .and_then(|s| s.started_at)
                    .and_then(|t| chrono::DateTime::parse_from_rfc3339(&t).ok())
                    .and_then(|t| {
                        u64::try_from((chrono::Utc::now() - t.to_utc()).num_seconds()).ok()
                    })
            } else {
                None
            };
            Ok(InstanceStatus {
                state: if all_running {
                    InstanceState::Running
                } else {
                    InstanceState::Stopped
                },
                cpu,
                memory_bytes,
                uptime_secs,
                disk_bytes: None,
            })
        })
        .await
    }

    async fn node_status(&self) -> Result<NodeStatus, DriverError> {
        self.retrying("node status", || async {
            let v = self.engine().await?.version().await.call("GET /version")?;
            Ok(NodeStatus {
                version: v.version.unwrap_or_default(),
                online: true,
            })
        })
        .await
    }

    async fn node_metrics(&self) -> Result<NodeMetrics, DriverError> {
        self.retrying("node metrics", || async {
            let docker = self.engine().await?;
            let info = docker.info().await.call("GET /info")?;
            let running_cs = docker
                .list_containers(Some(ListContainersOptions::default()))
                .await
                .call("list containers")?;
            let cores = u32::try_from(info.ncpu.unwrap_or(0)).unwrap_or(0);
            let (cpu, mem) = self.usage(&running_cs).await;
            let (disk_total, disk_used) = match (&self.endpoint, &info.docker_root_dir) {
                (Endpoint::Unix { .. }, Some(root)) => disk_of(root).unwrap_or((0, 0)),
                _ => (0, 0),
            };
            Ok(NodeMetrics {
                cpu_cores: cores,
                cpu_usage: if cores == 0 {
                    0.0
                } else {
                    (cpu.unwrap_or(0.0) / f64::from(cores)).clamp(0.0, 1.0)
                },
                memory_total_bytes: u64::try_from(info.mem_total.unwrap_or(0)).unwrap_or(0),
                memory_used_bytes: mem.unwrap_or(0),
                disk_total_bytes: disk_total,
                disk_used_bytes: disk_used,
                instances_running: u32::try_from(running_cs.len()).unwrap_or(u32::MAX),
            })
        })
        .await
    }
}
