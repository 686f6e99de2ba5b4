//! Billing periods as Stripe computes them: period `n` of a subscription
//! starts at its `billing_cycle_anchor` plus `n` intervals, in calendar
//! months for `month` and `year` prices, the day of the month clamped to the
//! month's last day, always counted from the anchor (never from the previous
//! period), in UTC. An anchor on January 31 renews on February 28 (29 in a
//! leap year), March 31, April 30…; a yearly anchor on February 29 renews on
//! February 28 until the next February 29
//! (docs.stripe.com/billing/subscriptions/billing-cycle).

use chrono::{DateTime, Months, TimeDelta};
use serde_json::Value;

/// A price's recurring interval: `unit` (`day`, `week`, `month`, `year`)
/// times `count`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Interval {
    unit: String,
    count: u32,
}

impl Interval {
    /// The interval of a price object (`recurring.interval`,
    /// `recurring.interval_count`); `None` for a one-time price.
    pub(crate) fn of(price: &Value) -> Option<Self> {
        let unit = price["recurring"]["interval"].as_str()?.to_owned();
        let count = price["recurring"]["interval_count"]
            .as_u64()
            .or_else(|| {
                price["recurring"]["interval_count"]
                    .as_str()
                    .and_then(|c| c.parse().ok())
            })
            .and_then(|c| u32::try_from(c).ok())
            .filter(|c| *c > 0)
            .unwrap_or(1);
        Some(Self { unit, count })
    }

    /// The start of period `n` (`n = 0` is the anchor), in unix seconds;
    /// `None` past chrono's range.
    pub(crate) fn boundary(&self, anchor: i64, n: u32) -> Option<i64> {
        let start = DateTime::from_timestamp(anchor, 0)?;
        let steps = self.count.checked_mul(n)?;
        let at = match self.unit.as_str() {
            "day" => start.checked_add_signed(TimeDelta::days(i64::from(steps)))?,
            "week" => start.checked_add_signed(TimeDelta::weeks(i64::from(steps)))?,
            "year" => start.checked_add_months(Months::new(steps.checked_mul(12)?))?,
            _ => start.checked_add_months(Months::new(steps))?,
        };
        Some(at.timestamp())
    }

    /// The first period boundary after `t` (the end of the period that
    /// contains `t`), counted from `anchor`.
    pub(crate) fn next_after(&self, anchor: i64, t: i64) -> Option<i64> {
        (1..=100_000u32)
            .map_while(|n| self.boundary(anchor, n))
            .find(|b| *b > t)
    }
}

#[cfg(test)]
mod tests {
    use chrono::NaiveDate;
    use serde_json::json;

    use super::Interval;

    /// Unix seconds of a date written by hand, at `h:m:s` UTC.
    fn at(y: i32, m: u32, d: u32, h: u32, min: u32, s: u32) -> i64 {
        NaiveDate::from_ymd_opt(y, m, d)
            .unwrap()
            .and_hms_opt(h, min, s)
            .unwrap()
            .and_utc()
            .timestamp()
    }

    fn monthly() -> Interval {
        Interval::of(&json!({"recurring": {"interval": "month", "interval_count": 1}})).unwrap()
    }

    fn yearly() -> Interval {
        Interval::of(&json!({"recurring": {"interval": "year", "interval_count": 1}})).unwrap()
    }

    #[test]
    fn a_january_31_anchor_renews_on_each_months_last_day_counted_from_the_anchor() {
        let anchor = at(2026, 1, 31, 9, 30, 0);
        let iv = monthly();
        let expected = [
            at(2026, 2, 28, 9, 30, 0),
            at(2026, 3, 31, 9, 30, 0),
            at(2026, 4, 30, 9, 30, 0),
            at(2026, 5, 31, 9, 30, 0),
        ];
        for (n, want) in (1..).zip(expected) {
            assert_eq!(iv.boundary(anchor, n), Some(want), "period {n}");
        }
        // The period containing Feb 28 ends on Mar 31, not Mar 28.
        assert_eq!(
            iv.next_after(anchor, at(2026, 2, 28, 9, 30, 0)),
            Some(at(2026, 3, 31, 9, 30, 0))
        );
    }

    #[test]
    fn in_a_leap_year_a_january_31_anchor_renews_on_february_29() {
        let anchor = at(2028, 1, 31, 0, 0, 0);
        assert_eq!(
            monthly().boundary(anchor, 1),
            Some(at(2028, 2, 29, 0, 0, 0))
        );
        assert_eq!(
            monthly().boundary(anchor, 2),
            Some(at(2028, 3, 31, 0, 0, 0))
        );
    }

    #[test]
    fn a_yearly_february_29_anchor_renews_on_february_28_until_the_next_leap_year() {
        let anchor = at(2028, 2, 29, 12, 0, 0);
        let iv = yearly();
        assert_eq!(iv.boundary(anchor, 1), Some(at(2029, 2, 28, 12, 0, 0)));
        assert_eq!(iv.boundary(anchor, 2), Some(at(2030, 2, 28, 12, 0, 0)));
        assert_eq!(iv.boundary(anchor, 3), Some(at(2031, 2, 28, 12, 0, 0)));
        assert_eq!(iv.boundary(anchor, 4), Some(at(2032, 2, 29, 12, 0, 0)));
    }

    #[test]
    fn a_one_time_price_has_no_interval_and_interval_count_multiplies() {
        assert_eq!(Interval::of(&json!({"recurring": null})), None);
        let quarterly =
            Interval::of(&json!({"recurring": {"interval": "month", "interval_count": 3}}))
                .unwrap();
        assert_eq!(
            quarterly.boundary(at(2026, 11, 30, 0, 0, 0), 1),
            Some(at(2027, 2, 28, 0, 0, 0))
        );
    }
}
