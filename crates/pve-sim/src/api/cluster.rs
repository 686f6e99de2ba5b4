//! The node and cluster endpoints: `GET /version`, `/nodes`,
//! `/nodes/{node}/status`, `/cluster/resources` and `/cluster/nextid` (the
//! next free vmid), with the node and CT entries they list.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use super::{Params, Res, data, fail, param_exc};
use crate::model::{Ct, Power, State};

pub(super) fn version(st: &State) -> Res {
    let release = st
        .cfg
        .version
        .splitn(3, '.')
        .take(2)
        .collect::<Vec<_>>()
        .join(".");
    data(json!({ "version": st.cfg.version, "release": release, "repoid": REPOID }))
}

/// A pve-manager git commit id prefix, like `GET /version`'s.
const REPOID: &str = "7b0f5a9c1d2e3f40";

/// Memory a running CT uses in the simulation: an eighth of its maximum.
fn ct_mem(ct: &Ct) -> u64 {
    if ct.power == Power::Running {
        ct.maxmem() / 8
    } else {
        0
    }
}

fn node_mem(st: &State, node: &str) -> u64 {
    (2u64 << 30)
        + st.cts
            .values()
            .filter(|c| c.node == node)
            .map(ct_mem)
            .sum::<u64>()
}

fn node_disk(st: &State, node: &str) -> u64 {
    (8u64 << 30)
        + st.cts
            .values()
            .filter(|c| c.node == node)
            .map(Ct::maxdisk)
            .sum::<u64>()
}

fn node_entry(st: &State, name: &str) -> Value {
    let Some(n) = st.node(name) else {
        return Value::Null;
    };
    if st.faults.unreachable.contains(name) {
        return json!({ "id": format!("node/{name}"), "type": "node", "node": name, "status": "offline" });
    }
    json!({
        "id": format!("node/{name}"),
        "type": "node",
        "node": name,
        "status": "online",
        "level": "",
        "cpu": 0.0312,
        "maxcpu": n.maxcpu,
        "mem": node_mem(st, name),
        "maxmem": n.maxmem,
        "disk": node_disk(st, name),
        "maxdisk": n.maxdisk,
        "uptime": st.uptime(),
        "ssl_fingerprint": SSL_FINGERPRINT,
    })
}

const SSL_FINGERPRINT: &str = "5E:3A:91:0C:7D:22:B4:6F:18:A0:C9:33:E5:71:8D:04:BF:62:19:AA:D7:4E:0B:93:2C:F8:65:1E:7A:C0:3D:58";

pub(super) fn nodes(st: &State) -> Res {
    data(
        st.cfg
            .nodes
            .iter()
            .map(|n| node_entry(st, &n.name))
            .collect(),
    )
}

pub(super) fn node_status(st: &State, p: &Params) -> Res {
    let name = p.get("node").map_or("", String::as_str);
    let Some(n) = st.node(name) else {
        return Err(fail(format!("no such node '{name}'")));
    };
    let mem = node_mem(st, name);
    let disk = node_disk(st, name);
    let version = &st.cfg.version;
    data(json!({
        "cpu": 0.0312,
        "wait": 0.0004,
        "idle": 0,
        "uptime": st.uptime(),
        "loadavg": ["0.21", "0.18", "0.12"],
        "kversion": "Linux 6.17.2-1-pve #1 SMP PREEMPT_DYNAMIC PMX 6.17.2-1 (2025-10-21T11:55Z) x86_64",
        "current-kernel": {
            "sysname": "Linux",
            "release": "6.17.2-1-pve",
            "version": "#1 SMP PREEMPT_DYNAMIC PMX 6.17.2-1 (2025-10-21T11:55Z)",
            "machine": "x86_64",
        },
        "boot-info": { "mode": "efi", "secureboot": 0 },
        "pveversion": format!("pve-manager/{version}/{REPOID}"),
        "cpuinfo": {
            "cpus": n.maxcpu,
            "cores": n.maxcpu / 2,
            "sockets": 1,
            "model": "AMD EPYC 7313P 16-Core Processor",
            "mhz": "3000.000",
            "hvm": "1",
            "flags": "fpu vme de pse tsc msr pae mce cx8 apic",
            "user_hz": 100,
        },
        "memory": { "total": n.maxmem, "used": mem, "free": n.maxmem.saturating_sub(mem), "available": n.maxmem.saturating_sub(mem) },
        "swap": { "total": 8u64 << 30, "used": 0, "free": 8u64 << 30 },
        "rootfs": { "total": 100u64 << 30, "used": 8u64 << 30, "free": 92u64 << 30, "avail": 87u64 << 30 },
        "ksm": { "shared": 0 },
        "maxdisk": n.maxdisk,
        "disk": disk,
    }))
}

/// An LXC entry of `/cluster/resources` or `/nodes/{node}/lxc`.
pub(super) fn ct_entry(st: &State, ct: &Ct, cluster: bool) -> Value {
    let unknown = st.faults.unreachable.contains(&ct.node);
    let mut v = json!({
        "vmid": ct.vmid,
        "name": ct.config.get("hostname").cloned().unwrap_or_else(|| format!("CT{}", ct.vmid)),
        "status": if unknown { "unknown" } else { ct.status() },
        "type": "lxc",
        "maxmem": ct.maxmem(),
        "maxdisk": ct.maxdisk(),
        "mem": ct_mem(ct),
        "disk": if ct.power == Power::Running {
            st.faults.disk_used.get(&ct.vmid).copied().unwrap_or(ct.maxdisk() / 10)
        } else {
            0
        },
        "cpu": if ct.power == Power::Running { 0.0021 } else { 0.0 },
        "uptime": ct.uptime(),
        "netin": 0,
        "netout": 0,
        "diskread": 0,
        "diskwrite": 0,
    });
    if cluster {
        v["id"] = format!("lxc/{}", ct.vmid).into();
        v["node"] = ct.node.clone().into();
        v["maxcpu"] = ct.cpus().into();
        v["template"] = 0.into();
    } else {
        v["cpus"] = ct.cpus().into();
        v["maxswap"] = ct.maxswap().into();
    }
    if let Some(tags) = ct.config.get("tags") {
        v["tags"] = tags.clone().into();
    }
    if let Some(lock) = ct.lock() {
        v["lock"] = lock.into();
    }
    if cluster && let Some(r) = st.ha.get(&format!("ct:{}", ct.vmid)) {
        v["hastate"] = r.effective_state().into();
    }
    v
}

pub(super) fn resources(st: &State, p: &Params) -> Res {
    let ty = p.get("type").map(String::as_str);
    let mut out = Vec::new();
    if matches!(ty, None | Some("node")) {
        out.extend(st.cfg.nodes.iter().map(|n| node_entry(st, &n.name)));
    }
    if matches!(ty, None | Some("storage")) {
        for n in &st.cfg.nodes {
            if st.faults.unreachable.contains(&n.name) {
                continue;
            }
            out.push(json!({
                "id": format!("storage/{}/local", n.name), "type": "storage", "storage": "local",
                "node": n.name, "status": "available", "plugintype": "dir", "shared": 0,
                "content": "vztmpl,iso,backup", "maxdisk": 100u64 << 30, "disk": 8u64 << 30,
            }));
            if n.storage != "local" {
                out.push(json!({
                    "id": format!("storage/{}/{}", n.name, n.storage), "type": "storage",
                    "storage": n.storage, "node": n.name, "status": "available",
                    "plugintype": "lvmthin", "shared": 0, "content": "rootdir,images",
                    "maxdisk": n.maxdisk, "disk": node_disk(st, &n.name),
                }));
            }
        }
    }
    if matches!(ty, None | Some("vm")) {
        out.extend(st.cts.values().map(|ct| ct_entry(st, ct, true)));
    }
    data(Value::Array(out))
}

/// `/cluster/nextid` answers the id as a JSON string on the wire (the
/// schema says integer; clients such as proxmox-api-go parse a string).
pub(super) fn nextid(st: &mut State, p: &Params) -> Res {
    if let Some(v) = p.get("vmid") {
        let id: u32 = v.parse().unwrap_or(0);
        if st.cts.contains_key(&id) {
            return Err(param_exc("vmid", &format!("VM {id} already exists")));
        }
        return data(Value::String(id.to_string()));
    }
    let id = st.next_free_vmid();
    if st.faults.take_next_id {
        st.faults.take_next_id = false;
        let node = st
            .cfg
            .nodes
            .first()
            .map(|n| (n.name.clone(), n.storage.clone()));
        if let Some((node, storage)) = node {
            let mut config = BTreeMap::new();
            config.insert("arch".into(), "amd64".into());
            config.insert("hostname".into(), format!("racer-{id}"));
            config.insert("ostype".into(), "debian".into());
            config.insert("rootfs".into(), format!("{storage}:vm-{id}-disk-0,size=4G"));
            config.insert("unprivileged".into(), "1".into());
            st.cts.insert(
                id,
                Ct {
                    node,
                    vmid: id,
                    power: Power::Stopped,
                    started: None,
                    config,
                },
            );
        }
    }
    data(Value::String(id.to_string()))
}
