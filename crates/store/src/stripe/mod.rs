//! Stripe's rows: the events received (deduplicated by event id), the
//! catalog's Stripe twins, the checkout sessions opened, and the
//! subscription state Stripe's webhooks move (periods paid, dunning).
//!
//! Every function runs on the caller's connection, so the webhook path
//! records an event and applies its effects in one transaction.
//!
//! The parts: `events` (webhook events recorded by event id), `catalog`
//! (the Stripe Products and Prices twinning our products and plans),
//! `checkout` (Customers and Checkout Sessions) and `subscriptions` (the
//! link to a Stripe Subscription, the invoices paid or failed for a billing
//! period, and cancellation at period end).

mod catalog;
mod checkout;
mod events;
mod subscriptions;

pub use catalog::{
    CatalogTwin, active_products, plan_of_price, plan_with_product, save_twin, twin,
};
pub use checkout::{
    Checkout, checkout, checkouts_of, owner_email, save_checkout, session, set_checkout_status,
    set_customer, tenant_of_session,
};
pub use events::{StripeEvent, find_event, insert_event, known_events, mark_processed};
pub use subscriptions::{
    FailedChange, PaidPeriod, bump_price_version, cancel_at_period_end, end_for_deleted_tenant,
    enqueue_unsynced, last_failed_change, latest_change, link_provider, lock_subscription,
    mark_price_synced, record_failed_period, record_paid_period, replace_provider_subscription,
    set_billing_anchor, subscription_by_provider,
};
