//! Running the billing processor: once (`tenantry billing process-due`) or
//! every `TENANTRY_BILLING_INTERVAL_SECS` inside `serve`.

use std::sync::Arc;

use tenantry_billing::{DisabledGateway, PaymentGateway, SandboxGateway, engine, stripe};

use crate::config::{Payments, Settings};

/// The Stripe client, when payments go through Stripe.
///
/// # Errors
/// An unusable key or API URL.
pub fn stripe_client(settings: &Settings) -> anyhow::Result<Option<stripe::Stripe>> {
    match &settings.payments {
        Payments::Stripe(s) => Ok(Some(stripe::Stripe::new(s.clone())?)),
        _ => Ok(None),
    }
}

/// The gateway payments go through: Stripe, the sandbox (no money moves),
/// or none (payments disabled: operators mark payments).
pub fn gateway(
    settings: &Settings,
    stripe: Option<&stripe::Stripe>,
    pool: &tenantry_store::Pool,
) -> Arc<dyn PaymentGateway> {
    match (&settings.payments, stripe) {
        (Payments::Disabled, _) => Arc::new(DisabledGateway),
        (Payments::Stripe(_), Some(s)) => {
            Arc::new(stripe::StripeGateway::new(s.clone(), pool.clone()))
        }
        _ => Arc::new(SandboxGateway::new(format!(
            "{}/sandbox",
            settings.public_url
        ))),
    }
}

/// One run, now.
///
/// # Errors
/// A database error.
pub async fn run_once(settings: &Settings) -> anyhow::Result<engine::ProcessReport> {
    let pool = tenantry_store::Pool::new(
        settings.require_database_url()?,
        tenantry_store::PoolSettings {
            max_size: 6,
            timeout: settings.db_timeout,
        },
    )?;
    let stripe = stripe_client(settings)?;
    let gateway = gateway(settings, stripe.as_ref(), &pool);
    Ok(engine::process_due(
        &pool,
        gateway.as_ref(),
        &settings.billing_clock(),
        &settings.billing,
    )
    .await?)
}

/// Runs the processor every `TENANTRY_BILLING_INTERVAL_SECS` until the
/// returned handle is aborted. Several replicas may run it: rows are claimed
/// with `SKIP LOCKED`.
pub fn spawn_periodic(
    pool: tenantry_store::Pool,
    gateway: Arc<dyn PaymentGateway>,
    settings: Arc<Settings>,
) -> Option<tokio::task::JoinHandle<()>> {
    let interval = settings.billing_interval;
    tenantry_store::periodic::spawn("the billing processor", interval, move || {
        let (pool, gateway, settings) = (pool.clone(), gateway.clone(), settings.clone());
        async move {
            let clock = settings.billing_clock();
            let r = engine::process_due(&pool, gateway.as_ref(), &clock, &settings.billing).await?;
            if r != engine::ProcessReport::default() {
                tracing::info!(?r, "billing processor ran");
            }
            Ok::<_, tenantry_billing::BillingError>(())
        }
    })
}

/// Enqueues a `stripe.reconcile` job every `TENANTRY_STRIPE_RECONCILE_INTERVAL_SECS`
/// (one live job at a time, whatever the replicas), until aborted; `None`
/// without Stripe or with an interval of 0.
pub fn spawn_reconcile(
    pool: tenantry_store::Pool,
    settings: Arc<Settings>,
) -> Option<tokio::task::JoinHandle<()>> {
    if !matches!(settings.payments, Payments::Stripe(_)) {
        return None;
    }
    tenantry_store::periodic::spawn(
        "enqueueing the Stripe reconciliation",
        settings.stripe_reconcile_interval,
        move || {
            let pool = pool.clone();
            async move {
                let mut conn = pool.get().await?;
                tenantry_store::jobs::enqueue(
                    &mut conn,
                    &tenantry_store::jobs::kinds::StripeReconcile {},
                )
                .await?;
                Ok::<_, tenantry_store::StoreError>(())
            }
        },
    )
}
