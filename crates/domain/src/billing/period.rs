//! Billing periods: calendar months or years counted from the billing anchor.
//!
//! Period `n` starts at `anchor + n × interval`, computed from the anchor each
//! time (never from the previous period), with the day of month clamped to
//! the month's last day. So an anchor of Jan 31 gives Feb 28 (29 in a leap
//! year), then Mar 31: the rule Stripe documents for billing cycle anchors
//! (docs.stripe.com/billing/subscriptions/billing-cycle).

use chrono::{DateTime, Months, Utc};

use crate::BillingInterval;

/// A half-open billing period `[start, end)`; `end` is `None` for `lifetime`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BillingPeriod {
    /// First instant of the period.
    pub start: DateTime<Utc>,
    /// First instant after the period; `None` when it never ends.
    pub end: Option<DateTime<Utc>>,
}

fn months(interval: BillingInterval) -> Option<u32> {
    match interval {
        BillingInterval::Month => Some(1),
        BillingInterval::Year => Some(12),
        BillingInterval::Lifetime => None,
    }
}

fn nth_boundary(anchor: DateTime<Utc>, step: u32, n: u32) -> Option<DateTime<Utc>> {
    anchor.checked_add_months(Months::new(step.checked_mul(n)?))
}

impl BillingPeriod {
    /// The `n`-th period (0 = the one starting at the anchor).
    ///
    /// Returns `None` only when the date overflows chrono's range.
    pub fn nth(anchor: DateTime<Utc>, interval: BillingInterval, n: u32) -> Option<Self> {
        match months(interval) {
            None => Some(Self {
                start: anchor,
                end: None,
            }),
            Some(step) => Some(Self {
                start: nth_boundary(anchor, step, n)?,
                end: Some(nth_boundary(anchor, step, n.checked_add(1)?)?),
            }),
        }
    }

    /// The period containing `at` (the first period when `at` is before the anchor).
    pub fn containing(
        anchor: DateTime<Utc>,
        interval: BillingInterval,
        at: DateTime<Utc>,
    ) -> Option<Self> {
        let Some(step) = months(interval) else {
            return Self::nth(anchor, interval, 0);
        };
        if at <= anchor {
            return Self::nth(anchor, interval, 0);
        }
        // An estimate from whole calendar months, then corrected by at most a step.
        let elapsed_months = (at
            .date_naive()
            .years_since(anchor.date_naive())
            .unwrap_or(0)
            * 12)
            .saturating_add(12);
        let mut n = elapsed_months / step;
        loop {
            let p = Self::nth(anchor, interval, n)?;
            if p.start <= at {
                if p.end.is_some_and(|e| at < e) {
                    return Some(p);
                }
                n = n.checked_add(1)?;
            } else {
                n = n.checked_sub(1)?;
            }
        }
    }

    /// Length in seconds (`None` for a lifetime period).
    pub fn seconds(&self) -> Option<i64> {
        self.end.map(|e| (e - self.start).num_seconds())
    }

    /// Seconds left from `at` to the end, clamped to `0..=length` (`None` for lifetime).
    pub fn seconds_remaining(&self, at: DateTime<Utc>) -> Option<i64> {
        let end = self.end?;
        let len = (end - self.start).num_seconds();
        Some((end - at).num_seconds().clamp(0, len))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use proptest::prelude::*;

    fn t(y: i32, m: u32, d: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(y, m, d, 12, 0, 0).unwrap()
    }

    #[test]
    fn month_end_anchors_clamp_then_recover() {
        let anchor = t(2026, 1, 31);
        let starts: Vec<_> = (0..4)
            .map(|n| {
                BillingPeriod::nth(anchor, BillingInterval::Month, n)
                    .unwrap()
                    .start
            })
            .collect();
        assert_eq!(
            starts,
            [
                t(2026, 1, 31),
                t(2026, 2, 28),
                t(2026, 3, 31),
                t(2026, 4, 30)
            ]
        );
        let leap = BillingPeriod::nth(t(2028, 1, 31), BillingInterval::Month, 1).unwrap();
        assert_eq!(leap.start, t(2028, 2, 29));
    }

    #[test]
    fn years_and_lifetime() {
        let p = BillingPeriod::nth(t(2028, 2, 29), BillingInterval::Year, 1).unwrap();
        assert_eq!((p.start, p.end), (t(2029, 2, 28), Some(t(2030, 2, 28))));
        let l = BillingPeriod::containing(t(2026, 1, 1), BillingInterval::Lifetime, t(2090, 1, 1))
            .unwrap();
        assert_eq!((l.start, l.end), (t(2026, 1, 1), None));
        assert_eq!(l.seconds_remaining(t(2027, 1, 1)), None);
    }

    proptest! {
        #[test]
        fn the_containing_period_contains(days in 0i64..20_000, anchor_day in 0i64..3_000, yearly: bool) {
            let anchor = t(2020, 1, 1) + chrono::Duration::days(anchor_day) + chrono::Duration::seconds(anchor_day * 37);
            let at = anchor + chrono::Duration::days(days) + chrono::Duration::seconds(days * 13 % 86_400);
            let interval = if yearly { BillingInterval::Year } else { BillingInterval::Month };
            let p = BillingPeriod::containing(anchor, interval, at).unwrap();
            prop_assert!(p.start <= at && at < p.end.unwrap());
            let rem = p.seconds_remaining(at).unwrap();
            prop_assert!(rem > 0 && rem <= p.seconds().unwrap());
        }

        #[test]
        fn periods_tile_without_gaps(n in 0u32..600, anchor_day in 0i64..3_000) {
            let anchor = t(2020, 1, 1) + chrono::Duration::days(anchor_day);
            let a = BillingPeriod::nth(anchor, BillingInterval::Month, n).unwrap();
            let b = BillingPeriod::nth(anchor, BillingInterval::Month, n + 1).unwrap();
            prop_assert_eq!(a.end, Some(b.start));
            prop_assert!(a.seconds().unwrap() >= 28 * 86_400 && a.seconds().unwrap() <= 31 * 86_400);
        }
    }
}
