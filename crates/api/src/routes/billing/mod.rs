//! Plan changes: preview, request, cancel, history, payment confirmation;
//! and the sandbox clock.
//!
//! The handlers are in `plan_changes` and `sandbox`; the plan change as
//! shown, and what both share, are here.

mod payments;
mod plan_changes;
mod sandbox;

pub use payments::*;
pub use plan_changes::*;
pub use sandbox::*;

use chrono::{DateTime, Utc};
use serde::Serialize;
use tenantry_billing::{BillingError, Clock as BillingClock, engine::Actor};
use tenantry_store::{billing::PlanChange as PlanChangeRow, tenants::TenantView};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::{
    ApiError, AppState,
    auth::{ClientInfo, Principal},
    error::ApiResult,
    routes::catalog::Money,
};

impl From<BillingError> for ApiError {
    fn from(e: BillingError) -> Self {
        match e {
            BillingError::NotFound(what) => ApiError::not_found(what),
            BillingError::SamePlan => ApiError::Conflict {
                code: "same-plan",
                detail: e.to_string(),
            },
            BillingError::InvalidPlan(d) => ApiError::Validation {
                detail: d.clone(),
                errors: vec![crate::error::FieldProblem {
                    field: "plan".into(),
                    message: d,
                }],
            },
            BillingError::NotAllowed(d) => ApiError::Unprocessable {
                code: "change-not-allowed",
                detail: d,
            },
            BillingError::ReasonRequired => ApiError::Validation {
                detail: e.to_string(),
                errors: vec![crate::error::FieldProblem {
                    field: "reason".into(),
                    message: "required with immediate".into(),
                }],
            },
            BillingError::ChangePending => ApiError::Conflict {
                code: "plan-change-pending",
                detail: e.to_string(),
            },
            BillingError::SubscriptionNotActive(d) => ApiError::Conflict {
                code: "subscription-not-active",
                detail: d,
            },
            BillingError::WrongState(d) => ApiError::Conflict {
                code: "invalid-transition",
                detail: d,
            },
            BillingError::Declined(d) => {
                ApiError::PaymentRequired(format!("the payment was declined: {d}"))
            }
            BillingError::Gateway(g) => {
                ApiError::Unavailable(anyhow::Error::new(g).context("payment provider"))
            }
            BillingError::Store(s) => s.into(),
            BillingError::Money(m) => ApiError::Internal(anyhow::anyhow!("money: {m}")),
        }
    }
}

/// A plan change (history is kept forever).
#[derive(Debug, Serialize, ToSchema)]
pub struct PlanChange {
    /// Id.
    pub id: Uuid,
    /// Plan before (code).
    pub from_plan: String,
    /// Plan after (code).
    pub to_plan: String,
    /// Deployment before.
    pub from_deployment: String,
    /// Deployment after.
    pub to_deployment: String,
    /// `upgrade` or `downgrade`.
    pub kind: String,
    /// `on_payment`, `end_of_term` or `immediate`.
    pub timing: String,
    /// `pending`, `scheduled`, `applied`, `canceled`, `expired` or `failed`.
    pub status: String,
    /// Charged for it.
    pub amount: Money,
    /// The quote's lines.
    pub lines: serde_json::Value,
    /// Who asked: an email, or `scheduler`.
    pub actor: String,
    /// Why (staff changes).
    pub reason: Option<String>,
    /// When asked.
    pub requested_at: DateTime<Utc>,
    /// When it takes (took) effect.
    pub effective_at: Option<DateTime<Utc>>,
    /// When applied.
    pub applied_at: Option<DateTime<Utc>>,
    /// An unpaid upgrade expires then.
    pub payment_due_by: Option<DateTime<Utc>>,
}

pub(crate) fn money_dto(amount: rust_decimal::Decimal, currency: &str) -> Money {
    let shown = tenantry_domain::Currency::parse(currency)
        .map(|c| {
            tenantry_domain::Money::rounded(amount, c)
                .amount()
                .to_string()
        })
        .unwrap_or_else(|_| amount.normalize().to_string());
    Money {
        amount: shown,
        currency: currency.to_owned(),
    }
}

/// The API view of a plan change.
///
/// # Errors
/// A store error looking up plan codes.
pub async fn change_dto(
    conn: &mut tenantry_store::AsyncPgConnection,
    c: PlanChangeRow,
) -> ApiResult<PlanChange> {
    let from_plan = tenantry_store::catalog::plan_code(conn, c.from_plan_id).await?;
    let to_plan = tenantry_store::catalog::plan_code(conn, c.to_plan_id).await?;
    Ok(change_view(c, from_plan, to_plan))
}

/// The API view of a plan change whose plans' codes are known.
pub(crate) fn change_view(c: PlanChangeRow, from_plan: String, to_plan: String) -> PlanChange {
    PlanChange {
        id: c.id,
        from_plan,
        to_plan,
        from_deployment: c.from_deployment,
        to_deployment: c.to_deployment,
        kind: c.kind.to_string(),
        timing: c.timing.to_string(),
        status: c.status.to_string(),
        amount: money_dto(c.amount, &c.currency),
        lines: c.lines,
        actor: c.actor_label,
        reason: c.reason,
        requested_at: c.requested_at,
        effective_at: c.effective_at,
        applied_at: c.applied_at,
        payment_due_by: c.payment_due_by,
    }
}

fn actor(principal: &Principal, client: &ClientInfo) -> Actor {
    crate::audit::actor(principal, client)
}

fn clock(state: &AppState) -> BillingClock {
    state.settings.billing_clock()
}

/// The tenant `id` (or slug) as `principal` may see it.
async fn tenant(state: &AppState, principal: &Principal, id: &str) -> ApiResult<TenantView> {
    let mut conn = state.pool.get().await?;
    Ok(tenantry_tenancy::find(&mut conn, &crate::audit::viewer(principal), id).await?)
}

async fn tenant_id(state: &AppState, principal: &Principal, id: &str) -> ApiResult<Uuid> {
    Ok(tenant(state, principal, id).await?.tenant.id)
}
