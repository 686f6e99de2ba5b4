//! A plan change that keeps the container kind but changes what the plan
//! pays for: cores, memory, disk and high availability applied to the
//! tenant's container where it runs (asserted against pve-sim's container
//! config and HA resources), the reservation updated for placement, and a
//! move to a node with room when its node has none.

use std::time::Duration;

use serde_json::{Value, json};

use super::{Env, env};

fn ct(env: &Env, vmid: &str) -> Option<pve_sim::ContainerView> {
    env.sim
        .containers()
        .into_iter()
        .find(|c| c.vmid.to_string() == vmid)
}

/// Waits until the container `vmid` has `cores` cores.
async fn wait_cores(env: &Env, vmid: &str, cores: &str) -> pve_sim::ContainerView {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(c) = ct(env, vmid)
            && c.config.get("cores").map(String::as_str) == Some(cores)
            && c.lock.is_none()
        {
            return c;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "CT {vmid} never got {cores} cores: {:?}",
            ct(env, vmid)
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn reservation(env: &Env, instance: &str) -> (i32, i32, i32, bool) {
    let row = env
        .app
        .sql()
        .await
        .query_one(
            "SELECT cpu_cores, memory_mib, storage_gib, high_availability FROM instances WHERE id = $1::text::uuid",
            &[&instance],
        )
        .await
        .unwrap();
    (row.get(0), row.get(1), row.get(2), row.get(3))
}

/// Waits until `instance` reserves `want` (cores, MiB, GiB, HA); 30 s at most.
async fn wait_reservation(env: &Env, instance: &str, want: (i32, i32, i32, bool)) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let got = reservation(env, instance).await;
        if got == want {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "reservation {got:?}, not {want:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn ha_of(env: &Env, vmid: &str) -> Option<pve_sim::HaResourceView> {
    env.sim
        .ha_resources()
        .into_iter()
        .find(|h| h.sid == format!("ct:{vmid}"))
}

fn disk_gib(c: &pve_sim::ContainerView) -> u64 {
    let rootfs = c.config.get("rootfs").cloned().unwrap_or_default();
    rootfs
        .split(',')
        .find_map(|p| p.strip_prefix("size="))
        .and_then(|s| s.strip_suffix('G'))
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no size in rootfs {rootfs:?}"))
}

#[tokio::test]
async fn a_same_kind_upgrade_applies_the_plans_resources_and_ha_in_place_and_a_downgrade_keeps_the_disk()
 {
    let env = env().await;
    // The plan view says what HA means on the product's driver.
    let odoo: Value = env
        .app
        .get_as("/v1/products/odoo", &env.token)
        .await
        .json()
        .await
        .unwrap();
    let plan = |code: &str| {
        odoo["plans"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["code"] == code)
            .unwrap()
            .clone()
    };
    assert!(
        plan("enterprise")["high_availability"]
            .as_str()
            .unwrap()
            .contains("Proxmox VE HA resource"),
        "{odoo}"
    );
    assert!(plan("pro")["high_availability"].is_null());
    let id = env.create("acme", "pro").await;
    env.wait_status(&id, "active").await;
    let before = env.active(&id).await;
    let vmid = before["container_id"].as_str().unwrap().to_owned();
    let instance = before["instance_id"].as_str().unwrap().to_owned();
    // The catalog's pro: 2 cores, 4096 MiB, 50 GiB, not HA.
    let c = ct(&env, &vmid).unwrap();
    assert_eq!(c.config.get("cores").map(String::as_str), Some("2"));
    assert_eq!(disk_gib(&c), 50);
    assert!(ha_of(&env, &vmid).is_none());

    // Enterprise: 4 cores, 8192 MiB, 100 GiB, Dedicated HA.
    env.change_plan_now(&id, "enterprise").await;
    let c = wait_cores(&env, &vmid, "4").await;
    assert_eq!(c.config.get("memory").map(String::as_str), Some("8192"));
    assert_eq!(disk_gib(&c), 100, "the root disk grew");
    env.wait_status(&id, "active").await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while ha_of(&env, &vmid).is_none() {
        assert!(tokio::time::Instant::now() < deadline, "no HA resource");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let ha = ha_of(&env, &vmid).unwrap();
    assert_eq!(ha.state.as_deref().unwrap_or("started"), "started");
    let after = env.active(&id).await;
    assert_eq!(after["container_id"], vmid.as_str(), "the same container");
    assert_eq!(after["id"], before["id"], "the same deployment");
    assert_eq!(reservation(&env, &instance).await, (4, 8192, 100, true));
    assert_eq!(
        env.sim.containers().len(),
        1,
        "no second container was made"
    );

    // Back to pro: fewer cores and memory, no HA; the disk never shrinks
    // and stays reserved.
    env.change_plan_now(&id, "pro").await;
    let c = wait_cores(&env, &vmid, "2").await;
    assert_eq!(c.config.get("memory").map(String::as_str), Some("4096"));
    assert_eq!(disk_gib(&c), 100);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while ha_of(&env, &vmid).is_some() {
        assert!(tokio::time::Instant::now() < deadline, "HA resource kept");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    env.wait_status(&id, "active").await;
    wait_reservation(&env, &instance, (2, 4096, 100, false)).await;
}

#[tokio::test]
async fn an_upgrade_its_node_has_no_room_for_moves_the_tenant_to_a_node_that_has_it() {
    let env = env().await;
    let id = env.create("acme", "pro").await;
    env.wait_status(&id, "active").await;
    let before = env.active(&id).await;
    let node = before["node"].as_str().unwrap().to_owned();
    let vmid = before["container_id"].as_str().unwrap().to_owned();
    let db = before["database"].as_str().unwrap().to_owned();
    // Its node can hold 3 cores: 2 are reserved, the enterprise plan needs 4.
    let nodes: Value = env
        .app
        .get_as("/v1/nodes?limit=100", &env.token)
        .await
        .json()
        .await
        .unwrap();
    let node_id = nodes["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["name"] == node.as_str())
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let res = env
        .app
        .patch_as(
            &format!("/v1/nodes/{node_id}"),
            &env.token,
            json!({"capacity": {"cpu_cores": 3, "memory_mib": 65536, "storage_gib": 1024, "max_instances": 50}}),
        )
        .await;
    assert!(res.status().is_success(), "{}", res.text().await.unwrap());

    env.change_plan_now(&id, "enterprise").await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    let moved = loop {
        let d = env.active(&id).await;
        if d["node"] != node.as_str() && env.tenant(&id).await["status"] == "active" {
            break d;
        }
        assert!(tokio::time::Instant::now() < deadline, "never moved: {d}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let new_vmid = moved["container_id"].as_str().unwrap().to_owned();
    let c = env
        .sim
        .containers()
        .into_iter()
        .find(|c| c.vmid.to_string() == new_vmid && c.node != node)
        .unwrap();
    assert_eq!(c.config.get("cores").map(String::as_str), Some("4"));
    assert_eq!(moved["database"], db.as_str(), "the database is kept");
    assert!(ha_of(&env, &new_vmid).is_some(), "HA on the new node");
    // The old container is gone from the old node.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while env
        .sim
        .containers()
        .iter()
        .any(|c| c.node == node && c.vmid.to_string() == vmid)
    {
        assert!(tokio::time::Instant::now() < deadline, "old CT kept");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn a_change_between_dedicated_plans_of_other_sizes_resizes_the_container() {
    let env = env().await;
    // A dedicated plan beside pro, bigger: the deployment kind stays the same.
    let res = env
        .app
        .post_as(
            "/v1/products/odoo/plans",
            &env.token,
            json!({"code": format!("pro-plus-{}", env.suffix), "name": "Pro Plus", "tier_rank": 3,
                   "price": "99.00", "currency": "USD", "interval": "month", "deployment": "dedicated",
                   "cpu_cores": 3, "memory_mib": 6144, "storage_gib": 60, "backup_schedule": "daily"}),
        )
        .await;
    assert_eq!(res.status(), 201, "{}", res.text().await.unwrap());
    let id = env.create("acme", "pro").await;
    env.wait_status(&id, "active").await;
    let before = env.active(&id).await;
    let vmid = before["container_id"].as_str().unwrap().to_owned();
    let instance = before["instance_id"].as_str().unwrap().to_owned();

    env.change_plan_now(&id, &format!("pro-plus-{}", env.suffix))
        .await;
    let c = wait_cores(&env, &vmid, "3").await;
    assert_eq!(c.config.get("memory").map(String::as_str), Some("6144"));
    assert_eq!(disk_gib(&c), 60);
    assert!(ha_of(&env, &vmid).is_none(), "not an HA plan");
    wait_reservation(&env, &instance, (3, 6144, 60, false)).await;
    assert_eq!(env.active(&id).await["container_id"], vmid.as_str());
}

#[tokio::test]
async fn a_downgrade_to_a_disk_smaller_than_the_data_is_refused_before_payment_with_the_figures() {
    let env = env().await;
    let id = env.create("acme", "enterprise").await;
    env.wait_status(&id, "active").await;
    let vmid: u32 = env.active(&id).await["container_id"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    // Enterprise has 100 GiB; the data takes 60 GiB; pro offers 50 GiB.
    env.sim.faults().set_ct_disk_used(vmid, 60 << 30);
    let res = env
        .app
        .post_as(
            &format!("/v1/tenants/{id}/plan-change"),
            &env.token,
            json!({"plan": "pro"}),
        )
        .await;
    assert_eq!(res.status(), 422);
    let problem: Value = res.json().await.unwrap();
    assert!(
        problem["type"]
            .as_str()
            .unwrap()
            .ends_with("disk-too-small"),
        "{problem}"
    );
    let detail = problem["detail"].as_str().unwrap();
    assert!(
        detail.contains("60.0 GiB") && detail.contains("pro offers 50 GiB"),
        "{detail}"
    );
    let changes: Value = env
        .app
        .get_as(&format!("/v1/tenants/{id}/plan-changes"), &env.token)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        changes["items"].as_array().unwrap().len(),
        0,
        "nothing was recorded"
    );

    // With 40 GiB of data the same downgrade is taken (scheduled).
    env.sim.faults().set_ct_disk_used(vmid, 40 << 30);
    let res = env
        .app
        .post_as(
            &format!("/v1/tenants/{id}/plan-change"),
            &env.token,
            json!({"plan": "pro"}),
        )
        .await;
    assert!(res.status().is_success(), "{}", res.text().await.unwrap());
}

/// A Proxmox product with one shared plan whose tenants may each hold
/// `limit` database connections.
fn shared_product(slug: &str, limit: i64) -> Value {
    json!({
        "slug": slug, "name": "ERP", "driver": "proxmox",
        "lxc_template": super::ODOO_TEMPLATE, "internal_port": 8069,
        "shared": {"max_tenants": 10, "cpu_cores": 1, "memory_mib": 1024, "storage_gib": 10, "tenant_connection_limit": limit},
        "plans": [{"code": "s", "name": "S", "tier_rank": 1, "price": "5.00", "currency": "USD", "interval": "month", "deployment": "shared", "cpu_cores": 1, "memory_mib": 256, "storage_gib": 1, "backup_schedule": "none"}]
    })
}

async fn connection_limit(env: &Env, role: &str) -> i32 {
    env.app
        .sql()
        .await
        .query_one(
            "SELECT rolconnlimit FROM pg_roles WHERE rolname = $1",
            &[&role],
        )
        .await
        .unwrap()
        .get(0)
}

#[tokio::test]
async fn a_shared_tenant_gets_its_products_connection_limit_and_a_dedicated_one_none() {
    let env = env().await;
    // The demo odoo declares no limit: the default, 20.
    let id = env.create("acme", "basic").await;
    env.wait_status(&id, "active").await;
    let role = env.active(&id).await["database"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(connection_limit(&env, &role).await, 20);
    let product: Value = env
        .app
        .get_as("/v1/products/odoo", &env.token)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(product["shared"]["tenant_connection_limit"], 20);

    // Moved to a dedicated container, the app has it to itself: no limit.
    env.change_plan_now(&id, "pro").await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while !(env.active(&id).await["kind"] == "dedicated"
        && env.tenant(&id).await["status"] == "active")
    {
        assert!(tokio::time::Instant::now() < deadline, "never migrated");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(connection_limit(&env, &role).await, -1);

    // A product that declares its limit: a new shared product on pve-sim.
    let res = env
        .app
        .post_as(
            "/v1/products",
            &env.token,
            shared_product(&format!("erp-{}", env.suffix), 7),
        )
        .await;
    assert_eq!(res.status(), 201, "{}", res.text().await.unwrap());
    let slug = env.slug("erp-co");
    let created: Value = env
        .app
        .post_as(
            "/v1/tenants",
            &env.token,
            json!({"company_name": "ERP Co", "slug": slug, "product": format!("erp-{}", env.suffix), "plan": "s",
                   "owner_email": format!("o@{slug}.test"), "skip_payment": true}),
        )
        .await
        .json()
        .await
        .unwrap();
    let erp = created["tenant"]["id"].as_str().unwrap().to_owned();
    env.wait_status(&erp, "active").await;
    let role = env.active(&erp).await["database"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(connection_limit(&env, &role).await, 7);

    // Out of range: 422 naming the field.
    let res = env
        .app
        .post_as(
            "/v1/products",
            &env.token,
            shared_product(&format!("bad-{}", env.suffix), 0),
        )
        .await;
    assert_eq!(res.status(), 422);
    let body = res.text().await.unwrap();
    assert!(body.contains("shared.tenant_connection_limit"), "{body}");
}
