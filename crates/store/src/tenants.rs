//! Tenants, their subscription and invitations.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use uuid::Uuid;

use tenantry_domain::{InvalidTransition, SubscriptionStatus, TenantStatus};

use crate::{
    Page, PageRequest, StoreError,
    parsed::Parsed,
    schema::{invitations, plans, products, subscriptions, tenants, users},
};

/// A tenant row.
#[derive(Debug, Clone, PartialEq, Queryable, Selectable, Identifiable, Insertable)]
#[diesel(table_name = tenants, check_for_backend(diesel::pg::Pg))]
pub struct Tenant {
    /// Id (UUIDv7).
    pub id: Uuid,
    /// Slug, also the subdomain.
    pub slug: String,
    /// Company name.
    pub company_name: String,
    /// Product.
    pub product_id: Uuid,
    /// Current plan.
    pub plan_id: Uuid,
    /// `shared`, `dedicated` or `dedicated_ha`.
    pub deployment: String,
    /// Lifecycle status.
    #[diesel(deserialize_as = Parsed<TenantStatus>, serialize_as = String)]
    pub status: TenantStatus,
    /// Why it is in that status (a failure, a suspension…).
    pub status_reason: Option<String>,
    /// When it first became active.
    pub provisioned_at: Option<DateTime<Utc>>,
    /// Bumped by every change; the ETag.
    pub version: i32,
    /// Created.
    pub created_at: DateTime<Utc>,
    /// Last changed.
    pub updated_at: DateTime<Utc>,
}

/// A tenant with its product slug and plan code, as the API shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct TenantView {
    /// The tenant.
    pub tenant: Tenant,
    /// Its product's slug.
    pub product_slug: String,
    /// Its plan's code.
    pub plan_code: String,
}

/// A subscription row.
#[derive(Debug, Clone, PartialEq, Queryable, Selectable, Identifiable, Insertable)]
#[diesel(table_name = subscriptions, check_for_backend(diesel::pg::Pg))]
pub struct Subscription {
    /// Id.
    pub id: Uuid,
    /// Tenant.
    pub tenant_id: Uuid,
    /// Plan.
    pub plan_id: Uuid,
    /// Stripe's subscription status.
    #[diesel(deserialize_as = Parsed<SubscriptionStatus>, serialize_as = String)]
    pub status: SubscriptionStatus,
    /// Start of the current billing period.
    pub current_period_start: Option<DateTime<Utc>>,
    /// End of the current billing period (exclusive); `None` for lifetime.
    pub current_period_end: Option<DateTime<Utc>>,
    /// Payment provider (`none`, `stripe`).
    pub provider: String,
    /// The provider's customer id.
    pub provider_customer_id: Option<String>,
    /// The provider's subscription id.
    pub provider_subscription_id: Option<String>,
    /// Created.
    pub created_at: DateTime<Utc>,
    /// Last changed.
    pub updated_at: DateTime<Utc>,
    /// The anchor billing periods count from.
    pub billing_anchor: Option<DateTime<Utc>>,
    /// Whether the provider may charge the customer without them (a saved card).
    pub saved_payment_method: bool,
    /// Since when a renewal is unpaid.
    pub past_due_since: Option<DateTime<Utc>>,
    /// Counts the changes to what the provider should bill (bumped with
    /// every plan change applied, scheduled or canceled).
    pub price_version: i64,
    /// The last `price_version` the provider was seen to match.
    pub price_synced_version: i64,
}

/// Inserts a tenant and its subscription.
///
/// # Errors
/// [`StoreError::Conflict`] (`tenants_slug_key`) when the slug is taken.
pub async fn insert_tenant(
    conn: &mut AsyncPgConnection,
    tenant: &Tenant,
    subscription: &Subscription,
) -> Result<(), StoreError> {
    diesel::insert_into(tenants::table)
        .values(tenant.clone())
        .execute(conn)
        .await?;
    diesel::insert_into(subscriptions::table)
        .values(subscription.clone())
        .execute(conn)
        .await?;
    Ok(())
}

/// Which tenants a caller may see: all (staff) or exactly one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Visibility {
    /// Every tenant.
    All,
    /// Only this tenant (tenant users, tenant-bound tokens).
    Only(Uuid),
}

/// Finds a tenant by id or slug, as visible to the caller.
///
/// # Errors
/// [`StoreError::NotFound`] when there is none, or the caller may not see it.
pub async fn find_tenant(
    conn: &mut AsyncPgConnection,
    id_or_slug: &str,
    visibility: Visibility,
) -> Result<TenantView, StoreError> {
    let mut q = tenants::table
        .inner_join(products::table)
        .inner_join(plans::table)
        .select((Tenant::as_select(), products::slug, plans::code))
        .into_boxed();
    q = match Uuid::parse_str(id_or_slug) {
        Ok(id) => q.filter(tenants::id.eq(id)),
        Err(_) => q.filter(tenants::slug.eq(id_or_slug.to_owned())),
    };
    if let Visibility::Only(t) = visibility {
        q = q.filter(tenants::id.eq(t));
    }
    let (tenant, product_slug, plan_code) = q.first::<(Tenant, String, String)>(conn).await?;
    Ok(TenantView {
        tenant,
        product_slug,
        plan_code,
    })
}

/// Locks a tenant row for a change in the current transaction.
///
/// # Errors
/// [`StoreError::NotFound`].
pub async fn lock_tenant(conn: &mut AsyncPgConnection, id: Uuid) -> Result<Tenant, StoreError> {
    Ok(tenants::table
        .find(id)
        .select(Tenant::as_select())
        .for_no_key_update()
        .first(conn)
        .await?)
}

/// Filters of the tenant list.
#[derive(Debug, Clone, Default)]
pub struct TenantFilter {
    /// Only this status.
    pub status: Option<String>,
    /// Only this product (slug).
    pub product: Option<String>,
    /// Only this plan (code).
    pub plan: Option<String>,
    /// Substring of the slug or company name, case-insensitive.
    pub q: Option<String>,
}

/// Tenants matching `filter` visible to the caller, oldest first, one page.
///
/// # Errors
/// [`StoreError`].
pub async fn list_tenants(
    conn: &mut AsyncPgConnection,
    filter: &TenantFilter,
    visibility: Visibility,
    page: PageRequest,
) -> Result<Page<TenantView>, StoreError> {
    let mut q = tenants::table
        .inner_join(products::table)
        .inner_join(plans::table)
        .select((Tenant::as_select(), products::slug, plans::code))
        .order(tenants::id)
        .limit(page.fetch())
        .into_boxed();
    if let Visibility::Only(t) = visibility {
        q = q.filter(tenants::id.eq(t));
    }
    if let Some(s) = &filter.status {
        q = q.filter(tenants::status.eq(s.clone()));
    }
    if let Some(p) = &filter.product {
        q = q.filter(products::slug.eq(p.clone()));
    }
    if let Some(p) = &filter.plan {
        q = q.filter(plans::code.eq(p.clone()));
    }
    if let Some(text) = &filter.q {
        let pattern = format!(
            "%{}%",
            text.replace('\\', "\\\\")
                .replace('%', "\\%")
                .replace('_', "\\_")
        );
        q = q.filter(
            tenants::slug
                .ilike(pattern.clone())
                .or(tenants::company_name.ilike(pattern)),
        );
    }
    if let Some(after) = page.after {
        q = q.filter(tenants::id.gt(after));
    }
    let rows: Vec<(Tenant, String, String)> = q.load(conn).await?;
    let rows = rows
        .into_iter()
        .map(|(tenant, product_slug, plan_code)| TenantView {
            tenant,
            product_slug,
            plan_code,
        })
        .collect();
    Ok(Page::from_overfetch(rows, page, |v| v.tenant.id))
}

/// Renames a tenant's company when its version is still `expected_version`.
/// Returns `None` when the version moved on (a concurrent change).
///
/// # Errors
/// [`StoreError`].
pub async fn update_company_name(
    conn: &mut AsyncPgConnection,
    id: Uuid,
    company_name: &str,
    expected_version: Option<i32>,
) -> Result<Option<Tenant>, StoreError> {
    let mut q = diesel::update(tenants::table)
        .filter(tenants::id.eq(id))
        .into_boxed();
    if let Some(v) = expected_version {
        q = q.filter(tenants::version.eq(v));
    }
    Ok(q.set((
        tenants::company_name.eq(company_name),
        tenants::version.eq(tenants::version + 1),
        tenants::updated_at.eq(diesel::dsl::now),
    ))
    .returning(Tenant::as_returning())
    .get_result(conn)
    .await
    .optional()?)
}

/// Why a tenant's status did not change.
#[derive(Debug, thiserror::Error)]
pub enum TransitionError {
    /// `domain`'s lifecycle does not allow the move.
    #[error(transparent)]
    Invalid(#[from] InvalidTransition),
    /// The database failed (`NotFound` for no such tenant).
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<diesel::result::Error> for TransitionError {
    fn from(e: diesel::result::Error) -> Self {
        Self::Store(e.into())
    }
}

/// Moves tenant `id` to `to` with `reason` (`None` clears it): locks the
/// row, checks the move against `domain`'s lifecycle
/// ([`TenantStatus::transition`]), and writes it. The one way Rust code
/// changes a tenant's status; run it inside the transaction that does what
/// the change stands for. Returns the status it left and the tenant after.
///
/// # Errors
/// [`TransitionError::Invalid`] naming both states; [`TransitionError::Store`].
pub async fn transition(
    conn: &mut AsyncPgConnection,
    id: Uuid,
    to: TenantStatus,
    reason: Option<&str>,
) -> Result<(TenantStatus, Tenant), TransitionError> {
    let current = lock_tenant(conn, id).await?;
    move_locked(conn, &current, to, reason).await
}

/// Checks and writes the move of `current`, already locked by the caller.
async fn move_locked(
    conn: &mut AsyncPgConnection,
    current: &Tenant,
    to: TenantStatus,
    reason: Option<&str>,
) -> Result<(TenantStatus, Tenant), TransitionError> {
    let from = current.status;
    from.transition(to)?;
    let tenant = diesel::update(tenants::table.find(current.id))
        .set((
            tenants::status.eq(to.as_str()),
            tenants::status_reason.eq(reason),
            tenants::version.eq(tenants::version + 1),
            tenants::updated_at.eq(diesel::dsl::now),
        ))
        .returning(Tenant::as_returning())
        .get_result(conn)
        .await?;
    Ok((from, tenant))
}

/// [`transition`] for a job step that may run again after a crash: a tenant
/// already in `to` is left as it is (`None`); otherwise the move is checked
/// and made, returning the status it left.
///
/// # Errors
/// As [`transition`].
pub async fn ensure_status(
    conn: &mut AsyncPgConnection,
    id: Uuid,
    to: TenantStatus,
    reason: Option<&str>,
) -> Result<Option<TenantStatus>, TransitionError> {
    let current = lock_tenant(conn, id).await?;
    if current.status == to {
        return Ok(None);
    }
    Ok(Some(move_locked(conn, &current, to, reason).await?.0))
}

/// A tenant's subscription, with its plan.
///
/// # Errors
/// [`StoreError::NotFound`].
pub async fn subscription_of(
    conn: &mut AsyncPgConnection,
    tenant_id: Uuid,
) -> Result<(Subscription, crate::catalog::Plan), StoreError> {
    Ok(subscriptions::table
        .inner_join(plans::table)
        .filter(subscriptions::tenant_id.eq(tenant_id))
        .select((Subscription::as_select(), crate::catalog::Plan::as_select()))
        .first(conn)
        .await?)
}

/// An invitation row.
#[derive(Debug, Clone, PartialEq, Queryable, Selectable, Identifiable, Insertable)]
#[diesel(table_name = invitations, check_for_backend(diesel::pg::Pg))]
pub struct Invitation {
    /// Id.
    pub id: Uuid,
    /// Tenant joined.
    pub tenant_id: Uuid,
    /// Email invited (lowercased).
    pub email: String,
    /// `tenant_owner` or `tenant_member`.
    pub role: String,
    /// SHA-256 of the token.
    pub token_hash: String,
    /// Who invited (None: the system at tenant creation).
    pub invited_by: Option<Uuid>,
    /// Expiry.
    pub expires_at: DateTime<Utc>,
    /// When accepted.
    pub accepted_at: Option<DateTime<Utc>>,
    /// When revoked.
    pub revoked_at: Option<DateTime<Utc>>,
    /// Created.
    pub created_at: DateTime<Utc>,
}

/// Stores an invitation.
///
/// # Errors
/// [`StoreError`].
pub async fn insert_invitation(
    conn: &mut AsyncPgConnection,
    inv: &Invitation,
) -> Result<(), StoreError> {
    diesel::insert_into(invitations::table)
        .values(inv)
        .execute(conn)
        .await?;
    Ok(())
}

/// The live invitation with this token hash, locked, to accept it.
///
/// # Errors
/// [`StoreError::NotFound`] when unknown, used, revoked or expired.
pub async fn lock_live_invitation(
    conn: &mut AsyncPgConnection,
    token_hash: &str,
) -> Result<Invitation, StoreError> {
    Ok(invitations::table
        .filter(invitations::token_hash.eq(token_hash))
        .filter(invitations::accepted_at.is_null())
        .filter(invitations::revoked_at.is_null())
        .filter(invitations::expires_at.gt(Utc::now()))
        .select(Invitation::as_select())
        .for_update()
        .first(conn)
        .await?)
}

/// Marks an invitation accepted.
///
/// # Errors
/// [`StoreError`].
pub async fn mark_invitation_accepted(
    conn: &mut AsyncPgConnection,
    id: Uuid,
) -> Result<(), StoreError> {
    diesel::update(invitations::table.find(id))
        .set(invitations::accepted_at.eq(diesel::dsl::now))
        .execute(conn)
        .await?;
    Ok(())
}

/// The users of a tenant, oldest first.
///
/// # Errors
/// [`StoreError`].
pub async fn members_of(
    conn: &mut AsyncPgConnection,
    tenant_id: Uuid,
) -> Result<Vec<crate::identity::User>, StoreError> {
    Ok(users::table
        .filter(users::tenant_id.eq(tenant_id))
        .order(users::id)
        .select(crate::identity::User::as_select())
        .load(conn)
        .await?)
}

/// Pending (live, unaccepted) invitations of a tenant.
///
/// # Errors
/// [`StoreError`].
pub async fn pending_invitations(
    conn: &mut AsyncPgConnection,
    tenant_id: Uuid,
) -> Result<Vec<Invitation>, StoreError> {
    Ok(invitations::table
        .filter(invitations::tenant_id.eq(tenant_id))
        .filter(invitations::accepted_at.is_null())
        .filter(invitations::revoked_at.is_null())
        .filter(invitations::expires_at.gt(Utc::now()))
        .order(invitations::id)
        .select(Invitation::as_select())
        .load(conn)
        .await?)
}

/// Removes a `tenant_member` of a tenant (their sessions and tokens go with
/// them; their activity stays).
///
/// # Errors
/// [`StoreError::NotFound`] when no such member of that tenant.
pub async fn remove_member(
    conn: &mut AsyncPgConnection,
    tenant_id: Uuid,
    user_id: Uuid,
) -> Result<crate::identity::User, StoreError> {
    Ok(diesel::delete(
        users::table
            .filter(users::id.eq(user_id))
            .filter(users::tenant_id.eq(tenant_id))
            .filter(users::role.eq("tenant_member")),
    )
    .returning(crate::identity::User::as_returning())
    .get_result(conn)
    .await?)
}

/// The end of provisioning (one transaction with the deployment switch):
/// tenant `active` (from `provisioning`, checked by `domain`'s lifecycle;
/// already `active` is left so) with `provisioned_at` set (kept if already
/// set) and no status reason.
///
/// # Errors
/// [`TransitionError`].
pub async fn mark_provisioned(
    conn: &mut AsyncPgConnection,
    id: Uuid,
) -> Result<Tenant, TransitionError> {
    let from = lock_tenant(conn, id).await?.status;
    if from != TenantStatus::Active {
        from.transition(TenantStatus::Active)?;
    }
    Ok(diesel::update(tenants::table.find(id))
        .set((
            tenants::status.eq(TenantStatus::Active.as_str()),
            tenants::status_reason.eq(None::<String>),
            tenants::provisioned_at.eq(diesel::dsl::sql::<
                diesel::sql_types::Nullable<diesel::sql_types::Timestamptz>,
            >("coalesce(provisioned_at, now())")),
            tenants::version.eq(tenants::version + 1),
            tenants::updated_at.eq(diesel::dsl::now),
        ))
        .returning(Tenant::as_returning())
        .get_result(conn)
        .await?)
}

/// Starts a subscription's service: `incomplete` becomes `active`; any
/// other status is left as it is. Billing's rule, called from its
/// [`crate::events::ProvisioningEvents::service_started`].
///
/// # Errors
/// [`StoreError`].
pub async fn activate_incomplete_subscription(
    conn: &mut AsyncPgConnection,
    tenant_id: Uuid,
) -> Result<(), StoreError> {
    diesel::update(
        subscriptions::table
            .filter(subscriptions::tenant_id.eq(tenant_id))
            .filter(subscriptions::status.eq(SubscriptionStatus::Incomplete.as_str())),
    )
    .set((
        subscriptions::status.eq(SubscriptionStatus::Active.as_str()),
        subscriptions::updated_at.eq(diesel::dsl::now),
    ))
    .execute(conn)
    .await?;
    Ok(())
}

/// Records why a tenant waits (e.g. `no-free-port`) without changing its
/// status; `None` clears it.
///
/// # Errors
/// [`StoreError`].
pub async fn set_status_reason(
    conn: &mut AsyncPgConnection,
    id: Uuid,
    reason: Option<&str>,
) -> Result<(), StoreError> {
    diesel::update(tenants::table.find(id))
        .set((
            tenants::status_reason.eq(reason),
            tenants::updated_at.eq(diesel::dsl::now),
        ))
        .execute(conn)
        .await?;
    Ok(())
}

/// Puts a tenant (and its subscription) back on `plan_id` with
/// `deployment` (a failed migration's rollback).
///
/// # Errors
/// [`StoreError`].
pub async fn set_plan(
    conn: &mut AsyncPgConnection,
    id: Uuid,
    plan_id: Uuid,
    deployment: &str,
) -> Result<(), StoreError> {
    diesel::update(tenants::table.find(id))
        .set((
            tenants::plan_id.eq(plan_id),
            tenants::deployment.eq(deployment),
            tenants::version.eq(tenants::version + 1),
            tenants::updated_at.eq(diesel::dsl::now),
        ))
        .execute(conn)
        .await?;
    diesel::update(subscriptions::table.filter(subscriptions::tenant_id.eq(id)))
        .set((
            subscriptions::plan_id.eq(plan_id),
            subscriptions::updated_at.eq(diesel::dsl::now),
        ))
        .execute(conn)
        .await?;
    Ok(())
}
