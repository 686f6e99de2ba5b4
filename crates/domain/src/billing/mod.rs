//! Billing rules that need no I/O: billing periods and proration.

pub mod period;
pub mod proration;

pub use period::BillingPeriod;
pub use proration::{LineKind, PlanPrice, ProrationConvention, ProrationLine, Quote};
