//! Billing: proration, the upgrade/downgrade policy, scheduled plan changes,
//! the payment gateway (Stripe) and its webhooks.
//!
//! Depends on `store` and `domain`, never on `provisioning`: the two meet
//! through jobs and events recorded in `store` (see DESIGN.md, "Layout").
//! The billing engine and Stripe issues fill this crate in.
