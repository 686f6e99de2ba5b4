//! A subscription as its customer sees it on the billing clock: the plan it
//! bills, the next charge (at the price of the plan a scheduled downgrade
//! moves to by the period end), the days left, the open plan change.

use chrono::{DateTime, Utc};
use tenantry_domain::{Currency, Money, SubscriptionStatus, billing::PlanChangeStatus};
use tenantry_store::{
    AsyncPgConnection, billing as store,
    billing::{PlanChange, credits},
    catalog,
    catalog::Plan,
    tenants,
    tenants::Subscription,
};
use uuid::Uuid;

use super::{BillingError, Clock};

/// The next renewal charge of a recurring, active subscription.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NextCharge {
    /// When: the current billing period's end.
    pub at: DateTime<Utc>,
    /// How much is charged, in the plan's currency: the price less the
    /// credit applied to it.
    pub amount: Money,
    /// The part of the price paid from the credit balance.
    pub credit_applied: Money,
}

/// A subscription at `now`.
#[derive(Debug, Clone)]
pub struct SubscriptionView {
    /// The row.
    pub subscription: Subscription,
    /// The plan it bills now.
    pub plan: Plan,
    /// The next renewal charge (`None` for lifetime plans and subscriptions
    /// not `active`).
    pub next_charge: Option<NextCharge>,
    /// Whole days until the period ends (0 once over); `None` without one.
    pub days_remaining: Option<i64>,
    /// The open (pending or scheduled) plan change.
    pub open_change: Option<PlanChange>,
    /// Credit left to apply, per currency (the ledger's balance).
    pub credit_balance: Vec<Money>,
}

impl SubscriptionView {
    /// The view of `subscription` on `plan` at `now`, whose next charge is
    /// billed at `next_plan` (the plan in effect at the period end).
    ///
    /// # Errors
    /// [`BillingError::Money`] for a plan priced in an unknown currency.
    pub fn new(
        subscription: Subscription,
        plan: Plan,
        next_plan: &Plan,
        open_change: Option<PlanChange>,
        credit_balance: Vec<Money>,
        now: DateTime<Utc>,
    ) -> Result<Self, BillingError> {
        let next_charge = match subscription.current_period_end {
            Some(at)
                if subscription.status == SubscriptionStatus::Active
                    && next_plan.billing_interval != "lifetime" =>
            {
                let price = next_plan
                    .price()
                    .map_err(|e| BillingError::Money(e.to_string()))?;
                let credit = credit_balance
                    .iter()
                    .find(|m| m.currency() == price.currency() && !m.is_negative())
                    .map_or(rust_decimal::Decimal::ZERO, |m| {
                        m.amount().min(price.amount())
                    });
                let credit_applied = Money::rounded(credit, price.currency());
                Some(NextCharge {
                    at,
                    amount: price
                        .checked_sub(&credit_applied)
                        .map_err(|e| BillingError::Money(e.to_string()))?,
                    credit_applied,
                })
            }
            _ => None,
        };
        let days_remaining = subscription
            .current_period_end
            .map(|end| (end - now).num_days().max(0));
        Ok(Self {
            subscription,
            plan,
            next_charge,
            days_remaining,
            open_change,
            credit_balance,
        })
    }
}

/// Tenant `tenant_id`'s subscription now: a downgrade scheduled to take
/// effect by the period end sets the next charge's price.
///
/// # Errors
/// [`BillingError::Store`] (`NotFound` without a subscription), [`BillingError::Money`].
pub async fn subscription_view(
    conn: &mut AsyncPgConnection,
    clock: &Clock,
    tenant_id: Uuid,
) -> Result<SubscriptionView, BillingError> {
    let (sub, plan) = tenants::subscription_of(conn, tenant_id).await?;
    let now = clock.now(conn).await?;
    let open = store::open_change(conn, tenant_id).await?;
    let next_plan = match &open {
        Some(c)
            if c.status == PlanChangeStatus::Scheduled
                && c.effective_at.is_some()
                && c.effective_at <= sub.current_period_end =>
        {
            catalog::find_plan_by_id(conn, c.to_plan_id).await?
        }
        _ => plan.clone(),
    };
    let mut credit_balance = Vec::new();
    for (code, amount) in credits::balances(conn, sub.id).await? {
        let currency = Currency::parse(&code).map_err(|e| BillingError::Money(e.to_string()))?;
        credit_balance.push(Money::rounded(amount, currency));
    }
    SubscriptionView::new(sub, plan, &next_plan, open, credit_balance, now)
}
