//! A deployment's instance on its node: created when it is not there yet
//! (found by owner tag after a crash; one creator at a time, under an
//! advisory lock), what it is created with (the product's artifact, the
//! instance's reservation, the tenant's environment and labels), and
//! removed once no live deployment uses it.

use secrecy::ExposeSecret;
use tenantry_domain::catalog::Resources;
use tenantry_store::{
    catalog::Product,
    deployments::{self, Deployment},
    nodes::{self, Instance},
    tenants::{self, Tenant},
    worker::JobError,
};
use uuid::Uuid;

use super::{Provisioner, support::crash_point};
use crate::{InstanceRef, InstanceSpec};

/// Advisory-lock class of creating an instance's container ("inst").
const INSTANCE_LOCK_CLASS: i32 = 0x696e_7374;

impl Provisioner {
    /// The deployment's instance, created on its node if it is not there yet
    /// (found by owner tag if an earlier run created it).
    pub(super) async fn ensure_container(
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
        let driver = self.driver(&node)?;
        if let Some(external_id) = &instance.external_id
            && instance.status == "running"
        {
            let existing = InstanceRef {
                instance_id,
                external_id: external_id.clone(),
            };
            if instance.upstream_host.is_none() {
                self.record_upstream(driver.as_ref(), &existing, product, d, &instance)
                    .await?;
            }
            return Ok(existing);
        }
        let spec = self.instance_spec(tenant, product, d, &instance)?;
        let created = driver
            .create_instance(&spec)
            .await
            .map_err(JobError::from)?;
        crash_point("instance", "created");
        let mut conn = self.pool.get().await?;
        nodes::mark_instance_created(&mut conn, instance_id, &created.external_id).await?;
        drop(conn);
        self.record_upstream(driver.as_ref(), &created, product, d, &instance)
            .await?;
        Ok(created)
    }

    /// Reads where the instance's app answers from its node and records it
    /// on the instance (re-routing its tenants in that transaction). The
    /// port the proxy dials: a shared Docker instance's published port, a
    /// dedicated one's deployment port, or the product's internal port at
    /// an LXC container's address. An instance the node gives no address
    /// yet (an LXC container whose network is still coming up) is retried.
    pub(super) async fn record_upstream(
        &self,
        driver: &dyn crate::Driver,
        r: &InstanceRef,
        product: &Product,
        d: &Deployment,
        instance: &Instance,
    ) -> Result<(), JobError> {
        let Some(internal_port) = u16::try_from(product.internal_port).ok() else {
            return Ok(()); // serves nothing over HTTP
        };
        let host_port = if instance.kind == "shared" {
            instance.host_port
        } else {
            d.host_port
        }
        .and_then(|p| u16::try_from(p).ok());
        let upstream = driver
            .upstream(r, internal_port, host_port)
            .await
            .map_err(JobError::from)?
            .ok_or_else(|| {
                JobError::Retry(format!(
                    "instance {} has no address on its node yet",
                    instance.id
                ))
            })?;
        let mut conn = self.pool.get().await?;
        nodes::set_instance_upstream(&mut conn, instance.id, &upstream.host, upstream.port).await?;
        Ok(())
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
            env.extend(render_env(&templates, &vars).map_err(JobError::from)?);
            labels.insert(LABEL_TENANT.to_owned(), tenant.slug.clone());
        } else {
            env.extend(templates.into_iter().filter(|(_, v)| !v.contains("{{")));
            labels.insert(LABEL_TENANT.to_owned(), "shared".to_owned());
        }
        let stack = product.compose_stack.as_ref().map(|name| crate::StackSpec {
            dir: self.settings.stacks_dir.join(name),
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
            host_port: if instance.kind == "shared" {
                instance.host_port
            } else {
                d.host_port
            }
            .and_then(|p| u16::try_from(p).ok()),
            env,
            labels,
            volumes: product.volume_map(),
            stack,
            high_availability: instance.high_availability,
            health_check: None,
        })
    }

    /// Destroys a retired deployment's instance when nothing live uses it
    /// any more (a dedicated instance after a migration or deprovision), and
    /// deletes its row.
    pub(super) async fn remove_unused_instance(
        &self,
        instance_id: Uuid,
        purge: bool,
    ) -> Result<(), JobError> {
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
        let driver = self.driver(&node)?;
        let target = match &instance.external_id {
            Some(e) => Some(InstanceRef {
                instance_id,
                external_id: e.clone(),
            }),
            None => driver
                .find_instance(instance_id)
                .await
                .map_err(JobError::from)?,
        };
        let mut conn = self.pool.get().await?;
        if purge {
            // The tenant is gone (or the instance never served): its data goes too.
            if let Some(t) = target {
                driver.purge_data(&t).await.map_err(JobError::from)?;
            }
            deployments::delete_instance(&mut conn, instance_id).await?;
        } else {
            // The tenant moved: the container goes, its data (Docker volumes)
            // stays until the tenant is deleted.
            if let Some(t) = target {
                driver.destroy(&t).await.map_err(JobError::from)?;
            }
            deployments::set_instance_status(&mut conn, instance_id, "destroyed").await?;
        }
        Ok(())
    }
}

impl Provisioner {
    /// Waits until the app of `d`'s instance answers HTTP at its upstream
    /// (any status below 500 to `GET /` with the tenant header), for an
    /// instance on a Proxmox node: the Docker driver waits for its own
    /// deploys. Meanwhile the tenant's `status_reason` says what it waits
    /// for; once `upstream_ready_timeout` has passed since the deployment
    /// was made, the step fails for good and the tenant is marked `failed`
    /// with that reason. A zero timeout does not wait.
    pub(super) async fn await_app(&self, tenant: &Tenant, d: &Deployment) -> Result<(), JobError> {
        let timeout = self.settings.upstream_ready_timeout;
        let Some(instance_id) = d.instance_id else {
            return Ok(());
        };
        if timeout.is_zero() {
            return Ok(());
        }
        let (instance, node) = {
            let mut conn = self.pool.get().await?;
            let instance = nodes::get_instance(&mut conn, instance_id).await?;
            let node = nodes::get(&mut conn, instance.node_id).await?;
            (instance, node)
        };
        let (Some(host), Some(port)) = (&instance.upstream_host, instance.upstream_port) else {
            return Ok(());
        };
        if node.kind != "proxmox" {
            return Ok(());
        }
        let dial = tenantry_domain::routing::UpstreamAddr {
            host: host.clone(),
            port: u16::try_from(port).unwrap_or(0),
        }
        .dial();
        let http = reqwest::Client::builder()
            .timeout(std::time::Duration::from_secs(3))
            .build()
            .map_err(|e| JobError::Fail(e.to_string()))?;
        let deadline =
            d.created_at + chrono::Duration::from_std(timeout).unwrap_or(chrono::Duration::MAX);
        let mut said = false;
        loop {
            let answer = http
                .get(format!("http://{dial}/"))
                .header(tenantry_domain::routing::TENANT_HEADER, &tenant.slug)
                .send()
                .await;
            let why = match answer {
                Ok(r) if r.status().as_u16() < 500 => {
                    if said {
                        let mut conn = self.pool.get().await?;
                        tenants::set_status_reason(&mut conn, tenant.id, None).await?;
                    }
                    return Ok(());
                }
                Ok(r) => format!("it answered HTTP {}", r.status().as_u16()),
                Err(e) => tenantry_store::error_chain(&e),
            };
            if chrono::Utc::now() >= deadline {
                return Err(JobError::Fail(format!(
                    "the app at {dial} did not answer HTTP within {} s: {why}",
                    timeout.as_secs()
                )));
            }
            if !said {
                let mut conn = self.pool.get().await?;
                let reason = format!(
                    "waiting for the app at {dial} to answer HTTP (until {}): {why}",
                    deadline.format("%Y-%m-%dT%H:%M:%SZ")
                );
                tenants::set_status_reason(&mut conn, tenant.id, Some(&reason)).await?;
                said = true;
            }
            tokio::time::sleep(std::time::Duration::from_millis(500)).await;
        }
    }
}
