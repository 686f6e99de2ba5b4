//! The billing processor: due downgrades applied then renewed at the new
//! price, exactly once with two processors, no time billed twice, the
//! periodic run of `serve`, and the sandbox clock that moves it.

use chrono::{DateTime, Duration, Utc};
use rust_decimal::Decimal;
use rust_decimal_macros::dec;
use serde_json::{Value, json};
use tenantry_billing::{Clock, EngineSettings, ScriptedGateway, engine};
use tenantry_domain::Role;

use super::{owner_of, set_saved_method, subscription, time};
use crate::helpers::{assert_problem, spawn_app, spawn_app_with};

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

/// Deleting a tenant used to leave its subscription `active`: the
/// processor went on renewing it, charging the saved card of a tenant
/// without service. Now deleting ends it (`canceled`), and the period end
/// bills nothing.
#[tokio::test]
async fn a_deleted_tenant_is_not_renewed() {
    let app = spawn_app().await;
    let admin = app.admin().await;
    let (t, _owner) = owner_of(&app, "gone", "odoo", "pro").await;
    set_saved_method(&app, t).await;
    let res = app
        .delete_as(&format!("/v1/tenants/{t}"), &admin.access_token)
        .await;
    assert_eq!(res.status(), 202);
    let sub = subscription(&app, t, &admin.access_token).await;
    assert_eq!(sub["status"], "canceled");
    let res = app
        .post_as(
            "/v1/sandbox/clock",
            &admin.access_token,
            json!({"advance_seconds": 70 * 86_400}),
        )
        .await;
    assert_eq!(res.status(), 200);
    let renewals: i64 = app
        .sql()
        .await
        .query_one(
            "SELECT count(*) FROM charges WHERE tenant_id = $1 AND kind = 'renewal'",
            &[&t],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(renewals, 0, "nothing billed after the deletion");
    let canceled: i64 = app
        .sql()
        .await
        .query_one(
            "SELECT count(*) FROM activity_log WHERE tenant_id = $1 AND action = 'subscription.canceled' AND after->>'reason' = 'tenant deleted'",
            &[&t],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(canceled, 1);
}

/// Regression (issue 17, probe 3): `advance_seconds: 10000000000000`
/// answered 500, and every request reading the billing clock failed from
/// then on. A move is now bounded (10 years a call, 100 years ahead in
/// all): beyond is a 422 that moves nothing, and the clock still works.
#[tokio::test]
async fn an_absurd_sandbox_clock_move_is_refused_and_the_clock_keeps_working() {
    let app = spawn_app().await;
    let admin = app.admin().await;
    let before: Value = app
        .get_as("/v1/sandbox/clock", &admin.access_token)
        .await
        .json()
        .await
        .unwrap();
    for body in [
        json!({"advance_seconds": 10_000_000_000_000_i64}),
        json!({"advance_seconds": i64::MAX}),
        json!({"advance_seconds": 10 * 366 * 86_400 + 1}),
        json!({"now": "9999-12-31T23:59:59Z"}),
    ] {
        assert_problem(
            app.post_as("/v1/sandbox/clock", &admin.access_token, body.clone())
                .await,
            422,
        )
        .await;
    }
    // Ten moves of ten (365-day) years are allowed; the eleventh passes 100 years.
    for _ in 0..10 {
        let res = app
            .post_as(
                "/v1/sandbox/clock",
                &admin.access_token,
                json!({"advance_seconds": 10 * 365 * 86_400}),
            )
            .await;
        assert_eq!(res.status(), 200);
    }
    assert_problem(
        app.post_as(
            "/v1/sandbox/clock",
            &admin.access_token,
            json!({"advance_seconds": 10 * 365 * 86_400}),
        )
        .await,
        422,
    )
    .await;
    let after: Value = app
        .get_as("/v1/sandbox/clock", &admin.access_token)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        after["offset_seconds"].as_i64().unwrap() - before["offset_seconds"].as_i64().unwrap(),
        10 * 10 * 365 * 86_400,
        "only the allowed moves happened"
    );
    // An admin's API token moves it only with `billing:write`.
    let token = |scopes: serde_json::Value| {
        let app = &app;
        let admin = &admin;
        async move {
            let created: Value = app
                .post_as(
                    "/v1/api-tokens",
                    &admin.access_token,
                    json!({"name": format!("clock {scopes}"), "scopes": scopes}),
                )
                .await
                .json()
                .await
                .unwrap();
            created["secret"].as_str().unwrap().to_owned()
        }
    };
    let reader = token(json!(["billing:read"])).await;
    assert_problem(
        app.post_as("/v1/sandbox/clock", &reader, json!({"advance_seconds": 60}))
            .await,
        403,
    )
    .await;
    // With it the clock moves.
    let writer = token(json!(["billing:write"])).await;
    let res = app
        .post_as("/v1/sandbox/clock", &writer, json!({"advance_seconds": 60}))
        .await;
    assert_eq!(res.status(), 200);
    // What reads the billing clock still works: a tenant is created.
    let t = app.tenant_on("aftermath", "odoo", "basic").await;
    let res = app
        .get_as(
            &format!("/v1/tenants/{t}/subscription"),
            &admin.access_token,
        )
        .await;
    assert_eq!(res.status(), 200);
}
