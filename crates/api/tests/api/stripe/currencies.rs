//! Currencies the provider accepts (issue #16, point 8): with Stripe
//! payments, a plan priced in a currency Stripe does not accept is refused
//! when the catalog is written — 422 naming the currency and the field
//! through the API, an error naming the plan and currency from a catalog
//! file — so it is never charged as another currency. In the sandbox (or
//! with payments disabled) any ISO 4217 code the catalog takes stays allowed.

use std::path::PathBuf;

use serde_json::{Value, json};
use tenantry_api::config::{Payments, stripe_accepts_currency};

use super::{stripe_settings, world};
use crate::helpers::{assert_problem, spawn_app, spawn_app_with, spawn_app_with_settings};

/// An ISO 4217 currency with a minor unit (so the catalog's own rules take
/// it) that Stripe does not accept.
const REFUSED: &str = "IRR";

fn plan(code: &str, price: &str, currency: &str) -> Value {
    json!({"code": code, "name": code, "tier_rank": 1, "price": price, "currency": currency,
           "interval": "month", "deployment": "dedicated", "cpu_cores": 1, "memory_mib": 512,
           "storage_gib": 5, "backup_schedule": "daily"})
}

fn product(plans: Vec<Value>) -> Value {
    json!({"slug": "erp", "name": "ERP", "driver": "docker", "image": "erp:1", "internal_port": 8080,
           "dedicated_ports": {"start": 9000, "end": 9099}, "plans": plans})
}

/// A catalog file with one product whose plans are in `currencies`.
fn catalog_file(currencies: &[&str]) -> (PathBuf, PathBuf) {
    let dir = std::env::temp_dir().join(format!("tenantry-currencies-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    let plans: Vec<Value> = currencies
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let mut p = plan(&format!("plan-{}", c.to_lowercase()), "10.00", c);
            p["tier_rank"] = json!(i);
            p
        })
        .collect();
    let file = dir.join("catalog.json");
    std::fs::write(&file, json!({"products": [product(plans)]}).to_string()).unwrap();
    (dir, file)
}

#[test]
fn the_refused_currency_is_iso_4217_and_unknown_to_stripe() {
    assert!(tenantry_domain::Currency::parse(REFUSED).is_ok());
    assert!(!stripe_accepts_currency(REFUSED));
    assert!(stripe_accepts_currency("USD") && stripe_accepts_currency("JPY"));
}

#[tokio::test]
async fn with_stripe_a_plan_in_a_currency_stripe_does_not_accept_is_refused() {
    let w = world().await;
    let app = &w.app;
    let admin = app.admin().await;

    let body = assert_problem(
        app.post_as(
            "/v1/products",
            &admin.access_token,
            product(vec![
                plan("solo", "15.00", "USD"),
                plan("rial", "15.00", REFUSED),
            ]),
        )
        .await,
        422,
    )
    .await;
    assert_eq!(
        body["type"],
        "https://tenantry.dev/problems/validation-failed"
    );
    assert_eq!(body["errors"].as_array().unwrap().len(), 1, "{body}");
    assert_eq!(body["errors"][0]["field"], "plans[1].currency");
    assert!(
        body["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains(REFUSED)
    );
    assert!(body["detail"].as_str().unwrap().contains(REFUSED), "{body}");
    assert_eq!(
        app.get("/v1/products/erp").await.status(),
        404,
        "nothing is created"
    );

    let res = app
        .post_as(
            "/v1/products",
            &admin.access_token,
            product(vec![plan("solo", "15.00", "USD")]),
        )
        .await;
    assert_eq!(res.status(), 201);

    let body = assert_problem(
        app.post_as(
            "/v1/products/erp/plans",
            &admin.access_token,
            plan("rial", "15.00", REFUSED),
        )
        .await,
        422,
    )
    .await;
    assert_eq!(body["errors"][0]["field"], "currency");
    assert!(body["detail"].as_str().unwrap().contains(REFUSED), "{body}");

    let body = assert_problem(
        app.patch_as(
            "/v1/products/erp/plans/solo",
            &admin.access_token,
            json!({"currency": REFUSED}),
        )
        .await,
        422,
    )
    .await;
    assert_eq!(body["errors"][0]["field"], "currency");
    assert!(body["detail"].as_str().unwrap().contains(REFUSED), "{body}");

    let plans: Value = app.get_json("/v1/plans?product=erp").await;
    assert_eq!(plans["items"].as_array().unwrap().len(), 1);
    assert_eq!(
        plans["items"][0]["price"],
        json!({"amount": "15.00", "currency": "USD"}),
        "the refused patch changed nothing"
    );

    // A currency Stripe accepts, other than USD, is fine.
    let mut yen = plan("yen", "1500", "JPY");
    yen["tier_rank"] = json!(2);
    assert_eq!(
        app.post_as("/v1/products/erp/plans", &admin.access_token, yen)
            .await
            .status(),
        201
    );
}

#[tokio::test]
async fn in_the_sandbox_or_without_payments_any_iso_currency_is_allowed() {
    for app in [
        spawn_app().await,
        spawn_app_with(|s| s.payments = Payments::Disabled).await,
    ] {
        let admin = app.admin().await;
        let res = app
            .post_as(
                "/v1/products",
                &admin.access_token,
                product(vec![plan("rial", "15.00", REFUSED)]),
            )
            .await;
        assert_eq!(res.status(), 201);
        let created: Value = res.json().await.unwrap();
        assert_eq!(created["plans"][0]["price"]["currency"], REFUSED);
    }
}

#[tokio::test]
async fn a_plan_already_in_a_refused_currency_can_be_withdrawn_but_not_kept_on_sale() {
    // Created in the sandbox; then the same database runs with Stripe.
    let sandbox = spawn_app().await;
    let admin = sandbox.admin().await;
    let res = sandbox
        .post_as(
            "/v1/products",
            &admin.access_token,
            product(vec![plan("rial", "15.00", REFUSED)]),
        )
        .await;
    assert_eq!(res.status(), 201);
    let mut settings = sandbox.settings.clone();
    settings.payments = Payments::Stripe(stripe_settings("http://127.0.0.1:9"));
    let app = spawn_app_with_settings(settings);

    let body = assert_problem(
        app.patch_as(
            "/v1/products/erp/plans/rial",
            &admin.access_token,
            json!({"name": "Rial"}),
        )
        .await,
        422,
    )
    .await;
    assert_eq!(body["errors"][0]["field"], "currency");
    assert!(body["detail"].as_str().unwrap().contains(REFUSED), "{body}");
    let res = app
        .post_as(
            "/v1/products/erp/plans/rial/deactivate",
            &admin.access_token,
            json!({}),
        )
        .await;
    assert_eq!(res.status(), 200, "{}", res.text().await.unwrap());
}

#[tokio::test]
async fn the_catalog_file_refuses_a_currency_stripe_does_not_accept() {
    let w = world().await;
    let (dir, file) = catalog_file(&["USD", REFUSED]);
    let err = tenantry_api::catalog_file::load(&w.app.settings, &file)
        .await
        .unwrap_err()
        .to_string();
    for part in [
        REFUSED,
        "products[0].plans[1].currency",
        "erp/plan-irr",
        "Stripe",
    ] {
        assert!(err.contains(part), "{part:?} missing from {err}");
    }
    assert!(!err.contains("plan-usd"), "{err}");
    assert_eq!(
        w.app.get("/v1/products/erp").await.status(),
        404,
        "nothing is loaded"
    );

    // The same file loads in the sandbox.
    let sandbox = spawn_app().await;
    let report = tenantry_api::catalog_file::load(&sandbox.settings, &file)
        .await
        .unwrap();
    assert_eq!(report.plans_created, 2, "{report:?}");
    std::fs::remove_dir_all(dir).unwrap();
}
