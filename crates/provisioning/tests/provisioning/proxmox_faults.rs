//! Every pve-sim fault: each operation ends in success after retry or in a
//! clear, classified error; never a hang, never a second container.

use std::time::Duration;

use secrecy::SecretString;
use tenantry_provisioning::proxmox::ProxmoxDriver;
use tenantry_provisioning::{Driver, DriverError};
use tokio::time::timeout;

use crate::helpers::{NODE, config, spawn_pve, spec};

/// Generous bound on any one operation: the driver must give up long before.
const NEVER_HANG: Duration = Duration::from_secs(20);

#[tokio::test]
async fn a_lost_create_answer_does_not_make_a_second_container() {
    let pve = spawn_pve().await;
    let spec = spec();
    pve.sim.faults().drop_next_response("POST", "/lxc");
    let r = timeout(NEVER_HANG, pve.driver.create_instance(&spec))
        .await
        .unwrap()
        .unwrap();
    let ct = pve.only_one(spec.instance_id);
    assert_eq!(ct.vmid.to_string(), r.external_id);
    assert_eq!(ct.status, "running");
    assert_eq!(
        pve.count("POST", "/lxc"),
        1,
        "the create was not sent twice"
    );
    assert_eq!(pve.sim.containers().len(), 1);
}

#[tokio::test]
async fn a_lost_create_answer_while_the_task_still_runs_waits_for_it() {
    let pve = spawn_pve().await;
    let spec = spec();
    pve.sim
        .faults()
        .set_task_duration(Duration::from_millis(300));
    pve.sim.faults().drop_next_response("POST", "/lxc");
    let r = timeout(NEVER_HANG, pve.driver.create_instance(&spec))
        .await
        .unwrap()
        .unwrap();
    let ct = pve.only_one(spec.instance_id);
    assert_eq!(ct.vmid.to_string(), r.external_id);
    assert_eq!(ct.status, "running");
    assert_eq!(ct.lock, None);
    assert_eq!(pve.sim.containers().len(), 1);
}

#[tokio::test]
async fn a_taken_vmid_is_retried_with_a_new_one_and_never_adopted() {
    let pve = spawn_pve().await;
    let spec = spec();
    pve.sim.faults().take_next_id();
    let r = pve.driver.create_instance(&spec).await.unwrap();
    let ct = pve.only_one(spec.instance_id);
    assert_eq!(ct.vmid.to_string(), r.external_id);
    let all = pve.sim.containers();
    assert_eq!(all.len(), 2, "the racer's and ours: {all:?}");
    let racer = all.iter().find(|c| c.vmid != ct.vmid).unwrap();
    assert!(
        racer.tags.is_empty(),
        "the racer's container was left alone"
    );
    assert_eq!(pve.count("POST", "/lxc"), 2);
    assert_eq!(pve.count("GET", "/cluster/nextid"), 2);
}

#[tokio::test]
async fn a_failed_create_task_is_a_clear_error_with_its_log() {
    let pve = spawn_pve().await;
    let spec = spec();
    pve.sim
        .faults()
        .fail_next_task(NODE, "unable to create CT 100 - no space left on device");
    let err = pve.driver.create_instance(&spec).await.unwrap_err();
    let DriverError::Failed { reason } = &err else {
        panic!("expected Failed, got {err:?}");
    };
    assert!(reason.contains("no space left on device"), "{reason}");
    assert!(reason.contains("vzcreate"), "{reason}");
    assert!(
        reason.contains("log:"),
        "the log's tail is in the reason: {reason}"
    );
    assert!(pve.owned_by(spec.instance_id).is_empty());
    assert_eq!(
        pve.count("POST", "/lxc"),
        1,
        "a failed create is not retried"
    );
}

#[tokio::test]
async fn a_lock_timeout_in_a_create_task_is_retried() {
    let pve = spawn_pve().await;
    let spec = spec();
    pve.sim.faults().timeout_next_task(NODE);
    let r = timeout(NEVER_HANG, pve.driver.create_instance(&spec))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        pve.only_one(spec.instance_id).vmid.to_string(),
        r.external_id
    );
}

#[tokio::test]
async fn a_lock_timeout_in_a_power_task_is_retried() {
    let pve = spawn_pve().await;
    let spec = spec();
    let r = pve.driver.create_instance(&spec).await.unwrap();
    pve.sim.faults().timeout_next_task(NODE);
    pve.driver.stop(&r).await.unwrap();
    assert_eq!(pve.only_one(spec.instance_id).status, "stopped");
}

#[tokio::test]
async fn a_short_lock_contention_is_retried_for_every_operation() {
    let pve = spawn_pve().await;
    let spec = spec();
    let r = pve.driver.create_instance(&spec).await.unwrap();
    let vmid: u32 = r.external_id.parse().unwrap();
    let faults = pve.sim.faults();

    faults.lock_contention(vmid, 2);
    pve.driver.stop(&r).await.unwrap();
    faults.lock_contention(vmid, 2);
    pve.driver.start(&r).await.unwrap();
    faults.lock_contention(vmid, 2);
    let res = tenantry_domain::catalog::Resources {
        cpu_cores: 3,
        memory_mib: 2048,
        storage_gib: 10,
    };
    pve.driver.resize(&r, &res).await.unwrap();
    faults.lock_contention(vmid, 2);
    pve.driver.destroy(&r).await.unwrap();
    assert!(pve.owned_by(spec.instance_id).is_empty());
}

#[tokio::test]
async fn a_long_lock_contention_ends_in_a_transient_error() {
    let pve = spawn_pve().await;
    let spec = spec();
    let r = pve.driver.create_instance(&spec).await.unwrap();
    let vmid: u32 = r.external_id.parse().unwrap();
    pve.sim.faults().lock_contention(vmid, 100);
    let err = timeout(NEVER_HANG, pve.driver.stop(&r))
        .await
        .unwrap()
        .unwrap_err();
    let DriverError::Transient { reason } = &err else {
        panic!("expected Transient, got {err:?}");
    };
    assert!(reason.contains("is locked"), "{reason}");
    assert_eq!(pve.only_one(spec.instance_id).status, "running");
}

#[tokio::test]
async fn an_unreachable_node_is_transient_and_reported_offline() {
    let pve = spawn_pve().await;
    let spec = spec();
    let r = pve.driver.create_instance(&spec).await.unwrap();
    pve.sim.faults().set_node_unreachable(NODE, true);

    let status = pve.driver.node_status().await.unwrap();
    assert!(!status.online);
    for result in [
        pve.driver.stop(&r).await,
        pve.driver.start(&r).await,
        pve.driver.destroy(&r).await,
        pve.driver.create_instance(&spec).await.map(|_| ()),
        pve.driver.node_metrics().await.map(|_| ()),
        pve.driver.instance_status(&r).await.map(|_| ()),
    ] {
        let err = result.unwrap_err();
        assert!(err.is_transient(), "{err:?}");
    }

    pve.sim.faults().set_node_unreachable(NODE, false);
    pve.driver.stop(&r).await.unwrap();
    assert!(pve.driver.node_status().await.unwrap().online);
    assert_eq!(pve.sim.containers().len(), 1);
}

#[tokio::test]
async fn a_task_past_its_deadline_is_transient_not_a_hang() {
    let pve = spawn_pve().await;
    let spec = spec();
    let r = pve.driver.create_instance(&spec).await.unwrap();
    let mut cfg = config(&pve.sim);
    cfg.task_deadline = Duration::from_millis(150);
    cfg.retry.attempts = 1;
    let impatient = ProxmoxDriver::new(cfg).unwrap();
    pve.sim.faults().set_task_duration(Duration::from_secs(30));
    let err = timeout(NEVER_HANG, impatient.stop(&r))
        .await
        .unwrap()
        .unwrap_err();
    let DriverError::Transient { reason } = &err else {
        panic!("expected Transient, got {err:?}");
    };
    assert!(reason.contains("still running"), "{reason}");
}

#[tokio::test]
async fn lost_answers_of_other_operations_are_retried_safely() {
    let pve = spawn_pve().await;
    let spec = spec();
    let r = pve.driver.create_instance(&spec).await.unwrap();
    let faults = pve.sim.faults();

    faults.drop_next_response("POST", "/status/shutdown");
    pve.driver.stop(&r).await.unwrap();
    assert_eq!(pve.only_one(spec.instance_id).status, "stopped");

    faults.drop_next_response("POST", "/status/start");
    pve.driver.start(&r).await.unwrap();
    assert_eq!(pve.only_one(spec.instance_id).status, "running");

    faults.drop_next_response("PUT", "/config");
    let res = tenantry_domain::catalog::Resources {
        cpu_cores: 3,
        memory_mib: 2048,
        storage_gib: 12,
    };
    pve.driver.resize(&r, &res).await.unwrap();
    assert_eq!(pve.only_one(spec.instance_id).config["cores"], "3");

    faults.drop_next_response("GET", "/status");
    faults.drop_next_response("DELETE", &format!("/lxc/{}", r.external_id));
    pve.driver.destroy(&r).await.unwrap();
    assert!(pve.sim.containers().is_empty());
}

#[tokio::test]
async fn a_wrong_token_is_unauthorized() {
    let pve = spawn_pve().await;
    let mut cfg = config(&pve.sim);
    cfg.token_secret = SecretString::from("not-the-secret");
    let driver = ProxmoxDriver::new(cfg).unwrap();
    let err = driver.node_status().await.unwrap_err();
    assert!(matches!(err, DriverError::Unauthorized { .. }), "{err:?}");
    assert!(!err.to_string().contains("not-the-secret"));
    let err = driver.create_instance(&spec()).await.unwrap_err();
    assert!(matches!(err, DriverError::Unauthorized { .. }), "{err:?}");
}

#[tokio::test]
async fn a_missing_template_fails_the_create_clearly() {
    let pve = spawn_pve().await;
    let mut spec = spec();
    spec.artifact = "local:vztmpl/nothing-here.tar.zst".into();
    let err = pve.driver.create_instance(&spec).await.unwrap_err();
    let DriverError::Failed { reason } = &err else {
        panic!("expected Failed, got {err:?}");
    };
    assert!(reason.contains("does not exist"), "{reason}");
    assert!(pve.sim.containers().is_empty());
}
