//! Restarting the `tenantry` process in the middle of provisioning (SIGKILL
//! while the provision job creates the container) still ends with the tenant
//! active and exactly one container.

use serde_json::json;
use tenantry_e2e::World;

#[tokio::test]
async fn a_restart_in_the_middle_of_provisioning_ends_active_with_one_container() {
    // Slow Proxmox tasks (1.5 s each), so the job is caught mid-way.
    let mut w = World::start(1500).await;
    w.register_nodes().await;
    let slug = w.slug("restart");
    let (t, owner, checkout) = w.signup(&slug, "pro").await;
    w.pay(&checkout).await;

    // The provision job is running its container step: the create task runs on the node.
    let job = w
        .eventually("the provision job at its container step", || async {
            let jobs = w.jobs(&t, "provision").await;
            match jobs.first() {
                Some(j) if j["status"] == "running" && j["step"] == "container" => Ok(j.clone()),
                Some(j) if j["status"] == "succeeded" => panic!("finished before the restart: {j}"),
                _ => Err(json!(jobs)),
            }
        })
        .await;
    assert_eq!(w.tenant(&t, &owner).await["status"], "provisioning");
    w.kill_server();
    w.start_server().await;
    let owner = w.login(&format!("owner@{slug}.e2e.test")).await;

    let tenant = w.wait_status(&t, &owner, "active").await;
    assert_eq!(tenant["plan"], "pro");
    let jobs = w.jobs(&t, "provision").await;
    assert_eq!(jobs.len(), 1, "the same job, resumed: {jobs:?}");
    assert_eq!(jobs[0]["id"], job["id"]);
    assert_eq!(jobs[0]["status"], "succeeded");
    assert!(
        jobs[0]["attempts"].as_i64().unwrap() >= 2,
        "run again after the crash: {}",
        jobs[0]
    );

    let deps = w.deployments(&t, &owner).await;
    let active: Vec<_> = deps.iter().filter(|d| d["status"] == "active").collect();
    assert_eq!(active.len(), 1, "{deps:?}");
    assert_eq!(active[0]["kind"], "dedicated");
    let containers = w.containers().await;
    assert_eq!(containers.len(), 1, "exactly one container: {containers:?}");
    assert_eq!(
        containers[0],
        (
            active[0]["node"].as_str().unwrap().to_owned(),
            active[0]["container_id"]
                .as_str()
                .map_or_else(|| active[0]["container_id"].to_string(), str::to_owned)
        ),
        "the one the deployment names"
    );
}
