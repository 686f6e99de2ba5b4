//! Tests of the catalog's types, and of product and plan validation with
//! every broken field named by its path.

use super::*;
use proptest::prelude::*;
use rust_decimal_macros::dec;
use std::collections::BTreeMap;

fn plan(code: &str, deployment: &str) -> PlanInput {
    PlanInput {
        code: code.into(),
        name: "Basic".into(),
        tier_rank: 1,
        price: dec!(29),
        currency: "USD".into(),
        interval: "month".into(),
        deployment: deployment.into(),
        cpu_cores: 1,
        memory_mib: 2048,
        storage_gib: 10,
        backup_schedule: "weekly".into(),
        sla_percent: Some(dec!(99)),
        active: true,
    }
}

fn product() -> ProductInput {
    ProductInput {
        slug: "odoo".into(),
        name: "Odoo".into(),
        description: None,
        driver: "proxmox".into(),
        lxc_template: Some("local:vztmpl/odoo.tar.zst".into()),
        image: None,
        compose_stack: None,
        internal_port: 8069,
        shared: Some(SharedInstanceInput {
            max_tenants: 50,
            cpu_cores: 4,
            memory_mib: 8192,
            storage_gib: 100,
            tenant_connection_limit: None,
        }),
        dedicated_ports: Some(PortRangeInput {
            start: 8200,
            end: 8299,
        }),
        env: BTreeMap::new(),
        volumes: BTreeMap::new(),
        stack_service: None,
        plans: vec![plan("basic", "shared"), plan("pro", "dedicated")],
    }
}

#[test]
fn docker_settings_are_for_docker_products_and_checked() {
    let mut p = product();
    p.env.insert("DB".into(), "{{db_name}}".into());
    assert_eq!(paths(p.validate().unwrap_err()), ["driver"]);
    let mut d = product();
    d.driver = "docker".into();
    d.lxc_template = None;
    d.image = Some("app:1".into());
    d.env.insert("DB_NAME".into(), "{{db_name}}".into());
    d.env.insert("1BAD".into(), "x".into());
    d.volumes.insert("data".into(), "/var/lib/app".into());
    d.volumes.insert("logs".into(), "relative".into());
    d.stack_service = Some("web".into());
    assert_eq!(
        paths(d.validate().unwrap_err()),
        ["env.1BAD", "volumes.logs", "stack_service"]
    );
    d.env.remove("1BAD");
    d.volumes.remove("logs");
    d.stack_service = None;
    let spec = d.validate().unwrap();
    assert_eq!(spec.env["DB_NAME"], "{{db_name}}");
    assert_eq!(spec.volumes["data"], "/var/lib/app");
}

fn paths(e: ValidationErrors) -> Vec<String> {
    e.errors().iter().map(|f| f.path.clone()).collect()
}

#[test]
fn a_valid_product_validates() {
    let spec = product().validate().unwrap();
    assert_eq!(spec.slug.as_str(), "odoo");
    assert_eq!(spec.plans.len(), 2);
    assert_eq!(spec.plans[0].price.amount(), dec!(29.00));
    assert_eq!(spec.dedicated_ports.unwrap().len(), 100);
}

#[test]
fn every_broken_field_is_named() {
    let mut p = product();
    p.slug = "Odoo!".into();
    p.dedicated_ports = Some(PortRangeInput {
        start: 9000,
        end: 8000,
    });
    p.plans[0].price = dec!(-1);
    p.plans[1].currency = "usd".into();
    p.plans[1].memory_mib = 1;
    p.plans.push(plan("basic", "shared"));
    assert_eq!(
        paths(p.validate().unwrap_err()),
        [
            "slug",
            "dedicated_ports",
            "plans[0].price",
            "plans[1].currency",
            "plans[1].memory_mib",
            "plans[2].code"
        ]
    );
}

#[test]
fn ports_must_be_unprivileged() {
    let mut p = product();
    p.dedicated_ports = Some(PortRangeInput {
        start: 80,
        end: 70_000,
    });
    assert_eq!(
        paths(p.validate().unwrap_err()),
        ["dedicated_ports.start", "dedicated_ports.end"]
    );
}

#[test]
fn artifact_must_match_driver() {
    let mut p = product();
    p.lxc_template = None;
    assert_eq!(paths(p.validate().unwrap_err()), ["lxc_template"]);
    let mut d = product();
    d.driver = "docker".into();
    d.lxc_template = None;
    assert_eq!(paths(d.validate().unwrap_err()), ["image"]);
    d.image = Some("inventory:latest".into());
    assert_eq!(
        d.validate().unwrap().artifact,
        Artifact::Image("inventory:latest".into())
    );
    d.compose_stack = Some("inventory".into());
    assert_eq!(paths(d.validate().unwrap_err()), ["image"]);
}

#[test]
fn deployments_need_their_product_settings() {
    let mut p = product();
    p.shared = None;
    p.dedicated_ports = None;
    assert_eq!(
        paths(p.validate().unwrap_err()),
        ["plans[0].deployment", "plans[1].deployment"]
    );
}

#[test]
fn backup_schedules_parse_and_print_canonically() {
    for (text, hours, canonical) in [
        ("none", None, "none"),
        ("daily", Some(24), "daily"),
        ("24h", Some(24), "daily"),
        ("weekly", Some(168), "weekly"),
        ("6h", Some(6), "6h"),
    ] {
        let s = BackupSchedule::parse(text).unwrap();
        assert_eq!(s.interval_hours(), hours);
        assert_eq!(s.to_string(), canonical);
    }
    for bad in ["0h", "often", "h", "-1h"] {
        assert!(BackupSchedule::parse(bad).is_err(), "{bad}");
    }
}

#[test]
fn sla_is_a_percentage() {
    assert!(SlaPercent::parse(dec!(99.9)).is_ok());
    assert!(SlaPercent::parse(dec!(100)).is_ok());
    assert!(SlaPercent::parse(dec!(0)).is_err());
    assert!(SlaPercent::parse(dec!(100.1)).is_err());
    assert!(SlaPercent::parse(dec!(99.9999)).is_err());
}

proptest! {
    #[test]
    fn port_range_accepts_exactly_ordered_unprivileged_pairs(a in 0i64..70_000, b in 0i64..70_000) {
        let ok = (1024..=65535).contains(&a) && (1024..=65535).contains(&b) && a <= b;
        let r = Port::parse(a).and_then(|s| Port::parse(b).and_then(|e| PortRange::new(s, e)));
        prop_assert_eq!(r.is_ok(), ok);
        if let Ok(r) = r {
            prop_assert_eq!(i64::from(r.len()), b - a + 1);
        }
    }

    #[test]
    fn plan_codes_round_trip(s in "[a-z0-9][a-z0-9_-]{0,62}") {
        let code = PlanCode::parse(&s).unwrap();
        prop_assert_eq!(code.as_str(), s.as_str());
    }

    #[test]
    fn enums_round_trip(i in 0usize..3) {
        let d = DeploymentKind::ALL[i];
        prop_assert_eq!(d.as_str().parse::<DeploymentKind>(), Ok(d));
        let b = BillingInterval::ALL[i];
        prop_assert_eq!(b.as_str().parse::<BillingInterval>(), Ok(b));
    }
}
