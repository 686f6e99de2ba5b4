//! Request bodies: form, JSON and form without a Content-Type.

use serde_json::json;

use crate::helpers::{TEMPLATE, spawn};

#[tokio::test]
async fn json_bodies_take_numbers_and_booleans() {
    let t = spawn().await;
    let r = t
        .json(
            "POST",
            "/nodes/pve1/lxc",
            json!({ "vmid": 105, "ostemplate": TEMPLATE, "cores": 2, "memory": 1024, "start": true,
                    "unprivileged": 1, "tags": "a", "rootfs": "local-lvm:8" }),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    t.wait_task("pve1", r.data().as_str().unwrap()).await;
    let ct = &t.sim.containers()[0];
    assert_eq!(
        (ct.status.as_str(), ct.config["cores"].as_str()),
        ("running", "2")
    );
    let logged = t
        .sim
        .requests()
        .into_iter()
        .find(|q| q.method == "POST")
        .unwrap();
    assert!(
        logged
            .params
            .contains(&("start".to_owned(), "1".to_owned()))
    );
    assert!(
        logged
            .params
            .contains(&("vmid".to_owned(), "105".to_owned()))
    );

    // A JSON string is checked as text: "true" is no boolean for PVE.
    let r = t
        .json(
            "PUT",
            "/nodes/pve1/lxc/105/config",
            json!({ "onboot": "true", "cores": [1] }),
        )
        .await;
    assert_eq!(r.status, 400);
    assert_eq!(
        r.json()["errors"]["onboot"],
        "type check ('boolean') failed - got 'true'"
    );
    assert_eq!(
        r.json()["errors"]["cores"],
        "type check ('integer') failed - got ARRAY"
    );
    let r = t
        .json(
            "PUT",
            "/nodes/pve1/lxc/105/config",
            json!({ "onboot": false }),
        )
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(t.sim.containers()[0].config["onboot"], "0");
}

#[tokio::test]
async fn form_bodies_without_content_type_are_read_as_forms() {
    let t = spawn().await;
    // As proxmox-api 0.2 sends them, and as pve-http-server decodes them.
    let body = format!(
        "vmid=105&ostemplate={}&hostname=acme",
        TEMPLATE.replace(':', "%3A").replace('/', "%2F")
    );
    let r = t
        .raw(
            "POST",
            "/nodes/pve1/lxc",
            &[("Authorization", &t.auth())],
            &body,
        )
        .await;
    assert_eq!(r.status_line, "HTTP/1.1 200 OK", "{}", r.body);
    let logged = t
        .sim
        .requests()
        .into_iter()
        .find(|q| q.method == "POST")
        .unwrap();
    assert_eq!(logged.path, "/api2/json/nodes/pve1/lxc");
    assert_eq!(
        logged.params,
        vec![
            ("vmid".into(), "105".into()),
            ("ostemplate".into(), TEMPLATE.into()),
            ("hostname".into(), "acme".into())
        ]
    );
    assert_eq!(logged.status, 200);
    assert_eq!(t.sim.containers()[0].config["hostname"], "acme");
}

#[tokio::test]
async fn other_content_types_and_bodies_on_get_are_refused() {
    let t = spawn().await;
    let auth = t.auth();
    let r = t
        .raw(
            "POST",
            "/nodes/pve1/lxc",
            &[("Authorization", &auth), ("Content-Type", "text/plain")],
            "vmid=105",
        )
        .await;
    assert_eq!(
        r.status_line,
        "HTTP/1.1 506 upload 'Content-Type 'text/plain' not implemented"
    );
    let r = t
        .raw("GET", "/version", &[("Authorization", &auth)], "a=b")
        .await;
    assert_eq!(
        r.status_line,
        "HTTP/1.1 501 Unexpected content for method 'GET'"
    );
    let r = t
        .raw(
            "POST",
            "/nodes/pve1/lxc",
            &[
                ("Authorization", &auth),
                ("Content-Type", "application/json"),
            ],
            "[1]",
        )
        .await;
    assert!(
        r.status_line.starts_with("HTTP/1.1 501"),
        "{}",
        r.status_line
    );
}

#[tokio::test]
async fn query_parameters_work_for_get_and_override_the_body() {
    let t = spawn().await;
    t.created("pve1", 105, &[]).await;
    let r = t
        .form(
            "GET",
            "/nodes/pve1/tasks",
            &[("typefilter", "vzcreate"), ("limit", "1")],
        )
        .await;
    assert_eq!(r.json()["total"], 1);
    let logged = t
        .sim
        .requests()
        .into_iter()
        .rfind(|q| q.method == "GET")
        .unwrap();
    assert_eq!(
        logged.params,
        vec![
            ("typefilter".into(), "vzcreate".into()),
            ("limit".into(), "1".into())
        ]
    );
}
