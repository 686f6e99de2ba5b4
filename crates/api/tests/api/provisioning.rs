//! Nodes against the Proxmox VE simulator: connection checks, the periodic
//! health check, and a job whose worker process is killed mid-task; and a
//! Docker node on this machine's real engine.

use std::{
    process::{Child, Command, Stdio},
    time::Duration,
};

use pve_sim::{Sim, SimConfig};
use secrecy::ExposeSecret;
use serde_json::{Value, json};

use crate::helpers::{TestApp, signal, spawn_app_with, spawn_app_with_catalog};

fn sim_node(sim: &Sim, name: &str) -> Value {
    json!({
        "kind": "proxmox",
        "name": name,
        "api_url": sim.base_url(),
        "credentials": {"token_id": sim.token_id(), "token_secret": sim.token_secret()},
        "capacity": {"cpu_cores": 16, "memory_mib": 65536, "storage_gib": 1024, "max_instances": 50},
    })
}

async fn register(app: &TestApp, token: &str, body: Value) -> String {
    let res = app.post_as("/v1/nodes", token, body).await;
    assert_eq!(res.status(), 201);
    let node: Value = res.json().await.unwrap();
    node["id"].as_str().unwrap().to_owned()
}

async fn open_alerts(app: &TestApp, subject: &str) -> i64 {
    app.sql()
        .await
        .query_one(
            "SELECT count(*) FROM alerts WHERE subject = $1 AND resolved_at IS NULL",
            &[&subject],
        )
        .await
        .unwrap()
        .get(0)
}

#[tokio::test]
async fn a_check_records_the_version_and_moves_the_node_offline_and_back_with_alerts() {
    let sim = Sim::start(SimConfig::default()).await.unwrap();
    let app = crate::helpers::spawn_app().await;
    let admin = app.admin().await;
    let id = register(&app, &admin.access_token, sim_node(&sim, "pve1")).await;
    let token = admin.access_token.clone();
    let check = async |app: &TestApp| {
        let res = app
            .post_as(&format!("/v1/nodes/{id}/check"), &token, json!({}))
            .await;
        assert_eq!(res.status(), 200);
        res.json::<Value>().await.unwrap()
    };
    let ok = check(&app).await;
    assert_eq!(ok["reachable"], true);
    assert_eq!(ok["version"], SimConfig::default().version);
    assert_eq!(ok["status"], "online");

    sim.faults().set_node_unreachable("pve1", true);
    let down = check(&app).await;
    assert_eq!(down["reachable"], false);
    assert_eq!(down["status"], "offline");
    assert!(
        down["error"].as_str().unwrap().contains("unreachable"),
        "{down}"
    );
    let subject = format!("node:{id}");
    assert_eq!(open_alerts(&app, &subject).await, 1);
    // Still down: no second alert.
    check(&app).await;
    assert_eq!(open_alerts(&app, &subject).await, 1);

    sim.faults().set_node_unreachable("pve1", false);
    let up = check(&app).await;
    assert_eq!(up["status"], "online");
    assert_eq!(open_alerts(&app, &subject).await, 0, "resolved");
    let actions: Vec<String> = app
        .sql()
        .await
        .query(
            "SELECT action FROM activity_log WHERE target_id = $1 AND action LIKE 'node.o%' ORDER BY id",
            &[&id],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(actions, ["node.offline", "node.online"]);
}

#[tokio::test]
async fn a_check_with_a_wrong_token_says_so_without_leaking_it() {
    let sim = Sim::start(SimConfig::default()).await.unwrap();
    let app = crate::helpers::spawn_app().await;
    let admin = app.admin().await;
    let mut body = sim_node(&sim, "pve1");
    body["credentials"]["token_secret"] = json!("wrong-secret-value");
    let id = register(&app, &admin.access_token, body).await;
    let res = app
        .post_as(
            &format!("/v1/nodes/{id}/check"),
            &admin.access_token,
            json!({}),
        )
        .await;
    let text = res.text().await.unwrap();
    let found: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(found["reachable"], false);
    assert!(
        found["error"].as_str().unwrap().contains("credentials"),
        "{found}"
    );
    assert!(!text.contains("wrong-secret-value"));
}

#[tokio::test]
async fn the_periodic_health_check_runs_as_jobs_and_marks_an_unreachable_node_offline() {
    let sim = Sim::start(SimConfig::default()).await.unwrap();
    let app = spawn_app_with(|s| {
        s.jobs.workers = 1;
        s.jobs.node_check_interval = Duration::from_millis(200);
    })
    .await;
    let admin = app.admin().await;
    let id = register(&app, &admin.access_token, sim_node(&sim, "pve1")).await;
    sim.faults().set_node_unreachable("pve1", true);
    let node = wait_for(&app, &format!("/v1/nodes/{id}"), &admin.access_token, |n| {
        n["status"] == "offline"
    })
    .await;
    assert!(node["last_error"].as_str().is_some());
    sim.faults().set_node_unreachable("pve1", false);
    let node = wait_for(&app, &format!("/v1/nodes/{id}"), &admin.access_token, |n| {
        n["status"] == "online"
    })
    .await;
    assert_eq!(node["version"], SimConfig::default().version);
    let jobs: Value = app
        .get_as(
            "/v1/jobs?kind=node.check&status=succeeded",
            &admin.access_token,
        )
        .await
        .json()
        .await
        .unwrap();
    assert!(!jobs["items"].as_array().unwrap().is_empty());
}

async fn wait_for(app: &TestApp, path: &str, token: &str, done: impl Fn(&Value) -> bool) -> Value {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let v: Value = app.get_as(path, token).await.json().await.unwrap();
        if done(&v) {
            return v;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{path} never got there: {v}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A `tenantry worker` process on the app's database and keys.
fn worker(app: &TestApp) -> Child {
    let s = &app.settings;
    Command::new(env!("CARGO_BIN_EXE_tenantry"))
        .arg("worker")
        .env_remove("DATABASE_URL")
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
        .env("TENANTRY_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start tenantry worker")
}

#[tokio::test]
async fn a_worker_killed_mid_task_is_replaced_and_the_job_finishes_exactly_once() {
    // The demo catalog's odoo template exists on the node.
    let mut node = pve_sim::NodeSpec::new("pve1");
    node.templates
        .push(crate::deployments::ODOO_TEMPLATE.into());
    let sim = Sim::start(SimConfig {
        nodes: vec![node],
        task_duration: Duration::from_secs(2),
        ..SimConfig::default()
    })
    .await
    .unwrap();
    let app = spawn_app_with_catalog().await;
    let admin = app.admin().await;
    register(&app, &admin.access_token, sim_node(&sim, "pve1")).await;
    // A dedicated tenant: its `provision` job creates a container of its own.
    let res = app
        .post_as(
            "/v1/tenants",
            &admin.access_token,
            json!({"company_name": "Acme Ltd", "slug": "acme", "product": "odoo", "plan": "pro",
                   "owner_email": "owner@acme.test", "skip_payment": true}),
        )
        .await;
    assert_eq!(res.status(), 202);
    let created: Value = res.json().await.unwrap();
    let job_id = created["job"]["id"].as_str().unwrap().to_owned();
    let tenant_id: uuid::Uuid = created["tenant"]["id"].as_str().unwrap().parse().unwrap();
    let mut first = worker(&app);
    // Mid-task: the create task is running on the node.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while !sim
        .tasks()
        .iter()
        .any(|t| t.kind == "vzcreate" && t.status == "running")
    {
        if std::time::Instant::now() >= deadline {
            let job: Value = app
                .get_as(&format!("/v1/jobs/{job_id}"), &admin.access_token)
                .await
                .json()
                .await
                .unwrap();
            panic!("the create task never started; the job: {job}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    signal(first.id(), "KILL");
    first.wait().unwrap();
    let mut second = worker(&app);
    let path = format!("/v1/jobs/{job_id}");
    let done = wait_for(&app, &path, &admin.access_token, |j| {
        j["status"] == "succeeded" || j["status"] == "dead" || j["status"] == "failed"
    })
    .await;
    signal(second.id(), "TERM");
    second.wait().unwrap();
    assert_eq!(done["status"], "succeeded", "{done}");
    assert_eq!(
        done["attempts"], 2,
        "picked up again after the lease expired"
    );
    let instance_id = {
        let mut conn = app.pool().get().await.unwrap();
        tenantry_store::deployments::find(&mut conn, tenant_id, "active")
            .await
            .unwrap()
            .expect("the tenant's deployment")
            .instance_id
            .unwrap()
    };
    let tag = format!("tenantry-{instance_id}");
    let ours: Vec<_> = sim
        .containers()
        .into_iter()
        .filter(|c| c.tags.contains(&tag))
        .collect();
    assert_eq!(ours.len(), 1, "exactly one container");
    assert_eq!(sim.containers().len(), 1);
    assert_eq!(
        sim.tasks().iter().filter(|t| t.kind == "vzcreate").count(),
        1,
        "created once"
    );
    let mut conn = app.pool().get().await.unwrap();
    let instance = tenantry_store::nodes::get_instance(&mut conn, instance_id)
        .await
        .unwrap();
    assert_eq!(instance.status, "running");
    assert_eq!(instance.external_id, Some(ours[0].vmid.to_string()));
}

/// The Docker engine's version, as `docker version` reads it.
fn docker_engine_version() -> String {
    let out = Command::new("docker")
        .args(["version", "--format", "{{.Server.Version}}"])
        .output()
        .expect("docker version");
    assert!(out.status.success(), "{out:?}");
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

#[tokio::test]
async fn a_docker_node_on_the_local_engine_checks_reachable_with_the_engine_version() {
    let app = crate::helpers::spawn_app().await;
    let admin = app.admin().await;
    let id = register(
        &app,
        &admin.access_token,
        json!({
            "kind": "docker",
            "name": "docker-local",
            "api_url": "unix:///var/run/docker.sock",
            "capacity": {"cpu_cores": 2, "memory_mib": 8192, "storage_gib": 100, "max_instances": 20},
        }),
    )
    .await;
    let res = app
        .post_as(
            &format!("/v1/nodes/{id}/check"),
            &admin.access_token,
            json!({}),
        )
        .await;
    assert_eq!(res.status(), 200);
    let found: Value = res.json().await.unwrap();
    assert_eq!(found["reachable"], true, "{found}");
    assert_eq!(found["version"], docker_engine_version());
    assert_eq!(found["status"], "online");
    assert_eq!(found["error"], Value::Null);
}
