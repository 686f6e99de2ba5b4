//! Users, refresh-token families, API tokens and TOTP recovery codes.

use chrono::{DateTime, Duration, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use uuid::Uuid;

use crate::{
    Page, PageRequest, StoreError,
    schema::{api_tokens, recovery_codes, refresh_tokens, users},
};

/// A user row.
#[derive(Debug, Clone, PartialEq, Queryable, Selectable, Identifiable)]
#[diesel(table_name = users, check_for_backend(diesel::pg::Pg))]
pub struct User {
    /// Id (UUIDv7).
    pub id: Uuid,
    /// Lowercased email, unique.
    pub email: String,
    /// argon2id PHC string.
    pub password_hash: String,
    /// `admin`, `operator`, `tenant_owner` or `tenant_member`.
    pub role: String,
    /// The tenant, for tenant roles.
    pub tenant_id: Option<Uuid>,
    /// `active` or `disabled`.
    pub status: String,
    /// Sealed TOTP seed.
    pub totp_secret: Option<Vec<u8>>,
    /// Key id the seed is sealed with.
    pub totp_key_id: Option<String>,
    /// 2FA required at login.
    pub totp_enabled: bool,
    /// Last accepted TOTP time step.
    pub totp_last_step: Option<i64>,
    /// Consecutive failed logins.
    pub failed_logins: i32,
    /// Logins refused until then.
    pub locked_until: Option<DateTime<Utc>>,
    /// Created.
    pub created_at: DateTime<Utc>,
    /// Last changed.
    pub updated_at: DateTime<Utc>,
}

/// A user to create.
#[derive(Debug, Clone, Insertable)]
#[diesel(table_name = users)]
pub struct NewUser<'a> {
    /// Id (UUIDv7).
    pub id: Uuid,
    /// Lowercased email.
    pub email: &'a str,
    /// argon2id PHC string.
    pub password_hash: &'a str,
    /// Role.
    pub role: &'a str,
    /// Tenant, exactly for tenant roles.
    pub tenant_id: Option<Uuid>,
}

/// Inserts a user.
///
/// # Errors
/// [`StoreError::Conflict`] (`users_email_key`) when the email is taken.
pub async fn create_user(
    conn: &mut AsyncPgConnection,
    user: &NewUser<'_>,
) -> Result<User, StoreError> {
    Ok(diesel::insert_into(users::table)
        .values(user)
        .returning(User::as_returning())
        .get_result(conn)
        .await?)
}

/// The user with this (lowercased) email, if any.
///
/// # Errors
/// [`StoreError::Unavailable`] or [`StoreError::Query`].
pub async fn find_user_by_email(
    conn: &mut AsyncPgConnection,
    email: &str,
) -> Result<Option<User>, StoreError> {
    Ok(users::table
        .filter(users::email.eq(email))
        .select(User::as_select())
        .first(conn)
        .await
        .optional()?)
}

/// The user with this id.
///
/// # Errors
/// [`StoreError::NotFound`].
pub async fn find_user(conn: &mut AsyncPgConnection, id: Uuid) -> Result<User, StoreError> {
    Ok(users::table
        .find(id)
        .select(User::as_select())
        .first(conn)
        .await?)
}

/// Counts one failed login (a wrong password, TOTP or recovery code),
/// atomically: the count is incremented by the `UPDATE` itself, on the
/// row's latest version, so concurrent failures each count. At
/// `max_failures` consecutive failures the account is locked until
/// `now + lock_for` and the count restarts. Returns the user as updated and
/// whether this failure locked it.
///
/// # Errors
/// [`StoreError`].
pub async fn record_login_failure(
    conn: &mut AsyncPgConnection,
    id: Uuid,
    max_failures: i32,
    lock_for: Duration,
) -> Result<(User, bool), StoreError> {
    // Microseconds, as PostgreSQL keeps it (so the returned row compares).
    let lock_until = chrono::SubsecRound::trunc_subsecs(Utc::now() + lock_for, 6);
    let reaches = (users::failed_logins + 1).ge(max_failures);
    let user: User = diesel::update(users::table.find(id))
        .set((
            users::failed_logins.eq(diesel::dsl::case_when::<_, _, diesel::sql_types::Integer>(
                reaches, 0,
            )
            .otherwise(users::failed_logins + 1)),
            users::locked_until.eq(diesel::dsl::case_when::<
                _,
                _,
                diesel::sql_types::Nullable<diesel::sql_types::Timestamptz>,
            >(
                (users::failed_logins + 1).ge(max_failures),
                Some(lock_until),
            )
            .otherwise(users::locked_until)),
        ))
        .returning(User::as_returning())
        .get_result(conn)
        .await?;
    let locked_now = user.failed_logins == 0 && user.locked_until == Some(lock_until);
    Ok((user, locked_now))
}

/// Clears failed logins and any lock after a successful login.
///
/// # Errors
/// [`StoreError`].
pub async fn record_login_success(
    conn: &mut AsyncPgConnection,
    id: Uuid,
) -> Result<(), StoreError> {
    diesel::update(users::table.find(id))
        .set((
            users::failed_logins.eq(0),
            users::locked_until.eq(None::<DateTime<Utc>>),
        ))
        .execute(conn)
        .await?;
    Ok(())
}

/// Stores a new (not yet enabled) TOTP seed, sealed.
///
/// # Errors
/// [`StoreError`].
pub async fn set_pending_totp(
    conn: &mut AsyncPgConnection,
    id: Uuid,
    sealed: &[u8],
    key_id: &str,
) -> Result<(), StoreError> {
    diesel::update(users::table.find(id).filter(users::totp_enabled.eq(false)))
        .set((
            users::totp_secret.eq(sealed),
            users::totp_key_id.eq(key_id),
            users::updated_at.eq(diesel::dsl::now),
        ))
        .execute(conn)
        .await?;
    Ok(())
}

/// Accepts TOTP time step `step` for the user once: true when it is newer
/// than the last accepted step (and records it), false for a replay.
///
/// # Errors
/// [`StoreError`].
pub async fn accept_totp_step(
    conn: &mut AsyncPgConnection,
    id: Uuid,
    step: i64,
) -> Result<bool, StoreError> {
    let n = diesel::update(
        users::table.find(id).filter(
            users::totp_last_step
                .is_null()
                .or(users::totp_last_step.lt(step)),
        ),
    )
    .set(users::totp_last_step.eq(step))
    .execute(conn)
    .await?;
    Ok(n == 1)
}

/// Turns 2FA on and replaces the recovery codes with `code_hashes`, at once.
///
/// # Errors
/// [`StoreError`].
pub async fn enable_totp(
    conn: &mut AsyncPgConnection,
    id: Uuid,
    code_hashes: &[String],
) -> Result<(), StoreError> {
    conn.transaction::<_, StoreError, _>(async |conn| {
        diesel::update(users::table.find(id))
            .set((
                users::totp_enabled.eq(true),
                users::updated_at.eq(diesel::dsl::now),
            ))
            .execute(conn)
            .await?;
        diesel::delete(recovery_codes::table.filter(recovery_codes::user_id.eq(id)))
            .execute(conn)
            .await?;
        let rows: Vec<_> = code_hashes
            .iter()
            .map(|h| {
                (
                    recovery_codes::id.eq(Uuid::now_v7()),
                    recovery_codes::user_id.eq(id),
                    recovery_codes::code_hash.eq(h),
                )
            })
            .collect();
        diesel::insert_into(recovery_codes::table)
            .values(rows)
            .execute(conn)
            .await?;
        Ok(())
    })
    .await
}

/// Turns 2FA off, forgets the seed and the recovery codes.
///
/// # Errors
/// [`StoreError`].
pub async fn disable_totp(conn: &mut AsyncPgConnection, id: Uuid) -> Result<(), StoreError> {
    conn.transaction::<_, StoreError, _>(async |conn| {
        diesel::update(users::table.find(id))
            .set((
                users::totp_enabled.eq(false),
                users::totp_secret.eq(None::<Vec<u8>>),
                users::totp_key_id.eq(None::<String>),
                users::totp_last_step.eq(None::<i64>),
                users::updated_at.eq(diesel::dsl::now),
            ))
            .execute(conn)
            .await?;
        diesel::delete(recovery_codes::table.filter(recovery_codes::user_id.eq(id)))
            .execute(conn)
            .await?;
        Ok(())
    })
    .await
}

/// Uses up a recovery code: true when an unused code with this hash existed.
///
/// # Errors
/// [`StoreError`].
pub async fn use_recovery_code(
    conn: &mut AsyncPgConnection,
    user_id: Uuid,
    code_hash: &str,
) -> Result<bool, StoreError> {
    let n = diesel::update(
        recovery_codes::table
            .filter(recovery_codes::user_id.eq(user_id))
            .filter(recovery_codes::code_hash.eq(code_hash))
            .filter(recovery_codes::used_at.is_null()),
    )
    .set(recovery_codes::used_at.eq(diesel::dsl::now))
    .execute(conn)
    .await?;
    Ok(n == 1)
}

/// Starts a refresh-token family (a login) with its first token.
///
/// # Errors
/// [`StoreError`].
pub async fn start_refresh_family(
    conn: &mut AsyncPgConnection,
    user_id: Uuid,
    token_hash: &str,
    expires_at: DateTime<Utc>,
) -> Result<Uuid, StoreError> {
    let family = Uuid::now_v7();
    diesel::insert_into(refresh_tokens::table)
        .values((
            refresh_tokens::id.eq(Uuid::now_v7()),
            refresh_tokens::family_id.eq(family),
            refresh_tokens::user_id.eq(user_id),
            refresh_tokens::token_hash.eq(token_hash),
            refresh_tokens::expires_at.eq(expires_at),
        ))
        .execute(conn)
        .await?;
    Ok(family)
}

/// What presenting a refresh token did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rotation {
    /// The token was current: it is replaced by the new one.
    Rotated {
        /// Its user.
        user_id: Uuid,
        /// Its family.
        family_id: Uuid,
    },
    /// The token had already been rotated: someone replayed it, so the whole
    /// family is now revoked.
    ReuseDetected {
        /// Its user.
        user_id: Uuid,
        /// The revoked family.
        family_id: Uuid,
    },
    /// Unknown, expired or revoked.
    Invalid,
}

/// Presents refresh token `token_hash`: rotates it to `new_hash` when current,
/// revokes its family when it was already rotated (reuse detection,
/// RFC 6819 §5.2.2.3 / OAuth 2.0 Security BCP §4.14).
///
/// # Errors
/// [`StoreError`]; nothing changes then.
pub async fn rotate_refresh_token(
    conn: &mut AsyncPgConnection,
    token_hash: &str,
    new_hash: &str,
    new_expires_at: DateTime<Utc>,
) -> Result<Rotation, StoreError> {
    let token_hash = token_hash.to_owned();
    let new_hash = new_hash.to_owned();
    conn.transaction::<_, StoreError, _>(async move |conn| {
        #[derive(Queryable)]
        struct Row {
            id: Uuid,
            family_id: Uuid,
            user_id: Uuid,
            expires_at: DateTime<Utc>,
            rotated_at: Option<DateTime<Utc>>,
            revoked_at: Option<DateTime<Utc>>,
        }
        let row: Option<Row> = refresh_tokens::table
            .filter(refresh_tokens::token_hash.eq(&token_hash))
            .select((
                refresh_tokens::id,
                refresh_tokens::family_id,
                refresh_tokens::user_id,
                refresh_tokens::expires_at,
                refresh_tokens::rotated_at,
                refresh_tokens::revoked_at,
            ))
            .for_update()
            .first(conn)
            .await
            .optional()?;
        let Some(row) = row else {
            return Ok(Rotation::Invalid);
        };
        if row.revoked_at.is_some() || row.expires_at <= Utc::now() {
            return Ok(Rotation::Invalid);
        }
        if row.rotated_at.is_some() {
            revoke_family(conn, row.family_id).await?;
            return Ok(Rotation::ReuseDetected {
                user_id: row.user_id,
                family_id: row.family_id,
            });
        }
        diesel::update(refresh_tokens::table.find(row.id))
            .set(refresh_tokens::rotated_at.eq(diesel::dsl::now))
            .execute(conn)
            .await?;
        diesel::insert_into(refresh_tokens::table)
            .values((
                refresh_tokens::id.eq(Uuid::now_v7()),
                refresh_tokens::family_id.eq(row.family_id),
                refresh_tokens::user_id.eq(row.user_id),
                refresh_tokens::token_hash.eq(&new_hash),
                refresh_tokens::expires_at.eq(new_expires_at),
            ))
            .execute(conn)
            .await?;
        Ok(Rotation::Rotated {
            user_id: row.user_id,
            family_id: row.family_id,
        })
    })
    .await
}

/// The live family and user of a current refresh token, without rotating it.
///
/// # Errors
/// [`StoreError`].
pub async fn refresh_token_family(
    conn: &mut AsyncPgConnection,
    token_hash: &str,
) -> Result<Option<(Uuid, Uuid)>, StoreError> {
    Ok(refresh_tokens::table
        .filter(refresh_tokens::token_hash.eq(token_hash))
        .filter(refresh_tokens::revoked_at.is_null())
        .select((refresh_tokens::family_id, refresh_tokens::user_id))
        .first(conn)
        .await
        .optional()?)
}

/// Revokes every token of a family (logout, reuse detected).
///
/// # Errors
/// [`StoreError`].
pub async fn revoke_family(
    conn: &mut AsyncPgConnection,
    family_id: Uuid,
) -> Result<(), StoreError> {
    diesel::update(
        refresh_tokens::table
            .filter(refresh_tokens::family_id.eq(family_id))
            .filter(refresh_tokens::revoked_at.is_null()),
    )
    .set(refresh_tokens::revoked_at.eq(diesel::dsl::now))
    .execute(conn)
    .await?;
    Ok(())
}

/// An API token row (never holds the secret).
#[derive(Debug, Clone, PartialEq, Queryable, Selectable, Identifiable)]
#[diesel(table_name = api_tokens, check_for_backend(diesel::pg::Pg))]
pub struct ApiToken {
    /// Id.
    pub id: Uuid,
    /// Owner: the token acts with this user's role, narrowed by its scopes.
    pub user_id: Uuid,
    /// Name given at creation.
    pub name: String,
    /// SHA-256 of the secret.
    pub token_hash: String,
    /// First characters of the secret.
    pub prefix: String,
    /// Scopes.
    pub scopes: Vec<Option<String>>,
    /// Tenant the token is bound to.
    pub tenant_id: Option<Uuid>,
    /// Expiry.
    pub expires_at: Option<DateTime<Utc>>,
    /// Last use.
    pub last_used_at: Option<DateTime<Utc>>,
    /// Revocation time.
    pub revoked_at: Option<DateTime<Utc>>,
    /// Created.
    pub created_at: DateTime<Utc>,
}

/// An API token to create.
#[derive(Debug, Clone, Insertable)]
#[diesel(table_name = api_tokens)]
pub struct NewApiToken<'a> {
    /// Id (UUIDv7).
    pub id: Uuid,
    /// Owner.
    pub user_id: Uuid,
    /// Name.
    pub name: &'a str,
    /// SHA-256 of the secret.
    pub token_hash: &'a str,
    /// First characters of the secret.
    pub prefix: &'a str,
    /// Scopes.
    pub scopes: Vec<Option<String>>,
    /// Bound tenant.
    pub tenant_id: Option<Uuid>,
    /// Expiry.
    pub expires_at: Option<DateTime<Utc>>,
}

/// Inserts an API token.
///
/// # Errors
/// [`StoreError`].
pub async fn create_api_token(
    conn: &mut AsyncPgConnection,
    t: &NewApiToken<'_>,
) -> Result<ApiToken, StoreError> {
    Ok(diesel::insert_into(api_tokens::table)
        .values(t)
        .returning(ApiToken::as_returning())
        .get_result(conn)
        .await?)
}

/// The live (unrevoked, unexpired) token with this hash and its owner, and
/// marks it used now.
///
/// # Errors
/// [`StoreError`].
pub async fn use_api_token(
    conn: &mut AsyncPgConnection,
    token_hash: &str,
) -> Result<Option<(ApiToken, User)>, StoreError> {
    let now = Utc::now();
    let found: Option<(ApiToken, User)> = api_tokens::table
        .inner_join(users::table)
        .filter(api_tokens::token_hash.eq(token_hash))
        .filter(api_tokens::revoked_at.is_null())
        .filter(
            api_tokens::expires_at
                .is_null()
                .or(api_tokens::expires_at.gt(now)),
        )
        .select((ApiToken::as_select(), User::as_select()))
        .first(conn)
        .await
        .optional()?;
    if let Some((token, _)) = &found {
        diesel::update(api_tokens::table.find(token.id))
            .set(api_tokens::last_used_at.eq(now))
            .execute(conn)
            .await?;
    }
    Ok(found)
}

/// Unrevoked API tokens, of one owner or (`None`) all, oldest first.
///
/// # Errors
/// [`StoreError`].
pub async fn list_api_tokens(
    conn: &mut AsyncPgConnection,
    owner: Option<Uuid>,
    page: PageRequest,
) -> Result<Page<ApiToken>, StoreError> {
    let mut q = api_tokens::table
        .filter(api_tokens::revoked_at.is_null())
        .order(api_tokens::id)
        .limit(page.fetch())
        .select(ApiToken::as_select())
        .into_boxed();
    if let Some(owner) = owner {
        q = q.filter(api_tokens::user_id.eq(owner));
    }
    if let Some(after) = page.after {
        q = q.filter(api_tokens::id.gt(after));
    }
    Ok(Page::from_overfetch(q.load(conn).await?, page, |t| t.id))
}

/// Revokes an unrevoked token, of `owner` when given; returns it as it was.
///
/// # Errors
/// [`StoreError::NotFound`] when there is no such token (for that owner).
pub async fn revoke_api_token(
    conn: &mut AsyncPgConnection,
    id: Uuid,
    owner: Option<Uuid>,
) -> Result<ApiToken, StoreError> {
    let mut q = diesel::update(api_tokens::table)
        .filter(api_tokens::id.eq(id))
        .filter(api_tokens::revoked_at.is_null())
        .into_boxed();
    if let Some(owner) = owner {
        q = q.filter(api_tokens::user_id.eq(owner));
    }
    Ok(q.set(api_tokens::revoked_at.eq(diesel::dsl::now))
        .returning(ApiToken::as_returning())
        .get_result(conn)
        .await?)
}
