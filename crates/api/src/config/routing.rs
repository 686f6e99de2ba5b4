//! Routing: the reverse proxy in front of the tenants — a Caddy Tenantry
//! drives through its admin API, and what the Traefik HTTP provider
//! endpoint writes.

use std::time::Duration;

use clap::Args;
use tenantry_provisioning::routing::{CaddySettings, TraefikSettings};

/// Flags of routing.
#[derive(Clone, Args)]
pub struct RoutingArgs {
    /// Caddy's admin API (e.g. `http://127.0.0.1:2019`): Tenantry keeps the server `tenantry` in Caddy's configuration on the route table. Unset: no Caddy is driven (Traefik can pull `/v1/routing/traefik`).
    #[arg(long, env = "TENANTRY_CADDY_ADMIN_URL", global = true)]
    #[arg(display_order = 53)]
    pub caddy_admin_url: Option<String>,

    /// Addresses Caddy's `tenantry` server listens on, comma-separated (`:443`; `127.0.0.1:8081` for local plain HTTP).
    #[arg(
        long,
        env = "TENANTRY_CADDY_LISTEN",
        default_value = ":443",
        global = true
    )]
    #[arg(display_order = 54)]
    pub caddy_listen: String,

    /// Whether Caddy obtains certificates for the routed hosts (automatic HTTPS; for custom domains its on-demand TLS asks `/v1/routing/tls-allowed`). Off: plain HTTP.
    #[arg(
        long,
        env = "TENANTRY_CADDY_TLS",
        default_value = "true",
        value_parser = super::boolish(),
        action = clap::ArgAction::Set,
        global = true
    )]
    #[arg(display_order = 55)]
    pub caddy_tls: bool,

    /// Seconds between reconciliations of Caddy's running routes with the table (0: none; pushes still follow every change).
    #[arg(
        long,
        env = "TENANTRY_ROUTING_RECONCILE_SECS",
        default_value_t = 30,
        global = true
    )]
    #[arg(display_order = 56)]
    pub routing_reconcile_secs: u64,

    /// Traefik entry points the routers of `/v1/routing/traefik` attach to, comma-separated (empty: all).
    #[arg(
        long,
        env = "TENANTRY_TRAEFIK_ENTRYPOINTS",
        default_value = "",
        global = true
    )]
    #[arg(display_order = 57)]
    pub traefik_entrypoints: String,

    /// Traefik certificate resolver for the routers' TLS (e.g. `letsencrypt`; empty: no TLS section).
    #[arg(
        long,
        env = "TENANTRY_TRAEFIK_CERT_RESOLVER",
        default_value = "",
        global = true
    )]
    #[arg(display_order = 58)]
    pub traefik_cert_resolver: String,
}

/// Validated routing settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoutingSettings {
    /// The Caddy to drive, if any.
    pub caddy: Option<CaddySettings>,
    /// Reconcile period (zero: none).
    pub reconcile_every: Duration,
    /// Traefik configuration settings (its `api_url` is the public URL).
    pub traefik: TraefikSettings,
}

fn list(s: &str) -> Vec<String> {
    s.split(',')
        .map(str::trim)
        .filter(|x| !x.is_empty())
        .map(str::to_owned)
        .collect()
}

impl RoutingArgs {
    /// The validated settings these flags give; `public_url` is where
    /// Traefik reaches Tenantry's maintenance page.
    pub(super) fn into_settings(self, public_url: &str) -> RoutingSettings {
        let caddy = self
            .caddy_admin_url
            .filter(|u| !u.trim().is_empty())
            .map(|url| {
                let mut c =
                    CaddySettings::new(url.trim().trim_end_matches('/'), list(&self.caddy_listen));
                c.automatic_https = self.caddy_tls;
                c
            });
        RoutingSettings {
            caddy,
            reconcile_every: Duration::from_secs(self.routing_reconcile_secs),
            traefik: TraefikSettings {
                entry_points: list(&self.traefik_entrypoints),
                cert_resolver: Some(self.traefik_cert_resolver.trim().to_owned())
                    .filter(|s| !s.is_empty()),
                api_url: public_url.to_owned(),
            },
        }
    }
}
