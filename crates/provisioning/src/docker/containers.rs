//! An instance's containers, always found by its instance label (never by
//! name or id alone): listing, starting, stopping and removing them, with
//! their networks and, when the tenant's data goes too, their volumes.

use std::collections::HashMap;

use bollard::models::ContainerSummary;
use bollard::query_parameters::{
    ListContainersOptions, ListNetworksOptions, ListVolumesOptions, RemoveContainerOptions,
    RemoveVolumeOptions, StopContainerOptions,
};
use uuid::Uuid;

use super::DockerDriver;
use super::errors::{ApiError, Call};
use super::spec::{COMPOSE_PROJECT, LABEL_INSTANCE, LABEL_MAIN};
use crate::{DriverError, InstanceRef};

/// Whether a summary's state is `running`.
pub(crate) fn running(c: &ContainerSummary) -> bool {
    c.state
        .as_ref()
        .is_some_and(|s| s.to_string().eq_ignore_ascii_case("running"))
}

pub(crate) fn label<'a>(c: &'a ContainerSummary, key: &str) -> Option<&'a str> {
    c.labels.as_ref()?.get(key).map(String::as_str)
}

pub(crate) fn id_of(c: &ContainerSummary) -> String {
    c.id.clone().unwrap_or_default()
}

pub(crate) fn name_of(c: &ContainerSummary) -> String {
    c.names
        .as_ref()
        .and_then(|n| n.first())
        .map(|n| n.trim_start_matches('/').to_owned())
        .unwrap_or_else(|| id_of(c))
}

/// The product's container among an instance's: the one labelled main, else
/// the oldest.
pub(crate) fn main_of(cs: &[ContainerSummary]) -> Option<&ContainerSummary> {
    cs.iter()
        .find(|c| label(c, LABEL_MAIN) == Some("true"))
        .or_else(|| cs.iter().min_by_key(|c| c.created.unwrap_or(i64::MAX)))
}

/// A filter on `label=value` pairs.
fn label_filter(pairs: &[(&str, &str)]) -> HashMap<String, Vec<String>> {
    HashMap::from([(
        "label".to_owned(),
        pairs.iter().map(|(k, v)| format!("{k}={v}")).collect(),
    )])
}

impl DockerDriver {
    /// Containers (running or not) matching every `label=value` pair.
    pub(crate) async fn containers(
        &self,
        pairs: &[(&str, &str)],
    ) -> Result<Vec<ContainerSummary>, DriverError> {
        let opts = ListContainersOptions {
            all: true,
            filters: Some(label_filter(pairs)),
            ..Default::default()
        };
        Ok(self
            .engine()
            .await?
            .list_containers(Some(opts))
            .await
            .call("list containers")?)
    }

    /// The containers of an instance.
    pub(crate) async fn ours(
        &self,
        instance_id: Uuid,
    ) -> Result<Vec<ContainerSummary>, DriverError> {
        self.containers(&[(LABEL_INSTANCE, &instance_id.to_string())])
            .await
    }

    pub(crate) async fn start_container(&self, id: &str) -> Result<(), ApiError> {
        let docker = self.engine().await.map_err(|e| ApiError {
            call: "connect".into(),
            status: None,
            message: e.to_string(),
        })?;
        match docker
            .start_container(id, None)
            .await
            .call(format!("start container {id}"))
        {
            // 304: already running.
            Err(e) if e.is(304) => Ok(()),
            other => other,
        }
    }

    pub(crate) async fn stop_container(&self, id: &str) -> Result<(), DriverError> {
        let t = i32::try_from(self.cfg.stop_timeout.as_secs()).unwrap_or(i32::MAX);
        let opts = StopContainerOptions {
            t: Some(t),
            signal: None,
        };
        match self
            .engine()
            .await?
            .stop_container(id, Some(opts))
            .await
            .call(format!("stop container {id}"))
        {
            // 304: already stopped; 404: gone meanwhile.
            Err(e) if e.is(304) || e.is(404) => Ok(()),
            other => Ok(other?),
        }
    }

    pub(crate) async fn remove_container(&self, id: &str) -> Result<(), DriverError> {
        let opts = RemoveContainerOptions {
            force: true,
            v: true,
            link: false,
        };
        match self
            .engine()
            .await?
            .remove_container(id, Some(opts))
            .await
            .call(format!("remove container {id}"))
        {
            // 404: gone already; "already in progress" is a 409 that is
            // classified transient and retried.
            Err(e) if e.is(404) => Ok(()),
            other => Ok(other?),
        }
    }

    /// The instance label of a container of compose project `project`
    /// that is not `ours` (a project name taken by another instance).
    pub(crate) async fn foreign_owner(
        &self,
        project: &str,
        ours: &str,
    ) -> Result<Option<String>, DriverError> {
        Ok(self
            .containers(&[(COMPOSE_PROJECT, project)])
            .await?
            .iter()
            .map(|c| label(c, LABEL_INSTANCE).unwrap_or("no Tenantry instance"))
            .find(|owner| *owner != ours)
            .map(str::to_owned))
    }

    /// The compose project of `instance_id` to clean up by project label, if
    /// no other instance's containers run in it.
    async fn own_project<'a>(
        &self,
        instance_id: Uuid,
        project: Option<&'a str>,
    ) -> Result<Option<&'a str>, DriverError> {
        let Some(p) = project else { return Ok(None) };
        match self.foreign_owner(p, &instance_id.to_string()).await? {
            None => Ok(Some(p)),
            Some(owner) => {
                tracing::warn!(instance = %instance_id, project = p, %owner, "the compose project runs another instance's containers; leaving its network and volumes");
                Ok(None)
            }
        }
    }

    /// Removes the containers and networks of `instance_id` (and of the
    /// compose project `project`, if any); volumes stay.
    pub(crate) async fn remove_all(
        &self,
        instance_id: Uuid,
        project: Option<&str>,
    ) -> Result<(), DriverError> {
        let id = instance_id.to_string();
        for c in self.ours(instance_id).await? {
            tracing::info!(instance = %id, container = %name_of(&c), "removing container");
            self.remove_container(&id_of(&c)).await?;
        }
        let docker = self.engine().await?;
        let mut filters = vec![label_filter(&[(LABEL_INSTANCE, &id)])];
        if let Some(p) = self.own_project(instance_id, project).await? {
            // Compose's own containers of the project, if it made any we
            // did not label (a service the override did not know of).
            for c in self.containers(&[(COMPOSE_PROJECT, p)]).await? {
                self.remove_container(&id_of(&c)).await?;
            }
            filters.push(label_filter(&[(COMPOSE_PROJECT, p)]));
        }
        for filter in filters {
            let networks = docker
                .list_networks(Some(ListNetworksOptions {
                    filters: Some(filter),
                }))
                .await
                .call("list networks")?;
            for n in networks {
                let Some(nid) = n.id else { continue };
                match docker
                    .remove_network(&nid)
                    .await
                    .call(format!("remove network {}", n.name.unwrap_or_default()))
                {
                    Err(e) if e.is(404) => {}
                    other => other?,
                }
            }
        }
        Ok(())
    }

    /// Removes the volumes of `instance_id` (and of the compose project
    /// `project`, if any).
    pub(crate) async fn remove_volumes(
        &self,
        instance_id: Uuid,
        project: Option<&str>,
    ) -> Result<(), DriverError> {
        let docker = self.engine().await?;
        let id = instance_id.to_string();
        let mut filters = vec![label_filter(&[(LABEL_INSTANCE, &id)])];
        if let Some(p) = self.own_project(instance_id, project).await? {
            filters.push(label_filter(&[(COMPOSE_PROJECT, p)]));
        }
        for filter in filters {
            let listed = docker
                .list_volumes(Some(ListVolumesOptions {
                    filters: Some(filter),
                }))
                .await
                .call("list volumes")?;
            for v in listed.volumes.unwrap_or_default() {
                tracing::info!(instance = %id, volume = %v.name, "removing volume");
                match docker
                    .remove_volume(&v.name, Some(RemoveVolumeOptions { force: false }))
                    .await
                    .call(format!("remove volume {}", v.name))
                {
                    Err(e) if e.is(404) => {}
                    other => other?,
                }
            }
        }
        Ok(())
    }

    /// The compose project of an instance: its containers' label, else its
    /// external id when that names a project rather than a container.
    pub(crate) fn project_of(instance: &InstanceRef, cs: &[ContainerSummary]) -> Option<String> {
        cs.iter()
            .find_map(|c| label(c, COMPOSE_PROJECT).map(str::to_owned))
            .or_else(|| {
                instance
                    .external_id
                    .starts_with("tenantry-")
                    .then(|| instance.external_id.clone())
            })
    }
}

pub(crate) fn not_found(instance: &InstanceRef) -> DriverError {
    DriverError::NotFound {
        reason: format!(
            "no container carries {LABEL_INSTANCE}={}",
            instance.instance_id
        ),
    }
}
