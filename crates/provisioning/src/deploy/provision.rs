//! The provision job: place → the tenant's database → the container →
//! activate, and the tenant marked `failed` when the job gives up. Also the
//! database step: the deployment's sealed password opened, the tenant's
//! role and database ensured on the product's server.

use secrecy::{ExposeSecret, SecretString};
use serde_json::json;
use tenantry_store::{
    AsyncConnection as _, StoreError, activity,
    catalog::Product,
    crypto::Sealed,
    deployments::{self, Deployment},
    tenants,
    worker::{JobContext, JobError},
};
use uuid::Uuid;

use super::{
    PROVISION, Provisioner,
    support::{crash_point, db_error, system},
};
use crate::tenant_db::TenantDbName;

impl Provisioner {
    pub(super) async fn provision(
        &self,
        ctx: &JobContext,
        tenant_id: Uuid,
    ) -> Result<(), JobError> {
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

    pub(super) async fn provisioning_failed(
        &self,
        tenant_id: Uuid,
        reason: &str,
    ) -> Result<(), StoreError> {
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
            .map_err(db_error)
    }
}
