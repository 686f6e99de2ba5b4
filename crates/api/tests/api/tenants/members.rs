//! Members of a tenant: the owner invites and removes them, and the
//! activity log records it.

use serde_json::{Value, json};

use super::{signup, signup_body};
use crate::helpers::{PASSWORD, assert_problem, spawn_app_with_catalog};

#[tokio::test]
async fn owners_invite_and_remove_members() {
    let app = spawn_app_with_catalog().await;
    signup(
        &app,
        &signup_body("acme", "owner@acme.test", "odoo", "basic"),
    )
    .await;
    let owner = app.login("owner@acme.test").await;
    let res = app
        .post_as(
            "/v1/tenants/acme/members",
            &owner.access_token,
            json!({"email": "Dev@Acme.Test"}),
        )
        .await;
    assert_eq!(res.status(), 201);
    let inv: Value = res.json().await.unwrap();
    assert_eq!(inv["email"], "dev@acme.test");
    assert_eq!(inv["role"], "tenant_member");
    let members: Value = app
        .get_as("/v1/tenants/acme/members", &owner.access_token)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(members[1]["status"], "invited");
    let token = inv["invitation_url"]
        .as_str()
        .unwrap()
        .split("token=")
        .nth(1)
        .unwrap();
    let accepted: Value = app
        .client
        .post(app.url("/v1/invitations/accept"))
        .json(&json!({"token": token, "password": PASSWORD}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let member = app.login("dev@acme.test").await;
    assert_eq!(
        app.get_as("/v1/tenants/acme", &member.access_token)
            .await
            .status(),
        200
    );
    assert_problem(
        app.post_as(
            "/v1/tenants/acme/members",
            &member.access_token,
            json!({"email": "x@acme.test"}),
        )
        .await,
        403,
    )
    .await;

    let uid = accepted["user_id"].as_str().unwrap();
    let res = app
        .delete_as(
            &format!("/v1/tenants/acme/members/{uid}"),
            &owner.access_token,
        )
        .await;
    assert_eq!(res.status(), 204);
    assert_problem(app.get_as("/v1/me", &member.access_token).await, 401).await;
    // The owner is not a removable member.
    let res = app
        .request(
            reqwest::Method::DELETE,
            &format!("/v1/tenants/acme/members/{}", owner.user_id),
            &owner.access_token,
        )
        .send()
        .await
        .unwrap();
    assert_problem(res, 404).await;
    let log: Value = app
        .get_as("/v1/tenants/acme/activity", &owner.access_token)
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
    for a in ["member.invited", "member.joined", "member.removed"] {
        assert!(actions.contains(&a), "{a}: {actions:?}");
    }
}
