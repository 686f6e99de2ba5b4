//! What the route table is computed from, and what the last push to the
//! reverse proxy did.
//!
//! The table itself is `tenantry_domain::routing`: here are its inputs
//! (each tenant that may have a route, its active deployment's upstream and
//! its verified custom domains) read in one statement, so one snapshot gives
//! one consistent table. Every change to those inputs queues a
//! `routing.sync` job in the changing transaction (the triggers of migration
//! `000012_serving`), so a deployment switch and the request to re-route are
//! one commit.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel::sql_types::{Array, Integer, Nullable, Text};
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use tenantry_domain::{
    DeploymentKind, TenantStatus,
    routing::{RouteSource, UpstreamAddr},
};

use crate::{StoreError, schema::routing_state};

/// Class of the advisory lock one push holds from reading the table to the
/// proxy's answer, so two pushes never cross (an older table never lands
/// after a newer one). "rout".
pub const ROUTING_LOCK_CLASS: i32 = 0x726f_7574;

#[derive(QueryableByName)]
struct SourceRow {
    #[diesel(sql_type = Text)]
    slug: String,
    #[diesel(sql_type = Text)]
    status: String,
    #[diesel(sql_type = Text)]
    plan: String,
    #[diesel(sql_type = Nullable<Text>)]
    deployment: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    upstream_host: Option<String>,
    #[diesel(sql_type = Nullable<Integer>)]
    upstream_port: Option<i32>,
    #[diesel(sql_type = Array<Text>)]
    domains: Vec<String>,
}

/// Every tenant that may have a route (`active`, `migrating`, `paused`,
/// `suspended`, `deprovisioning`), with its active deployment's kind and
/// upstream and its verified custom domains, by slug.
///
/// # Errors
/// [`StoreError`].
pub async fn sources(conn: &mut AsyncPgConnection) -> Result<Vec<RouteSource>, StoreError> {
    let rows: Vec<SourceRow> = diesel::sql_query(
        "SELECT t.slug, t.status, p.code AS plan, d.kind AS deployment, i.upstream_host, i.upstream_port, \
                COALESCE((SELECT array_agg(td.hostname ORDER BY td.hostname) FROM tenant_domains td \
                           WHERE td.tenant_id = t.id AND td.status = 'verified'), '{}') AS domains \
           FROM tenants t \
           JOIN plans p ON p.id = t.plan_id \
           LEFT JOIN deployments d ON d.tenant_id = t.id AND d.status = 'active' \
           LEFT JOIN instances i ON i.id = d.instance_id \
          WHERE t.status IN ('active', 'migrating', 'paused', 'suspended', 'deprovisioning') \
          ORDER BY t.slug",
    )
    .load(conn)
    .await?;
    Ok(rows
        .into_iter()
        .filter_map(|r| {
            let status: TenantStatus = r.status.parse().ok()?;
            let upstream = match (r.upstream_host, r.upstream_port) {
                (Some(host), Some(port)) => u16::try_from(port)
                    .ok()
                    .map(|port| UpstreamAddr { host, port }),
                _ => None,
            };
            Some(RouteSource {
                slug: r.slug,
                status,
                plan: r.plan,
                deployment: r.deployment.and_then(|d| d.parse::<DeploymentKind>().ok()),
                upstream,
                custom_domains: r.domains,
            })
        })
        .collect())
}

/// What the last push to the reverse proxy did.
#[derive(Debug, Clone, PartialEq, Eq, Queryable, Selectable)]
#[diesel(table_name = routing_state, check_for_backend(diesel::pg::Pg))]
pub struct RoutingState {
    /// When the proxy last took the table.
    pub pushed_at: Option<DateTime<Utc>>,
    /// Hash (SHA-256, hex) of the configuration it took.
    pub pushed_hash: Option<String>,
    /// Routes in it.
    pub routes: i32,
    /// Failed pushes since the last good one.
    pub failures: i32,
    /// Why the last push failed.
    pub last_error: Option<String>,
    /// Last changed.
    pub updated_at: DateTime<Utc>,
}

/// The routing state row.
///
/// # Errors
/// [`StoreError`].
pub async fn state(conn: &mut AsyncPgConnection) -> Result<RoutingState, StoreError> {
    Ok(routing_state::table
        .select(RoutingState::as_select())
        .first(conn)
        .await?)
}

/// Records a push the proxy took: failures reset.
///
/// # Errors
/// [`StoreError`].
pub async fn record_pushed(
    conn: &mut AsyncPgConnection,
    hash: &str,
    routes: usize,
) -> Result<(), StoreError> {
    diesel::update(routing_state::table)
        .set((
            routing_state::pushed_at.eq(diesel::dsl::now),
            routing_state::pushed_hash.eq(hash),
            routing_state::routes.eq(i32::try_from(routes).unwrap_or(i32::MAX)),
            routing_state::failures.eq(0),
            routing_state::last_error.eq(None::<String>),
            routing_state::updated_at.eq(diesel::dsl::now),
        ))
        .execute(conn)
        .await?;
    Ok(())
}

/// Records a failed push; returns the failures since the last good one.
///
/// # Errors
/// [`StoreError`].
pub async fn record_failure(conn: &mut AsyncPgConnection, error: &str) -> Result<i32, StoreError> {
    Ok(diesel::update(routing_state::table)
        .set((
            routing_state::failures.eq(routing_state::failures + 1),
            routing_state::last_error.eq(error),
            routing_state::updated_at.eq(diesel::dsl::now),
        ))
        .returning(routing_state::failures)
        .get_result(conn)
        .await?)
}
