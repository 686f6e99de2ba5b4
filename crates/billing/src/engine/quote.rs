//! Quotes: a plan change priced before anything is stored. Upgrade or
//! downgrade, the policy's timing and, for an upgrade, the prorated amount
//! due now with its credit and charge lines over the current billing period
//! (Stripe's proration preview, honoured by its `proration_date`).

use chrono::{DateTime, Utc};
use tenantry_domain::{
    BillingInterval, DeploymentKind, Money, SubscriptionStatus,
    billing::{
        BillingPeriod, ChangeKind, PlanPrice, PlanTerms, ProrationLine, Requester, Timing, change,
        proration,
    },
};
use tenantry_store::{
    AsyncPgConnection, StoreError,
    catalog::{self, Plan},
    tenants::{self, Subscription, Tenant, TenantView},
};

use super::{BillingError, Clock, EngineSettings};

/// A priced plan change, before anything is stored.
#[derive(Debug, Clone)]
pub struct ChangeQuote {
    /// Upgrade or downgrade.
    pub kind: ChangeKind,
    /// When it would take effect.
    pub timing: Timing,
    /// The instant it would take effect (`None` for upgrades: when paid).
    pub effective_at: Option<DateTime<Utc>>,
    /// What is charged now.
    pub amount_due: Money,
    /// Credit and charge lines with their periods (empty when nothing is charged).
    pub lines: Vec<ProrationLine>,
    /// The instant the quote is computed for.
    pub proration_date: DateTime<Utc>,
    /// The current plan.
    pub from: Plan,
    /// The new plan.
    pub to: Plan,
    /// The tenant.
    pub tenant: Tenant,
    /// Its subscription.
    pub subscription: Subscription,
}

fn money(plan: &Plan) -> Result<Money, BillingError> {
    plan.price().map_err(|e| BillingError::Money(e.to_string()))
}

fn interval(plan: &Plan) -> Result<BillingInterval, BillingError> {
    plan.billing_interval.parse().map_err(BillingError::Money)
}

fn terms(plan: &Plan) -> Result<PlanTerms, BillingError> {
    let as_u32 = |n: i32| u32::try_from(n).unwrap_or(0);
    Ok(PlanTerms {
        price: money(plan)?,
        interval: interval(plan)?,
        deployment: plan
            .deployment
            .parse::<DeploymentKind>()
            .map_err(BillingError::Money)?,
        cpu_cores: as_u32(plan.cpu_cores),
        memory_mib: as_u32(plan.memory_mib),
        storage_gib: as_u32(plan.storage_gib),
    })
}

/// Prices changing `tenant_id` to plan `to_code` of its product: the
/// direction, the policy's timing and, for upgrades, the prorated amount.
/// A `proration_date` from a preview is honoured for
/// [`EngineSettings::quote_validity`] (so the charge equals the preview);
/// older ones are replaced by now. Changes nothing.
///
/// # Errors
/// [`BillingError::NotFound`], [`BillingError::InvalidPlan`],
/// [`BillingError::SamePlan`], [`BillingError::NotAllowed`],
/// [`BillingError::SubscriptionNotActive`].
pub async fn quote(
    conn: &mut AsyncPgConnection,
    clock: &Clock,
    settings: &EngineSettings,
    view: &TenantView,
    to_code: &str,
    proration_date: Option<DateTime<Utc>>,
    requester: Requester,
) -> Result<ChangeQuote, BillingError> {
    let now = clock.now(conn).await?;
    let tenant_id = view.tenant.id;
    let (subscription, from) = tenants::subscription_of(conn, tenant_id).await?;
    if subscription.status != SubscriptionStatus::Active {
        return Err(BillingError::SubscriptionNotActive(format!(
            "the subscription is {}; plans change on active subscriptions",
            subscription.status
        )));
    }
    let to = match catalog::find_plan(conn, view.tenant.product_id, to_code).await {
        Ok(p) if p.active => p,
        Ok(_) | Err(StoreError::NotFound) => {
            return Err(BillingError::InvalidPlan(format!(
                "product {:?} offers no plan {to_code:?}",
                view.product_slug
            )));
        }
        Err(e) => return Err(e.into()),
    };
    if to.id == from.id {
        return Err(BillingError::SamePlan);
    }
    let kind = change::classify(&terms(&from)?, &terms(&to)?).map_err(|e| match e {
        change::CompareError::SamePlan => BillingError::SamePlan,
        change::CompareError::Currency => {
            BillingError::InvalidPlan("the new plan is priced in another currency".into())
        }
    })?;
    let from_interval = interval(&from)?;
    let timing = change::policy(from_interval, kind, requester)
        .map_err(|e| BillingError::NotAllowed(e.to_string()))?;
    let at = proration_date
        .filter(|d| *d <= now && now - *d <= settings.quote_validity)
        .filter(|d| subscription.current_period_start.is_none_or(|s| *d >= s))
        .unwrap_or(now);
    let zero = Money::zero(money(&from)?.currency());
    let (amount_due, lines, effective_at) = match timing {
        Timing::Immediate => (zero, Vec::new(), Some(now)),
        Timing::EndOfTerm => (zero, Vec::new(), subscription.current_period_end),
        Timing::OnPayment => {
            let old = PlanPrice {
                price: money(&from)?,
                interval: from_interval,
            };
            let new = PlanPrice {
                price: money(&to)?,
                interval: interval(&to)?,
            };
            match (
                subscription.current_period_start,
                subscription.current_period_end,
            ) {
                (Some(start), Some(end)) => {
                    let q = proration::quote(
                        settings.convention,
                        old,
                        new,
                        BillingPeriod {
                            start,
                            end: Some(end),
                        },
                        at,
                    )
                    .map_err(|e| BillingError::Money(e.to_string()))?;
                    (q.amount_due, q.lines, None)
                }
                // A lifetime plan upgraded to a pricier lifetime plan: the difference.
                _ => {
                    let due = new
                        .price
                        .checked_sub(&old.price)
                        .map_err(|e| BillingError::Money(e.to_string()))?;
                    (if due.is_negative() { zero } else { due }, Vec::new(), None)
                }
            }
        }
    };
    Ok(ChangeQuote {
        kind,
        timing,
        effective_at,
        amount_due,
        lines,
        proration_date: at,
        from,
        to,
        tenant: view.tenant.clone(),
        subscription,
    })
}
