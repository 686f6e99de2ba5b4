//! The sandbox billing clock's row: its offset from real time, which moves
//! billing time forward in the sandbox (like Stripe test clocks).

use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};

use crate::{StoreError, schema::sandbox_clock};

/// The sandbox clock's offset from real time, seconds.
///
/// # Errors
/// [`StoreError`].
pub async fn sandbox_offset(conn: &mut AsyncPgConnection) -> Result<i64, StoreError> {
    Ok(sandbox_clock::table
        .select(sandbox_clock::offset_seconds)
        .first(conn)
        .await
        .optional()?
        .unwrap_or(0))
}

/// Sets the sandbox clock's offset.
///
/// # Errors
/// [`StoreError`].
pub async fn set_sandbox_offset(
    conn: &mut AsyncPgConnection,
    offset_seconds: i64,
) -> Result<(), StoreError> {
    diesel::insert_into(sandbox_clock::table)
        .values((
            sandbox_clock::singleton.eq(true),
            sandbox_clock::offset_seconds.eq(offset_seconds),
        ))
        .on_conflict(sandbox_clock::singleton)
        .do_update()
        .set(sandbox_clock::offset_seconds.eq(offset_seconds))
        .execute(conn)
        .await?;
    Ok(())
}
