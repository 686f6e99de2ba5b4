//! Fault injection.

use std::time::Duration;

use crate::helpers::{TEMPLATE, spawn};

#[tokio::test]
async fn a_failed_create_reports_its_exit_status_and_leaves_no_ct() {
    let t = spawn().await;
    t.sim
        .faults()
        .fail_next_task("pve1", "unable to create CT 105 - no space left on device");
    let upid = t.create("pve1", 105, &[]).await;
    let st = t.wait_task("pve1", &upid).await;
    assert_eq!(
        st["exitstatus"],
        "unable to create CT 105 - no space left on device"
    );
    let log = t.get(&format!("/nodes/pve1/tasks/{upid}/log")).await.data();
    let last = log.as_array().unwrap().last().unwrap()["t"].clone();
    assert_eq!(
        last,
        "TASK ERROR: unable to create CT 105 - no space left on device"
    );
    assert!(t.sim.containers().is_empty());
    assert_eq!(
        t.sim.tasks()[0].exitstatus.as_deref(),
        Some("unable to create CT 105 - no space left on device")
    );
    // Only the next task fails, and only on that node.
    t.created("pve1", 105, &[]).await;
    let errors = t.get("/nodes/pve1/tasks?errors=1").await.json();
    assert_eq!(errors["total"], 1);
}

#[tokio::test]
async fn task_duration_can_change_at_run_time() {
    let t = spawn().await;
    t.sim.faults().set_task_duration(Duration::from_millis(300));
    let upid = t.create("pve1", 105, &[]).await;
    assert_eq!(
        t.get(&format!("/nodes/pve1/tasks/{upid}/status"))
            .await
            .data()["status"],
        "running"
    );
    assert_eq!(
        t.get("/nodes/pve1/tasks?source=active").await.json()["total"],
        1
    );
    assert_eq!(t.get("/nodes/pve1/tasks").await.json()["total"], 0);
    let started = std::time::Instant::now();
    assert_eq!(t.wait_task("pve1", &upid).await["exitstatus"], "OK");
    assert!(started.elapsed() >= Duration::from_millis(150));
}

#[tokio::test]
async fn lock_contention_fails_the_next_mutating_calls() {
    let t = spawn().await;
    t.created("pve1", 105, &[]).await;
    t.sim.faults().lock_contention(105, 2);
    for _ in 0..2 {
        let r = t
            .form("PUT", "/nodes/pve1/lxc/105/config", &[("cores", "2")])
            .await;
        assert_eq!(
            (r.status, r.message()),
            (500, "CT is locked (backup)".to_owned())
        );
    }
    // Reads are not mutating calls.
    assert_eq!(t.get("/nodes/pve1/lxc/105/config").await.status, 200);
    let r = t
        .form("PUT", "/nodes/pve1/lxc/105/config", &[("cores", "2")])
        .await;
    assert_eq!(r.status, 200);
}

#[tokio::test]
async fn a_dropped_response_still_acts() {
    let t = spawn().await;
    t.sim.faults().drop_next_response("POST", "/lxc");
    let res = t
        .client
        .post(t.url("/nodes/pve1/lxc"))
        .header("Authorization", t.auth())
        .form(&[("vmid", "105"), ("ostemplate", TEMPLATE)])
        .send()
        .await;
    let failed = match res {
        Err(_) => true,
        Ok(r) => r.text().await.is_err(),
    };
    assert!(failed, "the client should see a transport error");
    // The create happened: a second one finds the CT.
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(t.sim.containers().len(), 1);
    assert_eq!(t.sim.tasks().len(), 1);
    let r = t
        .form(
            "POST",
            "/nodes/pve1/lxc",
            &[("vmid", "105"), ("ostemplate", TEMPLATE)],
        )
        .await;
    assert_eq!(r.message(), "CT 105 already exists on node 'pve1'");
}

#[tokio::test]
async fn a_lock_timeout_fails_the_next_task() {
    let t = spawn().await;
    t.created("pve1", 105, &[]).await;
    t.sim.faults().timeout_next_task("pve1");
    let r = t
        .form("POST", "/nodes/pve1/lxc/105/status/start", &[])
        .await;
    let st = t.wait_task("pve1", r.data().as_str().unwrap()).await;
    assert_eq!(
        st["exitstatus"],
        "can't lock file '/run/lock/lxc/pve-config-105.lock' - got timeout"
    );
    assert_eq!(t.sim.containers()[0].status, "stopped");
}

#[tokio::test]
async fn a_racing_create_takes_the_next_id() {
    let t = spawn().await;
    t.sim.faults().take_next_id();
    let id = t.get("/cluster/nextid").await.data();
    assert_eq!(id, "100");
    let r = t
        .form(
            "POST",
            "/nodes/pve2/lxc",
            &[("vmid", "100"), ("ostemplate", TEMPLATE)],
        )
        .await;
    assert_eq!(
        (r.status, r.message()),
        (500, "CT 100 already exists on node 'pve1'".to_owned())
    );
    assert_eq!(t.get("/cluster/nextid").await.data(), "101");
}

#[tokio::test]
async fn clear_removes_every_fault() {
    let t = spawn().await;
    let f = t.sim.faults();
    f.fail_next_task("pve1", "boom");
    f.set_node_unreachable("pve1", true);
    f.lock_contention(105, 5);
    f.set_task_duration(Duration::from_secs(60));
    f.clear();
    t.created("pve1", 105, &[]).await;
    assert_eq!(
        t.form("PUT", "/nodes/pve1/lxc/105/config", &[("cores", "2")])
            .await
            .status,
        200
    );
}
