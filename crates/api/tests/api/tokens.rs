//! API tokens for scripts, and JWT hardening.

use base64::Engine as _;
use serde_json::{Value, json};
use tenantry_domain::Role;

use crate::helpers::{assert_problem, spawn_app};

#[tokio::test]
async fn an_api_token_is_shown_once_stored_hashed_and_usable() {
    let app = spawn_app().await;
    let admin = app.admin().await;
    let res = app
        .post_as(
            "/v1/api-tokens",
            &admin.access_token,
            json!({"name": "ci", "scopes": ["catalog:read", "catalog:write"]}),
        )
        .await;
    assert_eq!(res.status(), 201);
    let created: Value = res.json().await.unwrap();
    let secret = created["secret"].as_str().unwrap().to_owned();
    assert!(secret.starts_with("tnt_"));
    let random = &secret[4..];
    assert!(random.len() >= 43, "≥ 32 random bytes, base64url");
    assert!(
        random
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    );

    // Only a hash is stored; no column holds the secret.
    let sql = app.sql().await;
    let row = sql
        .query_one("SELECT token_hash, prefix, row_to_json(api_tokens)::text FROM api_tokens WHERE id = $1", &[&created["id"].as_str().unwrap().parse::<uuid::Uuid>().unwrap()])
        .await
        .unwrap();
    let hash: String = row.get(0);
    assert_eq!(hash.len(), 64);
    assert!(!row.get::<_, String>(2).contains(random));

    // The list shows it without the secret; use sets last_used_at.
    let me: Value = app.get_as("/v1/me", &secret).await.json().await.unwrap();
    assert_eq!(me["authenticated_by"], "api_token");
    assert_eq!(me["scopes"], json!(["catalog:read", "catalog:write"]));
    let list = app
        .get_as("/v1/api-tokens", &admin.access_token)
        .await
        .text()
        .await
        .unwrap();
    assert!(!list.contains(random), "the list never shows secrets");
    let list: Value = serde_json::from_str(&list).unwrap();
    assert_eq!(list["items"][0]["name"], "ci");
    assert!(list["items"][0]["last_used_at"].is_string());
    assert_eq!(list["items"][0]["prefix"], &secret[..12]);

    // The activity log records creation without the secret.
    let log = app
        .get_as("/v1/activity?action=api_token.created", &admin.access_token)
        .await
        .text()
        .await
        .unwrap();
    assert!(log.contains("api_token.created") && !log.contains(random));

    // Revoked → 401.
    let id = created["id"].as_str().unwrap();
    let res = app
        .delete_as(&format!("/v1/api-tokens/{id}"), &admin.access_token)
        .await;
    assert_eq!(res.status(), 204);
    assert_problem(app.get_as("/v1/me", &secret).await, 401).await;
    let revoked: Value = app
        .get_as("/v1/activity?action=api_token.revoked", &admin.access_token)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(revoked["items"][0]["target_id"], id);
    assert_eq!(revoked["items"][0]["actor_id"], admin.user_id.to_string());
}

#[tokio::test]
async fn an_expired_token_is_refused() {
    let app = spawn_app().await;
    let admin = app.admin().await;
    let expires = (chrono::Utc::now() + chrono::Duration::hours(1)).to_rfc3339();
    let created: Value = app
        .post_as(
            "/v1/api-tokens",
            &admin.access_token,
            json!({"name": "short", "scopes": ["catalog:read"], "expires_at": expires}),
        )
        .await
        .json()
        .await
        .unwrap();
    let secret = created["secret"].as_str().unwrap();
    assert_eq!(app.get_as("/v1/me", secret).await.status(), 200);
    app.sql()
        .await
        .execute(
            "UPDATE api_tokens SET expires_at = now() - interval '1 second'",
            &[],
        )
        .await
        .unwrap();
    assert_problem(app.get_as("/v1/me", secret).await, 401).await;

    let past = app
        .post_as(
            "/v1/api-tokens",
            &admin.access_token,
            json!({"name": "x", "scopes": ["catalog:read"], "expires_at": "2000-01-01T00:00:00Z"}),
        )
        .await;
    let body = assert_problem(past, 422).await;
    assert_eq!(body["errors"][0]["field"], "expires_at");
}

#[tokio::test]
async fn scopes_restrict_what_a_token_may_do() {
    let app = spawn_app().await;
    let admin = app.admin().await;
    let read_only: Value = app
        .post_as(
            "/v1/api-tokens",
            &admin.access_token,
            json!({"name": "ro", "scopes": ["catalog:read"]}),
        )
        .await
        .json()
        .await
        .unwrap();
    let ro = read_only["secret"].as_str().unwrap();
    let product = json!({"slug": "erp", "name": "ERP", "driver": "docker", "image": "erp:1", "internal_port": 8080});
    assert_problem(app.post_as("/v1/products", ro, product.clone()).await, 403).await;
    assert_problem(app.get_as("/v1/activity", ro).await, 403).await;
    // A token cannot mint tokens or touch 2FA.
    assert_problem(
        app.post_as(
            "/v1/api-tokens",
            ro,
            json!({"name": "x", "scopes": ["catalog:read"]}),
        )
        .await,
        403,
    )
    .await;
    assert_problem(app.post_as("/v1/auth/totp/setup", ro, json!({})).await, 403).await;

    let writer: Value = app
        .post_as(
            "/v1/api-tokens",
            &admin.access_token,
            json!({"name": "rw", "scopes": ["catalog:write"]}),
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        app.post_as("/v1/products", writer["secret"].as_str().unwrap(), product)
            .await
            .status(),
        201
    );

    for bad in [
        json!({"name": "", "scopes": ["catalog:read"]}),
        json!({"name": "x", "scopes": ["root"]}),
        json!({"name": "x", "scopes": []}),
    ] {
        assert_problem(
            app.post_as("/v1/api-tokens", &admin.access_token, bad)
                .await,
            422,
        )
        .await;
    }
}

#[tokio::test]
async fn tenant_users_grant_only_what_their_role_has_and_only_their_tenant() {
    let app = spawn_app().await;
    let tenant = app.tenant("acme").await;
    let owner = app
        .user("owner@example.test", Role::TenantOwner, Some(tenant))
        .await;
    let res = app
        .post_as(
            "/v1/api-tokens",
            &owner.access_token,
            json!({"name": "x", "scopes": ["nodes:read"]}),
        )
        .await;
    assert_problem(res, 403).await;
    let res = app
        .post_as(
            "/v1/api-tokens",
            &owner.access_token,
            json!({"name": "x", "scopes": ["tenants:read"], "tenant_id": app.tenant("other-co").await}),
        )
        .await;
    assert_problem(res, 403).await;
    let ok: Value = app
        .post_as(
            "/v1/api-tokens",
            &owner.access_token,
            json!({"name": "x", "scopes": ["tenants:read", "activity:read"]}),
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        ok["tenant_id"],
        tenant.to_string(),
        "bound to the owner's tenant"
    );
}

#[tokio::test]
async fn a_staff_token_bound_to_a_tenant_sees_only_that_tenant() {
    let app = spawn_app().await;
    let admin = app.admin().await;
    let (a, b) = (app.tenant("tenant-a").await, app.tenant("tenant-b").await);
    app.user("a@example.test", Role::TenantOwner, Some(a)).await;
    app.user("b@example.test", Role::TenantOwner, Some(b)).await;
    let bound: Value = app
        .post_as(
            "/v1/api-tokens",
            &admin.access_token,
            json!({"name": "a-only", "scopes": ["activity:read"], "tenant_id": a}),
        )
        .await
        .json()
        .await
        .unwrap();
    let page: Value = app
        .get_as(
            &format!("/v1/activity?tenant={b}&limit=200"),
            bound["secret"].as_str().unwrap(),
        )
        .await
        .json()
        .await
        .unwrap();
    let items = page["items"].as_array().unwrap();
    assert!(!items.is_empty());
    assert!(
        items.iter().all(|i| i["tenant_id"] == a.to_string()),
        "{items:?}"
    );
}

#[tokio::test]
async fn others_tokens_are_invisible_and_unrevocable() {
    let app = spawn_app().await;
    let op1 = app.user("op1@example.test", Role::Operator, None).await;
    let op2 = app.user("op2@example.test", Role::Operator, None).await;
    let t: Value = app
        .post_as(
            "/v1/api-tokens",
            &op1.access_token,
            json!({"name": "op1", "scopes": ["nodes:read"]}),
        )
        .await
        .json()
        .await
        .unwrap();
    let list: Value = app
        .get_as("/v1/api-tokens", &op2.access_token)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(list["items"], json!([]));
    let res = app
        .request(
            reqwest::Method::DELETE,
            &format!("/v1/api-tokens/{}", t["id"].as_str().unwrap()),
            &op2.access_token,
        )
        .send()
        .await
        .unwrap();
    assert_problem(res, 404).await;
    // An admin sees and may revoke everyone's.
    let admin = app.admin().await;
    let all: Value = app
        .get_as("/v1/api-tokens", &admin.access_token)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(all["items"].as_array().unwrap().len(), 1);
    let res = app
        .request(
            reqwest::Method::DELETE,
            &format!("/v1/api-tokens/{}", t["id"].as_str().unwrap()),
            &admin.access_token,
        )
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 204);
}

mod jwt {
    use super::*;
    use jsonwebtoken::{Algorithm, EncodingKey, Header, encode};

    fn test_key(app: &crate::helpers::TestApp) -> (String, Vec<u8>) {
        let spec =
            secrecy::ExposeSecret::expose_secret(app.settings.auth.jwt_keys.as_ref().unwrap())
                .to_owned();
        let (kid, b64) = spec.split_once(':').unwrap();
        (
            kid.to_owned(),
            base64::engine::general_purpose::STANDARD
                .decode(b64)
                .unwrap(),
        )
    }

    fn claims(sub: uuid::Uuid, exp_offset: i64) -> Value {
        let now = chrono::Utc::now().timestamp();
        json!({"sub": sub, "role": "admin", "tenant_id": null, "iat": now, "exp": now + exp_offset, "jti": uuid::Uuid::now_v7()})
    }

    fn b64(v: &Value) -> String {
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string())
    }

    #[tokio::test]
    async fn forged_and_expired_tokens_are_refused() {
        let app = spawn_app().await;
        let admin = app.admin().await;
        let (kid, key) = test_key(&app);
        let sign = |alg: Algorithm, kid: Option<&str>, c: &Value| {
            let mut h = Header::new(alg);
            h.kid = kid.map(str::to_owned);
            encode(&h, c, &EncodingKey::from_secret(&key)).unwrap()
        };
        // A well-formed token signed with the key works (control).
        let good = sign(Algorithm::HS256, Some(&kid), &claims(admin.user_id, 60));
        assert_eq!(app.get_as("/v1/me", &good).await.status(), 200);

        let none = format!(
            "{}.{}.",
            b64(&json!({"alg": "none", "typ": "JWT", "kid": kid})),
            b64(&claims(admin.user_id, 60))
        );
        let wrong_alg = sign(Algorithm::HS384, Some(&kid), &claims(admin.user_id, 60));
        let unknown_kid = sign(Algorithm::HS256, Some("nope"), &claims(admin.user_id, 60));
        let no_kid = sign(Algorithm::HS256, None, &claims(admin.user_id, 60));
        let expired = sign(Algorithm::HS256, Some(&kid), &claims(admin.user_id, -60));
        let tampered = {
            let mut parts: Vec<String> = good.split('.').map(str::to_owned).collect();
            let mut c = claims(admin.user_id, 60);
            c["role"] = json!("admin");
            c["sub"] = json!(uuid::Uuid::now_v7());
            parts[1] = b64(&c);
            parts.join(".")
        };
        for (name, token) in [
            ("alg none", none),
            ("HS384", wrong_alg),
            ("unknown kid", unknown_kid),
            ("no kid", no_kid),
            ("expired", expired),
            ("tampered", tampered),
        ] {
            let res = app.get_as("/v1/me", &token).await;
            assert_eq!(res.status(), 401, "{name}");
            assert_eq!(res.headers()["www-authenticate"], "Bearer", "{name}");
        }
    }

    #[tokio::test]
    async fn an_old_key_still_verifies_during_rotation() {
        let old = tenantry_api::config::random_key_list("old");
        let new = tenantry_api::config::random_key_list("new");
        let db = tenantry_test_db::TestDatabase::new().await;
        let mut settings = tenantry_api::config::Settings::for_tests(db.url());
        settings.auth.jwt_keys = Some(secrecy::SecretString::from(old.clone()));
        let before = tenantry_api::auth::jwt::JwtKeys::from_config(
            settings.auth.jwt_keys.as_ref().unwrap(),
            std::time::Duration::from_secs(60),
        )
        .unwrap();
        let token = before.issue(uuid::Uuid::now_v7(), "admin", None).unwrap();
        let rotated = tenantry_api::auth::jwt::JwtKeys::from_config(
            &secrecy::SecretString::from(format!("{new},{old}")),
            std::time::Duration::from_secs(60),
        )
        .unwrap();
        assert!(
            rotated.verify(&token).is_ok(),
            "a token of the old key verifies"
        );
        let fresh = rotated.issue(uuid::Uuid::now_v7(), "admin", None).unwrap();
        let header: Value = serde_json::from_slice(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(fresh.split('.').next().unwrap())
                .unwrap(),
        )
        .unwrap();
        assert_eq!(header["kid"], "new", "new tokens use the first key");
        let retired = tenantry_api::auth::jwt::JwtKeys::from_config(
            &secrecy::SecretString::from(new),
            std::time::Duration::from_secs(60),
        )
        .unwrap();
        assert!(
            retired.verify(&token).is_err(),
            "once the old key is removed its tokens fail"
        );
        drop(db);
    }
}
