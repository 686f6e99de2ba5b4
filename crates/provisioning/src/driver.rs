//! The `Driver` trait: what Tenantry asks of a node, whatever runs it
//! (a Proxmox VE node running LXC containers, a Docker host).
//!
//! One driver value talks to one node. Every operation is idempotent, and
//! every container a driver creates carries an **owner tag** holding our
//! instance id (Proxmox `tags`, Docker labels): a create retried after a lost
//! response finds its own container instead of making a second one, and a
//! container someone else made is never mistaken for ours.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;

use async_trait::async_trait;
use serde::Serialize;
use tenantry_domain::catalog::Resources;
use uuid::Uuid;

/// Prefix of the owner tag: the tag is `tenantry-<instance uuid>` (Proxmox
/// tags allow `[a-z0-9_][a-z0-9_+.-]*`, so a lowercase UUID fits as is).
pub const OWNER_TAG_PREFIX: &str = "tenantry-";

/// What to create. The driver reads the fields its kind needs.
///
/// `Debug` shows the environment's names, not its values (they hold
/// database passwords).
#[derive(Clone, PartialEq, Eq)]
pub struct InstanceSpec {
    /// Our instance id; becomes the owner tag / label.
    pub instance_id: Uuid,
    /// Host name inside the container (from the tenant or instance slug, a
    /// DNS label).
    pub hostname: String,
    /// CPU cores, memory (MiB) and root disk (GiB) reserved for it.
    pub resources: Resources,
    /// Swap in MiB (Proxmox `swap`); Docker ignores it.
    pub swap_mib: u32,
    /// What to run: a Proxmox `ostemplate` volume id
    /// (`local:vztmpl/debian-12-standard_12.7-1_amd64.tar.zst`) or a Docker
    /// image reference.
    pub artifact: String,
    /// Port the application listens on inside the container, if any.
    pub internal_port: Option<u16>,
    /// Host port published for it (dedicated instances), if any.
    pub host_port: Option<u16>,
    /// Environment for the application (Docker; Proxmox ignores it).
    pub env: BTreeMap<String, String>,
    /// Extra labels (Docker) such as `tenantry.tenant`, `tenantry.product`.
    pub labels: BTreeMap<String, String>,
    /// Named data volumes (Docker; Proxmox ignores them): a short name
    /// (`data`) to the path it is mounted at in the container
    /// (`/var/lib/app`). They outlive [`Driver::destroy`] and go with
    /// [`Driver::purge_data`].
    pub volumes: BTreeMap<String, String>,
    /// The compose stack to run instead of the single image `artifact`
    /// (Docker; Proxmox ignores it).
    pub stack: Option<StackSpec>,
    /// Whether the plan pays for high availability ("Dedicated HA"):
    /// Docker creates it with the restart policy `always`; Proxmox
    /// registers it as an HA resource after creation (see
    /// [`Driver::set_high_availability`]).
    pub high_availability: bool,
    /// The product's health check command, run inside the container
    /// (Docker `HEALTHCHECK CMD`, every 10 s; Proxmox ignores it).
    pub health_check: Option<Vec<String>>,
}

impl fmt::Debug for InstanceSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("InstanceSpec")
            .field("instance_id", &self.instance_id)
            .field("hostname", &self.hostname)
            .field("resources", &self.resources)
            .field("swap_mib", &self.swap_mib)
            .field("artifact", &self.artifact)
            .field("internal_port", &self.internal_port)
            .field("host_port", &self.host_port)
            .field("env", &self.env.keys().collect::<Vec<_>>())
            .field("labels", &self.labels)
            .field("volumes", &self.volumes)
            .field("stack", &self.stack)
            .field("high_availability", &self.high_availability)
            .field("health_check", &self.health_check)
            .finish()
    }
}

/// A product shipped as a compose stack: a directory holding a
/// `docker-compose.yml` template (kept under `docker/stacks/<product>/`).
/// The template is only read; each instance runs as the compose project
/// `tenantry-<hostname>` with an override file the driver generates.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StackSpec {
    /// The directory holding `docker-compose.yml`; relative paths in the
    /// template resolve against it.
    pub dir: PathBuf,
    /// The service that serves the product on `internal_port`: it gets the
    /// host port, the container name `tenantry-<hostname>` and the
    /// environment.
    pub service: String,
}

/// Where an instance lives once created.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct InstanceRef {
    /// Our instance id (the owner tag's value).
    pub instance_id: Uuid,
    /// The driver's own id for it: the Proxmox `vmid` as a decimal string,
    /// or the Docker container id.
    pub external_id: String,
}

/// Where an instance's application answers, for the reverse proxy: a host
/// (an IP address or DNS name) and a TCP port.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Upstream {
    /// IP address or host name.
    pub host: String,
    /// TCP port.
    pub port: u16,
}

/// The lifecycle state a driver reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum InstanceState {
    /// Running.
    Running,
    /// Exists, not running.
    Stopped,
    /// Not there (never created, or destroyed).
    Missing,
}

/// An instance's state and usage.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct InstanceStatus {
    /// Lifecycle state.
    pub state: InstanceState,
    /// CPU use as a fraction of one core (0.5 = half a core), when known.
    pub cpu: Option<f64>,
    /// Memory in use, bytes, when known.
    pub memory_bytes: Option<u64>,
    /// Seconds since start, when running.
    pub uptime_secs: Option<u64>,
    /// Root disk in use, bytes, when the node reports it (Proxmox `disk`,
    /// while running; Docker: not reported).
    pub disk_bytes: Option<u64>,
}

/// Whether the node answers, and what it runs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NodeStatus {
    /// Software version as the node reports it (`pve-manager` `version`,
    /// Docker engine version).
    pub version: String,
    /// Whether the node reports itself online.
    pub online: bool,
}

/// A node's capacity and use, for placement and capacity views.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NodeMetrics {
    /// CPU cores.
    pub cpu_cores: u32,
    /// CPU use as a fraction of the whole node (0.0 – 1.0).
    pub cpu_usage: f64,
    /// Memory, bytes.
    pub memory_total_bytes: u64,
    /// Memory in use, bytes.
    pub memory_used_bytes: u64,
    /// Disk (root storage), bytes.
    pub disk_total_bytes: u64,
    /// Disk in use, bytes.
    pub disk_used_bytes: u64,
    /// Containers running on the node.
    pub instances_running: u32,
}

/// Why a driver operation failed, classified so the job runner knows whether
/// to retry.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DriverError {
    /// Worth retrying with back-off: the container is locked by another task,
    /// a lock or task timed out, the node is unreachable (Proxmox 595), the
    /// network failed, the API answered 429 or a 5xx that is not a known
    /// handler error.
    #[error("{reason} (transient)")]
    Transient {
        /// What happened, as the node said it.
        reason: String,
    },
    /// The node refused our credentials (HTTP 401/403).
    #[error("the node refused the credentials: {reason}")]
    Unauthorized {
        /// What the node said.
        reason: String,
    },
    /// The instance does not exist on the node.
    #[error("instance not found: {reason}")]
    NotFound {
        /// What the node said.
        reason: String,
    },
    /// A task or call failed for a reason a retry will not fix (bad
    /// parameters, a container id held by something that is not ours, a task
    /// that ended in error). `reason` carries the node's message and, for a
    /// task, the tail of its log.
    #[error("{reason}")]
    Failed {
        /// What happened.
        reason: String,
    },
}

impl DriverError {
    /// Whether a retry with back-off may succeed.
    #[must_use]
    pub fn is_transient(&self) -> bool {
        matches!(self, Self::Transient { .. })
    }
}

impl tenantry_store::worker::Retryable for DriverError {
    fn is_transient(&self) -> bool {
        DriverError::is_transient(self)
    }
}

/// What Tenantry asks of a node. One value per node; implementations are
/// `proxmox` (LXC on a Proxmox VE node) and `docker` (a Docker host).
///
/// Every method is idempotent: `create_instance` finds the container that
/// carries `spec.instance_id` as owner tag before creating one; `start` on a
/// running instance, `stop` on a stopped one and `destroy` on a missing one
/// succeed.
#[async_trait]
pub trait Driver: Send + Sync + std::fmt::Debug {
    /// Creates the instance (started), or returns the one that already carries
    /// our owner tag. Returns once it runs.
    ///
    /// # Errors
    /// [`DriverError`]; `Transient` ones are worth retrying.
    async fn create_instance(&self, spec: &InstanceSpec) -> Result<InstanceRef, DriverError>;

    /// The instance that carries `instance_id` as owner tag, if any.
    ///
    /// # Errors
    /// [`DriverError`].
    async fn find_instance(&self, instance_id: Uuid) -> Result<Option<InstanceRef>, DriverError>;

    /// Starts it; succeeds when it already runs.
    ///
    /// # Errors
    /// [`DriverError`]; `NotFound` when it does not exist.
    async fn start(&self, instance: &InstanceRef) -> Result<(), DriverError>;

    /// Stops it; succeeds when it is already stopped.
    ///
    /// # Errors
    /// [`DriverError`]; `NotFound` when it does not exist.
    async fn stop(&self, instance: &InstanceRef) -> Result<(), DriverError>;

    /// Destroys it and its disks; succeeds when it is already gone. A
    /// Docker instance keeps its named data volumes (the tenant may come
    /// back, or move to a shared instance): [`Driver::purge_data`] removes
    /// them when the tenant is deleted.
    ///
    /// # Errors
    /// [`DriverError`].
    async fn destroy(&self, instance: &InstanceRef) -> Result<(), DriverError>;

    /// Destroys it, as [`Driver::destroy`], and removes the data it kept
    /// (Docker named volumes): for a deleted tenant. The default is
    /// `destroy`, for drivers whose `destroy` leaves no data behind
    /// (Proxmox purges the container's disks).
    ///
    /// # Errors
    /// [`DriverError`].
    async fn purge_data(&self, instance: &InstanceRef) -> Result<(), DriverError> {
        self.destroy(instance).await
    }

    /// Applies new cores and memory, and grows the root disk to
    /// `resources.storage_gib` (disks never shrink).
    ///
    /// # Errors
    /// [`DriverError`].
    async fn resize(
        &self,
        instance: &InstanceRef,
        resources: &Resources,
    ) -> Result<(), DriverError>;

    /// Where the instance's application answers: for Proxmox the
    /// container's IPv4 address read from
    /// `GET /nodes/{node}/lxc/{vmid}/interfaces` (the first non-loopback
    /// interface with an `inet`, prefix length dropped) with
    /// `internal_port`; for Docker the engine's host with the published
    /// `host_port`. `None` when the node does not know it yet (a
    /// container without an address, an instance publishing no port).
    ///
    /// # Errors
    /// [`DriverError`]; `NotFound` when the instance does not exist.
    async fn upstream(
        &self,
        instance: &InstanceRef,
        internal_port: u16,
        host_port: Option<u16>,
    ) -> Result<Option<Upstream>, DriverError>;

    /// Makes the instance highly available, or no longer: on Proxmox an HA
    /// resource `ct:<vmid>` with state `started`
    /// (`POST /cluster/ha/resources`), removed with
    /// `DELETE /cluster/ha/resources/{sid}`; on Docker the restart policy
    /// `always` (else `unless-stopped`). Idempotent both ways.
    ///
    /// # Errors
    /// [`DriverError`]; `NotFound` when the instance does not exist.
    async fn set_high_availability(
        &self,
        instance: &InstanceRef,
        enabled: bool,
    ) -> Result<(), DriverError>;

    /// Its state and usage; `Missing` when it does not exist.
    ///
    /// # Errors
    /// [`DriverError`].
    async fn instance_status(&self, instance: &InstanceRef) -> Result<InstanceStatus, DriverError>;

    /// Whether the node answers and its version (a health check).
    ///
    /// # Errors
    /// [`DriverError`].
    async fn node_status(&self) -> Result<NodeStatus, DriverError>;

    /// Capacity and use of the node.
    ///
    /// # Errors
    /// [`DriverError`].
    async fn node_metrics(&self) -> Result<NodeMetrics, DriverError>;
}
