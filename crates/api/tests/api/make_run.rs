//! `make run` (scripts/run): the private cluster, its reuse, DATABASE_URL
//! mode, the simulators and nodes it starts and registers, a clean stop on
//! SIGTERM; and `make demo` (scripts/demo) walking the main path against it.

use std::{
    io::Read,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use tenantry_test_db::{TestDatabase, free_port};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// A binary built beside `tenantry` (`make test` builds the workspace's).
fn sibling(name: &str) -> PathBuf {
    Path::new(env!("CARGO_BIN_EXE_tenantry")).with_file_name(name)
}

fn make_run(data_dir: &Path, pg_port: u16, http_port: u16, database_url: Option<&str>) -> Child {
    make_run_with_sims(
        data_dir,
        pg_port,
        http_port,
        database_url,
        (free_port(), free_port()),
    )
}

/// `make run` with its simulators on these ports (pve-sim, the Stripe stand-in).
fn make_run_with_sims(
    data_dir: &Path,
    pg_port: u16,
    http_port: u16,
    database_url: Option<&str>,
    (pve_port, stripe_port): (u16, u16),
) -> Child {
    let mut cmd = Command::new(root().join("scripts/run"));
    cmd.env("TENANTRY_BIN", env!("CARGO_BIN_EXE_tenantry"))
        .env("PVE_SIM_BIN", sibling("pve-sim"))
        .env("STRIPE_SIM_BIN", sibling("stripe-sim"))
        .env("TENANTRY_PVE_SIM_LISTEN", format!("127.0.0.1:{pve_port}"))
        .env(
            "TENANTRY_STRIPE_SIM_LISTEN",
            format!("127.0.0.1:{stripe_port}"),
        )
        .env(
            "TENANTRY_CADDY_ADMIN_LISTEN",
            format!("127.0.0.1:{}", free_port()),
        )
        .env(
            "TENANTRY_CADDY_HTTP_LISTEN",
            format!("127.0.0.1:{}", free_port()),
        )
        .env_remove("TENANTRY_CADDY_ADMIN_URL")
        // pve-sim's simulated apps: a loopback net of their own, the same
        // for every start on these ports (addresses outlive a restart).
        .env("TENANTRY_PVE_SIM_APP_NET", (2 + pve_port % 250).to_string())
        .env("TENANTRY_ARGON2_MEMORY_KIB", "1024")
        .env("TENANTRY_ARGON2_ITERATIONS", "1")
        .env_remove("TENANTRY_STRIPE_SECRET_KEY")
        .env_remove("TENANTRY_PAYMENTS")
        .env_remove("TENANTRY_SANDBOX")
        .env("TENANTRY_DATA_DIR", data_dir)
        .env("TENANTRY_PG_PORT", pg_port.to_string())
        .env("TENANTRY_LISTEN", format!("127.0.0.1:{http_port}"))
        .env("TENANTRY_LOG", "warn")
        .env_remove("DATABASE_URL")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if let Some(url) = database_url {
        cmd.env("DATABASE_URL", url);
    }
    // A run.env left by an earlier run must not pass for this one's.
    std::fs::remove_file(data_dir.join("run.env")).ok();
    cmd.spawn().expect("scripts/run")
}

/// Waits until `make run` is done starting (`READY=1` in run.env: a
/// SIGTERM before that is, rightly, a failed start), then polls `/readyz`
/// until it answers 200, or fails after 60 s.
async fn wait_ready(child: &mut Child, data_dir: &Path, http_port: u16) {
    wait_started(child, data_dir).await;
    let client = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            let mut err = String::new();
            child
                .stderr
                .take()
                .unwrap()
                .read_to_string(&mut err)
                .unwrap();
            panic!("make run exited early ({status}): {err}");
        }
        if let Ok(res) = client
            .get(format!("http://127.0.0.1:{http_port}/readyz"))
            .send()
            .await
            && res.status() == 200
        {
            return;
        }
        assert!(Instant::now() < deadline, "make run did not become ready");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn stop(child: Child) -> String {
    crate::helpers::signal(child.id(), "TERM");
    let out = tokio::task::spawn_blocking(move || child.wait_with_output())
        .await
        .unwrap()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "make run must exit 0 on SIGTERM: {:?}\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

fn cluster_running(dir: &Path) -> bool {
    dir.join("postgres/postmaster.pid").exists()
}

async fn product_count(http_port: u16) -> usize {
    let page: serde_json::Value = reqwest::get(format!("http://127.0.0.1:{http_port}/v1/products"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    page["items"].as_array().unwrap().len()
}

#[tokio::test]
async fn make_run_starts_reuses_and_stops_a_private_cluster() {
    let data_dir = std::env::temp_dir().join(format!("tenantry-run-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&data_dir).unwrap();
    let pg_port = free_port();

    // First run: a new cluster, the database, migrations, the demo catalog.
    let http_port = free_port();
    let mut child = make_run(&data_dir, pg_port, http_port, None);
    wait_ready(&mut child, &data_dir, http_port).await;
    assert_eq!(product_count(http_port).await, 2);
    assert!(cluster_running(&data_dir));
    let out = stop(child).await;
    assert!(out.contains("2 product(s) created"), "{out}");
    assert!(out.contains("PostgreSQL stopped"), "{out}");
    assert!(
        !cluster_running(&data_dir),
        "SIGTERM stops the private cluster too"
    );
    // A new data dir gets a demo admin with a printed random password.
    let password = out
        .lines()
        .find_map(|l| {
            l.strip_prefix("make run: demo admin  email: admin@tenantry.local  password: ")
        })
        .unwrap_or_else(|| panic!("no demo admin printed: {out}"))
        .to_owned();
    assert!(password.len() >= 20);

    // Second run: the same cluster and data, nothing created again.
    let http_port = free_port();
    let mut child = make_run(&data_dir, pg_port, http_port, None);
    wait_ready(&mut child, &data_dir, http_port).await;
    assert_eq!(product_count(http_port).await, 2);
    let login = reqwest::Client::new()
        .post(format!("http://127.0.0.1:{http_port}/v1/auth/login"))
        .json(&serde_json::json!({"email": "admin@tenantry.local", "password": password}))
        .send()
        .await
        .unwrap();
    assert_eq!(login.status(), 200, "the printed credentials work");
    let out = stop(child).await;
    assert!(
        !out.contains("demo admin"),
        "only a new data dir gets one: {out}"
    );
    assert!(out.contains("no pending migration"), "{out}");
    assert!(out.contains("16 unchanged"), "{out}");
    assert!(!cluster_running(&data_dir));

    std::fs::remove_dir_all(&data_dir).ok();
}

#[tokio::test]
async fn make_run_with_database_url_starts_no_cluster() {
    let db = TestDatabase::empty().await;
    let data_dir = std::env::temp_dir().join(format!("tenantry-run-{}", uuid::Uuid::new_v4()));
    let http_port = free_port();
    let mut child = make_run(&data_dir, free_port(), http_port, Some(db.url()));
    wait_ready(&mut child, &data_dir, http_port).await;
    assert_eq!(product_count(http_port).await, 2);
    let out = stop(child).await;
    assert!(out.contains("using DATABASE_URL"), "{out}");
    assert!(
        !out.contains("demo admin"),
        "never with DATABASE_URL: {out}"
    );
    assert!(!data_dir.join("postgres").exists(), "no cluster is created");
}

/// Waits until `make run` has registered its nodes (`READY=1` in run.env).
async fn wait_started(child: &mut Child, data_dir: &Path) {
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            let mut err = String::new();
            child
                .stderr
                .take()
                .unwrap()
                .read_to_string(&mut err)
                .unwrap();
            panic!("make run exited early ({status}): {err}");
        }
        if std::fs::read_to_string(data_dir.join("run.env")).is_ok_and(|s| s.contains("READY=1")) {
            return;
        }
        assert!(Instant::now() < deadline, "make run never became ready");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn make_run_starts_the_whole_control_plane_and_make_demo_walks_the_main_path() {
    // The demo's `inventory` tenants run in real containers (the catalog's
    // fixed port range): none may be left from an earlier run, and none is
    // left after this one, also when it fails.
    let _containers = InventoryContainers::remove();
    let data_dir = std::env::temp_dir().join(format!("tenantry-demo-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&data_dir).unwrap();
    let http_port = free_port();
    let (pg_port, sims) = (free_port(), (free_port(), free_port()));
    let mut child = make_run_with_sims(&data_dir, pg_port, http_port, None, sims);
    wait_started(&mut child, &data_dir).await;

    // The demo's secrets are the owner's alone.
    use std::os::unix::fs::PermissionsExt as _;
    let mode = std::fs::metadata(data_dir.join("demo.env"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600, "demo.env is private");

    let dir = data_dir.clone();
    let demo = tokio::task::spawn_blocking(move || {
        Command::new(root().join("scripts/demo"))
            .env("TENANTRY_DATA_DIR", &dir)
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let demo_out = String::from_utf8_lossy(&demo.stdout).into_owned();
    if demo.status.success() && Path::new("/var/run/docker.sock").exists() {
        every_demo_plan_answers_through_the_proxy(&data_dir, http_port).await;
    }
    let out = stop(child).await;
    assert!(
        demo.status.success(),
        "make demo failed: {demo_out}\n{}\nmake run said:\n{out}",
        String::from_utf8_lossy(&demo.stderr)
    );
    for line in [
        "make run: Proxmox VE: simulated nodes pve1, pve2",
        "make run: node pve1 (proxmox, simulated) online",
        "make run: node pve2 (proxmox, simulated) online",
        "make run: payments: local Stripe stand-in at http://127.0.0.1:",
        ", no money moves",
        &format!("make run: docs http://127.0.0.1:{http_port}/docs/"),
        "make run: reverse proxy: Caddy at http://127.0.0.1:",
        "make run: simulators stopped",
    ] {
        assert!(out.contains(line), "{line:?} missing from: {out}");
    }
    if Path::new("/var/run/docker.sock").exists() {
        assert!(
            out.contains(
                "make run: node docker-local (docker, unix:///var/run/docker.sock) online"
            ),
            "{out}"
        );
        // The Docker demo product's tenant answers at its URL through Caddy.
        for line in ["[11] sign up inv-", "→  200: tenant=inv-", "mode=shared"] {
            assert!(demo_out.contains(line), "{line:?} missing from: {demo_out}");
        }
    }
    for step in [
        "[1] sign up",
        "[2] the customer pays",
        "[3] provisioned on the least-loaded",
        "→  200: ct=",
        "[4] ten days later",
        "[5] paid",
        "[6] migrated to a dedicated container",
        "[7] downgrade to basic",
        "[8] sandbox clock advanced",
        "[9] downgrade applied and migrated back to shared",
        "[10] activity log",
        "demo: OK",
    ] {
        assert!(demo_out.contains(step), "{step:?} missing from: {demo_out}");
    }
    assert!(
        !data_dir.join("run.env").exists(),
        "run.env goes with make run"
    );

    // The simulators kept what they had; a second start of the same data
    // dir finds every earlier container, customer and price, and the demo
    // passes again (a Stripe stand-in that forgot the synced prices, or a
    // pve-sim that forgot the containers, would fail it).
    for kept in ["pve-sim.json", "stripe-sim.json"] {
        assert!(data_dir.join(kept).exists(), "{kept}");
    }
    let pve_state = std::fs::read_to_string(data_dir.join("pve-sim.json")).unwrap();
    assert!(pve_state.contains("\"vmid\""), "{pve_state}");
    let mut child = make_run_with_sims(&data_dir, pg_port, http_port, None, sims);
    wait_started(&mut child, &data_dir).await;
    let dir = data_dir.clone();
    let again = tokio::task::spawn_blocking(move || {
        Command::new(root().join("scripts/demo"))
            .env("TENANTRY_DATA_DIR", &dir)
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let again_out = String::from_utf8_lossy(&again.stdout).into_owned();
    let out = stop(child).await;
    assert!(
        again.status.success() && again_out.contains("demo: OK"),
        "make demo failed on the second start: {again_out}\n{}\nmake run said:\n{out}",
        String::from_utf8_lossy(&again.stderr)
    );

    // Without make run, make demo says so and fails.
    let dir = data_dir.clone();
    let alone = tokio::task::spawn_blocking(move || {
        Command::new(root().join("scripts/demo"))
            .env("TENANTRY_DATA_DIR", &dir)
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    assert_eq!(alone.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&alone.stderr).contains("make run"),
        "{}",
        String::from_utf8_lossy(&alone.stderr)
    );
    std::fs::remove_dir_all(&data_dir).ok();
}

/// Removes the Docker containers and volumes of the demo catalog's
/// `inventory` product, now and when dropped.
struct InventoryContainers;

impl InventoryContainers {
    fn remove() -> Self {
        Self::sweep();
        Self
    }

    fn sweep() {
        let docker = |args: &[&str]| {
            Command::new("docker")
                .args(args)
                .output()
                .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
                .unwrap_or_default()
        };
        let label = "label=tenantry.product=inventory";
        for id in docker(&["ps", "-aq", "--filter", label]).split_whitespace() {
            docker(&["rm", "-f", id]);
        }
        for v in docker(&["volume", "ls", "-q", "--filter", label]).split_whitespace() {
            docker(&["volume", "rm", "-f", v]);
        }
    }
}

impl Drop for InventoryContainers {
    fn drop(&mut self) {
        Self::sweep();
    }
}

/// `KEY=value` lines of an env file.
fn env_file(path: &Path) -> std::collections::HashMap<String, String> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
}

/// Against a running `make run`: a tenant on every plan of both demo
/// products (created by the demo admin, paid up) becomes `active`, and its
/// URL answers through the proxy with that tenant's page.
async fn every_demo_plan_answers_through_the_proxy(data_dir: &Path, http_port: u16) {
    let run = env_file(&data_dir.join("run.env"));
    let demo = env_file(&data_dir.join("demo.env"));
    let proxy = run["PROXY_URL"].clone();
    let api = format!("http://127.0.0.1:{http_port}");
    let client = reqwest::Client::new();
    let login: serde_json::Value = client
        .post(format!("{api}/v1/auth/login"))
        .json(&serde_json::json!({
            "email": demo["TENANTRY_DEMO_ADMIN_EMAIL"],
            "password": demo["TENANTRY_DEMO_ADMIN_PASSWORD"],
        }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = login["access_token"].as_str().unwrap().to_owned();
    let get = async |path: &str| -> serde_json::Value {
        client
            .get(format!("{api}{path}"))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    };
    let tag = &uuid::Uuid::new_v4().simple().to_string()[..6];
    let mut tenants = Vec::new();
    for product in ["odoo", "inventory"] {
        let detail = get(&format!("/v1/products/{product}")).await;
        for plan in detail["plans"].as_array().unwrap() {
            let code = plan["code"].as_str().unwrap();
            let slug = format!("{}-{code}-{tag}", &product[..3]);
            let res = client
                .post(format!("{api}/v1/tenants"))
                .bearer_auth(&token)
                .json(&serde_json::json!({
                    "company_name": slug, "slug": slug, "product": product, "plan": code,
                    "owner_email": format!("o@{slug}.test"), "skip_payment": true,
                }))
                .send()
                .await
                .unwrap();
            assert!(
                res.status().is_success(),
                "{slug}: {}",
                res.text().await.unwrap()
            );
            let created: serde_json::Value = res.json().await.unwrap();
            tenants.push((slug, created["tenant"]["id"].as_str().unwrap().to_owned()));
        }
    }
    assert!(tenants.len() >= 10, "both products' plans: {tenants:?}");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(180);
    for (slug, id) in &tenants {
        loop {
            let t = get(&format!("/v1/tenants/{id}")).await;
            if t["status"] == "active" {
                break;
            }
            assert!(
                t["status"] != "failed" && tokio::time::Instant::now() < deadline,
                "{slug} did not become active: {t}"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        let host = format!("{slug}.tenantry.localhost");
        loop {
            let page = client
                .get(format!("{proxy}/"))
                .header("Host", &host)
                .send()
                .await;
            if let Ok(r) = page
                && r.status() == 200
                && r.text()
                    .await
                    .unwrap_or_default()
                    .contains(&format!("tenant={slug}"))
            {
                break;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "{host} never answered through {proxy}"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}
