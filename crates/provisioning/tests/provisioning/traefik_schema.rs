//! The Traefik dynamic configuration Tenantry serves (`GET
//! /v1/routing/traefik`, read by Traefik's HTTP provider) checked against
//! Traefik's published JSON schema for dynamic configuration
//! (SchemaStore's `traefik-v3-file-provider.json`, vendored in
//! `tests/fixtures/`; see the README there): a change to
//! `traefik_configuration` that Traefik's documented shapes do not allow
//! fails here.

use serde_json::{Value, json};
use tenantry_domain::{
    DeploymentKind,
    routing::{MaintenanceReason, Route, RouteTarget, UpstreamAddr},
};
use tenantry_provisioning::routing::{TraefikSettings, traefik_configuration};

const SCHEMA: &str = include_str!("../fixtures/traefik-v3-file-provider.schema.json");

/// The vendored schema, compiled as the draft it declares (draft-07).
fn validator() -> jsonschema::Validator {
    let schema: Value = serde_json::from_str(SCHEMA).expect("the vendored schema is JSON");
    assert_eq!(
        schema["$schema"], "http://json-schema.org/draft-07/schema#",
        "the vendored schema changed draft: compile it with that draft's validator"
    );
    jsonschema::draft7::new(&schema).expect("the vendored schema compiles as draft-07")
}

/// Every validation error of `config`, one per line (empty when valid).
fn errors(validator: &jsonschema::Validator, config: &Value) -> Vec<String> {
    validator
        .iter_errors(config)
        .map(|e| {
            format!(
                "at {:?} (schema {:?}): {e}",
                e.instance_path().as_str(),
                e.schema_path().as_str()
            )
        })
        .collect()
}

fn assert_valid(validator: &jsonschema::Validator, what: &str, config: &Value) {
    let errors = errors(validator, config);
    assert!(
        errors.is_empty(),
        "{what}: the Traefik configuration does not match Traefik's schema:\n{}\nconfig:\n{}",
        errors.join("\n"),
        serde_json::to_string_pretty(config).unwrap_or_default()
    );
}

fn upstream(tenant: &str, hosts: &[&str], host: &str, port: u16, kind: DeploymentKind) -> Route {
    Route {
        tenant: tenant.into(),
        hosts: hosts.iter().map(|&h| h.to_owned()).collect(),
        target: RouteTarget::Upstream {
            upstream: UpstreamAddr {
                host: host.into(),
                port,
            },
            deployment: kind,
            tenant_header: tenant.into(),
            plan_header: "pro".into(),
        },
    }
}

fn maintenance(tenant: &str, hosts: &[&str], reason: MaintenanceReason) -> Route {
    Route {
        tenant: tenant.into(),
        hosts: hosts.iter().map(|&h| h.to_owned()).collect(),
        target: RouteTarget::Maintenance { reason },
    }
}

/// A table with every kind of route: shared, dedicated and HA upstreams
/// (custom domains, a host name, an IPv6 address), and the maintenance
/// page for each reason.
fn table() -> Vec<Route> {
    vec![
        upstream(
            "acme",
            &[
                "acme.tenantry.io",
                "erp.acme.example",
                "xn--bcher-kva.example",
            ],
            "10.0.0.7",
            8069,
            DeploymentKind::Shared,
        ),
        upstream(
            "beta",
            &["beta.tenantry.io"],
            "10.0.0.7",
            8069,
            DeploymentKind::Shared,
        ),
        upstream(
            "dedi",
            &["dedi.tenantry.io", "app.dedi.example"],
            "tenant-dedi.internal",
            32_768,
            DeploymentKind::Dedicated,
        ),
        upstream(
            "ha6",
            &["ha6.tenantry.io"],
            "fd00:10::7",
            8069,
            DeploymentKind::DedicatedHa,
        ),
        maintenance("paused", &["paused.tenantry.io"], MaintenanceReason::Paused),
        maintenance(
            "unpaid",
            &["unpaid.tenantry.io", "shop.unpaid.example"],
            MaintenanceReason::Suspended,
        ),
        maintenance(
            "leaving",
            &["leaving.tenantry.io"],
            MaintenanceReason::Deprovisioning,
        ),
        maintenance(
            "starting",
            &["starting.tenantry.io"],
            MaintenanceReason::Unavailable,
        ),
    ]
}

fn settings() -> Vec<(&'static str, TraefikSettings)> {
    vec![
        (
            "no entry points, no cert resolver",
            TraefikSettings {
                entry_points: Vec::new(),
                cert_resolver: None,
                api_url: "http://tenantry:8080".into(),
            },
        ),
        (
            "entry points and a cert resolver",
            TraefikSettings {
                entry_points: vec!["web".into(), "websecure".into()],
                cert_resolver: Some("letsencrypt".into()),
                api_url: "https://tenantry.example/".into(),
            },
        ),
        (
            "entry points only",
            TraefikSettings {
                entry_points: vec!["websecure".into()],
                cert_resolver: None,
                api_url: "http://[fd00::1]:8080".into(),
            },
        ),
        (
            "cert resolver only",
            TraefikSettings {
                entry_points: Vec::new(),
                cert_resolver: Some("le".into()),
                api_url: "http://tenantry:8080/".into(),
            },
        ),
    ]
}

#[test]
fn traefik_configuration_matches_traefiks_dynamic_configuration_schema() {
    let v = validator();
    let all = table();
    let tables: [(&str, &[Route]); 5] = [
        ("every kind of route", &all),
        ("empty table", &[]),
        ("upstreams only", &all[..4]),
        ("maintenance only", &all[4..]),
        ("one IPv6 upstream", &all[3..4]),
    ];
    for (settings_name, settings) in settings() {
        for (table_name, routes) in tables {
            let config = traefik_configuration(&settings, routes);
            assert_valid(&v, &format!("{table_name}, {settings_name}"), &config);
        }
    }
}

#[test]
fn traefik_configuration_for_every_kind_of_route_has_each_section_the_schema_checked() {
    // What the schema test above covered really is there: a router, a
    // load-balancer service and a middleware of each kind, TLS and entry
    // points (so a configuration that lost a section cannot pass vacuously).
    let settings = TraefikSettings {
        entry_points: vec!["websecure".into()],
        cert_resolver: Some("letsencrypt".into()),
        api_url: "http://tenantry:8080".into(),
    };
    let c = traefik_configuration(&settings, &table());
    let http = &c["http"];
    assert_eq!(http["routers"].as_object().map(|o| o.len()), Some(8));
    assert_eq!(
        http["routers"]["tenant-ha6"]["tls"]["certResolver"],
        "letsencrypt"
    );
    assert_eq!(
        http["routers"]["tenant-paused"]["entryPoints"],
        json!(["websecure"])
    );
    assert_eq!(
        http["services"]["tenant-ha6"]["loadBalancer"]["servers"][0]["url"],
        "http://[fd00:10::7]:8069"
    );
    assert!(http["services"]["tenantry-maintenance"]["loadBalancer"].is_object());
    assert!(http["middlewares"]["tenant-acme-header"]["headers"].is_object());
    assert!(http["middlewares"]["maintenance-paused"]["replacePath"].is_object());
    assert!(http["middlewares"]["maintenance-suspended"]["replacePath"].is_object());

    // And the empty table is a bare `http` section.
    let empty = traefik_configuration(&settings, &[]);
    assert_eq!(empty, json!({"http": {}}));
}

#[test]
fn traefik_schema_refuses_broken_configurations() {
    let v = validator();
    let (_, settings) = settings().remove(1);
    let good = traefik_configuration(&settings, &table());
    assert_valid(&v, "the unbroken configuration", &good);

    let mut numeric_rule = good.clone();
    numeric_rule["http"]["routers"]["tenant-acme"]["rule"] = json!(42);

    let mut unknown_top_level = good.clone();
    unknown_top_level["frontends"] = json!({});

    let mut router_without_service = good.clone();
    if let Some(router) = router_without_service["http"]["routers"]["tenant-acme"].as_object_mut() {
        router.remove("service");
    }

    let mut unknown_router_key = good.clone();
    unknown_router_key["http"]["routers"]["tenant-acme"]["backend"] = json!("tenant-acme");

    let mut two_service_kinds = good.clone();
    two_service_kinds["http"]["services"]["tenant-acme"]["weighted"] = json!({"services": []});

    let mut no_servers = good.clone();
    no_servers["http"]["services"]["tenant-acme"]["loadBalancer"]["servers"] = json!([]);

    let mut entry_points_string = good.clone();
    entry_points_string["http"]["routers"]["tenant-acme"]["entryPoints"] = json!("websecure");

    let mut numeric_header = good.clone();
    numeric_header["http"]["middlewares"]["tenant-acme-header"]["headers"]["customRequestHeaders"]
        ["X-Tenantry-Tenant"] = json!(1);

    let mut unknown_middleware = good;
    unknown_middleware["http"]["middlewares"]["maintenance-paused"] =
        json!({"staticResponse": {"status": 503}});

    for (what, broken) in [
        ("a router whose rule is a number", numeric_rule),
        ("an unknown top-level key", unknown_top_level),
        ("a router without a service", router_without_service),
        ("an unknown router key", unknown_router_key),
        ("a service of two kinds", two_service_kinds),
        ("a load balancer without servers", no_servers),
        ("entry points as a string", entry_points_string),
        ("a numeric header value", numeric_header),
        ("a middleware Traefik does not have", unknown_middleware),
    ] {
        assert!(
            !errors(&v, &broken).is_empty(),
            "{what}: the schema accepted it"
        );
        assert!(!v.is_valid(&broken), "{what}: is_valid accepted it");
    }
}
