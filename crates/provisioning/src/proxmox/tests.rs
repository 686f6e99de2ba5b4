//! Unit tests of the Proxmox driver that need no node: reading list
//! entries, finding ours by tag, configuration and construction, power
//! errors that mean done, and picking the upstream address.

use serde_json::json;

use uuid::Uuid;

use super::errors::ApiError;
use super::lifecycle::settled;
use super::locate::pick_ours;
use super::network::{Interface, pick_address};
use super::params::owner_tag;
use super::*;

#[test]
fn list_entries_read_numbers_and_strings() {
    let id = Uuid::new_v4();
    let ct = Ct::from_value(&json!({
        "vmid": "105", "status": "running", "lock": "", "tags": format!("tenantry;{}", owner_tag(id)),
        "cpu": 0.25, "cpus": 2, "mem": 1_048_576, "uptime": 42
    }))
    .unwrap();
    assert_eq!(ct.vmid.to_string(), "105");
    assert!(ct.running());
    assert_eq!(ct.lock, None);
    assert!(ct.has_tag(&owner_tag(id)));
    assert_eq!(ct.cpus, Some(2.0));
    let creating =
        Ct::from_value(&json!({"vmid": 106, "status": "stopped", "lock": "create"})).unwrap();
    assert!(creating.creating());
    assert!(creating.tags.is_empty());
    assert!(Ct::from_value(&json!({"status": "running"})).is_none());
}

#[test]
fn ours_is_found_by_tag_only() {
    let id = Uuid::new_v4();
    let tag = owner_tag(id);
    let ct = |vmid: u64, tags: &str| Ct {
        vmid: Vmid::new(vmid).unwrap(),
        status: "running".into(),
        lock: None,
        tags: parse_tags(tags),
        cpu: None,
        cpus: None,
        mem: None,
        disk: None,
        uptime: None,
    };
    let other = owner_tag(Uuid::new_v4());
    let cts = [
        ct(100, &other),
        ct(101, "tenantry"),
        ct(107, &tag),
        ct(103, &tag),
    ];
    assert_eq!(pick_ours(&cts, &tag).map(|c| c.vmid), Vmid::new(103));
    assert_eq!(pick_ours(&cts[..2], &tag), None);
}

#[test]
fn the_config_debug_redacts_the_secret() {
    let cfg = ProxmoxConfig::new(
        "https://pve1.example:8006/api2/json",
        "pve1",
        "tenantry@pve!prov",
        SecretString::from("5f0c1b7e-secret-value"),
    );
    let text = format!("{cfg:?}");
    assert!(!text.contains("5f0c1b7e"), "{text}");
    let driver = ProxmoxDriver::new(cfg).unwrap();
    let text = format!("{driver:?}");
    assert!(!text.contains("5f0c1b7e"), "{text}");
}

#[test]
fn bad_configs_fail_at_construction() {
    let cfg =
        |url: &str, token: &str| ProxmoxConfig::new(url, "pve1", token, SecretString::from("s"));
    assert!(ProxmoxDriver::new(cfg("not a url", "a@pve!t")).is_err());
    assert!(ProxmoxDriver::new(cfg("ftp://pve1/api2/json", "a@pve!t")).is_err());
    assert!(ProxmoxDriver::new(cfg("https://pve1:8006/api2/json", "root")).is_err());
    assert!(ProxmoxDriver::new(cfg("https://pve1:8006/api2/json", "a@pve!t")).is_ok());
}

#[test]
fn power_errors_that_mean_done() {
    let e = |m: &str| ApiError::Http {
        call: "POST x".into(),
        status: 500,
        message: m.into(),
        errors: std::collections::BTreeMap::new(),
    };
    assert!(settled("start", &e("CT 105 already running")));
    assert!(settled("shutdown", &e("CT 105 not running")));
    assert!(settled("stop", &e("CT 105 not running")));
    assert!(!settled("start", &e("CT 105 not running")));
    assert!(!settled("stop", &e("CT is locked (backup)")));
}

fn interfaces(v: serde_json::Value) -> Option<Vec<Interface>> {
    serde_json::from_value(v).unwrap()
}

#[test]
fn the_upstream_address_is_the_first_ipv4_address_past_lo() {
    // As PVE 9 answers `GET …/interfaces` for a running CT.
    let list = interfaces(json!([
        { "name": "lo", "hwaddr": "00:00:00:00:00:00", "hardware-address": "00:00:00:00:00:00",
          "inet": "127.0.0.1/8", "inet6": "::1/128",
          "ip-addresses": [
              { "ip-address": "127.0.0.1", "ip-address-type": "inet", "prefix": 8 },
              { "ip-address": "::1", "ip-address-type": "inet6", "prefix": 128 } ] },
        { "name": "eth0", "hwaddr": "bc:24:11:00:69:00", "hardware-address": "bc:24:11:00:69:00",
          "inet": "10.0.0.106/16", "inet6": "fe80::be24:11ff:fe00:6900/64",
          "ip-addresses": [
              { "ip-address": "10.0.0.105", "ip-address-type": "inet", "prefix": 16 },
              { "ip-address": "10.0.0.106", "ip-address-type": "inet", "prefix": 16 },
              { "ip-address": "fe80::be24:11ff:fe00:6900", "ip-address-type": "inet6", "prefix": 64 } ] },
        { "name": "eth1", "hwaddr": "bc:24:11:00:69:01", "hardware-address": "bc:24:11:00:69:01",
          "inet": "192.168.1.5/24", "ip-addresses": [] }
    ]))
    .unwrap();
    assert_eq!(pick_address(&list), Some("10.0.0.105".parse().unwrap()));
    // Older nodes answer `inet` alone.
    let old = interfaces(json!([
        { "name": "lo", "hwaddr": "00:00:00:00:00:00", "inet": "127.0.0.1/8" },
        { "name": "eth0", "hwaddr": "bc:24:11:00:69:00", "inet": "192.168.7.9/24" }
    ]))
    .unwrap();
    assert_eq!(pick_address(&old), Some("192.168.7.9".parse().unwrap()));
}

#[test]
fn no_ipv4_address_past_lo_is_no_upstream() {
    let none = interfaces(json!([
        { "name": "lo", "hwaddr": "00:00:00:00:00:00", "inet": "127.0.0.1/8" },
        { "name": "eth0", "hwaddr": "bc:24:11:00:69:00", "inet6": "fe80::1/64",
          "ip-addresses": [ { "ip-address": "fe80::1", "ip-address-type": "inet6", "prefix": 64 } ] },
        { "name": "eth1", "hwaddr": "bc:24:11:00:69:01", "inet": "169.254.3.4/16" }
    ]))
    .unwrap();
    assert_eq!(pick_address(&none), None);
    // A stopped CT: `{"data":null}`.
    assert!(interfaces(serde_json::Value::Null).is_none());
}
