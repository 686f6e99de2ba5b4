//! The `stripe.*` jobs: every outbound Stripe call runs in one (or in its
//! code, run inline right after the transaction that enqueued it commits),
//! with idempotency keys from our ids, so the queue may repeat any of them.
//!
//! | kind | payload (`tenantry_store::jobs::kinds`) | does |
//! | --- | --- | --- |
//! | `stripe.create_checkout` | `StripeCreateCheckout` | the signup's Checkout Session |
//! | `stripe.charge` | `StripeCharge` | an upgrade's (or renewal's) charge: invoice + item + pay, or a payment Checkout |
//! | `stripe.sync_price` | `StripeSyncPrice` | moves the Stripe subscription to the Price it should bill next, `proration_behavior=none` |
//! | `stripe.reconcile` | `StripeReconcile` | processes recent events no webhook delivered |

use stripe::StripeRequest as _;
use stripe_billing::subscription::{
    RetrieveSubscription, UpdateSubscription, UpdateSubscriptionItems,
    UpdateSubscriptionProrationBehavior,
};
use tenantry_domain::billing::PlanChangeStatus;
use tenantry_store::{
    AsyncPgConnection, Pool, StoreError, billing,
    jobs::{
        self,
        kinds::{StripeCharge, StripeCreateCheckout, StripeReconcile, StripeSyncPrice},
    },
    stripe as store,
    worker::{Handlers, JobContext, JobError, JobHandler, Retryable},
};
use uuid::Uuid;

use super::{CallError, Stripe, catalog, checkout, gateway, reconcile};
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
            &StripeSyncPrice {
                tenant_id: Some(sub.tenant_id),
                subscription_id,
            },
        )
        .await?;
    }
    Ok(())
}

/// Moves the Stripe subscription to the Price of the plan it should bill
/// next: a scheduled downgrade's plan (so the renewal at the period end
/// bills it), else the current plan (an applied upgrade; a canceled
/// downgrade). `proration_behavior=none`: the upgrade's proration was
/// charged exactly by us (docs.stripe.com/billing/subscriptions/prorations#disable-prorations).
/// Does nothing when the subscription already bills that Price.
///
/// # Errors
/// [`JobError`]: transient Stripe and database failures retry.
pub async fn sync_price(
    stripe: &Stripe,
    pool: &Pool,
    subscription_id: Uuid,
) -> Result<(), JobError> {
    let mut conn = pool.get().await?;
    let sub = store::lock_subscription(&mut conn, subscription_id).await?;
    let Some(stripe_sub) = sub.provider_subscription_id.clone() else {
        return Ok(());
    };
    let open = billing::open_change(&mut conn, sub.tenant_id).await?;
    let target = open
        .as_ref()
        .filter(|c| c.status == PlanChangeStatus::Scheduled)
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
        return Err(JobError::Fail(format!(
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
    /// Registers this handler for every `stripe.*` kind.
    pub fn register(self, handlers: &mut Handlers) {
        let me = std::sync::Arc::new(self);
        handlers.register::<StripeCreateCheckout, _>(me.clone());
        handlers.register::<StripeCharge, _>(me.clone());
        handlers.register::<StripeSyncPrice, _>(me.clone());
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
        sync_price(&self.stripe, &ctx.pool, job.subscription_id).await
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
