//! HA resources as `/etc/pve/ha/resources.cfg` keeps them (pve-ha-manager
//! `PVE::HA::Config`): one section per resource id (`ct:105`), with the
//! options given when it was added. No CRM runs: the requested `state` is
//! only changed by the `hastart`/`hastop` tasks of an HA-managed CT.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use super::ct::sha1_hex;
use crate::ConfigMap;

/// One HA resource: its type (`ct`, `vm`) and its options as given
/// (`state`, `comment`, `failback`, `max_restart`, `max_relocate`); an
/// absent option has its schema default (`state` `started`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub(crate) struct HaResource {
    pub kind: String,
    pub opts: ConfigMap,
}

impl HaResource {
    /// The requested state, as configured (`None`: the default, `started`).
    pub fn state(&self) -> Option<&str> {
        self.opts.get("state").map(String::as_str)
    }

    /// The requested state with PVE's defaults applied (`enabled` is an
    /// alias of `started`).
    pub fn effective_state(&self) -> &str {
        match self.state() {
            None | Some("enabled") => "started",
            Some(s) => s,
        }
    }
}

/// `PVE::HA::Config`'s view of the resources: the HA resource ids by sid.
pub(crate) type HaResources = BTreeMap<String, HaResource>;

/// The `digest` of `resources.cfg`: SHA-1 of the file as
/// `PVE::SectionConfig` writes it (`ct: 105` then tab-indented options).
pub(crate) fn ha_digest(ha: &HaResources) -> String {
    let mut text = String::new();
    for (sid, res) in ha {
        let name = sid.split_once(':').map_or(sid.as_str(), |(_, n)| n);
        let _ = writeln!(text, "{}: {name}", res.kind);
        for (k, v) in &res.opts {
            let _ = writeln!(text, "\t{k} {v}");
        }
        text.push('\n');
    }
    sha1_hex(&text)
}
