//! Catalog administration: admins create, update and deactivate products
//! and plans; invalid products are 422 naming each field; operators manage
//! the catalog but not prices; tenant users cannot touch it.

use serde_json::{Value, json};
use tenantry_domain::Role;

use crate::helpers::{assert_problem, spawn_app, spawn_app_with_catalog};

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
