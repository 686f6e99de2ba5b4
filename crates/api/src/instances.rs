//! Instance jobs: creating an instance's container on its node through the
//! node's driver. Idempotent through the driver's owner tag (our instance
//! id): a job re-run after a crash, at any point, finds the container its
//! first run made instead of creating a second one.

use std::sync::Arc;

use async_trait::async_trait;
use serde::Deserialize;
use tenantry_domain::catalog::Resources;
use tenantry_provisioning::{DriverError, InstanceSpec};
use tenantry_store::{
    nodes,
    worker::{Handlers, JobContext, JobError, JobHandler},
};
use uuid::Uuid;

use crate::AppState;

/// Job kind: create the container of an instance row (payload
/// [`CreatePayload`]) and record its driver id.
pub const CREATE_JOB: &str = "instance.create";

/// What `instance.create` takes.
#[derive(Debug, Clone, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct CreatePayload {
    /// The instance row (already inserted, `creating`).
    pub instance_id: Uuid,
    /// Host name inside the container (a DNS label).
    pub hostname: String,
    /// LXC `ostemplate` volume id or Docker image.
    pub artifact: String,
    /// CPU cores.
    pub cpu_cores: u32,
    /// Memory, MiB.
    pub memory_mib: u32,
    /// Root disk, GiB.
    pub storage_gib: u32,
}

/// A driver error as a job error: transient ones retry with back-off.
pub fn job_error(e: DriverError) -> JobError {
    if e.is_transient() {
        JobError::Retry(e.to_string())
    } else {
        JobError::Fail(e.to_string())
    }
}

struct CreateJob {
    state: AppState,
}

#[async_trait]
impl JobHandler for CreateJob {
    async fn run(&self, ctx: &JobContext) -> Result<(), JobError> {
        let p: CreatePayload = serde_json::from_value(ctx.job.payload.clone())
            .map_err(|e| JobError::Fail(format!("bad payload: {e}")))?;
        let (instance, node) = {
            let mut conn = ctx.pool.get().await?;
            let instance = nodes::get_instance(&mut conn, p.instance_id).await?;
            let node = nodes::get(&mut conn, instance.node_id).await?;
            (instance, node)
        };
        if instance.external_id.is_some() && instance.status == "running" {
            return Ok(());
        }
        let driver = crate::nodes::driver(
            &self.state.auth.keyring,
            &node,
            &self.state.settings.provisioning,
        )
        .map_err(JobError::Fail)?;
        ctx.set_step("create container").await?;
        let spec = InstanceSpec {
            instance_id: instance.id,
            hostname: p.hostname,
            resources: Resources {
                cpu_cores: p.cpu_cores,
                memory_mib: p.memory_mib,
                storage_gib: p.storage_gib,
            },
            swap_mib: 512,
            artifact: p.artifact,
            internal_port: None,
            host_port: None,
            env: Default::default(),
            labels: Default::default(),
            volumes: Default::default(),
            stack: None,
        };
        let created = driver.create_instance(&spec).await.map_err(job_error)?;
        ctx.set_step("record container").await?;
        let mut conn = ctx.pool.get().await?;
        nodes::mark_instance_created(&mut conn, instance.id, &created.external_id).await?;
        Ok(())
    }
}

/// Registers the instance jobs.
pub fn register_jobs(handlers: &mut Handlers, state: &AppState) {
    handlers.register(
        CREATE_JOB,
        Arc::new(CreateJob {
            state: state.clone(),
        }),
    );
}
