//! Stripe: the client for the calls we make, webhook signature checks, the
//! mapping of Stripe events to the billing engine's effects, catalog sync,
//! reconciliation, and the `stripe.*` jobs.
//!
//! Design (see also DESIGN.md, "External systems"):
//! - **Outbound calls never run inside a database transaction.** The intent
//!   is committed first (a tenant awaiting payment, a plan change and its
//!   charge row, a `stripe.*` job), then Stripe is called with an
//!   `Idempotency-Key` derived from our own ids (`customer:{tenant}`,
//!   `checkout:signup:{subscription}`, `upgrade:{change}:invoice`…), so a
//!   retry, by `backon` inside one attempt or by the job queue across
//!   attempts, returns Stripe's first answer instead of creating a second
//!   customer, subscription or charge
//!   (docs.stripe.com/api/idempotent_requests).
//! - **Webhooks** are verified on the raw bytes ([`signature`]), recorded in
//!   `stripe_events` by event id in the same transaction as their effects
//!   ([`events::ingest`]), and read through only the fields we need
//!   (`serde_json::Value`), so payloads of other API versions are accepted.
//!   Stripe delivers at least once, in any order, for up to 3 days
//!   (docs.stripe.com/webhooks#handle-duplicate-events,
//!   docs.stripe.com/webhooks#event-ordering): every effect is guarded by
//!   the state it moves from, so duplicates, late and reordered deliveries
//!   converge.
//! - **Renewals** of a Stripe-billed subscription are charged by Stripe
//!   itself; the billing processor skips them and `invoice.paid` /
//!   `invoice.payment_failed` move the period and dunning.
//! - Billing never calls provisioning: a paid signup enqueues the existing
//!   `provision` job (one per tenant) in `store`.

pub mod catalog;
pub mod checkout;
pub mod client;
pub mod events;
pub mod gateway;
pub mod jobs;
pub mod reconcile;
pub mod signature;

use secrecy::SecretString;

pub use client::{CallError, Stripe, StripeMethod};
pub use gateway::StripeGateway;

/// Stripe settings (from configuration).
#[derive(Clone)]
pub struct StripeSettings {
    /// The secret API key (`sk_…`).
    pub secret_key: SecretString,
    /// Webhook signing secrets (`whsec_…`); any one verifies, so a secret can
    /// be rolled without losing deliveries.
    pub webhook_secrets: Vec<SecretString>,
    /// The API base URL, ending in `/` (`https://api.stripe.com/`; a local
    /// stand-in in tests and the demo).
    pub api_base: String,
    /// Where Checkout sends the customer after paying; may contain
    /// `{CHECKOUT_SESSION_ID}`.
    pub success_url: String,
    /// Where Checkout sends a customer who gives up.
    pub cancel_url: String,
    /// How old a webhook's signed timestamp may be, seconds (Stripe's
    /// libraries use 300: docs.stripe.com/webhooks#replay-attacks).
    pub tolerance_secs: i64,
    /// Retries of one Stripe call on a transient failure (network, 429,
    /// 5xx) within one attempt, with exponential back-off from 200 ms.
    pub retries: usize,
}

impl std::fmt::Debug for StripeSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StripeSettings")
            .field("secret_key", &"[REDACTED]")
            .field("webhook_secrets", &self.webhook_secrets.len())
            .field("api_base", &self.api_base)
            .field("success_url", &self.success_url)
            .field("cancel_url", &self.cancel_url)
            .field("tolerance_secs", &self.tolerance_secs)
            .finish_non_exhaustive()
    }
}
