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

/// Who acts, as the activity log records them: a user (with the API token
/// used, if any) or a part of the system (`scheduler`, `provisioner`,
/// `worker`, `health-check`), with the client's details for requests.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Actor {
    /// The user, if a user acts.
    pub user_id: Option<Uuid>,
    /// The API token used.
    pub token_id: Option<Uuid>,
    /// As shown: an email, or the part of the system that acts.
    pub label: String,
    /// Client IP.
    pub client_ip: Option<String>,
    /// Client user agent.
    pub user_agent: Option<String>,
    /// Request id.
    pub request_id: Option<String>,
}

impl Actor {
    /// A part of the system acting on its own (`scheduler`, `provisioner`…).
    #[must_use]
    pub fn system(label: &str) -> Self {
        Self {
            label: label.to_owned(),
            ..Self::default()
        }
    }
}

/// One activity row being built: the one builder every writer uses.
#[derive(Debug, Clone)]
pub struct Entry {
    row: Activity,
}

impl Entry {
    /// `action` by `actor`, now.
    #[must_use]
    pub fn by(actor: &Actor, action: &str) -> Self {
        Self {
            row: Activity {
                id: Uuid::now_v7(),
                occurred_at: Utc::now(),
                actor_id: actor.user_id,
                actor_token_id: actor.token_id,
                actor_label: actor.label.chars().take(254).collect(),
                tenant_id: None,
                action: action.to_owned(),
                target_type: None,
                target_id: None,
                before: None,
                after: None,
                client_ip: actor.client_ip.clone(),
                user_agent: actor.user_agent.clone(),
                request_id: actor.request_id.clone(),
            },
        }
    }

    /// `action` by someone known only by `label` (a part of the system, or
    /// the email tried at a failed login), now.
    #[must_use]
    pub fn anonymous(label: &str, action: &str) -> Self {
        Self::by(&Actor::system(label), action)
    }

    /// The user the action was by (known after the password check), in
    /// their tenant.
    #[must_use]
    pub fn actor(mut self, user_id: Uuid, tenant_id: Option<Uuid>) -> Self {
        self.row.actor_id = Some(user_id);
        self.row.tenant_id = tenant_id;
        self
    }

    /// The tenant concerned.
    #[must_use]
    pub fn tenant(mut self, tenant_id: Option<Uuid>) -> Self {
        self.row.tenant_id = tenant_id;
        self
    }

    /// What was acted on.
    #[must_use]
    pub fn target(mut self, kind: &str, id: impl ToString) -> Self {
        self.row.target_type = Some(kind.to_owned());
        self.row.target_id = Some(id.to_string());
        self
    }

    /// State before and after (`None` where it does not apply).
    #[must_use]
    pub fn change(
        mut self,
        before: Option<serde_json::Value>,
        after: Option<serde_json::Value>,
    ) -> Self {
        self.row.before = before;
        self.row.after = after;
        self
    }

    /// When it happened, when not now (the billing clock's time).
    #[must_use]
    pub fn at(mut self, occurred_at: DateTime<Utc>) -> Self {
        self.row.occurred_at = occurred_at;
        self
    }

    /// The client's details (IP, user agent, request id).
    #[must_use]
    pub fn client(
        mut self,
        ip: Option<String>,
        user_agent: Option<String>,
        request_id: Option<String>,
    ) -> Self {
        self.row.client_ip = ip;
        self.row.user_agent = user_agent;
        self.row.request_id = request_id;
        self
    }

    /// The row as built.
    #[must_use]
    pub fn into_row(self) -> Activity {
        self.row
    }

    /// Appends the row.
    ///
    /// # Errors
    /// [`StoreError`].
    pub async fn record(self, conn: &mut AsyncPgConnection) -> Result<(), StoreError> {
        record(conn, &self.row).await
    }
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
