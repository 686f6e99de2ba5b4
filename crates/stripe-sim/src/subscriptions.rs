//! What a customer or time does to subscriptions: a checkout session
//! completed (in `subscription` mode a subscription starts, its first
//! invoice paid), and a billing cycle (the next period's invoice, paid, or
//! failed when the customer's card declines).

use serde_json::{Value, json};

use crate::form::int;
use crate::state::State;

pub(crate) fn complete(s: &mut State, session_id: &str) -> Vec<Value> {
    let Some(session) = s.objects.get(session_id).cloned() else {
        return Vec::new();
    };
    if session["status"] == "complete" {
        return Vec::new();
    }
    let now = s.now();
    let customer = session["customer"].as_str().unwrap_or_default().to_owned();
    let meta = session["metadata"].clone();
    let internal = session["_sim"].clone();
    let line = internal["line_items"][0].clone();
    let mut events = Vec::new();
    let mut completed = session.clone();
    completed["status"] = json!("complete");
    completed["payment_status"] = json!("paid");
    if session["mode"] == "subscription" {
        let price_id = line["price"].as_str().unwrap_or_default().to_owned();
        let price = s
            .objects
            .get(&price_id)
            .cloned()
            .unwrap_or_else(|| json!({}));
        let sub_id = s.id("sub");
        let item_id = s.id("si");
        let end = now + period_seconds(&price);
        let sub_meta = internal["subscription_data"]["metadata"].clone();
        let item = s.object("subscription_item", json!({"id": item_id, "price": price, "subscription": sub_id,
            "quantity": 1, "current_period_start": now, "current_period_end": end, "metadata": {}, "created": now}));
        let sub = s.object("subscription", json!({"id": sub_id, "customer": customer, "status": "active",
            "metadata": sub_meta, "items": {"object": "list", "data": [item], "has_more": false, "url": "/v1/subscription_items"},
            "created": now, "start_date": now, "billing_cycle_anchor": now, "cancel_at_period_end": false,
            "latest_invoice": null, "currency": price["currency"]}));
        s.objects.insert(sub_id.clone(), sub);
        completed["subscription"] = json!(sub_id);
        let invoice = subscription_invoice(s, &sub_id, "subscription_create", now, end, true);
        completed["invoice"] = invoice["id"].clone();
        s.objects.insert(session_id.to_owned(), completed.clone());
        events.push(s.event("checkout.session.completed", strip(&completed)));
        events.push(s.event("invoice.paid", invoice));
    } else {
        completed["metadata"] = meta;
        s.objects.insert(session_id.to_owned(), completed.clone());
        events.push(s.event("checkout.session.completed", strip(&completed)));
    }
    events
}

fn period_seconds(price: &Value) -> i64 {
    match price["recurring"]["interval"].as_str() {
        Some("year") => 365 * 86_400,
        _ => 30 * 86_400,
    }
}

/// An object without the stand-in's private fields.
pub(crate) fn strip(v: &Value) -> Value {
    let mut v = v.clone();
    if let Value::Object(m) = &mut v {
        m.remove("_sim");
    }
    v
}

fn subscription_invoice(
    s: &mut State,
    sub_id: &str,
    reason: &str,
    start: i64,
    end: i64,
    paid: bool,
) -> Value {
    let sub = s.objects.get(sub_id).cloned().unwrap_or_else(|| json!({}));
    let item = sub["items"]["data"][0].clone();
    let price = item["price"].clone();
    let amount = int(&price["unit_amount"]);
    let id = s.id("in");
    let line_id = s.id("il");
    let parent = json!({"type": "subscription_details", "quote_details": null,
        "subscription_details": {"metadata": sub["metadata"], "subscription": sub_id}});
    let line = s.object("line_item", json!({"id": line_id, "invoice": id, "amount": amount, "currency": price["currency"],
        "description": format!("1 × {}", price["nickname"].as_str().unwrap_or("plan")),
        "period": {"start": start, "end": end}, "subscription": sub_id,
        "parent": {"type": "subscription_item_details", "invoice_item_details": null,
                   "subscription_item_details": {"invoice_item": null, "proration": false,
                       "proration_details": {"credited_items": null}, "subscription": sub_id, "subscription_item": item["id"]}}}));
    let declined = s
        .declining
        .contains(sub["customer"].as_str().unwrap_or_default());
    let paid = paid && !declined;
    let invoice = s.object("invoice", json!({"id": id, "customer": sub["customer"], "subscription": sub_id,
        "billing_reason": reason, "currency": price["currency"], "amount_due": amount,
        "amount_paid": if paid { amount } else { 0 }, "amount_remaining": if paid { 0 } else { amount },
        "status": if paid { "paid" } else { "open" }, "attempted": true, "attempt_count": 1,
        "parent": parent, "metadata": {}, "period_start": start, "period_end": start, "created": start,
        "lines": {"object": "list", "data": [line], "has_more": false, "url": format!("/v1/invoices/{id}/lines")}}));
    s.objects.insert(id, invoice.clone());
    invoice
}

pub(crate) fn renew(s: &mut State, sub_id: &str) -> Vec<Value> {
    let Some(sub) = s.objects.get(sub_id).cloned() else {
        return Vec::new();
    };
    let item = sub["items"]["data"][0].clone();
    let start = int(&item["current_period_end"]);
    let end = start + period_seconds(&item["price"]);
    let invoice = subscription_invoice(s, sub_id, "subscription_cycle", start, end, true);
    let paid = invoice["status"] == "paid";
    if let Some(sub) = s.objects.get_mut(sub_id) {
        if paid {
            sub["items"]["data"][0]["current_period_start"] = json!(start);
            sub["items"]["data"][0]["current_period_end"] = json!(end);
        } else {
            sub["status"] = json!("past_due");
        }
    }
    let kind = if paid {
        "invoice.paid"
    } else {
        "invoice.payment_failed"
    };
    vec![s.event(kind, invoice)]
}
