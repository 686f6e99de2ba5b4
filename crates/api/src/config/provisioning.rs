//! Provisioning: the domain tenants are served under, the PostgreSQL
//! servers and host of their databases, Docker and Proxmox timings, the
//! compose stack templates, and where final backups go.

use std::time::Duration;

use clap::Args;
use secrecy::SecretString;

/// Flags of provisioning.
#[derive(Clone, Args)]
pub struct ProvisioningArgs {
    /// Tenants are served at `https://{slug}.{TENANTRY_BASE_DOMAIN}`.
    #[arg(
        long,
        env = "TENANTRY_BASE_DOMAIN",
        default_value = "tenantry.localhost",
        global = true
    )]
    #[arg(display_order = 37)]
    pub base_domain: String,

    /// PostgreSQL servers for tenant databases (an admin URL each): `URL` for all products, or `default=URL,odoo=URL2` by product slug. Unset: the control plane's own server (DATABASE_URL).
    #[arg(
        long,
        env = "TENANTRY_TENANT_DATABASE_URLS",
        global = true,
        hide_env_values = true
    )]
    #[arg(display_order = 38)]
    pub tenant_database_urls: Option<String>,

    /// Host name tenant apps reach the tenant database server at (`{{db_host}}`, `DATABASE_HOST`), e.g. the Docker bridge gateway 172.17.0.1; default: the host of its URL.
    #[arg(long, env = "TENANTRY_TENANT_DATABASE_HOST", global = true)]
    #[arg(display_order = 39)]
    pub tenant_database_host: Option<String>,

    /// Seconds a Docker deploy waits for the app to answer HTTP on its port before it fails (and removes the container).
    #[arg(
        long,
        env = "TENANTRY_DOCKER_READY_TIMEOUT_SECS",
        default_value_t = 120,
        global = true
    )]
    #[arg(display_order = 40)]
    pub docker_ready_timeout_secs: u64,

    /// Directory of compose stack templates (`<dir>/<stack>/docker-compose.yml`).
    #[arg(
        long,
        env = "TENANTRY_STACKS_DIR",
        default_value = "./docker/stacks",
        global = true
    )]
    #[arg(display_order = 41)]
    pub stacks_dir: std::path::PathBuf,

    /// Milliseconds between polls of a running Proxmox task's status.
    #[arg(
        long,
        env = "TENANTRY_PROXMOX_TASK_POLL_MS",
        default_value_t = 1000,
        global = true
    )]
    #[arg(display_order = 42)]
    pub proxmox_task_poll_ms: u64,

    /// Directory of final backups (`pg_dump`) taken before a tenant database is dropped.
    #[arg(
        long,
        env = "TENANTRY_BACKUP_DIR",
        default_value = "./var/backups",
        global = true
    )]
    #[arg(display_order = 43)]
    pub backup_dir: std::path::PathBuf,

    /// Seconds a new LXC container's app has to answer HTTP at its address before the tenant is marked `failed` (the tenant says what it waits for meanwhile; 0: do not wait). Docker deploys wait `TENANTRY_DOCKER_READY_TIMEOUT_SECS` in the driver.
    #[arg(
        long,
        env = "TENANTRY_UPSTREAM_READY_TIMEOUT_SECS",
        default_value_t = 300,
        global = true
    )]
    #[arg(display_order = 61)]
    pub upstream_ready_timeout_secs: u64,
}

/// The resolved settings: provisioning's own type.
pub use tenantry_provisioning::ProvisioningSettings;

impl ProvisioningArgs {
    /// The validated settings these flags give.
    pub(super) fn into_settings(self) -> ProvisioningSettings {
        ProvisioningSettings {
            base_domain: self.base_domain.trim_matches('.').to_owned(),
            tenant_database_urls: self
                .tenant_database_urls
                .filter(|u| !u.is_empty())
                .map(SecretString::from),
            backup_dir: self.backup_dir,
            task_poll: Duration::from_millis(self.proxmox_task_poll_ms.max(10)),
            tenant_database_host: self.tenant_database_host.filter(|h| !h.is_empty()),
            stacks_dir: self.stacks_dir,
            docker_ready_timeout: Duration::from_secs(self.docker_ready_timeout_secs.max(1)),
            upstream_ready_timeout: Duration::from_secs(self.upstream_ready_timeout_secs),
        }
    }
}
