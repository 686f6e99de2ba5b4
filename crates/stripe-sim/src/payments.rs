//! Card payments: what a customer's card does off-session (succeeds,
//! declines, asks for authentication), the PaymentIntent and Charge a
//! successful payment leaves, and refunds of them
//! (docs.stripe.com/api/refunds/create).

use serde_json::{Value, json};

use crate::api::{Reply, invalid, no_such};
use crate::form::opt_int;
use crate::state::{State, list, strip};

/// What a customer's saved card does to an off-session payment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Card {
    /// Paid.
    Pays,
    /// Declined (`card_declined`, insufficient funds).
    Declines,
    /// Needs the customer to authenticate (3D Secure): `authentication_required`.
    NeedsAction,
}

/// The customer's card, as the stand-in was told (`decline`, `require_action`).
pub(crate) fn card(s: &State, customer: &str) -> Card {
    if s.declining.contains(customer) {
        Card::Declines
    } else if s.requiring_action.contains(customer) {
        Card::NeedsAction
    } else {
        Card::Pays
    }
}

/// Stripe's 402 for a card that did not pay.
pub(crate) fn card_error(card: Card) -> Reply {
    match card {
        Card::NeedsAction => (
            402,
            json!({"error": {"type": "card_error", "code": "authentication_required", "decline_code": "authentication_required",
                "message": "This payment requires authentication."}}),
        ),
        _ => (
            402,
            json!({"error": {"type": "card_error", "code": "card_declined", "decline_code": "insufficient_funds",
                "message": "Your card has insufficient funds."}}),
        ),
    }
}

/// A successful card payment of `amount` (minor units) in `currency`: a
/// `succeeded` PaymentIntent (with `metadata`) and its Charge. Returns the
/// PaymentIntent's id.
pub(crate) fn succeed(
    s: &mut State,
    customer: &Value,
    amount: i64,
    currency: &str,
    metadata: &Value,
    description: &Value,
) -> String {
    let now = s.now();
    let pi = s.id("pi");
    let ch = s.id("ch");
    let metadata = metadata.as_object().cloned().unwrap_or_default();
    let charge = s.object(
        "charge",
        json!({"id": ch, "object": "charge", "amount": amount, "amount_captured": amount, "amount_refunded": 0,
            "captured": true, "paid": true, "refunded": false, "status": "succeeded", "currency": currency,
            "customer": customer, "payment_intent": pi, "metadata": metadata, "description": description,
            "created": now, "balance_transaction": null, "failure_code": null, "failure_message": null,
            "failure_balance_transaction": null, "receipt_url": null, "receipt_email": null, "disputed": false,
            "source": null, "billing_details": {"address": {"city": null, "country": null, "line1": null, "line2": null,
                "postal_code": null, "state": null}, "email": null, "name": null, "phone": null, "tax_id": null},
            "outcome": {"advice_code": null, "network_advice_code": null, "network_decline_code": null,
                "network_status": "approved_by_network", "reason": null, "risk_level": "normal",
                "seller_message": "Payment complete.", "type": "authorized"},
            "refunds": {"object": "list", "data": [], "has_more": false, "url": format!("/v1/charges/{ch}/refunds")}}),
    );
    let intent = s.object(
        "payment_intent",
        json!({"id": pi, "object": "payment_intent", "amount": amount, "amount_received": amount, "amount_capturable": 0,
            "currency": currency, "customer": customer, "metadata": metadata, "description": description,
            "status": "succeeded", "latest_charge": ch, "created": now, "canceled_at": null, "cancellation_reason": null,
            "last_payment_error": null, "next_action": null, "processing": null, "client_secret": format!("{pi}_secret_sim"),
            "payment_method": null, "payment_method_configuration_details": null, "shipping": null,
            "transfer_data": null, "review": null, "setup_future_usage": null, "automatic_payment_methods": null}),
    );
    s.objects.insert(ch, charge);
    s.objects.insert(pi.clone(), intent);
    pi
}

/// `GET /v1/payment_intents/{id}`; `expand[]=latest_charge` puts the
/// Charge (with `amount_refunded`) in place of its id.
pub(crate) fn get_intent(s: &State, id: &str, p: &Value) -> Reply {
    let Some(mut pi) = s
        .objects
        .get(id)
        .filter(|o| o["object"] == "payment_intent")
        .cloned()
    else {
        return no_such("payment_intent", id);
    };
    let expand = match &p["expand"] {
        Value::Array(a) => a.iter().any(|e| e == "latest_charge"),
        e => e == "latest_charge",
    };
    if expand && let Some(ch) = pi["latest_charge"].as_str().and_then(|c| s.objects.get(c)) {
        pi["latest_charge"] = strip(ch);
    }
    (200, pi)
}

/// `POST /v1/refunds`: `payment_intent` or `charge`, `amount` (default:
/// what is not refunded yet), `reason`, `metadata`. A refund succeeds at
/// once; the Charge's `amount_refunded` grows (`refunded` once it is all
/// refunded). Refunding a fully refunded charge is `charge_already_refunded`,
/// more than is left `amount_too_large`. Emits `refund.created` and
/// `charge.refunded`.
pub(crate) fn refund(s: &mut State, p: &Value, events: &mut Vec<Value>) -> Reply {
    let charge_id = if let Some(pi) = p["payment_intent"].as_str() {
        match s
            .objects
            .get(pi)
            .filter(|o| o["object"] == "payment_intent")
        {
            Some(o) => o["latest_charge"].as_str().unwrap_or_default().to_owned(),
            None => {
                return invalid(
                    "payment_intent",
                    "resource_missing",
                    &format!("No such payment_intent: '{pi}'"),
                );
            }
        }
    } else if let Some(ch) = p["charge"].as_str() {
        ch.to_owned()
    } else {
        return invalid(
            "payment_intent",
            "parameter_missing",
            "One of the following params should be provided for this request: payment_intent or charge.",
        );
    };
    let Some(mut charge) = s
        .objects
        .get(&charge_id)
        .filter(|o| o["object"] == "charge")
        .cloned()
    else {
        return invalid(
            "charge",
            "resource_missing",
            &format!("No such charge: '{charge_id}'"),
        );
    };
    let paid = charge["amount"].as_i64().unwrap_or(0);
    let refunded = charge["amount_refunded"].as_i64().unwrap_or(0);
    let left = paid - refunded;
    if left <= 0 {
        return invalid(
            "charge",
            "charge_already_refunded",
            &format!("Charge {charge_id} has already been refunded."),
        );
    }
    let amount = match opt_int(&p["amount"]) {
        None if p["amount"].is_null() => left,
        Some(a) if a > 0 => a,
        _ => {
            return invalid(
                "amount",
                "parameter_invalid_integer",
                "Invalid positive integer: amount.",
            );
        }
    };
    if amount > left {
        return invalid(
            "amount",
            "amount_too_large",
            &format!(
                "Refund amount ({amount}) is greater than unrefunded amount on charge ({left})."
            ),
        );
    }
    let reason = p["reason"].as_str();
    if let Some(r) = reason
        && !["duplicate", "fraudulent", "requested_by_customer"].contains(&r)
    {
        return invalid(
            "reason",
            "",
            &format!(
                "Invalid reason: must be one of duplicate, fraudulent, or requested_by_customer (got {r:?})."
            ),
        );
    }
    let now = s.now();
    let id = s.id("re");
    let o = s.object(
        "refund",
        json!({"id": id, "object": "refund", "amount": amount, "currency": charge["currency"], "charge": charge_id,
            "payment_intent": charge["payment_intent"], "customer": charge["customer"], "status": "succeeded",
            "reason": reason, "metadata": p["metadata"].as_object().cloned().unwrap_or_default(), "created": now,
            "balance_transaction": null, "receipt_number": null, "source_transfer_reversal": null,
            "transfer_reversal": null, "payment_method": null}),
    );
    charge["amount_refunded"] = json!(refunded + amount);
    charge["refunded"] = json!(refunded + amount == paid);
    if let Some(data) = charge["refunds"]["data"].as_array_mut() {
        data.insert(0, o.clone());
    }
    s.objects.insert(id, o.clone());
    s.objects.insert(charge_id, charge.clone());
    events.push(s.event("refund.created", o.clone()));
    events.push(s.event("charge.refunded", charge));
    (200, o)
}

/// `GET /v1/refunds` (`payment_intent`, `charge`), newest first.
pub(crate) fn list_refunds(s: &State, p: &Value) -> Reply {
    let items: Vec<Value> = s
        .objects
        .values()
        .filter(|o| o["object"] == "refund")
        .filter(|o| p["payment_intent"].is_null() || o["payment_intent"] == p["payment_intent"])
        .filter(|o| p["charge"].is_null() || o["charge"] == p["charge"])
        .cloned()
        .collect();
    (200, list("/v1/refunds", items, p))
}
