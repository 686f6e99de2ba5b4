//! A stand-in for the parts of the Stripe API Tenantry calls, stateful
//! enough for the whole payment flow, which delivers signed webhooks the
//! way Stripe does. For tests and the local demo (`make run` without a
//! Stripe key); run it alone with the `stripe-sim` binary.
//!
//! Objects are Stripe's own OpenAPI fixtures (`fixtures/objects.json`, from
//! stripe/openapi's `fixtures3.json`) with our values laid over them, so
//! `async-stripe` parses them as it parses Stripe's. Requests are
//! form-encoded like Stripe's; `Idempotency-Key` replays the first answer
//! (docs.stripe.com/api/idempotent_requests); errors have Stripe's shape.
//!
//! API (`/v1`): `POST /customers`, `POST /products[/{id}]`,
//! `POST /prices[/{id}]`, `POST /checkout/sessions`,
//! `GET|POST /subscriptions/{id}`, `POST /invoiceitems`, `POST /invoices`,
//! `POST /invoices/{id}/finalize`, `POST /invoices/{id}/pay`, `GET /events`.
//!
//! Control (`/_sim`, what a customer or time would do): complete a
//! checkout, renew or delete a subscription, decline a customer's card,
//! fail the next API calls, configure webhook delivery (or lose webhooks),
//! redeliver an event, read the request log and objects.
//!
//! Over HTTP: `GET /pay/{session}` (the checkout page; its button posts
//! `/_sim/checkout/{session}/complete`), `POST /_sim/subscriptions/{id}/renew`,
//! `POST /_sim/subscriptions/{id}/delete`, `GET /_sim/requests`,
//! `POST /_sim/clock {"advance_seconds": N}`,
//! `GET /_sim/events` (every event, oldest first) and
//! `POST /_sim/events/{id}/redeliver` (sends it again, signed anew).

mod api;
mod form;
mod server;
mod sim;
mod state;
mod subscriptions;

pub use form::parse_form;
pub use sim::StripeSim;
pub use state::{Logged, Webhook};

/// The API version the stand-in's events claim (async-stripe 1.0's).
pub const API_VERSION: &str = "2026-09-30.endive";
