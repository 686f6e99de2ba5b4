//! `/v1/nodes`: the node registry, sealed credentials, deletion rules,
//! connection checks and the health check; `/v1/jobs` lists.

use serde_json::{Value, json};
use tenantry_domain::Role;

use crate::helpers::{assert_problem, spawn_app, spawn_app_with};

pub const SECRET: &str = "5f0c0b4e-7d5a-4d0e-9b8e-2f6a1c3d4e5f";

/// A valid Proxmox node registration.
pub fn proxmox_node(name: &str, api_url: &str) -> Value {
    json!({
        "kind": "proxmox",
        "name": name,
        "api_url": api_url,
        "credentials": {"token_id": "root@pam!tenantry", "token_secret": SECRET},
        "capacity": {"cpu_cores": 16, "memory_mib": 65536, "storage_gib": 1024, "max_instances": 50},
    })
}

/// Registers [`proxmox_node`] `pve1` and returns its id.
async fn register_pve1(app: &crate::helpers::TestApp, token: &str) -> uuid::Uuid {
    let node: Value = app
        .post_as(
            "/v1/nodes",
            token,
            proxmox_node("pve1", "https://pve1:8006/api2/json"),
        )
        .await
        .json()
        .await
        .unwrap();
    node["id"].as_str().unwrap().parse().unwrap()
}

#[tokio::test]
async fn a_registered_node_keeps_its_token_sealed_and_never_shows_it() {
    let app = spawn_app().await;
    let admin = app.admin().await;
    let res = app
        .post_as(
            "/v1/nodes",
            &admin.access_token,
            proxmox_node("pve1", "https://pve1.example.test:8006/api2/json"),
        )
        .await;
    assert_eq!(res.status(), 201);
    let text = res.text().await.unwrap();
    assert!(
        !text.contains(SECRET),
        "the secret never comes back: {text}"
    );
    let node: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(node["status"], "online");
    assert_eq!(node["has_credentials"], true);
    assert_eq!(node["token_id"], "root@pam!tenantry");
    assert_eq!(node["tls_verification"], "system");
    let id: uuid::Uuid = node["id"].as_str().unwrap().parse().unwrap();

    // At rest: an AES-256-GCM blob under a named key, not the secret.
    let row = app
        .sql()
        .await
        .query_one(
            "SELECT credentials, credentials_key_id FROM nodes WHERE id = $1",
            &[&id],
        )
        .await
        .unwrap();
    let blob: Vec<u8> = row.get(0);
    let key_id: String = row.get(1);
    assert!(!blob.windows(SECRET.len()).any(|w| w == SECRET.as_bytes()));
    assert!(blob.len() > 12 + 16, "nonce, ciphertext and tag");
    assert!(!key_id.is_empty());

    for path in [format!("/v1/nodes/{id}"), "/v1/nodes".to_owned()] {
        let body = app
            .get_as(&path, &admin.access_token)
            .await
            .text()
            .await
            .unwrap();
        assert!(!body.contains(SECRET), "{path}: {body}");
        assert!(body.contains("pve1"));
    }
    let activity = app
        .get_as("/v1/activity?action=node.created", &admin.access_token)
        .await
        .text()
        .await
        .unwrap();
    assert!(activity.contains(&id.to_string()) && !activity.contains(SECRET));
}

#[tokio::test]
async fn invalid_registrations_name_every_bad_field_and_create_nothing() {
    let app = spawn_app().await;
    let admin = app.admin().await;
    let body = json!({
        "kind": "proxmox",
        "name": "PVE_1",
        "api_url": "ftp://pve1",
        "credentials": {"token_id": "root@pam", "token_secret": ""},
        "tls": {"ca_pem": "not pem", "fingerprint": "zz"},
        "capacity": {"cpu_cores": 0, "memory_mib": 1024, "storage_gib": 10, "max_instances": 0},
        "status": "offline",
    });
    let res = app.post_as("/v1/nodes", &admin.access_token, body).await;
    let problem = assert_problem(res, 422).await;
    let fields: Vec<&str> = problem["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["field"].as_str().unwrap())
        .collect();
    for f in [
        "name",
        "api_url",
        "credentials.token_id",
        "credentials.token_secret",
        "tls",
        "tls.ca_pem",
        "tls.fingerprint",
        "capacity.cpu_cores",
        "capacity.max_instances",
        "status",
    ] {
        assert!(fields.contains(&f), "{f} missing from {fields:?}");
    }
    let mut no_creds = proxmox_node("pve1", "https://pve1:8006/api2/json");
    no_creds.as_object_mut().unwrap().remove("credentials");
    let problem = assert_problem(
        app.post_as("/v1/nodes", &admin.access_token, no_creds)
            .await,
        422,
    )
    .await;
    assert_eq!(problem["errors"][0]["field"], "credentials");
    let n: i64 = app
        .sql()
        .await
        .query_one("SELECT count(*) FROM nodes", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(n, 0);
}

#[tokio::test]
async fn names_are_unique_and_nodes_are_staff_only() {
    let app = spawn_app().await;
    let admin = app.admin().await;
    let body = proxmox_node("pve1", "https://pve1:8006/api2/json");
    assert_eq!(
        app.post_as("/v1/nodes", &admin.access_token, body.clone())
            .await
            .status(),
        201
    );
    let problem = assert_problem(
        app.post_as("/v1/nodes", &admin.access_token, body.clone())
            .await,
        409,
    )
    .await;
    assert!(problem["detail"].as_str().unwrap().contains("pve1"));
    let tenant = app.tenant("acme").await;
    let owner = app
        .user("owner@example.test", Role::TenantOwner, Some(tenant))
        .await;
    assert_problem(app.get_as("/v1/nodes", &owner.access_token).await, 403).await;
    let operator = app.user("op@example.test", Role::Operator, None).await;
    assert_eq!(
        app.get_as("/v1/nodes", &operator.access_token)
            .await
            .status(),
        200
    );
}

#[tokio::test]
async fn operators_drain_and_change_nodes_but_cannot_declare_them_offline() {
    let app = spawn_app().await;
    let admin = app.admin().await;
    let node: Value = app
        .post_as(
            "/v1/nodes",
            &admin.access_token,
            proxmox_node("pve1", "https://pve1:8006/api2/json"),
        )
        .await
        .json()
        .await
        .unwrap();
    let path = format!("/v1/nodes/{}", node["id"].as_str().unwrap());
    let res = app
        .patch_as(&path, &admin.access_token, json!({"status": "draining", "capacity": {"cpu_cores": 8, "memory_mib": 32768, "storage_gib": 512, "max_instances": 10}, "tls": {"fingerprint": "ab".repeat(32)}}))
        .await;
    assert_eq!(res.status(), 200);
    let changed: Value = res.json().await.unwrap();
    assert_eq!(changed["status"], "draining");
    assert_eq!(changed["capacity"]["cpu_cores"], 8);
    assert_eq!(changed["tls_verification"], "fingerprint");
    assert_eq!(changed["tls_fingerprint"].as_str().unwrap().len(), 95);
    let problem = assert_problem(
        app.patch_as(&path, &admin.access_token, json!({"status": "offline"}))
            .await,
        422,
    )
    .await;
    assert_eq!(problem["errors"][0]["field"], "status");
    let filtered: Value = app
        .get_as("/v1/nodes?status=draining", &admin.access_token)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(filtered["items"].as_array().unwrap().len(), 1);
    assert_problem(
        app.get_as("/v1/nodes?status=gone", &admin.access_token)
            .await,
        400,
    )
    .await;
    let before_after: Value = app
        .get_as("/v1/activity?action=node.updated", &admin.access_token)
        .await
        .json()
        .await
        .unwrap();
    let row = &before_after["items"][0];
    assert_eq!(row["before"]["status"], "online");
    assert_eq!(row["after"]["status"], "draining");
}

#[tokio::test]
async fn a_node_with_instances_cannot_be_deleted() {
    let app = crate::helpers::spawn_app_with_catalog().await;
    let admin = app.admin().await;
    let id = register_pve1(&app, &admin.access_token).await;
    let sql = app.sql().await;
    sql.execute(
        "INSERT INTO instances (id, node_id, product_id, kind, external_id) \
         SELECT gen_random_uuid(), $1, id, 'dedicated', '105' FROM products WHERE slug = 'odoo'",
        &[&id],
    )
    .await
    .unwrap();
    let path = format!("/v1/nodes/{id}");
    let problem = assert_problem(app.delete_as(&path, &admin.access_token).await, 409).await;
    assert_eq!(
        problem["type"],
        "https://tenantry.dev/problems/node-not-empty"
    );
    sql.execute("DELETE FROM instances", &[]).await.unwrap();
    let res = app.delete_as(&path, &admin.access_token).await;
    assert_eq!(res.status(), 204);
    assert_problem(app.get_as(&path, &admin.access_token).await, 404).await;
}

#[tokio::test]
async fn credentials_sealed_under_an_old_key_still_open_after_rotation_and_are_resealed_on_change()
{
    let keys = "k1:".to_owned() + &base64_key(1);
    let first = spawn_app_with(|s| s.auth.secret_keys = Some(keys.clone().into())).await;
    let admin = first.admin().await;
    let id = register_pve1(&first, &admin.access_token).await;
    // A second app on the same database with a new current key, the old one kept.
    let rotated = format!("k2:{},{keys}", base64_key(2));
    let mut settings = first.settings.clone();
    settings.auth.secret_keys = Some(rotated.into());
    let second = crate::helpers::spawn_app_with_settings(settings);
    // Same JWT keys: the admin's token works on both.
    let admin2 = admin.access_token.clone();
    let shown: Value = second
        .get_as(&format!("/v1/nodes/{id}"), &admin2)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        shown["token_id"], "root@pam!tenantry",
        "opened with the old key"
    );
    let res = second
        .patch_as(
            &format!("/v1/nodes/{id}"),
            &admin2,
            json!({"credentials": {"token_id": "root@pam!t2", "token_secret": SECRET}}),
        )
        .await;
    assert_eq!(res.status(), 200);
    let key_id: String = first
        .sql()
        .await
        .query_one("SELECT credentials_key_id FROM nodes WHERE id = $1", &[&id])
        .await
        .unwrap()
        .get(0);
    assert_eq!(key_id, "k2");
}

fn base64_key(seed: u8) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode([seed; 32])
}

#[tokio::test]
async fn jobs_are_listed_by_tenant_status_and_kind_and_tenants_see_only_theirs() {
    use tenantry_store::jobs::kinds::{NodeCheck, Provision};
    let app = spawn_app().await;
    let (ta, tb) = (app.tenant("tenant-a").await, app.tenant("tenant-b").await);
    let mut conn = app.pool().get().await.unwrap();
    let a_job = tenantry_store::jobs::enqueue(&mut conn, &Provision { tenant_id: ta })
        .await
        .unwrap();
    tenantry_store::jobs::enqueue(&mut conn, &Provision { tenant_id: tb })
        .await
        .unwrap();
    tenantry_store::jobs::enqueue(
        &mut conn,
        &NodeCheck {
            node_id: uuid::Uuid::now_v7(),
        },
    )
    .await
    .unwrap();
    drop(conn);
    let admin = app.admin().await;
    let all: Value = app
        .get_as("/v1/jobs", &admin.access_token)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(all["items"].as_array().unwrap().len(), 3);
    let kind: Value = app
        .get_as(
            "/v1/jobs?kind=node.check&status=queued",
            &admin.access_token,
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(kind["items"].as_array().unwrap().len(), 1);
    let by_tenant: Value = app
        .get_as(&format!("/v1/jobs?tenant={ta}"), &admin.access_token)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(by_tenant["items"][0]["id"], a_job.id.to_string());
    assert_eq!(by_tenant["items"][0]["max_attempts"], 10);
    assert_problem(
        app.get_as("/v1/jobs?status=bogus", &admin.access_token)
            .await,
        400,
    )
    .await;
    let owner = app
        .user("owner@example.test", Role::TenantOwner, Some(ta))
        .await;
    // Asking for B's jobs still yields only A's.
    let mine: Value = app
        .get_as(&format!("/v1/jobs?tenant={tb}"), &owner.access_token)
        .await
        .json()
        .await
        .unwrap();
    let items = mine["items"].as_array().unwrap();
    assert_eq!(items.len(), 1);
    assert_eq!(items[0]["tenant_id"], ta.to_string());
}
