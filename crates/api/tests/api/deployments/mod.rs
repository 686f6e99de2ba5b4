//! Provisioning II through the API, against pve-sim and a real PostgreSQL
//! for tenant databases: what the topic files (and `crash`) share — an app
//! with one job worker, the demo catalog and pve-sim's two nodes, paid-up
//! tenants, and waits for a tenant's state and for jobs.

mod lifecycle;
mod migrations;
mod placement;
mod resources;

use std::time::Duration;

use pve_sim::{Sim, SimConfig};
use serde_json::{Value, json};

use crate::helpers::{TestApp, spawn_app_with};

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
    /// Changes `id` to `plan` as staff, at once (the migrate job follows);
    /// returns the outcome.
    pub async fn change_plan_now(&self, id: &str, plan: &str) -> Value {
        let res = self
            .app
            .post_as(
                &format!("/v1/tenants/{id}/plan-change"),
                &self.token,
                json!({"plan": plan, "immediate": true, "reason": "test"}),
            )
            .await;
        assert!(res.status().is_success(), "{}", res.text().await.unwrap());
        res.json().await.unwrap()
    }

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
