//! Plan changes, charges, renewal and dunning state, and the sandbox clock.
//!
//! The set-based functions (`apply_due_changes`, `expire_unpaid_upgrades`,
//! `suspend_overdue`, `terminate_overdue`) claim their rows with `FOR NO KEY
//! UPDATE SKIP LOCKED`, so several processors can run at once and each row is
//! handled exactly once.
//!
//! Rows are locked `FOR NO KEY UPDATE`, never `FOR UPDATE`: no key of a
//! tenant, subscription, plan change or charge ever changes and they are not
//! deleted under a lock, and the weaker lock does not conflict with the `FOR
//! KEY SHARE` lock PostgreSQL's foreign-key checks take on the referenced row
//! (postgresql.org/docs/15/explicit-locking.html#LOCKING-ROWS). With `FOR
//! UPDATE`, a request inserting a plan change (which key-shares the tenant,
//! then the subscription) and a job locking the subscription, then the
//! tenant, deadlocked.
//!
//! The parts: `plan_changes` (plan change rows, applying them, expiring
//! unpaid upgrades), `charges` (charge rows, renewal charges for the next
//! billing period and their outcomes), `dunning` (suspending and ending the
//! service of past-due and canceled subscriptions) and `clock` (the sandbox
//! billing clock's offset).

mod charges;
mod clock;
pub mod credits;
mod dunning;
mod plan_changes;

use diesel::{prelude::*, sql_types::BigInt};

pub use charges::{
    Charge, NewRenewal, RenewalCandidate, RenewalResult, add_credit_applied, charge_of_payment,
    claim_renewal_charges, find_charge, lock_charge, paid_periods, record_charge_attempt,
    record_renewals, refund_of, renewal_candidates, set_charge_status, upsert_charge,
};
pub use clock::{sandbox_offset, set_sandbox_offset};
pub use dunning::{end_canceled, suspend_overdue, terminate_overdue};
pub(crate) use dunning::{resume_binds, resume_paid};
pub use plan_changes::{
    PlanChange, apply_change, apply_due_changes, cancel_open_change, consume_migration_failed,
    expire_unpaid_upgrades, insert_change, list_changes, lock_change, open_change, restore_period,
    set_change_status, set_payment_reference,
};

#[derive(QueryableByName)]
struct Count {
    #[diesel(sql_type = BigInt)]
    n: i64,
}

fn grace_interval(d: chrono::Duration) -> diesel::pg::data_types::PgInterval {
    diesel::pg::data_types::PgInterval::from_microseconds(d.num_microseconds().unwrap_or(i64::MAX))
}
