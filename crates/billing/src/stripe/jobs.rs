//! The `stripe.*` jobs: every outbound Stripe call runs in one (or in its
//! code, run inline right after the transaction that enqueued it commits),
//! with idempotency keys from our ids, so the queue may repeat any of them.
//!
//! | kind | payload (`tenantry_store::jobs::kinds`) | does |
//! | --- | --- | --- |
//! | `stripe.create_checkout` | `StripeCreateCheckout` | the signup's Checkout Session |
//! | `stripe.charge` | `StripeCharge` | an upgrade's (or renewal's) charge: invoice + item + pay, or a payment Checkout |
//! | `stripe.sync_price` | `StripeSyncPrice` | drives the Stripe subscription to what our database wants ([`sync_price`]): Price, schedule of a downgrade, end of a subscription replaced by a lifetime plan |
//! | `stripe.push_credit` | `StripePushCredit` | a credit granted to the customer, as a customer balance transaction |
//! | `stripe.reconcile` | `StripeReconcile` | processes recent events no webhook delivered |

use chrono::{DateTime, Utc};
use serde_json::{Value, json};
use tenantry_domain::{Currency, Money, billing::PlanChangeStatus};
use tenantry_store::{
    AsyncPgConnection, Pool, StoreError,
    billing::{self, credits},
    jobs::{
        self,
        kinds::{
            StripeCharge, StripeCreateCheckout, StripePushCredit, StripeReconcile, StripeSyncPrice,
        },
    },
    stripe as store,
    worker::{Handlers, JobContext, JobError, JobHandler, Retryable},
};
use uuid::Uuid;

use super::{CallError, Stripe, StripeMethod, catalog, checkout, gateway, reconcile};
use crate::{engine::Clock, gateway::GatewayError};

impl Retryable for GatewayError {
    fn is_transient(&self) -> bool {
        matches!(self, Self::Unavailable(_))
    }
}

impl Retryable for CallError {
    fn is_transient(&self) -> bool {
        CallError::is_transient(self)
    }
}

impl Retryable for catalog::SyncError {
    fn is_transient(&self) -> bool {
        match self {
            Self::Stripe(c) => c.is_transient(),
            Self::Store(_) => true,
            Self::Price(..) => false,
        }
    }
}

impl Retryable for reconcile::ReconcileError {
    fn is_transient(&self) -> bool {
        match self {
            Self::Stripe(c) => c.is_transient(),
            Self::Ingest(_) | Self::Store(_) => true,
        }
    }
}

/// Enqueues `stripe.create_checkout` for a signup (in its transaction).
///
/// # Errors
/// [`StoreError`].
pub async fn enqueue_checkout(
    conn: &mut AsyncPgConnection,
    tenant_id: Uuid,
    subscription_id: Uuid,
) -> Result<jobs::Job, StoreError> {
    jobs::enqueue(
        conn,
        &StripeCreateCheckout {
            tenant_id,
            subscription_id,
        },
    )
    .await
}

/// Records that what Stripe should bill for this subscription changed (its
/// `price_version` moves) and, when Stripe bills it, enqueues
/// `stripe.sync_price`. Call it in the transaction that makes the change.
/// A sync already running re-reads the version before it ends, and the
/// billing processor re-enqueues any subscription left behind, so a change
/// made while a sync runs is never lost.
///
/// # Errors
/// [`StoreError`].
pub async fn enqueue_price_sync(
    conn: &mut AsyncPgConnection,
    subscription_id: Uuid,
) -> Result<(), StoreError> {
    let sub = store::bump_price_version(conn, subscription_id).await?;
    if sub.provider == "stripe" && sub.provider_subscription_id.is_some() {
        jobs::enqueue(
            conn,
            &StripeSyncPrice {
                tenant_id: Some(sub.tenant_id),
                subscription_id,
            },
        )
        .await?;
    }
    Ok(())
}

/// Enqueues `stripe.push_credit` for a credit granted to a Stripe-billed
/// customer (else does nothing: the local path applies credits itself).
///
/// # Errors
/// [`StoreError`].
pub async fn enqueue_credit_push(
    conn: &mut AsyncPgConnection,
    credit: &credits::Credit,
) -> Result<(), StoreError> {
    let sub = store::lock_subscription(conn, credit.subscription_id).await?;
    if sub.provider == "stripe" && credit.kind == "granted" {
        jobs::enqueue(
            conn,
            &StripePushCredit {
                tenant_id: credit.tenant_id,
                credit_id: credit.id,
            },
        )
        .await?;
    }
    Ok(())
}

/// What Stripe should bill for a subscription, read from our database at
/// one `price_version`.
#[derive(Debug, Clone)]
struct Desired {
    version: i64,
    /// The Price of the plan in effect (`None`: a lifetime plan, which no
    /// recurring item can carry).
    price: Option<String>,
    /// The Price a scheduled downgrade moves to at the period end.
    next_price: Option<String>,
    /// A lifetime plan: the recurring subscription ends at its period end.
    cancel_at_period_end: bool,
    /// Our dunning ended the subscription (`expired`), or its tenant was
    /// deleted (`canceled`): Stripe's is canceled now, so it bills no
    /// period of a tenant that has no service.
    cancel_now: bool,
    /// The tenant is back on its recurring plan after a failed move to a
    /// lifetime plan: a Stripe subscription that ended meanwhile (it was set
    /// to end at its period end, for the lifetime plan) is replaced.
    resume: bool,
    /// A failed change of interval put back the period it had replaced:
    /// Stripe, whose cycle the change restarted, comes back to ours.
    restored: bool,
}

async fn desired(
    stripe: &Stripe,
    conn: &mut AsyncPgConnection,
    subscription_id: Uuid,
) -> Result<(tenantry_store::tenants::Subscription, Desired), JobError> {
    let sub = store::lock_subscription(conn, subscription_id).await?;
    if matches!(
        sub.status,
        tenantry_domain::SubscriptionStatus::Expired
            | tenantry_domain::SubscriptionStatus::Canceled
    ) {
        return Ok((
            sub.clone(),
            Desired {
                version: sub.price_version,
                price: None,
                next_price: None,
                cancel_at_period_end: false,
                cancel_now: true,
                resume: false,
                restored: false,
            },
        ));
    }
    let (plan, product) = store::plan_with_product(conn, sub.plan_id).await?;
    let lifetime = plan.billing_interval == "lifetime";
    let price = if lifetime {
        None
    } else {
        Some(catalog::price_of(stripe, conn, &plan, &product).await?)
    };
    let next_price = match billing::open_change(conn, sub.tenant_id).await? {
        Some(c) if c.status == PlanChangeStatus::Scheduled => {
            let (plan, product) = store::plan_with_product(conn, c.to_plan_id).await?;
            Some(catalog::price_of(stripe, conn, &plan, &product).await?)
        }
        _ => None,
    };
    let failed = store::last_failed_change(conn, sub.id)
        .await?
        .unwrap_or_default();
    let resume = !lifetime
        && failed.from_lifetime
        && matches!(
            sub.status,
            tenantry_domain::SubscriptionStatus::Active
                | tenantry_domain::SubscriptionStatus::PastDue
        );
    Ok((
        sub.clone(),
        Desired {
            version: sub.price_version,
            price,
            next_price,
            cancel_at_period_end: lifetime,
            cancel_now: false,
            resume,
            restored: failed.period_restored,
        },
    ))
}

/// `obj[k]` as an id: a string, or an expanded object's `id`.
fn id_of(v: &Value) -> Option<String> {
    v.as_str()
        .map(str::to_owned)
        .or_else(|| v.get("id").and_then(Value::as_str).map(str::to_owned))
}

/// Drives the Stripe subscription to the state our database wants
/// ([`Desired`]), re-reading both until they agree (bounded; the queue
/// retries what is left):
/// - the item bills the current plan's Price, moved with
///   `proration_behavior=none` — the upgrade's proration was charged exactly
///   by us (docs.stripe.com/billing/subscriptions/prorations#disable-prorations).
///   A Price of another interval resets Stripe's billing anchor and
///   invoices the new period at once
///   (docs.stripe.com/billing/subscriptions/billing-cycle#changing): we
///   charged that period ourselves, so a customer balance credit of the new
///   Price goes first and Stripe's invoice comes to zero — one payment;
/// - a scheduled downgrade is a subscription schedule whose second phase,
///   from the period end, bills the new Price (a year → month downgrade
///   moves the Price at the period end, not when scheduled:
///   docs.stripe.com/billing/subscriptions/subscription-schedules); a
///   canceled downgrade releases the schedule;
/// - on a lifetime plan the recurring subscription ends at its period end
///   (`cancel_at_period_end`);
/// - a subscription our dunning ended (`expired`), or whose tenant was
///   deleted (`canceled`), is canceled in Stripe at once
///   (docs.stripe.com/api/subscriptions/cancel), so Stripe bills no later
///   period of a tenant without service;
/// - after a failed migration: a period put back keeps Stripe on it with a
///   trial to its end ([`CycleMove`]); a Stripe subscription that ended
///   while the tenant was on a lifetime plan is replaced ([`replace_ended`]).
///
/// A Price Stripe's own schedule is about to switch to is left to it.
///
/// # Errors
/// [`JobError`]: transient Stripe and database failures retry.
pub async fn sync_price(
    stripe: &Stripe,
    pool: &Pool,
    clock: &Clock,
    subscription_id: Uuid,
) -> Result<(), JobError> {
    for _ in 0..8 {
        let mut conn = pool.get().await?;
        let (sub, want) = desired(stripe, &mut conn, subscription_id).await?;
        let now = clock.now(&mut conn).await?;
        drop(conn);
        let (Some(stripe_sub), Some(customer)) = (
            sub.provider_subscription_id.clone(),
            sub.provider_customer_id.clone(),
        ) else {
            return Ok(());
        };
        let acted = converge_once(stripe, pool, now, &sub, &stripe_sub, &customer, &want).await?;
        if !acted {
            let mut conn = pool.get().await?;
            if store::mark_price_synced(&mut conn, subscription_id, want.version).await? {
                return Ok(());
            }
        }
    }
    Err(JobError::Retry(format!(
        "the Stripe subscription of {subscription_id} did not settle; retried later"
    )))
}

/// One pass: reads the Stripe subscription (and its schedule) and makes one
/// round of calls towards `want`; returns whether it called anything.
async fn converge_once(
    stripe: &Stripe,
    pool: &Pool,
    now: DateTime<Utc>,
    sub: &tenantry_store::tenants::Subscription,
    stripe_sub: &str,
    customer: &str,
    want: &Desired,
) -> Result<bool, JobError> {
    let path = format!("/subscriptions/{stripe_sub}");
    let current = stripe
        .raw(
            "retrieve subscription",
            StripeMethod::Get,
            &path,
            &json!({}),
            None,
        )
        .await?;
    if current["status"] == "canceled" || current["status"] == "incomplete_expired" {
        if want.resume
            && let Some(price) = &want.price
        {
            replace_ended(
                stripe, pool, now, sub, stripe_sub, customer, price, &current, want,
            )
            .await?;
            return Ok(true);
        }
        return Ok(false);
    }
    if want.cancel_now {
        stripe
            .raw(
                "cancel subscription",
                StripeMethod::Delete,
                &path,
                &json!({}),
                Some(&format!("sync:{stripe_sub}:{}:cancel-now", want.version)),
            )
            .await?;
        return Ok(true);
    }
    let item = &current["items"]["data"][0];
    let Some(item_id) = id_of(item) else {
        return Err(JobError::Fail(format!(
            "Stripe subscription {stripe_sub} has no item"
        )));
    };
    let item_price = id_of(&item["price"]).unwrap_or_default();
    let item_interval = item["price"]["recurring"]["interval"]
        .as_str()
        .unwrap_or("");
    let period_start = item["current_period_start"]
        .as_i64()
        .or_else(|| current["current_period_start"].as_i64());
    let period_end = item["current_period_end"]
        .as_i64()
        .or_else(|| current["current_period_end"].as_i64());
    let schedule = match id_of(&current["schedule"]) {
        Some(id) => {
            let s = stripe
                .raw(
                    "retrieve subscription schedule",
                    StripeMethod::Get,
                    &format!("/subscription_schedules/{id}"),
                    &json!({}),
                    None,
                )
                .await?;
            (s["status"] == "active" || s["status"] == "not_started").then_some(s)
        }
        None => None,
    };
    let phase_prices: Vec<String> = schedule
        .as_ref()
        .and_then(|s| s["phases"].as_array())
        .map(|phases| {
            phases
                .iter()
                .filter_map(|p| id_of(&p["items"][0]["price"]))
                .collect()
        })
        .unwrap_or_default();
    let v = want.version;
    let key = |what: &str| format!("sync:{stripe_sub}:{v}:{what}");
    // Stripe's schedule will switch to the Price we want at the period end.
    let switching = want
        .price
        .as_ref()
        .is_some_and(|p| *p != item_price && phase_prices.iter().skip(1).any(|x| x == p));
    let release = async |what: &str| -> Result<(), JobError> {
        if let Some(s) = &schedule {
            let id = id_of(s).unwrap_or_default();
            stripe
                .raw(
                    "release subscription schedule",
                    StripeMethod::Post,
                    &format!("/subscription_schedules/{id}/release"),
                    &json!({}),
                    Some(&key(what)),
                )
                .await?;
        }
        Ok(())
    };
    if let Some(price) = &want.price
        && *price != item_price
        && !switching
    {
        release("release-before-price").await?;
        let (new_units, new_interval, currency) = {
            let mut conn = pool.get().await?;
            let (plan, _) = store::plan_with_product(&mut conn, sub.plan_id).await?;
            let (units, currency) = catalog::minor_units(&plan)?;
            (units, plan.billing_interval.clone(), currency)
        };
        let mut body =
            json!({"items": [{"id": item_id, "price": price}], "proration_behavior": "none"});
        if !item_interval.is_empty() && new_interval != item_interval && new_units > 0 {
            match cycle_move(sub, want.restored, now) {
                CycleMove::Prepaid => {
                    prepay_new_cycle(
                        stripe, pool, sub, stripe_sub, customer, new_units, &currency, v,
                    )
                    .await?;
                }
                CycleMove::Keep(end) => body["trial_end"] = json!(end.timestamp()),
                CycleMove::Restart => push_waiting_credits(stripe, pool, sub.id).await?,
            }
        }
        let updated = stripe
            .raw(
                "update subscription price",
                StripeMethod::Post,
                &path,
                &body,
                Some(&key(&format!("price:{price}"))),
            )
            .await?;
        if let Some(anchor) = updated["billing_cycle_anchor"]
            .as_i64()
            .and_then(|t| DateTime::from_timestamp(t, 0))
            && !body["trial_end"].is_null()
        {
            // Stripe's periods now count from the trial's end.
            let mut conn = pool.get().await?;
            store::set_billing_anchor(&mut conn, sub.id, anchor).await?;
        }
        return Ok(true);
    }
    match (&want.next_price, &schedule) {
        (None, Some(_)) if !switching => {
            release("release").await?;
            return Ok(true);
        }
        (Some(next), _) if phase_prices.last() != Some(next) || phase_prices.len() < 2 => {
            let schedule_id = match &schedule {
                Some(s) => id_of(s).unwrap_or_default(),
                None => {
                    let made = stripe
                        .raw(
                            "create subscription schedule",
                            StripeMethod::Post,
                            "/subscription_schedules",
                            &json!({"from_subscription": stripe_sub}),
                            Some(&key("schedule")),
                        )
                        .await?;
                    id_of(&made).unwrap_or_default()
                }
            };
            let mut first = json!({"items": [{"price": item_price, "quantity": 1}], "proration_behavior": "none"});
            if let Some(start) = period_start {
                first["start_date"] = json!(start);
            }
            if let Some(end) = period_end {
                first["end_date"] = json!(end);
            }
            stripe
                .raw(
                    "schedule the downgrade",
                    StripeMethod::Post,
                    &format!("/subscription_schedules/{schedule_id}"),
                    &json!({"end_behavior": "release", "phases": [
                        first,
                        {"items": [{"price": next, "quantity": 1}], "proration_behavior": "none"}
                    ]}),
                    Some(&key(&format!("phases:{next}"))),
                )
                .await?;
            return Ok(true);
        }
        _ => {}
    }
    if current["cancel_at_period_end"].as_bool().unwrap_or(false) != want.cancel_at_period_end {
        stripe
            .raw(
                "set cancel_at_period_end",
                StripeMethod::Post,
                &path,
                &json!({"cancel_at_period_end": want.cancel_at_period_end}),
                Some(&key(&format!("cancel:{}", want.cancel_at_period_end))),
            )
            .await?;
        return Ok(true);
    }
    Ok(false)
}

/// A new Stripe subscription to `price` for a tenant back on its recurring
/// plan after a failed move to lifetime, whose Stripe subscription ended at
/// its period end meanwhile (docs.stripe.com/api/subscriptions/create):
/// `metadata[replaces]` names the ended one (our webhooks take the new id
/// only from such a subscription), the old one's payment method, charged
/// `off_session`. While our period still runs, a trial to its end keeps it
/// (nothing billed before); once over, Stripe bills `[now, now + interval)`
/// at once, the customer's balance first (the failed migration's credit,
/// carried there first if its own job has not run yet), and our period
/// follows that invoice. Then ours names the new one.
#[expect(
    clippy::too_many_arguments,
    reason = "the subscription on both sides, what is wanted, and when"
)]
async fn replace_ended(
    stripe: &Stripe,
    pool: &Pool,
    now: DateTime<Utc>,
    sub: &tenantry_store::tenants::Subscription,
    stripe_sub: &str,
    customer: &str,
    price: &str,
    current: &Value,
    want: &Desired,
) -> Result<(), JobError> {
    push_waiting_credits(stripe, pool, sub.id).await?;
    let mut body = json!({
        "customer": customer,
        "items": [{"price": price, "quantity": 1}],
        "proration_behavior": "none",
        "off_session": true,
        "metadata": {"tenant_id": sub.tenant_id.to_string(), "subscription_id": sub.id.to_string(), "replaces": stripe_sub},
    });
    if let Some(pm) = id_of(&current["default_payment_method"]) {
        body["default_payment_method"] = json!(pm);
    }
    if let Some(end) = sub.current_period_end
        && end > now + chrono::Duration::seconds(60)
    {
        body["trial_end"] = json!(end.timestamp());
    }
    let made = stripe
        .raw(
            "replace the ended subscription",
            StripeMethod::Post,
            "/subscriptions",
            &body,
            Some(&format!("sync:{stripe_sub}:{}:replace", want.version)),
        )
        .await?;
    let Some(new) = id_of(&made) else {
        return Err(JobError::Fail(
            "Stripe answered a subscription without an id".into(),
        ));
    };
    let mut conn = pool.get().await?;
    store::replace_provider_subscription(&mut conn, now, sub.id, stripe_sub, &new).await?;
    Ok(())
}

/// Carries the subscription's granted credits that have not reached Stripe
/// yet (their own `stripe.push_credit` jobs may run later) before a call
/// that makes Stripe invoice at once, so that invoice uses them.
async fn push_waiting_credits(
    stripe: &Stripe,
    pool: &Pool,
    subscription_id: Uuid,
) -> Result<(), JobError> {
    let waiting = {
        let mut conn = pool.get().await?;
        credits::unpushed(&mut conn, subscription_id).await?
    };
    for credit in waiting {
        push_credit(stripe, pool, credit).await?;
    }
    Ok(())
}

/// How Stripe's cycle moves with a Price of another interval, which
/// restarts it and invoices the new period at once unless a trial says
/// otherwise (docs.stripe.com/billing/subscriptions/billing-cycle#changing).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum CycleMove {
    /// An upgrade started a new cycle and charged it: Stripe restarts its
    /// cycle, prepaid by a balance credit of the new Price
    /// ([`prepay_new_cycle`]).
    Prepaid,
    /// A failed migration put back the period the upgrade had replaced, and
    /// it still runs: Stripe keeps it with a trial to its end,
    /// `proration_behavior=none`, which moves its anchor there and bills
    /// nothing before it
    /// (docs.stripe.com/billing/subscriptions/billing-cycle#add-a-trial-to-change-the-billing-cycle).
    Keep(DateTime<Utc>),
    /// The period put back is over: Stripe restarts its cycle now and
    /// invoices it (the customer's balance applies first, the credits on
    /// their way carried there before).
    Restart,
}

/// Which [`CycleMove`] fits our period at `now`; `restored`: a failed
/// migration put back the period its change had replaced.
fn cycle_move(
    sub: &tenantry_store::tenants::Subscription,
    restored: bool,
    now: DateTime<Utc>,
) -> CycleMove {
    if !restored {
        return CycleMove::Prepaid;
    }
    match sub.current_period_end {
        // Stripe takes a trial end some time ahead.
        Some(end) if end > now + chrono::Duration::seconds(60) => CycleMove::Keep(end),
        _ => CycleMove::Restart,
    }
}

/// Before a Price of another interval (which makes Stripe invoice the new
/// period at once), a customer balance credit of that Price: we charged the
/// new period ourselves (the upgrade's charge). Recorded in the ledger as
/// granted; the invoice that uses it records it applied.
#[expect(
    clippy::too_many_arguments,
    reason = "each is one independent input of the credit"
)]
async fn prepay_new_cycle(
    stripe: &Stripe,
    pool: &Pool,
    sub: &tenantry_store::tenants::Subscription,
    stripe_sub: &str,
    customer: &str,
    units: i64,
    currency: &str,
    version: i64,
) -> Result<(), JobError> {
    let source = format!("prepaid:{stripe_sub}:{version}");
    let txn = stripe
        .raw(
            "credit the new billing cycle",
            StripeMethod::Post,
            &format!("/customers/{customer}/balance_transactions"),
            &json!({"amount": -units, "currency": currency,
                    "description": "New billing cycle, already paid with the plan change",
                    "metadata": {"tenant_id": sub.tenant_id.to_string(), "subscription_id": sub.id.to_string(), "source": source}}),
            Some(&source),
        )
        .await?;
    let code = currency.to_uppercase();
    let amount = Money::from_minor_units(
        units,
        Currency::parse(&code).map_err(|e| JobError::Fail(e.to_string()))?,
    );
    let mut conn = pool.get().await?;
    credits::record(
        &mut conn,
        &credits::NewCredit {
            tenant_id: sub.tenant_id,
            subscription_id: sub.id,
            amount: amount.amount(),
            currency: &code,
            reason: "prepaid_billing_cycle",
            source: &source,
            charge_id: None,
            provider_reference: txn["id"].as_str(),
            at: chrono::Utc::now(),
        },
    )
    .await?;
    Ok(())
}

/// Carries a granted credit to Stripe as a customer balance transaction
/// (key `credit:{id}`), which Stripe applies to the customer's next invoices
/// (docs.stripe.com/billing/customer/balance).
///
/// # Errors
/// [`JobError`].
pub async fn push_credit(stripe: &Stripe, pool: &Pool, credit_id: Uuid) -> Result<(), JobError> {
    let mut conn = pool.get().await?;
    let credit = credits::find(&mut conn, credit_id).await?;
    if credit.provider_reference.is_some() {
        return Ok(());
    }
    let sub = store::lock_subscription(&mut conn, credit.subscription_id).await?;
    drop(conn);
    let Some(customer) = sub.provider_customer_id else {
        return Err(JobError::Fail(format!(
            "subscription {} has no Stripe customer",
            sub.id
        )));
    };
    let currency = Currency::parse(&credit.currency).map_err(|e| JobError::Fail(e.to_string()))?;
    let units = Money::rounded(credit.amount, currency)
        .minor_units()
        .map_err(|e| JobError::Fail(e.to_string()))?;
    let txn = stripe
        .raw(
            "credit the customer balance",
            StripeMethod::Post,
            &format!("/customers/{customer}/balance_transactions"),
            &json!({"amount": -units, "currency": credit.currency.to_lowercase(),
                    "description": format!("Credit: {}", credit.reason),
                    "metadata": {"tenant_id": credit.tenant_id.to_string(), "credit_id": credit.id.to_string(), "source": credit.source}}),
            Some(&format!("credit:{}", credit.id)),
        )
        .await?;
    let mut conn = pool.get().await?;
    credits::set_provider_reference(
        &mut conn,
        credit.id,
        txn["id"].as_str().unwrap_or("unknown"),
    )
    .await?;
    Ok(())
}

/// The job-queue handler of every `stripe.*` kind.
#[derive(Debug, Clone)]
pub struct StripeJobs {
    /// The client.
    pub stripe: Stripe,
    /// The billing clock (reconciliation stamps events with it).
    pub clock: Clock,
}

impl StripeJobs {
    /// Registers this handler for every `stripe.*` kind.
    pub fn register(self, handlers: &mut Handlers) {
        let me = std::sync::Arc::new(self);
        handlers.register::<StripeCreateCheckout, _>(me.clone());
        handlers.register::<StripeCharge, _>(me.clone());
        handlers.register::<StripeSyncPrice, _>(me.clone());
        handlers.register::<StripePushCredit, _>(me.clone());
        handlers.register::<StripeReconcile, _>(me);
    }
}

#[async_trait::async_trait]
impl JobHandler<StripeCreateCheckout> for StripeJobs {
    async fn run(&self, ctx: &JobContext, job: StripeCreateCheckout) -> Result<(), JobError> {
        ctx.set_step(&ctx.job.kind).await?;
        checkout::open_signup_checkout(&self.stripe, &ctx.pool, job.subscription_id).await?;
        Ok(())
    }
}

#[async_trait::async_trait]
impl JobHandler<StripeCharge> for StripeJobs {
    async fn run(&self, ctx: &JobContext, job: StripeCharge) -> Result<(), JobError> {
        ctx.set_step(&ctx.job.kind).await?;
        let request = gateway::charge_request(job).map_err(JobError::Fail)?;
        // The outcome reaches the engine through `invoice.paid` / `checkout.session.completed`.
        gateway::charge(&self.stripe, &ctx.pool, &request).await?;
        Ok(())
    }
}

#[async_trait::async_trait]
impl JobHandler<StripeSyncPrice> for StripeJobs {
    async fn run(&self, ctx: &JobContext, job: StripeSyncPrice) -> Result<(), JobError> {
        ctx.set_step(&ctx.job.kind).await?;
        sync_price(&self.stripe, &ctx.pool, &self.clock, job.subscription_id).await
    }
}

#[async_trait::async_trait]
impl JobHandler<StripePushCredit> for StripeJobs {
    async fn run(&self, ctx: &JobContext, job: StripePushCredit) -> Result<(), JobError> {
        ctx.set_step(&ctx.job.kind).await?;
        push_credit(&self.stripe, &ctx.pool, job.credit_id).await
    }
}

#[async_trait::async_trait]
impl JobHandler<StripeReconcile> for StripeJobs {
    async fn run(&self, ctx: &JobContext, _job: StripeReconcile) -> Result<(), JobError> {
        ctx.set_step(&ctx.job.kind).await?;
        reconcile::reconcile(&self.stripe, &ctx.pool, &self.clock, reconcile::WINDOW).await?;
        Ok(())
    }
}
