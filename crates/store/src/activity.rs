//! The append-only activity log: who did what, to what, from where.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use uuid::Uuid;

use crate::{Page, PageRequest, StoreError, schema::activity_log};

/// One activity row.
#[derive(Debug, Clone, PartialEq, Queryable, Selectable, Insertable)]
#[diesel(table_name = activity_log, check_for_backend(diesel::pg::Pg))]
pub struct Activity {
    /// Id (UUIDv7: time-ordered).
    pub id: Uuid,
    /// When it happened.
    pub occurred_at: DateTime<Utc>,
    /// The user who acted, if a user did.
    pub actor_id: Option<Uuid>,
    /// The API token used, if any.
    pub actor_token_id: Option<Uuid>,
    /// The actor as shown: an email, `scheduler`, `system`, or the email tried at a failed login.
    pub actor_label: String,
    /// The tenant concerned.
    pub tenant_id: Option<Uuid>,
    /// Dotted action name, e.g. `auth.login`, `api_token.created`, `product.updated`.
    pub action: String,
    /// Kind of the thing acted on, e.g. `user`, `product`.
    pub target_type: Option<String>,
    /// Its id or slug.
    pub target_id: Option<String>,
    /// State before, where it applies.
    pub before: Option<serde_json::Value>,
    /// State after, where it applies.
    pub after: Option<serde_json::Value>,
    /// Client IP.
    pub client_ip: Option<String>,
    /// Client user agent.
    pub user_agent: Option<String>,
    /// Request id.
    pub request_id: Option<String>,
}

/// Appends one row.
///
/// # Errors
/// [`StoreError`].
pub async fn record(conn: &mut AsyncPgConnection, row: &Activity) -> Result<(), StoreError> {
    diesel::insert_into(activity_log::table)
        .values(row)
        .execute(conn)
        .await?;
    Ok(())
}

/// Filters of the activity list; all optional, combined with AND.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ActivityFilter {
    /// Only this tenant's rows.
    pub tenant_id: Option<Uuid>,
    /// Only this actor's rows.
    pub actor_id: Option<Uuid>,
    /// Only this action.
    pub action: Option<String>,
    /// At or after.
    pub since: Option<DateTime<Utc>>,
    /// Before.
    pub until: Option<DateTime<Utc>>,
}

/// Rows matching `filter`, oldest first, one page.
///
/// # Errors
/// [`StoreError`].
pub async fn list(
    conn: &mut AsyncPgConnection,
    filter: &ActivityFilter,
    page: PageRequest,
) -> Result<Page<Activity>, StoreError> {
    let mut q = activity_log::table
        .order(activity_log::id)
        .limit(page.fetch())
        .select(Activity::as_select())
        .into_boxed();
    if let Some(t) = filter.tenant_id {
        q = q.filter(activity_log::tenant_id.eq(t));
    }
    if let Some(a) = filter.actor_id {
        q = q.filter(activity_log::actor_id.eq(a));
    }
    if let Some(action) = &filter.action {
        q = q.filter(activity_log::action.eq(action.clone()));
    }
    if let Some(s) = filter.since {
        q = q.filter(activity_log::occurred_at.ge(s));
    }
    if let Some(u) = filter.until {
        q = q.filter(activity_log::occurred_at.lt(u));
    }
    if let Some(after) = page.after {
        q = q.filter(activity_log::id.gt(after));
    }
    Ok(Page::from_overfetch(q.load(conn).await?, page, |a| a.id))
}
