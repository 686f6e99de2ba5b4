#![expect(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "a test harness fails loudly, with the reason"
)]

//! The end-to-end harness: a [`World`] is the control plane as `make run`
//! starts it, made of separate processes — `pve-sim` (nodes pve1 and pve2
//! offering the demo catalog's Odoo template), `stripe-sim` (the Stripe
//! stand-in, delivering signed webhooks to Tenantry) and `tenantry serve` —
//! over a real PostgreSQL database of its own (cloned from the migrated
//! template of `tenantry-test-db`), with the real Docker engine registered
//! as a node. Tests talk to it over HTTP only: Tenantry's public API, the
//! stand-in's checkout page and control routes (what a customer and Stripe
//! do), and pve-sim's Proxmox API (to count containers as an operator would).
//!
//! The binaries come from the workspace's target directory: `cargo nextest
//! run --workspace` (`make test`) builds them, since their packages have
//! integration tests. Run alone, build them first:
//! `cargo build --bins -p tenantry-api -p pve-sim -p tenantry-stripe-sim`.

use std::{
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use serde_json::{Value, json};
use tenantry_test_db::TestDatabase;

/// The demo catalog's Odoo LXC template (`catalog/demo.toml`).
pub const ODOO_TEMPLATE: &str = "local:vztmpl/debian-12-odoo_17.0-1_amd64.tar.zst";
/// The admin every world gets.
pub const ADMIN_EMAIL: &str = "admin@e2e.test";
/// Passwords of the admin and of customers.
pub const PASSWORD: &str = "correct horse battery staple";
const PVE_TOKEN_ID: &str = "root@pam!tenantry";
const WEBHOOK_SECRET: &str = "whsec_e2e";
/// How long any awaited state may take.
pub const DEADLINE: Duration = Duration::from_secs(90);

/// The workspace root.
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// A binary of the workspace (`tenantry`, `pve-sim`, `stripe-sim`).
pub fn binary(name: &str) -> PathBuf {
    // target/debug/deps/e2e-HASH → target/debug/NAME
    let exe = std::env::current_exe().unwrap();
    let dir = exe.parent().and_then(Path::parent).unwrap();
    let path = dir.join(name);
    assert!(
        path.exists(),
        "{} is missing: `make test` builds it; alone, run \
         `cargo build --bins -p tenantry-api -p pve-sim -p tenantry-stripe-sim` first",
        path.display()
    );
    path
}

pub use tenantry_test_db::free_port;

/// A child process killed (SIGKILL) when dropped, also when a test fails.
#[derive(Debug)]
pub struct Proc(pub Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn random_key(kid: &str) -> String {
    use base64::Engine as _;
    use rand::RngCore as _;
    let mut key = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut key);
    format!(
        "{kid}:{}",
        base64::engine::general_purpose::STANDARD.encode(key)
    )
}

/// The control plane under test.
#[derive(Debug)]
pub struct World {
    /// Tenantry's database (dropped at the end).
    pub db: TestDatabase,
    /// `http://127.0.0.1:PORT` of Tenantry.
    pub api: String,
    /// `http://127.0.0.1:PORT/api2/json` of pve-sim.
    pub pve: String,
    pve_secret: String,
    /// `http://127.0.0.1:PORT` of the Stripe stand-in.
    pub stripe: String,
    /// HTTP client.
    pub http: reqwest::Client,
    /// The admin's access token.
    pub admin: String,
    /// Appended to every slug (tenant databases share one server).
    pub suffix: String,
    env: Vec<(String, String)>,
    server: Option<Proc>,
    _pve_sim: Proc,
    _stripe_sim: Proc,
    backups: PathBuf,
}

/// Waits until `url` answers any HTTP status, or panics after 30 s.
async fn wait_http(http: &reqwest::Client, url: &str, what: &str, proc: &mut Proc) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if http.get(url).send().await.is_ok() {
            return;
        }
        if let Some(status) = proc.0.try_wait().unwrap() {
            panic!("{what} exited early: {status}");
        }
        assert!(Instant::now() < deadline, "{what} never answered at {url}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

impl World {
    /// Starts pve-sim (tasks of `task_ms` each), the stand-in and Tenantry,
    /// creates the admin, loads the demo catalog and registers the nodes.
    pub async fn start(task_ms: u64) -> World {
        let http = reqwest::Client::new();
        let db = TestDatabase::new().await;
        let (api_port, pve_port, stripe_port) = (free_port(), free_port(), free_port());
        let api = format!("http://127.0.0.1:{api_port}");
        let pve_secret = uuid::Uuid::new_v4().to_string();

        let mut pve_sim = Proc(
            Command::new(binary("pve-sim"))
                .args(["--listen", &format!("127.0.0.1:{pve_port}")])
                .args(["--nodes", "pve1,pve2", "--template", ODOO_TEMPLATE])
                .args(["--token", &format!("{PVE_TOKEN_ID}={pve_secret}")])
                .args(["--task-ms", &task_ms.to_string()])
                .env("RUST_LOG", "warn")
                .stdout(Stdio::null())
                .spawn()
                .unwrap(),
        );
        let pve = format!("http://127.0.0.1:{pve_port}/api2/json");
        wait_http(&http, &format!("{pve}/version"), "pve-sim", &mut pve_sim).await;

        let stripe = format!("http://127.0.0.1:{stripe_port}");
        let mut stripe_sim = Proc(
            Command::new(binary("stripe-sim"))
                .env("STRIPE_SIM_LISTEN", format!("127.0.0.1:{stripe_port}"))
                .env(
                    "STRIPE_SIM_WEBHOOK_URL",
                    format!("{api}/v1/webhooks/stripe"),
                )
                .env("STRIPE_SIM_WEBHOOK_SECRET", WEBHOOK_SECRET)
                .stderr(Stdio::null())
                .spawn()
                .unwrap(),
        );
        wait_http(
            &http,
            &format!("{stripe}/_sim/events"),
            "stripe-sim",
            &mut stripe_sim,
        )
        .await;

        let backups = std::env::temp_dir().join(format!("tenantry-e2e-{}", uuid::Uuid::new_v4()));
        let env: Vec<(String, String)> = [
            ("DATABASE_URL", db.url().to_owned()),
            ("TENANTRY_LISTEN", format!("127.0.0.1:{api_port}")),
            ("TENANTRY_JWT_KEYS", random_key("e2e-jwt")),
            ("TENANTRY_SECRET_KEYS", random_key("e2e-seal")),
            ("TENANTRY_ARGON2_MEMORY_KIB", "1024".into()),
            ("TENANTRY_ARGON2_ITERATIONS", "1".into()),
            ("TENANTRY_LOGIN_RATE_PER_MINUTE", "1000".into()),
            ("TENANTRY_SIGNUP_RATE_PER_MINUTE", "1000".into()),
            ("TENANTRY_SANDBOX", "true".into()),
            ("TENANTRY_PAYMENTS", "stripe".into()),
            ("TENANTRY_STRIPE_SECRET_KEY", "sk_test_e2e".into()),
            ("TENANTRY_STRIPE_API_BASE", format!("{stripe}/")),
            ("TENANTRY_STRIPE_WEBHOOK_SECRETS", WEBHOOK_SECRET.into()),
            ("TENANTRY_STRIPE_RECONCILE_INTERVAL_SECS", "0".into()),
            ("TENANTRY_BILLING_INTERVAL_SECS", "0".into()),
            ("TENANTRY_NODE_CHECK_SECS", "0".into()),
            ("TENANTRY_WORKERS", "2".into()),
            ("TENANTRY_JOB_POLL_SECS", "1".into()),
            ("TENANTRY_JOB_LEASE_SECS", "2".into()),
            ("TENANTRY_JOB_BACKOFF_SECS", "0".into()),
            ("TENANTRY_PROXMOX_TASK_POLL_MS", "50".into()),
            ("TENANTRY_BASE_DOMAIN", "e2e.test".into()),
            ("TENANTRY_BACKUP_DIR", backups.display().to_string()),
            ("TENANTRY_SHUTDOWN_TIMEOUT_SECS", "5".into()),
            ("TENANTRY_LOG", "warn".into()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();

        let mut world = World {
            db,
            api,
            pve,
            pve_secret,
            stripe,
            http,
            admin: String::new(),
            suffix: uuid::Uuid::new_v4().simple().to_string()[..8].to_owned(),
            env,
            server: None,
            _pve_sim: pve_sim,
            _stripe_sim: stripe_sim,
            backups,
        };
        // As an operator sets up a new installation: the CLI, then the API.
        world.cli(&["migrate", "up"], None);
        let catalog = root().join("catalog/demo.toml");
        world.cli(&["catalog", "load", catalog.to_str().unwrap()], None);
        world.cli(
            &[
                "admin",
                "create",
                "--email",
                ADMIN_EMAIL,
                "--password-stdin",
            ],
            Some(PASSWORD),
        );
        world.start_server().await;
        world.admin = world.login(ADMIN_EMAIL).await;
        world
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(binary("tenantry"));
        cmd.args(args)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .envs(self.env.iter().map(|(k, v)| (k, v)));
        cmd
    }

    fn cli(&self, args: &[&str], stdin: Option<&str>) {
        use std::io::Write as _;
        let mut child = self
            .command(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        if let Some(input) = stdin {
            writeln!(child.stdin.take().unwrap(), "{input}").unwrap();
        }
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "tenantry {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Starts `tenantry serve` and waits for `/readyz`.
    pub async fn start_server(&mut self) {
        let mut proc = Proc(
            self.command(&["serve"])
                .stdout(Stdio::null())
                .spawn()
                .unwrap(),
        );
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(status) = proc.0.try_wait().unwrap() {
                panic!("tenantry serve exited early: {status}");
            }
            if let Ok(res) = self.http.get(format!("{}/readyz", self.api)).send().await
                && res.status() == 200
            {
                break;
            }
            assert!(Instant::now() < deadline, "tenantry never became ready");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        self.server = Some(proc);
    }

    /// Kills `tenantry serve` with SIGKILL (a crash: no draining, no lease given back).
    pub fn kill_server(&mut self) {
        let mut proc = self.server.take().expect("a running server");
        proc.0.kill().unwrap();
        proc.0.wait().unwrap();
    }

    /// The slug this world uses for `base`.
    pub fn slug(&self, base: &str) -> String {
        format!("{base}-{}", self.suffix)
    }

    /// Signs in; the access token.
    pub async fn login(&self, email: &str) -> String {
        let (status, body) = self
            .call(
                "POST",
                "/v1/auth/login",
                None,
                Some(json!({"email": email, "password": PASSWORD})),
            )
            .await;
        assert_eq!(status, 200, "login {email}: {body}");
        body["access_token"].as_str().unwrap().to_owned()
    }

    /// A request to Tenantry's API: (status, JSON body or Null).
    pub async fn call(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (u16, Value) {
        let url = if path.starts_with("http") {
            path.to_owned()
        } else {
            format!("{}{path}", self.api)
        };
        let mut req = self
            .http
            .request(method.parse().unwrap(), url.as_str())
            .timeout(Duration::from_secs(30));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        let res = req
            .send()
            .await
            .unwrap_or_else(|e| panic!("{method} {url}: {e}"));
        let status = res.status().as_u16();
        let text = res.text().await.unwrap();
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    /// GET that must answer 200.
    pub async fn get(&self, path: &str, token: &str) -> Value {
        let (status, body) = self.call("GET", path, Some(token), None).await;
        assert_eq!(status, 200, "GET {path}: {body}");
        body
    }

    /// POST that must answer `expect`.
    pub async fn post(&self, path: &str, token: Option<&str>, body: Value, expect: u16) -> Value {
        let (status, answer) = self.call("POST", path, token, Some(body)).await;
        assert_eq!(status, expect, "POST {path}: {answer}");
        answer
    }

    /// Registers pve-sim's two nodes and the local Docker engine, and checks
    /// each: all must be online. Returns their ids by name.
    pub async fn register_nodes(&self) -> Vec<(String, String)> {
        let mut ids = Vec::new();
        for name in ["pve1", "pve2"] {
            let node = self
                .post(
                    "/v1/nodes",
                    Some(&self.admin),
                    json!({
                        "kind": "proxmox", "name": name, "api_url": self.pve,
                        "credentials": {"token_id": PVE_TOKEN_ID, "token_secret": self.pve_secret},
                        "capacity": {"cpu_cores": 16, "memory_mib": 65536, "storage_gib": 1024, "max_instances": 50},
                    }),
                    201,
                )
                .await;
            ids.push((name.to_owned(), node["id"].as_str().unwrap().to_owned()));
        }
        let docker = self
            .post(
                "/v1/nodes",
                Some(&self.admin),
                json!({
                    "kind": "docker", "name": "docker-local", "api_url": "unix:///var/run/docker.sock",
                    "capacity": {"cpu_cores": 2, "memory_mib": 4096, "storage_gib": 50, "max_instances": 10},
                }),
                201,
            )
            .await;
        ids.push((
            "docker-local".to_owned(),
            docker["id"].as_str().unwrap().to_owned(),
        ));
        for (name, id) in &ids {
            let check = self
                .post(
                    &format!("/v1/nodes/{id}/check"),
                    Some(&self.admin),
                    json!({}),
                    200,
                )
                .await;
            assert_eq!(check["reachable"], true, "{name}: {check}");
            assert_eq!(check["status"], "online", "{name}: {check}");
            assert!(check["version"].is_string(), "{name}: {check}");
        }
        ids
    }

    /// Polls `probe` until it returns `Some`, or panics with `what` and the
    /// last state after [`DEADLINE`].
    pub async fn eventually<T, F, Fut>(&self, what: &str, mut probe: F) -> T
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<T, Value>>,
    {
        let deadline = Instant::now() + DEADLINE;
        loop {
            match probe().await {
                Ok(v) => return v,
                Err(last) => assert!(Instant::now() < deadline, "never saw {what}; last: {last}"),
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The tenant as its owner (or staff) sees it.
    pub async fn tenant(&self, id: &str, token: &str) -> Value {
        self.get(&format!("/v1/tenants/{id}"), token).await
    }

    /// Waits for the tenant's `status` (failing at once on `failed`).
    pub async fn wait_status(&self, id: &str, token: &str, status: &str) -> Value {
        self.eventually(&format!("tenant {id} {status}"), || async {
            let t = self.tenant(id, token).await;
            assert_ne!(t["status"], "failed", "the tenant failed: {t}");
            if t["status"] == status { Ok(t) } else { Err(t) }
        })
        .await
    }

    /// The tenant's deployments, newest first.
    pub async fn deployments(&self, id: &str, token: &str) -> Vec<Value> {
        self.get(&format!("/v1/tenants/{id}/deployments"), token)
            .await
            .as_array()
            .unwrap()
            .clone()
    }

    /// The tenant's jobs of `kind`, oldest first.
    pub async fn jobs(&self, id: &str, kind: &str) -> Vec<Value> {
        self.get(
            &format!("/v1/jobs?tenant={id}&kind={kind}&limit=200"),
            &self.admin,
        )
        .await["items"]
            .as_array()
            .unwrap()
            .clone()
    }

    /// The online Proxmox nodes' instance counts, by name.
    pub async fn node_instances(&self) -> Vec<(String, i64)> {
        let nodes = self.get("/v1/nodes?limit=200", &self.admin).await;
        nodes["items"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|n| n["kind"] == "proxmox")
            .map(|n| {
                (
                    n["name"].as_str().unwrap().to_owned(),
                    n["instances"].as_i64().unwrap(),
                )
            })
            .collect()
    }

    /// Containers on pve-sim's nodes, as its Proxmox API lists them: (node, vmid).
    pub async fn containers(&self) -> Vec<(String, String)> {
        let mut all = Vec::new();
        for node in ["pve1", "pve2"] {
            let res: Value = self
                .http
                .get(format!("{}/nodes/{node}/lxc", self.pve))
                .header(
                    "Authorization",
                    format!("PVEAPIToken={PVE_TOKEN_ID}={}", self.pve_secret),
                )
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            for ct in res["data"].as_array().unwrap() {
                let vmid = match &ct["vmid"] {
                    Value::String(s) => s.clone(),
                    v => v.to_string(),
                };
                all.push((node.to_owned(), vmid));
            }
        }
        all.sort();
        all
    }

    /// Signs `slug` up for odoo / `plan` (paid): (tenant id, owner token, checkout URL).
    pub async fn signup(&self, slug: &str, plan: &str) -> (String, String, String) {
        let email = format!("owner@{slug}.e2e.test");
        let body = self
            .post(
                "/v1/signup",
                None,
                json!({"company_name": format!("{slug} Ltd"), "slug": slug, "email": email,
                       "password": PASSWORD, "product": "odoo", "plan": plan}),
                201,
            )
            .await;
        assert_eq!(body["tenant"]["status"], "pending_payment", "{body}");
        let checkout = body["checkout_url"].as_str().unwrap().to_owned();
        assert!(
            checkout.starts_with(&self.stripe),
            "checkout at the stand-in: {checkout}"
        );
        let owner = self.login(&email).await;
        (
            body["tenant"]["id"].as_str().unwrap().to_owned(),
            owner,
            checkout,
        )
    }

    /// Pays a checkout as a customer does: opens the page, presses its button.
    /// Returns the events the stand-in delivered.
    pub async fn pay(&self, checkout_url: &str) -> Vec<Value> {
        let page = self
            .http
            .get(checkout_url)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let action = page
            .split("action=\"")
            .nth(1)
            .and_then(|r| r.split('"').next())
            .unwrap_or_else(|| panic!("no payment form: {page}"));
        let events: Value = self
            .http
            .post(format!("{}{action}", self.stripe))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        events.as_array().unwrap().clone()
    }

    /// Every event the stand-in sent, oldest first.
    pub async fn stripe_events(&self) -> Vec<Value> {
        let v: Value = self
            .http
            .get(format!("{}/_sim/events", self.stripe))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        v.as_array().unwrap().clone()
    }

    /// Delivers a recorded event again (Stripe's retry or "Resend"): the
    /// webhook endpoint's statuses.
    pub async fn redeliver(&self, event_id: &str) -> Vec<u16> {
        self.http
            .post(format!("{}/_sim/events/{event_id}/redeliver", self.stripe))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    /// Moves Tenantry's sandbox clock and the stand-in's by `seconds`.
    pub async fn advance_clock(&self, seconds: i64) -> Value {
        let moved = self
            .post(
                "/v1/sandbox/clock",
                Some(&self.admin),
                json!({"advance_seconds": seconds}),
                200,
            )
            .await;
        let res = self
            .http
            .post(format!("{}/_sim/clock", self.stripe))
            .json(&json!({"advance_seconds": seconds}))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200);
        moved
    }
}

impl Drop for World {
    fn drop(&mut self) {
        // Stop the server before the database goes.
        self.server.take();
        let _ = std::fs::remove_dir_all(&self.backups);
    }
}
