//! `GET /nodes/{node}/lxc/{vmid}/interfaces`: what a running CT's network
//! namespace shows, and `null` whenever PVE finds no running CT there.

use std::net::Ipv4Addr;

use serde_json::{Value, json};

use crate::helpers::spawn;

fn by_name<'a>(list: &'a Value, name: &str) -> &'a Value {
    list.as_array()
        .and_then(|a| a.iter().find(|i| i["name"] == name))
        .unwrap_or_else(|| panic!("no interface {name} in {list}"))
}

#[tokio::test]
async fn a_running_ct_shows_lo_and_its_dhcp_lease_on_eth0() {
    let t = spawn().await;
    t.created(
        "pve1",
        105,
        &[("net0", "name=eth0,bridge=vmbr0,ip=dhcp"), ("start", "1")],
    )
    .await;
    let r = t.get("/nodes/pve1/lxc/105/interfaces").await;
    assert_eq!(r.status, 200, "{}", r.body);
    let list = r.data();
    assert_eq!(list.as_array().unwrap().len(), 2, "{list}");
    assert_eq!(list[0]["name"], "lo", "lo comes first");
    assert_eq!(
        list[0],
        json!({
            "name": "lo",
            "hwaddr": "00:00:00:00:00:00",
            "hardware-address": "00:00:00:00:00:00",
            "inet": "127.0.0.1/8",
            "inet6": "::1/128",
            "ip-addresses": [
                { "ip-address": "127.0.0.1", "ip-address-type": "inet", "prefix": 8 },
                { "ip-address": "::1", "ip-address-type": "inet6", "prefix": 128 },
            ],
        })
    );
    let eth0 = by_name(&list, "eth0");
    let cfg = t.get("/nodes/pve1/lxc/105/config").await.data();
    let mac = cfg["net0"]
        .as_str()
        .unwrap()
        .split(',')
        .find_map(|kv| kv.strip_prefix("hwaddr="))
        .unwrap()
        .to_lowercase();
    assert_eq!(eth0["hwaddr"], mac.as_str());
    assert_eq!(eth0["hardware-address"], mac.as_str());
    assert_eq!(eth0["inet"], "10.0.0.105/16");
    assert_eq!(
        eth0["ip-addresses"][0],
        json!({ "ip-address": "10.0.0.105", "ip-address-type": "inet", "prefix": 16 })
    );
    // The link-local address is the MAC's EUI-64 (BC:24:11:00:69:00).
    assert_eq!(eth0["inet6"], "fe80::be24:11ff:fe00:6900/64");

    // Stable across a restart of the CT.
    let r = t
        .form("POST", "/nodes/pve1/lxc/105/status/reboot", &[])
        .await;
    t.wait_task("pve1", r.data().as_str().unwrap()).await;
    let again = t.get("/nodes/pve1/lxc/105/interfaces").await.data();
    assert_eq!(by_name(&again, "eth0")["inet"], "10.0.0.105/16");
}

#[tokio::test]
async fn a_static_ip_is_shown_as_configured_and_manual_shows_none() {
    let t = spawn().await;
    t.created(
        "pve1",
        300,
        &[
            (
                "net0",
                "name=eth0,bridge=vmbr0,ip=192.168.50.7/24,gw=192.168.50.1,ip6=2001:db8::7/64",
            ),
            ("net1", "name=eth1,bridge=vmbr1,ip=manual"),
            ("start", "1"),
        ],
    )
    .await;
    let list = t.get("/nodes/pve1/lxc/300/interfaces").await.data();
    assert_eq!(list.as_array().unwrap().len(), 3, "{list}");
    let eth0 = by_name(&list, "eth0");
    assert_eq!(eth0["inet"], "192.168.50.7/24");
    let families: Vec<&str> = eth0["ip-addresses"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["ip-address"].as_str().unwrap())
        .collect();
    assert_eq!(families[..2], ["192.168.50.7", "2001:db8::7"], "{eth0}");
    let eth1 = by_name(&list, "eth1");
    assert!(eth1.get("inet").is_none(), "{eth1}");
    assert!(
        eth1["inet6"].as_str().unwrap().starts_with("fe80::"),
        "{eth1}"
    );
}

#[tokio::test]
async fn a_test_chooses_the_address_net0_shows() {
    let t = spawn().await;
    t.created(
        "pve2",
        105,
        &[("net0", "name=eth0,bridge=vmbr0,ip=dhcp"), ("start", "1")],
    )
    .await;
    let faults = t.sim.faults();
    faults.set_ct_address(105, Some((Ipv4Addr::new(172, 16, 5, 9), 20)));
    let list = t.get("/nodes/pve2/lxc/105/interfaces").await.data();
    assert_eq!(by_name(&list, "eth0")["inet"], "172.16.5.9/20");

    // No IPv4 yet: eth0 shows its link-local IPv6 address only.
    faults.set_ct_address(105, None);
    let list = t.get("/nodes/pve2/lxc/105/interfaces").await.data();
    let eth0 = by_name(&list, "eth0");
    assert!(eth0.get("inet").is_none(), "{eth0}");
    assert_eq!(eth0["ip-addresses"].as_array().unwrap().len(), 1);
    assert_eq!(eth0["ip-addresses"][0]["ip-address-type"], "inet6");

    faults.clear();
    let list = t.get("/nodes/pve2/lxc/105/interfaces").await.data();
    assert_eq!(by_name(&list, "eth0")["inet"], "10.0.0.105/16");
}

/// `PVE::LXC::get_interfaces` swallows `lxc-info`'s failure: a stopped CT,
/// one on another node and one that does not exist all answer `null`.
#[tokio::test]
async fn no_running_ct_there_answers_null() {
    let t = spawn().await;
    t.created("pve1", 105, &[("net0", "name=eth0,bridge=vmbr0,ip=dhcp")])
        .await;
    for path in [
        "/nodes/pve1/lxc/105/interfaces",
        "/nodes/pve2/lxc/105/interfaces",
        "/nodes/pve1/lxc/999/interfaces",
    ] {
        let r = t.get(path).await;
        assert_eq!(
            (r.status, r.json()),
            (200, json!({ "data": null })),
            "{path}"
        );
    }
    let r = t.get("/nodes/pve9/lxc/105/interfaces").await;
    assert_eq!(r.status, 500);
    assert!(r.message().starts_with("hostname lookup 'pve9' failed"));
}
