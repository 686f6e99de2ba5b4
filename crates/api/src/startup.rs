//! Building and running the HTTP server.

use std::net::TcpListener;

use actix_cors::Cors;
use actix_web::{
    App, HttpServer,
    dev::Server,
    middleware::{Compress, DefaultHeaders, from_fn},
    web,
};
use prometheus::Registry;
use tenantry_store::{Pool, PoolSettings};
use utoipa::OpenApi;
use utoipa_swagger_ui::SwaggerUi;

use crate::{
    auth::Auth, config::Settings, metrics, middleware::request_context, openapi::ApiDoc, routes,
};

/// What every handler shares.
#[derive(Debug, Clone)]
pub struct AppState {
    /// The database pool.
    pub pool: Pool,
    /// The Prometheus registry `/metrics` reads.
    pub registry: Registry,
    /// Keys, hasher and settings of identity and access.
    pub auth: Auth,
    /// The payment provider.
    pub gateway: std::sync::Arc<dyn tenantry_billing::PaymentGateway>,
    /// The Stripe client, when payments go through Stripe.
    pub stripe: Option<tenantry_billing::stripe::Stripe>,
    /// The process's settings.
    pub settings: std::sync::Arc<Settings>,
    /// The tenant services (signup, lifecycle, members).
    pub tenancy: tenantry_tenancy::Tenancy,
    /// Nodes' drivers and health checks.
    pub nodes: tenantry_provisioning::nodes::NodeService,
    /// The route table and the Caddy it is pushed to.
    pub router: std::sync::Arc<tenantry_provisioning::routing::Router>,
}

impl AppState {
    /// The state of an app on `pool`, with the payment gateway the settings
    /// choose (Stripe, the sandbox, or none).
    ///
    /// # Errors
    /// An unusable Stripe key or API URL.
    pub fn new(
        pool: Pool,
        registry: Registry,
        auth: Auth,
        settings: &Settings,
    ) -> anyhow::Result<Self> {
        let stripe = crate::billing_processor::stripe_client(settings)?;
        let gateway = crate::billing_processor::gateway(settings, stripe.as_ref(), &pool);
        let tenancy = tenantry_tenancy::Tenancy {
            pool: pool.clone(),
            gateway: gateway.clone(),
            payments: match settings.payments {
                crate::config::Payments::Sandbox => tenantry_tenancy::PaymentMode::Sandbox,
                crate::config::Payments::Disabled => tenantry_tenancy::PaymentMode::Disabled,
                crate::config::Payments::Stripe(_) => tenantry_tenancy::PaymentMode::Stripe,
            },
            clock: settings.billing_clock(),
            hasher: auth.hasher.clone(),
            invitation_ttl: settings.invitation_ttl,
            public_url: settings.public_url.clone(),
        };
        let nodes = tenantry_provisioning::nodes::NodeService {
            pool: pool.clone(),
            keyring: auth.keyring.clone(),
            settings: std::sync::Arc::new(settings.provisioning.clone()),
        };
        let router = std::sync::Arc::new(tenantry_provisioning::routing::Router::new(
            pool.clone(),
            settings.provisioning.base_domain.clone(),
            settings.routing.caddy.clone(),
        ));
        Ok(Self {
            router,
            gateway,
            stripe,
            pool,
            registry,
            auth,
            settings: std::sync::Arc::new(settings.clone()),
            tenancy,
            nodes,
        })
    }

    /// The state built from settings alone (pool, metrics registry, keys):
    /// what `serve` uses, and `tenantry worker` without the HTTP server.
    ///
    /// # Errors
    /// When `DATABASE_URL` or the keys are missing or malformed.
    pub fn from_settings(
        settings: &Settings,
    ) -> anyhow::Result<(Self, actix_web_prom::PrometheusMetrics)> {
        let pool = Pool::new(
            settings.require_database_url()?,
            PoolSettings {
                max_size: settings.db_pool_size as usize,
                timeout: settings.db_timeout,
            },
        )?;
        let (registry, http_metrics) = metrics::build(&pool)?;
        let auth = Auth::new(&settings.auth)?;
        Ok((Self::new(pool, registry, auth, settings)?, http_metrics))
    }
}

/// A bound, not yet running, HTTP server.
pub struct Application {
    port: u16,
    server: Server,
    state: web::Data<AppState>,
}

impl std::fmt::Debug for Application {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Application")
            .field("port", &self.port)
            .finish()
    }
}

impl Application {
    /// Builds the pool and the app and binds the listen address. Does not
    /// touch the database: the server starts (and answers `/readyz` with
    /// 503) while the database is down.
    ///
    /// # Errors
    /// When `DATABASE_URL` is missing or the address cannot be bound.
    pub fn build(settings: &Settings) -> anyhow::Result<Self> {
        crate::config::parse_proxies(&settings.raw_trusted_proxies).map_err(anyhow::Error::msg)?;
        let (state, http_metrics) = AppState::from_settings(settings)?;
        let state = web::Data::new(state);
        let processor_state = state.clone();
        let listener = TcpListener::bind(settings.listen)
            .map_err(|e| anyhow::anyhow!("cannot listen on {}: {e}", settings.listen))?;
        let port = listener.local_addr()?.port();
        let max_body = settings.max_body_bytes;
        let mut server = HttpServer::new(move || {
            let auth_settings = state.auth.settings.clone();
            let all_settings = state.settings.clone();
            App::new()
                .app_data(state.clone())
                .app_data(web::PayloadConfig::new(max_body))
                .configure(|cfg| configure(cfg, &all_settings))
                .wrap(from_fn(crate::idempotency::idempotency))
                .wrap(Compress::default())
                .wrap(security_headers(auth_settings.hsts))
                .wrap(cors(&auth_settings.cors_origins))
                .wrap(from_fn(crate::middleware::refuse_nul))
                .wrap(from_fn(request_context))
                .wrap(http_metrics.clone())
                .wrap(from_fn(crate::middleware::bounded_method))
        })
        .shutdown_timeout(settings.shutdown_timeout.as_secs())
        // actix stops at once on SIGINT; we want Ctrl-C to be as graceful as
        // SIGTERM, so signals are ours (see `run_until_stopped`).
        .disable_signals()
        .listen(listener)?;
        if let Some(n) = settings.http_workers {
            server = server.workers(n);
        }
        Ok(Self {
            port,
            server: server.run(),
            state: processor_state,
        })
    }

    /// The port bound (useful when the listen address had port 0).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Serves until SIGTERM or SIGINT (or the server handle stops it), then
    /// stops accepting, lets in-flight requests finish within the shutdown
    /// timeout, and returns.
    ///
    /// # Errors
    /// An I/O error of the server.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        let processor = crate::billing_processor::spawn_periodic(
            self.state.pool.clone(),
            self.state.gateway.clone(),
            self.state.settings.clone(),
        );
        let reconciler = crate::billing_processor::spawn_reconcile(
            self.state.pool.clone(),
            self.state.settings.clone(),
        );
        let routing = if self.state.settings.jobs.workers > 0 {
            tenantry_provisioning::routing::spawn_reconcile(
                self.state.router.clone(),
                self.state.settings.routing.reconcile_every,
            )
        } else {
            None
        };
        let stop_workers = tokio_util::sync::CancellationToken::new();
        let workers = crate::workers::spawn(&self.state, stop_workers.clone());
        let health_checks = self
            .state
            .nodes
            .clone()
            .spawn_health_checks(self.state.settings.jobs.node_check_interval);
        // Pending custom domains are looked up again (`domain.verify` jobs).
        let domain_checks = crate::routes::tenants::domains::verifier(&self.state)
            .spawn_rechecks(self.state.settings.domains.check_every);
        let handle = self.server.handle();
        let on_signal = tokio::spawn(async move {
            shutdown_signal().await;
            tracing::info!("shutdown signal received: finishing in-flight requests");
            handle.stop(true).await;
        });
        let result = self.server.await;
        on_signal.abort();
        for task in [processor, reconciler, routing].into_iter().flatten() {
            task.abort();
        }
        if let Some(h) = health_checks {
            h.abort();
        }
        if let Some(h) = domain_checks {
            h.abort();
        }
        stop_workers.cancel();
        if let Some(w) = workers {
            let _ = w.await;
        }
        result
    }

    /// A handle to stop the server from elsewhere (tests).
    pub fn handle(&self) -> actix_web::dev::ServerHandle {
        self.server.handle()
    }
}

/// Resolves at the first SIGINT (Ctrl-C) or SIGTERM.
pub(crate) async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = ctrl_c => {}
                _ = term.recv() => {}
            }
        }
        Err(e) => {
            tracing::warn!(error = %e, "cannot listen for SIGTERM; only Ctrl-C stops the server");
            let _ = ctrl_c.await;
        }
    }
}

/// Security headers on every response (OWASP Secure Headers): no MIME
/// sniffing, no framing, no referrer, and HSTS when served over TLS.
pub fn security_headers(hsts: bool) -> DefaultHeaders {
    let mut headers = DefaultHeaders::new()
        .add(("X-Content-Type-Options", "nosniff"))
        .add(("X-Frame-Options", "DENY"))
        .add(("Referrer-Policy", "no-referrer"));
    if hsts {
        headers = headers.add((
            "Strict-Transport-Security",
            "max-age=31536000; includeSubDomains",
        ));
    }
    headers
}

/// CORS: only the configured origins, with credentials (the refresh
/// cookie), the methods and headers the API uses.
pub fn cors(origins: &[String]) -> Cors {
    let mut cors = Cors::default()
        .allowed_methods(["GET", "POST", "PATCH", "PUT", "DELETE"])
        .allowed_headers([
            actix_web::http::header::AUTHORIZATION,
            actix_web::http::header::CONTENT_TYPE,
            actix_web::http::header::HeaderName::from_static(routes::auth::CSRF_HEADER),
            actix_web::http::header::HeaderName::from_static("idempotency-key"),
            actix_web::http::header::HeaderName::from_static("if-match"),
            actix_web::http::header::HeaderName::from_static("x-request-id"),
        ])
        .expose_headers(["x-request-id", "etag", "retry-after"])
        .supports_credentials()
        .max_age(600);
    for origin in origins {
        cors = cors.allowed_origin(origin);
    }
    cors
}

/// Mounts every route, the docs and the 404 fallback.
pub fn configure(cfg: &mut web::ServiceConfig, settings: &Settings) {
    cfg.service(routes::health::healthz)
        .service(routes::health::readyz)
        .service(routes::health::metrics)
        .service(routes::checkout_return::success)
        .service(routes::checkout_return::canceled)
        .service(routes::routing::maintenance_notice)
        .configure(|cfg| routes::v1(cfg, settings))
        .service(SwaggerUi::new("/docs/{_:.*}").url("/openapi.json", ApiDoc::openapi()))
        .route(
            "/docs",
            web::get().to(|| async {
                actix_web::HttpResponse::PermanentRedirect()
                    .insert_header(("Location", "/docs/"))
                    .finish()
            }),
        )
        .default_service(web::to(routes::not_found));
}
