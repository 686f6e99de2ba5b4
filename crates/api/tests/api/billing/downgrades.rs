//! Downgrades: scheduled for the period end, one open change at a time,
//! canceled by the owner or by deleting the tenant, history kept.

use serde_json::{Value, json};

use super::{owner_of, subscription};
use crate::helpers::{assert_problem, spawn_app};

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
        .delete_as(
            &format!("/v1/tenants/{t}/scheduled-plan-change"),
            &owner.access_token,
        )
        .await;
    assert_eq!(del.status(), 200);
    assert_eq!(del.json::<Value>().await.unwrap()["status"], "canceled");
    let again = app
        .delete_as(
            &format!("/v1/tenants/{t}/scheduled-plan-change"),
            &owner.access_token,
        )
        .await;
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
        .delete_as(&format!("/v1/tenants/{t}"), &admin.access_token)
        .await;
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
