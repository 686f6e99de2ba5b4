//! The migrate job (a plan change crossing shared ↔ dedicated): place the
//! target → its container → switch (old deployment `retired`, target
//! `active`: the route) → remove the old instance, the tenant's database
//! kept throughout; and the rollback when it fails (the old deployment
//! stays the route, the tenant goes back to its old plan, the plan change
//! is `failed`, billing gets a `migration_failed` event to credit).

use serde_json::json;
use tenantry_domain::TenantStatus;
use tenantry_store::jobs::{BackgroundJob as _, kinds::Migrate};
use tenantry_store::{
    AsyncConnection as _, StoreError,
    deployments::{self, Deployment},
    tenants::{self, TransitionError},
    worker::{JobContext, JobError},
};
use uuid::Uuid;

use super::{
    Provisioner,
    resize::InPlace,
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
            // The same kind of container: a dedicated plan's resources and
            // availability applied where it runs (nothing to do for a shared
            // tenant), or already switched (a re-run after the switch).
            let in_place = if target_kind == "dedicated" {
                ctx.set_step("reserve").await?;
                self.resize_in_place(ctx, &plan, &product, &old).await?
            } else {
                InPlace::Done
            };
            match in_place {
                InPlace::Done => {
                    ctx.set_step("remove old").await?;
                    self.cleanup_retired(tenant_id, false).await?;
                    if target_kind == "dedicated" {
                        self.record_plan_applied(tenant_id, &plan).await?;
                    }
                    return self.finish_migration(tenant_id, &old).await;
                }
                InPlace::NoRoom(why) => {
                    tracing::info!(tenant = %tenant.slug, %why, "moving the tenant to a node with room for its plan");
                }
            }
        }
        ctx.set_step("prepare").await?;
        {
            let mut conn = self.pool.get().await?;
            conn.transaction::<_, TransitionError, _>(async |conn| {
                let t = tenants::lock_tenant(conn, tenant_id).await?;
                if t.status == TenantStatus::Active {
                    tenants::transition(conn, tenant_id, TenantStatus::Migrating, None).await?;
                    system(
                        "tenant.migrating",
                        tenant_id,
                        json!({"deployment": old.kind}),
                        json!({"deployment": target_kind}),
                    )
                    .record(conn)
                    .await?;
                }
                Ok(())
            })
            .await?;
        }
        crash_point(Migrate::KIND, "prepare");
        ctx.set_step("place").await?;
        let target = self.place(&tenant, &plan, &product, Some(&old)).await?;
        crash_point(Migrate::KIND, "place");
        ctx.set_step("container").await?;
        self.ensure_container(&tenant, &product, &target).await?;
        self.apply_connection_limit(&product, &target).await?;
        crash_point(Migrate::KIND, "container");
        // The route switches only once the target answers.
        self.await_app(&tenant, &target).await?;
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
        crash_point(Migrate::KIND, "switch");
        // The proxy follows the switch before the old instance goes.
        self.push_routes().await;
        ctx.set_step("remove old").await?;
        self.cleanup_retired(tenant_id, false).await?;
        crash_point(Migrate::KIND, "remove old");
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

    /// An activity row: the plan's resources are what the tenant's
    /// container now has.
    async fn record_plan_applied(
        &self,
        tenant_id: Uuid,
        plan: &tenantry_store::catalog::Plan,
    ) -> Result<(), JobError> {
        let mut conn = self.pool.get().await?;
        system(
            "instance.resources_applied",
            tenant_id,
            json!({}),
            json!({"plan": plan.code, "cpu_cores": plan.cpu_cores, "memory_mib": plan.memory_mib, "storage_gib": plan.storage_gib, "deployment": plan.deployment}),
        )
        .record(&mut conn)
        .await?;
        Ok(())
    }

    async fn finish_migration(&self, tenant_id: Uuid, now_on: &Deployment) -> Result<(), JobError> {
        let mut conn = self.pool.get().await?;
        conn.transaction::<_, TransitionError, _>(async |conn| {
            let t = tenants::lock_tenant(conn, tenant_id).await?;
            if t.status == TenantStatus::Migrating {
                tenants::transition(conn, tenant_id, TenantStatus::Active, None).await?;
                system(
                        "tenant.migrated",
                        tenant_id,
                        json!({"status": TenantStatus::Migrating}),
                        json!({"status": TenantStatus::Active, "deployment": now_on.kind, "host_port": now_on.host_port, "node_id": now_on.node_id}),
                    ).record(conn)
                .await?;
            }
            Ok(())
        })
        .await?;
        Ok(())
    }

    /// Rolls a failed migration back: the target is removed, the old
    /// deployment stays (or becomes again) the route, the tenant is `active`
    /// again, a `migration_failed` event is recorded, and billing's
    /// [`ProvisioningEvents::migration_failed`] puts the tenant back on its
    /// old plan and fails the plan change — in one transaction.
    ///
    /// [`ProvisioningEvents::migration_failed`]: tenantry_store::events::ProvisioningEvents::migration_failed
    pub(super) async fn migration_failed(
        &self,
        job: &Migrate,
        reason: &str,
    ) -> Result<(), JobError> {
        let tenant_id = job.tenant_id;
        let change_id = job.plan_change_id;
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
        conn.transaction::<_, TransitionError, _>(async |conn| {
            let t = tenants::lock_tenant(conn, tenant_id).await?;
            deployments::record_migration_failed(
                conn,
                tenant_id,
                change_id,
                json!({"reason": reason}),
            )
            .await?;
            // Billing consumes the event it credits, in this transaction.
            if let Some(id) = change_id {
                self.events.migration_failed(conn, tenant_id, id).await?;
            }
            if t.status == TenantStatus::Migrating {
                tenants::transition(
                    conn,
                    tenant_id,
                    TenantStatus::Active,
                    Some(&format!("migration failed: {reason}")),
                )
                .await?;
            }
            system(
                "tenant.migration_failed",
                tenant_id,
                json!({"status": t.status}),
                json!({"status": TenantStatus::Active, "reason": reason, "plan_change_id": change_id}),
            )
            .record(conn)
            .await?;
            Ok(())
        })
        .await?;
        drop(conn);
        // An in-place resize reserved the new plan's size: back to the
        // plan the tenant is on again.
        self.restore_reservation(tenant_id).await
    }
}
