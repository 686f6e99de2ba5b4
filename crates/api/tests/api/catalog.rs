use serde_json::Value;

use crate::helpers::{spawn_app, spawn_app_with_catalog};

#[tokio::test]
async fn products_list_the_demo_catalog() {
    let app = spawn_app_with_catalog().await;
    let page: Value = app.get_json("/v1/products").await;
    let slugs: Vec<&str> = page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["slug"].as_str().unwrap())
        .collect();
    assert_eq!(slugs, ["odoo", "inventory"]);
    assert_eq!(page["next_cursor"], Value::Null);
    let odoo = &page["items"][0];
    assert_eq!(odoo["driver"], "proxmox");
    assert_eq!(page["items"][1]["dedicated_ports"]["start"], 8100);
    assert_eq!(page["items"][1]["dedicated_ports"]["end"], 8199);
}

#[tokio::test]
async fn an_empty_catalog_is_an_empty_page() {
    let app = spawn_app().await;
    let page: Value = app.get_json("/v1/products").await;
    assert_eq!(page["items"], serde_json::json!([]));
    assert_eq!(page["next_cursor"], Value::Null);
}

#[tokio::test]
async fn a_product_shows_its_plans_with_exact_prices() {
    let app = spawn_app_with_catalog().await;
    let odoo: Value = app.get_json("/v1/products/odoo").await;
    assert_eq!(odoo["name"], "Odoo");
    let plans = odoo["plans"].as_array().unwrap();
    let basic = plans.iter().find(|p| p["code"] == "basic").unwrap();
    assert_eq!(
        basic["price"],
        serde_json::json!({"amount": "29.00", "currency": "USD"})
    );
    assert_eq!(basic["interval"], "month");
    assert_eq!(basic["deployment"], "shared");
    assert_eq!(
        basic["limits"],
        serde_json::json!({"cpu_cores": 1, "memory_mib": 2048, "storage_gib": 10})
    );
    assert_eq!(basic["backup_schedule"], "weekly");
    assert_eq!(basic["sla_percent"], "99");
    let pro = plans.iter().find(|p| p["code"] == "pro").unwrap();
    assert_eq!(pro["price"]["amount"], "49.00");
    assert_eq!(pro["deployment"], "dedicated");
    assert_eq!(pro["sla_percent"], "99.5");
    let ent = plans.iter().find(|p| p["code"] == "enterprise").unwrap();
    assert_eq!(ent["deployment"], "dedicated_ha");
    assert_eq!(ent["backup_schedule"], "6h");
    assert_eq!(ent["sla_percent"], "99.9");
    let yearly = plans
        .iter()
        .find(|p| p["code"] == "enterprise-yearly")
        .unwrap();
    assert_eq!(yearly["price"]["amount"], "990.00");
    assert_eq!(yearly["interval"], "year");
}

#[tokio::test]
async fn an_unknown_product_is_404() {
    let app = spawn_app_with_catalog().await;
    let body = app.get_problem("/v1/products/nope", 404).await;
    assert!(body["detail"].as_str().unwrap().contains("nope"));
}

#[tokio::test]
async fn plans_filter_by_product_and_paginate_without_gaps() {
    let app = spawn_app_with_catalog().await;
    let mut codes = Vec::new();
    let mut cursor: Option<String> = None;
    let mut pages = 0;
    loop {
        let path = match &cursor {
            None => "/v1/plans?product=inventory&limit=3".to_owned(),
            Some(c) => format!("/v1/plans?product=inventory&limit=3&cursor={c}"),
        };
        let page: Value = app.get_json(&path).await;
        pages += 1;
        for p in page["items"].as_array().unwrap() {
            assert_eq!(p["product"], "inventory");
            codes.push(p["code"].as_str().unwrap().to_owned());
        }
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => break,
        }
    }
    assert_eq!(
        codes,
        [
            "free",
            "starter",
            "starter-yearly",
            "business",
            "business-yearly",
            "enterprise",
            "enterprise-yearly",
            "lifetime"
        ]
    );
    assert_eq!(pages, 3);

    let all: Value = app.get_json("/v1/plans?limit=200").await;
    assert_eq!(all["items"].as_array().unwrap().len(), 6 + 8);
    let free = all["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["code"] == "free")
        .unwrap();
    assert_eq!(free["price"]["amount"], "0.00");
    assert_eq!(free["sla_percent"], Value::Null);
    let lifetime = all["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["code"] == "lifetime")
        .unwrap();
    assert_eq!(lifetime["interval"], "lifetime");
    assert_eq!(lifetime["deployment"], "dedicated");
}
