//! The Docker driver: one [`DockerDriver`] per Docker host, running each
//! instance as one container (a product shipped as an image) or as a
//! compose project (a product shipped as a stack under
//! `docker/stacks/<product>/`).
//!
//! # Calls
//! The Engine API through `bollard`, over the local unix socket or TCP with
//! TLS ([`Endpoint`], `connect.rs`), at the API version negotiated with the
//! engine on first use (bollard speaks 1.53; Debian 12's engine 20.10
//! speaks 1.41 and refuses newer clients). Containers are listed with a
//! label filter (`GET /containers/json?all=1&filters={"label":[…]}`),
//! created with `POST /containers/create?name=tenantry-<hostname>`,
//! started, stopped (`?t=<stop timeout>`), updated (`POST
//! …/update`: cores and memory) and removed (`DELETE …?force=1&v=1`);
//! usage from `GET …/stats?stream=0`, the host from `GET /info` and
//! `GET /version`. A stack is started by the compose CLI (`compose.rs`),
//! everything after that through the API.
//!
//! # Labels and idempotency
//! Every container carries `tenantry.instance=<instance uuid>` (ours) and
//! the spec's `tenantry.tenant` and `tenantry.product` (required), and every
//! volume and network we make carries the same; the product's own container
//! also carries `tenantry.main=true`. Every operation finds its containers
//! by the instance label, never by name or id alone: a create retried after
//! a lost answer finds the container the first try made, and a name taken
//! by another instance's container (a `409` on create) is an error that
//! says whose it is, not a container we adopt.
//!
//! # Deploy waits for HTTP
//! `create_instance` returns once the product's port answers HTTP (any
//! status below 500) at `GET http://<probe host>:<host port><ready_path>`
//! (or the container's own address when it publishes no port), polling
//! until [`DockerConfig::ready_timeout`]. A container that exits or never
//! answers in time fails the create with its state, exit code and the last
//! lines of its log, after the driver removed the containers (and the
//! network) it made; volumes stay.
//!
//! # Volumes
//! Named volumes (`tenantry-<hostname>-<name>`, or the stack's, labelled
//! by compose with the project) outlive [`Driver::destroy`], so a tenant
//! moved to a shared instance or redeployed keeps its files;
//! [`Driver::purge_data`] removes them when the tenant is deleted.
//!
//! # Limits
//! Cores (`NanoCpus`) and memory are enforced; `storage_gib` is not (the
//! overlay2 driver on ext4 has no size quota) and swap follows the engine's
//! default (twice the memory). Host disk is read from the file system
//! holding the engine's root directory when the engine is local; a remote
//! engine does not report it, and the metrics say 0.

mod compose;
mod connect;
mod containers;
mod create;
mod errors;
mod metrics;
mod operations;
mod ready;
mod spec;
#[cfg(test)]
mod tests;

use std::fmt;
use std::future::Future;
use std::time::Duration;

use backon::{ExponentialBuilder, Retryable};
use bollard::Docker;
use secrecy::SecretString;
use tokio::sync::OnceCell;

pub use self::compose::{ComposeCli, TEMPLATE_FILE};
pub use self::connect::Endpoint;
use self::connect::TlsMaterial;
use self::errors::Call;
pub use self::spec::{
    LABEL_INSTANCE, LABEL_MAIN, LABEL_PRODUCT, LABEL_TENANT, TemplateVars, container_name,
    render_env,
};
use crate::DriverError;
pub use crate::proxmox::{RetryPolicy, TlsVerification};
// Named by the doc links above.
#[cfg(doc)]
use crate::Driver;

/// How to reach and use one Docker host. The node registry builds it from
/// a stored node (the client key decrypted from the database).
#[derive(Debug, Clone)]
pub struct DockerConfig {
    /// `unix:///var/run/docker.sock`, `tcp://host:2376` or
    /// `https://host:2376` (TLS).
    pub api_url: String,
    /// How the engine's TLS certificate is verified (TCP only): the engine's
    /// CA (`--tlscacert`) as [`TlsVerification::CaPem`], usually.
    pub tls: TlsVerification,
    /// Client certificate (PEM) for an engine run with `--tlsverify`.
    pub client_cert_pem: Option<String>,
    /// Its private key (PEM). Never logged; `Debug` redacts it.
    pub client_key_pem: Option<SecretString>,
    /// Timeout of one API request (a stop waits `stop_timeout` inside one).
    pub request_timeout: Duration,
    /// How long a deploy waits for the product's port to answer HTTP.
    pub ready_timeout: Duration,
    /// How often the port is tried meanwhile.
    pub ready_poll_interval: Duration,
    /// Path requested to see whether the product answers (`/`).
    pub ready_path: String,
    /// Host the published ports are tried at; `None`: `127.0.0.1` for a
    /// local engine, the engine's host for a remote one.
    pub probe_host: Option<String>,
    /// Host address ports are published on; empty: all of them.
    pub publish_ip: String,
    /// Seconds a stop waits for the app before the engine kills it.
    pub stop_timeout: Duration,
    /// Which compose command line runs stacks.
    pub compose: ComposeCli,
    /// How long one compose command may run (it may pull images).
    pub compose_timeout: Duration,
    /// Whether a create pulls an image the host does not have.
    pub pull_missing_images: bool,
    /// Retries of transient errors inside one operation.
    pub retry: RetryPolicy,
}

impl DockerConfig {
    /// A configuration with the defaults: default TLS roots and no client
    /// certificate, requests timing out after 120 s, deploys waiting 120 s
    /// for `GET /` (tried every 500 ms), ports published on all addresses,
    /// stops waiting 30 s, compose found at run time and given 10 minutes,
    /// missing images pulled, [`RetryPolicy::default`].
    #[must_use]
    pub fn new(api_url: impl Into<String>) -> Self {
        Self {
            api_url: api_url.into(),
            tls: TlsVerification::Default,
            client_cert_pem: None,
            client_key_pem: None,
            request_timeout: Duration::from_secs(120),
            ready_timeout: Duration::from_secs(120),
            ready_poll_interval: Duration::from_millis(500),
            ready_path: "/".into(),
            probe_host: None,
            publish_ip: String::new(),
            stop_timeout: Duration::from_secs(30),
            compose: ComposeCli::Auto,
            compose_timeout: Duration::from_secs(600),
            pull_missing_images: true,
            retry: RetryPolicy::default(),
        }
    }

    fn tls_material(&self) -> TlsMaterial<'_> {
        TlsMaterial {
            verification: &self.tls,
            client_cert_pem: self.client_cert_pem.as_deref(),
            client_key_pem: self.client_key_pem.as_ref(),
        }
    }
}

/// The [`Driver`] for one Docker host.
pub struct DockerDriver {
    cfg: DockerConfig,
    endpoint: Endpoint,
    /// The client before version negotiation.
    raw: Docker,
    /// The client at the negotiated version (on first use).
    negotiated: OnceCell<Docker>,
    compose_cli: OnceCell<Vec<String>>,
    http: reqwest::Client,
}

impl fmt::Debug for DockerDriver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DockerDriver")
            .field("endpoint", &self.endpoint)
            .finish_non_exhaustive()
    }
}

impl DockerDriver {
    /// A driver for the host `cfg` describes. Makes no call: use
    /// [`Driver::node_status`] to check that the engine answers.
    ///
    /// # Errors
    /// `Failed` for an unusable URL or TLS material; `Transient` when the
    /// local socket is missing.
    pub fn new(cfg: DockerConfig) -> Result<Self, DriverError> {
        let endpoint = Endpoint::parse(&cfg.api_url)?;
        let raw = connect::client(
            &endpoint,
            &cfg.tls_material(),
            cfg.request_timeout.as_secs().max(1),
        )?;
        let http = reqwest::Client::builder()
            .no_proxy()
            .connect_timeout(Duration::from_secs(2))
            .timeout(Duration::from_secs(5))
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| DriverError::Failed {
                reason: format!("HTTP client for readiness checks: {e}"),
            })?;
        Ok(Self {
            cfg,
            endpoint,
            raw,
            negotiated: OnceCell::new(),
            compose_cli: OnceCell::new(),
            http,
        })
    }

    /// The configuration it runs with.
    #[must_use]
    pub fn config(&self) -> &DockerConfig {
        &self.cfg
    }

    /// The engine client at the negotiated API version.
    async fn engine(&self) -> Result<&Docker, DriverError> {
        self.negotiated
            .get_or_try_init(|| async {
                let docker = self
                    .raw
                    .clone()
                    .negotiate_version()
                    .await
                    .call("negotiate the API version")?;
                tracing::debug!(endpoint = ?self.endpoint, version = ?docker.client_version(), "Docker API version negotiated");
                Ok::<_, DriverError>(docker)
            })
            .await
    }

    /// Runs `op` again while it fails with a transient error, with
    /// exponential back-off and jitter, at most `retry.attempts` times.
    async fn retrying<T, F, Fut>(&self, what: &str, op: F) -> Result<T, DriverError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, DriverError>>,
    {
        let policy = self.cfg.retry;
        let retries = usize::try_from(policy.attempts.saturating_sub(1)).unwrap_or(usize::MAX);
        let backoff = ExponentialBuilder::default()
            .with_min_delay(policy.base_delay)
            .with_max_delay(policy.max_delay)
            .with_max_times(retries)
            .with_jitter();
        op.retry(backoff)
            .sleep(tokio::time::sleep)
            .when(DriverError::is_transient)
            .notify(|e, delay| {
                tracing::warn!(endpoint = ?self.endpoint, op = what, error = %e, ?delay, "retrying");
            })
            .await
    }
}
