//! Stripe's billing rules, end to end through the `/v1` API the way a
//! client calls it (form bodies, idempotency keys), with the clock pinned to
//! calendar dates written out by hand: each expected date is Stripe's
//! documented rule applied on paper, not computed by the code under test.

use chrono::NaiveDate;
use serde_json::Value;

use crate::{StripeSim, parse_form};

/// Unix seconds of a UTC date and time written by hand.
fn at(y: i32, m: u32, d: u32, h: u32) -> i64 {
    NaiveDate::from_ymd_opt(y, m, d)
        .unwrap()
        .and_hms_opt(h, 0, 0)
        .unwrap()
        .and_utc()
        .timestamp()
}

/// A stand-in whose clock reads `now` (and moves only when told).
struct World {
    sim: StripeSim,
}

impl World {
    fn at(now: i64) -> Self {
        let sim = StripeSim::new("http://127.0.0.1:1");
        sim.with(|s| s.pinned = Some(now));
        Self { sim }
    }

    async fn post(&self, path: &str, form: &[(&str, &str)]) -> (u16, Value) {
        self.post_keyed(path, form, None).await
    }

    async fn post_keyed(
        &self,
        path: &str,
        form: &[(&str, &str)],
        key: Option<&str>,
    ) -> (u16, Value) {
        let body = serde_urlencoded::to_string(form).unwrap();
        self.sim
            .call("POST", path, parse_form(&body), key.map(str::to_owned))
            .await
    }

    async fn ok(&self, path: &str, form: &[(&str, &str)]) -> Value {
        let (status, body) = self.post(path, form).await;
        assert_eq!(status, 200, "POST {path}: {body}");
        body
    }

    async fn get(&self, path: &str) -> Value {
        let (path, query) = path.split_once('?').unwrap_or((path, ""));
        let (status, body) = self.sim.call("GET", path, parse_form(query), None).await;
        assert_eq!(status, 200, "GET {path}: {body}");
        body
    }

    /// Moves the clock to `t` and answers the types of the events it caused.
    async fn advance_to(&self, t: i64) -> Vec<Value> {
        self.sim.advance(t - self.sim.now()).await
    }

    async fn customer(&self) -> String {
        let c = self
            .ok("/v1/customers", &[("email", "a@example.com")])
            .await;
        c["id"].as_str().unwrap().to_owned()
    }

    async fn price(&self, amount: &str, interval: &str) -> String {
        let product = self.ok("/v1/products", &[("name", "Odoo")]).await;
        let price = self
            .ok(
                "/v1/prices",
                &[
                    ("product", product["id"].as_str().unwrap()),
                    ("currency", "usd"),
                    ("unit_amount", amount),
                    ("recurring[interval]", interval),
                    ("nickname", interval),
                ],
            )
            .await;
        price["id"].as_str().unwrap().to_owned()
    }

    /// A customer subscribed to `price` through a paid checkout now.
    async fn subscribe(&self, customer: &str, price: &str) -> String {
        let session = self
            .ok(
                "/v1/checkout/sessions",
                &[
                    ("mode", "subscription"),
                    ("customer", customer),
                    ("line_items[0][price]", price),
                    ("line_items[0][quantity]", "1"),
                    ("subscription_data[metadata][tenant]", "acme"),
                ],
            )
            .await;
        let events = self
            .sim
            .complete_checkout(session["id"].as_str().unwrap())
            .await;
        assert_eq!(
            kinds(&events),
            ["checkout.session.completed", "invoice.paid"]
        );
        events[0]["data"]["object"]["subscription"]
            .as_str()
            .unwrap()
            .to_owned()
    }

    fn sub(&self, id: &str) -> Value {
        self.sim.object(id).unwrap()
    }
}

fn kinds(events: &[Value]) -> Vec<&str> {
    events.iter().map(|e| e["type"].as_str().unwrap()).collect()
}

fn period(sub: &Value) -> (i64, i64) {
    let item = &sub["items"]["data"][0];
    (
        item["current_period_start"].as_i64().unwrap(),
        item["current_period_end"].as_i64().unwrap(),
    )
}

fn line_period(invoice: &Value) -> (i64, i64) {
    let p = &invoice["lines"]["data"][0]["period"];
    (p["start"].as_i64().unwrap(), p["end"].as_i64().unwrap())
}

#[tokio::test]
async fn a_subscription_anchored_on_january_31_renews_on_february_28_then_march_31() {
    let w = World::at(at(2026, 1, 31, 10));
    let cus = w.customer().await;
    let monthly = w.price("2900", "month").await;
    let sub = w.subscribe(&cus, &monthly).await;
    assert_eq!(w.sub(&sub)["billing_cycle_anchor"], at(2026, 1, 31, 10));
    assert_eq!(
        period(&w.sub(&sub)),
        (at(2026, 1, 31, 10), at(2026, 2, 28, 10))
    );

    // A second before the period ends, nothing is due.
    assert!(w.advance_to(at(2026, 2, 28, 10) - 1).await.is_empty());
    let events = w.advance_to(at(2026, 2, 28, 10)).await;
    assert_eq!(kinds(&events), ["invoice.paid"]);
    let invoice = &events[0]["data"]["object"];
    assert_eq!(invoice["billing_reason"], "subscription_cycle");
    assert_eq!(
        line_period(invoice),
        (at(2026, 2, 28, 10), at(2026, 3, 31, 10))
    );
    assert_eq!(
        invoice["created"],
        at(2026, 2, 28, 10),
        "billed at the period's start"
    );
    assert_eq!(
        period(&w.sub(&sub)),
        (at(2026, 2, 28, 10), at(2026, 3, 31, 10))
    );
}

#[tokio::test]
async fn in_2028_a_january_31_subscription_renews_on_february_29() {
    let w = World::at(at(2028, 1, 31, 0));
    let cus = w.customer().await;
    let monthly = w.price("2900", "month").await;
    let sub = w.subscribe(&cus, &monthly).await;
    assert_eq!(period(&w.sub(&sub)).1, at(2028, 2, 29, 0));
    let events = w.advance_to(at(2028, 3, 1, 0)).await;
    assert_eq!(
        line_period(&events[0]["data"]["object"]),
        (at(2028, 2, 29, 0), at(2028, 3, 31, 0))
    );
}

#[tokio::test]
async fn a_yearly_subscription_anchored_on_february_29_renews_on_february_28_until_2032() {
    let w = World::at(at(2028, 2, 29, 12));
    let cus = w.customer().await;
    let yearly = w.price("29000", "year").await;
    let sub = w.subscribe(&cus, &yearly).await;
    assert_eq!(period(&w.sub(&sub)).1, at(2029, 2, 28, 12));
    let events = w.advance_to(at(2032, 3, 1, 0)).await;
    let periods: Vec<(i64, i64)> = events
        .iter()
        .map(|e| line_period(&e["data"]["object"]))
        .collect();
    assert_eq!(
        periods,
        [
            (at(2029, 2, 28, 12), at(2030, 2, 28, 12)),
            (at(2030, 2, 28, 12), at(2031, 2, 28, 12)),
            (at(2031, 2, 28, 12), at(2032, 2, 29, 12)),
            (at(2032, 2, 29, 12), at(2033, 2, 28, 12)),
        ]
    );
}

#[tokio::test]
async fn a_three_month_clock_jump_bills_three_renewals_oldest_first_with_calendar_periods() {
    let w = World::at(at(2026, 1, 31, 10));
    let cus = w.customer().await;
    let monthly = w.price("2900", "month").await;
    let sub = w.subscribe(&cus, &monthly).await;
    let events = w.advance_to(at(2026, 5, 1, 0)).await;
    assert_eq!(
        kinds(&events),
        ["invoice.paid", "invoice.paid", "invoice.paid"]
    );
    let periods: Vec<(i64, i64)> = events
        .iter()
        .map(|e| line_period(&e["data"]["object"]))
        .collect();
    assert_eq!(
        periods,
        [
            (at(2026, 2, 28, 10), at(2026, 3, 31, 10)),
            (at(2026, 3, 31, 10), at(2026, 4, 30, 10)),
            (at(2026, 4, 30, 10), at(2026, 5, 31, 10)),
        ]
    );
    assert_eq!(
        period(&w.sub(&sub)),
        (at(2026, 4, 30, 10), at(2026, 5, 31, 10))
    );

    // Every paid invoice carries its card payment; the PaymentIntent exists.
    let invoice = &events[2]["data"]["object"];
    assert_eq!(invoice["amount_paid"], 2900);
    let payment = &invoice["payments"]["data"][0];
    assert_eq!(payment["object"], "invoice_payment");
    assert_eq!(payment["status"], "paid");
    assert_eq!(payment["amount_paid"], 2900);
    assert_eq!(payment["payment"]["type"], "payment_intent");
    let pi = payment["payment"]["payment_intent"].as_str().unwrap();
    let intent = w.get(&format!("/v1/payment_intents/{pi}")).await;
    assert_eq!(
        (intent["amount"].as_i64(), intent["status"].as_str()),
        (Some(2900), Some("succeeded"))
    );

    // The list: newest first, paged, filtered.
    let page = w
        .get(&format!("/v1/invoices?subscription={sub}&limit=2"))
        .await;
    let ids: Vec<&str> = page["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["id"].as_str().unwrap())
        .collect();
    assert_eq!(
        ids,
        [
            events[2]["data"]["object"]["id"].as_str().unwrap(),
            events[1]["data"]["object"]["id"].as_str().unwrap()
        ]
    );
    assert_eq!(page["has_more"], true);
    let rest = w
        .get(&format!(
            "/v1/invoices?subscription={sub}&limit=2&starting_after={}",
            ids[1]
        ))
        .await;
    let reasons: Vec<&str> = rest["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["billing_reason"].as_str().unwrap())
        .collect();
    assert_eq!(reasons, ["subscription_cycle", "subscription_create"]);
    assert_eq!(rest["has_more"], false);
    let open = w
        .get(&format!("/v1/invoices?customer={cus}&status=open"))
        .await;
    assert_eq!(open["data"].as_array().unwrap().len(), 0);
}

#[tokio::test]
async fn moving_a_monthly_subscription_to_a_yearly_price_resets_the_anchor_and_invoices_the_year_at_once()
 {
    let w = World::at(at(2026, 1, 31, 10));
    let cus = w.customer().await;
    let monthly = w.price("2900", "month").await;
    let yearly = w.price("29000", "year").await;
    let basic_monthly = w.price("1900", "month").await;
    let sub = w.subscribe(&cus, &monthly).await;
    let item = w.sub(&sub)["items"]["data"][0]["id"]
        .as_str()
        .unwrap()
        .to_owned();

    // Same interval: only the price changes; the next renewal bills it.
    w.advance_to(at(2026, 2, 5, 0)).await;
    let (status, body) = w
        .post(
            &format!("/v1/subscriptions/{sub}"),
            &[
                ("items[0][id]", &item),
                ("items[0][price]", &basic_monthly),
                ("proration_behavior", "none"),
            ],
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(body["billing_cycle_anchor"], at(2026, 1, 31, 10));
    assert_eq!(
        w.sim.objects("invoice").len(),
        1,
        "no invoice for a same-interval change"
    );

    // Another interval: anchor now, the year invoiced and paid at once.
    w.advance_to(at(2026, 2, 10, 9)).await;
    let before = w.sim.events().len();
    let (status, body) = w
        .post(
            &format!("/v1/subscriptions/{sub}"),
            &[
                ("items[0][id]", &item),
                ("items[0][price]", &yearly),
                ("proration_behavior", "none"),
            ],
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(body["billing_cycle_anchor"], at(2026, 2, 10, 9));
    assert_eq!(period(&body), (at(2026, 2, 10, 9), at(2027, 2, 10, 9)));
    let events = &w.sim.events()[before..];
    assert_eq!(
        kinds(events),
        ["customer.subscription.updated", "invoice.paid"]
    );
    let invoice = &events[1]["data"]["object"];
    assert_eq!(invoice["billing_reason"], "subscription_update");
    assert_eq!(invoice["amount_paid"], 29000);
    assert_eq!(invoice["lines"]["data"].as_array().unwrap().len(), 1);
    assert_eq!(
        line_period(invoice),
        (at(2026, 2, 10, 9), at(2027, 2, 10, 9))
    );
    assert_eq!(body["latest_invoice"], invoice["id"]);

    // The old monthly boundary bills nothing any more.
    assert!(w.advance_to(at(2026, 3, 1, 0)).await.is_empty());

    // Other behaviours are refused, as before.
    let (status, _) = w
        .post(
            &format!("/v1/subscriptions/{sub}"),
            &[
                ("items[0][price]", &monthly),
                ("proration_behavior", "create_prorations"),
            ],
        )
        .await;
    assert_eq!(status, 400);
}

#[tokio::test]
async fn a_balance_credit_pays_the_next_invoice_without_the_card_and_is_consumed() {
    let w = World::at(at(2026, 3, 10, 8));
    let cus = w.customer().await;
    let monthly = w.price("2900", "month").await;
    let sub = w.subscribe(&cus, &monthly).await;
    let txn = w
        .ok(
            &format!("/v1/customers/{cus}/balance_transactions"),
            &[
                ("amount", "-2900"),
                ("currency", "usd"),
                ("description", "migration credit"),
                ("metadata[reason]", "outage"),
            ],
        )
        .await;
    assert_eq!(txn["object"], "customer_balance_transaction");
    assert_eq!(txn["type"], "adjustment");
    assert_eq!(txn["ending_balance"], -2900);
    assert_eq!(txn["metadata"]["reason"], "outage");
    assert!(txn["id"].as_str().unwrap().starts_with("cbtxn_"));
    assert_eq!(
        w.get(&format!("/v1/customers/{cus}")).await["balance"],
        -2900
    );

    // Even a declining card is not touched: nothing is due.
    w.sim.decline(&cus, true);
    let events = w.advance_to(at(2026, 4, 10, 8)).await;
    assert_eq!(kinds(&events), ["invoice.paid"]);
    let invoice = &events[0]["data"]["object"];
    assert_eq!(invoice["total"], 2900);
    assert_eq!(invoice["starting_balance"], -2900);
    assert_eq!(invoice["ending_balance"], 0);
    assert_eq!(invoice["amount_due"], 0);
    assert_eq!(invoice["amount_paid"], 0);
    assert_eq!(invoice["status"], "paid");
    assert_eq!(invoice["payments"]["data"].as_array().unwrap().len(), 0);
    assert_eq!(w.get(&format!("/v1/customers/{cus}")).await["balance"], 0);
    assert_eq!(w.sub(&sub)["status"], "active");

    // A positive balance (owed) is added to the next invoice.
    w.sim.decline(&cus, false);
    w.ok(
        &format!("/v1/customers/{cus}/balance_transactions"),
        &[("amount", "500"), ("currency", "usd")],
    )
    .await;
    let events = w.advance_to(at(2026, 5, 10, 8)).await;
    let invoice = &events[0]["data"]["object"];
    assert_eq!(
        (invoice["total"].as_i64(), invoice["amount_due"].as_i64()),
        (Some(2900), Some(3400))
    );
    assert_eq!(invoice["amount_paid"], 3400);

    // Newest first: applied, adjustment, applied, adjustment.
    let txns = w
        .get(&format!("/v1/customers/{cus}/balance_transactions"))
        .await;
    let amounts: Vec<(i64, &str)> = txns["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| (t["amount"].as_i64().unwrap(), t["type"].as_str().unwrap()))
        .collect();
    assert_eq!(
        amounts,
        [
            (-500, "applied_to_invoice"),
            (500, "adjustment"),
            (2900, "applied_to_invoice"),
            (-2900, "adjustment")
        ]
    );
}

#[tokio::test]
async fn a_one_off_invoice_covered_by_credit_is_paid_at_finalization_and_cannot_be_paid_again() {
    let w = World::at(at(2026, 6, 1, 0));
    let cus = w.customer().await;
    let key = Some("credit-1");
    let (_, first) = w
        .post_keyed(
            &format!("/v1/customers/{cus}/balance_transactions"),
            &[("amount", "-1000"), ("currency", "usd")],
            key,
        )
        .await;
    let (_, again) = w
        .post_keyed(
            &format!("/v1/customers/{cus}/balance_transactions"),
            &[("amount", "-1000"), ("currency", "usd")],
            key,
        )
        .await;
    assert_eq!(first, again, "the key replays the first answer");
    assert_eq!(
        w.get(&format!("/v1/customers/{cus}")).await["balance"],
        -1000
    );

    let inv = w
        .ok(
            "/v1/invoices",
            &[
                ("customer", &cus),
                ("currency", "usd"),
                ("auto_advance", "false"),
            ],
        )
        .await;
    let id = inv["id"].as_str().unwrap();
    w.ok(
        "/v1/invoiceitems",
        &[
            ("customer", &cus),
            ("invoice", id),
            ("amount", "600"),
            ("currency", "usd"),
        ],
    )
    .await;
    let finalized = w.ok(&format!("/v1/invoices/{id}/finalize"), &[]).await;
    assert_eq!(finalized["status"], "paid");
    assert_eq!(finalized["amount_due"], 0);
    assert_eq!(finalized["amount_paid"], 0);
    assert_eq!(finalized["starting_balance"], -1000);
    assert_eq!(finalized["ending_balance"], -400);
    let (status, body) = w
        .post(
            &format!("/v1/invoices/{id}/pay"),
            &[("off_session", "true")],
        )
        .await;
    assert_eq!(status, 400);
    assert_eq!(body["error"]["message"], "Invoice is already paid");
    assert_eq!(
        w.get(&format!("/v1/customers/{cus}")).await["balance"],
        -400
    );
}

#[tokio::test]
async fn a_schedule_moves_a_yearly_subscription_to_monthly_at_the_phase_end() {
    let w = World::at(at(2026, 3, 15, 12));
    let cus = w.customer().await;
    let yearly = w.price("29000", "year").await;
    let monthly = w.price("2900", "month").await;
    let sub = w.subscribe(&cus, &yearly).await;

    let sched = w
        .ok("/v1/subscription_schedules", &[("from_subscription", &sub)])
        .await;
    let id = sched["id"].as_str().unwrap().to_owned();
    assert!(id.starts_with("sub_sched_"));
    assert_eq!(sched["status"], "active");
    assert_eq!(sched["end_behavior"], "release");
    assert_eq!(sched["subscription"], sub.as_str());
    assert_eq!(sched["phases"][0]["start_date"], at(2026, 3, 15, 12));
    assert_eq!(sched["phases"][0]["end_date"], at(2027, 3, 15, 12));
    assert_eq!(sched["phases"][0]["items"][0]["price"], yearly.as_str());
    assert_eq!(sched["phases"][0]["items"][0]["quantity"], 1);
    assert_eq!(w.sub(&sub)["schedule"], id.as_str());

    let start = at(2026, 3, 15, 12).to_string();
    let end = at(2027, 3, 15, 12).to_string();
    let updated = w
        .ok(
            &format!("/v1/subscription_schedules/{id}"),
            &[
                ("phases[0][items][0][price]", &yearly),
                ("phases[0][start_date]", &start),
                ("phases[0][end_date]", &end),
                ("phases[0][proration_behavior]", "none"),
                ("phases[1][items][0][price]", &monthly),
                ("phases[1][proration_behavior]", "none"),
                ("end_behavior", "release"),
            ],
        )
        .await;
    assert_eq!(updated["phases"][1]["start_date"], at(2027, 3, 15, 12));
    assert_eq!(
        updated["phases"][1]["end_date"],
        at(2027, 4, 15, 12),
        "one interval"
    );
    assert_eq!(
        w.get(&format!("/v1/subscription_schedules/{id}")).await,
        updated
    );

    assert!(w.advance_to(at(2027, 3, 15, 12) - 1).await.is_empty());
    let events = w.advance_to(at(2027, 3, 20, 0)).await;
    assert_eq!(
        kinds(&events),
        [
            "customer.subscription.updated",
            "invoice.paid",
            "subscription_schedule.released"
        ]
    );
    let invoice = &events[1]["data"]["object"];
    assert_eq!(invoice["billing_reason"], "subscription_update");
    assert_eq!(invoice["amount_paid"], 2900);
    assert_eq!(
        line_period(invoice),
        (at(2027, 3, 15, 12), at(2027, 4, 15, 12))
    );
    let s = w.sub(&sub);
    assert_eq!(s["billing_cycle_anchor"], at(2027, 3, 15, 12));
    assert_eq!(s["items"]["data"][0]["price"]["id"], monthly.as_str());
    assert!(s["schedule"].is_null());
    let released = w.get(&format!("/v1/subscription_schedules/{id}")).await;
    assert_eq!(released["status"], "released");
    assert_eq!(released["released_subscription"], sub.as_str());

    // From then on, monthly renewals.
    let events = w.advance_to(at(2027, 4, 20, 0)).await;
    assert_eq!(kinds(&events), ["invoice.paid"]);
    assert_eq!(
        line_period(&events[0]["data"]["object"]),
        (at(2027, 4, 15, 12), at(2027, 5, 15, 12))
    );
}

#[tokio::test]
async fn a_released_schedule_switches_nothing() {
    let w = World::at(at(2026, 3, 15, 12));
    let cus = w.customer().await;
    let yearly = w.price("29000", "year").await;
    let monthly = w.price("2900", "month").await;
    let sub = w.subscribe(&cus, &yearly).await;
    let sched = w
        .ok("/v1/subscription_schedules", &[("from_subscription", &sub)])
        .await;
    let id = sched["id"].as_str().unwrap();
    let end = at(2027, 3, 15, 12).to_string();
    w.ok(
        &format!("/v1/subscription_schedules/{id}"),
        &[
            ("phases[0][items][0][price]", &yearly),
            ("phases[0][end_date]", &end),
            ("phases[1][items][0][price]", &monthly),
        ],
    )
    .await;
    let released = w
        .ok(&format!("/v1/subscription_schedules/{id}/release"), &[])
        .await;
    assert_eq!(released["status"], "released");
    assert_eq!(released["released_subscription"], sub.as_str());
    assert!(w.sub(&sub)["schedule"].is_null());
    assert_eq!(
        w.sub(&sub)["items"]["data"][0]["price"]["id"],
        yearly.as_str()
    );
    let (status, _) = w
        .post(&format!("/v1/subscription_schedules/{id}/release"), &[])
        .await;
    assert_eq!(status, 400, "a released schedule cannot be released again");

    let events = w.advance_to(at(2027, 3, 20, 0)).await;
    assert_eq!(kinds(&events), ["invoice.paid"]);
    let invoice = &events[0]["data"]["object"];
    assert_eq!(invoice["billing_reason"], "subscription_cycle");
    assert_eq!(invoice["amount_paid"], 29000);
    assert_eq!(
        line_period(invoice),
        (at(2027, 3, 15, 12), at(2028, 3, 15, 12))
    );
    assert_eq!(w.sub(&sub)["billing_cycle_anchor"], at(2026, 3, 15, 12));
}

#[tokio::test]
async fn cancel_at_period_end_ends_the_subscription_at_the_period_end() {
    let w = World::at(at(2026, 1, 31, 10));
    let cus = w.customer().await;
    let monthly = w.price("2900", "month").await;
    let sub = w.subscribe(&cus, &monthly).await;
    let body = w
        .ok(
            &format!("/v1/subscriptions/{sub}"),
            &[
                ("cancel_at_period_end", "true"),
                ("metadata[reason]", "too expensive"),
            ],
        )
        .await;
    assert_eq!(body["cancel_at_period_end"], true);
    assert_eq!(body["cancel_at"], at(2026, 2, 28, 10));
    assert_eq!(body["metadata"]["reason"], "too expensive");
    assert_eq!(body["metadata"]["tenant"], "acme", "metadata is merged");
    assert!(w.advance_to(at(2026, 2, 27, 0)).await.is_empty());
    assert_eq!(w.sub(&sub)["status"], "active");
    let events = w.advance_to(at(2026, 3, 1, 0)).await;
    assert_eq!(kinds(&events), ["customer.subscription.deleted"]);
    assert_eq!(events[0]["data"]["object"]["status"], "canceled");
    assert_eq!(events[0]["data"]["object"]["ended_at"], at(2026, 2, 28, 10));
    assert_eq!(w.sim.objects("invoice").len(), 1, "no renewal");
    assert!(w.advance_to(at(2026, 6, 1, 0)).await.is_empty());
}

#[tokio::test]
async fn a_declining_customers_renewal_fails_and_the_next_clock_move_does_not_bill_it_again() {
    let w = World::at(at(2026, 1, 31, 10));
    let cus = w.customer().await;
    let monthly = w.price("2900", "month").await;
    let sub = w.subscribe(&cus, &monthly).await;
    w.sim.decline(&cus, true);
    let events = w.advance_to(at(2026, 3, 1, 0)).await;
    assert_eq!(kinds(&events), ["invoice.payment_failed"]);
    let invoice = &events[0]["data"]["object"];
    assert_eq!(invoice["status"], "open");
    assert_eq!(invoice["amount_paid"], 0);
    assert_eq!(invoice["amount_remaining"], 2900);
    assert_eq!(w.sub(&sub)["status"], "past_due");
    assert_eq!(
        period(&w.sub(&sub)),
        (at(2026, 2, 28, 10), at(2026, 3, 31, 10))
    );
    assert!(
        w.advance_to(at(2026, 3, 30, 0)).await.is_empty(),
        "that period is billed once"
    );

    // Paying the open invoice later brings the subscription back.
    w.sim.decline(&cus, false);
    let id = invoice["id"].as_str().unwrap();
    let paid = w.ok(&format!("/v1/invoices/{id}/pay"), &[]).await;
    assert_eq!(paid["status"], "paid");
    assert_eq!(paid["attempt_count"], 2);
    assert_eq!(w.sub(&sub)["status"], "active");
}

#[tokio::test]
async fn a_card_asking_for_authentication_is_402_authentication_required_and_leaves_the_invoice_open()
 {
    let w = World::at(at(2026, 1, 31, 10));
    let cus = w.customer().await;
    let monthly = w.price("2900", "month").await;
    let sub = w.subscribe(&cus, &monthly).await;
    w.sim.require_action(&cus, true);

    let inv = w
        .ok("/v1/invoices", &[("customer", &cus), ("currency", "usd")])
        .await;
    let id = inv["id"].as_str().unwrap();
    w.ok(
        "/v1/invoiceitems",
        &[
            ("customer", &cus),
            ("invoice", id),
            ("amount", "1500"),
            ("currency", "usd"),
        ],
    )
    .await;
    w.ok(&format!("/v1/invoices/{id}/finalize"), &[]).await;
    let before = w.sim.events().len();
    let (status, body) = w
        .post(
            &format!("/v1/invoices/{id}/pay"),
            &[("off_session", "true")],
        )
        .await;
    assert_eq!(status, 402);
    assert_eq!(body["error"]["type"], "card_error");
    assert_eq!(body["error"]["code"], "authentication_required");
    assert_eq!(body["error"]["decline_code"], "authentication_required");
    assert_eq!(
        body["error"]["message"],
        "This payment requires authentication."
    );
    assert_eq!(w.get(&format!("/v1/invoices/{id}")).await["status"], "open");
    assert_eq!(
        kinds(&w.sim.events()[before..]),
        ["invoice.payment_action_required"]
    );

    let events = w.advance_to(at(2026, 3, 1, 0)).await;
    assert_eq!(kinds(&events), ["invoice.payment_action_required"]);
    assert_eq!(events[0]["data"]["object"]["status"], "open");
    assert_eq!(w.sub(&sub)["status"], "past_due");

    // A declined card is still `card_declined`.
    w.sim.require_action(&cus, false);
    w.sim.decline(&cus, true);
    let (status, body) = w.post(&format!("/v1/invoices/{id}/pay"), &[]).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (402, Some("card_declined"))
    );
}

#[tokio::test]
async fn a_paid_checkouts_payment_intent_is_refunded_once_and_over_refunding_is_refused() {
    let w = World::at(at(2026, 7, 1, 0));
    let cus = w.customer().await;
    let session = w
        .ok(
            "/v1/checkout/sessions",
            &[
                ("mode", "payment"),
                ("customer", &cus),
                ("line_items[0][quantity]", "1"),
                ("line_items[0][price_data][currency]", "eur"),
                ("line_items[0][price_data][unit_amount]", "5000"),
                ("line_items[0][price_data][product]", "prod_x"),
                ("payment_intent_data[metadata][plan_change_id]", "pc_1"),
            ],
        )
        .await;
    assert_eq!(
        (
            session["amount_total"].as_i64(),
            session["currency"].as_str()
        ),
        (Some(5000), Some("eur"))
    );
    let id = session["id"].as_str().unwrap();
    w.sim.complete_checkout(id).await;
    let done = w.get(&format!("/v1/checkout/sessions/{id}")).await;
    assert_eq!(done["status"], "complete");
    let pi = done["payment_intent"].as_str().unwrap().to_owned();
    let intent = w.get(&format!("/v1/payment_intents/{pi}")).await;
    assert_eq!(intent["amount"], 5000);
    assert_eq!(intent["currency"], "eur");
    assert_eq!(intent["status"], "succeeded");
    assert_eq!(intent["metadata"]["plan_change_id"], "pc_1");

    let before = w.sim.events().len();
    let refund = w
        .ok(
            "/v1/refunds",
            &[
                ("payment_intent", &pi),
                ("amount", "2000"),
                ("reason", "requested_by_customer"),
                ("metadata[k]", "v"),
            ],
        )
        .await;
    assert_eq!(refund["object"], "refund");
    assert!(refund["id"].as_str().unwrap().starts_with("re_"));
    assert_eq!(
        (refund["amount"].as_i64(), refund["status"].as_str()),
        (Some(2000), Some("succeeded"))
    );
    assert_eq!(refund["payment_intent"], pi.as_str());
    assert_eq!(refund["currency"], "eur");
    assert_eq!(refund["metadata"]["k"], "v");
    assert_eq!(
        kinds(&w.sim.events()[before..]),
        ["refund.created", "charge.refunded"]
    );

    let (status, body) = w
        .post(
            "/v1/refunds",
            &[("payment_intent", &pi), ("amount", "3001")],
        )
        .await;
    assert_eq!(status, 400);
    assert_eq!(body["error"]["type"], "invalid_request_error");
    assert_eq!(body["error"]["code"], "amount_too_large");
    let rest = w.ok("/v1/refunds", &[("payment_intent", &pi)]).await;
    assert_eq!(rest["amount"], 3000, "the default is what is left");
    let (status, body) = w.post("/v1/refunds", &[("payment_intent", &pi)]).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (400, Some("charge_already_refunded"))
    );

    let charge = &w
        .get(&format!("/v1/payment_intents/{pi}?expand[]=latest_charge"))
        .await["latest_charge"];
    assert_eq!(charge["amount_refunded"], 5000);
    assert_eq!(charge["refunded"], true);
}

#[tokio::test]
async fn an_open_checkout_expires_after_24_hours_on_the_clock() {
    let w = World::at(at(2026, 8, 1, 9));
    let cus = w.customer().await;
    let monthly = w.price("2900", "month").await;
    let session = w
        .ok(
            "/v1/checkout/sessions",
            &[
                ("mode", "subscription"),
                ("customer", &cus),
                ("line_items[0][price]", &monthly),
            ],
        )
        .await;
    assert_eq!(session["expires_at"], at(2026, 8, 2, 9));
    assert_eq!(
        (
            session["amount_total"].as_i64(),
            session["currency"].as_str()
        ),
        (Some(2900), Some("usd"))
    );
    let id = session["id"].as_str().unwrap();
    assert!(w.advance_to(at(2026, 8, 2, 9) - 1).await.is_empty());
    let events = w.advance_to(at(2026, 8, 2, 9)).await;
    assert_eq!(kinds(&events), ["checkout.session.expired"]);
    assert_eq!(
        w.get(&format!("/v1/checkout/sessions/{id}")).await["status"],
        "expired"
    );
    assert!(
        w.sim.complete_checkout(id).await.is_empty(),
        "an expired session cannot be paid"
    );
    assert!(w.sim.objects("subscription").is_empty());

    // Expired on request; a completed session cannot be expired or paid twice.
    let other = w
        .ok(
            "/v1/checkout/sessions",
            &[
                ("mode", "subscription"),
                ("customer", &cus),
                ("line_items[0][price]", &monthly),
            ],
        )
        .await;
    let other = other["id"].as_str().unwrap();
    let expired = w
        .ok(&format!("/v1/checkout/sessions/{other}/expire"), &[])
        .await;
    assert_eq!(expired["status"], "expired");
    let (status, _) = w
        .post(&format!("/v1/checkout/sessions/{other}/expire"), &[])
        .await;
    assert_eq!(status, 400);
    let third = w
        .ok(
            "/v1/checkout/sessions",
            &[
                ("mode", "subscription"),
                ("customer", &cus),
                ("line_items[0][price]", &monthly),
            ],
        )
        .await;
    let third = third["id"].as_str().unwrap();
    assert_eq!(w.sim.complete_checkout(third).await.len(), 2);
    assert!(w.sim.complete_checkout(third).await.is_empty());
    let (status, _) = w
        .post(&format!("/v1/checkout/sessions/{third}/expire"), &[])
        .await;
    assert_eq!(status, 400);
}

#[tokio::test]
async fn an_unsupported_currency_is_refused_everywhere() {
    let w = World::at(at(2026, 1, 1, 0));
    let cus = w.customer().await;
    let refused = |body: &Value, param: &str| {
        assert_eq!(body["error"]["type"], "invalid_request_error");
        assert_eq!(body["error"]["param"], param);
        assert!(
            body["error"]["message"].as_str().unwrap().starts_with(
                "Invalid currency: xyz. Stripe currently supports these currencies: usd,"
            ),
            "{body}"
        );
    };
    let (status, body) = w
        .post(
            "/v1/prices",
            &[
                ("product", "prod_x"),
                ("currency", "xyz"),
                ("unit_amount", "100"),
            ],
        )
        .await;
    assert_eq!(status, 400);
    refused(&body, "currency");
    let (status, body) = w
        .post("/v1/invoices", &[("customer", &cus), ("currency", "xyz")])
        .await;
    assert_eq!(status, 400);
    refused(&body, "currency");
    let inv = w
        .ok("/v1/invoices", &[("customer", &cus), ("currency", "usd")])
        .await;
    let (status, body) = w
        .post(
            "/v1/invoiceitems",
            &[
                ("invoice", inv["id"].as_str().unwrap()),
                ("amount", "100"),
                ("currency", "xyz"),
            ],
        )
        .await;
    assert_eq!(status, 400);
    refused(&body, "currency");
    let (status, body) = w
        .post(
            &format!("/v1/customers/{cus}/balance_transactions"),
            &[("amount", "-100"), ("currency", "xyz")],
        )
        .await;
    assert_eq!(status, 400);
    refused(&body, "currency");
    let (status, body) = w
        .post(
            "/v1/checkout/sessions",
            &[
                ("mode", "payment"),
                ("line_items[0][price_data][currency]", "xyz"),
                ("line_items[0][price_data][unit_amount]", "100"),
            ],
        )
        .await;
    assert_eq!(status, 400);
    refused(&body, "line_items[0][price_data][currency]");
    // Upper case is Stripe's lower case.
    let price = w
        .ok(
            "/v1/prices",
            &[
                ("product", "prod_x"),
                ("currency", "EUR"),
                ("unit_amount", "100"),
            ],
        )
        .await;
    assert_eq!(price["currency"], "eur");
}

#[tokio::test]
async fn a_same_interval_phase_change_bills_the_period_starting_at_the_boundary_once_at_the_new_price()
 {
    let w = World::at(at(2026, 1, 31, 10));
    let cus = w.customer().await;
    let pro = w.price("4900", "month").await;
    let basic = w.price("1900", "month").await;
    let sub = w.subscribe(&cus, &pro).await;
    let sched = w
        .ok("/v1/subscription_schedules", &[("from_subscription", &sub)])
        .await;
    let id = sched["id"].as_str().unwrap();
    let end = at(2026, 2, 28, 10).to_string();
    w.ok(
        &format!("/v1/subscription_schedules/{id}"),
        &[
            ("phases[0][items][0][price]", &pro),
            ("phases[0][end_date]", &end),
            ("phases[1][items][0][price]", &basic),
            ("phases[1][proration_behavior]", "none"),
        ],
    )
    .await;
    let events = w.advance_to(at(2026, 3, 1, 0)).await;
    assert_eq!(
        kinds(&events),
        [
            "customer.subscription.updated",
            "subscription_schedule.released",
            "invoice.paid"
        ]
    );
    let invoice = &events[2]["data"]["object"];
    assert_eq!(invoice["billing_reason"], "subscription_cycle");
    assert_eq!(invoice["amount_paid"], 1900);
    assert_eq!(
        line_period(invoice),
        (at(2026, 2, 28, 10), at(2026, 3, 31, 10))
    );
    assert_eq!(
        w.sub(&sub)["billing_cycle_anchor"],
        at(2026, 1, 31, 10),
        "same interval: same anchor"
    );
    assert_eq!(w.sim.objects("invoice").len(), 2);
}

#[tokio::test]
async fn renew_bills_the_next_calendar_period_now_without_moving_the_clock() {
    let w = World::at(at(2026, 1, 31, 10));
    let cus = w.customer().await;
    let monthly = w.price("2900", "month").await;
    let sub = w.subscribe(&cus, &monthly).await;
    let events = w.sim.renew(&sub).await;
    assert_eq!(kinds(&events), ["invoice.paid"]);
    assert_eq!(
        line_period(&events[0]["data"]["object"]),
        (at(2026, 2, 28, 10), at(2026, 3, 31, 10))
    );
    assert_eq!(w.sim.now(), at(2026, 1, 31, 10), "the clock stays");
    assert!(
        w.advance_to(at(2026, 3, 30, 0)).await.is_empty(),
        "already billed"
    );
    w.sim.decline(&cus, true);
    assert_eq!(kinds(&w.sim.renew(&sub).await), ["invoice.payment_failed"]);
    assert_eq!(w.sub(&sub)["status"], "past_due");
    assert_eq!(
        period(&w.sub(&sub)),
        (at(2026, 3, 31, 10), at(2026, 4, 30, 10))
    );
}

#[tokio::test]
async fn moving_the_clock_back_and_forth_by_offset_bills_each_period_once() {
    let w = World::at(at(2026, 1, 31, 10));
    let cus = w.customer().await;
    let monthly = w.price("2900", "month").await;
    w.subscribe(&cus, &monthly).await;
    let month = at(2026, 3, 1, 0) - at(2026, 1, 31, 10);
    assert_eq!(w.sim.set_clock_offset(month).await.len(), 1);
    assert!(w.sim.set_clock_offset(0).await.is_empty());
    assert!(
        w.sim.set_clock_offset(month).await.is_empty(),
        "Feb 28 is billed once"
    );
    assert_eq!(w.sim.clock_offset(), month);
}

#[tokio::test]
async fn a_trial_end_with_a_price_of_another_interval_moves_the_anchor_and_bills_nothing_until_it_ends()
 {
    let w = World::at(at(2028, 1, 31, 10));
    let cus = w.customer().await;
    let monthly = w.price("2900", "month").await;
    let yearly = w.price("29000", "year").await;
    let sub = w.subscribe(&cus, &yearly).await;
    let item = w.sub(&sub)["items"]["data"][0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let invoices = w.sim.objects("invoice").len();

    w.advance_to(at(2028, 2, 3, 0)).await;
    // A trial end in the past (or now) is refused, as by Stripe.
    let past = at(2028, 2, 2, 0).to_string();
    let (status, body) = w
        .post(
            &format!("/v1/subscriptions/{sub}"),
            &[("trial_end", &past), ("proration_behavior", "none")],
        )
        .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"]["param"], "trial_end");

    let end = at(2028, 2, 29, 10);
    let before = w.sim.events().len();
    let (status, body) = w
        .post(
            &format!("/v1/subscriptions/{sub}"),
            &[
                ("items[0][id]", &item),
                ("items[0][price]", &monthly),
                ("proration_behavior", "none"),
                ("trial_end", &end.to_string()),
            ],
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status"], "trialing");
    assert_eq!(body["billing_cycle_anchor"], end);
    assert_eq!(body["trial_end"], end);
    assert_eq!(period(&body), (at(2028, 2, 3, 0), end));
    assert_eq!(
        kinds(&w.sim.events()[before..]),
        ["customer.subscription.updated"],
        "no invoice before the trial's end"
    );
    assert_eq!(w.sim.objects("invoice").len(), invoices);

    // The trial's end bills the first monthly period, counted from it.
    let events = w.advance_to(at(2028, 3, 1, 0)).await;
    assert_eq!(kinds(&events), ["invoice.paid"]);
    let invoice = &events[0]["data"]["object"];
    assert_eq!(invoice["billing_reason"], "subscription_cycle");
    assert_eq!(invoice["amount_paid"], 2900);
    assert_eq!(line_period(invoice), (end, at(2028, 3, 29, 10)));
    assert_eq!(w.sub(&sub)["status"], "active");
}

#[tokio::test]
async fn a_subscription_created_by_the_api_bills_its_first_period_at_once_from_the_balance_first() {
    let w = World::at(at(2028, 3, 31, 12));
    let cus = w.customer().await;
    let monthly = w.price("2900", "month").await;
    w.ok(
        &format!("/v1/customers/{cus}/balance_transactions"),
        &[("amount", "-1000"), ("currency", "usd")],
    )
    .await;
    let (status, body) = w
        .post(
            "/v1/subscriptions",
            &[("customer", "cus_nobody"), ("items[0][price]", &monthly)],
        )
        .await;
    assert_eq!(status, 400);
    assert_eq!(body["error"]["param"], "customer");

    let before = w.sim.events().len();
    let sub = w
        .ok(
            "/v1/subscriptions",
            &[
                ("customer", &cus),
                ("items[0][price]", &monthly),
                ("metadata[replaces]", "sub_old"),
                ("off_session", "true"),
            ],
        )
        .await;
    assert_eq!(sub["status"], "active");
    assert_eq!(sub["metadata"]["replaces"], "sub_old");
    assert_eq!(sub["billing_cycle_anchor"], at(2028, 3, 31, 12));
    let events = &w.sim.events()[before..];
    assert_eq!(
        kinds(events),
        ["customer.subscription.created", "invoice.paid"]
    );
    let invoice = &events[1]["data"]["object"];
    assert_eq!(invoice["billing_reason"], "subscription_create");
    assert_eq!(invoice["amount_paid"], 1900, "the balance went first");
    assert_eq!(
        line_period(invoice),
        (at(2028, 3, 31, 12), at(2028, 4, 30, 12)),
        "calendar month from the anchor"
    );
    assert_eq!(w.sim.object(&cus).unwrap()["balance"], 0);
}
