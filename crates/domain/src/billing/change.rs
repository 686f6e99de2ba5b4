//! Is a plan change an upgrade or a downgrade, and when does it take effect?
//!
//! Direction is decided by what the customer pays per day for what they
//! get, never by plan names or tier labels:
//!
//! - a `lifetime` plan is above every recurring plan;
//! - two plans with the same entitlements (deployment, cores, memory,
//!   storage) differ only in how they are billed: moving to the longer
//!   interval is an upgrade (month → year, charged now), to the shorter a
//!   downgrade (year → month, at the end of the term). A yearly price below
//!   twelve months' (the usual discount) is still an upgrade: Lago #1834
//!   counted annual → monthly as an upgrade by comparing daily rates alone;
//! - otherwise the higher price per day (price × 12 / 365 for monthly,
//!   price / 365 for yearly) is the upgrade; at equal daily rates the longer
//!   interval is.
//!
//! [`policy`] is the table (after Kill Bill's plan-change policies) saying
//! when each kind of change takes effect, for customers and for staff.

use rust_decimal::Decimal;

use crate::{BillingInterval, DeploymentKind, Money};

/// What a plan is, for comparing two of them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PlanTerms {
    /// Price per interval.
    pub price: Money,
    /// Billing interval.
    pub interval: BillingInterval,
    /// Deployment.
    pub deployment: DeploymentKind,
    /// Cores.
    pub cpu_cores: u32,
    /// Memory, MiB.
    pub memory_mib: u32,
    /// Storage, GiB.
    pub storage_gib: u32,
}

string_enum! {
    /// Upgrade or downgrade.
    ChangeKind {
        /// More value: charged now (prorated), effective once paid.
        Upgrade => "upgrade",
        /// Less value: effective at the end of the current period.
        Downgrade => "downgrade",
    }
}

/// Why two plans cannot be compared.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum CompareError {
    /// The plans are priced in different currencies.
    #[error("the plans are priced in different currencies")]
    Currency,
    /// The two plans are the same offer.
    #[error("the new plan is the current plan")]
    SamePlan,
}

fn interval_rank(i: BillingInterval) -> u8 {
    match i {
        BillingInterval::Month => 0,
        BillingInterval::Year => 1,
        BillingInterval::Lifetime => 2,
    }
}

/// Price per day: monthly × 12 / 365, yearly / 365.
fn daily_rate(p: &PlanTerms) -> Option<Decimal> {
    let days = Decimal::from(365);
    match p.interval {
        BillingInterval::Month => Some(p.price.amount() * Decimal::from(12) / days),
        BillingInterval::Year => Some(p.price.amount() / days),
        BillingInterval::Lifetime => None,
    }
}

fn entitlements(p: &PlanTerms) -> (u8, u32, u32, u32) {
    let deployment = match p.deployment {
        DeploymentKind::Shared => 0,
        DeploymentKind::Dedicated => 1,
        DeploymentKind::DedicatedHa => 2,
    };
    (deployment, p.cpu_cores, p.memory_mib, p.storage_gib)
}

fn same_entitlements(a: &PlanTerms, b: &PlanTerms) -> bool {
    (a.deployment, a.cpu_cores, a.memory_mib, a.storage_gib)
        == (b.deployment, b.cpu_cores, b.memory_mib, b.storage_gib)
}

/// Classifies moving from `from` to `to`.
///
/// # Errors
/// [`CompareError::Currency`] across currencies; [`CompareError::SamePlan`]
/// when nothing would change (same terms and price).
pub fn classify(from: &PlanTerms, to: &PlanTerms) -> Result<ChangeKind, CompareError> {
    if from.price.currency() != to.price.currency() {
        return Err(CompareError::Currency);
    }
    if from == to {
        return Err(CompareError::SamePlan);
    }
    let up = |b: bool| {
        if b {
            ChangeKind::Upgrade
        } else {
            ChangeKind::Downgrade
        }
    };
    // Ties (same price per day and interval) go to the larger entitlements.
    let tie = || up(entitlements(to) > entitlements(from));
    match (daily_rate(from), daily_rate(to)) {
        (None, None) if to.price.amount() != from.price.amount() => {
            Ok(up(to.price.amount() > from.price.amount()))
        }
        (None, None) => Ok(tie()),
        (None, Some(_)) => Ok(ChangeKind::Downgrade),
        (Some(_), None) => Ok(ChangeKind::Upgrade),
        (Some(_), Some(_)) if same_entitlements(from, to) && from.interval != to.interval => {
            Ok(up(interval_rank(to.interval) > interval_rank(from.interval)))
        }
        (Some(a), Some(b)) if a != b => Ok(up(b > a)),
        (Some(_), Some(_)) if from.interval != to.interval => {
            Ok(up(interval_rank(to.interval) > interval_rank(from.interval)))
        }
        (Some(_), Some(_)) => Ok(tie()),
    }
}

string_enum! {
    /// When a change takes effect.
    Timing {
        /// When the prorated charge is paid.
        OnPayment => "on_payment",
        /// At the end of the current billing period.
        EndOfTerm => "end_of_term",
        /// At once, without payment (staff, with a reason).
        Immediate => "immediate",
    }
}

string_enum! {
    /// Where a plan change is: `pending` (an upgrade awaiting its payment)
    /// or `scheduled` (a downgrade awaiting the period end) are open; then
    /// `applied`, `canceled`, `expired` (unpaid in its window) or `failed`
    /// (its migration could not be done).
    PlanChangeStatus {
        /// Awaiting the payment of its prorated charge.
        Pending => "pending",
        /// Awaiting the end of the billing period.
        Scheduled => "scheduled",
        /// In effect.
        Applied => "applied",
        /// Withdrawn by the customer or staff, or by the tenant's deletion.
        Canceled => "canceled",
        /// Its payment window passed unpaid.
        Expired => "expired",
        /// Applied but its migration failed and was rolled back.
        Failed => "failed",
    }
}

impl PlanChangeStatus {
    /// The open statuses: at most one open change per tenant.
    pub const OPEN: &'static [Self] = &[Self::Pending, Self::Scheduled];

    /// Whether the change still awaits something (payment or the period end).
    pub fn is_open(&self) -> bool {
        Self::OPEN.contains(self)
    }
}

/// Who asks for a change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Requester {
    /// The tenant's owner.
    Customer,
    /// Staff changing the plan without payment (a reason is required).
    StaffOverride,
}

/// Why a change is refused by policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PolicyError {
    /// A lifetime plan cannot be downgraded by its customer.
    #[error("a lifetime plan cannot be downgraded; an admin can, with a reason")]
    LifetimeDowngrade,
}

/// The policy table:
///
/// | from | kind | customer | staff override |
/// |---|---|---|---|
/// | recurring | upgrade | on payment | immediate |
/// | recurring | downgrade | end of term | immediate |
/// | lifetime | upgrade | on payment | immediate |
/// | lifetime | downgrade | illegal | immediate |
///
/// # Errors
/// [`PolicyError`] for the illegal cell.
pub fn policy(
    from: BillingInterval,
    kind: ChangeKind,
    who: Requester,
) -> Result<Timing, PolicyError> {
    match (who, from, kind) {
        (Requester::StaffOverride, _, _) => Ok(Timing::Immediate),
        (Requester::Customer, BillingInterval::Lifetime, ChangeKind::Downgrade) => {
            Err(PolicyError::LifetimeDowngrade)
        }
        (Requester::Customer, _, ChangeKind::Upgrade) => Ok(Timing::OnPayment),
        (Requester::Customer, _, ChangeKind::Downgrade) => Ok(Timing::EndOfTerm),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Currency;
    use proptest::prelude::*;
    use rust_decimal_macros::dec;

    fn plan(price: Decimal, interval: BillingInterval, tier: u32) -> PlanTerms {
        PlanTerms {
            price: Money::exact(price, Currency::parse("USD").unwrap()).unwrap(),
            interval,
            deployment: DeploymentKind::Shared,
            cpu_cores: tier,
            memory_mib: 1024 * tier,
            storage_gib: 10 * tier,
        }
    }

    use BillingInterval::*;

    #[test]
    fn month_to_year_of_the_same_plan_is_an_upgrade_and_back_a_downgrade() {
        // Lago #1834: annual → monthly was counted as an upgrade.
        let basic = plan(dec!(29), Month, 1);
        let basic_yearly = plan(dec!(290), Year, 1);
        assert_eq!(classify(&basic, &basic_yearly), Ok(ChangeKind::Upgrade));
        assert_eq!(classify(&basic_yearly, &basic), Ok(ChangeKind::Downgrade));
    }

    #[test]
    fn more_per_day_is_an_upgrade_whatever_the_names() {
        let basic = plan(dec!(29), Month, 1);
        let pro = plan(dec!(49), Month, 2);
        let pro_yearly = plan(dec!(490), Year, 2);
        assert_eq!(classify(&basic, &pro), Ok(ChangeKind::Upgrade));
        assert_eq!(classify(&pro, &basic), Ok(ChangeKind::Downgrade));
        assert_eq!(
            classify(&plan(dec!(290), Year, 1), &pro),
            Ok(ChangeKind::Upgrade)
        );
        assert_eq!(classify(&pro_yearly, &basic), Ok(ChangeKind::Downgrade));
        // A "bigger" tier that costs less per day is a downgrade.
        assert_eq!(
            classify(&pro, &plan(dec!(19), Month, 3)),
            Ok(ChangeKind::Downgrade)
        );
    }

    #[test]
    fn lifetime_is_above_everything() {
        let life = plan(dec!(499), Lifetime, 2);
        assert_eq!(
            classify(&plan(dec!(9999), Year, 4), &life),
            Ok(ChangeKind::Upgrade)
        );
        assert_eq!(
            classify(&life, &plan(dec!(9999), Month, 4)),
            Ok(ChangeKind::Downgrade)
        );
    }

    #[test]
    fn the_same_plan_and_other_currencies_are_refused() {
        let basic = plan(dec!(29), Month, 1);
        assert_eq!(classify(&basic, &basic), Err(CompareError::SamePlan));
        let mut eur = basic;
        eur.price = Money::exact(dec!(29), Currency::parse("EUR").unwrap()).unwrap();
        assert_eq!(classify(&basic, &eur), Err(CompareError::Currency));
    }

    #[test]
    fn the_policy_table() {
        assert_eq!(
            policy(Month, ChangeKind::Upgrade, Requester::Customer),
            Ok(Timing::OnPayment)
        );
        assert_eq!(
            policy(Year, ChangeKind::Downgrade, Requester::Customer),
            Ok(Timing::EndOfTerm)
        );
        assert_eq!(
            policy(Lifetime, ChangeKind::Downgrade, Requester::Customer),
            Err(PolicyError::LifetimeDowngrade)
        );
        assert_eq!(
            policy(Lifetime, ChangeKind::Downgrade, Requester::StaffOverride),
            Ok(Timing::Immediate)
        );
        assert_eq!(
            policy(Month, ChangeKind::Upgrade, Requester::StaffOverride),
            Ok(Timing::Immediate)
        );
    }

    fn any_plan() -> impl Strategy<Value = PlanTerms> {
        // Few distinct prices, so ties of price per day are common.
        (
            prop_oneof![Just(0i64), Just(2900), Just(34800), 0i64..100_000],
            0usize..3,
            1u32..4,
        )
            .prop_map(|(cents, i, tier)| {
                plan(Decimal::new(cents, 2), [Month, Year, Lifetime][i], tier)
            })
    }

    proptest! {
        #[test]
        fn direction_is_antisymmetric(a in any_plan(), b in any_plan()) {
            match (classify(&a, &b), classify(&b, &a)) {
                (Ok(x), Ok(y)) => prop_assert_ne!(x, y, "{:?} {:?}", a, b),
                (Err(e), Err(f)) => prop_assert_eq!(e, f),
                other => prop_assert!(false, "asymmetric: {:?}", other),
            }
        }

        #[test]
        fn a_pricier_plan_of_the_same_interval_is_an_upgrade(a in any_plan(), extra in 1i64..10_000) {
            let mut b = a;
            b.price = Money::exact(a.price.amount() + Decimal::new(extra, 2), a.price.currency()).unwrap();
            b.cpu_cores = a.cpu_cores + 1;
            prop_assert_eq!(classify(&a, &b), Ok(ChangeKind::Upgrade));
        }
    }
}
