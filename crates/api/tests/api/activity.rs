//! The activity log API.

use serde_json::{Value, json};
use tenantry_domain::Role;

use crate::helpers::{PASSWORD, assert_problem, spawn_app};

#[tokio::test]
async fn rows_carry_actor_tenant_ip_agent_and_request_id() {
    let app = spawn_app().await;
    let admin = app.admin().await;
    let tenant = app.tenant("acme").await;
    app.create_user("owner@example.test", Role::TenantOwner, Some(tenant))
        .await;
    let res = app
        .client
        .post(app.url("/v1/auth/login"))
        .header("user-agent", "audit-test/1.0")
        .header("x-request-id", "req-audit-1")
        .json(&json!({"email": "owner@example.test", "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    app.login_response(json!({"email": "owner@example.test", "password": "wrong password"}))
        .await;

    let page: Value = app
        .get_as(
            &format!("/v1/activity?tenant={tenant}"),
            &admin.access_token,
        )
        .await
        .json()
        .await
        .unwrap();
    let items = page["items"].as_array().unwrap();
    let login = items.iter().find(|i| i["action"] == "auth.login").unwrap();
    assert_eq!(login["actor"], "owner@example.test");
    assert_eq!(login["tenant_id"], tenant.to_string());
    assert_eq!(login["client_ip"], "127.0.0.1");
    assert_eq!(login["user_agent"], "audit-test/1.0");
    assert_eq!(login["request_id"], "req-audit-1");
    assert!(items.iter().any(|i| i["action"] == "auth.login_failed"));
    assert!(
        !page.to_string().contains(PASSWORD),
        "no password in the log"
    );

    // Filters: action, actor, time range; and cursor pagination.
    let failed: Value = app
        .get_as("/v1/activity?action=auth.login_failed", &admin.access_token)
        .await
        .json()
        .await
        .unwrap();
    assert!(
        failed["items"]
            .as_array()
            .unwrap()
            .iter()
            .all(|i| i["action"] == "auth.login_failed")
    );
    let mine: Value = app
        .get_as(
            &format!("/v1/activity?actor={}", admin.user_id),
            &admin.access_token,
        )
        .await
        .json()
        .await
        .unwrap();
    assert!(
        mine["items"]
            .as_array()
            .unwrap()
            .iter()
            .all(|i| i["actor_id"] == admin.user_id.to_string())
    );
    let future: Value = app
        .get_as(
            "/v1/activity?since=2999-01-01T00:00:00Z",
            &admin.access_token,
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(future["items"], json!([]));
    let first: Value = app
        .get_as("/v1/activity?limit=1", &admin.access_token)
        .await
        .json()
        .await
        .unwrap();
    let next = first["next_cursor"].as_str().unwrap();
    let second: Value = app
        .get_as(
            &format!("/v1/activity?limit=1&cursor={next}"),
            &admin.access_token,
        )
        .await
        .json()
        .await
        .unwrap();
    assert_ne!(first["items"][0]["id"], second["items"][0]["id"]);
}

#[tokio::test]
async fn tenant_users_see_only_their_tenant() {
    let app = spawn_app().await;
    let (a, b) = (app.tenant("tenant-a").await, app.tenant("tenant-b").await);
    let owner_a = app.user("a@example.test", Role::TenantOwner, Some(a)).await;
    app.user("b@example.test", Role::TenantOwner, Some(b)).await;
    app.admin().await;
    for query in ["", &format!("?tenant={b}")] {
        let page: Value = app
            .get_as(&format!("/v1/activity{query}"), &owner_a.access_token)
            .await
            .json()
            .await
            .unwrap();
        let items = page["items"].as_array().unwrap();
        assert!(!items.is_empty());
        assert!(
            items.iter().all(|i| i["tenant_id"] == a.to_string()),
            "{query}: {items:?}"
        );
    }
    let member = app
        .user("m@example.test", Role::TenantMember, Some(a))
        .await;
    assert_problem(app.get_as("/v1/activity", &member.access_token).await, 403).await;
}
