//! `/v1/activity`: the audit trail.

use actix_web::{get, web};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tenantry_domain::Scope;
use tenantry_store::activity::{self, Activity as ActivityRow, ActivityFilter};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use crate::{
    AppState,
    auth::Principal,
    error::ApiResult,
    extract::Query,
    pagination::{Page, PageParams},
};

/// One activity entry.
#[derive(Debug, Serialize, ToSchema)]
pub struct Activity {
    /// Id.
    pub id: Uuid,
    /// When (RFC 3339).
    pub occurred_at: DateTime<Utc>,
    /// The user who acted.
    pub actor_id: Option<Uuid>,
    /// The API token used.
    pub actor_token_id: Option<Uuid>,
    /// The actor as shown (email, `scheduler`, or the email tried at a failed login).
    pub actor: String,
    /// The tenant concerned.
    pub tenant_id: Option<Uuid>,
    /// Dotted action, e.g. `auth.login`, `api_token.created`, `product.updated`.
    pub action: String,
    /// Kind of thing acted on.
    pub target_type: Option<String>,
    /// Its id.
    pub target_id: Option<String>,
    /// State before.
    pub before: Option<serde_json::Value>,
    /// State after.
    pub after: Option<serde_json::Value>,
    /// Client IP.
    pub client_ip: Option<String>,
    /// User agent.
    pub user_agent: Option<String>,
    /// Request id.
    pub request_id: Option<String>,
}

/// The API view of an activity row.
pub fn dto(a: ActivityRow) -> Activity {
    Activity {
        id: a.id,
        occurred_at: a.occurred_at,
        actor_id: a.actor_id,
        actor_token_id: a.actor_token_id,
        actor: a.actor_label,
        tenant_id: a.tenant_id,
        action: a.action,
        target_type: a.target_type,
        target_id: a.target_id,
        before: a.before,
        after: a.after,
        client_ip: a.client_ip,
        user_agent: a.user_agent,
        request_id: a.request_id,
    }
}

/// Filters of the activity list.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ActivityQuery {
    /// Only this tenant (tenant users always see only their own).
    pub tenant: Option<Uuid>,
    /// Only this actor (user id).
    pub actor: Option<Uuid>,
    /// Only this action, e.g. `auth.login_failed`.
    pub action: Option<String>,
    /// At or after (RFC 3339).
    pub since: Option<DateTime<Utc>>,
    /// Before (RFC 3339).
    pub until: Option<DateTime<Utc>>,
    /// Most items, 1–200 (default 50).
    pub limit: Option<u32>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

/// The activity log, oldest first. Staff see everything (filterable); tenant
/// users see their tenant's entries only.
#[utoipa::path(
    context_path = "/v1", tag = "activity", security(("bearer" = [])),
    params(ActivityQuery),
    responses(
        (status = 200, description = "A page of entries", body = Page<Activity>),
        (status = 403, description = "Needs activity:read", body = crate::error::Problem, content_type = "application/problem+json"),
    )
)]
#[get("/activity")]
pub async fn list(
    state: web::Data<AppState>,
    principal: Principal,
    Query(q): Query<ActivityQuery>,
) -> ApiResult<web::Json<Page<Activity>>> {
    principal.require(Scope::ActivityRead)?;
    let page = PageParams {
        limit: q.limit,
        cursor: q.cursor,
    }
    .to_request()?;
    let filter = ActivityFilter {
        // A confined caller's tenant overrides whatever they asked for.
        tenant_id: principal.tenant_id.or(q.tenant),
        actor_id: q.actor,
        action: q.action,
        since: q.since,
        until: q.until,
    };
    let mut conn = state.pool.get().await?;
    let rows = activity::list(&mut conn, &filter, page).await?;
    Ok(web::Json(Page::try_from_store(rows, |a| Ok(dto(a)))?))
}
