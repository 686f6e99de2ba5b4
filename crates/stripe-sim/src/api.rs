//! The `/v1` API: each request logged, failed on demand, replayed by its
//! `Idempotency-Key`, else handled — customers, products, prices, checkout
//! sessions, subscriptions, invoices and invoice items, events — with
//! Stripe's error shape.

use actix_web::{HttpRequest, HttpResponse, web};
use serde_json::{Value, json};

use crate::StripeSim;
use crate::form::{int, parse_form};
use crate::state::{Logged, State};
use crate::subscriptions::strip;

fn error(status: u16, kind: &str, code: &str, message: &str) -> (u16, Value) {
    (
        status,
        json!({"error": {"type": kind, "code": code, "message": message}}),
    )
}

/// Every `/v1` API request: logged, failed on demand, replayed by key, else handled.
pub(crate) async fn api(
    sim: web::Data<StripeSim>,
    req: HttpRequest,
    body: web::Bytes,
) -> HttpResponse {
    let method = req.method().as_str().to_owned();
    let path = req.path().to_owned();
    let params = if method == "GET" {
        parse_form(req.query_string())
    } else {
        parse_form(std::str::from_utf8(&body).unwrap_or(""))
    };
    let key = req
        .headers()
        .get("idempotency-key")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let (status, value, events) = sim.with(|s| {
        // Keys count on POST only (docs.stripe.com/api/idempotent_requests).
        let key = key.filter(|_| method == "POST");
        let replay = key.as_ref().and_then(|k| s.idempotency.get(k).cloned());
        s.log.push(Logged {
            method: method.clone(),
            path: path.clone(),
            idempotency_key: key.clone(),
            params: params.clone(),
            replayed: replay.is_some(),
        });
        if !s.fail_next.is_empty() {
            let status = s.fail_next.remove(0);
            let (st, v) = error(
                status,
                "api_error",
                "sim_failure",
                "the stand-in was told to fail this request",
            );
            return (st, v, Vec::new());
        }
        if let Some((st, v)) = replay {
            return (st, v, Vec::new());
        }
        let mut events = Vec::new();
        let (st, v) = handle(s, &method, &path, &params, &mut events);
        // Stripe caches the first answer of a key, errors included (not 5xx).
        if let Some(k) = &key {
            s.idempotency.insert(k.clone(), (st, v.clone()));
        }
        (st, strip(&v), events)
    });
    if !events.is_empty() {
        sim.deliver(&events).await;
    }
    HttpResponse::build(
        actix_web::http::StatusCode::from_u16(status)
            .unwrap_or(actix_web::http::StatusCode::INTERNAL_SERVER_ERROR),
    )
    .json(value)
}

fn handle(
    s: &mut State,
    method: &str,
    path: &str,
    p: &Value,
    events: &mut Vec<Value>,
) -> (u16, Value) {
    let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
    let now = s.now();
    match (method, parts.as_slice()) {
        ("POST", ["v1", "customers"]) => {
            let id = s.id("cus");
            let o = s.object("customer", json!({"id": id, "email": p["email"], "name": p["name"], "metadata": p["metadata"].clone(), "created": now, "discount": null}));
            s.objects.insert(id, o.clone());
            (200, o)
        }
        ("POST", ["v1", "products"]) => {
            let id = s.id("prod");
            let o = s.object("product", json!({"id": id, "name": p["name"], "metadata": p["metadata"].clone(), "active": true, "created": now, "default_price": null}));
            s.objects.insert(id, o.clone());
            (200, o)
        }
        ("POST", ["v1", "products", id]) | ("POST", ["v1", "prices", id]) => {
            match s.objects.get_mut(*id) {
                Some(o) => {
                    if let Some(n) = p.get("name") {
                        o["name"] = n.clone();
                    }
                    if let Some(a) = p.get("active") {
                        o["active"] = json!(a == "true");
                    }
                    (200, o.clone())
                }
                None => error(
                    404,
                    "invalid_request_error",
                    "resource_missing",
                    &format!("No such object: '{id}'"),
                ),
            }
        }
        ("POST", ["v1", "prices"]) => {
            let id = s.id("price");
            let recurring = if p["recurring"].is_object() {
                json!({"interval": p["recurring"]["interval"], "interval_count": 1, "meter": null, "usage_type": "licensed", "trial_period_days": null})
            } else {
                Value::Null
            };
            let amount = int(&p["unit_amount"]);
            let o = s.object("price", json!({"id": id, "product": p["product"], "currency": p["currency"], "unit_amount": amount,
                "unit_amount_decimal": amount.to_string(), "recurring": recurring, "active": true, "nickname": p["nickname"],
                "type": if recurring.is_null() { "one_time" } else { "recurring" }, "metadata": p["metadata"].clone(), "created": now}));
            s.objects.insert(id, o.clone());
            (200, o)
        }
        ("POST", ["v1", "checkout", "sessions"]) => {
            let id = s.id("cs_test");
            let url = format!("{}/pay/{id}", s.base_url);
            let mode = p["mode"].as_str().unwrap_or("payment").to_owned();
            let mut total = 0;
            for l in p["line_items"].as_array().cloned().unwrap_or_default() {
                let unit = match l["price"].as_str() {
                    Some(pid) => {
                        int(&s.objects.get(pid).cloned().unwrap_or_default()["unit_amount"])
                    }
                    None => int(&l["price_data"]["unit_amount"]),
                };
                total += unit * int(&l["quantity"]).max(1);
            }
            let o = s.object("checkout.session", json!({"id": id, "url": url, "mode": mode, "status": "open", "payment_status": "unpaid",
                "customer": p["customer"], "client_reference_id": p["client_reference_id"], "metadata": p["metadata"].clone(),
                "success_url": p["success_url"], "cancel_url": p["cancel_url"], "amount_total": total, "amount_subtotal": total,
                "currency": p["line_items"][0]["price_data"]["currency"].as_str().unwrap_or("usd"),
                "subscription": null, "invoice": null, "payment_intent": null, "created": now, "expires_at": now + 86_400,
                "_sim": {"line_items": p["line_items"], "subscription_data": p["subscription_data"], "payment_intent_data": p["payment_intent_data"]}}));
            s.objects.insert(id, o.clone());
            (200, o)
        }
        ("GET", ["v1", "subscriptions", id]) => match s.objects.get(*id) {
            Some(o) => (200, o.clone()),
            None => error(
                404,
                "invalid_request_error",
                "resource_missing",
                &format!("No such subscription: '{id}'"),
            ),
        },
        ("POST", ["v1", "subscriptions", id]) => {
            let Some(mut sub) = s.objects.get(*id).cloned() else {
                return error(
                    404,
                    "invalid_request_error",
                    "resource_missing",
                    &format!("No such subscription: '{id}'"),
                );
            };
            if p["proration_behavior"] != "none" {
                return error(
                    400,
                    "invalid_request_error",
                    "parameter_missing",
                    "the stand-in only moves prices with proration_behavior=none",
                );
            }
            if let Some(price_id) = p["items"][0]["price"].as_str() {
                let Some(price) = s.objects.get(price_id).cloned() else {
                    return error(
                        400,
                        "invalid_request_error",
                        "resource_missing",
                        &format!("No such price: '{price_id}'"),
                    );
                };
                sub["items"]["data"][0]["price"] = price;
            }
            s.objects.insert((*id).to_owned(), sub.clone());
            events.push(s.event("customer.subscription.updated", sub.clone()));
            (200, sub)
        }
        ("POST", ["v1", "invoices"]) => {
            let id = s.id("in");
            let o = s.object("invoice", json!({"id": id, "customer": p["customer"], "currency": p["currency"], "status": "draft",
                "description": p["description"], "metadata": p["metadata"].clone(), "billing_reason": "manual", "subscription": null,
                "parent": null, "amount_due": 0, "amount_paid": 0, "amount_remaining": 0, "attempted": false, "attempt_count": 0, "created": now,
                "lines": {"object": "list", "data": [], "has_more": false, "url": format!("/v1/invoices/{id}/lines")}}));
            s.objects.insert(id, o.clone());
            (200, o)
        }
        ("POST", ["v1", "invoiceitems"]) => {
            let inv_id = p["invoice"].as_str().unwrap_or_default().to_owned();
            let Some(mut inv) = s.objects.get(&inv_id).cloned() else {
                return error(
                    400,
                    "invalid_request_error",
                    "resource_missing",
                    "No such invoice",
                );
            };
            let id = s.id("ii");
            let amount = int(&p["amount"]);
            let o = s.object("invoiceitem", json!({"id": id, "invoice": inv_id, "customer": p["customer"], "amount": amount,
                "currency": p["currency"], "description": p["description"], "metadata": p["metadata"].clone(), "date": now}));
            let line_id = s.id("il");
            let line = s.object("line_item", json!({"id": line_id, "invoice": inv_id, "amount": amount, "currency": p["currency"],
                "description": p["description"], "period": {"start": now, "end": now}, "subscription": null,
                "parent": {"type": "invoice_item_details", "subscription_item_details": null,
                           "invoice_item_details": {"invoice_item": id, "proration": false, "proration_details": {"credited_items": null}, "subscription": null}}}));
            if let Some(lines) = inv["lines"]["data"].as_array_mut() {
                lines.push(line);
            }
            inv["amount_due"] = json!(int(&inv["amount_due"]) + amount);
            inv["amount_remaining"] = inv["amount_due"].clone();
            s.objects.insert(inv_id, inv);
            s.objects.insert(id, o.clone());
            (200, o)
        }
        ("POST", ["v1", "invoices", id, "finalize"]) => match s.objects.get_mut(*id) {
            Some(inv) => {
                inv["status"] = json!("open");
                (200, inv.clone())
            }
            None => error(
                404,
                "invalid_request_error",
                "resource_missing",
                "No such invoice",
            ),
        },
        ("POST", ["v1", "invoices", id, "pay"]) => {
            let Some(mut inv) = s.objects.get(*id).cloned() else {
                return error(
                    404,
                    "invalid_request_error",
                    "resource_missing",
                    "No such invoice",
                );
            };
            let customer = inv["customer"].as_str().unwrap_or_default().to_owned();
            inv["attempted"] = json!(true);
            inv["attempt_count"] = json!(int(&inv["attempt_count"]) + 1);
            if s.declining.contains(&customer) {
                s.objects.insert((*id).to_owned(), inv.clone());
                events.push(s.event("invoice.payment_failed", inv));
                return (
                    402,
                    json!({"error": {"type": "card_error", "code": "card_declined", "decline_code": "insufficient_funds", "message": "Your card has insufficient funds."}}),
                );
            }
            inv["status"] = json!("paid");
            inv["amount_paid"] = inv["amount_due"].clone();
            inv["amount_remaining"] = json!(0);
            s.objects.insert((*id).to_owned(), inv.clone());
            events.push(s.event("invoice.paid", inv.clone()));
            (200, inv)
        }
        ("GET", ["v1", "events"]) => {
            let since = int(&p["created"]["gte"]);
            let limit = usize::try_from(int(&p["limit"]).clamp(1, 100)).unwrap_or(10);
            let mut newest_first: Vec<&Value> = s
                .events
                .iter()
                .rev()
                .filter(|e| int(&e["created"]) >= since)
                .collect();
            if let Some(after) = p["starting_after"].as_str()
                && let Some(i) = newest_first.iter().position(|e| e["id"] == after)
            {
                newest_first = newest_first.split_off(i + 1);
            }
            let has_more = newest_first.len() > limit;
            let data: Vec<Value> = newest_first.into_iter().take(limit).cloned().collect();
            (
                200,
                json!({"object": "list", "data": data, "has_more": has_more, "url": "/v1/events"}),
            )
        }
        _ => error(
            404,
            "invalid_request_error",
            "unrecognized_request",
            &format!("Unrecognized request URL ({method}: {path})."),
        ),
    }
}
