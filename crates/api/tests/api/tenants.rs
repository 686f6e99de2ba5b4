//! Tenants: signup, operator API, lifecycle, members, subscription,
//! idempotency, ETags and pagination.

use serde_json::{Value, json};
use tenantry_domain::Role;

use crate::helpers::{PASSWORD, TestApp, assert_problem, spawn_app_with, spawn_app_with_catalog};

fn signup_body(slug: &str, email: &str, product: &str, plan: &str) -> Value {
    json!({"company_name": format!("{slug} Inc"), "slug": slug, "email": email, "password": PASSWORD, "product": product, "plan": plan})
}

async fn signup(app: &TestApp, body: &Value) -> reqwest::Response {
    app.client
        .post(app.url("/v1/signup"))
        .json(body)
        .send()
        .await
        .unwrap()
}

async fn count(app: &TestApp, table: &str) -> i64 {
    app.sql()
        .await
        .query_one(&format!("SELECT count(*) FROM {table}"), &[])
        .await
        .unwrap()
        .get(0)
}

#[tokio::test]
async fn a_paid_signup_awaits_payment_with_a_checkout_url() {
    let app = spawn_app_with_catalog().await;
    let res = signup(
        &app,
        &signup_body("acme", "Owner@Acme.Test", "odoo", "basic"),
    )
    .await;
    assert_eq!(res.status(), 201);
    let location = res.headers()["location"].to_str().unwrap().to_owned();
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["tenant"]["status"], "pending_payment");
    assert_eq!(body["tenant"]["slug"], "acme");
    assert_eq!(body["tenant"]["product"], "odoo");
    assert_eq!(body["tenant"]["plan"], "basic");
    assert_eq!(body["tenant"]["deployment"], "shared");
    assert_eq!(body["subscription"]["status"], "incomplete");
    assert_eq!(body["subscription"]["current_period_end"], Value::Null);
    assert!(
        body["checkout_url"]
            .as_str()
            .unwrap()
            .starts_with("http://tenantry.test/sandbox/checkout/cs_sandbox_")
    );
    assert_eq!(body["job"], Value::Null);
    assert_eq!(
        location,
        format!("/v1/tenants/{}", body["tenant"]["id"].as_str().unwrap())
    );

    // The owner can sign in and sees their tenant.
    let owner = app.login("owner@acme.test").await;
    let me: Value = app
        .get_as("/v1/me", &owner.access_token)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(me["role"], "tenant_owner");
    assert_eq!(me["tenant_id"], body["tenant"]["id"]);
    let t: Value = app
        .get_as(&location, &owner.access_token)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(t["company_name"], "acme Inc");
    assert_eq!(
        t["created_at"], body["tenant"]["created_at"],
        "the signup response shows what is stored"
    );
    let log: Value = app
        .get_as(&format!("{location}/activity"), &owner.access_token)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(log["items"][0]["action"], "tenant.signup");
}

#[tokio::test]
async fn a_free_signup_starts_provisioning_with_a_job() {
    let app = spawn_app_with_catalog().await;
    let res = signup(
        &app,
        &signup_body("freebie", "f@example.test", "inventory", "free"),
    )
    .await;
    assert_eq!(res.status(), 202);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["tenant"]["status"], "provisioning");
    assert_eq!(body["subscription"]["status"], "active");
    assert!(body["subscription"]["current_period_end"].is_string());
    assert_eq!(body["checkout_url"], Value::Null);
    assert_eq!(body["job"]["kind"], "provision");
    assert_eq!(body["job"]["status"], "queued");
    let owner = app.login("f@example.test").await;
    let job: Value = app
        .get_as(
            &format!("/v1/jobs/{}", body["job"]["id"].as_str().unwrap()),
            &owner.access_token,
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(job["tenant_id"], body["tenant"]["id"]);
}

#[tokio::test]
async fn invalid_signups_name_each_field_and_create_nothing() {
    let app = spawn_app_with_catalog().await;
    let bad = json!({"company_name": "", "slug": "www", "email": "nope", "password": "short", "product": "odoo", "plan": "platinum"});
    let body = assert_problem(signup(&app, &bad).await, 422).await;
    let fields: Vec<&str> = body["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["field"].as_str().unwrap())
        .collect();
    assert_eq!(
        fields,
        ["company_name", "slug", "email", "password", "plan"]
    );
    assert!(
        body["errors"][1]["message"]
            .as_str()
            .unwrap()
            .contains("reserved")
    );
    let body = assert_problem(
        signup(&app, &signup_body("acme", "a@b.test", "erp", "basic")).await,
        422,
    )
    .await;
    assert_eq!(body["errors"][0]["field"], "product");
    let body = assert_problem(
        signup(&app, &signup_body("Acme!", "a@b.test", "odoo", "basic")).await,
        422,
    )
    .await;
    assert_eq!(body["errors"][0]["field"], "slug");
    assert_eq!(count(&app, "tenants").await, 0);
    assert_eq!(count(&app, "users").await, 0);
}

#[tokio::test]
async fn taken_slugs_and_emails_are_409_and_change_nothing() {
    let app = spawn_app_with_catalog().await;
    assert_eq!(
        signup(&app, &signup_body("acme", "a@acme.test", "odoo", "basic"))
            .await
            .status(),
        201
    );
    let body = assert_problem(
        signup(&app, &signup_body("acme", "b@acme.test", "odoo", "basic")).await,
        409,
    )
    .await;
    assert_eq!(body["type"], "https://tenantry.dev/problems/slug-taken");
    let body = assert_problem(
        signup(
            &app,
            &signup_body("acme-two", "A@acme.test", "odoo", "basic"),
        )
        .await,
        409,
    )
    .await;
    assert_eq!(body["type"], "https://tenantry.dev/problems/email-taken");
    assert_eq!(
        count(&app, "tenants").await,
        1,
        "the failed signup left no tenant behind"
    );
    assert_eq!(count(&app, "subscriptions").await, 1);
    assert_eq!(count(&app, "users").await, 1);
}

#[tokio::test]
async fn signup_is_rate_limited_per_ip() {
    let app = spawn_app_with(|s| s.signup_rate_per_minute = 2).await;
    for i in 0..2 {
        let res = signup(
            &app,
            &signup_body(&format!("co-{i}"), &format!("{i}@x.test"), "odoo", "basic"),
        )
        .await;
        assert_eq!(
            res.status(),
            422,
            "no catalog loaded: rejected, but counted"
        );
    }
    let res = signup(&app, &signup_body("co-9", "9@x.test", "odoo", "basic")).await;
    assert!(res.headers().get("retry-after").is_some());
    assert_problem(res, 429).await;
}

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
        .request(
            reqwest::Method::DELETE,
            &format!("/v1/tenants/{id}"),
            &admin.access_token,
        )
        .send()
        .await
        .unwrap();
    assert_eq!(del.status(), 202);
    let body: Value = del.json().await.unwrap();
    assert_eq!(body["tenant"]["status"], "deprovisioning");
    assert_eq!(body["job"]["kind"], "deprovision");
    let again = app
        .request(
            reqwest::Method::DELETE,
            &format!("/v1/tenants/{id}"),
            &admin.access_token,
        )
        .send()
        .await
        .unwrap();
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
        .request(
            reqwest::Method::DELETE,
            &format!("/v1/tenants/acme/members/{uid}"),
            &owner.access_token,
        )
        .send()
        .await
        .unwrap();
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

mod idempotency {
    use super::*;

    async fn keyed(app: &TestApp, key: &str, body: &Value) -> reqwest::Response {
        app.client
            .post(app.url("/v1/signup"))
            .header("idempotency-key", key)
            .json(body)
            .send()
            .await
            .unwrap()
    }

    #[tokio::test]
    async fn the_same_key_and_body_replay_the_first_response() {
        let app = spawn_app_with_catalog().await;
        let body = signup_body("acme", "o@acme.test", "odoo", "basic");
        let first = keyed(&app, "k-1", &body).await;
        assert_eq!(first.status(), 201);
        let first_location = first.headers()["location"].clone();
        let first_body = first.text().await.unwrap();
        let second = keyed(&app, "k-1", &body).await;
        assert_eq!(second.status(), 201);
        assert_eq!(second.headers()["idempotent-replayed"], "true");
        assert_eq!(second.headers()["location"], first_location);
        assert_eq!(second.text().await.unwrap(), first_body);
        assert_eq!(count(&app, "tenants").await, 1);

        let other = signup_body("acme-2", "o2@acme.test", "odoo", "basic");
        let body = assert_problem(keyed(&app, "k-1", &other).await, 422).await;
        assert_eq!(
            body["type"],
            "https://tenantry.dev/problems/idempotency-key-reused"
        );
        assert_eq!(count(&app, "tenants").await, 1);
    }

    #[tokio::test]
    async fn errors_are_replayed_but_server_errors_are_not_kept() {
        let app = spawn_app_with_catalog().await;
        let bad = signup_body("www", "o@acme.test", "odoo", "basic");
        assert_eq!(keyed(&app, "k-bad", &bad).await.status(), 422);
        let again = keyed(&app, "k-bad", &bad).await;
        assert_eq!(again.status(), 422);
        assert_eq!(again.headers()["idempotent-replayed"], "true");
    }

    #[tokio::test]
    async fn a_concurrent_duplicate_is_refused_while_the_first_runs() {
        let app = spawn_app_with_catalog().await;
        let sql = app.sql().await;
        // Hold the tenants table so the first signup stays in flight.
        sql.batch_execute("BEGIN; LOCK TABLE tenants IN ACCESS EXCLUSIVE MODE")
            .await
            .unwrap();
        let body = signup_body("acme", "o@acme.test", "odoo", "basic");
        let first = {
            let client = app.client.clone();
            let url = app.url("/v1/signup");
            let body = body.clone();
            tokio::spawn(async move {
                client
                    .post(url)
                    .header("idempotency-key", "k-c")
                    .json(&body)
                    .send()
                    .await
                    .unwrap()
            })
        };
        let watcher = app.sql().await;
        loop {
            let n: i64 = watcher
                .query_one("SELECT count(*) FROM pg_locks l JOIN pg_class c ON c.oid = l.relation WHERE c.relname = 'tenants' AND NOT l.granted", &[])
                .await
                .unwrap()
                .get(0);
            if n > 0 {
                break;
            }
            tokio::task::yield_now().await;
        }
        let second = keyed(&app, "k-c", &body).await;
        let problem = assert_problem(second, 409).await;
        assert_eq!(
            problem["type"],
            "https://tenantry.dev/problems/idempotency-key-in-use"
        );
        sql.batch_execute("COMMIT").await.unwrap();
        assert_eq!(first.await.unwrap().status(), 201);
        let third = keyed(&app, "k-c", &body).await;
        assert_eq!(third.status(), 201);
        assert_eq!(third.headers()["idempotent-replayed"], "true");
        assert_eq!(count(&app, "tenants").await, 1);
    }

    #[tokio::test]
    async fn keys_are_per_caller_and_secrets_are_never_replayed() {
        let app = spawn_app_with_catalog().await;
        let a = app.user("a@example.test", Role::Admin, None).await;
        let b = app.user("b@example.test", Role::Admin, None).await;
        let create = |token: &str| {
            app.request(reqwest::Method::POST, "/v1/api-tokens", token)
                .header("idempotency-key", "same-key")
                .json(&json!({"name": "ci", "scopes": ["catalog:read"]}))
                .send()
        };
        assert_eq!(create(&a.access_token).await.unwrap().status(), 201);
        assert_eq!(
            create(&b.access_token).await.unwrap().status(),
            201,
            "another caller's key is another key"
        );
        let replay = create(&a.access_token).await.unwrap();
        let body = assert_problem(replay, 409).await;
        assert_eq!(
            body["type"],
            "https://tenantry.dev/problems/idempotent-response-withheld"
        );
        assert_eq!(
            count(&app, "api_tokens").await,
            2,
            "no second token for the same key"
        );
        let stored: i64 = app
            .sql()
            .await
            .query_one("SELECT count(*) FROM idempotency_keys WHERE convert_from(response_body, 'UTF8') LIKE '%tnt_%'", &[])
            .await
            .unwrap()
            .get(0);
        assert_eq!(stored, 0, "token secrets are not kept with the key");
    }
}
