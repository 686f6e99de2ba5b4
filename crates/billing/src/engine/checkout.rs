//! What a customer owes, payable again: the signup's first payment while
//! the tenant awaits it, or a pending upgrade's charge. The gateway hands
//! out the open session, or a new one when the old one expired (Stripe
//! Checkout Sessions expire after 24 h: docs.stripe.com/api/checkout/sessions/create#create_checkout_session-expires_at).
//! Also: abandoning a pending upgrade its requester no longer wants to pay.

use chrono::{DateTime, Utc};
use serde_json::json;
use tenantry_domain::{Currency, Money, TenantStatus, billing::PlanChangeStatus};
use tenantry_store::{
    AsyncConnection as _, Pool, activity,
    billing::{self as store, PlanChange},
    stripe::owner_email,
    tenants,
};
use uuid::Uuid;

use super::{Actor, BillingError, Clock, change_activity};
use crate::gateway::{ChargeOutcome, ChargeRequest, CheckoutRequest, PaymentGateway};

/// What a checkout is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OwedFor {
    /// The signup's first payment.
    Signup,
    /// A pending upgrade's prorated charge.
    Upgrade(Uuid),
}

/// A checkout for what the tenant owes.
#[derive(Debug, Clone)]
pub struct OwedCheckout {
    /// What it pays.
    pub owed_for: OwedFor,
    /// How much.
    pub amount: Money,
    /// The provider's session id.
    pub session_id: String,
    /// Where the customer pays.
    pub url: String,
}

fn money(amount: rust_decimal::Decimal, code: &str) -> Result<Money, BillingError> {
    let c = Currency::parse(code).map_err(|e| BillingError::Money(e.to_string()))?;
    Ok(Money::rounded(amount, c))
}

/// A checkout for what tenant `tenant_id` owes now: the signup's first
/// payment (tenant `pending_payment`), else its pending upgrade's charge.
///
/// # Errors
/// [`BillingError::NotFound`] when nothing is owed; [`BillingError::Gateway`]
/// when the provider fails or payments are off.
pub async fn checkout_for(
    pool: &Pool,
    gateway: &dyn PaymentGateway,
    tenant_id: Uuid,
) -> Result<OwedCheckout, BillingError> {
    let mut conn = pool.get().await?;
    let tenant = tenants::lock_tenant(&mut conn, tenant_id).await?;
    let (sub, plan) = tenants::subscription_of(&mut conn, tenant_id).await?;
    if tenant.status == TenantStatus::PendingPayment {
        let email = owner_email(&mut conn, tenant_id).await?;
        let product = tenantry_store::catalog::find_product_by_id(&mut conn, tenant.product_id)
            .await?
            .slug;
        drop(conn);
        let price = money(plan.price, &plan.currency)?;
        let session = gateway
            .create_checkout(CheckoutRequest {
                tenant_id,
                subscription_id: sub.id,
                email,
                product,
                plan: plan.code.clone(),
                price,
            })
            .await?;
        return Ok(OwedCheckout {
            owed_for: OwedFor::Signup,
            amount: price,
            session_id: session.id,
            url: session.url,
        });
    }
    let change = store::open_change(&mut conn, tenant_id)
        .await?
        .filter(|c| c.status == PlanChangeStatus::Pending && !c.amount.is_zero())
        .ok_or_else(|| BillingError::NotFound("anything to pay".into()))?;
    drop(conn);
    let amount = money(change.amount, &change.currency)?;
    let outcome = gateway
        .charge(ChargeRequest {
            tenant_id,
            subscription_id: sub.id,
            amount,
            description: "Upgrade (prorated)".into(),
            idempotency_key: format!("upgrade:{}", change.id),
            saved_payment_method: false,
        })
        .await?;
    match outcome {
        ChargeOutcome::ActionRequired {
            reference,
            checkout_url,
        } => Ok(OwedCheckout {
            owed_for: OwedFor::Upgrade(change.id),
            amount,
            session_id: reference,
            url: checkout_url,
        }),
        ChargeOutcome::Paid { .. } => Err(BillingError::WrongState(
            "the upgrade is paid already".into(),
        )),
        ChargeOutcome::AwaitingOperator => Err(BillingError::NotAllowed(
            "payments are disabled: an operator records the payment".into(),
        )),
        ChargeOutcome::Declined { reason } => Err(BillingError::Declined(reason)),
    }
}

/// Abandons a pending upgrade that is not paid (stuck on a gateway error, or
/// the customer changed their mind): the change `canceled`, its charge
/// `canceled`, an activity row. Its requester or staff may. A payment that
/// still arrives for it is refunded (or applied if it still can be).
///
/// # Errors
/// [`BillingError::NotFound`] (no such pending change of the tenant),
/// [`BillingError::NotAllowed`] (someone else's request),
/// [`BillingError::WrongState`] (already paid).
pub async fn abandon_pending(
    pool: &Pool,
    clock: &Clock,
    tenant_id: Uuid,
    change_id: Uuid,
    actor: &Actor,
    staff: bool,
) -> Result<PlanChange, BillingError> {
    let mut conn = pool.get().await?;
    let now: DateTime<Utc> = clock.now(&mut conn).await?;
    conn.transaction::<_, BillingError, _>(async |conn| {
        let change = store::lock_change(conn, change_id)
            .await
            .ok()
            .filter(|c| c.tenant_id == tenant_id && c.status == PlanChangeStatus::Pending)
            .ok_or_else(|| BillingError::NotFound(format!("pending plan change {change_id}")))?;
        if !staff && actor.user_id.is_none_or(|u| change.actor_id != Some(u)) {
            return Err(BillingError::NotAllowed(
                "only who asked for the change, or staff, may abandon it".into(),
            ));
        }
        let charge = store::find_charge(conn, &format!("upgrade:{change_id}")).await?;
        if charge.as_ref().is_some_and(|c| c.status == "paid") {
            return Err(BillingError::WrongState(
                "the upgrade is paid: it is being applied".into(),
            ));
        }
        if let Some(c) = &charge {
            store::set_charge_status(conn, c.id, "canceled").await?;
        }
        let canceled =
            store::set_change_status(conn, change_id, PlanChangeStatus::Canceled, now, None)
                .await?;
        activity::record(
            conn,
            &change_activity(
                actor,
                now,
                tenant_id,
                "plan_change.abandoned",
                &canceled,
                Some(json!({"status": change.status.as_str()})),
                Some(json!({"status": canceled.status.as_str()})),
            ),
        )
        .await?;
        Ok(canceled)
    })
    .await
}
