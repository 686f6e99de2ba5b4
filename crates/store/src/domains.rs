//! Custom domains: a tenant's own host names, `pending` until the DNS TXT
//! record proves the tenant controls the name, then `verified` and routed.
//! A host name belongs to one tenant at most (`tenant_domains_hostname_key`).

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use uuid::Uuid;

use crate::{StoreError, schema::tenant_domains};

/// `tenant_domains.status` of a domain whose TXT record was not found yet.
pub const PENDING: &str = "pending";
/// `tenant_domains.status` of a domain proven by its TXT record: routed.
pub const VERIFIED: &str = "verified";

/// A custom domain row.
#[derive(Debug, Clone, PartialEq, Eq, Queryable, Selectable)]
#[diesel(table_name = tenant_domains, check_for_backend(diesel::pg::Pg))]
pub struct TenantDomain {
    /// Id (UUIDv7).
    pub id: Uuid,
    /// The tenant.
    pub tenant_id: Uuid,
    /// The host name, lowercase ASCII (IDNA A-labels).
    pub hostname: String,
    /// `pending` or `verified`.
    pub status: String,
    /// What the TXT record must hold.
    pub verification_token: String,
    /// When the record was first found.
    pub verified_at: Option<DateTime<Utc>>,
    /// Last lookup.
    pub last_checked_at: Option<DateTime<Utc>>,
    /// Why the last lookup did not verify it.
    pub last_error: Option<String>,
    /// Created.
    pub created_at: DateTime<Utc>,
    /// Last changed.
    pub updated_at: DateTime<Utc>,
}

/// Adds a `pending` domain.
///
/// # Errors
/// [`StoreError::Conflict`] with `tenant_domains_hostname_key` when any
/// tenant holds the host name already.
pub async fn insert(
    conn: &mut AsyncPgConnection,
    tenant_id: Uuid,
    hostname: &str,
    token: &str,
) -> Result<TenantDomain, StoreError> {
    Ok(diesel::insert_into(tenant_domains::table)
        .values((
            tenant_domains::id.eq(Uuid::now_v7()),
            tenant_domains::tenant_id.eq(tenant_id),
            tenant_domains::hostname.eq(hostname),
            tenant_domains::verification_token.eq(token),
        ))
        .returning(TenantDomain::as_returning())
        .get_result(conn)
        .await?)
}

/// Adds a `pending` domain unless the tenant holds `limit` domains
/// already: `Ok(None)` then. The tenant's row is locked (`FOR NO KEY
/// UPDATE`, which foreign keys do not wait for) so concurrent additions
/// for one tenant count one after the other.
///
/// # Errors
/// [`StoreError::NotFound`] when the tenant is gone;
/// [`StoreError::Conflict`] with `tenant_domains_hostname_key` when any
/// tenant holds the host name already.
pub async fn insert_within_limit(
    conn: &mut AsyncPgConnection,
    tenant_id: Uuid,
    hostname: &str,
    token: &str,
    limit: u32,
) -> Result<Option<TenantDomain>, StoreError> {
    use crate::schema::tenants;
    tenants::table
        .find(tenant_id)
        .select(tenants::id)
        .for_no_key_update()
        .first::<Uuid>(conn)
        .await?;
    let held: i64 = tenant_domains::table
        .filter(tenant_domains::tenant_id.eq(tenant_id))
        .count()
        .get_result(conn)
        .await?;
    if held >= i64::from(limit) {
        return Ok(None);
    }
    insert(conn, tenant_id, hostname, token).await.map(Some)
}

/// The tenant's domains, oldest first.
///
/// # Errors
/// [`StoreError`].
pub async fn list(
    conn: &mut AsyncPgConnection,
    tenant_id: Uuid,
) -> Result<Vec<TenantDomain>, StoreError> {
    Ok(tenant_domains::table
        .filter(tenant_domains::tenant_id.eq(tenant_id))
        .order(tenant_domains::id)
        .select(TenantDomain::as_select())
        .load(conn)
        .await?)
}

/// One of the tenant's domains.
///
/// # Errors
/// [`StoreError::NotFound`] when the tenant has no such domain.
pub async fn get(
    conn: &mut AsyncPgConnection,
    tenant_id: Uuid,
    id: Uuid,
) -> Result<TenantDomain, StoreError> {
    Ok(tenant_domains::table
        .filter(tenant_domains::tenant_id.eq(tenant_id))
        .filter(tenant_domains::id.eq(id))
        .select(TenantDomain::as_select())
        .first(conn)
        .await?)
}

/// A domain by id, whichever tenant holds it (for its verification job).
///
/// # Errors
/// [`StoreError::NotFound`] when it is gone.
pub async fn find(conn: &mut AsyncPgConnection, id: Uuid) -> Result<TenantDomain, StoreError> {
    Ok(tenant_domains::table
        .find(id)
        .select(TenantDomain::as_select())
        .first(conn)
        .await?)
}

/// A domain by id, its row locked until the transaction ends (so two
/// checks of one domain record one after the other).
///
/// # Errors
/// [`StoreError::NotFound`] when it is gone.
pub async fn lock(conn: &mut AsyncPgConnection, id: Uuid) -> Result<TenantDomain, StoreError> {
    Ok(tenant_domains::table
        .find(id)
        .select(TenantDomain::as_select())
        .for_update()
        .first(conn)
        .await?)
}

/// `pending` domains due for another lookup: created less than `max_age`
/// ago and not checked in the last `checked_within` (or never), as
/// `(id, tenant_id)`, the least recently checked first, at most `limit`.
///
/// # Errors
/// [`StoreError`].
pub async fn due_for_check(
    conn: &mut AsyncPgConnection,
    checked_within: std::time::Duration,
    max_age: std::time::Duration,
    limit: i64,
) -> Result<Vec<(Uuid, Uuid)>, StoreError> {
    let now = Utc::now();
    let ago = |d: std::time::Duration| {
        chrono::TimeDelta::from_std(d)
            .ok()
            .and_then(|d| now.checked_sub_signed(d))
            .unwrap_or(DateTime::<Utc>::MIN_UTC)
    };
    Ok(tenant_domains::table
        .filter(tenant_domains::status.eq(PENDING))
        .filter(tenant_domains::created_at.gt(ago(max_age)))
        .filter(
            tenant_domains::last_checked_at
                .is_null()
                .or(tenant_domains::last_checked_at.lt(ago(checked_within))),
        )
        .order((
            tenant_domains::last_checked_at.asc().nulls_first(),
            tenant_domains::id,
        ))
        .select((tenant_domains::id, tenant_domains::tenant_id))
        .limit(limit)
        .load(conn)
        .await?)
}

/// Removes one of the tenant's domains (its route goes in this
/// transaction).
///
/// # Errors
/// [`StoreError::NotFound`] when the tenant has no such domain.
pub async fn delete(
    conn: &mut AsyncPgConnection,
    tenant_id: Uuid,
    id: Uuid,
) -> Result<TenantDomain, StoreError> {
    Ok(diesel::delete(
        tenant_domains::table
            .filter(tenant_domains::tenant_id.eq(tenant_id))
            .filter(tenant_domains::id.eq(id)),
    )
    .returning(TenantDomain::as_returning())
    .get_result(conn)
    .await?)
}

/// Records a lookup: `verified` (routed from this commit) when `error` is
/// `None`, else still `pending` with the reason. A verified domain stays
/// verified.
///
/// # Errors
/// [`StoreError::NotFound`] when the domain is gone.
pub async fn record_check(
    conn: &mut AsyncPgConnection,
    id: Uuid,
    error: Option<&str>,
) -> Result<TenantDomain, StoreError> {
    let q = diesel::update(tenant_domains::table.find(id));
    Ok(match error {
        None => {
            q.set((
                tenant_domains::status.eq(VERIFIED),
                tenant_domains::verified_at.eq(diesel::dsl::now),
                tenant_domains::last_checked_at.eq(diesel::dsl::now),
                tenant_domains::last_error.eq(None::<String>),
                tenant_domains::updated_at.eq(diesel::dsl::now),
            ))
            .returning(TenantDomain::as_returning())
            .get_result(conn)
            .await?
        }
        Some(e) => {
            q.set((
                tenant_domains::last_checked_at.eq(diesel::dsl::now),
                tenant_domains::last_error.eq(e),
                tenant_domains::updated_at.eq(diesel::dsl::now),
            ))
            .returning(TenantDomain::as_returning())
            .get_result(conn)
            .await?
        }
    })
}

/// Whether `hostname` is a verified domain of a tenant that has a route
/// (for Caddy's on-demand TLS `ask`).
///
/// # Errors
/// [`StoreError`].
pub async fn is_verified_and_routed(
    conn: &mut AsyncPgConnection,
    hostname: &str,
) -> Result<bool, StoreError> {
    use crate::schema::tenants;
    let n: i64 = tenant_domains::table
        .inner_join(tenants::table)
        .filter(tenant_domains::hostname.eq(hostname))
        .filter(tenant_domains::status.eq(VERIFIED))
        .filter(tenants::status.ne_all(["deleted", "failed", "pending_payment"]))
        .count()
        .get_result(conn)
        .await?;
    Ok(n > 0)
}

/// Whether a tenant with `slug` exists and is not deleted.
///
/// # Errors
/// [`StoreError`].
pub async fn tenant_slug_live(
    conn: &mut AsyncPgConnection,
    slug: &str,
) -> Result<bool, StoreError> {
    use crate::schema::tenants;
    let n: i64 = tenants::table
        .filter(tenants::slug.eq(slug))
        .filter(tenants::status.ne_all(["deleted", "failed", "pending_payment"]))
        .count()
        .get_result(conn)
        .await?;
    Ok(n > 0)
}
