//! The provision job: place → the tenant's database → the container →
//! activate, and the tenant marked `failed` when the job gives up. Also the
//! database step: the deployment's sealed password opened, the tenant's
//! role and database ensured on the product's server.

use secrecy::{ExposeSecret, SecretString};
use serde_json::json;
use tenantry_domain::TenantStatus;
use tenantry_store::jobs::{BackgroundJob as _, kinds::Provision};
use tenantry_store::{
    AsyncConnection as _,
    catalog::Product,
    crypto::Sealed,
    deployments::{self, Deployment},
    tenants::{self, TransitionError},
    worker::{JobContext, JobError},
};
use uuid::Uuid;

use super::{
    Provisioner,
    support::{crash_point, system},
};
use crate::tenant_db::TenantDbName;

impl Provisioner {
    pub(super) async fn provision(
        &self,
        ctx: &JobContext,
        tenant_id: Uuid,
    ) -> Result<(), JobError> {
        let (tenant, plan, product) = self.load(tenant_id).await?;
        if tenant.status == TenantStatus::Active {
            return Ok(());
        }
        if tenant.status != TenantStatus::Provisioning {
            return Err(JobError::Fail(format!(
                "tenant {} is {}, not provisioning",
                tenant.slug, tenant.status
            )));
        }
        ctx.set_step("place").await?;
        let target = self.place(&tenant, &plan, &product, None).await?;
        crash_point(Provision::KIND, "place");
        ctx.set_step("database").await?;
        self.ensure_database(&product, &target).await?;
        crash_point(Provision::KIND, "database");
        ctx.set_step("container").await?;
        self.ensure_container(&tenant, &product, &target).await?;
        crash_point(Provision::KIND, "container");
        ctx.set_step("app").await?;
        self.await_app(&tenant, &target).await?;
        ctx.set_step("activate").await?;
        let mut conn = self.pool.get().await?;
        conn.transaction::<_, TransitionError, _>(async |conn| {
            let current = tenants::lock_tenant(conn, tenant_id).await?;
            if current.status != TenantStatus::Provisioning {
                return Ok(());
            }
            if let Some(building) = deployments::find(conn, tenant_id, "provisioning").await? {
                deployments::set_status(conn, building.id, "active").await?;
            }
            tenants::mark_provisioned(conn, tenant_id).await?;
            self.events.service_started(conn, tenant_id).await?;
            system(
                    "tenant.provisioned",
                    tenant_id,
                    json!({"status": TenantStatus::Provisioning}),
                    json!({"status": TenantStatus::Active, "url": target.url, "deployment": target.kind, "host_port": target.host_port, "node_id": target.node_id}),
                ).record(conn)
            .await?;
            Ok(())
        })
        .await?;
        Ok(())
    }

    pub(super) async fn provisioning_failed(
        &self,
        tenant_id: Uuid,
        reason: &str,
    ) -> Result<(), TransitionError> {
        let mut conn = self.pool.get().await?;
        conn.transaction::<_, TransitionError, _>(async |conn| {
            let t = tenants::lock_tenant(conn, tenant_id).await?;
            if t.status != TenantStatus::Provisioning {
                return Ok(());
            }
            tenants::transition(conn, tenant_id, TenantStatus::Failed, Some(reason)).await?;
            deployments::record_provisioning_failed(conn, tenant_id, json!({"reason": reason}))
                .await?;
            system(
                "tenant.provisioning_failed",
                tenant_id,
                json!({"status": TenantStatus::Provisioning}),
                json!({"status": TenantStatus::Failed, "reason": reason}),
            )
            .record(conn)
            .await?;
            Ok(())
        })
        .await
    }

    pub(super) fn password(
        &self,
        tenant_id: Uuid,
        d: &Deployment,
    ) -> Result<SecretString, JobError> {
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
            .map_err(JobError::from)?;
        self.apply_connection_limit(product, d).await
    }

    /// The tenant role's connection limit for its deployment: a shared
    /// tenant gets its product's per-tenant limit (default 20), a dedicated
    /// one none (its app has the container to itself).
    pub(super) async fn apply_connection_limit(
        &self,
        product: &Product,
        d: &Deployment,
    ) -> Result<(), JobError> {
        let server = &self.databases.for_product(&product.slug)?.server;
        let name =
            TenantDbName::parse(&d.database_name).map_err(|e| JobError::Fail(e.to_string()))?;
        let limit = (d.kind == "shared").then(|| {
            let n = product
                .shared_tenant_connection_limit
                .unwrap_or(tenantry_store::catalog::DEFAULT_TENANT_CONNECTION_LIMIT);
            u32::try_from(n).unwrap_or(1)
        });
        server
            .set_connection_limit(&name, limit)
            .await
            .map_err(JobError::from)
    }
}
