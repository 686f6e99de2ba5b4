//! A container's life as the driver drives it, UPIDs, and locks.

use std::time::Duration;

use pve_sim::SimConfig;

use crate::helpers::{spawn, spawn_with};

#[tokio::test]
async fn create_start_configure_resize_stop_destroy() {
    let t = spawn().await;
    let upid = t
        .create(
            "pve1",
            105,
            &[
                ("hostname", "acme"),
                ("cores", "1"),
                ("memory", "512"),
                ("net0", "name=eth0,bridge=vmbr0,ip=dhcp"),
                ("tags", "tenantry,dedicated"),
                ("unprivileged", "1"),
            ],
        )
        .await;
    let st = t.wait_task("pve1", &upid).await;
    assert_eq!(st["exitstatus"], "OK");
    assert_eq!(st["type"], "vzcreate");
    assert_eq!(st["id"], "105");

    let cfg = t.get("/nodes/pve1/lxc/105/config").await.data();
    assert_eq!(cfg["hostname"], "acme");
    assert_eq!(cfg["memory"], 512);
    assert_eq!(cfg["rootfs"], "local-lvm:vm-105-disk-0,size=8G");
    assert_eq!(cfg["tags"], "dedicated;tenantry");
    assert!(
        cfg["net0"]
            .as_str()
            .unwrap()
            .starts_with("name=eth0,bridge=vmbr0,hwaddr=BC:24:11:")
    );
    assert!(cfg.get("lock").is_none());
    let digest = cfg["digest"].as_str().unwrap().to_owned();
    assert_eq!(digest.len(), 40);
    assert_eq!(
        t.get("/nodes/pve1/lxc/105/status/current").await.data()["status"],
        "stopped"
    );

    let r = t
        .form("POST", "/nodes/pve1/lxc/105/status/start", &[])
        .await;
    assert_eq!(
        t.wait_task("pve1", r.data().as_str().unwrap()).await["exitstatus"],
        "OK"
    );
    let cur = t.get("/nodes/pve1/lxc/105/status/current").await.data();
    assert_eq!(cur["status"], "running");
    assert_eq!(cur["vmid"], 105);
    assert_eq!(cur["maxmem"], 512u64 << 20);
    let r = t
        .form("POST", "/nodes/pve1/lxc/105/status/start", &[])
        .await;
    assert_eq!(
        (r.status, r.message()),
        (500, "CT 105 already running".to_owned())
    );

    // Config changes apply; a stale digest is refused.
    let r = t
        .form(
            "PUT",
            "/nodes/pve1/lxc/105/config",
            &[("cores", "2"), ("memory", "1024"), ("digest", &digest)],
        )
        .await;
    assert_eq!(r.json(), serde_json::json!({ "data": null }));
    let cfg = t.get("/nodes/pve1/lxc/105/config").await.data();
    assert_eq!(
        (cfg["cores"].clone(), cfg["memory"].clone()),
        (2.into(), 1024.into())
    );
    assert_ne!(cfg["digest"], digest.as_str());
    let r = t
        .form(
            "PUT",
            "/nodes/pve1/lxc/105/config",
            &[("swap", "0"), ("digest", &digest)],
        )
        .await;
    assert_eq!(r.status, 500);
    assert!(r.message().starts_with("detected modified configuration"));
    let r = t
        .form("PUT", "/nodes/pve1/lxc/105/config", &[("delete", "tags")])
        .await;
    assert_eq!(r.status, 200);
    assert!(
        t.get("/nodes/pve1/lxc/105/config")
            .await
            .data()
            .get("tags")
            .is_none()
    );

    // Resize grows, never shrinks.
    let r = t
        .form(
            "PUT",
            "/nodes/pve1/lxc/105/resize",
            &[("disk", "rootfs"), ("size", "+2G")],
        )
        .await;
    let st = t.wait_task("pve1", r.data().as_str().unwrap()).await;
    assert_eq!(
        (st["type"].clone(), st["exitstatus"].clone()),
        ("resize".into(), "OK".into())
    );
    assert_eq!(
        t.get("/nodes/pve1/lxc/105/config").await.data()["rootfs"],
        "local-lvm:vm-105-disk-0,size=10G"
    );
    let r = t
        .form(
            "PUT",
            "/nodes/pve1/lxc/105/resize",
            &[("disk", "rootfs"), ("size", "5G")],
        )
        .await;
    assert_eq!(
        (r.status, r.message()),
        (500, "unable to shrink disk size".to_owned())
    );

    // A running CT is not destroyed without force.
    let r = t
        .form("DELETE", "/nodes/pve1/lxc/105", &[("purge", "1")])
        .await;
    assert_eq!(
        (r.status, r.message()),
        (500, "CT 105 is running - destroy failed".to_owned())
    );
    let r = t
        .form(
            "POST",
            "/nodes/pve1/lxc/105/status/shutdown",
            &[("timeout", "30")],
        )
        .await;
    assert_eq!(
        t.wait_task("pve1", r.data().as_str().unwrap()).await["type"],
        "vzshutdown"
    );
    assert_eq!(t.sim.containers()[0].status, "stopped");
    let r = t.form("POST", "/nodes/pve1/lxc/105/status/stop", &[]).await;
    assert_eq!(
        (r.status, r.message()),
        (500, "CT 105 not running".to_owned())
    );

    let r = t
        .form(
            "DELETE",
            "/nodes/pve1/lxc/105",
            &[("purge", "1"), ("destroy-unreferenced-disks", "1")],
        )
        .await;
    let st = t.wait_task("pve1", r.data().as_str().unwrap()).await;
    assert_eq!(
        (st["type"].clone(), st["exitstatus"].clone()),
        ("vzdestroy".into(), "OK".into())
    );
    assert!(t.sim.containers().is_empty());
    let r = t.get("/nodes/pve1/lxc/105/config").await;
    assert_eq!(r.status, 500);
    assert_eq!(
        r.message(),
        "Configuration file 'nodes/pve1/lxc/105.conf' does not exist"
    );
    assert_eq!(t.sim.tasks().len(), 5);
}

#[tokio::test]
async fn start_after_create_and_forced_destroy() {
    let t = spawn().await;
    t.created("pve2", 200, &[("start", "1")]).await;
    assert_eq!(t.sim.containers()[0].status, "running");
    let r = t
        .form("POST", "/nodes/pve2/lxc/200/status/reboot", &[])
        .await;
    assert_eq!(
        t.wait_task("pve2", r.data().as_str().unwrap()).await["type"],
        "vzreboot"
    );
    let r = t
        .form("DELETE", "/nodes/pve2/lxc/200", &[("force", "1")])
        .await;
    assert_eq!(
        t.wait_task("pve2", r.data().as_str().unwrap()).await["exitstatus"],
        "OK"
    );
    assert!(t.sim.containers().is_empty());
}

#[tokio::test]
async fn a_ct_is_found_only_on_its_node_and_vmids_are_cluster_wide() {
    let t = spawn().await;
    t.created("pve1", 110, &[]).await;
    let r = t.get("/nodes/pve2/lxc/110/status/current").await;
    assert_eq!(
        r.message(),
        "Configuration file 'nodes/pve2/lxc/110.conf' does not exist"
    );
    let r = t
        .form(
            "POST",
            "/nodes/pve2/lxc",
            &[("vmid", "110"), ("ostemplate", crate::helpers::TEMPLATE)],
        )
        .await;
    assert_eq!(
        (r.status, r.message()),
        (500, "CT 110 already exists on node 'pve1'".to_owned())
    );
    let r = t
        .form(
            "POST",
            "/nodes/pve1/lxc",
            &[("vmid", "111"), ("ostemplate", "local:vztmpl/nope.tar.zst")],
        )
        .await;
    assert_eq!(
        (r.status, r.message()),
        (
            500,
            "volume 'local:vztmpl/nope.tar.zst' does not exist".to_owned()
        )
    );
    let r = t
        .form(
            "POST",
            "/nodes/pve1/lxc",
            &[
                ("vmid", "111"),
                ("ostemplate", crate::helpers::TEMPLATE),
                ("rootfs", "ceph:8"),
            ],
        )
        .await;
    assert_eq!(
        (r.status, r.message()),
        (500, "storage 'ceph' does not exist".to_owned())
    );
    let list = t.get("/nodes/pve1/lxc").await.data();
    assert_eq!(list.as_array().unwrap().len(), 1);
    assert_eq!(list[0]["vmid"], 110);
    assert_eq!(t.get("/nodes/pve2/lxc").await.data(), serde_json::json!([]));
}

#[tokio::test]
async fn upids_have_pve_format() {
    let t = spawn().await;
    let before = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let upid = t.create("pve1", 105, &[]).await;
    // UPID:node:PID:PSTART:STARTTIME:type:id:user:
    let f: Vec<&str> = upid.split(':').collect();
    assert_eq!(f.len(), 9, "{upid}");
    assert_eq!(
        (f[0], f[1], f[5], f[6], f[7], f[8]),
        ("UPID", "pve1", "vzcreate", "105", "root@pam!tenantry", "")
    );
    for hex in &f[2..5] {
        assert_eq!(hex.len(), 8, "{upid}");
        assert!(
            hex.chars()
                .all(|c| c.is_ascii_digit() || ('A'..='F').contains(&c)),
            "{upid}"
        );
    }
    let starttime = u64::from_str_radix(f[4], 16).unwrap();
    assert!(starttime >= before && starttime <= before + 5);
    let st = t.wait_task("pve1", &upid).await;
    assert_eq!(st["upid"], upid.as_str());
    assert_eq!(st["pid"], u64::from_str_radix(f[2], 16).unwrap());
    assert_eq!(st["pstart"], u64::from_str_radix(f[3], 16).unwrap());
    assert_eq!(st["starttime"], starttime);
    assert_eq!(st["user"], "root@pam!tenantry");
    assert_eq!(st["node"], "pve1");
    let second = t
        .form("POST", "/nodes/pve1/lxc/105/status/start", &[])
        .await
        .data();
    assert_ne!(second.as_str().unwrap(), upid);
    let r = t.get("/nodes/pve1/tasks/not-a-upid/status").await;
    assert_eq!(
        (r.status, r.message()),
        (500, "unable to parse worker upid 'not-a-upid'".to_owned())
    );
}

#[tokio::test]
async fn the_create_lock_is_held_while_the_task_runs() {
    let t = spawn_with(SimConfig {
        task_duration: Duration::from_millis(400),
        ..SimConfig::default()
    })
    .await;
    let upid = t.create("pve1", 105, &[]).await;
    let st = t
        .get(&format!("/nodes/pve1/tasks/{upid}/status"))
        .await
        .data();
    assert_eq!(st["status"], "running");
    assert!(st.get("exitstatus").is_none());
    assert_eq!(
        t.get("/nodes/pve1/lxc/105/config").await.data()["lock"],
        "create"
    );
    assert_eq!(
        t.get("/nodes/pve1/lxc/105/status/current").await.data()["lock"],
        "create"
    );
    assert_eq!(
        t.get("/cluster/resources?type=vm").await.data()[0]["lock"],
        "create"
    );
    assert_eq!(t.sim.containers()[0].lock.as_deref(), Some("create"));

    let raw = t
        .raw(
            "PUT",
            "/nodes/pve1/lxc/105/config",
            &[("Authorization", &t.auth())],
            "cores=2",
        )
        .await;
    assert_eq!(raw.status_line, "HTTP/1.1 500 CT is locked (create)");
    assert_eq!(
        raw.body,
        r#"{"data":null,"message":"CT is locked (create)\n"}"#
    );
    for (m, path, p) in [
        (
            "PUT",
            "/nodes/pve1/lxc/105/resize",
            vec![("disk", "rootfs"), ("size", "+1G")],
        ),
        ("DELETE", "/nodes/pve1/lxc/105", vec![]),
    ] {
        let r = t.form(m, path, &p).await;
        assert_eq!(
            (r.status, r.message()),
            (500, "CT is locked (create)".to_owned()),
            "{m} {path}"
        );
    }
    // As in PVE, start checks the lock inside its worker: the task fails.
    let start = t
        .form("POST", "/nodes/pve1/lxc/105/status/start", &[])
        .await
        .data();
    assert_eq!(t.wait_task("pve1", &upid).await["exitstatus"], "OK");
    let st = t.wait_task("pve1", start.as_str().unwrap()).await;
    assert_eq!(st["exitstatus"], "CT is locked (create)");
    let cts = t.sim.containers();
    assert_eq!(
        (cts[0].status.as_str(), cts[0].lock.clone()),
        ("stopped", None)
    );
}

/// With a state file, a restarted simulator still has its containers (as a
/// rebooted cluster has), with their config and power state; a new one
/// continues from them (the next vmid is past them).
#[tokio::test]
async fn a_restarted_simulator_keeps_its_containers_in_its_state_file() {
    let dir = std::env::temp_dir().join(format!("pve-sim-state-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join(format!("{}.json", uuid_like()));
    let cfg = || SimConfig {
        task_duration: Duration::ZERO,
        state_file: Some(file.clone()),
        ..SimConfig::default()
    };
    let t = spawn_with(cfg()).await;
    t.created("pve1", 100, &[("hostname", "kept"), ("cores", "2")])
        .await;
    let before = t.sim.containers();
    assert_eq!(before.len(), 1);
    t.sim.stop().await;
    assert!(file.exists(), "written as it changed");

    let again = spawn_with(cfg()).await;
    let after = again.sim.containers();
    assert_eq!(after.len(), 1, "{after:?}");
    assert_eq!(after[0].vmid, 100);
    assert_eq!(after[0].status, before[0].status);
    assert_eq!(after[0].tags, before[0].tags);
    assert_eq!(after[0].config, before[0].config);
    let next = again.get("/cluster/nextid").await.data();
    assert_eq!(next, "101", "the kept container's vmid is taken");
    again.sim.stop().await;
    std::fs::remove_file(&file).ok();
}

fn uuid_like() -> String {
    format!(
        "{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos())
    )
}
