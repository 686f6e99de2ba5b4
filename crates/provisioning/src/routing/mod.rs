//! Serving tenants through a reverse proxy: the route table
//! (`tenantry_domain::routing`) rendered for Caddy and pushed through its
//! admin API, or rendered for Traefik's HTTP provider.
//!
//! - [`Router::sync`] reads the table in one snapshot, renders Caddy's
//!   server and pushes it when Caddy's running server differs (so a Caddy
//!   restarted with an empty config gets its routes back at the next
//!   reconcile, and an unchanged table costs one `GET`). Pushes are
//!   serialised across replicas by an advisory lock held from the read to
//!   Caddy's answer: an older table never lands after a newer one.
//! - The `routing.sync` job runs it; the triggers of migration
//!   `000012_serving` queue the job in every transaction that changes what
//!   the table is computed from. A periodic reconcile runs it too.
//! - A push that fails is retried with back-off (the job's); after
//!   [`ALERT_AFTER_FAILURES`] failures in a row a `routing.unreachable`
//!   alert opens, and the next good push resolves it.

mod caddy;
mod traefik;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use sha2::{Digest as _, Sha256};
use tenantry_domain::routing::{Route, route_table};
use tenantry_store::{
    Pool, StoreError,
    alerts::{self, NewAlert, Severity},
    jobs::kinds::RoutingSync,
    routing,
    worker::{JobContext, JobError, JobHandler},
};

pub use caddy::{CaddyClient, CaddyError, CaddySettings, caddy_server, maintenance_page};
pub use traefik::{TraefikSettings, traefik_configuration};

/// Failed pushes in a row before the `routing.unreachable` alert opens.
pub const ALERT_AFTER_FAILURES: i32 = 3;

/// The alert's subject.
const ALERT_SUBJECT: &str = "routing:caddy";

/// Computes the route table and keeps the reverse proxy on it.
#[derive(Clone)]
pub struct Router {
    pool: Pool,
    base_domain: String,
    caddy: Option<CaddyClient>,
}

impl std::fmt::Debug for Router {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Router")
            .field("base_domain", &self.base_domain)
            .field("caddy", &self.caddy)
            .finish_non_exhaustive()
    }
}

/// What one sync did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SyncOutcome {
    /// Caddy already ran this table: nothing pushed.
    Unchanged,
    /// The table was pushed.
    Pushed,
    /// No Caddy is configured (Traefik pulls the table, or no proxy).
    NoProxy,
}

/// Why a sync failed.
#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    /// The database.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Caddy did not take the configuration.
    #[error(transparent)]
    Caddy(#[from] CaddyError),
}

impl Router {
    /// A router over `pool`'s tenants; `caddy` when a Caddy is to be
    /// driven.
    #[must_use]
    pub fn new(pool: Pool, base_domain: impl Into<String>, caddy: Option<CaddySettings>) -> Self {
        Self {
            pool,
            base_domain: base_domain.into(),
            caddy: caddy.map(CaddyClient::new),
        }
    }

    /// The base domain tenants answer under.
    #[must_use]
    pub fn base_domain(&self) -> &str {
        &self.base_domain
    }

    /// The route table now.
    ///
    /// # Errors
    /// [`StoreError`].
    pub async fn table(&self) -> Result<Vec<Route>, StoreError> {
        let mut conn = self.pool.get().await?;
        let sources = routing::sources(&mut conn).await?;
        Ok(route_table(&self.base_domain, &sources))
    }

    /// Pushes the route table to Caddy when Caddy's running server
    /// differs from it, recording the outcome (and opening or resolving the
    /// `routing.unreachable` alert).
    ///
    /// # Errors
    /// [`SyncError`]: the database, or Caddy unreachable or refusing the
    /// configuration.
    pub async fn sync(&self) -> Result<SyncOutcome, SyncError> {
        let Some(caddy) = &self.caddy else {
            return Ok(SyncOutcome::NoProxy);
        };
        // Held from the read to Caddy's answer: pushes never cross.
        let lock = self
            .pool
            .session_lock(routing::ROUTING_LOCK_CLASS, uuid::Uuid::nil())
            .await?;
        let result = self.sync_locked(caddy).await;
        lock.release().await;
        let mut conn = self.pool.get().await?;
        match &result {
            Ok((outcome, hash, routes)) => {
                if *outcome == SyncOutcome::Pushed {
                    tracing::info!(routes, "routing: Caddy configured");
                }
                routing::record_pushed(&mut conn, hash, *routes).await?;
                alerts::resolve(&mut conn, "routing.unreachable", ALERT_SUBJECT).await?;
            }
            Err(SyncError::Caddy(e)) => {
                let failures = routing::record_failure(&mut conn, &e.to_string()).await?;
                tracing::warn!(failures, error = %e, "routing: Caddy did not take the routes");
                if failures >= ALERT_AFTER_FAILURES {
                    let message = format!(
                        "Caddy has not taken the route table {failures} times in a row: {e}. Tenants keep the routes Caddy had."
                    );
                    alerts::raise(
                        &mut conn,
                        &NewAlert {
                            kind: "routing.unreachable",
                            severity: Severity::Critical,
                            message: &message,
                            tenant_id: None,
                            subject: ALERT_SUBJECT,
                        },
                    )
                    .await?;
                }
            }
            Err(SyncError::Store(_)) => {}
        }
        result.map(|(o, _, _)| o)
    }

    async fn sync_locked(
        &self,
        caddy: &CaddyClient,
    ) -> Result<(SyncOutcome, String, usize), SyncError> {
        let table = self.table().await?;
        let desired = caddy_server(caddy.settings(), &table);
        let hash = hex::encode(Sha256::digest(desired.to_string().as_bytes()));
        let running = caddy.running_server().await?;
        if running.as_ref() == Some(&desired) {
            return Ok((SyncOutcome::Unchanged, hash, table.len()));
        }
        caddy.put_server(&desired).await?;
        Ok((SyncOutcome::Pushed, hash, table.len()))
    }
}

/// The `routing.sync` job: one [`Router::sync`]; a failure is retried with
/// the queue's back-off.
#[async_trait]
impl JobHandler<RoutingSync> for Router {
    async fn run(&self, ctx: &JobContext, _job: RoutingSync) -> Result<(), JobError> {
        ctx.set_step("push").await?;
        match self.sync().await {
            Ok(_) => Ok(()),
            Err(SyncError::Store(e)) => Err(e.into()),
            Err(SyncError::Caddy(e)) => Err(JobError::Retry(e.to_string())),
        }
    }
}

/// Runs [`Router::sync`] every `every` until the process stops: the
/// reconcile that puts the routes back into a Caddy that restarted or was
/// changed by hand. Several replicas may run it: pushes are serialised and
/// an unchanged table is not pushed.
/// `None` when `every` is zero (no reconcile).
pub fn spawn_reconcile(
    router: Arc<Router>,
    every: Duration,
) -> Option<tokio::task::JoinHandle<()>> {
    tenantry_store::periodic::spawn("routing reconcile", every, move || {
        let router = router.clone();
        async move { router.sync().await.map(|_| ()) }
    })
}
