//! Customers and Checkout Sessions: the Stripe Customer id of a tenant's
//! subscription and the email it is created with, and the Checkout Sessions
//! opened, one per key, so a retry reuses the session.

use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use uuid::Uuid;

use crate::{
    StoreError,
    schema::{stripe_checkouts, subscriptions},
};

/// A checkout session we opened: its id and URL, by our key.
///
/// # Errors
/// [`StoreError`].
pub async fn checkout(
    conn: &mut AsyncPgConnection,
    key: &str,
) -> Result<Option<(String, String)>, StoreError> {
    Ok(stripe_checkouts::table
        .find(key)
        .select((stripe_checkouts::session_id, stripe_checkouts::url))
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
    Ok(stripe_checkouts::table
        .filter(stripe_checkouts::session_id.eq(session_id))
        .select(stripe_checkouts::tenant_id)
        .first(conn)
        .await
        .optional()?)
}

/// Remembers a checkout session (the first one stored for a key wins).
///
/// # Errors
/// [`StoreError`].
pub async fn save_checkout(
    conn: &mut AsyncPgConnection,
    key: &str,
    tenant_id: Uuid,
    session_id: &str,
    url: &str,
) -> Result<(), StoreError> {
    diesel::insert_into(stripe_checkouts::table)
        .values((
            stripe_checkouts::key.eq(key),
            stripe_checkouts::tenant_id.eq(tenant_id),
            stripe_checkouts::session_id.eq(session_id),
            stripe_checkouts::url.eq(url),
        ))
        .on_conflict(stripe_checkouts::key)
        .do_nothing()
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
