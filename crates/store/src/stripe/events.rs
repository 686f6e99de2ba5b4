//! Stripe events: each webhook (or reconciled) event recorded once by its
//! event id, so a duplicate delivery changes nothing, and marked processed
//! once its effects are applied.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};

use crate::{StoreError, schema::stripe_events};

/// A Stripe event as recorded.
#[derive(Debug, Clone, PartialEq, Queryable, Selectable, Insertable)]
#[diesel(table_name = stripe_events, check_for_backend(diesel::pg::Pg))]
pub struct StripeEvent {
    /// Stripe's event id (`evt_…`).
    pub id: String,
    /// Its type, e.g. `invoice.paid`.
    #[diesel(column_name = type_)]
    pub kind: String,
    /// The API version its `data` was rendered with.
    pub api_version: Option<String>,
    /// The event as received.
    pub payload: serde_json::Value,
    /// `webhook`, `reconcile` or `operator`.
    pub source: String,
    /// When we first received it.
    pub received_at: DateTime<Utc>,
    /// When its effects were applied (or found to be none).
    pub processed_at: Option<DateTime<Utc>>,
    /// Why it had no effect, if it had none for a reason worth keeping.
    pub error: Option<String>,
}

/// Records an event unless its id is already recorded. Returns whether it
/// was new (`false`: a duplicate delivery, which must change nothing).
///
/// # Errors
/// [`StoreError`].
pub async fn insert_event(
    conn: &mut AsyncPgConnection,
    event: &StripeEvent,
) -> Result<bool, StoreError> {
    let n = diesel::insert_into(stripe_events::table)
        .values(event)
        .on_conflict(stripe_events::id)
        .do_nothing()
        .execute(conn)
        .await?;
    Ok(n == 1)
}

/// Marks an event processed, with the reason it had no effect, if any.
///
/// # Errors
/// [`StoreError`].
pub async fn mark_processed(
    conn: &mut AsyncPgConnection,
    id: &str,
    at: DateTime<Utc>,
    error: Option<&str>,
) -> Result<(), StoreError> {
    diesel::update(stripe_events::table.find(id))
        .set((
            stripe_events::processed_at.eq(at),
            stripe_events::error.eq(error),
        ))
        .execute(conn)
        .await?;
    Ok(())
}

/// The ids among `ids` that are already recorded.
///
/// # Errors
/// [`StoreError`].
pub async fn known_events(
    conn: &mut AsyncPgConnection,
    ids: &[String],
) -> Result<Vec<String>, StoreError> {
    Ok(stripe_events::table
        .filter(stripe_events::id.eq_any(ids))
        .select(stripe_events::id)
        .load(conn)
        .await?)
}

/// One recorded event.
///
/// # Errors
/// [`StoreError::NotFound`].
pub async fn find_event(conn: &mut AsyncPgConnection, id: &str) -> Result<StripeEvent, StoreError> {
    Ok(stripe_events::table
        .find(id)
        .select(StripeEvent::as_select())
        .first(conn)
        .await?)
}
