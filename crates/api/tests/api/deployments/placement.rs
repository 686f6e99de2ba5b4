//! Shared and dedicated deployments: a dedicated tenant's own container,
//! port and database; shared tenants on one instance, built once; which
//! node a new instance goes to; distinct ports, and none free.

use std::time::Duration;

use serde_json::Value;

use super::{env, env_with};

#[tokio::test]
async fn a_dedicated_tenant_gets_its_own_container_port_and_database_and_becomes_active() {
    let env = env().await;
    let id = env.create("acme", "pro").await;
    let t = env.wait_status(&id, "active").await;
    assert!(t["provisioned_at"].is_string());
    let sub: Value = env
        .app
        .get_as(&format!("/v1/tenants/{id}/subscription"), &env.token)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(sub["status"], "active");
    let d = env.active(&id).await;
    assert_eq!(d["kind"], "dedicated");
    assert_eq!(
        d["url"],
        format!("https://{}.tenantry.test", env.slug("acme"))
    );
    let port = d["host_port"].as_i64().unwrap();
    assert!((8200..=8299).contains(&port), "from odoo's range: {port}");
    assert!(["pve1", "pve2"].contains(&d["node"].as_str().unwrap()));
    let instance = d["instance_id"].as_str().unwrap();
    assert_eq!(env.containers_of(instance), 1);
    let vmid = d["container_id"].as_str().unwrap();
    let ct = env
        .sim
        .containers()
        .into_iter()
        .find(|c| c.vmid.to_string() == vmid)
        .unwrap();
    assert_eq!(ct.status, "running");
    assert_eq!(ct.config.get("hostname"), Some(&env.slug("acme")));
    assert_eq!(
        ct.config.get("cores").map(String::as_str),
        Some("2"),
        "the plan's cores"
    );
    let db = d["database"].as_str().unwrap();
    assert!(env.database_exists(db).await);
    assert_eq!(env.role_can_login(db).await, Some(true));
    // The password is sealed at rest.
    let row = env
        .app
        .sql()
        .await
        .query_one(
            "SELECT database_password FROM deployments WHERE tenant_id = $1::text::uuid",
            &[&id],
        )
        .await
        .unwrap();
    let sealed: Vec<u8> = row.get(0);
    assert!(sealed.len() > 12 + 16);
    let actions: Vec<String> = env
        .app
        .sql()
        .await
        .query(
            "SELECT action FROM activity_log WHERE tenant_id = $1::text::uuid ORDER BY id",
            &[&id],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert!(
        actions.contains(&"tenant.provisioned".to_owned()),
        "{actions:?}"
    );
}

#[tokio::test]
async fn shared_tenants_share_one_instance_each_with_its_own_database() {
    let env = env().await;
    let a = env.create("alpha", "basic").await;
    env.wait_status(&a, "active").await;
    let b = env.create("beta", "basic").await;
    env.wait_status(&b, "active").await;
    let (da, db) = (env.active(&a).await, env.active(&b).await);
    assert_eq!(da["kind"], "shared");
    assert!(da["host_port"].is_null());
    assert_eq!(
        da["instance_id"], db["instance_id"],
        "one shared instance, reused"
    );
    assert_eq!(env.sim.containers().len(), 1, "one container for both");
    assert_ne!(da["database"], db["database"]);
    assert!(env.database_exists(da["database"].as_str().unwrap()).await);
    assert!(env.database_exists(db["database"].as_str().unwrap()).await);
}

/// Found by the provisioning bench: tenants placed on a shared instance
/// that is still being built each asked the driver to create it, and the
/// driver's find-by-owner-tag, nextid, create is not atomic. Here the first
/// job's `GET /cluster/nextid` is answered late: the second job finds no
/// container, takes vmid X and creates it; the first then gets X+1 and
/// (without a lock on the instance) creates a second container with the
/// same owner tag.
#[tokio::test]
async fn tenants_placed_together_on_a_new_shared_instance_get_one_container() {
    let env = env_with(|s| s.jobs.workers = 4).await;
    env.sim
        .faults()
        .delay_next_request("GET", "/cluster/nextid", Duration::from_secs(1));
    let mut ids = Vec::new();
    for i in 0..2 {
        ids.push(env.create(&format!("together{i}"), "basic").await);
    }
    let mut instances = std::collections::HashSet::new();
    for id in &ids {
        env.wait_status(id, "active").await;
        instances.insert(
            env.active(id).await["instance_id"]
                .as_str()
                .unwrap()
                .to_owned(),
        );
    }
    assert_eq!(instances.len(), 1, "one shared instance: {instances:?}");
    let instance = instances.into_iter().next().unwrap();
    assert_eq!(
        env.containers_of(&instance),
        1,
        "{:?}",
        env.sim.containers()
    );
    assert_eq!(env.sim.containers().len(), 1);
}

/// Found by the provisioning bench: placement put a new shared instance on
/// the least loaded node even when that node already ran a (full) shared
/// instance of the product, which the one-per-node index refuses, so the
/// tenant failed with `placement-conflict` although another node had room.
#[tokio::test]
async fn a_new_shared_instance_goes_to_a_node_without_one_even_when_that_node_is_fuller() {
    let env = env().await;
    let sql = env.app.sql().await;
    sql.execute(
        "UPDATE products SET shared_max_tenants = 1 WHERE slug = 'odoo'",
        &[],
    )
    .await
    .unwrap();
    let a = env.create("first", "basic").await;
    env.wait_status(&a, "active").await;
    let da = env.active(&a).await;
    // The node with the (now full) shared instance becomes by far the emptiest.
    sql.execute(
        "UPDATE nodes SET cpu_cores = 1024, memory_mib = 4194304, storage_gib = 65536, max_instances = 1000 \
         WHERE name = $1",
        &[&da["node"].as_str().unwrap()],
    )
    .await
    .unwrap();
    let b = env.create("second", "basic").await;
    env.wait_status(&b, "active").await;
    let db = env.active(&b).await;
    assert_ne!(db["instance_id"], da["instance_id"], "the first is full");
    assert_ne!(db["node"], da["node"], "one shared odoo instance per node");
    assert_eq!(env.sim.containers().len(), 2);
    // Every node has a full one now: the third waits, and says why.
    let c = env.create("third", "basic").await;
    let t = env.wait_reason(&c, "no-capacity").await;
    assert_eq!(t["status"], "provisioning");
    let reason = t["status_reason"].as_str().unwrap();
    assert!(
        reason.contains("the 2 nodes with a shared odoo instance are left out"),
        "{reason}"
    );
}

#[tokio::test]
async fn dedicated_tenants_land_on_the_least_loaded_node_with_distinct_ports() {
    let env = env().await;
    let a = env.create("one", "pro").await;
    env.wait_status(&a, "active").await;
    let b = env.create("two", "pro").await;
    env.wait_status(&b, "active").await;
    let (da, db) = (env.active(&a).await, env.active(&b).await);
    assert_ne!(
        da["node"], db["node"],
        "the second goes to the emptier node"
    );
    let c = env.create("three", "pro").await;
    env.wait_status(&c, "active").await;
    let dc = env.active(&c).await;
    let ports: Vec<i64> = [&da, &db, &dc]
        .iter()
        .map(|d| d["host_port"].as_i64().unwrap())
        .collect();
    let same_node: Vec<&Value> = [&da, &db]
        .into_iter()
        .filter(|d| d["node"] == dc["node"])
        .collect();
    assert_eq!(same_node.len(), 1);
    assert_ne!(
        same_node[0]["host_port"], dc["host_port"],
        "ports are unique per node: {ports:?}"
    );
}

#[tokio::test]
async fn without_a_free_port_the_job_waits_and_the_tenant_says_no_free_port_with_the_range() {
    let env = env().await;
    // Narrow odoo's range to one port per node.
    env.app
        .sql()
        .await
        .execute("UPDATE products SET dedicated_port_start = 8200, dedicated_port_end = 8200 WHERE slug = 'odoo'", &[])
        .await
        .unwrap();
    let a = env.create("one", "pro").await;
    env.wait_status(&a, "active").await;
    let b = env.create("two", "pro").await;
    env.wait_status(&b, "active").await;
    let c = env.create("three", "pro").await;
    let t = env.wait_reason(&c, "no-free-port").await;
    assert_eq!(t["status"], "provisioning");
    let reason = t["status_reason"].as_str().unwrap();
    assert!(reason.contains("8200–8200"), "{reason}");
    // Deleting a tenant frees its port; the waiting job takes it.
    let res = env
        .app
        .delete_as(&format!("/v1/tenants/{a}"), &env.token)
        .await;
    assert_eq!(res.status(), 202);
    env.wait_status(&a, "deleted").await;
    env.wait_status(&c, "active").await;
    assert_eq!(env.active(&c).await["host_port"], 8200);
}
