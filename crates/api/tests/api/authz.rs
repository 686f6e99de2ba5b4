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
        tenantry_store::jobs::enqueue(&mut conn, "provision", Some(tb), json!({}), None)
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
    let b_markers = [
        tb.to_string(),
        b.user_id.to_string(),
        b.email.clone(),
        b_token_id.clone(),
        b_job.clone(),
        b_change_id.clone(),
        "b-secret-token-name".to_owned(),
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
                .any(|p| p == "id" || p == "user_id" || p == "change_id")
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
    const PUBLIC: [&str; 9] = [
        "post /v1/auth/login",
        "post /v1/auth/logout",
        "post /v1/auth/refresh",
        "post /v1/invitations/accept",
        "get /v1/plans",
        "get /v1/products",
        "get /v1/products/{slug}",
        "post /v1/signup",
        "post /v1/webhooks/stripe",
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

mod catalog_admin {
    use super::*;

    fn product() -> Value {
        json!({
            "slug": "erp", "name": "ERP", "driver": "docker", "image": "erp:1", "internal_port": 8080,
            "dedicated_ports": {"start": 9000, "end": 9099},
            "plans": [{"code": "solo", "name": "Solo", "tier_rank": 1, "price": "15.00", "currency": "EUR",
                       "interval": "month", "deployment": "dedicated", "cpu_cores": 1, "memory_mib": 1024,
                       "storage_gib": 5, "backup_schedule": "daily"}]
        })
    }

    #[tokio::test]
    async fn admins_create_update_and_deactivate_products_and_plans() {
        let app = spawn_app().await;
        let admin = app.admin().await;
        let res = app
            .post_as("/v1/products", &admin.access_token, product())
            .await;
        assert_eq!(res.status(), 201);
        let created: Value = res.json().await.unwrap();
        assert_eq!(
            created["plans"][0]["price"],
            json!({"amount": "15.00", "currency": "EUR"})
        );
        let dup = app
            .post_as("/v1/products", &admin.access_token, product())
            .await;
        let body = assert_problem(dup, 409).await;
        assert!(body["detail"].as_str().unwrap().contains("erp"));

        let patched: Value = app
            .patch_as(
                "/v1/products/erp",
                &admin.access_token,
                json!({"name": "ERP Suite"}),
            )
            .await
            .json()
            .await
            .unwrap();
        assert_eq!(patched["name"], "ERP Suite");
        assert_eq!(
            patched["image"], "erp:1",
            "a merge patch keeps what it does not name"
        );

        let plan = json!({"code": "team", "name": "Team", "tier_rank": 2, "price": "45.00", "currency": "EUR", "interval": "month",
                          "deployment": "dedicated", "cpu_cores": 2, "memory_mib": 2048, "storage_gib": 10, "backup_schedule": "daily"});
        assert_eq!(
            app.post_as("/v1/products/erp/plans", &admin.access_token, plan.clone())
                .await
                .status(),
            201
        );
        assert_problem(
            app.post_as("/v1/products/erp/plans", &admin.access_token, plan)
                .await,
            409,
        )
        .await;
        let repriced: Value = app
            .patch_as(
                "/v1/products/erp/plans/team",
                &admin.access_token,
                json!({"price": "49.00"}),
            )
            .await
            .json()
            .await
            .unwrap();
        let team = repriced["plans"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["code"] == "team")
            .unwrap();
        assert_eq!(team["price"]["amount"], "49.00");

        let plans: Value = app.get_json("/v1/plans?product=erp").await;
        assert_eq!(plans["items"].as_array().unwrap().len(), 2);
        assert_eq!(
            app.post_as(
                "/v1/products/erp/plans/team/deactivate",
                &admin.access_token,
                json!({})
            )
            .await
            .status(),
            200
        );
        let plans: Value = app.get_json("/v1/plans?product=erp").await;
        assert_eq!(
            plans["items"].as_array().unwrap().len(),
            1,
            "inactive plans leave the public list"
        );
        assert_eq!(
            app.post_as(
                "/v1/products/erp/deactivate",
                &admin.access_token,
                json!({})
            )
            .await
            .status(),
            200
        );
        assert_eq!(app.get("/v1/products/erp").await.status(), 404);

        let log: Value = app
            .get_as("/v1/activity?limit=200", &admin.access_token)
            .await
            .json()
            .await
            .unwrap();
        let actions: Vec<&str> = log["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i["action"].as_str().unwrap())
            .collect();
        for a in [
            "product.created",
            "product.updated",
            "plan.created",
            "plan.updated",
            "plan.deactivated",
            "product.deactivated",
        ] {
            assert!(actions.contains(&a), "{a} missing from {actions:?}");
        }
        let update = log["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|i| i["action"] == "plan.updated")
            .unwrap();
        assert_eq!(update["before"]["price"], "45");
        assert_eq!(update["after"]["price"], "49");
    }

    #[tokio::test]
    async fn invalid_products_are_422_naming_each_field() {
        let app = spawn_app().await;
        let admin = app.admin().await;
        let mut p = product();
        p["dedicated_ports"] = json!({"start": 9100, "end": 9000});
        p["plans"][0]["price"] = json!("-1.00");
        p["plans"][0]["currency"] = json!("XYZ");
        let body = assert_problem(
            app.post_as("/v1/products", &admin.access_token, p).await,
            422,
        )
        .await;
        let fields: Vec<&str> = body["errors"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["field"].as_str().unwrap())
            .collect();
        assert_eq!(fields, ["dedicated_ports", "plans[0].currency"]);
        let mut p = product();
        p["dedicated_ports"] = json!({"start": 80, "end": 9000});
        let body = assert_problem(
            app.post_as("/v1/products", &admin.access_token, p).await,
            422,
        )
        .await;
        assert_eq!(body["errors"][0]["field"], "dedicated_ports.start");
        let mut p = product();
        p["plans"][0]["price"] = json!("-1.00");
        let body = assert_problem(
            app.post_as("/v1/products", &admin.access_token, p).await,
            422,
        )
        .await;
        assert_eq!(body["errors"][0]["field"], "plans[0].price");
        let body = assert_problem(
            app.patch_as(
                "/v1/products/odoo",
                &admin.access_token,
                json!({"name": "x"}),
            )
            .await,
            404,
        )
        .await;
        assert!(body["detail"].as_str().unwrap().contains("odoo"));
    }

    #[tokio::test]
    async fn operators_manage_the_catalog_but_not_prices() {
        let app = spawn_app_with_catalog().await;
        let op = app.user("op@example.test", Role::Operator, None).await;
        let renamed = app
            .patch_as(
                "/v1/products/odoo/plans/basic",
                &op.access_token,
                json!({"name": "Basic+"}),
            )
            .await;
        assert_eq!(renamed.status(), 200);
        let body = assert_problem(
            app.patch_as(
                "/v1/products/odoo/plans/basic",
                &op.access_token,
                json!({"price": "1.00"}),
            )
            .await,
            403,
        )
        .await;
        assert!(body["detail"].as_str().unwrap().contains("price"));
        let plan = json!({"code": "mini", "name": "Mini", "tier_rank": 0, "price": "5.00", "currency": "USD", "interval": "month",
                          "deployment": "shared", "cpu_cores": 1, "memory_mib": 512, "storage_gib": 1, "backup_schedule": "none"});
        assert_problem(
            app.post_as("/v1/products/odoo/plans", &op.access_token, plan)
                .await,
            403,
        )
        .await;
        let odoo: Value = app.get_json("/v1/products/odoo").await;
        let basic = odoo["plans"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["code"] == "basic")
            .unwrap();
        assert_eq!(basic["price"]["amount"], "29.00", "nothing changed");
        assert_eq!(basic["name"], "Basic+");
    }

    #[tokio::test]
    async fn tenant_users_cannot_touch_the_catalog() {
        let app = spawn_app_with_catalog().await;
        let member = app
            .user(
                "m@example.test",
                Role::TenantMember,
                Some(app.tenant("member-co").await),
            )
            .await;
        assert_problem(
            app.patch_as(
                "/v1/products/odoo",
                &member.access_token,
                json!({"name": "x"}),
            )
            .await,
            403,
        )
        .await;
        assert_problem(
            app.post_as("/v1/products", &member.access_token, product())
                .await,
            403,
        )
        .await;
        assert_problem(app.get_as("/v1/activity", &member.access_token).await, 403).await;
    }
}
