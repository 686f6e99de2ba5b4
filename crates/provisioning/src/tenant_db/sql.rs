//! The SQL of each step, run under a session advisory lock on the tenant
//! name: the role (its password a SCRAM-SHA-256 verifier computed here, so
//! the clear text reaches no server log) and database created or converged,
//! the login turned off or on with the open sessions ended, both dropped;
//! and the catalog look-ups they rely on.

use postgres_protocol::escape::escape_literal;
use secrecy::{ExposeSecret, SecretString};
use tokio_postgres::Client;
use tokio_postgres::error::SqlState;

use super::{TenantDbError, TenantDbName};
// Named by the doc links below.
#[cfg(doc)]
use super::DatabaseServer;

/// Advisory-lock class of tenant database steps ("tdb1").
const LOCK_CLASS: i32 = 0x7464_6231;

/// Serialises the steps on one tenant name across replicas and workers: a
/// session-level advisory lock (released when the connection closes, also
/// when the process dies), taken under the session's `lock_timeout`.
pub(super) async fn lock(client: &Client, name: &TenantDbName) -> Result<(), TenantDbError> {
    client
        .execute(
            "SELECT pg_advisory_lock($1, hashtext($2))",
            &[&LOCK_CLASS, &name.as_str()],
        )
        .await
        .map(|_| ())
        .map_err(|e| TenantDbError::from_pg("lock the tenant name", &e))
}

/// Releases [`lock`] (best effort: closing the connection releases it too,
/// but a caller may keep the runtime from closing it for a while).
pub(super) async fn unlock(client: &Client, name: &TenantDbName) {
    if let Err(e) = client
        .execute(
            "SELECT pg_advisory_unlock($1, hashtext($2))",
            &[&LOCK_CLASS, &name.as_str()],
        )
        .await
    {
        tracing::debug!(error = %e, %name, "releasing the tenant name lock failed");
    }
}

/// Whether `e` says the object exists: `code`, or the unique violation on
/// the catalog that two concurrent `CREATE`s can raise instead.
fn is_duplicate(e: &tokio_postgres::Error, code: &SqlState) -> bool {
    e.code() == Some(code) || e.code() == Some(&SqlState::UNIQUE_VIOLATION)
}

/// [`DatabaseServer::ensure_database`] under the name's lock.
pub(super) async fn ensure_locked(
    client: &Client,
    name: &TenantDbName,
    password: &SecretString,
) -> Result<(), TenantDbError> {
    let verifier = postgres_protocol::password::scram_sha_256(password.expose_secret().as_bytes());
    let role = name.ident();
    // Spelled out so a role someone widened converges back to these.
    let attributes = "LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS";
    let alter = format!(
        "ALTER ROLE {role} WITH {attributes} PASSWORD {}",
        escape_literal(&verifier)
    );
    if role_exists(client, name).await? {
        exec(client, "reset the tenant role's password", &alter).await?;
    } else {
        let create = format!(
            "CREATE ROLE {role} WITH {attributes} PASSWORD {}",
            escape_literal(&verifier)
        );
        match client.batch_execute(&create).await {
            Ok(()) => {}
            // Created meanwhile by a concurrent run of the same step: 42710,
            // or 23505 when both inserted into pg_authid at once.
            Err(e) if is_duplicate(&e, &SqlState::DUPLICATE_OBJECT) => {
                exec(client, "reset the tenant role's password", &alter).await?;
            }
            Err(e) => return Err(TenantDbError::from_pg("create the tenant role", &e)),
        }
    }

    let owner = database_owner(client, name).await?;
    match owner {
        Some(owner) if owner == name.as_str() => {}
        Some(_) => {
            exec(
                client,
                "give the tenant database to its role",
                &format!("ALTER DATABASE {role} OWNER TO {role}"),
            )
            .await?;
        }
        None => {
            let create = format!("CREATE DATABASE {role} OWNER {role}");
            match client.batch_execute(&create).await {
                Ok(()) => {}
                Err(e) if is_duplicate(&e, &SqlState::DUPLICATE_DATABASE) => {
                    exec(
                        client,
                        "give the tenant database to its role",
                        &format!("ALTER DATABASE {role} OWNER TO {role}"),
                    )
                    .await?;
                }
                Err(e) => {
                    return Err(TenantDbError::from_pg("create the tenant database", &e));
                }
            }
        }
    }
    exec(
        client,
        "revoke PUBLIC's access to the tenant database",
        &format!("REVOKE ALL ON DATABASE {role} FROM PUBLIC"),
    )
    .await
}

/// [`DatabaseServer::set_login`] under the name's lock.
pub(super) async fn set_login_locked(
    client: &Client,
    name: &TenantDbName,
    login: bool,
) -> Result<(), TenantDbError> {
    if !role_exists(client, name).await? {
        return Err(TenantDbError::NoSuchRole(name.clone()));
    }
    let role = name.ident();
    if login {
        return exec(
            client,
            "let the tenant role log in",
            &format!("ALTER ROLE {role} LOGIN"),
        )
        .await;
    }
    exec(
        client,
        "lock the tenant role out",
        &format!("ALTER ROLE {role} NOLOGIN"),
    )
    .await?;
    end_sessions(client, name).await
}

/// Ends every session of role `name` and every session on database `name`.
async fn end_sessions(client: &Client, name: &TenantDbName) -> Result<(), TenantDbError> {
    client
        .query(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
             WHERE (datname = $1 OR usename = $1) AND pid <> pg_backend_pid()",
            &[&name.as_str()],
        )
        .await
        .map(|_| ())
        .map_err(|e| TenantDbError::from_pg("end the tenant's sessions", &e))
}

/// [`DatabaseServer::drop_database`] under the name's lock.
pub(super) async fn drop_locked(client: &Client, name: &TenantDbName) -> Result<(), TenantDbError> {
    let role = name.ident();
    if role_exists(client, name).await? {
        match client
            .batch_execute(&format!("ALTER ROLE {role} NOLOGIN"))
            .await
        {
            Ok(()) => {}
            Err(e) if e.code() == Some(&SqlState::UNDEFINED_OBJECT) => {}
            Err(e) => return Err(TenantDbError::from_pg("lock the tenant role out", &e)),
        }
    }
    end_sessions(client, name).await?;
    exec(
        client,
        "drop the tenant database",
        &format!("DROP DATABASE IF EXISTS {role} WITH (FORCE)"),
    )
    .await?;
    exec(
        client,
        "drop the tenant role",
        &format!("DROP ROLE IF EXISTS {role}"),
    )
    .await
}

pub(super) async fn exec(
    client: &Client,
    action: &'static str,
    sql: &str,
) -> Result<(), TenantDbError> {
    client
        .batch_execute(sql)
        .await
        .map_err(|e| TenantDbError::from_pg(action, &e))
}

async fn role_exists(client: &Client, name: &TenantDbName) -> Result<bool, TenantDbError> {
    client
        .query_opt(
            "SELECT 1 FROM pg_roles WHERE rolname = $1",
            &[&name.as_str()],
        )
        .await
        .map(|row| row.is_some())
        .map_err(|e| TenantDbError::from_pg("look up the tenant role", &e))
}

/// The owner's name of database `name`, `None` when there is no such database.
pub(super) async fn database_owner(
    client: &Client,
    name: &TenantDbName,
) -> Result<Option<String>, TenantDbError> {
    client
        .query_opt(
            "SELECT pg_get_userbyid(datdba)::text FROM pg_database WHERE datname = $1",
            &[&name.as_str()],
        )
        .await
        .map(|row| row.map(|r| r.get(0)))
        .map_err(|e| TenantDbError::from_pg("look up the tenant database", &e))
}
