//! Every endpoint's answer has PVE's envelope and the shape its schema's
//! `returns` declares (the `returns` lines of provisioning-endpoints.md).

use pve_sim::schema::schema;
use serde_json::Value;

use crate::helpers::{TestSim, spawn};

/// Checks `data` against a method's `returns` schema: the type, every
/// property not marked optional, and the types of the properties present.
fn check_returns(method: &str, template: &str, data: &Value) {
    let s = schema().expect("schema");
    let concrete = template
        .replace("{node}", "pve1")
        .replace("{vmid}", "100")
        .replace("{upid}", "x");
    let m = s.lookup(method, &concrete).expect("path in schema");
    assert_eq!(m.template, template);
    let returns = m
        .info
        .expect("method in schema")
        .get("returns")
        .expect("returns");
    check_value(&format!("{method} {template}"), returns, data);
}

fn check_value(ctx: &str, schema: &Value, v: &Value) {
    let ty = schema.get("type").and_then(Value::as_str).unwrap_or("any");
    let ok = match ty {
        "object" => v.is_object(),
        "array" => v.is_array(),
        "string" => v.is_string(),
        "integer" => v.is_i64() || v.is_u64(),
        "number" => v.is_number(),
        "boolean" => v.is_boolean() || v == 0 || v == 1,
        "null" => v.is_null(),
        _ => true,
    };
    assert!(ok, "{ctx}: expected {ty}, got {v}");
    if let (Some(props), Some(obj)) = (
        schema.get("properties").and_then(Value::as_object),
        v.as_object(),
    ) {
        for (name, p) in props {
            let optional = p.get("optional").is_some_and(|o| o == 1);
            match obj.get(name) {
                Some(val) => check_value(&format!("{ctx}.{name}"), p, val),
                None if name.ends_with("[n]") || optional => {}
                None => panic!("{ctx}: required property {name} missing in {v}"),
            }
        }
    }
    if let (Some(items), Some(arr)) = (schema.get("items"), v.as_array()) {
        for (i, item) in arr.iter().enumerate() {
            check_value(&format!("{ctx}[{i}]"), items, item);
        }
    }
}

async fn ok(t: &TestSim, path: &str) -> Value {
    let r = t.get(path).await;
    assert_eq!(r.status, 200, "{path}: {}", r.body);
    let body = r.json();
    assert!(
        body.get("data").is_some(),
        "{path}: no data envelope: {body}"
    );
    body["data"].clone()
}

#[tokio::test]
async fn every_endpoint_answers_its_schema_shape() {
    let t = spawn().await;
    t.created(
        "pve1",
        105,
        &[
            ("net0", "name=eth0,bridge=vmbr0,ip=dhcp"),
            ("tags", "tenantry"),
        ],
    )
    .await;
    let upid = t.create("pve1", 106, &[]).await;
    t.wait_task("pve1", &upid).await;

    check_returns("GET", "/version", &ok(&t, "/version").await);
    check_returns("GET", "/nodes", &ok(&t, "/nodes").await);
    check_returns(
        "GET",
        "/nodes/{node}/status",
        &ok(&t, "/nodes/pve1/status").await,
    );
    check_returns(
        "GET",
        "/cluster/resources",
        &ok(&t, "/cluster/resources").await,
    );
    check_returns("GET", "/nodes/{node}/lxc", &ok(&t, "/nodes/pve1/lxc").await);
    check_returns(
        "GET",
        "/nodes/{node}/lxc/{vmid}/config",
        &ok(&t, "/nodes/pve1/lxc/105/config").await,
    );
    check_returns(
        "GET",
        "/nodes/{node}/lxc/{vmid}/status/current",
        &ok(&t, "/nodes/pve1/lxc/105/status/current").await,
    );
    check_returns(
        "GET",
        "/nodes/{node}/tasks",
        &ok(&t, "/nodes/pve1/tasks").await,
    );
    check_returns(
        "GET",
        "/nodes/{node}/tasks/{upid}/status",
        &ok(&t, &format!("/nodes/pve1/tasks/{upid}/status")).await,
    );
    check_returns(
        "GET",
        "/nodes/{node}/tasks/{upid}/log",
        &ok(&t, &format!("/nodes/pve1/tasks/{upid}/log")).await,
    );

    // Task-returning calls answer a UPID string; PUT config answers null.
    let r = t
        .form("PUT", "/nodes/pve1/lxc/105/config", &[("cores", "2")])
        .await;
    assert_eq!(r.json(), serde_json::json!({ "data": null }));
    for (m, path, p) in [
        (
            "PUT",
            "/nodes/pve1/lxc/105/resize",
            vec![("disk", "rootfs"), ("size", "+1G")],
        ),
        ("POST", "/nodes/pve1/lxc/105/status/start", vec![]),
    ] {
        let r = t.form(m, path, &p).await;
        assert_eq!(r.status, 200, "{}", r.body);
        assert!(
            r.data()
                .as_str()
                .is_some_and(|u| u.starts_with("UPID:pve1:")),
            "{}",
            r.body
        );
        t.wait_task("pve1", r.data().as_str().unwrap_or("")).await;
    }
}

#[tokio::test]
async fn version_and_nodes_describe_the_configured_cluster() {
    let t = spawn().await;
    let v = ok(&t, "/version").await;
    assert_eq!(v["version"], "9.1.1");
    assert_eq!(v["release"], "9.1");
    assert!(
        v["repoid"]
            .as_str()
            .is_some_and(|r| r.chars().all(|c| c.is_ascii_hexdigit()))
    );
    let nodes = ok(&t, "/nodes").await;
    let names: Vec<&str> = nodes
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["node"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["pve1", "pve2"]);
    assert!(
        nodes
            .as_array()
            .unwrap()
            .iter()
            .all(|n| n["status"] == "online" && n["maxmem"] == 64u64 << 30)
    );
    let status = ok(&t, "/nodes/pve2/status").await;
    assert_eq!(status["cpuinfo"]["cpus"], 16);
    assert!(
        status["pveversion"]
            .as_str()
            .unwrap()
            .starts_with("pve-manager/9.1.1/")
    );
}

#[tokio::test]
async fn cluster_resources_filter_by_type() {
    let t = spawn().await;
    t.created("pve2", 120, &[("tags", "b;a")]).await;
    let vms = ok(&t, "/cluster/resources?type=vm").await;
    let vms = vms.as_array().unwrap();
    assert_eq!(vms.len(), 1);
    assert_eq!(vms[0]["id"], "lxc/120");
    assert_eq!(vms[0]["node"], "pve2");
    assert_eq!(vms[0]["vmid"], 120);
    assert_eq!(vms[0]["tags"], "a;b");
    let nodes = ok(&t, "/cluster/resources?type=node").await;
    assert!(
        nodes
            .as_array()
            .unwrap()
            .iter()
            .all(|n| n["type"] == "node")
    );
    let storage = ok(&t, "/cluster/resources?type=storage").await;
    assert!(
        storage
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s["id"] == "storage/pve1/local-lvm")
    );
    let r = t.get("/cluster/resources?type=qemu").await;
    assert_eq!(r.status, 400);
    assert!(
        r.json()["errors"]["type"]
            .as_str()
            .unwrap()
            .starts_with("value 'qemu' does not have a value in the enumeration")
    );
}

#[tokio::test]
async fn nextid_answers_the_lowest_free_id_as_a_string() {
    let t = spawn().await;
    assert_eq!(ok(&t, "/cluster/nextid").await, "100");
    t.created("pve1", 100, &[]).await;
    assert_eq!(ok(&t, "/cluster/nextid").await, "101");
    assert_eq!(ok(&t, "/cluster/nextid?vmid=150").await, "150");
    let r = t.get("/cluster/nextid?vmid=100").await;
    assert_eq!(r.status, 400);
    assert_eq!(r.json()["errors"]["vmid"], "VM 100 already exists");
    assert_eq!(r.message(), "Parameter verification failed.");
}

#[tokio::test]
async fn task_log_pages_and_task_list_shows_finished_tasks() {
    let t = spawn().await;
    let upid = t.create("pve1", 130, &[]).await;
    t.wait_task("pve1", &upid).await;
    let all = t.get(&format!("/nodes/pve1/tasks/{upid}/log")).await.json();
    let total = all["total"].as_u64().unwrap();
    let lines = all["data"].as_array().unwrap();
    assert_eq!(lines.len() as u64, total);
    assert_eq!(lines[0]["n"], 1);
    assert_eq!(lines.last().unwrap()["t"], "TASK OK");
    let page = t
        .get(&format!("/nodes/pve1/tasks/{upid}/log?start=1&limit=2"))
        .await
        .data();
    assert_eq!(page.as_array().unwrap().len(), 2);
    assert_eq!(page[0]["n"], 2);

    let list = t.get("/nodes/pve1/tasks").await.json();
    assert_eq!(list["total"], 1);
    assert_eq!(list["data"][0]["upid"], upid.as_str());
    assert_eq!(list["data"][0]["status"], "OK");
    assert_eq!(t.get("/nodes/pve2/tasks").await.json()["total"], 0);
    assert_eq!(t.get("/nodes/pve1/tasks?vmid=999").await.json()["total"], 0);
}

#[tokio::test]
async fn interfaces_and_ha_resources_answer_their_schema_shape() {
    let t = spawn().await;
    t.created(
        "pve1",
        105,
        &[("net0", "name=eth0,bridge=vmbr0,ip=dhcp"), ("start", "1")],
    )
    .await;
    check_returns(
        "GET",
        "/nodes/{node}/lxc/{vmid}/interfaces",
        &ok(&t, "/nodes/pve1/lxc/105/interfaces").await,
    );
    let r = t
        .form(
            "POST",
            "/cluster/ha/resources",
            &[("sid", "ct:105"), ("max_restart", "3"), ("failback", "0")],
        )
        .await;
    assert_eq!(r.json(), serde_json::json!({ "data": null }));
    check_returns(
        "GET",
        "/cluster/ha/resources",
        &ok(&t, "/cluster/ha/resources").await,
    );
    check_returns(
        "GET",
        "/cluster/ha/resources/{sid}",
        &ok(&t, "/cluster/ha/resources/ct:105").await,
    );
    check_returns(
        "GET",
        "/cluster/resources",
        &ok(&t, "/cluster/resources").await,
    );
    check_returns(
        "GET",
        "/nodes/{node}/lxc/{vmid}/status/current",
        &ok(&t, "/nodes/pve1/lxc/105/status/current").await,
    );
    let r = t.form("DELETE", "/cluster/ha/resources/ct:105", &[]).await;
    assert_eq!(r.json(), serde_json::json!({ "data": null }));
}
