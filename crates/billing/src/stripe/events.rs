//! Stripe events → billing effects.
//!
//! [`ingest`] records an event by its id in `stripe_events` and applies its
//! effect in the same transaction, so an event is applied exactly once
//! however often it is delivered (a duplicate id changes nothing), and a
//! failure leaves nothing recorded for Stripe's next retry. Only the
//! fields we need are read, from `serde_json::Value`, so payloads of other
//! API versions are accepted (`invoice.subscription` moved to
//! `invoice.parent.subscription_details` in 2025-03-31.basil; both are read).
//!
//! | event | effect |
//! | --- | --- |
//! | `checkout.session.completed` (paid), `checkout.session.async_payment_succeeded` | signup: subscription linked to Stripe, tenant `pending_payment → provisioning`, one `provision` job; an upgrade's checkout: the change applied |
//! | `invoice.paid` | first invoice: as a paid signup; an upgrade invoice: the change applied; a renewal: period advanced, `past_due` cleared, a non-payment suspension lifted |
//! | `invoice.payment_failed` | a renewal: `past_due` (dunning: suspension after the grace, termination after that) |
//! | `customer.subscription.updated` | ids linked; `canceled` status: as deleted |
//! | `customer.subscription.deleted` | subscription `canceled`, service until the period's end |
//! | anything else | recorded, ignored |
//!
//! Every effect is guarded by the state it moves from, so any order
//! converges: an `invoice.paid` before its `checkout.session.completed`
//! starts provisioning and the session then finds the tenant past
//! `pending_payment`; a late failure of a period already paid changes
//! nothing.

use chrono::{DateTime, TimeZone as _, Utc};
use serde_json::{Value, json};
use tenantry_domain::{Currency, Money, TenantStatus};
use tenantry_store::{
    AsyncConnection as _, AsyncPgConnection, Pool, StoreError,
    activity::Entry,
    billing::credits,
    jobs,
    stripe::{self as store, PaidPeriod, StripeEvent},
    tenants::{self, Subscription, TransitionError},
};
use uuid::Uuid;

use crate::engine::{self, Actor, BillingError, Clock};

/// What ingesting an event did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ingested {
    /// New, and its effect applied (a summary).
    Applied(String),
    /// New, recorded, and without effect (why).
    Ignored(String),
    /// Already recorded: nothing done.
    Duplicate,
}

/// Why an event could not be ingested.
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    /// Not a Stripe event (no id, type or object).
    #[error("not a Stripe event: {0}")]
    Malformed(String),
    /// The database failed: nothing was recorded; Stripe will retry.
    #[error(transparent)]
    Billing(#[from] BillingError),
}

impl From<StoreError> for IngestError {
    fn from(e: StoreError) -> Self {
        Self::Billing(e.into())
    }
}

impl From<tenantry_store::DieselError> for IngestError {
    fn from(e: tenantry_store::DieselError) -> Self {
        Self::Billing(e.into())
    }
}

/// The parts of an event every type has.
#[derive(Debug, Clone)]
pub struct Envelope {
    /// `evt_…`.
    pub id: String,
    /// e.g. `invoice.paid`.
    pub kind: String,
    /// The API version `data` was rendered with.
    pub api_version: Option<String>,
    /// `data.object`.
    pub object: Value,
}

/// Reads an event's envelope.
///
/// # Errors
/// [`IngestError::Malformed`].
pub fn envelope(event: &Value) -> Result<Envelope, IngestError> {
    let s = |k: &str| event[k].as_str().map(str::to_owned);
    let id = s("id")
        .filter(|i| !i.is_empty())
        .ok_or_else(|| IngestError::Malformed("no id".into()))?;
    let kind = s("type").ok_or_else(|| IngestError::Malformed("no type".into()))?;
    let object = event["data"]["object"].clone();
    if !object.is_object() {
        return Err(IngestError::Malformed("no data.object".into()));
    }
    Ok(Envelope {
        id,
        kind,
        api_version: s("api_version"),
        object,
    })
}

/// Records and applies one event (see the module docs), at the billing clock's now.
///
/// # Errors
/// [`IngestError`]: nothing is recorded then.
pub async fn ingest(
    pool: &Pool,
    clock: &Clock,
    event: Value,
    source: &str,
) -> Result<Ingested, IngestError> {
    let env = envelope(&event)?;
    let mut conn = pool.get().await?;
    let now = clock.now(&mut conn).await?;
    conn.transaction::<_, IngestError, _>(async |conn| {
        let row = StripeEvent {
            id: env.id.clone(),
            kind: env.kind.clone(),
            api_version: env.api_version.clone(),
            payload: event,
            source: source.to_owned(),
            received_at: now,
            processed_at: None,
            error: None,
        };
        if !store::insert_event(conn, &row).await? {
            return Ok(Ingested::Duplicate);
        }
        let outcome = apply(conn, now, &env).await?;
        let note = match &outcome {
            Ingested::Ignored(why) => Some(why.as_str()),
            _ => None,
        };
        store::mark_processed(conn, &env.id, now, note).await?;
        Ok(outcome)
    })
    .await
}

fn stripe_actor() -> Actor {
    Actor::system("stripe")
}

/// `obj[a][b]…` as a string.
fn text<'a>(obj: &'a Value, path: &[&str]) -> Option<&'a str> {
    let mut v = obj;
    for p in path {
        v = v.get(p)?;
    }
    // An expanded object stands for its id.
    v.as_str().or_else(|| v.get("id").and_then(Value::as_str))
}

/// A metadata value, from the object's own metadata or its subscription's
/// (copied into `parent.subscription_details.metadata` on invoices).
fn meta<'a>(obj: &'a Value, key: &str) -> Option<&'a str> {
    text(obj, &["metadata", key])
        .or_else(|| text(obj, &["parent", "subscription_details", "metadata", key]))
        .or_else(|| text(obj, &["subscription_details", "metadata", key]))
}

fn meta_uuid(obj: &Value, key: &str) -> Option<Uuid> {
    meta(obj, key).and_then(|v| Uuid::parse_str(v).ok())
}

/// The Stripe subscription an object belongs to (`sub_…`).
fn stripe_subscription(obj: &Value) -> Option<&str> {
    match text(obj, &["object"]) {
        Some("subscription") => text(obj, &["id"]),
        _ => text(obj, &["subscription"])
            .or_else(|| text(obj, &["parent", "subscription_details", "subscription"])),
    }
}

/// Our subscription an object is about, locked: by the metadata we set,
/// then `client_reference_id` (a tenant), then Stripe's subscription or customer id.
async fn our_subscription(
    conn: &mut AsyncPgConnection,
    obj: &Value,
) -> Result<Option<Subscription>, StoreError> {
    let mut id = meta_uuid(obj, "subscription_id");
    if id.is_none()
        && let Some(tenant) =
            text(obj, &["client_reference_id"]).and_then(|t| Uuid::parse_str(t).ok())
    {
        id = tenants::subscription_of(conn, tenant)
            .await
            .ok()
            .map(|(s, _)| s.id);
    }
    if id.is_none() {
        id = store::subscription_by_provider(
            conn,
            stripe_subscription(obj),
            text(obj, &["customer"]),
        )
        .await?;
    }
    match id {
        Some(id) => match store::lock_subscription(conn, id).await {
            Ok(s) => Ok(Some(s)),
            Err(StoreError::NotFound) => Ok(None),
            Err(e) => Err(e),
        },
        None => Ok(None),
    }
}

fn unmatched(env: &Envelope) -> Ingested {
    Ingested::Ignored(format!("no subscription of ours matches this {}", env.kind))
}

/// The PaymentIntent a Checkout Session or invoice was paid through:
/// `payment_intent` (sessions; invoices before API 2025-03-31) or the
/// invoice's `payments` list (docs.stripe.com/api/invoice-payment).
pub fn payment_intent(obj: &Value) -> Option<&str> {
    text(obj, &["payment_intent"]).or_else(|| {
        obj["payments"]["data"]
            .as_array()?
            .iter()
            .find_map(|p| text(p, &["payment", "payment_intent"]))
    })
}

/// Money from an object's minor-unit `field` and its `currency`.
fn money_of(obj: &Value, field: &str) -> Option<Money> {
    let currency = Currency::parse(&text(obj, &["currency"])?.to_uppercase()).ok()?;
    Some(Money::from_minor_units(obj[field].as_i64()?, currency))
}

/// A payment we cannot match to what we asked: recorded (the event row
/// keeps the payload), an alert for an operator, nothing applied.
async fn unmatched_payment(
    conn: &mut AsyncPgConnection,
    env: &Envelope,
    tenant: Option<Uuid>,
    why: &str,
) -> Result<Ingested, IngestError> {
    let reference = text(&env.object, &["id"]).unwrap_or(&env.id).to_owned();
    tenantry_store::alerts::raise(
        conn,
        &tenantry_store::alerts::NewAlert {
            kind: "payment.unmatched",
            severity: tenantry_store::alerts::Severity::Critical,
            message: &format!(
                "Stripe {} {reference} (event {}) was not applied: {why}; refund it or apply it by hand",
                env.kind, env.id
            ),
            tenant_id: tenant,
            subject: &format!("stripe_event:{}", env.id),
        },
    )
    .await?;
    Ok(Ingested::Ignored(format!("not applied: {why}")))
}

/// Links our subscription to Stripe's ids, refusing to replace an id we
/// hold with another (`Err` names the conflict) — except by a subscription
/// our price sync created to replace the one that ended
/// (`metadata[replaces]` names the one we hold), recorded as
/// `subscription.provider_replaced`.
async fn link(
    conn: &mut AsyncPgConnection,
    now: DateTime<Utc>,
    sub: &Subscription,
    obj: &Value,
    stripe_sub: Option<&str>,
    saved_payment_method: bool,
) -> Result<Result<(), String>, StoreError> {
    let customer = text(obj, &["customer"]);
    if let (Some(held), Some(new)) = (sub.provider_customer_id.as_deref(), customer)
        && held != new
    {
        return Ok(Err(format!(
            "it names customer {new}, the subscription is billed to {held}"
        )));
    }
    // A subscription our price sync made to replace the one that ended
    // (`metadata[replaces]`, set only by us) takes its place.
    if let (Some(held), Some(new)) = (sub.provider_subscription_id.as_deref(), stripe_sub)
        && held != new
        && meta(obj, "replaces") != Some(held)
    {
        return Ok(Err(format!(
            "it names Stripe subscription {new}, ours is {held}"
        )));
    }
    if let (Some(held), Some(new)) = (sub.provider_subscription_id.as_deref(), stripe_sub)
        && held != new
    {
        store::replace_provider_subscription(conn, now, sub.id, held, new).await?;
    }
    store::link_provider(conn, sub.id, customer, stripe_sub, saved_payment_method).await?;
    Ok(Ok(()))
}

/// A completed Checkout Session: applied only when it is one we opened
/// (`stripe_checkouts`), for this tenant and purpose, and its amount and
/// currency are what we asked.
async fn checkout_completed(
    conn: &mut AsyncPgConnection,
    now: DateTime<Utc>,
    env: &Envelope,
) -> Result<Ingested, IngestError> {
    let obj = &env.object;
    let session = text(obj, &["id"]).unwrap_or_default();
    let Some(ours) = store::session(conn, session).await? else {
        return unmatched_payment(conn, env, None, "no Checkout Session of ours has this id").await;
    };
    let tenant = Some(ours.tenant_id);
    let named = text(obj, &["client_reference_id"])
        .and_then(|t| Uuid::parse_str(t).ok())
        .or_else(|| meta_uuid(obj, "tenant_id"));
    if named.is_some_and(|t| t != ours.tenant_id) {
        return unmatched_payment(conn, env, tenant, "the session names another tenant").await;
    }
    let asked = match (ours.amount_minor, ours.currency.as_deref()) {
        (Some(units), Some(code)) => Currency::parse(code)
            .ok()
            .map(|c| Money::from_minor_units(units, c)),
        _ => None,
    };
    let paid = money_of(obj, "amount_total");
    if asked.is_some() && paid != asked {
        let why = format!(
            "paid {} where {} was asked",
            paid.map_or_else(|| "an unknown amount".into(), |m| m.to_string()),
            asked.map_or_else(String::new, |m| m.to_string())
        );
        return unmatched_payment(conn, env, tenant, &why).await;
    }
    store::set_checkout_status(conn, session, "complete").await?;
    match (ours.purpose.as_deref(), ours.plan_change_id) {
        (Some("upgrade"), Some(change)) => {
            if meta_uuid(obj, "plan_change_id").is_some_and(|c| c != change) {
                return unmatched_payment(
                    conn,
                    env,
                    tenant,
                    "the session names another plan change",
                )
                .await;
            }
            upgrade_paid(
                conn,
                now,
                change,
                engine::Payment {
                    reference: session,
                    amount: paid,
                    refund_via: payment_intent(obj),
                },
            )
            .await
        }
        (Some("signup"), _) => {
            let (sub, _) = tenants::subscription_of(conn, ours.tenant_id).await?;
            let sub = store::lock_subscription(conn, sub.id).await?;
            let recurring = text(obj, &["mode"]) == Some("subscription");
            if let Err(why) =
                link(conn, now, &sub, obj, stripe_subscription(obj), recurring).await?
            {
                return unmatched_payment(conn, env, tenant, &why).await;
            }
            Ok(signup_paid(conn, now, &sub, session).await?)
        }
        (purpose, _) => Ok(Ingested::Ignored(format!(
            "a {} checkout: its invoice carries the payment",
            purpose.unwrap_or("payment")
        ))),
    }
}

/// Credit the customer's balance paid on an invoice (`starting_balance`
/// below zero, `ending_balance` above it: docs.stripe.com/billing/customer/balance),
/// recorded as applied in our ledger, once per invoice.
async fn balance_applied(
    conn: &mut AsyncPgConnection,
    now: DateTime<Utc>,
    sub: &Subscription,
    obj: &Value,
) -> Result<(), IngestError> {
    let (Some(start), Some(end)) = (
        obj["starting_balance"].as_i64(),
        obj["ending_balance"].as_i64(),
    ) else {
        return Ok(());
    };
    let used = end.min(0) - start.min(0);
    if start >= 0 || used <= 0 {
        return Ok(());
    }
    let Ok(currency) = Currency::parse(&text(obj, &["currency"]).unwrap_or("").to_uppercase())
    else {
        return Ok(());
    };
    let invoice = text(obj, &["id"]).unwrap_or_default();
    // The charge of ours the invoice is: what the credit paid part of.
    let charge = tenantry_store::billing::charge_of_payment(
        conn,
        sub.tenant_id,
        invoice,
        text(obj, &["metadata", "charge"]),
    )
    .await?;
    let used = Money::from_minor_units(used, currency).amount();
    let recorded = credits::record(
        conn,
        &credits::NewCredit {
            tenant_id: sub.tenant_id,
            subscription_id: sub.id,
            amount: -used,
            currency: currency.code(),
            reason: "invoice",
            source: &format!("invoice:{invoice}"),
            charge_id: charge.as_ref().map(|c| c.id),
            provider_reference: Some(invoice),
            at: now,
        },
    )
    .await?;
    if recorded.is_some()
        && let Some(c) = charge
    {
        tenantry_store::billing::add_credit_applied(conn, c.id, used).await?;
    }
    Ok(())
}

async fn apply(
    conn: &mut AsyncPgConnection,
    now: DateTime<Utc>,
    env: &Envelope,
) -> Result<Ingested, IngestError> {
    let obj = &env.object;
    match env.kind.as_str() {
        // A delayed payment method (SEPA debit, bank transfer) completes the
        // session `unpaid`; `async_payment_succeeded` carries the same
        // session `paid` once the money arrives (Stripe: "Fulfill orders",
        // delayed notification payment methods). A lifetime plan has no
        // invoice, so this is the only word of its payment.
        "checkout.session.completed" | "checkout.session.async_payment_succeeded" => {
            let status = text(obj, &["payment_status"]).unwrap_or("");
            if status != "paid" && status != "no_payment_required" {
                return Ok(Ingested::Ignored(format!(
                    "payment_status {status:?}: not paid yet"
                )));
            }
            checkout_completed(conn, now, env).await
        }
        "checkout.session.expired" => {
            let session = text(obj, &["id"]).unwrap_or_default();
            Ok(match store::session(conn, session).await? {
                Some(_) => {
                    store::set_checkout_status(conn, session, "expired").await?;
                    Ingested::Applied(
                        "checkout session expired; a new one is opened on demand".into(),
                    )
                }
                None => Ingested::Ignored("not a session of ours".into()),
            })
        }
        "invoice.paid" => {
            let invoice = text(obj, &["id"]).unwrap_or_default();
            if let Some(change) = meta_uuid(obj, "plan_change_id") {
                let outcome = upgrade_paid(
                    conn,
                    now,
                    change,
                    engine::Payment {
                        reference: invoice,
                        amount: money_of(obj, "total").or_else(|| money_of(obj, "amount_due")),
                        refund_via: payment_intent(obj),
                    },
                )
                .await?;
                if let Some(sub) = our_subscription(conn, obj).await? {
                    balance_applied(conn, now, &sub, obj).await?;
                }
                return Ok(outcome);
            }
            let Some(sub) = our_subscription(conn, obj).await? else {
                return Ok(unmatched(env));
            };
            if let Err(why) = link(conn, now, &sub, obj, stripe_subscription(obj), true).await? {
                return unmatched_payment(conn, env, Some(sub.tenant_id), &why).await;
            }
            let reason = text(obj, &["billing_reason"]);
            let first = reason == Some("subscription_create");
            let signup = if first {
                Some(signup_paid(conn, now, &sub, invoice).await?)
            } else {
                None
            };
            let renewed = match period(obj, &sub)? {
                Some(mut p) if stripe_subscription(obj).is_some() => {
                    // A Price of another interval restarts the cycle (docs.stripe.com/billing/subscriptions/billing-cycle#changing).
                    // So does a subscription that replaces an ended one.
                    p.anchor_reset = reason == Some("subscription_update")
                        || (first && meta(obj, "replaces").is_some());
                    let action = if first {
                        "subscription.first_period_paid"
                    } else {
                        "subscription.renewed"
                    };
                    store::record_paid_period(conn, now, &p, action).await?
                }
                _ => false,
            };
            // After the charge row exists: the credit names it.
            balance_applied(conn, now, &sub, obj).await?;
            Ok(match (signup, renewed) {
                (Some(s @ Ingested::Applied(_)), _) => s,
                (_, true) => Ingested::Applied("period paid".into()),
                (Some(s), false) => s,
                (None, false) => Ingested::Ignored("period already paid".into()),
            })
        }
        "invoice.payment_failed" | "invoice.payment_action_required" => {
            if meta_uuid(obj, "plan_change_id").is_some() {
                return Ok(Ingested::Ignored(
                    "an upgrade's payment failed: the change stays pending until paid or expired"
                        .into(),
                ));
            }
            let Some(sub) = our_subscription(conn, obj).await? else {
                return Ok(unmatched(env));
            };
            if text(obj, &["billing_reason"]) == Some("subscription_create") {
                return Ok(Ingested::Ignored(
                    "the first payment failed: the tenant stays pending_payment".into(),
                ));
            }
            let Some(p) = period(obj, &sub)? else {
                return Ok(Ingested::Ignored(
                    "no subscription period on the invoice".into(),
                ));
            };
            let attempts = obj["attempt_count"].as_i64().unwrap_or(1);
            let reason = if env.kind == "invoice.payment_action_required" {
                format!(
                    "invoice {} needs the customer to authenticate the payment",
                    p.reference
                )
            } else {
                format!("invoice {} unpaid after {attempts} attempt(s)", p.reference)
            };
            let failed = store::record_failed_period(conn, now, &p, &reason).await?;
            // Stripe applied the customer's balance when it finalized the
            // invoice, paid or not.
            balance_applied(conn, now, &sub, obj).await?;
            Ok(if failed {
                Ingested::Applied("past due".into())
            } else {
                Ingested::Ignored(
                    "the period is already paid, or the subscription is not active".into(),
                )
            })
        }
        "customer.subscription.updated" | "customer.subscription.deleted" => {
            let Some(sub) = our_subscription(conn, obj).await? else {
                return Ok(unmatched(env));
            };
            if let Err(why) = link(conn, now, &sub, obj, text(obj, &["id"]), false).await? {
                return unmatched_payment(conn, env, Some(sub.tenant_id), &why).await;
            }
            let ended = env.kind == "customer.subscription.deleted"
                || text(obj, &["status"]) == Some("canceled");
            if !ended {
                return Ok(Ingested::Ignored(
                    "no effect: periods and dunning follow invoices".into(),
                ));
            }
            let (_, plan) = tenants::subscription_of(conn, sub.tenant_id).await?;
            if plan.billing_interval == "lifetime" {
                return Ok(Ingested::Ignored(
                    "the recurring subscription ended: the tenant is on a lifetime plan".into(),
                ));
            }
            Ok(
                if store::cancel_at_period_end(conn, now, sub.id, "ended in Stripe").await? {
                    Ingested::Applied("canceled at period end".into())
                } else {
                    Ingested::Ignored("already canceled".into())
                },
            )
        }
        other => Ok(Ingested::Ignored(format!("{other} is not handled"))),
    }
}

/// The subscription period an invoice pays: its subscription line's
/// `period` (the invoice's own `period_*` describe pending items, not the
/// subscription: docs.stripe.com/api/invoices/object#invoice_object-period_start).
fn period(obj: &Value, sub: &Subscription) -> Result<Option<PaidPeriod>, IngestError> {
    let lines = obj["lines"]["data"].as_array().cloned().unwrap_or_default();
    let line = lines
        .iter()
        .find(|l| text(l, &["parent", "type"]) == Some("subscription_item_details"))
        .or_else(|| lines.iter().find(|l| l["period"].is_object()));
    let Some(line) = line else { return Ok(None) };
    let ts = |k: &str| {
        line["period"][k]
            .as_i64()
            .and_then(|t| Utc.timestamp_opt(t, 0).single())
    };
    let (Some(start), Some(end)) = (ts("start"), ts("end")) else {
        return Ok(None);
    };
    let currency = Currency::parse(&text(obj, &["currency"]).unwrap_or("").to_uppercase())
        .map_err(|e| IngestError::Malformed(format!("currency: {e}")))?;
    // What was paid, or for an invoice not paid what it asks for
    // (`amount_paid` is 0 on a declined one).
    let cents = if text(obj, &["status"]) == Some("paid") {
        obj["amount_paid"].as_i64()
    } else {
        obj["amount_due"].as_i64()
    }
    .or_else(|| obj["amount_paid"].as_i64())
    .unwrap_or(0);
    Ok(Some(PaidPeriod {
        subscription_id: sub.id,
        tenant_id: sub.tenant_id,
        start,
        end,
        amount: Money::from_minor_units(cents, currency).amount(),
        currency: currency.code().to_owned(),
        reference: text(obj, &["id"]).unwrap_or_default().to_owned(),
        anchor_reset: false,
    }))
}

/// A signup's first payment: `pending_payment → provisioning` and the
/// `provision` job, once; any later signal of the same payment finds the
/// tenant past `pending_payment` and changes nothing. (The subscription
/// becomes `active` and the tenant provisioned when provisioning succeeds.)
///
/// # Errors
/// [`StoreError`].
pub async fn signup_paid(
    conn: &mut AsyncPgConnection,
    now: DateTime<Utc>,
    sub: &Subscription,
    reference: &str,
) -> Result<Ingested, StoreError> {
    Ok(
        match signup_paid_by(conn, now, sub, reference, &stripe_actor()).await? {
            Ok(job) => Ingested::Applied(format!("signup paid; provisioning job {}", job.id)),
            Err(status) => Ingested::Ignored(format!("the tenant is already {status}")),
        },
    )
}

/// [`signup_paid`] by another actor (an operator marking a payment): the
/// tenant goes `pending_payment → provisioning` (`domain`'s lifecycle) with
/// its `provision` job, or `Err(status)` when it is not awaiting payment.
///
/// # Errors
/// [`StoreError`].
pub async fn signup_paid_by(
    conn: &mut AsyncPgConnection,
    now: DateTime<Utc>,
    sub: &Subscription,
    reference: &str,
    actor: &Actor,
) -> Result<Result<jobs::Job, TenantStatus>, StoreError> {
    let status = tenants::lock_tenant(conn, sub.tenant_id).await?.status;
    if status != TenantStatus::PendingPayment {
        return Ok(Err(status));
    }
    let tenant =
        match tenants::transition(conn, sub.tenant_id, TenantStatus::Provisioning, None).await {
            Ok((_, t)) => t,
            Err(TransitionError::Invalid(e)) => return Ok(Err(e.from)),
            Err(TransitionError::Store(e)) => return Err(e),
        };
    let job = jobs::enqueue(
        conn,
        &jobs::kinds::Provision {
            tenant_id: tenant.id,
        },
    )
    .await?;
    Entry::by(actor, "tenant.status_changed")
        .at(now)
        .tenant(Some(tenant.id))
        .target("tenant", tenant.id)
        .change(
            Some(json!({"status": status.as_str()})),
            Some(json!({"status": tenant.status.as_str(), "reason": "payment received", "payment": reference, "job": job.id})),
        )
        .record(conn)
        .await?;
    Ok(Ok(job))
}

async fn upgrade_paid(
    conn: &mut AsyncPgConnection,
    now: DateTime<Utc>,
    change: Uuid,
    payment: engine::Payment<'_>,
) -> Result<Ingested, IngestError> {
    match engine::confirm_payment_in(conn, now, change, payment, &stripe_actor()).await {
        Ok(engine::Confirmation::Applied { change: c, .. }) if c.applied_at == Some(now) => {
            Ok(Ingested::Applied(format!("plan change {change} applied")))
        }
        Ok(engine::Confirmation::Applied { .. }) => Ok(Ingested::Ignored(format!(
            "plan change {change} was already applied"
        ))),
        Ok(engine::Confirmation::Refunded { refund, .. }) => Ok(Ingested::Applied(format!(
            "plan change {change} could no longer be applied: the payment is refunded (charge {})",
            refund.id
        ))),
        Ok(engine::Confirmation::Unmatched { reason, .. }) => {
            Ok(Ingested::Ignored(format!("not applied: {reason}")))
        }
        Err(e @ (BillingError::WrongState(_) | BillingError::NotFound(_))) => {
            Ok(Ingested::Ignored(format!(
                "{e}: the payment needs an operator (refund or apply by hand)"
            )))
        }
        Err(e) => Err(e.into()),
    }
}
