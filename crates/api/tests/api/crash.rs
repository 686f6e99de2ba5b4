//! Crash safety: a `tenantry worker` process killed with SIGKILL right after
//! each step of provisioning and of a migration (`TENANTRY_CRASH_AT`), then
//! replaced; the job completes with exactly one container per tenant, no
//! leaked port, no orphan database and no duplicate vmid.

use std::{
    process::{Child, Command, Stdio},
    time::Duration,
};

use secrecy::ExposeSecret;
use serde_json::{Value, json};

use crate::deployments::{Env, env_with};

fn worker(env: &Env, crash_at: Option<&str>) -> Child {
    let s = &env.app.settings;
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_tenantry"));
    cmd.arg("worker")
        .env_remove("TENANTRY_CRASH_AT")
        .env(
            "DATABASE_URL",
            s.database_url.as_ref().unwrap().expose_secret(),
        )
        .env(
            "TENANTRY_JWT_KEYS",
            s.auth.jwt_keys.as_ref().unwrap().expose_secret(),
        )
        .env(
            "TENANTRY_SECRET_KEYS",
            s.auth.secret_keys.as_ref().unwrap().expose_secret(),
        )
        .env("TENANTRY_WORKERS", "1")
        .env("TENANTRY_JOB_LEASE_SECS", "1")
        .env("TENANTRY_JOB_POLL_SECS", "1")
        .env("TENANTRY_JOB_BACKOFF_SECS", "0")
        .env("TENANTRY_PROXMOX_TASK_POLL_MS", "20")
        .env("TENANTRY_BASE_DOMAIN", "tenantry.test")
        .env("TENANTRY_BACKUP_DIR", &s.provisioning.backup_dir)
        .env("TENANTRY_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    if let Some(at) = crash_at {
        cmd.env("TENANTRY_CRASH_AT", at);
    }
    cmd.spawn().expect("start tenantry worker")
}

/// Runs a worker that must die at `at` (SIGKILL), then one that finishes.
async fn crash_then_recover(env: &Env, at: &str) -> Child {
    let mut crashing = worker(env, Some(at));
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(status) = crashing.try_wait().unwrap() {
            use std::os::unix::process::ExitStatusExt;
            assert_eq!(
                status.signal(),
                Some(9),
                "the worker died of SIGKILL at {at}"
            );
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the worker never reached {at}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    worker(env, None)
}

async fn invariants(env: &Env, tenants: &[&str]) {
    let sql = env.app.sql().await;
    // Exactly one container per live instance, and no container without one.
    let instances: Vec<String> = sql
        .query(
            "SELECT id::text FROM instances WHERE status <> 'destroyed'",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    let containers = env.sim.containers();
    for i in &instances {
        assert_eq!(env.containers_of(i), 1, "instance {i}: {containers:?}");
    }
    assert_eq!(
        containers.len(),
        instances.len(),
        "no stray container: {containers:?}"
    );
    let mut vmids: Vec<u32> = containers.iter().map(|c| c.vmid).collect();
    vmids.sort_unstable();
    vmids.dedup();
    assert_eq!(vmids.len(), containers.len(), "no duplicate vmid");
    // Ports: one per live dedicated deployment, none else.
    let ports: Vec<(i64, i64)> = sql
        .query(
            "SELECT count(*), count(DISTINCT (node_id, host_port)) FROM deployments WHERE host_port IS NOT NULL AND status <> 'retired'",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    let dedicated: i64 = sql
        .query_one(
            "SELECT count(*) FROM deployments WHERE kind = 'dedicated' AND status = 'active'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(ports[0], (dedicated, dedicated), "no leaked port");
    // One database per tenant, no orphan: its name comes from the slug
    // (`t_` + slug with `_` for `-`), so there is exactly one to find.
    for t in tenants {
        let names: Vec<String> = sql
            .query(
                "SELECT DISTINCT database_name FROM deployments WHERE tenant_id = $1::text::uuid",
                &[t],
            )
            .await
            .unwrap()
            .iter()
            .map(|r| r.get(0))
            .collect();
        assert_eq!(names.len(), 1, "one database name for the tenant's life");
        let slug: String = sql
            .query_one("SELECT slug FROM tenants WHERE id = $1::text::uuid", &[t])
            .await
            .unwrap()
            .get(0);
        let dbs: i64 = sql
            .query_one(
                "SELECT count(*) FROM pg_database WHERE datname LIKE 't_' || replace($1, '-', '_') || '%'",
                &[&slug],
            )
            .await
            .unwrap()
            .get(0);
        assert_eq!(dbs, 1, "exactly one database for {slug}");
    }
    for t in tenants {
        let building: i64 = sql
            .query_one("SELECT count(*) FROM deployments WHERE tenant_id = $1::text::uuid AND status = 'provisioning'", &[t])
            .await
            .unwrap()
            .get(0);
        assert_eq!(building, 0);
    }
}

async fn provision_crash(at: &str, plan: &str) {
    let env = env_with(|s| s.jobs.workers = 0).await;
    let id = env.create("acme", plan).await;
    let mut recovering = crash_then_recover(&env, at).await;
    env.wait_status(&id, "active").await;
    crate::helpers::signal(recovering.id(), "TERM");
    recovering.wait().unwrap();
    invariants(&env, &[&id]).await;
    let job: Value = env
        .app
        .get_as(&format!("/v1/jobs?tenant={id}&kind=provision"), &env.token)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(job["items"][0]["status"], "succeeded");
    assert!(
        job["items"][0]["attempts"].as_i64().unwrap() >= 2,
        "run again after the crash"
    );
}

#[tokio::test]
async fn provisioning_survives_a_crash_after_placement() {
    provision_crash("provision:place", "pro").await;
}

#[tokio::test]
async fn provisioning_survives_a_crash_after_the_database() {
    provision_crash("provision:database", "pro").await;
}

#[tokio::test]
async fn provisioning_survives_a_crash_between_the_container_and_its_row() {
    provision_crash("instance:created", "pro").await;
}

#[tokio::test]
async fn provisioning_survives_a_crash_after_the_container() {
    provision_crash("provision:container", "pro").await;
}

#[tokio::test]
async fn shared_provisioning_survives_a_crash_between_the_container_and_its_row() {
    provision_crash("instance:created", "basic").await;
}

async fn migration_crash(at: &str) {
    let env = env_with(|s| s.jobs.workers = 0).await;
    let id = env.create("acme", "basic").await;
    let mut w = worker(&env, None);
    env.wait_status(&id, "active").await;
    crate::helpers::signal(w.id(), "TERM");
    w.wait().unwrap();
    let res = env
        .app
        .post_as(
            &format!("/v1/tenants/{id}/plan-change"),
            &env.token,
            json!({"plan": "pro", "immediate": true, "reason": "test"}),
        )
        .await;
    assert!(res.status().is_success());
    let mut recovering = crash_then_recover(&env, at).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let t = env.tenant(&id).await;
        let d = env.active(&id).await;
        if t["status"] == "active" && d["kind"] == "dedicated" {
            let jobs: Value = env
                .app
                .get_as(&format!("/v1/jobs?tenant={id}&kind=migrate"), &env.token)
                .await
                .json()
                .await
                .unwrap();
            if jobs["items"][0]["status"] == "succeeded" {
                break;
            }
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "never migrated: {t} {d}"
        );
        tokio::time::sleep(Duration::from_millis(30)).await;
    }
    crate::helpers::signal(recovering.id(), "TERM");
    recovering.wait().unwrap();
    invariants(&env, &[&id]).await;
}

#[tokio::test]
async fn a_migration_survives_a_crash_after_preparing() {
    migration_crash("migrate:prepare").await;
}

#[tokio::test]
async fn a_migration_survives_a_crash_after_placing_the_target() {
    migration_crash("migrate:place").await;
}

#[tokio::test]
async fn a_migration_survives_a_crash_between_the_target_container_and_its_row() {
    migration_crash("instance:created").await;
}

#[tokio::test]
async fn a_migration_survives_a_crash_after_the_target_container() {
    migration_crash("migrate:container").await;
}

#[tokio::test]
async fn a_migration_survives_a_crash_after_the_switch() {
    migration_crash("migrate:switch").await;
}
