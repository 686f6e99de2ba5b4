//! `pve-sim`: a Proxmox VE API simulator for the tests of Tenantry's
//! Proxmox LXC driver and for the local demo.
//!
//! It serves the part of PVE's HTTP API (`/api2/json`) that LXC provisioning
//! uses, with PVE's envelope (`{"data": …}`), error shapes, UPIDs, task
//! life cycle and container locks. Parameters are verified against the
//! embedded PVE API schema (see [`schema`]). Fault injection ([`Faults`])
//! lets tests exercise the failure paths a real cluster produces.
//!
//! Plain HTTP only: a real PVE serves HTTPS on port 8006.
//!
//! ```no_run
//! # async fn demo() -> std::io::Result<()> {
//! let sim = pve_sim::Sim::start(pve_sim::SimConfig::default()).await?;
//! let auth = format!("PVEAPIToken={}={}", sim.token_id(), sim.token_secret());
//! // GET {base_url}/version with `Authorization: {auth}` …
//! # let _ = auth;
//! sim.stop().await;
//! # Ok(()) }
//! ```

mod api;
mod apps;
mod model;
pub mod schema;
mod server;

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

pub use model::{ContainerView, HaResourceView, RequestLog, TaskView};
use model::{DropRule, State};

/// The template every default node offers.
pub const DEBIAN_12_TEMPLATE: &str = "local:vztmpl/debian-12-standard_12.7-1_amd64.tar.zst";

/// The secret of the default API token.
pub const DEFAULT_TOKEN_SECRET: &str = "00000000-0000-0000-0000-000000000000";

/// The id of the default API token (`USER@REALM!TOKENID`).
pub const DEFAULT_TOKEN_ID: &str = "root@pam!tenantry";

/// How a simulated cluster looks.
#[derive(Debug, Clone)]
pub struct SimConfig {
    /// The cluster's nodes; default: `pve1` and `pve2`.
    pub nodes: Vec<NodeSpec>,
    /// API tokens as (token id `USER@REALM!TOKENID`, secret); default one,
    /// [`DEFAULT_TOKEN_ID`] with [`DEFAULT_TOKEN_SECRET`].
    pub tokens: Vec<(String, String)>,
    /// How long each task runs before it stops; default 20 ms.
    pub task_duration: Duration,
    /// The `version` that `GET /version` answers; default `9.1.1`
    /// (`release` is its first two parts).
    pub version: String,
    /// Where the cluster's containers and HA resources are kept (JSON,
    /// rewritten atomically after every change), so a restarted simulator
    /// still has them, as a real cluster would; `None` (the default): in
    /// memory only.
    pub state_file: Option<std::path::PathBuf>,
    /// Simulated applications inside the containers (see [`AppSim`]);
    /// `None` (the default): containers serve nothing.
    pub app: Option<AppSim>,
}

/// Applications that answer HTTP inside the simulated containers, so a
/// reverse proxy in front of them can be tried: each running CT's `net0`
/// gets the loopback address `127.{net}.{vmid / 256}.{vmid % 256}` and an
/// HTTP server there on `port` (a page naming the CT and the tenant the
/// `X-Tenantry-Tenant` header names).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AppSim {
    /// The port the apps listen on (the product's internal port).
    pub port: u16,
    /// The second octet of the loopback addresses (1–254): simulators
    /// running side by side need different ones.
    pub net: u8,
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            nodes: vec![NodeSpec::new("pve1"), NodeSpec::new("pve2")],
            tokens: vec![(DEFAULT_TOKEN_ID.to_owned(), DEFAULT_TOKEN_SECRET.to_owned())],
            task_duration: Duration::from_millis(20),
            version: "9.1.1".to_owned(),
            state_file: None,
            app: None,
        }
    }
}

/// One node of the simulated cluster.
#[derive(Debug, Clone)]
pub struct NodeSpec {
    /// Node name (`pve-node` format).
    pub name: String,
    /// CPU threads.
    pub maxcpu: u32,
    /// Memory, bytes.
    pub maxmem: u64,
    /// Root file system / storage size, bytes.
    pub maxdisk: u64,
    /// The storage new root file systems go to, e.g. `local-lvm` (an
    /// LVM-thin pool; `local` is a directory storage and always exists too).
    pub storage: String,
    /// Container templates as volume ids
    /// (`local:vztmpl/debian-12-standard_12.7-1_amd64.tar.zst`).
    pub templates: Vec<String>,
}

impl NodeSpec {
    /// A node with 16 cores, 64 GiB memory, 1 TiB disk, `local-lvm` and the
    /// Debian 12 template.
    pub fn new(name: &str) -> Self {
        NodeSpec {
            name: name.to_owned(),
            maxcpu: 16,
            maxmem: 64 << 30,
            maxdisk: 1 << 40,
            storage: "local-lvm".to_owned(),
            templates: vec![DEBIAN_12_TEMPLATE.to_owned()],
        }
    }
}

/// The shared state behind a [`Sim`] and its [`Faults`].
pub(crate) type Shared = Arc<Mutex<State>>;

pub(crate) fn lock(shared: &Shared) -> MutexGuard<'_, State> {
    // A panic while holding the lock leaves consistent data (every update is
    // a few assignments), so a poisoned lock is still usable.
    shared
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// A running simulator. Cheap to clone; [`Sim::stop`] stops it.
#[derive(Clone, Debug)]
pub struct Sim {
    shared: Shared,
    addr: SocketAddr,
    handle: actix_web::dev::ServerHandle,
    /// The simulated apps' task, stopped with the last clone.
    apps: Option<Arc<AppsTask>>,
}

/// Aborts the simulated apps when the last [`Sim`] clone goes.
#[derive(Debug)]
struct AppsTask(tokio::task::JoinHandle<()>);

impl Drop for AppsTask {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl Sim {
    /// Starts a simulator on `127.0.0.1` and a free port.
    ///
    /// # Errors
    /// When the listener cannot be bound.
    pub async fn start(cfg: SimConfig) -> std::io::Result<Sim> {
        Sim::start_on(cfg, SocketAddr::from(([127, 0, 0, 1], 0))).await
    }

    /// Starts a simulator on `addr` (port 0 picks a free one).
    ///
    /// # Errors
    /// When the listener cannot be bound, the embedded schema is broken, or
    /// the state file cannot be read.
    pub async fn start_on(cfg: SimConfig, addr: SocketAddr) -> std::io::Result<Sim> {
        schema::schema().map_err(std::io::Error::other)?;
        let app = cfg.app;
        let mut state = State::new(cfg);
        state.load()?;
        let shared: Shared = Arc::new(Mutex::new(state));
        let (addr, handle) = server::serve(shared.clone(), addr)?;
        let apps = app.map(|a| Arc::new(AppsTask(apps::spawn(shared.clone(), a.net, a.port))));
        Ok(Sim {
            shared,
            addr,
            handle,
            apps,
        })
    }

    /// The API base URL, `http://127.0.0.1:PORT/api2/json`.
    pub fn base_url(&self) -> String {
        format!("http://{}/api2/json", self.addr)
    }

    /// The address the simulator listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The first configured token's id (`root@pam!tenantry`).
    pub fn token_id(&self) -> String {
        lock(&self.shared)
            .cfg
            .tokens
            .first()
            .map(|t| t.0.clone())
            .unwrap_or_default()
    }

    /// The first configured token's secret.
    pub fn token_secret(&self) -> String {
        lock(&self.shared)
            .cfg
            .tokens
            .first()
            .map(|t| t.1.clone())
            .unwrap_or_default()
    }

    /// The value of the `Authorization` header for the first token:
    /// `PVEAPIToken=USER@REALM!TOKENID=SECRET`.
    pub fn auth_header(&self) -> String {
        format!("PVEAPIToken={}={}", self.token_id(), self.token_secret())
    }

    /// The fault injection handle.
    pub fn faults(&self) -> Faults {
        Faults {
            shared: self.shared.clone(),
        }
    }

    /// A snapshot of every container on every node, by vmid.
    pub fn containers(&self) -> Vec<ContainerView> {
        lock(&self.shared).container_views()
    }

    /// A snapshot of every HA resource (`GET /cluster/ha/resources`), by
    /// sid.
    pub fn ha_resources(&self) -> Vec<HaResourceView> {
        lock(&self.shared).ha_views()
    }

    /// Every task so far, oldest first.
    pub fn tasks(&self) -> Vec<TaskView> {
        lock(&self.shared)
            .tasks
            .iter()
            .map(model::Task::view)
            .collect()
    }

    /// Every request received so far (including rejected ones), oldest first.
    pub fn requests(&self) -> Vec<RequestLog> {
        lock(&self.shared).requests.clone()
    }

    /// Stops the server (in-flight requests finish; running tasks are dropped).
    pub async fn stop(self) {
        if let Some(apps) = &self.apps {
            apps.0.abort();
        }
        self.handle.stop(true).await;
    }
}

/// Fault injection for tests. Cheap to clone; shared with its [`Sim`].
#[derive(Clone, Debug)]
pub struct Faults {
    shared: Shared,
}

impl Faults {
    /// The next task started on `node` ends `stopped` with this exit status
    /// (e.g. `unable to create CT 105 - no space left`), logged as
    /// `TASK ERROR: …`. A failed create leaves no CT, as PVE removes it.
    pub fn fail_next_task(&self, node: &str, exitstatus: &str) {
        lock(&self.shared)
            .faults
            .fail_next
            .insert(node.to_owned(), exitstatus.to_owned());
    }

    /// How long tasks started from now on run.
    pub fn set_task_duration(&self, d: Duration) {
        lock(&self.shared).faults.task_duration = d;
    }

    /// Calls proxied to `node` (`/nodes/{node}/…`) answer 595 `No route to
    /// host`; `/nodes` and `/cluster/resources` show it `offline`.
    pub fn set_node_unreachable(&self, node: &str, unreachable: bool) {
        let mut st = lock(&self.shared);
        if unreachable {
            st.faults.unreachable.insert(node.to_owned());
        } else {
            st.faults.unreachable.remove(node);
        }
    }

    /// The next `times` mutating calls on `vmid` answer 500 `CT is locked
    /// (backup)`, as while a backup job (vzdump) holds the CT.
    pub fn lock_contention(&self, vmid: u32, times: u32) {
        lock(&self.shared).faults.contention.insert(vmid, times);
    }

    /// The next request with this method whose path ends with `path_suffix`
    /// (e.g. `"POST"`, `"/lxc"`) is acted on, then its connection is closed
    /// without a response, so the client sees a transport error.
    pub fn drop_next_response(&self, method: &str, path_suffix: &str) {
        lock(&self.shared).faults.drops.push(DropRule {
            method: method.to_ascii_uppercase(),
            suffix: path_suffix.to_owned(),
        });
    }

    /// The next request with this method whose path ends with `path_suffix`
    /// waits `delay` before it is acted on, as behind a busy pveproxy:
    /// other clients' calls overtake it meanwhile.
    pub fn delay_next_request(&self, method: &str, path_suffix: &str, delay: Duration) {
        lock(&self.shared).faults.delays.push((
            DropRule {
                method: method.to_ascii_uppercase(),
                suffix: path_suffix.to_owned(),
            },
            delay,
        ));
    }

    /// The next task started on `node` fails as when its config lock could
    /// not be taken: `can't lock file '/run/lock/lxc/pve-config-105.lock' -
    /// got timeout`.
    pub fn timeout_next_task(&self, node: &str) {
        lock(&self.shared)
            .faults
            .timeout_next
            .insert(node.to_owned());
    }

    /// Race: the vmid the next `GET /cluster/nextid` answers is taken right
    /// after by a concurrent create (a stopped CT on the first node), so the
    /// client's create fails with `CT {vmid} already exists on node '…'`.
    pub fn take_next_id(&self) {
        lock(&self.shared).faults.take_next_id = true;
    }

    /// The IPv4 address CT `vmid`'s `net0` shows in
    /// `GET /nodes/{node}/lxc/{vmid}/interfaces` while it runs, as
    /// (address, prefix length), in place of its static `ip=` or the
    /// simulated DHCP lease (`10.0.{vmid / 256 % 256}.{vmid % 256}/16` for
    /// `ip=dhcp`); `None`: no IPv4 address at all, as while DHCP has not
    /// answered. Kept until [`Faults::clear`] or the CT is destroyed.
    pub fn set_ct_address(&self, vmid: u32, address: Option<(Ipv4Addr, u8)>) {
        lock(&self.shared).faults.addresses.insert(vmid, address);
    }

    /// The root disk bytes CT `vmid` uses while it runs, as `disk` in
    /// `GET …/status/current` and `/cluster/resources` (else a tenth of its
    /// disk). Kept until [`Faults::clear`].
    pub fn set_ct_disk_used(&self, vmid: u32, bytes: u64) {
        lock(&self.shared).faults.disk_used.insert(vmid, bytes);
    }

    /// Makes CT `vmid`'s simulated app refuse connections while `down`
    /// (an app that never comes up), with [`AppSim`] configured.
    pub fn set_app_down(&self, vmid: u32, down: bool) {
        let mut st = lock(&self.shared);
        if down {
            st.faults.apps_down.insert(vmid);
        } else {
            st.faults.apps_down.remove(&vmid);
        }
    }

    /// Clears every fault (the task duration goes back to the configured one).
    pub fn clear(&self) {
        let mut st = lock(&self.shared);
        let d = st.cfg.task_duration;
        st.faults = model::FaultState::new(d);
    }
}

/// A config value map as the simulator stores it (the `.conf` file's lines).
pub type ConfigMap = BTreeMap<String, String>;
