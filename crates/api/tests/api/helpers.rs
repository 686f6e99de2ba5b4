//! `spawn_app()`: the real application on port 0 with a database of its own,
//! and typed request helpers.

use std::path::Path;

use serde::de::DeserializeOwned;
use serde_json::Value;
use tenantry_api::{Application, config::Settings};
use tenantry_test_db::TestDatabase;

pub struct TestApp {
    pub address: String,
    pub client: reqwest::Client,
    pub settings: Settings,
    // Dropped last: the server must stop before its database is dropped.
    pub handle: actix_web::dev::ServerHandle,
    pub db: Option<TestDatabase>,
}

impl Drop for TestApp {
    fn drop(&mut self) {
        drop(self.handle.stop(false));
    }
}

pub fn demo_catalog_path() -> &'static Path {
    Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../catalog/demo.toml"
    ))
}

/// The app on a fresh, migrated database, with nothing loaded.
pub async fn spawn_app() -> TestApp {
    let db = TestDatabase::new().await;
    let settings = Settings::for_tests(db.url());
    start(settings, Some(db))
}

/// The app on a fresh database with the demo catalog loaded.
pub async fn spawn_app_with_catalog() -> TestApp {
    let app = spawn_app().await;
    tenantry_api::catalog_file::load(&app.settings, demo_catalog_path())
        .await
        .expect("load demo catalog");
    app
}

/// The app pointed at `database_url` (which may be unreachable).
pub fn spawn_app_on(database_url: &str) -> TestApp {
    start(Settings::for_tests(database_url), None)
}

fn start(settings: Settings, db: Option<TestDatabase>) -> TestApp {
    let app = Application::build(&settings).expect("build app");
    let address = format!("http://127.0.0.1:{}", app.port());
    let handle = app.handle();
    tokio::spawn(app.run_until_stopped());
    TestApp {
        address,
        client: reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap(),
        settings,
        handle,
        db,
    }
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.address)
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.client
            .get(self.url(path))
            .send()
            .await
            .expect("request")
    }

    /// GET expecting 200 and a JSON body of type `T`.
    pub async fn get_json<T: DeserializeOwned>(&self, path: &str) -> T {
        let res = self.get(path).await;
        let status = res.status();
        let text = res.text().await.unwrap();
        assert_eq!(status, 200, "GET {path}: {text}");
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("GET {path}: {e}: {text}"))
    }

    /// GET expecting a problem+json with `status`; returns the body.
    pub async fn get_problem(&self, path: &str, status: u16) -> Value {
        let res = self.get(path).await;
        assert_problem(res, status).await
    }
}

/// Asserts `res` is an RFC 9457 problem with `status` and returns its body.
pub async fn assert_problem(res: reqwest::Response, status: u16) -> Value {
    assert_eq!(res.status().as_u16(), status);
    assert_eq!(
        res.headers()["content-type"].to_str().unwrap(),
        "application/problem+json"
    );
    assert!(res.headers().contains_key("x-request-id"));
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["status"], status);
    assert!(
        body["type"]
            .as_str()
            .unwrap()
            .starts_with("https://tenantry.dev/problems/")
    );
    assert!(body["title"].is_string() && body["detail"].is_string());
    body
}

/// Sends a signal (`TERM`, `INT`…) to a child process.
pub fn signal(pid: u32, signal: &str) {
    let status = std::process::Command::new("kill")
        .args([&format!("-{signal}"), &pid.to_string()])
        .status()
        .expect("kill");
    assert!(status.success(), "kill -{signal} {pid}");
}
