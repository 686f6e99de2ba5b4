//! The job workers of this process: which handler runs each job kind, and
//! how `serve` and `tenantry worker` start them.

use tenantry_store::worker::{self, Handlers};
use tokio_util::sync::CancellationToken;

use crate::{AppState, config::Settings};

/// Every job kind this binary runs, with its handler. Billing and
/// provisioning register their kinds here; the workers claim only these.
pub fn handlers(state: &AppState) -> Handlers {
    let mut h = Handlers::new();
    state.nodes.clone().register(&mut h);
    crate::routes::tenants::domains::verifier(state).register(&mut h);
    match provisioner(state) {
        Ok(p) => std::sync::Arc::new(p).register(&mut h),
        Err(e) => {
            tracing::error!(error = %e, "provisioning jobs disabled: bad TENANTRY_TENANT_DATABASE_URLS")
        }
    }
    tenantry_billing::RefundJobs {
        gateway: state.gateway.clone(),
    }
    .register(&mut h);
    if let Some(stripe) = &state.stripe {
        tenantry_billing::stripe::jobs::StripeJobs {
            stripe: stripe.clone(),
            clock: state.settings.billing_clock(),
        }
        .register(&mut h);
    }
    h
}

/// The provisioning jobs' dependencies, from the app's settings; billing's
/// rules follow provisioning's facts ([`tenantry_billing::BillingFollowUp`]).
///
/// # Errors
/// When `TENANTRY_TENANT_DATABASE_URLS` is malformed.
pub fn provisioner(state: &AppState) -> anyhow::Result<tenantry_provisioning::deploy::Provisioner> {
    let settings = state.nodes.settings.clone();
    let databases = settings
        .database_servers(state.settings.database_url.as_ref())
        .map_err(anyhow::Error::msg)?;
    Ok(tenantry_provisioning::deploy::Provisioner {
        pool: state.pool.clone(),
        keyring: state.auth.keyring.clone(),
        databases,
        settings,
        events: std::sync::Arc::new(tenantry_billing::BillingFollowUp {
            clock: state.settings.billing_clock(),
        }),
        router: Some(state.router.clone()),
    })
}

/// Starts `settings.jobs.workers` workers for `serve`, unless that is 0.
pub fn spawn(state: &AppState, shutdown: CancellationToken) -> Option<tokio::task::JoinHandle<()>> {
    let jobs = &state.settings.jobs;
    if jobs.workers == 0 {
        return None;
    }
    Some(tokio::spawn(worker::run(
        state.pool.clone(),
        state.settings.database_url.clone(),
        handlers(state),
        jobs.worker_config(jobs.workers),
        shutdown,
    )))
}

/// `tenantry worker`: runs at least one worker, without the HTTP API, until
/// SIGTERM or Ctrl-C; the running jobs get their shutdown grace.
///
/// # Errors
/// Configuration or database errors at start-up.
pub async fn run_standalone(settings: Settings) -> anyhow::Result<()> {
    let url = settings.require_database_url()?;
    let pending = tenantry_store::migrations::status(url)
        .await?
        .into_iter()
        .filter(|m| !m.applied)
        .count();
    if pending > 0 {
        anyhow::bail!(
            "{pending} migration(s) pending: run `tenantry migrate up` (or start `serve`) first"
        );
    }
    let (state, _) = AppState::from_settings(&settings)?;
    let shutdown = CancellationToken::new();
    let stop = shutdown.clone();
    tokio::spawn(async move {
        crate::startup::shutdown_signal().await;
        tracing::info!("shutdown signal received: finishing running jobs");
        stop.cancel();
    });
    let workers = settings.jobs.workers.max(1);
    worker::run(
        state.pool.clone(),
        settings.database_url.clone(),
        handlers(&state),
        settings.jobs.worker_config(workers),
        shutdown,
    )
    .await;
    Ok(())
}
