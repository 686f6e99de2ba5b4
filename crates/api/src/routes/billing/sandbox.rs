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

/// The most one call moves the sandbox clock: 10 years, in seconds.
pub const MAX_ADVANCE_SECONDS: i64 = 10 * 366 * 86_400;

/// The furthest the sandbox clock runs ahead of real time: 100 years, in
/// seconds (far inside every timestamp range the clock meets: chrono's,
/// PostgreSQL's, Stripe's).
pub const MAX_OFFSET_SECONDS: i64 = 100 * 366 * 86_400;

/// How to move the sandbox clock: forward by seconds, or to an instant.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ClockInput {
    /// Seconds to move forward, 0 to 316,224,000 (10 years).
    pub advance_seconds: Option<i64>,
    /// An instant to move to: not before the clock's now, at most 10 years
    /// after it.
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
/// An API token needs `billing:write`. A call moves it at most
/// [`MAX_ADVANCE_SECONDS`], and it runs at most
/// [`MAX_OFFSET_SECONDS`] ahead of real time (`422` beyond, nothing moved).
#[utoipa::path(
    context_path = "/v1", tag = "sandbox", security(("bearer" = [])),
    request_body = ClockInput,
    responses(
        (status = 200, description = "Moved; the processor ran", body = Clock),
        (status = 403, description = "Not an admin, or an API token without `billing:write`", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 422, description = "Neither or both fields, backwards, more than 10 years in one call, or more than 100 years ahead of real time", body = crate::error::Problem, content_type = "application/problem+json"),
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
    principal.require(tenantry_domain::Scope::BillingWrite)?;
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
    let field = if input.now.is_some() {
        "now"
    } else {
        "advance_seconds"
    };
    if delta > MAX_ADVANCE_SECONDS {
        return Err(ApiError::Validation {
            detail: format!(
                "the sandbox clock moves at most {MAX_ADVANCE_SECONDS} s (10 years) per call"
            ),
            errors: vec![crate::error::FieldProblem {
                field: field.into(),
                message: "at most 10 years ahead".into(),
            }],
        });
    }
    let Some(moved) = offset
        .checked_add(delta)
        .filter(|o| *o <= MAX_OFFSET_SECONDS)
    else {
        return Err(ApiError::Validation {
            detail: format!(
                "the sandbox clock runs at most {MAX_OFFSET_SECONDS} s (100 years) ahead of real time"
            ),
            errors: vec![crate::error::FieldProblem {
                field: field.into(),
                message: "beyond 100 years ahead of real time".into(),
            }],
        });
    };
    store::set_sandbox_offset(&mut conn, moved).await?;
    crate::audit::by(&principal, "sandbox.clock_moved", &client)
        .change(
            Some(serde_json::json!({"offset_seconds": offset})),
            Some(serde_json::json!({"offset_seconds": moved})),
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
