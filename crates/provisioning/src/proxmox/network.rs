//! Where a container's application answers: its IPv4 address, read from
//! `GET /nodes/{node}/lxc/{vmid}/interfaces` (pve-container
//! `PVE::LXC::get_interfaces`: `ip --json addr` in the container's network
//! namespace).
//!
//! Each entry is `{name, hwaddr, "hardware-address", inet?, inet6?,
//! "ip-addresses": [{"ip-address", "ip-address-type" (inet|inet6),
//! prefix}]}`; `inet` is `a.b.c.d/len` (the last IPv4 address; PVE plans to
//! drop it for `ip-addresses`, which older nodes lack). When the container
//! is not running, PVE swallows the error and answers `{"data":null}`.

use std::net::Ipv4Addr;

use serde::Deserialize;

use super::ProxmoxDriver;
use super::errors::Class;
use crate::{DriverError, InstanceRef, Upstream};

/// One entry of `GET …/interfaces`: the fields we read.
#[derive(Debug, Deserialize)]
pub(super) struct Interface {
    /// Interface name inside the container (`lo`, `eth0`).
    pub(super) name: String,
    /// The last IPv4 address, `a.b.c.d/len`.
    #[serde(default)]
    pub(super) inet: Option<String>,
    /// Every address, in the order `ip` lists them.
    #[serde(default, rename = "ip-addresses")]
    pub(super) ip_addresses: Vec<IpAddress>,
}

/// One `ip-addresses` item.
#[derive(Debug, Deserialize)]
pub(super) struct IpAddress {
    /// The address, without prefix length.
    #[serde(default, rename = "ip-address")]
    pub(super) ip_address: Option<String>,
    /// `inet` or `inet6`.
    #[serde(default, rename = "ip-address-type")]
    pub(super) ip_address_type: Option<String>,
}

/// A usable upstream address: not link-local or unspecified. (`lo` itself
/// is skipped by name; a loopback address on another interface is what
/// pve-sim's simulated apps answer at, and a real container never shows
/// one there.)
fn usable(ip: &Ipv4Addr) -> bool {
    !(ip.is_link_local() || ip.is_unspecified())
}

/// The interface's first IPv4 address from `ip-addresses`, else its
/// `inet` with the prefix length dropped.
fn ipv4_of(iface: &Interface) -> Option<Ipv4Addr> {
    let listed = iface
        .ip_addresses
        .iter()
        .filter(|a| a.ip_address_type.as_deref() == Some("inet"))
        .filter_map(|a| a.ip_address.as_deref()?.parse().ok());
    let inet = iface
        .inet
        .as_deref()
        .and_then(|v| v.split('/').next()?.parse().ok());
    listed.chain(inet).find(usable)
}

/// The address of the first interface other than `lo` that has a usable
/// IPv4 address.
pub(super) fn pick_address(ifaces: &[Interface]) -> Option<Ipv4Addr> {
    ifaces.iter().filter(|i| i.name != "lo").find_map(ipv4_of)
}

impl ProxmoxDriver {
    /// One try at [`crate::Driver::upstream`]: the container's address with
    /// `internal_port`; `None` while it has none (not running, or its DHCP
    /// lease not there yet).
    ///
    /// # Errors
    /// `NotFound` when no container carries the instance's owner tag;
    /// those of the calls.
    pub(super) async fn upstream_once(
        &self,
        instance: &InstanceRef,
        internal_port: u16,
    ) -> Result<Option<Upstream>, DriverError> {
        let ct = self.located(instance).await?;
        let vmid = ct.vmid.to_string();
        // `Option`: `{"data":null}` (a stopped container) decodes as `None`.
        let call = self
            .client
            .get::<Option<Vec<Interface>>>(&["nodes", self.node(), "lxc", &vmid, "interfaces"], &[])
            .await;
        let ifaces = match call {
            Ok(list) => list.unwrap_or_default(),
            // Should a PVE version refuse a stopped container instead, that
            // means the same: no address yet.
            Err(e) if e.class() == Class::NotRunning => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        Ok(pick_address(&ifaces).map(|ip| Upstream {
            host: ip.to_string(),
            port: internal_port,
        }))
    }
}
