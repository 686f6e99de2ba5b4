//! Login, refresh, logout, /v1/me, lockout, rate limiting and TOTP.

use base64::Engine as _;
use serde_json::{Value, json};
use tenantry_domain::Role;

use crate::helpers::{
    PASSWORD, assert_problem, refresh_cookie, set_cookie, spawn_app, spawn_app_with,
};

fn decode_segment(jwt: &str, i: usize) -> Value {
    let part = jwt.split('.').nth(i).unwrap();
    serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(part)
            .unwrap(),
    )
    .unwrap()
}

#[tokio::test]
async fn login_returns_a_bearer_jwt_and_a_strict_refresh_cookie() {
    let app = spawn_app().await;
    let tenant = app.tenant("acme").await;
    let id = app
        .create_user("Owner@Example.Test", Role::TenantOwner, Some(tenant))
        .await;
    let res = app
        .login_response(json!({"email": "owner@example.test", "password": PASSWORD}))
        .await;
    assert_eq!(res.status(), 200);
    let cookie = set_cookie(&res).unwrap();
    for attr in [
        "HttpOnly",
        "Secure",
        "SameSite=Strict",
        "Path=/v1/auth",
        "Max-Age=",
    ] {
        assert!(cookie.contains(attr), "{attr} missing: {cookie}");
    }
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["expires_in"], 900);
    let token = body["access_token"].as_str().unwrap();
    let header = decode_segment(token, 0);
    assert_eq!(header["alg"], "HS256");
    assert_eq!(header["kid"], "test-jwt");
    let claims = decode_segment(token, 1);
    assert_eq!(claims["sub"], id.to_string());
    assert_eq!(claims["role"], "tenant_owner");
    assert_eq!(claims["tenant_id"], tenant.to_string());
    assert_eq!(
        claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap(),
        900
    );
    assert!(uuid::Uuid::parse_str(claims["jti"].as_str().unwrap()).is_ok());

    let me: Value = app.get_as("/v1/me", token).await.json().await.unwrap();
    assert_eq!(
        me["email"], "owner@example.test",
        "emails are case-insensitive"
    );
    assert_eq!(me["role"], "tenant_owner");
    assert_eq!(me["tenant_id"], tenant.to_string());
    assert_eq!(me["totp_enabled"], false);
    assert_eq!(me["authenticated_by"], "session");
}

#[tokio::test]
async fn the_secure_flag_is_dropped_only_by_the_dev_setting() {
    let app = spawn_app_with(|s| s.auth.insecure_cookies = true).await;
    app.create_user("a@example.test", Role::Admin, None).await;
    let res = app
        .login_response(json!({"email": "a@example.test", "password": PASSWORD}))
        .await;
    let cookie = set_cookie(&res).unwrap();
    assert!(
        !cookie.contains("Secure") && cookie.contains("HttpOnly"),
        "{cookie}"
    );
}

#[tokio::test]
async fn wrong_email_and_wrong_password_look_the_same() {
    let app = spawn_app().await;
    app.create_user("a@example.test", Role::Admin, None).await;
    let strip = |mut v: Value| {
        v.as_object_mut().unwrap().remove("request_id");
        v
    };
    let wrong_pw = app
        .login_response(json!({"email": "a@example.test", "password": "not the password"}))
        .await;
    let wrong_pw = strip(assert_problem(wrong_pw, 401).await);
    let no_user = app
        .login_response(json!({"email": "nobody@example.test", "password": "not the password"}))
        .await;
    let no_user = strip(assert_problem(no_user, 401).await);
    assert_eq!(wrong_pw, no_user);
    assert_eq!(
        wrong_pw["type"],
        "https://tenantry.dev/problems/invalid-credentials"
    );
    assert!(!wrong_pw.to_string().contains("not the password"));
}

#[tokio::test]
async fn refresh_rotates_and_a_reused_token_revokes_the_family() {
    let app = spawn_app().await;
    let s = app.user("a@example.test", Role::Operator, None).await;

    let first = app.refresh(&s.refresh).await;
    assert_eq!(first.status(), 200);
    let second_cookie = refresh_cookie(&first).unwrap();
    assert_ne!(second_cookie, s.refresh, "the refresh token rotates");
    let body: Value = first.json().await.unwrap();
    assert_eq!(
        app.get_as("/v1/me", body["access_token"].as_str().unwrap())
            .await
            .status(),
        200
    );

    // The old token again: reuse → 401 and the whole family is revoked.
    let reuse = app.refresh(&s.refresh).await;
    assert!(
        set_cookie(&reuse).unwrap().contains("Max-Age=0"),
        "cookie cleared"
    );
    assert_problem(reuse, 401).await;
    assert_eq!(
        app.refresh(&second_cookie).await.status(),
        401,
        "the newer token died with its family"
    );

    // A fresh login is a new family and works.
    let again = app.login("a@example.test").await;
    assert_eq!(app.refresh(&again.refresh).await.status(), 200);
}

#[tokio::test]
async fn logout_revokes_the_session() {
    let app = spawn_app().await;
    let s = app.user("a@example.test", Role::Admin, None).await;
    let res = app
        .client
        .post(app.url("/v1/auth/logout"))
        .header("cookie", format!("tenantry_refresh={}", s.refresh))
        .header("x-tenantry-csrf", "1")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 204);
    assert!(set_cookie(&res).unwrap().contains("Max-Age=0"));
    assert_eq!(app.refresh(&s.refresh).await.status(), 401);
    let actions: Vec<String> = app
        .sql()
        .await
        .query(
            "SELECT action FROM activity_log WHERE actor_id = $1 ORDER BY id",
            &[&s.user_id],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(actions, ["auth.login", "auth.logout"]);
}

#[tokio::test]
async fn cookie_routes_need_the_csrf_header() {
    let app = spawn_app().await;
    let s = app.user("a@example.test", Role::Admin, None).await;
    for path in ["/v1/auth/refresh", "/v1/auth/logout"] {
        let res = app
            .client
            .post(app.url(path))
            .header("cookie", format!("tenantry_refresh={}", s.refresh))
            .send()
            .await
            .unwrap();
        let body = assert_problem(res, 403).await;
        assert_eq!(
            body["type"],
            "https://tenantry.dev/problems/csrf-check-failed"
        );
    }
    assert_eq!(
        app.refresh(&s.refresh).await.status(),
        200,
        "nothing was spent by the refused calls"
    );
}

#[tokio::test]
async fn five_failures_lock_the_account_then_it_unlocks() {
    let app = spawn_app().await;
    let id = app.create_user("a@example.test", Role::Admin, None).await;
    for _ in 0..5 {
        let res = app
            .login_response(json!({"email": "a@example.test", "password": "wrong password!"}))
            .await;
        assert_eq!(res.status(), 401);
    }
    let locked = app
        .login_response(json!({"email": "a@example.test", "password": PASSWORD}))
        .await;
    assert_eq!(
        locked.status(),
        401,
        "the right password is refused while locked"
    );
    let sql = app.sql().await;
    let row = sql
        .query_one(
            "SELECT locked_until > now() + interval '14 minutes' FROM users WHERE id = $1",
            &[&id],
        )
        .await
        .unwrap();
    assert!(row.get::<_, bool>(0), "locked for 15 minutes");
    // Time passes (the lock's end is moved to the past).
    sql.execute(
        "UPDATE users SET locked_until = now() - interval '1 second' WHERE id = $1",
        &[&id],
    )
    .await
    .unwrap();
    let ok = app
        .login_response(json!({"email": "a@example.test", "password": PASSWORD}))
        .await;
    assert_eq!(ok.status(), 200);
    let actions: Vec<String> = sql
        .query(
            "SELECT action FROM activity_log WHERE actor_id = $1 ORDER BY id",
            &[&id],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(
        actions.iter().filter(|a| *a == "auth.login_failed").count(),
        5
    );
    assert!(actions.contains(&"auth.account_locked".to_owned()));
    assert!(actions.contains(&"auth.login_locked".to_owned()));
    assert_eq!(actions.last().unwrap(), "auth.login");
}

/// Regression (issue 17, point 2): failures were counted read-then-write,
/// so concurrent wrong passwords could count once each and never lock.
/// The count is now incremented by the `UPDATE` itself: 50 concurrent
/// wrong passwords lock the account (and every one of them counts).
#[tokio::test]
async fn fifty_concurrent_wrong_passwords_lock_the_account() {
    let app = spawn_app_with(|s| s.auth.login_rate_per_minute = 10_000).await;
    let id = app.create_user("c@example.test", Role::Admin, None).await;
    let attempts = (0..50).map(|_| {
        app.login_response(json!({"email": "c@example.test", "password": "wrong password!"}))
    });
    for res in futures_util::future::join_all(attempts).await {
        assert_eq!(res.status(), 401);
    }
    let sql = app.sql().await;
    let row = sql
        .query_one(
            "SELECT locked_until > now(), (SELECT count(*) FROM activity_log WHERE actor_id = $1 AND action = 'auth.account_locked')
             FROM users WHERE id = $1",
            &[&id],
        )
        .await
        .unwrap();
    assert!(row.get::<_, bool>(0), "locked");
    let failed: i64 = sql
        .query_one(
            "SELECT count(*) FROM activity_log WHERE actor_id = $1 AND action IN ('auth.login_failed', 'auth.login_locked')",
            &[&id],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(failed, 50, "every attempt is recorded");
    let locks: i64 = row.get(1);
    assert!(locks >= 1, "the lock is recorded");
    let right = app
        .login_response(json!({"email": "c@example.test", "password": PASSWORD}))
        .await;
    assert_eq!(
        right.status(),
        401,
        "the right password is refused while locked"
    );
}

#[tokio::test]
async fn login_is_rate_limited_per_client_ip() {
    let app = spawn_app_with(|s| s.auth.login_rate_per_minute = 3).await;
    let attempt = |xff: &'static str| {
        app.client
            .post(app.url("/v1/auth/login"))
            .header("x-forwarded-for", xff)
            .json(&json!({"email": "x@example.test", "password": "whatever pw"}))
            .send()
    };
    for _ in 0..3 {
        assert_eq!(attempt("1.1.1.1").await.unwrap().status(), 401);
    }
    // Another X-Forwarded-For from an untrusted peer is the same client.
    let res = attempt("2.2.2.2").await.unwrap();
    assert!(res.headers().get("retry-after").is_some());
    let body = assert_problem(res, 429).await;
    assert_eq!(
        body["type"],
        "https://tenantry.dev/problems/too-many-requests"
    );
}

/// Issue 17, point 3: an IPv6 client holds a whole /64 and could rotate
/// through it to dodge a per-address limit; the limit counts the /64.
#[tokio::test]
async fn ipv6_clients_are_rate_limited_per_64() {
    let app = spawn_app_with(|s| {
        s.auth.login_rate_per_minute = 2;
        s.auth.trusted_proxies = vec!["127.0.0.1/32".parse().unwrap()];
    })
    .await;
    let attempt = |xff: &'static str| {
        app.client
            .post(app.url("/v1/auth/login"))
            .header("x-forwarded-for", xff)
            .json(&json!({"email": "x@example.test", "password": "whatever pw"}))
            .send()
    };
    assert_eq!(attempt("2001:db8:1:2::1").await.unwrap().status(), 401);
    assert_eq!(attempt("2001:db8:1:2::2").await.unwrap().status(), 401);
    assert_eq!(
        attempt("2001:db8:1:2:ffff:ffff:ffff:ffff")
            .await
            .unwrap()
            .status(),
        429,
        "another address of the same /64 is the same client"
    );
    assert_eq!(
        attempt("2001:db8:1:3::1").await.unwrap().status(),
        401,
        "the next /64 is another client"
    );
}

#[tokio::test]
async fn forwarded_for_is_honoured_from_trusted_proxies() {
    let app = spawn_app_with(|s| {
        s.auth.login_rate_per_minute = 2;
        s.auth.trusted_proxies = vec!["127.0.0.1/32".parse().unwrap()];
    })
    .await;
    let attempt = |xff: &'static str| {
        app.client
            .post(app.url("/v1/auth/login"))
            .header("x-forwarded-for", xff)
            .json(&json!({"email": "x@example.test", "password": "whatever pw"}))
            .send()
    };
    for _ in 0..2 {
        assert_eq!(attempt("1.1.1.1").await.unwrap().status(), 401);
    }
    assert_eq!(attempt("1.1.1.1").await.unwrap().status(), 429);
    assert_eq!(
        attempt("2.2.2.2").await.unwrap().status(),
        401,
        "another client behind the proxy has its own budget"
    );
    let sql = app.sql().await;
    let ips: Vec<Option<String>> = sql
        .query(
            "SELECT client_ip FROM activity_log WHERE action = 'auth.login_failed' ORDER BY id",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(ips.first().unwrap().as_deref(), Some("1.1.1.1"));
    assert_eq!(ips.last().unwrap().as_deref(), Some("2.2.2.2"));
}

mod totp {
    use super::*;
    use totp_rs::{Algorithm, Secret, TOTP};

    fn generator(secret_b32: &str) -> TOTP {
        let seed = Secret::Encoded(secret_b32.to_owned()).to_bytes().unwrap();
        TOTP::new(Algorithm::SHA1, 6, 0, 30, seed, None, String::new()).unwrap()
    }

    fn step_code(t: &TOTP, offset: i64) -> String {
        let now = chrono::Utc::now().timestamp();
        t.generate(u64::try_from(now + offset * 30).unwrap())
    }

    #[tokio::test]
    async fn the_whole_totp_lifecycle() {
        let app = spawn_app().await;
        let s = app.user("a@example.test", Role::Admin, None).await;

        let setup: Value = app
            .post_as("/v1/auth/totp/setup", &s.access_token, json!({}))
            .await
            .json()
            .await
            .unwrap();
        let secret = setup["secret"].as_str().unwrap();
        assert!(
            setup["otpauth_url"]
                .as_str()
                .unwrap()
                .starts_with("otpauth://totp/Tenantry:a%40example.test?secret=")
        );
        let png = base64::engine::general_purpose::STANDARD
            .decode(setup["qr_png_base64"].as_str().unwrap())
            .unwrap();
        assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");

        // The seed is encrypted at rest.
        let seed = Secret::Encoded(secret.to_owned()).to_bytes().unwrap();
        let stored: Vec<u8> = app
            .sql()
            .await
            .query_one("SELECT totp_secret FROM users WHERE id = $1", &[&s.user_id])
            .await
            .unwrap()
            .get(0);
        assert!(
            !stored.windows(seed.len()).any(|w| w == seed.as_slice()),
            "the raw seed is not stored"
        );

        let t = generator(secret);
        let bad = app
            .post_as(
                "/v1/auth/totp/enable",
                &s.access_token,
                json!({"code": "000000"}),
            )
            .await;
        if step_code(&t, 0) != "000000" {
            assert_problem(bad, 401).await;
        }
        let enabled = app
            .post_as(
                "/v1/auth/totp/enable",
                &s.access_token,
                json!({"code": step_code(&t, 0)}),
            )
            .await;
        assert_eq!(enabled.status(), 200);
        let codes: Vec<String> = serde_json::from_value(
            enabled.json::<Value>().await.unwrap()["recovery_codes"].clone(),
        )
        .unwrap();
        assert_eq!(codes.len(), 10);
        let hashes: Vec<String> = app
            .sql()
            .await
            .query(
                "SELECT code_hash FROM recovery_codes WHERE user_id = $1",
                &[&s.user_id],
            )
            .await
            .unwrap()
            .iter()
            .map(|r| r.get(0))
            .collect();
        assert_eq!(hashes.len(), 10);
        assert!(
            codes.iter().all(|c| !hashes.contains(c)),
            "recovery codes are stored hashed"
        );

        // Login now needs the second factor.
        let res = app
            .login_response(json!({"email": "a@example.test", "password": PASSWORD}))
            .await;
        let body = assert_problem(res, 401).await;
        assert_eq!(body["type"], "https://tenantry.dev/problems/totp-required");
        // The next step's code (one step of skew) works once…
        let next = step_code(&t, 1);
        let ok = app
            .login_response(
                json!({"email": "a@example.test", "password": PASSWORD, "totp_code": next}),
            )
            .await;
        assert_eq!(ok.status(), 200);
        // …and is refused when replayed, as is the (older) code used to enable.
        for code in [next, step_code(&t, 0)] {
            let replay = app
                .login_response(
                    json!({"email": "a@example.test", "password": PASSWORD, "totp_code": code}),
                )
                .await;
            let body = assert_problem(replay, 401).await;
            assert_eq!(body["type"], "https://tenantry.dev/problems/totp-invalid");
        }
        // A recovery code works once.
        let rc = app
            .login_response(
                json!({"email": "a@example.test", "password": PASSWORD, "recovery_code": codes[0]}),
            )
            .await;
        assert_eq!(rc.status(), 200);
        let again = app
            .login_response(
                json!({"email": "a@example.test", "password": PASSWORD, "recovery_code": codes[0]}),
            )
            .await;
        assert_eq!(again.status(), 401);
        let me: Value = app
            .get_as("/v1/me", &s.access_token)
            .await
            .json()
            .await
            .unwrap();
        assert_eq!(me["totp_enabled"], true);

        // Disabling needs the password and a code.
        let wrong = app
            .post_as(
                "/v1/auth/totp/disable",
                &s.access_token,
                json!({"password": "wrong password", "code": codes[1]}),
            )
            .await;
        assert_problem(wrong, 401).await;
        let off = app
            .post_as(
                "/v1/auth/totp/disable",
                &s.access_token,
                json!({"password": PASSWORD, "code": codes[1]}),
            )
            .await;
        assert_eq!(off.status(), 204);
        assert_eq!(
            app.login_response(json!({"email": "a@example.test", "password": PASSWORD}))
                .await
                .status(),
            200
        );

        let actions: Vec<String> = app
            .sql()
            .await
            .query(
                "SELECT action FROM activity_log WHERE action LIKE 'auth.totp%' ORDER BY id",
                &[],
            )
            .await
            .unwrap()
            .iter()
            .map(|r| r.get(0))
            .collect();
        for a in [
            "auth.totp_setup",
            "auth.totp_enabled",
            "auth.totp_required",
            "auth.totp_failed",
            "auth.totp_disabled",
        ] {
            assert!(
                actions.contains(&a.to_owned()),
                "{a} missing from {actions:?}"
            );
        }
    }

    #[tokio::test]
    async fn setup_is_refused_while_enabled_and_for_api_tokens() {
        let app = spawn_app().await;
        let s = app.user("a@example.test", Role::Admin, None).await;
        let setup: Value = app
            .post_as("/v1/auth/totp/setup", &s.access_token, json!({}))
            .await
            .json()
            .await
            .unwrap();
        let t = generator(setup["secret"].as_str().unwrap());
        assert_eq!(
            app.post_as(
                "/v1/auth/totp/enable",
                &s.access_token,
                json!({"code": step_code(&t, 0)})
            )
            .await
            .status(),
            200
        );
        let body = assert_problem(
            app.post_as("/v1/auth/totp/setup", &s.access_token, json!({}))
                .await,
            409,
        )
        .await;
        assert_eq!(
            body["type"],
            "https://tenantry.dev/problems/totp-already-enabled"
        );
    }

    /// Regression (issue 17, point 2): wrong TOTP and recovery codes never
    /// counted towards the lock. Now each counts as a failed login: five
    /// wrong second factors (with the right password) lock the account.
    #[tokio::test]
    async fn wrong_second_factors_count_towards_the_lock() {
        let app = spawn_app().await;
        let s = app.user("b@example.test", Role::Admin, None).await;
        let setup: Value = app
            .post_as("/v1/auth/totp/setup", &s.access_token, json!({}))
            .await
            .json()
            .await
            .unwrap();
        let t = generator(setup["secret"].as_str().unwrap());
        let enabled = app
            .post_as(
                "/v1/auth/totp/enable",
                &s.access_token,
                json!({"code": step_code(&t, 0)}),
            )
            .await;
        assert_eq!(enabled.status(), 200);
        let valid: Vec<String> = (-1..=1).map(|o| step_code(&t, o)).collect();
        let wrong = (0..1_000_000)
            .map(|n| format!("{n:06}"))
            .find(|c| !valid.contains(c))
            .unwrap();
        for i in 0..5 {
            let body = if i % 2 == 0 {
                json!({"email": "b@example.test", "password": PASSWORD, "totp_code": wrong})
            } else {
                json!({"email": "b@example.test", "password": PASSWORD, "recovery_code": "not-a-recovery-code"})
            };
            let res = app.login_response(body).await;
            let problem = assert_problem(res, 401).await;
            assert_eq!(
                problem["type"],
                "https://tenantry.dev/problems/totp-invalid"
            );
        }
        let locked: bool = app
            .sql()
            .await
            .query_one(
                "SELECT locked_until > now() FROM users WHERE id = $1",
                &[&s.user_id],
            )
            .await
            .unwrap()
            .get(0);
        assert!(locked, "five wrong second factors lock the account");
        let res = app
            .login_response(
                json!({"email": "b@example.test", "password": PASSWORD, "totp_code": step_code(&t, 0)}),
            )
            .await;
        assert_eq!(
            res.status(),
            401,
            "even the right code is refused while locked"
        );
    }
}
