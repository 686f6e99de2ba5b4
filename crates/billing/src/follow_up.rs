//! Billing's rules on provisioning's facts ([`ProvisioningEvents`]): what
//! follows, for the subscription and the plan change, when a tenant's
//! service starts or its migration fails. Run in provisioning's transaction.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use serde_json::json;
use tenantry_domain::{
    Currency, Money, SubscriptionStatus,
    billing::{PlanChangeStatus, unserved_share},
};
use tenantry_store::{
    AsyncPgConnection, StoreError,
    activity::Entry,
    billing::{self as store, credits},
    deployments,
    events::ProvisioningEvents,
    tenants::{self, Subscription},
};
use uuid::Uuid;

use crate::engine::Clock;

/// Billing's [`ProvisioningEvents`].
#[derive(Debug, Clone, Copy)]
pub struct BillingFollowUp {
    /// The billing clock (the sandbox's, in sandbox mode).
    pub clock: Clock,
}

#[async_trait]
impl ProvisioningEvents for BillingFollowUp {
    /// A subscription is `incomplete` until its tenant is first served, then
    /// `active` (a paid signup stays `incomplete` while it is provisioned).
    /// When that first service comes after provisioning had given up (the
    /// tenant was `failed`: its `provisioning_failed` events, consumed
    /// here), the customer is credited what they paid for the time before
    /// it ([`credit_unserved`]).
    async fn service_started(
        &self,
        conn: &mut AsyncPgConnection,
        tenant_id: Uuid,
    ) -> Result<(), StoreError> {
        let (sub, _) = tenants::subscription_of(conn, tenant_id).await?;
        if sub.status == SubscriptionStatus::Incomplete
            && deployments::consume_provisioning_failed(conn, tenant_id).await? > 0
        {
            let now = self.clock.now(conn).await?;
            credit_unserved(conn, now, &sub).await?;
        }
        tenants::activate_incomplete_subscription(conn, tenant_id).await
    }

    /// The customer keeps what they had: tenant and subscription go back to
    /// the change's old plan (and its old billing period, when the change
    /// had started a new one), the change is `failed`, and what was paid for
    /// it comes back as a credit — exactly once: the `migration_failed`
    /// provisioning event is consumed here, the credit's source
    /// (`plan_change:{id}:migration_failed`) is unique, and a change already
    /// `failed` is left alone. A Stripe-billed customer's credit goes to
    /// Stripe as a customer balance transaction (`stripe.push_credit`).
    async fn migration_failed(
        &self,
        conn: &mut AsyncPgConnection,
        tenant_id: Uuid,
        plan_change_id: Uuid,
    ) -> Result<(), StoreError> {
        let change = store::lock_change(conn, plan_change_id).await?;
        store::consume_migration_failed(conn, plan_change_id).await?;
        if change.status == PlanChangeStatus::Failed {
            return Ok(());
        }
        tenants::set_plan(
            conn,
            tenant_id,
            change.from_plan_id,
            &change.from_deployment,
        )
        .await?;
        store::restore_period(conn, &change).await?;
        let now = self.clock.now(conn).await?;
        store::set_change_status(
            conn,
            plan_change_id,
            PlanChangeStatus::Failed,
            now,
            change.payment_reference.as_deref(),
        )
        .await?;
        let paid = store::find_charge(conn, &format!("upgrade:{plan_change_id}"))
            .await?
            .is_some_and(|c| c.status == "paid");
        if paid && change.amount > rust_decimal::Decimal::ZERO {
            let source = format!("plan_change:{plan_change_id}:migration_failed");
            if let Some(credit) = credits::record(
                conn,
                &credits::NewCredit {
                    tenant_id,
                    subscription_id: change.subscription_id,
                    amount: change.amount,
                    currency: &change.currency,
                    reason: "migration_failed",
                    source: &source,
                    charge_id: None,
                    provider_reference: None,
                    at: now,
                },
            )
            .await?
            {
                crate::stripe::jobs::enqueue_credit_push(conn, &credit).await?;
                Entry::anonymous("billing", "credit.granted")
                    .tenant(Some(tenant_id))
                    .target("plan_change", plan_change_id)
                    .change(
                        None,
                        Some(json!({"amount": credit.amount.normalize().to_string(), "currency": credit.currency, "reason": credit.reason, "credit_id": credit.id})),
                    )
                    .record(conn)
                    .await?;
            }
        }
        crate::stripe::jobs::enqueue_price_sync(conn, change.subscription_id).await?;
        Ok(())
    }
}

/// A service that started late after its provisioning failed: the paid
/// periods' time before `now` was paid for without service, and comes back
/// as one credit (reason `provisioning_failed`, source
/// `subscription:{id}:service_started_late`, so once), each period's share
/// per second ([`unserved_share`]) of what it cost (paid plus credit
/// applied). A Stripe-billed customer's credit goes to their Stripe
/// balance. Periods not paid (or, on our own path, a signup paid outside
/// any provider, which has no charge) give nothing back.
async fn credit_unserved(
    conn: &mut AsyncPgConnection,
    now: DateTime<Utc>,
    sub: &Subscription,
) -> Result<(), StoreError> {
    let mut owed: Option<(Decimal, String)> = None;
    for c in store::paid_periods(conn, sub.id).await? {
        let (Some(start), Some(end)) = (c.period_start, c.period_end) else {
            continue;
        };
        let Ok(currency) = Currency::parse(&c.currency) else {
            continue;
        };
        let share = unserved_share(
            Money::rounded(c.amount + c.credit_applied, currency),
            start,
            end,
            now,
        );
        let entry = owed.get_or_insert_with(|| (Decimal::ZERO, c.currency.clone()));
        if entry.1 == c.currency {
            entry.0 += share.amount();
        }
    }
    let Some((amount, currency)) = owed.filter(|(a, _)| *a > Decimal::ZERO) else {
        return Ok(());
    };
    let source = format!("subscription:{}:service_started_late", sub.id);
    if let Some(credit) = credits::record(
        conn,
        &credits::NewCredit {
            tenant_id: sub.tenant_id,
            subscription_id: sub.id,
            amount,
            currency: &currency,
            reason: "provisioning_failed",
            source: &source,
            charge_id: None,
            provider_reference: None,
            at: now,
        },
    )
    .await?
    {
        crate::stripe::jobs::enqueue_credit_push(conn, &credit).await?;
        Entry::anonymous("billing", "credit.granted")
            .at(now)
            .tenant(Some(sub.tenant_id))
            .target("subscription", sub.id)
            .change(
                None,
                Some(json!({"amount": credit.amount.normalize().to_string(), "currency": credit.currency, "reason": credit.reason, "credit_id": credit.id, "service_started": now})),
            )
            .record(conn)
            .await?;
    }
    Ok(())
}
