//! The place step: a node chosen by placement from the nodes' capacity and
//! load, then either a dedicated instance with a free host port from the
//! product's range, or room on the product's shared instance (a new one
//! where none has room), recorded as the tenant's deployment in one
//! transaction under the placement advisory lock.

use std::collections::HashSet;

use secrecy::ExposeSecret;
use tenantry_domain::{
    DriverKind, NodeCapacity, NodeStatus, TenantSlug,
    catalog::Resources,
    placement::{Allocation, NodeLoad, place},
};
use tenantry_store::{
    AsyncConnection as _, AsyncPgConnection, StoreError,
    catalog::{Plan, Product},
    deployments::{self, Deployment, NewDeployment},
    nodes::{self, Instance, Reservation},
    tenants::{self, Tenant},
    worker::JobError,
};
use uuid::Uuid;

use super::{
    Provisioner,
    support::{is_dedicated, is_high_availability},
};
use crate::tenant_db::{TenantDbName, generate_password};

/// What placement could not do; the job waits (retries) on it.
fn waiting(code: &str, detail: String) -> JobError {
    JobError::Retry(format!("{code}: {detail}"))
}

const PLACEMENT_LOCK: i64 = 0x7465_6e61_6e74_7279; // "tenantry"

impl Provisioner {
    /// The tenant's deployment being built, or a new one: a node chosen by
    /// placement, an instance (the product's shared instance there, created
    /// on first need, or a dedicated one) and, for a dedicated plan, a host
    /// port, all in one transaction serialised with every other placement.
    /// `database_of` reuses an existing deployment's database (migration).
    pub(super) async fn place(
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
                lock(conn).await?;
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
                host_port: None,
                high_availability: is_high_availability(&plan.deployment),
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
        // A Docker shared instance publishes one port, from the product's
        // range, that the proxy reaches it at; an LXC container is reached
        // at its own address.
        let host_port = match (
            product.driver.as_str(),
            product.dedicated_port_start,
            product.dedicated_port_end,
        ) {
            ("docker", Some(start), Some(end)) => Some(
                deployments::free_port(conn, node_id, start, end)
                    .await?
                    .ok_or_else(|| PlaceError::Wait {
                        code: "no-free-port",
                        detail: format!(
                            "every port of {}'s range {start}–{end} is taken on node {}",
                            product.slug, node.name
                        ),
                    })?,
            ),
            ("docker", _, _) => {
                return Err(PlaceError::Fail(format!(
                    "product {} has no port range to publish its shared instance on",
                    product.slug
                )));
            }
            _ => None,
        };
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
                host_port,
                high_availability: false,
            },
        )
        .await?)
    }
}

/// Takes the placement lock for the transaction: placements and
/// reservation changes run one at a time.
pub(super) async fn lock(conn: &mut AsyncPgConnection) -> Result<(), StoreError> {
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
