//! The migrate job (a plan change crossing shared ↔ dedicated): place the
//! target → its container → switch (old deployment `retired`, target
//! `active`: the route) → remove the old instance, the tenant's database
//! kept throughout; and the rollback when it fails (the old deployment
//! stays the route, the tenant goes back to its old plan, the plan change
//! is `failed`, billing gets a `migration_failed` event to credit).

use serde_json::json;
use tenantry_store::{
    AsyncConnection as _, StoreError, activity, billing as store_billing,
    deployments::{self, Deployment},
    tenants,
    worker::{JobContext, JobError},
};
use uuid::Uuid;

use super::{
    MIGRATE, Provisioner,
    support::{crash_point, is_dedicated, system},
};

impl Provisioner {
    pub(super) async fn migrate(&self, ctx: &JobContext, tenant_id: Uuid) -> Result<(), JobError> {
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
    pub(super) async fn cleanup_retired(
        &self,
        tenant_id: Uuid,
        purge: bool,
    ) -> Result<(), JobError> {
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
    pub(super) async fn migration_failed(
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
}
