//! What goes out: a node as shown (never its secrets), and the part of it
//! the activity log records.

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::json;
use tenantry_store::nodes::Node as NodeRow;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::AppState;

/// Capacity as shown.
#[derive(Debug, Serialize, ToSchema)]
pub struct Capacity {
    /// CPU cores.
    pub cpu_cores: i32,
    /// Memory, MiB.
    pub memory_mib: i64,
    /// Storage, GiB.
    pub storage_gib: i64,
    /// Most instances.
    pub max_instances: i32,
}

/// A node as shown: never its secrets.
#[derive(Debug, Serialize, ToSchema)]
pub struct Node {
    /// Id.
    pub id: Uuid,
    /// `proxmox` or `docker`.
    pub kind: String,
    /// Name.
    pub name: String,
    /// API URL.
    pub api_url: String,
    /// PVE node name (Proxmox).
    pub pve_node: Option<String>,
    /// `online`, `offline`, `maintenance` or `draining`.
    pub status: String,
    /// Capacity offered.
    pub capacity: Capacity,
    /// Instances running on it.
    pub instances: i64,
    /// Whether credentials are stored.
    pub has_credentials: bool,
    /// Proxmox API token id (not a secret), when stored.
    pub token_id: Option<String>,
    /// TLS verification: `system`, `ca` or `fingerprint`.
    pub tls_verification: String,
    /// The pinned fingerprint, when pinned.
    pub tls_fingerprint: Option<String>,
    /// Version at the last successful check.
    pub version: Option<String>,
    /// Last check.
    pub last_checked_at: Option<DateTime<Utc>>,
    /// Error of the last check.
    pub last_error: Option<String>,
    /// Created.
    pub created_at: DateTime<Utc>,
    /// Last changed.
    pub updated_at: DateTime<Utc>,
}

pub(super) fn dto(state: &AppState, n: NodeRow, instances: i64) -> Node {
    let token_id = tenantry_provisioning::nodes::open(&state.auth.keyring, &n)
        .ok()
        .and_then(|c| c.token_id);
    Node {
        id: n.id,
        kind: n.kind,
        name: n.name,
        api_url: n.api_url,
        pve_node: n.pve_node,
        status: n.status,
        capacity: Capacity {
            cpu_cores: n.cpu_cores,
            memory_mib: n.memory_mib,
            storage_gib: n.storage_gib,
            max_instances: n.max_instances,
        },
        instances,
        has_credentials: n.credentials.is_some(),
        token_id,
        tls_verification: if n.tls_fingerprint.is_some() {
            "fingerprint"
        } else if n.tls_ca_pem.is_some() {
            "ca"
        } else {
            "system"
        }
        .into(),
        tls_fingerprint: n.tls_fingerprint,
        version: n.version,
        last_checked_at: n.last_checked_at,
        last_error: n.last_error,
        created_at: n.created_at,
        updated_at: n.updated_at,
    }
}

pub(super) fn audit_view(n: &Node) -> serde_json::Value {
    json!({
        "name": n.name, "kind": n.kind, "api_url": n.api_url, "pve_node": n.pve_node,
        "status": n.status, "capacity": n.capacity, "token_id": n.token_id,
        "tls_verification": n.tls_verification,
    })
}

/// What a connection check found.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct CheckResult {
    /// Whether the node answered.
    pub reachable: bool,
    /// Its version, when it answered.
    pub version: Option<String>,
    /// Why it did not, when it did not.
    pub error: Option<String>,
    /// Its status after the check.
    pub status: String,
}

impl From<tenantry_provisioning::nodes::CheckOutcome> for CheckResult {
    fn from(c: tenantry_provisioning::nodes::CheckOutcome) -> Self {
        Self {
            reachable: c.reachable,
            version: c.version,
            error: c.error,
            status: c.status.to_string(),
        }
    }
}
