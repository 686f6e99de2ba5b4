//! Putting tenants on nodes: the `provision`, `migrate`, `suspend`,
//! `resume` and `deprovision` jobs.
//!
//! Every job is a sequence of idempotent steps, each of which reads where the
//! previous run got to (rows in `store`, containers found by owner tag,
//! databases by name) instead of remembering it, so a worker killed at any
//! point (kill -9 included) leaves a job that the next worker finishes with
//! exactly one container per tenant, no leaked port and no orphan database.
//!
//! - **provision**: place (a deployment row with its instance and, for a
//!   dedicated plan, its host port, in one transaction) → the tenant's
//!   database → the container → activate (deployment `active`, tenant
//!   `active` with `provisioned_at`, subscription `active`, activity rows).
//!   A permanent failure, or the last attempt's, marks the tenant `failed`.
//! - **migrate** (a plan change crossing shared ↔ dedicated): place the
//!   target → its container → switch (old deployment `retired`, target
//!   `active`: the route) → remove the old instance. The tenant's database is
//!   kept throughout. A failure rolls back to the old deployment, marks the
//!   plan change `failed`, puts the tenant back on its old plan and records a
//!   `migration_failed` event for billing to credit.
//! - **suspend** / **resume** (pause, dunning): stop / start a dedicated
//!   container; disable / enable a shared tenant's database login.
//! - **deprovision**: final `pg_dump` backup, drop the database and role,
//!   destroy a dedicated container, retire the deployment, tenant `deleted`.

mod deprovision;
mod instance;
mod lifecycle;
mod migrate;
mod placement;
mod provision;
mod support;

use std::{collections::HashMap, path::PathBuf, sync::Arc};

use async_trait::async_trait;
use secrecy::{ExposeSecret, SecretString};
use tenantry_store::{
    Pool, StoreError, catalog,
    catalog::{Plan, Product},
    crypto::Keyring,
    nodes::Node,
    tenants::{self, Tenant},
    worker::{Handlers, JobContext, JobError, JobHandler},
};
use uuid::Uuid;

use crate::{Driver, tenant_db::DatabaseServer};

/// Builds the driver of a node (opening its sealed credentials).
pub type DriverFactory = Arc<dyn Fn(&Node) -> Result<Arc<dyn Driver>, String> + Send + Sync>;

/// Job kinds run here.
pub const PROVISION: &str = "provision";
/// Migration between deployments (payload: tenant, plan change, from, to).
pub const MIGRATE: &str = "migrate";
/// Stop a tenant's instance (pause, dunning).
pub const SUSPEND: &str = "suspend";
/// Start it again.
pub const RESUME: &str = "resume";
/// Remove a tenant (final backup first).
pub const DEPROVISION: &str = "deprovision";

/// A tenant database server and where apps reach it.
#[derive(Clone, Debug)]
pub struct TenantDbServer {
    /// The server (its admin connection).
    pub server: Arc<DatabaseServer>,
    /// Host name apps connect to (`{{db_host}}` in a Docker product's env).
    pub host: String,
    /// Port apps connect to (`{{db_port}}`).
    pub port: u16,
}

impl TenantDbServer {
    /// The server at `admin_url` (`postgres://admin:…@host:port/postgres`),
    /// reached by apps at `app_host` when given, else at the URL's host.
    ///
    /// # Errors
    /// When the URL does not parse or names no TCP host.
    pub fn from_url(admin_url: SecretString, app_host: Option<&str>) -> Result<Self, String> {
        use std::str::FromStr as _;
        let cfg = tokio_postgres::Config::from_str(admin_url.expose_secret())
            .map_err(|e| format!("not a PostgreSQL URL: {e}"))?;
        let host = match cfg.get_hosts().first() {
            Some(tokio_postgres::config::Host::Tcp(h)) => h.clone(),
            _ => return Err("the URL names no TCP host".into()),
        };
        let port = cfg.get_ports().first().copied().unwrap_or(5432);
        Ok(Self {
            server: Arc::new(DatabaseServer::new(admin_url)),
            host: app_host.map_or(host, str::to_owned),
            port,
        })
    }
}

/// The tenant database servers: one per product slug, with a default.
#[derive(Clone, Debug, Default)]
pub struct DatabaseServers {
    /// Used for products without their own.
    pub default: Option<TenantDbServer>,
    /// By product slug.
    pub by_product: HashMap<String, TenantDbServer>,
}

impl DatabaseServers {
    fn for_product(&self, slug: &str) -> Result<&TenantDbServer, JobError> {
        self.by_product
            .get(slug)
            .or(self.default.as_ref())
            .ok_or_else(|| {
                JobError::Fail(format!(
                    "no tenant database server is configured for product {slug} (TENANTRY_TENANT_DATABASE_URLS)"
                ))
            })
    }
}

/// What the provisioning jobs need.
#[derive(Clone)]
pub struct Provisioner {
    /// The control plane's database.
    pub pool: Pool,
    /// Seals tenant database passwords.
    pub keyring: Arc<Keyring>,
    /// Builds node drivers.
    pub drivers: DriverFactory,
    /// Tenant database servers.
    pub databases: DatabaseServers,
    /// Tenants are served at `https://{slug}.{base_domain}`.
    pub base_domain: String,
    /// Where final backups (`pg_dump`) go.
    pub backup_dir: PathBuf,
    /// Where compose stack templates live (`<stacks_dir>/<stack>/docker-compose.yml`).
    pub stacks_dir: PathBuf,
}

impl std::fmt::Debug for Provisioner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Provisioner")
            .field("base_domain", &self.base_domain)
            .field("backup_dir", &self.backup_dir)
            .finish_non_exhaustive()
    }
}

/// Registers the provisioning job kinds.
pub fn register(handlers: &mut Handlers, p: Arc<Provisioner>) {
    for kind in [PROVISION, MIGRATE, SUSPEND, RESUME, DEPROVISION] {
        handlers.register(kind, Arc::new(Job { kind, p: p.clone() }));
    }
}

struct Job {
    kind: &'static str,
    p: Arc<Provisioner>,
}

#[async_trait]
impl JobHandler for Job {
    async fn run(&self, ctx: &JobContext) -> Result<(), JobError> {
        let tenant_id = ctx
            .job
            .payload
            .get("tenant_id")
            .and_then(|v| v.as_str())
            .and_then(|s| s.parse::<Uuid>().ok())
            .ok_or_else(|| JobError::Fail("payload has no tenant_id".into()))?;
        let result = match self.kind {
            PROVISION => self.p.provision(ctx, tenant_id).await,
            MIGRATE => self.p.migrate(ctx, tenant_id).await,
            SUSPEND => self.p.set_running(ctx, tenant_id, false).await,
            RESUME => self.p.set_running(ctx, tenant_id, true).await,
            DEPROVISION => self.p.deprovision(ctx, tenant_id).await,
            other => Err(JobError::Fail(format!("unknown job kind {other}"))),
        };
        let Err(e) = result else {
            return Ok(());
        };
        // The end of the line: a permanent error, or a transient one on the
        // last attempt. Leave the tenant in a state an operator can act on.
        let last = matches!(e, JobError::Fail(_)) || ctx.job.attempts >= ctx.job.max_attempts;
        if last {
            let reason = e.to_string();
            let outcome = match self.kind {
                PROVISION => self
                    .p
                    .provisioning_failed(tenant_id, &reason)
                    .await
                    .map_err(JobError::from),
                MIGRATE => self.p.migration_failed(ctx, tenant_id, &reason).await,
                _ => Ok(()),
            };
            if let Err(rollback) = outcome {
                // Not recorded: the job stays retryable so the rollback runs again.
                return Err(JobError::Retry(format!(
                    "{reason}; and the rollback failed: {rollback}"
                )));
            }
        }
        Err(e)
    }
}

impl Provisioner {
    fn url(&self, slug: &str) -> String {
        format!("https://{slug}.{}", self.base_domain)
    }

    async fn load(&self, tenant_id: Uuid) -> Result<(Tenant, Plan, Product), JobError> {
        let mut conn = self.pool.get().await?;
        let tenant = tenants::lock_tenant(&mut conn, tenant_id)
            .await
            .map_err(|e| match e {
                StoreError::NotFound => {
                    JobError::Fail(format!("tenant {tenant_id} does not exist"))
                }
                other => other.into(),
            })?;
        let plan = catalog::find_plan_by_id(&mut conn, tenant.plan_id).await?;
        let product = catalog::find_product_by_id(&mut conn, tenant.product_id).await?;
        Ok((tenant, plan, product))
    }
}
