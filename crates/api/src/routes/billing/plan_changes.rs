//! A tenant's plan changes: price one, ask for one, cancel a scheduled
//! one, list them, and (staff) record an upgrade's payment.

use actix_web::{HttpResponse, delete, get, post, web};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tenantry_billing::engine::{self, ChangeQuote};
use tenantry_domain::{
    Scope,
    billing::{Requester, Timing},
};
use tenantry_store::billing as store;
use utoipa::ToSchema;
use uuid::Uuid;

use super::{PlanChange, actor, change_dto, clock, tenant, tenant_id};
use crate::{
    ApiError, AppState,
    auth::{ClientInfo, Principal},
    error::ApiResult,
    extract::{Json, Query},
    pagination::{Page, PageParams},
    routes::{catalog::Money, jobs::Job},
};

/// A line of a quote.
#[derive(Debug, Serialize, ToSchema)]
pub struct PreviewLine {
    /// `credit` (unused time on the old plan, negative) or `charge` (time on the new plan).
    pub kind: &'static str,
    /// Amount, negative for credits.
    pub amount: Money,
    /// Start of the time covered.
    pub period_start: DateTime<Utc>,
    /// End of the time covered (`null`: lifetime).
    pub period_end: Option<DateTime<Utc>>,
}

/// A priced plan change (nothing stored).
#[derive(Debug, Serialize, ToSchema)]
pub struct Preview {
    /// `upgrade` or `downgrade`.
    pub kind: &'static str,
    /// `on_payment`, `end_of_term` or `immediate`.
    pub timing: &'static str,
    /// When it takes effect (`null` for upgrades: when paid).
    pub effective_at: Option<DateTime<Utc>>,
    /// Charged now, decimal string in the major unit.
    pub amount_due: String,
    /// ISO 4217.
    pub currency: String,
    /// Credit and charge lines.
    pub lines: Vec<PreviewLine>,
    /// The instant prorated for: send it back with the request within 15 minutes to be charged exactly this.
    pub proration_date: DateTime<Utc>,
    /// Current plan code.
    pub from_plan: String,
    /// New plan code.
    pub to_plan: String,
}

fn preview_dto(q: &ChangeQuote) -> Preview {
    Preview {
        kind: q.kind.as_str(),
        timing: q.timing.as_str(),
        effective_at: q.effective_at,
        amount_due: q.amount_due.amount().to_string(),
        currency: q.amount_due.currency().code().to_owned(),
        lines: q
            .lines
            .iter()
            .map(|l| PreviewLine {
                kind: match l.kind {
                    tenantry_domain::billing::LineKind::Credit => "credit",
                    tenantry_domain::billing::LineKind::Charge => "charge",
                },
                amount: Money {
                    amount: l.amount.amount().to_string(),
                    currency: l.amount.currency().code().to_owned(),
                },
                period_start: l.period_start,
                period_end: l.period_end,
            })
            .collect(),
        proration_date: q.proration_date,
        from_plan: q.from.code.clone(),
        to_plan: q.to.code.clone(),
    }
}

/// A plan to move to.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PreviewInput {
    /// Plan code of the tenant's product.
    pub plan: String,
}

/// Price a plan change (no state change).
#[utoipa::path(
    context_path = "/v1", tag = "billing", security(("bearer" = [])),
    params(("id" = String, Path, description = "Tenant id or slug")),
    request_body = PreviewInput,
    responses(
        (status = 200, description = "The quote", body = Preview),
        (status = 404, description = "No such tenant", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 409, description = "`same-plan` or `subscription-not-active`", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 422, description = "Unknown, inactive or other-product plan; `change-not-allowed`", body = crate::error::Problem, content_type = "application/problem+json"),
    )
)]
#[post("/tenants/{id}/plan-change/preview")]
pub async fn preview(
    state: web::Data<AppState>,
    principal: Principal,
    id: web::Path<String>,
    Json(input): Json<PreviewInput>,
) -> ApiResult<web::Json<Preview>> {
    principal.require(Scope::BillingRead)?;
    let tenant = tenant(&state, &principal, &id).await?;
    let mut conn = state.pool.get().await?;
    let q = engine::quote(
        &mut conn,
        &clock(&state),
        &state.settings.billing,
        &tenant,
        &input.plan,
        None,
        Requester::Customer,
    )
    .await?;
    Ok(web::Json(preview_dto(&q)))
}

/// A plan change to make.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ChangeInput {
    /// Plan code of the tenant's product.
    pub plan: String,
    /// The preview's `proration_date`: honoured for 15 minutes so the charge equals the preview.
    pub proration_date: Option<DateTime<Utc>>,
    /// Staff only: change at once without payment (needs `reason`).
    #[serde(default)]
    pub immediate: bool,
    /// Why (required with `immediate`): support, compensation…
    pub reason: Option<String>,
}

/// The outcome of a plan change request.
#[derive(Debug, Serialize, ToSchema)]
pub struct PlanChangeOutcome {
    /// The change.
    pub plan_change: PlanChange,
    /// For upgrades: `charged_to_saved_payment_method`, `checkout_required`, `no_charge` or (payments disabled) `awaiting_operator`; for a recorded payment: `marked_paid`, or `refunded` when it came after the change could be applied.
    pub payment: Option<&'static str>,
    /// Where the customer pays, when they must.
    pub checkout_url: Option<String>,
    /// The deployment job, when applied and the deployment kind changed.
    pub job: Option<Job>,
}

/// Change plan. Upgrades: a pending change and a charge for exactly the
/// quoted amount (`202`; applied once paid). Downgrades: scheduled at the
/// period end (`201`). Staff with `immediate` and a `reason`: applied now,
/// without payment (`200`).
#[utoipa::path(
    context_path = "/v1", tag = "billing", security(("bearer" = [])),
    params(("id" = String, Path, description = "Tenant id or slug")),
    request_body = ChangeInput,
    responses(
        (status = 200, description = "Applied at once (staff)", body = PlanChangeOutcome),
        (status = 201, description = "Downgrade scheduled at the period end", body = PlanChangeOutcome),
        (status = 202, description = "Upgrade awaiting or confirmed payment", body = PlanChangeOutcome),
        (status = 402, description = "`payment-required`: the saved payment method was declined", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 409, description = "`same-plan`, `plan-change-pending`, `subscription-not-active`", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 422, description = "Bad plan, `change-not-allowed`, missing reason", body = crate::error::Problem, content_type = "application/problem+json"),
    )
)]
#[post("/tenants/{id}/plan-change")]
pub async fn request(
    state: web::Data<AppState>,
    principal: Principal,
    client: ClientInfo,
    id: web::Path<String>,
    Json(input): Json<ChangeInput>,
) -> ApiResult<HttpResponse> {
    principal.require(Scope::BillingWrite)?;
    let requester = if input.immediate {
        principal.require_staff_because("only staff may change a plan without payment")?;
        Requester::StaffOverride
    } else {
        Requester::Customer
    };
    let tenant = tenant(&state, &principal, &id).await?;
    ensure_disk_fits(&state, &tenant, &input.plan).await?;
    let outcome = engine::request_change(
        &state.pool,
        state.gateway.as_ref(),
        &clock(&state),
        &state.settings.billing,
        &tenant,
        &input.plan,
        input.proration_date,
        requester,
        input.reason.as_deref(),
        &actor(&principal, &client),
    )
    .await?;
    let mut conn = state.pool.get().await?;
    let timing = outcome.change.timing;
    let payment = outcome.payment().map(|p| p.as_str());
    let body = PlanChangeOutcome {
        plan_change: change_dto(&mut conn, outcome.change).await?,
        payment,
        checkout_url: outcome.checkout_url,
        job: outcome.job.map(Job::from),
    };
    let mut res = match timing {
        Timing::EndOfTerm => HttpResponse::Created(),
        Timing::Immediate => HttpResponse::Ok(),
        Timing::OnPayment => HttpResponse::Accepted(),
    };
    Ok(res.json(body))
}

/// Cancel the scheduled downgrade.
#[utoipa::path(
    context_path = "/v1", tag = "billing", security(("bearer" = [])),
    params(("id" = String, Path, description = "Tenant id or slug")),
    responses(
        (status = 200, description = "Canceled", body = PlanChange),
        (status = 404, description = "Nothing scheduled", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 409, description = "The period has ended: the downgrade is in effect", body = crate::error::Problem, content_type = "application/problem+json"),
    )
)]
#[delete("/tenants/{id}/scheduled-plan-change")]
pub async fn cancel(
    state: web::Data<AppState>,
    principal: Principal,
    client: ClientInfo,
    id: web::Path<String>,
) -> ApiResult<web::Json<PlanChange>> {
    principal.require(Scope::BillingWrite)?;
    let tenant = tenant_id(&state, &principal, &id).await?;
    let canceled = engine::cancel_scheduled(
        &state.pool,
        &clock(&state),
        tenant,
        &actor(&principal, &client),
    )
    .await?;
    let mut conn = state.pool.get().await?;
    Ok(web::Json(change_dto(&mut conn, canceled).await?))
}

/// The tenant's plan changes, oldest first.
#[utoipa::path(
    context_path = "/v1", tag = "billing", security(("bearer" = [])),
    params(("id" = String, Path, description = "Tenant id or slug"), PageParams),
    responses((status = 200, description = "A page of plan changes", body = Page<PlanChange>))
)]
#[get("/tenants/{id}/plan-changes")]
pub async fn history(
    state: web::Data<AppState>,
    principal: Principal,
    id: web::Path<String>,
    Query(params): Query<PageParams>,
) -> ApiResult<web::Json<Page<PlanChange>>> {
    principal.require(Scope::BillingRead)?;
    let page = params.to_request()?;
    let tenant = tenant_id(&state, &principal, &id).await?;
    let mut conn = state.pool.get().await?;
    let rows = store::list_changes(&mut conn, tenant, page).await?;
    let next = rows.next_after;
    let mut items = Vec::with_capacity(rows.items.len());
    for c in rows.items {
        items.push(change_dto(&mut conn, c).await?);
    }
    Ok(web::Json(Page {
        items,
        next_cursor: next.map(crate::pagination::encode_cursor),
    }))
}

/// How an upgrade was paid.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MarkPaidInput {
    /// The payment's reference (bank transfer, receipt…).
    pub reference: String,
}

/// Staff: record that a pending upgrade was paid (outside the provider, or
/// with payments off); the change applies as if the provider confirmed it.
#[utoipa::path(
    context_path = "/v1", tag = "billing", security(("bearer" = [])),
    params(("id" = String, Path, description = "Tenant id or slug"), ("change_id" = Uuid, Path, description = "Plan change id")),
    request_body = MarkPaidInput,
    responses(
        (status = 200, description = "Paid and applied", body = PlanChangeOutcome),
        (status = 404, description = "No such change of this tenant", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 409, description = "Not a pending upgrade", body = crate::error::Problem, content_type = "application/problem+json"),
    )
)]
#[post("/tenants/{id}/plan-changes/{change_id}/mark-paid")]
pub async fn mark_paid(
    state: web::Data<AppState>,
    principal: Principal,
    client: ClientInfo,
    path: web::Path<(String, Uuid)>,
    Json(input): Json<MarkPaidInput>,
) -> ApiResult<web::Json<PlanChangeOutcome>> {
    principal.require(Scope::BillingWrite)?;
    principal.require_staff_because("only staff may record a payment")?;
    let (id, change_id) = path.into_inner();
    let tenant = tenant_id(&state, &principal, &id).await?;
    {
        let mut conn = state.pool.get().await?;
        let c = store::lock_change(&mut conn, change_id)
            .await
            .map_err(|_| ApiError::not_found(format!("plan change {change_id}")))?;
        if c.tenant_id != tenant {
            return Err(ApiError::not_found(format!("plan change {change_id}")));
        }
    }
    let confirmation = engine::confirm_payment(
        &state.pool,
        &clock(&state),
        change_id,
        engine::Payment::reference(input.reference.trim()),
        &actor(&principal, &client),
    )
    .await?;
    // A payment recorded after the change could be applied is given back.
    let payment = match &confirmation {
        engine::Confirmation::Refunded { .. } => "refunded",
        _ => "marked_paid",
    };
    let (change, job) = confirmation.into_parts();
    let mut conn = state.pool.get().await?;
    Ok(web::Json(PlanChangeOutcome {
        plan_change: change_dto(&mut conn, change).await?,
        payment: Some(payment),
        checkout_url: None,
        job: job.map(Job::from),
    }))
}

/// Refuses a change to a plan whose disk is smaller than what the tenant's
/// data takes now: `422 disk-too-small` with the figures, before any
/// payment (a root disk never shrinks, and the data would not fit a shared
/// plan's quota). The use is measured where it lives: a dedicated
/// container's root disk (Proxmox `disk`), a shared tenant's database
/// (`pg_database_size`). A tenant whose use cannot be measured now (a node
/// not answering, a Docker container) is let through: the change itself
/// never shrinks a disk.
async fn ensure_disk_fits(
    state: &AppState,
    tenant: &tenantry_store::tenants::TenantView,
    code: &str,
) -> ApiResult<()> {
    const GIB: u64 = 1 << 30;
    let plan = {
        let mut conn = state.pool.get().await?;
        match tenantry_store::catalog::find_plan(&mut conn, tenant.tenant.product_id, code).await {
            Ok(p) => p,
            // An unknown plan: the engine says so.
            Err(_) => return Ok(()),
        }
    };
    let Ok(provisioner) = crate::workers::provisioner(state) else {
        return Ok(());
    };
    let used = match provisioner.disk_used(tenant.tenant.id).await {
        Ok(Some(used)) => used,
        Ok(None) => return Ok(()),
        Err(e) => {
            tracing::warn!(tenant = %tenant.tenant.slug, error = %e, "disk use not measured; plan change let through");
            return Ok(());
        }
    };
    let offered = u64::try_from(plan.storage_gib).unwrap_or(0);
    if used <= offered.saturating_mul(GIB) {
        return Ok(());
    }
    // GiB with one decimal, rounded up, in integers.
    let tenths = used.saturating_mul(10).div_ceil(GIB);
    Err(ApiError::Unprocessable {
        code: "disk-too-small",
        detail: format!(
            "the workspace's data takes {}.{} GiB and plan {} offers {offered} GiB: free space first, or choose a plan with more disk",
            tenths / 10,
            tenths % 10,
            plan.code
        ),
    })
}
