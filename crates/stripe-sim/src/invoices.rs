//! Invoices: drafts with items, finalization (which applies the customer's
//! balance, and settles an invoice with nothing due at once), payment
//! with the customer's saved card (a PaymentIntent and an
//! `invoice_payment` for each card payment), and the list
//! (docs.stripe.com/invoicing/overview, docs.stripe.com/api/invoices).

use serde_json::{Value, json};

use crate::api::{Reply, error, invalid, no_such};
use crate::currency::supported;
use crate::customers::apply_balance;
use crate::form::{int, opt_int};
use crate::payments::{Card, card, card_error, succeed};
use crate::state::{State, list};

/// A new draft invoice (not stored): no lines, nothing due.
pub(crate) fn draft(
    s: &mut State,
    customer: &str,
    currency: &str,
    reason: &str,
    metadata: Value,
    description: Value,
) -> Value {
    let now = s.now();
    let id = s.id("in");
    let cus = s.objects.get(customer).cloned().unwrap_or_default();
    s.object(
        "invoice",
        json!({"id": id, "object": "invoice", "customer": customer, "customer_email": cus["email"], "customer_name": cus["name"],
            "currency": currency, "status": "draft", "description": description,
            "metadata": metadata.as_object().cloned().unwrap_or_default(), "billing_reason": reason, "subscription": null,
            "parent": null, "total": 0, "subtotal": 0, "subtotal_excluding_tax": 0, "total_excluding_tax": 0,
            "amount_due": 0, "amount_paid": 0, "amount_remaining": 0, "amount_overpaid": 0, "amount_shipping": 0,
            "starting_balance": 0, "ending_balance": null, "attempted": false, "attempt_count": 0, "auto_advance": false,
            "created": now, "effective_at": null, "period_start": now, "period_end": now, "due_date": null,
            "next_payment_attempt": null, "webhooks_delivered_at": null, "automatically_finalizes_at": null,
            "from_invoice": null, "last_finalization_error": null, "latest_revision": null, "number": null,
            "hosted_invoice_url": null, "invoice_pdf": null, "shipping_cost": null, "shipping_details": null,
            "customer_shipping": null,
            "status_transitions": {"finalized_at": null, "marked_uncollectible_at": null, "paid_at": null, "voided_at": null},
            "payments": {"object": "list", "data": [], "has_more": false, "url": "/v1/invoice_payments"},
            "lines": {"object": "list", "data": [], "has_more": false, "url": format!("/v1/invoices/{id}/lines")}}),
    )
}

/// Finalizes a draft: `total` is the sum of its lines, the customer's
/// balance is applied (`starting_balance`, `ending_balance`, `amount_due`),
/// it becomes `open` — or `paid` at once, without a payment, when nothing
/// is due (Stripe settles zero-amount invoices at finalization). Returns
/// whether it is paid.
pub(crate) fn finalize(s: &mut State, inv: &mut Value) -> bool {
    let now = s.now();
    let total: i64 = inv["lines"]["data"]
        .as_array()
        .map(|l| l.iter().map(|l| int(&l["amount"])).sum())
        .unwrap_or(0);
    let customer = inv["customer"].as_str().unwrap_or_default().to_owned();
    let currency = inv["currency"].as_str().unwrap_or("usd").to_owned();
    let id = inv["id"].as_str().unwrap_or_default().to_owned();
    let (starting, ending, due) = apply_balance(s, &customer, &currency, total, &id);
    for k in [
        "total",
        "subtotal",
        "subtotal_excluding_tax",
        "total_excluding_tax",
    ] {
        inv[k] = json!(total);
    }
    inv["starting_balance"] = json!(starting);
    inv["ending_balance"] = json!(ending);
    inv["amount_due"] = json!(due);
    inv["amount_remaining"] = json!(due);
    inv["status"] = json!("open");
    inv["effective_at"] = json!(now);
    inv["number"] = json!(format!("SIM-{:06}", crate::state::seq(&id)));
    inv["status_transitions"]["finalized_at"] = json!(now);
    if due == 0 {
        paid(s, inv, 0);
        return true;
    }
    false
}

fn paid(s: &State, inv: &mut Value, amount: i64) {
    inv["status"] = json!("paid");
    inv["amount_paid"] = json!(amount);
    inv["amount_remaining"] = json!(0);
    inv["status_transitions"]["paid_at"] = json!(s.now());
}

/// Collects an open invoice: nothing due → `paid` without touching the
/// card; else the customer's card is charged (`off_session`: as the
/// stand-in was told the card behaves; on-session, at a checkout page, it
/// pays), a PaymentIntent and an `invoice_payment` recorded. Returns what
/// the card did.
pub(crate) fn collect(s: &mut State, inv: &mut Value, off_session: bool) -> Card {
    if inv["status"] == "paid" {
        return Card::Pays;
    }
    let due = int(&inv["amount_remaining"]);
    if due <= 0 {
        paid(s, inv, int(&inv["amount_paid"]));
        return Card::Pays;
    }
    inv["attempted"] = json!(true);
    inv["attempt_count"] = json!(int(&inv["attempt_count"]) + 1);
    let customer = inv["customer"].as_str().unwrap_or_default().to_owned();
    let outcome = if off_session {
        card(s, &customer)
    } else {
        Card::Pays
    };
    if outcome != Card::Pays {
        return outcome;
    }
    let currency = inv["currency"].as_str().unwrap_or("usd").to_owned();
    let pi = succeed(
        s,
        &inv["customer"],
        due,
        &currency,
        &inv["metadata"],
        &inv["description"],
    );
    let now = s.now();
    let id = s.id("inpay");
    let payment = s.object(
        "invoice_payment",
        json!({"id": id, "object": "invoice_payment", "amount_paid": due, "amount_requested": due, "currency": currency,
            "invoice": inv["id"], "is_default": true, "livemode": false, "status": "paid", "created": now,
            "payment": {"type": "payment_intent", "payment_intent": pi},
            "status_transitions": {"canceled_at": null, "paid_at": now}}),
    );
    s.objects.insert(id, payment.clone());
    if let Some(data) = inv["payments"]["data"].as_array_mut() {
        data.push(payment);
    }
    paid(s, inv, due);
    Card::Pays
}

/// The event an attempt to collect an invoice ends with.
pub(crate) fn outcome_event(card: Card) -> &'static str {
    match card {
        Card::Pays => "invoice.paid",
        Card::Declines => "invoice.payment_failed",
        Card::NeedsAction => "invoice.payment_action_required",
    }
}

/// `POST /v1/invoices`: `customer`, `currency` (default the customer's, else
/// `usd`), `description`, `metadata`; a draft.
pub(crate) fn create(s: &mut State, p: &Value) -> Reply {
    let customer = p["customer"].as_str().unwrap_or_default().to_owned();
    let Some(cus) = s
        .objects
        .get(&customer)
        .filter(|o| o["object"] == "customer")
        .cloned()
    else {
        return invalid(
            "customer",
            "resource_missing",
            &format!("No such customer: '{customer}'"),
        );
    };
    let currency = if p["currency"].is_null() {
        cus["currency"].as_str().unwrap_or("usd").to_owned()
    } else {
        match supported(&p["currency"], "currency") {
            Ok(c) => c,
            Err(e) => return e,
        }
    };
    let mut inv = draft(
        s,
        &customer,
        &currency,
        "manual",
        p["metadata"].clone(),
        p["description"].clone(),
    );
    inv["auto_advance"] = json!(p["auto_advance"] == "true");
    s.objects.insert(
        inv["id"].as_str().unwrap_or_default().to_owned(),
        inv.clone(),
    );
    (200, inv)
}

/// `POST /v1/invoiceitems` with `invoice` (a draft), `amount`, `currency`,
/// `description`, `metadata`: an item and its line on the invoice.
pub(crate) fn add_item(s: &mut State, p: &Value) -> Reply {
    let inv_id = p["invoice"].as_str().unwrap_or_default().to_owned();
    let Some(mut inv) = s
        .objects
        .get(&inv_id)
        .filter(|o| o["object"] == "invoice")
        .cloned()
    else {
        return invalid(
            "invoice",
            "resource_missing",
            &format!("No such invoice: '{inv_id}'"),
        );
    };
    let currency = if p["currency"].is_null() {
        inv["currency"].as_str().unwrap_or("usd").to_owned()
    } else {
        match supported(&p["currency"], "currency") {
            Ok(c) => c,
            Err(e) => return e,
        }
    };
    if inv["currency"] != currency.as_str() {
        return invalid(
            "currency",
            "",
            &format!(
                "The invoice is in {}: an item in {currency} cannot be added to it.",
                inv["currency"].as_str().unwrap_or_default()
            ),
        );
    }
    if inv["status"] != "draft" {
        return invalid(
            "invoice",
            "invoice_not_editable",
            &format!("Invoice {inv_id} is not a draft: items can only be added to draft invoices."),
        );
    }
    let Some(amount) = opt_int(&p["amount"]) else {
        return invalid(
            "amount",
            "parameter_missing",
            "Missing required param: amount.",
        );
    };
    let now = s.now();
    let id = s.id("ii");
    let o = s.object(
        "invoiceitem",
        json!({"id": id, "invoice": inv_id, "customer": p["customer"], "amount": amount, "currency": currency,
            "description": p["description"], "metadata": p["metadata"].as_object().cloned().unwrap_or_default(),
            "date": now, "period": {"start": now, "end": now}}),
    );
    let line_id = s.id("il");
    let line = s.object(
        "line_item",
        json!({"id": line_id, "invoice": inv_id, "amount": amount, "subtotal": amount, "currency": currency,
            "description": p["description"], "period": {"start": now, "end": now}, "subscription": null, "quantity": 1,
            "metadata": p["metadata"].as_object().cloned().unwrap_or_default(),
            "pricing": {"type": "price_details", "price_details": null, "unit_amount_decimal": amount.to_string()},
            "parent": {"type": "invoice_item_details", "subscription_item_details": null,
                "invoice_item_details": {"invoice_item": id, "proration": false, "proration_details": {"credited_items": null}, "subscription": null}}}),
    );
    if let Some(lines) = inv["lines"]["data"].as_array_mut() {
        lines.push(line);
    }
    // A draft shows its lines' total as due; the balance comes at finalization.
    let total = int(&inv["total"]) + amount;
    for k in [
        "total",
        "subtotal",
        "subtotal_excluding_tax",
        "total_excluding_tax",
        "amount_due",
        "amount_remaining",
    ] {
        inv[k] = json!(total);
    }
    s.objects.insert(inv_id, inv);
    s.objects.insert(id, o.clone());
    (200, o)
}

/// `POST /v1/invoices/{id}/finalize`: a draft becomes `open` (or `paid`,
/// with `invoice.paid`, when the balance leaves nothing due).
pub(crate) fn finalize_request(s: &mut State, id: &str, events: &mut Vec<Value>) -> Reply {
    let Some(mut inv) = s
        .objects
        .get(id)
        .filter(|o| o["object"] == "invoice")
        .cloned()
    else {
        return no_such("invoice", id);
    };
    if inv["status"] != "draft" {
        return error(
            400,
            "invalid_request_error",
            "invoice_not_editable",
            "This invoice is already finalized, you can't re-finalize a non-draft invoice.",
        );
    }
    let settled = finalize(s, &mut inv);
    s.objects.insert(id.to_owned(), inv.clone());
    if settled {
        events.push(s.event("invoice.paid", inv.clone()));
    }
    (200, inv)
}

/// `POST /v1/invoices/{id}/void`: an open (or uncollectible) invoice is
/// `void`, nothing more is collected, and the balance it used goes back to
/// the customer; `invoice.voided` (docs.stripe.com/api/invoices/void). A
/// draft, paid or void invoice cannot be voided.
pub(crate) fn void_request(s: &mut State, id: &str, events: &mut Vec<Value>) -> Reply {
    let Some(mut inv) = s
        .objects
        .get(id)
        .filter(|o| o["object"] == "invoice")
        .cloned()
    else {
        return no_such("invoice", id);
    };
    if inv["status"] != "open" && inv["status"] != "uncollectible" {
        return error(
            400,
            "invalid_request_error",
            "invoice_not_editable",
            &format!(
                "You can only pass in open or uncollectible invoices to void, this invoice is {}.",
                inv["status"].as_str().unwrap_or("")
            ),
        );
    }
    inv["status"] = json!("void");
    inv["amount_remaining"] = json!(0);
    inv["status_transitions"]["voided_at"] = json!(s.now());
    let customer = inv["customer"].as_str().unwrap_or_default().to_owned();
    crate::customers::return_balance(s, &customer, &inv);
    s.objects.insert(id.to_owned(), inv.clone());
    events.push(s.event("invoice.voided", inv.clone()));
    (200, inv)
}

/// `POST /v1/invoices/{id}/pay`: the saved card pays it (a draft is
/// finalized first); a declined card is 402 `card_declined` with
/// `invoice.payment_failed`, a card needing authentication 402
/// `authentication_required` with `invoice.payment_action_required` — the
/// invoice stays `open`. A paid invoice is refused: "Invoice is already paid".
pub(crate) fn pay_request(s: &mut State, id: &str, events: &mut Vec<Value>) -> Reply {
    let Some(mut inv) = s
        .objects
        .get(id)
        .filter(|o| o["object"] == "invoice")
        .cloned()
    else {
        return no_such("invoice", id);
    };
    if inv["status"] == "paid" {
        return (
            400,
            json!({"error": {"type": "invalid_request_error", "message": "Invoice is already paid"}}),
        );
    }
    if inv["status"] == "draft" && finalize(s, &mut inv) {
        s.objects.insert(id.to_owned(), inv.clone());
        events.push(s.event("invoice.paid", inv.clone()));
        return (200, inv);
    }
    let outcome = collect(s, &mut inv, true);
    s.objects.insert(id.to_owned(), inv.clone());
    if outcome == Card::Pays {
        crate::subscriptions::invoice_paid(s, &inv);
    }
    events.push(s.event(outcome_event(outcome), inv.clone()));
    match outcome {
        Card::Pays => (200, inv),
        other => card_error(other),
    }
}

/// The subscription an invoice bills, if any.
pub(crate) fn subscription_of(inv: &Value) -> Option<&str> {
    inv["parent"]["subscription_details"]["subscription"]
        .as_str()
        .or_else(|| inv["subscription"].as_str())
}

/// `GET /v1/invoices` (`customer`, `subscription`, `status`, `limit`,
/// `starting_after`), newest first.
pub(crate) fn list_request(s: &State, p: &Value) -> Reply {
    let items: Vec<Value> = s
        .objects
        .values()
        .filter(|o| o["object"] == "invoice")
        .filter(|o| p["customer"].is_null() || o["customer"] == p["customer"])
        .filter(|o| p["status"].is_null() || o["status"] == p["status"])
        .filter(|o| p["subscription"].is_null() || subscription_of(o) == p["subscription"].as_str())
        .cloned()
        .collect();
    (200, list("/v1/invoices", items, p))
}
