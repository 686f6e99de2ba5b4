//! Self-service signup: paid signups await payment with a checkout URL,
//! free ones start provisioning, invalid or taken input creates nothing, and
//! signups are rate-limited per IP.

use serde_json::{Value, json};

use super::{count, signup, signup_body};
use crate::helpers::{assert_problem, spawn_app_with, spawn_app_with_catalog};

#[tokio::test]
async fn a_paid_signup_awaits_payment_with_a_checkout_url() {
    let app = spawn_app_with_catalog().await;
    let res = signup(
        &app,
        &signup_body("acme", "Owner@Acme.Test", "odoo", "basic"),
    )
    .await;
    assert_eq!(res.status(), 201);
    let location = res.headers()["location"].to_str().unwrap().to_owned();
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["tenant"]["status"], "pending_payment");
    assert_eq!(body["tenant"]["slug"], "acme");
    assert_eq!(body["tenant"]["product"], "odoo");
    assert_eq!(body["tenant"]["plan"], "basic");
    assert_eq!(body["tenant"]["deployment"], "shared");
    assert_eq!(body["subscription"]["status"], "incomplete");
    assert_eq!(body["subscription"]["current_period_end"], Value::Null);
    assert!(
        body["checkout_url"]
            .as_str()
            .unwrap()
            .starts_with("http://tenantry.test/sandbox/checkout/cs_sandbox_")
    );
    assert_eq!(body["job"], Value::Null);
    assert_eq!(
        location,
        format!("/v1/tenants/{}", body["tenant"]["id"].as_str().unwrap())
    );

    // The owner can sign in and sees their tenant.
    let owner = app.login("owner@acme.test").await;
    let me: Value = app
        .get_as("/v1/me", &owner.access_token)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(me["role"], "tenant_owner");
    assert_eq!(me["tenant_id"], body["tenant"]["id"]);
    let t: Value = app
        .get_as(&location, &owner.access_token)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(t["company_name"], "acme Inc");
    assert_eq!(
        t["created_at"], body["tenant"]["created_at"],
        "the signup response shows what is stored"
    );
    let log: Value = app
        .get_as(&format!("{location}/activity"), &owner.access_token)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(log["items"][0]["action"], "tenant.signup");
}

#[tokio::test]
async fn a_free_signup_starts_provisioning_with_a_job() {
    let app = spawn_app_with_catalog().await;
    let res = signup(
        &app,
        &signup_body("freebie", "f@example.test", "inventory", "free"),
    )
    .await;
    assert_eq!(res.status(), 202);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["tenant"]["status"], "provisioning");
    assert_eq!(body["subscription"]["status"], "active");
    assert!(body["subscription"]["current_period_end"].is_string());
    assert_eq!(body["checkout_url"], Value::Null);
    assert_eq!(body["job"]["kind"], "provision");
    assert_eq!(body["job"]["status"], "queued");
    let owner = app.login("f@example.test").await;
    let job: Value = app
        .get_as(
            &format!("/v1/jobs/{}", body["job"]["id"].as_str().unwrap()),
            &owner.access_token,
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(job["tenant_id"], body["tenant"]["id"]);
}

#[tokio::test]
async fn invalid_signups_name_each_field_and_create_nothing() {
    let app = spawn_app_with_catalog().await;
    let bad = json!({"company_name": "", "slug": "www", "email": "nope", "password": "short", "product": "odoo", "plan": "platinum"});
    let body = assert_problem(signup(&app, &bad).await, 422).await;
    let fields: Vec<&str> = body["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["field"].as_str().unwrap())
        .collect();
    assert_eq!(
        fields,
        ["company_name", "slug", "email", "password", "plan"]
    );
    assert!(
        body["errors"][1]["message"]
            .as_str()
            .unwrap()
            .contains("reserved")
    );
    let body = assert_problem(
        signup(&app, &signup_body("acme", "a@b.test", "erp", "basic")).await,
        422,
    )
    .await;
    assert_eq!(body["errors"][0]["field"], "product");
    let body = assert_problem(
        signup(&app, &signup_body("Acme!", "a@b.test", "odoo", "basic")).await,
        422,
    )
    .await;
    assert_eq!(body["errors"][0]["field"], "slug");
    assert_eq!(count(&app, "tenants").await, 0);
    assert_eq!(count(&app, "users").await, 0);
}

#[tokio::test]
async fn taken_slugs_and_emails_are_409_and_change_nothing() {
    let app = spawn_app_with_catalog().await;
    assert_eq!(
        signup(&app, &signup_body("acme", "a@acme.test", "odoo", "basic"))
            .await
            .status(),
        201
    );
    let body = assert_problem(
        signup(&app, &signup_body("acme", "b@acme.test", "odoo", "basic")).await,
        409,
    )
    .await;
    assert_eq!(body["type"], "https://tenantry.dev/problems/slug-taken");
    let body = assert_problem(
        signup(
            &app,
            &signup_body("acme-two", "A@acme.test", "odoo", "basic"),
        )
        .await,
        409,
    )
    .await;
    assert_eq!(body["type"], "https://tenantry.dev/problems/email-taken");
    assert_eq!(
        count(&app, "tenants").await,
        1,
        "the failed signup left no tenant behind"
    );
    assert_eq!(count(&app, "subscriptions").await, 1);
    assert_eq!(count(&app, "users").await, 1);
}

#[tokio::test]
async fn signup_is_rate_limited_per_ip() {
    let app = spawn_app_with(|s| s.signup_rate_per_minute = 2).await;
    for i in 0..2 {
        let res = signup(
            &app,
            &signup_body(&format!("co-{i}"), &format!("{i}@x.test"), "odoo", "basic"),
        )
        .await;
        assert_eq!(
            res.status(),
            422,
            "no catalog loaded: rejected, but counted"
        );
    }
    let res = signup(&app, &signup_body("co-9", "9@x.test", "odoo", "basic")).await;
    assert!(res.headers().get("retry-after").is_some());
    assert_problem(res, 429).await;
}
