//! `Idempotency-Key`: the same key and body replay the first response,
//! errors are replayed but server errors are not kept, a concurrent
//! duplicate is refused while the first runs, keys are per caller, and
//! secrets (API tokens) are never replayed nor stored with the key.

use serde_json::{Value, json};
use tenantry_domain::Role;

use super::{count, signup_body};
use crate::helpers::{TestApp, assert_problem, spawn_app_with_catalog};

async fn keyed(app: &TestApp, key: &str, body: &Value) -> reqwest::Response {
    app.client
        .post(app.url("/v1/signup"))
        .header("idempotency-key", key)
        .json(body)
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn the_same_key_and_body_replay_the_first_response() {
    let app = spawn_app_with_catalog().await;
    let body = signup_body("acme", "o@acme.test", "odoo", "basic");
    let first = keyed(&app, "k-1", &body).await;
    assert_eq!(first.status(), 201);
    let first_location = first.headers()["location"].clone();
    let first_body = first.text().await.unwrap();
    let second = keyed(&app, "k-1", &body).await;
    assert_eq!(second.status(), 201);
    assert_eq!(second.headers()["idempotent-replayed"], "true");
    assert_eq!(second.headers()["location"], first_location);
    assert_eq!(second.text().await.unwrap(), first_body);
    assert_eq!(count(&app, "tenants").await, 1);

    let other = signup_body("acme-2", "o2@acme.test", "odoo", "basic");
    let body = assert_problem(keyed(&app, "k-1", &other).await, 422).await;
    assert_eq!(
        body["type"],
        "https://tenantry.dev/problems/idempotency-key-reused"
    );
    assert_eq!(count(&app, "tenants").await, 1);
}

#[tokio::test]
async fn errors_are_replayed_but_server_errors_are_not_kept() {
    let app = spawn_app_with_catalog().await;
    let bad = signup_body("www", "o@acme.test", "odoo", "basic");
    assert_eq!(keyed(&app, "k-bad", &bad).await.status(), 422);
    let again = keyed(&app, "k-bad", &bad).await;
    assert_eq!(again.status(), 422);
    assert_eq!(again.headers()["idempotent-replayed"], "true");
}

#[tokio::test]
async fn a_concurrent_duplicate_is_refused_while_the_first_runs() {
    let app = spawn_app_with_catalog().await;
    let sql = app.sql().await;
    // Hold the tenants table so the first signup stays in flight.
    sql.batch_execute("BEGIN; LOCK TABLE tenants IN ACCESS EXCLUSIVE MODE")
        .await
        .unwrap();
    let body = signup_body("acme", "o@acme.test", "odoo", "basic");
    let first = {
        let client = app.client.clone();
        let url = app.url("/v1/signup");
        let body = body.clone();
        tokio::spawn(async move {
            client
                .post(url)
                .header("idempotency-key", "k-c")
                .json(&body)
                .send()
                .await
                .unwrap()
        })
    };
    let watcher = app.sql().await;
    loop {
        let n: i64 = watcher
            .query_one("SELECT count(*) FROM pg_locks l JOIN pg_class c ON c.oid = l.relation WHERE c.relname = 'tenants' AND NOT l.granted", &[])
            .await
            .unwrap()
            .get(0);
        if n > 0 {
            break;
        }
        tokio::task::yield_now().await;
    }
    let second = keyed(&app, "k-c", &body).await;
    let problem = assert_problem(second, 409).await;
    assert_eq!(
        problem["type"],
        "https://tenantry.dev/problems/idempotency-key-in-use"
    );
    sql.batch_execute("COMMIT").await.unwrap();
    assert_eq!(first.await.unwrap().status(), 201);
    let third = keyed(&app, "k-c", &body).await;
    assert_eq!(third.status(), 201);
    assert_eq!(third.headers()["idempotent-replayed"], "true");
    assert_eq!(count(&app, "tenants").await, 1);
}

#[tokio::test]
async fn keys_are_per_caller_and_secrets_are_never_replayed() {
    let app = spawn_app_with_catalog().await;
    let a = app.user("a@example.test", Role::Admin, None).await;
    let b = app.user("b@example.test", Role::Admin, None).await;
    let create = |token: &str| {
        app.request(reqwest::Method::POST, "/v1/api-tokens", token)
            .header("idempotency-key", "same-key")
            .json(&json!({"name": "ci", "scopes": ["catalog:read"]}))
            .send()
    };
    assert_eq!(create(&a.access_token).await.unwrap().status(), 201);
    assert_eq!(
        create(&b.access_token).await.unwrap().status(),
        201,
        "another caller's key is another key"
    );
    let replay = create(&a.access_token).await.unwrap();
    let body = assert_problem(replay, 409).await;
    assert_eq!(
        body["type"],
        "https://tenantry.dev/problems/idempotent-response-withheld"
    );
    assert_eq!(
        count(&app, "api_tokens").await,
        2,
        "no second token for the same key"
    );
    let stored: i64 = app
        .sql()
        .await
        .query_one("SELECT count(*) FROM idempotency_keys WHERE convert_from(response_body, 'UTF8') LIKE '%tnt_%'", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(stored, 0, "token secrets are not kept with the key");
}
