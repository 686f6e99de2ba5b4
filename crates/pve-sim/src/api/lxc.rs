//! The LXC container life cycle: list a node's CTs, create one
//! (`vzcreate`), its current status and network interfaces,
//! start/stop/shutdown/reboot (`hastart`/`hastop` for an HA-managed CT), and
//! destroy (`vzdestroy`). A change answers the UPID of the task that makes
//! it.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use super::cluster::ct_entry;
use super::config::{is_config_key, set_option};
use super::{Params, Res, check_lock, contention, data, fail, flag, load, task, vmid_of};
use crate::model::{Ct, Effect, Power, State, interfaces as ct_interfaces};

pub(super) fn lxc_list(st: &State, p: &Params) -> Res {
    let node = p.get("node").map_or("", String::as_str);
    data(
        st.cts
            .values()
            .filter(|c| c.node == node)
            .map(|c| ct_entry(st, c, false))
            .collect(),
    )
}

/// `POST /nodes/{node}/lxc`: the config exists at once with `lock: create`;
/// the `vzcreate` task finishes it (or removes it when it fails).
pub(super) fn create(st: &mut State, p: &Params, user: &str) -> Res {
    let node = p.get("node").cloned().unwrap_or_default();
    let vmid = vmid_of(p);
    contention(st, vmid)?;
    if let Some(other) = st.cts.get(&vmid) {
        return Err(fail(format!(
            "CT {vmid} already exists on node '{}'",
            other.node
        )));
    }
    let ostemplate = p.get("ostemplate").cloned().unwrap_or_default();
    let spec = st.node(&node).cloned();
    if !spec.is_some_and(|n| n.templates.contains(&ostemplate)) {
        return Err(fail(format!("volume '{ostemplate}' does not exist")));
    }
    let mut cfg = BTreeMap::new();
    cfg.insert("arch".to_owned(), "amd64".to_owned());
    cfg.insert("ostype".to_owned(), ostype_of(&ostemplate).to_owned());
    cfg.insert("unprivileged".to_owned(), "1".to_owned());
    let storage = p
        .get("storage")
        .cloned()
        .unwrap_or_else(|| "local".to_owned());
    let rootfs = p
        .get("rootfs")
        .cloned()
        .unwrap_or_else(|| format!("{storage}:4"));
    let mut disk_no = 0;
    set_option(st, &node, vmid, &mut cfg, "rootfs", &rootfs, &mut disk_no)?;
    for (k, v) in p {
        if k != "rootfs" && is_config_key(k) {
            set_option(st, &node, vmid, &mut cfg, k, v, &mut disk_no)?;
        }
    }
    cfg.insert("lock".to_owned(), "create".to_owned());
    st.cts.insert(
        vmid,
        Ct {
            node: node.clone(),
            vmid,
            power: Power::Stopped,
            started: None,
            config: cfg,
        },
    );
    let start = flag(p, "start");
    task(st.begin_task(
        &node,
        "vzcreate",
        &vmid.to_string(),
        user,
        Effect::Create { start },
    ))
}

fn ostype_of(template: &str) -> &'static str {
    let name = template.rsplit('/').next().unwrap_or("");
    [
        "debian",
        "ubuntu",
        "alpine",
        "centos",
        "fedora",
        "archlinux",
        "devuan",
        "opensuse",
        "gentoo",
        "nixos",
    ]
    .into_iter()
    .find(|os| name.starts_with(os))
    .unwrap_or("unmanaged")
}

/// `GET …/status/current`; `ha` as `PVE::HA::Config::get_service_status`
/// gives it (`managed`, and the requested `state` of a managed one).
pub(super) fn status_current(st: &mut State, p: &Params) -> Res {
    let ct = load(st, p)?.clone();
    let mut v = ct_entry(st, &ct, false);
    v["ha"] = match st.ha.get(&format!("ct:{}", ct.vmid)) {
        Some(r) => json!({ "managed": 1, "state": r.effective_state() }),
        None => json!({ "managed": 0 }),
    };
    data(v)
}

/// `GET …/interfaces` (`PVE::LXC::get_interfaces`): PVE runs `lxc-info` on
/// the node to find the CT's init and reads `ip --json addr` in its network
/// namespace. It checks no config: when `lxc-info` finds no running CT of
/// that id on this node (stopped, elsewhere, or no such CT) the error is
/// swallowed and the answer is `{"data":null}`.
pub(super) fn interfaces(st: &State, p: &Params) -> Res {
    let node = p.get("node").map_or("", String::as_str);
    let vmid = vmid_of(p);
    match st.cts.get(&vmid) {
        Some(ct) if ct.node == node && ct.power == Power::Running => {
            // A test's chosen address, else the simulated app's loopback
            // address (with AppSim), else net0's own.
            let chosen = st.faults.addresses.get(&vmid).copied().or_else(|| {
                st.cfg
                    .app
                    .map(|a| Some((crate::apps::app_address(a.net, vmid), 8)))
            });
            data(ct_interfaces(ct, chosen))
        }
        _ => data(Value::Null),
    }
}

/// start/stop/shutdown/reboot: the running-state checks answer at once
/// (`CT 105 already running`, `CT 105 not running`, and reboot's own `VM 105
/// not running`); the lock check runs inside the worker, so a locked CT
/// gives a task that fails with `CT is locked (…)`, as in PVE. For an
/// HA-managed CT, start, stop and shutdown hand over to the HA stack
/// (pve-container `API2/LXC/Status.pm`): a `hastart` / `hastop` task that
/// takes no lock.
pub(super) fn power(st: &mut State, p: &Params, user: &str, kind: &str) -> Res {
    contention(st, vmid_of(p))?;
    let ct = load(st, p)?.clone();
    let vmid = ct.vmid;
    let running = ct.power == Power::Running;
    let ha = st.ha_managed(vmid);
    let (kind, effect) = match kind {
        "vzstart" if running => return Err(fail(format!("CT {vmid} already running"))),
        "vzstart" if ha => ("hastart", Effect::HaStart),
        "vzstart" => (kind, Effect::Start),
        "vzreboot" if !running => return Err(fail(format!("VM {vmid} not running"))),
        "vzreboot" => (kind, Effect::Reboot),
        _ if !running => return Err(fail(format!("CT {vmid} not running"))),
        _ if ha => ("hastop", Effect::HaStop),
        _ => (kind, Effect::Stop),
    };
    let upid = st.begin_task(&ct.node, kind, &vmid.to_string(), user, effect);
    if matches!(kind, "vzstart" | "vzstop" | "vzshutdown")
        && let Some(lock) = ct.lock().filter(|l| *l != "mounted")
        && let Some(t) = st.tasks.iter_mut().find(|t| t.upid == upid)
    {
        t.doom
            .get_or_insert_with(|| format!("CT is locked ({lock})"));
    }
    task(upid)
}

/// `DELETE /nodes/{node}/lxc/{vmid}`: protection, lock, then HA (a CT
/// that is an HA resource, whatever its state, is destroyed only with
/// `purge=1`, which removes the resource when the task ends well), then
/// running.
pub(super) fn destroy(st: &mut State, p: &Params, user: &str) -> Res {
    contention(st, vmid_of(p))?;
    let ct = load(st, p)?.clone();
    let vmid = ct.vmid;
    if ct.config.get("protection").is_some_and(|v| v == "1") {
        return Err(fail(format!(
            "can't remove CT {vmid} - protection mode enabled"
        )));
    }
    check_lock(&ct)?;
    let purge = flag(p, "purge");
    if !purge && st.ha.contains_key(&format!("ct:{vmid}")) {
        return Err(fail(format!(
            "unable to remove CT {vmid} - used in HA resources and purge parameter not set."
        )));
    }
    if ct.power == Power::Running && !flag(p, "force") {
        return Err(fail(format!("CT {vmid} is running - destroy failed")));
    }
    if let Some(c) = st.cts.get_mut(&vmid) {
        c.config.insert("lock".to_owned(), "destroyed".to_owned());
        if c.power == Power::Running {
            c.power = Power::Stopped;
            c.started = None;
        }
    }
    task(st.begin_task(
        &ct.node,
        "vzdestroy",
        &vmid.to_string(),
        user,
        Effect::Destroy { purge },
    ))
}
