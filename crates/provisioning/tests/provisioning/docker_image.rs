//! Single-image instances on the real engine: deploy with labels,
//! environment, host port and volume; idempotent create, start, stop and
//! destroy; volumes kept by destroy and removed by purge; names and ports
//! held by others.

use bollard::models::ContainerCreateBody;
use bollard::query_parameters::CreateContainerOptions;
use tenantry_provisioning::docker::{LABEL_INSTANCE, LABEL_MAIN, LABEL_PRODUCT, LABEL_TENANT};
use tenantry_provisioning::{Driver, DriverError, InstanceState};

use crate::docker_support::{APP_PORT, TEST_LABEL, TestDocker, free_port, get};

#[tokio::test]
async fn an_image_instance_runs_with_its_labels_environment_port_and_volume() {
    let t = TestDocker::start().await;
    let port = free_port();
    let spec = t.spec(Some(port));
    let created = t.driver.create_instance(&spec).await.unwrap();

    // It answered before create returned.
    let page = get(port).await;
    assert_eq!(
        page.trim(),
        format!("tenant={} db=t_{} boots=1", t.id, t.id)
    );
    let cs = t.containers().await;
    assert_eq!(cs.len(), 1, "{cs:?}");
    let (name, labels, running) = &cs[0];
    assert_eq!(name, &format!("tenantry-{}", t.id));
    assert!(running);
    assert_eq!(labels[LABEL_INSTANCE], spec.instance_id.to_string());
    assert_eq!(labels[LABEL_TENANT], t.id);
    assert_eq!(labels[LABEL_PRODUCT], "demo");
    assert_eq!(labels[LABEL_MAIN], "true");

    let inspect = t
        .engine
        .inspect_container(&created.external_id, None)
        .await
        .unwrap();
    let host = inspect.host_config.unwrap();
    assert_eq!(host.nano_cpus, Some(1_000_000_000));
    assert_eq!(host.memory, Some(128 << 20));
    let env = inspect.config.unwrap().env.unwrap();
    assert!(env.contains(&format!("TENANT_SLUG={}", t.id)), "{env:?}");
    let bound = &host.port_bindings.unwrap()[&format!("{APP_PORT}/tcp")];
    assert_eq!(
        bound.as_ref().unwrap()[0].host_port.as_deref(),
        Some(port.to_string().as_str())
    );
    assert_eq!(
        t.volumes(LABEL_INSTANCE, &spec.instance_id.to_string())
            .await,
        [format!("tenantry-{}-data", t.id)]
    );

    let found = t.driver.find_instance(spec.instance_id).await.unwrap();
    assert_eq!(found, Some(created));
}

#[tokio::test]
async fn a_retried_create_finds_its_container_running_or_stopped() {
    let t = TestDocker::start().await;
    let port = free_port();
    let spec = t.spec(Some(port));
    let first = t.driver.create_instance(&spec).await.unwrap();
    let again = t.driver.create_instance(&spec).await.unwrap();
    assert_eq!(first, again);

    // A first try that made the container and lost the answer before it
    // started it: the retry starts that one.
    t.driver.stop(&first).await.unwrap();
    let third = t.driver.create_instance(&spec).await.unwrap();
    assert_eq!(first, third);
    let cs = t.containers().await;
    assert_eq!(cs.len(), 1, "{cs:?}");
    assert!(cs[0].2, "running again");
    assert!(get(port).await.contains("boots=2"));
}

#[tokio::test]
async fn stop_start_and_destroy_are_idempotent_and_destroy_keeps_the_volume() {
    let t = TestDocker::start().await;
    let port = free_port();
    let spec = t.spec(Some(port));
    let inst = t.driver.create_instance(&spec).await.unwrap();

    // Pause a tenant: stop, twice.
    t.driver.stop(&inst).await.unwrap();
    t.driver.stop(&inst).await.unwrap();
    assert_eq!(
        t.driver.instance_status(&inst).await.unwrap().state,
        InstanceState::Stopped
    );
    // Resume: start, twice; the volume kept the first boot.
    t.driver.start(&inst).await.unwrap();
    t.driver.start(&inst).await.unwrap();
    let status = t.driver.instance_status(&inst).await.unwrap();
    assert_eq!(status.state, InstanceState::Running);

    // Undeploy (a move to shared): the container goes, the volume stays.
    t.driver.destroy(&inst).await.unwrap();
    t.driver.destroy(&inst).await.unwrap();
    assert!(t.containers().await.is_empty());
    assert_eq!(
        t.driver.instance_status(&inst).await.unwrap().state,
        InstanceState::Missing
    );
    assert_eq!(
        t.driver.find_instance(inst.instance_id).await.unwrap(),
        None
    );
    assert!(matches!(
        t.driver.start(&inst).await,
        Err(DriverError::NotFound { .. })
    ));
    assert!(matches!(
        t.driver.stop(&inst).await,
        Err(DriverError::NotFound { .. })
    ));
    let id = spec.instance_id.to_string();
    assert_eq!(t.volumes(LABEL_INSTANCE, &id).await.len(), 1);

    // Redeployed, it finds its data.
    let back = t.driver.create_instance(&spec).await.unwrap();
    assert!(get(port).await.contains("boots=3"), "the volume came back");

    // Tenant deleted: container and volume go, twice.
    t.driver.purge_data(&back).await.unwrap();
    t.driver.purge_data(&back).await.unwrap();
    assert!(t.containers().await.is_empty());
    assert!(t.volumes(LABEL_INSTANCE, &id).await.is_empty());
}

#[tokio::test]
async fn a_container_name_held_by_another_instance_is_an_error_not_adopted() {
    let t = TestDocker::start().await;
    let theirs = t.spec(None);
    t.driver.create_instance(&theirs).await.unwrap();
    // Same hostname, another instance (a tenant re-created under the slug
    // of one whose container is still there).
    let mut ours = t.spec(None);
    ours.volumes.clear();
    let err = t.driver.create_instance(&ours).await.unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, DriverError::Failed { .. }), "{err:?}");
    assert!(
        text.contains(&theirs.instance_id.to_string()) && text.contains("taken"),
        "{text}"
    );
    assert_eq!(t.containers().await.len(), 1, "the other one untouched");
}

#[tokio::test]
async fn a_taken_host_port_fails_clearly_and_leaves_no_container() {
    let t = TestDocker::start().await;
    let port = free_port();
    let first = t.spec_named(&format!("{}-a", t.id), Some(port));
    t.driver.create_instance(&first).await.unwrap();
    let second = t.spec_named(&format!("{}-b", t.id), Some(port));
    let err = t.driver.create_instance(&second).await.unwrap_err();
    assert!(matches!(err, DriverError::Failed { .. }), "{err:?}");
    assert!(
        err.to_string()
            .contains(&format!("host port {port} is already in use")),
        "{err}"
    );
    let cs = t.containers().await;
    assert_eq!(cs.len(), 1, "{cs:?}");
    assert_eq!(cs[0].0, format!("tenantry-{}-a", t.id));
}

#[tokio::test]
async fn a_container_left_by_a_lost_answer_is_adopted_not_duplicated() {
    let t = TestDocker::start().await;
    let port = free_port();
    let mut spec = t.spec(Some(port));
    spec.volumes.clear();
    // What a first try leaves when the create answer is lost: our labels,
    // created, never started.
    let mut labels: std::collections::HashMap<String, String> =
        spec.labels.clone().into_iter().collect();
    labels.insert(LABEL_INSTANCE.into(), spec.instance_id.to_string());
    labels.insert(LABEL_MAIN.into(), "true".into());
    labels.insert(TEST_LABEL.into(), t.id.clone());
    let body = ContainerCreateBody {
        image: Some(t.image.clone()),
        env: Some(vec![format!("TENANT_SLUG={}", t.id)]),
        labels: Some(labels),
        exposed_ports: Some(vec![format!("{APP_PORT}/tcp")]),
        host_config: Some(bollard::models::HostConfig {
            port_bindings: Some(
                [(
                    format!("{APP_PORT}/tcp"),
                    Some(vec![bollard::models::PortBinding {
                        host_ip: None,
                        host_port: Some(port.to_string()),
                    }]),
                )]
                .into(),
            ),
            ..Default::default()
        }),
        ..Default::default()
    };
    let made = t
        .engine
        .create_container(
            Some(CreateContainerOptions {
                name: Some(format!("tenantry-{}", t.id)),
                platform: String::new(),
            }),
            body,
        )
        .await
        .unwrap();
    let inst = t.driver.create_instance(&spec).await.unwrap();
    assert_eq!(inst.external_id, made.id);
    assert_eq!(t.containers().await.len(), 1);
    assert!(get(port).await.contains(&t.id));
}

#[tokio::test]
async fn a_kept_volume_of_another_instance_is_never_mounted() {
    let t = TestDocker::start().await;
    let old = t.spec(None);
    let gone = t.driver.create_instance(&old).await.unwrap();
    // Undeployed without purge: its volume stays.
    t.driver.destroy(&gone).await.unwrap();
    let new = t.spec(None);
    let err = t.driver.create_instance(&new).await.unwrap_err();
    assert!(
        err.to_string().contains(&format!(
            "volume tenantry-{}-data holds the data of {}",
            t.id, old.instance_id
        )),
        "{err}"
    );
    assert!(t.containers().await.is_empty());
}
