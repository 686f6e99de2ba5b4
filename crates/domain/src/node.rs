//! Nodes: the Proxmox VE nodes and Docker hosts instances run on. Their
//! names, statuses, capacity and credentials' shapes, and the health-check
//! rule that moves a node between `online` and `offline`.

use std::fmt;

use crate::{DriverKind, ValidationErrors};

string_enum! {
    /// A node's status. Operators set `maintenance` and `draining`; the
    /// health check moves a node between `online` and `offline`.
    NodeStatus {
        /// Answers and takes new instances.
        Online => "online",
        /// Does not answer its API (set by the health check).
        Offline => "offline",
        /// Taken out by an operator: no new instances, health not tracked.
        Maintenance => "maintenance",
        /// Being emptied: runs what it has, takes nothing new.
        Draining => "draining",
    }
}

impl NodeStatus {
    /// Whether placement may put new instances here.
    pub fn accepts_placements(&self) -> bool {
        matches!(self, Self::Online)
    }

    /// Statuses an operator may set (`offline` is the health check's).
    pub fn settable_by_operator(&self) -> bool {
        !matches!(self, Self::Offline)
    }

    /// The status after a health check that found the node `reachable`, or
    /// `None` when it does not change: `online` ↔ `offline` only; an
    /// operator's `maintenance` or `draining` stays as set.
    pub fn after_health_check(&self, reachable: bool) -> Option<Self> {
        match (self, reachable) {
            (Self::Online, false) => Some(Self::Offline),
            (Self::Offline, true) => Some(Self::Online),
            _ => None,
        }
    }
}

/// A node name: a DNS label (`a-z`, `0-9`, `-`; 1–63 characters, no leading
/// or trailing `-`), like a Proxmox node name.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct NodeName(String);

impl NodeName {
    /// Parses a name.
    ///
    /// # Errors
    /// A message naming the broken rule.
    pub fn parse(s: &str) -> Result<Self, String> {
        let ok_chars = s
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
        if s.is_empty() || s.len() > 63 {
            return Err("must be 1 to 63 characters".into());
        }
        if !ok_chars {
            return Err("may contain only lowercase letters, digits and '-'".into());
        }
        if s.starts_with('-') || s.ends_with('-') {
            return Err("must not start or end with '-'".into());
        }
        Ok(Self(s.to_owned()))
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for NodeName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A Proxmox API token id, `USER@REALM!TOKENID` (PVE `pve-tfa-userid` +
/// token name; e.g. `root@pam!tenantry`).
///
/// # Errors
/// A message naming the broken rule.
pub fn parse_pve_token_id(s: &str) -> Result<&str, String> {
    let (user_realm, token) = s
        .split_once('!')
        .ok_or("must look like USER@REALM!TOKENID")?;
    let (user, realm) = user_realm
        .split_once('@')
        .ok_or("must look like USER@REALM!TOKENID")?;
    let valid = |p: &str| {
        !p.is_empty()
            && p.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
    };
    if !valid(user) || !valid(realm) || !valid(token) {
        return Err(
            "USER, REALM and TOKENID may contain only letters, digits, '-', '_' and '.'".into(),
        );
    }
    Ok(s)
}

/// Normalises a SHA-256 certificate fingerprint to `AA:BB:…` (32 upper-case
/// hex pairs, as Proxmox shows it); accepts it with or without colons.
///
/// # Errors
/// When it is not 32 bytes of hex.
pub fn parse_fingerprint(s: &str) -> Result<String, String> {
    let hex: String = s.chars().filter(|c| *c != ':').collect();
    if hex.len() != 64 || !hex.chars().all(|c| c.is_ascii_hexdigit()) {
        return Err("must be a SHA-256 fingerprint: 32 hex byte pairs, e.g. AB:CD:…".into());
    }
    let upper = hex.to_ascii_uppercase();
    let pairs: Vec<&str> = (0..32).map(|i| &upper[i * 2..i * 2 + 2]).collect();
    Ok(pairs.join(":"))
}

/// Capacity a node offers Tenantry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NodeCapacity {
    /// CPU cores.
    pub cpu_cores: u32,
    /// Memory, MiB.
    pub memory_mib: u64,
    /// Storage, GiB.
    pub storage_gib: u64,
    /// Most instances it may run.
    pub max_instances: u32,
}

impl NodeCapacity {
    /// Validates raw numbers (from JSON) into a capacity, recording errors
    /// under `prefix`.
    pub fn validate(
        cpu: i64,
        mem: i64,
        disk: i64,
        max_instances: i64,
        prefix: &str,
        errors: &mut ValidationErrors,
    ) -> Option<Self> {
        let mut positive = |field: &str, v: i64, max: i64| {
            if (1..=max).contains(&v) {
                Some(v)
            } else {
                errors.push(
                    format!("{prefix}{field}"),
                    format!("must be between 1 and {max}"),
                );
                None
            }
        };
        let cpu = positive("cpu_cores", cpu, 100_000);
        let mem = positive("memory_mib", mem, 1 << 40);
        let disk = positive("storage_gib", disk, 1 << 40);
        let max = positive("max_instances", max_instances, 100_000);
        Some(Self {
            cpu_cores: u32::try_from(cpu?).ok()?,
            memory_mib: u64::try_from(mem?).ok()?,
            storage_gib: u64::try_from(disk?).ok()?,
            max_instances: u32::try_from(max?).ok()?,
        })
    }
}

/// Whether `url` is an API URL a node of `kind` can have: `https://` or
/// `http://` (Proxmox; `http` only for simulators and tests), or also
/// `unix://` and `tcp://` (Docker).
///
/// # Errors
/// A message naming the broken rule.
pub fn check_api_url(kind: DriverKind, url: &str) -> Result<(), String> {
    let schemes: &[&str] = match kind {
        DriverKind::Proxmox => &["https://", "http://"],
        DriverKind::Docker => &["unix://", "tcp://", "https://", "http://"],
    };
    if url.len() > 2048 {
        return Err("must be at most 2048 characters".into());
    }
    let Some(rest) = schemes.iter().find_map(|s| url.strip_prefix(s)) else {
        return Err(format!("must start with one of {}", schemes.join(", ")));
    };
    if rest.is_empty() || rest.chars().any(char::is_whitespace) {
        return Err("must name a host (or socket path) without spaces".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn health_checks_move_only_between_online_and_offline() {
        use NodeStatus::*;
        assert_eq!(Online.after_health_check(false), Some(Offline));
        assert_eq!(Offline.after_health_check(true), Some(Online));
        assert_eq!(Online.after_health_check(true), None);
        assert_eq!(Offline.after_health_check(false), None);
        for s in [Maintenance, Draining] {
            assert_eq!(s.after_health_check(true), None);
            assert_eq!(s.after_health_check(false), None);
        }
        assert!(Online.accepts_placements());
        assert!(
            !Draining.accepts_placements()
                && !Maintenance.accepts_placements()
                && !Offline.accepts_placements()
        );
    }

    #[test]
    fn names_token_ids_and_urls() {
        assert!(NodeName::parse("pve1").is_ok());
        for bad in ["", "-a", "a-", "PVE", "a_b", &"a".repeat(64)] {
            assert!(NodeName::parse(bad).is_err(), "{bad}");
        }
        assert!(parse_pve_token_id("root@pam!tenantry").is_ok());
        for bad in ["root@pam", "root!x", "@pam!x", "root@pam!", "ro ot@pam!x"] {
            assert!(parse_pve_token_id(bad).is_err(), "{bad}");
        }
        assert!(check_api_url(DriverKind::Proxmox, "https://pve1:8006/api2/json").is_ok());
        assert!(check_api_url(DriverKind::Proxmox, "unix:///var/run/docker.sock").is_err());
        assert!(check_api_url(DriverKind::Docker, "unix:///var/run/docker.sock").is_ok());
        assert!(check_api_url(DriverKind::Docker, "ftp://x").is_err());
    }

    proptest! {
        #[test]
        fn fingerprints_normalise_to_colon_pairs(bytes in proptest::collection::vec(any::<u8>(), 32)) {
            let plain: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
            let fp = parse_fingerprint(&plain).unwrap();
            prop_assert_eq!(fp.len(), 95);
            prop_assert_eq!(parse_fingerprint(&fp).unwrap(), fp.clone());
            prop_assert_eq!(fp.replace(':', ""), plain.to_ascii_uppercase());
        }

        #[test]
        fn node_names_that_parse_are_dns_labels(s in "[a-z0-9-]{0,70}") {
            if let Ok(n) = NodeName::parse(&s) {
                prop_assert!(!n.as_str().starts_with('-') && n.as_str().len() <= 63);
            }
        }
    }
}
