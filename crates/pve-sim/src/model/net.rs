//! The network interfaces a running CT shows: what `ip --json addr` prints
//! in its network namespace, as `PVE::LXC::get_interfaces` (pve-container)
//! turns it into `GET …/interfaces` entries. `lo` first, then one interface
//! per `net[n]` (by index) with its MAC in lowercase, its IPv4 address (the
//! static `ip=`, or the simulated DHCP server's lease for `ip=dhcp`, none
//! for `manual` or no `ip`), a static `ip6=` and its link-local IPv6 address
//! (EUI-64 of the MAC).

use std::net::{Ipv4Addr, Ipv6Addr};

use serde_json::{Value, json};

use super::Ct;
use crate::schema::parse_property_string;

/// An IPv4 address and its prefix length (`10.0.0.105/16`).
pub(crate) type Cidr4 = (Ipv4Addr, u8);

/// The address the simulated DHCP server leases to `net{index}` of CT
/// `vmid`: `10.{index}.{vmid / 256 % 256}.{vmid % 256}/16`. It depends on
/// nothing else, so it stays the same while the CT lives, across restarts
/// of the CT and of the simulator (unique per CT for vmids below 65536).
pub(crate) fn dhcp_lease(vmid: u32, index: u32) -> Cidr4 {
    let [_, _, hi, lo] = vmid.to_be_bytes();
    let net = u8::try_from(index).unwrap_or(u8::MAX);
    (Ipv4Addr::new(10, net, hi, lo), 16)
}

/// `a.b.c.d/len`.
fn parse_cidr4(v: &str) -> Option<Cidr4> {
    let (ip, len) = v.split_once('/')?;
    let len: u8 = len.parse().ok().filter(|l| *l <= 32)?;
    Some((ip.parse().ok()?, len))
}

fn parse_cidr6(v: &str) -> Option<(Ipv6Addr, u8)> {
    let (ip, len) = v.split_once('/')?;
    let len: u8 = len.parse().ok().filter(|l| *l <= 128)?;
    Some((ip.parse().ok()?, len))
}

/// `fe80::/64` with the modified EUI-64 of `mac` (`BC:24:11:00:69:00`).
fn link_local(mac: &str) -> Option<Ipv6Addr> {
    let b: Vec<u16> = mac
        .split(':')
        .map(|h| u16::from_str_radix(h, 16).ok().filter(|v| *v <= 0xff))
        .collect::<Option<_>>()?;
    let [b0, b1, b2, b3, b4, b5] = b.as_slice() else {
        return None;
    };
    Some(Ipv6Addr::new(
        0xfe80,
        0,
        0,
        0,
        ((b0 ^ 0x02) << 8) | b1,
        (b2 << 8) | 0xff,
        0xfe00 | b3,
        (b4 << 8) | b5,
    ))
}

/// One entry: `name`, `hwaddr` and `hardware-address` (the MAC), `inet` and
/// `inet6` (the last address of each family, `ip/prefix`, when it has one)
/// and `ip-addresses` (every address: `ip-address`, `ip-address-type`
/// `inet`/`inet6`, `prefix`).
fn entry(name: &str, mac: &str, addrs: &[(&str, String, u8)]) -> Value {
    let mut v = json!({
        "name": name,
        "hwaddr": mac,
        "hardware-address": mac,
        "ip-addresses": addrs
            .iter()
            .map(|(family, ip, prefix)| json!({
                "ip-address": ip,
                "ip-address-type": family,
                "prefix": prefix,
            }))
            .collect::<Vec<_>>(),
    });
    for (family, ip, prefix) in addrs {
        v[*family] = format!("{ip}/{prefix}").into();
    }
    v
}

/// The `GET …/interfaces` entries of running CT `ct`. `net0_override` is a
/// test's choice for `net0`'s IPv4 address (`Some(None)`: none at all, as
/// while DHCP has not answered); `None` keeps the configured one.
pub(crate) fn interfaces(ct: &Ct, net0_override: Option<Option<Cidr4>>) -> Value {
    let mut out = vec![entry(
        "lo",
        "00:00:00:00:00:00",
        &[
            ("inet", "127.0.0.1".to_owned(), 8),
            ("inet6", "::1".to_owned(), 128),
        ],
    )];
    let mut nets: Vec<(u32, &String)> = ct
        .config
        .iter()
        .filter_map(|(k, v)| Some((k.strip_prefix("net")?.parse().ok()?, v)))
        .collect();
    nets.sort_by_key(|(i, _)| *i);
    for (index, value) in nets {
        let parts = parse_property_string("name", value);
        let get = |key: &str| {
            parts
                .iter()
                .find(|(k, _)| k == key)
                .map(|(_, v)| v.as_str())
        };
        let name = get("name").unwrap_or("eth0");
        let mac = get("hwaddr").unwrap_or("00:00:00:00:00:00").to_lowercase();
        let configured = match get("ip") {
            Some("dhcp") => Some(dhcp_lease(ct.vmid, index)),
            Some(ip) => parse_cidr4(ip),
            None => None,
        };
        let ipv4 = match net0_override {
            Some(chosen) if index == 0 => chosen,
            _ => configured,
        };
        let mut addrs = Vec::new();
        if let Some((ip, prefix)) = ipv4 {
            addrs.push(("inet", ip.to_string(), prefix));
        }
        if let Some((ip, prefix)) = get("ip6").and_then(parse_cidr6) {
            addrs.push(("inet6", ip.to_string(), prefix));
        }
        if let Some(ip) = link_local(&mac) {
            addrs.push(("inet6", ip.to_string(), 64));
        }
        out.push(entry(name, &mac, &addrs));
    }
    Value::Array(out)
}
