//! The values we send to and read from Proxmox, in its own formats: the
//! owner tag in a `pve-tag-list`, `rootfs` and `net0` property strings, disk
//! sizes, and the create parameters.

use std::fmt;

use uuid::Uuid;

use crate::{DriverError, InstanceSpec, OWNER_TAG_PREFIX};

/// A Proxmox guest id: PVE's `pve-vmid` format, 100 to 999 999 999 (ids
/// below 100 are reserved).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) struct Vmid(u32);

impl Vmid {
    const MIN: u32 = 100;
    const MAX: u32 = 999_999_999;

    /// The vmid `n`, if PVE allows it.
    pub(crate) fn new(n: u64) -> Option<Self> {
        u32::try_from(n)
            .ok()
            .filter(|n| (Self::MIN..=Self::MAX).contains(n))
            .map(Self)
    }

    /// A vmid written in decimal (`105`), as `InstanceRef::external_id`
    /// holds it.
    pub(crate) fn parse(text: &str) -> Option<Self> {
        if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) || text.starts_with('0') {
            return None;
        }
        Self::new(text.parse().ok()?)
    }
}

impl fmt::Display for Vmid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// The plain tag every container we create carries besides its owner tag,
/// so an operator can filter ours in the PVE web UI.
pub(crate) const PLAIN_TAG: &str = "tenantry";

/// The owner tag of an instance: `tenantry-<lowercase uuid>`, which fits
/// PVE's tag pattern `[a-z0-9_][a-z0-9_+.-]*`.
pub(crate) fn owner_tag(instance_id: Uuid) -> String {
    format!("{OWNER_TAG_PREFIX}{}", instance_id.hyphenated())
}

/// The `tags` value we send: `tenantry;tenantry-<uuid>` (`pve-tag-list` is
/// `;`-separated).
pub(crate) fn tags_value(instance_id: Uuid) -> String {
    format!("{PLAIN_TAG};{}", owner_tag(instance_id))
}

/// Splits a `pve-tag-list` as PVE does (`;`, `,` or spaces between tags;
/// PVE reorders them, and older versions wrote `,`).
pub(crate) fn parse_tags(tags: &str) -> Vec<String> {
    tags.split([';', ',', ' '])
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .map(str::to_owned)
        .collect()
}

/// The instance id in an owner tag among `tags`, if any.
pub(crate) fn owner_of(tags: &[String]) -> Option<Uuid> {
    tags.iter()
        .filter_map(|t| t.strip_prefix(OWNER_TAG_PREFIX))
        .find_map(|id| Uuid::parse_str(id).ok())
}

/// `rootfs` for a new container: `<storage>:<GiB>` (PVE allocates a new
/// volume of that many GiB on the storage).
pub(crate) fn rootfs_value(storage: &str, gib: u32) -> String {
    format!("{storage}:{gib}")
}

/// `net0`: one veth interface `eth0` on `bridge`, addressed by DHCP.
pub(crate) fn net0_value(bridge: &str) -> String {
    format!("name=eth0,bridge={bridge},ip=dhcp,type=veth")
}

/// The `size=` of a mount point property string (`local-lvm:vm-105-disk-0,
/// size=8G`), in bytes. PVE writes `<n>[KMGT]` (bytes when there is no
/// unit), possibly with a fraction.
pub(crate) fn disk_size_bytes(property: &str) -> Option<u64> {
    let size = property
        .split(',')
        .find_map(|part| part.trim().strip_prefix("size="))?;
    parse_size(size)
}

fn parse_size(size: &str) -> Option<u64> {
    let (number, unit) = match size.char_indices().last()? {
        (i, c) if c.is_ascii_alphabetic() => (&size[..i], c.to_ascii_uppercase()),
        _ => (size, 'B'),
    };
    let factor: u64 = match unit {
        'B' => 1,
        'K' => 1 << 10,
        'M' => 1 << 20,
        'G' => 1 << 30,
        'T' => 1 << 40,
        _ => return None,
    };
    if let Ok(n) = number.parse::<u64>() {
        return n.checked_mul(factor);
    }
    let n: f64 = number.parse().ok()?;
    if !n.is_finite() || n < 0.0 {
        return None;
    }
    #[expect(
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss,
        clippy::cast_precision_loss,
        reason = "a disk size in bytes is far below 2^53 and was checked non-negative"
    )]
    let bytes = (n * factor as f64).round() as u64;
    Some(bytes)
}

/// Whether `name` is a DNS label PVE accepts as `hostname` (format
/// `dns-name`; we keep to one lowercase label as slugs are).
pub(crate) fn valid_hostname(name: &str) -> bool {
    tenantry_domain::slug::is_dns_label(name)
}

/// What `POST /nodes/{node}/lxc` gets: every parameter is one the PVE 9.1
/// schema defines for that endpoint (`shared/reference/proxmox/
/// provisioning-endpoints.md`), booleans as `0`/`1`.
///
/// # Errors
/// `Failed` for a host name PVE would refuse or an empty template.
pub(crate) fn create_params(
    spec: &InstanceSpec,
    vmid: Vmid,
    storage: &str,
    bridge: &str,
) -> Result<Vec<(&'static str, String)>, DriverError> {
    if !valid_hostname(&spec.hostname) {
        return Err(DriverError::Failed {
            reason: format!(
                "host name {:?} is not a DNS label (a-z, 0-9, '-', at most 63)",
                spec.hostname
            ),
        });
    }
    if spec.artifact.trim().is_empty() {
        return Err(DriverError::Failed {
            reason: "no ostemplate given for a Proxmox container".into(),
        });
    }
    let r = &spec.resources;
    Ok(vec![
        ("vmid", vmid.to_string()),
        ("ostemplate", spec.artifact.clone()),
        ("hostname", spec.hostname.clone()),
        ("cores", r.cpu_cores.to_string()),
        ("memory", r.memory_mib.to_string()),
        ("swap", spec.swap_mib.to_string()),
        ("rootfs", rootfs_value(storage, r.storage_gib)),
        ("net0", net0_value(bridge)),
        ("unprivileged", "1".into()),
        ("onboot", "1".into()),
        ("tags", tags_value(spec.instance_id)),
        ("start", "1".into()),
    ])
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use tenantry_domain::catalog::Resources;

    use super::*;

    #[test]
    fn vmids_keep_to_pve_range() {
        assert_eq!(
            Vmid::parse("105").map(|v| v.to_string()),
            Some("105".into())
        );
        assert_eq!(
            Vmid::parse("999999999").map(|v| v.to_string()),
            Some("999999999".into())
        );
        for bad in ["", "99", "0105", "1000000000", "10a", "-105", " 105"] {
            assert_eq!(Vmid::parse(bad), None, "{bad:?}");
        }
        assert_eq!(Vmid::new(99), None);
        assert_eq!(Vmid::new(u64::from(u32::MAX) + 1), None);
    }

    #[test]
    fn owner_tag_is_the_prefix_and_the_lowercase_uuid() {
        let id = Uuid::parse_str("1B4E28BA-2FA1-11D2-883F-0016D3CCA427").unwrap();
        assert_eq!(
            owner_tag(id),
            "tenantry-1b4e28ba-2fa1-11d2-883f-0016d3cca427"
        );
        assert_eq!(
            tags_value(id),
            "tenantry;tenantry-1b4e28ba-2fa1-11d2-883f-0016d3cca427"
        );
    }

    #[test]
    fn tags_parse_whatever_separator_pve_used() {
        let id = Uuid::new_v4();
        for sep in [";", ",", " ", "; "] {
            let tags = parse_tags(&format!("prod{sep}{}{sep}tenantry", owner_tag(id)));
            assert_eq!(tags.len(), 3, "{sep:?}");
            assert_eq!(owner_of(&tags), Some(id));
        }
        assert_eq!(owner_of(&parse_tags("")), None);
        assert_eq!(owner_of(&parse_tags("tenantry;tenantry-notauuid")), None);
    }

    #[test]
    fn rootfs_and_net0_are_pve_property_strings() {
        assert_eq!(rootfs_value("local-lvm", 8), "local-lvm:8");
        assert_eq!(
            net0_value("vmbr0"),
            "name=eth0,bridge=vmbr0,ip=dhcp,type=veth"
        );
    }

    #[test]
    fn disk_sizes_parse_in_every_unit() {
        assert_eq!(
            disk_size_bytes("local-lvm:vm-105-disk-0,size=8G"),
            Some(8 << 30)
        );
        assert_eq!(
            disk_size_bytes("local:105/vm-105-disk-0.raw,size=512M"),
            Some(512 << 20)
        );
        assert_eq!(disk_size_bytes("x:y,size=1T,acl=1"), Some(1 << 40));
        assert_eq!(disk_size_bytes("x:y,size=1.5G"), Some(3 << 29));
        assert_eq!(disk_size_bytes("x:y,size=4096"), Some(4096));
        assert_eq!(disk_size_bytes("x:y"), None);
        assert_eq!(disk_size_bytes("x:y,size=8Q"), None);
    }

    #[test]
    fn hostnames_are_dns_labels() {
        assert!(valid_hostname("acme-shop"));
        assert!(valid_hostname("a1"));
        assert!(!valid_hostname(""));
        assert!(!valid_hostname("-acme"));
        assert!(!valid_hostname("Acme"));
        assert!(!valid_hostname("acme.shop"));
        assert!(!valid_hostname(&"a".repeat(64)));
    }

    #[test]
    fn create_params_carry_the_spec() {
        let spec = InstanceSpec {
            instance_id: Uuid::new_v4(),
            hostname: "acme".into(),
            resources: Resources {
                cpu_cores: 2,
                memory_mib: 2048,
                storage_gib: 16,
            },
            swap_mib: 512,
            artifact: "local:vztmpl/debian-12-standard_12.7-1_amd64.tar.zst".into(),
            internal_port: None,
            host_port: None,
            env: BTreeMap::new(),
            labels: BTreeMap::new(),
            volumes: BTreeMap::new(),
            stack: None,
            high_availability: false,
            health_check: None,
        };
        let vmid = Vmid::new(105).unwrap();
        let p: BTreeMap<_, _> = create_params(&spec, vmid, "local-lvm", "vmbr0")
            .unwrap()
            .into_iter()
            .collect();
        assert_eq!(p["vmid"], "105");
        assert_eq!(p["cores"], "2");
        assert_eq!(p["memory"], "2048");
        assert_eq!(p["swap"], "512");
        assert_eq!(p["rootfs"], "local-lvm:16");
        assert_eq!(p["unprivileged"], "1");
        assert_eq!(p["start"], "1");
        assert_eq!(p["tags"], tags_value(spec.instance_id));

        let bad = InstanceSpec {
            hostname: "Not A Label".into(),
            ..spec
        };
        assert!(matches!(
            create_params(&bad, vmid, "local-lvm", "vmbr0"),
            Err(DriverError::Failed { .. })
        ));
    }
}
