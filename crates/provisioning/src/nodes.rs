//! Nodes as provisioning sees them: their sealed credentials, the driver
//! that talks to each (Proxmox VE or Docker), and the health check — a
//! `node.check` job per node, enqueued periodically — that moves a node
//! between `online` and `offline` with an activity row and a `node.offline`
//! alert raised or resolved.

use std::{sync::Arc, time::Duration};

use async_trait::async_trait;
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use serde_json::json;
use tenantry_domain::{DriverKind, NodeStatus};
use tenantry_store::{
    AsyncPgConnection, Pool, StoreError,
    activity::Entry,
    alerts,
    crypto::{Keyring, Sealed},
    jobs::{self, kinds::NodeCheck},
    nodes::{self, Node},
    worker::{Handlers, JobContext, JobError, JobHandler},
};
use uuid::Uuid;

use crate::{Driver, ProvisioningSettings};

/// A node's credentials, as sealed in `nodes.credentials` (JSON).
#[derive(Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Credentials {
    /// Proxmox API token id, `USER@REALM!TOKENID`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_id: Option<String>,
    /// Proxmox API token secret (a UUID).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_secret: Option<String>,
    /// Docker TLS client certificate (PEM).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_cert_pem: Option<String>,
    /// Docker TLS client key (PEM).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_key_pem: Option<String>,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("token_id", &self.token_id)
            .field(
                "token_secret",
                &self.token_secret.as_ref().map(|_| "[REDACTED]"),
            )
            .field(
                "client_cert_pem",
                &self.client_cert_pem.as_ref().map(|_| "[PEM]"),
            )
            .field(
                "client_key_pem",
                &self.client_key_pem.as_ref().map(|_| "[REDACTED]"),
            )
            .finish()
    }
}

/// Seals `creds` for node `id` (the id is the authenticated context, so a
/// blob copied to another node does not open).
pub fn seal(keyring: &Keyring, id: Uuid, creds: &Credentials) -> Sealed {
    let json = SecretString::from(serde_json::to_string(creds).unwrap_or_default());
    keyring.seal(json.expose_secret().as_bytes(), id.as_bytes())
}

/// Opens a node's credentials.
///
/// # Errors
/// A message when they cannot be opened (unknown key id, tampered blob).
pub fn open(keyring: &Keyring, node: &Node) -> Result<Credentials, String> {
    let (Some(blob), Some(key_id)) = (&node.credentials, &node.credentials_key_id) else {
        return Ok(Credentials::default());
    };
    let plain = keyring
        .open(
            &Sealed {
                key_id: key_id.clone(),
                blob: blob.clone(),
            },
            node.id.as_bytes(),
        )
        .map_err(|e| format!("cannot open the node's credentials: {e}"))?;
    serde_json::from_slice(plain.expose_secret())
        .map_err(|e| format!("the node's credentials are not valid JSON: {e}"))
}

/// The driver that talks to `node`; Proxmox tasks are polled every
/// `opts.task_poll` (`TENANTRY_PROXMOX_TASK_POLL_MS`); a Docker deploy waits
/// `opts.docker_ready_timeout` for the app to answer HTTP
/// (`TENANTRY_DOCKER_READY_TIMEOUT_SECS`).
///
/// # Errors
/// A message when the credentials cannot be opened or the node's settings
/// do not make a driver.
pub fn driver(
    keyring: &Keyring,
    node: &Node,
    opts: &ProvisioningSettings,
) -> Result<Arc<dyn Driver>, String> {
    let creds = open(keyring, node)?;
    let kind: DriverKind = node.kind.parse()?;
    match kind {
        DriverKind::Proxmox => {
            use crate::proxmox::{ProxmoxConfig, ProxmoxDriver, TlsVerification};
            let (Some(token_id), Some(secret)) = (creds.token_id, creds.token_secret) else {
                return Err("the node has no API token".into());
            };
            let mut cfg = ProxmoxConfig::new(
                node.api_url.clone(),
                node.pve_node_name(),
                token_id,
                SecretString::from(secret),
            );
            cfg.task_poll_interval = opts.task_poll;
            cfg.tls = match (&node.tls_ca_pem, &node.tls_fingerprint) {
                (_, Some(fp)) => TlsVerification::Fingerprint(fp.clone()),
                (Some(ca), None) => TlsVerification::CaPem(ca.clone()),
                (None, None) => TlsVerification::Default,
            };
            let driver = ProxmoxDriver::new(cfg).map_err(|e| e.to_string())?;
            Ok(Arc::new(driver))
        }
        DriverKind::Docker => {
            use crate::docker::{DockerConfig, DockerDriver, TlsVerification};
            let mut cfg = DockerConfig::new(node.api_url.clone());
            cfg.ready_timeout = opts.docker_ready_timeout;
            cfg.tls = match (&node.tls_ca_pem, &node.tls_fingerprint) {
                (_, Some(fp)) => TlsVerification::Fingerprint(fp.clone()),
                (Some(ca), None) => TlsVerification::CaPem(ca.clone()),
                (None, None) => TlsVerification::Default,
            };
            cfg.client_cert_pem = creds.client_cert_pem;
            cfg.client_key_pem = creds.client_key_pem.map(SecretString::from);
            let driver = DockerDriver::new(cfg).map_err(|e| e.to_string())?;
            Ok(Arc::new(driver))
        }
    }
}

/// What a connection check found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckOutcome {
    /// Whether the node answered.
    pub reachable: bool,
    /// Its version, when it answered.
    pub version: Option<String>,
    /// Why it did not, when it did not.
    pub error: Option<String>,
    /// Its status after the check.
    pub status: NodeStatus,
}

/// Talks to nodes: builds their drivers, checks them, runs their
/// health-check jobs.
#[derive(Clone)]
pub struct NodeService {
    /// The control plane's database.
    pub pool: Pool,
    /// Opens the nodes' sealed credentials.
    pub keyring: Arc<Keyring>,
    /// Driver options (task polling, Docker readiness).
    pub settings: Arc<ProvisioningSettings>,
}

impl std::fmt::Debug for NodeService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NodeService").finish_non_exhaustive()
    }
}

/// How long a check waits for the node's API.
const CHECK_TIMEOUT: Duration = Duration::from_secs(15);

impl NodeService {
    /// The driver that talks to `node` ([`driver`]).
    ///
    /// # Errors
    /// A message when its credentials cannot be opened or its settings make no driver.
    pub fn driver(&self, node: &Node) -> Result<Arc<dyn Driver>, String> {
        driver(&self.keyring, node, &self.settings)
    }

    /// Checks node `id` now: asks its API for its status and version,
    /// records the result, and moves it between `online` and `offline` when
    /// that changes (with an activity row by `actor` and an alert raised or
    /// resolved).
    ///
    /// # Errors
    /// [`StoreError`] (`NotFound` for an unknown node).
    pub async fn check(&self, id: Uuid, actor: &str) -> Result<CheckOutcome, StoreError> {
        let node = {
            let mut conn = self.pool.get().await?;
            nodes::get(&mut conn, id).await?
        };
        // The outbound call runs outside any transaction.
        let probe = match self.driver(&node) {
            Ok(d) => tokio::time::timeout(CHECK_TIMEOUT, d.node_status())
                .await
                .map_err(|_| format!("no answer within {} s", CHECK_TIMEOUT.as_secs()))
                .and_then(|r| r.map_err(|e| e.to_string())),
            Err(e) => Err(e),
        };
        let (version, error) = match &probe {
            Ok(s) if s.online => (Some(s.version.clone()), None),
            Ok(s) => (
                Some(s.version.clone()),
                Some("the API answers but reports the node unreachable (595)".to_owned()),
            ),
            Err(e) => (None, Some(e.clone())),
        };
        let mut conn = self.pool.get().await?;
        let status = record(
            &mut conn,
            &node,
            version.as_deref(),
            error.as_deref(),
            actor,
        )
        .await?;
        Ok(CheckOutcome {
            reachable: error.is_none(),
            version,
            error,
            status,
        })
    }

    /// Enqueues a health check of every watched node (all but
    /// `maintenance`); the dedup key keeps one live check per node, so
    /// several replicas doing this at once enqueue each check once.
    ///
    /// # Errors
    /// [`StoreError`].
    pub async fn enqueue_checks(&self) -> Result<usize, StoreError> {
        let mut conn = self.pool.get().await?;
        let watched = nodes::watched(&mut conn).await?;
        for n in &watched {
            jobs::enqueue(&mut conn, &NodeCheck { node_id: n.id }).await?;
        }
        Ok(watched.len())
    }

    /// Enqueues the health checks every `interval` until aborted (`None`
    /// for an interval of zero).
    pub fn spawn_health_checks(self, interval: Duration) -> Option<tokio::task::JoinHandle<()>> {
        let me = Arc::new(self);
        tenantry_store::periodic::spawn("enqueueing node health checks", interval, move || {
            let me = me.clone();
            async move { me.enqueue_checks().await.map(|_| ()) }
        })
    }

    /// Registers the `node.check` job.
    pub fn register(self, handlers: &mut Handlers) {
        handlers.register::<NodeCheck, _>(Arc::new(self));
    }
}

#[async_trait]
impl JobHandler<NodeCheck> for NodeService {
    async fn run(&self, _ctx: &JobContext, job: NodeCheck) -> Result<(), JobError> {
        match self.check(job.node_id, "health-check").await {
            Ok(_) | Err(StoreError::NotFound) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }
}

/// Records a check's result on the locked node row; returns its status after.
async fn record(
    conn: &mut AsyncPgConnection,
    node: &Node,
    version: Option<&str>,
    error: Option<&str>,
    actor: &str,
) -> Result<NodeStatus, StoreError> {
    use tenantry_store::AsyncConnection as _;
    let id = node.id;
    let actor = actor.to_owned();
    conn.transaction::<_, StoreError, _>(async |conn| {
        let current = nodes::lock(conn, id).await?;
        let status: NodeStatus = current.status.parse().unwrap_or(NodeStatus::Offline);
        let next = status.after_health_check(error.is_none());
        let updated =
            nodes::record_check(conn, id, version, error, next.map(|s| s.as_str())).await?;
        if let Some(next) = next {
            let subject = format!("node:{id}");
            if next == NodeStatus::Offline {
                alerts::raise(
                    conn,
                    &alerts::NewAlert {
                        kind: "node.offline",
                        severity: alerts::Severity::Critical,
                        message: &format!(
                            "node {} is offline: {}",
                            current.name,
                            error.unwrap_or("no answer")
                        ),
                        tenant_id: None,
                        subject: &subject,
                    },
                )
                .await?;
            } else {
                alerts::resolve(conn, "node.offline", &subject).await?;
            }
            Entry::anonymous(&actor, &format!("node.{next}"))
                .target("node", id)
                .change(
                    Some(json!({ "status": status.as_str() })),
                    Some(json!({ "status": next.as_str(), "error": error })),
                )
                .record(conn)
                .await?;
        }
        Ok(updated.status.parse().unwrap_or(NodeStatus::Offline))
    })
    .await
}
