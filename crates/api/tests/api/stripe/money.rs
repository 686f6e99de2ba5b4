//! Money correctness against the Stripe stand-in (which bills like Stripe:
//! calendar months, interval changes resetting the anchor and invoicing at
//! once, renewals as its clock passes a period end): an interval upgrade
//! charged once, a year → month downgrade moving the Price at the period
//! end, a price sync that converges when a change comes while it runs, a
//! charge retried after Stripe forgot its idempotency keys, a late payment
//! refunded, a credit carried to the customer's balance, a checkout
//! obtainable again, and payments that are not ours left unapplied.

use rust_decimal::{Decimal, prelude::ToPrimitive as _};
use serde_json::{Value, json};
use uuid::Uuid;

use super::{World, paid_tenant, paid_tenant_of, world};
use crate::helpers::assert_problem;

fn cents(v: &Value) -> i64 {
    let d: Decimal = v.as_str().unwrap().parse().unwrap();
    (d * Decimal::from(100)).to_i64().unwrap()
}

impl World {
    async fn sub_id(&self, tenant: Uuid) -> String {
        self.one(&format!(
            "SELECT id FROM subscriptions WHERE tenant_id = '{tenant}'"
        ))
        .await
    }

    async fn sync(&self, tenant: Uuid) {
        let sub = self.sub_id(tenant).await;
        self.run_job("stripe.sync_price", json!({"subscription_id": sub}))
            .await
            .unwrap();
    }

    /// Moves Stripe's clock (its renewals and schedule phases happen, their
    /// webhooks delivered), then ours (the billing processor runs).
    async fn advance_both(&self, admin: &str, seconds: i64) {
        self.sim.advance(seconds).await;
        let res = self
            .app
            .post_as(
                "/v1/sandbox/clock",
                admin,
                json!({"advance_seconds": seconds}),
            )
            .await;
        assert_eq!(res.status(), 200);
    }

    /// Every invoice of a customer, oldest first.
    fn invoices_of(&self, customer: &str) -> Vec<Value> {
        self.sim
            .objects("invoice")
            .into_iter()
            .filter(|i| i["customer"] == customer)
            .collect()
    }

    /// Runs the tenant's queued `billing.refund` job, twice (the repeat
    /// gives nothing more back), with the Stripe gateway.
    async fn refund_jobs(&self, tenant: Uuid) {
        let job = self
            .one(&format!(
                "SELECT payload FROM jobs WHERE tenant_id = '{tenant}' AND kind = 'billing.refund'"
            ))
            .await;
        assert!(!job.is_empty(), "a refund is queued");
        let mut handlers = tenantry_store::worker::Handlers::new();
        tenantry_billing::RefundJobs {
            gateway: std::sync::Arc::new(tenantry_billing::stripe::StripeGateway::new(
                self.stripe.clone(),
                self.app.pool(),
            )),
        }
        .register(&mut handlers);
        for _ in 0..2 {
            handlers
                .run_inline(
                    &self.app.pool(),
                    "billing.refund",
                    serde_json::from_str(&job).unwrap(),
                )
                .await
                .unwrap();
        }
    }

    async fn customer(&self, tenant: Uuid) -> String {
        self.one(&format!(
            "SELECT provider_customer_id FROM subscriptions WHERE tenant_id = '{tenant}'"
        ))
        .await
    }
}

fn paid_total(invoices: &[Value]) -> i64 {
    invoices
        .iter()
        .map(|i| i["amount_paid"].as_i64().unwrap_or(0))
        .sum()
}

/// Regression (issue 16): moving a Stripe subscription to a yearly Price
/// resets its anchor and invoices the year at once — a second charge of
/// the year we had already charged. Now Stripe's invoice is prepaid from
/// the customer's balance: the customer pays once.
#[tokio::test]
async fn a_month_to_year_upgrade_on_stripe_is_paid_once() {
    let w = world().await;
    let (t, token, stripe_sub) = paid_tenant(&w, "yearly", "basic").await;
    let customer = w.customer(t).await;
    let before = paid_total(&w.invoices_of(&customer));
    assert_eq!(before, 2900, "the first month");
    let res = w
        .app
        .post_as(
            &format!("/v1/tenants/{t}/plan-change"),
            &token,
            json!({"plan": "basic-yearly"}),
        )
        .await;
    assert_eq!(res.status(), 202);
    let out: Value = res.json().await.unwrap();
    assert_eq!(out["plan_change"]["status"], "applied");
    let charged = cents(&out["plan_change"]["amount"]["amount"]);
    assert!((29_000 - 2_900..29_000).contains(&charged), "{charged}");
    w.sync(t).await;
    let yearly = w.one("SELECT s.stripe_id FROM stripe_catalog s JOIN plans p ON p.id = s.local_id WHERE p.code = 'basic-yearly'").await;
    let subscription = w.sim.object(&stripe_sub).unwrap();
    assert_eq!(
        subscription["items"]["data"][0]["price"]["id"],
        yearly.as_str()
    );
    // Stripe invoiced the new year at once (its anchor moved), paid from the balance.
    let invoices = w.invoices_of(&customer);
    let update = invoices
        .iter()
        .find(|i| i["billing_reason"] == "subscription_update")
        .expect("Stripe's invoice for the new cycle");
    assert_eq!(update["total"], 29_000);
    assert_eq!(update["amount_paid"], 0, "prepaid: no second payment");
    assert_eq!(
        paid_total(&invoices) - before,
        charged,
        "the customer paid exactly our charge"
    );
    assert_eq!(w.sim.object(&customer).unwrap()["balance"], 0);
    // Our period and anchor are Stripe's new cycle; our ledger nets to zero as Stripe's balance does.
    let period = update["lines"]["data"][0]["period"].clone();
    assert_eq!(
        w.one(&format!("SELECT extract(epoch FROM current_period_start)::bigint || ' ' || extract(epoch FROM current_period_end)::bigint || ' ' || extract(epoch FROM billing_anchor)::bigint FROM subscriptions WHERE tenant_id = '{t}'")).await,
        format!("{} {} {}", period["start"], period["end"], period["start"])
    );
    assert_eq!(
        w.one(&format!(
            "SELECT coalesce(sum(amount), 0) FROM credits WHERE tenant_id = '{t}'"
        ))
        .await
        .parse::<Decimal>()
        .unwrap(),
        Decimal::ZERO
    );
    // The old month's end passes: nothing more is charged.
    let admin = w.app.admin().await;
    w.advance_both(&admin.access_token, 40 * 86_400).await;
    assert_eq!(paid_total(&w.invoices_of(&customer)) - before, charged);
    w.sync(t).await;
    assert_eq!(
        w.one(&format!(
            "SELECT price_version = price_synced_version FROM subscriptions WHERE tenant_id = '{t}'"
        ))
        .await,
        "true"
    );
}

/// A year → month downgrade moves the Stripe Price at the period end (a
/// schedule's second phase), not when scheduled: no yearly renewal, one
/// monthly invoice from the year's end.
#[tokio::test]
async fn a_year_to_month_downgrade_moves_the_stripe_price_at_the_period_end() {
    let w = world().await;
    let admin = w.app.admin().await;
    let (t, token, stripe_sub) = paid_tenant(&w, "downyear", "basic-yearly").await;
    let customer = w.customer(t).await;
    let res = w
        .app
        .post_as(
            &format!("/v1/tenants/{t}/plan-change"),
            &token,
            json!({"plan": "basic"}),
        )
        .await;
    assert_eq!(res.status(), 201);
    w.sync(t).await;
    let yearly = w.one("SELECT s.stripe_id FROM stripe_catalog s JOIN plans p ON p.id = s.local_id WHERE p.code = 'basic-yearly'").await;
    let monthly = w.one("SELECT s.stripe_id FROM stripe_catalog s JOIN plans p ON p.id = s.local_id WHERE p.code = 'basic'").await;
    let subscription = w.sim.object(&stripe_sub).unwrap();
    assert_eq!(
        subscription["items"]["data"][0]["price"]["id"],
        yearly.as_str(),
        "not moved when scheduled"
    );
    let year_end = subscription["items"]["data"][0]["current_period_end"]
        .as_i64()
        .unwrap();
    let now = w.sim.now();
    w.advance_both(&admin.access_token, year_end - now + 3_600)
        .await;
    w.sync(t).await;
    let subscription = w.sim.object(&stripe_sub).unwrap();
    assert_eq!(
        subscription["items"]["data"][0]["price"]["id"],
        monthly.as_str()
    );
    let after_year: Vec<Value> = w
        .invoices_of(&customer)
        .into_iter()
        .filter(|i| i["lines"]["data"][0]["period"]["start"].as_i64() >= Some(year_end))
        .collect();
    assert_eq!(after_year.len(), 1, "{after_year:#?}");
    assert_eq!(
        after_year[0]["amount_paid"], 2900,
        "the first month, no year"
    );
    assert_eq!(
        after_year[0]["lines"]["data"][0]["period"]["start"],
        year_end
    );
    assert_eq!(
        w.one(&format!("SELECT p.code || ' ' || extract(epoch FROM s.billing_anchor)::bigint FROM subscriptions s JOIN plans p ON p.id = s.plan_id WHERE s.tenant_id = '{t}'")).await,
        format!("basic {year_end}")
    );
}

/// Regression (issue 16): a downgrade canceled while `stripe.sync_price`
/// ran left Stripe on the lower price (the cancel's enqueue found the
/// running job). Now the sync re-reads the desired version and repeats.
#[tokio::test]
async fn a_downgrade_canceled_while_the_price_sync_runs_leaves_stripe_on_the_current_price() {
    let w = world().await;
    let (t, token, stripe_sub) = paid_tenant(&w, "racer", "pro").await;
    let res = w
        .app
        .post_as(
            &format!("/v1/tenants/{t}/plan-change"),
            &token,
            json!({"plan": "basic"}),
        )
        .await;
    assert_eq!(res.status(), 201);
    // The sync stops at its first schedule call; the customer cancels meanwhile.
    let held = w.sim.hold("POST", "/v1/subscription_schedules");
    let sub = w.sub_id(t).await;
    let job = {
        let (stripe, pool, clock, sub) = (w.stripe.clone(), w.app.pool(), w.clock(), sub.clone());
        tokio::spawn(async move {
            let mut handlers = tenantry_store::worker::Handlers::new();
            tenantry_billing::stripe::jobs::StripeJobs { stripe, clock }.register(&mut handlers);
            handlers
                .run_inline(&pool, "stripe.sync_price", json!({"subscription_id": sub}))
                .await
                .map_err(|e| e.to_string())
        })
    };
    held.arrived().await;
    let res = w
        .app
        .delete_as(&format!("/v1/tenants/{t}/scheduled-plan-change"), &token)
        .await;
    assert_eq!(res.status(), 200);
    held.release();
    job.await.unwrap().unwrap();
    let pro = w.one("SELECT s.stripe_id FROM stripe_catalog s JOIN plans p ON p.id = s.local_id WHERE p.code = 'pro'").await;
    let subscription = w.sim.object(&stripe_sub).unwrap();
    assert_eq!(
        subscription["items"]["data"][0]["price"]["id"],
        pro.as_str()
    );
    assert!(
        subscription["schedule"].is_null(),
        "the downgrade's schedule is released: {subscription:#?}"
    );
    assert_eq!(
        w.one(&format!(
            "SELECT price_version = price_synced_version FROM subscriptions WHERE id = '{sub}'"
        ))
        .await,
        "true"
    );
    // At the period end nothing moves to basic.
    let admin = w.app.admin().await;
    let end = subscription["items"]["data"][0]["current_period_end"]
        .as_i64()
        .unwrap();
    w.advance_both(&admin.access_token, end - w.sim.now() + 60)
        .await;
    let renewal = w
        .invoices_of(&w.customer(t).await)
        .into_iter()
        .rfind(|i| i["billing_reason"] == "subscription_cycle")
        .unwrap();
    assert_eq!(renewal["amount_paid"], 4900, "still pro");
}

/// Regression (issue 16): a `stripe.charge` job run after Stripe's 24-hour
/// idempotency window created and paid a second invoice. Now it finds the
/// first by our metadata.
#[tokio::test]
async fn a_charge_retried_after_stripe_forgot_its_keys_makes_no_second_invoice() {
    let w = world().await;
    let (t, token, _) = paid_tenant(&w, "slowjob", "basic").await;
    let customer = w.customer(t).await;
    let out: Value = w
        .app
        .post_as(
            &format!("/v1/tenants/{t}/plan-change"),
            &token,
            json!({"plan": "pro"}),
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(out["plan_change"]["status"], "applied");
    let paid_before = paid_total(&w.invoices_of(&customer));
    let ours = |w: &World| {
        w.sim
            .objects("invoice")
            .into_iter()
            .filter(|i| i["metadata"]["plan_change_id"] == out["plan_change"]["id"])
            .count()
    };
    assert_eq!(ours(&w), 1);
    // The queued job runs a day and more later: Stripe forgot the keys.
    w.sim.advance(25 * 3_600).await;
    let payload = w
        .one(&format!(
            "SELECT payload FROM jobs WHERE tenant_id = '{t}' AND kind = 'stripe.charge'"
        ))
        .await;
    // Our charge row says paid: nothing is asked of Stripe.
    w.run_job("stripe.charge", serde_json::from_str(&payload).unwrap())
        .await
        .unwrap();
    // Even without it (a crash before our row was written), Stripe's own record stops a second invoice.
    w.app
        .sql()
        .await
        .execute(
            "UPDATE charges SET status = 'processing' WHERE tenant_id = $1 AND kind = 'upgrade'",
            &[&t],
        )
        .await
        .unwrap();
    w.run_job("stripe.charge", serde_json::from_str(&payload).unwrap())
        .await
        .unwrap();
    assert_eq!(ours(&w), 1, "one invoice");
    assert_eq!(
        paid_total(&w.invoices_of(&customer)),
        paid_before,
        "one payment"
    );
}

/// A Stripe-billed tenant `slug` on basic without a saved card asks for
/// pro two hours before its period end: (tenant, owner token, the
/// request's answer, with a checkout to pay).
async fn upgrade_before_period_end(w: &World, admin: &str, slug: &str) -> (Uuid, String, Value) {
    let (t, token, stripe_sub) = paid_tenant(w, slug, "basic").await;
    w.app
        .sql()
        .await
        .execute(
            "UPDATE subscriptions SET saved_payment_method = false WHERE tenant_id = $1",
            &[&t],
        )
        .await
        .unwrap();
    let end = w.sim.object(&stripe_sub).unwrap()["items"]["data"][0]["current_period_end"]
        .as_i64()
        .unwrap();
    w.advance_both(admin, end - w.sim.now() - 7_200).await;
    let out: Value = w
        .app
        .post_as(
            &format!("/v1/tenants/{t}/plan-change"),
            &token,
            json!({"plan": "pro"}),
        )
        .await
        .json()
        .await
        .unwrap();
    (t, token, out)
}

/// Regression (issue 16): an upgrade paid after its window was ignored,
/// the money kept. Paid after the period it was quoted for has ended, it is
/// refunded through Stripe.
#[tokio::test]
async fn a_late_checkout_payment_is_refunded_through_stripe() {
    let w = world().await;
    let admin = w.app.admin().await;
    let (t, _, out) = upgrade_before_period_end(&w, &admin.access_token, "latepay").await;
    assert_eq!(out["payment"], "checkout_required");
    let url = out["checkout_url"].as_str().unwrap().to_owned();
    // The period ends (Stripe renews); the customer pays the next morning.
    w.advance_both(&admin.access_token, 10 * 3_600).await;
    let events = w.sim.complete_checkout(&World::session_of(&url)).await;
    assert_eq!(events[0]["type"], "checkout.session.completed");
    let change = out["plan_change"]["id"].as_str().unwrap();
    assert_eq!(
        w.one(&format!(
            "SELECT status FROM plan_changes WHERE id = '{change}'"
        ))
        .await,
        "expired"
    );
    assert_eq!(
        w.one(&format!(
            "SELECT p.code FROM tenants t JOIN plans p ON p.id = t.plan_id WHERE t.id = '{t}'"
        ))
        .await,
        "basic"
    );
    w.refund_jobs(t).await;
    let refunds = w.sim.objects("refund");
    assert_eq!(refunds.len(), 1, "refunded once");
    assert_eq!(
        refunds[0]["amount"],
        cents(&out["plan_change"]["amount"]["amount"])
    );
    assert_eq!(
        w.one(&format!("SELECT status || ' ' || provider_reference FROM charges WHERE tenant_id = '{t}' AND kind = 'refund'")).await,
        format!("paid {}", refunds[0]["id"].as_str().unwrap())
    );
    assert_eq!(
        w.count(&format!(
            "SELECT 1 FROM alerts WHERE tenant_id = '{t}' AND kind = 'payment.refunded'"
        ))
        .await,
        1
    );
}

/// A failed migration's credit reaches Stripe as a customer balance
/// transaction, and the next renewal invoice is paid from it; our ledger
/// records both and nets as Stripe's balance does.
#[tokio::test]
async fn a_credit_reaches_the_stripe_balance_and_pays_part_of_the_next_invoice() {
    let w = world().await;
    let admin = w.app.admin().await;
    let (t, token, stripe_sub) = paid_tenant(&w, "credit", "basic").await;
    let customer = w.customer(t).await;
    w.advance_both(&admin.access_token, 12 * 86_400).await;
    let out: Value = w
        .app
        .post_as(
            &format!("/v1/tenants/{t}/plan-change"),
            &token,
            json!({"plan": "pro"}),
        )
        .await
        .json()
        .await
        .unwrap();
    let change: Uuid = out["plan_change"]["id"].as_str().unwrap().parse().unwrap();
    let paid = cents(&out["plan_change"]["amount"]["amount"]);
    crate::billing::fail_migration(&w.app, t, change).await;
    let job = w
        .one(&format!(
            "SELECT payload FROM jobs WHERE tenant_id = '{t}' AND kind = 'stripe.push_credit'"
        ))
        .await;
    for _ in 0..2 {
        w.run_job("stripe.push_credit", serde_json::from_str(&job).unwrap())
            .await
            .unwrap();
    }
    assert_eq!(w.sim.object(&customer).unwrap()["balance"], -paid);
    w.sync(t).await;
    let end = w.sim.object(&stripe_sub).unwrap()["items"]["data"][0]["current_period_end"]
        .as_i64()
        .unwrap();
    w.advance_both(&admin.access_token, end - w.sim.now() + 60)
        .await;
    let renewal = w
        .invoices_of(&customer)
        .into_iter()
        .rfind(|i| i["billing_reason"] == "subscription_cycle")
        .unwrap();
    assert_eq!(renewal["total"], 2900);
    assert_eq!(renewal["amount_paid"], 2900 - paid);
    assert_eq!(w.sim.object(&customer).unwrap()["balance"], 0);
    assert_eq!(
        w.one(&format!(
            "SELECT coalesce(sum(amount), 0) FROM credits WHERE tenant_id = '{t}'"
        ))
        .await
        .parse::<Decimal>()
        .unwrap(),
        Decimal::ZERO,
        "granted once, applied once"
    );
}

/// Regression (issue 16): after a Stripe outage at signup the checkout URL
/// could never be obtained again, and a session past Stripe's 24 h expiry
/// was handed out. Now `POST /v1/tenants/{id}/checkout` gives a valid one.
#[tokio::test]
async fn the_signup_checkout_can_be_obtained_again_and_an_expired_one_is_replaced() {
    let w = world().await;
    w.sim.fail_next(&[500; 12]);
    let res = w
        .app
        .client
        .post(w.app.url("/v1/signup"))
        .json(
            &json!({"company_name": "Outage", "slug": "outage", "email": "owner@outage.test",
                      "password": crate::helpers::PASSWORD, "product": "odoo", "plan": "basic"}),
        )
        .send()
        .await
        .unwrap();
    assert_problem(res, 503).await;
    let tenant: Uuid = w
        .one("SELECT id FROM tenants WHERE slug = 'outage'")
        .await
        .parse()
        .unwrap();
    let owner = w.app.login("owner@outage.test").await;
    // Stripe is still failing the requests it was told to: 503 until it answers.
    let mut res = None;
    for _ in 0..12 {
        let r = w
            .app
            .post_as(
                &format!("/v1/tenants/{tenant}/checkout"),
                &owner.access_token,
                json!({}),
            )
            .await;
        if r.status() == 200 {
            res = Some(r);
            break;
        }
        assert_eq!(r.status(), 503, "only the outage refuses it");
    }
    let res = res.expect("a checkout once Stripe answers");
    let first: Value = res.json().await.unwrap();
    assert_eq!(first["purpose"], "signup");
    assert_eq!(first["amount"]["amount"], "29.00");
    // Asked again while it can be paid: the same session.
    let again: Value = w
        .app
        .post_as(
            &format!("/v1/tenants/{tenant}/checkout"),
            &owner.access_token,
            json!({}),
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(again["session_id"], first["session_id"]);
    // A day later Stripe expired it: a new one.
    let admin = w.app.admin().await;
    w.advance_both(&admin.access_token, 25 * 3_600).await;
    let old = first["session_id"].as_str().unwrap();
    assert_eq!(w.sim.object(old).unwrap()["status"], "expired");
    let fresh: Value = w
        .app
        .post_as(
            &format!("/v1/tenants/{tenant}/checkout"),
            &owner.access_token,
            json!({}),
        )
        .await
        .json()
        .await
        .unwrap();
    assert_ne!(fresh["session_id"], first["session_id"]);
    assert_eq!(
        w.sim.object(fresh["session_id"].as_str().unwrap()).unwrap()["status"],
        "open"
    );
    w.sim
        .complete_checkout(fresh["session_id"].as_str().unwrap())
        .await;
    assert_eq!(w.tenant_status(tenant).await, "provisioning");
    assert_eq!(w.provision_jobs(tenant).await, 1);
}

/// Regression (issue 16): a completed Checkout was matched by
/// `client_reference_id` alone. A session we did not open, or one paid for
/// another amount, is recorded, not applied, and alerts an operator; a
/// payment naming another customer never replaces the one we hold.
#[tokio::test]
async fn payments_that_are_not_what_we_asked_are_recorded_not_applied() {
    let w = world().await;
    let (tenant, sub, _) = w.signup("strange", "basic").await;
    let ours = w
        .for_tenant(
            super::shaped("checkout.session.completed"),
            tenant,
            sub,
            "sub_strange",
        )
        .await;
    let mut foreign = ours.clone();
    foreign["id"] = json!(format!("evt_{}", Uuid::now_v7().simple()));
    foreign["data"]["object"]["id"] = json!("cs_test_not_ours");
    assert_eq!(w.deliver(&foreign).await["outcome"], "ignored");
    let mut cheaper = ours.clone();
    cheaper["id"] = json!(format!("evt_{}", Uuid::now_v7().simple()));
    cheaper["data"]["object"]["amount_total"] = json!(100);
    assert_eq!(w.deliver(&cheaper).await["outcome"], "ignored");
    let mut other_customer = ours.clone();
    other_customer["id"] = json!(format!("evt_{}", Uuid::now_v7().simple()));
    other_customer["data"]["object"]["customer"] = json!("cus_someone_else");
    assert_eq!(w.deliver(&other_customer).await["outcome"], "ignored");
    assert_eq!(w.tenant_status(tenant).await, "pending_payment");
    assert_eq!(w.provision_jobs(tenant).await, 0);
    assert_eq!(
        w.count("SELECT 1 FROM alerts WHERE kind = 'payment.unmatched' AND resolved_at IS NULL")
            .await,
        3
    );
    assert_eq!(
        w.one(&format!(
            "SELECT provider_customer_id FROM subscriptions WHERE id = '{sub}'"
        ))
        .await,
        w.customer(tenant).await
    );
    assert_ne!(w.customer(tenant).await, "cus_someone_else");
    // The real one applies.
    assert_eq!(w.deliver(&ours).await["outcome"], "applied");
    assert_eq!(w.tenant_status(tenant).await, "provisioning");
}

/// To lifetime: the one-time price is charged in full, and the recurring
/// Stripe subscription ends at its period end without renewing — the
/// tenant keeps its service.
#[tokio::test]
async fn an_upgrade_to_lifetime_ends_the_stripe_subscription_at_its_period_end() {
    let w = world().await;
    let admin = w.app.admin().await;
    let (t, token, stripe_sub) = paid_tenant_of(&w, "forever", "inventory", "starter").await;
    let customer = w.customer(t).await;
    let out: Value = w
        .app
        .post_as(
            &format!("/v1/tenants/{t}/plan-change"),
            &token,
            json!({"plan": "lifetime"}),
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(out["plan_change"]["status"], "applied");
    assert_eq!(
        out["plan_change"]["amount"]["amount"], "499.00",
        "the one-time price"
    );
    let paid_after_upgrade = paid_total(&w.invoices_of(&customer));
    w.sync(t).await;
    let subscription = w.sim.object(&stripe_sub).unwrap();
    assert_eq!(subscription["cancel_at_period_end"], true);
    let end = subscription["items"]["data"][0]["current_period_end"]
        .as_i64()
        .unwrap();
    w.advance_both(&admin.access_token, end - w.sim.now() + 60)
        .await;
    assert_eq!(w.sim.object(&stripe_sub).unwrap()["status"], "canceled");
    assert_eq!(
        paid_total(&w.invoices_of(&customer)),
        paid_after_upgrade,
        "no renewal"
    );
    assert_eq!(
        w.one(&format!("SELECT s.status || ' ' || t.status || ' ' || p.code FROM subscriptions s JOIN tenants t ON t.id = s.tenant_id JOIN plans p ON p.id = s.plan_id WHERE t.id = '{t}'")).await,
        "active active lifetime",
        "the service goes on"
    );
}

/// A subscription our dunning ends (`expired` after 14 days past due) is
/// canceled in Stripe at once: with the card working again, Stripe bills no
/// later period of a tenant that has no service (money is never kept
/// without the service). Its `customer.subscription.deleted` leaves ours
/// `expired`. Found by the billing oracle's stand-in path.
#[tokio::test]
async fn a_subscription_our_dunning_ends_is_canceled_in_stripe_and_bills_nothing_more() {
    let w = world().await;
    let admin = w.app.admin().await;
    let (t, _, stripe_sub) = paid_tenant(&w, "lapsed", "basic").await;
    let customer = w.customer(t).await;
    w.sim.decline(&customer, true);
    let end = w.sim.object(&stripe_sub).unwrap()["items"]["data"][0]["current_period_end"]
        .as_i64()
        .unwrap();
    // Both clocks to just before the period end, then past it: the renewal
    // is declined, past due since about then.
    w.advance_both(&admin.access_token, end - w.sim.now() - 60)
        .await;
    w.advance_both(&admin.access_token, 120).await;
    assert_eq!(
        w.one(&format!(
            "SELECT status FROM subscriptions WHERE tenant_id = '{t}'"
        ))
        .await,
        "past_due"
    );
    // Our failed charge asks for what Stripe's open invoice asks for (not
    // its `amount_paid`, 0).
    let open = w
        .invoices_of(&customer)
        .into_iter()
        .rfind(|i| i["billing_reason"] == "subscription_cycle")
        .unwrap();
    assert_eq!(open["status"], "open");
    assert_eq!(
        cents(&json!(
            w.one(&format!(
                "SELECT amount::text FROM charges WHERE tenant_id = '{t}' AND status = 'failed'"
            ))
            .await
        )),
        open["amount_due"].as_i64().unwrap()
    );
    // Fifteen days on, the processor ends the service and asks for a sync.
    w.advance_both(&admin.access_token, 15 * 86_400).await;
    assert_eq!(
        w.one(&format!(
            "SELECT status FROM subscriptions WHERE tenant_id = '{t}'"
        ))
        .await,
        "expired"
    );
    w.sync(t).await;
    assert_eq!(w.sim.object(&stripe_sub).unwrap()["status"], "canceled");
    assert_eq!(
        w.one(&format!(
            "SELECT status || ' ' || (price_synced_version = price_version) FROM subscriptions WHERE tenant_id = '{t}'"
        ))
        .await,
        "expired true",
        "Stripe's deletion event leaves ours expired"
    );
    // The card works again; months pass: Stripe takes nothing more.
    let paid_before = paid_total(&w.invoices_of(&customer));
    w.sim.decline(&customer, false);
    w.advance_both(&admin.access_token, 70 * 86_400).await;
    assert_eq!(paid_total(&w.invoices_of(&customer)), paid_before);
}

/// A bank transfer staff record after the change could be applied never
/// went through Stripe, so Stripe cannot give it back: the refund waits for
/// an operator (alert `refund.manual`), who returns it by hand and records
/// it with `POST /v1/charges/{id}/mark-refunded`. Found by the billing
/// oracle's stand-in path (the refund job failed for ever).
#[tokio::test]
async fn a_late_bank_transfer_is_given_back_by_hand_and_recorded() {
    let w = world().await;
    let admin = w.app.admin().await;
    let (t, token, out) = upgrade_before_period_end(&w, &admin.access_token, "wire").await;
    let change = out["plan_change"]["id"].as_str().unwrap().to_owned();
    // The period ends; the next morning staff record the customer's transfer.
    w.advance_both(&admin.access_token, 10 * 3_600).await;
    let paid: Value = w
        .app
        .post_as(
            &format!("/v1/tenants/{t}/plan-changes/{change}/mark-paid"),
            &admin.access_token,
            json!({"reference": "wire 42"}),
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(paid["payment"], "refunded", "{paid}");
    w.refund_jobs(t).await;
    assert!(w.sim.objects("refund").is_empty(), "Stripe never had it");
    let refund = w
        .one(&format!(
            "SELECT id FROM charges WHERE tenant_id = '{t}' AND kind = 'refund' AND status = 'pending'"
        ))
        .await;
    let open_alerts = async || {
        w.count(&format!(
            "SELECT 1 FROM alerts WHERE tenant_id = '{t}' AND kind = 'refund.manual' AND resolved_at IS NULL"
        ))
        .await
    };
    assert_eq!(open_alerts().await, 1);

    let path = format!("/v1/charges/{refund}/mark-refunded");
    let as_owner = w
        .app
        .post_as(&path, &token, json!({"reference": "wire back"}))
        .await;
    assert_problem(as_owner, 403).await;
    let empty = w
        .app
        .post_as(&path, &admin.access_token, json!({"reference": "  "}))
        .await;
    let p = assert_problem(empty, 422).await;
    assert!(
        p["type"].as_str().unwrap().ends_with("/validation-failed"),
        "{p}"
    );
    let upgrade = w
        .one(&format!(
            "SELECT id FROM charges WHERE tenant_id = '{t}' AND kind = 'upgrade'"
        ))
        .await;
    let not_a_refund = w
        .app
        .post_as(
            &format!("/v1/charges/{upgrade}/mark-refunded"),
            &admin.access_token,
            json!({"reference": "wire back"}),
        )
        .await;
    assert_problem(not_a_refund, 404).await;

    for _ in 0..2 {
        let done = w
            .app
            .post_as(
                &path,
                &admin.access_token,
                json!({"reference": "wire back 7"}),
            )
            .await;
        assert_eq!(done.status(), 200);
        let done: Value = done.json().await.unwrap();
        assert_eq!(
            (done["status"].as_str(), done["provider_reference"].as_str()),
            (Some("paid"), Some("wire back 7"))
        );
        assert_eq!(done["amount"], out["plan_change"]["amount"]);
    }
    let other = w
        .app
        .post_as(&path, &admin.access_token, json!({"reference": "another"}))
        .await;
    let p = assert_problem(other, 409).await;
    assert!(
        p["type"].as_str().unwrap().ends_with("/invalid-transition"),
        "{p}"
    );
    assert_eq!(open_alerts().await, 0, "the alert is resolved");
    assert_eq!(
        w.count(&format!(
            "SELECT 1 FROM activity_log WHERE tenant_id = '{t}' AND action = 'charge.refunded'"
        ))
        .await,
        1
    );
}

/// Stripe applies the customer balance to any invoice it finalizes, an
/// upgrade's too. A declined upgrade invoice is voided, which gives the
/// balance back (no credit is spent on a refused change); a paid one
/// records the credit it used against its charge (`credit_applied`, and
/// the ledger's applied row names the charge). Found by the billing
/// oracle's stand-in path.
#[tokio::test]
async fn a_credit_used_by_an_upgrade_invoice_is_recorded_on_its_charge_and_a_declined_one_gives_it_back()
 {
    let w = world().await;
    let admin = w.app.admin().await;
    let (t, token, _) = paid_tenant(&w, "credup", "basic").await;
    let customer = w.customer(t).await;
    w.advance_both(&admin.access_token, 12 * 86_400).await;
    let upgrade = async |plan: &str| -> reqwest::Response {
        w.app
            .post_as(
                &format!("/v1/tenants/{t}/plan-change"),
                &token,
                json!({"plan": plan}),
            )
            .await
    };
    let first: Value = upgrade("pro").await.json().await.unwrap();
    let change: Uuid = first["plan_change"]["id"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let credit = cents(&first["plan_change"]["amount"]["amount"]);
    crate::billing::fail_migration(&w.app, t, change).await;
    let job = w
        .one(&format!(
            "SELECT payload FROM jobs WHERE tenant_id = '{t}' AND kind = 'stripe.push_credit'"
        ))
        .await;
    w.run_job("stripe.push_credit", serde_json::from_str(&job).unwrap())
        .await
        .unwrap();
    w.sync(t).await;
    assert_eq!(w.sim.object(&customer).unwrap()["balance"], -credit);
    let ledger = async || -> Decimal {
        w.one(&format!(
            "SELECT coalesce(sum(amount), 0) FROM credits WHERE tenant_id = '{t}'"
        ))
        .await
        .parse()
        .unwrap()
    };

    // Declined (enterprise costs more than the credit covers): the invoice
    // is voided and the balance comes back.
    w.sim.decline(&customer, true);
    assert_eq!(upgrade("enterprise").await.status(), 402);
    let declined = w
        .invoices_of(&customer)
        .into_iter()
        .rfind(|i| i["metadata"]["plan_change_id"].is_string())
        .unwrap();
    assert_eq!(declined["status"], "void");
    assert_eq!(w.sim.object(&customer).unwrap()["balance"], -credit);
    assert_eq!(ledger().await * Decimal::from(100), Decimal::from(credit));

    // Paid: the balance pays what it covers, recorded on the charge.
    w.sim.decline(&customer, false);
    let paid = upgrade("pro").await;
    assert_eq!(paid.status(), 202);
    let paid: Value = paid.json().await.unwrap();
    let amount = cents(&paid["plan_change"]["amount"]["amount"]);
    let used = amount.min(credit);
    let invoice = w
        .invoices_of(&customer)
        .into_iter()
        .rfind(|i| i["status"] == "paid" && i["metadata"]["plan_change_id"].is_string())
        .unwrap();
    assert_eq!(invoice["amount_paid"], amount - used);
    let change = paid["plan_change"]["id"].as_str().unwrap();
    let row = w
        .one(&format!(
            "SELECT c.credit_applied::text || ' ' || (SELECT count(*) FROM credits k WHERE k.charge_id = c.id AND k.kind = 'applied')
             FROM charges c WHERE c.plan_change_id = '{change}' AND c.kind = 'upgrade'"
        ))
        .await;
    let (applied, rows) = row.split_once(' ').unwrap();
    assert_eq!(
        (
            applied.parse::<Decimal>().unwrap() * Decimal::from(100),
            rows
        ),
        (Decimal::from(used), "1")
    );
    assert_eq!(
        ledger().await * Decimal::from(100),
        Decimal::from(credit - used)
    );
    assert_eq!(
        w.sim.object(&customer).unwrap()["balance"],
        -(credit - used),
        "Stripe's balance and our ledger agree"
    );
}

/// Regression (issue 16, found by the billing oracle): a month → year
/// upgrade restarts Stripe's cycle; when its migration then fails, our
/// period goes back to the month the upgrade replaced, and moving Stripe
/// back to the monthly Price would restart its cycle a second time (and
/// invoice a month now). Now Stripe keeps our period with a trial to its
/// end: nothing is billed before it, the anchor moves there, and the first
/// monthly renewal after it is paid from the migration's credit.
#[tokio::test]
async fn a_failed_migration_of_a_month_to_year_upgrade_puts_stripe_back_on_our_period() {
    let w = world().await;
    let admin = w.app.admin().await;
    let (t, token, stripe_sub) = paid_tenant(&w, "backtomonth", "basic").await;
    let customer = w.customer(t).await;
    let period_sql = format!(
        "SELECT extract(epoch FROM current_period_start)::bigint || ' ' || extract(epoch FROM current_period_end)::bigint || ' ' || extract(epoch FROM billing_anchor)::bigint FROM subscriptions WHERE tenant_id = '{t}'"
    );
    let month = w.one(&period_sql).await;
    w.advance_both(&admin.access_token, 5 * 86_400).await;
    let out: Value = w
        .app
        .post_as(
            &format!("/v1/tenants/{t}/plan-change"),
            &token,
            json!({"plan": "basic-yearly"}),
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(out["plan_change"]["status"], "applied");
    let change: Uuid = out["plan_change"]["id"].as_str().unwrap().parse().unwrap();
    let charged = cents(&out["plan_change"]["amount"]["amount"]);
    w.sync(t).await;
    assert_eq!(
        w.sim.object(&stripe_sub).unwrap()["items"]["data"][0]["price"]["recurring"]["interval"],
        "year"
    );
    let paid_before = paid_total(&w.invoices_of(&customer));
    let invoices_before = w.invoices_of(&customer).len();

    crate::billing::fail_migration(&w.app, t, change).await;
    assert_eq!(w.one(&period_sql).await, month, "our month is back");
    let job = w
        .one(&format!(
            "SELECT payload FROM jobs WHERE tenant_id = '{t}' AND kind = 'stripe.push_credit'"
        ))
        .await;
    w.run_job("stripe.push_credit", serde_json::from_str(&job).unwrap())
        .await
        .unwrap();
    w.sync(t).await;
    let subscription = w.sim.object(&stripe_sub).unwrap();
    let item = &subscription["items"]["data"][0];
    assert_eq!(item["price"]["recurring"]["interval"], "month");
    assert_eq!(subscription["status"], "trialing");
    let end: i64 = month.split(' ').nth(1).unwrap().parse().unwrap();
    assert_eq!(
        item["current_period_end"], end,
        "Stripe's period ends with ours"
    );
    assert_eq!(subscription["billing_cycle_anchor"], end);
    assert_eq!(
        w.invoices_of(&customer).len(),
        invoices_before,
        "nothing invoiced when the Price goes back"
    );
    let start = month.split(' ').next().unwrap();
    assert_eq!(
        w.one(&period_sql).await,
        format!("{start} {end} {end}"),
        "our anchor is Stripe's"
    );

    // The month's end: one monthly renewal, paid from the credit.
    w.advance_both(&admin.access_token, end - w.sim.now() + 60)
        .await;
    let renewals: Vec<Value> = w
        .invoices_of(&customer)
        .into_iter()
        .skip(invoices_before)
        .collect();
    assert_eq!(renewals.len(), 1, "{renewals:?}");
    assert_eq!(renewals[0]["billing_reason"], "subscription_cycle");
    assert_eq!(renewals[0]["total"], 2900);
    assert_eq!(renewals[0]["lines"]["data"][0]["period"]["start"], end);
    assert_eq!(
        paid_total(&w.invoices_of(&customer)),
        paid_before,
        "no card payment"
    );
    assert_eq!(
        w.sim.object(&customer).unwrap()["balance"],
        -(charged - 2900),
        "the rest of the credit stays on the balance"
    );
    assert_eq!(
        w.one(&format!(
            "SELECT extract(epoch FROM current_period_start)::bigint FROM subscriptions WHERE tenant_id = '{t}'"
        ))
        .await,
        end.to_string()
    );
    assert_eq!(
        w.one(&format!(
            "SELECT coalesce(sum(amount), 0) FROM credits WHERE tenant_id = '{t}'"
        ))
        .await
        .parse::<Decimal>()
        .unwrap(),
        Decimal::new(charged - 2900, 2),
        "our ledger says what Stripe's balance does"
    );
}

/// Regression (issue 16, found by the billing oracle): after a move to
/// lifetime the recurring Stripe subscription ends at its period end; when
/// the migration fails after that, the tenant goes back to its monthly plan
/// and nothing billed it. Now the price sync replaces the ended Stripe
/// subscription: Stripe bills the new period at once from the customer's
/// balance (the failed migration's credit), ours follows it, and Stripe
/// renews it from then on.
#[tokio::test]
async fn a_failed_move_to_lifetime_after_the_stripe_subscription_ended_gets_a_new_one() {
    let w = world().await;
    let admin = w.app.admin().await;
    let (t, token, stripe_sub) = paid_tenant_of(&w, "relapse", "inventory", "starter").await;
    let customer = w.customer(t).await;
    let out: Value = w
        .app
        .post_as(
            &format!("/v1/tenants/{t}/plan-change"),
            &token,
            json!({"plan": "lifetime"}),
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(out["plan_change"]["status"], "applied");
    let change: Uuid = out["plan_change"]["id"].as_str().unwrap().parse().unwrap();
    let lifetime = cents(&out["plan_change"]["amount"]["amount"]);
    w.sync(t).await;
    let end = w.sim.object(&stripe_sub).unwrap()["items"]["data"][0]["current_period_end"]
        .as_i64()
        .unwrap();
    w.advance_both(&admin.access_token, end - w.sim.now() + 3_600)
        .await;
    assert_eq!(w.sim.object(&stripe_sub).unwrap()["status"], "canceled");
    let paid_before = paid_total(&w.invoices_of(&customer));

    crate::billing::fail_migration(&w.app, t, change).await;
    // The sync runs before the credit's own job: it carries the credit
    // first, so the new subscription's first invoice uses it. Twice: the
    // second pass finds Stripe as we want it.
    w.sync(t).await;
    w.sync(t).await;
    let job = w
        .one(&format!(
            "SELECT payload FROM jobs WHERE tenant_id = '{t}' AND kind = 'stripe.push_credit'"
        ))
        .await;
    w.run_job("stripe.push_credit", serde_json::from_str(&job).unwrap())
        .await
        .unwrap();
    assert_eq!(
        w.sim
            .objects("customer_balance_transaction")
            .into_iter()
            .filter(|b| b["customer"] == customer.as_str() && b["amount"] == -lifetime)
            .count(),
        1,
        "the credit reached Stripe once"
    );

    let new_sub = w
        .one(&format!(
            "SELECT provider_subscription_id FROM subscriptions WHERE tenant_id = '{t}'"
        ))
        .await;
    assert_ne!(
        new_sub, stripe_sub,
        "ours names the new Stripe subscription"
    );
    let replacement = w.sim.object(&new_sub).unwrap();
    assert_eq!(replacement["status"], "active");
    assert_eq!(replacement["metadata"]["replaces"], stripe_sub.as_str());
    let monthly = cents(&json!(
        w.one(&format!("SELECT p.price::text FROM subscriptions s JOIN plans p ON p.id = s.plan_id WHERE s.tenant_id = '{t}'"))
            .await
    ));
    let first: Vec<Value> = w
        .invoices_of(&customer)
        .into_iter()
        .filter(|i| i["subscription"] == new_sub.as_str())
        .collect();
    assert_eq!(first.len(), 1, "one invoice: {first:?}");
    assert_eq!(first[0]["billing_reason"], "subscription_create");
    assert_eq!(first[0]["total"], monthly);
    assert_eq!(first[0]["amount_paid"], 0, "paid from the credit");
    assert_eq!(paid_total(&w.invoices_of(&customer)), paid_before);
    let period = &first[0]["lines"]["data"][0]["period"];
    assert_eq!(
        w.one(&format!("SELECT extract(epoch FROM current_period_start)::bigint || ' ' || extract(epoch FROM current_period_end)::bigint || ' ' || extract(epoch FROM billing_anchor)::bigint || ' ' || s.status || ' ' || p.code FROM subscriptions s JOIN plans p ON p.id = s.plan_id WHERE s.tenant_id = '{t}'")).await,
        format!("{} {} {} active starter", period["start"], period["end"], period["start"]),
        "our period is the new subscription's"
    );
    assert_eq!(
        w.one(&format!(
            "SELECT count(*) FROM activity_log WHERE tenant_id = '{t}' AND action = 'subscription.provider_replaced'"
        ))
        .await,
        "1"
    );

    // Stripe renews the new subscription; ours follows; the credit runs down.
    let next_end = period["end"].as_i64().unwrap();
    w.advance_both(&admin.access_token, next_end - w.sim.now() + 60)
        .await;
    let renewals: Vec<Value> = w
        .invoices_of(&customer)
        .into_iter()
        .filter(|i| {
            i["subscription"] == new_sub.as_str() && i["billing_reason"] == "subscription_cycle"
        })
        .collect();
    assert_eq!(renewals.len(), 1);
    assert_eq!(
        w.one(&format!(
            "SELECT extract(epoch FROM current_period_start)::bigint FROM subscriptions WHERE tenant_id = '{t}'"
        ))
        .await,
        next_end.to_string()
    );
    assert_eq!(
        w.one(&format!(
            "SELECT coalesce(sum(amount), 0) FROM credits WHERE tenant_id = '{t}'"
        ))
        .await
        .parse::<Decimal>()
        .unwrap(),
        Decimal::new(lifetime - 2 * monthly, 2),
        "our ledger says what Stripe's balance does"
    );
    assert_eq!(
        w.sim.object(&customer).unwrap()["balance"],
        -(lifetime - 2 * monthly)
    );
}

impl World {
    /// A paid signup whose provisioning gave up, as provisioning records it:
    /// tenant `failed` and its `provisioning_failed` event, in one transaction.
    async fn paid_signup_failed(&self, slug: &str) -> (Uuid, String) {
        let (tenant, _, url) = self.signup(slug, "basic").await;
        self.sim.complete_checkout(&World::session_of(&url)).await;
        assert_eq!(self.tenant_status(tenant).await, "provisioning");
        let mut conn = self.app.pool().get().await.unwrap();
        tenantry_store::AsyncConnection::transaction::<_, tenantry_store::StoreError, _>(
            &mut conn,
            async |conn| {
                tenantry_store::tenants::transition(
                    conn,
                    tenant,
                    tenantry_domain::TenantStatus::Failed,
                    Some("no node has room"),
                )
                .await
                .map_err(|e| match e {
                    tenantry_store::tenants::TransitionError::Store(e) => e,
                    other => panic!("{other:?}"),
                })?;
                tenantry_store::deployments::record_provisioning_failed(
                    conn,
                    tenant,
                    json!({"reason": "no node has room"}),
                )
                .await
            },
        )
        .await
        .unwrap();
        let stripe_sub = self
            .one(&format!(
                "SELECT provider_subscription_id FROM subscriptions WHERE tenant_id = '{tenant}'"
            ))
            .await;
        (tenant, stripe_sub)
    }

    /// Provisioning's activation, as it runs it: the tenant `active` and
    /// billing's `service_started`, in one transaction.
    async fn serve(&self, tenant: Uuid) {
        let follow_up = tenantry_billing::BillingFollowUp {
            clock: self.clock(),
        };
        let mut conn = self.app.pool().get().await.unwrap();
        tenantry_store::AsyncConnection::transaction::<_, tenantry_store::StoreError, _>(
            &mut conn,
            async |conn| {
                tenantry_store::tenants::mark_provisioned(conn, tenant)
                    .await
                    .map_err(|e| match e {
                        tenantry_store::tenants::TransitionError::Store(e) => e,
                        other => panic!("{other:?}"),
                    })?;
                tenantry_store::events::ProvisioningEvents::service_started(
                    &follow_up, conn, tenant,
                )
                .await
            },
        )
        .await
        .unwrap();
    }
}

/// Point 6 (issue 16), a refund-worthy failure besides a failed migration:
/// a paid signup whose provisioning gave up, served days later after a
/// retry, is credited for the paid time without service (per second), once;
/// the credit reaches the Stripe balance and pays part of the renewal.
#[tokio::test]
async fn a_paid_signup_served_late_after_its_provisioning_failed_is_credited_the_time_without_service()
 {
    let w = world().await;
    let admin = w.app.admin().await;
    let (t, stripe_sub) = w.paid_signup_failed("latecomer").await;
    let customer = w.customer(t).await;
    let item = w.sim.object(&stripe_sub).unwrap()["items"]["data"][0].clone();
    let (start, end) = (
        item["current_period_start"].as_i64().unwrap(),
        item["current_period_end"].as_i64().unwrap(),
    );
    w.advance_both(&admin.access_token, 6 * 86_400 + 3_600)
        .await;
    let res = w
        .app
        .post_as(
            &format!("/v1/tenants/{t}/retry-provisioning"),
            &admin.access_token,
            json!({}),
        )
        .await;
    assert_eq!(res.status(), 202);
    w.serve(t).await;
    let served: i64 = w
        .one("SELECT extract(epoch FROM occurred_at)::bigint FROM activity_log WHERE action = 'credit.granted' ORDER BY occurred_at DESC LIMIT 1")
        .await
        .parse()
        .unwrap();
    assert!(
        (served - (start + 6 * 86_400 + 3_600)).abs() <= 5,
        "credited at the service's start on the billing clock"
    );
    // 29.00 for [start, end), the part before the service: half-up cents.
    let unserved = served - start;
    let length = end - start;
    let expected = (2 * 2_900 * unserved + length) / (2 * length);
    let credited = cents(&json!(
        w.one(&format!(
            "SELECT amount::text FROM credits WHERE tenant_id = '{t}' AND reason = 'provisioning_failed'"
        ))
        .await
    ));
    assert!(
        (credited - expected).abs() <= 1,
        "{credited} cents for {unserved} s of {length} s (expected about {expected})"
    );
    assert_eq!(
        w.one(&format!(
            "SELECT status FROM subscriptions WHERE tenant_id = '{t}'"
        ))
        .await,
        "active"
    );
    // Served again (a repeated job step): no second credit.
    w.serve(t).await;
    assert_eq!(
        w.count(&format!(
            "SELECT 1 FROM credits WHERE tenant_id = '{t}' AND kind = 'granted'"
        ))
        .await,
        1
    );
    let job = w
        .one(&format!(
            "SELECT payload FROM jobs WHERE tenant_id = '{t}' AND kind = 'stripe.push_credit'"
        ))
        .await;
    w.run_job("stripe.push_credit", serde_json::from_str(&job).unwrap())
        .await
        .unwrap();
    assert_eq!(w.sim.object(&customer).unwrap()["balance"], -credited);
    w.advance_both(&admin.access_token, end - w.sim.now() + 60)
        .await;
    let renewal = w
        .invoices_of(&customer)
        .into_iter()
        .rfind(|i| i["billing_reason"] == "subscription_cycle")
        .expect("the renewal");
    assert_eq!(renewal["amount_paid"], 2_900 - credited);
}

/// Deleting a tenant used to leave its subscription billing (our renewals
/// and Stripe's). Now deleting ends it; a tenant never served (its
/// provisioning failed) gets its payment back in full through Stripe, once,
/// and Stripe's subscription is canceled: nothing more is billed.
#[tokio::test]
async fn deleting_a_never_served_tenant_refunds_its_payment_and_cancels_its_stripe_subscription() {
    let w = world().await;
    let admin = w.app.admin().await;
    let (t, stripe_sub) = w.paid_signup_failed("neverserved").await;
    let customer = w.customer(t).await;
    let paid = paid_total(&w.invoices_of(&customer));
    assert_eq!(paid, 2_900);
    w.advance_both(&admin.access_token, 2 * 86_400).await;
    let res = w
        .app
        .delete_as(&format!("/v1/tenants/{t}"), &admin.access_token)
        .await;
    assert_eq!(res.status(), 202);
    assert_eq!(
        w.one(&format!(
            "SELECT status FROM subscriptions WHERE tenant_id = '{t}'"
        ))
        .await,
        "canceled"
    );
    w.sync(t).await;
    assert_eq!(w.sim.object(&stripe_sub).unwrap()["status"], "canceled");
    w.refund_jobs(t).await;
    let refunds: Vec<Value> = w
        .sim
        .objects("refund")
        .into_iter()
        .filter(|r| r["status"] == "succeeded")
        .collect();
    assert_eq!(refunds.len(), 1, "refunded once: {refunds:?}");
    assert_eq!(refunds[0]["amount"], paid);
    assert_eq!(
        w.one(&format!(
            "SELECT status || ' ' || (amount = 29)::text FROM charges WHERE tenant_id = '{t}' AND kind = 'refund'"
        ))
        .await,
        "paid true"
    );
    assert_eq!(
        w.count(&format!(
            "SELECT 1 FROM activity_log WHERE tenant_id = '{t}' AND action IN ('subscription.canceled', 'charge.refund_requested', 'charge.refunded')"
        ))
        .await,
        3
    );
    // A month and more: Stripe bills nothing more.
    w.advance_both(&admin.access_token, 40 * 86_400).await;
    assert_eq!(w.invoices_of(&customer).len(), 1);
}

/// The rarer order of [`a_failed_migration_of_a_month_to_year_upgrade_puts_stripe_back_on_our_period`]:
/// the migration fails after the month it puts back is over. No trial can
/// end in the past: Stripe restarts its monthly cycle now and invoices it,
/// paid from the migration's credit first, and our period follows that
/// invoice (no time billed twice; the weeks between are not billed).
#[tokio::test]
async fn a_failed_migration_after_the_month_it_restores_ended_restarts_stripe_monthly_now() {
    let w = world().await;
    let admin = w.app.admin().await;
    let (t, token, stripe_sub) = paid_tenant(&w, "latefail", "basic").await;
    let customer = w.customer(t).await;
    let out: Value = w
        .app
        .post_as(
            &format!("/v1/tenants/{t}/plan-change"),
            &token,
            json!({"plan": "basic-yearly"}),
        )
        .await
        .json()
        .await
        .unwrap();
    let change: Uuid = out["plan_change"]["id"].as_str().unwrap().parse().unwrap();
    let charged = cents(&out["plan_change"]["amount"]["amount"]);
    w.sync(t).await;
    w.advance_both(&admin.access_token, 45 * 86_400).await;
    let paid_before = paid_total(&w.invoices_of(&customer));
    crate::billing::fail_migration(&w.app, t, change).await;
    w.sync(t).await;
    w.sync(t).await;
    let subscription = w.sim.object(&stripe_sub).unwrap();
    assert_eq!(
        subscription["items"]["data"][0]["price"]["recurring"]["interval"],
        "month"
    );
    assert_eq!(subscription["status"], "active");
    let restart = w
        .invoices_of(&customer)
        .into_iter()
        .rfind(|i| i["billing_reason"] == "subscription_update")
        .unwrap();
    assert_eq!(restart["total"], 2_900);
    assert_eq!(restart["amount_paid"], 0, "paid from the credit");
    assert_eq!(paid_total(&w.invoices_of(&customer)), paid_before);
    let period = &restart["lines"]["data"][0]["period"];
    assert!((period["start"].as_i64().unwrap() - w.sim.now()).abs() <= 5);
    assert_eq!(
        w.one(&format!("SELECT extract(epoch FROM current_period_start)::bigint || ' ' || extract(epoch FROM current_period_end)::bigint || ' ' || extract(epoch FROM billing_anchor)::bigint FROM subscriptions WHERE tenant_id = '{t}'")).await,
        format!("{} {} {}", period["start"], period["end"], period["start"])
    );
    assert_eq!(
        w.one(&format!(
            "SELECT coalesce(sum(amount), 0) FROM credits WHERE tenant_id = '{t}'"
        ))
        .await
        .parse::<Decimal>()
        .unwrap(),
        Decimal::new(charged - 2_900, 2),
        "the credit paid the month; the rest is left"
    );
}
