//! Products and prices: created, renamed, archived; a price's currency must
//! be one Stripe supports.

use serde_json::{Value, json};

use crate::api::{Reply, invalid, no_such};
use crate::currency::supported;
use crate::form::{int, opt_int};
use crate::state::State;

/// `POST /v1/products`.
pub(crate) fn create_product(s: &mut State, p: &Value) -> Reply {
    let now = s.now();
    let id = s.id("prod");
    let o = s.object(
        "product",
        json!({"id": id, "name": p["name"], "metadata": p["metadata"].as_object().cloned().unwrap_or_default(),
            "active": true, "created": now, "updated": now, "default_price": null}),
    );
    s.objects.insert(id, o.clone());
    (200, o)
}

/// `POST /v1/products/{id}` and `POST /v1/prices/{id}`: `name`, `active`.
pub(crate) fn update(s: &mut State, id: &str, p: &Value) -> Reply {
    match s.objects.get_mut(id) {
        Some(o) if o["object"] == "product" || o["object"] == "price" => {
            if let Some(n) = p.get("name") {
                o["name"] = n.clone();
            }
            if let Some(a) = p.get("active") {
                o["active"] = json!(a == "true");
            }
            crate::form::update_metadata(&mut o["metadata"], &p["metadata"]);
            (200, o.clone())
        }
        _ => no_such("object", id),
    }
}

/// `POST /v1/prices`: `product`, `currency`, `unit_amount`,
/// `recurring[interval]` (`day`, `week`, `month`, `year`),
/// `recurring[interval_count]`, `nickname`, `metadata`.
pub(crate) fn create_price(s: &mut State, p: &Value) -> Reply {
    let currency = match supported(&p["currency"], "currency") {
        Ok(c) => c,
        Err(e) => return e,
    };
    let recurring = if p["recurring"].is_object() {
        let interval = p["recurring"]["interval"].as_str().unwrap_or_default();
        if !["day", "week", "month", "year"].contains(&interval) {
            return invalid(
                "recurring[interval]",
                "",
                &format!(
                    "Invalid recurring[interval]: must be one of day, week, month, or year (got {interval:?})."
                ),
            );
        }
        let count = opt_int(&p["recurring"]["interval_count"]).unwrap_or(1);
        json!({"interval": interval, "interval_count": count, "meter": null, "usage_type": "licensed", "trial_period_days": null})
    } else {
        Value::Null
    };
    let now = s.now();
    let id = s.id("price");
    let amount = int(&p["unit_amount"]);
    let o = s.object(
        "price",
        json!({"id": id, "product": p["product"], "currency": currency, "unit_amount": amount,
            "unit_amount_decimal": amount.to_string(), "recurring": recurring, "active": true, "nickname": p["nickname"],
            "type": if recurring.is_null() { "one_time" } else { "recurring" }, "metadata": p["metadata"].as_object().cloned().unwrap_or_default(),
            "created": now, "billing_scheme": "per_unit", "custom_unit_amount": null, "transform_quantity": null,
            "lookup_key": null, "tiers_mode": null, "tax_behavior": "unspecified"}),
    );
    s.objects.insert(id, o.clone());
    (200, o)
}

/// The legacy `plan` Stripe shows beside a subscription item's `price`: the
/// same price in the plan's words.
pub(crate) fn plan_of(price: &Value) -> Value {
    json!({"id": price["id"], "object": "plan", "active": price["active"], "amount": price["unit_amount"],
        "amount_decimal": price["unit_amount_decimal"], "billing_scheme": "per_unit", "created": price["created"],
        "currency": price["currency"], "interval": price["recurring"]["interval"],
        "interval_count": price["recurring"]["interval_count"], "livemode": false, "metadata": {}, "meter": null,
        "nickname": price["nickname"], "product": price["product"], "tiers_mode": null, "transform_usage": null,
        "trial_period_days": null, "usage_type": "licensed"})
}
