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
//!   `active` with `provisioned_at`, activity rows; billing starts the
//!   subscription through [`ProvisioningEvents::service_started`]).
//!   A permanent failure, or the last attempt's, marks the tenant `failed`.
//! - **migrate** (a plan change crossing shared ↔ dedicated): place the
//!   target → its container → switch (old deployment `retired`, target
//!   `active`: the route) → remove the old instance. The tenant's database is
//!   kept throughout. A failure rolls back to the old deployment and records
//!   a `migration_failed` event; billing's
//!   [`ProvisioningEvents::migration_failed`] puts the tenant back on its
//!   old plan and fails the plan change, in the same transaction.
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
mod resize;
mod support;

use std::{collections::HashMap, sync::Arc};

use async_trait::async_trait;
use secrecy::{ExposeSecret, SecretString};
use tenantry_store::{
    Pool, StoreError, catalog,
    catalog::{Plan, Product},
    crypto::Keyring,
    events::ProvisioningEvents,
    jobs::kinds::{Deprovision, Migrate, Provision, Resume, Suspend},
    nodes::Node,
    tenants::{self, Tenant},
    worker::{Handlers, JobContext, JobError, JobHandler},
};
use uuid::Uuid;

use crate::{Driver, ProvisioningSettings, tenant_db::DatabaseServer};

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
    /// Seals tenant database passwords and opens nodes' credentials.
    pub keyring: Arc<Keyring>,
    /// Tenant database servers.
    pub databases: DatabaseServers,
    /// Base domain, backup and stack directories, driver options.
    pub settings: Arc<ProvisioningSettings>,
    /// Billing's side of what provisioning does (subscription start,
    /// migration failure), run in provisioning's transactions.
    pub events: Arc<dyn ProvisioningEvents>,
    /// The reverse proxy's route table: a migration pushes it right after
    /// the switch, before the old instance goes.
    pub router: Option<Arc<crate::routing::Router>>,
}

impl std::fmt::Debug for Provisioner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Provisioner")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

impl Provisioner {
    /// Registers the provisioning job kinds.
    pub fn register(self: Arc<Self>, handlers: &mut Handlers) {
        handlers.register::<Provision, _>(self.clone());
        handlers.register::<Migrate, _>(self.clone());
        handlers.register::<Suspend, _>(self.clone());
        handlers.register::<Resume, _>(self.clone());
        handlers.register::<Deprovision, _>(self.clone());
        if let Some(router) = &self.router {
            handlers.register::<tenantry_store::jobs::kinds::RoutingSync, _>(router.clone());
        }
    }

    /// Pushes the route table now (a migration's switch): on failure the
    /// `routing.sync` job the switch queued retries it, and the old
    /// instance keeps serving through the proxy's old route meanwhile only
    /// until it is removed, so the failure is logged, not fatal.
    async fn push_routes(&self) {
        if let Some(router) = &self.router
            && let Err(e) = router.sync().await
        {
            tracing::warn!(error = %e, "routing: push after the switch failed; the routing.sync job retries it");
        }
    }

    /// The driver that talks to `node`.
    fn driver(&self, node: &Node) -> Result<Arc<dyn Driver>, JobError> {
        crate::nodes::driver(&self.keyring, node, &self.settings).map_err(JobError::Fail)
    }

    /// Whether `e` ends the job: a permanent error, or a transient one on
    /// the last attempt. Then the tenant must be left in a state an
    /// operator can act on.
    fn is_last(ctx: &JobContext, e: &JobError) -> bool {
        !e.is_retry() || ctx.job.attempts >= ctx.job.max_attempts
    }

    /// `e` as the job's error, after `rollback` (which leaves the tenant in
    /// a state an operator can act on) when this was the last attempt. A
    /// rollback that fails keeps the job retryable so it runs again.
    async fn ending<F>(ctx: &JobContext, e: JobError, rollback: F) -> Result<(), JobError>
    where
        F: std::future::Future<Output = Result<(), JobError>>,
    {
        if Self::is_last(ctx, &e)
            && let Err(failed) = rollback.await
        {
            return Err(JobError::Retry(format!(
                "{e}; and the rollback failed: {failed}"
            )));
        }
        Err(e)
    }
}

#[async_trait]
impl JobHandler<Provision> for Provisioner {
    async fn run(&self, ctx: &JobContext, job: Provision) -> Result<(), JobError> {
        let Err(e) = self.provision(ctx, job.tenant_id).await else {
            return Ok(());
        };
        let reason = e.to_string();
        Self::ending(ctx, e, async {
            Ok(self.provisioning_failed(job.tenant_id, &reason).await?)
        })
        .await
    }
}

#[async_trait]
impl JobHandler<Migrate> for Provisioner {
    async fn run(&self, ctx: &JobContext, job: Migrate) -> Result<(), JobError> {
        let Err(e) = self.migrate(ctx, job.tenant_id).await else {
            return Ok(());
        };
        let reason = e.to_string();
        Self::ending(ctx, e, self.migration_failed(&job, &reason)).await
    }
}

#[async_trait]
impl JobHandler<Suspend> for Provisioner {
    async fn run(&self, ctx: &JobContext, job: Suspend) -> Result<(), JobError> {
        self.set_running(ctx, job.tenant_id, false).await
    }
}

#[async_trait]
impl JobHandler<Resume> for Provisioner {
    async fn run(&self, ctx: &JobContext, job: Resume) -> Result<(), JobError> {
        self.set_running(ctx, job.tenant_id, true).await
    }
}

#[async_trait]
impl JobHandler<Deprovision> for Provisioner {
    async fn run(&self, ctx: &JobContext, job: Deprovision) -> Result<(), JobError> {
        self.deprovision(ctx, job.tenant_id, job.final_backup).await
    }
}

impl Provisioner {
    fn url(&self, slug: &str) -> String {
        format!("https://{slug}.{}", self.settings.base_domain)
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
