//! The clock drives billing: moving it processes, in time order, what came
//! due up to the new time — schedule phase ends, then subscription period
//! ends (renewal or cancellation), then checkout session expiries, each at
//! its own instant — as Stripe's test clocks do
//! (docs.stripe.com/billing/testing/test-clocks).

use std::collections::HashSet;

use serde_json::Value;

use crate::state::{State, seq};
use crate::{checkout, schedules, subscriptions};

/// What comes due, in the order it is processed at one instant: a phase
/// change happens before the renewal of the period starting then, so that
/// period is billed at the new price once.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
enum Due {
    PhaseEnd(String),
    PeriodEnd(String),
    Expiry(String),
}

/// The earliest thing due at or before `target`, with its instant.
fn next_due(s: &State, target: i64, stuck: &HashSet<Due>) -> Option<(i64, Due)> {
    let mut best: Option<(i64, u8, u64, Due)> = None;
    for (id, o) in &s.objects {
        let (t, rank, due) = match o["object"].as_str() {
            Some("subscription_schedule") if o["status"] == "active" => (
                o["current_phase"]["end_date"].as_i64(),
                0,
                Due::PhaseEnd(id.clone()),
            ),
            Some("subscription")
                if (o["status"] == "active"
                    || o["status"] == "past_due"
                    || o["status"] == "trialing")
                    && o["items"]["data"][0]["price"]["recurring"].is_object() =>
            {
                (
                    o["items"]["data"][0]["current_period_end"].as_i64(),
                    1,
                    Due::PeriodEnd(id.clone()),
                )
            }
            Some("checkout.session") if o["status"] == "open" => {
                (o["expires_at"].as_i64(), 2, Due::Expiry(id.clone()))
            }
            _ => continue,
        };
        let Some(t) = t.filter(|t| *t <= target) else {
            continue;
        };
        if stuck.contains(&due) {
            continue;
        }
        let key = (t, rank, seq(id), due);
        if best.as_ref().is_none_or(|b| key < *b) {
            best = Some(key);
        }
    }
    best.map(|(t, _, _, due)| (t, due))
}

/// Processes everything due up to `target` (unix seconds), oldest first,
/// each at its own instant; returns the events, in order.
pub(crate) fn run_until(s: &mut State, target: i64) -> Vec<Value> {
    let mut events = Vec::new();
    let mut stuck = HashSet::new();
    let mut last: Option<(i64, Due)> = None;
    // A bound, not a limit: a century of daily renewals fits.
    for _ in 0..1_000_000 {
        let Some((t, due)) = next_due(s, target, &stuck) else {
            break;
        };
        // The same thing due at the same instant again made no progress.
        if last.as_ref() == Some(&(t, due.clone())) {
            stuck.insert(due);
            continue;
        }
        last = Some((t, due.clone()));
        s.at = Some(t);
        events.extend(match &due {
            Due::PhaseEnd(id) => schedules::phase_end(s, id, t),
            Due::PeriodEnd(id) => subscriptions::cycle(s, id),
            Due::Expiry(id) => checkout::expire(s, id),
        });
    }
    s.at = None;
    events
}
