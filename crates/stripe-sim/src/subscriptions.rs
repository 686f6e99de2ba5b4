//! Subscriptions: started by a checkout, billed for calendar periods counted
//! from their `billing_cycle_anchor` (docs.stripe.com/billing/subscriptions/
//! billing-cycle), renewed when a period ends, moved to another price (an
//! interval change resets the anchor and invoices at once:
//! docs.stripe.com/billing/subscriptions/billing-cycle#changing), canceled
//! at a period's end or at once.

use serde_json::{Value, json};

use crate::api::{Reply, error, invalid, no_such};
use crate::calendar::Interval;
use crate::catalog::plan_of;
use crate::form::{opt_bool, opt_int, update_metadata};
use crate::invoices::{collect, draft, finalize, outcome_event, subscription_of};
use crate::payments::Card;
use crate::state::State;

/// Starts an `active` subscription of `customer` to `price` at `at` (its
/// `billing_cycle_anchor`), its first period `[at, at + interval)`.
/// Returns its id.
pub(crate) fn start(
    s: &mut State,
    customer: &str,
    price: &Value,
    metadata: &Value,
    at: i64,
) -> String {
    let end = Interval::of(price)
        .and_then(|iv| iv.boundary(at, 1))
        .unwrap_or(at);
    let sub_id = s.id("sub");
    let item_id = s.id("si");
    let item = s.object(
        "subscription_item",
        json!({"id": item_id, "price": price, "plan": plan_of(price), "subscription": sub_id, "quantity": 1,
            "current_period_start": at, "current_period_end": end, "metadata": {}, "created": at,
            "billing_thresholds": null, "discounts": [], "tax_rates": []}),
    );
    let sub = s.object(
        "subscription",
        json!({"id": sub_id, "customer": customer, "status": "active",
            "metadata": metadata.as_object().cloned().unwrap_or_default(),
            "items": {"object": "list", "data": [item], "has_more": false, "url": format!("/v1/subscription_items?subscription={sub_id}")},
            "created": at, "start_date": at, "billing_cycle_anchor": at, "billing_cycle_anchor_config": null,
            "cancel_at_period_end": false, "cancel_at": null, "canceled_at": null, "ended_at": null,
            "cancellation_details": {"comment": null, "feedback": null, "reason": null},
            "trial_start": null, "trial_end": null, "latest_invoice": null, "currency": price["currency"],
            "schedule": null, "pending_update": null, "pause_collection": null, "next_pending_invoice_item_invoice": null,
            "pending_invoice_item_interval": null, "transfer_data": null, "billing_thresholds": null,
            "discounts": [], "default_tax_rates": [], "description": null}),
    );
    s.objects.insert(sub_id.clone(), sub);
    sub_id
}

/// The recurring price `id`, if there is one.
pub(crate) fn recurring_price(s: &State, id: &str) -> Option<Value> {
    s.objects
        .get(id)
        .filter(|o| o["object"] == "price" && Interval::of(o).is_some())
        .cloned()
}

/// The subscription's (only) item.
fn item(sub: &Value) -> &Value {
    &sub["items"]["data"][0]
}

/// Sets the subscription's current period.
fn set_period(s: &mut State, sub_id: &str, start: i64, end: i64) {
    if let Some(sub) = s.objects.get_mut(sub_id) {
        sub["items"]["data"][0]["current_period_start"] = json!(start);
        sub["items"]["data"][0]["current_period_end"] = json!(end);
    }
}

/// An invoice of the subscription's price for the period `[start, end)`
/// (`reason`: `subscription_create`, `subscription_cycle`,
/// `subscription_update`), finalized at once (the customer's balance
/// applied) and collected (`off_session`: with the card as it behaves); the
/// subscription's `latest_invoice` and status (`active` when paid, else
/// `past_due`) follow. Returns the invoice and the event it calls for.
pub(crate) fn bill(
    s: &mut State,
    sub_id: &str,
    reason: &str,
    start: i64,
    end: i64,
    off_session: bool,
) -> (Value, &'static str) {
    let sub = s.objects.get(sub_id).cloned().unwrap_or_default();
    let item = item(&sub).clone();
    let price = item["price"].clone();
    let amount = price["unit_amount"].as_i64().unwrap_or(0);
    let currency = price["currency"].as_str().unwrap_or("usd").to_owned();
    let customer = sub["customer"].as_str().unwrap_or_default().to_owned();
    let mut inv = draft(s, &customer, &currency, reason, json!({}), Value::Null);
    let id = inv["id"].as_str().unwrap_or_default().to_owned();
    let line_id = s.id("il");
    let line = s.object(
        "line_item",
        json!({"id": line_id, "invoice": id, "amount": amount, "subtotal": amount, "currency": currency,
            "description": format!("1 × {}", price["nickname"].as_str().unwrap_or("plan")),
            "period": {"start": start, "end": end}, "subscription": sub_id, "quantity": 1, "metadata": {},
            "pricing": {"type": "price_details", "price_details": {"price": price["id"], "product": price["product"]},
                "unit_amount_decimal": amount.to_string()},
            "parent": {"type": "subscription_item_details", "invoice_item_details": null,
                "subscription_item_details": {"invoice_item": null, "proration": false,
                    "proration_details": {"credited_items": null}, "subscription": sub_id, "subscription_item": item["id"]}}}),
    );
    inv["lines"]["data"] = json!([line]);
    inv["subscription"] = json!(sub_id);
    inv["parent"] = json!({"type": "subscription_details", "quote_details": null,
        "subscription_details": {"metadata": sub["metadata"], "subscription": sub_id}});
    inv["period_start"] = json!(start);
    inv["period_end"] = json!(start);
    let outcome = if finalize(s, &mut inv) {
        Card::Pays
    } else {
        collect(s, &mut inv, off_session)
    };
    s.objects.insert(id.clone(), inv.clone());
    if let Some(sub) = s.objects.get_mut(sub_id) {
        sub["latest_invoice"] = json!(id);
        sub["status"] = json!(if outcome == Card::Pays {
            "active"
        } else {
            "past_due"
        });
    }
    (inv, outcome_event(outcome))
}

/// A paid invoice that was its subscription's latest brings a `past_due`
/// subscription back to `active`.
pub(crate) fn invoice_paid(s: &mut State, inv: &Value) {
    let Some(sub_id) = subscription_of(inv) else {
        return;
    };
    if let Some(sub) = s.objects.get_mut(sub_id)
        && sub["status"] == "past_due"
        && sub["latest_invoice"] == inv["id"]
    {
        sub["status"] = json!("active");
    }
}

/// The end of the subscription's current period (when the clock passes it,
/// or at once for [`crate::StripeSim::renew`]): with `cancel_at_period_end`
/// it is canceled there (`customer.subscription.deleted`); else the next
/// calendar period is invoiced (`subscription_cycle`) and becomes the
/// current one whether paid or not (`invoice.paid`, or
/// `invoice.payment_failed` / `invoice.payment_action_required` and
/// `past_due`). Only `active`, `past_due` and `trialing` subscriptions
/// renew (a trial's end bills its first full period).
pub(crate) fn cycle(s: &mut State, sub_id: &str) -> Vec<Value> {
    let Some(sub) = s.objects.get(sub_id).cloned() else {
        return Vec::new();
    };
    if sub["status"] != "active" && sub["status"] != "past_due" && sub["status"] != "trialing" {
        return Vec::new();
    }
    let end = item(&sub)["current_period_end"].as_i64().unwrap_or(0);
    if sub["cancel_at_period_end"] == true {
        return cancel(s, sub_id, end);
    }
    let anchor = sub["billing_cycle_anchor"].as_i64().unwrap_or(end);
    let Some(next) = Interval::of(&item(&sub)["price"]).and_then(|iv| iv.next_after(anchor, end))
    else {
        return Vec::new();
    };
    let (inv, kind) = bill(s, sub_id, "subscription_cycle", end, next, true);
    set_period(s, sub_id, end, next);
    vec![s.event(kind, inv)]
}

/// Ends the subscription at `at`: `canceled`, its schedule (if any)
/// canceled too; `customer.subscription.deleted`.
pub(crate) fn cancel(s: &mut State, sub_id: &str, at: i64) -> Vec<Value> {
    let Some(sub) = s.objects.get_mut(sub_id) else {
        return Vec::new();
    };
    sub["status"] = json!("canceled");
    sub["ended_at"] = json!(at);
    if sub["canceled_at"].is_null() {
        sub["canceled_at"] = json!(at);
    }
    let sub = sub.clone();
    if let Some(sched) = sub["schedule"]
        .as_str()
        .and_then(|id| s.objects.get_mut(id))
        && sched["status"] == "active"
    {
        sched["status"] = json!("canceled");
        sched["canceled_at"] = json!(at);
    }
    vec![s.event("customer.subscription.deleted", sub)]
}

/// `DELETE /v1/subscriptions/{id}`: cancels it now, without a final
/// invoice or proration (docs.stripe.com/api/subscriptions/cancel: the
/// defaults `invoice_now=false`, `prorate=false`); answers the canceled
/// subscription. One already canceled is an error, as on Stripe.
pub(crate) fn cancel_now(s: &mut State, sub_id: &str, events: &mut Vec<Value>) -> Reply {
    match s.objects.get(sub_id) {
        Some(o) if o["object"] == "subscription" && o["status"] != "canceled" => {}
        Some(o) if o["object"] == "subscription" => {
            return error(
                400,
                "invalid_request_error",
                "resource_missing",
                &format!(
                    "A canceled subscription can only update its cancellation_details and metadata: {sub_id}"
                ),
            );
        }
        _ => return no_such("subscription", sub_id),
    }
    let now = s.now();
    events.extend(cancel(s, sub_id, now));
    (200, s.objects[sub_id].clone())
}

/// Moves the subscription to `price` at `at`, without prorations. Another
/// interval (or interval count) resets `billing_cycle_anchor` to `at`,
/// makes `[at, at + interval)` the current period and invoices it at once
/// (`subscription_update`); the same interval only changes the price, which
/// the next renewal bills. Returns that invoice and its event, if any.
pub(crate) fn change_price(
    s: &mut State,
    sub_id: &str,
    price: &Value,
    at: i64,
) -> Option<(Value, &'static str)> {
    let sub = s.objects.get_mut(sub_id)?;
    let old = sub["items"]["data"][0]["price"].clone();
    if old["id"] == price["id"] {
        return None;
    }
    sub["items"]["data"][0]["price"] = price.clone();
    sub["items"]["data"][0]["plan"] = plan_of(price);
    let new = Interval::of(price)?;
    if Interval::of(&old).as_ref() == Some(&new) {
        return None;
    }
    let end = new.boundary(at, 1)?;
    sub["billing_cycle_anchor"] = json!(at);
    set_period(s, sub_id, at, end);
    Some(bill(s, sub_id, "subscription_update", at, end, true))
}

/// `POST /v1/subscriptions` (docs.stripe.com/api/subscriptions/create):
/// `customer`, `items[0][price]` (recurring, in a currency the stand-in
/// takes), `metadata`, `trial_end` (a future timestamp: no invoice before
/// it) with `proration_behavior=none`, `off_session`. Without a trial the
/// first period `[now, now + interval)` is invoiced at once
/// (`subscription_create`, the customer's balance applied, the card
/// charged; a declined card leaves it `past_due` here, where Stripe's
/// default `payment_behavior=allow_incomplete` would say `incomplete`).
/// Emits `customer.subscription.created`, then the invoice's event.
pub(crate) fn create(s: &mut State, p: &Value, events: &mut Vec<Value>) -> Reply {
    let Some(customer) = p["customer"]
        .as_str()
        .filter(|c| s.objects.get(*c).is_some_and(|o| o["object"] == "customer"))
        .map(str::to_owned)
    else {
        return invalid(
            "customer",
            "resource_missing",
            &format!(
                "No such customer: '{}'",
                p["customer"].as_str().unwrap_or("")
            ),
        );
    };
    let price_id = p["items"][0]["price"].as_str().unwrap_or_default();
    let Some(price) = recurring_price(s, price_id) else {
        return invalid(
            "items[0][price]",
            "resource_missing",
            &format!("No such recurring price: '{price_id}'"),
        );
    };
    let now = s.now();
    let trial_end = match trial_end_param(s, p) {
        Ok(t) => t,
        Err(reply) => return reply,
    };
    let sub_id = start(s, &customer, &price, &p["metadata"], now);
    let invoice = match trial_end {
        Some(end) => {
            start_trial(s, &sub_id, now, end);
            None
        }
        None => {
            let end = s.objects[&sub_id]["items"]["data"][0]["current_period_end"]
                .as_i64()
                .unwrap_or(now);
            Some(bill(s, &sub_id, "subscription_create", now, end, true))
        }
    };
    let sub = s.objects[&sub_id].clone();
    events.push(s.event("customer.subscription.created", sub.clone()));
    if let Some((inv, kind)) = invoice {
        events.push(s.event(kind, inv));
    }
    (200, s.objects[&sub_id].clone())
}

/// The `trial_end` parameter: `None` when absent; a timestamp in the
/// future (Stripe refuses any other with a 400 on `trial_end`), given with
/// `proration_behavior=none` (the only behaviour the stand-in has).
fn trial_end_param(s: &State, p: &Value) -> Result<Option<i64>, Reply> {
    let t = match &p["trial_end"] {
        Value::Null => return Ok(None),
        v => opt_int(v).filter(|t| *t > s.now()).ok_or_else(|| {
            invalid(
                "trial_end",
                "",
                "Invalid timestamp: must be an integer Unix timestamp in the future.",
            )
        })?,
    };
    if p["proration_behavior"] != "none" {
        return Err(error(
            400,
            "invalid_request_error",
            "parameter_missing",
            "the stand-in only moves a billing cycle with proration_behavior=none",
        ));
    }
    Ok(Some(t))
}

/// A trial to `end` from `at` (docs.stripe.com/billing/subscriptions/
/// billing-cycle#add-a-trial-to-change-the-billing-cycle): `trialing`,
/// `billing_cycle_anchor` and the current period's end at `end`, nothing
/// invoiced before it (with `proration_behavior=none`, nothing credited
/// either); the trial's end bills the first full period.
fn start_trial(s: &mut State, sub_id: &str, at: i64, end: i64) {
    set_period(s, sub_id, at, end);
    if let Some(sub) = s.objects.get_mut(sub_id) {
        sub["status"] = json!("trialing");
        sub["trial_start"] = json!(at);
        sub["trial_end"] = json!(end);
        sub["billing_cycle_anchor"] = json!(end);
    }
}

/// `POST /v1/subscriptions/{id}`: `items[0][id]` + `items[0][price]` with
/// `proration_behavior=none` (the only behaviour the stand-in has),
/// `trial_end` (a future timestamp: [`start_trial`], which also keeps a
/// Price of another interval from invoicing now), `cancel_at_period_end`,
/// `metadata`. Emits `customer.subscription.updated` and, for an interval
/// change without a trial, the invoice's event.
pub(crate) fn update(s: &mut State, id: &str, p: &Value, events: &mut Vec<Value>) -> Reply {
    let Some(sub) = s
        .objects
        .get(id)
        .filter(|o| o["object"] == "subscription")
        .cloned()
    else {
        return no_such("subscription", id);
    };
    let new_price = p["items"][0]["price"].as_str();
    if (new_price.is_some() || !p["proration_behavior"].is_null())
        && p["proration_behavior"] != "none"
    {
        return error(
            400,
            "invalid_request_error",
            "parameter_missing",
            "the stand-in only moves prices with proration_behavior=none",
        );
    }
    let trial_end = match trial_end_param(s, p) {
        Ok(t) => t,
        Err(reply) => return reply,
    };
    let cancel_at_end = opt_bool(&p["cancel_at_period_end"]);
    if sub["status"] == "canceled"
        && (new_price.is_some() || cancel_at_end.is_some() || trial_end.is_some())
    {
        return error(
            400,
            "invalid_request_error",
            "invalid_canceled_subscription_fields",
            "A canceled subscription can only update its cancellation_details and metadata.",
        );
    }
    if cancel_at_end.is_some() && !sub["schedule"].is_null() {
        return invalid(
            "cancel_at_period_end",
            "",
            &format!(
                "The subscription is managed by the subscription schedule `{}`, and updating any cancelation behavior directly is not allowed. Please update the schedule instead.",
                sub["schedule"].as_str().unwrap_or_default()
            ),
        );
    }
    let mut price = None;
    if let Some(price_id) = new_price {
        if let Some(item_id) = p["items"][0]["id"].as_str()
            && item(&sub)["id"] != item_id
        {
            return invalid(
                "items[0][id]",
                "resource_missing",
                &format!("No such subscription item: '{item_id}'"),
            );
        }
        match s.objects.get(price_id).filter(|o| o["object"] == "price") {
            Some(pr) if Interval::of(pr).is_some() && pr["currency"] == sub["currency"] => {
                price = Some(pr.clone());
            }
            Some(_) => {
                return invalid(
                    "items[0][price]",
                    "",
                    &format!(
                        "The price {price_id} must be recurring and in the subscription's currency."
                    ),
                );
            }
            None => {
                return invalid(
                    "items[0][price]",
                    "resource_missing",
                    &format!("No such price: '{price_id}'"),
                );
            }
        }
    }
    let now = s.now();
    if let Some(o) = s.objects.get_mut(id) {
        if let Some(c) = cancel_at_end {
            let end = o["items"]["data"][0]["current_period_end"].clone();
            o["cancel_at_period_end"] = json!(c);
            o["cancel_at"] = if c { end } else { Value::Null };
            o["canceled_at"] = if c { json!(now) } else { Value::Null };
        }
        update_metadata(&mut o["metadata"], &p["metadata"]);
    }
    let invoice = match (price, trial_end) {
        (Some(pr), None) => change_price(s, id, &pr, now),
        (Some(pr), Some(end)) => {
            if let Some(o) = s.objects.get_mut(id) {
                o["items"]["data"][0]["price"] = pr.clone();
                o["items"]["data"][0]["plan"] = plan_of(&pr);
            }
            start_trial(s, id, now, end);
            None
        }
        (None, Some(end)) => {
            start_trial(s, id, now, end);
            None
        }
        (None, None) => None,
    };
    let sub = s.objects.get(id).cloned().unwrap_or_default();
    events.push(s.event("customer.subscription.updated", sub.clone()));
    if let Some((inv, kind)) = invoice {
        events.push(s.event(kind, inv));
    }
    (200, sub)
}
