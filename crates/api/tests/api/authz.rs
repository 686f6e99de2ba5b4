//! Authorization: roles, tenant isolation across every route, catalog administration.

use serde_json::{Value, json};
use tenantry_domain::Role;

use crate::helpers::{assert_problem, spawn_app, spawn_app_with_catalog};

/// Every `/v1` route of the committed OpenAPI spec, called with tenant A's
/// owner credentials against tenant B's ids: no 2xx where B's id is in the
/// path, and never B's data in any body. New routes are covered by being in
/// the spec.
#[tokio::test]
async fn tenant_a_never_reaches_tenant_b_on_any_route() {
    let app = spawn_app_with_catalog().await;
    let (ta, tb) = (app.tenant("tenant-a").await, app.tenant("tenant-b").await);
    let a = app
        .user("owner-a@example.test", Role::TenantOwner, Some(ta))
        .await;
    let b = app
        .user("owner-b@example.test", Role::TenantOwner, Some(tb))
        .await;
    // B leaves traces: an API token and activity rows.
    let b_token: Value = app
        .post_as(
            "/v1/api-tokens",
            &b.access_token,
            json!({"name": "b-secret-token-name", "scopes": ["tenants:read"]}),
        )
        .await
        .json()
        .await
        .unwrap();
    let b_token_id = b_token["id"].as_str().unwrap().to_owned();
    let b_job = {
        let mut conn = app.pool().get().await.unwrap();
        tenantry_store::jobs::enqueue(
            &mut conn,
            &tenantry_store::jobs::kinds::Provision { tenant_id: tb },
        )
        .await
        .unwrap()
        .id
        .to_string()
    };
    // B also has a plan change (an upgrade awaiting payment).
    let b_change: Value = app
        .post_as(
            &format!("/v1/tenants/{tb}/plan-change"),
            &b.access_token,
            json!({"plan": "pro"}),
        )
        .await
        .json()
        .await
        .unwrap();
    let b_change_id = b_change["plan_change"]["id"].as_str().unwrap().to_owned();
    // Staff-only resources exist too: a node.
    let node: Value = app
        .post_as(
            "/v1/nodes",
            &app.admin().await.access_token,
            crate::nodes::proxmox_node("pve9", "https://pve9.example.test:8006/api2/json"),
        )
        .await
        .json()
        .await
        .unwrap();
    let node_id = node["id"].as_str().unwrap().to_owned();
    // And a custom domain.
    let b_domain = {
        let mut conn = app.pool().get().await.unwrap();
        tenantry_store::domains::insert(&mut conn, tb, "b-secret.example.com", "b-token")
            .await
            .unwrap()
            .id
            .to_string()
    };
    let b_markers = [
        tb.to_string(),
        b.user_id.to_string(),
        b.email.clone(),
        b_token_id.clone(),
        b_job.clone(),
        b_change_id.clone(),
        "b-secret-token-name".to_owned(),
        "b-secret.example.com".to_owned(),
        "tenant-b".to_owned(),
    ];

    let spec: Value = serde_json::from_str(
        &std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../openapi/openapi.json"
        ))
        .unwrap(),
    )
    .unwrap();
    let mut walked = 0;
    for (path, item) in spec["paths"].as_object().unwrap() {
        if !path.starts_with("/v1/") {
            continue;
        }
        for (method, op) in item.as_object().unwrap() {
            let params: Vec<String> = op["parameters"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|p| p["in"] == "path")
                .map(|p| p["name"].as_str().unwrap().to_owned())
                .collect();
            // B's ids wherever the route takes one; product slugs and plan codes exist for everyone.
            let mut concrete = path.clone();
            for p in &params {
                let value = match (p.as_str(), path.split('/').nth(2).unwrap_or("")) {
                    ("id", "tenants") => tb.to_string(),
                    ("id", "jobs") => b_job.clone(),
                    ("id", "nodes") => node_id.clone(),
                    ("id", _) => b_token_id.clone(),
                    ("user_id", _) => b.user_id.to_string(),
                    ("change_id", _) => b_change_id.clone(),
                    ("domain_id", _) => b_domain.clone(),
                    ("slug", _) => "odoo".to_owned(),
                    ("code", _) => "basic".to_owned(),
                    (other, _) => panic!(
                        "the walk does not know path parameter {other:?} of {path}: teach it B's value"
                    ),
                };
                concrete = concrete.replace(&format!("{{{p}}}"), &value);
            }
            let m = reqwest::Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
            let mut req = app
                .request(m.clone(), &concrete, &a.access_token)
                .header("x-tenantry-csrf", "1");
            if m != reqwest::Method::GET && m != reqwest::Method::DELETE {
                req = req.json(&json!({}));
            }
            let res = req.send().await.unwrap();
            let status = res.status();
            let body = res.text().await.unwrap();
            walked += 1;
            // The id A sent may be echoed back (`instance`, `detail`); anything else of B's may not.
            for marker in b_markers.iter().filter(|m| !concrete.contains(m.as_str())) {
                assert!(
                    !body.contains(marker.as_str()),
                    "{method} {concrete} leaked B's data ({marker}): {body}"
                );
            }
            if params
                .iter()
                .any(|p| p == "id" || p == "user_id" || p == "change_id" || p == "domain_id")
            {
                assert!(
                    !status.is_success(),
                    "{method} {concrete} answered {status} for B's resource"
                );
            }
            if path.starts_with("/v1/nodes") {
                // 403, or 422 where the empty body is refused before the role is checked.
                assert!(
                    status == 403 || (status == 422 && method == "post"),
                    "{method} {concrete}: nodes are for staff ({status})"
                );
            }
            if ["post", "patch", "put", "delete"].contains(&method.as_str())
                && path.starts_with("/v1/products")
            {
                assert!(
                    !status.is_success(),
                    "{method} {concrete}: a tenant owner must not change the catalog ({status})"
                );
            }
        }
    }
    assert!(walked >= 20, "walked {walked} operations");
    // B's token is intact.
    assert_eq!(
        app.get_as("/v1/me", b_token["secret"].as_str().unwrap())
            .await
            .status(),
        200
    );
}

/// The `/v1` operations the spec declares without `security` are exactly
/// the public ones (sign-in, signup, the public catalog, invitations and
/// the payment provider's webhook, which proves itself by signature); every
/// other operation answers `401` without credentials. A new public route
/// must be added here on purpose.
#[tokio::test]
async fn only_the_known_routes_are_public() {
    const PUBLIC: [&str; 10] = [
        "post /v1/auth/login",
        "post /v1/auth/logout",
        "post /v1/auth/refresh",
        "post /v1/invitations/accept",
        "get /v1/plans",
        "get /v1/products",
        "get /v1/products/{slug}",
        "post /v1/signup",
        "post /v1/webhooks/stripe",
        // Caddy's on-demand TLS asks without credentials.
        "get /v1/routing/tls-allowed",
    ];
    let app = spawn_app().await;
    let spec: Value = serde_json::from_str(
        &std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../openapi/openapi.json"
        ))
        .unwrap(),
    )
    .unwrap();
    let mut public = Vec::new();
    for (path, item) in spec["paths"].as_object().unwrap() {
        if !path.starts_with("/v1/") {
            continue;
        }
        for (method, op) in item.as_object().unwrap() {
            let name = format!("{method} {path}");
            if op["security"].as_array().is_none_or(|s| s.is_empty()) {
                public.push(name);
                continue;
            }
            let concrete = path
                .replace("{id}", "01890000-0000-7000-8000-000000000000")
                .replace("{user_id}", "01890000-0000-7000-8000-000000000000")
                .replace("{change_id}", "01890000-0000-7000-8000-000000000000")
                .replace("{domain_id}", "01890000-0000-7000-8000-000000000000")
                .replace("{slug}", "odoo")
                .replace("{code}", "basic");
            let m = reqwest::Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
            let res = app
                .client
                .request(m, app.url(&concrete))
                .json(&json!({}))
                .send()
                .await
                .unwrap();
            assert_eq!(res.status(), 401, "{name} without credentials");
        }
    }
    public.sort();
    let mut expected: Vec<String> = PUBLIC.iter().map(|s| (*s).to_owned()).collect();
    expected.sort();
    assert_eq!(public, expected);
    // The webhook without a valid signature is refused (never 401: it has no bearer).
    let res = app
        .client
        .post(app.url("/v1/webhooks/stripe"))
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_ne!(res.status(), 200);
}

#[tokio::test]
async fn protected_routes_need_credentials() {
    let app = spawn_app().await;
    for path in ["/v1/me", "/v1/api-tokens", "/v1/activity"] {
        let res = app.get(path).await;
        assert_eq!(res.headers()["www-authenticate"], "Bearer");
        let body = assert_problem(res, 401).await;
        assert_eq!(body["type"], "https://tenantry.dev/problems/unauthorized");
    }
}

#[tokio::test]
async fn a_disabled_user_loses_access_at_once() {
    let app = spawn_app().await;
    let s = app.user("op@example.test", Role::Operator, None).await;
    app.sql()
        .await
        .execute(
            "UPDATE users SET status = 'disabled' WHERE id = $1",
            &[&s.user_id],
        )
        .await
        .unwrap();
    assert_problem(app.get_as("/v1/me", &s.access_token).await, 401).await;
    assert_eq!(app.refresh(&s.refresh).await.status(), 401);
    assert_eq!(
        app.login_response(
            json!({"email": "op@example.test", "password": crate::helpers::PASSWORD})
        )
        .await
        .status(),
        401
    );
}

#[tokio::test]
async fn the_tenant_role_check_is_enforced_by_the_database() {
    let app = spawn_app().await;
    let sql = app.sql().await;
    let bad = [
        "INSERT INTO users (id, email, password_hash, role) VALUES (gen_random_uuid(), 'x@y.zz', 'h', 'tenant_owner')",
        "INSERT INTO users (id, email, password_hash, role, tenant_id) VALUES (gen_random_uuid(), 'x@y.zz', 'h', 'admin', gen_random_uuid())",
        "INSERT INTO users (id, email, password_hash, role) VALUES (gen_random_uuid(), 'X@y.zz', 'h', 'admin')",
        "INSERT INTO users (id, email, password_hash, role) VALUES (gen_random_uuid(), 'x@y.zz', 'h', 'root')",
    ];
    for stmt in bad {
        assert!(sql.execute(stmt, &[]).await.is_err(), "{stmt}");
    }
    app.create_user("dup@example.test", Role::Admin, None).await;
    let hasher =
        std::sync::Arc::new(tenantry_api::auth::password::Hasher::new(1024, 1, 1).unwrap());
    let err = tenantry_api::auth::service::create_user(
        &app.pool(),
        &hasher,
        "DUP@example.test",
        &secrecy::SecretString::from(crate::helpers::PASSWORD.to_owned()),
        Role::Admin,
        None,
    )
    .await
    .unwrap_err();
    assert!(err.to_string().contains("already exists"), "{err}");
    let phc: String = sql
        .query_one(
            "SELECT password_hash FROM users WHERE email = 'dup@example.test'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert!(phc.starts_with("$argon2id$"));
    assert!(
        sql.execute("UPDATE activity_log SET action = 'x'", &[])
            .await
            .is_err()
            || sql
                .query_one("SELECT count(*) FROM activity_log", &[])
                .await
                .unwrap()
                .get::<_, i64>(0)
                == 0
    );
}

#[tokio::test]
async fn the_activity_log_is_append_only() {
    let app = spawn_app().await;
    app.admin().await;
    let sql = app.sql().await;
    let n: i64 = sql
        .query_one("SELECT count(*) FROM activity_log", &[])
        .await
        .unwrap()
        .get(0);
    assert!(n > 0);
    assert!(
        sql.execute("UPDATE activity_log SET action = 'x'", &[])
            .await
            .is_err()
    );
    assert!(sql.execute("DELETE FROM activity_log", &[]).await.is_err());
}

mod catalog_admin;
