//! The end of provisioning and after: a failed provisioning and its retry,
//! pause, resume and delete of a dedicated container, and pausing a shared
//! tenant (its database login disabled).

use serde_json::{Value, json};

use super::{Env, env, wait_job};
use crate::helpers::assert_problem;

#[tokio::test]
async fn a_failed_provisioning_marks_the_tenant_failed_and_a_retry_finishes_it_with_one_container()
{
    let env = env().await;
    env.sim
        .faults()
        .fail_next_task("pve1", "unable to create CT - no space left on device");
    env.sim
        .faults()
        .fail_next_task("pve2", "unable to create CT - no space left on device");
    let id = env.create("acme", "pro").await;
    let t = env.wait_status(&id, "failed").await;
    assert!(
        t["status_reason"]
            .as_str()
            .unwrap()
            .contains("no space left"),
        "{t}"
    );
    env.sim.faults().clear();
    let res = env
        .app
        .post_as(
            &format!("/v1/tenants/{id}/retry-provisioning"),
            &env.token,
            json!({}),
        )
        .await;
    assert_eq!(res.status(), 202);
    env.wait_status(&id, "active").await;
    let d = env.active(&id).await;
    assert_eq!(env.containers_of(d["instance_id"].as_str().unwrap()), 1);
    assert_eq!(
        env.sim.containers().len(),
        1,
        "the failed create left nothing"
    );
    assert_eq!(
        env.deployments(&id).await.len(),
        1,
        "the same deployment, finished"
    );
    // Retrying an active tenant is refused.
    let res = env
        .app
        .post_as(
            &format!("/v1/tenants/{id}/retry-provisioning"),
            &env.token,
            json!({}),
        )
        .await;
    assert_problem(res, 409).await;
}

#[tokio::test]
async fn pause_resume_and_delete_act_on_a_dedicated_container() {
    let env = env().await;
    let id = env.create("acme", "pro").await;
    env.wait_status(&id, "active").await;
    let d = env.active(&id).await;
    let vmid = d["container_id"].as_str().unwrap().to_owned();
    let status = |env: &Env| {
        env.sim
            .containers()
            .into_iter()
            .find(|c| c.vmid.to_string() == vmid)
            .map(|c| c.status)
    };
    let pause = env
        .app
        .post_as(&format!("/v1/tenants/{id}/pause"), &env.token, json!({}))
        .await;
    assert_eq!(pause.status(), 202);
    let job: Value = pause.json().await.unwrap();
    wait_job(&env, job["job"]["id"].as_str().unwrap()).await;
    assert_eq!(status(&env).as_deref(), Some("stopped"));
    let resume = env
        .app
        .post_as(&format!("/v1/tenants/{id}/resume"), &env.token, json!({}))
        .await;
    assert_eq!(resume.status(), 202);
    let job: Value = resume.json().await.unwrap();
    wait_job(&env, job["job"]["id"].as_str().unwrap()).await;
    assert_eq!(status(&env).as_deref(), Some("running"));

    let db = d["database"].as_str().unwrap().to_owned();
    let res = env
        .app
        .delete_as(&format!("/v1/tenants/{id}"), &env.token)
        .await;
    assert_eq!(res.status(), 202);
    env.wait_status(&id, "deleted").await;
    assert_eq!(status(&env), None, "container destroyed");
    assert!(!env.database_exists(&db).await, "database dropped");
    assert_eq!(env.role_can_login(&db).await, None, "role dropped");
    let backups: Vec<_> = std::fs::read_dir(&env.app.settings.provisioning.backup_dir)
        .unwrap()
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().starts_with(&db))
        .collect();
    assert_eq!(backups.len(), 1, "a final backup before the drop");
    assert!(backups[0].metadata().unwrap().len() > 0);
    let n: i64 = env
        .app
        .sql()
        .await
        .query_one("SELECT count(*) FROM instances", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(n, 0, "no instance row left");
}

#[tokio::test]
async fn pausing_a_shared_tenant_disables_its_database_login() {
    let env = env().await;
    let id = env.create("alpha", "basic").await;
    env.wait_status(&id, "active").await;
    let db = env.active(&id).await["database"]
        .as_str()
        .unwrap()
        .to_owned();
    let pause: Value = env
        .app
        .post_as(&format!("/v1/tenants/{id}/pause"), &env.token, json!({}))
        .await
        .json()
        .await
        .unwrap();
    wait_job(&env, pause["job"]["id"].as_str().unwrap()).await;
    assert_eq!(env.role_can_login(&db).await, Some(false));
    assert_eq!(
        env.sim.containers()[0].status,
        "running",
        "the shared instance keeps serving others"
    );
    let resume: Value = env
        .app
        .post_as(&format!("/v1/tenants/{id}/resume"), &env.token, json!({}))
        .await
        .json()
        .await
        .unwrap();
    wait_job(&env, resume["job"]["id"].as_str().unwrap()).await;
    assert_eq!(env.role_can_login(&db).await, Some(true));
}
