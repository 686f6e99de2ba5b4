//! The whole simulated cluster: its config, CTs by vmid, HA resources,
//! tasks, request log and faults; a task started (its UPID) and ended (its
//! effect applied, or a failed one undone).

use std::collections::BTreeMap;
use std::time::Instant;

use super::task::{first_log_lines, unix_now};
use super::{
    ContainerView, Ct, Effect, FaultState, HaResourceView, HaResources, Power, RequestLog, Task,
};
use crate::{NodeSpec, SimConfig};

/// The whole simulated cluster.
#[derive(Debug)]
pub(crate) struct State {
    pub cfg: SimConfig,
    pub cts: BTreeMap<u32, Ct>,
    /// HA resources by sid (`ct:105`).
    pub ha: HaResources,
    pub tasks: Vec<Task>,
    pub requests: Vec<RequestLog>,
    pub faults: FaultState,
    next_pid: u32,
    boot: Instant,
    /// Seconds the nodes had been up when the simulator started.
    uptime_base: u64,
}

/// What a restarted simulator keeps: the containers, the HA resources and
/// the pid counter (tasks in flight are lost, as a rebooted node loses
/// them). State files written before HA was simulated have no `ha`.
#[derive(serde::Serialize, serde::Deserialize)]
struct Kept {
    cts: BTreeMap<u32, Ct>,
    #[serde(default)]
    ha: HaResources,
    next_pid: u32,
}

impl State {
    /// Reads the state file, when there is one and it exists.
    pub fn load(&mut self) -> std::io::Result<()> {
        let Some(path) = &self.cfg.state_file else {
            return Ok(());
        };
        let text = match std::fs::read(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(e),
        };
        let kept: Kept = serde_json::from_slice(&text).map_err(|e| {
            std::io::Error::other(format!("{}: not a pve-sim state: {e}", path.display()))
        })?;
        self.cts = kept.cts;
        self.ha = kept.ha;
        for ct in self.cts.values_mut() {
            if ct.power == Power::Running {
                ct.started = Some(Instant::now());
            }
        }
        self.next_pid = kept.next_pid;
        Ok(())
    }

    /// Writes the state file (to a temporary file renamed over it, so a
    /// crash leaves the old state or the new one), when there is one.
    pub fn save(&self) {
        let Some(path) = &self.cfg.state_file else {
            return;
        };
        let kept = Kept {
            cts: self.cts.clone(),
            ha: self.ha.clone(),
            next_pid: self.next_pid,
        };
        let tmp = path.with_extension("tmp");
        let written = serde_json::to_vec(&kept)
            .map_err(std::io::Error::other)
            .and_then(|json| std::fs::write(&tmp, json))
            .and_then(|()| std::fs::rename(&tmp, path));
        if let Err(e) = written {
            tracing::error!(path = %path.display(), error = %e, "cannot save the simulator's state");
        }
    }

    pub fn new(cfg: SimConfig) -> Self {
        let d = cfg.task_duration;
        State {
            cfg,
            cts: BTreeMap::new(),
            ha: BTreeMap::new(),
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

    pub fn ha_views(&self) -> Vec<HaResourceView> {
        self.ha
            .iter()
            .map(|(sid, r)| HaResourceView {
                sid: sid.clone(),
                kind: r.kind.clone(),
                state: r.state().map(str::to_owned),
                options: r.opts.clone(),
            })
            .collect()
    }

    /// `PVE::HA::Config::vm_is_ha_managed`: an HA resource for the guest
    /// whose state is not `ignored` (ignored ones behave as unmanaged).
    pub fn ha_managed(&self, vmid: u32) -> bool {
        ["ct", "vm"].iter().any(|t| {
            self.ha
                .get(&format!("{t}:{vmid}"))
                .is_some_and(|r| r.state() != Some("ignored"))
        })
    }

    /// Sets the requested state of CT `vmid`'s HA resource, if it has one
    /// (what `ha-manager set --state` and the CRM's `stop` command do).
    fn set_ha_state(&mut self, vmid: u32, state: &str) {
        if let Some(r) = self.ha.get_mut(&format!("ct:{vmid}")) {
            r.opts.insert("state".to_owned(), state.to_owned());
        }
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
            Effect::HaStart => {
                ct.power = Power::Running;
                ct.started = Some(Instant::now());
                self.set_ha_state(vmid, "started");
            }
            Effect::HaStop => {
                ct.power = Power::Stopped;
                ct.started = None;
                self.set_ha_state(vmid, "stopped");
            }
            Effect::Reboot => {
                ct.started = Some(Instant::now());
            }
            Effect::Destroy { purge } => {
                self.cts.remove(&vmid);
                self.faults.addresses.remove(&vmid);
                if *purge {
                    self.ha.remove(&format!("ct:{vmid}"));
                }
            }
            Effect::Resize { disk, value } => {
                ct.config.insert(disk.clone(), value.clone());
                ct.config.remove("lock");
            }
        }
        Ok(())
    }
}
