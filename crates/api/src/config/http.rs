//! The HTTP server: the address it listens on, the URL clients reach it at,
//! its worker threads, the largest body it takes, and how long in-flight
//! requests get at shutdown.

use std::net::SocketAddr;

use clap::Args;

/// Flags of the HTTP server.
#[derive(Clone, Args)]
pub struct HttpArgs {
    /// Address the HTTP server listens on.
    #[arg(
        long,
        env = "TENANTRY_LISTEN",
        default_value = "127.0.0.1:8080",
        global = true
    )]
    #[arg(display_order = 2)]
    pub listen: SocketAddr,

    /// Seconds in-flight requests get to finish after SIGTERM/SIGINT.
    #[arg(
        long,
        env = "TENANTRY_SHUTDOWN_TIMEOUT_SECS",
        default_value_t = 30,
        global = true
    )]
    #[arg(display_order = 7)]
    pub shutdown_timeout_secs: u64,

    /// HTTP worker threads (default: one per CPU core).
    #[arg(long, env = "TENANTRY_HTTP_WORKERS", global = true)]
    #[arg(display_order = 8)]
    pub http_workers: Option<usize>,

    /// Largest request body accepted, in bytes; larger bodies get 413.
    #[arg(long, env = "TENANTRY_MAX_BODY_BYTES", default_value_t = 256 * 1024, global = true)]
    #[arg(display_order = 9)]
    pub max_body_bytes: usize,

    /// Bearer token `GET /metrics` requires [default: none: `/metrics` is
    /// open, so keep the listen address private or set this].
    #[arg(
        long,
        env = "TENANTRY_METRICS_TOKEN",
        global = true,
        hide_env_values = true
    )]
    #[arg(display_order = 10)]
    pub metrics_token: Option<String>,

    /// The URL clients reach this API at (links in invitations, sandbox checkout pages) [default: http://LISTEN].
    #[arg(long, env = "TENANTRY_PUBLIC_URL", global = true)]
    #[arg(display_order = 25)]
    pub public_url: Option<String>,
}
