//! Running the billing processor: once (`tenantry billing process-due`) or
//! every `TENANTRY_BILLING_INTERVAL_SECS` inside `serve`.

use std::sync::Arc;

use tenantry_billing::{PaymentGateway, SandboxGateway, engine};

use crate::{config::Settings, error::error_chain};

/// The gateway the processor charges through (the sandbox one until Stripe lands).
pub fn gateway(settings: &Settings) -> Arc<dyn PaymentGateway> {
    Arc::new(SandboxGateway::new(format!(
        "{}/sandbox",
        settings.public_url
    )))
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
    let gateway = gateway(settings);
    Ok(engine::process_due(
        &pool,
        gateway.as_ref(),
        &settings.billing_clock(),
        &settings.billing,
    )
    .await?)
}

/// Runs the processor every `interval` until the returned handle is aborted.
/// Several replicas may run it: rows are claimed with `SKIP LOCKED`.
pub fn spawn_periodic(
    pool: tenantry_store::Pool,
    gateway: Arc<dyn PaymentGateway>,
    settings: Arc<Settings>,
) -> Option<tokio::task::JoinHandle<()>> {
    if settings.billing_interval.is_zero() {
        return None;
    }
    Some(tokio::spawn(async move {
        let mut tick = tokio::time::interval(settings.billing_interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let clock = settings.billing_clock();
            match engine::process_due(&pool, gateway.as_ref(), &clock, &settings.billing).await {
                Ok(r) if r != engine::ProcessReport::default() => {
                    tracing::info!(?r, "billing processor ran")
                }
                Ok(_) => {}
                Err(e) => {
                    tracing::error!(error = %error_chain(&e), "billing processor failed; retrying next tick")
                }
            }
        }
    }))
}
