//! A tenant's lifecycle (invalid transitions refused, history kept after
//! deletion) and the subscription with its next charge.

use serde_json::{Value, json};

use crate::helpers::{assert_problem, spawn_app_with_catalog};

#[tokio::test]
async fn the_lifecycle_refuses_invalid_transitions_and_keeps_history_after_deletion() {
    let app = spawn_app_with_catalog().await;
    let admin = app.admin().await;
    let id = app.tenant("acme").await;
    let post = async |action: &str| {
        app.post_as(
            &format!("/v1/tenants/{id}/{action}"),
            &admin.access_token,
            json!({}),
        )
        .await
    };
    let paused: Value = post("pause").await.json().await.unwrap();
    assert_eq!(paused["tenant"]["status"], "paused");
    let body = assert_problem(post("pause").await, 409).await;
    assert_eq!(
        body["type"],
        "https://tenantry.dev/problems/invalid-transition"
    );
    let detail = body["detail"].as_str().unwrap();
    assert!(
        detail.contains("current: paused") && detail.contains("requested: paused"),
        "{detail}"
    );
    assert_eq!(
        post("resume").await.status(),
        202,
        "a resume job starts its instance"
    );
    assert_problem(post("resume").await, 409).await;

    let del = app
        .delete_as(&format!("/v1/tenants/{id}"), &admin.access_token)
        .await;
    assert_eq!(del.status(), 202);
    let body: Value = del.json().await.unwrap();
    assert_eq!(body["tenant"]["status"], "deprovisioning");
    assert_eq!(body["job"]["kind"], "deprovision");
    let again = app
        .delete_as(&format!("/v1/tenants/{id}"), &admin.access_token)
        .await;
    assert_problem(again, 409).await;

    // Mark it deleted as the deprovisioning job will; the history stays.
    app.sql()
        .await
        .execute(
            "UPDATE tenants SET status = 'deleted' WHERE id = $1",
            &[&id],
        )
        .await
        .unwrap();
    let log: Value = app
        .get_as(&format!("/v1/tenants/{id}/activity"), &admin.access_token)
        .await
        .json()
        .await
        .unwrap();
    let changes: Vec<(String, String)> = log["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|i| i["action"] == "tenant.status_changed")
        .map(|i| {
            (
                i["before"]["status"].as_str().unwrap().to_owned(),
                i["after"]["status"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        changes,
        [
            ("active".into(), "paused".into()),
            ("paused".into(), "active".into()),
            ("active".into(), "deprovisioning".into())
        ]
    );
}

#[tokio::test]
async fn the_subscription_shows_the_next_charge() {
    let app = spawn_app_with_catalog().await;
    let admin = app.admin().await;
    let id = app.tenant("acme").await; // odoo/basic, active, a 30-day period from now
    let sub: Value = app
        .get_as(
            &format!("/v1/tenants/{id}/subscription"),
            &admin.access_token,
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(sub["plan"], "basic");
    assert_eq!(sub["status"], "active");
    assert_eq!(sub["next_charge_at"], sub["current_period_end"]);
    assert_eq!(
        sub["next_charge_amount"],
        json!({"amount": "29.00", "currency": "USD"})
    );
    // The period started just now: the whole period's days remain, less the part of a day elapsed.
    let start: chrono::DateTime<chrono::Utc> = sub["current_period_start"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let end: chrono::DateTime<chrono::Utc> =
        sub["current_period_end"].as_str().unwrap().parse().unwrap();
    let whole = (end - start).num_days();
    let days = sub["days_remaining"].as_i64().unwrap();
    assert!((whole - 1..=whole).contains(&days), "{days} of {whole}");
    assert_eq!(sub["scheduled_plan_change"], Value::Null);
}
