//! What every provisioning job's steps share: crash points for the
//! crash-safety tests and the activity rows the provisioner records. (Driver
//! and tenant database errors become job errors through
//! `tenantry_store::worker::Retryable`.)

use tenantry_store::activity::Entry;
use uuid::Uuid;

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

/// An activity row by the provisioner about `tenant`'s status.
pub(super) fn system(
    action: &str,
    tenant: Uuid,
    before: serde_json::Value,
    after: serde_json::Value,
) -> Entry {
    Entry::anonymous("provisioner", action)
        .tenant(Some(tenant))
        .target("tenant", tenant)
        .change(Some(before), Some(after))
}

/// Whether a plan's deployment runs in its own container.
pub(super) fn is_dedicated(deployment: &str) -> bool {
    deployment != "shared"
}

/// Whether a plan's deployment is "Dedicated HA".
pub(super) fn is_high_availability(deployment: &str) -> bool {
    deployment == tenantry_domain::DeploymentKind::DedicatedHa.as_str()
}
