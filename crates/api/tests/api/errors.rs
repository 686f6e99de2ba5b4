use actix_web::{App, HttpResponse, middleware::from_fn, test, web};
use serde::Deserialize;
use tenantry_api::{error::ApiResult, extract, middleware::request_context};

use crate::helpers::{assert_problem, spawn_app, spawn_app_with};

#[tokio::test]
async fn unknown_route_is_a_404_problem() {
    let app = spawn_app().await;
    let body = app.get_problem("/v1/nope", 404).await;
    assert_eq!(body["type"], "https://tenantry.dev/problems/not-found");
    assert_eq!(body["instance"], "/v1/nope");
    assert!(body["detail"].as_str().unwrap().contains("/v1/nope"));
}

#[tokio::test]
async fn a_method_a_path_does_not_take_is_a_405_problem_naming_those_it_does() {
    let app = spawn_app().await;
    let cases = [
        (
            reqwest::Method::DELETE,
            "/v1/products".to_owned(),
            "GET, POST",
        ),
        (
            reqwest::Method::PUT,
            format!("/v1/tenants/{}", uuid::Uuid::new_v4()),
            "GET, PATCH, DELETE",
        ),
        (reqwest::Method::GET, "/v1/auth/login".to_owned(), "POST"),
    ];
    for (method, path, allow) in cases {
        let res = app
            .client
            .request(method.clone(), app.url(&path))
            .send()
            .await
            .unwrap();
        assert_eq!(res.headers()["allow"], allow, "{method} {path}");
        let body = assert_problem(res, 405).await;
        assert_eq!(
            body["type"],
            "https://tenantry.dev/problems/method-not-allowed"
        );
        assert_eq!(body["instance"], path.as_str());
        let detail = body["detail"].as_str().unwrap();
        assert!(
            detail.contains(method.as_str()) && detail.contains(allow),
            "{detail}"
        );
    }
}

#[tokio::test]
async fn a_documented_route_not_mounted_is_still_a_404() {
    // The sandbox clock exists only in sandbox mode.
    let app = spawn_app_with(|s| s.billing.sandbox = false).await;
    let res = app
        .client
        .get(app.url("/v1/sandbox/clock"))
        .send()
        .await
        .unwrap();
    assert!(res.headers().get("allow").is_none());
    assert_problem(res, 404).await;
}

#[tokio::test]
async fn request_id_is_echoed_or_generated() {
    let app = spawn_app().await;
    let res = app
        .client
        .get(app.url("/healthz"))
        .header("X-Request-Id", "abc-123")
        .send()
        .await
        .unwrap();
    assert_eq!(res.headers()["x-request-id"], "abc-123");

    let a = app.get("/healthz").await.headers()["x-request-id"]
        .to_str()
        .unwrap()
        .to_owned();
    let b = app.get("/healthz").await.headers()["x-request-id"]
        .to_str()
        .unwrap()
        .to_owned();
    assert_ne!(a, b);
    assert!(uuid::Uuid::parse_str(&a).is_ok());

    // A problem body carries the same id.
    let res = app
        .client
        .get(app.url("/v1/nope"))
        .header("X-Request-Id", "trace-9")
        .send()
        .await
        .unwrap();
    let body = assert_problem(res, 404).await;
    assert_eq!(body["request_id"], "trace-9");
}

#[tokio::test]
async fn a_hostile_request_id_is_replaced() {
    let app = spawn_app().await;
    let long = "x".repeat(500);
    let res = app
        .client
        .get(app.url("/healthz"))
        .header("X-Request-Id", &long)
        .send()
        .await
        .unwrap();
    let id = res.headers()["x-request-id"].to_str().unwrap();
    assert_ne!(id, long);
    assert!(uuid::Uuid::parse_str(id).is_ok());
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
#[expect(dead_code, reason = "fields exist to be deserialised")]
struct Body {
    name: String,
    limits: Limits,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
#[expect(dead_code, reason = "fields exist to be deserialised")]
struct Limits {
    cpu_cores: u32,
}

async fn echo(extract::Json(body): extract::Json<Body>) -> ApiResult<HttpResponse> {
    Ok(HttpResponse::Ok().body(format!("{body:?}")))
}

async fn boom() -> HttpResponse {
    panic!("kaboom")
}

macro_rules! test_app {
    () => {
        test::init_service(
            App::new()
                .app_data(web::PayloadConfig::new(1024))
                .route("/echo", web::post().to(echo))
                .wrap(from_fn(request_context)),
        )
        .await
    };
}

async fn post(body: &str) -> (u16, serde_json::Value) {
    let app = test_app!();
    let res = test::call_service(
        &app,
        test::TestRequest::post()
            .uri("/echo")
            .insert_header(("content-type", "application/json"))
            .set_payload(body.to_owned())
            .to_request(),
    )
    .await;
    let status = res.status().as_u16();
    let ct = res
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_owned());
    let bytes = test::read_body(res).await;
    if status == 200 {
        return (status, serde_json::Value::Null);
    }
    assert_eq!(ct.as_deref(), Some("application/problem+json"));
    (status, serde_json::from_slice(&bytes).unwrap())
}

#[actix_web::test]
async fn malformed_json_is_400() {
    let (status, body) = post("{\"name\": ").await;
    assert_eq!(status, 400);
    assert_eq!(
        body["type"],
        "https://tenantry.dev/problems/malformed-request"
    );
}

#[actix_web::test]
async fn unknown_and_mistyped_fields_are_422_naming_the_field() {
    let (status, body) = post(r#"{"name":"a","limits":{"cpu_cores":1,"gpu":2}}"#).await;
    assert_eq!(status, 422);
    assert_eq!(
        body["type"],
        "https://tenantry.dev/problems/validation-failed"
    );
    assert_eq!(body["errors"][0]["field"], "limits.gpu");
    assert!(
        body["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("gpu")
    );

    let (status, body) = post(r#"{"name":"a","limits":{"cpu_cores":"two"}}"#).await;
    assert_eq!(status, 422);
    assert_eq!(body["errors"][0]["field"], "limits.cpu_cores");

    let (status, body) = post(r#"{"limits":{"cpu_cores":1}}"#).await;
    assert_eq!(status, 422);
    assert_eq!(body["errors"][0]["field"], "name");
    assert!(
        body["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("name")
    );
    let (_, body) = post(r#"{"name":"a","limits":{}}"#).await;
    assert_eq!(body["errors"][0]["field"], "limits.cpu_cores");

    let (status, _) = post(r#"{"name":"a","limits":{"cpu_cores":1}}"#).await;
    assert_eq!(status, 200);
}

#[actix_web::test]
async fn an_oversized_body_is_413() {
    let (status, body) = post(&format!("{{\"name\":\"{}\"}}", "x".repeat(4096))).await;
    assert_eq!(status, 413);
    assert_eq!(
        body["type"],
        "https://tenantry.dev/problems/payload-too-large"
    );
}

#[tokio::test]
async fn a_panic_becomes_a_500_problem_and_the_server_keeps_serving() {
    let server = actix_web::HttpServer::new(|| {
        App::new()
            .route("/boom", web::get().to(boom))
            .route(
                "/ok",
                web::get().to(|| async { HttpResponse::Ok().finish() }),
            )
            .wrap(from_fn(request_context))
    })
    .workers(1)
    .bind("127.0.0.1:0")
    .unwrap();
    let port = server.addrs()[0].port();
    let server = server.run();
    let handle = server.handle();
    tokio::spawn(server);
    let client = reqwest::Client::new();
    for _ in 0..2 {
        let res = client
            .get(format!("http://127.0.0.1:{port}/boom"))
            .header("X-Request-Id", "panic-1")
            .send()
            .await
            .unwrap();
        assert_eq!(res.headers()["x-request-id"], "panic-1");
        let body = assert_problem(res, 500).await;
        assert_eq!(body["type"], "https://tenantry.dev/problems/internal-error");
        assert_eq!(body["request_id"], "panic-1");
        assert!(
            !body.to_string().contains("kaboom"),
            "the panic message is logged, not sent"
        );
    }
    let ok = client
        .get(format!("http://127.0.0.1:{port}/ok"))
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 200, "the worker survived");
    handle.stop(false).await;
}

#[tokio::test]
async fn bad_query_parameters_are_400_naming_the_parameter() {
    let app = spawn_app().await;
    let body = app.get_problem("/v1/products?limit=abc", 400).await;
    assert_eq!(body["errors"][0]["field"], "limit");
    let body = app.get_problem("/v1/products?limit=0", 400).await;
    assert_eq!(body["errors"][0]["field"], "limit");
    let body = app.get_problem("/v1/plans?cursor=zzz", 400).await;
    assert_eq!(body["errors"][0]["field"], "cursor");
    let body = app.get_problem("/v1/plans?prodcut=odoo", 400).await;
    assert!(
        body["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("prodcut")
    );
}

/// Regression (issue 17, point 10): a NUL character reached PostgreSQL
/// (500); a lone UTF-16 surrogate was a 400 like broken JSON. Both are now
/// `422 validation-failed`, in a body, a path and a query, and nothing is
/// written.
#[tokio::test]
async fn nul_characters_and_lone_surrogates_are_422_never_500() {
    let app = spawn_app().await;
    let admin = app.admin().await;
    let t = app.tenant_on("nulco", "odoo", "basic").await;
    let rename = |body: &'static str| {
        app.request(
            reqwest::Method::PATCH,
            &format!("/v1/tenants/{t}"),
            &admin.access_token,
        )
        .header("content-type", "application/json")
        .body(body)
        .send()
    };
    for (body, says) in [
        (r#"{"company_name": "Nul\u0000 Ltd"}"#, "NUL"),
        (r#"{"company_name": "Lone \ud800 Ltd"}"#, "surrogate"),
        (r#"{"company_name": "Trail \udc00 Ltd"}"#, "surrogate"),
    ] {
        let problem = assert_problem(rename(body).await.unwrap(), 422).await;
        assert_eq!(
            problem["type"],
            "https://tenantry.dev/problems/validation-failed"
        );
        assert!(
            problem.to_string().contains(says) || problem.to_string().contains("hex escape"),
            "{problem}"
        );
    }
    for path in [
        "/v1/tenants/nul%00co",
        "/v1/tenants?status=active%00",
        "/v1/products/odoo%00",
    ] {
        let res = app.get_as(path, &admin.access_token).await;
        assert_problem(res, 422).await;
    }
    let name: String = app
        .sql()
        .await
        .query_one("SELECT company_name FROM tenants WHERE id = $1", &[&t])
        .await
        .unwrap()
        .get(0);
    assert!(
        !name.contains("Nul") && !name.contains("Lone"),
        "nothing was written: {name}"
    );
    // An escaped backslash followed by the text u0000 is an ordinary string.
    let res = rename(r#"{"company_name": "Back\\u0000slash Ltd"}"#)
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let body: serde_json::Value = res.json().await.unwrap();
    assert_eq!(body["company_name"], r"Back\u0000slash Ltd");
}
