//! The `stripe.*` jobs: every outbound Stripe call runs in one (or in its
//! code, run inline right after the transaction that enqueued it commits),
//! with idempotency keys from our ids, so the queue may repeat any of them.
//!
//! | kind | payload | does |
//! | --- | --- | --- |
//! | `stripe.create_checkout` | `{tenant_id, subscription_id}` | the signup's Checkout Session |
//! | `stripe.charge` | a charge request | an upgrade's (or renewal's) charge: invoice + item + pay, or a payment Checkout |
//! | `stripe.sync_price` | `{subscription_id}` | moves the Stripe subscription to the Price it should bill next, `proration_behavior=none` |
//! | `stripe.reconcile` | `{}` | processes recent events no webhook delivered |

use serde_json::{Value, json};
use stripe::StripeRequest as _;
use stripe_billing::subscription::{
    RetrieveSubscription, UpdateSubscription, UpdateSubscriptionItems,
    UpdateSubscriptionProrationBehavior,
};
use tenantry_store::{AsyncPgConnection, Pool, StoreError, billing, jobs, stripe as store};
use uuid::Uuid;

use super::{CallError, Stripe, catalog, checkout, gateway, reconcile};
use crate::{engine::Clock, gateway::GatewayError};

/// Opens a signup's Checkout Session.
pub const CREATE_CHECKOUT: &str = "stripe.create_checkout";
/// Charges an amount.
pub const CHARGE: &str = "stripe.charge";
/// Moves a Stripe subscription to the Price it should bill.
pub const SYNC_PRICE: &str = "stripe.sync_price";
/// Processes recent events not yet recorded.
pub const RECONCILE: &str = "stripe.reconcile";
/// Every kind above.
pub const KINDS: [&str; 4] = [CREATE_CHECKOUT, CHARGE, SYNC_PRICE, RECONCILE];

/// How a job failed.
#[derive(Debug, thiserror::Error)]
pub enum JobFailure {
    /// Transient: retry with back-off.
    #[error("{0}")]
    Retry(String),
    /// Permanent.
    #[error("{0}")]
    Fail(String),
}

impl From<GatewayError> for JobFailure {
    fn from(e: GatewayError) -> Self {
        match e {
            GatewayError::Unavailable(m) => Self::Retry(m),
            GatewayError::Refused(m) => Self::Fail(m),
        }
    }
}

impl From<CallError> for JobFailure {
    fn from(e: CallError) -> Self {
        GatewayError::from(e).into()
    }
}

impl From<StoreError> for JobFailure {
    fn from(e: StoreError) -> Self {
        Self::Retry(format!("database: {e}"))
    }
}

impl From<catalog::SyncError> for JobFailure {
    fn from(e: catalog::SyncError) -> Self {
        GatewayError::from(e).into()
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
        CREATE_CHECKOUT,
        Some(tenant_id),
        json!({"tenant_id": tenant_id, "subscription_id": subscription_id}),
        Some(&format!("{CREATE_CHECKOUT}:{subscription_id}")),
    )
    .await
}

/// Enqueues `stripe.sync_price` when Stripe bills this subscription (else
/// does nothing). The job reads what to bill when it runs, so one live job
/// per subscription is enough.
///
/// # Errors
/// [`StoreError`].
pub async fn enqueue_price_sync(
    conn: &mut AsyncPgConnection,
    subscription_id: Uuid,
) -> Result<(), StoreError> {
    let sub = store::lock_subscription(conn, subscription_id).await?;
    if sub.provider == "stripe" && sub.provider_subscription_id.is_some() {
        jobs::enqueue(
            conn,
            SYNC_PRICE,
            Some(sub.tenant_id),
            json!({"subscription_id": subscription_id}),
            Some(&format!("{SYNC_PRICE}:{subscription_id}")),
        )
        .await?;
    }
    Ok(())
}

fn uuid(payload: &Value, key: &str) -> Result<Uuid, JobFailure> {
    payload[key]
        .as_str()
        .and_then(|s| Uuid::parse_str(s).ok())
        .ok_or_else(|| JobFailure::Fail(format!("payload has no {key}")))
}

/// Runs one `stripe.*` job.
///
/// # Errors
/// [`JobFailure`].
pub async fn run(
    stripe: &Stripe,
    pool: &Pool,
    clock: &Clock,
    kind: &str,
    payload: &Value,
) -> Result<(), JobFailure> {
    match kind {
        CREATE_CHECKOUT => {
            checkout::open_signup_checkout(stripe, pool, uuid(payload, "subscription_id")?).await?;
            Ok(())
        }
        CHARGE => {
            let request = gateway::charge_from_payload(payload).map_err(JobFailure::Fail)?;
            // The outcome reaches the engine through `invoice.paid` / `checkout.session.completed`.
            gateway::charge(stripe, pool, &request).await?;
            Ok(())
        }
        SYNC_PRICE => sync_price(stripe, pool, uuid(payload, "subscription_id")?).await,
        RECONCILE => {
            reconcile::reconcile(stripe, pool, clock, reconcile::WINDOW).await?;
            Ok(())
        }
        other => Err(JobFailure::Fail(format!("not a stripe job: {other}"))),
    }
}

/// Moves the Stripe subscription to the Price of the plan it should bill
/// next: a scheduled downgrade's plan (so the renewal at the period end
/// bills it), else the current plan (an applied upgrade; a canceled
/// downgrade). `proration_behavior=none`: the upgrade's proration was
/// charged exactly by us (docs.stripe.com/billing/subscriptions/prorations#disable-prorations).
/// Does nothing when the subscription already bills that Price.
///
/// # Errors
/// [`JobFailure`].
pub async fn sync_price(
    stripe: &Stripe,
    pool: &Pool,
    subscription_id: Uuid,
) -> Result<(), JobFailure> {
    let mut conn = pool.get().await?;
    let sub = store::lock_subscription(&mut conn, subscription_id).await?;
    let Some(stripe_sub) = sub.provider_subscription_id.clone() else {
        return Ok(());
    };
    let open = billing::open_change(&mut conn, sub.tenant_id).await?;
    let target = open
        .as_ref()
        .filter(|c| c.status == "scheduled")
        .map_or(sub.plan_id, |c| c.to_plan_id);
    let (plan, product) = store::plan_with_product(&mut conn, target).await?;
    let price = catalog::price_of(stripe, &mut conn, &plan, &product).await?;
    let latest = store::latest_change(&mut conn, sub.tenant_id)
        .await?
        .map_or_else(|| "none".to_owned(), |c| c.to_string());
    drop(conn);
    // A read: safe to repeat, no idempotency key (Stripe ignores them on GET).
    let req = RetrieveSubscription::new(stripe_sub.as_str());
    let current = stripe
        .call("retrieve subscription", || {
            req.customize().send(&stripe.client)
        })
        .await?;
    let Some(item) = current.items.data.first() else {
        return Err(JobFailure::Fail(format!(
            "Stripe subscription {stripe_sub} has no item"
        )));
    };
    if item.price.id.as_str() == price {
        return Ok(());
    }
    let key = Stripe::key(&format!("sub-price:{stripe_sub}:{latest}:{price}"))?;
    let req = UpdateSubscription::new(stripe_sub.as_str())
        .items(vec![UpdateSubscriptionItems {
            id: Some(item.id.to_string()),
            price: Some(price.clone()),
            ..Default::default()
        }])
        .proration_behavior(UpdateSubscriptionProrationBehavior::None);
    stripe
        .call("update subscription price", || {
            req.customize()
                .request_strategy(key.clone())
                .send(&stripe.client)
        })
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
    /// Registers this handler for every kind in [`KINDS`].
    pub fn register(self, handlers: &mut tenantry_store::worker::Handlers) {
        let me = std::sync::Arc::new(self);
        for kind in KINDS {
            handlers.register(kind, me.clone());
        }
    }
}

#[async_trait::async_trait]
impl tenantry_store::worker::JobHandler for StripeJobs {
    async fn run(
        &self,
        ctx: &tenantry_store::worker::JobContext,
    ) -> Result<(), tenantry_store::worker::JobError> {
        use tenantry_store::worker::JobError;
        ctx.set_step(&ctx.job.kind).await?;
        run(
            &self.stripe,
            &ctx.pool,
            &self.clock,
            &ctx.job.kind,
            &ctx.job.payload,
        )
        .await
        .map_err(|e| match e {
            JobFailure::Retry(m) => JobError::Retry(m),
            JobFailure::Fail(m) => JobError::Fail(m),
        })
    }
}
