//! A tenant's people: inviting members, accepting an invitation (which
//! creates the user with the password chosen), removing a member.

use secrecy::SecretString;
use serde_json::json;
use tenantry_domain::{Email, Role, ValidationErrors};
use tenantry_store::{
    AsyncConnection as _, StoreError,
    activity::{Actor, Entry},
    crypto::token_hash,
    identity::{self, NewUser, User},
    tenants::{self, Invitation},
};
use uuid::Uuid;

use crate::{Caller, Tenancy, TenancyError, lifecycle::find, password};

/// Invites someone to a tenant; returns the invitation link (shown once).
///
/// # Errors
/// `404`, `409 email-taken`, `422`.
pub async fn invite(
    t: &Tenancy,
    caller: &Caller,
    id_or_slug: &str,
    email: &str,
) -> Result<(Invitation, String), TenancyError> {
    let mut errors = ValidationErrors::new();
    let email = errors.check("email", Email::parse(email));
    let email = errors.into_result(|| email)?;
    let mut conn = t.pool.get().await?;
    let view = find(&mut conn, caller, id_or_slug).await?;
    let (invitation, token) = crate::signup::new_invitation(
        t,
        &mut conn,
        caller,
        view.tenant.id,
        &email,
        Role::TenantMember,
    )
    .await?;
    conn.transaction::<_, TenancyError, _>(async |conn| {
        tenants::insert_invitation(conn, &invitation).await?;
        caller
            .entry("member.invited")
            .tenant(Some(view.tenant.id))
            .target("invitation", invitation.id)
            .change(
                None,
                Some(json!({"email": invitation.email, "role": invitation.role})),
            )
            .record(conn)
            .await?;
        Ok(())
    })
    .await?;
    Ok((invitation, crate::signup::invitation_url(t, &token)))
}

/// Accepts an invitation: creates the user with the password chosen.
///
/// # Errors
/// `404` for an unknown, used, revoked or expired token; `422` for a weak
/// password; `409 email-taken`.
pub async fn accept_invitation(
    t: &Tenancy,
    token: &str,
    password: &SecretString,
    caller: &Caller,
) -> Result<User, TenancyError> {
    let mut errors = ValidationErrors::new();
    errors.check("password", password::check_new_password(password));
    errors.into_result(|| Some(()))?;
    let phc = password::hash_blocking(&t.hasher, password)
        .await
        .map_err(TenancyError::Internal)?;
    let mut conn = t.pool.get().await?;
    let hash = token_hash(token);
    conn.transaction::<_, TenancyError, _>(async |conn| {
        let inv = tenants::lock_live_invitation(conn, &hash)
            .await
            .map_err(|e| match e {
                StoreError::NotFound => {
                    TenancyError::NotFound("invitation (unknown, used or expired)".into())
                }
                other => other.into(),
            })?;
        let user = identity::create_user(
            conn,
            &NewUser {
                id: Uuid::now_v7(),
                email: &inv.email,
                password_hash: &phc,
                role: &inv.role,
                tenant_id: Some(inv.tenant_id),
            },
        )
        .await
        .map_err(|e| match e {
            StoreError::Conflict { .. } => TenancyError::conflict(
                "email-taken",
                format!("an account with email {} already exists", inv.email),
            ),
            other => other.into(),
        })?;
        tenants::mark_invitation_accepted(conn, inv.id).await?;
        Entry::by(
            &Actor {
                label: user.email.clone(),
                ..caller.actor.clone()
            },
            "member.joined",
        )
        .actor(user.id, user.tenant_id)
        .target("user", user.id)
        .change(None, Some(json!({"email": user.email, "role": user.role})))
        .record(conn)
        .await?;
        Ok(user)
    })
    .await
}

/// Removes a `tenant_member` from a tenant.
///
/// # Errors
/// `404` for no such member of that tenant.
pub async fn remove_member(
    t: &Tenancy,
    caller: &Caller,
    id_or_slug: &str,
    user_id: Uuid,
) -> Result<(), TenancyError> {
    let mut conn = t.pool.get().await?;
    let view = find(&mut conn, caller, id_or_slug).await?;
    conn.transaction::<_, TenancyError, _>(async |conn| {
        let removed = tenants::remove_member(conn, view.tenant.id, user_id)
            .await
            .map_err(|e| match e {
                StoreError::NotFound => TenancyError::NotFound(format!("member {user_id}")),
                other => other.into(),
            })?;
        caller
            .entry("member.removed")
            .tenant(Some(view.tenant.id))
            .target("user", user_id)
            .change(
                Some(json!({"email": removed.email, "role": removed.role})),
                None,
            )
            .record(conn)
            .await?;
        Ok(())
    })
    .await
}
