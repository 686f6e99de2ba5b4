//! The Proxmox VE driver: one [`ProxmoxDriver`] per PVE node, running each
//! instance as an unprivileged LXC container.
//!
//! # Calls
//! API token auth (`Authorization: PVEAPIToken=USER@REALM!TOKENID=SECRET`),
//! TLS verified by default ([`TlsVerification`]). Health and version from
//! `GET /version` and `GET /nodes/{node}/status`; capacity from
//! `GET /cluster/resources`; containers from `GET /nodes/{node}/lxc`, which
//! lists each one's `tags`, `lock` and `status`. Create is `POST
//! /nodes/{node}/lxc` with a vmid from `GET /cluster/nextid`; start, shutdown
//! and stop are `POST …/status/{start,shutdown,stop}`; resize is `PUT
//! …/config` (cores, memory) and `PUT …/resize` (disk); destroy is `DELETE
//! /nodes/{node}/lxc/{vmid}?purge=1&destroy-unreferenced-disks=1`. Every call
//! that returns a task UPID is polled to its end (`tasks.rs`).
//!
//! # Why not the `proxmox-api` crate
//! We use a thin client of our own on the workspace's `reqwest` (`client.rs`)
//! because `proxmox-api` 0.2.0, measured against the calls we make:
//! - returns an error for every endpoint whose answer is `{"data":null}`,
//!   which includes `PUT /nodes/{node}/lxc/{vmid}/config`, our resize;
//! - drops the per-parameter `errors` map of a 400, the only place PVE says
//!   which parameter it refused;
//! - sends form bodies without `Content-Type:
//!   application/x-www-form-urlencoded`, so PVE ignores them;
//! - turns TLS verification off unless given a `reqwest::Client`, and is built
//!   on reqwest 0.13 while the workspace is on 0.12, so passing ours is a type
//!   error and using it would mean a second HTTP and TLS stack.
//!
//! Working around all four would leave none of the crate in use; the dozen
//! endpoints we call fit in `client.rs` with types of our own, checked against
//! the PVE 9.1 schema by pve-sim.
//!
//! A container is created with the product's `ostemplate`, the hostname
//! from the slug, `cores`, `memory`, `swap`, `rootfs=<storage>:<GiB>`, `net0`
//! (`eth0` on the configured bridge, DHCP), `unprivileged=1`, `onboot=1` (a
//! tenant's application comes back after a node reboot), the owner tags and
//! `start=1`.
//!
//! # Owner tag and idempotency
//! Every container we create carries the tags `tenantry;tenantry-<instance
//! uuid>` ([`crate::OWNER_TAG_PREFIX`]). Every operation first finds the
//! container by its vmid **and** owner tag (or by the tag alone); a container
//! at our vmid whose tags name another owner is never ours. `create_instance`
//! looks for its tag before it allocates a vmid, so a create retried after a
//! lost response adopts the container the first try made (and starts it if
//! it is stopped). PVE writes a new container's config, tags included, only
//! after the template is unpacked: while a `vzcreate` task runs, the
//! container shows `lock: create` and no tags. So a create waits (up to
//! `task_deadline`) while any container on the node is in that state
//! without an owner tag before it decides that none is its own: a second
//! container is worse than a slower create.
//!
//! # Errors and retries
//! Errors are classified by status and message (`errors.rs`): a lock held by
//! another task, a lock timeout, an unreachable node (595), a lost answer
//! are retried inside the operation with exponential back-off (`backon`,
//! bounded by [`RetryPolicy`]) and then returned as `Transient` for the job
//! queue to retry later; 401/403 are `Unauthorized`; the rest fail the step
//! with the node's message (and, for a task, the tail of its log).

mod client;
mod errors;
mod params;
mod tasks;
pub(crate) mod tls;

use std::collections::BTreeSet;
use std::fmt;
use std::future::Future;
use std::time::Duration;

use async_trait::async_trait;
use backon::{ExponentialBuilder, Retryable};
use secrecy::SecretString;
use serde::Deserialize;
use serde_json::Value;
use tenantry_domain::catalog::Resources;
use tokio::time::Instant;
use uuid::Uuid;

use self::client::PveClient;
use self::errors::{ApiError, Class};
use self::params::{Vmid, create_params, disk_size_bytes, owner_of, owner_tag, parse_tags};
use self::tasks::{TaskEnd, Upid};
pub use self::tls::TlsVerification;
use crate::{
    Driver, DriverError, InstanceRef, InstanceSpec, InstanceState, InstanceStatus, NodeMetrics,
    NodeStatus,
};

/// How many times a create takes a new vmid when another create took the
/// one `/cluster/nextid` gave.
const MAX_VMID_CLASHES: u32 = 5;

/// Seconds a shutdown waits for the container's init before PVE stops it
/// hard (`forceStop=1`).
const SHUTDOWN_TIMEOUT_SECS: u32 = 60;

/// Retries of transient errors inside one driver operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Tries in all, the first included (at least 1).
    pub attempts: u32,
    /// Delay before the first retry; it doubles (with jitter) per retry.
    pub base_delay: Duration,
    /// The longest delay between two tries.
    pub max_delay: Duration,
}

impl Default for RetryPolicy {
    /// 4 tries, 500 ms then doubling, at most 5 s apart.
    fn default() -> Self {
        Self {
            attempts: 4,
            base_delay: Duration::from_millis(500),
            max_delay: Duration::from_secs(5),
        }
    }
}

/// How to reach and use one Proxmox VE node. The node registry builds it
/// from a stored node (the token secret decrypted from the database).
#[derive(Debug, Clone)]
pub struct ProxmoxConfig {
    /// API base URL, `https://host:8006/api2/json`.
    pub api_url: String,
    /// The PVE node name (`pve1`), as `/nodes` lists it.
    pub node: String,
    /// API token id, `USER@REALM!TOKENID` (`tenantry@pve!provisioning`).
    pub token_id: String,
    /// The token's secret (a UUID). Never logged; `Debug` redacts it.
    pub token_secret: SecretString,
    /// How the node's TLS certificate is verified.
    pub tls: TlsVerification,
    /// Storage for container root disks (`local-lvm`).
    pub storage: String,
    /// Bridge for `net0` (`vmbr0`).
    pub bridge: String,
    /// How often a task's status is read (PVE clients use 1 s).
    pub task_poll_interval: Duration,
    /// How long a task (or a create by another caller) may run before the
    /// operation gives up with `Transient`.
    pub task_deadline: Duration,
    /// Timeout of one HTTP request, connection included.
    pub request_timeout: Duration,
    /// Retries of transient errors inside one operation.
    pub retry: RetryPolicy,
}

impl ProxmoxConfig {
    /// A configuration with the defaults: verified TLS, storage `local-lvm`,
    /// bridge `vmbr0`, tasks polled every second for at most 10 minutes,
    /// requests timing out after 30 s, [`RetryPolicy::default`].
    #[must_use]
    pub fn new(
        api_url: impl Into<String>,
        node: impl Into<String>,
        token_id: impl Into<String>,
        token_secret: SecretString,
    ) -> Self {
        Self {
            api_url: api_url.into(),
            node: node.into(),
            token_id: token_id.into(),
            token_secret,
            tls: TlsVerification::Default,
            storage: "local-lvm".into(),
            bridge: "vmbr0".into(),
            task_poll_interval: Duration::from_secs(1),
            task_deadline: Duration::from_secs(600),
            request_timeout: Duration::from_secs(30),
            retry: RetryPolicy::default(),
        }
    }
}

/// The [`Driver`] for one Proxmox VE node.
pub struct ProxmoxDriver {
    cfg: ProxmoxConfig,
    client: PveClient,
}

impl fmt::Debug for ProxmoxDriver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ProxmoxDriver")
            .field("api_url", &self.cfg.api_url)
            .field("node", &self.cfg.node)
            .field("token_id", &self.cfg.token_id)
            .finish_non_exhaustive()
    }
}

/// One container as `GET /nodes/{node}/lxc` lists it.
#[derive(Debug, Clone, PartialEq)]
struct Ct {
    vmid: Vmid,
    status: String,
    lock: Option<String>,
    tags: Vec<String>,
    /// CPU use as a fraction of the container's `cpus`.
    cpu: Option<f64>,
    cpus: Option<f64>,
    mem: Option<u64>,
    uptime: Option<u64>,
}

impl Ct {
    fn running(&self) -> bool {
        self.status == "running"
    }

    fn has_tag(&self, tag: &str) -> bool {
        self.tags.iter().any(|t| t == tag)
    }

    fn creating(&self) -> bool {
        self.lock.as_deref() == Some("create")
    }

    /// From a list entry; PVE writes some numbers as strings (the vmid of
    /// an LXC entry among them), so both are read.
    fn from_value(v: &Value) -> Option<Self> {
        let vmid = Vmid::new(as_u64(v.get("vmid")?)?)?;
        Some(Self {
            vmid,
            status: v
                .get("status")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_owned(),
            lock: v
                .get("lock")
                .and_then(Value::as_str)
                .filter(|l| !l.is_empty())
                .map(str::to_owned),
            tags: v
                .get("tags")
                .and_then(Value::as_str)
                .map(parse_tags)
                .unwrap_or_default(),
            cpu: v.get("cpu").and_then(as_f64),
            cpus: v.get("cpus").and_then(as_f64),
            mem: v.get("mem").and_then(as_u64),
            uptime: v.get("uptime").and_then(as_u64),
        })
    }
}

fn as_f64(v: &Value) -> Option<f64> {
    match v {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

fn as_u64(v: &Value) -> Option<u64> {
    match v {
        Value::Number(n) => n.as_u64().or_else(|| {
            n.as_f64().filter(|f| f.is_finite() && *f >= 0.0).map(|f| {
                #[expect(
                    clippy::cast_possible_truncation,
                    clippy::cast_sign_loss,
                    reason = "checked finite and non-negative; PVE counters fit u64"
                )]
                let n = f as u64;
                n
            })
        }),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// `GET /version`.
#[derive(Debug, Deserialize)]
struct Version {
    version: String,
}

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
    /// A driver for the node `cfg` describes. Makes no call: use
    /// [`Driver::node_status`] to check that the node answers.
    ///
    /// # Errors
    /// `Failed` for an unusable URL, token id or TLS setting.
    pub fn new(cfg: ProxmoxConfig) -> Result<Self, DriverError> {
        if cfg.node.is_empty() || cfg.storage.is_empty() || cfg.bridge.is_empty() {
            return Err(DriverError::Failed {
                reason: "Proxmox node, storage and bridge must be set".into(),
            });
        }
        let client = PveClient::new(&cfg)?;
        Ok(Self { cfg, client })
    }

    fn node(&self) -> &str {
        &self.cfg.node
    }

    /// Runs `op` again while it fails with a transient error, with
    /// exponential back-off and jitter, at most `retry.attempts` times, and
    /// not once `task_deadline` has passed since the first try (a task that
    /// outran its deadline is not waited for four times over).
    async fn retrying<T, F, Fut>(&self, what: &str, op: F) -> Result<T, DriverError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, DriverError>>,
    {
        let started = Instant::now();
        let policy = self.cfg.retry;
        let retries = usize::try_from(policy.attempts.saturating_sub(1)).unwrap_or(usize::MAX);
        let backoff = ExponentialBuilder::default()
            .with_min_delay(policy.base_delay)
            .with_max_delay(policy.max_delay)
            .with_max_times(retries)
            .with_jitter();
        op.retry(backoff)
            .sleep(tokio::time::sleep)
            .when(|e| e.is_transient() && started.elapsed() < self.cfg.task_deadline)
            .notify(|e, delay| {
                tracing::warn!(node = %self.cfg.node, op = what, error = %e, ?delay, "retrying");
            })
            .await
    }

    /// The node's containers.
    async fn list(&self) -> Result<Vec<Ct>, DriverError> {
        let raw: Vec<Value> = self.client.get(&["nodes", self.node(), "lxc"], &[]).await?;
        Ok(raw.iter().filter_map(Ct::from_value).collect())
    }

    /// The container that is `instance`: the one at its vmid if it carries
    /// its owner tag, else the one that carries the tag anywhere on the node.
    ///
    /// # Errors
    /// `Transient` while the container at its vmid is still being created
    /// (no tags yet); those of the listing.
    async fn locate(&self, instance: &InstanceRef) -> Result<Option<Ct>, DriverError> {
        let cts = self.list().await?;
        let tag = owner_tag(instance.instance_id);
        if let Some(ct) =
            Vmid::parse(&instance.external_id).and_then(|vmid| cts.iter().find(|c| c.vmid == vmid))
        {
            if ct.has_tag(&tag) {
                return Ok(Some(ct.clone()));
            }
            if ct.creating() && owner_of(&ct.tags).is_none() {
                return Err(DriverError::Transient {
                    reason: format!("CT {} on {} is still being created", ct.vmid, self.node()),
                });
            }
            tracing::warn!(
                node = %self.node(),
                vmid = %ct.vmid,
                instance = %instance.instance_id,
                "the container at this vmid does not carry the instance's owner tag; not ours"
            );
        }
        Ok(pick_ours(&cts, &tag).cloned())
    }

    async fn located(&self, instance: &InstanceRef) -> Result<Ct, DriverError> {
        self.locate(instance)
            .await?
            .ok_or_else(|| DriverError::NotFound {
                reason: format!(
                    "no container on {} carries {}",
                    self.node(),
                    owner_tag(instance.instance_id)
                ),
            })
    }

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
    async fn power(&self, vmid: Vmid, action: &str) -> Result<(), DriverError> {
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

    /// Finds our container (waiting for creates in flight), or `None`.
    ///
    /// While a container that may be ours is being created (our tag with
    /// `lock: create`, or no owner tag yet with `lock: create`, or a vmid
    /// whose create answer we lost), waits for it, polling every
    /// `task_poll_interval`, at most `task_deadline`.
    async fn settle(
        &self,
        tag: &str,
        uncertain: &BTreeSet<Vmid>,
    ) -> Result<Option<Ct>, DriverError> {
        let started = Instant::now();
        let mut grace_used = false;
        loop {
            let cts = self.list().await?;
            let ours = pick_ours(&cts, tag);
            if let Some(ct) = ours.filter(|c| !c.creating()) {
                return Ok(Some(ct.clone()));
            }
            let pending: Vec<Vmid> = cts
                .iter()
                .filter(|c| {
                    c.has_tag(tag)
                        || (owner_of(&c.tags).is_none()
                            && (c.creating() || (uncertain.contains(&c.vmid) && c.lock.is_some())))
                })
                .map(|c| c.vmid)
                .collect();
            let invisible = uncertain.iter().any(|v| !cts.iter().any(|c| c.vmid == *v));
            if pending.is_empty() {
                // A create whose answer we lost may not show yet: PVE forks
                // the task before it writes the first config. Look once more.
                if invisible && !grace_used {
                    grace_used = true;
                    tokio::time::sleep(self.cfg.task_poll_interval).await;
                    continue;
                }
                return Ok(None);
            }
            if started.elapsed() + self.cfg.task_poll_interval > self.cfg.task_deadline {
                return Err(DriverError::Transient {
                    reason: format!(
                        "CT {pending:?} on {} still being created after {:?}, without our owner \
                         tag yet; not creating another container until it finishes or is removed",
                        self.node(),
                        self.cfg.task_deadline
                    ),
                });
            }
            tracing::debug!(node = %self.node(), ?pending, "waiting for containers being created");
            tokio::time::sleep(self.cfg.task_poll_interval).await;
        }
    }

    /// Makes `ct` (ours) run and returns its reference.
    async fn adopt(&self, instance_id: Uuid, ct: &Ct) -> Result<InstanceRef, DriverError> {
        if !ct.running() {
            tracing::info!(node = %self.node(), vmid = %ct.vmid, "starting our existing container");
            self.power(ct.vmid, "start").await?;
        }
        Ok(InstanceRef {
            instance_id,
            external_id: ct.vmid.to_string(),
        })
    }

    /// One try at create: adopt ours if it exists, else take a vmid and
    /// create. `uncertain` collects vmids whose create answer was lost
    /// across tries.
    async fn create_once(
        &self,
        spec: &InstanceSpec,
        uncertain: &std::sync::Mutex<BTreeSet<Vmid>>,
    ) -> Result<InstanceRef, DriverError> {
        let tag = owner_tag(spec.instance_id);
        let mut clashes = 0;
        loop {
            let snapshot = uncertain.lock().map(|u| u.clone()).unwrap_or_default();
            if let Some(ct) = self.settle(&tag, &snapshot).await? {
                return self.adopt(spec.instance_id, &ct).await;
            }
            let vmid = self.next_vmid().await?;
            let params = create_params(spec, vmid, &self.cfg.storage, &self.cfg.bridge)?;
            tracing::info!(node = %self.node(), %vmid, instance = %spec.instance_id, "creating container");
            let data = match self
                .client
                .post(&["nodes", self.node(), "lxc"], &params)
                .await
            {
                Ok(data) => data,
                Err(e) if e.class() == Class::AlreadyExists && clashes < MAX_VMID_CLASHES => {
                    clashes += 1;
                    tracing::info!(node = %self.node(), %vmid, "vmid taken meanwhile; taking another");
                    continue;
                }
                Err(e) => {
                    if e.outcome_unknown()
                        && let Ok(mut u) = uncertain.lock()
                    {
                        u.insert(vmid);
                    }
                    return Err(create_error(e));
                }
            };
            if let Some(upid) = Upid::from_data(&data)? {
                let end = tasks::wait_end(
                    &self.client,
                    &upid,
                    self.cfg.task_poll_interval,
                    self.cfg.task_deadline,
                )
                .await?;
                match end {
                    TaskEnd::Ok => {}
                    TaskEnd::Failed {
                        class: Class::AlreadyExists,
                        ..
                    } if clashes < MAX_VMID_CLASHES => {
                        // "Could not reserve ID 105, already taken": the
                        // final check after locking found the id gone.
                        clashes += 1;
                        continue;
                    }
                    TaskEnd::Failed { error, .. } => return Err(error),
                }
            }
            let cts = self.list().await?;
            let Some(ct) = pick_ours(&cts, &tag) else {
                return Err(DriverError::Failed {
                    reason: format!(
                        "the create task for CT {vmid} on {} succeeded, but no container carries {tag}",
                        self.node()
                    ),
                });
            };
            let ct = ct.clone();
            return self.adopt(spec.instance_id, &ct).await;
        }
    }

    async fn next_vmid(&self) -> Result<Vmid, DriverError> {
        let raw: Value = self.client.get(&["cluster", "nextid"], &[]).await?;
        as_u64(&raw)
            .and_then(Vmid::new)
            .ok_or_else(|| DriverError::Failed {
                reason: format!("GET /cluster/nextid answered {raw}, not a vmid"),
            })
    }

    async fn resize_once(
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

    async fn destroy_once(&self, instance: &InstanceRef) -> Result<(), DriverError> {
        let Some(ct) = self.locate(instance).await? else {
            return Ok(());
        };
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

    async fn node_metrics_once(&self) -> Result<NodeMetrics, DriverError> {
        let resources: Vec<Value> = self.client.get(&["cluster", "resources"], &[]).await?;
        let field = |v: &Value, k: &str| v.get(k).and_then(Value::as_str).unwrap_or("").to_owned();
        let node = resources
            .iter()
            .find(|r| field(r, "type") == "node" && field(r, "node") == self.cfg.node)
            .ok_or_else(|| DriverError::Failed {
                reason: format!("node {} is not in /cluster/resources", self.node()),
            })?;
        if field(node, "status") != "online" {
            return Err(DriverError::Transient {
                reason: format!("node {} is {}", self.node(), field(node, "status")),
            });
        }
        let num = |v: &Value, k: &str| v.get(k).and_then(as_u64).unwrap_or(0);
        let storage = resources.iter().find(|r| {
            field(r, "type") == "storage"
                && field(r, "node") == self.cfg.node
                && field(r, "storage") == self.cfg.storage
        });
        let (disk_total, disk_used) = match storage {
            Some(s) => (num(s, "maxdisk"), num(s, "disk")),
            None => (num(node, "maxdisk"), num(node, "disk")),
        };
        let running = resources
            .iter()
            .filter(|r| {
                field(r, "type") == "lxc"
                    && field(r, "node") == self.cfg.node
                    && field(r, "status") == "running"
            })
            .count();
        Ok(NodeMetrics {
            cpu_cores: u32::try_from(num(node, "maxcpu")).unwrap_or(u32::MAX),
            cpu_usage: node
                .get("cpu")
                .and_then(as_f64)
                .unwrap_or(0.0)
                .clamp(0.0, 1.0),
            memory_total_bytes: num(node, "maxmem"),
            memory_used_bytes: num(node, "mem"),
            disk_total_bytes: disk_total,
            disk_used_bytes: disk_used,
            instances_running: u32::try_from(running).unwrap_or(u32::MAX),
        })
    }
}

/// Our container among `cts`: the one carrying `tag` (the lowest vmid,
/// should there ever be two).
fn pick_ours<'a>(cts: &'a [Ct], tag: &str) -> Option<&'a Ct> {
    let mut ours = cts.iter().filter(|c| c.has_tag(tag));
    let first = ours.next()?;
    let mut best = first;
    for other in ours {
        tracing::error!(vmid = %other.vmid, tag, "two containers carry one owner tag");
        if other.vmid < best.vmid {
            best = other;
        }
    }
    Some(best)
}

/// Whether a power action's error means the container is already where the
/// action would take it.
fn settled(action: &str, e: &ApiError) -> bool {
    matches!(
        (action, e.class()),
        ("start", Class::AlreadyRunning) | ("shutdown" | "stop", Class::NotRunning)
    )
}

/// A create call's error: a missing storage, template or bridge is a bad
/// request here, not a missing instance.
fn create_error(e: ApiError) -> DriverError {
    match e.into_driver_error() {
        DriverError::NotFound { reason } => DriverError::Failed { reason },
        other => other,
    }
}

#[async_trait]
impl Driver for ProxmoxDriver {
    async fn create_instance(&self, spec: &InstanceSpec) -> Result<InstanceRef, DriverError> {
        let uncertain = std::sync::Mutex::new(BTreeSet::new());
        self.retrying("create", || self.create_once(spec, &uncertain))
            .await
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

    async fn node_metrics(&self) -> Result<NodeMetrics, DriverError> {
        self.retrying("node metrics", || self.node_metrics_once())
            .await
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn list_entries_read_numbers_and_strings() {
        let id = Uuid::new_v4();
        let ct = Ct::from_value(&json!({
            "vmid": "105", "status": "running", "lock": "", "tags": format!("tenantry;{}", owner_tag(id)),
            "cpu": 0.25, "cpus": 2, "mem": 1_048_576, "uptime": 42
        }))
        .unwrap();
        assert_eq!(ct.vmid.to_string(), "105");
        assert!(ct.running());
        assert_eq!(ct.lock, None);
        assert!(ct.has_tag(&owner_tag(id)));
        assert_eq!(ct.cpus, Some(2.0));
        let creating =
            Ct::from_value(&json!({"vmid": 106, "status": "stopped", "lock": "create"})).unwrap();
        assert!(creating.creating());
        assert!(creating.tags.is_empty());
        assert!(Ct::from_value(&json!({"status": "running"})).is_none());
    }

    #[test]
    fn ours_is_found_by_tag_only() {
        let id = Uuid::new_v4();
        let tag = owner_tag(id);
        let ct = |vmid: u64, tags: &str| Ct {
            vmid: Vmid::new(vmid).unwrap(),
            status: "running".into(),
            lock: None,
            tags: parse_tags(tags),
            cpu: None,
            cpus: None,
            mem: None,
            uptime: None,
        };
        let other = owner_tag(Uuid::new_v4());
        let cts = [
            ct(100, &other),
            ct(101, "tenantry"),
            ct(107, &tag),
            ct(103, &tag),
        ];
        assert_eq!(pick_ours(&cts, &tag).map(|c| c.vmid), Vmid::new(103));
        assert_eq!(pick_ours(&cts[..2], &tag), None);
    }

    #[test]
    fn the_config_debug_redacts_the_secret() {
        let cfg = ProxmoxConfig::new(
            "https://pve1.example:8006/api2/json",
            "pve1",
            "tenantry@pve!prov",
            SecretString::from("5f0c1b7e-secret-value"),
        );
        let text = format!("{cfg:?}");
        assert!(!text.contains("5f0c1b7e"), "{text}");
        let driver = ProxmoxDriver::new(cfg).unwrap();
        let text = format!("{driver:?}");
        assert!(!text.contains("5f0c1b7e"), "{text}");
    }

    #[test]
    fn bad_configs_fail_at_construction() {
        let cfg = |url: &str, token: &str| {
            ProxmoxConfig::new(url, "pve1", token, SecretString::from("s"))
        };
        assert!(ProxmoxDriver::new(cfg("not a url", "a@pve!t")).is_err());
        assert!(ProxmoxDriver::new(cfg("ftp://pve1/api2/json", "a@pve!t")).is_err());
        assert!(ProxmoxDriver::new(cfg("https://pve1:8006/api2/json", "root")).is_err());
        assert!(ProxmoxDriver::new(cfg("https://pve1:8006/api2/json", "a@pve!t")).is_ok());
    }

    #[test]
    fn power_errors_that_mean_done() {
        let e = |m: &str| ApiError::Http {
            call: "POST x".into(),
            status: 500,
            message: m.into(),
            errors: std::collections::BTreeMap::new(),
        };
        assert!(settled("start", &e("CT 105 already running")));
        assert!(settled("shutdown", &e("CT 105 not running")));
        assert!(settled("stop", &e("CT 105 not running")));
        assert!(!settled("start", &e("CT 105 not running")));
        assert!(!settled("stop", &e("CT is locked (backup)")));
    }
}
