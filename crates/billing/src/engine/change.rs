//! Plan changes: requesting one (applied at once by staff, scheduled for the
//! end of the billing period for a downgrade, pending until its prorated
//! invoice is paid for an upgrade), confirming an upgrade's payment and
//! applying it, and canceling a scheduled downgrade.

use chrono::{DateTime, Utc};
use serde_json::json;
use tenantry_domain::billing::{PlanChangeStatus, ProrationLine, Requester, Timing, proration};
use tenantry_store::{
    AsyncConnection as _, AsyncPgConnection, Pool, StoreError, activity,
    billing::{self as store, Charge, PlanChange},
    jobs::Job,
    tenants::TenantView,
};
use uuid::Uuid;

use super::{
    Actor, BillingError, Clock, EngineSettings, change_activity,
    quote::{ChangeQuote, quote},
};
use crate::gateway::{ChargeOutcome, ChargeRequest, PaymentGateway};

/// What requesting a change did.
#[derive(Debug, Clone)]
pub struct RequestOutcome {
    /// The change as stored.
    pub change: PlanChange,
    /// Its charge, for upgrades.
    pub charge: Option<Charge>,
    /// Where to pay, when the customer must.
    pub checkout_url: Option<String>,
    /// The deployment job, when the change was applied and the deployment kind changed.
    pub job: Option<Job>,
}

/// How a requested change is paid.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PaymentState {
    /// The prorated amount is zero: applied without a charge.
    NoCharge,
    /// Charged off-session to the customer's saved payment method and applied.
    ChargedToSavedPaymentMethod,
    /// Payments are off: an operator records the payment.
    AwaitingOperator,
    /// The customer pays at the Checkout URL; applied once paid.
    CheckoutRequired,
}

impl PaymentState {
    /// `no_charge`, `charged_to_saved_payment_method`, `awaiting_operator`
    /// or `checkout_required`.
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::NoCharge => "no_charge",
            Self::ChargedToSavedPaymentMethod => "charged_to_saved_payment_method",
            Self::AwaitingOperator => "awaiting_operator",
            Self::CheckoutRequired => "checkout_required",
        }
    }
}

impl RequestOutcome {
    /// How the change is paid; `None` for changes that charge nothing now
    /// (downgrades at the period end, staff overrides).
    pub fn payment(&self) -> Option<PaymentState> {
        if self.change.timing != Timing::OnPayment {
            return None;
        }
        Some(if self.change.amount.is_zero() {
            PaymentState::NoCharge
        } else if self.change.status == PlanChangeStatus::Applied {
            PaymentState::ChargedToSavedPaymentMethod
        } else if self.checkout_url.is_none() {
            PaymentState::AwaitingOperator
        } else {
            PaymentState::CheckoutRequired
        })
    }
}

fn lines_json(lines: &[ProrationLine]) -> serde_json::Value {
    serde_json::Value::Array(
        lines
            .iter()
            .map(|l| {
                json!({
                    "kind": match l.kind { proration::LineKind::Credit => "credit", proration::LineKind::Charge => "charge" },
                    "amount": l.amount.amount().to_string(),
                    "currency": l.amount.currency().code(),
                    "period_start": l.period_start,
                    "period_end": l.period_end,
                })
            })
            .collect(),
    )
}

fn new_change(
    q: &ChangeQuote,
    status: PlanChangeStatus,
    actor: &Actor,
    reason: Option<&str>,
    now: DateTime<Utc>,
    payment_due_by: Option<DateTime<Utc>>,
) -> PlanChange {
    PlanChange {
        id: Uuid::now_v7(),
        tenant_id: q.tenant.id,
        subscription_id: q.subscription.id,
        from_plan_id: q.from.id,
        to_plan_id: q.to.id,
        from_deployment: q.from.deployment.clone(),
        to_deployment: q.to.deployment.clone(),
        kind: q.kind,
        timing: q.timing,
        status,
        amount: q.amount_due.amount(),
        currency: q.amount_due.currency().code().into(),
        lines: lines_json(&q.lines),
        proration_date: Some(q.proration_date),
        requested_at: now,
        effective_at: q.effective_at,
        applied_at: None,
        payment_due_by,
        payment_reference: None,
        actor_id: actor.user_id,
        actor_label: actor.label.clone(),
        reason: reason.map(str::to_owned),
        created_at: now,
        updated_at: now,
    }
}

fn summary(c: &PlanChange) -> serde_json::Value {
    json!({"kind": c.kind.as_str(), "timing": c.timing.as_str(), "status": c.status.as_str(), "from_plan_id": c.from_plan_id, "to_plan_id": c.to_plan_id,
           "amount": c.amount.normalize().to_string(), "currency": c.currency, "reason": c.reason})
}

async fn insert_open_change(
    conn: &mut AsyncPgConnection,
    change: &PlanChange,
) -> Result<(), BillingError> {
    store::insert_change(conn, change)
        .await
        .map_err(|e| match e {
            StoreError::Conflict { .. } => BillingError::ChangePending,
            other => other.into(),
        })
}

/// Requests a change: staff overrides apply at once (reason required);
/// downgrades are scheduled at the period end; upgrades create a pending
/// change and a charge for exactly the quoted amount, then ask the gateway
/// (outside any transaction) and apply the change when paid.
///
/// # Errors
/// Those of [`quote`], plus [`BillingError::ChangePending`],
/// [`BillingError::ReasonRequired`], [`BillingError::Declined`],
/// [`BillingError::Gateway`].
#[expect(
    clippy::too_many_arguments,
    reason = "each is one independent input of the request"
)]
pub async fn request_change(
    pool: &Pool,
    gateway: &dyn PaymentGateway,
    clock: &Clock,
    settings: &EngineSettings,
    tenant: &TenantView,
    to_code: &str,
    proration_date: Option<DateTime<Utc>>,
    requester: Requester,
    reason: Option<&str>,
    actor: &Actor,
) -> Result<RequestOutcome, BillingError> {
    let tenant_id = tenant.tenant.id;
    let reason = reason.map(str::trim).filter(|r| !r.is_empty());
    if requester == Requester::StaffOverride && reason.is_none() {
        return Err(BillingError::ReasonRequired);
    }
    let mut conn = pool.get().await?;
    let now = clock.now(&mut conn).await?;
    // An upgrade left unpaid past its window no longer blocks (Paymenter #1266).
    store::expire_unpaid_upgrades(&mut conn, now, Some(tenant_id)).await?;
    let q = quote(
        &mut conn,
        clock,
        settings,
        tenant,
        to_code,
        proration_date,
        requester,
    )
    .await?;

    match q.timing {
        Timing::Immediate => {
            let change = new_change(&q, PlanChangeStatus::Pending, actor, reason, now, None);
            let (change, job) = conn
                .transaction::<_, BillingError, _>(async |conn| {
                    insert_open_change(conn, &change).await?;
                    let (applied, job) = store::apply_change(conn, &change, now).await?;
                    crate::stripe::jobs::enqueue_price_sync(conn, change.subscription_id).await?;
                    activity::record(
                        conn,
                        &change_activity(
                            actor,
                            now,
                            tenant_id,
                            "plan_change.applied",
                            &applied,
                            None,
                            Some(summary(&applied)),
                        ),
                    )
                    .await?;
                    Ok((applied, job))
                })
                .await?;
            Ok(RequestOutcome {
                change,
                charge: None,
                checkout_url: None,
                job,
            })
        }
        Timing::EndOfTerm => {
            let change = new_change(&q, PlanChangeStatus::Scheduled, actor, reason, now, None);
            conn.transaction::<_, BillingError, _>(async |conn| {
                insert_open_change(conn, &change).await?;
                // Stripe bills the next period at the new Price (moved now, without proration).
                crate::stripe::jobs::enqueue_price_sync(conn, change.subscription_id).await?;
                activity::record(
                    conn,
                    &change_activity(
                        actor,
                        now,
                        tenant_id,
                        "plan_change.scheduled",
                        &change,
                        None,
                        Some(summary(&change)),
                    ),
                )
                .await?;
                Ok(())
            })
            .await?;
            Ok(RequestOutcome {
                change,
                charge: None,
                checkout_url: None,
                job: None,
            })
        }
        Timing::OnPayment => {
            let change = new_change(
                &q,
                PlanChangeStatus::Pending,
                actor,
                reason,
                now,
                Some(now + settings.payment_window),
            );
            let charge = Charge {
                id: Uuid::now_v7(),
                tenant_id,
                subscription_id: q.subscription.id,
                kind: "upgrade".into(),
                plan_change_id: Some(change.id),
                amount: q.amount_due.amount(),
                currency: q.amount_due.currency().code().into(),
                status: "pending".into(),
                period_start: None,
                period_end: None,
                attempts: 0,
                next_attempt_at: None,
                provider_reference: None,
                last_error: None,
                idempotency_key: format!("upgrade:{}", change.id),
                created_at: now,
                updated_at: now,
            };
            let charge = conn
                .transaction::<_, BillingError, _>(async |conn| {
                    insert_open_change(conn, &change).await?;
                    let charge = store::upsert_charge(conn, &charge).await?;
                    activity::record(
                        conn,
                        &change_activity(
                            actor,
                            now,
                            tenant_id,
                            "plan_change.requested",
                            &change,
                            None,
                            Some(summary(&change)),
                        ),
                    )
                    .await?;
                    Ok(charge)
                })
                .await?;
            drop(conn);
            if q.amount_due.amount().is_zero() {
                let (change, job) =
                    confirm_payment(pool, clock, change.id, "no-charge", actor).await?;
                return Ok(RequestOutcome {
                    change,
                    charge: Some(charge),
                    checkout_url: None,
                    job,
                });
            }
            let outcome = gateway
                .charge(ChargeRequest {
                    tenant_id,
                    subscription_id: q.subscription.id,
                    amount: q.amount_due,
                    description: format!("Upgrade to {} (prorated)", q.to.name),
                    idempotency_key: charge.idempotency_key.clone(),
                    saved_payment_method: q.subscription.saved_payment_method,
                })
                .await?;
            match outcome {
                ChargeOutcome::Paid { reference } => {
                    let (change, job) =
                        confirm_payment(pool, clock, change.id, &reference, actor).await?;
                    Ok(RequestOutcome {
                        change,
                        charge: Some(charge),
                        checkout_url: None,
                        job,
                    })
                }
                ChargeOutcome::ActionRequired {
                    reference,
                    checkout_url,
                } => {
                    let mut conn = pool.get().await?;
                    let change = store::set_change_status(
                        &mut conn,
                        change.id,
                        PlanChangeStatus::Pending,
                        now,
                        Some(&reference),
                    )
                    .await?;
                    Ok(RequestOutcome {
                        change,
                        charge: Some(charge),
                        checkout_url: Some(checkout_url),
                        job: None,
                    })
                }
                // Payments off: pending until an operator marks it paid.
                ChargeOutcome::AwaitingOperator => Ok(RequestOutcome {
                    change,
                    charge: Some(charge),
                    checkout_url: None,
                    job: None,
                }),
                ChargeOutcome::Declined { reason } => {
                    let mut conn = pool.get().await?;
                    conn.transaction::<_, BillingError, _>(async |conn| {
                        store::record_charge_attempt(
                            conn,
                            charge.id,
                            false,
                            None,
                            Some(&reason),
                            None,
                        )
                        .await?;
                        let failed = store::set_change_status(
                            conn,
                            change.id,
                            PlanChangeStatus::Failed,
                            now,
                            None,
                        )
                        .await?;
                        activity::record(
                            conn,
                            &change_activity(
                                actor,
                                now,
                                tenant_id,
                                "plan_change.payment_declined",
                                &failed,
                                None,
                                Some(json!({"reason": reason})),
                            ),
                        )
                        .await?;
                        Ok(())
                    })
                    .await?;
                    Err(BillingError::Declined(reason))
                }
            }
        }
    }
}

/// Records that an upgrade's charge is paid and applies the change: the
/// plan switches, the next renewal uses the new price, and the deployment
/// job starts if the deployment kind differs. Confirming twice is harmless.
///
/// # Errors
/// [`BillingError::NotFound`], [`BillingError::WrongState`] for a change
/// that is not a pending upgrade (expired, canceled, failed).
pub async fn confirm_payment(
    pool: &Pool,
    clock: &Clock,
    change_id: Uuid,
    reference: &str,
    actor: &Actor,
) -> Result<(PlanChange, Option<Job>), BillingError> {
    let mut conn = pool.get().await?;
    let now = clock.now(&mut conn).await?;
    conn.transaction::<_, BillingError, _>(async |conn| {
        confirm_payment_in(conn, now, change_id, reference, actor).await
    })
    .await
}

/// [`confirm_payment`] in the caller's transaction at `now` (a webhook
/// applies it in the transaction that records the event). When Stripe bills
/// the subscription, a `stripe.sync_price` job moves it to the new Price.
///
/// # Errors
/// As [`confirm_payment`].
pub async fn confirm_payment_in(
    conn: &mut AsyncPgConnection,
    now: DateTime<Utc>,
    change_id: Uuid,
    reference: &str,
    actor: &Actor,
) -> Result<(PlanChange, Option<Job>), BillingError> {
    let change = store::lock_change(conn, change_id)
        .await
        .map_err(|e| match e {
            StoreError::NotFound => BillingError::NotFound(format!("plan change {change_id}")),
            other => other.into(),
        })?;
    if change.status == PlanChangeStatus::Applied {
        return Ok((change, None));
    }
    if change.status != PlanChangeStatus::Pending || change.timing != Timing::OnPayment {
        return Err(BillingError::WrongState(format!(
            "the plan change is {}; only a pending upgrade can be paid",
            change.status
        )));
    }
    if let Some(charge) = store::upsert_charge(conn, &placeholder_charge(&change, now))
        .await
        .ok()
        .filter(|c| c.status != "paid")
    {
        store::record_charge_attempt(conn, charge.id, true, Some(reference), None, None).await?;
    }
    let mut paid = change.clone();
    paid.payment_reference = Some(reference.to_owned());
    let (applied, job) = store::apply_change(conn, &paid, now).await?;
    crate::stripe::jobs::enqueue_price_sync(conn, change.subscription_id).await?;
    activity::record(
        conn,
        &change_activity(
            actor,
            now,
            change.tenant_id,
            "plan_change.applied",
            &applied,
            Some(summary(&change)),
            Some(summary(&applied)),
        ),
    )
    .await?;
    Ok((applied, job))
}

/// The upgrade charge row of a change (found by its key; created if missing).
fn placeholder_charge(change: &PlanChange, now: DateTime<Utc>) -> Charge {
    Charge {
        id: Uuid::now_v7(),
        tenant_id: change.tenant_id,
        subscription_id: change.subscription_id,
        kind: "upgrade".into(),
        plan_change_id: Some(change.id),
        amount: change.amount,
        currency: change.currency.clone(),
        status: "pending".into(),
        period_start: None,
        period_end: None,
        attempts: 0,
        next_attempt_at: None,
        provider_reference: None,
        last_error: None,
        idempotency_key: format!("upgrade:{}", change.id),
        created_at: now,
        updated_at: now,
    }
}

/// Cancels the tenant's scheduled downgrade.
///
/// # Errors
/// [`BillingError::NotFound`] when nothing is scheduled.
pub async fn cancel_scheduled(
    pool: &Pool,
    clock: &Clock,
    tenant_id: Uuid,
    actor: &Actor,
) -> Result<PlanChange, BillingError> {
    let mut conn = pool.get().await?;
    let now = clock.now(&mut conn).await?;
    conn.transaction::<_, BillingError, _>(async |conn| {
        let canceled = store::cancel_open_change(conn, tenant_id, &[PlanChangeStatus::Scheduled])
            .await?
            .ok_or_else(|| BillingError::NotFound("scheduled plan change".into()))?;
        crate::stripe::jobs::enqueue_price_sync(conn, canceled.subscription_id).await?;
        activity::record(
            conn,
            &change_activity(
                actor,
                now,
                tenant_id,
                "plan_change.canceled",
                &canceled,
                None,
                Some(summary(&canceled)),
            ),
        )
        .await?;
        Ok(canceled)
    })
    .await
}
