//! The simulated endpoints. Parameters arrive verified against the schema;
//! the messages of the checks here are PVE's (pve-container `API2/LXC.pm`,
//! `API2/LXC/Status.pm`, `API2/LXC/Config.pm`, pve-ha-manager
//! `API2/HA/Resources.pm`, pve-cluster, pve-manager).

mod cluster;
mod config;
mod ha;
mod lxc;
mod storage;
mod tasks;

use std::collections::BTreeMap;

use serde_json::{Value, json};

use crate::model::{Ct, State};
use crate::server::Reply;
use cluster::{nextid, node_status, nodes, resources, version};
use config::{get_config, put_config};
use ha::{ha_create, ha_delete, ha_list, ha_read};
use lxc::{create, destroy, interfaces, lxc_list, power, status_current};
use storage::resize;
use tasks::{task_list, task_log, task_status};

/// What an endpoint answers.
pub(crate) enum Answer {
    /// `{"data": …}` plus top-level attributes, and the tasks it started.
    Data {
        data: Value,
        extra: BTreeMap<String, Value>,
        tasks: Vec<String>,
    },
    /// An error reply.
    Error(Reply),
    /// In the schema, but not simulated: 501.
    NotSimulated,
}

type Params = BTreeMap<String, String>;
type Res = Result<Answer, Reply>;

fn data(v: Value) -> Res {
    Ok(Answer::Data {
        data: v,
        extra: BTreeMap::new(),
        tasks: Vec::new(),
    })
}

fn task(upid: String) -> Res {
    Ok(Answer::Data {
        data: Value::String(upid.clone()),
        extra: BTreeMap::new(),
        tasks: vec![upid],
    })
}

fn fail(msg: impl AsRef<str>) -> Reply {
    Reply::error(500, msg.as_ref())
}

/// A 400 `Parameter verification failed.` raised by a handler
/// (`raise_param_exc`).
fn param_exc(name: &str, msg: &str) -> Reply {
    let mut r = Reply::error(400, "Parameter verification failed.");
    if let Some(body) = r.body.as_mut() {
        body["errors"] = json!({ name: msg });
    }
    r
}

fn flag(p: &Params, name: &str) -> bool {
    p.get(name).is_some_and(|v| v == "1")
}

pub(crate) fn dispatch(
    st: &mut State,
    method: &str,
    template: &str,
    p: &Params,
    user: &str,
) -> Answer {
    let res = match (method, template) {
        ("GET", "/version") => version(st),
        ("GET", "/nodes") => nodes(st),
        ("GET", "/nodes/{node}/status") => node_status(st, p),
        ("GET", "/cluster/resources") => resources(st, p),
        ("GET", "/cluster/nextid") => nextid(st, p),
        ("GET", "/nodes/{node}/lxc") => lxc_list(st, p),
        ("POST", "/nodes/{node}/lxc") => create(st, p, user),
        ("GET", "/nodes/{node}/lxc/{vmid}/config") => get_config(st, p),
        ("PUT", "/nodes/{node}/lxc/{vmid}/config") => put_config(st, p),
        ("PUT", "/nodes/{node}/lxc/{vmid}/resize") => resize(st, p, user),
        ("GET", "/nodes/{node}/lxc/{vmid}/status/current") => status_current(st, p),
        ("GET", "/nodes/{node}/lxc/{vmid}/interfaces") => interfaces(st, p),
        ("POST", "/nodes/{node}/lxc/{vmid}/status/start") => power(st, p, user, "vzstart"),
        ("POST", "/nodes/{node}/lxc/{vmid}/status/stop") => power(st, p, user, "vzstop"),
        ("POST", "/nodes/{node}/lxc/{vmid}/status/shutdown") => power(st, p, user, "vzshutdown"),
        ("POST", "/nodes/{node}/lxc/{vmid}/status/reboot") => power(st, p, user, "vzreboot"),
        ("DELETE", "/nodes/{node}/lxc/{vmid}") => destroy(st, p, user),
        ("GET", "/cluster/ha/resources") => ha_list(st, p),
        ("POST", "/cluster/ha/resources") => ha_create(st, p),
        ("GET", "/cluster/ha/resources/{sid}") => ha_read(st, p),
        ("DELETE", "/cluster/ha/resources/{sid}") => ha_delete(st, p),
        ("GET", "/nodes/{node}/tasks") => task_list(st, p),
        ("GET", "/nodes/{node}/tasks/{upid}/status") => task_status(st, p),
        ("GET", "/nodes/{node}/tasks/{upid}/log") => task_log(st, p),
        _ => Ok(Answer::NotSimulated),
    };
    res.unwrap_or_else(Answer::Error)
}

fn vmid_of(p: &Params) -> u32 {
    p.get("vmid").and_then(|v| v.parse().ok()).unwrap_or(0)
}

/// `PVE::LXC::Config->load_config`: the CT must be on this node.
fn load<'a>(st: &'a mut State, p: &Params) -> Result<&'a mut Ct, Reply> {
    let node = p.get("node").cloned().unwrap_or_default();
    let vmid = vmid_of(p);
    match st.cts.get_mut(&vmid) {
        Some(ct) if ct.node == node => Ok(ct),
        _ => Err(fail(format!(
            "Configuration file 'nodes/{node}/lxc/{vmid}.conf' does not exist"
        ))),
    }
}

/// The lock-contention fault: the call fails as while vzdump holds the CT.
fn contention(st: &mut State, vmid: u32) -> Result<(), Reply> {
    if let Some(n) = st.faults.contention.get_mut(&vmid)
        && *n > 0
    {
        *n -= 1;
        return Err(fail("CT is locked (backup)"));
    }
    Ok(())
}

/// `PVE::LXC::Config->check_lock`.
fn check_lock(ct: &Ct) -> Result<(), Reply> {
    match ct.lock() {
        Some(lock) => Err(fail(format!("CT is locked ({lock})"))),
        None => Ok(()),
    }
}
