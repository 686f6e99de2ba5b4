//! The snapshots the simulator hands to tests: a container, an HA
//! resource, a task, and one request it received.

use crate::ConfigMap;

/// A snapshot of one container.
#[derive(Debug, Clone)]
pub struct ContainerView {
    /// The node it lives on.
    pub node: String,
    /// Its id.
    pub vmid: u32,
    /// `running` or `stopped`.
    pub status: String,
    /// The config lock (`create`, `disk`, `destroyed`…), if any.
    pub lock: Option<String>,
    /// Its tags, as stored (sorted, unique).
    pub tags: Vec<String>,
    /// The config file's keys and values (`lock` included, `digest` not).
    pub config: ConfigMap,
}

/// A snapshot of one HA resource (`/etc/pve/ha/resources.cfg`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HaResourceView {
    /// Its id, `ct:105`.
    pub sid: String,
    /// Its type, `ct` (or `vm`).
    pub kind: String,
    /// The requested state as configured (`started`, `stopped`, `enabled`,
    /// `disabled`, `ignored`); `None` when it was added without one, which
    /// PVE reads as `started`.
    pub state: Option<String>,
    /// Every option as stored (`state`, `comment`, `failback`,
    /// `max_restart`, `max_relocate`), values as given.
    pub options: ConfigMap,
}

/// A snapshot of one task.
#[derive(Debug, Clone)]
pub struct TaskView {
    /// The UPID.
    pub upid: String,
    /// The node it runs on.
    pub node: String,
    /// Its type: `vzcreate`, `vzstart`, `vzstop`, `vzshutdown`, `vzreboot`,
    /// `vzdestroy`, `resize`.
    pub kind: String,
    /// Its id (the vmid).
    pub id: String,
    /// `running` or `stopped`.
    pub status: String,
    /// `OK`, `WARNINGS: n` or the error, once stopped.
    pub exitstatus: Option<String>,
}

/// One request the simulator received.
#[derive(Debug, Clone)]
pub struct RequestLog {
    /// HTTP method.
    pub method: String,
    /// The full path, e.g. `/api2/json/nodes/pve1/lxc`.
    pub path: String,
    /// The parameters the client sent (query string, then body), in order.
    pub params: Vec<(String, String)>,
    /// The HTTP status answered (or that would have been, for a dropped one).
    pub status: u16,
}
