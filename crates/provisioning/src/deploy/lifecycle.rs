//! The suspend and resume jobs (pause, dunning): stop or start a dedicated
//! tenant's container; disable or enable a shared tenant's database login.

use serde_json::json;
use tenantry_store::{
    deployments, nodes,
    worker::{JobContext, JobError},
};
use uuid::Uuid;

use super::{Provisioner, support::system};
use crate::{InstanceRef, tenant_db::TenantDbName};

impl Provisioner {
    pub(super) async fn set_running(
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
            let driver = self.driver(&node)?;
            let r = InstanceRef {
                instance_id,
                external_id: instance.external_id.clone().unwrap_or_default(),
            };
            if running {
                driver.start(&r).await.map_err(JobError::from)?;
            } else {
                driver.stop(&r).await.map_err(JobError::from)?;
            }
            let mut conn = self.pool.get().await?;
            deployments::set_instance_status(
                &mut conn,
                instance_id,
                if running { "running" } else { "stopped" },
            )
            .await?;
            drop(conn);
            if running {
                // A started LXC container may come back with another address.
                self.record_upstream(driver.as_ref(), &r, &product, &d, &instance)
                    .await?;
            }
        } else {
            let server = &self.databases.for_product(&product.slug)?.server;
            let name =
                TenantDbName::parse(&d.database_name).map_err(|e| JobError::Fail(e.to_string()))?;
            server
                .set_login(&name, running)
                .await
                .map_err(JobError::from)?;
        }
        let mut conn = self.pool.get().await?;
        system(
            if running {
                "instance.started"
            } else {
                "instance.stopped"
            },
            tenant_id,
            json!({"tenant": tenant.slug}),
            json!({"deployment": d.kind, "running": running}),
        )
        .record(&mut conn)
        .await?;
        Ok(())
    }
}
