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
            let session = text(obj, &["id"]).unwrap_or_default();
            if let Some(change) = meta_uuid(obj, "plan_change_id") {
                return upgrade_paid(conn, now, change, session).await;
            }
            let Some(sub) = our_subscription(conn, obj).await? else {
                return Ok(unmatched(env));
            };
            let recurring = text(obj, &["mode"]) == Some("subscription");
            store::link_provider(
                conn,
                sub.id,
                text(obj, &["customer"]),
                stripe_subscription(obj),
                recurring,
            )
            .await?;
            Ok(signup_paid(conn, now, &sub, session).await?)
        }
        "invoice.paid" => {
            let invoice = text(obj, &["id"]).unwrap_or_default();
            if let Some(change) = meta_uuid(obj, "plan_change_id") {
                return upgrade_paid(conn, now, change, invoice).await;
            }
            let Some(sub) = our_subscription(conn, obj).await? else {
                return Ok(unmatched(env));
            };
            store::link_provider(
                conn,
                sub.id,
                text(obj, &["customer"]),
                stripe_subscription(obj),
                true,
            )
            .await?;
            let first = text(obj, &["billing_reason"]) == Some("subscription_create");
            let signup = if first {
                Some(signup_paid(conn, now, &sub, invoice).await?)
            } else {
                None
            };
            let renewed = match period(obj, &sub)? {
                Some(p) if stripe_subscription(obj).is_some() => {
                    let action = if first {
                        "subscription.first_period_paid"
                    } else {
                        "subscription.renewed"
                    };
                    store::record_paid_period(conn, now, &p, action).await?
                }
                _ => false,
            };
            Ok(match (signup, renewed) {
                (Some(s @ Ingested::Applied(_)), _) => s,
                (_, true) => Ingested::Applied("period paid".into()),
                (Some(s), false) => s,
                (None, false) => Ingested::Ignored("period already paid".into()),
            })
        }
        "invoice.payment_failed" => {
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
            let reason = format!("invoice {} unpaid after {attempts} attempt(s)", p.reference);
            Ok(
                if store::record_failed_period(conn, now, &p, &reason).await? {
                    Ingested::Applied("past due".into())
                } else {
                    Ingested::Ignored(
                        "the period is already paid, or the subscription is not active".into(),
                    )
                },
            )
        }
        "customer.subscription.updated" | "customer.subscription.deleted" => {
            let Some(sub) = our_subscription(conn, obj).await? else {
                return Ok(unmatched(env));
            };
            store::link_provider(
                conn,
                sub.id,
                text(obj, &["customer"]),
                text(obj, &["id"]),
                false,
            )
            .await?;
            let ended = env.kind == "customer.subscription.deleted"
                || text(obj, &["status"]) == Some("canceled");
            if !ended {
                return Ok(Ingested::Ignored(
                    "no effect: periods and dunning follow invoices".into(),
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
    let cents = obj["amount_paid"]
        .as_i64()
        .or_else(|| obj["amount_due"].as_i64())
        .unwrap_or(0);
    Ok(Some(PaidPeriod {
        subscription_id: sub.id,
        tenant_id: sub.tenant_id,
        start,
        end,
        amount: Money::from_minor_units(cents, currency).amount(),
        currency: currency.code().to_owned(),
        reference: text(obj, &["id"]).unwrap_or_default().to_owned(),
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
    reference: &str,
) -> Result<Ingested, IngestError> {
    match engine::confirm_payment_in(conn, now, change, reference, &stripe_actor()).await {
        Ok((c, _)) if c.applied_at == Some(now) => {
            Ok(Ingested::Applied(format!("plan change {change} applied")))
        }
        Ok(_) => Ok(Ingested::Ignored(format!(
            "plan change {change} was already applied"
        ))),
        Err(e @ (BillingError::WrongState(_) | BillingError::NotFound(_))) => {
            Ok(Ingested::Ignored(format!(
                "{e}: the payment needs an operator (refund or apply by hand)"
            )))
        }
        Err(e) => Err(e.into()),
    }
}
