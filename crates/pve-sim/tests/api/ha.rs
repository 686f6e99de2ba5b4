//! HA resources (`/cluster/ha/resources`) and what they change for a CT:
//! start/stop through the HA stack, destroy only with `purge=1`.

use std::time::Duration;

use pve_sim::SimConfig;
use serde_json::json;

use crate::helpers::{spawn, spawn_with};

#[tokio::test]
async fn a_resource_is_added_listed_read_and_removed_once() {
    let t = spawn().await;
    t.created("pve1", 105, &[]).await;
    let r = t
        .form(
            "POST",
            "/cluster/ha/resources",
            &[
                ("sid", "ct:105"),
                ("state", "started"),
                ("max_restart", "2"),
                ("comment", "tenant acme"),
            ],
        )
        .await;
    assert_eq!((r.status, r.json()), (200, json!({ "data": null })));

    let list = t.get("/cluster/ha/resources").await.data();
    let digest = list[0]["digest"].as_str().unwrap().to_owned();
    assert_eq!(digest.len(), 40);
    assert_eq!(
        list,
        json!([{
            "sid": "ct:105",
            "type": "ct",
            "state": "started",
            "max_restart": 2,
            "comment": "tenant acme",
            "digest": digest,
        }])
    );
    assert_eq!(
        t.get("/cluster/ha/resources?type=ct").await.data(),
        list,
        "type filter"
    );
    assert_eq!(
        t.get("/cluster/ha/resources?type=vm").await.data(),
        json!([])
    );
    assert_eq!(t.get("/cluster/ha/resources/ct:105").await.data(), list[0]);
    // A bare vmid names the guest's resource.
    assert_eq!(t.get("/cluster/ha/resources/105").await.data(), list[0]);
    let views = t.sim.ha_resources();
    assert_eq!(views.len(), 1);
    assert_eq!(
        (views[0].sid.as_str(), views[0].kind.as_str()),
        ("ct:105", "ct")
    );
    assert_eq!(views[0].state.as_deref(), Some("started"));

    for sid in ["ct:105", "105"] {
        let r = t
            .form("POST", "/cluster/ha/resources", &[("sid", sid)])
            .await;
        assert_eq!(
            (r.status, r.message()),
            (500, "resource ID 'ct:105' already defined".to_owned()),
            "{sid}"
        );
    }

    let r = t.form("DELETE", "/cluster/ha/resources/ct:105", &[]).await;
    assert_eq!((r.status, r.json()), (200, json!({ "data": null })));
    assert!(t.sim.ha_resources().is_empty());
    let r = t.form("DELETE", "/cluster/ha/resources/ct:105", &[]).await;
    assert_eq!(
        (r.status, r.message()),
        (
            500,
            "cannot delete service 'ct:105', not HA managed!".to_owned()
        )
    );
    let r = t.get("/cluster/ha/resources/ct:105").await;
    assert_eq!(
        (r.status, r.message()),
        (500, "no such resource 'ct:105'".to_owned())
    );
    assert_eq!(t.get("/cluster/ha/resources").await.data(), json!([]));
}

#[tokio::test]
async fn adding_checks_the_sid_and_the_guest() {
    let t = spawn().await;
    t.created("pve1", 105, &[]).await;
    let cases: [(&[(&str, &str)], &str); 6] = [
        (
            &[("sid", "ct:999")],
            "resource 'ct:999' does not exist in cluster",
        ),
        (
            &[("sid", "999")],
            "unable to detect SID from VMID - VM/CT 999 does not exist",
        ),
        (
            &[("sid", "vm:105")],
            "resource 'vm:105' - guest with ID 105 is not a VM",
        ),
        (&[("sid", "ct:abc")], "invalid VMID"),
        (&[("sid", "ct:105"), ("type", "vm")], "types does not match"),
        (
            &[("sid", "ct:105"), ("group", "g1")],
            "invalid parameter 'group': ha groups have been migrated to rules",
        ),
    ];
    for (params, message) in cases {
        let r = t.form("POST", "/cluster/ha/resources", params).await;
        assert_eq!(
            (r.status, r.message()),
            (500, message.to_owned()),
            "{params:?}"
        );
    }
    let r = t
        .form("POST", "/cluster/ha/resources", &[("sid", "ct 105")])
        .await;
    assert_eq!(r.status, 400);
    assert_eq!(
        r.json()["errors"]["sid"],
        "invalid format - value does not look like a valid ha resource id\n"
    );
    let r = t
        .form(
            "POST",
            "/cluster/ha/resources",
            &[("sid", "ct:105"), ("state", "running")],
        )
        .await;
    assert_eq!(r.status, 400, "state is an enum");
    assert!(t.sim.ha_resources().is_empty());

    // Without `state`, none is stored (PVE reads it as `started`).
    let r = t
        .form("POST", "/cluster/ha/resources", &[("sid", "105")])
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let entry = t.get("/cluster/ha/resources/ct:105").await.data();
    assert!(entry.get("state").is_none(), "{entry}");
    assert_eq!(t.sim.ha_resources()[0].state, None);
    let cur = t.get("/nodes/pve1/lxc/105/status/current").await.data();
    assert_eq!(cur["ha"], json!({ "managed": 1, "state": "started" }));
}

#[tokio::test]
async fn an_ha_managed_ct_is_destroyed_only_with_purge_which_removes_its_resource() {
    let t = spawn().await;
    t.created("pve1", 105, &[]).await;
    t.created("pve1", 106, &[]).await;
    for sid in ["ct:105", "ct:106"] {
        let r = t
            .form("POST", "/cluster/ha/resources", &[("sid", sid)])
            .await;
        assert_eq!(r.status, 200, "{}", r.body);
    }
    let r = t.form("DELETE", "/nodes/pve1/lxc/105", &[]).await;
    assert_eq!(
        (r.status, r.message()),
        (
            500,
            "unable to remove CT 105 - used in HA resources and purge parameter not set."
                .to_owned()
        )
    );
    assert_eq!(t.sim.containers().len(), 2);

    let r = t
        .form("DELETE", "/nodes/pve1/lxc/105", &[("purge", "1")])
        .await;
    let st = t.wait_task("pve1", r.data().as_str().unwrap()).await;
    assert_eq!(st["exitstatus"], "OK");
    let left: Vec<String> = t.sim.ha_resources().into_iter().map(|r| r.sid).collect();
    assert_eq!(left, ["ct:106"]);
    assert_eq!(t.sim.containers().len(), 1);
}

#[tokio::test]
async fn start_and_stop_of_an_ha_managed_ct_go_through_the_ha_stack() {
    let t = spawn().await;
    t.created("pve1", 105, &[]).await;
    let r = t
        .form(
            "POST",
            "/cluster/ha/resources",
            &[("sid", "ct:105"), ("state", "started")],
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    // No CRM: adding the resource does not start the CT by itself.
    assert_eq!(t.sim.containers()[0].status, "stopped");

    let r = t
        .form("POST", "/nodes/pve1/lxc/105/status/start", &[])
        .await;
    let st = t.wait_task("pve1", r.data().as_str().unwrap()).await;
    assert_eq!(
        (st["type"].clone(), st["exitstatus"].clone()),
        ("hastart".into(), "OK".into())
    );
    assert_eq!(t.sim.containers()[0].status, "running");
    let vms = t.get("/cluster/resources?type=vm").await.data();
    assert_eq!(vms[0]["hastate"], "started");

    let r = t
        .form("POST", "/nodes/pve1/lxc/105/status/shutdown", &[])
        .await;
    let st = t.wait_task("pve1", r.data().as_str().unwrap()).await;
    assert_eq!(st["type"], "hastop");
    assert_eq!(t.sim.containers()[0].status, "stopped");
    assert_eq!(t.sim.ha_resources()[0].state.as_deref(), Some("stopped"));
    let cur = t.get("/nodes/pve1/lxc/105/status/current").await.data();
    assert_eq!(cur["ha"], json!({ "managed": 1, "state": "stopped" }));

    // `ignored` resources behave as unmanaged: a plain vzstart.
    t.form("DELETE", "/cluster/ha/resources/105", &[]).await;
    t.form(
        "POST",
        "/cluster/ha/resources",
        &[("sid", "ct:105"), ("state", "ignored")],
    )
    .await;
    let r = t
        .form("POST", "/nodes/pve1/lxc/105/status/start", &[])
        .await;
    let st = t.wait_task("pve1", r.data().as_str().unwrap()).await;
    assert_eq!(st["type"], "vzstart");
}

#[tokio::test]
async fn a_restarted_simulator_keeps_its_ha_resources() {
    let file = std::env::temp_dir().join(format!(
        "pve-sim-ha-{}-{}.json",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos())
    ));
    let cfg = || SimConfig {
        task_duration: Duration::ZERO,
        state_file: Some(file.clone()),
        ..SimConfig::default()
    };
    let t = spawn_with(cfg()).await;
    t.created("pve1", 100, &[]).await;
    t.form(
        "POST",
        "/cluster/ha/resources",
        &[
            ("sid", "ct:100"),
            ("state", "started"),
            ("max_relocate", "0"),
        ],
    )
    .await;
    let before = t.sim.ha_resources();
    assert_eq!(before.len(), 1);
    t.sim.stop().await;

    let again = spawn_with(cfg()).await;
    assert_eq!(again.sim.ha_resources(), before);
    again.sim.stop().await;
    std::fs::remove_file(&file).ok();
}
