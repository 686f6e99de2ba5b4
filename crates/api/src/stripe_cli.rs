//! `tenantry stripe sync-catalog | reconcile`.

use tenantry_billing::stripe::{catalog, reconcile};

use crate::{cli::StripeAction, config::Settings};

/// Runs a `tenantry stripe` command; returns the line to print.
///
/// # Errors
/// Stripe not configured, Stripe or the database failing.
pub async fn run(settings: &Settings, action: StripeAction) -> anyhow::Result<String> {
    let stripe = crate::billing_processor::stripe_client(settings)?.ok_or_else(|| {
        anyhow::anyhow!("Stripe is not configured: set TENANTRY_STRIPE_SECRET_KEY (and TENANTRY_PAYMENTS=stripe)")
    })?;
    let pool = tenantry_store::Pool::new(
        settings.require_database_url()?,
        tenantry_store::PoolSettings {
            max_size: 2,
            timeout: settings.db_timeout,
        },
    )?;
    Ok(match action {
        StripeAction::SyncCatalog => {
            let r = catalog::sync_catalog(&stripe, &pool).await?;
            format!(
                "stripe catalog: {} product(s) created, {} updated; {} price(s) created, {} archived; {} unchanged",
                r.products_created,
                r.products_updated,
                r.prices_created,
                r.prices_archived,
                r.unchanged
            )
        }
        StripeAction::Reconcile => {
            let r =
                reconcile::reconcile(&stripe, &pool, &settings.billing_clock(), reconcile::WINDOW)
                    .await?;
            format!(
                "stripe reconcile: {} event(s) listed, {} recovered",
                r.seen, r.recovered
            )
        }
    })
}
