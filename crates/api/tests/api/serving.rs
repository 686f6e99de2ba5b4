//! Tenants served for real: a real Caddy (Debian's `caddy`) driven through
//! its admin API, in front of real Docker containers running the demo
//! product's image (`scripts/demo-image`, built from Debian's busybox).
//!
//! Each test starts its own Caddy on free loopback ports with an empty
//! configuration; Tenantry pushes the `tenantry` server into it.

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use serde_json::{Value, json};
use tenantry_provisioning::routing::CaddySettings;

use crate::helpers::{TestApp, spawn_app_with};

/// The demo product's image, built once per test process (idempotent by
/// content hash, never removed by tests: other tests and `make run` use it).
const DEMO_IMAGE: &str = "tenantry/inventory:demo";

fn build_demo_image() {
    static BUILT: std::sync::Mutex<bool> = std::sync::Mutex::new(false);
    let mut built = BUILT.lock().unwrap();
    if *built {
        return;
    }
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../../scripts/demo-image");
    let out = Command::new(script).arg(DEMO_IMAGE).output().unwrap();
    assert!(
        out.status.success(),
        "scripts/demo-image failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    *built = true;
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A Caddy process with an empty configuration (only its admin endpoint),
/// killed when dropped.
struct Caddy {
    child: Option<Child>,
    dir: std::path::PathBuf,
    admin_port: u16,
    http_port: u16,
}

impl Caddy {
    async fn start() -> Self {
        Self::start_on(free_port(), free_port()).await
    }

    async fn start_on(admin_port: u16, http_port: u16) -> Self {
        let dir = std::env::temp_dir().join(format!("tenantry-caddy-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        let mut c = Self {
            child: None,
            dir,
            admin_port,
            http_port,
        };
        c.spawn().await;
        c
    }

    /// (Re)starts the process with an empty configuration: what a Caddy
    /// restarted without its autosaved config runs.
    async fn spawn(&mut self) {
        let config = self.dir.join("caddy.json");
        std::fs::write(
            &config,
            json!({"admin": {"listen": format!("127.0.0.1:{}", self.admin_port)}}).to_string(),
        )
        .unwrap();
        let child = Command::new("caddy")
            .args(["run", "--config"])
            .arg(&config)
            .env("HOME", &self.dir)
            .env("XDG_DATA_HOME", self.dir.join("data"))
            .env("XDG_CONFIG_HOME", self.dir.join("config"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("caddy (Debian package `caddy`) on PATH");
        self.child = Some(child);
        let client = reqwest::Client::new();
        for _ in 0..200 {
            if client
                .get(format!("http://127.0.0.1:{}/config/", self.admin_port))
                .send()
                .await
                .is_ok()
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("caddy's admin API did not come up");
    }

    fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    fn settings(&self) -> CaddySettings {
        let mut s = CaddySettings::new(
            format!("http://127.0.0.1:{}", self.admin_port),
            vec![format!("127.0.0.1:{}", self.http_port)],
        );
        s.automatic_https = false;
        s
    }
}

impl Drop for Caddy {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Removes the test product's containers and volumes when dropped.
struct Cleanup {
    product: String,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        let label = format!("label=tenantry.product={}", self.product);
        let ids = docker(&["ps", "-aq", "--filter", &label]);
        for id in ids.split_whitespace() {
            docker(&["rm", "-f", id]);
        }
        let vols = docker(&["volume", "ls", "-q", "--filter", &label]);
        for v in vols.split_whitespace() {
            docker(&["volume", "rm", "-f", v]);
        }
    }
}

fn docker(args: &[&str]) -> String {
    let out = Command::new("docker").args(args).output().unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `GET /` through Caddy for `host`: status and body (status 0 when the
/// connection failed).
async fn through_proxy(client: &reqwest::Client, port: u16, host: &str) -> (u16, String) {
    match client
        .get(format!("http://127.0.0.1:{port}/"))
        .header("Host", host)
        .send()
        .await
    {
        Ok(r) => {
            let status = r.status().as_u16();
            (status, r.text().await.unwrap_or_default())
        }
        Err(_) => (0, String::new()),
    }
}

/// Polls the proxy until `host` answers `status` with a body holding
/// `needle` (60 s at most).
async fn until_served(port: u16, host: &str, status: u16, needle: &str) -> String {
    let client = reqwest::Client::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let (s, body) = through_proxy(&client, port, host).await;
        if s == status && body.contains(needle) {
            return body;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{host} never answered {status} with {needle:?}; last: {s} {body}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn wait<F: Fn(&Value) -> bool>(app: &TestApp, path: &str, token: &str, done: F) -> Value {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(90);
    loop {
        let v: Value = app.get_as(path, token).await.json().await.unwrap();
        if done(&v) {
            return v;
        }
        assert!(v["status"] != "failed", "{path} failed: {v}");
        assert!(
            tokio::time::Instant::now() < deadline,
            "{path} never got there: {v}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn job_done(app: &TestApp, token: &str, res: Value) {
    let id = res["job"]["id"].as_str().unwrap().to_owned();
    wait(app, &format!("/v1/jobs/{id}"), token, |j| {
        j["status"] == "succeeded"
    })
    .await;
}

#[tokio::test]
async fn shared_and_dedicated_docker_tenants_answer_through_a_real_caddy_before_during_and_after_a_migration()
 {
    build_demo_image();
    let mut caddy = Caddy::start().await;
    let suffix = uuid::Uuid::new_v4().simple().to_string()[..8].to_owned();
    let product = format!("inv-{suffix}");
    let _cleanup = Cleanup {
        product: product.clone(),
    };
    let caddy_settings = caddy.settings();
    let app = spawn_app_with(|s| {
        s.jobs.workers = 2;
        s.routing.caddy = Some(caddy_settings);
        s.routing.reconcile_every = Duration::from_millis(500);
    })
    .await;
    let token = app.admin().await.access_token;
    let base = 21000 + (u16::from_str_radix(&suffix[..3], 16).unwrap() % 400) * 10;
    let res = app
        .post_as(
            "/v1/products",
            &token,
            json!({
                "slug": product, "name": "Inventory", "driver": "docker", "image": DEMO_IMAGE,
                "internal_port": 8080,
                "shared": {"max_tenants": 10, "cpu_cores": 1, "memory_mib": 256, "storage_gib": 1},
                "dedicated_ports": {"start": base, "end": base + 9},
                "plans": [
                    {"code": "small", "name": "Small", "tier_rank": 1, "price": "5.00", "currency": "USD", "interval": "month", "deployment": "shared", "cpu_cores": 1, "memory_mib": 256, "storage_gib": 1, "backup_schedule": "weekly"},
                    {"code": "big", "name": "Big", "tier_rank": 2, "price": "20.00", "currency": "USD", "interval": "month", "deployment": "dedicated", "cpu_cores": 1, "memory_mib": 256, "storage_gib": 1, "backup_schedule": "daily"},
                    {"code": "ha", "name": "HA", "tier_rank": 3, "price": "50.00", "currency": "USD", "interval": "month", "deployment": "dedicated_ha", "cpu_cores": 2, "memory_mib": 512, "storage_gib": 1, "backup_schedule": "daily"}
                ]
            }),
        )
        .await;
    assert_eq!(res.status(), 201, "{}", res.text().await.unwrap());
    let res = app
        .post_as(
            "/v1/nodes",
            &token,
            json!({"kind": "docker", "name": format!("docker-{suffix}"), "api_url": "unix:///var/run/docker.sock",
                   "capacity": {"cpu_cores": 4, "memory_mib": 8192, "storage_gib": 100, "max_instances": 20}}),
        )
        .await;
    assert_eq!(res.status(), 201);

    let mut ids = Vec::new();
    for (slug, plan) in [
        (format!("s-{suffix}"), "small"),
        (format!("d-{suffix}"), "big"),
    ] {
        let created: Value = app
            .post_as(
                "/v1/tenants",
                &token,
                json!({"company_name": "Co", "slug": slug, "product": product, "plan": plan,
                       "owner_email": format!("o@{slug}.test"), "skip_payment": true}),
            )
            .await
            .json()
            .await
            .unwrap();
        ids.push((slug, created["tenant"]["id"].as_str().unwrap().to_owned()));
    }
    for (_, id) in &ids {
        wait(&app, &format!("/v1/tenants/{id}"), &token, |t| {
            t["status"] == "active"
        })
        .await;
    }
    let (shared_slug, shared_id) = ids[0].clone();
    let (dedicated_slug, dedicated_id) = ids[1].clone();
    let host = |slug: &str| format!("{slug}.tenantry.test");

    // Upstreams are recorded and shown: the engine's host and the published port.
    let deps: Value = app
        .get_as(&format!("/v1/tenants/{shared_id}/deployments"), &token)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(deps[0]["kind"], "shared");
    assert_eq!(deps[0]["upstream_host"], "127.0.0.1");
    let shared_port = deps[0]["upstream_port"].as_i64().unwrap();
    assert!((i64::from(base)..=i64::from(base) + 9).contains(&shared_port));
    assert_eq!(
        deps[0]["host_port"], shared_port,
        "the shared instance publishes its port"
    );

    // Each tenant's URL reaches its own app through Caddy: the shared
    // instance is told the tenant by the header.
    let page = until_served(caddy.http_port, &host(&shared_slug), 200, "mode=shared").await;
    assert!(page.contains(&format!("tenant={shared_slug}")), "{page}");
    assert!(page.contains("plan=small"), "the plan header: {page}");
    let page = until_served(
        caddy.http_port,
        &host(&dedicated_slug),
        200,
        "mode=dedicated",
    )
    .await;
    assert!(page.contains(&format!("tenant={dedicated_slug}")), "{page}");
    let client = reqwest::Client::new();
    let (s, _) = through_proxy(&client, caddy.http_port, "nobody.tenantry.test").await;
    assert_eq!(s, 404, "a host no tenant holds");

    // A paused tenant gets the maintenance page; resumed, its app again.
    let res: Value = app
        .post_as(
            &format!("/v1/tenants/{dedicated_id}/pause"),
            &token,
            json!({}),
        )
        .await
        .json()
        .await
        .unwrap();
    job_done(&app, &token, res).await;
    until_served(caddy.http_port, &host(&dedicated_slug), 503, "paused").await;
    let r = client
        .get(format!("http://127.0.0.1:{}/", caddy.http_port))
        .header("Host", host(&dedicated_slug))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 503);
    assert_eq!(r.headers()["retry-after"], "300");
    let res: Value = app
        .post_as(
            &format!("/v1/tenants/{dedicated_id}/resume"),
            &token,
            json!({}),
        )
        .await
        .json()
        .await
        .unwrap();
    job_done(&app, &token, res).await;
    until_served(
        caddy.http_port,
        &host(&dedicated_slug),
        200,
        "mode=dedicated",
    )
    .await;

    // Up to Dedicated HA: the same container gets the plan's limits live and
    // the restart policy `always`; the image's health check runs.
    let container = app
        .get_as(&format!("/v1/tenants/{dedicated_id}/deployments"), &token)
        .await
        .json::<Value>()
        .await
        .unwrap()[0]["container_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let res = app
        .post_as(
            &format!("/v1/tenants/{dedicated_id}/plan-change"),
            &token,
            json!({"plan": "ha", "immediate": true, "reason": "test"}),
        )
        .await;
    assert!(res.status().is_success(), "{}", res.text().await.unwrap());
    let inspect = |c: &str| -> Value {
        serde_json::from_str(docker(&["inspect", c]).trim())
            .map(|v: Value| v[0].clone())
            .unwrap_or(Value::Null)
    };
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let i = inspect(&container);
        let hc = &i["HostConfig"];
        if hc["RestartPolicy"]["Name"] == "always"
            && hc["NanoCpus"] == 2_000_000_000_i64
            && hc["Memory"] == 512_i64 << 20
        {
            assert!(
                i["Config"]["Healthcheck"]["Test"].is_array(),
                "the image's health check: {}",
                i["Config"]
            );
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "never resized: {hc}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    wait(&app, &format!("/v1/tenants/{dedicated_id}"), &token, |t| {
        t["status"] == "active" && t["plan"] == "ha"
    })
    .await;
    // The route follows the plan: the app is told it in the plan header.
    until_served(caddy.http_port, &host(&dedicated_slug), 200, "plan=ha").await;
    until_served(
        caddy.http_port,
        &host(&dedicated_slug),
        200,
        "mode=dedicated",
    )
    .await;

    // Shared → dedicated while a client polls the URL: at most one failed
    // request during the switch, and every answer is this tenant's.
    let stop = Arc::new(AtomicBool::new(false));
    let failures = Arc::new(AtomicUsize::new(0));
    let served = Arc::new(AtomicUsize::new(0));
    let poller = {
        let (stop, failures, served) = (stop.clone(), failures.clone(), served.clone());
        let (port, h, slug) = (caddy.http_port, host(&shared_slug), shared_slug.clone());
        tokio::spawn(async move {
            let client = reqwest::Client::new();
            let mut bad = Vec::new();
            while !stop.load(Ordering::SeqCst) {
                let (s, body) = through_proxy(&client, port, &h).await;
                if s == 200 && body.contains(&format!("tenant={slug}")) {
                    served.fetch_add(1, Ordering::SeqCst);
                } else {
                    failures.fetch_add(1, Ordering::SeqCst);
                    bad.push(format!(
                        "{s} {}",
                        body.chars().take(120).collect::<String>()
                    ));
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            bad
        })
    };
    let res = app
        .post_as(
            &format!("/v1/tenants/{shared_id}/plan-change"),
            &token,
            json!({"plan": "big", "immediate": true, "reason": "test"}),
        )
        .await;
    assert!(res.status().is_success(), "{}", res.text().await.unwrap());
    wait(
        &app,
        &format!("/v1/tenants/{shared_id}/deployments"),
        &token,
        |v| v[0]["kind"] == "dedicated" && v[0]["status"] == "active",
    )
    .await;
    wait(&app, &format!("/v1/tenants/{shared_id}"), &token, |t| {
        t["status"] == "active"
    })
    .await;
    until_served(caddy.http_port, &host(&shared_slug), 200, "mode=dedicated").await;
    stop.store(true, Ordering::SeqCst);
    let bad = poller.await.unwrap();
    assert!(served.load(Ordering::SeqCst) > 10, "the poller ran");
    assert!(
        failures.load(Ordering::SeqCst) <= 1,
        "at most one failed request during the migration: {bad:?}"
    );

    // Caddy restarted with an empty configuration: the reconcile puts the
    // routes back without Tenantry restarting.
    caddy.kill();
    caddy.spawn().await;
    until_served(
        caddy.http_port,
        &host(&dedicated_slug),
        200,
        "mode=dedicated",
    )
    .await;

    // The Traefik provider serves the same table.
    let t: Value = app
        .get_as("/v1/routing/traefik", &token)
        .await
        .json()
        .await
        .unwrap();
    let router = &t["http"]["routers"][format!("tenant-{dedicated_slug}")];
    assert_eq!(router["rule"], format!("Host(`{}`)", host(&dedicated_slug)));
    // Caddy's on-demand TLS: our tenants' subdomains only.
    let ask = |d: String| {
        let app = &app;
        async move {
            app.client
                .get(format!("{}/v1/routing/tls-allowed?domain={d}", app.address))
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }
    };
    assert_eq!(ask(host(&dedicated_slug)).await, 200);
    assert_eq!(ask("nobody.tenantry.test".into()).await, 404);
    assert_eq!(ask("example.com".into()).await, 404);

    // A deleted tenant has no route.
    let res = app
        .delete_as(&format!("/v1/tenants/{dedicated_id}"), &token)
        .await;
    assert_eq!(res.status(), 202);
    wait(&app, &format!("/v1/tenants/{dedicated_id}"), &token, |t| {
        t["status"] == "deleted"
    })
    .await;
    until_served(caddy.http_port, &host(&dedicated_slug), 404, "No workspace").await;
    assert_eq!(ask(host(&dedicated_slug)).await, 404);
}

/// A loopback net for this test's simulated apps, unlikely to be another
/// running simulator's.
fn app_net() -> u8 {
    2 + (uuid::Uuid::new_v4().as_u128() % 250) as u8
}

#[tokio::test]
async fn proxmox_tenants_answer_through_caddy_at_their_container_address_and_an_app_that_never_answers_fails_the_tenant()
 {
    use pve_sim::{AppSim, Sim, SimConfig};
    let app_port = free_port();
    let net = app_net();
    let template = crate::deployments::ODOO_TEMPLATE;
    let nodes = ["pve1"]
        .into_iter()
        .map(|n| {
            let mut spec = pve_sim::NodeSpec::new(n);
            spec.templates.push(template.into());
            spec
        })
        .collect();
    let sim = Sim::start(SimConfig {
        nodes,
        task_duration: Duration::from_millis(5),
        app: Some(AppSim {
            port: app_port,
            net,
        }),
        ..SimConfig::default()
    })
    .await
    .unwrap();
    let caddy = Caddy::start().await;
    let caddy_settings = caddy.settings();
    let app = spawn_app_with(|s| {
        s.jobs.workers = 2;
        s.routing.caddy = Some(caddy_settings);
        s.routing.reconcile_every = Duration::from_millis(500);
        s.provisioning.upstream_ready_timeout = Duration::from_secs(6);
    })
    .await;
    let token = app.admin().await.access_token;
    let suffix = uuid::Uuid::new_v4().simple().to_string()[..8].to_owned();
    let product = format!("erp-{suffix}");
    let res = app
        .post_as(
            "/v1/products",
            &token,
            json!({
                "slug": product, "name": "ERP", "driver": "proxmox", "lxc_template": template,
                "internal_port": app_port,
                "shared": {"max_tenants": 10, "cpu_cores": 1, "memory_mib": 1024, "storage_gib": 10},
                "dedicated_ports": {"start": 30000, "end": 30099},
                "plans": [
                    {"code": "small", "name": "Small", "tier_rank": 1, "price": "5.00", "currency": "USD", "interval": "month", "deployment": "shared", "cpu_cores": 1, "memory_mib": 256, "storage_gib": 1, "backup_schedule": "none"},
                    {"code": "big", "name": "Big", "tier_rank": 2, "price": "20.00", "currency": "USD", "interval": "month", "deployment": "dedicated", "cpu_cores": 1, "memory_mib": 512, "storage_gib": 5, "backup_schedule": "none"}
                ]
            }),
        )
        .await;
    assert_eq!(res.status(), 201, "{}", res.text().await.unwrap());
    let res = app
        .post_as(
            "/v1/nodes",
            &token,
            json!({"kind": "proxmox", "name": "pve1", "api_url": sim.base_url(),
                   "credentials": {"token_id": sim.token_id(), "token_secret": sim.token_secret()},
                   "capacity": {"cpu_cores": 16, "memory_mib": 65536, "storage_gib": 1024, "max_instances": 50}}),
        )
        .await;
    assert_eq!(res.status(), 201);
    let create = async |slug: &str, plan: &str| -> String {
        let created: Value = app
            .post_as(
                "/v1/tenants",
                &token,
                json!({"company_name": "Co", "slug": slug, "product": product, "plan": plan,
                       "owner_email": format!("o@{slug}.test"), "skip_payment": true}),
            )
            .await
            .json()
            .await
            .unwrap();
        created["tenant"]["id"].as_str().unwrap().to_owned()
    };

    // A dedicated and a shared tenant: each answers at its URL through
    // Caddy, from the app at its container's address read from PVE.
    let dedicated_slug = format!("d-{suffix}");
    let dedicated = create(&dedicated_slug, "big").await;
    wait(&app, &format!("/v1/tenants/{dedicated}"), &token, |t| {
        t["status"] == "active"
    })
    .await;
    let d: Value = app
        .get_as(&format!("/v1/tenants/{dedicated}/deployments"), &token)
        .await
        .json()
        .await
        .unwrap();
    let vmid: u32 = d[0]["container_id"].as_str().unwrap().parse().unwrap();
    let [_, _, hi, lo] = vmid.to_be_bytes();
    assert_eq!(
        d[0]["upstream_host"],
        format!("127.{net}.{hi}.{lo}"),
        "the address PVE reports for the container"
    );
    assert_eq!(
        d[0]["upstream_port"], app_port,
        "the product's internal port"
    );
    let page = until_served(
        caddy.http_port,
        &format!("{dedicated_slug}.tenantry.test"),
        200,
        &format!("ct={vmid}"),
    )
    .await;
    assert!(page.contains(&format!("tenant={dedicated_slug}")), "{page}");
    let shared_slug = format!("s-{suffix}");
    let shared = create(&shared_slug, "small").await;
    wait(&app, &format!("/v1/tenants/{shared}"), &token, |t| {
        t["status"] == "active"
    })
    .await;
    until_served(
        caddy.http_port,
        &format!("{shared_slug}.tenantry.test"),
        200,
        &format!("tenant={shared_slug}"),
    )
    .await;

    // The next container's app never answers: the tenant stays
    // provisioning saying what it waits for, then fails at the deadline.
    let next = sim.containers().iter().map(|c| c.vmid).max().unwrap() + 1;
    sim.faults().set_app_down(next, true);
    let stuck = create(&format!("x-{suffix}"), "big").await;
    let waiting = wait(&app, &format!("/v1/tenants/{stuck}"), &token, |t| {
        t["status_reason"]
            .as_str()
            .is_some_and(|r| r.starts_with("waiting for the app at 127."))
    })
    .await;
    assert_eq!(waiting["status"], "provisioning", "{waiting}");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    let failed = loop {
        let t: Value = app
            .get_as(&format!("/v1/tenants/{stuck}"), &token)
            .await
            .json()
            .await
            .unwrap();
        if t["status"] == "failed" {
            break t;
        }
        assert!(tokio::time::Instant::now() < deadline, "never failed: {t}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let reason = failed["status_reason"].as_str().unwrap();
    assert!(
        reason.contains("did not answer HTTP within 6 s"),
        "{reason}"
    );
}

#[tokio::test]
async fn an_unreachable_caddy_is_retried_raises_an_alert_after_three_failures_and_the_next_push_resolves_it()
 {
    let (admin_port, http_port) = (free_port(), free_port());
    let mut settings = CaddySettings::new(
        format!("http://127.0.0.1:{admin_port}"),
        vec![format!("127.0.0.1:{http_port}")],
    );
    settings.automatic_https = false;
    settings.timeout = Duration::from_secs(2);
    let app = spawn_app_with(|s| {
        s.jobs.workers = 1;
        s.routing.caddy = Some(settings);
        s.routing.reconcile_every = Duration::ZERO;
    })
    .await;
    let token = app.admin().await.access_token;
    // What the routing triggers queue on any change of the table.
    app.sql()
        .await
        .execute(
            "INSERT INTO jobs (id, kind, payload) VALUES (gen_random_uuid(), 'routing.sync', '{}')",
            &[],
        )
        .await
        .unwrap();
    let open = async || -> i64 {
        app.sql()
            .await
            .query_one(
                "SELECT count(*) FROM alerts WHERE kind = 'routing.unreachable' AND resolved_at IS NULL",
                &[],
            )
            .await
            .unwrap()
            .get(0)
    };
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while open().await == 0 {
        assert!(tokio::time::Instant::now() < deadline, "no alert");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // The API keeps answering, and says why the routes are not pushed.
    let view: Value = app
        .get_as("/v1/routing", &token)
        .await
        .json()
        .await
        .unwrap();
    assert!(view["failures"].as_i64().unwrap() >= 3, "{view}");
    assert!(
        view["last_error"]
            .as_str()
            .unwrap()
            .contains("did not answer"),
        "{view}"
    );
    let job = app
        .sql()
        .await
        .query_one(
            "SELECT status, attempts FROM jobs WHERE kind = 'routing.sync' ORDER BY created_at LIMIT 1",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(job.get::<_, String>(0), "queued", "retried with back-off");
    assert!(job.get::<_, i32>(1) >= 3);

    // Caddy comes up: the job's next try pushes, and the alert resolves.
    let caddy = Caddy::start_on(admin_port, http_port).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while open().await > 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "alert never resolved"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (s, _) = through_proxy(&reqwest::Client::new(), caddy.http_port, "x.tenantry.test").await;
    assert_eq!(s, 404, "Caddy runs Tenantry's server");
}
