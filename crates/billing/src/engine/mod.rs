//! The billing engine: quoting, requesting, paying for and applying plan
//! changes, and the periodic processor (due changes, renewals, dunning).
//!
//! Rules come from `domain::billing` (periods, proration, direction and
//! policy). Outbound payment calls never run inside a database transaction:
//! the intent (a plan change, a charge row keyed by our ids) is committed
//! first, the provider is called with that key, and the outcome is recorded
//! in a second transaction, so a crash anywhere repeats at most an
//! idempotent provider call.
//!
//! Shared here: the engine's settings, its error and the actor of a change.
//! The parts: `clock` (billing time, the sandbox clock), `quote` (prorated
//! previews of a plan change), `change` (requesting, paying for, applying
//! and canceling plan changes) and `processor` (the periodic run: due
//! changes, renewals, dunning).

mod change;
mod checkout;
mod clock;
mod processor;
mod quote;
mod view;

use chrono::{DateTime, Duration, Utc};
use tenantry_domain::billing::ProrationConvention;
use tenantry_store::{
    StoreError,
    activity::{Activity, Entry},
    billing::PlanChange,
};
use uuid::Uuid;

use crate::gateway::GatewayError;

pub use change::{
    Confirmation, Payment, PaymentState, RequestOutcome, cancel_scheduled, confirm_payment,
    confirm_payment_in, request_change,
};
pub use checkout::{OwedCheckout, OwedFor, abandon_pending, checkout_for};
pub use clock::Clock;
pub use processor::{ProcessReport, process_due};
pub use quote::{ChangeQuote, quote};
pub use view::{NextCharge, SubscriptionView, subscription_view};

/// Engine settings (from configuration).
#[derive(Debug, Clone)]
pub struct EngineSettings {
    /// Proration convention (default Stripe's).
    pub convention: ProrationConvention,
    /// How long an upgrade may stay unpaid before it expires (default 24 h).
    pub payment_window: Duration,
    /// How long a preview's `proration_date` is honoured (15 minutes).
    pub quote_validity: Duration,
    /// Past due this long → tenant suspended (default 3 days).
    pub grace: Duration,
    /// Past due this long → subscription expired, tenant deprovisioned (default 14 days).
    pub termination: Duration,
    /// Wait between attempts at a declined renewal (default 1 day).
    pub retry_interval: Duration,
    /// Whether the sandbox clock applies.
    pub sandbox: bool,
}

impl Default for EngineSettings {
    fn default() -> Self {
        Self {
            convention: ProrationConvention::Stripe,
            payment_window: Duration::hours(24),
            quote_validity: Duration::minutes(15),
            grace: Duration::days(3),
            termination: Duration::days(14),
            retry_interval: Duration::days(1),
            sandbox: false,
        }
    }
}

/// Why a billing operation failed.
#[derive(Debug, thiserror::Error)]
pub enum BillingError {
    /// No such tenant, change or subscription (or not visible).
    #[error("{0} not found")]
    NotFound(String),
    /// The new plan is the current plan.
    #[error("the tenant is already on this plan")]
    SamePlan,
    /// The plan is not offered for the tenant's product (inactive, unknown or another product's).
    #[error("{0}")]
    InvalidPlan(String),
    /// The policy forbids this change for this requester.
    #[error("{0}")]
    NotAllowed(String),
    /// A staff override needs a reason.
    #[error("a reason is required when staff change a plan without payment")]
    ReasonRequired,
    /// The tenant already has a pending or scheduled change.
    #[error("the tenant already has a pending or scheduled plan change; cancel it or wait for it")]
    ChangePending,
    /// The subscription is not in a state that can change plans.
    #[error("{0}")]
    SubscriptionNotActive(String),
    /// The change is not in a state this operation applies to.
    #[error("{0}")]
    WrongState(String),
    /// The payment was declined.
    #[error("payment declined: {0}")]
    Declined(String),
    /// The payment provider failed.
    #[error(transparent)]
    Gateway(#[from] GatewayError),
    /// The database failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Money arithmetic failed (a bug: mixed currencies).
    #[error("money: {0}")]
    Money(String),
}

impl From<tenantry_store::DieselError> for BillingError {
    fn from(e: tenantry_store::DieselError) -> Self {
        Self::Store(e.into())
    }
}

pub use tenantry_store::activity::Actor;

/// The activity row of `action` on plan change `target` by `actor` at `at`
/// (the billing clock's time).
fn change_activity(
    actor: &Actor,
    at: DateTime<Utc>,
    tenant: Uuid,
    action: &str,
    target: &PlanChange,
    before: Option<serde_json::Value>,
    after: Option<serde_json::Value>,
) -> Activity {
    Entry::by(actor, action)
        .at(at)
        .tenant(Some(tenant))
        .target("plan_change", target.id)
        .change(before, after)
        .into_row()
}
