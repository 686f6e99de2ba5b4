//! Migrations between shared and dedicated on a plan change: there and
//! back keeping the database and leaving nothing behind, and a failed
//! migration rolled back with a credit event.

use std::time::Duration;

use serde_json::Value;

use super::env;

#[tokio::test]
async fn shared_to_dedicated_and_back_migrates_keeping_the_database_and_leaving_nothing_behind() {
    let env = env().await;
    let other = env.create("neighbour", "basic").await;
    env.wait_status(&other, "active").await;
    let id = env.create("acme", "basic").await;
    env.wait_status(&id, "active").await;
    let shared = env.active(&id).await;
    let db = shared["database"].as_str().unwrap().to_owned();

    env.change_plan_now(&id, "pro").await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    let dedicated = loop {
        let d = env.active(&id).await;
        if d["kind"] == "dedicated" && env.tenant(&id).await["status"] == "active" {
            break d;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "never migrated: {d}"
        );
        tokio::time::sleep(Duration::from_millis(30)).await;
    };
    assert_eq!(dedicated["database"], db.as_str(), "the database is kept");
    assert!(env.database_exists(&db).await);
    assert!(dedicated["host_port"].is_i64());
    let history = env.deployments(&id).await;
    assert_eq!(history.len(), 2);
    assert_eq!(history[1]["status"], "retired");
    assert_eq!(
        env.sim.containers().len(),
        2,
        "the shared instance (still serving its neighbour) and the new one"
    );

    env.change_plan_now(&id, "basic").await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let d = env.active(&id).await;
        if d["kind"] == "shared" && env.tenant(&id).await["status"] == "active" {
            assert_eq!(
                d["instance_id"], shared["instance_id"],
                "back on the shared instance"
            );
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "never migrated back: {d}"
        );
        tokio::time::sleep(Duration::from_millis(30)).await;
    }
    assert_eq!(
        env.sim.containers().len(),
        1,
        "the dedicated container is gone"
    );
    let live_ports: i64 = env
        .app
        .sql()
        .await
        .query_one(
            "SELECT count(*) FROM deployments WHERE host_port IS NOT NULL AND status <> 'retired'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(live_ports, 0, "the port is free again");
    assert!(env.database_exists(&db).await);
}

#[tokio::test]
async fn a_failed_migration_rolls_back_fails_the_plan_change_and_records_a_credit_event() {
    let env = env().await;
    let id = env.create("acme", "basic").await;
    env.wait_status(&id, "active").await;
    let before = env.active(&id).await;
    env.sim.faults().fail_next_task(
        "pve1",
        "unable to create CT - storage 'local-lvm' does not exist",
    );
    env.sim.faults().fail_next_task(
        "pve2",
        "unable to create CT - storage 'local-lvm' does not exist",
    );
    let change = env.change_plan_now(&id, "pro").await;
    let change_id = change["plan_change"]["id"].as_str().unwrap().to_owned();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let events: i64 = env
            .app
            .sql()
            .await
            .query_one("SELECT count(*) FROM provisioning_events WHERE kind = 'migration_failed' AND plan_change_id = $1::text::uuid", &[&change_id])
            .await
            .unwrap()
            .get(0);
        if events == 1 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no migration_failed event"
        );
        tokio::time::sleep(Duration::from_millis(30)).await;
    }
    let t = env.tenant(&id).await;
    assert_eq!(t["status"], "active");
    assert_eq!(t["plan"], "basic", "back on the old plan");
    assert_eq!(
        env.active(&id).await["id"],
        before["id"],
        "the old deployment still serves"
    );
    let history: Value = env
        .app
        .get_as(&format!("/v1/tenants/{id}/plan-changes"), &env.token)
        .await
        .json()
        .await
        .unwrap();
    let c = history["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["id"] == change_id.as_str())
        .unwrap();
    assert_eq!(c["status"], "failed");
    assert_eq!(env.sim.containers().len(), 1, "only the shared instance");
    let ports: i64 = env
        .app
        .sql()
        .await
        .query_one(
            "SELECT count(*) FROM deployments WHERE host_port IS NOT NULL AND status <> 'retired'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(ports, 0, "no leaked port");
}

/// Proxmox hands a destroyed container's vmid out again: a dedicated
/// container created after another was moved away (its instance row kept,
/// `destroyed`) may get the same vmid, and must be recorded all the same.
#[tokio::test]
async fn a_vmid_freed_by_a_migration_is_taken_again() {
    let env = env().await;
    let id = env.create("acme", "basic").await;
    env.wait_status(&id, "active").await;
    let wait_kind = async |kind: &str| {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        loop {
            let d = env.active(&id).await;
            if d["kind"] == kind && env.tenant(&id).await["status"] == "active" {
                return d;
            }
            assert!(tokio::time::Instant::now() < deadline, "never {kind}: {d}");
            tokio::time::sleep(Duration::from_millis(30)).await;
        }
    };
    env.change_plan_now(&id, "pro").await;
    let dedicated = wait_kind("dedicated").await;
    let vmid = dedicated["container_id"].as_str().unwrap().to_owned();
    env.change_plan_now(&id, "basic").await;
    wait_kind("shared").await;
    let destroyed: i64 = env
        .app
        .sql()
        .await
        .query_one(
            "SELECT count(*) FROM instances WHERE status = 'destroyed'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(destroyed, 1, "the moved-away instance's row is kept");

    let other = env.create("beta", "pro").await;
    env.wait_status(&other, "active").await;
    let d = env.active(&other).await;
    assert_eq!(
        d["container_id"].as_str(),
        Some(vmid.as_str()),
        "the simulator, as Proxmox, reused the lowest free vmid"
    );
}
