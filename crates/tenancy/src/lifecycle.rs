//! A tenant's life as its callers drive it: finding it, renaming it,
//! pausing, resuming, retrying and deleting it, and staff recording a
//! signup's payment. Every status change goes through `domain`'s
//! [`TenantStatus::transition`] on the locked row and enqueues, in the same
//! transaction, the job that carries it out.

use serde_json::json;
use tenantry_domain::{TenantStatus, ValidationErrors, billing::PlanChangeStatus};
use tenantry_store::{
    AsyncConnection as _, AsyncPgConnection, StoreError,
    jobs::{
        self, Job,
        kinds::{Deprovision, Provision, Resume, Suspend},
    },
    tenants::{self, TenantView},
};
use uuid::Uuid;

use crate::{Caller, Tenancy, TenancyError, signup::company_name};

/// The job that carries out a status change a caller asked for: pausing
/// stops the instance (`suspend`), resuming starts it (`resume`), retrying
/// provisions (`provision`), deleting removes it after a final backup
/// (`deprovision`). One live job per tenant and kind (dedup keys).
///
/// # Errors
/// [`StoreError`].
pub async fn follow_up(
    conn: &mut AsyncPgConnection,
    tenant_id: Uuid,
    to: TenantStatus,
) -> Result<Option<Job>, StoreError> {
    let job = match to {
        TenantStatus::Paused | TenantStatus::Suspended => {
            jobs::enqueue(conn, &Suspend { tenant_id }).await?
        }
        TenantStatus::Active => jobs::enqueue(conn, &Resume { tenant_id }).await?,
        TenantStatus::Provisioning => jobs::enqueue(conn, &Provision { tenant_id }).await?,
        TenantStatus::Deprovisioning => {
            jobs::enqueue(
                conn,
                &Deprovision {
                    tenant_id,
                    final_backup: true,
                },
            )
            .await?
        }
        TenantStatus::PendingPayment
        | TenantStatus::Failed
        | TenantStatus::Migrating
        | TenantStatus::Deleted => return Ok(None),
    };
    Ok(Some(job))
}

/// Finds a tenant the caller may see (by id or slug).
///
/// # Errors
/// `404` when it does not exist or is another tenant's.
pub async fn find(
    conn: &mut AsyncPgConnection,
    caller: &Caller,
    id_or_slug: &str,
) -> Result<TenantView, TenancyError> {
    tenants::find_tenant(conn, id_or_slug, caller.visibility())
        .await
        .map_err(|e| match e {
            StoreError::NotFound => TenancyError::NotFound(format!("tenant {id_or_slug:?}")),
            other => other.into(),
        })
}

/// Moves a tenant to `to` as its caller asks (checked against the lifecycle
/// on the locked row), writes the activity row and enqueues the job that
/// carries the change out ([`follow_up`]), at once. Deleting
/// (`deprovisioning`) also cancels its open plan change and ends its
/// subscription ([`tenantry_billing::closing::tenant_deleted`]).
///
/// # Errors
/// `404`, `409 invalid-transition` naming both states.
pub async fn transition(
    t: &Tenancy,
    caller: &Caller,
    id_or_slug: &str,
    to: TenantStatus,
) -> Result<(TenantView, Option<Job>), TenancyError> {
    let mut conn = t.pool.get().await?;
    let view = find(&mut conn, caller, id_or_slug).await?;
    let id = view.tenant.id;
    let now = t.clock.now(&mut conn).await?;
    let (tenant, job) = conn
        .transaction::<_, TenancyError, _>(async |conn| {
            let (from, updated) = tenants::transition(conn, id, to, None).await?;
            if to == TenantStatus::Deprovisioning {
                // Deleting a tenant ends its billing; a never-served one's
                // payments go back (`tenantry_billing::closing`).
                tenantry_billing::closing::tenant_deleted(conn, now, id, &caller.actor).await?;
                // Terminating or deleting a tenant cancels its plan change (Lago PR #345).
                if let Some(c) =
                    tenantry_store::billing::cancel_open_change(conn, id, PlanChangeStatus::OPEN)
                        .await?
                {
                    caller
                        .entry("plan_change.canceled")
                        .tenant(Some(id))
                        .target("plan_change", c.id)
                        .record(conn)
                        .await?;
                }
            }
            let job = follow_up(conn, id, to).await?;
            caller
                .entry("tenant.status_changed")
                .tenant(Some(id))
                .target("tenant", id)
                .change(
                    Some(json!({"status": from.as_str()})),
                    Some(json!({"status": to.as_str()})),
                )
                .record(conn)
                .await?;
            Ok((updated, job))
        })
        .await?;
    Ok((TenantView { tenant, ..view }, job))
}

/// Renames a tenant's company, optionally only at `expected_version` (`If-Match`).
///
/// # Errors
/// `404`, `412 precondition-failed`, `422`.
pub async fn rename(
    t: &Tenancy,
    caller: &Caller,
    id_or_slug: &str,
    company: &str,
    expected_version: Option<i32>,
) -> Result<TenantView, TenancyError> {
    let mut errors = ValidationErrors::new();
    let company = company_name(company, &mut errors);
    let company = errors.into_result(|| company)?;
    let mut conn = t.pool.get().await?;
    let view = find(&mut conn, caller, id_or_slug).await?;
    let updated = conn
        .transaction::<_, TenancyError, _>(async |conn| {
            let updated =
                tenants::update_company_name(conn, view.tenant.id, &company, expected_version)
                    .await?
                    .ok_or_else(|| {
                        TenancyError::PreconditionFailed(
                    "the tenant changed since you read it (If-Match is stale): read it again"
                        .into(),
                )
                    })?;
            caller
                .entry("tenant.updated")
                .tenant(Some(view.tenant.id))
                .target("tenant", view.tenant.id)
                .change(
                    Some(json!({"company_name": view.tenant.company_name})),
                    Some(json!({"company_name": updated.company_name})),
                )
                .record(conn)
                .await?;
            Ok(updated)
        })
        .await?;
    Ok(TenantView {
        tenant: updated,
        ..view
    })
}

/// Staff record a signup's payment made outside the provider (or with
/// payments disabled): the tenant goes `pending_payment → provisioning` with
/// its `provision` job, exactly as a paid checkout does.
///
/// # Errors
/// `404`, `409 invalid-transition` when the tenant is not awaiting payment.
pub async fn mark_signup_paid(
    t: &Tenancy,
    caller: &Caller,
    id_or_slug: &str,
    reference: &str,
) -> Result<(TenantView, Option<Job>), TenancyError> {
    let mut conn = t.pool.get().await?;
    let view = find(&mut conn, caller, id_or_slug).await?;
    let now = t.clock.now(&mut conn).await?;
    let actor = &caller.actor;
    let tenant_id = view.tenant.id;
    let job = conn
        .transaction::<_, TenancyError, _>(async |conn| {
            let (sub, _) = tenants::subscription_of(conn, tenant_id).await?;
            tenantry_billing::stripe::events::signup_paid_by(conn, now, &sub, reference, actor)
                .await?
                .map_err(|status| {
                    TenancyError::conflict(
                        "invalid-transition",
                        format!("the tenant is {status}, not awaiting payment"),
                    )
                })
        })
        .await?;
    let view = find(&mut conn, caller, &tenant_id.to_string()).await?;
    Ok((view, Some(job)))
}
