//! A container (CT) as the simulator keeps it: its node, vmid, power state
//! and config file, and what PVE derives from the config (lock, tags,
//! memory, disk, cores, `digest`).

use std::fmt::Write as _;
use std::time::Instant;

use sha1::{Digest, Sha1};

use super::ContainerView;
use crate::ConfigMap;

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub(crate) enum Power {
    Running,
    Stopped,
}

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub(crate) struct Ct {
    pub node: String,
    pub vmid: u32,
    pub power: Power,
    /// When it started (uptime); not kept across restarts of the simulator.
    #[serde(skip)]
    pub started: Option<Instant>,
    pub config: ConfigMap,
}

impl Ct {
    pub fn lock(&self) -> Option<&str> {
        self.config.get("lock").map(String::as_str)
    }

    pub fn tags(&self) -> Vec<String> {
        self.config
            .get("tags")
            .map(|t| {
                t.split(';')
                    .filter(|s| !s.is_empty())
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default()
    }

    pub fn status(&self) -> &'static str {
        match self.power {
            Power::Running => "running",
            Power::Stopped => "stopped",
        }
    }

    pub fn uptime(&self) -> u64 {
        self.started.map_or(0, |s| s.elapsed().as_secs())
    }

    /// SHA-1 of the config file text, as PVE's `digest`.
    pub fn digest(&self) -> String {
        let mut text = String::new();
        for (k, v) in &self.config {
            let _ = writeln!(text, "{k}: {v}");
        }
        sha1_hex(&text)
    }

    /// Memory in bytes (`memory` is MiB, default 512).
    pub fn maxmem(&self) -> u64 {
        self.mib("memory", 512) << 20
    }

    pub fn maxswap(&self) -> u64 {
        self.mib("swap", 512) << 20
    }

    fn mib(&self, key: &str, default: u64) -> u64 {
        self.config
            .get(key)
            .and_then(|v| v.parse().ok())
            .unwrap_or(default)
    }

    pub fn cpus(&self) -> u64 {
        self.config
            .get("cores")
            .and_then(|v| v.parse().ok())
            .unwrap_or(1)
    }

    /// Root disk size in bytes (the `size=` of `rootfs`).
    pub fn maxdisk(&self) -> u64 {
        self.config
            .get("rootfs")
            .and_then(|r| {
                crate::schema::parse_property_string("volume", r)
                    .into_iter()
                    .find(|(k, _)| k == "size")
                    .and_then(|(_, v)| crate::schema::parse_size(&v))
            })
            .unwrap_or(0)
    }

    pub fn view(&self) -> ContainerView {
        ContainerView {
            node: self.node.clone(),
            vmid: self.vmid,
            status: self.status().to_owned(),
            lock: self.lock().map(str::to_owned),
            tags: self.tags(),
            config: self.config.clone(),
        }
    }
}

/// SHA-1 of `text` in lowercase hex, as PVE's config `digest`s.
pub(crate) fn sha1_hex(text: &str) -> String {
    let hash = Sha1::digest(text.as_bytes());
    hash.iter().fold(String::with_capacity(40), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}
