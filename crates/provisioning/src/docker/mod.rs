//! The Docker driver: one [`DockerDriver`] per Docker host, running each
//! instance as one container (a product shipped as an image) or as a
//! compose project (a product shipped as a stack under
//! `docker/stacks/<product>/`).
//!
//! # Calls
//! The Engine API through `bollard`, over the local unix socket or TCP with
//! TLS ([`Endpoint`], `connect.rs`), at the API version negotiated with the
//! engine on first use (bollard speaks 1.53; Debian 12's engine 20.10
//! speaks 1.41 and refuses newer clients). Containers are listed with a
//! label filter (`GET /containers/json?all=1&filters={"label":[…]}`),
//! created with `POST /containers/create?name=tenantry-<hostname>`,
//! started, stopped (`?t=<stop timeout>`), updated (`POST
//! …/update`: cores and memory) and removed (`DELETE …?force=1&v=1`);
//! usage from `GET …/stats?stream=0`, the host from `GET /info` and
//! `GET /version`. A stack is started by the compose CLI (`compose.rs`),
//! everything after that through the API.
//!
//! # Labels and idempotency
//! Every container carries `tenantry.instance=<instance uuid>` (ours) and
//! the spec's `tenantry.tenant` and `tenantry.product` (required), and every
//! volume and network we make carries the same; the product's own container
//! also carries `tenantry.main=true`. Every operation finds its containers
//! by the instance label, never by name or id alone: a create retried after
//! a lost answer finds the container the first try made, and a name taken
//! by another instance's container (a `409` on create) is an error that
//! says whose it is, not a container we adopt.
//!
//! # Deploy waits for HTTP
//! `create_instance` returns once the product's port answers HTTP (any
//! status below 500) at `GET http://<probe host>:<host port><ready_path>`
//! (or the container's own address when it publishes no port), polling
//! until [`DockerConfig::ready_timeout`]. A container that exits or never
//! answers in time fails the create with its state, exit code and the last
//! lines of its log, after the driver removed the containers (and the
//! network) it made; volumes stay.
//!
//! # Volumes
//! Named volumes (`tenantry-<hostname>-<name>`, or the stack's, labelled
//! by compose with the project) outlive [`Driver::destroy`], so a tenant
//! moved to a shared instance or redeployed keeps its files;
//! [`Driver::purge_data`] removes them when the tenant is deleted.
//!
//! # Limits
//! Cores (`NanoCpus`) and memory are enforced; `storage_gib` is not (the
//! overlay2 driver on ext4 has no size quota) and swap follows the engine's
//! default (twice the memory). Host disk is read from the file system
//! holding the engine's root directory when the engine is local; a remote
//! engine does not report it, and the metrics say 0.

mod compose;
mod connect;
mod errors;
mod spec;

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::time::Duration;

use async_trait::async_trait;
use backon::{ExponentialBuilder, Retryable};
use bollard::Docker;
use bollard::models::{ContainerStatsResponse, ContainerSummary, ContainerUpdateBody};
use bollard::query_parameters::{
    CreateContainerOptions, CreateImageOptions, ListContainersOptions, ListNetworksOptions,
    ListVolumesOptions, LogsOptions, RemoveContainerOptions, RemoveVolumeOptions, StatsOptions,
    StopContainerOptions,
};
use futures_util::{StreamExt, TryStreamExt};
use secrecy::SecretString;
use tenantry_domain::catalog::Resources;
use tokio::sync::OnceCell;
use tokio::time::Instant;
use uuid::Uuid;

use self::compose::Runner;
pub use self::compose::{ComposeCli, TEMPLATE_FILE};
pub use self::connect::Endpoint;
use self::connect::TlsMaterial;
use self::errors::{ApiError, Call};
use self::spec::{COMPOSE_PROJECT, COMPOSE_SERVICE};
pub use self::spec::{
    LABEL_INSTANCE, LABEL_MAIN, LABEL_PRODUCT, LABEL_TENANT, TemplateVars, container_name,
    render_env,
};
pub use crate::proxmox::{RetryPolicy, TlsVerification};
use crate::{
    Driver, DriverError, InstanceRef, InstanceSpec, InstanceState, InstanceStatus, NodeMetrics,
    NodeStatus,
};

/// How to reach and use one Docker host. The node registry builds it from
/// a stored node (the client key decrypted from the database).
#[derive(Debug, Clone)]
pub struct DockerConfig {
    /// `unix:///var/run/docker.sock`, `tcp://host:2376` or
    /// `https://host:2376` (TLS).
    pub api_url: String,
    /// How the engine's TLS certificate is verified (TCP only): the engine's
    /// CA (`--tlscacert`) as [`TlsVerification::CaPem`], usually.
    pub tls: TlsVerification,
    /// Client certificate (PEM) for an engine run with `--tlsverify`.
    pub client_cert_pem: Option<String>,
    /// Its private key (PEM). Never logged; `Debug` redacts it.
    pub client_key_pem: Option<SecretString>,
    /// Timeout of one API request (a stop waits `stop_timeout` inside one).
    pub request_timeout: Duration,
    /// How long a deploy waits for the product's port to answer HTTP.
    pub ready_timeout: Duration,
    /// How often the port is tried meanwhile.
    pub ready_poll_interval: Duration,
    /// Path requested to see whether the product answers (`/`).
    pub ready_path: String,
    /// Host the published ports are tried at; `None`: `127.0.0.1` for a
    /// local engine, the engine's host for a remote one.
    pub probe_host: Option<String>,
    /// Host address ports are published on; empty: all of them.
    pub publish_ip: String,
    /// Seconds a stop waits for the app before the engine kills it.
    pub stop_timeout: Duration,
    /// Which compose command line runs stacks.
    pub compose: ComposeCli,
    /// How long one compose command may run (it may pull images).
    pub compose_timeout: Duration,
    /// Whether a create pulls an image the host does not have.
    pub pull_missing_images: bool,
    /// Retries of transient errors inside one operation.
    pub retry: RetryPolicy,
}

impl DockerConfig {
    /// A configuration with the defaults: default TLS roots and no client
    /// certificate, requests timing out after 120 s, deploys waiting 120 s
    /// for `GET /` (tried every 500 ms), ports published on all addresses,
    /// stops waiting 30 s, compose found at run time and given 10 minutes,
    /// missing images pulled, [`RetryPolicy::default`].
    #[must_use]
    pub fn new(api_url: impl Into<String>) -> Self {
        Self {
            api_url: api_url.into(),
            tls: TlsVerification::Default,
            client_cert_pem: None,
            client_key_pem: None,
            request_timeout: Duration::from_secs(120),
            ready_timeout: Duration::from_secs(120),
            ready_poll_interval: Duration::from_millis(500),
            ready_path: "/".into(),
            probe_host: None,
            publish_ip: String::new(),
            stop_timeout: Duration::from_secs(30),
            compose: ComposeCli::Auto,
            compose_timeout: Duration::from_secs(600),
            pull_missing_images: true,
            retry: RetryPolicy::default(),
        }
    }

    fn tls_material(&self) -> TlsMaterial<'_> {
        TlsMaterial {
            verification: &self.tls,
            client_cert_pem: self.client_cert_pem.as_deref(),
            client_key_pem: self.client_key_pem.as_ref(),
        }
    }
}

/// The [`Driver`] for one Docker host.
pub struct DockerDriver {
    cfg: DockerConfig,
    endpoint: Endpoint,
    /// The client before version negotiation.
    raw: Docker,
    /// The client at the negotiated version (on first use).
    negotiated: OnceCell<Docker>,
    compose_cli: OnceCell<Vec<String>>,
    http: reqwest::Client,
}

impl fmt::Debug for DockerDriver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DockerDriver")
            .field("endpoint", &self.endpoint)
            .finish_non_exhaustive()
    }
}

/// Whether a summary's state is `running`.
fn running(c: &ContainerSummary) -> bool {
    c.state
        .as_ref()
        .is_some_and(|s| s.to_string().eq_ignore_ascii_case("running"))
}

fn label<'a>(c: &'a ContainerSummary, key: &str) -> Option<&'a str> {
    c.labels.as_ref()?.get(key).map(String::as_str)
}

fn id_of(c: &ContainerSummary) -> String {
    c.id.clone().unwrap_or_default()
}

fn name_of(c: &ContainerSummary) -> String {
    c.names
        .as_ref()
        .and_then(|n| n.first())
        .map(|n| n.trim_start_matches('/').to_owned())
        .unwrap_or_else(|| id_of(c))
}

/// The product's container among an instance's: the one labelled main, else
/// the oldest.
fn main_of(cs: &[ContainerSummary]) -> Option<&ContainerSummary> {
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

/// CPU use as a fraction of one core from a non-streamed stats answer (the
/// engine's two samples a second apart), as `docker stats` computes it.
fn cpu_cores_used(s: &ContainerStatsResponse) -> Option<f64> {
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
fn memory_used(s: &ContainerStatsResponse) -> Option<u64> {
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
fn disk_of(path: &str) -> Option<(u64, u64)> {
    let st = rustix::fs::statvfs(path).ok()?;
    let total = st.f_blocks.checked_mul(st.f_frsize)?;
    let free = st.f_bfree.checked_mul(st.f_frsize)?;
    Some((total, total.saturating_sub(free)))
}

impl DockerDriver {
    /// A driver for the host `cfg` describes. Makes no call: use
    /// [`Driver::node_status`] to check that the engine answers.
    ///
    /// # Errors
    /// `Failed` for an unusable URL or TLS material; `Transient` when the
    /// local socket is missing.
    pub fn new(cfg: DockerConfig) -> Result<Self, DriverError> {
        let endpoint = Endpoint::parse(&cfg.api_url)?;
        let raw = connect::client(
            &endpoint,
            &cfg.tls_material(),
            cfg.request_timeout.as_secs().max(1),
        )?;
        let http = reqwest::Client::builder()
            .no_proxy()
            .connect_timeout(Duration::from_secs(2))
            .timeout(Duration::from_secs(5))
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| DriverError::Failed {
                reason: format!("HTTP client for readiness checks: {e}"),
            })?;
        Ok(Self {
            cfg,
            endpoint,
            raw,
            negotiated: OnceCell::new(),
            compose_cli: OnceCell::new(),
            http,
        })
    }

    /// The configuration it runs with.
    #[must_use]
    pub fn config(&self) -> &DockerConfig {
        &self.cfg
    }

    /// The engine client at the negotiated API version.
    async fn engine(&self) -> Result<&Docker, DriverError> {
        self.negotiated
            .get_or_try_init(|| async {
                let docker = self
                    .raw
                    .clone()
                    .negotiate_version()
                    .await
                    .call("negotiate the API version")?;
                tracing::debug!(endpoint = ?self.endpoint, version = ?docker.client_version(), "Docker API version negotiated");
                Ok::<_, DriverError>(docker)
            })
            .await
    }

    /// Runs `op` again while it fails with a transient error, with
    /// exponential back-off and jitter, at most `retry.attempts` times.
    async fn retrying<T, F, Fut>(&self, what: &str, op: F) -> Result<T, DriverError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, DriverError>>,
    {
        let policy = self.cfg.retry;
        let retries = usize::try_from(policy.attempts.saturating_sub(1)).unwrap_or(usize::MAX);
        let backoff = ExponentialBuilder::default()
            .with_min_delay(policy.base_delay)
            .with_max_delay(policy.max_delay)
            .with_max_times(retries)
            .with_jitter();
        op.retry(backoff)
            .sleep(tokio::time::sleep)
            .when(DriverError::is_transient)
            .notify(|e, delay| {
                tracing::warn!(endpoint = ?self.endpoint, op = what, error = %e, ?delay, "retrying");
            })
            .await
    }

    /// Containers (running or not) matching every `label=value` pair.
    async fn containers(
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
    async fn ours(&self, instance_id: Uuid) -> Result<Vec<ContainerSummary>, DriverError> {
        self.containers(&[(LABEL_INSTANCE, &instance_id.to_string())])
            .await
    }

    async fn start_container(&self, id: &str) -> Result<(), ApiError> {
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

    async fn stop_container(&self, id: &str) -> Result<(), DriverError> {
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

    async fn remove_container(&self, id: &str) -> Result<(), DriverError> {
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
    async fn foreign_owner(
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
    async fn remove_all(
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
    async fn remove_volumes(
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

    async fn update_resources(&self, container: &str, r: &Resources) -> Result<(), DriverError> {
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

    /// Waits until `container` answers HTTP on the product's port.
    ///
    /// # Errors
    /// `Failed` when it exits, or does not answer within `ready_timeout`,
    /// with its state and the tail of its log.
    async fn wait_ready(&self, spec: &InstanceSpec, container: &str) -> Result<(), DriverError> {
        let Some(internal) = spec.internal_port else {
            return Ok(());
        };
        let docker = self.engine().await?;
        let started = Instant::now();
        let mut target: Option<String> = None;
        loop {
            let inspect = docker
                .inspect_container(container, None)
                .await
                .call(format!("inspect container {container}"))?;
            let state = inspect.state.clone().unwrap_or_default();
            let status = state.status.map(|s| s.to_string()).unwrap_or_default();
            // Crashed: stopped, or brought back by the restart policy again
            // and again (an app may exit once while what it needs starts).
            let restarts = inspect.restart_count.unwrap_or(0);
            if matches!(status.as_str(), "exited" | "dead")
                || (status == "restarting" && restarts >= 3)
            {
                return Err(self
                    .not_ready(
                        spec,
                        container,
                        &format!(
                            "the container exited with code {} ({status}, {restarts} restarts)",
                            state.exit_code.unwrap_or(-1)
                        ),
                    )
                    .await);
            }
            if target.is_none() {
                target = match spec.host_port {
                    Some(port) => {
                        let host = self
                            .cfg
                            .probe_host
                            .clone()
                            .unwrap_or_else(|| self.endpoint.probe_host());
                        Some(format!("{host}:{port}"))
                    }
                    None => inspect
                        .network_settings
                        .as_ref()
                        .and_then(|n| n.networks.as_ref())
                        .and_then(|n| n.values().find_map(|e| e.ip_address.clone()))
                        .filter(|ip| !ip.is_empty())
                        .map(|ip| format!("{ip}:{internal}")),
                };
            }
            let last = if let Some(t) = &target {
                let url = format!("http://{t}{}", self.cfg.ready_path);
                match self.http.get(&url).send().await {
                    Ok(r) if r.status().as_u16() < 500 => {
                        tracing::info!(instance = %spec.instance_id, %url, status = %r.status(), elapsed = ?started.elapsed(), "instance answers");
                        return Ok(());
                    }
                    Ok(r) => format!("GET {url} answered {}", r.status()),
                    Err(e) => format!("GET {url}: {}", error_chain(&e)),
                }
            } else {
                "the container has no address yet".to_owned()
            };
            if started.elapsed() + self.cfg.ready_poll_interval > self.cfg.ready_timeout {
                return Err(self
                    .not_ready(
                        spec,
                        container,
                        &format!(
                            "no HTTP answer within {:?} (last: {last}; container {status})",
                            self.cfg.ready_timeout
                        ),
                    )
                    .await);
            }
            tokio::time::sleep(self.cfg.ready_poll_interval).await;
        }
    }

    /// The error of a deploy that never became ready, with the container's
    /// last log lines.
    async fn not_ready(&self, spec: &InstanceSpec, container: &str, why: &str) -> DriverError {
        let logs = self.log_tail(container, 20).await;
        DriverError::Failed {
            reason: format!(
                "{} ({}) did not become ready: {why}; last log lines:\n{logs}",
                container_name(&spec.hostname),
                spec.instance_id
            ),
        }
    }

    async fn log_tail(&self, container: &str, lines: usize) -> String {
        let Ok(docker) = self.engine().await else {
            return String::new();
        };
        let opts = LogsOptions {
            stdout: true,
            stderr: true,
            tail: lines.to_string(),
            ..Default::default()
        };
        let chunks: Vec<String> = docker
            .logs(container, Some(opts))
            .take(lines * 4)
            .filter_map(|r| async move { r.ok().map(|l| l.to_string()) })
            .collect()
            .await;
        let text = chunks.concat();
        if text.trim().is_empty() {
            "(none)".into()
        } else {
            text.trim_end().to_owned()
        }
    }

    async fn create_once(&self, spec: &InstanceSpec) -> Result<InstanceRef, DriverError> {
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

    /// The compose project of an instance: its containers' label, else its
    /// external id when that names a project rather than a container.
    fn project_of(instance: &InstanceRef, cs: &[ContainerSummary]) -> Option<String> {
        cs.iter()
            .find_map(|c| label(c, COMPOSE_PROJECT).map(str::to_owned))
            .or_else(|| {
                instance
                    .external_id
                    .starts_with("tenantry-")
                    .then(|| instance.external_id.clone())
            })
    }

    async fn stats_of(&self, id: &str) -> Option<ContainerStatsResponse> {
        let docker = self.engine().await.ok()?;
        let opts = StatsOptions {
            stream: false,
            one_shot: false,
        };
        docker.stats(id, Some(opts)).next().await?.ok()
    }

    /// CPU (cores) and memory (bytes) of running containers, summed.
    async fn usage(&self, cs: &[ContainerSummary]) -> (Option<f64>, Option<u64>) {
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

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

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

    async fn instance_status(&self, instance: &InstanceRef) -> Result<InstanceStatus, DriverError> {
        self.retrying("status", || async {
            let cs = self.ours(instance.instance_id).await?;
            let Some(main) = main_of(&cs) else {
                return Ok(InstanceStatus {
                    state: InstanceState::Missing,
                    cpu: None,
                    memory_bytes: None,
                    uptime_secs: None,
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

fn not_found(instance: &InstanceRef) -> DriverError {
    DriverError::NotFound {
        reason: format!(
            "no container carries {LABEL_INSTANCE}={}",
            instance.instance_id
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_config_debug_redacts_the_key() {
        let mut cfg = DockerConfig::new("tcp://docker1.example:2376");
        cfg.client_key_pem = Some(SecretString::from("-----BEGIN PRIVATE KEY----- 5f0c1b7e"));
        assert!(!format!("{cfg:?}").contains("5f0c1b7e"));
    }

    #[test]
    fn bad_urls_fail_at_construction() {
        assert!(DockerDriver::new(DockerConfig::new("http://docker1:2375")).is_err());
        assert!(DockerDriver::new(DockerConfig::new("tcp://docker1.example:2376")).is_ok());
    }

    #[test]
    fn cpu_is_computed_as_docker_stats_does() {
        use bollard::models::{ContainerCpuStats, ContainerCpuUsage, ContainerMemoryStats};
        let cpu = |total, system| ContainerCpuStats {
            cpu_usage: Some(ContainerCpuUsage {
                total_usage: Some(total),
                ..Default::default()
            }),
            system_cpu_usage: Some(system),
            online_cpus: Some(4),
            ..Default::default()
        };
        let s = ContainerStatsResponse {
            cpu_stats: Some(cpu(1_500, 10_000)),
            precpu_stats: Some(cpu(1_000, 8_000)),
            memory_stats: Some(ContainerMemoryStats {
                usage: Some(100 << 20),
                stats: Some(HashMap::from([("inactive_file".to_owned(), 30 << 20)])),
                ..Default::default()
            }),
            ..Default::default()
        };
        // 500 of 2000 ns of all four CPUs: one core.
        assert!((cpu_cores_used(&s).unwrap() - 1.0).abs() < 1e-9);
        assert_eq!(memory_used(&s), Some(70 << 20));
    }
}
