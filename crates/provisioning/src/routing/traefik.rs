//! Traefik's dynamic configuration for the route table, as its HTTP
//! provider reads it
//! (<https://doc.traefik.io/traefik/providers/http/>; the object shapes are
//! the file provider's: <https://doc.traefik.io/traefik/routing/routers/>,
//! `services`, `middlewares`).
//!
//! Per tenant: a router `tenant-<slug>` whose rule matches its hosts, a
//! service `tenant-<slug>` load-balancing to its upstream, and a `headers`
//! middleware `tenant-<slug>-header` setting the tenant header. Traefik has
//! no static-response middleware, so a tenant in maintenance is routed to
//! Tenantry's own maintenance page (`GET /maintenance/{reason}`, HTTP 503)
//! through the `tenantry-maintenance` service and a `replacePath`.

use serde_json::{Map, Value, json};
use tenantry_domain::routing::{PLAN_HEADER, Route, RouteTarget, TENANT_HEADER};

/// How the Traefik configuration is written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TraefikSettings {
    /// Entry points the routers attach to (`TENANTRY_TRAEFIK_ENTRYPOINTS`,
    /// e.g. `websecure`); empty: all of Traefik's.
    pub entry_points: Vec<String>,
    /// Certificate resolver for the routers' TLS
    /// (`TENANTRY_TRAEFIK_CERT_RESOLVER`, e.g. `letsencrypt`); `None`: no
    /// `tls` section (plain HTTP, or TLS terminated before Traefik).
    pub cert_resolver: Option<String>,
    /// Tenantry's own base URL as Traefik reaches it, for the maintenance
    /// page (`TENANTRY_PUBLIC_URL`).
    pub api_url: String,
}

fn rule(hosts: &[String]) -> String {
    hosts
        .iter()
        .map(|h| format!("Host(`{h}`)"))
        .collect::<Vec<_>>()
        .join(" || ")
}

/// Traefik's dynamic configuration (`{"http": {routers, services,
/// middlewares}}`) for `routes`.
#[must_use]
pub fn traefik_configuration(settings: &TraefikSettings, routes: &[Route]) -> Value {
    let mut routers = Map::new();
    let mut services = Map::new();
    let mut middlewares = Map::new();
    let mut maintenance_used = false;
    for r in routes {
        let name = format!("tenant-{}", r.tenant);
        let mut router = json!({"rule": rule(&r.hosts)});
        if !settings.entry_points.is_empty() {
            router["entryPoints"] = json!(settings.entry_points);
        }
        if let Some(resolver) = &settings.cert_resolver {
            router["tls"] = json!({"certResolver": resolver});
        }
        match &r.target {
            RouteTarget::Upstream {
                upstream,
                tenant_header,
                plan_header,
                ..
            } => {
                let header = format!("{name}-header");
                router["service"] = json!(name);
                router["middlewares"] = json!([header]);
                services.insert(
                    name.clone(),
                    json!({"loadBalancer": {"servers": [{"url": format!("http://{}", upstream.dial())}], "passHostHeader": true}}),
                );
                middlewares.insert(
                    header,
                    json!({"headers": {"customRequestHeaders": {
                        TENANT_HEADER: tenant_header,
                        PLAN_HEADER: plan_header,
                    }}}),
                );
            }
            RouteTarget::Maintenance { reason } => {
                let reason = serde_json::to_value(reason)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_owned))
                    .unwrap_or_else(|| "unavailable".into());
                let rewrite = format!("maintenance-{reason}");
                router["service"] = json!("tenantry-maintenance");
                router["middlewares"] = json!([rewrite]);
                middlewares.insert(
                    rewrite,
                    json!({"replacePath": {"path": format!("/maintenance/{reason}")}}),
                );
                maintenance_used = true;
            }
        }
        routers.insert(name, router);
    }
    if maintenance_used {
        services.insert(
            "tenantry-maintenance".into(),
            json!({"loadBalancer": {"servers": [{"url": settings.api_url.trim_end_matches('/')}], "passHostHeader": false}}),
        );
    }
    let mut http = Map::new();
    // Traefik refuses empty sections in some versions: only what exists.
    if !routers.is_empty() {
        http.insert("routers".into(), Value::Object(routers));
    }
    if !services.is_empty() {
        http.insert("services".into(), Value::Object(services));
    }
    if !middlewares.is_empty() {
        http.insert("middlewares".into(), Value::Object(middlewares));
    }
    json!({ "http": http })
}

#[cfg(test)]
mod tests {
    use tenantry_domain::{
        DeploymentKind,
        routing::{MaintenanceReason, UpstreamAddr},
    };

    use super::*;

    #[test]
    fn routers_services_and_header_middlewares_per_tenant_and_maintenance_through_tenantry() {
        let settings = TraefikSettings {
            entry_points: vec!["websecure".into()],
            cert_resolver: Some("le".into()),
            api_url: "http://tenantry:8080/".into(),
        };
        let routes = [
            Route {
                tenant: "acme".into(),
                hosts: vec!["acme.t.io".into(), "erp.acme.example".into()],
                target: RouteTarget::Upstream {
                    upstream: UpstreamAddr {
                        host: "10.0.0.7".into(),
                        port: 8069,
                    },
                    deployment: DeploymentKind::Shared,
                    tenant_header: "acme".into(),
                    plan_header: "pro".into(),
                },
            },
            Route {
                tenant: "zed".into(),
                hosts: vec!["zed.t.io".into()],
                target: RouteTarget::Maintenance {
                    reason: MaintenanceReason::Suspended,
                },
            },
        ];
        let c = traefik_configuration(&settings, &routes);
        let r = &c["http"]["routers"]["tenant-acme"];
        assert_eq!(r["rule"], "Host(`acme.t.io`) || Host(`erp.acme.example`)");
        assert_eq!(r["entryPoints"], json!(["websecure"]));
        assert_eq!(r["tls"]["certResolver"], "le");
        assert_eq!(
            c["http"]["services"]["tenant-acme"]["loadBalancer"]["servers"][0]["url"],
            "http://10.0.0.7:8069"
        );
        assert_eq!(
            c["http"]["middlewares"]["tenant-acme-header"]["headers"]["customRequestHeaders"]["X-Tenantry-Tenant"],
            "acme"
        );
        let z = &c["http"]["routers"]["tenant-zed"];
        assert_eq!(z["service"], "tenantry-maintenance");
        assert_eq!(
            c["http"]["middlewares"]["maintenance-suspended"]["replacePath"]["path"],
            "/maintenance/suspended"
        );
        assert_eq!(
            c["http"]["services"]["tenantry-maintenance"]["loadBalancer"]["servers"][0]["url"],
            "http://tenantry:8080"
        );
    }
}
