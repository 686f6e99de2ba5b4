//! What a tenant owes and what it is owed: a checkout for what it owes
//! (obtainable again after a provider outage or an expired session), a
//! pending upgrade abandoned, and its credits.

use actix_web::{get, post, web};
use chrono::{DateTime, Utc};
use serde::Serialize;
use tenantry_billing::engine::{self, OwedFor};
use tenantry_domain::Scope;
use tenantry_store::billing::credits;
use utoipa::ToSchema;
use uuid::Uuid;

use super::{PlanChange, actor, change_dto, clock, money_dto, tenant_id};
use crate::{
    AppState,
    auth::{ClientInfo, Principal},
    error::ApiResult,
    extract::Query,
    pagination::{Page, PageParams},
    routes::catalog::Money,
};

/// A checkout for what the tenant owes.
#[derive(Debug, Serialize, ToSchema)]
pub struct OwedCheckout {
    /// `signup` (the first payment) or `upgrade` (a pending upgrade's charge).
    pub purpose: &'static str,
    /// The pending upgrade it pays, for `upgrade`.
    pub plan_change_id: Option<Uuid>,
    /// What it asks.
    pub amount: Money,
    /// The provider's session id (Stripe: `cs_…`).
    pub session_id: String,
    /// Where to send the customer.
    pub checkout_url: String,
}

/// A checkout for what the tenant owes now: while it awaits its first
/// payment, the signup's; else its pending upgrade's. An expired session
/// (Stripe's expire after 24 h) is replaced by a new one; one that can
/// still be paid is handed out again. The tenant's owner or staff.
#[utoipa::path(
    context_path = "/v1", tag = "billing", security(("bearer" = [])),
    params(("id" = String, Path, description = "Tenant id or slug")),
    responses(
        (status = 200, description = "Where to pay", body = OwedCheckout),
        (status = 403, description = "Not the tenant's owner or staff", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such tenant, or nothing to pay", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 422, description = "Payments are disabled: an operator records payments", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 503, description = "The payment provider is unavailable; retry", body = crate::error::Problem, content_type = "application/problem+json"),
    )
)]
#[post("/tenants/{id}/checkout")]
pub async fn checkout(
    state: web::Data<AppState>,
    principal: Principal,
    id: web::Path<String>,
) -> ApiResult<web::Json<OwedCheckout>> {
    principal.require(Scope::BillingWrite)?;
    principal.require_owner_or_staff_because("only the tenant's owner or staff may pay")?;
    let tenant = tenant_id(&state, &principal, &id).await?;
    let owed = engine::checkout_for(&state.pool, state.gateway.as_ref(), tenant).await?;
    let (purpose, plan_change_id) = match owed.owed_for {
        OwedFor::Signup => ("signup", None),
        OwedFor::Upgrade(c) => ("upgrade", Some(c)),
    };
    Ok(web::Json(OwedCheckout {
        purpose,
        plan_change_id,
        amount: money_dto(owed.amount.amount(), owed.amount.currency().code()),
        session_id: owed.session_id,
        checkout_url: owed.url,
    }))
}

/// Abandons a pending upgrade that is not paid (stuck on a provider error,
/// or no longer wanted): it ends `canceled`. Its requester or staff. A
/// payment that still arrives for it is refunded, or applied if it still can be.
#[utoipa::path(
    context_path = "/v1", tag = "billing", security(("bearer" = [])),
    params(("id" = String, Path, description = "Tenant id or slug"), ("change_id" = Uuid, Path, description = "Plan change id")),
    responses(
        (status = 200, description = "Abandoned", body = PlanChange),
        (status = 404, description = "No such pending change of this tenant", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 409, description = "Already paid", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 422, description = "Someone else's request", body = crate::error::Problem, content_type = "application/problem+json"),
    )
)]
#[post("/tenants/{id}/plan-changes/{change_id}/abandon")]
pub async fn abandon(
    state: web::Data<AppState>,
    principal: Principal,
    client: ClientInfo,
    path: web::Path<(String, Uuid)>,
) -> ApiResult<web::Json<PlanChange>> {
    principal.require(Scope::BillingWrite)?;
    let (id, change_id) = path.into_inner();
    let tenant = tenant_id(&state, &principal, &id).await?;
    let staff = principal.role.is_staff() && principal.tenant_id.is_none();
    let change = engine::abandon_pending(
        &state.pool,
        &clock(&state),
        tenant,
        change_id,
        &actor(&principal, &client),
        staff,
    )
    .await?;
    let mut conn = state.pool.get().await?;
    Ok(web::Json(change_dto(&mut conn, change).await?))
}

/// A row of the credit ledger.
#[derive(Debug, Serialize, ToSchema)]
pub struct Credit {
    /// Id.
    pub id: Uuid,
    /// Positive: granted to the customer; negative: applied to a charge or invoice.
    pub amount: Money,
    /// `granted` or `applied`.
    pub kind: String,
    /// Why: `migration_failed`, `prepaid_billing_cycle`, `renewal`, `invoice`…
    pub reason: String,
    /// What caused it: `plan_change:{id}:migration_failed`, `charge:{id}`, `invoice:{id}`…
    pub source: String,
    /// The charge it paid part of (applied rows).
    pub charge_id: Option<Uuid>,
    /// The provider's record of it (Stripe: a customer balance transaction `cbtxn_…`, or an invoice).
    pub provider_reference: Option<String>,
    /// Recorded.
    pub created_at: DateTime<Utc>,
}

/// The tenant's credit ledger, oldest first: credits granted (a failed
/// migration's payment, a prepaid billing cycle) and applied (to renewals
/// here; to invoices by Stripe). The balance is in the subscription view.
#[utoipa::path(
    context_path = "/v1", tag = "billing", security(("bearer" = [])),
    params(("id" = String, Path, description = "Tenant id or slug"), PageParams),
    responses(
        (status = 200, description = "A page of ledger rows", body = Page<Credit>),
        (status = 404, description = "No such tenant", body = crate::error::Problem, content_type = "application/problem+json"),
    )
)]
#[get("/tenants/{id}/credits")]
pub async fn list_credits(
    state: web::Data<AppState>,
    principal: Principal,
    id: web::Path<String>,
    Query(params): Query<PageParams>,
) -> ApiResult<web::Json<Page<Credit>>> {
    principal.require(Scope::BillingRead)?;
    let page = params.to_request()?;
    let tenant = tenant_id(&state, &principal, &id).await?;
    let mut conn = state.pool.get().await?;
    let rows = credits::list(&mut conn, tenant, page).await?;
    Ok(web::Json(Page::try_from_store(rows, |c| {
        Ok(Credit {
            id: c.id,
            amount: money_dto(c.amount, &c.currency),
            kind: c.kind,
            reason: c.reason,
            source: c.source,
            charge_id: c.charge_id,
            provider_reference: c.provider_reference,
            created_at: c.created_at,
        })
    })?))
}
