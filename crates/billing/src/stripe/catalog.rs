//! Catalog sync: a Stripe Product per active product and a Price per active paid plan
//! (recurring monthly or yearly, one-time for lifetime plans), their ids
//! kept in `stripe_catalog`. Prices are immutable in Stripe
//! (docs.stripe.com/products-prices/manage-prices#edit-price): a plan whose
//! price changed gets a new Price and the old one is archived
//! (`active=false`; subscriptions on it keep billing it until moved).
//! Running it again changes nothing: what was made is remembered with its
//! fingerprint, and every create carries a key derived from the plan and
//! fingerprint, so even a crash between Stripe's answer and our write makes
//! no second Product or Price.

use std::collections::HashMap;

use chrono::Utc;
use stripe_product::{
    price::{CreatePrice, CreatePriceRecurring, CreatePriceRecurringInterval, UpdatePrice},
    product::{CreateProduct, UpdateProduct},
};
use tenantry_domain::{Currency, Money};
use tenantry_store::{
    AsyncPgConnection, Pool, StoreError,
    catalog::{Plan, Product},
    stripe::{self as store, CatalogTwin},
};

use stripe::StripeRequest as _;

use super::{CallError, Stripe};

/// What a sync did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SyncReport {
    /// Products created in Stripe.
    pub products_created: usize,
    /// Products renamed in Stripe.
    pub products_updated: usize,
    /// Prices created.
    pub prices_created: usize,
    /// Old prices archived.
    pub prices_archived: usize,
    /// Products and plans already in sync.
    pub unchanged: usize,
}

/// Why a sync stopped.
#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    /// Stripe failed.
    #[error(transparent)]
    Stripe(#[from] CallError),
    /// The database failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A plan's price cannot be expressed in minor units of its currency.
    #[error("plan {0}: {1}")]
    Price(String, String),
}

/// Syncs every active product and its active paid plans.
///
/// # Errors
/// [`SyncError`]; what was synced before the error stays synced.
pub async fn sync_catalog(stripe: &Stripe, pool: &Pool) -> Result<SyncReport, SyncError> {
    let mut report = SyncReport::default();
    let mut conn = pool.get().await?;
    for product in store::active_products(&mut conn).await? {
        let prod_id = sync_product(stripe, &mut conn, &product, &mut report).await?;
        // Free plans never reach a checkout: no Price.
        for plan in tenantry_store::catalog::active_plans_of(&mut conn, product.id).await? {
            if !plan.price.is_zero() {
                sync_price(stripe, &mut conn, &plan, &prod_id, &mut report).await?;
            }
        }
    }
    Ok(report)
}

/// The Stripe Price of a plan, syncing its product and it first when needed
/// (so checkout works before anyone ran `tenantry stripe sync-catalog`).
///
/// # Errors
/// [`SyncError`].
pub async fn price_of(
    stripe: &Stripe,
    conn: &mut AsyncPgConnection,
    plan: &Plan,
    product: &Product,
) -> Result<String, SyncError> {
    let mut report = SyncReport::default();
    let prod_id = sync_product(stripe, conn, product, &mut report).await?;
    sync_price(stripe, conn, plan, &prod_id, &mut report).await
}

/// The Stripe Product of a product, syncing it when needed.
///
/// # Errors
/// [`SyncError`].
pub async fn product_of(
    stripe: &Stripe,
    conn: &mut AsyncPgConnection,
    product: &Product,
) -> Result<String, SyncError> {
    sync_product(stripe, conn, product, &mut SyncReport::default()).await
}

fn metadata(pairs: &[(&str, String)]) -> HashMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), v.clone()))
        .collect()
}

async fn sync_product(
    stripe: &Stripe,
    conn: &mut AsyncPgConnection,
    product: &Product,
    report: &mut SyncReport,
) -> Result<String, SyncError> {
    let existing = store::twin(conn, product.id).await?;
    let stripe_id = match &existing {
        Some(t) if t.fingerprint == product.name => {
            report.unchanged += 1;
            return Ok(t.stripe_id.clone());
        }
        Some(t) => {
            let key = Stripe::key(&format!(
                "product:{}:name:{}",
                product.id,
                product.updated_at.timestamp_micros()
            ))?;
            let req = UpdateProduct::new(t.stripe_id.as_str()).name(product.name.as_str());
            stripe
                .call("update product", || {
                    req.customize()
                        .request_strategy(key.clone())
                        .send(&stripe.client)
                })
                .await?;
            report.products_updated += 1;
            t.stripe_id.clone()
        }
        None => {
            let key = Stripe::key(&format!("product:{}", product.id))?;
            let req = CreateProduct::new(product.name.as_str()).metadata(metadata(&[
                ("product_id", product.id.to_string()),
                ("slug", product.slug.clone()),
            ]));
            let made = stripe
                .call("create product", || {
                    req.customize()
                        .request_strategy(key.clone())
                        .send(&stripe.client)
                })
                .await?;
            report.products_created += 1;
            made.id.to_string()
        }
    };
    store::save_twin(
        conn,
        &CatalogTwin {
            local_id: product.id,
            kind: "product".into(),
            stripe_id: stripe_id.clone(),
            fingerprint: product.name.clone(),
            synced_at: Utc::now(),
        },
    )
    .await?;
    Ok(stripe_id)
}

/// Stripe's currency for an ISO 4217 code, `None` when Stripe does not
/// accept it (`async-stripe` knows Stripe's list: docs.stripe.com/currencies;
/// an unknown code must never be sent as its default, USD).
pub fn accepted_currency(code: &str) -> Option<stripe_types::Currency> {
    let Ok(currency) = code.to_lowercase().parse::<stripe_types::Currency>();
    match currency {
        stripe_types::Currency::Unknown(_) => None,
        c => Some(c),
    }
}

/// `(minor units, lower-case currency)` of a plan's price.
///
/// # Errors
/// [`SyncError::Price`].
pub fn minor_units(plan: &Plan) -> Result<(i64, String), SyncError> {
    let currency = Currency::parse(&plan.currency)
        .map_err(|e| SyncError::Price(plan.code.clone(), e.to_string()))?;
    let units = Money::exact(plan.price, currency)
        .and_then(|m| m.minor_units())
        .map_err(|e| SyncError::Price(plan.code.clone(), e.to_string()))?;
    Ok((units, currency.code().to_lowercase()))
}

async fn sync_price(
    stripe: &Stripe,
    conn: &mut AsyncPgConnection,
    plan: &Plan,
    product_stripe_id: &str,
    report: &mut SyncReport,
) -> Result<String, SyncError> {
    let (units, currency) = minor_units(plan)?;
    let fingerprint = format!("{units} {currency} {}", plan.billing_interval);
    let existing = store::twin(conn, plan.id).await?;
    if let Some(t) = &existing
        && t.fingerprint == fingerprint
    {
        report.unchanged += 1;
        return Ok(t.stripe_id.clone());
    }
    let key = Stripe::key(&format!(
        "price:{}:{}",
        plan.id,
        fingerprint.replace(' ', "-")
    ))?;
    let stripe_currency = accepted_currency(&currency).ok_or_else(|| {
        SyncError::Price(
            plan.code.clone(),
            format!(
                "Stripe does not accept the currency {}",
                currency.to_uppercase()
            ),
        )
    })?;
    let mut req = CreatePrice::new(stripe_currency)
        .product(product_stripe_id)
        .unit_amount(units)
        .nickname(plan.name.as_str())
        .metadata(metadata(&[
            ("plan_id", plan.id.to_string()),
            ("plan", plan.code.clone()),
        ]));
    let interval = match plan.billing_interval.as_str() {
        "month" => Some(CreatePriceRecurringInterval::Month),
        "year" => Some(CreatePriceRecurringInterval::Year),
        _ => None, // lifetime: a one-time price
    };
    if let Some(i) = interval {
        req = req.recurring(CreatePriceRecurring::new(i));
    }
    let made = stripe
        .call("create price", || {
            req.customize()
                .request_strategy(key.clone())
                .send(&stripe.client)
        })
        .await?;
    report.prices_created += 1;
    if let Some(old) = existing {
        let key = Stripe::key(&format!("archive:{}", old.stripe_id))?;
        let req = UpdatePrice::new(old.stripe_id.as_str()).active(false);
        stripe
            .call("archive price", || {
                req.customize()
                    .request_strategy(key.clone())
                    .send(&stripe.client)
            })
            .await?;
        report.prices_archived += 1;
    }
    let stripe_id = made.id.to_string();
    store::save_twin(
        conn,
        &CatalogTwin {
            local_id: plan.id,
            kind: "price".into(),
            stripe_id: stripe_id.clone(),
            fingerprint,
            synced_at: Utc::now(),
        },
    )
    .await?;
    Ok(stripe_id)
}

#[cfg(test)]
mod tests {
    use super::accepted_currency;

    /// A currency Stripe does not list is refused, never sent as another
    /// (async-stripe parses it as `Unknown`, and its default is USD).
    #[test]
    fn only_currencies_stripe_lists_are_accepted() {
        assert_eq!(accepted_currency("EUR"), Some(stripe_types::Currency::EUR));
        assert_eq!(accepted_currency("usd"), Some(stripe_types::Currency::USD));
        for refused in ["IRR", "KPW", "XXX", "eur "] {
            assert_eq!(accepted_currency(refused), None, "{refused}");
        }
    }
}
