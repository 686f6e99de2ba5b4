//! Subscription schedules, the minimum (docs.stripe.com/billing/
//! subscriptions/subscription-schedules): made from a subscription, their
//! phases replaced, released; when the clock passes the end of the current
//! phase the subscription moves to the next phase's price.

use serde_json::{Value, json};

use crate::api::{Reply, invalid, no_such};
use crate::calendar::Interval;
use crate::form::{int, opt_int, update_metadata};
use crate::state::State;
use crate::subscriptions::{cancel, change_price};

/// The index of the current phase (kept in the stand-in's private fields).
fn current(sched: &Value) -> usize {
    usize::try_from(int(&sched["_sim"]["phase"])).unwrap_or(0)
}

/// One phase as Stripe shows it: `[start, end)` at one price.
fn phase(s: &State, price: &Value, quantity: i64, start: i64, end: i64, proration: &str) -> Value {
    let mut base = s
        .fixtures
        .get("subscription_schedule")
        .map(|f| f["phases"][0].clone())
        .unwrap_or_else(|| json!({}));
    let over = json!({"start_date": start, "end_date": end, "currency": price["currency"],
        "items": [{"price": price["id"], "plan": price["id"], "quantity": quantity, "metadata": {}, "discounts": [],
            "tax_rates": [], "billing_thresholds": null}],
        "proration_behavior": proration, "add_invoice_items": [], "application_fee_percent": null,
        "billing_cycle_anchor": null, "collection_method": null, "default_payment_method": null,
        "default_tax_rates": [], "description": null, "discounts": [], "invoice_settings": null, "metadata": {},
        "on_behalf_of": null, "transfer_data": null, "trial_end": null, "billing_thresholds": null});
    if let (Value::Object(b), Value::Object(o)) = (&mut base, over) {
        b.extend(o);
    }
    base
}

/// `POST /v1/subscription_schedules` with `from_subscription`: one phase,
/// the subscription's current period at its price; `end_behavior: release`.
/// Emits `subscription_schedule.created`.
pub(crate) fn create(s: &mut State, p: &Value, events: &mut Vec<Value>) -> Reply {
    let Some(sub_id) = p["from_subscription"].as_str() else {
        return invalid(
            "from_subscription",
            "parameter_missing",
            "The stand-in only makes schedules from a subscription: from_subscription is required.",
        );
    };
    let Some(sub) = s
        .objects
        .get(sub_id)
        .filter(|o| o["object"] == "subscription")
        .cloned()
    else {
        return invalid(
            "from_subscription",
            "resource_missing",
            &format!("No such subscription: '{sub_id}'"),
        );
    };
    if sub["status"] == "canceled" {
        return invalid(
            "from_subscription",
            "",
            "You cannot create a subscription schedule from a canceled subscription.",
        );
    }
    if let Some(other) = sub["schedule"].as_str() {
        return invalid(
            "from_subscription",
            "",
            &format!(
                "You cannot migrate a subscription that is already attached to a schedule: `{other}`."
            ),
        );
    }
    let item = &sub["items"]["data"][0];
    let (start, end) = (
        int(&item["current_period_start"]),
        int(&item["current_period_end"]),
    );
    let first = phase(s, &item["price"], 1, start, end, "create_prorations");
    let now = s.now();
    let id = s.id("sub_sched");
    let mut default_settings = s
        .fixtures
        .get("subscription_schedule")
        .map(|f| f["default_settings"].clone())
        .unwrap_or_else(|| json!({}));
    default_settings["transfer_data"] = Value::Null;
    default_settings["billing_thresholds"] = Value::Null;
    let o = s.object(
        "subscription_schedule",
        json!({"id": id, "object": "subscription_schedule", "customer": sub["customer"], "subscription": sub_id,
            "status": "active", "end_behavior": "release", "phases": [first],
            "current_phase": {"start_date": start, "end_date": end}, "created": now, "canceled_at": null,
            "completed_at": null, "released_at": null, "released_subscription": null,
            "metadata": p["metadata"].as_object().cloned().unwrap_or_default(), "test_clock": null,
            "application": null, "default_settings": default_settings, "_sim": {"phase": 0}}),
    );
    s.objects.insert(id.clone(), o.clone());
    if let Some(sub) = s.objects.get_mut(sub_id) {
        sub["schedule"] = json!(id);
    }
    events.push(s.event("subscription_schedule.created", o.clone()));
    (200, o)
}

/// `POST /v1/subscription_schedules/{id}`: `phases[i][items][0][price]`
/// (and `[quantity]`), `phases[i][start_date]` (a time or `now`; default the
/// current phase's start, then the previous phase's end),
/// `phases[i][end_date]` (or `phases[i][iterations]`; the last phase may
/// have neither: one interval of its price, as Stripe fills in),
/// `phases[i][proration_behavior]`, `end_behavior` (`release`, `cancel`),
/// `metadata` — the phases are replaced. When the current phase's price is
/// not the subscription's, the subscription moves to it now. Emits
/// `subscription_schedule.updated`.
pub(crate) fn update(s: &mut State, id: &str, p: &Value, events: &mut Vec<Value>) -> Reply {
    let Some(mut sched) = s
        .objects
        .get(id)
        .filter(|o| o["object"] == "subscription_schedule")
        .cloned()
    else {
        return no_such("subscription_schedule", id);
    };
    if sched["status"] != "active" {
        return invalid(
            "schedule",
            "",
            &format!(
                "You cannot update a subscription schedule that is currently in the `{}` status.",
                sched["status"].as_str().unwrap_or_default()
            ),
        );
    }
    let now = s.now();
    if let Some(given) = p["phases"].as_array() {
        let mut phases = Vec::new();
        let mut prev_end: Option<i64> = None;
        for (i, ph) in given.iter().enumerate() {
            let param = |k: &str| format!("phases[{i}][{k}]");
            let price_id = ph["items"][0]["price"].as_str().unwrap_or_default();
            let Some(price) = crate::subscriptions::recurring_price(s, price_id) else {
                return invalid(
                    &format!("phases[{i}][items][0][price]"),
                    "resource_missing",
                    &format!("No such recurring price: '{price_id}'"),
                );
            };
            let start = match (&ph["start_date"], prev_end) {
                (Value::String(n), _) if n == "now" => now,
                (Value::Null, Some(e)) => e,
                (Value::Null, None) => int(&sched["current_phase"]["start_date"]),
                (v, _) => match opt_int(v) {
                    Some(t) => t,
                    None => {
                        return invalid(
                            &param("start_date"),
                            "parameter_invalid_integer",
                            "Invalid timestamp.",
                        );
                    }
                },
            };
            if prev_end.is_some_and(|e| e != start) {
                return invalid(
                    &param("start_date"),
                    "parameter_invalid_integer",
                    "Each phase must start where the previous one ends.",
                );
            }
            let last = i + 1 == given.len();
            let end = match (opt_int(&ph["end_date"]), opt_int(&ph["iterations"])) {
                (Some(e), _) => Some(e),
                (None, Some(n)) => u32::try_from(n)
                    .ok()
                    .and_then(|n| Interval::of(&price).and_then(|iv| iv.boundary(start, n))),
                (None, None) if last => Interval::of(&price).and_then(|iv| iv.boundary(start, 1)),
                (None, None) => None,
            };
            let Some(end) = end.filter(|e| *e > start) else {
                return invalid(
                    &param("end_date"),
                    "parameter_missing",
                    "Every phase but the last needs an end_date (or iterations) after its start_date.",
                );
            };
            let proration = ph["proration_behavior"]
                .as_str()
                .unwrap_or("create_prorations");
            if !["create_prorations", "none", "always_invoice"].contains(&proration) {
                return invalid(
                    &param("proration_behavior"),
                    "",
                    "proration_behavior must be one of create_prorations, none, or always_invoice.",
                );
            }
            let quantity = opt_int(&ph["items"][0]["quantity"]).unwrap_or(1);
            phases.push(phase(s, &price, quantity, start, end, proration));
            prev_end = Some(end);
        }
        if phases.is_empty() {
            return invalid(
                "phases",
                "parameter_missing",
                "A schedule needs at least one phase.",
            );
        }
        // The current phase: the last one already started.
        let idx = phases
            .iter()
            .rposition(|ph| int(&ph["start_date"]) <= now)
            .unwrap_or(0);
        sched["current_phase"] =
            json!({"start_date": phases[idx]["start_date"], "end_date": phases[idx]["end_date"]});
        sched["_sim"]["phase"] = json!(idx);
        sched["phases"] = Value::Array(phases);
    }
    if let Some(b) = p["end_behavior"].as_str() {
        if !["release", "cancel"].contains(&b) {
            return invalid(
                "end_behavior",
                "",
                "end_behavior must be release or cancel.",
            );
        }
        sched["end_behavior"] = json!(b);
    }
    update_metadata(&mut sched["metadata"], &p["metadata"]);
    s.objects.insert(id.to_owned(), sched.clone());
    events.push(s.event("subscription_schedule.updated", sched.clone()));
    // The current phase's price applies now.
    let sub_id = sched["subscription"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let price_id = sched["phases"][current(&sched)]["items"][0]["price"]
        .as_str()
        .unwrap_or_default();
    if let Some(price) = s.objects.get(price_id).cloned()
        && s.objects
            .get(&sub_id)
            .is_some_and(|sub| sub["items"]["data"][0]["price"]["id"] != price["id"])
    {
        let invoice = change_price(s, &sub_id, &price, now);
        let sub = s.objects.get(&sub_id).cloned().unwrap_or_default();
        events.push(s.event("customer.subscription.updated", sub));
        if let Some((inv, kind)) = invoice {
            events.push(s.event(kind, inv));
        }
    }
    (200, sched)
}

/// Releases the schedule at `at`: `released`, `released_subscription` (its
/// `subscription` and `current_phase` null, as Stripe shows a released
/// schedule); the subscription keeps its price and loses its `schedule`.
fn release(s: &mut State, id: &str, at: i64) -> Option<Value> {
    let sched = s.objects.get_mut(id)?;
    let sub_id = sched["subscription"].clone();
    sched["status"] = json!("released");
    sched["released_at"] = json!(at);
    sched["released_subscription"] = sub_id.clone();
    sched["subscription"] = Value::Null;
    sched["current_phase"] = Value::Null;
    let sched = sched.clone();
    if let Some(sub) = sub_id.as_str().and_then(|i| s.objects.get_mut(i)) {
        sub["schedule"] = Value::Null;
    }
    Some(sched)
}

/// `POST /v1/subscription_schedules/{id}/release`: emits
/// `subscription_schedule.released`.
pub(crate) fn release_request(s: &mut State, id: &str, events: &mut Vec<Value>) -> Reply {
    match s
        .objects
        .get(id)
        .filter(|o| o["object"] == "subscription_schedule")
    {
        None => no_such("subscription_schedule", id),
        Some(o) if o["status"] != "active" => invalid(
            "schedule",
            "",
            &format!(
                "You cannot release a subscription schedule that is currently in the `{}` status.",
                o["status"].as_str().unwrap_or_default()
            ),
        ),
        Some(_) => {
            let now = s.now();
            let sched = release(s, id, now).unwrap_or_default();
            events.push(s.event("subscription_schedule.released", sched.clone()));
            (200, sched)
        }
    }
}

/// The clock passed the end of the schedule's current phase (`at`). With a
/// next phase, the subscription moves to its price at `at` (another
/// interval: the anchor resets to `at` and the new period is invoiced at
/// once); entering the last phase releases a `release` schedule. After the
/// last phase, `release` releases and `cancel` cancels the subscription.
/// Emits `customer.subscription.updated` (when it changed), the invoice's
/// event, `subscription_schedule.released` / `customer.subscription.deleted`.
pub(crate) fn phase_end(s: &mut State, id: &str, at: i64) -> Vec<Value> {
    let Some(mut sched) = s.objects.get(id).cloned() else {
        return Vec::new();
    };
    let sub_id = sched["subscription"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    if s.objects
        .get(&sub_id)
        .is_none_or(|sub| sub["status"] == "canceled")
    {
        if let Some(o) = s.objects.get_mut(id) {
            o["status"] = json!("canceled");
            o["canceled_at"] = json!(at);
        }
        return Vec::new();
    }
    let idx = current(&sched);
    let count = sched["phases"].as_array().map_or(0, Vec::len);
    let mut events = Vec::new();
    if idx + 1 >= count {
        if sched["end_behavior"] == "cancel" {
            if let Some(o) = s.objects.get_mut(id) {
                o["status"] = json!("completed");
                o["completed_at"] = json!(at);
                o["current_phase"] = Value::Null;
            }
            return cancel(s, &sub_id, at);
        }
        if let Some(released) = release(s, id, at) {
            events.push(s.event("subscription_schedule.released", released));
        }
        return events;
    }
    let next = sched["phases"][idx + 1].clone();
    sched["_sim"]["phase"] = json!(idx + 1);
    sched["current_phase"] =
        json!({"start_date": next["start_date"], "end_date": next["end_date"]});
    s.objects.insert(id.to_owned(), sched.clone());
    let price_id = next["items"][0]["price"].as_str().unwrap_or_default();
    let price = s.objects.get(price_id).cloned();
    let before = s
        .objects
        .get(&sub_id)
        .map(|sub| sub["items"]["data"][0]["price"]["id"].clone());
    let invoice = price.and_then(|pr| change_price(s, &sub_id, &pr, at));
    let changed = s
        .objects
        .get(&sub_id)
        .map(|sub| sub["items"]["data"][0]["price"]["id"].clone())
        != before;
    let released = if idx + 2 == count && sched["end_behavior"] == "release" {
        release(s, id, at)
    } else {
        None
    };
    if changed || released.is_some() {
        let sub = s.objects.get(&sub_id).cloned().unwrap_or_default();
        events.push(s.event("customer.subscription.updated", sub));
    }
    if let Some((inv, kind)) = invoice {
        events.push(s.event(kind, inv));
    }
    if let Some(released) = released {
        events.push(s.event("subscription_schedule.released", released));
    }
    events
}
