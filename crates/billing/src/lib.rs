//! Billing: the payment gateway, and (with the billing engine and Stripe
//! issues) proration, the upgrade/downgrade policy, scheduled plan changes
//! and webhooks.
//!
//! Depends on `store` and `domain`, never on `provisioning`: the two meet
//! through jobs and events recorded in `store` (see DESIGN.md, "Layout").

pub mod closing;
pub mod engine;
pub mod follow_up;
pub mod gateway;
pub mod refunds;
pub mod stripe;

pub use engine::{BillingError, Clock, EngineSettings};
pub use follow_up::BillingFollowUp;
pub use gateway::{
    ChargeOutcome, ChargeRequest, CheckoutRequest, CheckoutSession, DisabledGateway, GatewayError,
    PaymentGateway, RefundOutcome, RefundRequest, SandboxGateway, ScriptedGateway,
};
pub use refunds::RefundJobs;
