//! A stand-in for the parts of the Stripe API Tenantry calls, stateful
//! enough for the whole payment flow, which bills like Stripe (calendar
//! periods from the billing cycle anchor, renewals when the clock passes a
//! period's end, the customer balance, schedules, refunds) and delivers
//! signed webhooks the way Stripe does. For tests and the local demo
//! (`make run` without a Stripe key); run it alone with the `stripe-sim`
//! binary. `README.md` lists each billing rule with the Stripe page it follows.
//!
//! Objects are Stripe's own OpenAPI fixtures (`fixtures/objects.json`, from
//! stripe/openapi's `fixtures3.json`) with our values laid over them, so
//! `async-stripe` parses them as it parses Stripe's. Requests are
//! form-encoded like Stripe's; `Idempotency-Key` replays the first answer
//! (docs.stripe.com/api/idempotent_requests); errors have Stripe's shape.
//!
//! API (`/v1`):
//! - customers: `POST /customers`, `GET /customers/{id}` (with `balance`),
//!   `POST|GET /customers/{id}/balance_transactions`;
//! - catalog: `POST /products[/{id}]`, `POST /prices[/{id}]`,
//!   `GET /products/{id}`, `GET /prices/{id}`;
//! - checkout: `POST /checkout/sessions`, `GET /checkout/sessions/{id}`,
//!   `POST /checkout/sessions/{id}/expire`;
//! - subscriptions: `GET|POST /subscriptions/{id}` (price, interval change,
//!   `cancel_at_period_end`, `metadata`);
//! - schedules: `POST /subscription_schedules` (`from_subscription`),
//!   `GET|POST /subscription_schedules/{id}`,
//!   `POST /subscription_schedules/{id}/release`;
//! - invoices: `GET|POST /invoices`, `GET /invoices/{id}`,
//!   `POST /invoiceitems`, `POST /invoices/{id}/finalize`,
//!   `POST /invoices/{id}/pay`;
//! - payments: `GET /payment_intents/{id}` (`expand[]=latest_charge`),
//!   `GET /charges/{id}`, `POST|GET /refunds`, `GET /refunds/{id}`;
//! - `GET /events`.
//!
//! Control (`/_sim`, what a customer or time would do): complete a
//! checkout, move the clock (which renews, moves schedules' phases and
//! expires sessions), renew or delete a subscription now, decline a
//! customer's card or make it ask for authentication, fail the next API
//! calls, configure webhook delivery (or lose webhooks), redeliver an event,
//! read the request log and objects.
//!
//! Over HTTP: `GET /pay/{session}` (the checkout page; its button posts
//! `/_sim/checkout/{session}/complete`), `POST /_sim/subscriptions/{id}/renew`,
//! `POST /_sim/subscriptions/{id}/delete`,
//! `POST /_sim/customers/{id}/card {"declined": bool, "requires_action": bool}`,
//! `GET /_sim/requests`,
//! `POST /_sim/clock {"advance_seconds": N}` or `{"offset_seconds": N}`,
//! `GET /_sim/events` (every event, oldest first) and
//! `POST /_sim/events/{id}/redeliver` (sends it again, signed anew).

// Stripe's objects are wide: `json!` literals of them nest deep.
#![recursion_limit = "256"]

mod api;
mod calendar;
mod catalog;
mod checkout;
mod clock;
mod currency;
mod customers;
mod form;
mod invoices;
mod payments;
mod schedules;
mod server;
mod sim;
mod state;
mod subscriptions;
#[cfg(test)]
mod tests;

pub use currency::SUPPORTED_CURRENCIES;
pub use form::parse_form;
pub use sim::{Held, StripeSim};
pub use state::{Logged, Webhook};

/// The API version the stand-in's events claim (async-stripe 1.0's).
pub const API_VERSION: &str = "2026-09-30.endive";
