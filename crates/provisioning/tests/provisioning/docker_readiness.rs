//! A deploy counts once the product answers HTTP: a container that never
//! answers, or exits, fails the create with a clear error, and leaves no
//! container behind.

use std::time::{Duration, Instant};

use tenantry_provisioning::docker::LABEL_INSTANCE;
use tenantry_provisioning::{Driver, DriverError};

use crate::docker_support::{TestDocker, free_port};

#[tokio::test]
async fn a_container_that_never_answers_fails_the_deploy_and_is_removed() {
    let t = TestDocker::start_with(|c| c.ready_timeout = Duration::from_secs(3)).await;
    let port = free_port();
    let mut spec = t.spec(Some(port));
    spec.env.insert("MODE".into(), "sleep".into());
    let started = Instant::now();
    let err = t.driver.create_instance(&spec).await.unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, DriverError::Failed { .. }), "{err:?}");
    assert!(
        text.contains(&format!("tenantry-{}", t.id))
            && text.contains("did not become ready")
            && text.contains("no HTTP answer within 3s")
            && text.contains(&format!("127.0.0.1:{port}")),
        "{text}"
    );
    assert!(
        text.contains("sleeping, not serving"),
        "the log tail: {text}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "{:?}",
        started.elapsed()
    );
    assert!(t.containers().await.is_empty(), "no leftover container");
    // The data volume stays for the orchestration to purge with the tenant.
    assert_eq!(
        t.volumes(LABEL_INSTANCE, &spec.instance_id.to_string())
            .await
            .len(),
        1
    );
}

#[tokio::test]
async fn a_container_that_exits_fails_at_once_with_its_exit_code_and_log() {
    let t = TestDocker::start().await;
    let mut spec = t.spec(Some(free_port()));
    spec.env.insert("MODE".into(), "crash".into());
    let started = Instant::now();
    let err = t.driver.create_instance(&spec).await.unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("code 3") && text.contains("boom: DATABASE_URL is not set"),
        "{text}"
    );
    // The restart policy brings it back now and then; the driver does not
    // wait out the 20 s deadline for it.
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "{:?}",
        started.elapsed()
    );
    assert!(t.containers().await.is_empty());
}

#[tokio::test]
async fn a_stack_that_never_answers_leaves_no_container_and_no_network() {
    let t = TestDocker::start_with(|c| c.ready_timeout = Duration::from_secs(3)).await;
    let mut spec = t.stack_spec(Some(free_port()));
    spec.env.insert("MODE".into(), "sleep".into());
    let err = t.driver.create_instance(&spec).await.unwrap_err();
    assert!(err.to_string().contains("did not become ready"), "{err}");
    assert!(t.containers().await.is_empty());
    let project = format!("tenantry-{}", t.id);
    assert!(
        t.networks("com.docker.compose.project", &project)
            .await
            .is_empty()
    );
}
