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

mod api;
mod process;
mod stripe;

use std::{
    path::{Path, PathBuf},
    time::Duration,
};

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

pub use process::Proc;
pub use tenantry_test_db::free_port;

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

impl Drop for World {
    fn drop(&mut self) {
        // Stop the server before the database goes.
        self.server.take();
        let _ = std::fs::remove_dir_all(&self.backups);
    }
}
