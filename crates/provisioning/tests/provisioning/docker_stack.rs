//! Compose-stack instances on the real engine: the `demo` stack of
//! `docker/stacks/` as the project `tenantry-<slug>`, with the generated
//! override, an untouched template, idempotent re-runs, stop/start, and an
//! undeploy that removes the network and keeps the volume until purge.

use sha2::{Digest, Sha256};
use tenantry_provisioning::docker::{LABEL_INSTANCE, LABEL_MAIN, LABEL_PRODUCT, LABEL_TENANT};
use tenantry_provisioning::{Driver, InstanceState};

use crate::docker_support::{TestDocker, free_port, get, stack_dir};

fn template_hash() -> Vec<u8> {
    let text = std::fs::read(stack_dir("demo").join("docker-compose.yml")).unwrap();
    Sha256::digest(text).to_vec()
}

#[tokio::test]
async fn a_stack_runs_as_its_own_compose_project_and_the_template_is_untouched() {
    let before = template_hash();
    let t = TestDocker::start().await;
    let port = free_port();
    let spec = t.stack_spec(Some(port));
    let project = format!("tenantry-{}", t.id);
    let inst = t.driver.create_instance(&spec).await.unwrap();
    assert_eq!(inst.external_id, project);

    assert!(get(port).await.contains(&format!("tenant={}", t.id)));
    let cs = t.containers().await;
    let names: Vec<&str> = cs.iter().map(|c| c.0.as_str()).collect();
    assert_eq!(names, [project.clone(), format!("{project}-worker")]);
    for (name, labels, running) in &cs {
        assert!(running, "{name}");
        assert_eq!(labels[LABEL_INSTANCE], spec.instance_id.to_string());
        assert_eq!(labels[LABEL_TENANT], t.id);
        assert_eq!(labels[LABEL_PRODUCT], "demo");
        assert_eq!(labels["com.docker.compose.project"], project);
    }
    assert_eq!(cs[0].1[LABEL_MAIN], "true");
    assert!(!cs[1].1.contains_key(LABEL_MAIN));
    // The product's limits went on its service.
    let web = t.engine.inspect_container(&project, None).await.unwrap();
    assert_eq!(web.host_config.unwrap().memory, Some(128 << 20));

    // Retried: compose finds its project up to date.
    assert_eq!(t.driver.create_instance(&spec).await.unwrap(), inst);
    assert_eq!(t.containers().await.len(), 2);
    assert_eq!(
        t.driver.find_instance(spec.instance_id).await.unwrap(),
        Some(inst)
    );
    assert_eq!(template_hash(), before, "the template is never rewritten");
}

#[tokio::test]
async fn a_stack_stops_starts_and_undeploys_keeping_its_volume_until_purged() {
    let t = TestDocker::start().await;
    let port = free_port();
    let spec = t.stack_spec(Some(port));
    let project = format!("tenantry-{}", t.id);
    let inst = t.driver.create_instance(&spec).await.unwrap();
    assert_eq!(
        t.networks("com.docker.compose.project", &project).await,
        [format!("{project}_default")]
    );

    t.driver.stop(&inst).await.unwrap();
    assert!(t.containers().await.iter().all(|c| !c.2));
    assert_eq!(
        t.driver.instance_status(&inst).await.unwrap().state,
        InstanceState::Stopped
    );
    t.driver.start(&inst).await.unwrap();
    assert!(t.containers().await.iter().all(|c| c.2));

    t.driver.destroy(&inst).await.unwrap();
    assert!(t.containers().await.is_empty());
    assert!(
        t.networks("com.docker.compose.project", &project)
            .await
            .is_empty()
    );
    let volumes = t.volumes("com.docker.compose.project", &project).await;
    assert_eq!(volumes, [format!("{project}_data")]);

    // Redeployed, the volume is back under the web service (booted at
    // create, at start, and now).
    t.driver.create_instance(&spec).await.unwrap();
    assert!(get(port).await.contains("boots=3"));

    t.driver.purge_data(&inst).await.unwrap();
    t.driver.purge_data(&inst).await.unwrap();
    assert!(t.containers().await.is_empty());
    assert!(
        t.volumes("com.docker.compose.project", &project)
            .await
            .is_empty()
    );
}
