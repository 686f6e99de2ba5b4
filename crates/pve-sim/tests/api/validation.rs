//! Parameter verification follows the embedded PVE schema.

use std::collections::BTreeSet;

use serde_json::Value;

use crate::helpers::{TEMPLATE, spawn};

fn errors(body: &Value) -> serde_json::Map<String, Value> {
    assert_eq!(body["message"], "Parameter verification failed.\n");
    assert!(body["data"].is_null());
    body["errors"].as_object().cloned().expect("errors map")
}

#[tokio::test]
async fn bad_parameters_get_a_400_with_pve_messages_per_parameter() {
    let t = spawn().await;
    let r = t
        .form(
            "POST",
            "/nodes/pve1/lxc",
            &[
                ("vmid", "105"),
                ("ostemplate", TEMPLATE),
                ("memory", "abc"),
                ("swap", "-1"),
                ("cores", "9000"),
                ("cpulimit", "x"),
                ("onboot", "true"),
                ("arch", "sparc"),
                ("hostname", "bad_name!"),
                ("ramsize", "1"),
                ("net32", "name=eth0"),
                ("net0", "name=eth0,color=blue"),
                ("net1", "bridge=vmbr0"),
            ],
        )
        .await;
    assert_eq!(r.status, 400);
    let e = errors(&r.json());
    let not_defined =
        "property is not defined in schema and the schema does not allow additional properties";
    assert_eq!(e["memory"], "type check ('integer') failed - got 'abc'");
    assert_eq!(e["swap"], "value must have a minimum value of 0");
    assert_eq!(e["cores"], "value must have a maximum value of 8192");
    assert_eq!(e["cpulimit"], "type check ('number') failed - got 'x'");
    assert_eq!(e["onboot"], "type check ('boolean') failed - got 'true'");
    assert_eq!(
        e["arch"],
        "value 'sparc' does not have a value in the enumeration 'amd64, i386, arm64, armhf, riscv32, riscv64'"
    );
    assert_eq!(
        e["hostname"],
        "invalid format - value does not look like a valid DNS name\n"
    );
    assert_eq!(e["ramsize"], not_defined);
    assert_eq!(e["net32"], not_defined, "net[n] goes to net31");
    assert_eq!(
        e["net0"],
        "invalid format - invalid key in comma-separated list property: color\n"
    );
    assert_eq!(
        e["net1"],
        "invalid format - format error\nnet1.name: property is missing and it is not optional\n"
    );
    assert_eq!(e.len(), 11, "{e:?}");
    assert!(t.sim.containers().is_empty());
}

#[tokio::test]
async fn missing_required_and_bad_path_parameters() {
    let t = spawn().await;
    let r = t
        .form("POST", "/nodes/pve1/lxc", &[("hostname", "x")])
        .await;
    let e = errors(&r.json());
    assert_eq!(e["vmid"], "property is missing and it is not optional");
    assert_eq!(
        e["ostemplate"],
        "property is missing and it is not optional"
    );
    let r = t
        .form(
            "POST",
            "/nodes/pve1/lxc",
            &[("vmid", "99"), ("ostemplate", TEMPLATE)],
        )
        .await;
    assert_eq!(
        errors(&r.json())["vmid"],
        "invalid format - value does not look like a valid VM ID\n"
    );
    let r = t.get("/nodes/pve1/lxc/abc/config").await;
    assert_eq!(
        errors(&r.json())["vmid"],
        "type check ('integer') failed - got 'abc'"
    );
    let r = t
        .form("PUT", "/nodes/pve1/lxc/105/resize", &[("disk", "rootfs")])
        .await;
    assert_eq!(
        errors(&r.json())["size"],
        "property is missing and it is not optional"
    );
    let r = t
        .form(
            "PUT",
            "/nodes/pve1/lxc/105/resize",
            &[("disk", "hda"), ("size", "1G")],
        )
        .await;
    assert!(
        errors(&r.json())["disk"]
            .as_str()
            .unwrap()
            .starts_with("value 'hda' does not have a value")
    );
    let r = t
        .form(
            "PUT",
            "/nodes/pve1/lxc/105/resize",
            &[("disk", "rootfs"), ("size", "1X")],
        )
        .await;
    assert_eq!(
        errors(&r.json())["size"],
        "value does not match the regex pattern"
    );
    let r = t.form("GET", "/nodes/pve1/lxc", &[("node", "pve2")]).await;
    assert_eq!(
        errors(&r.json())["node"],
        "duplicate parameter (already defined in URI)"
    );
}

/// Validation is driven by the schema: every property the schema lists for
/// `POST /nodes/{node}/lxc` passes the "defined in schema" check, and names
/// it does not list fail it. The property list is read here from the raw
/// apidata file, independently of the simulator's own index.
#[tokio::test]
async fn create_accepts_exactly_the_schema_parameter_names() {
    let t = spawn().await;
    let tree: Value = serde_json::from_str(pve_sim::schema::APIDATA).unwrap();
    fn find<'a>(nodes: &'a Value, path: &str) -> Option<&'a Value> {
        nodes.as_array()?.iter().find_map(|n| {
            if n["path"] == path {
                Some(n)
            } else {
                find(&n["children"], path)
            }
        })
    }
    let props =
        find(&tree, "/nodes/{node}/lxc").unwrap()["info"]["POST"]["parameters"]["properties"]
            .as_object()
            .unwrap()
            .clone();
    assert!(props.len() > 40);
    let mut names: BTreeSet<String> = BTreeSet::new();
    for name in props.keys() {
        match name.strip_suffix("[n]") {
            Some(base) => {
                names.insert(format!("{base}0"));
                names.insert(format!("{base}7"));
            }
            None if name != "node" => {
                names.insert(name.clone());
            }
            None => {}
        }
    }
    let params: Vec<(String, String)> = names
        .iter()
        .map(|n| (n.clone(), "\u{1}junk".to_owned()))
        .collect();
    let r = t
        .form(
            "POST",
            "/nodes/pve1/lxc",
            &params
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str()))
                .collect::<Vec<_>>(),
        )
        .await;
    let e = errors(&r.json());
    let not_defined =
        "property is not defined in schema and the schema does not allow additional properties";
    for (name, msg) in &e {
        assert_ne!(msg, not_defined, "{name} is in the schema but was refused");
    }
    // Strings without format or pattern accept anything; typed ones do not.
    assert!(e.contains_key("vmid") && e.contains_key("memory") && e.contains_key("start"));
    assert!(!e.contains_key("password") && !e.contains_key("description"));

    let outsiders = [
        "cpu", "ram", "disk", "Net0", "net32", "mp256", "dev256", "net00", "mpX", "scsi0", "name",
    ];
    let params: Vec<(&str, &str)> = outsiders.iter().map(|n| (*n, "1")).collect();
    let r = t.form("POST", "/nodes/pve1/lxc", &params).await;
    let e = errors(&r.json());
    for name in outsiders {
        assert_eq!(e[name], not_defined, "{name}");
    }
}
