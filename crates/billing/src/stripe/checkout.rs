//! Customers and Checkout Sessions: the signup's first payment
//! (docs.stripe.com/payments/checkout/build-subscriptions), and one-off
//! payments when no payment method is saved.

use std::collections::HashMap;

use chrono::{DateTime, TimeZone as _, Utc};
use stripe::StripeRequest as _;
use stripe_checkout::checkout_session::{
    CreateCheckoutSession, CreateCheckoutSessionLineItems, CreateCheckoutSessionLineItemsPriceData,
    CreateCheckoutSessionPaymentIntentData, CreateCheckoutSessionSubscriptionData,
};
use stripe_core::customer::CreateCustomer;
use stripe_shared::CheckoutSessionMode;
use tenantry_store::{AsyncPgConnection, Pool, StoreError, stripe as store, tenants};
use uuid::Uuid;

use super::{Stripe, catalog};
use crate::gateway::{CheckoutSession, GatewayError};

impl From<StoreError> for GatewayError {
    fn from(e: StoreError) -> Self {
        GatewayError::Unavailable(format!("database: {e}"))
    }
}

impl From<catalog::SyncError> for GatewayError {
    fn from(e: catalog::SyncError) -> Self {
        match e {
            catalog::SyncError::Stripe(c) => c.into(),
            catalog::SyncError::Store(s) => s.into(),
            catalog::SyncError::Price(..) => GatewayError::Refused(e.to_string()),
        }
    }
}

/// The Stripe customer of a tenant's subscription, created (with the
/// owner's email and key `customer:{tenant}`) and remembered when missing.
///
/// # Errors
/// [`GatewayError`].
pub async fn ensure_customer(
    stripe: &Stripe,
    conn: &mut AsyncPgConnection,
    tenant_id: Uuid,
) -> Result<String, GatewayError> {
    let (subscription, _) = tenants::subscription_of(conn, tenant_id).await?;
    if let Some(c) = subscription.provider_customer_id {
        return Ok(c);
    }
    let email = store::owner_email(conn, tenant_id).await?;
    let view = tenants::find_tenant(conn, &tenant_id.to_string(), tenants::Visibility::All).await?;
    let key = Stripe::key(&format!("customer:{tenant_id}"))?;
    let req = CreateCustomer::new()
        .email(email)
        .name(view.tenant.company_name.as_str())
        .metadata(ids(tenant_id, subscription.id));
    let customer = stripe
        .call("create customer", || {
            req.customize()
                .request_strategy(key.clone())
                .send(&stripe.client)
        })
        .await?;
    let id = customer.id.to_string();
    store::set_customer(conn, subscription.id, &id).await?;
    Ok(id)
}

/// Stripe's currency for an ISO 4217 code, refusing one Stripe does not
/// accept (never sent as another currency: `async-stripe`'s default is USD).
///
/// # Errors
/// [`GatewayError::Refused`] naming the currency.
pub fn stripe_currency(code: &str) -> Result<stripe_types::Currency, GatewayError> {
    catalog::accepted_currency(code).ok_or_else(|| {
        GatewayError::Refused(format!(
            "Stripe does not accept the currency {}",
            code.to_uppercase()
        ))
    })
}

/// Stripe's "now" as we see it: real time, shifted like the billing clock
/// in the sandbox (the demo keeps the Stripe stand-in's clock in step). A
/// stored Checkout Session is handed out only while it expires more than
/// [`EXPIRY_MARGIN`] after this.
async fn stripe_now(conn: &mut AsyncPgConnection) -> Result<DateTime<Utc>, StoreError> {
    crate::engine::Clock::new(true).now(conn).await
}

/// A stored session expiring sooner than this is replaced by a new one.
pub const EXPIRY_MARGIN: chrono::Duration = chrono::Duration::minutes(30);

fn expiry(ts: i64) -> Option<DateTime<Utc>> {
    Utc.timestamp_opt(ts, 0).single()
}

/// Metadata naming our tenant and subscription (Stripe copies a
/// subscription's metadata into its invoices' `parent.subscription_details`).
pub fn ids(tenant_id: Uuid, subscription_id: Uuid) -> HashMap<String, String> {
    HashMap::from([
        ("tenant_id".to_owned(), tenant_id.to_string()),
        ("subscription_id".to_owned(), subscription_id.to_string()),
    ])
}

/// Opens (or finds again) the Checkout Session of a signup: `subscription`
/// mode with the plan's recurring Price (`payment` mode and the one-time
/// Price for lifetime plans), the owner as customer, `client_reference_id`
/// = tenant id, metadata naming tenant and subscription on the session and
/// on the subscription (or payment) it creates. The session is remembered
/// with what it asks (purpose `signup`, amount, currency, Stripe's
/// `expires_at`) and handed out again while it can still be paid; once it
/// expires (Stripe: 24 h) a new one is opened (Stripe key
/// `checkout:signup:{subscription}`, then `…:{n}`), so a customer can always
/// get a checkout for what they owe.
/// This is the `stripe.create_checkout` job's work; signup runs it inline
/// after its transaction commits, and `POST /v1/tenants/{id}/checkout` asks
/// for it again.
///
/// # Errors
/// [`GatewayError::Unavailable`] (retry), [`GatewayError::Refused`].
pub async fn open_signup_checkout(
    stripe: &Stripe,
    pool: &Pool,
    subscription_id: Uuid,
) -> Result<CheckoutSession, GatewayError> {
    let mut conn = pool.get().await?;
    let key = format!("signup:{subscription_id}");
    let now = stripe_now(&mut conn).await?;
    if let Some(c) = store::checkout(&mut conn, &key, now, EXPIRY_MARGIN).await? {
        return Ok(CheckoutSession {
            id: c.session_id,
            url: c.url,
        });
    }
    let sub = store::lock_subscription(&mut conn, subscription_id).await?;
    let (plan, product) = store::plan_with_product(&mut conn, sub.plan_id).await?;
    let (units, currency) = catalog::minor_units(&plan)?;
    stripe_currency(&currency)?;
    let price = catalog::price_of(stripe, &mut conn, &plan, &product).await?;
    let customer = ensure_customer(stripe, &mut conn, sub.tenant_id).await?;
    let meta = ids(sub.tenant_id, sub.id);
    let lifetime = plan.billing_interval == "lifetime";
    let mut req = CreateCheckoutSession::new()
        .mode(if lifetime {
            CheckoutSessionMode::Payment
        } else {
            CheckoutSessionMode::Subscription
        })
        .customer(customer)
        .client_reference_id(sub.tenant_id.to_string())
        .metadata(meta.clone())
        .success_url(stripe.settings.success_url.as_str())
        .cancel_url(stripe.settings.cancel_url.as_str())
        .line_items(vec![CreateCheckoutSessionLineItems {
            price: Some(price),
            quantity: Some(1),
            ..Default::default()
        }]);
    req = if lifetime {
        req.payment_intent_data(CreateCheckoutSessionPaymentIntentData {
            metadata: Some(meta),
            ..Default::default()
        })
    } else {
        req.subscription_data(CreateCheckoutSessionSubscriptionData {
            metadata: Some(meta),
            ..Default::default()
        })
    };
    let opened = store::checkouts_of(&mut conn, &key).await?;
    let strategy = Stripe::key(&if opened == 0 {
        format!("checkout:{key}")
    } else {
        format!("checkout:{key}:{opened}")
    })?;
    let session = stripe
        .call("create checkout session", || {
            req.customize()
                .request_strategy(strategy.clone())
                .send(&stripe.client)
        })
        .await?;
    let url = session
        .url
        .clone()
        .ok_or_else(|| GatewayError::Refused("the checkout session has no URL".into()))?;
    let id = session.id.to_string();
    store::save_checkout(
        &mut conn,
        &store::Checkout {
            key,
            tenant_id: sub.tenant_id,
            session_id: id.clone(),
            url: url.clone(),
            created_at: now,
            purpose: Some("signup".into()),
            plan_change_id: None,
            amount_minor: Some(units),
            currency: Some(currency.to_uppercase()),
            expires_at: expiry(session.expires_at),
            status: "open".into(),
        },
    )
    .await?;
    Ok(CheckoutSession { id, url })
}

/// Opens a `payment`-mode Checkout Session for exactly `amount_minor` of
/// `currency` (our amount, never Stripe's proration), for a customer with
/// no saved payment method. `key` is our charge's key (`upgrade:{change}`):
/// the session is remembered under it (purpose `upgrade` with the plan
/// change, or `payment`), handed out again while it can be paid, replaced
/// once expired.
///
/// # Errors
/// [`GatewayError`].
#[expect(
    clippy::too_many_arguments,
    reason = "each is one independent input of the session"
)]
pub async fn open_payment_checkout(
    stripe: &Stripe,
    conn: &mut AsyncPgConnection,
    key: &str,
    tenant_id: Uuid,
    customer: &str,
    product_stripe_id: &str,
    amount_minor: i64,
    currency: &str,
    metadata: HashMap<String, String>,
) -> Result<CheckoutSession, GatewayError> {
    let now = stripe_now(conn).await?;
    if let Some(c) = store::checkout(conn, key, now, EXPIRY_MARGIN).await? {
        return Ok(CheckoutSession {
            id: c.session_id,
            url: c.url,
        });
    }
    let stripe_currency = stripe_currency(currency)?;
    let req = CreateCheckoutSession::new()
        .mode(CheckoutSessionMode::Payment)
        .customer(customer)
        .client_reference_id(tenant_id.to_string())
        .metadata(metadata.clone())
        .success_url(stripe.settings.success_url.as_str())
        .cancel_url(stripe.settings.cancel_url.as_str())
        .payment_intent_data(CreateCheckoutSessionPaymentIntentData {
            metadata: Some(metadata),
            ..Default::default()
        })
        .line_items(vec![CreateCheckoutSessionLineItems {
            price_data: Some(CreateCheckoutSessionLineItemsPriceData {
                product: Some(product_stripe_id.to_owned()),
                unit_amount: Some(amount_minor),
                ..CreateCheckoutSessionLineItemsPriceData::new(stripe_currency)
            }),
            quantity: Some(1),
            ..Default::default()
        }]);
    let opened = store::checkouts_of(conn, key).await?;
    let strategy = Stripe::key(&if opened == 0 {
        format!("checkout:{key}")
    } else {
        format!("checkout:{key}:{opened}")
    })?;
    let session = stripe
        .call("create payment checkout", || {
            req.customize()
                .request_strategy(strategy.clone())
                .send(&stripe.client)
        })
        .await?;
    let url = session
        .url
        .clone()
        .ok_or_else(|| GatewayError::Refused("the checkout session has no URL".into()))?;
    let id = session.id.to_string();
    let change = key
        .strip_prefix("upgrade:")
        .and_then(|c| Uuid::parse_str(c).ok());
    store::save_checkout(
        conn,
        &store::Checkout {
            key: key.to_owned(),
            tenant_id,
            session_id: id.clone(),
            url: url.clone(),
            created_at: now,
            purpose: Some(
                if change.is_some() {
                    "upgrade"
                } else {
                    "payment"
                }
                .into(),
            ),
            plan_change_id: change,
            amount_minor: Some(amount_minor),
            currency: Some(currency.to_uppercase()),
            expires_at: expiry(session.expires_at),
            status: "open".into(),
        },
    )
    .await?;
    Ok(CheckoutSession { id, url })
}

/// The tenant a Checkout Session we opened was for, as the customer
/// returning from Checkout sees it (the `success_url` names the session:
/// docs.stripe.com/payments/checkout/custom-success-page). `None` for a
/// session we did not open.
///
/// # Errors
/// [`StoreError`].
pub async fn returning_customer(
    pool: &Pool,
    session_id: &str,
) -> Result<Option<tenants::TenantView>, StoreError> {
    let mut conn = pool.get().await?;
    let Some(tenant) = store::tenant_of_session(&mut conn, session_id).await? else {
        return Ok(None);
    };
    Ok(Some(
        tenants::find_tenant(&mut conn, &tenant.to_string(), tenants::Visibility::All).await?,
    ))
}
