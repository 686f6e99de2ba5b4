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
//! /nodes/{node}/lxc/{vmid}?purge=1&destroy-unreferenced-disks=1`, after
//! the container's HA resource is removed (`DELETE
//! /cluster/ha/resources/ct:<vmid>`: a stop of an HA-managed container is
//! only a request to the HA stack, which would stop it later, or restart
//! it). The upstream address comes from `GET …/interfaces`
//! (`network.rs`); high availability is an HA resource `ct:<vmid>` with
//! state `started` (`ha.rs`), added after creation when the spec asks for
//! it. Every call that returns a task UPID is polled to its end
//! (`tasks.rs`).
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
mod create;
mod errors;
mod ha;
mod lifecycle;
mod locate;
mod network;
mod operations;
mod params;
mod status;
mod tasks;
#[cfg(test)]
mod tests;
pub(crate) mod tls;

use std::fmt;
use std::future::Future;
use std::time::Duration;

use backon::{ExponentialBuilder, Retryable};
use secrecy::SecretString;
use serde_json::Value;
use tokio::time::Instant;

use self::client::PveClient;
use self::params::{Vmid, parse_tags};
pub use self::tls::TlsVerification;
use crate::DriverError;
// Named by the doc links above.
#[cfg(doc)]
use crate::Driver;

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
    /// Root disk bytes in use (PVE reports it while running).
    disk: Option<u64>,
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
            disk: v.get("disk").and_then(as_u64),
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
}
