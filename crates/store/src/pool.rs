//! The connection pool (deadpool over `diesel-async`'s `AsyncPgConnection`).

use std::time::Duration;

use diesel_async::{
    AsyncConnection, AsyncPgConnection,
    pooled_connection::{
        AsyncDieselConnectionManager, ManagerConfig,
        deadpool::{Object, Pool as Deadpool},
    },
};
use futures_util::FutureExt;
use secrecy::{ExposeSecret, SecretString};

use crate::StoreError;

/// Pool sizing and timeouts.
#[derive(Debug, Clone, Copy)]
pub struct PoolSettings {
    /// Most connections held open.
    pub max_size: usize,
    /// How long a caller waits for a free connection (or a new one to be
    /// established) before [`StoreError::Unavailable`].
    pub timeout: Duration,
}

/// A cheap-to-clone handle on the pool.
#[derive(Clone)]
pub struct Pool(Deadpool<AsyncPgConnection>);

impl std::fmt::Debug for Pool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("Pool").field(&self.status()).finish()
    }
}

/// A snapshot of the pool, exported as metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolStatus {
    /// Configured maximum.
    pub max_size: usize,
    /// Connections open now.
    pub size: usize,
    /// Open connections not in use.
    pub idle: usize,
    /// Callers waiting for a connection.
    pub waiting: usize,
}

/// A connection checked out of the pool; returned to it on drop.
pub type PooledConnection = Object<AsyncPgConnection>;

impl Pool {
    /// Builds a pool for `database_url`. Connections are opened lazily, so
    /// this succeeds while the database is down; [`Pool::get`] then fails.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] when the pool cannot be built.
    pub fn new(database_url: &SecretString, settings: PoolSettings) -> Result<Self, StoreError> {
        // A connection's driver task lives on the runtime that established
        // it. actix-web runs each HTTP worker on a runtime of its own that
        // ends at shutdown, so connections made there would die under
        // requests still in flight on other workers. Establish them on the
        // runtime that built the pool (the process's main one) instead.
        let mut config = ManagerConfig::<AsyncPgConnection>::default();
        if let Ok(handle) = tokio::runtime::Handle::try_current() {
            config.custom_setup = Box::new(move |url| {
                let url = url.to_owned();
                let task = handle.spawn(async move { AsyncPgConnection::establish(&url).await });
                async move {
                    task.await.unwrap_or_else(|e| {
                        Err(diesel::ConnectionError::BadConnection(format!(
                            "connection task failed: {e}"
                        )))
                    })
                }
                .boxed()
            });
        }
        let manager = AsyncDieselConnectionManager::<AsyncPgConnection>::new_with_config(
            database_url.expose_secret(),
            config,
        );
        let pool = Deadpool::builder(manager)
            .max_size(settings.max_size)
            .wait_timeout(Some(settings.timeout))
            .create_timeout(Some(settings.timeout))
            .recycle_timeout(Some(settings.timeout))
            .runtime(deadpool_runtime())
            .build()
            .map_err(|e| StoreError::Unavailable(Box::new(e)))?;
        Ok(Self(pool))
    }

    /// Checks out a connection.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] when none is free within the timeout or the
    /// database cannot be reached.
    pub async fn get(&self) -> Result<PooledConnection, StoreError> {
        Ok(self.0.get().await?)
    }

    /// Waits for the session-level advisory lock (`class`, `key`) on a
    /// connection taken out of the pool for the purpose, and holds it until
    /// [`SessionLock::release`] or drop. For work that must not run twice
    /// at once but cannot sit inside a transaction (a call to a Proxmox or
    /// Docker host). The connection never goes back to the pool: dropping
    /// the guard closes it, which releases the lock also when the holder
    /// panics or its process dies.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] without a connection; a query error.
    pub async fn session_lock(
        &self,
        class: i32,
        key: uuid::Uuid,
    ) -> Result<SessionLock, StoreError> {
        use diesel_async::RunQueryDsl;
        let mut conn = Object::take(self.get().await?);
        diesel::sql_query("SELECT pg_advisory_lock($1, hashtext($2))")
            .bind::<diesel::sql_types::Integer, _>(class)
            .bind::<diesel::sql_types::Text, _>(key.to_string())
            .execute(&mut conn)
            .await?;
        Ok(SessionLock { conn, class, key })
    }

    /// Current size, idle and waiting counts.
    pub fn status(&self) -> PoolStatus {
        let s = self.0.status();
        PoolStatus {
            max_size: s.max_size,
            size: s.size,
            idle: s.available,
            waiting: s.waiting,
        }
    }
}

/// A held [`Pool::session_lock`].
pub struct SessionLock {
    conn: AsyncPgConnection,
    class: i32,
    key: uuid::Uuid,
}

impl std::fmt::Debug for SessionLock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionLock")
            .field("class", &self.class)
            .field("key", &self.key)
            .finish_non_exhaustive()
    }
}

impl SessionLock {
    /// Releases the lock now (dropping the guard releases it too, when the
    /// connection closes).
    pub async fn release(mut self) {
        use diesel_async::RunQueryDsl;
        if let Err(e) = diesel::sql_query("SELECT pg_advisory_unlock($1, hashtext($2))")
            .bind::<diesel::sql_types::Integer, _>(self.class)
            .bind::<diesel::sql_types::Text, _>(self.key.to_string())
            .execute(&mut self.conn)
            .await
        {
            tracing::debug!(error = %e, key = %self.key, "advisory unlock failed; closing the connection releases it");
        }
    }
}

fn deadpool_runtime() -> deadpool::Runtime {
    deadpool::Runtime::Tokio1
}
