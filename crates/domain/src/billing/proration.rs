//! Proration of a plan change in the middle of a billing period.
//!
//! Two conventions:
//!
//! - [`ProrationConvention::Stripe`] (default): per second over the actual
//!   period. credit = old price × remaining / period length; charge = new
//!   price × remaining / period length; each line rounded to the minor unit;
//!   amount due = charge − credit
//!   (docs.stripe.com/billing/subscriptions/prorations).
//! - [`ProrationConvention::ThirtyDay`]: daily rate = monthly price / 30
//!   (yearly price / 365), times whole days remaining; the convention of
//!   many hosting panels.
//!
//! When the new plan bills on another interval, Stripe starts a new period at
//! the change: the old plan's unused time is credited and the new plan's full
//! price is charged (docs.stripe.com/billing/subscriptions/billing-cycle).
//! A `lifetime` plan is a one-time price charged in full: the recurring
//! subscription is not credited, it runs to its period end and does not
//! renew (Stripe: a one-time payment, the subscription canceled at period end).

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;

use crate::{BillingInterval, Money, MoneyError, billing::BillingPeriod};

/// Which proration rule to apply.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum ProrationConvention {
    /// Per second over the actual period, as Stripe prorates.
    #[default]
    Stripe,
    /// Whole days at price / 30 (month) or / 365 (year).
    ThirtyDay,
}

impl std::str::FromStr for ProrationConvention {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "stripe" => Ok(Self::Stripe),
            "thirty_day" => Ok(Self::ThirtyDay),
            other => Err(format!(
                "{other:?} is not a proration convention (stripe, thirty_day)"
            )),
        }
    }
}

/// What a plan costs and how often.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PlanPrice {
    /// Price per interval.
    pub price: Money,
    /// Billing interval.
    pub interval: BillingInterval,
}

/// Whether a line gives money back or charges it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LineKind {
    /// Unused time on the old plan (a negative amount).
    Credit,
    /// Time on the new plan (a positive amount).
    Charge,
}

/// One line of a quote, with the time it covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProrationLine {
    /// Credit or charge.
    pub kind: LineKind,
    /// Negative for a credit, positive for a charge, rounded to the minor unit.
    pub amount: Money,
    /// First instant covered.
    pub period_start: DateTime<Utc>,
    /// First instant after the time covered (`None`: a lifetime plan).
    pub period_end: Option<DateTime<Utc>>,
}

/// The price of a plan change made at `proration_date`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Quote {
    /// The credit for the old plan's unused time, then the charge for the new plan.
    pub lines: Vec<ProrationLine>,
    /// Sum of the lines: what is charged now (negative: a credit balance).
    pub amount_due: Money,
    /// The instant the quote was computed for.
    pub proration_date: DateTime<Utc>,
}

/// Why a quote could not be made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProrationError {
    /// The plans' currencies differ, or an amount overflowed.
    #[error(transparent)]
    Money(#[from] MoneyError),
    /// The current plan is `lifetime`: it has no unused time to credit.
    #[error("a lifetime plan's period never ends, so it cannot be prorated")]
    LifetimeCurrent,
    /// The quote date is outside the current period.
    #[error("the proration date is outside the current billing period")]
    OutsidePeriod,
}

fn days_in(interval: BillingInterval) -> Decimal {
    match interval {
        BillingInterval::Year => Decimal::from(365),
        _ => Decimal::from(30),
    }
}

/// Prices changing from `old` to `new` at `at`, within the current `period`
/// of the old plan: a credit line for the old plan's unused time (none when
/// `new` is lifetime), then the charge line for the new plan.
///
/// # Errors
/// [`ProrationError`] when currencies differ, the old plan is lifetime, or
/// `at` falls outside `period`.
pub fn quote(
    convention: ProrationConvention,
    old: PlanPrice,
    new: PlanPrice,
    period: BillingPeriod,
    at: DateTime<Utc>,
) -> Result<Quote, ProrationError> {
    let currency = old.price.currency();
    if currency != new.price.currency() {
        return Err(
            MoneyError::CurrencyMismatch(currency.code(), new.price.currency().code()).into(),
        );
    }
    let end = period.end.ok_or(ProrationError::LifetimeCurrent)?;
    if at < period.start || at > end {
        return Err(ProrationError::OutsidePeriod);
    }
    let length = Decimal::from((end - period.start).num_seconds().max(1));
    let remaining_secs = (end - at).num_seconds().max(0);
    let remaining = Decimal::from(remaining_secs);
    let whole_days = Decimal::from(remaining_secs / 86_400);

    let share = |p: PlanPrice| -> Money {
        let amount = match convention {
            ProrationConvention::Stripe => p.price.amount() * remaining / length,
            ProrationConvention::ThirtyDay => p.price.amount() / days_in(p.interval) * whole_days,
        };
        Money::rounded(amount, currency)
    };

    let zero = Money::zero(currency);
    let mut lines = Vec::with_capacity(2);
    if new.interval != BillingInterval::Lifetime {
        lines.push(ProrationLine {
            kind: LineKind::Credit,
            amount: zero.checked_sub(&share(old))?,
            period_start: at,
            period_end: Some(end),
        });
    }
    let charge = if new.interval == old.interval {
        ProrationLine {
            kind: LineKind::Charge,
            amount: share(new),
            period_start: at,
            period_end: Some(end),
        }
    } else {
        // A new billing cycle starts now (or, for lifetime, no cycle at all).
        ProrationLine {
            kind: LineKind::Charge,
            amount: new.price,
            period_start: at,
            period_end: BillingPeriod::nth(at, new.interval, 0).and_then(|p| p.end),
        }
    };
    lines.push(charge);
    let amount_due = lines
        .iter()
        .try_fold(zero, |sum, l| sum.checked_add(&l.amount))?;
    Ok(Quote {
        lines,
        amount_due,
        proration_date: at,
    })
}

/// The part of `paid`, the price of the period `[start, end)`, for the
/// time of it before `served_from` (per second, as Stripe prorates;
/// rounded to the minor unit, half away from zero): what a customer paid
/// for time without service. Zero when the service started at or before
/// `start`; all of `paid` when it started at or after `end`.
pub fn unserved_share(
    paid: Money,
    start: DateTime<Utc>,
    end: DateTime<Utc>,
    served_from: DateTime<Utc>,
) -> Money {
    let length = (end - start).num_seconds();
    if length <= 0 || served_from >= end {
        return paid;
    }
    let unserved = (served_from - start).num_seconds().clamp(0, length);
    Money::rounded(
        paid.amount() * Decimal::from(unserved) / Decimal::from(length),
        paid.currency(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Currency;
    use chrono::{Duration, TimeZone};
    use proptest::prelude::*;
    use rust_decimal_macros::dec;

    fn usd(a: Decimal) -> Money {
        Money::exact(a, Currency::parse("USD").unwrap()).unwrap()
    }

    fn monthly(a: Decimal) -> PlanPrice {
        PlanPrice {
            price: usd(a),
            interval: BillingInterval::Month,
        }
    }

    fn april() -> BillingPeriod {
        // 30 days: 2,592,000 seconds.
        BillingPeriod::nth(
            Utc.with_ymd_and_hms(2026, 4, 1, 0, 0, 0).unwrap(),
            BillingInterval::Month,
            0,
        )
        .unwrap()
    }

    #[test]
    fn stripe_prorates_per_second_and_rounds_each_line() {
        let p = april();
        let at = p.start + Duration::days(10); // 20 of 30 days left
        let q = quote(
            ProrationConvention::Stripe,
            monthly(dec!(29)),
            monthly(dec!(49)),
            p,
            at,
        )
        .unwrap();
        // 29 × 20/30 = 19.333… → 19.33; 49 × 20/30 = 32.666… → 32.67
        assert_eq!(q.lines[0].amount, usd(dec!(-19.33)));
        assert_eq!(q.lines[1].amount, usd(dec!(32.67)));
        assert_eq!(q.amount_due, usd(dec!(13.34)));
        assert_eq!(q.lines[1].period_end, p.end);
    }

    #[test]
    fn thirty_day_counts_whole_days() {
        let p = april();
        let at = p.start + Duration::days(10) + Duration::hours(5); // 19 whole days left
        let q = quote(
            ProrationConvention::ThirtyDay,
            monthly(dec!(30)),
            monthly(dec!(60)),
            p,
            at,
        )
        .unwrap();
        assert_eq!(q.lines[0].amount, usd(dec!(-19.00)));
        assert_eq!(q.lines[1].amount, usd(dec!(38.00)));
        assert_eq!(q.amount_due, usd(dec!(19.00)));
    }

    #[test]
    fn a_new_interval_starts_a_new_cycle_at_full_price() {
        let p = april();
        let at = p.start + Duration::days(15);
        let yearly = PlanPrice {
            price: usd(dec!(290)),
            interval: BillingInterval::Year,
        };
        let q = quote(
            ProrationConvention::Stripe,
            monthly(dec!(29)),
            yearly,
            p,
            at,
        )
        .unwrap();
        assert_eq!(q.lines[0].amount, usd(dec!(-14.50)));
        assert_eq!(q.lines[1].amount, usd(dec!(290)));
        assert_eq!(q.lines[1].period_end, Some(at + Duration::days(365)));
        assert_eq!(q.amount_due, usd(dec!(275.50)));
    }

    #[test]
    fn refuses_mixed_currencies_lifetime_and_dates_outside_the_period() {
        let p = april();
        let eur = PlanPrice {
            price: Money::exact(dec!(10), Currency::parse("EUR").unwrap()).unwrap(),
            interval: BillingInterval::Month,
        };
        assert!(matches!(
            quote(
                ProrationConvention::Stripe,
                monthly(dec!(1)),
                eur,
                p,
                p.start
            ),
            Err(ProrationError::Money(_))
        ));
        let life = BillingPeriod {
            start: p.start,
            end: None,
        };
        assert_eq!(
            quote(
                ProrationConvention::Stripe,
                monthly(dec!(1)),
                monthly(dec!(2)),
                life,
                p.start
            ),
            Err(ProrationError::LifetimeCurrent)
        );
        assert_eq!(
            quote(
                ProrationConvention::Stripe,
                monthly(dec!(1)),
                monthly(dec!(2)),
                p,
                p.start - Duration::seconds(1)
            ),
            Err(ProrationError::OutsidePeriod)
        );
    }

    prop_compose! {
        fn cents()(c in 0i64..1_000_000) -> Decimal { Decimal::new(c, 2) }
    }

    proptest! {
        #[test]
        fn an_upgrade_never_yields_a_negative_amount_due(
            old in cents(), extra in cents(), offset in 0i64..2_592_000, thirty: bool
        ) {
            let conv = if thirty { ProrationConvention::ThirtyDay } else { ProrationConvention::Stripe };
            let p = april();
            let q = quote(conv, monthly(old), monthly(old + extra), p, p.start + Duration::seconds(offset)).unwrap();
            prop_assert!(!q.amount_due.is_negative());
        }

        #[test]
        fn zero_time_remaining_costs_nothing(old in cents(), new in cents(), thirty: bool) {
            let conv = if thirty { ProrationConvention::ThirtyDay } else { ProrationConvention::Stripe };
            let p = april();
            let q = quote(conv, monthly(old), monthly(new), p, p.end.unwrap()).unwrap();
            prop_assert_eq!(q.amount_due, usd(dec!(0)));
        }

        #[test]
        fn the_whole_period_remaining_costs_the_difference(old in cents(), new in cents()) {
            let p = april();
            let q = quote(ProrationConvention::Stripe, monthly(old), monthly(new), p, p.start).unwrap();
            prop_assert_eq!(q.amount_due, usd(new - old));
        }

        /// Two changes in one period (A → B at t1, B → C at t2) charge, for
        /// the seconds after t2, only C's price: B's time after t2 is credited
        /// back exactly as it was charged (to the rounding of one line each).
        #[test]
        fn never_charges_twice_for_the_same_seconds(
            a in cents(), b in cents(), c in cents(), t1 in 0i64..2_592_000, dt in 0i64..2_592_000
        ) {
            let p = april();
            let t1 = p.start + Duration::seconds(t1);
            let t2 = (t1 + Duration::seconds(dt)).min(p.end.unwrap());
            let first = quote(ProrationConvention::Stripe, monthly(a), monthly(b), p, t1).unwrap();
            let second = quote(ProrationConvention::Stripe, monthly(b), monthly(c), p, t2).unwrap();
            let direct_c = quote(ProrationConvention::Stripe, monthly(a), monthly(c), p, t2).unwrap();
            // After t2 the customer has paid for C exactly as if they had gone A → C at t2,
            // plus B for [t1, t2) only: the total differs from the direct path by B's
            // [t1, t2) share minus A's [t1, t2) share, within one cent per line.
            let total = first.amount_due.checked_add(&second.amount_due).unwrap();
            let len = Decimal::from(p.seconds().unwrap());
            let mid = Decimal::from((t2 - t1).num_seconds());
            let expected = direct_c.amount_due.amount() + (b - a) * mid / len;
            prop_assert!((total.amount() - expected).abs() <= dec!(0.04), "{} vs {}", total, expected);
        }
    }

    #[test]
    fn the_unserved_share_is_per_second_and_rounds_half_away_from_zero() {
        let april = april();
        let (start, end) = (april.start, april.end.unwrap());
        // 29.00 for 30 days; 1 day unserved: 29 / 30 = 0.9666… → 0.97.
        assert_eq!(
            unserved_share(usd(dec!(29)), start, end, start + Duration::days(1)),
            usd(dec!(0.97))
        );
        // 10 days of 30: a third of 29.99 = 9.9966… → 10.00.
        assert_eq!(
            unserved_share(usd(dec!(29.99)), start, end, start + Duration::days(10)),
            usd(dec!(10.00))
        );
        // 0.03 for half the period: 0.015 → 0.02 (half away from zero).
        assert_eq!(
            unserved_share(usd(dec!(0.03)), start, end, start + Duration::days(15)),
            usd(dec!(0.02))
        );
        assert_eq!(
            unserved_share(usd(dec!(29)), start, end, start),
            usd(dec!(0))
        );
        assert_eq!(
            unserved_share(usd(dec!(29)), start, end, start - Duration::days(3)),
            usd(dec!(0))
        );
        assert_eq!(
            unserved_share(usd(dec!(29)), start, end, end),
            usd(dec!(29))
        );
        assert_eq!(
            unserved_share(usd(dec!(29)), start, end, end + Duration::days(40)),
            usd(dec!(29))
        );
    }
}
