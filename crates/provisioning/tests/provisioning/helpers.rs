//! A pve-sim per test and a driver pointed at it, with millisecond polls
//! and back-off so fault tests stay fast.

use std::collections::BTreeMap;
use std::time::Duration;

use pve_sim::{ContainerView, Sim, SimConfig};
use secrecy::SecretString;
use tenantry_domain::catalog::Resources;
use tenantry_provisioning::proxmox::{ProxmoxConfig, ProxmoxDriver, RetryPolicy};
use tenantry_provisioning::{InstanceSpec, OWNER_TAG_PREFIX};
use uuid::Uuid;

pub const NODE: &str = "pve1";

pub struct TestPve {
    pub sim: Sim,
    pub driver: ProxmoxDriver,
}

/// The driver settings the tests use: polls every 10 ms, tasks may take 3 s,
/// 4 tries 5–40 ms apart.
pub fn config(sim: &Sim) -> ProxmoxConfig {
    let mut cfg = ProxmoxConfig::new(
        sim.base_url(),
        NODE,
        sim.token_id(),
        SecretString::from(sim.token_secret()),
    );
    cfg.task_poll_interval = Duration::from_millis(10);
    cfg.task_deadline = Duration::from_secs(3);
    cfg.request_timeout = Duration::from_secs(5);
    cfg.retry = RetryPolicy {
        attempts: 4,
        base_delay: Duration::from_millis(5),
        max_delay: Duration::from_millis(40),
    };
    cfg
}

pub async fn spawn_pve() -> TestPve {
    let sim = Sim::start(SimConfig::default()).await.unwrap();
    let driver = ProxmoxDriver::new(config(&sim)).unwrap();
    TestPve { sim, driver }
}

pub fn spec() -> InstanceSpec {
    InstanceSpec {
        instance_id: Uuid::new_v4(),
        hostname: "acme".into(),
        resources: Resources {
            cpu_cores: 2,
            memory_mib: 1024,
            storage_gib: 8,
        },
        swap_mib: 256,
        artifact: pve_sim::DEBIAN_12_TEMPLATE.into(),
        internal_port: Some(8080),
        host_port: None,
        env: BTreeMap::new(),
        labels: BTreeMap::new(),
        volumes: BTreeMap::new(),
        stack: None,
        high_availability: false,
        health_check: None,
    }
}

pub fn owner_tag(id: Uuid) -> String {
    format!("{OWNER_TAG_PREFIX}{id}")
}

impl TestPve {
    /// The containers carrying `id`'s owner tag.
    pub fn owned_by(&self, id: Uuid) -> Vec<ContainerView> {
        let tag = owner_tag(id);
        self.sim
            .containers()
            .into_iter()
            .filter(|c| c.tags.contains(&tag))
            .collect()
    }

    /// The one container carrying `id`'s owner tag.
    pub fn only_one(&self, id: Uuid) -> ContainerView {
        let mut owned = self.owned_by(id);
        assert_eq!(owned.len(), 1, "containers owned by {id}: {owned:?}");
        owned.remove(0)
    }

    /// How many requests match `method` and end with `suffix`.
    pub fn count(&self, method: &str, suffix: &str) -> usize {
        self.sim
            .requests()
            .iter()
            .filter(|r| r.method == method && r.path.ends_with(suffix))
            .count()
    }

    /// No request the driver sent was refused for its parameters (400) or
    /// hit an endpoint PVE does not have (501).
    pub fn assert_schema_clean(&self) {
        let bad: Vec<_> = self
            .sim
            .requests()
            .into_iter()
            .filter(|r| r.status == 400 || r.status == 501)
            .collect();
        assert!(bad.is_empty(), "requests PVE would refuse: {bad:#?}");
    }
}
