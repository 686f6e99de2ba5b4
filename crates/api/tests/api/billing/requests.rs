//! Who may change a plan to what: refused requests change nothing, staff
//! change plans at once with a reason, lifetime plans are downgraded only by
//! an admin.

use serde_json::{Value, json};
use tenantry_domain::Role;

use super::owner_of;
use crate::helpers::{assert_problem, spawn_app};

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
