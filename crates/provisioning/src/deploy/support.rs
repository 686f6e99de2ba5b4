//! What every provisioning job's steps share: crash points for the
//! crash-safety tests, driver and tenant database errors as job errors
//! (transient: retry; else: fail), and the activity rows the provisioner
//! records.

use tenantry_store::{activity::Activity, worker::JobError};
use uuid::Uuid;

use crate::DriverError;

/// Crash-safety testing: in debug builds, when `TENANTRY_CRASH_AT` names
/// `<job>:<step>` (e.g. `provision:container`), the process kills itself with
/// SIGKILL right after that step, as a crash would. Inert in release builds.
pub(super) fn crash_point(job: &str, step: &str) {
    if cfg!(debug_assertions)
        && std::env::var("TENANTRY_CRASH_AT").is_ok_and(|v| v == format!("{job}:{step}"))
    {
        tracing::warn!(job, step, "TENANTRY_CRASH_AT: killing this process");
        let _ = std::process::Command::new("kill")
            .args(["-KILL", &std::process::id().to_string()])
            .status();
    }
}

pub(super) fn driver_error(e: DriverError) -> JobError {
    if e.is_transient() {
        JobError::Retry(e.to_string())
    } else {
        JobError::Fail(e.to_string())
    }
}

pub(super) fn system(
    action: &str,
    tenant: Uuid,
    before: serde_json::Value,
    after: serde_json::Value,
) -> Activity {
    Activity {
        id: Uuid::now_v7(),
        occurred_at: chrono::Utc::now(),
        actor_id: None,
        actor_token_id: None,
        actor_label: "provisioner".into(),
        tenant_id: Some(tenant),
        action: action.into(),
        target_type: Some("tenant".into()),
        target_id: Some(tenant.to_string()),
        before: Some(before),
        after: Some(after),
        client_ip: None,
        user_agent: None,
        request_id: None,
    }
}

/// Whether a plan's deployment runs in its own container.
pub(super) fn is_dedicated(deployment: &str) -> bool {
    deployment != "shared"
}

pub(super) fn db_error(e: crate::tenant_db::TenantDbError) -> JobError {
    if e.is_transient() {
        JobError::Retry(e.to_string())
    } else {
        JobError::Fail(e.to_string())
    }
}
