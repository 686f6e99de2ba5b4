//! A PVE task: its UPID, type, vmid, user, log and exit status, what it
//! does to its CT when it ends well, and the first log lines PVE's workers
//! print.

use std::time::{SystemTime, UNIX_EPOCH};

use super::TaskView;

/// What a task does to its container when it ends well.
#[derive(Debug, Clone)]
pub(crate) enum Effect {
    /// Create: drop the `create` lock; start the CT when asked to.
    Create {
        start: bool,
    },
    Start,
    Stop,
    /// `hastart` of an HA-managed CT: `ha-manager set ct:N --state started`,
    /// and the CRM starts it (at once here).
    HaStart,
    /// `hastop` of an HA-managed CT: `ha-manager crm-command stop`; the CRM
    /// sets the requested state to `stopped` and stops it (at once here).
    HaStop,
    Reboot,
    /// Destroy; `purge` also removes the CT's HA resource.
    Destroy {
        purge: bool,
    },
    /// Resize: set this disk's new `size=`.
    Resize {
        disk: String,
        value: String,
    },
}

#[derive(Debug, Clone)]
pub(crate) struct Task {
    pub upid: String,
    pub node: String,
    pub kind: String,
    pub id: String,
    pub user: String,
    pub pid: u32,
    pub pstart: u64,
    pub starttime: u64,
    pub endtime: Option<u64>,
    pub exitstatus: Option<String>,
    pub log: Vec<String>,
    pub effect: Effect,
    /// The exit status this task is doomed to (a fault), if any.
    pub doom: Option<String>,
}

impl Task {
    pub fn view(&self) -> TaskView {
        TaskView {
            upid: self.upid.clone(),
            node: self.node.clone(),
            kind: self.kind.clone(),
            id: self.id.clone(),
            status: self.status().to_owned(),
            exitstatus: self.exitstatus.clone(),
        }
    }

    pub fn status(&self) -> &'static str {
        if self.exitstatus.is_some() {
            "stopped"
        } else {
            "running"
        }
    }

    /// The `GET /nodes/{node}/tasks/{upid}/status` object.
    pub fn status_json(&self) -> serde_json::Value {
        let mut v = serde_json::json!({
            "upid": self.upid,
            "node": self.node,
            "pid": self.pid,
            "pstart": self.pstart,
            "starttime": self.starttime,
            "type": self.kind,
            "id": self.id,
            "user": self.user,
            "status": self.status(),
        });
        if let Some(e) = &self.exitstatus {
            v["exitstatus"] = e.clone().into();
        }
        v
    }

    /// An entry of `GET /nodes/{node}/tasks`.
    pub fn list_json(&self) -> serde_json::Value {
        let mut v = serde_json::json!({
            "upid": self.upid,
            "node": self.node,
            "pid": self.pid,
            "pstart": self.pstart,
            "starttime": self.starttime,
            "type": self.kind,
            "id": self.id,
            "user": self.user,
        });
        if let Some(e) = &self.exitstatus {
            v["status"] = e.clone().into();
        }
        if let Some(t) = self.endtime {
            v["endtime"] = t.into();
        }
        v
    }
}

pub(crate) fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// The first lines PVE's workers print, so logs look like real ones.
pub(super) fn first_log_lines(kind: &str, id: &str) -> Vec<String> {
    match kind {
        "vzcreate" => vec![
            format!("  Logical volume \"vm-{id}-disk-0\" created."),
            "Creating filesystem with 2097152 4k blocks and 524288 inodes".to_owned(),
            "extracting archive '/var/lib/vz/template/cache/debian-12-standard_12.7-1_amd64.tar.zst'".to_owned(),
            "Total bytes read: 520980480 (497MiB, 211MiB/s)".to_owned(),
            "Detected container architecture: amd64".to_owned(),
        ],
        "resize" => vec![format!("  Size of logical volume pve/vm-{id}-disk-0 changed.")],
        "vzdestroy" => vec![format!("  Logical volume \"vm-{id}-disk-0\" successfully removed.")],
        "hastart" => vec![format!("Requesting HA start for CT {id}")],
        "hastop" => vec![format!("Requesting HA stop for CT {id}")],
        _ => Vec::new(),
    }
}
