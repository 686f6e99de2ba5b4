//! The node registry: Proxmox VE nodes and Docker hosts, their sealed
//! credentials, status and capacity, and the instances that run on them.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use uuid::Uuid;

use crate::{
    Page, PageRequest, StoreError,
    schema::{instances, nodes},
};

/// A node row. `credentials` is sealed (AES-256-GCM, see
/// [`crate::crypto::Keyring`]) under `credentials_key_id`, with the node id as
/// authenticated context.
#[derive(Debug, Clone, PartialEq, Queryable, Selectable, Identifiable)]
#[diesel(table_name = nodes, check_for_backend(diesel::pg::Pg))]
pub struct Node {
    /// Id (UUIDv7).
    pub id: Uuid,
    /// `proxmox` or `docker`.
    pub kind: String,
    /// Our name (for Proxmox, also the PVE node name unless `pve_node` is set).
    pub name: String,
    /// API URL.
    pub api_url: String,
    /// PVE node name when it differs from `name`.
    pub pve_node: Option<String>,
    /// Sealed credentials (JSON once opened).
    pub credentials: Option<Vec<u8>>,
    /// Key the credentials are sealed with.
    pub credentials_key_id: Option<String>,
    /// Custom CA (PEM) to verify the API's certificate with.
    pub tls_ca_pem: Option<String>,
    /// Pinned SHA-256 certificate fingerprint (`AA:BB:…`).
    pub tls_fingerprint: Option<String>,
    /// `online`, `offline`, `maintenance`, `draining`.
    pub status: String,
    /// CPU cores offered.
    pub cpu_cores: i32,
    /// Memory offered, MiB.
    pub memory_mib: i64,
    /// Storage offered, GiB.
    pub storage_gib: i64,
    /// Most instances.
    pub max_instances: i32,
    /// Version at the last successful check.
    pub version: Option<String>,
    /// Last check.
    pub last_checked_at: Option<DateTime<Utc>>,
    /// Error of the last check, if it failed.
    pub last_error: Option<String>,
    /// Created.
    pub created_at: DateTime<Utc>,
    /// Last changed.
    pub updated_at: DateTime<Utc>,
}

impl Node {
    /// The PVE node name (`pve_node`, else `name`).
    pub fn pve_node_name(&self) -> &str {
        self.pve_node.as_deref().unwrap_or(&self.name)
    }
}

/// Columns written on create and update (`None` fields of an update are
/// left as they are).
#[derive(Debug, Clone, Default, AsChangeset)]
#[diesel(table_name = nodes)]
pub struct NodeChanges {
    /// Name.
    pub name: Option<String>,
    /// API URL.
    pub api_url: Option<String>,
    /// PVE node name (`Some(None)` clears it).
    pub pve_node: Option<Option<String>>,
    /// Sealed credentials.
    pub credentials: Option<Option<Vec<u8>>>,
    /// Their key id.
    pub credentials_key_id: Option<Option<String>>,
    /// Custom CA.
    pub tls_ca_pem: Option<Option<String>>,
    /// Pinned fingerprint.
    pub tls_fingerprint: Option<Option<String>>,
    /// Status.
    pub status: Option<String>,
    /// CPU cores.
    pub cpu_cores: Option<i32>,
    /// Memory, MiB.
    pub memory_mib: Option<i64>,
    /// Storage, GiB.
    pub storage_gib: Option<i64>,
    /// Most instances.
    pub max_instances: Option<i32>,
}

/// A new node. `credentials` must already be sealed with `id` as context.
#[derive(Debug, Clone, Insertable)]
#[diesel(table_name = nodes)]
pub struct NewNode {
    /// Id (chosen by the caller: it is the sealing context).
    pub id: Uuid,
    /// Kind.
    pub kind: String,
    /// Name.
    pub name: String,
    /// API URL.
    pub api_url: String,
    /// PVE node name.
    pub pve_node: Option<String>,
    /// Sealed credentials.
    pub credentials: Option<Vec<u8>>,
    /// Their key id.
    pub credentials_key_id: Option<String>,
    /// Custom CA.
    pub tls_ca_pem: Option<String>,
    /// Pinned fingerprint.
    pub tls_fingerprint: Option<String>,
    /// Status.
    pub status: String,
    /// CPU cores.
    pub cpu_cores: i32,
    /// Memory, MiB.
    pub memory_mib: i64,
    /// Storage, GiB.
    pub storage_gib: i64,
    /// Most instances.
    pub max_instances: i32,
}

/// Inserts a node.
///
/// # Errors
/// [`StoreError::Conflict`] (`nodes_name_key`) when the name is taken.
pub async fn insert(conn: &mut AsyncPgConnection, node: &NewNode) -> Result<Node, StoreError> {
    Ok(diesel::insert_into(nodes::table)
        .values(node)
        .returning(Node::as_returning())
        .get_result(conn)
        .await?)
}

/// One node.
///
/// # Errors
/// [`StoreError::NotFound`].
pub async fn get(conn: &mut AsyncPgConnection, id: Uuid) -> Result<Node, StoreError> {
    Ok(nodes::table
        .find(id)
        .select(Node::as_select())
        .first(conn)
        .await?)
}

/// One node, locked for update until the transaction ends.
///
/// # Errors
/// [`StoreError::NotFound`].
pub async fn lock(conn: &mut AsyncPgConnection, id: Uuid) -> Result<Node, StoreError> {
    Ok(nodes::table
        .find(id)
        .select(Node::as_select())
        .for_update()
        .first(conn)
        .await?)
}

/// Filters of the node list.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NodeFilter {
    /// Only this kind.
    pub kind: Option<String>,
    /// Only this status.
    pub status: Option<String>,
}

/// Nodes by id, one page.
///
/// # Errors
/// [`StoreError`].
pub async fn list(
    conn: &mut AsyncPgConnection,
    filter: &NodeFilter,
    page: PageRequest,
) -> Result<Page<Node>, StoreError> {
    let mut q = nodes::table.select(Node::as_select()).into_boxed();
    if let Some(k) = &filter.kind {
        q = q.filter(nodes::kind.eq(k.clone()));
    }
    if let Some(s) = &filter.status {
        q = q.filter(nodes::status.eq(s.clone()));
    }
    if let Some(after) = page.after {
        q = q.filter(nodes::id.gt(after));
    }
    let rows = q.order(nodes::id).limit(page.fetch()).load(conn).await?;
    Ok(Page::from_overfetch(rows, page, |n| n.id))
}

/// Every node the health check watches (all but `maintenance`).
///
/// # Errors
/// [`StoreError`].
pub async fn watched(conn: &mut AsyncPgConnection) -> Result<Vec<Node>, StoreError> {
    Ok(nodes::table
        .filter(nodes::status.ne("maintenance"))
        .select(Node::as_select())
        .order(nodes::id)
        .load(conn)
        .await?)
}

/// Applies `changes` to node `id`.
///
/// # Errors
/// [`StoreError::NotFound`], [`StoreError::Conflict`] on a taken name.
pub async fn update(
    conn: &mut AsyncPgConnection,
    id: Uuid,
    changes: &NodeChanges,
) -> Result<Node, StoreError> {
    Ok(diesel::update(nodes::table.find(id))
        .set((changes, nodes::updated_at.eq(diesel::dsl::now)))
        .returning(Node::as_returning())
        .get_result(conn)
        .await?)
}

/// Records a health check's result: `version` and no error when the node
/// answered, else `error`; `status` when it changes.
///
/// # Errors
/// [`StoreError`].
pub async fn record_check(
    conn: &mut AsyncPgConnection,
    id: Uuid,
    version: Option<&str>,
    error: Option<&str>,
    status: Option<&str>,
) -> Result<Node, StoreError> {
    let mut q = diesel::update(nodes::table.find(id))
        .set((
            nodes::last_checked_at.eq(diesel::dsl::now),
            nodes::last_error.eq(error),
        ))
        .returning(Node::as_returning())
        .get_result::<Node>(conn)
        .await?;
    if let Some(v) = version {
        q = diesel::update(nodes::table.find(id))
            .set(nodes::version.eq(v))
            .returning(Node::as_returning())
            .get_result(conn)
            .await?;
    }
    if let Some(s) = status {
        q = diesel::update(nodes::table.find(id))
            .set((nodes::status.eq(s), nodes::updated_at.eq(diesel::dsl::now)))
            .returning(Node::as_returning())
            .get_result(conn)
            .await?;
    }
    Ok(q)
}

/// Instances on node `id` (not counting destroyed ones, whose only trace
/// is data kept for a tenant that moved away).
///
/// # Errors
/// [`StoreError`].
pub async fn instance_count(conn: &mut AsyncPgConnection, id: Uuid) -> Result<i64, StoreError> {
    Ok(instances::table
        .filter(instances::node_id.eq(id))
        .filter(instances::status.ne("destroyed"))
        .count()
        .get_result(conn)
        .await?)
}

/// Deletes node `id` if no instance runs on it; `Ok(false)` when one does.
/// Run in a transaction with the node locked ([`lock`]).
///
/// # Errors
/// [`StoreError::NotFound`].
pub async fn delete_if_empty(conn: &mut AsyncPgConnection, id: Uuid) -> Result<bool, StoreError> {
    if instance_count(conn, id).await? > 0 {
        return Ok(false);
    }
    // Records of destroyed containers go with the node.
    diesel::delete(instances::table.filter(instances::node_id.eq(id)))
        .execute(conn)
        .await?;
    let n = diesel::delete(nodes::table.find(id)).execute(conn).await?;
    if n == 0 {
        return Err(StoreError::NotFound);
    }
    Ok(true)
}

/// An instance row: a container on a node.
#[derive(Debug, Clone, PartialEq, Queryable, Selectable, Identifiable)]
#[diesel(table_name = instances, check_for_backend(diesel::pg::Pg))]
pub struct Instance {
    /// Id (UUIDv7): also the owner tag on the container.
    pub id: Uuid,
    /// The node it runs on.
    pub node_id: Uuid,
    /// The product it runs.
    pub product_id: Uuid,
    /// `shared` or `dedicated`.
    pub kind: String,
    /// Proxmox vmid or Docker container id, once created.
    pub external_id: Option<String>,
    /// `creating`, `running`, `stopped`, `destroying`, `failed`.
    pub status: String,
    /// Created.
    pub created_at: DateTime<Utc>,
    /// Last changed.
    pub updated_at: DateTime<Utc>,
    /// CPU cores reserved on the node.
    pub cpu_cores: i32,
    /// Memory reserved, MiB.
    pub memory_mib: i32,
    /// Storage reserved, GiB.
    pub storage_gib: i32,
    /// Host name inside the container.
    pub hostname: Option<String>,
    /// A shared instance's published host port (a dedicated instance's is
    /// on its deployment).
    pub host_port: Option<i32>,
    /// Where its app answers, for the reverse proxy: the Docker engine's
    /// host, or the LXC container's IPv4 address. Null until read.
    pub upstream_host: Option<String>,
    /// The port there: the published host port (Docker) or the product's
    /// internal port (Proxmox).
    pub upstream_port: Option<i32>,
    /// When the upstream was last read from the node.
    pub upstream_read_at: Option<DateTime<Utc>>,
    /// Whether it is registered for high availability (a Proxmox HA
    /// resource; Docker restart policy `always`).
    pub high_availability: bool,
}

/// What a new instance reserves, and its host name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reservation {
    /// CPU cores.
    pub cpu_cores: i32,
    /// Memory, MiB.
    pub memory_mib: i32,
    /// Storage, GiB.
    pub storage_gib: i32,
    /// Host name.
    pub hostname: String,
    /// Published host port (a shared instance's; a dedicated instance's
    /// is on its deployment).
    pub host_port: Option<i32>,
    /// Whether it is to be highly available.
    pub high_availability: bool,
}

/// Records where the instance's app answers (read from the node after a
/// create, a start or a migration). A change re-routes its tenants: the
/// `instances_routing` trigger queues a `routing.sync` in this transaction.
///
/// # Errors
/// [`StoreError`]; `NotFound` for an unknown instance.
pub async fn set_instance_upstream(
    conn: &mut AsyncPgConnection,
    id: Uuid,
    host: &str,
    port: u16,
) -> Result<Instance, StoreError> {
    Ok(diesel::update(instances::table.find(id))
        .set((
            instances::upstream_host.eq(host),
            instances::upstream_port.eq(i32::from(port)),
            instances::upstream_read_at.eq(diesel::dsl::now),
            instances::updated_at.eq(diesel::dsl::now),
        ))
        .returning(Instance::as_returning())
        .get_result(conn)
        .await?)
}

/// Sets what an instance reserves on its node (a plan change resized it)
/// and whether it is highly available. Lock the node first
/// ([`lock`]) when the reservation grows, so placement stays true.
///
/// # Errors
/// [`StoreError`]; `NotFound` for an unknown instance.
pub async fn set_instance_reservation(
    conn: &mut AsyncPgConnection,
    id: Uuid,
    cpu_cores: i32,
    memory_mib: i32,
    storage_gib: i32,
    high_availability: bool,
) -> Result<Instance, StoreError> {
    Ok(diesel::update(instances::table.find(id))
        .set((
            instances::cpu_cores.eq(cpu_cores),
            instances::memory_mib.eq(memory_mib),
            instances::storage_gib.eq(storage_gib),
            instances::high_availability.eq(high_availability),
            instances::updated_at.eq(diesel::dsl::now),
        ))
        .returning(Instance::as_returning())
        .get_result(conn)
        .await?)
}

/// Inserts an instance in `creating` state (before its container exists).
///
/// # Errors
/// [`StoreError`].
pub async fn insert_instance(
    conn: &mut AsyncPgConnection,
    id: Uuid,
    node_id: Uuid,
    product_id: Uuid,
    kind: &str,
    reservation: &Reservation,
) -> Result<Instance, StoreError> {
    Ok(diesel::insert_into(instances::table)
        .values((
            instances::host_port.eq(reservation.host_port),
            instances::high_availability.eq(reservation.high_availability),
            instances::id.eq(id),
            instances::node_id.eq(node_id),
            instances::product_id.eq(product_id),
            instances::kind.eq(kind),
            instances::cpu_cores.eq(reservation.cpu_cores),
            instances::memory_mib.eq(reservation.memory_mib),
            instances::storage_gib.eq(reservation.storage_gib),
            instances::hostname.eq(&reservation.hostname),
        ))
        .returning(Instance::as_returning())
        .get_result(conn)
        .await?)
}

/// One instance.
///
/// # Errors
/// [`StoreError::NotFound`].
pub async fn get_instance(conn: &mut AsyncPgConnection, id: Uuid) -> Result<Instance, StoreError> {
    Ok(instances::table
        .find(id)
        .select(Instance::as_select())
        .first(conn)
        .await?)
}

/// Records the driver's id of a created instance and marks it `running`.
///
/// # Errors
/// [`StoreError`].
pub async fn mark_instance_created(
    conn: &mut AsyncPgConnection,
    id: Uuid,
    external_id: &str,
) -> Result<Instance, StoreError> {
    Ok(diesel::update(instances::table.find(id))
        .set((
            instances::external_id.eq(external_id),
            instances::status.eq("running"),
            instances::updated_at.eq(diesel::dsl::now),
        ))
        .returning(Instance::as_returning())
        .get_result(conn)
        .await?)
}
