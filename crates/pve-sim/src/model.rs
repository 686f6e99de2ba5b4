//! The simulated cluster: containers, tasks, faults and the request log.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt::Write as _;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use sha1::{Digest, Sha1};

use crate::{ConfigMap, NodeSpec, SimConfig};

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

#[derive(Debug)]
pub(crate) struct DropRule {
    pub method: String,
    pub suffix: String,
}

#[derive(Debug)]
pub(crate) struct FaultState {
    pub task_duration: Duration,
    pub fail_next: HashMap<String, String>,
    pub timeout_next: BTreeSet<String>,
    pub unreachable: BTreeSet<String>,
    pub contention: HashMap<u32, u32>,
    pub drops: Vec<DropRule>,
    pub delays: Vec<(DropRule, std::time::Duration)>,
    pub take_next_id: bool,
}

impl FaultState {
    pub fn new(task_duration: Duration) -> Self {
        FaultState {
            task_duration,
            fail_next: HashMap::new(),
            timeout_next: BTreeSet::new(),
            unreachable: BTreeSet::new(),
            contention: HashMap::new(),
            drops: Vec::new(),
            delays: Vec::new(),
            take_next_id: false,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Power {
    Running,
    Stopped,
}

#[derive(Debug, Clone)]
pub(crate) struct Ct {
    pub node: String,
    pub vmid: u32,
    pub power: Power,
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
        let hash = Sha1::digest(text.as_bytes());
        hash.iter().fold(String::with_capacity(40), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
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

/// What a task does to its container when it ends well.
#[derive(Debug, Clone)]
pub(crate) enum Effect {
    /// Create: drop the `create` lock; start the CT when asked to.
    Create {
        start: bool,
    },
    Start,
    Stop,
    Reboot,
    Destroy,
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

/// The whole simulated cluster.
#[derive(Debug)]
pub(crate) struct State {
    pub cfg: SimConfig,
    pub cts: BTreeMap<u32, Ct>,
    pub tasks: Vec<Task>,
    pub requests: Vec<RequestLog>,
    pub faults: FaultState,
    next_pid: u32,
    boot: Instant,
    /// Seconds the nodes had been up when the simulator started.
    uptime_base: u64,
}

impl State {
    pub fn new(cfg: SimConfig) -> Self {
        let d = cfg.task_duration;
        State {
            cfg,
            cts: BTreeMap::new(),
            tasks: Vec::new(),
            requests: Vec::new(),
            faults: FaultState::new(d),
            next_pid: 0x0000_A1B2,
            boot: Instant::now(),
            uptime_base: 3 * 86_400 + 4_321,
        }
    }

    pub fn node(&self, name: &str) -> Option<&NodeSpec> {
        self.cfg.nodes.iter().find(|n| n.name == name)
    }

    pub fn uptime(&self) -> u64 {
        self.uptime_base + self.boot.elapsed().as_secs()
    }

    pub fn container_views(&self) -> Vec<ContainerView> {
        self.cts.values().map(Ct::view).collect()
    }

    /// The lowest free vmid from 100 (PVE's default `next-id` range).
    pub fn next_free_vmid(&self) -> u32 {
        (100..).find(|id| !self.cts.contains_key(id)).unwrap_or(100)
    }

    /// Starts a task on `node` and returns its UPID. The caller schedules
    /// [`State::finish_task`] after the current task duration.
    pub fn begin_task(
        &mut self,
        node: &str,
        kind: &str,
        id: &str,
        user: &str,
        effect: Effect,
    ) -> String {
        let pid = self.next_pid;
        self.next_pid = self.next_pid.wrapping_add(0x3D);
        // pstart: the process start in clock ticks (100 Hz) since boot.
        let pstart = (self.uptime_base * 100) + self.boot.elapsed().as_millis() as u64 / 10;
        let starttime = unix_now();
        let upid =
            format!("UPID:{node}:{pid:08X}:{pstart:08X}:{starttime:08X}:{kind}:{id}:{user}:");
        let doom = if let Some(e) = self.faults.fail_next.remove(node) {
            Some(e)
        } else if self.faults.timeout_next.remove(node) {
            Some(format!(
                "can't lock file '/run/lock/lxc/pve-config-{id}.lock' - got timeout"
            ))
        } else {
            None
        };
        let log = first_log_lines(kind, id);
        self.tasks.push(Task {
            upid: upid.clone(),
            node: node.to_owned(),
            kind: kind.to_owned(),
            id: id.to_owned(),
            user: user.to_owned(),
            pid,
            pstart,
            starttime,
            endtime: None,
            exitstatus: None,
            log,
            effect,
            doom,
        });
        upid
    }

    /// Ends a task: applies its effect, or its failure, and logs the outcome.
    pub fn finish_task(&mut self, upid: &str) {
        let Some(idx) = self.tasks.iter().position(|t| t.upid == upid) else {
            return;
        };
        let task = self.tasks[idx].clone();
        if task.exitstatus.is_some() {
            return;
        }
        let vmid: u32 = task.id.parse().unwrap_or(0);
        let outcome = match task.doom.clone() {
            Some(err) => Err(err),
            None => self.apply(vmid, &task),
        };
        let (exit, line) = match outcome {
            Ok(()) => ("OK".to_owned(), "TASK OK".to_owned()),
            Err(err) => {
                self.undo_failed(vmid, &task.effect);
                let line = format!("TASK ERROR: {err}");
                (err, line)
            }
        };
        if let Some(t) = self.tasks.get_mut(idx) {
            t.log.push(line);
            t.exitstatus = Some(exit);
            t.endtime = Some(unix_now());
        }
    }

    /// What a failed task leaves behind: a failed create removes the CT (PVE
    /// destroys the half-made volume and config); other kinds drop their lock.
    fn undo_failed(&mut self, vmid: u32, effect: &Effect) {
        match effect {
            Effect::Create { .. } => {
                self.cts.remove(&vmid);
            }
            _ => {
                if let Some(ct) = self.cts.get_mut(&vmid)
                    && matches!(ct.lock(), Some("disk" | "destroyed"))
                {
                    ct.config.remove("lock");
                }
            }
        }
    }

    fn apply(&mut self, vmid: u32, task: &Task) -> Result<(), String> {
        let Some(ct) = self.cts.get_mut(&vmid) else {
            return Err(format!(
                "Configuration file 'nodes/{}/lxc/{vmid}.conf' does not exist",
                task.node
            ));
        };
        match &task.effect {
            Effect::Create { start } => {
                ct.config.remove("lock");
                if *start {
                    ct.power = Power::Running;
                    ct.started = Some(Instant::now());
                }
            }
            Effect::Start => {
                ct.power = Power::Running;
                ct.started = Some(Instant::now());
            }
            Effect::Stop => {
                ct.power = Power::Stopped;
                ct.started = None;
            }
            Effect::Reboot => {
                ct.started = Some(Instant::now());
            }
            Effect::Destroy => {
                self.cts.remove(&vmid);
            }
            Effect::Resize { disk, value } => {
                ct.config.insert(disk.clone(), value.clone());
                ct.config.remove("lock");
            }
        }
        Ok(())
    }
}

/// The first lines PVE's workers print, so logs look like real ones.
fn first_log_lines(kind: &str, id: &str) -> Vec<String> {
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
        _ => Vec::new(),
    }
}
