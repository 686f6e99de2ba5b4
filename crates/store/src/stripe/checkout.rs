//! Customers and Checkout Sessions: the Stripe Customer id of a tenant's
//! subscription and the email it is created with, and the Checkout Sessions
//! opened, one per key, so a retry reuses the session.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use uuid::Uuid;

use crate::{
    StoreError,
    schema::{stripe_checkouts, subscriptions},
};

/// A Checkout Session we opened, with what it asks for.
#[derive(Debug, Clone, PartialEq, Queryable, Selectable, Insertable)]
#[diesel(table_name = stripe_checkouts, check_for_backend(diesel::pg::Pg))]
pub struct Checkout {
    /// Our key: `signup:{subscription}`, `upgrade:{change}`, `renewal:…`.
    pub key: String,
    /// The tenant it is for.
    pub tenant_id: Uuid,
    /// Stripe's id (`cs_…`).
    pub session_id: String,
    /// Where the customer pays.
    pub url: String,
    /// Opened.
    pub created_at: DateTime<Utc>,
    /// `signup`, `upgrade` or `payment`.
    pub purpose: Option<String>,
    /// The plan change it pays for (upgrades).
    pub plan_change_id: Option<Uuid>,
    /// What it asks, in minor units of `currency`.
    pub amount_minor: Option<i64>,
    /// ISO 4217, upper case.
    pub currency: Option<String>,
    /// Stripe's `expires_at`: it cannot be paid after.
    pub expires_at: Option<DateTime<Utc>>,
    /// `open`, `complete` or `expired`.
    pub status: String,
}

/// The session of `key` a customer can still pay at `now`: the latest one,
/// open, expiring more than `margin` after `now`.
///
/// # Errors
/// [`StoreError`].
pub async fn checkout(
    conn: &mut AsyncPgConnection,
    key: &str,
    now: DateTime<Utc>,
    margin: chrono::Duration,
) -> Result<Option<Checkout>, StoreError> {
    Ok(stripe_checkouts::table
        .filter(stripe_checkouts::key.eq(key))
        .filter(stripe_checkouts::status.eq("open"))
        .filter(
            stripe_checkouts::expires_at
                .is_null()
                .or(stripe_checkouts::expires_at.gt(now + margin)),
        )
        .order(stripe_checkouts::created_at.desc())
        .select(Checkout::as_select())
        .first(conn)
        .await
        .optional()?)
}

/// How many sessions were opened for `key` (a new one's key suffix).
///
/// # Errors
/// [`StoreError`].
pub async fn checkouts_of(conn: &mut AsyncPgConnection, key: &str) -> Result<i64, StoreError> {
    Ok(stripe_checkouts::table
        .filter(stripe_checkouts::key.eq(key))
        .count()
        .get_result(conn)
        .await?)
}

/// A session we opened, by Stripe's id.
///
/// # Errors
/// [`StoreError`].
pub async fn session(
    conn: &mut AsyncPgConnection,
    session_id: &str,
) -> Result<Option<Checkout>, StoreError> {
    Ok(stripe_checkouts::table
        .find(session_id)
        .select(Checkout::as_select())
        .first(conn)
        .await
        .optional()?)
}

/// The tenant a Checkout Session we opened was for.
///
/// # Errors
/// [`StoreError`].
pub async fn tenant_of_session(
    conn: &mut AsyncPgConnection,
    session_id: &str,
) -> Result<Option<Uuid>, StoreError> {
    Ok(session(conn, session_id).await?.map(|c| c.tenant_id))
}

/// Remembers a session (a session id is stored once).
///
/// # Errors
/// [`StoreError`].
pub async fn save_checkout(conn: &mut AsyncPgConnection, c: &Checkout) -> Result<(), StoreError> {
    diesel::insert_into(stripe_checkouts::table)
        .values(c)
        .on_conflict(stripe_checkouts::session_id)
        .do_nothing()
        .execute(conn)
        .await?;
    Ok(())
}

/// Sets a session's status (`complete`, `expired`).
///
/// # Errors
/// [`StoreError`].
pub async fn set_checkout_status(
    conn: &mut AsyncPgConnection,
    session_id: &str,
    status: &str,
) -> Result<(), StoreError> {
    diesel::update(stripe_checkouts::table.find(session_id))
        .set(stripe_checkouts::status.eq(status))
        .execute(conn)
        .await?;
    Ok(())
}

/// Records the customer id of a tenant's subscription (before checkout).
///
/// # Errors
/// [`StoreError`].
pub async fn set_customer(
    conn: &mut AsyncPgConnection,
    subscription_id: Uuid,
    customer: &str,
) -> Result<(), StoreError> {
    diesel::update(subscriptions::table.find(subscription_id))
        .set((
            subscriptions::provider_customer_id.eq(customer),
            subscriptions::updated_at.eq(diesel::dsl::now),
        ))
        .execute(conn)
        .await?;
    Ok(())
}

/// The email of a tenant's owner (the first one; or the one invited to own it).
///
/// # Errors
/// [`StoreError::NotFound`].
pub async fn owner_email(
    conn: &mut AsyncPgConnection,
    tenant_id: Uuid,
) -> Result<String, StoreError> {
    use crate::schema::{invitations, users};
    let user = users::table
        .filter(users::tenant_id.eq(tenant_id))
        .filter(users::role.eq("tenant_owner"))
        .order(users::id)
        .select(users::email)
        .first(conn)
        .await
        .optional()?;
    match user {
        Some(e) => Ok(e),
        None => Ok(invitations::table
            .filter(invitations::tenant_id.eq(tenant_id))
            .filter(invitations::role.eq("tenant_owner"))
            .order(invitations::id)
            .select(invitations::email)
            .first(conn)
            .await?),
    }
}
