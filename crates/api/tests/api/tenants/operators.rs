//! The operator API for tenants: creating them (owners accept their
//! invitation), the filtered list and what owners see of it, pages stable
//! while tenants are added, and `If-Match` guarding updates.

use serde_json::{Value, json};
use tenantry_domain::Role;

use super::{signup, signup_body};
use crate::helpers::{PASSWORD, assert_problem, spawn_app_with_catalog};

#[tokio::test]
async fn operators_create_tenants_and_owners_accept_their_invitation() {
    let app = spawn_app_with_catalog().await;
    let op = app.user("op@example.test", Role::Operator, None).await;
    let res = app
        .post_as("/v1/tenants", &op.access_token, json!({"company_name": "Globex", "slug": "globex", "product": "odoo", "plan": "pro", "owner_email": "boss@globex.test"}))
        .await;
    assert_eq!(res.status(), 201);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["tenant"]["status"], "pending_payment");
    assert_eq!(body["tenant"]["deployment"], "dedicated");
    assert!(body["checkout_url"].is_string());
    let url = body["owner_invitation_url"].as_str().unwrap();
    let token = url.split("token=").nth(1).unwrap();

    let weak = app
        .client
        .post(app.url("/v1/invitations/accept"))
        .json(&json!({"token": token, "password": "short"}))
        .send()
        .await
        .unwrap();
    assert_problem(weak, 422).await;
    let ok = app
        .client
        .post(app.url("/v1/invitations/accept"))
        .json(&json!({"token": token, "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 201);
    let accepted: Value = ok.json().await.unwrap();
    assert_eq!(accepted["role"], "tenant_owner");
    assert_eq!(accepted["tenant_id"], body["tenant"]["id"]);
    let again = app
        .client
        .post(app.url("/v1/invitations/accept"))
        .json(&json!({"token": token, "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_problem(again, 404).await;
    let owner = app.login("boss@globex.test").await;
    assert_eq!(
        app.get_as("/v1/tenants/globex", &owner.access_token)
            .await
            .status(),
        200
    );

    // skip_payment starts provisioning at once.
    let res = app
        .post_as("/v1/tenants", &op.access_token, json!({"company_name": "Initech", "slug": "initech", "product": "inventory", "plan": "lifetime", "owner_email": "bill@initech.test", "skip_payment": true}))
        .await;
    assert_eq!(res.status(), 202);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["tenant"]["status"], "provisioning");
    assert_eq!(body["subscription"]["status"], "active");
    assert_eq!(
        body["subscription"]["current_period_end"],
        Value::Null,
        "lifetime has no end"
    );
    assert_eq!(body["job"]["kind"], "provision");

    // Tenant users cannot create tenants.
    let res = app.post_as("/v1/tenants", &owner.access_token, json!({"company_name": "X", "slug": "xco", "product": "odoo", "plan": "basic", "owner_email": "x@x.test"})).await;
    assert_problem(res, 403).await;
}

#[tokio::test]
async fn the_list_filters_and_owners_see_only_their_tenant() {
    let app = spawn_app_with_catalog().await;
    let admin = app.admin().await;
    signup(&app, &signup_body("alpha", "a@alpha.test", "odoo", "basic")).await;
    signup(&app, &signup_body("beta", "b@beta.test", "odoo", "pro")).await;
    signup(
        &app,
        &signup_body("gamma-free", "g@gamma.test", "inventory", "free"),
    )
    .await;
    let slugs = |v: Value| -> Vec<String> {
        v["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["slug"].as_str().unwrap().to_owned())
            .collect()
    };
    let get = async |q: &str| {
        app.get_as(&format!("/v1/tenants{q}"), &admin.access_token)
            .await
    };
    assert_eq!(
        slugs(get("").await.json().await.unwrap()),
        ["alpha", "beta", "gamma-free"]
    );
    assert_eq!(
        slugs(get("?status=provisioning").await.json().await.unwrap()),
        ["gamma-free"]
    );
    assert_eq!(
        slugs(get("?product=odoo&plan=pro").await.json().await.unwrap()),
        ["beta"]
    );
    assert_eq!(slugs(get("?q=ALP").await.json().await.unwrap()), ["alpha"]);
    assert_eq!(
        slugs(get("?q=gamma-free%20Inc").await.json().await.unwrap()),
        ["gamma-free"],
        "company name too"
    );
    assert_problem(get("?status=sleeping").await, 400).await;

    let owner = app.login("b@beta.test").await;
    assert_eq!(
        slugs(
            app.get_as("/v1/tenants", &owner.access_token)
                .await
                .json()
                .await
                .unwrap()
        ),
        ["beta"]
    );
    assert_problem(
        app.get_as("/v1/tenants/alpha", &owner.access_token).await,
        404,
    )
    .await;
}

#[tokio::test]
async fn pages_stay_stable_while_tenants_are_added() {
    let app = spawn_app_with_catalog().await;
    let admin = app.admin().await;
    for i in 0..5 {
        signup(
            &app,
            &signup_body(&format!("co-{i}"), &format!("{i}@co.test"), "odoo", "basic"),
        )
        .await;
    }
    let mut seen: Vec<String> = Vec::new();
    let mut cursor: Option<String> = None;
    let mut added = 0;
    loop {
        let path = match &cursor {
            None => "/v1/tenants?limit=2".to_owned(),
            Some(c) => format!("/v1/tenants?limit=2&cursor={c}"),
        };
        let page: Value = app
            .get_as(&path, &admin.access_token)
            .await
            .json()
            .await
            .unwrap();
        seen.extend(
            page["items"]
                .as_array()
                .unwrap()
                .iter()
                .map(|t| t["slug"].as_str().unwrap().to_owned()),
        );
        // Others sign up between pages.
        if added < 3 {
            signup(
                &app,
                &signup_body(
                    &format!("late-{added}"),
                    &format!("late{added}@co.test"),
                    "odoo",
                    "basic",
                ),
            )
            .await;
            added += 1;
        }
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => break,
        }
    }
    let expected: Vec<String> = (0..5)
        .map(|i| format!("co-{i}"))
        .chain((0..3).map(|i| format!("late-{i}")))
        .collect();
    assert_eq!(
        seen, expected,
        "every tenant once, in creation order, none skipped"
    );
}

#[tokio::test]
async fn if_match_guards_updates() {
    let app = spawn_app_with_catalog().await;
    let admin = app.admin().await;
    let id = app.tenant("acme").await;
    let res = app
        .get_as(&format!("/v1/tenants/{id}"), &admin.access_token)
        .await;
    assert_eq!(res.headers()["etag"], "\"1\"");
    let patch = |etag: Option<&'static str>, name: &'static str| {
        let mut r = app
            .request(
                reqwest::Method::PATCH,
                &format!("/v1/tenants/{id}"),
                &admin.access_token,
            )
            .json(&json!({"company_name": name}));
        if let Some(e) = etag {
            r = r.header("if-match", e);
        }
        r.send()
    };
    let ok = patch(Some("\"1\""), "Acme Corp").await.unwrap();
    assert_eq!(ok.status(), 200);
    assert_eq!(ok.headers()["etag"], "\"2\"");
    let stale = patch(Some("\"1\""), "Acme Stale").await.unwrap();
    let body = assert_problem(stale, 412).await;
    assert_eq!(
        body["type"],
        "https://tenantry.dev/problems/precondition-failed"
    );
    let t: Value = app
        .get_as(&format!("/v1/tenants/{id}"), &admin.access_token)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        t["company_name"], "Acme Corp",
        "the stale write changed nothing"
    );
    assert_eq!(
        patch(None, "Acme Unconditional").await.unwrap().status(),
        200
    );
    assert_problem(patch(None, "").await.unwrap(), 422).await;
}
