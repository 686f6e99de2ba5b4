//! Operator views of billing across tenants, staff only: `/v1/charges`,
//! `/v1/plan-changes` and `/v1/billing/summary` (read-only), and recording
//! a refund given back by hand (`POST /v1/charges/{id}/mark-refunded`).

use actix_web::{get, post, web};
use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use tenantry_domain::{
    Scope,
    billing::{ChangeKind, PlanChangeStatus},
};
use tenantry_store::{
    billing::Charge as ChargeRow,
    billing_reports::{self as store, CHARGE_KINDS, CHARGE_STATUSES},
};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use crate::{
    ApiError, AppState,
    auth::{ClientInfo, Principal},
    error::{ApiResult, FieldProblem},
    extract::{Json, Query},
    pagination::{Page, PageParams},
    routes::{
        billing::{PlanChange, money_dto},
        catalog::Money,
    },
};

/// Days ahead of the billing clock that `downgrades_due` looks.
pub const DOWNGRADE_HORIZON_DAYS: i64 = 7;

/// Most downgrades `downgrades_due.items` lists.
pub const DOWNGRADES_LISTED: i64 = 200;

const STAFF_ONLY: &str = "only platform staff see billing across tenants";

fn staff(principal: &Principal) -> ApiResult<()> {
    principal.require(Scope::BillingRead)?;
    principal.require_staff_because(STAFF_ONLY)
}

/// `400 malformed-request` naming the query parameter `field`.
fn bad_param(field: &str, message: String) -> ApiError {
    ApiError::BadRequest {
        detail: format!("invalid query parameter {field}: {message}"),
        errors: vec![FieldProblem {
            field: field.into(),
            message,
        }],
    }
}

/// `value` when it is one of `allowed`, else `400` naming `field`.
fn one_of(field: &str, value: Option<String>, allowed: &[&str]) -> ApiResult<Option<String>> {
    match value {
        Some(v) if !allowed.contains(&v.as_str()) => Err(bad_param(
            field,
            format!("{v:?} is not one of {}", allowed.join(", ")),
        )),
        v => Ok(v),
    }
}

/// A charge: money asked of a customer for a renewal or an upgrade (or
/// given back, for a refund).
#[derive(Debug, Serialize, ToSchema)]
pub struct Charge {
    /// Id.
    pub id: Uuid,
    /// The tenant charged.
    pub tenant_id: Uuid,
    /// The subscription it is for.
    pub subscription_id: Uuid,
    /// `renewal` (a billing period), `upgrade` (a plan change's prorated
    /// amount) or `refund`.
    pub kind: String,
    /// The plan change paid for (upgrades).
    pub plan_change_id: Option<Uuid>,
    /// Amount asked of the provider, in the currency's major unit.
    pub amount: Money,
    /// `pending`, `processing` (an attempt under way), `paid`, `failed` or `canceled`.
    pub status: String,
    /// Renewals: start of the billing period paid for (RFC 3339).
    pub period_start: Option<DateTime<Utc>>,
    /// Renewals: end of that period (RFC 3339).
    pub period_end: Option<DateTime<Utc>>,
    /// Payment attempts so far.
    pub attempts: i32,
    /// Not retried before (RFC 3339); while `processing`, the claim's lease.
    pub next_attempt_at: Option<DateTime<Utc>>,
    /// The provider's reference (e.g. a Stripe invoice id).
    pub provider_reference: Option<String>,
    /// The last decline or error.
    pub last_error: Option<String>,
    /// Created (RFC 3339).
    pub created_at: DateTime<Utc>,
    /// Last changed (RFC 3339).
    pub updated_at: DateTime<Utc>,
}

fn charge_dto(c: ChargeRow) -> Charge {
    Charge {
        amount: money_dto(c.amount, &c.currency),
        id: c.id,
        tenant_id: c.tenant_id,
        subscription_id: c.subscription_id,
        kind: c.kind,
        plan_change_id: c.plan_change_id,
        status: c.status,
        period_start: c.period_start,
        period_end: c.period_end,
        attempts: c.attempts,
        next_attempt_at: c.next_attempt_at,
        provider_reference: c.provider_reference,
        last_error: c.last_error,
        created_at: c.created_at,
        updated_at: c.updated_at,
    }
}

/// Filters of the charge list.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ChargeQuery {
    /// Only this tenant's charges (id).
    pub tenant: Option<Uuid>,
    /// Only charges in this status: `pending`, `processing`, `paid`, `failed`, `canceled`.
    pub status: Option<String>,
    /// Only charges of this kind: `renewal`, `upgrade`, `refund`.
    pub kind: Option<String>,
    /// Only charges at or after this instant (RFC 3339). A charge's instant is
    /// the start of the period it pays for, or when it was made if it pays
    /// for no period.
    pub from: Option<DateTime<Utc>>,
    /// Only charges before this instant (RFC 3339; after `from`).
    pub to: Option<DateTime<Utc>>,
    /// Most items, 1–200 (default 50).
    #[param(minimum = 1, maximum = 200)]
    pub limit: Option<u32>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

/// Charges of every tenant, oldest first (staff only).
#[utoipa::path(
    context_path = "/v1", tag = "billing", security(("bearer" = [])),
    params(ChargeQuery),
    responses(
        (status = 200, description = "A page of charges", body = Page<Charge>),
        (status = 400, description = "Unknown status or kind, `to` not after `from`, bad limit or cursor (the parameter is named)", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 401, description = "Not signed in", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 403, description = "Not platform staff (or a token without billing:read)", body = crate::error::Problem, content_type = "application/problem+json"),
    )
)]
#[get("/charges")]
pub async fn list_charges(
    state: web::Data<AppState>,
    principal: Principal,
    Query(q): Query<ChargeQuery>,
) -> ApiResult<web::Json<Page<Charge>>> {
    staff(&principal)?;
    let page = PageParams {
        limit: q.limit,
        cursor: q.cursor,
    }
    .to_request()?;
    if let (Some(from), Some(to)) = (q.from, q.to)
        && to <= from
    {
        return Err(bad_param("to", format!("must be after from ({from})")));
    }
    let filter = store::ChargeFilter {
        tenant_id: q.tenant,
        status: one_of("status", q.status, CHARGE_STATUSES)?,
        kind: one_of("kind", q.kind, CHARGE_KINDS)?,
        from: q.from,
        to: q.to,
    };
    let mut conn = state.pool.get().await?;
    let rows = store::list_charges(&mut conn, &filter, page).await?;
    Ok(web::Json(Page::try_from_store(rows, |c| {
        Ok(charge_dto(c))
    })?))
}

/// How a refund was given back by hand.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MarkRefundedInput {
    /// The refund's reference (the bank transfer back, a receipt…), 1–200
    /// characters.
    pub reference: String,
}

/// Staff: record that a refund the payment provider could not make (a
/// payment that never went through it, such as a bank transfer recorded
/// with `mark-paid`, or payments off) was given back by hand. The refund
/// charge becomes `paid` with the reference; the `refund.manual` alert is
/// resolved. Repeating it with the same reference changes nothing.
#[utoipa::path(
    context_path = "/v1", tag = "billing", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "Refund charge id")),
    request_body = MarkRefundedInput,
    responses(
        (status = 200, description = "Recorded", body = Charge),
        (status = 401, description = "Not signed in", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 403, description = "Not platform staff (or a token without billing:write)", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such refund charge", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 409, description = "Already recorded with another reference, or not waiting for a refund", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 422, description = "Empty or too long reference", body = crate::error::Problem, content_type = "application/problem+json"),
    )
)]
#[post("/charges/{id}/mark-refunded")]
pub async fn mark_refunded(
    state: web::Data<AppState>,
    principal: Principal,
    client: ClientInfo,
    id: web::Path<Uuid>,
    Json(input): Json<MarkRefundedInput>,
) -> ApiResult<web::Json<Charge>> {
    principal.require(Scope::BillingWrite)?;
    principal.require_staff_because("only staff may record a refund")?;
    let reference = input.reference.trim();
    if reference.is_empty() || reference.chars().count() > 200 {
        return Err(ApiError::Validation {
            detail: "reference must be 1–200 characters".into(),
            errors: vec![FieldProblem {
                field: "reference".into(),
                message: "must be 1–200 characters".into(),
            }],
        });
    }
    let charge = tenantry_billing::refunds::record_manual_refund(
        &state.pool,
        id.into_inner(),
        reference,
        &crate::audit::actor(&principal, &client),
    )
    .await?;
    Ok(web::Json(charge_dto(charge)))
}

/// Filters of the plan change list.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct PlanChangeQuery {
    /// Only changes in these statuses, comma-separated: `pending`,
    /// `scheduled`, `applied`, `canceled`, `expired`, `failed`
    /// (e.g. `pending,scheduled`: the open ones).
    pub status: Option<String>,
    /// Only this tenant's changes (id).
    pub tenant: Option<Uuid>,
    /// Only `upgrade`s or only `downgrade`s.
    pub kind: Option<String>,
    /// Only changes taking effect before this instant (RFC 3339):
    /// `effective_at < due_before`; changes with no effective instant yet
    /// (unpaid upgrades) never match.
    pub due_before: Option<DateTime<Utc>>,
    /// Most items, 1–200 (default 50).
    #[param(minimum = 1, maximum = 200)]
    pub limit: Option<u32>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

fn plan_change_dto(r: store::PlanChangeReport) -> PlanChange {
    crate::routes::billing::change_view(r.change, r.from_plan, r.to_plan)
}

/// Plan changes of every tenant, oldest first (staff only).
#[utoipa::path(
    context_path = "/v1", tag = "billing", security(("bearer" = [])),
    params(PlanChangeQuery),
    responses(
        (status = 200, description = "A page of plan changes", body = Page<PlanChange>),
        (status = 400, description = "Unknown status or kind, bad limit or cursor (the parameter is named)", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 401, description = "Not signed in", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 403, description = "Not platform staff (or a token without billing:read)", body = crate::error::Problem, content_type = "application/problem+json"),
    )
)]
#[get("/plan-changes")]
pub async fn list_plan_changes(
    state: web::Data<AppState>,
    principal: Principal,
    Query(q): Query<PlanChangeQuery>,
) -> ApiResult<web::Json<Page<PlanChange>>> {
    staff(&principal)?;
    let page = PageParams {
        limit: q.limit,
        cursor: q.cursor,
    }
    .to_request()?;
    let statuses = match q.status.as_deref() {
        None => Vec::new(),
        Some(list) => list
            .split(',')
            .map(|s| {
                s.trim()
                    .parse::<PlanChangeStatus>()
                    .map_err(|e| bad_param("status", e))
            })
            .collect::<ApiResult<Vec<_>>>()?,
    };
    let kind = q
        .kind
        .as_deref()
        .map(|k| k.parse::<ChangeKind>().map_err(|e| bad_param("kind", e)))
        .transpose()?;
    let filter = store::PlanChangeFilter {
        statuses,
        tenant_id: q.tenant,
        kind,
        due_before: q.due_before,
    };
    let mut conn = state.pool.get().await?;
    let rows = store::list_plan_changes(&mut conn, &filter, page).await?;
    Ok(web::Json(Page::try_from_store(rows, |r| {
        Ok(plan_change_dto(r))
    })?))
}

/// Subscriptions on one plan.
#[derive(Debug, Serialize, ToSchema)]
pub struct PlanSubscriptions {
    /// Product slug.
    pub product: String,
    /// Plan code.
    pub plan: String,
    /// Number of subscriptions.
    pub count: i64,
}

/// Past-due subscriptions and what they owe.
#[derive(Debug, Serialize, ToSchema)]
pub struct PastDue {
    /// Number of subscriptions in status `past_due`.
    pub count: i64,
    /// What they owe, one amount per currency (currency order), each in
    /// the currency's major unit: the sum of their renewal and upgrade
    /// charges not paid (`pending`, `processing` or `failed`). Empty when
    /// nothing is owed.
    pub outstanding: Vec<Money>,
}

/// A scheduled downgrade.
#[derive(Debug, Serialize, ToSchema)]
pub struct DueDowngrade {
    /// The plan change (see `/v1/plan-changes`).
    pub plan_change_id: Uuid,
    /// Tenant id.
    pub tenant_id: Uuid,
    /// Tenant slug.
    pub tenant_slug: String,
    /// Product slug.
    pub product: String,
    /// Code of the plan before.
    pub from_plan: String,
    /// Code of the plan after.
    pub to_plan: String,
    /// When it takes effect (RFC 3339).
    pub effective_at: DateTime<Utc>,
}

/// Scheduled downgrades coming due.
#[derive(Debug, Serialize, ToSchema)]
pub struct DowngradesDue {
    /// The horizon (RFC 3339): `as_of` plus 7 days. Downgrades whose
    /// `effective_at` is before it are counted, including any overdue one
    /// not applied yet.
    pub until: DateTime<Utc>,
    /// Number of such downgrades.
    pub count: i64,
    /// The first 200 of them, soonest first (`count` is the total).
    pub items: Vec<DueDowngrade>,
}

/// Billing figures across tenants, at the billing clock's now.
#[derive(Debug, Serialize, ToSchema)]
pub struct BillingSummary {
    /// The billing clock's now the figures are for (RFC 3339; the sandbox
    /// clock in sandbox mode).
    pub as_of: DateTime<Utc>,
    /// Monthly recurring revenue, one amount per currency (currency order),
    /// each in the currency's major unit per month: over subscriptions
    /// `active` or `past_due`, the price of their plan if it bills monthly
    /// plus a twelfth of it if it bills yearly (lifetime plans do not
    /// recur and are left out); summed exactly, rounded half away from zero
    /// to the currency's minor unit once, at the end.
    pub mrr: Vec<Money>,
    /// Subscriptions in status `active`, counted per product and plan, in
    /// (product, plan) order.
    pub active_subscriptions: Vec<PlanSubscriptions>,
    /// Subscriptions in status `past_due`.
    pub past_due: PastDue,
    /// Scheduled downgrades taking effect within 7 days.
    pub downgrades_due: DowngradesDue,
}

/// Billing summary: recurring revenue, subscriptions per plan, past due,
/// downgrades due (staff only).
#[utoipa::path(
    context_path = "/v1", tag = "billing", security(("bearer" = [])),
    responses(
        (status = 200, description = "The summary", body = BillingSummary),
        (status = 401, description = "Not signed in", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 403, description = "Not platform staff (or a token without billing:read)", body = crate::error::Problem, content_type = "application/problem+json"),
    )
)]
#[get("/billing/summary")]
pub async fn summary(
    state: web::Data<AppState>,
    principal: Principal,
) -> ApiResult<web::Json<BillingSummary>> {
    staff(&principal)?;
    let mut conn = state.pool.get().await?;
    let now = state.settings.billing_clock().now(&mut conn).await?;
    let until = now + Duration::days(DOWNGRADE_HORIZON_DAYS);
    let s = store::summary(&mut conn, until, DOWNGRADES_LISTED).await?;
    let mrr = s
        .recurring
        .iter()
        .map(|r| {
            r.mrr()
                .map(|amount| money_dto(amount, &r.currency))
                .ok_or_else(|| {
                    ApiError::Internal(anyhow::anyhow!("MRR in {} overflows", r.currency))
                })
        })
        .collect::<ApiResult<_>>()?;
    Ok(web::Json(BillingSummary {
        as_of: now,
        mrr,
        active_subscriptions: s
            .active
            .into_iter()
            .map(|p| PlanSubscriptions {
                product: p.product,
                plan: p.plan,
                count: p.subscriptions,
            })
            .collect(),
        past_due: PastDue {
            count: s.past_due,
            outstanding: s
                .outstanding
                .into_iter()
                .map(|a| money_dto(a.amount, &a.currency))
                .collect(),
        },
        downgrades_due: DowngradesDue {
            until,
            count: s.downgrades_due,
            items: s
                .downgrades
                .into_iter()
                .map(|d| DueDowngrade {
                    plan_change_id: d.plan_change_id,
                    tenant_id: d.tenant_id,
                    tenant_slug: d.tenant_slug,
                    product: d.product,
                    from_plan: d.from_plan,
                    to_plan: d.to_plan,
                    effective_at: d.effective_at,
                })
                .collect(),
        },
    }))
}
