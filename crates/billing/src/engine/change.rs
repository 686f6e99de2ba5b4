//! Plan changes: requesting one (applied at once by staff, scheduled for the
//! end of the billing period for a downgrade, pending until its prorated
//! invoice is paid for an upgrade), confirming an upgrade's payment and
//! applying it, and canceling a scheduled downgrade.

use chrono::{DateTime, Utc};
use serde_json::json;
use tenantry_domain::{
    Money,
    billing::{PlanChangeStatus, ProrationLine, Requester, Timing, proration},
};
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
        previous_period_start: None,
        previous_period_end: None,
        previous_anchor: None,
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
                // Paid in its window, and within the period it prorates over.
                Some(
                    q.subscription
                        .current_period_end
                        .map_or(now + settings.payment_window, |end| {
                            end.min(now + settings.payment_window)
                        }),
                ),
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
                credit_applied: rust_decimal::Decimal::ZERO,
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
                let (change, job) = confirm_payment(
                    pool,
                    clock,
                    change.id,
                    Payment::reference("no-charge"),
                    actor,
                )
                .await?
                .into_parts();
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
                    let (change, job) = confirm_payment(
                        pool,
                        clock,
                        change.id,
                        Payment::reference(&reference),
                        actor,
                    )
                    .await?
                    .into_parts();
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

/// A payment received for a plan change's charge.
#[derive(Debug, Clone, Copy)]
pub struct Payment<'a> {
    /// The provider's reference: an invoice or Checkout Session id, or an
    /// operator's note of a payment received out of band.
    pub reference: &'a str,
    /// What the provider says was paid, when it says (an operator's record
    /// does not): compared with the change's amount and currency.
    pub amount: Option<Money>,
    /// What a refund of this payment goes back through (Stripe: the
    /// PaymentIntent `pi_…`), when known.
    pub refund_via: Option<&'a str>,
}

impl<'a> Payment<'a> {
    /// A payment known only by its reference (an operator's record, a saved
    /// card charged by the gateway for exactly the change's amount).
    pub fn reference(reference: &'a str) -> Self {
        Self {
            reference,
            amount: None,
            refund_via: None,
        }
    }
}

/// What confirming a payment did.
#[derive(Debug, Clone)]
pub enum Confirmation {
    /// The change is applied: now (`applied_at` is now; `job` is its
    /// deployment job, if any), or it already was (a repeated confirmation).
    Applied {
        /// The change.
        change: PlanChange,
        /// Its deployment job, when applying it started one.
        job: Option<Job>,
    },
    /// The payment came when the change could no longer be applied (expired,
    /// abandoned, declined, or the subscription moved on): the money goes
    /// back. `refund` is the refund (a charge of kind `refund`, carried out
    /// by the `billing.refund` job through the provider); an alert is open.
    Refunded {
        /// The change, as it stays.
        change: PlanChange,
        /// The refund.
        refund: Charge,
    },
    /// The payment is not what was asked (another amount or currency): it is
    /// recorded, nothing is applied, and an alert asks an operator to look.
    Unmatched {
        /// The change.
        change: PlanChange,
        /// Why.
        reason: String,
    },
}

impl Confirmation {
    /// The change and, when applying it started one, its deployment job.
    pub fn into_parts(self) -> (PlanChange, Option<Job>) {
        match self {
            Self::Applied { change, job } => (change, job),
            Self::Refunded { change, .. } | Self::Unmatched { change, .. } => (change, None),
        }
    }

    /// The change, whatever happened.
    pub fn change(&self) -> &PlanChange {
        match self {
            Self::Applied { change, .. }
            | Self::Refunded { change, .. }
            | Self::Unmatched { change, .. } => change,
        }
    }
}

/// Records that an upgrade's charge is paid and applies the change: the
/// plan switches, the next renewal uses the new price, and the deployment
/// job starts if the deployment kind differs. Confirming twice is harmless.
/// A late payment (after the change expired, was abandoned or declined) is
/// applied when it still can be, else refunded ([`confirm_payment_in`]).
///
/// # Errors
/// [`BillingError::NotFound`]; [`BillingError::WrongState`] for a change that
/// is not an upgrade paid on payment (a downgrade, a staff override).
pub async fn confirm_payment(
    pool: &Pool,
    clock: &Clock,
    change_id: Uuid,
    payment: Payment<'_>,
    actor: &Actor,
) -> Result<Confirmation, BillingError> {
    let mut conn = pool.get().await?;
    let now = clock.now(&mut conn).await?;
    conn.transaction::<_, BillingError, _>(async |conn| {
        confirm_payment_in(conn, now, change_id, payment, actor).await
    })
    .await
}

/// Whether a change whose payment came late can still be applied as
/// quoted: the subscription is active, still on the change's old plan, in
/// the billing period the quote prorated over and before its end (a
/// lifetime target needs no period), and no other change is open.
async fn still_applicable(
    conn: &mut AsyncPgConnection,
    now: DateTime<Utc>,
    change: &PlanChange,
) -> Result<Result<(), String>, BillingError> {
    let sub = tenantry_store::stripe::lock_subscription(conn, change.subscription_id).await?;
    if sub.status != tenantry_domain::SubscriptionStatus::Active {
        return Ok(Err(format!("the subscription is {}", sub.status)));
    }
    if sub.plan_id != change.from_plan_id {
        return Ok(Err("the tenant is on another plan since".into()));
    }
    if let Some(open) = store::open_change(conn, change.tenant_id).await? {
        return Ok(Err(format!("plan change {} is open", open.id)));
    }
    let to_lifetime = change.lines.as_array().is_some_and(|lines| {
        lines
            .last()
            .is_some_and(|l| l["kind"] == "charge" && l["period_end"].is_null())
    });
    let at = change.proration_date.unwrap_or(change.requested_at);
    let same_period = match (sub.current_period_start, sub.current_period_end) {
        // The period it prorated over is the current one, and still running.
        (Some(start), Some(end)) => start <= at && at < end && now < end,
        _ => true,
    };
    if !to_lifetime && !same_period {
        return Ok(Err(
            "the billing period it was prorated over has ended".into()
        ));
    }
    Ok(Ok(()))
}

/// [`confirm_payment`] in the caller's transaction at `now` (a webhook
/// applies it in the transaction that records the event). When Stripe bills
/// the subscription, a `stripe.sync_price` job moves it to the new Price.
///
/// - A pending upgrade paid in its window, for its amount: applied.
/// - Already applied (or applied and then failed in migration): nothing.
/// - Another amount or currency than asked: [`Confirmation::Unmatched`].
/// - Paid after its window, abandoned or declined: applied if
///   [`still_applicable`], else [`Confirmation::Refunded`]. Money is never
///   kept without the service.
///
/// # Errors
/// As [`confirm_payment`].
pub async fn confirm_payment_in(
    conn: &mut AsyncPgConnection,
    now: DateTime<Utc>,
    change_id: Uuid,
    payment: Payment<'_>,
    actor: &Actor,
) -> Result<Confirmation, BillingError> {
    let change = store::lock_change(conn, change_id)
        .await
        .map_err(|e| match e {
            StoreError::NotFound => BillingError::NotFound(format!("plan change {change_id}")),
            other => other.into(),
        })?;
    if change.timing != Timing::OnPayment {
        return Err(BillingError::WrongState(format!(
            "the plan change is {} ({}); only an upgrade paid on payment can be paid",
            change.status, change.timing
        )));
    }
    let charge = store::upsert_charge(conn, &placeholder_charge(&change, now)).await?;
    if change.status == PlanChangeStatus::Applied
        || (change.status == PlanChangeStatus::Failed && change.applied_at.is_some())
    {
        return Ok(Confirmation::Applied { change, job: None });
    }
    if let Some(paid) = payment.amount {
        let asked = Money::rounded(
            change.amount,
            tenantry_domain::Currency::parse(&change.currency)
                .map_err(|e| BillingError::Money(e.to_string()))?,
        );
        if paid != asked {
            let reason = format!("paid {paid} where {asked} was asked");
            unmatched_payment(conn, now, &change, payment.reference, &reason).await?;
            return Ok(Confirmation::Unmatched { change, reason });
        }
    }
    if charge.status == "paid" && charge.provider_reference.as_deref() == Some(payment.reference) {
        // This payment was recorded before (a repeated delivery).
        if let Some(refund) = store::refund_of(conn, change.id).await? {
            return Ok(Confirmation::Refunded { change, refund });
        }
    }
    let late = match change.status {
        PlanChangeStatus::Pending => change.payment_due_by.is_some_and(|d| d <= now),
        PlanChangeStatus::Expired | PlanChangeStatus::Canceled | PlanChangeStatus::Failed => true,
        PlanChangeStatus::Scheduled | PlanChangeStatus::Applied => {
            return Err(BillingError::WrongState(format!(
                "the plan change is {}",
                change.status
            )));
        }
    };
    if charge.status != "paid" {
        store::record_charge_attempt(conn, charge.id, true, Some(payment.reference), None, None)
            .await?;
    }
    if late {
        if change.status == PlanChangeStatus::Pending {
            store::set_change_status(conn, change.id, PlanChangeStatus::Expired, now, None).await?;
        }
        if let Err(why) = still_applicable(conn, now, &change).await? {
            let refund = refund_payment(conn, now, &change, payment, &why, actor).await?;
            let change = store::lock_change(conn, change.id).await?;
            return Ok(Confirmation::Refunded { change, refund });
        }
    }
    let (applied, job) = store::apply_change(conn, &change, now).await?;
    let applied = store::set_payment_reference(conn, applied.id, payment.reference).await?;
    crate::stripe::jobs::enqueue_price_sync(conn, change.subscription_id).await?;
    activity::record(
        conn,
        &change_activity(
            actor,
            now,
            change.tenant_id,
            if late {
                "plan_change.applied_late"
            } else {
                "plan_change.applied"
            },
            &applied,
            Some(summary(&change)),
            Some(summary(&applied)),
        ),
    )
    .await?;
    Ok(Confirmation::Applied {
        change: applied,
        job,
    })
}

/// A payment that is not what was asked: recorded in the activity log, an
/// alert for an operator, nothing applied.
async fn unmatched_payment(
    conn: &mut AsyncPgConnection,
    now: DateTime<Utc>,
    change: &PlanChange,
    reference: &str,
    reason: &str,
) -> Result<(), BillingError> {
    tenantry_store::activity::Entry::by(&Actor::system("billing"), "payment.unmatched")
        .at(now)
        .tenant(Some(change.tenant_id))
        .target("plan_change", change.id)
        .change(
            None,
            Some(json!({"reference": reference, "reason": reason})),
        )
        .record(conn)
        .await?;
    tenantry_store::alerts::raise(
        conn,
        &tenantry_store::alerts::NewAlert {
            kind: "payment.unmatched",
            severity: tenantry_store::alerts::Severity::Critical,
            message: &format!(
                "payment {reference} for plan change {} was not applied: {reason}; refund it or apply the change by hand",
                change.id
            ),
            tenant_id: Some(change.tenant_id),
            subject: &format!("payment:{reference}"),
        },
    )
    .await?;
    Ok(())
}

/// Refunds a change's payment in full: a `refund` charge (key
/// `refund:{change}`, once), the `billing.refund` job that asks the
/// provider, an activity row and an alert.
async fn refund_payment(
    conn: &mut AsyncPgConnection,
    now: DateTime<Utc>,
    change: &PlanChange,
    payment: Payment<'_>,
    why: &str,
    actor: &Actor,
) -> Result<Charge, BillingError> {
    let mut refund = placeholder_charge(change, now);
    refund.kind = "refund".into();
    refund.idempotency_key = format!("refund:{}", change.id);
    refund.provider_reference = Some(payment.refund_via.unwrap_or(payment.reference).to_owned());
    let refund = store::upsert_charge(conn, &refund).await?;
    tenantry_store::jobs::enqueue(
        conn,
        &tenantry_store::jobs::kinds::BillingRefund {
            tenant_id: change.tenant_id,
            charge_id: refund.id,
        },
    )
    .await?;
    activity::record(
        conn,
        &change_activity(
            actor,
            now,
            change.tenant_id,
            "plan_change.payment_refunded",
            change,
            None,
            Some(json!({"reason": why, "payment": payment.reference, "amount": change.amount.normalize().to_string(), "currency": change.currency})),
        ),
    )
    .await?;
    tenantry_store::alerts::raise(
        conn,
        &tenantry_store::alerts::NewAlert {
            kind: "payment.refunded",
            severity: tenantry_store::alerts::Severity::Warning,
            message: &format!(
                "a payment for plan change {} came too late ({why}): {} {} is refunded",
                change.id,
                change.amount.normalize(),
                change.currency
            ),
            tenant_id: Some(change.tenant_id),
            subject: &format!("plan_change:{}", change.id),
        },
    )
    .await?;
    Ok(refund)
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
        credit_applied: rust_decimal::Decimal::ZERO,
    }
}

/// Cancels the tenant's scheduled downgrade, while its period runs: once
/// the period has ended the downgrade is in effect (the renewal bills the
/// new plan), even if the processor has not applied it yet.
///
/// # Errors
/// [`BillingError::NotFound`] when nothing is scheduled;
/// [`BillingError::WrongState`] when it is due.
pub async fn cancel_scheduled(
    pool: &Pool,
    clock: &Clock,
    tenant_id: Uuid,
    actor: &Actor,
) -> Result<PlanChange, BillingError> {
    let mut conn = pool.get().await?;
    let now = clock.now(&mut conn).await?;
    conn.transaction::<_, BillingError, _>(async |conn| {
        if let Some(due) = store::open_change(conn, tenant_id)
            .await?
            .filter(|c| c.status == PlanChangeStatus::Scheduled)
            .and_then(|c| c.effective_at)
            .filter(|at| *at <= now)
        {
            return Err(BillingError::WrongState(format!(
                "the downgrade took effect at {due}, the end of the billing period"
            )));
        }
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
