//! The billing engine: quoting, requesting, paying for and applying plan
//! changes, and the periodic processor (due changes, renewals, dunning).
//!
//! Rules come from `domain::billing` (periods, proration, direction and
//! policy). Outbound payment calls never run inside a database transaction:
//! the intent (a plan change, a charge row keyed by our ids) is committed
//! first, the provider is called with that key, and the outcome is recorded
//! in a second transaction, so a crash anywhere repeats at most an
//! idempotent provider call.

use chrono::{DateTime, Duration, Utc};
use serde_json::json;
use tenantry_domain::{
    BillingInterval, Currency, DeploymentKind, Money,
    billing::{
        BillingPeriod, ChangeKind, PlanPrice, PlanTerms, ProrationConvention, ProrationLine,
        Requester, Timing, change, proration,
    },
};
use tenantry_store::{
    AsyncConnection as _, AsyncPgConnection, Pool, StoreError,
    activity::{self, Activity},
    billing::{self as store, Charge, PlanChange},
    catalog::{self, Plan},
    jobs::Job,
    tenants::{self, Subscription, Tenant},
};
use uuid::Uuid;

use crate::gateway::{ChargeOutcome, ChargeRequest, GatewayError, PaymentGateway};

/// Engine settings (from configuration).
#[derive(Debug, Clone)]
pub struct EngineSettings {
    /// Proration convention (default Stripe's).
    pub convention: ProrationConvention,
    /// How long an upgrade may stay unpaid before it expires (default 24 h).
    pub payment_window: Duration,
    /// How long a preview's `proration_date` is honoured (15 minutes).
    pub quote_validity: Duration,
    /// Past due this long → tenant suspended (default 3 days).
    pub grace: Duration,
    /// Past due this long → subscription expired, tenant deprovisioned (default 14 days).
    pub termination: Duration,
    /// Wait between attempts at a declined renewal (default 1 day).
    pub retry_interval: Duration,
    /// Whether the sandbox clock applies.
    pub sandbox: bool,
}

impl Default for EngineSettings {
    fn default() -> Self {
        Self {
            convention: ProrationConvention::Stripe,
            payment_window: Duration::hours(24),
            quote_validity: Duration::minutes(15),
            grace: Duration::days(3),
            termination: Duration::days(14),
            retry_interval: Duration::days(1),
            sandbox: false,
        }
    }
}

/// The one source of billing time: real time, shifted by the sandbox
/// clock's offset when the sandbox is on (like Stripe test clocks).
#[derive(Debug, Clone, Copy)]
pub struct Clock {
    sandbox: bool,
}

impl Clock {
    /// A clock; `sandbox` makes it follow the stored offset.
    pub fn new(sandbox: bool) -> Self {
        Self { sandbox }
    }

    /// Now, at microsecond precision.
    ///
    /// # Errors
    /// [`StoreError`] reading the sandbox offset.
    pub async fn now(&self, conn: &mut AsyncPgConnection) -> Result<DateTime<Utc>, StoreError> {
        let real = Utc::now();
        let real = real - Duration::nanoseconds(i64::from(real.timestamp_subsec_nanos() % 1000));
        if !self.sandbox {
            return Ok(real);
        }
        Ok(real + Duration::seconds(store::sandbox_offset(conn).await?))
    }
}

/// Why a billing operation failed.
#[derive(Debug, thiserror::Error)]
pub enum BillingError {
    /// No such tenant, change or subscription (or not visible).
    #[error("{0} not found")]
    NotFound(String),
    /// The new plan is the current plan.
    #[error("the tenant is already on this plan")]
    SamePlan,
    /// The plan is not offered for the tenant's product (inactive, unknown or another product's).
    #[error("{0}")]
    InvalidPlan(String),
    /// The policy forbids this change for this requester.
    #[error("{0}")]
    NotAllowed(String),
    /// A staff override needs a reason.
    #[error("a reason is required when staff change a plan without payment")]
    ReasonRequired,
    /// The tenant already has a pending or scheduled change.
    #[error("the tenant already has a pending or scheduled plan change; cancel it or wait for it")]
    ChangePending,
    /// The subscription is not in a state that can change plans.
    #[error("{0}")]
    SubscriptionNotActive(String),
    /// The change is not in a state this operation applies to.
    #[error("{0}")]
    WrongState(String),
    /// The payment was declined.
    #[error("payment declined: {0}")]
    Declined(String),
    /// The payment provider failed.
    #[error(transparent)]
    Gateway(#[from] GatewayError),
    /// The database failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Money arithmetic failed (a bug: mixed currencies).
    #[error("money: {0}")]
    Money(String),
}

impl From<tenantry_store::DieselError> for BillingError {
    fn from(e: tenantry_store::DieselError) -> Self {
        Self::Store(e.into())
    }
}

/// Who acts, for history and activity.
#[derive(Debug, Clone)]
pub struct Actor {
    /// The user, if a user acts.
    pub user_id: Option<Uuid>,
    /// The API token used.
    pub token_id: Option<Uuid>,
    /// As shown: an email or `scheduler`.
    pub label: String,
    /// Client IP.
    pub client_ip: Option<String>,
    /// User agent.
    pub user_agent: Option<String>,
    /// Request id.
    pub request_id: Option<String>,
}

impl Actor {
    /// The processor.
    pub fn scheduler() -> Self {
        Self {
            user_id: None,
            token_id: None,
            label: "scheduler".into(),
            client_ip: None,
            user_agent: None,
            request_id: None,
        }
    }

    fn activity(
        &self,
        at: DateTime<Utc>,
        tenant: Uuid,
        action: &str,
        target: &PlanChange,
        before: Option<serde_json::Value>,
        after: Option<serde_json::Value>,
    ) -> Activity {
        Activity {
            id: Uuid::now_v7(),
            occurred_at: at,
            actor_id: self.user_id,
            actor_token_id: self.token_id,
            actor_label: self.label.clone(),
            tenant_id: Some(tenant),
            action: action.to_owned(),
            target_type: Some("plan_change".into()),
            target_id: Some(target.id.to_string()),
            before,
            after,
            client_ip: self.client_ip.clone(),
            user_agent: self.user_agent.clone(),
            request_id: self.request_id.clone(),
        }
    }
}

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
    let c = Currency::parse(&plan.currency).map_err(|e| BillingError::Money(e.to_string()))?;
    Ok(Money::rounded(plan.price, c))
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
    tenant_id: Uuid,
    to_code: &str,
    proration_date: Option<DateTime<Utc>>,
    requester: Requester,
) -> Result<ChangeQuote, BillingError> {
    let now = clock.now(conn).await?;
    let view = tenants::find_tenant(conn, &tenant_id.to_string(), tenants::Visibility::All)
        .await
        .map_err(|e| match e {
            StoreError::NotFound => BillingError::NotFound(format!("tenant {tenant_id}")),
            other => other.into(),
        })?;
    let (subscription, from) = tenants::subscription_of(conn, tenant_id).await?;
    if subscription.status != "active" {
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
        tenant: view.tenant,
        subscription,
    })
}

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
    status: &str,
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
        kind: q.kind.as_str().into(),
        timing: q.timing.as_str().into(),
        status: status.into(),
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
    json!({"kind": c.kind, "timing": c.timing, "status": c.status, "from_plan_id": c.from_plan_id, "to_plan_id": c.to_plan_id,
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
    tenant_id: Uuid,
    to_code: &str,
    proration_date: Option<DateTime<Utc>>,
    requester: Requester,
    reason: Option<&str>,
    actor: &Actor,
) -> Result<RequestOutcome, BillingError> {
    let reason = reason.map(str::trim).filter(|r| !r.is_empty());
    if requester == Requester::StaffOverride && reason.is_none() {
        return Err(BillingError::ReasonRequired);
    }
    let mut conn = pool.get().await?;
    let now = clock.now(&mut conn).await?;
    // An upgrade left unpaid past its window no longer blocks (Paymenter #1266).
    store::expire_unpaid_upgrades(&mut conn, now).await?;
    let q = quote(
        &mut conn,
        clock,
        settings,
        tenant_id,
        to_code,
        proration_date,
        requester,
    )
    .await?;

    match q.timing {
        Timing::Immediate => {
            let change = new_change(&q, "pending", actor, reason, now, None);
            let (change, job) = conn
                .transaction::<_, BillingError, _>(async |conn| {
                    insert_open_change(conn, &change).await?;
                    let (applied, job) = store::apply_change(conn, &change, now).await?;
                    crate::stripe::jobs::enqueue_price_sync(conn, change.subscription_id).await?;
                    activity::record(
                        conn,
                        &actor.activity(
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
            let change = new_change(&q, "scheduled", actor, reason, now, None);
            conn.transaction::<_, BillingError, _>(async |conn| {
                insert_open_change(conn, &change).await?;
                // Stripe bills the next period at the new Price (moved now, without proration).
                crate::stripe::jobs::enqueue_price_sync(conn, change.subscription_id).await?;
                activity::record(
                    conn,
                    &actor.activity(
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
                "pending",
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
                        &actor.activity(
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
                        "pending",
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
                        let failed =
                            store::set_change_status(conn, change.id, "failed", now, None).await?;
                        activity::record(
                            conn,
                            &actor.activity(
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
    if change.status == "applied" {
        return Ok((change, None));
    }
    if change.status != "pending" || change.timing != "on_payment" {
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
        &actor.activity(
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
        let canceled = store::cancel_open_change(conn, tenant_id, &["scheduled"])
            .await?
            .ok_or_else(|| BillingError::NotFound("scheduled plan change".into()))?;
        crate::stripe::jobs::enqueue_price_sync(conn, canceled.subscription_id).await?;
        activity::record(
            conn,
            &actor.activity(
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

/// What one processor run did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ProcessReport {
    /// Unpaid upgrades expired.
    pub expired_upgrades: i64,
    /// Scheduled changes applied.
    pub applied_changes: i64,
    /// Renewals paid.
    pub renewed: i64,
    /// Renewals declined (now past due).
    pub declined: i64,
    /// Renewals waiting for the customer at a checkout.
    pub awaiting_customer: i64,
    /// Tenants un-suspended by a successful payment.
    pub recovered: i64,
    /// Tenants suspended for non-payment.
    pub suspended: i64,
    /// Subscriptions terminated for non-payment.
    pub terminated: i64,
    /// Tenants whose canceled subscription's paid period ended
    /// (deprovisioned).
    pub ended: i64,
}

/// Rows a set-based step takes per statement.
const BATCH: i64 = 1000;
/// Concurrent workers of the set-based steps (each with its own connection).
const WORKERS: usize = 3;

/// One processor run at the clock's now: expire unpaid upgrades, apply due
/// scheduled changes (before renewals, so renewals bill the new price),
/// charge due renewals, then suspend and terminate overdue subscriptions
/// and end the service of canceled ones whose period is over. Safe to run concurrently and to repeat.
///
/// # Errors
/// [`BillingError::Store`]; gateway failures of single renewals are logged
/// and retried next run.
pub async fn process_due(
    pool: &Pool,
    gateway: &dyn PaymentGateway,
    clock: &Clock,
    settings: &EngineSettings,
) -> Result<ProcessReport, BillingError> {
    let mut report = ProcessReport::default();
    let mut conn = pool.get().await?;
    let now = clock.now(&mut conn).await?;
    let started = std::time::Instant::now();
    report.expired_upgrades = store::expire_unpaid_upgrades(&mut conn, now).await?;
    drop(conn);
    // Batches are claimed with SKIP LOCKED, so workers never share a row:
    // a few run side by side to use the database's cores.
    let workers = (0..WORKERS).map(|_| async {
        let mut conn = pool.get().await?;
        let mut applied = 0;
        loop {
            let n = store::apply_due_changes(&mut conn, now, BATCH).await?;
            applied += n;
            if n < BATCH {
                return Ok::<_, BillingError>(applied);
            }
        }
    });
    for applied in futures_util::future::join_all(workers).await {
        report.applied_changes += applied?;
    }
    let applied = started.elapsed();
    renew_due(pool, gateway, now, settings, &mut report).await?;
    let renewed = started.elapsed();
    let mut conn = pool.get().await?;
    report.suspended = store::suspend_overdue(&mut conn, now, settings.grace).await?;
    report.terminated = store::terminate_overdue(&mut conn, now, settings.termination).await?;
    report.ended = store::end_canceled(&mut conn, now).await?;
    tracing::debug!(
        changes_ms = applied.as_millis(),
        renewals_ms = (renewed - applied).as_millis(),
        dunning_ms = (started.elapsed() - renewed).as_millis(),
        "billing processor phases"
    );
    Ok(report)
}

/// Renewals looked at per batch.
const RENEWAL_BATCH: i64 = 1000;
/// How long a processor holds a claimed charge before another may retry it.
const CHARGE_LEASE_MINUTES: i64 = 10;

/// Charges the renewals due at `now` in batches: charge rows are created
/// and claimed set-based (one per subscription and period, so a re-run never
/// charges twice), the gateway is called for each outside any transaction
/// with the charge's key, and the outcomes are recorded set-based.
async fn renew_due(
    pool: &Pool,
    gateway: &dyn PaymentGateway,
    now: DateTime<Utc>,
    settings: &EngineSettings,
    report: &mut ProcessReport,
) -> Result<(), BillingError> {
    // Workers take the next page of candidates from a shared cursor, so
    // none waits for another's page to finish.
    let cursor = tokio::sync::Mutex::new(None::<(DateTime<Utc>, Uuid)>);
    let worker = || async {
        let mut total = ProcessReport::default();
        loop {
            let page = {
                let mut after = cursor.lock().await;
                let mut conn = pool.get().await?;
                let page = store::renewal_candidates(&mut conn, now, *after, RENEWAL_BATCH).await?;
                if let Some(last) = page.last() {
                    *after = Some((last.current_period_end, last.subscription_id));
                }
                page
            };
            if page.is_empty() {
                return Ok::<_, BillingError>(total);
            }
            let partial = renew_page(pool, gateway, now, settings, page).await?;
            total.renewed += partial.renewed;
            total.declined += partial.declined;
            total.awaiting_customer += partial.awaiting_customer;
            total.recovered += partial.recovered;
        }
    };
    for partial in futures_util::future::join_all((0..WORKERS).map(|_| worker())).await {
        let partial = partial?;
        report.renewed += partial.renewed;
        report.declined += partial.declined;
        report.awaiting_customer += partial.awaiting_customer;
        report.recovered += partial.recovered;
    }
    Ok(())
}

/// Charges one page of renewal candidates.
async fn renew_page(
    pool: &Pool,
    gateway: &dyn PaymentGateway,
    now: DateTime<Utc>,
    settings: &EngineSettings,
    candidates: Vec<store::RenewalCandidate>,
) -> Result<ProcessReport, BillingError> {
    let mut report = ProcessReport::default();
    {
        let mut conn = pool.get().await?;
        let mut saved = std::collections::HashMap::new();
        let mut renewals = Vec::with_capacity(candidates.len());
        for c in &candidates {
            let Ok(interval) = c.billing_interval.parse::<BillingInterval>() else {
                continue;
            };
            let Ok(currency) = Currency::parse(&c.currency) else {
                continue;
            };
            let anchor = c.billing_anchor.unwrap_or(c.current_period_start);
            let Some(next) = BillingPeriod::containing(anchor, interval, c.current_period_end)
            else {
                continue;
            };
            let Some(end) = next.end else { continue };
            saved.insert(c.subscription_id, c.saved_payment_method);
            renewals.push(store::NewRenewal {
                tenant_id: c.tenant_id,
                subscription_id: c.subscription_id,
                amount: Money::rounded(c.price, currency).amount(),
                currency: currency.code().to_owned(),
                period_start: next.start,
                period_end: end,
                idempotency_key: format!(
                    "renewal:{}:{}",
                    c.subscription_id,
                    next.start.timestamp()
                ),
            });
        }
        let t0 = std::time::Instant::now();
        let claimed = store::claim_renewal_charges(
            &mut conn,
            now,
            &renewals,
            Duration::minutes(CHARGE_LEASE_MINUTES),
        )
        .await?;
        tracing::trace!(
            ms = t0.elapsed().as_millis(),
            n = claimed.len(),
            "claimed renewal charges"
        );
        drop(conn);
        let mut results = Vec::with_capacity(claimed.len());
        for charge in claimed {
            let Ok(currency) = Currency::parse(&charge.currency) else {
                continue;
            };
            let amount = Money::rounded(charge.amount, currency);
            let outcome = gateway
                .charge(ChargeRequest {
                    tenant_id: charge.tenant_id,
                    subscription_id: charge.subscription_id,
                    amount,
                    description: "Subscription renewal".into(),
                    idempotency_key: charge.idempotency_key.clone(),
                    saved_payment_method: saved
                        .get(&charge.subscription_id)
                        .copied()
                        .unwrap_or(false),
                })
                .await;
            let period = json!({"amount": amount.amount().to_string(), "currency": amount.currency().code(), "period_start": charge.period_start, "period_end": charge.period_end});
            let result = match outcome {
                // Left `processing`: retried when the lease ends, with the same key.
                Err(e) => {
                    tracing::warn!(subscription = %charge.subscription_id, error = %e, "renewal charge failed; retried later");
                    continue;
                }
                Ok(ChargeOutcome::Paid { reference }) => {
                    report.renewed += 1;
                    store::RenewalResult {
                        charge,
                        paid: true,
                        reference: Some(reference),
                        error: None,
                        action: "subscription.renewed".into(),
                        details: period,
                    }
                }
                Ok(ChargeOutcome::Declined { reason }) => {
                    report.declined += 1;
                    store::RenewalResult {
                        charge,
                        paid: false,
                        reference: None,
                        error: Some(reason.clone()),
                        action: "subscription.payment_failed".into(),
                        details: json!({"reason": reason, "status": "past_due"}),
                    }
                }
                Ok(ChargeOutcome::AwaitingOperator) => {
                    report.awaiting_customer += 1;
                    store::RenewalResult {
                        charge,
                        paid: false,
                        reference: None,
                        error: Some("awaiting an operator (payments are disabled)".into()),
                        action: "subscription.payment_required".into(),
                        details: json!({"status": "past_due", "payments": "disabled"}),
                    }
                }
                Ok(ChargeOutcome::ActionRequired {
                    reference,
                    checkout_url,
                }) => {
                    report.awaiting_customer += 1;
                    store::RenewalResult {
                        charge,
                        paid: false,
                        reference: Some(reference),
                        error: Some(format!("awaiting payment at {checkout_url}")),
                        action: "subscription.payment_required".into(),
                        details: json!({"checkout_url": checkout_url, "status": "past_due"}),
                    }
                }
            };
            results.push(result);
        }
        if !results.is_empty() {
            let mut conn = pool.get().await?;
            let t0 = std::time::Instant::now();
            report.recovered +=
                store::record_renewals(&mut conn, now, now + settings.retry_interval, &results)
                    .await?;
            tracing::trace!(
                ms = t0.elapsed().as_millis(),
                n = results.len(),
                "recorded renewals"
            );
        }
    }
    Ok(report)
}
