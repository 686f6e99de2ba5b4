//! Billing rules that need no I/O: billing periods and proration.

pub mod change;
pub mod period;
pub mod proration;

pub use change::{ChangeKind, PlanChangeStatus, PlanTerms, Requester, Timing, classify, policy};
pub use period::BillingPeriod;
pub use proration::{
    LineKind, PlanPrice, ProrationConvention, ProrationLine, Quote, unserved_share,
};
