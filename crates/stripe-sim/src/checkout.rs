//! Checkout Sessions (docs.stripe.com/api/checkout/sessions): created
//! `open` with their line items' total and currency, completed by the
//! customer (a subscription starts, its first invoice paid; or a payment
//! is made), expired at `expires_at` (default 24 h) or on request.

use serde_json::{Value, json};

use crate::api::{Reply, invalid, no_such};
use crate::currency::supported;
use crate::form::{int, opt_int};
use crate::payments::succeed;
use crate::state::State;
use crate::subscriptions::{bill, start};

/// A session lives 24 hours unless told otherwise, 30 minutes at least.
const DEFAULT_LIFETIME: i64 = 86_400;
const MIN_LIFETIME: i64 = 1_800;

/// `POST /v1/checkout/sessions`: `mode`, `customer`, `line_items` (`price`
/// or `price_data` with a supported `currency`), `metadata`,
/// `client_reference_id`, `success_url`, `cancel_url`, `expires_at`,
/// `subscription_data`, `payment_intent_data`.
pub(crate) fn create(s: &mut State, p: &Value) -> Reply {
    let now = s.now();
    let mut total = 0;
    let mut currency = None;
    for (i, l) in p["line_items"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .enumerate()
    {
        let (unit, cur) = match l["price"].as_str() {
            Some(pid) => match s.objects.get(pid).filter(|o| o["object"] == "price") {
                Some(price) => (
                    int(&price["unit_amount"]),
                    price["currency"].as_str().unwrap_or("usd").to_owned(),
                ),
                None => {
                    return invalid(
                        &format!("line_items[{i}][price]"),
                        "resource_missing",
                        &format!("No such price: '{pid}'"),
                    );
                }
            },
            None => match supported(
                &l["price_data"]["currency"],
                &format!("line_items[{i}][price_data][currency]"),
            ) {
                Ok(c) => (int(&l["price_data"]["unit_amount"]), c),
                Err(e) => return e,
            },
        };
        total += unit * int(&l["quantity"]).max(1);
        currency.get_or_insert(cur);
    }
    let expires_at = match opt_int(&p["expires_at"]) {
        None => now + DEFAULT_LIFETIME,
        Some(t) if (now + MIN_LIFETIME..=now + DEFAULT_LIFETIME).contains(&t) => t,
        Some(_) => {
            return invalid(
                "expires_at",
                "parameter_invalid_integer",
                "The `expires_at` timestamp must be between 30 minutes and 24 hours from Checkout Session creation.",
            );
        }
    };
    let id = s.id("cs_test");
    let url = format!("{}/pay/{id}", s.base_url);
    let mode = p["mode"].as_str().unwrap_or("payment").to_owned();
    let o = s.object(
        "checkout.session",
        json!({"id": id, "url": url, "mode": mode, "status": "open", "payment_status": "unpaid",
            "customer": p["customer"], "client_reference_id": p["client_reference_id"],
            "metadata": p["metadata"].as_object().cloned().unwrap_or_default(),
            "success_url": p["success_url"], "cancel_url": p["cancel_url"], "amount_total": total, "amount_subtotal": total,
            "currency": currency.unwrap_or_else(|| "usd".to_owned()),
            "subscription": null, "invoice": null, "payment_intent": null, "created": now, "expires_at": expires_at,
            "_sim": {"line_items": p["line_items"], "subscription_data": p["subscription_data"], "payment_intent_data": p["payment_intent_data"]}}),
    );
    s.objects.insert(id, o.clone());
    (200, o)
}

/// An open session expires: `expired`, `checkout.session.expired`.
pub(crate) fn expire(s: &mut State, id: &str) -> Vec<Value> {
    let Some(session) = s.objects.get_mut(id).filter(|o| o["status"] == "open") else {
        return Vec::new();
    };
    session["status"] = json!("expired");
    let session = session.clone();
    vec![s.event("checkout.session.expired", session)]
}

/// `POST /v1/checkout/sessions/{id}/expire`: only an open session.
pub(crate) fn expire_request(s: &mut State, id: &str, events: &mut Vec<Value>) -> Reply {
    let Some(session) = s
        .objects
        .get(id)
        .filter(|o| o["object"] == "checkout.session")
    else {
        return no_such("checkout.session", id);
    };
    if session["status"] != "open" {
        return invalid(
            "session",
            "",
            "Only Checkout Sessions with a status in [\"open\"] can be expired.",
        );
    }
    events.extend(expire(s, id));
    (200, s.objects.get(id).cloned().unwrap_or_default())
}

/// The customer pays an open session (an expired or completed one is left
/// as it is): `complete`, `paid`. In `subscription` mode a subscription
/// starts now (`billing_cycle_anchor`) with its first invoice
/// (`subscription_create`) paid on the page; in `payment` mode a
/// PaymentIntent of the session's total, with `payment_intent_data.metadata`.
/// Emits `checkout.session.completed` (then `invoice.paid`).
pub(crate) fn complete(s: &mut State, session_id: &str) -> Vec<Value> {
    let Some(session) = s.objects.get(session_id).cloned() else {
        return Vec::new();
    };
    if session["status"] != "open" {
        return Vec::new();
    }
    let now = s.now();
    let customer = session["customer"].as_str().unwrap_or_default().to_owned();
    let internal = session["_sim"].clone();
    let mut completed = session.clone();
    completed["status"] = json!("complete");
    completed["payment_status"] = json!("paid");
    if session["mode"] == "subscription" {
        let price_id = internal["line_items"][0]["price"]
            .as_str()
            .unwrap_or_default();
        let price = s
            .objects
            .get(price_id)
            .cloned()
            .unwrap_or_else(|| json!({}));
        let sub_id = start(
            s,
            &customer,
            &price,
            &internal["subscription_data"]["metadata"],
            now,
        );
        let end = s
            .objects
            .get(&sub_id)
            .and_then(|sub| sub["items"]["data"][0]["current_period_end"].as_i64())
            .unwrap_or(now);
        completed["subscription"] = json!(sub_id);
        let (invoice, kind) = bill(s, &sub_id, "subscription_create", now, end, false);
        completed["invoice"] = invoice["id"].clone();
        s.objects.insert(session_id.to_owned(), completed.clone());
        vec![
            s.event("checkout.session.completed", completed),
            s.event(kind, invoice),
        ]
    } else {
        let currency = session["currency"].as_str().unwrap_or("usd").to_owned();
        let pi = succeed(
            s,
            &session["customer"],
            int(&session["amount_total"]),
            &currency,
            &internal["payment_intent_data"]["metadata"],
            &internal["payment_intent_data"]["description"],
        );
        completed["payment_intent"] = json!(pi);
        s.objects.insert(session_id.to_owned(), completed.clone());
        vec![s.event("checkout.session.completed", completed)]
    }
}
