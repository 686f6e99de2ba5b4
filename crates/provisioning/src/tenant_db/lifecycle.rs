//! A tenant's role and database through their life, each step re-runnable
//! and serialised on the tenant name: created (or converged to the stored
//! password), the login suspended and resumed, dropped; and whether the
//! database exists.

use secrecy::{ExposeSecret, SecretString};
use tokio_postgres::{Client, NoTls};

use super::sql::{
    database_owner, drop_locked, ensure_locked, exec, lock, set_login_locked, unlock,
};
use super::{DatabaseServer, TenantDbError, TenantDbName};

impl DatabaseServer {
    async fn connect(&self) -> Result<Client, TenantDbError> {
        let (client, connection) = self
            .config()?
            .connect(NoTls)
            .await
            .map_err(|e| TenantDbError::from_pg("connect as the admin role", &e))?;
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(error = %e, "tenant database admin connection closed");
            }
        });
        // Waits for locks (ours, or a DROP DATABASE's) end as a transient error.
        exec(&client, "set lock_timeout", "SET lock_timeout = '30s'").await?;
        Ok(client)
    }

    /// Creates role `name` (`LOGIN`, no other privilege) with `password` and
    /// database `name` owned by it, whichever is missing; a role that exists
    /// gets `password` again (so a retried step converges to the password
    /// the caller stored) and a database that exists is given back to its
    /// role. `CONNECT` on the database is revoked from `PUBLIC`, so other
    /// tenants' roles cannot connect to it.
    ///
    /// # Errors
    /// [`TenantDbError`]: `Invalid` for an empty password; the server's
    /// errors sorted by [`TenantDbError::is_transient`].
    pub async fn ensure_database(
        &self,
        name: &TenantDbName,
        password: &SecretString,
    ) -> Result<(), TenantDbError> {
        if password.expose_secret().is_empty() {
            return Err(TenantDbError::Invalid(
                "a tenant database password must not be empty".into(),
            ));
        }
        let client = self.connect().await?;
        lock(&client, name).await?;
        let result = ensure_locked(&client, name, password).await;
        unlock(&client, name).await;
        result
    }

    /// Ends every session of role `name` and on database `name`, then drops
    /// the database (`WITH (FORCE)`) and the role, each `IF EXISTS`: a no-op
    /// for what is already gone, so it may be re-run. The role is set
    /// `NOLOGIN` first so it cannot reconnect in between. Takes no backup:
    /// see [`DatabaseServer::backup_and_drop`].
    ///
    /// # Errors
    /// Connection errors; [`TenantDbError::Refused`] with SQLSTATE 2BP01 when
    /// the role still owns objects in another database.
    pub async fn drop_database(&self, name: &TenantDbName) -> Result<(), TenantDbError> {
        let client = self.connect().await?;
        lock(&client, name).await?;
        let result = drop_locked(&client, name).await;
        unlock(&client, name).await;
        result
    }

    /// Suspends (`login = false`) or resumes (`true`) a tenant of a shared
    /// instance at the database: `ALTER ROLE … NOLOGIN`, ending its open
    /// sessions, or `LOGIN` again. Idempotent; the data is untouched.
    ///
    /// # Errors
    /// [`TenantDbError::NoSuchRole`] when the role does not exist; connection
    /// errors.
    pub async fn set_login(&self, name: &TenantDbName, login: bool) -> Result<(), TenantDbError> {
        let client = self.connect().await?;
        lock(&client, name).await?;
        let result = set_login_locked(&client, name, login).await;
        unlock(&client, name).await;
        result
    }

    /// Sets how many connections role `name` may hold at once
    /// (`ALTER ROLE … CONNECTION LIMIT`; `None`: no limit, `-1`). A shared
    /// tenant gets its product's per-tenant limit, a dedicated one none.
    ///
    /// # Errors
    /// Connection errors; the server's refusal.
    pub async fn set_connection_limit(
        &self,
        name: &TenantDbName,
        limit: Option<u32>,
    ) -> Result<(), TenantDbError> {
        let client = self.connect().await?;
        let n = limit.map_or(-1, i64::from);
        client
            .batch_execute(&format!("ALTER ROLE {} CONNECTION LIMIT {n}", name.ident()))
            .await
            .map_err(|e| TenantDbError::from_pg("set the tenant role's connection limit", &e))
    }

    /// The size of database `name` on disk, bytes (`pg_database_size`);
    /// `None` when it does not exist.
    ///
    /// # Errors
    /// Connection errors.
    pub async fn database_size(&self, name: &TenantDbName) -> Result<Option<u64>, TenantDbError> {
        let client = self.connect().await?;
        let row = client
            .query_opt(
                "SELECT pg_database_size(oid) FROM pg_database WHERE datname = $1",
                &[&name.as_str()],
            )
            .await
            .map_err(|e| TenantDbError::from_pg("measure the tenant database", &e))?;
        Ok(row.and_then(|r| u64::try_from(r.get::<_, i64>(0)).ok()))
    }

    /// Whether database `name` exists.
    ///
    /// # Errors
    /// Connection errors.
    pub async fn exists(&self, name: &TenantDbName) -> Result<bool, TenantDbError> {
        let client = self.connect().await?;
        Ok(database_owner(&client, name).await?.is_some())
    }
}
