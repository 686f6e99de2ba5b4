//! What provisioning needs from configuration: where tenants are served,
//! where their databases live, where backups go, and how long to wait for
//! Proxmox tasks and Docker deploys. The API crate reads these from
//! `TENANTRY_*` variables (`tenantry --help`) and hands them over.

use std::{fmt, path::PathBuf, time::Duration};

use secrecy::{ExposeSecret as _, SecretString};

use crate::deploy::{DatabaseServers, TenantDbServer};

/// Where tenants are served and their databases kept.
#[derive(Clone)]
pub struct ProvisioningSettings {
    /// Tenants answer at `https://{slug}.{base_domain}` (`TENANTRY_BASE_DOMAIN`).
    pub base_domain: String,
    /// `TENANTRY_TENANT_DATABASE_URLS` as given (secret): `URL`, or
    /// `default=URL,odoo=URL2` per product slug.
    pub tenant_database_urls: Option<SecretString>,
    /// Final backups (`pg_dump -Fc`) go here (`TENANTRY_BACKUP_DIR`).
    pub backup_dir: PathBuf,
    /// Proxmox task polling period (`TENANTRY_PROXMOX_TASK_POLL_MS`).
    pub task_poll: Duration,
    /// Host apps reach the tenant database server at
    /// (`TENANTRY_TENANT_DATABASE_HOST`; default: the URL's host).
    pub tenant_database_host: Option<String>,
    /// Compose stack templates: `<stacks_dir>/<stack>/docker-compose.yml`.
    pub stacks_dir: PathBuf,
    /// How long a Docker deploy waits for the app to answer HTTP
    /// (`TENANTRY_DOCKER_READY_TIMEOUT_SECS`).
    pub docker_ready_timeout: Duration,
    /// How long a new LXC container's app has to answer HTTP at its
    /// upstream before the tenant fails (`TENANTRY_UPSTREAM_READY_TIMEOUT_SECS`;
    /// zero: not waited for).
    pub upstream_ready_timeout: Duration,
}

impl fmt::Debug for ProvisioningSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ProvisioningSettings")
            .field("base_domain", &self.base_domain)
            .field(
                "tenant_database_urls",
                &self.tenant_database_urls.as_ref().map(|_| "[REDACTED]"),
            )
            .field("backup_dir", &self.backup_dir)
            .field("task_poll", &self.task_poll)
            .field("tenant_database_host", &self.tenant_database_host)
            .field("stacks_dir", &self.stacks_dir)
            .field("docker_ready_timeout", &self.docker_ready_timeout)
            .field("upstream_ready_timeout", &self.upstream_ready_timeout)
            .finish()
    }
}

impl ProvisioningSettings {
    /// The tenant database servers `TENANTRY_TENANT_DATABASE_URLS` names;
    /// without it, `control_plane` (the control plane's own server) for
    /// every product.
    ///
    /// # Errors
    /// A message naming the entry that is not a `postgres://` URL.
    pub fn database_servers(
        &self,
        control_plane: Option<&SecretString>,
    ) -> Result<DatabaseServers, String> {
        let mut databases = DatabaseServers::default();
        let spec = self
            .tenant_database_urls
            .as_ref()
            .or(control_plane)
            .map(|s| s.expose_secret().to_owned())
            .unwrap_or_default();
        for entry in spec.split(',').map(str::trim).filter(|e| !e.is_empty()) {
            let (product, url) = match entry.split_once('=') {
                Some((k, v)) if !k.contains(':') && !k.contains('/') => (Some(k.trim()), v.trim()),
                _ => (None, entry),
            };
            let name = product.unwrap_or("default");
            if !url.starts_with("postgres://") && !url.starts_with("postgresql://") {
                return Err(format!(
                    "TENANTRY_TENANT_DATABASE_URLS: {name:?} is not a postgres:// URL"
                ));
            }
            let server = TenantDbServer::from_url(
                SecretString::from(url.to_owned()),
                self.tenant_database_host.as_deref(),
            )
            .map_err(|e| format!("TENANTRY_TENANT_DATABASE_URLS ({name}): {e}"))?;
            match product {
                None | Some("default") => databases.default = Some(server),
                Some(slug) => {
                    databases.by_product.insert(slug.to_owned(), server);
                }
            }
        }
        Ok(databases)
    }
}
