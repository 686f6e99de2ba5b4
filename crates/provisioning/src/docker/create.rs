//! Creating an instance: a product shipped as an image becomes one
//! container (the image pulled when the host lacks it; a container name or
//! volume of another instance refused), a product shipped as a stack a
//! compose project; then the deploy waits until the product answers, and a
//! failed deploy removes the containers and network it made.

use bollard::models::ContainerUpdateBody;
use bollard::query_parameters::{CreateContainerOptions, CreateImageOptions};
use futures_util::TryStreamExt;
use tenantry_domain::catalog::Resources;

use super::DockerDriver;
use super::compose::{self, Runner};
use super::containers::{id_of, main_of, name_of};
use super::errors::Call;
use super::spec::{self, COMPOSE_SERVICE, LABEL_INSTANCE, LABEL_MAIN, container_name};
use crate::{DriverError, InstanceRef, InstanceSpec};

impl DockerDriver {
    /// Pulls `image` (for a create that found it missing).
    async fn pull(&self, image: &str) -> Result<(), DriverError> {
        tracing::info!(endpoint = ?self.endpoint, image, "pulling image");
        let opts = CreateImageOptions {
            from_image: Some(image.to_owned()),
            ..Default::default()
        };
        self.engine()
            .await?
            .create_image(Some(opts), None, None)
            .try_for_each(|_| async { Ok(()) })
            .await
            .call(format!("pull image {image}"))
            .map_err(|e| DriverError::Failed {
                reason: format!("image {image} is not on the host and cannot be pulled: {e}"),
            })
    }

    /// One try at creating a single-image instance; returns its container
    /// id once it runs (readiness is checked by the caller).
    async fn create_single(&self, spec: &InstanceSpec) -> Result<String, DriverError> {
        let existing = self.ours(spec.instance_id).await?;
        let id = if let Some(c) = main_of(&existing) {
            tracing::info!(instance = %spec.instance_id, container = %name_of(c), "found our container");
            id_of(c)
        } else {
            self.create_container(spec).await?
        };
        match self.start_container(&id).await {
            Ok(()) => Ok(id),
            Err(e) => {
                let taken = e.message.contains("port is already allocated")
                    || e.message.contains("address already in use");
                let err: DriverError = e.into();
                if !err.is_transient() {
                    // A container that cannot start is no use to a retry.
                    let _ = self.remove_container(&id).await;
                }
                match (taken, spec.host_port) {
                    (true, Some(port)) => Err(DriverError::Failed {
                        reason: format!(
                            "host port {port} is already in use on {}: {err}",
                            self.endpoint.docker_host()
                        ),
                    }),
                    _ => Err(err),
                }
            }
        }
    }

    async fn create_container(&self, spec: &InstanceSpec) -> Result<String, DriverError> {
        let name = container_name(&spec.hostname);
        for volume in spec.volumes.keys() {
            let volume = spec::volume_name(&spec.hostname, volume);
            match self
                .engine()
                .await?
                .inspect_volume(&volume)
                .await
                .call(format!("inspect volume {volume}"))
            {
                Ok(v) => {
                    let owner = v.labels.get(LABEL_INSTANCE).map(String::as_str);
                    if owner != Some(spec.instance_id.to_string().as_str()) {
                        return Err(DriverError::Failed {
                            reason: format!(
                                "volume {volume} holds the data of {}, not of instance {}; \
                                 purge that instance first",
                                owner.unwrap_or("no Tenantry instance"),
                                spec.instance_id
                            ),
                        });
                    }
                }
                Err(e) if e.is(404) => {}
                Err(e) => return Err(e.into()),
            }
        }
        let mut body = spec::create_body(spec, &self.cfg.publish_ip);
        if let Some(labels) = body.labels.as_mut() {
            labels.insert(LABEL_MAIN.into(), "true".into());
        }
        let mut pulled = false;
        loop {
            let opts = CreateContainerOptions {
                name: Some(name.clone()),
                platform: String::new(),
            };
            tracing::info!(instance = %spec.instance_id, container = %name, image = %spec.artifact, "creating container");
            let created = self
                .engine()
                .await?
                .create_container(Some(opts), body.clone())
                .await
                .call(format!("create container {name}"));
            match created {
                Ok(r) => return Ok(r.id),
                Err(e) if e.is(409) => {
                    // Ours, made by a try whose answer was lost? Else whose?
                    if let Some(c) = main_of(&self.ours(spec.instance_id).await?) {
                        return Ok(id_of(c));
                    }
                    let holder = self
                        .engine()
                        .await?
                        .inspect_container(&name, None)
                        .await
                        .ok()
                        .and_then(|c| c.config?.labels?.get(LABEL_INSTANCE).cloned())
                        .unwrap_or_else(|| "no Tenantry instance".into());
                    return Err(DriverError::Failed {
                        reason: format!(
                            "container name {name} is taken by a container of {holder}, not of \
                             instance {}",
                            spec.instance_id
                        ),
                    });
                }
                Err(e) if e.is(404) && self.cfg.pull_missing_images && !pulled => {
                    self.pull(&spec.artifact).await?;
                    pulled = true;
                }
                Err(e) if e.is(404) => {
                    return Err(DriverError::Failed {
                        reason: format!("image {} is not on the host: {e}", spec.artifact),
                    });
                }
                Err(e) => return Err(e.into()),
            }
        }
    }

    async fn compose(&self) -> Result<&[String], DriverError> {
        self.compose_cli
            .get_or_try_init(|| compose::resolve(&self.cfg.compose))
            .await
            .map(Vec::as_slice)
    }

    /// One try at creating a stack instance; returns the id of the product
    /// service's container once the project is up.
    async fn create_stack(
        &self,
        spec: &InstanceSpec,
        stack: &crate::StackSpec,
    ) -> Result<String, DriverError> {
        let runner = Runner {
            cli: self.compose().await?,
            endpoint: &self.endpoint,
            tls: self.cfg.tls_material(),
            timeout: self.cfg.compose_timeout,
        };
        let id = spec.instance_id.to_string();
        let project = container_name(&spec.hostname);
        if let Some(owner) = self.foreign_owner(&project, &id).await? {
            return Err(DriverError::Failed {
                reason: format!(
                    "compose project {project} runs containers of {owner}, not of instance {id}"
                ),
            });
        }
        runner.up(spec, stack).await?;
        let main = self
            .containers(&[(LABEL_INSTANCE, &id), (COMPOSE_SERVICE, &stack.service)])
            .await?;
        let main = main.first().ok_or_else(|| DriverError::Failed {
            reason: format!(
                "compose up succeeded but no container of service {} carries {LABEL_INSTANCE}={id}",
                stack.service
            ),
        })?;
        let cid = id_of(main);
        self.update_resources(&cid, &spec.resources).await?;
        Ok(cid)
    }

    pub(crate) async fn update_resources(
        &self,
        container: &str,
        r: &Resources,
    ) -> Result<(), DriverError> {
        let memory = i64::from(r.memory_mib) << 20;
        let body = ContainerUpdateBody {
            nano_cpus: Some(i64::from(r.cpu_cores) * 1_000_000_000),
            memory: Some(memory),
            // The engine's default at create: as much swap as memory.
            memory_swap: Some(memory * 2),
            ..Default::default()
        };
        self.engine()
            .await?
            .update_container(container, body)
            .await
            .call(format!("update container {container}"))?;
        Ok(())
    }

    /// Sets the restart policy: `always` for a highly available instance
    /// (the engine restarts it even after `docker stop` and a daemon
    /// restart), else `unless-stopped`.
    pub(crate) async fn set_restart_policy(
        &self,
        container: &str,
        high_availability: bool,
    ) -> Result<(), DriverError> {
        let body = ContainerUpdateBody {
            restart_policy: Some(super::spec::restart_policy(high_availability)),
            ..Default::default()
        };
        self.engine()
            .await?
            .update_container(container, body)
            .await
            .call(format!("update container {container}"))?;
        Ok(())
    }

    pub(crate) async fn create_once(
        &self,
        spec: &InstanceSpec,
    ) -> Result<InstanceRef, DriverError> {
        let (container, external_id, project) = match &spec.stack {
            None => {
                let id = self.create_single(spec).await?;
                (id.clone(), id, None)
            }
            Some(stack) => {
                let project = container_name(&spec.hostname);
                let made = self.create_stack(spec, stack).await;
                match made {
                    Ok(id) => (id, project.clone(), Some(project)),
                    Err(e) => {
                        if !e.is_transient() {
                            self.clean_up_failed(spec, Some(&project)).await;
                        }
                        return Err(e);
                    }
                }
            }
        };
        if let Err(e) = self.wait_ready(spec, &container).await {
            self.clean_up_failed(spec, project.as_deref()).await;
            return Err(e);
        }
        Ok(InstanceRef {
            instance_id: spec.instance_id,
            external_id,
        })
    }

    /// Removes what a failed create left (containers, network), logging
    /// rather than hiding the create's own error.
    async fn clean_up_failed(&self, spec: &InstanceSpec, project: Option<&str>) {
        if let Err(e) = self.remove_all(spec.instance_id, project).await {
            tracing::error!(instance = %spec.instance_id, error = %e, "cannot remove the containers of a failed deploy");
        }
    }
}
