//! Provisioning II through the API, against pve-sim and a real PostgreSQL
//! for tenant databases: shared and dedicated deployments, ports, the end of
//! provisioning, failures and retries, pause/resume/delete, and migrations
//! between shared and dedicated.

use std::time::Duration;

use pve_sim::{Sim, SimConfig};
use serde_json::{Value, json};

use crate::helpers::{TestApp, assert_problem, spawn_app_with};

/// `lxc_template` of odoo in catalog/demo.toml.
pub const ODOO_TEMPLATE: &str = "local:vztmpl/debian-12-odoo_17.0-1_amd64.tar.zst";

pub struct Env {
    pub app: TestApp,
    pub sim: Sim,
    pub token: String,
    /// Appended to every slug of this test.
    pub suffix: String,
}

/// An app with one job worker, the demo catalog, and pve-sim's two nodes
/// registered.
pub async fn env() -> Env {
    env_with(|_| {}).await
}

pub async fn env_with(f: impl FnOnce(&mut tenantry_api::config::Settings)) -> Env {
    // The demo catalog's odoo template exists on both nodes.
    let nodes = ["pve1", "pve2"]
        .into_iter()
        .map(|n| {
            let mut spec = pve_sim::NodeSpec::new(n);
            spec.templates.push(ODOO_TEMPLATE.into());
            spec
        })
        .collect();
    let sim = Sim::start(SimConfig {
        nodes,
        task_duration: Duration::from_millis(5),
        ..SimConfig::default()
    })
    .await
    .unwrap();
    let app = spawn_app_with(|s| {
        s.jobs.workers = 2;
        s.provisioning.backup_dir =
            std::env::temp_dir().join(format!("tenantry-backups-{}", uuid::Uuid::new_v4()));
        f(s);
    })
    .await;
    tenantry_api::catalog_file::load(&app.settings, crate::helpers::demo_catalog_path())
        .await
        .unwrap();
    let token = app.admin().await.access_token;
    for node in ["pve1", "pve2"] {
        let res = app
            .post_as(
                "/v1/nodes",
                &token,
                json!({
                    "kind": "proxmox", "name": node, "api_url": sim.base_url(),
                    "credentials": {"token_id": sim.token_id(), "token_secret": sim.token_secret()},
                    "capacity": {"cpu_cores": 16, "memory_mib": 65536, "storage_gib": 1024, "max_instances": 50},
                }),
            )
            .await;
        assert_eq!(res.status(), 201);
    }
    let suffix = uuid::Uuid::new_v4().simple().to_string()[..8].to_owned();
    Env {
        app,
        sim,
        token,
        suffix,
    }
}

impl Env {
    /// The slug this test uses for `base`.
    pub fn slug(&self, base: &str) -> String {
        format!("{base}-{}", self.suffix)
    }

    /// Creates a paid-up tenant (staff, `skip_payment`): provisioning starts.
    /// Tests share one PostgreSQL server for tenant databases, named after
    /// the slug: each slug gets a unique suffix (see [`Env::slug`]).
    pub async fn create(&self, slug: &str, plan: &str) -> String {
        let slug = &self.slug(slug);
        let res = self
            .app
            .post_as(
                "/v1/tenants",
                &self.token,
                json!({"company_name": format!("{slug} Ltd"), "slug": slug, "product": "odoo", "plan": plan,
                       "owner_email": format!("owner@{slug}.test"), "skip_payment": true}),
            )
            .await;
        assert_eq!(res.status(), 202);
        let body: Value = res.json().await.unwrap();
        body["tenant"]["id"].as_str().unwrap().to_owned()
    }

    pub async fn tenant(&self, id: &str) -> Value {
        self.app
            .get_as(&format!("/v1/tenants/{id}"), &self.token)
            .await
            .json()
            .await
            .unwrap()
    }

    pub async fn wait_status(&self, id: &str, status: &str) -> Value {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        loop {
            let t = self.tenant(id).await;
            if t["status"] == status {
                return t;
            }
            assert!(
                t["status"] != "failed",
                "tenant failed instead of becoming {status}: {t}"
            );
            assert!(
                tokio::time::Instant::now() < deadline,
                "tenant never became {status}: {t}"
            );
            tokio::time::sleep(Duration::from_millis(30)).await;
        }
    }

    pub async fn wait_reason(&self, id: &str, prefix: &str) -> Value {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        loop {
            let t = self.tenant(id).await;
            if t["status_reason"]
                .as_str()
                .is_some_and(|r| r.starts_with(prefix))
            {
                return t;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "tenant never said {prefix}: {t}"
            );
            tokio::time::sleep(Duration::from_millis(30)).await;
        }
    }

    pub async fn deployments(&self, id: &str) -> Vec<Value> {
        let v: Value = self
            .app
            .get_as(&format!("/v1/tenants/{id}/deployments"), &self.token)
            .await
            .json()
            .await
            .unwrap();
        v.as_array().unwrap().clone()
    }

    pub async fn active(&self, id: &str) -> Value {
        self.deployments(id)
            .await
            .into_iter()
            .find(|d| d["status"] == "active")
            .expect("an active deployment")
    }

    /// Containers on the simulator carrying `instance`'s owner tag.
    pub fn containers_of(&self, instance: &str) -> usize {
        let tag = format!("tenantry-{instance}");
        self.sim
            .containers()
            .iter()
            .filter(|c| c.tags.contains(&tag))
            .count()
    }

    pub async fn database_exists(&self, name: &str) -> bool {
        let n: i64 = self
            .app
            .sql()
            .await
            .query_one(
                "SELECT count(*) FROM pg_database WHERE datname = $1",
                &[&name],
            )
            .await
            .unwrap()
            .get(0);
        n == 1
    }

    pub async fn role_can_login(&self, name: &str) -> Option<bool> {
        self.app
            .sql()
            .await
            .query_opt(
                "SELECT rolcanlogin FROM pg_roles WHERE rolname = $1",
                &[&name],
            )
            .await
            .unwrap()
            .map(|r| r.get(0))
    }
}

#[tokio::test]
async fn a_dedicated_tenant_gets_its_own_container_port_and_database_and_becomes_active() {
    let env = env().await;
    let id = env.create("acme", "pro").await;
    let t = env.wait_status(&id, "active").await;
    assert!(t["provisioned_at"].is_string());
    let sub: Value = env
        .app
        .get_as(&format!("/v1/tenants/{id}/subscription"), &env.token)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(sub["status"], "active");
    let d = env.active(&id).await;
    assert_eq!(d["kind"], "dedicated");
    assert_eq!(
        d["url"],
        format!("https://{}.tenantry.test", env.slug("acme"))
    );
    let port = d["host_port"].as_i64().unwrap();
    assert!((8200..=8299).contains(&port), "from odoo's range: {port}");
    assert!(["pve1", "pve2"].contains(&d["node"].as_str().unwrap()));
    let instance = d["instance_id"].as_str().unwrap();
    assert_eq!(env.containers_of(instance), 1);
    let vmid = d["container_id"].as_str().unwrap();
    let ct = env
        .sim
        .containers()
        .into_iter()
        .find(|c| c.vmid.to_string() == vmid)
        .unwrap();
    assert_eq!(ct.status, "running");
    assert_eq!(ct.config.get("hostname"), Some(&env.slug("acme")));
    assert_eq!(
        ct.config.get("cores").map(String::as_str),
        Some("2"),
        "the plan's cores"
    );
    let db = d["database"].as_str().unwrap();
    assert!(env.database_exists(db).await);
    assert_eq!(env.role_can_login(db).await, Some(true));
    // The password is sealed at rest.
    let row = env
        .app
        .sql()
        .await
        .query_one(
            "SELECT database_password FROM deployments WHERE tenant_id = $1::text::uuid",
            &[&id],
        )
        .await
        .unwrap();
    let sealed: Vec<u8> = row.get(0);
    assert!(sealed.len() > 12 + 16);
    let actions: Vec<String> = env
        .app
        .sql()
        .await
        .query(
            "SELECT action FROM activity_log WHERE tenant_id = $1::text::uuid ORDER BY id",
            &[&id],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert!(
        actions.contains(&"tenant.provisioned".to_owned()),
        "{actions:?}"
    );
}

#[tokio::test]
async fn shared_tenants_share_one_instance_each_with_its_own_database() {
    let env = env().await;
    let a = env.create("alpha", "basic").await;
    env.wait_status(&a, "active").await;
    let b = env.create("beta", "basic").await;
    env.wait_status(&b, "active").await;
    let (da, db) = (env.active(&a).await, env.active(&b).await);
    assert_eq!(da["kind"], "shared");
    assert!(da["host_port"].is_null());
    assert_eq!(
        da["instance_id"], db["instance_id"],
        "one shared instance, reused"
    );
    assert_eq!(env.sim.containers().len(), 1, "one container for both");
    assert_ne!(da["database"], db["database"]);
    assert!(env.database_exists(da["database"].as_str().unwrap()).await);
    assert!(env.database_exists(db["database"].as_str().unwrap()).await);
}

/// Found by the provisioning bench: tenants placed on a shared instance
/// that is still being built each asked the driver to create it, and the
/// driver's find-by-owner-tag, nextid, create is not atomic. Here the first
/// job's `GET /cluster/nextid` is answered late: the second job finds no
/// container, takes vmid X and creates it; the first then gets X+1 and
/// (without a lock on the instance) creates a second container with the
/// same owner tag.
#[tokio::test]
async fn tenants_placed_together_on_a_new_shared_instance_get_one_container() {
    let env = env_with(|s| s.jobs.workers = 4).await;
    env.sim
        .faults()
        .delay_next_request("GET", "/cluster/nextid", Duration::from_secs(1));
    let mut ids = Vec::new();
    for i in 0..2 {
        ids.push(env.create(&format!("together{i}"), "basic").await);
    }
    let mut instances = std::collections::HashSet::new();
    for id in &ids {
        env.wait_status(id, "active").await;
        instances.insert(
            env.active(id).await["instance_id"]
                .as_str()
                .unwrap()
                .to_owned(),
        );
    }
    assert_eq!(instances.len(), 1, "one shared instance: {instances:?}");
    let instance = instances.into_iter().next().unwrap();
    assert_eq!(
        env.containers_of(&instance),
        1,
        "{:?}",
        env.sim.containers()
    );
    assert_eq!(env.sim.containers().len(), 1);
}

/// Found by the provisioning bench: placement put a new shared instance on
/// the least loaded node even when that node already ran a (full) shared
/// instance of the product, which the one-per-node index refuses, so the
/// tenant failed with `placement-conflict` although another node had room.
#[tokio::test]
async fn a_new_shared_instance_goes_to_a_node_without_one_even_when_that_node_is_fuller() {
    let env = env().await;
    let sql = env.app.sql().await;
    sql.execute(
        "UPDATE products SET shared_max_tenants = 1 WHERE slug = 'odoo'",
        &[],
    )
    .await
    .unwrap();
    let a = env.create("first", "basic").await;
    env.wait_status(&a, "active").await;
    let da = env.active(&a).await;
    // The node with the (now full) shared instance becomes by far the emptiest.
    sql.execute(
        "UPDATE nodes SET cpu_cores = 1024, memory_mib = 4194304, storage_gib = 65536, max_instances = 1000 \
         WHERE name = $1",
        &[&da["node"].as_str().unwrap()],
    )
    .await
    .unwrap();
    let b = env.create("second", "basic").await;
    env.wait_status(&b, "active").await;
    let db = env.active(&b).await;
    assert_ne!(db["instance_id"], da["instance_id"], "the first is full");
    assert_ne!(db["node"], da["node"], "one shared odoo instance per node");
    assert_eq!(env.sim.containers().len(), 2);
    // Every node has a full one now: the third waits, and says why.
    let c = env.create("third", "basic").await;
    let t = env.wait_reason(&c, "no-capacity").await;
    assert_eq!(t["status"], "provisioning");
    let reason = t["status_reason"].as_str().unwrap();
    assert!(
        reason.contains("the 2 nodes with a shared odoo instance are left out"),
        "{reason}"
    );
}

#[tokio::test]
async fn dedicated_tenants_land_on_the_least_loaded_node_with_distinct_ports() {
    let env = env().await;
    let a = env.create("one", "pro").await;
    env.wait_status(&a, "active").await;
    let b = env.create("two", "pro").await;
    env.wait_status(&b, "active").await;
    let (da, db) = (env.active(&a).await, env.active(&b).await);
    assert_ne!(
        da["node"], db["node"],
        "the second goes to the emptier node"
    );
    let c = env.create("three", "pro").await;
    env.wait_status(&c, "active").await;
    let dc = env.active(&c).await;
    let ports: Vec<i64> = [&da, &db, &dc]
        .iter()
        .map(|d| d["host_port"].as_i64().unwrap())
        .collect();
    let same_node: Vec<&Value> = [&da, &db]
        .into_iter()
        .filter(|d| d["node"] == dc["node"])
        .collect();
    assert_eq!(same_node.len(), 1);
    assert_ne!(
        same_node[0]["host_port"], dc["host_port"],
        "ports are unique per node: {ports:?}"
    );
}

#[tokio::test]
async fn without_a_free_port_the_job_waits_and_the_tenant_says_no_free_port_with_the_range() {
    let env = env().await;
    // Narrow odoo's range to one port per node.
    env.app
        .sql()
        .await
        .execute("UPDATE products SET dedicated_port_start = 8200, dedicated_port_end = 8200 WHERE slug = 'odoo'", &[])
        .await
        .unwrap();
    let a = env.create("one", "pro").await;
    env.wait_status(&a, "active").await;
    let b = env.create("two", "pro").await;
    env.wait_status(&b, "active").await;
    let c = env.create("three", "pro").await;
    let t = env.wait_reason(&c, "no-free-port").await;
    assert_eq!(t["status"], "provisioning");
    let reason = t["status_reason"].as_str().unwrap();
    assert!(reason.contains("8200–8200"), "{reason}");
    // Deleting a tenant frees its port; the waiting job takes it.
    let res = env
        .app
        .request(
            reqwest::Method::DELETE,
            &format!("/v1/tenants/{a}"),
            &env.token,
        )
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 202);
    env.wait_status(&a, "deleted").await;
    env.wait_status(&c, "active").await;
    assert_eq!(env.active(&c).await["host_port"], 8200);
}

#[tokio::test]
async fn a_failed_provisioning_marks_the_tenant_failed_and_a_retry_finishes_it_with_one_container()
{
    let env = env().await;
    env.sim
        .faults()
        .fail_next_task("pve1", "unable to create CT - no space left on device");
    env.sim
        .faults()
        .fail_next_task("pve2", "unable to create CT - no space left on device");
    let id = env.create("acme", "pro").await;
    let t = env.wait_status(&id, "failed").await;
    assert!(
        t["status_reason"]
            .as_str()
            .unwrap()
            .contains("no space left"),
        "{t}"
    );
    env.sim.faults().clear();
    let res = env
        .app
        .post_as(
            &format!("/v1/tenants/{id}/retry-provisioning"),
            &env.token,
            json!({}),
        )
        .await;
    assert_eq!(res.status(), 202);
    env.wait_status(&id, "active").await;
    let d = env.active(&id).await;
    assert_eq!(env.containers_of(d["instance_id"].as_str().unwrap()), 1);
    assert_eq!(
        env.sim.containers().len(),
        1,
        "the failed create left nothing"
    );
    assert_eq!(
        env.deployments(&id).await.len(),
        1,
        "the same deployment, finished"
    );
    // Retrying an active tenant is refused.
    let res = env
        .app
        .post_as(
            &format!("/v1/tenants/{id}/retry-provisioning"),
            &env.token,
            json!({}),
        )
        .await;
    assert_problem(res, 409).await;
}

#[tokio::test]
async fn pause_resume_and_delete_act_on_a_dedicated_container() {
    let env = env().await;
    let id = env.create("acme", "pro").await;
    env.wait_status(&id, "active").await;
    let d = env.active(&id).await;
    let vmid = d["container_id"].as_str().unwrap().to_owned();
    let status = |env: &Env| {
        env.sim
            .containers()
            .into_iter()
            .find(|c| c.vmid.to_string() == vmid)
            .map(|c| c.status)
    };
    let pause = env
        .app
        .post_as(&format!("/v1/tenants/{id}/pause"), &env.token, json!({}))
        .await;
    assert_eq!(pause.status(), 202);
    let job: Value = pause.json().await.unwrap();
    wait_job(&env, job["job"]["id"].as_str().unwrap()).await;
    assert_eq!(status(&env).as_deref(), Some("stopped"));
    let resume = env
        .app
        .post_as(&format!("/v1/tenants/{id}/resume"), &env.token, json!({}))
        .await;
    assert_eq!(resume.status(), 202);
    let job: Value = resume.json().await.unwrap();
    wait_job(&env, job["job"]["id"].as_str().unwrap()).await;
    assert_eq!(status(&env).as_deref(), Some("running"));

    let db = d["database"].as_str().unwrap().to_owned();
    let res = env
        .app
        .request(
            reqwest::Method::DELETE,
            &format!("/v1/tenants/{id}"),
            &env.token,
        )
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 202);
    env.wait_status(&id, "deleted").await;
    assert_eq!(status(&env), None, "container destroyed");
    assert!(!env.database_exists(&db).await, "database dropped");
    assert_eq!(env.role_can_login(&db).await, None, "role dropped");
    let backups: Vec<_> = std::fs::read_dir(&env.app.settings.provisioning.backup_dir)
        .unwrap()
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().starts_with(&db))
        .collect();
    assert_eq!(backups.len(), 1, "a final backup before the drop");
    assert!(backups[0].metadata().unwrap().len() > 0);
    let n: i64 = env
        .app
        .sql()
        .await
        .query_one("SELECT count(*) FROM instances", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(n, 0, "no instance row left");
}

#[tokio::test]
async fn pausing_a_shared_tenant_disables_its_database_login() {
    let env = env().await;
    let id = env.create("alpha", "basic").await;
    env.wait_status(&id, "active").await;
    let db = env.active(&id).await["database"]
        .as_str()
        .unwrap()
        .to_owned();
    let pause: Value = env
        .app
        .post_as(&format!("/v1/tenants/{id}/pause"), &env.token, json!({}))
        .await
        .json()
        .await
        .unwrap();
    wait_job(&env, pause["job"]["id"].as_str().unwrap()).await;
    assert_eq!(env.role_can_login(&db).await, Some(false));
    assert_eq!(
        env.sim.containers()[0].status,
        "running",
        "the shared instance keeps serving others"
    );
    let resume: Value = env
        .app
        .post_as(&format!("/v1/tenants/{id}/resume"), &env.token, json!({}))
        .await
        .json()
        .await
        .unwrap();
    wait_job(&env, resume["job"]["id"].as_str().unwrap()).await;
    assert_eq!(env.role_can_login(&db).await, Some(true));
}

pub async fn wait_job(env: &Env, id: &str) -> Value {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let j: Value = env
            .app
            .get_as(&format!("/v1/jobs/{id}"), &env.token)
            .await
            .json()
            .await
            .unwrap();
        if ["succeeded", "failed", "dead"].contains(&j["status"].as_str().unwrap()) {
            assert_eq!(j["status"], "succeeded", "{j}");
            return j;
        }
        assert!(tokio::time::Instant::now() < deadline, "job stuck: {j}");
        tokio::time::sleep(Duration::from_millis(30)).await;
    }
}

/// Upgrades `id` to `plan` as staff, at once (the migrate job follows).
async fn change_plan_now(env: &Env, id: &str, plan: &str) -> Value {
    let res = env
        .app
        .post_as(
            &format!("/v1/tenants/{id}/plan-change"),
            &env.token,
            json!({"plan": plan, "immediate": true, "reason": "test"}),
        )
        .await;
    assert!(res.status().is_success(), "{}", res.text().await.unwrap());
    res.json().await.unwrap()
}

#[tokio::test]
async fn shared_to_dedicated_and_back_migrates_keeping_the_database_and_leaving_nothing_behind() {
    let env = env().await;
    let other = env.create("neighbour", "basic").await;
    env.wait_status(&other, "active").await;
    let id = env.create("acme", "basic").await;
    env.wait_status(&id, "active").await;
    let shared = env.active(&id).await;
    let db = shared["database"].as_str().unwrap().to_owned();

    change_plan_now(&env, &id, "pro").await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    let dedicated = loop {
        let d = env.active(&id).await;
        if d["kind"] == "dedicated" && env.tenant(&id).await["status"] == "active" {
            break d;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "never migrated: {d}"
        );
        tokio::time::sleep(Duration::from_millis(30)).await;
    };
    assert_eq!(dedicated["database"], db.as_str(), "the database is kept");
    assert!(env.database_exists(&db).await);
    assert!(dedicated["host_port"].is_i64());
    let history = env.deployments(&id).await;
    assert_eq!(history.len(), 2);
    assert_eq!(history[1]["status"], "retired");
    assert_eq!(
        env.sim.containers().len(),
        2,
        "the shared instance (still serving its neighbour) and the new one"
    );

    change_plan_now(&env, &id, "basic").await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let d = env.active(&id).await;
        if d["kind"] == "shared" && env.tenant(&id).await["status"] == "active" {
            assert_eq!(
                d["instance_id"], shared["instance_id"],
                "back on the shared instance"
            );
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "never migrated back: {d}"
        );
        tokio::time::sleep(Duration::from_millis(30)).await;
    }
    assert_eq!(
        env.sim.containers().len(),
        1,
        "the dedicated container is gone"
    );
    let live_ports: i64 = env
        .app
        .sql()
        .await
        .query_one(
            "SELECT count(*) FROM deployments WHERE host_port IS NOT NULL AND status <> 'retired'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(live_ports, 0, "the port is free again");
    assert!(env.database_exists(&db).await);
}

#[tokio::test]
async fn a_failed_migration_rolls_back_fails_the_plan_change_and_records_a_credit_event() {
    let env = env().await;
    let id = env.create("acme", "basic").await;
    env.wait_status(&id, "active").await;
    let before = env.active(&id).await;
    env.sim.faults().fail_next_task(
        "pve1",
        "unable to create CT - storage 'local-lvm' does not exist",
    );
    env.sim.faults().fail_next_task(
        "pve2",
        "unable to create CT - storage 'local-lvm' does not exist",
    );
    let change = change_plan_now(&env, &id, "pro").await;
    let change_id = change["plan_change"]["id"].as_str().unwrap().to_owned();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let events: i64 = env
            .app
            .sql()
            .await
            .query_one("SELECT count(*) FROM provisioning_events WHERE kind = 'migration_failed' AND plan_change_id = $1::text::uuid", &[&change_id])
            .await
            .unwrap()
            .get(0);
        if events == 1 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no migration_failed event"
        );
        tokio::time::sleep(Duration::from_millis(30)).await;
    }
    let t = env.tenant(&id).await;
    assert_eq!(t["status"], "active");
    assert_eq!(t["plan"], "basic", "back on the old plan");
    assert_eq!(
        env.active(&id).await["id"],
        before["id"],
        "the old deployment still serves"
    );
    let history: Value = env
        .app
        .get_as(&format!("/v1/tenants/{id}/plan-changes"), &env.token)
        .await
        .json()
        .await
        .unwrap();
    let c = history["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["id"] == change_id.as_str())
        .unwrap();
    assert_eq!(c["status"], "failed");
    assert_eq!(env.sim.containers().len(), 1, "only the shared instance");
    let ports: i64 = env
        .app
        .sql()
        .await
        .query_one(
            "SELECT count(*) FROM deployments WHERE host_port IS NOT NULL AND status <> 'retired'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(ports, 0, "no leaked port");
}
