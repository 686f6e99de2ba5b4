//! The deprovision job: a final `pg_dump` backup, the tenant's database and
//! role dropped, its deployments retired and their dedicated instances
//! destroyed (data included), the tenant `deleted`.

use serde_json::json;
use tenantry_domain::TenantStatus;
use tenantry_store::{
    AsyncConnection as _,
    deployments::{self, Deployment},
    tenants::{self, TransitionError},
    worker::{JobContext, JobError},
};
use uuid::Uuid;

use super::{Provisioner, support::system};
use crate::tenant_db::TenantDbName;

impl Provisioner {
    pub(super) async fn deprovision(
        &self,
        ctx: &JobContext,
        tenant_id: Uuid,
        final_backup: bool,
    ) -> Result<(), JobError> {
        let (tenant, _, product) = self.load(tenant_id).await?;
        if tenant.status == TenantStatus::Deleted {
            return Ok(());
        }
        let history = {
            let mut conn = self.pool.get().await?;
            deployments::history(&mut conn, tenant_id).await?
        };
        let live: Vec<&Deployment> = history.iter().filter(|d| d.status != "retired").collect();
        if let Some(d) = live.first() {
            let server = &self.databases.for_product(&product.slug)?.server;
            let name =
                TenantDbName::parse(&d.database_name).map_err(|e| JobError::Fail(e.to_string()))?;
            if final_backup && server.exists(&name).await.map_err(JobError::from)? {
                ctx.set_step("backup").await?;
                let path = server
                    .backup(&name, &self.settings.backup_dir)
                    .await
                    .map_err(JobError::from)?;
                let mut conn = self.pool.get().await?;
                system(
                    "tenant.backed_up",
                    tenant_id,
                    json!({}),
                    json!({"path": path.display().to_string(), "final": true}),
                )
                .record(&mut conn)
                .await?;
            }
            ctx.set_step("drop database").await?;
            server.drop_database(&name).await.map_err(JobError::from)?;
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
        conn.transaction::<_, TransitionError, _>(async |conn| {
            if let Some(from) =
                tenants::ensure_status(conn, tenant_id, TenantStatus::Deleted, None).await?
            {
                system(
                    "tenant.deleted",
                    tenant_id,
                    json!({"status": from}),
                    json!({"status": TenantStatus::Deleted}),
                )
                .record(conn)
                .await?;
            }
            Ok(())
        })
        .await?;
        Ok(())
    }
}
