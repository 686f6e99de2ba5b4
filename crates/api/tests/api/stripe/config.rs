//! Stripe configuration: settings from flags and variables, and payments
//! disabled (an operator marks signups and upgrades paid by hand).

use serde_json::{Value, json};
use tenantry_api::config::{Payments, Settings};
use tenantry_domain::Role;

use crate::helpers::{assert_problem, demo_catalog_path, spawn_app_with};

#[test]
fn stripe_settings_come_from_flags_and_variables() {
    let cli = tenantry_api::cli::Cli::parse_from_with_config(
        [
            "tenantry",
            "--stripe-secret-key",
            "sk_test_x",
            "--stripe-webhook-secrets",
            "whsec_new, whsec_old,",
            "--stripe-api-base",
            "http://127.0.0.1:12111",
            "--public-url",
            "https://api.example.test",
            "openapi",
        ]
        .map(Into::into)
        .to_vec(),
    )
    .unwrap();
    let settings = Settings::from(cli.settings);
    let Payments::Stripe(s) = &settings.payments else {
        panic!("{:?}", settings.payments)
    };
    assert_eq!(
        s.webhook_secrets.len(),
        2,
        "comma-separated, blanks dropped"
    );
    assert_eq!(s.api_base, "http://127.0.0.1:12111/");
    assert_eq!(
        s.success_url,
        "https://api.example.test/billing/success?session_id={CHECKOUT_SESSION_ID}"
    );
    assert_eq!(s.cancel_url, "https://api.example.test/billing/canceled");
    assert!(
        !format!("{settings:?}").contains("sk_test_x"),
        "the key is never printed"
    );
    let off = tenantry_api::cli::Cli::parse_from_with_config(
        [
            "tenantry",
            "--payments",
            "disabled",
            "--stripe-secret-key",
            "sk",
            "openapi",
        ]
        .map(Into::into)
        .to_vec(),
    )
    .unwrap();
    assert!(matches!(
        Settings::from(off.settings).payments,
        Payments::Disabled
    ));
    let none = tenantry_api::cli::Cli::parse_from_with_config(
        ["tenantry", "openapi"].map(Into::into).to_vec(),
    )
    .unwrap();
    assert!(matches!(
        Settings::from(none.settings).payments,
        Payments::Sandbox
    ));
}

#[tokio::test]
async fn with_payments_disabled_an_operator_marks_a_signup_paid() {
    let app = spawn_app_with(|s| s.payments = Payments::Disabled).await;
    tenantry_api::catalog_file::load(&app.settings, demo_catalog_path())
        .await
        .unwrap();
    let res = app
        .client
        .post(app.url("/v1/signup"))
        .json(
            &json!({"company_name": "Acme", "slug": "acme", "email": "o@acme.test",
                      "password": crate::helpers::PASSWORD, "product": "odoo", "plan": "basic"}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["tenant"]["status"], "pending_payment");
    assert!(
        body["checkout_url"].is_null(),
        "no checkout when payments are off"
    );
    let t = body["tenant"]["id"].as_str().unwrap().to_owned();
    let admin = app.admin().await;
    let owner = app.login("o@acme.test").await;
    // Bad input changes nothing; the owner cannot mark their own payment.
    assert_problem(
        app.post_as(
            &format!("/v1/tenants/{t}/mark-paid"),
            &admin.access_token,
            json!({"reference": " "}),
        )
        .await,
        422,
    )
    .await;
    assert_problem(
        app.post_as(
            &format!("/v1/tenants/{t}/mark-paid"),
            &owner.access_token,
            json!({"reference": "x"}),
        )
        .await,
        403,
    )
    .await;
    let res = app
        .post_as(
            &format!("/v1/tenants/{t}/mark-paid"),
            &admin.access_token,
            json!({"reference": "bank transfer 42"}),
        )
        .await;
    assert_eq!(res.status(), 202);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["tenant"]["status"], "provisioning");
    assert_eq!(body["job"]["kind"], "provision");
    let again = app
        .post_as(
            &format!("/v1/tenants/{t}/mark-paid"),
            &admin.access_token,
            json!({"reference": "again"}),
        )
        .await;
    assert_eq!(
        assert_problem(again, 409).await["type"],
        "https://tenantry.dev/problems/invalid-transition"
    );
    let db = app.sql().await;
    let jobs: i64 = db
        .query_one("SELECT count(*) FROM jobs WHERE kind = 'provision'", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(jobs, 1);
    let logged: i64 = db
        .query_one("SELECT count(*) FROM activity_log WHERE action = 'tenant.status_changed' AND after->>'payment' = 'bank transfer 42'", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(logged, 1);
    // An upgrade waits for an operator too.
    let t2 = app.tenant_on("beta", "odoo", "basic").await;
    let o2 = app.user("o@beta.test", Role::TenantOwner, Some(t2)).await;
    let res = app
        .post_as(
            &format!("/v1/tenants/{t2}/plan-change"),
            &o2.access_token,
            json!({"plan": "pro"}),
        )
        .await;
    assert_eq!(res.status(), 202);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["payment"], "awaiting_operator");
    assert!(body["checkout_url"].is_null());
}
