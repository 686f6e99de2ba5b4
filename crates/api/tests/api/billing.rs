//! The billing engine through the API (and, for dunning, with a scripted
//! gateway): previews, upgrades on payment, scheduled downgrades, the
//! processor, renewals and dunning, the sandbox clock, regressions.

use chrono::{DateTime, Duration, Utc};
use rust_decimal::{Decimal, RoundingStrategy};
use rust_decimal_macros::dec;
use serde_json::{Value, json};
use tenantry_billing::{Clock, EngineSettings, ScriptedGateway, engine};
use tenantry_domain::Role;

use crate::helpers::{Session, TestApp, assert_problem, spawn_app, spawn_app_with};

fn dec_of(v: &Value) -> Decimal {
    v.as_str().unwrap().parse().unwrap()
}

fn time(v: &Value) -> DateTime<Utc> {
    v.as_str().unwrap().parse().unwrap()
}

/// Stripe's proration, computed here from its published rule: each line
/// price × remaining / period length, rounded to the cent.
fn stripe_line(
    price: Decimal,
    start: DateTime<Utc>,
    end: DateTime<Utc>,
    at: DateTime<Utc>,
) -> Decimal {
    let len = Decimal::from((end - start).num_seconds());
    let rem = Decimal::from((end - at).num_seconds());
    (price * rem / len).round_dp_with_strategy(2, RoundingStrategy::MidpointAwayFromZero)
}

async fn owner_of(app: &TestApp, slug: &str, product: &str, plan: &str) -> (uuid::Uuid, Session) {
    let t = app.tenant_on(slug, product, plan).await;
    let s = app
        .user(&format!("owner@{slug}.test"), Role::TenantOwner, Some(t))
        .await;
    (t, s)
}

async fn subscription(app: &TestApp, t: uuid::Uuid, token: &str) -> Value {
    app.get_as(&format!("/v1/tenants/{t}/subscription"), token)
        .await
        .json()
        .await
        .unwrap()
}

async fn set_saved_method(app: &TestApp, t: uuid::Uuid) {
    app.sql()
        .await
        .execute(
            "UPDATE subscriptions SET saved_payment_method = true WHERE tenant_id = $1",
            &[&t],
        )
        .await
        .unwrap();
}

#[tokio::test]
async fn an_upgrade_is_quoted_exactly_and_applied_once_paid() {
    let app = spawn_app().await;
    let admin = app.admin().await;
    let (t, owner) = owner_of(&app, "acme", "odoo", "basic").await;
    // Move into the period a little, so the proration is not trivial.
    app.sql().await.execute("UPDATE subscriptions SET current_period_start = current_period_start - interval '9 days 7 hours', current_period_end = current_period_end - interval '9 days 7 hours', billing_anchor = billing_anchor - interval '9 days 7 hours' WHERE tenant_id = $1", &[&t]).await.unwrap();
    let sub = subscription(&app, t, &owner.access_token).await;
    let (start, end) = (
        time(&sub["current_period_start"]),
        time(&sub["current_period_end"]),
    );

    let preview: Value = app
        .post_as(
            &format!("/v1/tenants/{t}/plan-change/preview"),
            &owner.access_token,
            json!({"plan": "pro"}),
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(preview["kind"], "upgrade");
    assert_eq!(preview["timing"], "on_payment");
    let at = time(&preview["proration_date"]);
    let credit = stripe_line(dec!(29), start, end, at);
    let charge = stripe_line(dec!(49), start, end, at);
    assert_eq!(dec_of(&preview["lines"][0]["amount"]["amount"]), -credit);
    assert_eq!(dec_of(&preview["lines"][1]["amount"]["amount"]), charge);
    assert_eq!(dec_of(&preview["amount_due"]), charge - credit);
    assert_eq!(preview["currency"], "USD");
    assert_eq!(time(&preview["lines"][1]["period_end"]), end);

    // The request with the preview's proration date is charged exactly the preview (Lago PR #5522).
    let res = app
        .post_as(
            &format!("/v1/tenants/{t}/plan-change"),
            &owner.access_token,
            json!({"plan": "pro", "proration_date": preview["proration_date"]}),
        )
        .await;
    assert_eq!(res.status(), 202);
    let out: Value = res.json().await.unwrap();
    assert_eq!(out["plan_change"]["status"], "pending");
    assert_eq!(out["payment"], "checkout_required");
    assert!(
        out["checkout_url"]
            .as_str()
            .unwrap()
            .contains("/sandbox/checkout/")
    );
    assert_eq!(
        out["plan_change"]["amount"]["amount"],
        preview["amount_due"]
    );
    // Not paid yet: still on basic.
    let tenant: Value = app
        .get_as(&format!("/v1/tenants/{t}"), &owner.access_token)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(tenant["plan"], "basic");
    assert_eq!(
        subscription(&app, t, &owner.access_token).await["scheduled_plan_change"]["status"],
        "pending"
    );

    // Paid (an operator records it: the sandbox stands in for the provider's webhook).
    let change_id = out["plan_change"]["id"].as_str().unwrap();
    let paid = app
        .post_as(
            &format!("/v1/tenants/{t}/plan-changes/{change_id}/mark-paid"),
            &admin.access_token,
            json!({"reference": "wire-123"}),
        )
        .await;
    assert_eq!(paid.status(), 200);
    let paid: Value = paid.json().await.unwrap();
    assert_eq!(paid["plan_change"]["status"], "applied");
    assert_eq!(
        paid["job"]["kind"], "migrate",
        "shared → dedicated starts the migration"
    );
    let tenant: Value = app
        .get_as(&format!("/v1/tenants/{t}"), &owner.access_token)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        (tenant["plan"].as_str(), tenant["deployment"].as_str()),
        (Some("pro"), Some("dedicated"))
    );
    let sub = subscription(&app, t, &owner.access_token).await;
    assert_eq!(
        sub["next_charge_amount"]["amount"], "49.00",
        "the next renewal uses the new price"
    );
    // Paying twice changes nothing.
    assert_eq!(
        app.post_as(
            &format!("/v1/tenants/{t}/plan-changes/{change_id}/mark-paid"),
            &admin.access_token,
            json!({"reference": "wire-123"})
        )
        .await
        .status(),
        200
    );
    let charges: i64 = app
        .sql()
        .await
        .query_one("SELECT count(*) FROM charges WHERE tenant_id = $1", &[&t])
        .await
        .unwrap()
        .get(0);
    assert_eq!(charges, 1);
}

#[tokio::test]
async fn a_saved_payment_method_is_charged_and_the_upgrade_applies_at_once() {
    let app = spawn_app().await;
    let (t, owner) = owner_of(&app, "acme", "inventory", "starter").await;
    set_saved_method(&app, t).await;
    let res = app
        .post_as(
            &format!("/v1/tenants/{t}/plan-change"),
            &owner.access_token,
            json!({"plan": "business"}),
        )
        .await;
    assert_eq!(res.status(), 202);
    let out: Value = res.json().await.unwrap();
    assert_eq!(out["payment"], "charged_to_saved_payment_method");
    assert_eq!(out["plan_change"]["status"], "applied");
    assert_eq!(out["job"], Value::Null, "shared → shared: no migration");
    let charge: (String, Decimal) = {
        let row = app
            .sql()
            .await
            .query_one(
                "SELECT status, amount::text FROM charges WHERE tenant_id = $1",
                &[&t],
            )
            .await
            .unwrap();
        (row.get(0), row.get::<_, String>(1).parse().unwrap())
    };
    assert_eq!(charge.0, "paid");
    assert_eq!(charge.1, dec_of(&out["plan_change"]["amount"]["amount"]));
}

#[tokio::test]
async fn downgrades_wait_for_the_period_end_and_can_be_canceled() {
    let app = spawn_app().await;
    let (t, owner) = owner_of(&app, "acme", "odoo", "pro").await;
    let res = app
        .post_as(
            &format!("/v1/tenants/{t}/plan-change"),
            &owner.access_token,
            json!({"plan": "basic"}),
        )
        .await;
    assert_eq!(res.status(), 201);
    let out: Value = res.json().await.unwrap();
    let sub = subscription(&app, t, &owner.access_token).await;
    assert_eq!(out["plan_change"]["status"], "scheduled");
    assert_eq!(out["plan_change"]["kind"], "downgrade");
    assert_eq!(
        out["plan_change"]["effective_at"],
        sub["current_period_end"]
    );
    assert_eq!(out["plan_change"]["amount"]["amount"], "0.00");
    assert_eq!(sub["scheduled_plan_change"]["to_plan"], "basic");
    assert_eq!(
        sub["next_charge_amount"]["amount"], "29.00",
        "the renewal at the period end bills the new plan"
    );
    let tenant: Value = app
        .get_as(&format!("/v1/tenants/{t}"), &owner.access_token)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(tenant["plan"], "pro", "the current plan stays until then");
    // One open change at a time.
    let body = assert_problem(
        app.post_as(
            &format!("/v1/tenants/{t}/plan-change"),
            &owner.access_token,
            json!({"plan": "enterprise"}),
        )
        .await,
        409,
    )
    .await;
    assert_eq!(
        body["type"],
        "https://tenantry.dev/problems/plan-change-pending"
    );

    let del = app
        .request(
            reqwest::Method::DELETE,
            &format!("/v1/tenants/{t}/scheduled-plan-change"),
            &owner.access_token,
        )
        .send()
        .await
        .unwrap();
    assert_eq!(del.status(), 200);
    assert_eq!(del.json::<Value>().await.unwrap()["status"], "canceled");
    let again = app
        .request(
            reqwest::Method::DELETE,
            &format!("/v1/tenants/{t}/scheduled-plan-change"),
            &owner.access_token,
        )
        .send()
        .await
        .unwrap();
    assert_problem(again, 404).await;
    assert_eq!(
        subscription(&app, t, &owner.access_token).await["scheduled_plan_change"],
        Value::Null
    );
    let history: Value = app
        .get_as(
            &format!("/v1/tenants/{t}/plan-changes"),
            &owner.access_token,
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(history["items"][0]["status"], "canceled");
    assert_eq!(history["items"][0]["actor"], "owner@acme.test");
}

#[tokio::test]
async fn bad_requests_are_refused_and_change_nothing() {
    let app = spawn_app().await;
    let admin = app.admin().await;
    let (t, owner) = owner_of(&app, "acme", "odoo", "basic").await;
    let post = async |body: Value| {
        app.post_as(
            &format!("/v1/tenants/{t}/plan-change"),
            &owner.access_token,
            body,
        )
        .await
    };
    let body = assert_problem(post(json!({"plan": "basic"})).await, 409).await;
    assert_eq!(body["type"], "https://tenantry.dev/problems/same-plan");
    let body = assert_problem(post(json!({"plan": "starter"})).await, 422).await;
    assert_eq!(body["errors"][0]["field"], "plan", "another product's plan");
    app.post_as(
        "/v1/products/odoo/plans/enterprise/deactivate",
        &admin.access_token,
        json!({}),
    )
    .await;
    assert_problem(post(json!({"plan": "enterprise"})).await, 422).await;
    // Staff-only immediate change.
    assert_problem(
        post(json!({"plan": "pro", "immediate": true, "reason": "x"})).await,
        403,
    )
    .await;
    let body = assert_problem(
        app.post_as(
            &format!("/v1/tenants/{t}/plan-change"),
            &admin.access_token,
            json!({"plan": "pro", "immediate": true}),
        )
        .await,
        422,
    )
    .await;
    assert_eq!(body["errors"][0]["field"], "reason");
    let n: i64 = app
        .sql()
        .await
        .query_one("SELECT count(*) FROM plan_changes", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(n, 0);
    // Members cannot change plans.
    let member = app.user("m@acme.test", Role::TenantMember, Some(t)).await;
    assert_problem(
        app.post_as(
            &format!("/v1/tenants/{t}/plan-change"),
            &member.access_token,
            json!({"plan": "pro"}),
        )
        .await,
        403,
    )
    .await;
}

#[tokio::test]
async fn staff_change_plans_at_once_with_a_reason() {
    let app = spawn_app().await;
    let op = app.user("op@example.test", Role::Operator, None).await;
    let t = app.tenant_on("acme", "odoo", "pro").await;
    let res = app
        .post_as(
            &format!("/v1/tenants/{t}/plan-change"),
            &op.access_token,
            json!({"plan": "basic", "immediate": true, "reason": "compensation for an outage"}),
        )
        .await;
    assert_eq!(res.status(), 200);
    let out: Value = res.json().await.unwrap();
    assert_eq!(out["plan_change"]["status"], "applied");
    assert_eq!(out["plan_change"]["timing"], "immediate");
    assert_eq!(out["plan_change"]["reason"], "compensation for an outage");
    assert_eq!(out["job"]["kind"], "migrate", "dedicated → shared");
    let tenant: Value = app
        .get_as(&format!("/v1/tenants/{t}"), &op.access_token)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(tenant["plan"], "basic");
}

#[tokio::test]
async fn a_lifetime_plan_cannot_be_downgraded_by_its_customer_but_by_an_admin() {
    let app = spawn_app().await;
    let admin = app.admin().await;
    let (t, owner) = owner_of(&app, "acme", "inventory", "lifetime").await;
    let body = assert_problem(
        app.post_as(
            &format!("/v1/tenants/{t}/plan-change"),
            &owner.access_token,
            json!({"plan": "enterprise"}),
        )
        .await,
        422,
    )
    .await;
    assert_eq!(
        body["type"],
        "https://tenantry.dev/problems/change-not-allowed"
    );
    let ok = app.post_as(&format!("/v1/tenants/{t}/plan-change"), &admin.access_token, json!({"plan": "enterprise", "immediate": true, "reason": "customer request, refunded"})).await;
    assert_eq!(ok.status(), 200);
}

#[tokio::test]
async fn an_unpaid_upgrade_expires_and_stops_blocking() {
    // Paymenter #1266: an unpaid upgrade must not lock the tenant forever.
    let app = spawn_app().await;
    let (t, owner) = owner_of(&app, "acme", "odoo", "basic").await;
    let first: Value = app
        .post_as(
            &format!("/v1/tenants/{t}/plan-change"),
            &owner.access_token,
            json!({"plan": "pro"}),
        )
        .await
        .json()
        .await
        .unwrap();
    let due_by = time(&first["plan_change"]["payment_due_by"]);
    let requested = time(&first["plan_change"]["requested_at"]);
    assert_eq!(due_by - requested, Duration::hours(24));
    assert_problem(
        app.post_as(
            &format!("/v1/tenants/{t}/plan-change"),
            &owner.access_token,
            json!({"plan": "enterprise"}),
        )
        .await,
        409,
    )
    .await;
    // The payment window passes.
    app.sql().await.execute("UPDATE plan_changes SET payment_due_by = now() - interval '1 second' WHERE tenant_id = $1", &[&t]).await.unwrap();
    let second = app
        .post_as(
            &format!("/v1/tenants/{t}/plan-change"),
            &owner.access_token,
            json!({"plan": "enterprise"}),
        )
        .await;
    assert_eq!(second.status(), 202);
    let history: Value = app
        .get_as(
            &format!("/v1/tenants/{t}/plan-changes"),
            &owner.access_token,
        )
        .await
        .json()
        .await
        .unwrap();
    let statuses: Vec<&str> = history["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["status"].as_str().unwrap())
        .collect();
    assert_eq!(statuses, ["expired", "pending"]);
}

#[tokio::test]
async fn annual_to_monthly_is_a_downgrade_and_monthly_to_annual_an_upgrade() {
    // Lago #1834.
    let app = spawn_app().await;
    let (t, owner) = owner_of(&app, "acme", "odoo", "basic-yearly").await;
    let p: Value = app
        .post_as(
            &format!("/v1/tenants/{t}/plan-change/preview"),
            &owner.access_token,
            json!({"plan": "basic"}),
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        (p["kind"].as_str(), p["timing"].as_str()),
        (Some("downgrade"), Some("end_of_term"))
    );
    let (t2, owner2) = owner_of(&app, "beta", "odoo", "basic").await;
    let p: Value = app
        .post_as(
            &format!("/v1/tenants/{t2}/plan-change/preview"),
            &owner2.access_token,
            json!({"plan": "basic-yearly"}),
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(p["kind"], "upgrade");
    // A new interval starts a new cycle: credit the unused month, charge the year.
    assert_eq!(p["lines"][1]["amount"]["amount"], "290.00");
}

#[tokio::test]
async fn a_second_upgrade_prorates_from_the_upgraded_plan() {
    // Lago #1778: never re-credit time already credited.
    let app = spawn_app().await;
    let (t, owner) = owner_of(&app, "acme", "inventory", "starter").await;
    set_saved_method(&app, t).await;
    app.sql().await.execute("UPDATE subscriptions SET current_period_start = current_period_start - interval '5 days', current_period_end = current_period_end - interval '5 days' WHERE tenant_id = $1", &[&t]).await.unwrap();
    let sub = subscription(&app, t, &owner.access_token).await;
    let (start, end) = (
        time(&sub["current_period_start"]),
        time(&sub["current_period_end"]),
    );
    let first: Value = app
        .post_as(
            &format!("/v1/tenants/{t}/plan-change"),
            &owner.access_token,
            json!({"plan": "business"}),
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(first["plan_change"]["status"], "applied");
    let second: Value = app
        .post_as(
            &format!("/v1/tenants/{t}/plan-change/preview"),
            &owner.access_token,
            json!({"plan": "enterprise"}),
        )
        .await
        .json()
        .await
        .unwrap();
    let at = time(&second["proration_date"]);
    assert_eq!(
        dec_of(&second["lines"][0]["amount"]["amount"]),
        -stripe_line(dec!(19), start, end, at),
        "credit of business, not starter"
    );
    assert_eq!(
        dec_of(&second["lines"][1]["amount"]["amount"]),
        stripe_line(dec!(59), start, end, at)
    );
}

#[tokio::test]
async fn the_processor_applies_due_downgrades_then_renews_at_the_new_price() {
    let app = spawn_app().await;
    let admin = app.admin().await;
    let (t, owner) = owner_of(&app, "acme", "odoo", "pro").await;
    set_saved_method(&app, t).await;
    let out: Value = app
        .post_as(
            &format!("/v1/tenants/{t}/plan-change"),
            &owner.access_token,
            json!({"plan": "basic"}),
        )
        .await
        .json()
        .await
        .unwrap();
    let effective = time(&out["plan_change"]["effective_at"]);
    // The sandbox clock moves past the period end; the processor runs.
    let moved: Value = app
        .post_as(
            "/v1/sandbox/clock",
            &admin.access_token,
            json!({"advance_seconds": 32 * 86_400}),
        )
        .await
        .json()
        .await
        .unwrap();
    assert!(time(&moved["now"]) > effective);
    let tenant: Value = app
        .get_as(&format!("/v1/tenants/{t}"), &owner.access_token)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        (tenant["plan"].as_str(), tenant["deployment"].as_str()),
        (Some("basic"), Some("shared"))
    );
    let history: Value = app
        .get_as(
            &format!("/v1/tenants/{t}/plan-changes"),
            &owner.access_token,
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(history["items"][0]["status"], "applied");
    let sub = subscription(&app, t, &owner.access_token).await;
    assert_eq!(sub["status"], "active");
    assert_eq!(
        time(&sub["current_period_start"]),
        effective,
        "the next period starts where the last ended"
    );
    let sql = app.sql().await;
    let renewal: String = sql.query_one("SELECT amount::text FROM charges WHERE tenant_id = $1 AND kind = 'renewal' AND status = 'paid'", &[&t]).await.unwrap().get(0);
    assert_eq!(
        renewal.parse::<Decimal>().unwrap(),
        dec!(29),
        "renewed at the new (basic) price"
    );
    let jobs: i64 = sql
        .query_one(
            "SELECT count(*) FROM jobs WHERE tenant_id = $1 AND kind = 'migrate'",
            &[&t],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(jobs, 1);
    let by_scheduler: i64 = sql.query_one("SELECT count(*) FROM activity_log WHERE tenant_id = $1 AND action = 'plan_change.applied' AND actor_label = 'scheduler'", &[&t]).await.unwrap().get(0);
    assert_eq!(by_scheduler, 1);
    // Running again changes nothing (the renewal is not charged twice).
    app.post_as(
        "/v1/sandbox/clock",
        &admin.access_token,
        json!({"advance_seconds": 0}),
    )
    .await;
    let charges: i64 = sql
        .query_one("SELECT count(*) FROM charges WHERE tenant_id = $1", &[&t])
        .await
        .unwrap()
        .get(0);
    assert_eq!(charges, 1);
}

#[tokio::test]
async fn two_processors_apply_each_due_change_exactly_once() {
    let app = spawn_app().await;
    let mut tenants = Vec::new();
    for i in 0..30 {
        let (t, owner) = owner_of(&app, &format!("co-{i}"), "odoo", "pro").await;
        let res = app
            .post_as(
                &format!("/v1/tenants/{t}/plan-change"),
                &owner.access_token,
                json!({"plan": "basic"}),
            )
            .await;
        assert_eq!(res.status(), 201);
        tenants.push(t);
    }
    app.sql()
        .await
        .execute(
            "UPDATE plan_changes SET effective_at = now() - interval '1 minute'",
            &[],
        )
        .await
        .unwrap();
    let pool = app.pool();
    let gateway = ScriptedGateway::default();
    let settings = EngineSettings::default();
    let clock = Clock::new(false);
    let (a, b) = tokio::join!(
        engine::process_due(&pool, &gateway, &clock, &settings),
        engine::process_due(&pool, &gateway, &clock, &settings)
    );
    let (a, b) = (a.unwrap(), b.unwrap());
    assert_eq!(a.applied_changes + b.applied_changes, 30);
    let sql = app.sql().await;
    let applied: i64 = sql
        .query_one(
            "SELECT count(*) FROM plan_changes WHERE status = 'applied'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    let logged: i64 = sql
        .query_one(
            "SELECT count(*) FROM activity_log WHERE action = 'plan_change.applied'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    let jobs: i64 = sql
        .query_one("SELECT count(*) FROM jobs WHERE kind = 'migrate'", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!((applied, logged, jobs), (30, 30, 30));
    let on_basic: i64 = sql.query_one("SELECT count(*) FROM tenants t JOIN plans p ON p.id = t.plan_id WHERE p.code = 'basic' AND t.version = 2", &[]).await.unwrap().get(0);
    assert_eq!(on_basic, 30, "each tenant switched once");
}

#[tokio::test]
async fn dunning_suspends_recovers_and_terminates() {
    let app = spawn_app().await;
    let pool = app.pool();
    let gateway = ScriptedGateway::default();
    let settings = EngineSettings {
        sandbox: true,
        ..EngineSettings::default()
    };
    let clock = Clock::new(true);
    let (late, _) = owner_of(&app, "late-payer", "odoo", "basic").await;
    let (gone, gone_owner) = owner_of(&app, "gone", "odoo", "pro").await;
    for t in [late, gone] {
        set_saved_method(&app, t).await;
        gateway.decline(t, true);
    }
    // `gone` has a downgrade scheduled, which termination must cancel (Lago PR #345).
    assert_eq!(
        app.post_as(
            &format!("/v1/tenants/{gone}/plan-change"),
            &gone_owner.access_token,
            json!({"plan": "basic"})
        )
        .await
        .status(),
        201
    );
    let sql = app.sql().await;
    // `gone`'s change is due only later, so its renewal is what fails.
    sql.execute("UPDATE plan_changes SET effective_at = effective_at + interval '60 days' WHERE tenant_id = $1", &[&gone]).await.unwrap();
    let status = async |t: uuid::Uuid| -> (String, String) {
        let row = sql.query_one("SELECT t.status, s.status FROM tenants t JOIN subscriptions s ON s.tenant_id = t.id WHERE t.id = $1", &[&t]).await.unwrap();
        (row.get(0), row.get(1))
    };
    // Move the clock directly (the endpoint would also run the app's own
    // processor with the sandbox gateway, which never declines).
    let advance = async |days: i64| {
        let mut conn = pool.get().await.unwrap();
        let offset = tenantry_store::billing::sandbox_offset(&mut conn)
            .await
            .unwrap();
        tenantry_store::billing::set_sandbox_offset(&mut conn, offset + days * 86_400)
            .await
            .unwrap();
        drop(conn);
        engine::process_due(&pool, &gateway, &clock, &settings)
            .await
            .unwrap()
    };

    // Period ends: the renewal is declined → past due, still active.
    let r = advance(31).await;
    assert_eq!(r.declined, 2);
    assert_eq!(status(late).await, ("active".into(), "past_due".into()));
    // Past the 3-day grace → suspended, with a job to stop the instance.
    advance(4).await;
    assert_eq!(status(late).await, ("suspended".into(), "past_due".into()));
    let suspend_jobs: i64 = sql
        .query_one(
            "SELECT count(*) FROM jobs WHERE tenant_id = $1 AND kind = 'suspend'",
            &[&late],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(suspend_jobs, 1);
    // The card works again: the next retry pays and un-suspends (Paymenter #854).
    gateway.decline(late, false);
    let r = advance(1).await;
    assert_eq!(r.recovered, 1);
    assert_eq!(status(late).await, ("active".into(), "active".into()));
    let resume_jobs: i64 = sql
        .query_one(
            "SELECT count(*) FROM jobs WHERE tenant_id = $1 AND kind = 'resume'",
            &[&late],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(resume_jobs, 1);
    let paid: i64 = sql
        .query_one(
            "SELECT count(*) FROM charges WHERE tenant_id = $1 AND status = 'paid'",
            &[&late],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(
        paid, 1,
        "one charge for the period, paid on retry, never twice"
    );

    // `gone` never pays: after 14 days → expired, deprovisioning with a final backup.
    advance(10).await;
    assert_eq!(
        status(gone).await,
        ("deprovisioning".into(), "expired".into())
    );
    let payload: Value = sql
        .query_one(
            "SELECT payload FROM jobs WHERE tenant_id = $1 AND kind = 'deprovision'",
            &[&gone],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(payload["final_backup"], true);
    let change: String = sql
        .query_one(
            "SELECT status FROM plan_changes WHERE tenant_id = $1",
            &[&gone],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(change, "canceled");
}

#[tokio::test]
async fn deleting_a_tenant_cancels_its_scheduled_change() {
    let app = spawn_app().await;
    let admin = app.admin().await;
    let (t, owner) = owner_of(&app, "acme", "odoo", "pro").await;
    app.post_as(
        &format!("/v1/tenants/{t}/plan-change"),
        &owner.access_token,
        json!({"plan": "basic"}),
    )
    .await;
    let del = app
        .request(
            reqwest::Method::DELETE,
            &format!("/v1/tenants/{t}"),
            &admin.access_token,
        )
        .send()
        .await
        .unwrap();
    assert_eq!(del.status(), 202);
    let history: Value = app
        .get_as(
            &format!("/v1/tenants/{t}/plan-changes"),
            &admin.access_token,
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        history["items"][0]["status"], "canceled",
        "history kept, change canceled"
    );
}

#[tokio::test]
async fn a_same_day_upgrade_and_the_renewal_never_bill_the_same_time_twice() {
    // Kill Bill #877: the upgrade's charge covers [now, period end), the renewal starts at the period end.
    let app = spawn_app().await;
    let admin = app.admin().await;
    let (t, owner) = owner_of(&app, "acme", "inventory", "starter").await;
    set_saved_method(&app, t).await;
    let up: Value = app
        .post_as(
            &format!("/v1/tenants/{t}/plan-change"),
            &owner.access_token,
            json!({"plan": "business"}),
        )
        .await
        .json()
        .await
        .unwrap();
    let upgrade_end = time(&up["plan_change"]["lines"][1]["period_end"]);
    app.post_as(
        "/v1/sandbox/clock",
        &admin.access_token,
        json!({"advance_seconds": 31 * 86_400}),
    )
    .await;
    let row = app.sql().await.query_one("SELECT period_start, amount::text FROM charges WHERE tenant_id = $1 AND kind = 'renewal'", &[&t]).await.unwrap();
    let renewal_start: DateTime<Utc> = row.get::<_, std::time::SystemTime>(0).into();
    assert_eq!(renewal_start, upgrade_end);
    assert_eq!(
        row.get::<_, String>(1).parse::<Decimal>().unwrap(),
        dec!(19)
    );
}

#[tokio::test]
async fn the_sandbox_clock_exists_only_in_sandbox_mode() {
    let app = spawn_app_with(|s| s.billing.sandbox = false).await;
    let admin = app.admin().await;
    assert_problem(
        app.post_as(
            "/v1/sandbox/clock",
            &admin.access_token,
            json!({"advance_seconds": 60}),
        )
        .await,
        404,
    )
    .await;
    let sandbox = spawn_app().await;
    let admin = sandbox.admin().await;
    let op = sandbox.user("op@example.test", Role::Operator, None).await;
    assert_problem(
        sandbox
            .post_as(
                "/v1/sandbox/clock",
                &op.access_token,
                json!({"advance_seconds": 60}),
            )
            .await,
        403,
    )
    .await;
    let before: Value = sandbox
        .get_as("/v1/sandbox/clock", &admin.access_token)
        .await
        .json()
        .await
        .unwrap();
    let after: Value = sandbox
        .post_as(
            "/v1/sandbox/clock",
            &admin.access_token,
            json!({"advance_seconds": 3600}),
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        after["offset_seconds"].as_i64().unwrap() - before["offset_seconds"].as_i64().unwrap(),
        3600
    );
    let to: Value = sandbox
        .post_as(
            "/v1/sandbox/clock",
            &admin.access_token,
            json!({"now": (time(&after["now"]) + Duration::days(1)).to_rfc3339()}),
        )
        .await
        .json()
        .await
        .unwrap();
    assert!(to["offset_seconds"].as_i64().unwrap() >= 3600 + 86_399);
    assert_problem(
        sandbox
            .post_as(
                "/v1/sandbox/clock",
                &admin.access_token,
                json!({"advance_seconds": -5}),
            )
            .await,
        422,
    )
    .await;
}

#[tokio::test]
async fn serve_runs_the_processor_on_its_own() {
    let app = spawn_app_with(|s| s.billing_interval = std::time::Duration::from_millis(200)).await;
    let (t, owner) = owner_of(&app, "acme", "odoo", "pro").await;
    assert_eq!(
        app.post_as(
            &format!("/v1/tenants/{t}/plan-change"),
            &owner.access_token,
            json!({"plan": "basic"})
        )
        .await
        .status(),
        201
    );
    // The change falls due; nobody calls the processor.
    app.sql()
        .await
        .execute("UPDATE plan_changes SET effective_at = now() - interval '1 second' WHERE tenant_id = $1", &[&t])
        .await
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let tenant: Value = app
            .get_as(&format!("/v1/tenants/{t}"), &owner.access_token)
            .await
            .json()
            .await
            .unwrap();
        if tenant["plan"] == "basic" {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the periodic processor never applied the change"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}
