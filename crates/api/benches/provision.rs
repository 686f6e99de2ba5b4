//! Benchmark (not a test): tenants provisioned per second against pve-sim
//! with zero task delay.
//!
//! One run = the real application (HTTP API + `W` job workers in-process,
//! as `tenantry serve` runs them) on a fresh migrated database, the demo
//! catalog, and an in-process pve-sim cluster of `NODES` nodes whose tasks
//! stop at once (`task_duration = 0`). `N` tenants are created through
//! `POST /v1/tenants` (staff, `skip_payment`), alternating `odoo/basic`
//! (shared: a database on the node's shared instance, created on first need)
//! and `odoo/pro` (dedicated: placement, a host port, a container, a
//! database). The clock runs from the first request until every tenant is
//! `active`; what remains is then checked: one container per dedicated
//! tenant and per shared instance, all owner-tagged, distinct vmids, one
//! live port per dedicated tenant, one database and role per tenant. The
//! tenant databases and roles are dropped afterwards.
//!
//! ```sh
//! bench/provision.sh                  # or: make bench-provision
//! BENCH_TENANTS=1000 BENCH_WORKERS=2,4,8 bench/provision.sh
//! ```
//!
//! Needs `DATABASE_URL` (a role that may create databases and roles), which
//! `bench/provision.sh` provides with a private cluster.
#![expect(
    clippy::print_stdout,
    clippy::print_stderr,
    reason = "a benchmark prints its figures"
)]

use std::time::{Duration, Instant};

use anyhow::{Context as _, bail, ensure};
use serde_json::{Value, json};
use tenantry_api::{Application, config::Settings};
use tokio_postgres::NoTls;

const TEMPLATE: &str = "local:vztmpl/debian-12-odoo_17.0-1_amd64.tar.zst";
/// odoo's shared instance holds 50 tenants and its port range 100 dedicated
/// ones per node: 20 nodes take 1,000 of each.
const NODES: usize = 20;
/// Requests in flight while creating tenants.
const CREATE_CONCURRENCY: usize = 8;

fn env_usize(name: &str, default: usize) -> anyhow::Result<usize> {
    std::env::var(name).ok().map_or(Ok(default), |v| {
        v.parse().with_context(|| format!("{name}={v}"))
    })
}

fn main() -> anyhow::Result<()> {
    // `cargo bench` passes `--bench`; nothing else is taken from argv.
    let tenants = env_usize("BENCH_TENANTS", 1000)?;
    let workers: Vec<usize> = std::env::var("BENCH_WORKERS")
        .unwrap_or_else(|_| "2,4,8".into())
        .split(',')
        .map(|w| w.trim().parse().context("BENCH_WORKERS"))
        .collect::<anyhow::Result<_>>()?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    println!(
        "| workers | tenants (shared + dedicated) | nodes | create requests s | until all active s | tenants/s | containers | databases |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    for w in workers {
        let r = rt.block_on(run(tenants, w))?;
        println!(
            "| {w} | {tenants} ({} + {}) | {NODES} | {:.2} | {:.2} | {:.1} | {} | {} |",
            r.shared,
            r.dedicated,
            r.create.as_secs_f64(),
            r.total.as_secs_f64(),
            f64::from(u32::try_from(tenants)?) / r.total.as_secs_f64(),
            r.containers,
            r.databases,
        );
    }
    Ok(())
}

struct RunResult {
    shared: usize,
    dedicated: usize,
    create: Duration,
    total: Duration,
    containers: usize,
    databases: usize,
}

async fn run(tenants: usize, workers: usize) -> anyhow::Result<RunResult> {
    let db = tenantry_test_db::TestDatabase::new().await;
    let sim = pve_sim::Sim::start(pve_sim::SimConfig {
        nodes: (1..=NODES)
            .map(|i| {
                let mut spec = pve_sim::NodeSpec::new(&format!("pve{i}"));
                spec.templates.push(TEMPLATE.into());
                spec
            })
            .collect(),
        task_duration: Duration::ZERO,
        ..pve_sim::SimConfig::default()
    })
    .await?;

    let mut settings = Settings::for_tests(db.url());
    settings.log = "error".into();
    settings.jobs.workers = workers;
    settings.db_pool_size = u32::try_from(workers)? + 8;
    settings.http_workers = Some(2);
    settings.provisioning.task_poll = Duration::from_millis(1);
    settings.provisioning.backup_dir = std::env::temp_dir().join("tenantry-bench-backups");
    let app = Application::build(&settings)?;
    let base = format!("http://127.0.0.1:{}", app.port());
    let handle = app.handle();
    let server = tokio::spawn(app.run_until_stopped());
    tenantry_api::catalog_file::load(
        &settings,
        std::path::Path::new(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../catalog/demo.toml"
        )),
    )
    .await?;
    // Slugs name the tenant databases, which live on the shared server:
    // unique per run, and dropped by prefix whatever happened.
    let run_id = uuid::Uuid::new_v4().simple().to_string()[..6].to_owned();
    let result = measure(&settings, &sim, &base, &run_id, tenants, workers).await;
    handle.stop(true).await;
    server.await??;
    drop_tenant_databases(db.url(), &format!("t_b{run_id}_")).await?;
    result
}

async fn measure(
    settings: &Settings,
    sim: &pve_sim::Sim,
    base: &str,
    run_id: &str,
    tenants: usize,
    workers: usize,
) -> anyhow::Result<RunResult> {
    let http = reqwest::Client::new();
    let token = admin_token(settings, &http, base).await?;

    for i in 1..=NODES {
        let res = http
            .post(format!("{base}/v1/nodes"))
            .bearer_auth(&token)
            .json(&json!({
                "kind": "proxmox", "name": format!("pve{i}"), "api_url": sim.base_url(),
                "credentials": {"token_id": sim.token_id(), "token_secret": sim.token_secret()},
                "capacity": {"cpu_cores": 256, "memory_mib": 1_048_576, "storage_gib": 16384, "max_instances": 200},
            }))
            .send()
            .await?;
        ensure!(res.status() == 201, "register node: {}", res.text().await?);
    }

    let started = Instant::now();
    let created = futures_util::future::try_join_all((0..CREATE_CONCURRENCY).map(|lane| {
        let (http, token) = (http.clone(), token.clone());
        async move {
            for i in (lane..tenants).step_by(CREATE_CONCURRENCY) {
                let slug = format!("b{run_id}-{i}");
                let plan = if i % 2 == 0 { "basic" } else { "pro" };
                let res = http
                    .post(format!("{base}/v1/tenants"))
                    .bearer_auth(&token)
                    .json(&json!({"company_name": format!("{slug} Ltd"), "slug": slug, "product": "odoo",
                                  "plan": plan, "owner_email": format!("owner@{slug}.test"), "skip_payment": true}))
                    .send()
                    .await?;
                ensure!(res.status() == 202, "create tenant: {}", res.text().await?);
            }
            anyhow::Ok(())
        }
    }));
    created.await?;
    let create = started.elapsed();

    let url = secrecy::ExposeSecret::expose_secret(
        settings.database_url.as_ref().context("database url")?,
    );
    let (sql, connection) = tokio_postgres::connect(url, NoTls).await?;
    tokio::spawn(connection);
    let deadline = Instant::now() + Duration::from_secs(1800);
    loop {
        let row = sql
            .query_one(
                "SELECT count(*) FILTER (WHERE status = 'active'), count(*) FILTER (WHERE status = 'failed') FROM tenants",
                &[],
            )
            .await?;
        let (active, failed): (i64, i64) = (row.get(0), row.get(1));
        if failed > 0 {
            let r = sql
                .query_one(
                    "SELECT slug, status_reason FROM tenants WHERE status = 'failed' LIMIT 1",
                    &[],
                )
                .await?;
            bail!(
                "{failed} tenant(s) failed, e.g. {}: {:?}",
                r.get::<_, String>(0),
                r.get::<_, Option<String>>(1)
            );
        }
        if usize::try_from(active)? == tenants {
            break;
        }
        ensure!(
            Instant::now() < deadline,
            "only {active} of {tenants} active after 30 min"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let total = started.elapsed();

    // What is left behind must be exactly what the tenants need.
    let shared = tenants.div_ceil(2);
    let dedicated = tenants / 2;
    let instances: Vec<(String, Option<String>, String)> = sql
        .query(
            "SELECT i.id::text, i.external_id, i.kind FROM instances i WHERE i.status = 'running'",
            &[],
        )
        .await?
        .into_iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect();
    let dedicated_instances = instances.iter().filter(|i| i.2 == "dedicated").count();
    ensure!(
        dedicated_instances == dedicated,
        "{dedicated_instances} dedicated instances for {dedicated} tenants"
    );
    let containers = sim.containers();
    if containers.len() != instances.len() {
        let all: Vec<(String, String, Option<String>, String)> = sql
            .query("SELECT i.id::text, n.name, i.external_id, i.kind || '/' || i.status FROM instances i JOIN nodes n ON n.id = i.node_id", &[])
            .await?
            .into_iter()
            .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3)))
            .collect();
        for c in &containers {
            let owner = all
                .iter()
                .find(|i| c.tags.contains(&format!("tenantry-{}", i.0)));
            if owner.is_none_or(|o| !o.3.ends_with("running")) {
                eprintln!(
                    "stray? {} {} {:?} {} owner={owner:?}",
                    c.node, c.vmid, c.tags, c.status
                );
            }
        }
        for i in all.iter().filter(|i| !i.3.ends_with("running")) {
            eprintln!("instance not running: {i:?}");
        }
    }
    ensure!(
        containers.len() == instances.len(),
        "{} containers on pve-sim for {} running instances",
        containers.len(),
        instances.len()
    );
    for (id, vmid, _) in &instances {
        let tag = format!("tenantry-{id}");
        let mine: Vec<_> = containers
            .iter()
            .filter(|c| c.tags.contains(&tag))
            .collect();
        ensure!(mine.len() == 1, "instance {id}: {} containers", mine.len());
        ensure!(
            vmid.as_deref() == Some(mine[0].vmid.to_string().as_str()),
            "instance {id}: vmid mismatch"
        );
    }
    // A vmid is unique in the whole cluster, not per node.
    let mut vmids: Vec<u32> = containers.iter().map(|c| c.vmid).collect();
    vmids.sort_unstable();
    vmids.dedup();
    ensure!(vmids.len() == containers.len(), "duplicate vmids");
    let row = sql
        .query_one(
            "SELECT count(*) FILTER (WHERE host_port IS NOT NULL), count(DISTINCT (node_id, host_port)) FILTER (WHERE host_port IS NOT NULL), count(*) \
             FROM deployments WHERE status = 'active'",
            &[],
        )
        .await?;
    let (ports, distinct_ports, live): (i64, i64, i64) = (row.get(0), row.get(1), row.get(2));
    ensure!(
        usize::try_from(ports)? == dedicated && ports == distinct_ports,
        "ports: {ports} ({distinct_ports} distinct)"
    );
    ensure!(
        usize::try_from(live)? == tenants,
        "{live} active deployments"
    );
    let names: Vec<String> = sql
        .query(
            "SELECT database_name FROM deployments WHERE status = 'active'",
            &[],
        )
        .await?
        .into_iter()
        .map(|r| r.get(0))
        .collect();
    let databases: i64 = sql
        .query_one(
            "SELECT count(*) FROM pg_database WHERE datname = ANY($1)",
            &[&names],
        )
        .await?
        .get(0);
    ensure!(
        usize::try_from(databases)? == tenants,
        "{databases} tenant databases"
    );

    eprintln!(
        "workers={workers}: {tenants} active in {:.2} s",
        total.as_secs_f64()
    );
    Ok(RunResult {
        shared,
        dedicated,
        create,
        total,
        containers: containers.len(),
        databases: usize::try_from(databases)?,
    })
}

/// Drops the databases and roles whose names start with `prefix` (`_` taken
/// literally) on `url`'s server.
async fn drop_tenant_databases(url: &str, prefix: &str) -> anyhow::Result<()> {
    let (sql, connection) = tokio_postgres::connect(url, NoTls).await?;
    tokio::spawn(connection);
    let pattern = format!("{}%", prefix.replace('_', "\\_"));
    let names: Vec<String> = sql
        .query(
            "SELECT datname FROM pg_database WHERE datname LIKE $1",
            &[&pattern],
        )
        .await?
        .into_iter()
        .map(|r| r.get(0))
        .collect();
    for name in &names {
        // One statement each: DROP DATABASE cannot run in a transaction block.
        sql.batch_execute(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))
            .await?;
    }
    let roles: Vec<String> = sql
        .query(
            "SELECT rolname FROM pg_roles WHERE rolname LIKE $1",
            &[&pattern],
        )
        .await?
        .into_iter()
        .map(|r| r.get(0))
        .collect();
    for role in &roles {
        sql.batch_execute(&format!("DROP ROLE IF EXISTS \"{role}\""))
            .await?;
    }
    Ok(())
}

/// Creates an admin directly (as `tenantry admin create` does) and signs in.
async fn admin_token(
    settings: &Settings,
    http: &reqwest::Client,
    base: &str,
) -> anyhow::Result<String> {
    let pool = tenantry_store::Pool::new(
        settings.database_url.as_ref().context("database url")?,
        tenantry_store::PoolSettings {
            max_size: 1,
            timeout: Duration::from_secs(5),
        },
    )?;
    let hasher = std::sync::Arc::new(tenantry_api::auth::password::Hasher::new(1024, 1, 1)?);
    let password = "a long enough bench password";
    tenantry_api::auth::service::create_user(
        &pool,
        &hasher,
        "bench@example.test",
        &secrecy::SecretString::from(password.to_owned()),
        tenantry_domain::Role::Admin,
        None,
    )
    .await?;
    let res: Value = http
        .post(format!("{base}/v1/auth/login"))
        .json(&json!({"email": "bench@example.test", "password": password}))
        .send()
        .await?
        .json()
        .await?;
    res["access_token"]
        .as_str()
        .map(str::to_owned)
        .with_context(|| format!("login: {res}"))
}
