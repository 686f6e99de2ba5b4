//! Browser safety: CORS, security headers. (CSRF: auth.rs; body limit: errors.rs.)

use crate::helpers::{spawn_app, spawn_app_with};

#[tokio::test]
async fn cors_allows_only_configured_origins_with_credentials() {
    let app = spawn_app().await; // TENANTRY_CORS_ORIGINS = https://app.example.test
    let preflight = |origin: &'static str| {
        app.client
            .request(reqwest::Method::OPTIONS, app.url("/v1/auth/refresh"))
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .header("access-control-request-headers", "x-tenantry-csrf")
            .send()
    };
    let ok = preflight("https://app.example.test").await.unwrap();
    assert_eq!(ok.status(), 200);
    assert_eq!(
        ok.headers()["access-control-allow-origin"],
        "https://app.example.test"
    );
    assert_eq!(ok.headers()["access-control-allow-credentials"], "true");
    let allowed_headers = ok.headers()["access-control-allow-headers"]
        .to_str()
        .unwrap()
        .to_lowercase();
    assert!(
        allowed_headers.contains("x-tenantry-csrf"),
        "{allowed_headers}"
    );

    let evil = preflight("https://evil.example").await.unwrap();
    assert!(evil.headers().get("access-control-allow-origin").is_none());
    let simple = app
        .client
        .get(app.url("/v1/products"))
        .header("origin", "https://evil.example")
        .send()
        .await
        .unwrap();
    // Without Access-Control-Allow-Origin the browser keeps the response from the page.
    assert!(
        simple
            .headers()
            .get("access-control-allow-origin")
            .is_none()
    );
}

#[tokio::test]
async fn security_headers_are_on_every_response() {
    let app = spawn_app().await; // HSTS on in test settings
    for path in ["/healthz", "/v1/products", "/v1/nope", "/v1/me", "/docs/"] {
        let res = app.get(path).await;
        let h = res.headers();
        assert_eq!(h["x-content-type-options"], "nosniff", "{path}");
        assert_eq!(h["x-frame-options"], "DENY", "{path}");
        assert_eq!(h["referrer-policy"], "no-referrer", "{path}");
        assert!(
            h["strict-transport-security"]
                .to_str()
                .unwrap()
                .starts_with("max-age="),
            "{path}"
        );
    }
    let plain = spawn_app_with(|s| s.auth.hsts = false).await;
    assert!(
        plain
            .get("/healthz")
            .await
            .headers()
            .get("strict-transport-security")
            .is_none()
    );
}

#[tokio::test]
async fn bodies_over_the_configured_limit_are_413() {
    let app = spawn_app_with(|s| s.max_body_bytes = 2048).await;
    let big = serde_json::json!({"email": "a@example.test", "password": "x".repeat(4096)});
    let res = app
        .client
        .post(app.url("/v1/auth/login"))
        .json(&big)
        .send()
        .await
        .unwrap();
    let body = crate::helpers::assert_problem(res, 413).await;
    assert_eq!(
        body["type"],
        "https://tenantry.dev/problems/payload-too-large"
    );
}
