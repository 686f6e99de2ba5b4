//! Every parameter the driver sends, fed to pve-sim, which checks it
//! against the PVE 9.1 schema: a driver change the real API would refuse
//! fails here first.

use std::collections::BTreeSet;

use tenantry_domain::catalog::Resources;
use tenantry_provisioning::Driver;

use crate::helpers::{spawn_pve, spec};

#[tokio::test]
async fn every_call_the_driver_makes_is_one_pve_accepts() {
    let pve = spawn_pve().await;
    let d = &pve.driver;
    let spec = spec();

    d.node_status().await.unwrap();
    d.node_metrics().await.unwrap();
    let r = d.create_instance(&spec).await.unwrap();
    d.find_instance(spec.instance_id).await.unwrap();
    d.instance_status(&r).await.unwrap();
    d.stop(&r).await.unwrap();
    d.start(&r).await.unwrap();
    let bigger = Resources {
        cpu_cores: 4,
        memory_mib: 2048,
        storage_gib: 16,
    };
    d.resize(&r, &bigger).await.unwrap();
    // a failed task, so the log endpoint is called too
    pve.sim
        .faults()
        .fail_next_task("pve1", "command 'lxc-start' failed");
    d.stop(&r).await.unwrap_err();
    d.destroy(&r).await.unwrap();

    let requests = pve.sim.requests();
    let refused: Vec<_> = requests
        .iter()
        .filter(|q| q.status == 400 || q.status == 501)
        .collect();
    assert!(
        refused.is_empty(),
        "requests PVE would refuse: {refused:#?}"
    );

    // every endpoint of the driver was exercised
    let seen: BTreeSet<String> = requests
        .iter()
        .map(|q| {
            let path = q.path.strip_prefix("/api2/json").unwrap_or(&q.path);
            let shape: Vec<&str> = path
                .split('/')
                .map(|s| {
                    if s.parse::<u32>().is_ok() {
                        "{vmid}"
                    } else if s.starts_with("UPID:") {
                        "{upid}"
                    } else {
                        s
                    }
                })
                .collect();
            format!("{} {}", q.method, shape.join("/"))
        })
        .collect();
    for endpoint in [
        "GET /version",
        "GET /nodes/pve1/status",
        "GET /cluster/resources",
        "GET /cluster/nextid",
        "GET /nodes/pve1/lxc",
        "POST /nodes/pve1/lxc",
        "GET /nodes/pve1/tasks/{upid}/status",
        "GET /nodes/pve1/tasks/{upid}/log",
        "POST /nodes/pve1/lxc/{vmid}/status/shutdown",
        "POST /nodes/pve1/lxc/{vmid}/status/start",
        "POST /nodes/pve1/lxc/{vmid}/status/stop",
        "GET /nodes/pve1/lxc/{vmid}/config",
        "PUT /nodes/pve1/lxc/{vmid}/config",
        "PUT /nodes/pve1/lxc/{vmid}/resize",
        "DELETE /nodes/pve1/lxc/{vmid}",
    ] {
        assert!(
            seen.contains(endpoint),
            "{endpoint} not exercised; seen: {seen:#?}"
        );
    }

    // the create carried exactly the parameters the driver means to send
    let create = requests
        .iter()
        .find(|q| q.method == "POST" && q.path.ends_with("/lxc"))
        .unwrap();
    let names: BTreeSet<&str> = create.params.iter().map(|(k, _)| k.as_str()).collect();
    let expected: BTreeSet<&str> = [
        "vmid",
        "ostemplate",
        "hostname",
        "cores",
        "memory",
        "swap",
        "rootfs",
        "net0",
        "unprivileged",
        "onboot",
        "tags",
        "start",
    ]
    .into_iter()
    .collect();
    // the sim may log `node` from the path as a parameter
    let names: BTreeSet<&str> = names.into_iter().filter(|n| *n != "node").collect();
    assert_eq!(names, expected);
}
