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
    spawn_app_with(|_| {}).await
}

/// The app with settings adjusted by `f`.
pub async fn spawn_app_with(f: impl FnOnce(&mut Settings)) -> TestApp {
    let db = TestDatabase::new().await;
    let mut settings = Settings::for_tests(db.url());
    f(&mut settings);
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

/// A second app with these settings (e.g. another replica on the same
/// database); the database belongs to whoever created it.
pub fn spawn_app_with_settings(settings: Settings) -> TestApp {
    start(settings, None)
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

/// A signed-in user.
#[derive(Debug, Clone)]
pub struct Session {
    pub user_id: uuid::Uuid,
    pub email: String,
    pub access_token: String,
    /// The refresh cookie's value.
    pub refresh: String,
}

pub const PASSWORD: &str = "a long enough password";

impl TestApp {
    pub fn pool(&self) -> tenantry_store::Pool {
        tenantry_store::Pool::new(
            self.settings.database_url.as_ref().unwrap(),
            tenantry_store::PoolSettings {
                max_size: 2,
                timeout: std::time::Duration::from_secs(5),
            },
        )
        .unwrap()
    }

    /// A tenant (active, on odoo/basic) created directly; loads the demo catalog if needed.
    pub async fn tenant(&self, slug: &str) -> uuid::Uuid {
        self.tenant_on(slug, "odoo", "basic").await
    }

    /// An active tenant on `product`/`plan` whose current period starts now
    /// (a calendar month or year; no end for lifetime).
    pub async fn tenant_on(&self, slug: &str, product: &str, plan: &str) -> uuid::Uuid {
        tenantry_api::catalog_file::load(&self.settings, demo_catalog_path())
            .await
            .unwrap();
        let mut conn = self.pool().get().await.unwrap();
        let product = tenantry_store::catalog::find_product(&mut conn, product)
            .await
            .unwrap();
        let plan = tenantry_store::catalog::find_plan(&mut conn, product.id, plan)
            .await
            .unwrap();
        let now = chrono::Utc::now();
        let now =
            now - chrono::Duration::nanoseconds(i64::from(now.timestamp_subsec_nanos() % 1000));
        let interval: tenantry_domain::BillingInterval = plan.billing_interval.parse().unwrap();
        let period = tenantry_domain::billing::BillingPeriod::nth(now, interval, 0).unwrap();
        let tenant = tenantry_store::tenants::Tenant {
            id: uuid::Uuid::now_v7(),
            slug: slug.to_owned(),
            company_name: format!("{slug} Ltd"),
            product_id: product.id,
            plan_id: plan.id,
            deployment: plan.deployment.clone(),
            status: tenantry_domain::TenantStatus::Active,
            status_reason: None,
            provisioned_at: Some(now),
            version: 1,
            created_at: now,
            updated_at: now,
        };
        let subscription = tenantry_store::tenants::Subscription {
            id: uuid::Uuid::now_v7(),
            tenant_id: tenant.id,
            plan_id: plan.id,
            status: tenantry_domain::SubscriptionStatus::Active,
            current_period_start: Some(period.start),
            current_period_end: period.end,
            provider: "none".into(),
            provider_customer_id: None,
            provider_subscription_id: None,
            created_at: now,
            updated_at: now,
            billing_anchor: Some(now),
            saved_payment_method: false,
            past_due_since: None,
            price_version: 0,
            price_synced_version: 0,
        };
        tenantry_store::tenants::insert_tenant(&mut conn, &tenant, &subscription)
            .await
            .unwrap();
        tenant.id
    }

    /// Creates a user directly (as `tenantry admin create` does for admins).
    pub async fn create_user(
        &self,
        email: &str,
        role: tenantry_domain::Role,
        tenant: Option<uuid::Uuid>,
    ) -> uuid::Uuid {
        let hasher =
            std::sync::Arc::new(tenantry_api::auth::password::Hasher::new(1024, 1, 1).unwrap());
        let password = secrecy::SecretString::from(PASSWORD.to_owned());
        tenantry_api::auth::service::create_user(
            &self.pool(),
            &hasher,
            email,
            &password,
            role,
            tenant,
        )
        .await
        .unwrap()
        .id
    }

    pub async fn login_response(&self, body: Value) -> reqwest::Response {
        self.client
            .post(self.url("/v1/auth/login"))
            .json(&body)
            .send()
            .await
            .unwrap()
    }

    /// Signs in with the test password; panics unless 200.
    pub async fn login(&self, email: &str) -> Session {
        let res = self
            .login_response(serde_json::json!({"email": email, "password": PASSWORD}))
            .await;
        assert_eq!(res.status(), 200, "login {email}");
        let refresh = refresh_cookie(&res).expect("refresh cookie");
        let body: Value = res.json().await.unwrap();
        let me: Value = self
            .client
            .get(self.url("/v1/me"))
            .bearer_auth(body["access_token"].as_str().unwrap())
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        Session {
            user_id: me["id"].as_str().unwrap().parse().unwrap(),
            email: email.to_owned(),
            access_token: body["access_token"].as_str().unwrap().to_owned(),
            refresh,
        }
    }

    /// A user with `role` (and tenant), signed in.
    pub async fn user(
        &self,
        email: &str,
        role: tenantry_domain::Role,
        tenant: Option<uuid::Uuid>,
    ) -> Session {
        self.create_user(email, role, tenant).await;
        self.login(email).await
    }

    pub async fn admin(&self) -> Session {
        self.user("admin@example.test", tenantry_domain::Role::Admin, None)
            .await
    }

    pub fn request(
        &self,
        method: reqwest::Method,
        path: &str,
        token: &str,
    ) -> reqwest::RequestBuilder {
        self.client
            .request(method, self.url(path))
            .bearer_auth(token)
    }

    pub async fn get_as(&self, path: &str, token: &str) -> reqwest::Response {
        self.request(reqwest::Method::GET, path, token)
            .send()
            .await
            .unwrap()
    }

    pub async fn post_as(&self, path: &str, token: &str, body: Value) -> reqwest::Response {
        self.request(reqwest::Method::POST, path, token)
            .json(&body)
            .send()
            .await
            .unwrap()
    }

    pub async fn delete_as(&self, path: &str, token: &str) -> reqwest::Response {
        self.request(reqwest::Method::DELETE, path, token)
            .send()
            .await
            .unwrap()
    }

    pub async fn patch_as(&self, path: &str, token: &str, body: Value) -> reqwest::Response {
        self.request(reqwest::Method::PATCH, path, token)
            .json(&body)
            .send()
            .await
            .unwrap()
    }

    /// POST /v1/auth/refresh with a cookie and the CSRF header.
    pub async fn refresh(&self, cookie: &str) -> reqwest::Response {
        self.client
            .post(self.url("/v1/auth/refresh"))
            .header("cookie", format!("tenantry_refresh={cookie}"))
            .header("x-tenantry-csrf", "1")
            .send()
            .await
            .unwrap()
    }

    /// Runs SQL on the app's database (for checks a client cannot make).
    pub async fn sql(&self) -> tokio_postgres::Client {
        let (client, conn) =
            tokio_postgres::connect(self.db.as_ref().unwrap().url(), tokio_postgres::NoTls)
                .await
                .unwrap();
        tokio::spawn(conn);
        client
    }

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
    if res.status().as_u16() != status {
        let got = res.status();
        panic!(
            "expected {status}, got {got}: {}",
            res.text().await.unwrap_or_default()
        );
    }
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

/// The refresh cookie's value in a response, if it sets one.
pub fn refresh_cookie(res: &reqwest::Response) -> Option<String> {
    set_cookie(res).and_then(|c| {
        c.strip_prefix("tenantry_refresh=")
            .and_then(|rest| rest.split(';').next())
            .map(str::to_owned)
            .filter(|v| !v.is_empty())
    })
}

/// The raw `Set-Cookie` header of the refresh cookie.
pub fn set_cookie(res: &reqwest::Response) -> Option<String> {
    res.headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with("tenantry_refresh="))
        .map(str::to_owned)
}
