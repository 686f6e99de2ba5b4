//! The operations a case is made of, and how they are drawn (with weights).
//! An operation names what happens, not to which row: "pay the pending
//! upgrade", "upgrade to a yearly plan (the second candidate)"; the model
//! resolves it against its state when it runs, so cases shrink well (an
//! operation that no longer applies is skipped).

use chrono::{Duration, TimeZone, Utc};
use proptest::prelude::*;

use super::rules::{PLANS, Ts};

/// Where a clock jump lands.
#[derive(Debug, Clone, Copy)]
pub enum Jump {
    Minutes(u16),
    Hours(u16),
    Days(u16),
    /// Exactly the current period's end.
    PeriodEnd,
    /// The last day of the month `months` ahead, at the anchor's time of day
    /// (`anchor_time`) or at 23:59:59.
    MonthEnd {
        months: u8,
        anchor_time: bool,
    },
    /// The next 29 February (at the anchor's time of day or midnight).
    LeapDay {
        anchor_time: bool,
    },
    /// The next instant something is due (a period end, an expiry, a retry,
    /// a dunning step).
    NextEvent,
}

/// Which upgrades an upgrade request picks from.
#[derive(Debug, Clone, Copy)]
pub enum Up {
    SameInterval,
    ToYear,
    ToLifetime,
}

/// How a payment arrives.
#[derive(Debug, Clone, Copy)]
pub enum Via {
    /// Staff record it (`POST …/plan-changes/{id}/mark-paid`).
    Operator,
    /// The provider reports it (the checkout was paid).
    Provider,
}

/// One step of a case.
#[derive(Debug, Clone, Copy)]
pub enum Op {
    /// Move the billing clock (the processor does not run).
    Advance(Jump),
    /// Run the billing processor until nothing more is due.
    Process,
    /// Ask for an upgrade: candidate `pick` of `up`; `checkout` pays at a
    /// checkout (else the saved card); the preview was taken
    /// `preview_age_min` minutes earlier.
    Upgrade {
        up: Up,
        pick: u8,
        checkout: bool,
        preview_age_min: u8,
    },
    /// Ask for a downgrade to candidate `pick` (from a lifetime plan: any
    /// recurring plan, refused).
    Downgrade { pick: u8 },
    /// Cancel the scheduled downgrade.
    CancelDowngrade,
    /// Pay the pending upgrade in its window.
    Pay(Via),
    /// Pay the last unpaid checkout upgrade after its window (R8).
    PayLate(Via),
    /// The saved card declines (or works again).
    Decline(bool),
    /// The migration of the last applied upgrade fails (R9).
    FailMigration,
}

/// How a case starts: a signup on `plan` with its first period starting
/// at `anchor` (now).
#[derive(Debug, Clone, Copy)]
pub struct Signup {
    pub plan: usize,
    pub anchor: Ts,
}

/// A case: a signup, then operations.
#[derive(Debug, Clone)]
pub struct Case {
    pub signup: Signup,
    pub ops: Vec<Op>,
}

impl std::fmt::Display for Case {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "signup {} anchored at {}",
            PLANS[self.signup.plan].code, self.signup.anchor
        )?;
        for (i, op) in self.ops.iter().enumerate() {
            writeln!(f, "  {i:>2}: {op:?}")?;
        }
        Ok(())
    }
}

fn jump() -> impl Strategy<Value = Jump> {
    prop_oneof![
        5 => (1u16..600).prop_map(Jump::Minutes),
        5 => (1u16..72).prop_map(Jump::Hours),
        8 => prop_oneof![3 => 1u16..40, 1 => 1u16..400].prop_map(Jump::Days),
        4 => Just(Jump::PeriodEnd),
        3 => (0u8..14, any::<bool>()).prop_map(|(months, anchor_time)| Jump::MonthEnd { months, anchor_time }),
        1 => any::<bool>().prop_map(|anchor_time| Jump::LeapDay { anchor_time }),
        4 => Just(Jump::NextEvent),
    ]
}

fn via() -> impl Strategy<Value = Via> {
    prop_oneof![Just(Via::Operator), Just(Via::Provider)]
}

/// Preview ages: at once, within the 15 minutes, or stale (never within
/// seconds of the 15-minute limit, which the engine's clock would blur).
fn preview_age() -> impl Strategy<Value = u8> {
    prop_oneof![3 => Just(0u8), 2 => 1u8..15, 1 => 16u8..120]
}

/// One operation, by weight (95 in all): advance the clock 30 (within it:
/// minutes 5, hours 5, days 8 — up to 40 three times in four, else up to
/// 400 —, to the period end 4, to a month end 3, to 29 February 1, to the
/// next event 4), process 18, upgrade 14 (within it: same interval 6, to a
/// year 4, to lifetime 2; at a checkout half the time), downgrade 8, cancel
/// the downgrade 3, pay in the window 8, pay late 4 (each by an operator or
/// the provider, half and half), card declines 4, works again 2, failed
/// migration 4.
///
/// `TENANTRY_ORACLE_LIFETIME_WEIGHT` and `TENANTRY_ORACLE_FAIL_MIGRATION_WEIGHT`
/// change the last two (to aim a run at failed migrations after a move to
/// lifetime, say).
pub fn op() -> impl Strategy<Value = Op> {
    let weight = |name: &str, default: u32| {
        std::env::var(name)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(default)
    };
    let up = prop_oneof![
        6 => Just(Up::SameInterval),
        4 => Just(Up::ToYear),
        weight("TENANTRY_ORACLE_LIFETIME_WEIGHT", 2) => Just(Up::ToLifetime),
    ];
    prop_oneof![
        30 => jump().prop_map(Op::Advance),
        18 => Just(Op::Process),
        14 => (up, any::<u8>(), any::<bool>(), preview_age()).prop_map(|(up, pick, checkout, preview_age_min)| Op::Upgrade { up, pick, checkout, preview_age_min }),
        8 => any::<u8>().prop_map(|pick| Op::Downgrade { pick }),
        3 => Just(Op::CancelDowngrade),
        8 => via().prop_map(Op::Pay),
        4 => via().prop_map(Op::PayLate),
        4 => Just(Op::Decline(true)),
        2 => Just(Op::Decline(false)),
        weight("TENANTRY_ORACLE_FAIL_MIGRATION_WEIGHT", 4) => Just(Op::FailMigration),
    ]
}

/// Signups: every plan (lifetime rarely); anchors in 2027–2030 (2028 is a
/// leap year), on the 28th–31st half the time, at midnight half the time.
pub fn signup() -> impl Strategy<Value = Signup> {
    let plan = prop_oneof![
        12 => 0usize..6,
        1 => Just(6usize),
    ];
    let day = prop_oneof![1 => 28u32..32, 1 => 1u32..28];
    let secs = prop_oneof![1 => Just(0i64), 1 => 0i64..86_400];
    (plan, 2027i32..2031, 1u32..13, day, secs).prop_map(|(plan, y, m, d, secs)| {
        let d = d.min(super::rules::days_in_month(y, m));
        let anchor = Utc.with_ymd_and_hms(y, m, d, 0, 0, 0).unwrap() + Duration::seconds(secs);
        Signup { plan, anchor }
    })
}

/// A case of 1–`max_ops` operations.
pub fn case(max_ops: usize) -> impl Strategy<Value = Case> {
    (signup(), prop::collection::vec(op(), 1..=max_ops))
        .prop_map(|(signup, ops)| Case { signup, ops })
}
