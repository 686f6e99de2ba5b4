//! The route table: which host name reaches which tenant's app, the one
//! source every reverse proxy is configured from (Caddy through its admin
//! API, Traefik through its HTTP provider).
//!
//! A tenant answers at `<slug>.<base domain>` and at each of its verified
//! custom domains. What answers depends on the tenant's status:
//!
//! | status | route |
//! | --- | --- |
//! | `active`, `migrating` | its active deployment's upstream (the old one until the switch, the new one after: one step) |
//! | `paused`, `suspended`, `deprovisioning` | the maintenance page (HTTP 503, `Retry-After`) |
//! | `pending_payment`, `provisioning`, `failed`, `deleted` | none: the proxy answers 404 |
//!
//! An `active` tenant whose upstream is not known (an address not read
//! yet) gets the maintenance page rather than no route: it exists and will
//! answer.
//!
//! A shared instance serves many tenants: the proxy sets
//! [`TENANT_HEADER`] to the tenant's slug on every request it forwards
//! there (overwriting what the client sent), so the app picks the tenant's
//! database (Odoo's `dbfilter` reads such a header). A dedicated instance
//! gets the header too, for uniformity; a client cannot forge it.

use serde::Serialize;

use crate::{DeploymentKind, TenantStatus};

/// The request header that names the tenant to a shared instance:
/// `X-Tenantry-Tenant: <slug>`.
pub const TENANT_HEADER: &str = "X-Tenantry-Tenant";

/// The request header that names the tenant's current plan (its code), so
/// an app can show or enforce what the customer pays for:
/// `X-Tenantry-Plan: <code>`.
pub const PLAN_HEADER: &str = "X-Tenantry-Plan";

/// Where one tenant's app answers: a host (IP address or name) and a TCP
/// port.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub struct UpstreamAddr {
    /// IP address or host name.
    pub host: String,
    /// TCP port.
    pub port: u16,
}

impl UpstreamAddr {
    /// `host:port`, with an IPv6 address in brackets (`[::1]:80`).
    #[must_use]
    pub fn dial(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

/// What the route table is computed from, for one tenant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteSource {
    /// The tenant's slug (its subdomain).
    pub slug: String,
    /// Its status.
    pub status: TenantStatus,
    /// Its current plan's code.
    pub plan: String,
    /// Its active deployment's kind, if it has one.
    pub deployment: Option<DeploymentKind>,
    /// Where the active deployment's app answers, when known.
    pub upstream: Option<UpstreamAddr>,
    /// Its verified custom domains (lowercase, ASCII/punycode).
    pub custom_domains: Vec<String>,
}

/// Why a tenant gets the maintenance page.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MaintenanceReason {
    /// Paused by its owner or an operator.
    Paused,
    /// Suspended (unpaid).
    Suspended,
    /// Being deleted.
    Deprovisioning,
    /// Active, but its address is not known yet.
    Unavailable,
}

impl MaintenanceReason {
    /// A sentence for the maintenance page.
    #[must_use]
    pub fn message(self) -> &'static str {
        match self {
            Self::Paused => "This workspace is paused. Its owner can resume it.",
            Self::Suspended => {
                "This workspace is suspended until its subscription is paid. Its owner can settle it."
            }
            Self::Deprovisioning => "This workspace is being removed.",
            Self::Unavailable => "This workspace is starting. Try again in a minute.",
        }
    }
}

/// What a route leads to.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum RouteTarget {
    /// Proxied to the app, with [`TENANT_HEADER`] set to `tenant_header`.
    Upstream {
        /// Where the app answers.
        upstream: UpstreamAddr,
        /// Whether the instance is shared (the header selects the tenant)
        /// or dedicated.
        deployment: DeploymentKind,
        /// The value of [`TENANT_HEADER`]: the tenant's slug.
        tenant_header: String,
        /// The value of [`PLAN_HEADER`]: the tenant's plan code.
        plan_header: String,
    },
    /// The maintenance page: HTTP 503 with `Retry-After`.
    Maintenance {
        /// Why.
        reason: MaintenanceReason,
    },
}

/// One tenant's route: its host names and what they lead to.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub struct Route {
    /// The tenant's slug.
    pub tenant: String,
    /// Host names, lowercase: `<slug>.<base domain>` first, then the
    /// verified custom domains in order.
    pub hosts: Vec<String>,
    /// What they lead to.
    pub target: RouteTarget,
}

/// The tenant's route, or `None` when it has none (see the module table).
#[must_use]
pub fn route_for(base_domain: &str, source: &RouteSource) -> Option<Route> {
    use TenantStatus as S;
    let maintenance = |reason| RouteTarget::Maintenance { reason };
    let target = match source.status {
        S::Active | S::Migrating => match (&source.upstream, source.deployment) {
            (Some(upstream), Some(deployment)) => RouteTarget::Upstream {
                upstream: upstream.clone(),
                deployment,
                tenant_header: source.slug.clone(),
                plan_header: source.plan.clone(),
            },
            _ => maintenance(MaintenanceReason::Unavailable),
        },
        S::Paused => maintenance(MaintenanceReason::Paused),
        S::Suspended => maintenance(MaintenanceReason::Suspended),
        S::Deprovisioning => maintenance(MaintenanceReason::Deprovisioning),
        S::PendingPayment | S::Provisioning | S::Failed | S::Deleted => return None,
    };
    let base = base_domain.trim_end_matches('.').to_ascii_lowercase();
    let mut hosts = vec![format!("{}.{base}", source.slug.to_ascii_lowercase())];
    for d in &source.custom_domains {
        let d = d.trim_end_matches('.').to_ascii_lowercase();
        if !hosts.contains(&d) {
            hosts.push(d);
        }
    }
    Some(Route {
        tenant: source.slug.clone(),
        hosts,
        target,
    })
}

/// The route table: one route per tenant that has one, ordered by slug so
/// the same tenants give the same table (proxies are only re-configured
/// when it changes).
#[must_use]
pub fn route_table(base_domain: &str, sources: &[RouteSource]) -> Vec<Route> {
    let mut routes: Vec<Route> = sources
        .iter()
        .filter_map(|s| route_for(base_domain, s))
        .collect();
    routes.sort_by(|a, b| a.tenant.cmp(&b.tenant));
    routes
}

/// Whether `host` is one of ours: `<label>.<base domain>` for a single DNS
/// label (the form every tenant subdomain takes), case-insensitive.
#[must_use]
pub fn is_tenant_subdomain(base_domain: &str, host: &str) -> Option<String> {
    let host = host.trim_end_matches('.').to_ascii_lowercase();
    let base = base_domain.trim_end_matches('.').to_ascii_lowercase();
    let label = host.strip_suffix(&base)?.strip_suffix('.')?;
    (crate::slug::is_dns_label(label)).then(|| label.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn source(slug: &str, status: TenantStatus) -> RouteSource {
        RouteSource {
            slug: slug.into(),
            status,
            plan: "basic".into(),
            deployment: Some(DeploymentKind::Shared),
            upstream: Some(UpstreamAddr {
                host: "10.0.0.7".into(),
                port: 8069,
            }),
            custom_domains: vec![],
        }
    }

    #[test]
    fn an_active_tenant_routes_its_subdomain_and_custom_domains_to_its_upstream_with_the_header() {
        let mut s = source("acme", TenantStatus::Active);
        s.custom_domains = vec!["ERP.Acme.example.".into(), "acme.tenantry.io".into()];
        let r = route_for("Tenantry.IO", &s).unwrap();
        assert_eq!(
            r.hosts,
            ["acme.tenantry.io", "erp.acme.example"],
            "lowercase, trailing dot dropped, no duplicate"
        );
        assert_eq!(
            r.target,
            RouteTarget::Upstream {
                upstream: UpstreamAddr {
                    host: "10.0.0.7".into(),
                    port: 8069
                },
                deployment: DeploymentKind::Shared,
                tenant_header: "acme".into(),
                plan_header: "basic".into(),
            }
        );
    }

    #[test]
    fn each_status_gets_the_route_the_table_says() {
        use TenantStatus as S;
        for status in S::ALL {
            let r = route_for("t.io", &source("acme", *status)).map(|r| r.target);
            let expected = match status {
                S::Active | S::Migrating => Some("upstream"),
                S::Paused | S::Suspended | S::Deprovisioning => Some("maintenance"),
                S::PendingPayment | S::Provisioning | S::Failed | S::Deleted => None,
            };
            let got = r.map(|t| match t {
                RouteTarget::Upstream { .. } => "upstream",
                RouteTarget::Maintenance { .. } => "maintenance",
            });
            assert_eq!(got, expected, "{status}");
        }
    }

    #[test]
    fn an_active_tenant_without_a_known_upstream_gets_the_maintenance_page() {
        let mut s = source("acme", TenantStatus::Active);
        s.upstream = None;
        assert_eq!(
            route_for("t.io", &s).unwrap().target,
            RouteTarget::Maintenance {
                reason: MaintenanceReason::Unavailable
            }
        );
    }

    #[test]
    fn the_table_is_ordered_by_slug_and_leaves_out_tenants_without_a_route() {
        let t = route_table(
            "t.io",
            &[
                source("zeta", TenantStatus::Active),
                source("alpha", TenantStatus::Paused),
                source("gone", TenantStatus::Deleted),
            ],
        );
        let slugs: Vec<_> = t.iter().map(|r| r.tenant.as_str()).collect();
        assert_eq!(slugs, ["alpha", "zeta"]);
    }

    #[test]
    fn ipv6_upstreams_are_bracketed() {
        let a = UpstreamAddr {
            host: "fd00::7".into(),
            port: 80,
        };
        assert_eq!(a.dial(), "[fd00::7]:80");
    }

    #[test]
    fn only_single_label_subdomains_of_the_base_domain_are_ours() {
        assert_eq!(
            is_tenant_subdomain("tenantry.io", "Acme.Tenantry.io."),
            Some("acme".into())
        );
        assert_eq!(is_tenant_subdomain("tenantry.io", "a.b.tenantry.io"), None);
        assert_eq!(is_tenant_subdomain("tenantry.io", "tenantry.io"), None);
        assert_eq!(is_tenant_subdomain("tenantry.io", "eviltenantry.io"), None);
        assert_eq!(is_tenant_subdomain("tenantry.io", "x.example.com"), None);
    }
}
