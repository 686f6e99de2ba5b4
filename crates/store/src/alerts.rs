//! Alerts: what an operator must look at (a dead job, a node gone offline).
//! One open alert per subject and kind: raising it again while it is open
//! changes nothing; resolving closes it.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use uuid::Uuid;

use crate::{Page, PageRequest, StoreError, schema::alerts};

/// How urgent an alert is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Severity {
    /// For the record.
    Info,
    /// Look soon.
    Warning,
    /// Look now.
    Critical,
}

impl Severity {
    /// Its name in the database and the API.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Info => "info",
            Self::Warning => "warning",
            Self::Critical => "critical",
        }
    }
}

/// An alert row.
#[derive(Debug, Clone, PartialEq, Queryable, Selectable)]
#[diesel(table_name = alerts, check_for_backend(diesel::pg::Pg))]
pub struct Alert {
    /// Id (UUIDv7).
    pub id: Uuid,
    /// What happened: `job.dead`, `node.offline`.
    pub kind: String,
    /// `info`, `warning` or `critical`.
    pub severity: String,
    /// For humans.
    pub message: String,
    /// The tenant concerned, if any.
    pub tenant_id: Option<Uuid>,
    /// What it is about: `job:<id>`, `node:<id>`.
    pub subject: String,
    /// Raised.
    pub created_at: DateTime<Utc>,
    /// Resolved, if it is.
    pub resolved_at: Option<DateTime<Utc>>,
}

/// An alert to raise.
#[derive(Debug, Clone, Copy)]
pub struct NewAlert<'a> {
    /// What happened.
    pub kind: &'a str,
    /// How urgent.
    pub severity: Severity,
    /// For humans.
    pub message: &'a str,
    /// The tenant concerned.
    pub tenant_id: Option<Uuid>,
    /// What it is about.
    pub subject: &'a str,
}

/// Raises an alert unless one of the same kind is open for the subject.
/// Returns whether a new one was raised.
///
/// # Errors
/// [`StoreError`].
pub async fn raise(conn: &mut AsyncPgConnection, alert: &NewAlert<'_>) -> Result<bool, StoreError> {
    let open: i64 = alerts::table
        .filter(alerts::subject.eq(alert.subject))
        .filter(alerts::kind.eq(alert.kind))
        .filter(alerts::resolved_at.is_null())
        .count()
        .get_result(conn)
        .await?;
    if open > 0 {
        return Ok(false);
    }
    diesel::insert_into(alerts::table)
        .values((
            alerts::id.eq(Uuid::now_v7()),
            alerts::kind.eq(alert.kind),
            alerts::severity.eq(alert.severity.as_str()),
            alerts::message.eq(alert.message),
            alerts::tenant_id.eq(alert.tenant_id),
            alerts::subject.eq(alert.subject),
        ))
        .execute(conn)
        .await?;
    Ok(true)
}

/// Resolves the open alerts of `kind` about `subject`; returns how many.
///
/// # Errors
/// [`StoreError`].
pub async fn resolve(
    conn: &mut AsyncPgConnection,
    kind: &str,
    subject: &str,
) -> Result<usize, StoreError> {
    Ok(diesel::update(
        alerts::table
            .filter(alerts::subject.eq(subject))
            .filter(alerts::kind.eq(kind))
            .filter(alerts::resolved_at.is_null()),
    )
    .set(alerts::resolved_at.eq(diesel::dsl::now))
    .execute(conn)
    .await?)
}

/// Alerts, oldest first; only open ones when `open_only`.
///
/// # Errors
/// [`StoreError`].
pub async fn list(
    conn: &mut AsyncPgConnection,
    open_only: bool,
    page: PageRequest,
) -> Result<Page<Alert>, StoreError> {
    let mut q = alerts::table.select(Alert::as_select()).into_boxed();
    if open_only {
        q = q.filter(alerts::resolved_at.is_null());
    }
    if let Some(after) = page.after {
        q = q.filter(alerts::id.gt(after));
    }
    let rows = q.order(alerts::id).limit(page.fetch()).load(conn).await?;
    Ok(Page::from_overfetch(rows, page, |a| a.id))
}
