//! The sandbox billing clock (`TENANTRY_SANDBOX=1` only): read it, move it
//! forward (which runs the billing processor at the new time).

use actix_web::{get, post, web};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tenantry_billing::engine;
use tenantry_store::billing as store;
use utoipa::ToSchema;

use super::clock;
use crate::{
    ApiError, AppState,
    auth::{ClientInfo, Principal},
    error::ApiResult,
    extract::Json,
};

/// The billing clock.
#[derive(Debug, Serialize, ToSchema)]
pub struct Clock {
    /// The clock's now.
    pub now: DateTime<Utc>,
    /// Its offset from real time, seconds.
    pub offset_seconds: i64,
}

/// How to move the sandbox clock: forward by seconds, or to an instant.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ClockInput {
    /// Seconds to move forward (≥ 0).
    pub advance_seconds: Option<i64>,
    /// An instant to move to (not before the clock's now).
    pub now: Option<DateTime<Utc>>,
}

async fn clock_dto(state: &AppState) -> ApiResult<Clock> {
    let mut conn = state.pool.get().await?;
    let offset = store::sandbox_offset(&mut conn).await?;
    let now = clock(state).now(&mut conn).await?;
    Ok(Clock {
        now,
        offset_seconds: offset,
    })
}

/// The sandbox billing clock (`TENANTRY_SANDBOX=1` only).
#[utoipa::path(
    context_path = "/v1", tag = "sandbox", security(("bearer" = [])),
    responses((status = 200, description = "The clock", body = Clock))
)]
#[get("/sandbox/clock")]
pub async fn get_clock(
    state: web::Data<AppState>,
    principal: Principal,
) -> ApiResult<web::Json<Clock>> {
    principal.require_admin()?;
    Ok(web::Json(clock_dto(&state).await?))
}

/// Move the sandbox billing clock forward (admins; `TENANTRY_SANDBOX=1` only),
/// then run the billing processor at the new time, like Stripe test clocks.
#[utoipa::path(
    context_path = "/v1", tag = "sandbox", security(("bearer" = [])),
    request_body = ClockInput,
    responses(
        (status = 200, description = "Moved; the processor ran", body = Clock),
        (status = 422, description = "Neither or both fields, or backwards", body = crate::error::Problem, content_type = "application/problem+json"),
    )
)]
#[post("/sandbox/clock")]
pub async fn move_clock(
    state: web::Data<AppState>,
    principal: Principal,
    client: ClientInfo,
    Json(input): Json<ClockInput>,
) -> ApiResult<web::Json<Clock>> {
    principal.require_admin()?;
    let mut conn = state.pool.get().await?;
    let offset = store::sandbox_offset(&mut conn).await?;
    let now = clock(&state).now(&mut conn).await?;
    let delta = match (input.advance_seconds, input.now) {
        (Some(s), None) if s >= 0 => s,
        (None, Some(t)) if t >= now => (t - now).num_seconds(),
        _ => {
            return Err(ApiError::Validation {
                detail: "give advance_seconds (≥ 0) or now (not in the clock's past), not both"
                    .into(),
                errors: vec![crate::error::FieldProblem {
                    field: "advance_seconds".into(),
                    message: "exactly one of advance_seconds, now".into(),
                }],
            });
        }
    };
    store::set_sandbox_offset(&mut conn, offset + delta).await?;
    crate::audit::by(&principal, "sandbox.clock_moved", &client)
        .change(
            Some(serde_json::json!({"offset_seconds": offset})),
            Some(serde_json::json!({"offset_seconds": offset + delta})),
        )
        .record(&mut conn)
        .await?;
    drop(conn);
    engine::process_due(
        &state.pool,
        state.gateway.as_ref(),
        &clock(&state),
        &state.settings.billing,
    )
    .await?;
    Ok(web::Json(clock_dto(&state).await?))
}
