//! Every driver operation against pve-sim, on the happy path and repeated
//! (each is idempotent).

use tenantry_domain::catalog::Resources;
use tenantry_provisioning::{Driver, DriverError, InstanceRef, InstanceState, Upstream};
use uuid::Uuid;

use crate::helpers::{NODE, owner_tag, spawn_pve, spec};

#[tokio::test]
async fn create_starts_a_tagged_container_built_from_the_spec() {
    let pve = spawn_pve().await;
    let spec = spec();
    let r = pve.driver.create_instance(&spec).await.unwrap();
    assert_eq!(r.instance_id, spec.instance_id);

    let ct = pve.only_one(spec.instance_id);
    assert_eq!(ct.vmid.to_string(), r.external_id);
    assert_eq!(ct.node, NODE);
    assert_eq!(ct.status, "running");
    assert_eq!(ct.lock, None);
    assert!(ct.tags.contains(&"tenantry".to_owned()), "{:?}", ct.tags);
    assert_eq!(ct.config["hostname"], "acme");
    assert_eq!(ct.config["cores"], "2");
    assert_eq!(ct.config["memory"], "1024");
    assert_eq!(ct.config["swap"], "256");
    assert_eq!(ct.config["unprivileged"], "1");
    assert!(
        ct.config["rootfs"].starts_with("local-lvm:"),
        "{}",
        ct.config["rootfs"]
    );
    assert!(
        ct.config["rootfs"].contains("size=8G"),
        "{}",
        ct.config["rootfs"]
    );
    assert!(
        ct.config["net0"].contains("bridge=vmbr0"),
        "{}",
        ct.config["net0"]
    );
    pve.assert_schema_clean();
}

#[tokio::test]
async fn create_again_returns_the_same_container() {
    let pve = spawn_pve().await;
    let spec = spec();
    let first = pve.driver.create_instance(&spec).await.unwrap();
    let second = pve.driver.create_instance(&spec).await.unwrap();
    assert_eq!(first, second);
    pve.only_one(spec.instance_id);
    assert_eq!(pve.count("POST", "/lxc"), 1);
}

#[tokio::test]
async fn create_adopts_and_starts_a_stopped_container_of_ours() {
    let pve = spawn_pve().await;
    let spec = spec();
    let r = pve.driver.create_instance(&spec).await.unwrap();
    pve.driver.stop(&r).await.unwrap();
    assert_eq!(pve.only_one(spec.instance_id).status, "stopped");

    let again = pve.driver.create_instance(&spec).await.unwrap();
    assert_eq!(again, r);
    assert_eq!(pve.only_one(spec.instance_id).status, "running");
    assert_eq!(pve.count("POST", "/lxc"), 1);
}

#[tokio::test]
async fn find_instance_finds_ours_by_tag_only() {
    let pve = spawn_pve().await;
    let spec = spec();
    let r = pve.driver.create_instance(&spec).await.unwrap();
    assert_eq!(
        pve.driver.find_instance(spec.instance_id).await.unwrap(),
        Some(r)
    );
    assert_eq!(
        pve.driver.find_instance(Uuid::new_v4()).await.unwrap(),
        None
    );
}

#[tokio::test]
async fn stop_and_start_change_state_and_repeat_as_no_ops() {
    let pve = spawn_pve().await;
    let spec = spec();
    let r = pve.driver.create_instance(&spec).await.unwrap();

    pve.driver.stop(&r).await.unwrap();
    assert_eq!(pve.only_one(spec.instance_id).status, "stopped");
    pve.driver.stop(&r).await.unwrap();
    assert_eq!(pve.count("POST", "/status/shutdown"), 1);

    pve.driver.start(&r).await.unwrap();
    assert_eq!(pve.only_one(spec.instance_id).status, "running");
    pve.driver.start(&r).await.unwrap();
    assert_eq!(pve.count("POST", "/status/start"), 1);
    pve.assert_schema_clean();
}

#[tokio::test]
async fn instance_status_reports_running_stopped_and_missing() {
    let pve = spawn_pve().await;
    let spec = spec();
    let r = pve.driver.create_instance(&spec).await.unwrap();

    let running = pve.driver.instance_status(&r).await.unwrap();
    assert_eq!(running.state, InstanceState::Running);
    assert!(running.memory_bytes.is_some());
    assert!(running.cpu.is_some());

    pve.driver.stop(&r).await.unwrap();
    let stopped = pve.driver.instance_status(&r).await.unwrap();
    assert_eq!(stopped.state, InstanceState::Stopped);
    assert_eq!(stopped.uptime_secs, None);

    pve.driver.destroy(&r).await.unwrap();
    let missing = pve.driver.instance_status(&r).await.unwrap();
    assert_eq!(missing.state, InstanceState::Missing);
}

#[tokio::test]
async fn resize_applies_cores_and_memory_and_grows_the_disk_only() {
    let pve = spawn_pve().await;
    let spec = spec();
    let r = pve.driver.create_instance(&spec).await.unwrap();

    let bigger = Resources {
        cpu_cores: 4,
        memory_mib: 4096,
        storage_gib: 20,
    };
    pve.driver.resize(&r, &bigger).await.unwrap();
    let ct = pve.only_one(spec.instance_id);
    assert_eq!(ct.config["cores"], "4");
    assert_eq!(ct.config["memory"], "4096");
    assert!(
        ct.config["rootfs"].contains("size=20G"),
        "{}",
        ct.config["rootfs"]
    );
    assert_eq!(ct.lock, None);

    // the same again changes nothing and calls nothing
    let puts = pve.count("PUT", "/config") + pve.count("PUT", "/resize");
    pve.driver.resize(&r, &bigger).await.unwrap();
    assert_eq!(
        pve.count("PUT", "/config") + pve.count("PUT", "/resize"),
        puts
    );

    // a smaller disk never shrinks it; cores and memory go down
    let smaller = Resources {
        cpu_cores: 1,
        memory_mib: 512,
        storage_gib: 4,
    };
    pve.driver.resize(&r, &smaller).await.unwrap();
    let ct = pve.only_one(spec.instance_id);
    assert_eq!(ct.config["cores"], "1");
    assert_eq!(ct.config["memory"], "512");
    assert!(
        ct.config["rootfs"].contains("size=20G"),
        "{}",
        ct.config["rootfs"]
    );
    pve.assert_schema_clean();
}

#[tokio::test]
async fn destroy_removes_a_running_container_and_repeats_as_a_no_op() {
    let pve = spawn_pve().await;
    let spec = spec();
    let r = pve.driver.create_instance(&spec).await.unwrap();
    pve.driver.destroy(&r).await.unwrap();
    assert!(pve.owned_by(spec.instance_id).is_empty());
    pve.driver.destroy(&r).await.unwrap();
    assert_eq!(pve.count("DELETE", &format!("/lxc/{}", r.external_id)), 1);

    let deletes: Vec<_> = pve
        .sim
        .requests()
        .into_iter()
        .filter(|q| q.method == "DELETE")
        .collect();
    let params: Vec<(String, String)> = deletes[0].params.clone();
    assert!(params.contains(&("purge".into(), "1".into())), "{params:?}");
    assert!(
        params.contains(&("destroy-unreferenced-disks".into(), "1".into())),
        "{params:?}"
    );
    pve.assert_schema_clean();
}

#[tokio::test]
async fn operations_on_a_missing_instance() {
    let pve = spawn_pve().await;
    let gone = InstanceRef {
        instance_id: Uuid::new_v4(),
        external_id: "4242".into(),
    };
    assert!(matches!(
        pve.driver.start(&gone).await,
        Err(DriverError::NotFound { .. })
    ));
    assert!(matches!(
        pve.driver.stop(&gone).await,
        Err(DriverError::NotFound { .. })
    ));
    let res = Resources {
        cpu_cores: 1,
        memory_mib: 512,
        storage_gib: 4,
    };
    assert!(matches!(
        pve.driver.resize(&gone, &res).await,
        Err(DriverError::NotFound { .. })
    ));
    pve.driver.destroy(&gone).await.unwrap();
    assert_eq!(
        pve.driver.instance_status(&gone).await.unwrap().state,
        InstanceState::Missing
    );
}

#[tokio::test]
async fn a_container_at_our_vmid_with_another_owner_is_never_ours() {
    let pve = spawn_pve().await;
    let theirs = spec();
    let their_ref = pve.driver.create_instance(&theirs).await.unwrap();

    // our record points at their vmid (say, ours was destroyed and the id reused)
    let ours = InstanceRef {
        instance_id: Uuid::new_v4(),
        external_id: their_ref.external_id.clone(),
    };
    assert!(matches!(
        pve.driver.stop(&ours).await,
        Err(DriverError::NotFound { .. })
    ));
    assert_eq!(
        pve.driver.instance_status(&ours).await.unwrap().state,
        InstanceState::Missing
    );
    pve.driver.destroy(&ours).await.unwrap();

    let ct = pve.only_one(theirs.instance_id);
    assert_eq!(ct.status, "running", "their container was left alone");
    assert!(ct.tags.contains(&owner_tag(theirs.instance_id)));
}

#[tokio::test]
async fn a_stale_vmid_still_finds_ours_by_tag() {
    let pve = spawn_pve().await;
    let spec = spec();
    let r = pve.driver.create_instance(&spec).await.unwrap();
    let stale = InstanceRef {
        instance_id: spec.instance_id,
        external_id: "999999".into(),
    };
    pve.driver.stop(&stale).await.unwrap();
    assert_eq!(pve.only_one(spec.instance_id).status, "stopped");
    assert_eq!(
        pve.driver.find_instance(spec.instance_id).await.unwrap(),
        Some(r)
    );
}

#[tokio::test]
async fn node_status_reports_the_version_and_online() {
    let pve = spawn_pve().await;
    let status = pve.driver.node_status().await.unwrap();
    assert_eq!(status.version, "9.1.1");
    assert!(status.online);
}

#[tokio::test]
async fn node_metrics_report_capacity_and_running_containers() {
    let pve = spawn_pve().await;
    let empty = pve.driver.node_metrics().await.unwrap();
    assert_eq!(empty.cpu_cores, 16);
    assert_eq!(empty.memory_total_bytes, 64 << 30);
    assert!(empty.disk_total_bytes > 0);
    assert!(empty.disk_used_bytes <= empty.disk_total_bytes);
    assert!((0.0..=1.0).contains(&empty.cpu_usage));
    assert_eq!(empty.instances_running, 0);

    let a = pve.driver.create_instance(&spec()).await.unwrap();
    pve.driver.create_instance(&spec()).await.unwrap();
    pve.driver.stop(&a).await.unwrap();
    let m = pve.driver.node_metrics().await.unwrap();
    assert_eq!(m.instances_running, 1);
    pve.assert_schema_clean();
}

fn vmid_of(r: &InstanceRef) -> u32 {
    r.external_id.parse().unwrap()
}

#[tokio::test]
async fn upstream_is_the_address_pve_reports_with_the_internal_port() {
    let pve = spawn_pve().await;
    let r = pve.driver.create_instance(&spec()).await.unwrap();
    let vmid = vmid_of(&r);

    // net0 is `ip=dhcp`: pve-sim's lease, 10.0.{vmid / 256}.{vmid % 256}/16.
    assert_eq!(
        pve.driver.upstream(&r, 8080, None).await.unwrap(),
        Some(Upstream {
            host: format!("10.0.{}.{}", vmid / 256, vmid % 256),
            port: 8080,
        })
    );

    pve.sim
        .faults()
        .set_ct_address(vmid, Some(("10.44.0.7".parse().unwrap(), 24)));
    assert_eq!(
        pve.driver.upstream(&r, 8069, Some(18069)).await.unwrap(),
        Some(Upstream {
            host: "10.44.0.7".into(),
            port: 8069,
        }),
        "the container's own address and port; the host port is not used"
    );

    // Running, but DHCP has not answered yet.
    pve.sim.faults().set_ct_address(vmid, None);
    assert_eq!(pve.driver.upstream(&r, 8069, None).await.unwrap(), None);
    assert_eq!(pve.count("GET", "/interfaces"), 3);
    pve.assert_schema_clean();
}

/// PVE answers `{"data":null}` for the interfaces of a stopped container
/// (`PVE::LXC::get_interfaces` swallows the error), so a stopped
/// container has no upstream: `None`, not an error.
#[tokio::test]
async fn a_stopped_container_has_no_upstream_and_a_missing_one_is_not_found() {
    let pve = spawn_pve().await;
    let r = pve.driver.create_instance(&spec()).await.unwrap();
    pve.driver.stop(&r).await.unwrap();
    assert_eq!(pve.driver.upstream(&r, 8080, None).await.unwrap(), None);
    assert_eq!(pve.count("GET", "/interfaces"), 1);

    let gone = InstanceRef {
        instance_id: Uuid::new_v4(),
        external_id: "4242".into(),
    };
    assert!(matches!(
        pve.driver.upstream(&gone, 8080, None).await,
        Err(DriverError::NotFound { .. })
    ));
    pve.assert_schema_clean();
}

#[tokio::test]
async fn high_availability_adds_and_removes_one_ha_resource_idempotently() {
    let pve = spawn_pve().await;
    let r = pve.driver.create_instance(&spec()).await.unwrap();
    let sid = format!("ct:{}", r.external_id);

    pve.driver.set_high_availability(&r, true).await.unwrap();
    let ha = pve.sim.ha_resources();
    assert_eq!(ha.len(), 1, "{ha:?}");
    assert_eq!(ha[0].sid, sid);
    assert_eq!(ha[0].state.as_deref(), Some("started"));

    pve.driver.set_high_availability(&r, true).await.unwrap();
    assert_eq!(pve.sim.ha_resources(), ha, "still the one resource");
    assert_eq!(pve.count("POST", "/cluster/ha/resources"), 1);

    pve.driver.set_high_availability(&r, false).await.unwrap();
    assert!(pve.sim.ha_resources().is_empty());
    pve.driver.set_high_availability(&r, false).await.unwrap();
    assert_eq!(
        pve.count("DELETE", &format!("/cluster/ha/resources/{sid}")),
        1
    );
    assert_eq!(
        pve.only_one(r.instance_id).status,
        "running",
        "leaving HA leaves the container running"
    );

    let gone = InstanceRef {
        instance_id: Uuid::new_v4(),
        external_id: "4242".into(),
    };
    for enabled in [true, false] {
        assert!(matches!(
            pve.driver.set_high_availability(&gone, enabled).await,
            Err(DriverError::NotFound { .. })
        ));
    }
    pve.assert_schema_clean();
}

/// A stop of an HA-managed container goes through the HA stack
/// (`hastop`), which records the requested state `stopped`; turning HA on
/// again leaves that as it is, and a start makes it `started` again.
#[tokio::test]
async fn stop_and_start_of_an_ha_container_keep_its_ha_resource() {
    let pve = spawn_pve().await;
    let r = pve.driver.create_instance(&spec()).await.unwrap();
    pve.driver.set_high_availability(&r, true).await.unwrap();

    pve.driver.stop(&r).await.unwrap();
    assert_eq!(pve.only_one(r.instance_id).status, "stopped");
    assert_eq!(pve.sim.ha_resources()[0].state.as_deref(), Some("stopped"));
    pve.driver.set_high_availability(&r, true).await.unwrap();
    assert_eq!(pve.only_one(r.instance_id).status, "stopped");

    pve.driver.start(&r).await.unwrap();
    assert_eq!(pve.only_one(r.instance_id).status, "running");
    assert_eq!(pve.sim.ha_resources()[0].state.as_deref(), Some("started"));
    let kinds: Vec<String> = pve.sim.tasks().into_iter().map(|t| t.kind).collect();
    assert!(kinds.contains(&"hastop".to_owned()), "{kinds:?}");
    assert!(kinds.contains(&"hastart".to_owned()), "{kinds:?}");
}

#[tokio::test]
async fn destroy_of_an_ha_container_succeeds_and_leaves_no_ha_resource() {
    let pve = spawn_pve().await;
    let r = pve.driver.create_instance(&spec()).await.unwrap();
    pve.driver.set_high_availability(&r, true).await.unwrap();

    pve.driver.destroy(&r).await.unwrap();
    assert!(pve.owned_by(r.instance_id).is_empty());
    assert!(pve.sim.ha_resources().is_empty());
    pve.driver.destroy(&r).await.unwrap();
    assert_eq!(pve.count("DELETE", &format!("/lxc/{}", r.external_id)), 1);
    let kinds: Vec<String> = pve.sim.tasks().into_iter().map(|t| t.kind).collect();
    assert!(
        !kinds.contains(&"hastop".to_owned()),
        "out of HA before the stop, so the stop is a plain one: {kinds:?}"
    );
    pve.assert_schema_clean();
}

#[tokio::test]
async fn a_spec_with_high_availability_is_created_as_an_ha_resource() {
    let pve = spawn_pve().await;
    let mut ha_spec = spec();
    ha_spec.high_availability = true;
    let r = pve.driver.create_instance(&ha_spec).await.unwrap();
    let ha = pve.sim.ha_resources();
    assert_eq!(ha.len(), 1, "{ha:?}");
    assert_eq!(ha[0].sid, format!("ct:{}", r.external_id));
    assert_eq!(ha[0].state.as_deref(), Some("started"));
    assert_eq!(pve.only_one(r.instance_id).status, "running");

    // Created again (a retried job): adopted, still one resource.
    assert_eq!(pve.driver.create_instance(&ha_spec).await.unwrap(), r);
    assert_eq!(pve.sim.ha_resources().len(), 1);
    pve.assert_schema_clean();
}
