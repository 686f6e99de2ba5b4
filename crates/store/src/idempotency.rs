//! Stored responses for `Idempotency-Key` (zero2prod's idempotency
//! persistence, with an in-progress state so concurrent duplicates wait
//! their turn instead of running twice).

use chrono::{Duration, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};

use crate::{StoreError, schema::idempotency_keys};

/// How long a key is remembered.
pub const RETENTION: Duration = Duration::hours(24);

/// A stored response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredResponse {
    /// HTTP status.
    pub status: u16,
    /// The headers worth replaying (name, value).
    pub headers: Vec<(String, String)>,
    /// The body.
    pub body: Vec<u8>,
}

/// What starting a request with a key found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Begin {
    /// First use: run the request, then [`complete`] or [`abandon`].
    Proceed,
    /// The same request already completed: answer this.
    Replay(StoredResponse),
    /// The same key is still being served.
    InProgress,
    /// The key was used with a different request.
    Mismatch,
}

/// Claims `(scope, key)` for a request whose hash is `request_hash`.
///
/// # Errors
/// [`StoreError`].
pub async fn begin(
    conn: &mut AsyncPgConnection,
    scope: &str,
    key: &str,
    request_hash: &str,
) -> Result<Begin, StoreError> {
    // Forget an expired use of the key first.
    diesel::delete(
        idempotency_keys::table
            .filter(idempotency_keys::scope.eq(scope))
            .filter(idempotency_keys::key.eq(key))
            .filter(idempotency_keys::created_at.lt(Utc::now() - RETENTION)),
    )
    .execute(conn)
    .await?;
    let inserted = diesel::insert_into(idempotency_keys::table)
        .values((
            idempotency_keys::scope.eq(scope),
            idempotency_keys::key.eq(key),
            idempotency_keys::request_hash.eq(request_hash),
            idempotency_keys::status.eq("in_progress"),
        ))
        .on_conflict_do_nothing()
        .execute(conn)
        .await?;
    if inserted == 1 {
        return Ok(Begin::Proceed);
    }
    #[derive(Queryable)]
    struct Row {
        request_hash: String,
        status: String,
        response_status: Option<i32>,
        response_headers: Option<serde_json::Value>,
        response_body: Option<Vec<u8>>,
    }
    let row: Row = idempotency_keys::table
        .filter(idempotency_keys::scope.eq(scope))
        .filter(idempotency_keys::key.eq(key))
        .select((
            idempotency_keys::request_hash,
            idempotency_keys::status,
            idempotency_keys::response_status,
            idempotency_keys::response_headers,
            idempotency_keys::response_body,
        ))
        .first(conn)
        .await?;
    if row.request_hash != request_hash {
        return Ok(Begin::Mismatch);
    }
    if row.status != "completed" {
        return Ok(Begin::InProgress);
    }
    let headers = row
        .response_headers
        .and_then(|h| serde_json::from_value::<Vec<(String, String)>>(h).ok())
        .unwrap_or_default();
    Ok(Begin::Replay(StoredResponse {
        status: u16::try_from(row.response_status.unwrap_or(200)).unwrap_or(200),
        headers,
        body: row.response_body.unwrap_or_default(),
    }))
}

/// Stores the response of a request that [`begin`] let proceed.
///
/// # Errors
/// [`StoreError`].
pub async fn complete(
    conn: &mut AsyncPgConnection,
    scope: &str,
    key: &str,
    response: &StoredResponse,
) -> Result<(), StoreError> {
    diesel::update(
        idempotency_keys::table
            .filter(idempotency_keys::scope.eq(scope))
            .filter(idempotency_keys::key.eq(key)),
    )
    .set((
        idempotency_keys::status.eq("completed"),
        idempotency_keys::response_status.eq(i32::from(response.status)),
        idempotency_keys::response_headers
            .eq(serde_json::to_value(&response.headers).unwrap_or_default()),
        idempotency_keys::response_body.eq(&response.body),
    ))
    .execute(conn)
    .await?;
    Ok(())
}

/// Forgets a key whose request failed in a way worth retrying (5xx).
///
/// # Errors
/// [`StoreError`].
pub async fn abandon(
    conn: &mut AsyncPgConnection,
    scope: &str,
    key: &str,
) -> Result<(), StoreError> {
    diesel::delete(
        idempotency_keys::table
            .filter(idempotency_keys::scope.eq(scope))
            .filter(idempotency_keys::key.eq(key)),
    )
    .execute(conn)
    .await?;
    Ok(())
}
