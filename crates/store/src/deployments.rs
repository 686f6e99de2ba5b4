//! Deployments: where a tenant runs. A deployment names the instance
//! (shared or dedicated container), the node, the host port of a dedicated
//! instance, and the tenant's own database. `provisioning` while being
//! built, `active` while it serves the tenant (one per tenant: its route),
//! `retired` once replaced or removed (its port is free again).
//!
//! Host ports are allocated in the same transaction as the deployment row,
//! under the unique index `deployments_node_port_live` on (node, port): two
//! concurrent allocations of one port cannot both commit.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use uuid::Uuid;

use crate::{
    StoreError,
    nodes::{Instance, Node},
    schema::{deployments, instances, nodes, provisioning_events},
};

/// A deployment row.
#[derive(Debug, Clone, PartialEq, Queryable, Selectable, Identifiable)]
#[diesel(table_name = deployments, check_for_backend(diesel::pg::Pg))]
pub struct Deployment {
    /// Id (UUIDv7).
    pub id: Uuid,
    /// The tenant.
    pub tenant_id: Uuid,
    /// The instance (null once retired and the instance is gone).
    pub instance_id: Option<Uuid>,
    /// The node (null once retired and the node is gone).
    pub node_id: Option<Uuid>,
    /// `shared` or `dedicated`.
    pub kind: String,
    /// Host port (dedicated only).
    pub host_port: Option<i32>,
    /// The tenant's database.
    pub database_name: String,
    /// Its role.
    pub database_role: String,
    /// The role's password, sealed.
    pub database_password: Vec<u8>,
    /// Key the password is sealed with.
    pub database_password_key_id: String,
    /// The tenant's URL, `https://{slug}.{base domain}`.
    pub url: String,
    /// `provisioning`, `active`, `retired`.
    pub status: String,
    /// Created.
    pub created_at: DateTime<Utc>,
    /// Last changed.
    pub updated_at: DateTime<Utc>,
}

/// A deployment to insert.
#[derive(Debug, Clone, Insertable)]
#[diesel(table_name = deployments)]
pub struct NewDeployment {
    /// Id.
    pub id: Uuid,
    /// Tenant.
    pub tenant_id: Uuid,
    /// Instance.
    pub instance_id: Option<Uuid>,
    /// Node.
    pub node_id: Option<Uuid>,
    /// `shared` or `dedicated`.
    pub kind: String,
    /// Host port (dedicated).
    pub host_port: Option<i32>,
    /// Database name.
    pub database_name: String,
    /// Database role.
    pub database_role: String,
    /// Sealed password.
    pub database_password: Vec<u8>,
    /// Its key id.
    pub database_password_key_id: String,
    /// URL.
    pub url: String,
}

/// Inserts a deployment in `provisioning`.
///
/// # Errors
/// [`StoreError::Conflict`] with `deployments_node_port_live` when the port
/// was taken meanwhile, `deployments_one_building` when the tenant already
/// has one being built.
pub async fn insert(
    conn: &mut AsyncPgConnection,
    d: &NewDeployment,
) -> Result<Deployment, StoreError> {
    Ok(diesel::insert_into(deployments::table)
        .values(d)
        .returning(Deployment::as_returning())
        .get_result(conn)
        .await?)
}

/// The tenant's deployment in `status` (`provisioning` or `active`: at most
/// one of each).
///
/// # Errors
/// [`StoreError`].
pub async fn find(
    conn: &mut AsyncPgConnection,
    tenant_id: Uuid,
    status: &str,
) -> Result<Option<Deployment>, StoreError> {
    Ok(deployments::table
        .filter(deployments::tenant_id.eq(tenant_id))
        .filter(deployments::status.eq(status))
        .select(Deployment::as_select())
        .first(conn)
        .await
        .optional()?)
}

/// Every deployment of a tenant, oldest first.
///
/// # Errors
/// [`StoreError`].
pub async fn history(
    conn: &mut AsyncPgConnection,
    tenant_id: Uuid,
) -> Result<Vec<Deployment>, StoreError> {
    Ok(deployments::table
        .filter(deployments::tenant_id.eq(tenant_id))
        .select(Deployment::as_select())
        .order(deployments::id)
        .load(conn)
        .await?)
}

/// Sets a deployment's status.
///
/// # Errors
/// [`StoreError`].
pub async fn set_status(
    conn: &mut AsyncPgConnection,
    id: Uuid,
    status: &str,
) -> Result<Deployment, StoreError> {
    Ok(diesel::update(deployments::table.find(id))
        .set((
            deployments::status.eq(status),
            deployments::updated_at.eq(diesel::dsl::now),
        ))
        .returning(Deployment::as_returning())
        .get_result(conn)
        .await?)
}

/// The lowest port of `start..=end` that no live deployment (a dedicated
/// instance's port) and no live shared instance publishes on `node_id`.
/// Call it under the placement lock: the two tables' unique indexes each
/// guard one of them.
///
/// # Errors
/// [`StoreError`].
pub async fn free_port(
    conn: &mut AsyncPgConnection,
    node_id: Uuid,
    start: i32,
    end: i32,
) -> Result<Option<i32>, StoreError> {
    #[derive(QueryableByName)]
    struct Port {
        #[diesel(sql_type = diesel::sql_types::Integer)]
        p: i32,
    }
    let row: Option<Port> = diesel::sql_query(
        "SELECT p FROM generate_series($2::int, $3::int) AS p \
          WHERE NOT EXISTS (SELECT 1 FROM deployments d \
                             WHERE d.node_id = $1 AND d.host_port = p AND d.status <> 'retired') \
            AND NOT EXISTS (SELECT 1 FROM instances i \
                             WHERE i.node_id = $1 AND i.host_port = p \
                               AND i.status NOT IN ('destroying', 'destroyed')) \
          ORDER BY p LIMIT 1",
    )
    .bind::<diesel::sql_types::Uuid, _>(node_id)
    .bind::<diesel::sql_types::Integer, _>(start)
    .bind::<diesel::sql_types::Integer, _>(end)
    .get_result(conn)
    .await
    .optional()?;
    Ok(row.map(|r| r.p))
}

/// Per node: cores, MiB, GiB reserved and live instances.
type NodeSums = (Uuid, Option<i64>, Option<i64>, Option<i64>, i64);

/// A node with what its live instances reserve.
#[derive(Debug, Clone, PartialEq)]
pub struct NodeUsage {
    /// The node.
    pub node: Node,
    /// CPU cores reserved.
    pub cpu_cores: i64,
    /// Memory reserved, MiB.
    pub memory_mib: i64,
    /// Storage reserved, GiB.
    pub storage_gib: i64,
    /// Live instances.
    pub instances: i64,
}

/// Every node of `kind` with its reservations (instances not being or
/// already destroyed), in id order. Lock the rows of the chosen node
/// ([`crate::nodes::lock`]) before reserving on it.
///
/// # Errors
/// [`StoreError`].
pub async fn node_usage(
    conn: &mut AsyncPgConnection,
    kind: &str,
) -> Result<Vec<NodeUsage>, StoreError> {
    let nodes: Vec<Node> = nodes::table
        .filter(nodes::kind.eq(kind))
        .select(Node::as_select())
        .order(nodes::id)
        .load(conn)
        .await?;
    let sums: Vec<NodeSums> = instances::table
        .filter(instances::status.ne_all(["destroying", "destroyed"]))
        .group_by(instances::node_id)
        .select((
            instances::node_id,
            diesel::dsl::sum(instances::cpu_cores),
            diesel::dsl::sum(instances::memory_mib),
            diesel::dsl::sum(instances::storage_gib),
            diesel::dsl::count_star(),
        ))
        .load(conn)
        .await?;
    Ok(nodes
        .into_iter()
        .map(|node| {
            let s = sums.iter().find(|s| s.0 == node.id);
            NodeUsage {
                cpu_cores: s.and_then(|s| s.1).unwrap_or(0),
                memory_mib: s.and_then(|s| s.2).unwrap_or(0),
                storage_gib: s.and_then(|s| s.3).unwrap_or(0),
                instances: s.map_or(0, |s| s.4),
                node,
            }
        })
        .collect())
}

/// A product's shared instance with the number of tenants it serves.
#[derive(Debug, Clone, PartialEq)]
pub struct SharedInstance {
    /// The instance.
    pub instance: Instance,
    /// Live deployments on it.
    pub tenants: i64,
}

/// The product's shared instances (not being destroyed) with their tenant
/// counts, in id order.
///
/// # Errors
/// [`StoreError`].
pub async fn shared_instances(
    conn: &mut AsyncPgConnection,
    product_id: Uuid,
) -> Result<Vec<SharedInstance>, StoreError> {
    let list: Vec<Instance> = instances::table
        .filter(instances::product_id.eq(product_id))
        .filter(instances::kind.eq("shared"))
        .filter(instances::status.ne("destroying"))
        .select(Instance::as_select())
        .order(instances::id)
        .load(conn)
        .await?;
    let mut out = Vec::with_capacity(list.len());
    for instance in list {
        let tenants = live_on(conn, instance.id).await?;
        out.push(SharedInstance { instance, tenants });
    }
    Ok(out)
}

/// Live (not retired) deployments on instance `id`.
///
/// # Errors
/// [`StoreError`].
pub async fn live_on(conn: &mut AsyncPgConnection, id: Uuid) -> Result<i64, StoreError> {
    Ok(deployments::table
        .filter(deployments::instance_id.eq(id))
        .filter(deployments::status.ne("retired"))
        .count()
        .get_result(conn)
        .await?)
}

/// Sets an instance's status.
///
/// # Errors
/// [`StoreError`].
pub async fn set_instance_status(
    conn: &mut AsyncPgConnection,
    id: Uuid,
    status: &str,
) -> Result<(), StoreError> {
    diesel::update(instances::table.find(id))
        .set((
            instances::status.eq(status),
            instances::updated_at.eq(diesel::dsl::now),
        ))
        .execute(conn)
        .await?;
    Ok(())
}

/// Deletes an instance row (its container is gone); retired deployments
/// keep their history with the instance unset.
///
/// # Errors
/// [`StoreError`].
pub async fn delete_instance(conn: &mut AsyncPgConnection, id: Uuid) -> Result<(), StoreError> {
    diesel::delete(instances::table.find(id))
        .execute(conn)
        .await?;
    Ok(())
}

/// Records that a tenant's provisioning gave up (tenant `failed`), for
/// billing: a paid subscription whose service then starts late is credited
/// for the time it paid for without service.
///
/// # Errors
/// [`StoreError`].
pub async fn record_provisioning_failed(
    conn: &mut AsyncPgConnection,
    tenant_id: Uuid,
    detail: serde_json::Value,
) -> Result<(), StoreError> {
    diesel::insert_into(provisioning_events::table)
        .values((
            provisioning_events::id.eq(Uuid::now_v7()),
            provisioning_events::kind.eq("provisioning_failed"),
            provisioning_events::tenant_id.eq(tenant_id),
            provisioning_events::detail.eq(detail),
        ))
        .execute(conn)
        .await?;
    Ok(())
}

/// Consumes a tenant's `provisioning_failed` events (billing has acted on
/// them); returns how many were waiting.
///
/// # Errors
/// [`StoreError`].
pub async fn consume_provisioning_failed(
    conn: &mut AsyncPgConnection,
    tenant_id: Uuid,
) -> Result<usize, StoreError> {
    Ok(diesel::update(
        provisioning_events::table
            .filter(provisioning_events::kind.eq("provisioning_failed"))
            .filter(provisioning_events::tenant_id.eq(tenant_id))
            .filter(provisioning_events::consumed_at.is_null()),
    )
    .set(provisioning_events::consumed_at.eq(diesel::dsl::now))
    .execute(conn)
    .await?)
}

/// Records that a migration failed, for billing to credit (once per plan
/// change).
///
/// # Errors
/// [`StoreError`].
pub async fn record_migration_failed(
    conn: &mut AsyncPgConnection,
    tenant_id: Uuid,
    plan_change_id: Option<Uuid>,
    detail: serde_json::Value,
) -> Result<(), StoreError> {
    diesel::insert_into(provisioning_events::table)
        .values((
            provisioning_events::id.eq(Uuid::now_v7()),
            provisioning_events::kind.eq("migration_failed"),
            provisioning_events::tenant_id.eq(tenant_id),
            provisioning_events::plan_change_id.eq(plan_change_id),
            provisioning_events::detail.eq(detail),
        ))
        .on_conflict_do_nothing()
        .execute(conn)
        .await?;
    Ok(())
}
