//! Customers and their balance (docs.stripe.com/billing/customer/balance):
//! balance transactions adjust it (negative = a credit to the customer),
//! and every invoice applies it when it is finalized.

use serde_json::{Value, json};

use crate::api::{Reply, invalid, no_such};
use crate::currency::supported;
use crate::form::opt_int;
use crate::state::{State, list};

/// `POST /v1/customers`.
pub(crate) fn create(s: &mut State, p: &Value) -> Reply {
    let now = s.now();
    let id = s.id("cus");
    let o = s.object(
        "customer",
        json!({"id": id, "email": p["email"], "name": p["name"], "metadata": p["metadata"].as_object().cloned().unwrap_or_default(),
            "created": now, "discount": null, "balance": 0, "currency": null, "delinquent": false, "shipping": null,
            "invoice_prefix": format!("SIM{:05}", crate::state::seq(&id) % 100_000)}),
    );
    s.objects.insert(id, o.clone());
    (200, o)
}

/// `POST /v1/customers/{id}/balance_transactions`: `amount` (minor units;
/// negative credits the customer, positive is owed), `currency`,
/// `description`, `metadata`; answers the `customer_balance_transaction`
/// (`type: adjustment`, `ending_balance`).
pub(crate) fn create_balance_transaction(s: &mut State, customer: &str, p: &Value) -> Reply {
    let Some(cus) = s
        .objects
        .get(customer)
        .filter(|o| o["object"] == "customer")
        .cloned()
    else {
        return no_such("customer", customer);
    };
    let Some(amount) = opt_int(&p["amount"]) else {
        return invalid(
            "amount",
            "parameter_missing",
            "Missing required param: amount.",
        );
    };
    let currency = match supported(&p["currency"], "currency") {
        Ok(c) => c,
        Err(e) => return e,
    };
    if let Some(own) = cus["currency"].as_str()
        && own != currency
    {
        return invalid(
            "currency",
            "",
            &format!(
                "The customer's balance is in {own}: a balance transaction in {currency} cannot be added to it."
            ),
        );
    }
    let ending = cus["balance"].as_i64().unwrap_or(0) + amount;
    let o = transaction(
        s,
        customer,
        amount,
        &currency,
        ending,
        "adjustment",
        Value::Null,
        p,
    );
    if let Some(c) = s.objects.get_mut(customer) {
        c["balance"] = json!(ending);
        c["currency"] = json!(currency);
    }
    (200, o)
}

/// `GET /v1/customers/{id}/balance_transactions`, newest first.
pub(crate) fn balance_transactions(s: &State, customer: &str, p: &Value) -> Reply {
    if !s.objects.contains_key(customer) {
        return no_such("customer", customer);
    }
    let items: Vec<Value> = s
        .objects
        .values()
        .filter(|o| o["object"] == "customer_balance_transaction" && o["customer"] == customer)
        .cloned()
        .collect();
    (
        200,
        list(
            &format!("/v1/customers/{customer}/balance_transactions"),
            items,
            p,
        ),
    )
}

#[expect(clippy::too_many_arguments, reason = "the fields of one transaction")]
fn transaction(
    s: &mut State,
    customer: &str,
    amount: i64,
    currency: &str,
    ending: i64,
    kind: &str,
    invoice: Value,
    p: &Value,
) -> Value {
    let id = s.id("cbtxn");
    let now = s.now();
    let o = s.object(
        "customer_balance_transaction",
        json!({"id": id, "object": "customer_balance_transaction", "amount": amount, "currency": currency,
            "customer": customer, "ending_balance": ending, "type": kind, "invoice": invoice,
            "description": p["description"], "metadata": p["metadata"].as_object().cloned().unwrap_or_default(),
            "created": now, "credit_note": null, "checkout_session": null, "livemode": false}),
    );
    s.objects.insert(id, o.clone());
    o
}

/// What finalizing an invoice of `total` in `currency` does to the
/// customer's balance: (`starting_balance`, `ending_balance`, `amount_due`).
/// A credit (negative balance) lowers the amount due, to 0 at most, and
/// what is left of it stays; a positive balance is added to the amount due.
/// The balance is updated and an `applied_to_invoice` transaction recorded.
/// A balance in another currency is not touched.
/// A voided invoice gives back the balance it used (`starting_balance` −
/// `ending_balance`, a credit): the customer's balance moves back by that
/// much, with an `invoice_voided`-style transaction
/// (docs.stripe.com/invoicing/overview#void: "any credit balance applied
/// to the invoice is returned to the customer").
pub(crate) fn return_balance(s: &mut State, customer: &str, invoice: &Value) {
    let used = invoice["ending_balance"].as_i64().unwrap_or(0)
        - invoice["starting_balance"].as_i64().unwrap_or(0);
    if used <= 0 {
        return;
    }
    let Some(cus) = s.objects.get(customer).cloned() else {
        return;
    };
    let ending = cus["balance"].as_i64().unwrap_or(0) - used;
    if let Some(c) = s.objects.get_mut(customer) {
        c["balance"] = json!(ending);
    }
    let currency = invoice["currency"].as_str().unwrap_or("usd").to_owned();
    transaction(
        s,
        customer,
        -used,
        &currency,
        ending,
        "invoice_voided",
        invoice["id"].clone(),
        &Value::Null,
    );
}

pub(crate) fn apply_balance(
    s: &mut State,
    customer: &str,
    currency: &str,
    total: i64,
    invoice: &str,
) -> (i64, i64, i64) {
    let Some(cus) = s.objects.get(customer).cloned() else {
        return (0, 0, total.max(0));
    };
    if cus["currency"].as_str().is_some_and(|c| c != currency) {
        return (0, 0, total.max(0));
    }
    let starting = cus["balance"].as_i64().unwrap_or(0);
    let net = total + starting;
    let (due, ending) = (net.max(0), net.min(0));
    if let Some(c) = s.objects.get_mut(customer) {
        c["balance"] = json!(ending);
        c["currency"] = json!(currency);
    }
    if ending != starting {
        transaction(
            s,
            customer,
            ending - starting,
            currency,
            ending,
            "applied_to_invoice",
            json!(invoice),
            &Value::Null,
        );
    }
    (starting, ending, due)
}
