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

use std::{
    collections::{HashMap, HashSet},
    path::PathBuf,
    sync::Arc,
};

use async_trait::async_trait;
use secrecy::{ExposeSecret, SecretString};
use serde_json::json;
use tenantry_domain::{
    DriverKind, NodeCapacity, NodeStatus, TenantSlug,
    catalog::Resources,
    placement::{Allocation, NodeLoad, place},
};
use tenantry_store::{
    AsyncConnection as _, AsyncPgConnection, Pool, StoreError,
    activity::{self, Activity},
    billing as store_billing, catalog,
    catalog::{Plan, Product},
    crypto::{Keyring, Sealed},
    deployments::{self, Deployment, NewDeployment},
    nodes::{self, Instance, Node, Reservation},
    tenants::{self, Tenant},
    worker::{Handlers, JobContext, JobError, JobHandler},
};
use uuid::Uuid;

use crate::{
    Driver, DriverError, InstanceRef, InstanceSpec,
    tenant_db::{DatabaseServer, TenantDbName, generate_password},
};

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

/// Crash-safety testing: in debug builds, when `TENANTRY_CRASH_AT` names
/// `<job>:<step>` (e.g. `provision:container`), the process kills itself with
/// SIGKILL right after that step, as a crash would. Inert in release builds.
fn crash_point(job: &str, step: &str) {
    if cfg!(debug_assertions)
        && std::env::var("TENANTRY_CRASH_AT").is_ok_and(|v| v == format!("{job}:{step}"))
    {
        tracing::warn!(job, step, "TENANTRY_CRASH_AT: killing this process");
        let _ = std::process::Command::new("kill")
            .args(["-KILL", &std::process::id().to_string()])
            .status();
    }
}

fn driver_error(e: DriverError) -> JobError {
    if e.is_transient() {
        JobError::Retry(e.to_string())
    } else {
        JobError::Fail(e.to_string())
    }
}

fn system(
    action: &str,
    tenant: Uuid,
    before: serde_json::Value,
    after: serde_json::Value,
) -> Activity {
    Activity {
        id: Uuid::now_v7(),
        occurred_at: chrono::Utc::now(),
        actor_id: None,
        actor_token_id: None,
        actor_label: "provisioner".into(),
        tenant_id: Some(tenant),
        action: action.into(),
        target_type: Some("tenant".into()),
        target_id: Some(tenant.to_string()),
        before: Some(before),
        after: Some(after),
        client_ip: None,
        user_agent: None,
        request_id: None,
    }
}

/// Whether a plan's deployment runs in its own container.
fn is_dedicated(deployment: &str) -> bool {
    deployment != "shared"
}

/// What placement could not do; the job waits (retries) on it.
fn waiting(code: &str, detail: String) -> JobError {
    JobError::Retry(format!("{code}: {detail}"))
}

const PLACEMENT_LOCK: i64 = 0x7465_6e61_6e74_7279; // "tenantry"
/// Advisory-lock class of creating an instance's container ("inst").
const INSTANCE_LOCK_CLASS: i32 = 0x696e_7374;

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

    // ---------------------------------------------------------------- provision

    async fn provision(&self, ctx: &JobContext, tenant_id: Uuid) -> Result<(), JobError> {
        let (tenant, plan, product) = self.load(tenant_id).await?;
        if tenant.status == "active" {
            return Ok(());
        }
        if tenant.status != "provisioning" {
            return Err(JobError::Fail(format!(
                "tenant {} is {}, not provisioning",
                tenant.slug, tenant.status
            )));
        }
        ctx.set_step("place").await?;
        let target = self.place(&tenant, &plan, &product, None).await?;
        crash_point(PROVISION, "place");
        ctx.set_step("database").await?;
        self.ensure_database(&product, &target).await?;
        crash_point(PROVISION, "database");
        ctx.set_step("container").await?;
        self.ensure_container(&tenant, &product, &target).await?;
        crash_point(PROVISION, "container");
        ctx.set_step("activate").await?;
        let mut conn = self.pool.get().await?;
        conn.transaction::<_, StoreError, _>(async |conn| {
            let current = tenants::lock_tenant(conn, tenant_id).await?;
            if current.status != "provisioning" {
                return Ok(());
            }
            if let Some(building) = deployments::find(conn, tenant_id, "provisioning").await? {
                deployments::set_status(conn, building.id, "active").await?;
            }
            tenants::mark_provisioned(conn, tenant_id).await?;
            activity::record(
                conn,
                &system(
                    "tenant.provisioned",
                    tenant_id,
                    json!({"status": "provisioning"}),
                    json!({"status": "active", "url": target.url, "deployment": target.kind, "host_port": target.host_port, "node_id": target.node_id}),
                ),
            )
            .await
        })
        .await?;
        Ok(())
    }

    async fn provisioning_failed(&self, tenant_id: Uuid, reason: &str) -> Result<(), StoreError> {
        let mut conn = self.pool.get().await?;
        conn.transaction::<_, StoreError, _>(async |conn| {
            let t = tenants::lock_tenant(conn, tenant_id).await?;
            if t.status != "provisioning" {
                return Ok(());
            }
            tenants::set_status(conn, tenant_id, "failed", Some(reason)).await?;
            activity::record(
                conn,
                &system(
                    "tenant.provisioning_failed",
                    tenant_id,
                    json!({"status": "provisioning"}),
                    json!({"status": "failed", "reason": reason}),
                ),
            )
            .await
        })
        .await
    }

    /// The tenant's deployment being built, or a new one: a node chosen by
    /// placement, an instance (the product's shared instance there, created
    /// on first need, or a dedicated one) and, for a dedicated plan, a host
    /// port, all in one transaction serialised with every other placement.
    /// `database_of` reuses an existing deployment's database (migration).
    async fn place(
        &self,
        tenant: &Tenant,
        plan: &Plan,
        product: &Product,
        database_of: Option<&Deployment>,
    ) -> Result<Deployment, JobError> {
        let mut conn = self.pool.get().await?;
        if let Some(d) = deployments::find(&mut conn, tenant.id, "provisioning").await? {
            return Ok(d);
        }
        let dedicated = is_dedicated(&plan.deployment);
        let placed = conn
            .transaction::<_, PlaceError, _>(async |conn| {
                diesel_lock(conn).await?;
                let (instance, port) = if dedicated {
                    self.place_dedicated(conn, tenant, plan, product).await?
                } else {
                    (self.place_shared(conn, product).await?, None)
                };
                let id = Uuid::now_v7();
                let slug =
                    TenantSlug::parse(&tenant.slug).map_err(|e| PlaceError::Fail(e.to_string()))?;
                let db = TenantDbName::from_slug(&slug);
                let (password, key_id) = match database_of {
                    Some(d) => (
                        d.database_password.clone(),
                        d.database_password_key_id.clone(),
                    ),
                    None => {
                        let sealed = self.keyring.seal(
                            generate_password().expose_secret().as_bytes(),
                            tenant.id.as_bytes(),
                        );
                        (sealed.blob, sealed.key_id)
                    }
                };
                let d = deployments::insert(
                    conn,
                    &NewDeployment {
                        id,
                        tenant_id: tenant.id,
                        instance_id: Some(instance.id),
                        node_id: Some(instance.node_id),
                        kind: if dedicated { "dedicated" } else { "shared" }.into(),
                        host_port: port,
                        database_name: db.as_str().to_owned(),
                        database_role: db.as_str().to_owned(),
                        database_password: password,
                        database_password_key_id: key_id,
                        url: self.url(&tenant.slug),
                    },
                )
                .await?;
                tenants::set_status_reason(conn, tenant.id, None).await?;
                Ok(d)
            })
            .await;
        match placed {
            Ok(d) => Ok(d),
            Err(PlaceError::Wait { code, detail }) => {
                // Say why on the tenant, for the API; the job retries.
                let reason = format!("{code}: {detail}");
                tenants::set_status_reason(&mut conn, tenant.id, Some(&reason)).await?;
                Err(waiting(code, detail))
            }
            Err(PlaceError::Fail(m)) => Err(JobError::Fail(m)),
            Err(PlaceError::Store(e)) => Err(e.into()),
        }
    }

    async fn candidates(
        &self,
        conn: &mut AsyncPgConnection,
        product: &Product,
    ) -> Result<Vec<NodeLoad<Uuid>>, StoreError> {
        let usage = deployments::node_usage(conn, &product.driver).await?;
        let driver: DriverKind = product.driver.parse().unwrap_or(DriverKind::Proxmox);
        Ok(usage
            .into_iter()
            .map(|u| NodeLoad {
                id: u.node.id,
                driver,
                status: u.node.status.parse().unwrap_or(NodeStatus::Offline),
                capacity: NodeCapacity {
                    cpu_cores: u32::try_from(u.node.cpu_cores).unwrap_or(0),
                    memory_mib: u64::try_from(u.node.memory_mib).unwrap_or(0),
                    storage_gib: u64::try_from(u.node.storage_gib).unwrap_or(0),
                    max_instances: u32::try_from(u.node.max_instances).unwrap_or(0),
                },
                allocated: Allocation {
                    cpu_cores: u64::try_from(u.cpu_cores).unwrap_or(0),
                    memory_mib: u64::try_from(u.memory_mib).unwrap_or(0),
                    storage_gib: u64::try_from(u.storage_gib).unwrap_or(0),
                    instances: u32::try_from(u.instances).unwrap_or(0),
                },
            })
            .collect())
    }

    /// The node placement picks for `need`, among the product's driver's
    /// nodes but those in `exclude`.
    async fn choose(
        &self,
        conn: &mut AsyncPgConnection,
        product: &Product,
        need: &Resources,
        exclude: &HashSet<Uuid>,
    ) -> Result<Uuid, PlaceError> {
        let mut loads = self.candidates(conn, product).await?;
        loads.retain(|l| !exclude.contains(&l.id));
        let driver: DriverKind = product.driver.parse().unwrap_or(DriverKind::Proxmox);
        place(&loads, driver, need)
            .map(|n| n.id)
            .map_err(|e| PlaceError::Wait {
                code: "no-capacity",
                detail: e.to_string(),
            })
    }

    async fn place_dedicated(
        &self,
        conn: &mut AsyncPgConnection,
        tenant: &Tenant,
        plan: &Plan,
        product: &Product,
    ) -> Result<(Instance, Option<i32>), PlaceError> {
        let (Some(start), Some(end)) = (product.dedicated_port_start, product.dedicated_port_end)
        else {
            return Err(PlaceError::Fail(format!(
                "product {} has no dedicated port range",
                product.slug
            )));
        };
        let need = Resources {
            cpu_cores: u32::try_from(plan.cpu_cores).unwrap_or(1),
            memory_mib: u32::try_from(plan.memory_mib).unwrap_or(128),
            storage_gib: u32::try_from(plan.storage_gib).unwrap_or(1),
        };
        let node_id = self.choose(conn, product, &need, &HashSet::new()).await?;
        let node = nodes::lock(conn, node_id).await?;
        let port = deployments::free_port(conn, node_id, start, end)
            .await?
            .ok_or_else(|| PlaceError::Wait {
                code: "no-free-port",
                detail: format!(
                    "every port of {}'s range {start}–{end} is taken on node {}",
                    product.slug, node.name
                ),
            })?;
        let instance = nodes::insert_instance(
            conn,
            Uuid::now_v7(),
            node_id,
            product.id,
            "dedicated",
            &Reservation {
                cpu_cores: plan.cpu_cores,
                memory_mib: plan.memory_mib,
                storage_gib: plan.storage_gib,
                hostname: tenant.slug.clone(),
            },
        )
        .await?;
        Ok((instance, Some(port)))
    }

    async fn place_shared(
        &self,
        conn: &mut AsyncPgConnection,
        product: &Product,
    ) -> Result<Instance, PlaceError> {
        let (Some(max), Some(cpu), Some(mem), Some(disk)) = (
            product.shared_max_tenants,
            product.shared_cpu_cores,
            product.shared_memory_mib,
            product.shared_storage_gib,
        ) else {
            return Err(PlaceError::Fail(format!(
                "product {} has no shared instance settings",
                product.slug
            )));
        };
        // An existing shared instance with room, on a node that takes
        // placements: the one serving the fewest tenants.
        let shared = deployments::shared_instances(conn, product.id).await?;
        // A node holds at most one live shared instance of a product
        // (instances_one_shared_per_product_node): a new one goes elsewhere.
        let hosting: HashSet<Uuid> = shared.iter().map(|s| s.instance.node_id).collect();
        let mut best: Option<(i64, Instance)> = None;
        for s in shared {
            if s.tenants >= i64::from(max) {
                continue;
            }
            let node = nodes::get(conn, s.instance.node_id).await?;
            let status: NodeStatus = node.status.parse().unwrap_or(NodeStatus::Offline);
            if !status.accepts_placements() {
                continue;
            }
            if best.as_ref().is_none_or(|(n, _)| s.tenants < *n) {
                best = Some((s.tenants, s.instance));
            }
        }
        if let Some((_, instance)) = best {
            return Ok(instance);
        }
        // None: a new shared instance where placement puts it.
        let need = Resources {
            cpu_cores: u32::try_from(cpu).unwrap_or(1),
            memory_mib: u32::try_from(mem).unwrap_or(128),
            storage_gib: u32::try_from(disk).unwrap_or(1),
        };
        let node_id = self
            .choose(conn, product, &need, &hosting)
            .await
            .map_err(|e| match e {
                PlaceError::Wait { code, detail } if !hosting.is_empty() => PlaceError::Wait {
                    code,
                    detail: format!(
                        "{detail} (the {} nodes with a shared {} instance are left out: each is full or not taking placements)",
                        hosting.len(),
                        product.slug
                    ),
                },
                other => other,
            })?;
        let node = nodes::lock(conn, node_id).await?;
        Ok(nodes::insert_instance(
            conn,
            Uuid::now_v7(),
            node_id,
            product.id,
            "shared",
            &Reservation {
                cpu_cores: cpu,
                memory_mib: mem,
                storage_gib: disk,
                hostname: format!("{}-shared-{}", product.slug, node.name),
            },
        )
        .await?)
    }

    fn password(&self, tenant_id: Uuid, d: &Deployment) -> Result<SecretString, JobError> {
        let plain = self
            .keyring
            .open(
                &Sealed {
                    key_id: d.database_password_key_id.clone(),
                    blob: d.database_password.clone(),
                },
                tenant_id.as_bytes(),
            )
            .map_err(|e| {
                JobError::Fail(format!("cannot open the tenant database password: {e}"))
            })?;
        let s = String::from_utf8(plain.expose_secret().clone())
            .map_err(|_| JobError::Fail("the tenant database password is not UTF-8".into()))?;
        Ok(SecretString::from(s))
    }

    async fn ensure_database(&self, product: &Product, d: &Deployment) -> Result<(), JobError> {
        let server = &self.databases.for_product(&product.slug)?.server;
        let name =
            TenantDbName::parse(&d.database_name).map_err(|e| JobError::Fail(e.to_string()))?;
        let password = self.password(d.tenant_id, d)?;
        server
            .ensure_database(&name, &password)
            .await
            .map_err(db_error)
    }

    /// The deployment's instance, created on its node if it is not there yet
    /// (found by owner tag if an earlier run created it).
    async fn ensure_container(
        &self,
        tenant: &Tenant,
        product: &Product,
        d: &Deployment,
    ) -> Result<InstanceRef, JobError> {
        let instance_id = d
            .instance_id
            .ok_or_else(|| JobError::Fail("deployment has no instance".into()))?;
        // Jobs of several tenants build a new shared instance at once (each
        // placed on it before it runs): the driver's find-by-owner-tag then
        // create is not atomic, so the first creates and the others wait,
        // then find it running.
        let lock = self
            .pool
            .session_lock(INSTANCE_LOCK_CLASS, instance_id)
            .await?;
        let created = self
            .ensure_container_locked(tenant, product, d, instance_id)
            .await;
        lock.release().await;
        created
    }

    async fn ensure_container_locked(
        &self,
        tenant: &Tenant,
        product: &Product,
        d: &Deployment,
        instance_id: Uuid,
    ) -> Result<InstanceRef, JobError> {
        let (instance, node) = {
            let mut conn = self.pool.get().await?;
            let instance = nodes::get_instance(&mut conn, instance_id).await?;
            let node = nodes::get(&mut conn, instance.node_id).await?;
            (instance, node)
        };
        let driver = (self.drivers)(&node).map_err(JobError::Fail)?;
        if let Some(external_id) = &instance.external_id
            && instance.status == "running"
        {
            return Ok(InstanceRef {
                instance_id,
                external_id: external_id.clone(),
            });
        }
        let spec = self.instance_spec(tenant, product, d, &instance)?;
        let created = driver.create_instance(&spec).await.map_err(driver_error)?;
        crash_point("instance", "created");
        let mut conn = self.pool.get().await?;
        nodes::mark_instance_created(&mut conn, instance_id, &created.external_id).await?;
        Ok(created)
    }

    /// What to create for `instance`: the product's artifact, the instance's
    /// reservation, the deployment's host port; for a dedicated instance,
    /// the tenant's environment (the product's `env` templates rendered with
    /// the tenant's database and URL, plus `TENANT_SLUG`, `PUBLIC_URL`,
    /// `DATABASE_*`) and labels; a shared instance gets only the templates
    /// that name no tenant value.
    fn instance_spec(
        &self,
        tenant: &Tenant,
        product: &Product,
        d: &Deployment,
        instance: &Instance,
    ) -> Result<InstanceSpec, JobError> {
        use crate::docker::{LABEL_PRODUCT, LABEL_TENANT, TemplateVars, render_env};
        let mut env = std::collections::BTreeMap::new();
        let mut labels = std::collections::BTreeMap::new();
        labels.insert(LABEL_PRODUCT.to_owned(), product.slug.clone());
        let templates = product.env_map();
        if instance.kind == "dedicated" {
            let password = self.password(tenant.id, d)?;
            let db = self.databases.for_product(&product.slug)?;
            env.insert("TENANT_SLUG".to_owned(), tenant.slug.clone());
            env.insert("PUBLIC_URL".to_owned(), d.url.clone());
            env.insert("DATABASE_HOST".to_owned(), db.host.clone());
            env.insert("DATABASE_PORT".to_owned(), db.port.to_string());
            env.insert("DATABASE_NAME".to_owned(), d.database_name.clone());
            env.insert("DATABASE_USER".to_owned(), d.database_role.clone());
            env.insert(
                "DATABASE_PASSWORD".to_owned(),
                password.expose_secret().to_owned(),
            );
            let vars = TemplateVars {
                tenant_slug: tenant.slug.clone(),
                db_name: d.database_name.clone(),
                db_user: d.database_role.clone(),
                db_password: password,
                db_host: db.host.clone(),
                db_port: db.port,
                public_url: d.url.clone(),
            };
            env.extend(render_env(&templates, &vars).map_err(driver_error)?);
            labels.insert(LABEL_TENANT.to_owned(), tenant.slug.clone());
        } else {
            env.extend(templates.into_iter().filter(|(_, v)| !v.contains("{{")));
            labels.insert(LABEL_TENANT.to_owned(), "shared".to_owned());
        }
        let stack = product.compose_stack.as_ref().map(|name| crate::StackSpec {
            dir: self.stacks_dir.join(name),
            service: product
                .stack_service
                .clone()
                .unwrap_or_else(|| "app".to_owned()),
        });
        Ok(InstanceSpec {
            instance_id: instance.id,
            hostname: instance
                .hostname
                .clone()
                .unwrap_or_else(|| tenant.slug.clone()),
            resources: Resources {
                cpu_cores: u32::try_from(instance.cpu_cores).unwrap_or(1).max(1),
                memory_mib: u32::try_from(instance.memory_mib).unwrap_or(512).max(16),
                storage_gib: u32::try_from(instance.storage_gib).unwrap_or(1).max(1),
            },
            swap_mib: 512,
            artifact: product
                .lxc_template
                .clone()
                .or_else(|| product.image.clone())
                .or_else(|| product.compose_stack.clone())
                .unwrap_or_default(),
            internal_port: u16::try_from(product.internal_port).ok(),
            host_port: d.host_port.and_then(|p| u16::try_from(p).ok()),
            env,
            labels,
            volumes: product.volume_map(),
            stack,
        })
    }

    /// Destroys a retired deployment's instance when nothing live uses it
    /// any more (a dedicated instance after a migration or deprovision), and
    /// deletes its row.
    async fn remove_unused_instance(&self, instance_id: Uuid, purge: bool) -> Result<(), JobError> {
        let mut conn = self.pool.get().await?;
        let Ok(instance) = nodes::get_instance(&mut conn, instance_id).await else {
            return Ok(());
        };
        if instance.kind != "dedicated" || deployments::live_on(&mut conn, instance_id).await? > 0 {
            return Ok(());
        }
        if instance.status == "destroyed" && !purge {
            return Ok(());
        }
        if instance.status != "destroyed" {
            deployments::set_instance_status(&mut conn, instance_id, "destroying").await?;
        }
        let node = nodes::get(&mut conn, instance.node_id).await?;
        drop(conn);
        let driver = (self.drivers)(&node).map_err(JobError::Fail)?;
        let target = match &instance.external_id {
            Some(e) => Some(InstanceRef {
                instance_id,
                external_id: e.clone(),
            }),
            None => driver
                .find_instance(instance_id)
                .await
                .map_err(driver_error)?,
        };
        let mut conn = self.pool.get().await?;
        if purge {
            // The tenant is gone (or the instance never served): its data goes too.
            if let Some(t) = target {
                driver.purge_data(&t).await.map_err(driver_error)?;
            }
            deployments::delete_instance(&mut conn, instance_id).await?;
        } else {
            // The tenant moved: the container goes, its data (Docker volumes)
            // stays until the tenant is deleted.
            if let Some(t) = target {
                driver.destroy(&t).await.map_err(driver_error)?;
            }
            deployments::set_instance_status(&mut conn, instance_id, "destroyed").await?;
        }
        Ok(())
    }

    // ---------------------------------------------------------------- migrate

    async fn migrate(&self, ctx: &JobContext, tenant_id: Uuid) -> Result<(), JobError> {
        let (tenant, plan, product) = self.load(tenant_id).await?;
        let target_kind = if is_dedicated(&plan.deployment) {
            "dedicated"
        } else {
            "shared"
        };
        let mut conn = self.pool.get().await?;
        let active = deployments::find(&mut conn, tenant_id, "active").await?;
        let building = deployments::find(&mut conn, tenant_id, "provisioning").await?;
        drop(conn);
        let Some(old) = active else {
            return Err(JobError::Fail(format!(
                "tenant {} has no active deployment to migrate",
                tenant.slug
            )));
        };
        if old.kind == target_kind && building.is_none() {
            // Already switched (a re-run after the switch): finish the clean-up.
            ctx.set_step("remove old").await?;
            self.cleanup_retired(tenant_id, false).await?;
            return self.finish_migration(tenant_id, &old).await;
        }
        ctx.set_step("prepare").await?;
        {
            let mut conn = self.pool.get().await?;
            conn.transaction::<_, StoreError, _>(async |conn| {
                let t = tenants::lock_tenant(conn, tenant_id).await?;
                if t.status == "active" {
                    tenants::set_status(conn, tenant_id, "migrating", None).await?;
                    activity::record(
                        conn,
                        &system(
                            "tenant.migrating",
                            tenant_id,
                            json!({"deployment": old.kind}),
                            json!({"deployment": target_kind}),
                        ),
                    )
                    .await?;
                }
                Ok(())
            })
            .await?;
        }
        crash_point(MIGRATE, "prepare");
        ctx.set_step("place").await?;
        let target = self.place(&tenant, &plan, &product, Some(&old)).await?;
        crash_point(MIGRATE, "place");
        ctx.set_step("container").await?;
        self.ensure_container(&tenant, &product, &target).await?;
        crash_point(MIGRATE, "container");
        ctx.set_step("switch").await?;
        {
            let mut conn = self.pool.get().await?;
            conn.transaction::<_, StoreError, _>(async |conn| {
                tenants::lock_tenant(conn, tenant_id).await?;
                if let Some(b) = deployments::find(conn, tenant_id, "provisioning").await? {
                    if let Some(a) = deployments::find(conn, tenant_id, "active").await? {
                        deployments::set_status(conn, a.id, "retired").await?;
                    }
                    deployments::set_status(conn, b.id, "active").await?;
                }
                Ok(())
            })
            .await?;
        }
        crash_point(MIGRATE, "switch");
        ctx.set_step("remove old").await?;
        self.cleanup_retired(tenant_id, false).await?;
        crash_point(MIGRATE, "remove old");
        self.finish_migration(tenant_id, &target).await
    }

    /// Removes the instances of the tenant's retired deployments that nothing
    /// live uses; `purge` also removes their data (tenant deletion).
    async fn cleanup_retired(&self, tenant_id: Uuid, purge: bool) -> Result<(), JobError> {
        let history = {
            let mut conn = self.pool.get().await?;
            deployments::history(&mut conn, tenant_id).await?
        };
        for d in history.iter().filter(|d| d.status == "retired") {
            if let Some(i) = d.instance_id {
                self.remove_unused_instance(i, purge).await?;
            }
        }
        Ok(())
    }

    async fn finish_migration(&self, tenant_id: Uuid, now_on: &Deployment) -> Result<(), JobError> {
        let mut conn = self.pool.get().await?;
        conn.transaction::<_, StoreError, _>(async |conn| {
            let t = tenants::lock_tenant(conn, tenant_id).await?;
            if t.status == "migrating" {
                tenants::set_status(conn, tenant_id, "active", None).await?;
                activity::record(
                    conn,
                    &system(
                        "tenant.migrated",
                        tenant_id,
                        json!({"status": "migrating"}),
                        json!({"status": "active", "deployment": now_on.kind, "host_port": now_on.host_port, "node_id": now_on.node_id}),
                    ),
                )
                .await?;
            }
            Ok(())
        })
        .await?;
        Ok(())
    }

    /// Rolls a failed migration back: the target is removed, the old
    /// deployment stays (or becomes again) the route, the tenant goes back to
    /// its old plan, the plan change is `failed`, and billing gets a
    /// `migration_failed` event to credit the customer.
    async fn migration_failed(
        &self,
        ctx: &JobContext,
        tenant_id: Uuid,
        reason: &str,
    ) -> Result<(), JobError> {
        let change_id = ctx
            .job
            .payload
            .get("plan_change_id")
            .and_then(|v| v.as_str())
            .and_then(|s| s.parse::<Uuid>().ok());
        let mut conn = self.pool.get().await?;
        let building = deployments::find(&mut conn, tenant_id, "provisioning").await?;
        drop(conn);
        if let Some(b) = &building {
            // Retire first so the instance counts as unused, then remove it.
            let mut conn = self.pool.get().await?;
            deployments::set_status(&mut conn, b.id, "retired").await?;
            drop(conn);
            if let Some(i) = b.instance_id {
                self.remove_unused_instance(i, true).await?;
            }
        }
        let mut conn = self.pool.get().await?;
        conn.transaction::<_, StoreError, _>(async |conn| {
            let t = tenants::lock_tenant(conn, tenant_id).await?;
            if let Some(id) = change_id {
                let change = store_billing::lock_change(conn, id).await?;
                if change.status != "failed" {
                    tenants::set_plan(
                        conn,
                        tenant_id,
                        change.from_plan_id,
                        &change.from_deployment,
                    )
                    .await?;
                    store_billing::set_change_status(
                        conn,
                        id,
                        "failed",
                        chrono::Utc::now(),
                        change.payment_reference.as_deref(),
                    )
                    .await?;
                }
            }
            deployments::record_migration_failed(
                conn,
                tenant_id,
                change_id,
                json!({"reason": reason}),
            )
            .await?;
            if t.status == "migrating" {
                tenants::set_status(
                    conn,
                    tenant_id,
                    "active",
                    Some(&format!("migration failed: {reason}")),
                )
                .await?;
            }
            activity::record(
                conn,
                &system(
                    "tenant.migration_failed",
                    tenant_id,
                    json!({"status": t.status}),
                    json!({"status": "active", "reason": reason, "plan_change_id": change_id}),
                ),
            )
            .await
        })
        .await?;
        Ok(())
    }

    // ------------------------------------------------------ suspend, resume

    async fn set_running(
        &self,
        ctx: &JobContext,
        tenant_id: Uuid,
        running: bool,
    ) -> Result<(), JobError> {
        let (tenant, _, product) = self.load(tenant_id).await?;
        let mut conn = self.pool.get().await?;
        let Some(d) = deployments::find(&mut conn, tenant_id, "active").await? else {
            return Ok(()); // never provisioned: nothing runs
        };
        drop(conn);
        ctx.set_step(if running { "start" } else { "stop" }).await?;
        if d.kind == "dedicated" {
            let instance_id = d
                .instance_id
                .ok_or_else(|| JobError::Fail("deployment has no instance".into()))?;
            let mut conn = self.pool.get().await?;
            let instance = nodes::get_instance(&mut conn, instance_id).await?;
            let node = nodes::get(&mut conn, instance.node_id).await?;
            drop(conn);
            let driver = (self.drivers)(&node).map_err(JobError::Fail)?;
            let r = InstanceRef {
                instance_id,
                external_id: instance.external_id.clone().unwrap_or_default(),
            };
            if running {
                driver.start(&r).await.map_err(driver_error)?;
            } else {
                driver.stop(&r).await.map_err(driver_error)?;
            }
            let mut conn = self.pool.get().await?;
            deployments::set_instance_status(
                &mut conn,
                instance_id,
                if running { "running" } else { "stopped" },
            )
            .await?;
        } else {
            let server = &self.databases.for_product(&product.slug)?.server;
            let name =
                TenantDbName::parse(&d.database_name).map_err(|e| JobError::Fail(e.to_string()))?;
            server.set_login(&name, running).await.map_err(db_error)?;
        }
        let mut conn = self.pool.get().await?;
        activity::record(
            &mut conn,
            &system(
                if running {
                    "instance.started"
                } else {
                    "instance.stopped"
                },
                tenant_id,
                json!({"tenant": tenant.slug}),
                json!({"deployment": d.kind, "running": running}),
            ),
        )
        .await?;
        Ok(())
    }

    // ---------------------------------------------------------- deprovision

    async fn deprovision(&self, ctx: &JobContext, tenant_id: Uuid) -> Result<(), JobError> {
        let (tenant, _, product) = self.load(tenant_id).await?;
        if tenant.status == "deleted" {
            return Ok(());
        }
        let final_backup = ctx
            .job
            .payload
            .get("final_backup")
            .and_then(serde_json::Value::as_bool)
            .unwrap_or(true);
        let history = {
            let mut conn = self.pool.get().await?;
            deployments::history(&mut conn, tenant_id).await?
        };
        let live: Vec<&Deployment> = history.iter().filter(|d| d.status != "retired").collect();
        if let Some(d) = live.first() {
            let server = &self.databases.for_product(&product.slug)?.server;
            let name =
                TenantDbName::parse(&d.database_name).map_err(|e| JobError::Fail(e.to_string()))?;
            if final_backup && server.exists(&name).await.map_err(db_error)? {
                ctx.set_step("backup").await?;
                let path = server
                    .backup(&name, &self.backup_dir)
                    .await
                    .map_err(db_error)?;
                let mut conn = self.pool.get().await?;
                activity::record(
                    &mut conn,
                    &system(
                        "tenant.backed_up",
                        tenant_id,
                        json!({}),
                        json!({"path": path.display().to_string(), "final": true}),
                    ),
                )
                .await?;
            }
            ctx.set_step("drop database").await?;
            server.drop_database(&name).await.map_err(db_error)?;
        }
        ctx.set_step("remove instance").await?;
        {
            let mut conn = self.pool.get().await?;
            for d in &live {
                deployments::set_status(&mut conn, d.id, "retired").await?;
            }
        }
        self.cleanup_retired(tenant_id, true).await?;
        ctx.set_step("delete").await?;
        let mut conn = self.pool.get().await?;
        conn.transaction::<_, StoreError, _>(async |conn| {
            let t = tenants::lock_tenant(conn, tenant_id).await?;
            if t.status != "deleted" {
                tenants::set_status(conn, tenant_id, "deleted", None).await?;
                activity::record(
                    conn,
                    &system(
                        "tenant.deleted",
                        tenant_id,
                        json!({"status": t.status}),
                        json!({"status": "deleted"}),
                    ),
                )
                .await?;
            }
            Ok(())
        })
        .await?;
        Ok(())
    }
}

fn db_error(e: crate::tenant_db::TenantDbError) -> JobError {
    if e.is_transient() {
        JobError::Retry(e.to_string())
    } else {
        JobError::Fail(e.to_string())
    }
}

async fn diesel_lock(conn: &mut AsyncPgConnection) -> Result<(), StoreError> {
    tenantry_store::advisory_xact_lock(conn, PLACEMENT_LOCK).await
}

enum PlaceError {
    Wait { code: &'static str, detail: String },
    Fail(String),
    Store(StoreError),
}

impl From<StoreError> for PlaceError {
    fn from(e: StoreError) -> Self {
        match e {
            // A port or a shared slot taken by a concurrent placement: retry.
            StoreError::Conflict { constraint } => Self::Wait {
                code: "placement-conflict",
                detail: format!("a concurrent placement took the same slot ({constraint})"),
            },
            other => Self::Store(other),
        }
    }
}

impl From<tenantry_store::DieselError> for PlaceError {
    fn from(e: tenantry_store::DieselError) -> Self {
        StoreError::from(e).into()
    }
}
