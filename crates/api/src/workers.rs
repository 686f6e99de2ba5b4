//! The job workers of this process: which handler runs each job kind, and
//! how `serve` and `tenantry worker` start them.

use tenantry_store::worker::{self, Handlers};
use tokio_util::sync::CancellationToken;

use crate::{AppState, config::Settings};

/// Every job kind this binary runs, with its handler. Billing and
/// provisioning register their kinds here; the workers claim only these.
pub fn handlers(state: &AppState) -> Handlers {
    let mut h = Handlers::new();
    crate::nodes::register_jobs(&mut h, state);
    crate::instances::register_jobs(&mut h, state);
    match provisioner(state) {
        Ok(p) => tenantry_provisioning::deploy::register(&mut h, std::sync::Arc::new(p)),
        Err(e) => {
            tracing::error!(error = %e, "provisioning jobs disabled: bad TENANTRY_TENANT_DATABASE_URLS")
        }
    }
    if let Some(stripe) = &state.stripe {
        tenantry_billing::stripe::jobs::StripeJobs {
            stripe: stripe.clone(),
            clock: state.settings.billing_clock(),
        }
        .register(&mut h);
    }
    h
}

/// The provisioning jobs' dependencies, from the app's settings.
///
/// # Errors
/// When `TENANTRY_TENANT_DATABASE_URLS` is malformed.
pub fn provisioner(state: &AppState) -> anyhow::Result<tenantry_provisioning::deploy::Provisioner> {
    use secrecy::ExposeSecret as _;
    use tenantry_provisioning::deploy::{DatabaseServers, TenantDbServer};
    let p = &state.settings.provisioning;
    let mut databases = DatabaseServers::default();
    let spec = p
        .tenant_database_urls
        .as_ref()
        .or(state.settings.database_url.as_ref())
        .map(|s| s.expose_secret().to_owned())
        .unwrap_or_default();
    for entry in spec.split(',').map(str::trim).filter(|e| !e.is_empty()) {
        let (product, url) = match entry.split_once('=') {
            Some((k, v)) if !k.contains(':') && !k.contains('/') => (Some(k.trim()), v.trim()),
            _ => (None, entry),
        };
        if !url.starts_with("postgres://") && !url.starts_with("postgresql://") {
            anyhow::bail!(
                "TENANTRY_TENANT_DATABASE_URLS: {:?} is not a postgres:// URL",
                product.unwrap_or("default")
            );
        }
        let server = TenantDbServer::from_url(
            secrecy::SecretString::from(url.to_owned()),
            p.tenant_database_host.as_deref(),
        )
        .map_err(|e| {
            anyhow::anyhow!(
                "TENANTRY_TENANT_DATABASE_URLS ({}): {e}",
                product.unwrap_or("default")
            )
        })?;
        match product {
            None | Some("default") => databases.default = Some(server),
            Some(slug) => {
                databases.by_product.insert(slug.to_owned(), server);
            }
        }
    }
    let keyring = state.auth.keyring.clone();
    let drivers_keyring = keyring.clone();
    let opts = p.clone();
    Ok(tenantry_provisioning::deploy::Provisioner {
        pool: state.pool.clone(),
        keyring,
        drivers: std::sync::Arc::new(move |node| {
            crate::nodes::driver(&drivers_keyring, node, &opts)
        }),
        databases,
        base_domain: p.base_domain.clone(),
        backup_dir: p.backup_dir.clone(),
        stacks_dir: p.stacks_dir.clone(),
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
