use crate::helpers::{assert_problem, spawn_app, spawn_app_on};

#[tokio::test]
async fn healthz_answers_without_touching_the_database() {
    let app = spawn_app_on("postgres://nobody@127.0.0.1:1/none");
    let res = app.get("/healthz").await;
    assert_eq!(res.status(), 200);
    assert_eq!(
        res.json::<serde_json::Value>().await.unwrap()["status"],
        "ok"
    );
}

#[tokio::test]
async fn readyz_is_ready_on_a_migrated_database() {
    let app = spawn_app().await;
    let body: serde_json::Value = app.get_json("/readyz").await;
    assert_eq!(body["status"], "ready");
}

#[tokio::test]
async fn readyz_is_503_when_a_migration_is_pending() {
    let app = spawn_app().await;
    let url = secrecy::SecretString::from(app.db.as_ref().unwrap().url().to_owned());
    tenantry_store::migrations::revert(&url, 1).await.unwrap();
    let res = app.get("/readyz").await;
    assert!(res.headers().contains_key("retry-after"));
    let body = assert_problem(res, 503).await;
    assert_eq!(
        body["type"],
        "https://tenantry.dev/problems/service-unavailable"
    );
}

#[tokio::test]
async fn database_unreachable_is_503_with_retry_after() {
    let app = spawn_app_on("postgres://nobody@127.0.0.1:1/none");
    for path in ["/readyz", "/v1/products", "/v1/plans", "/v1/products/odoo"] {
        let res = app.get(path).await;
        assert_eq!(res.headers()["retry-after"], "5", "{path}");
        assert_problem(res, 503).await;
    }
}

#[tokio::test]
async fn an_exhausted_pool_is_503_not_a_hang() {
    let db = tenantry_test_db::TestDatabase::new().await;
    let mut settings = tenantry_api::config::Settings::for_tests(db.url());
    settings.db_pool_size = 1;
    settings.db_timeout = std::time::Duration::from_millis(300);
    let pool = tenantry_store::Pool::new(
        settings.database_url.as_ref().unwrap(),
        tenantry_store::PoolSettings {
            max_size: 1,
            timeout: settings.db_timeout,
        },
    )
    .unwrap();
    // Hold the only connection of a state built like the app's, and ask through it.
    let held = pool.get().await.unwrap();
    let auth = tenantry_api::auth::Auth::new(&settings.auth).unwrap();
    let app_settings = settings.clone();
    let state =
        tenantry_api::AppState::new(pool.clone(), prometheus::Registry::new(), auth, &settings)
            .unwrap();
    let app = actix_web::test::init_service(
        actix_web::App::new()
            .app_data(actix_web::web::Data::new(state))
            .configure(|cfg| tenantry_api::startup::configure(cfg, &app_settings))
            .wrap(actix_web::middleware::from_fn(
                tenantry_api::middleware::request_context,
            )),
    )
    .await;
    let res = actix_web::test::call_service(
        &app,
        actix_web::test::TestRequest::get()
            .uri("/v1/products")
            .to_request(),
    )
    .await;
    assert_eq!(res.status(), 503);
    assert_eq!(res.headers().get("retry-after").unwrap(), "5");
    assert_eq!(pool.status().waiting, 0);
    drop(held);
}

#[tokio::test]
async fn metrics_count_requests_by_route_template_and_report_the_pool() {
    let app = spawn_app().await;
    app.get("/v1/products/odoo").await;
    app.get("/v1/products/nope").await;
    app.get("/no/such/route").await;
    let res = app.get("/metrics").await;
    assert_eq!(res.status(), 200);
    assert!(
        res.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain")
    );
    let text = res.text().await.unwrap();
    assert!(
        text.contains(r#"tenantry_http_requests_total{endpoint="/v1/products/{slug}",method="GET",status="404"} 2"#),
        "{text}"
    );
    assert!(
        text.contains(r#"endpoint="UNMATCHED""#),
        "unmatched paths are masked: {text}"
    );
    assert!(
        text.contains("tenantry_http_requests_duration_seconds_bucket{"),
        "{text}"
    );
    for gauge in [
        "tenantry_db_pool_max_size 4",
        "tenantry_db_pool_size",
        "tenantry_db_pool_idle",
        "tenantry_db_pool_waiting 0",
    ] {
        assert!(text.contains(gauge), "{gauge} missing: {text}");
    }
}

/// Regression (issue 17, point 6): every invented HTTP method made its own
/// metrics label (unbounded series). Now the label is a standard method or
/// `other`, and the invented method is still refused.
#[tokio::test]
async fn invented_http_methods_share_one_metrics_label() {
    let app = spawn_app().await;
    for i in 0..20 {
        let method = reqwest::Method::from_bytes(format!("INVENTED{i}").as_bytes()).unwrap();
        let res = app
            .client
            .request(method, app.url("/v1/products"))
            .send()
            .await
            .unwrap();
        assert!(
            matches!(res.status().as_u16(), 404 | 405),
            "{}",
            res.status()
        );
    }
    let text = app.get("/metrics").await.text().await.unwrap();
    assert!(!text.contains("INVENTED"), "{text}");
    let other = text
        .lines()
        .find(|l| l.starts_with("tenantry_http_requests_total{") && l.contains(r#"method="other""#))
        .unwrap_or_else(|| panic!("no `other` series: {text}"));
    assert!(other.ends_with(" 20"), "{other}");
}

/// Issue 17, point 6: `/metrics` can be kept behind a token
/// (`TENANTRY_METRICS_TOKEN`); without one it stays open (documented).
#[tokio::test]
async fn metrics_need_the_metrics_token_when_one_is_set() {
    let app = crate::helpers::spawn_app_with(|s| {
        s.metrics_token = Some(secrecy::SecretString::from(
            "scrape-me-0123456789".to_owned(),
        ));
    })
    .await;
    let bare = app.get("/metrics").await;
    assert_problem(bare, 401).await;
    let wrong = app.get_as("/metrics", "scrape-me-012345678").await;
    assert_problem(wrong, 401).await;
    let right = app.get_as("/metrics", "scrape-me-0123456789").await;
    assert_eq!(right.status(), 200);
    assert!(
        right
            .text()
            .await
            .unwrap()
            .contains("tenantry_db_pool_max_size")
    );
}

#[tokio::test]
async fn openapi_json_and_the_offline_docs_page_are_served() {
    let app = spawn_app().await;
    let spec: serde_json::Value = app.get_json("/openapi.json").await;
    assert!(spec["openapi"].as_str().unwrap().starts_with("3.1"));
    assert!(spec["paths"]["/v1/products"].is_object());

    let res = app.get("/docs").await;
    assert_eq!(res.status(), 308);
    let res = app.get("/docs/").await;
    assert_eq!(res.status(), 200);
    let html = res.text().await.unwrap();
    assert!(html.contains("swagger-ui"), "{html}");
    // Every asset the page loads is served by us: no CDN, works offline.
    for asset in [
        "/docs/swagger-ui.css",
        "/docs/swagger-ui-bundle.js",
        "/docs/swagger-initializer.js",
    ] {
        assert_eq!(app.get(asset).await.status(), 200, "{asset}");
    }
    assert!(
        !html.contains("https://"),
        "the docs page must not load anything remote"
    );
}

#[tokio::test]
async fn the_committed_openapi_spec_is_current() {
    let generated = tenantry_api::openapi::to_pretty_json().unwrap();
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../openapi/openapi.json");
    let committed = std::fs::read_to_string(path).unwrap_or_default();
    assert!(
        generated == committed,
        "openapi/openapi.json is out of date with the handlers: run `make openapi` and commit it"
    );
}

/// Headless Chromium (Debian's `chromium`), kept off every network but
/// loopback, loads `/docs/` from a running server: the rendered page lists
/// every tag and every operation of the spec, with no asset from elsewhere.
/// A screenshot is left in `target/tmp/docs.png` for people to look at.
#[tokio::test]
async fn the_docs_page_lists_every_tag_and_operation_in_a_real_browser() {
    let app = spawn_app().await;
    let spec: serde_json::Value = app.get_json("/openapi.json").await;
    let url = app.url("/docs/");
    let chromium = |extra: &[&str]| {
        let out = std::process::Command::new("chromium")
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--no-first-run",
                // Only loopback resolves: the page must need nothing remote.
                "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
                "--virtual-time-budget=20000",
            ])
            .args(extra)
            .arg(&url)
            .output()
            .expect("chromium (Debian package `chromium`) must be installed: see .ci/run");
        assert!(out.status.success(), "chromium: {out:?}");
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let dom = chromium(&["--dump-dom"]);
    let mut operations = 0;
    for (path, item) in spec["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            let tag = op["tags"][0].as_str().unwrap();
            let id = op["operationId"].as_str().unwrap();
            assert!(
                dom.contains(&format!("id=\"operations-{tag}-{id}\"")),
                "{method} {path} ({tag}/{id}) is not on the docs page"
            );
            operations += 1;
        }
    }
    let tags: Vec<&str> = spec["tags"]
        .as_array()
        .map(|t| t.iter().filter_map(|t| t["name"].as_str()).collect())
        .unwrap_or_default();
    for tag in &tags {
        assert!(
            dom.contains(&format!("data-tag=\"{tag}\"")),
            "tag {tag} is not on the docs page"
        );
    }
    assert!(
        operations > 50 && !tags.is_empty(),
        "{operations} operations, {tags:?}"
    );
    let shot = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("docs.png");
    chromium(&[
        "--window-size=1280,4000",
        &format!("--screenshot={}", shot.display()),
    ]);
    assert!(
        std::fs::metadata(&shot).unwrap().len() > 10_000,
        "an empty screenshot"
    );
}
