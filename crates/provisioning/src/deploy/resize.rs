//! A plan change that keeps the tenant's container kind but changes what
//! the plan pays for: the dedicated instance's cores, memory and disk, and
//! whether it is highly available, applied to the container where it runs
//! (Proxmox `PUT …/config` and `PUT …/resize`, grow only; Docker
//! `POST /containers/{id}/update`), with its reservation updated under the
//! placement lock in the same transaction that checks the node has room —
//! or, when the node lacks room for the bigger plan, a move to a node that
//! has it (the migration machinery).

use tenantry_domain::{
    DriverKind, NodeCapacity, NodeStatus,
    catalog::Resources,
    placement::{Allocation, NodeLoad, place},
};
use tenantry_store::{
    AsyncConnection as _, StoreError,
    catalog::{Plan, Product},
    deployments::{self, Deployment},
    nodes::{self, Instance},
    worker::{JobContext, JobError},
};

use super::{Provisioner, support::is_high_availability};
use crate::InstanceRef;

/// What [`Provisioner::resize_in_place`] did.
pub(super) enum InPlace {
    /// The container has the plan's resources and availability (now, or
    /// already).
    Done,
    /// Its node has no room for the plan: the tenant moves.
    NoRoom(String),
}

fn plan_resources(plan: &Plan) -> Resources {
    Resources {
        cpu_cores: u32::try_from(plan.cpu_cores).unwrap_or(1),
        memory_mib: u32::try_from(plan.memory_mib).unwrap_or(128),
        storage_gib: u32::try_from(plan.storage_gib).unwrap_or(1),
    }
}

impl Provisioner {
    /// Applies `plan`'s resources and availability to the dedicated
    /// instance of `d`, in place when its node has room.
    pub(super) async fn resize_in_place(
        &self,
        ctx: &JobContext,
        plan: &Plan,
        product: &Product,
        d: &Deployment,
    ) -> Result<InPlace, JobError> {
        let Some(instance_id) = d.instance_id else {
            return Err(JobError::Fail(
                "the active deployment has no instance".into(),
            ));
        };
        let want = plan_resources(plan);
        let ha = is_high_availability(&plan.deployment);
        // Reserve first, under the placement lock: the node must have room
        // for the difference, and placement must see the new size at once.
        let mut conn = self.pool.get().await?;
        let reserved = conn
            .transaction::<_, StoreError, _>(async |conn| {
                super::placement::lock(conn).await?;
                let instance = nodes::get_instance(conn, instance_id).await?;
                // Disks never shrink: a smaller plan keeps reserving the
                // disk the container has.
                let want = Resources {
                    storage_gib: want
                        .storage_gib
                        .max(u32::try_from(instance.storage_gib).unwrap_or(0)),
                    ..want
                };
                if reserves(&instance, &want) {
                    if instance.high_availability != ha {
                        nodes::set_instance_reservation(
                            conn,
                            instance_id,
                            instance.cpu_cores,
                            instance.memory_mib,
                            instance.storage_gib,
                            ha,
                        )
                        .await?;
                    }
                    return Ok(Ok(instance));
                }
                nodes::lock(conn, instance.node_id).await?;
                if let Err(why) = fits(conn, product, &instance, &want).await? {
                    return Ok(Err(why));
                }
                let resized = nodes::set_instance_reservation(
                    conn,
                    instance_id,
                    i32::try_from(want.cpu_cores).unwrap_or(i32::MAX),
                    i32::try_from(want.memory_mib).unwrap_or(i32::MAX),
                    i32::try_from(want.storage_gib).unwrap_or(i32::MAX),
                    ha,
                )
                .await?;
                Ok(Ok(resized))
            })
            .await?;
        drop(conn);
        let instance = match reserved {
            Ok(i) => i,
            Err(why) => return Ok(InPlace::NoRoom(why)),
        };
        ctx.set_step("resize").await?;
        let node = {
            let mut conn = self.pool.get().await?;
            nodes::get(&mut conn, instance.node_id).await?
        };
        let driver = self.driver(&node)?;
        let r = InstanceRef {
            instance_id,
            external_id: instance.external_id.clone().unwrap_or_default(),
        };
        // Both idempotent: a re-run finds the container already there.
        driver.resize(&r, &want).await.map_err(JobError::from)?;
        driver
            .set_high_availability(&r, ha)
            .await
            .map_err(JobError::from)?;
        Ok(InPlace::Done)
    }

    /// What the tenant's data takes on disk, bytes, when it can be
    /// measured: a dedicated container's root disk in use (Proxmox), or a
    /// shared tenant's database (`pg_database_size`). `None` when neither
    /// the node nor the database says (Docker reports no disk use).
    ///
    /// # Errors
    /// [`JobError`]: the database, the node, or the tenant database server.
    pub async fn disk_used(&self, tenant_id: uuid::Uuid) -> Result<Option<u64>, JobError> {
        let (_, _, product) = self.load(tenant_id).await?;
        let mut conn = self.pool.get().await?;
        let Some(d) = deployments::find(&mut conn, tenant_id, "active").await? else {
            return Ok(None);
        };
        if d.kind == "shared" {
            drop(conn);
            let server = &self.databases.for_product(&product.slug)?.server;
            let name = crate::tenant_db::TenantDbName::parse(&d.database_name)
                .map_err(|e| JobError::Fail(e.to_string()))?;
            return server.database_size(&name).await.map_err(JobError::from);
        }
        let Some(instance_id) = d.instance_id else {
            return Ok(None);
        };
        let instance = nodes::get_instance(&mut conn, instance_id).await?;
        let node = nodes::get(&mut conn, instance.node_id).await?;
        drop(conn);
        let driver = self.driver(&node)?;
        let r = InstanceRef {
            instance_id,
            external_id: instance.external_id.clone().unwrap_or_default(),
        };
        Ok(driver
            .instance_status(&r)
            .await
            .map_err(JobError::from)?
            .disk_bytes)
    }

    /// After a failed in-place resize: the instance's reservation back to
    /// the plan the tenant is on again (billing's rollback put it back).
    pub(super) async fn restore_reservation(&self, tenant_id: uuid::Uuid) -> Result<(), JobError> {
        let (tenant, plan, _) = self.load(tenant_id).await?;
        let mut conn = self.pool.get().await?;
        let Some(d) = deployments::find(&mut conn, tenant.id, "active").await? else {
            return Ok(());
        };
        let Some(instance_id) = d.instance_id else {
            return Ok(());
        };
        let instance = nodes::get_instance(&mut conn, instance_id).await?;
        if instance.kind != "dedicated" {
            return Ok(());
        }
        nodes::set_instance_reservation(
            &mut conn,
            instance_id,
            plan.cpu_cores,
            plan.memory_mib,
            plan.storage_gib,
            is_high_availability(&plan.deployment),
        )
        .await?;
        Ok(())
    }
}

/// Whether `instance` already reserves `want`.
fn reserves(instance: &Instance, want: &Resources) -> bool {
    i64::from(instance.cpu_cores) == i64::from(want.cpu_cores)
        && i64::from(instance.memory_mib) == i64::from(want.memory_mib)
        && i64::from(instance.storage_gib) == i64::from(want.storage_gib)
}

/// Whether the instance's node has room for it at `want` (placement's own
/// rule, with the instance's current reservation taken out), or why not.
async fn fits(
    conn: &mut tenantry_store::AsyncPgConnection,
    product: &Product,
    instance: &Instance,
    want: &Resources,
) -> Result<Result<(), String>, StoreError> {
    let driver: DriverKind = product.driver.parse().unwrap_or(DriverKind::Proxmox);
    let usage = deployments::node_usage(conn, &product.driver).await?;
    let Some(u) = usage.into_iter().find(|u| u.node.id == instance.node_id) else {
        return Ok(Err("its node is gone".into()));
    };
    let less = |total: i64, mine: i32| u64::try_from(total - i64::from(mine)).unwrap_or(0);
    let load = NodeLoad {
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
            cpu_cores: less(u.cpu_cores, instance.cpu_cores),
            memory_mib: less(u.memory_mib, instance.memory_mib),
            storage_gib: less(u.storage_gib, instance.storage_gib),
            instances: u32::try_from(u.instances - 1).unwrap_or(0),
        },
    };
    Ok(place(std::slice::from_ref(&load), driver, want)
        .map(|_| ())
        .map_err(|e| format!("node {} has no room for the plan: {e}", u.node.name)))
}
