//! The simulated endpoints. Parameters arrive verified against the schema;
//! the messages of the checks here are PVE's (pve-container `API2/LXC.pm`,
//! `API2/LXC/Status.pm`, `API2/LXC/Config.pm`, pve-cluster, pve-manager).

use std::collections::BTreeMap;

use serde_json::{Value, json};

use crate::model::{Ct, Effect, Power, State, Task};
use crate::schema::{self, format_size, parse_property_string, parse_size};
use crate::server::Reply;

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
        ("POST", "/nodes/{node}/lxc/{vmid}/status/start") => power(st, p, user, "vzstart"),
        ("POST", "/nodes/{node}/lxc/{vmid}/status/stop") => power(st, p, user, "vzstop"),
        ("POST", "/nodes/{node}/lxc/{vmid}/status/shutdown") => power(st, p, user, "vzshutdown"),
        ("POST", "/nodes/{node}/lxc/{vmid}/status/reboot") => power(st, p, user, "vzreboot"),
        ("DELETE", "/nodes/{node}/lxc/{vmid}") => destroy(st, p, user),
        ("GET", "/nodes/{node}/tasks") => task_list(st, p),
        ("GET", "/nodes/{node}/tasks/{upid}/status") => task_status(st, p),
        ("GET", "/nodes/{node}/tasks/{upid}/log") => task_log(st, p),
        _ => Ok(Answer::NotSimulated),
    };
    res.unwrap_or_else(Answer::Error)
}

fn version(st: &State) -> Res {
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

fn nodes(st: &State) -> Res {
    data(
        st.cfg
            .nodes
            .iter()
            .map(|n| node_entry(st, &n.name))
            .collect(),
    )
}

fn node_status(st: &State, p: &Params) -> Res {
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
fn ct_entry(st: &State, ct: &Ct, cluster: bool) -> Value {
    let unknown = st.faults.unreachable.contains(&ct.node);
    let mut v = json!({
        "vmid": ct.vmid,
        "name": ct.config.get("hostname").cloned().unwrap_or_else(|| format!("CT{}", ct.vmid)),
        "status": if unknown { "unknown" } else { ct.status() },
        "type": "lxc",
        "maxmem": ct.maxmem(),
        "maxdisk": ct.maxdisk(),
        "mem": ct_mem(ct),
        "disk": if ct.power == Power::Running { ct.maxdisk() / 10 } else { 0 },
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
    v
}

fn resources(st: &State, p: &Params) -> Res {
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
fn nextid(st: &mut State, p: &Params) -> Res {
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

fn lxc_list(st: &State, p: &Params) -> Res {
    let node = p.get("node").map_or("", String::as_str);
    data(
        st.cts
            .values()
            .filter(|c| c.node == node)
            .map(|c| ct_entry(st, c, false))
            .collect(),
    )
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

/// The config keys: the properties `GET …/config` returns (schema-driven).
fn config_props() -> Option<&'static serde_json::Map<String, Value>> {
    schema::schema()
        .ok()?
        .lookup("GET", "/nodes/x/lxc/100/config")?
        .info?
        .get("returns")?
        .get("properties")?
        .as_object()
}

fn config_prop(key: &str) -> Option<&'static Value> {
    let props = config_props()?;
    props.get(key).or_else(|| schema::indexed_prop(props, key))
}

fn is_config_key(key: &str) -> bool {
    !matches!(key, "digest" | "lock" | "lxc") && config_prop(key).is_some()
}

/// Tags as PVE stores them: unique, sorted, `;`-separated.
fn normalize_tags(v: &str) -> String {
    let mut tags: Vec<&str> = v.split([';', ',', ' ']).filter(|s| !s.is_empty()).collect();
    tags.sort_unstable();
    tags.dedup();
    tags.join(";")
}

/// A `net[n]` value as PVE writes it: `name` first, then the other keys in
/// order, with a generated `hwaddr` (Proxmox's BC:24:11 prefix) and `type`.
fn normalize_net(vmid: u32, key: &str, v: &str) -> String {
    let mut parts: BTreeMap<String, String> =
        parse_property_string("name", v).into_iter().collect();
    let idx: u32 = key.trim_start_matches("net").parse().unwrap_or(0);
    parts.entry("hwaddr".into()).or_insert_with(|| {
        format!(
            "BC:24:11:{:02X}:{:02X}:{:02X}",
            (vmid >> 8) & 0xff,
            vmid & 0xff,
            idx & 0xff
        )
    });
    parts.entry("type".into()).or_insert_with(|| "veth".into());
    let name = parts.remove("name").unwrap_or_default();
    std::iter::once(format!("name={name}"))
        .chain(parts.into_iter().map(|(k, v)| format!("{k}={v}")))
        .collect::<Vec<_>>()
        .join(",")
}

/// Allocates `STORAGE:SIZE_IN_GiB` volumes (`rootfs`, `mp[n]`), as PVE does
/// on create; other volume ids are kept.
fn allocate(
    st: &State,
    node: &str,
    vmid: u32,
    disk_no: &mut u32,
    v: &str,
) -> Result<String, Reply> {
    let mut parts = parse_property_string("volume", v);
    let Some(vol) = parts.iter_mut().find(|(k, _)| k == "volume") else {
        return Ok(v.to_owned());
    };
    let Some((storage, size)) = vol.1.split_once(':') else {
        return Ok(v.to_owned());
    };
    let Ok(gib) = size.parse::<f64>() else {
        return Ok(v.to_owned()); // an existing volume id
    };
    let spec = st.node(node);
    let known = storage == "local" || spec.is_some_and(|n| n.storage == storage);
    if !known {
        return Err(fail(format!("storage '{storage}' does not exist")));
    }
    let n = *disk_no;
    *disk_no += 1;
    vol.1 = if storage == "local" {
        format!("local:{vmid}/vm-{vmid}-disk-{n}.raw")
    } else {
        format!("{storage}:vm-{vmid}-disk-{n}")
    };
    let bytes = (gib * f64::from(1u32 << 30)) as u64;
    parts.retain(|(k, _)| k != "size");
    parts.push(("size".into(), format_size(bytes)));
    Ok(parts
        .into_iter()
        .map(|(k, v)| if k == "volume" { v } else { format!("{k}={v}") })
        .collect::<Vec<_>>()
        .join(","))
}

/// Sets one config option the way PVE stores it.
fn set_option(
    st: &State,
    node: &str,
    vmid: u32,
    cfg: &mut BTreeMap<String, String>,
    key: &str,
    v: &str,
    disk_no: &mut u32,
) -> Result<(), Reply> {
    let value = if key == "tags" {
        normalize_tags(v)
    } else if key.starts_with("net") {
        normalize_net(vmid, key, v)
    } else if key == "rootfs" || key.starts_with("mp") {
        allocate(st, node, vmid, disk_no, v)?
    } else {
        v.to_owned()
    };
    cfg.insert(key.to_owned(), value);
    Ok(())
}

/// `POST /nodes/{node}/lxc`: the config exists at once with `lock: create`;
/// the `vzcreate` task finishes it (or removes it when it fails).
fn create(st: &mut State, p: &Params, user: &str) -> Res {
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

/// `GET …/config`: typed as the schema's `returns` says, plus `digest`.
fn get_config(st: &mut State, p: &Params) -> Res {
    let ct = load(st, p)?;
    let mut out = serde_json::Map::new();
    for (k, v) in &ct.config {
        let ty = config_prop(k)
            .and_then(|s| s.get("type"))
            .and_then(Value::as_str);
        let typed = match ty {
            Some("integer" | "boolean") => v
                .parse::<i64>()
                .map(Value::from)
                .unwrap_or_else(|_| v.clone().into()),
            Some("number") => v
                .parse::<f64>()
                .map(Value::from)
                .unwrap_or_else(|_| v.clone().into()),
            _ => v.clone().into(),
        };
        out.insert(k.clone(), typed);
    }
    out.insert("digest".to_owned(), ct.digest().into());
    data(Value::Object(out))
}

/// `PUT …/config`: applied at once (the simulator keeps no pending
/// section), answers `null`.
fn put_config(st: &mut State, p: &Params) -> Res {
    contention(st, vmid_of(p))?;
    let ct = load(st, p)?.clone();
    check_lock(&ct)?;
    if let Some(d) = p.get("digest")
        && *d != ct.digest()
    {
        return Err(fail(
            "detected modified configuration - file changed by other user? Try again.",
        ));
    }
    let mut cfg = ct.config.clone();
    let deletes: Vec<&str> = p
        .get("delete")
        .map(|d| {
            d.split([',', ';', ' ', '\0'])
                .filter(|s| !s.is_empty())
                .collect()
        })
        .unwrap_or_default();
    for key in &deletes {
        if p.contains_key(*key) {
            return Err(param_exc(
                key,
                "can't set option and delete it at the same time",
            ));
        }
    }
    let mut disk_no = cfg
        .keys()
        .filter(|k| *k == "rootfs" || k.starts_with("mp"))
        .count() as u32;
    for (k, v) in p {
        if is_config_key(k) {
            set_option(st, &ct.node, ct.vmid, &mut cfg, k, v, &mut disk_no)?;
        }
    }
    for key in deletes {
        cfg.remove(key);
    }
    if let Some(c) = st.cts.get_mut(&ct.vmid) {
        c.config = cfg;
    }
    data(Value::Null)
}

/// `PUT …/resize`: `size` absolute or `+`relative; never shrinks.
fn resize(st: &mut State, p: &Params, user: &str) -> Res {
    contention(st, vmid_of(p))?;
    let ct = load(st, p)?.clone();
    check_lock(&ct)?;
    let disk = p.get("disk").cloned().unwrap_or_default();
    let Some(current) = ct.config.get(&disk) else {
        return Err(fail(format!("disk '{disk}' does not exist")));
    };
    let mut parts = parse_property_string("volume", current);
    let size = parts
        .iter()
        .find(|(k, _)| k == "size")
        .and_then(|(_, v)| parse_size(v))
        .unwrap_or(0);
    let req = p.get("size").cloned().unwrap_or_default();
    let (relative, amount) = match req.strip_prefix('+') {
        Some(rest) => (true, rest),
        None => (false, req.as_str()),
    };
    let Some(amount) = parse_size(amount) else {
        return Err(param_exc("size", "unable to parse size"));
    };
    let newsize = if relative { size + amount } else { amount };
    if newsize < size {
        return Err(fail("unable to shrink disk size"));
    }
    if newsize == size {
        return data(Value::Null);
    }
    parts.retain(|(k, _)| k != "size");
    parts.push(("size".to_owned(), format_size(newsize)));
    let value = parts
        .into_iter()
        .map(|(k, v)| if k == "volume" { v } else { format!("{k}={v}") })
        .collect::<Vec<_>>()
        .join(",");
    if let Some(c) = st.cts.get_mut(&ct.vmid) {
        c.config.insert("lock".to_owned(), "disk".to_owned());
    }
    task(st.begin_task(
        &ct.node,
        "resize",
        &ct.vmid.to_string(),
        user,
        Effect::Resize { disk, value },
    ))
}

fn status_current(st: &mut State, p: &Params) -> Res {
    let ct = load(st, p)?.clone();
    let mut v = ct_entry(st, &ct, false);
    v["ha"] = json!({ "managed": 0 });
    data(v)
}

/// start/stop/shutdown/reboot: the running-state checks answer at once
/// (`CT 105 already running`, `CT 105 not running`, and reboot's own `VM 105
/// not running`); the lock check runs inside the worker, so a locked CT
/// gives a task that fails with `CT is locked (…)`, as in PVE.
fn power(st: &mut State, p: &Params, user: &str, kind: &str) -> Res {
    contention(st, vmid_of(p))?;
    let ct = load(st, p)?.clone();
    let vmid = ct.vmid;
    let running = ct.power == Power::Running;
    let effect = match kind {
        "vzstart" if running => return Err(fail(format!("CT {vmid} already running"))),
        "vzstart" => Effect::Start,
        "vzreboot" if !running => return Err(fail(format!("VM {vmid} not running"))),
        "vzreboot" => Effect::Reboot,
        _ if !running => return Err(fail(format!("CT {vmid} not running"))),
        _ => Effect::Stop,
    };
    let upid = st.begin_task(&ct.node, kind, &vmid.to_string(), user, effect);
    if kind != "vzreboot"
        && let Some(lock) = ct.lock().filter(|l| *l != "mounted")
        && let Some(t) = st.tasks.iter_mut().find(|t| t.upid == upid)
    {
        t.doom
            .get_or_insert_with(|| format!("CT is locked ({lock})"));
    }
    task(upid)
}

/// `DELETE /nodes/{node}/lxc/{vmid}`.
fn destroy(st: &mut State, p: &Params, user: &str) -> Res {
    contention(st, vmid_of(p))?;
    let ct = load(st, p)?.clone();
    let vmid = ct.vmid;
    if ct.config.get("protection").is_some_and(|v| v == "1") {
        return Err(fail(format!(
            "can't remove CT {vmid} - protection mode enabled"
        )));
    }
    check_lock(&ct)?;
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
        Effect::Destroy,
    ))
}

/// `PVE::Tools::upid_decode`'s pattern.
fn valid_upid(upid: &str) -> bool {
    let re = r"UPID:([a-zA-Z0-9]([a-zA-Z0-9\-]*[a-zA-Z0-9])?):([0-9A-Fa-f]{8}):([0-9A-Fa-f]{8,9}):([0-9A-Fa-f]{8}):([^:\s]+):([^:\s]*):([^:\s]+):";
    regex::Regex::new(&format!("^{re}$")).is_ok_and(|r| r.is_match(upid))
}

fn find_task<'a>(st: &'a State, p: &Params) -> Result<Option<&'a Task>, Reply> {
    let upid = p.get("upid").cloned().unwrap_or_default();
    if !valid_upid(&upid) {
        return Err(fail(format!("unable to parse worker upid '{upid}'")));
    }
    let node = p.get("node").cloned().unwrap_or_default();
    Ok(st.tasks.iter().find(|t| t.upid == upid && t.node == node))
}

/// A UPID nobody started reads as a stopped task whose status is unknown.
fn task_status(st: &State, p: &Params) -> Res {
    match find_task(st, p)? {
        Some(t) => data(t.status_json()),
        None => {
            let upid = p.get("upid").cloned().unwrap_or_default();
            let f: Vec<&str> = upid.split(':').collect();
            let hex = |i: usize| {
                f.get(i)
                    .and_then(|s| u64::from_str_radix(s, 16).ok())
                    .unwrap_or(0)
            };
            data(json!({
                "upid": upid, "node": f.get(1), "pid": hex(2), "pstart": hex(3), "starttime": hex(4),
                "type": f.get(5), "id": f.get(6), "user": f.get(7), "status": "stopped", "exitstatus": "unknown",
            }))
        }
    }
}

fn task_log(st: &State, p: &Params) -> Res {
    let Some(t) = find_task(st, p)? else {
        return Err(fail("unable to open file - No such file or directory"));
    };
    let start: usize = p.get("start").and_then(|v| v.parse().ok()).unwrap_or(0);
    let limit: usize = p.get("limit").and_then(|v| v.parse().ok()).unwrap_or(50);
    let lines: Vec<Value> = if t.log.is_empty() {
        vec![json!({ "n": 1, "t": "no content" })]
    } else {
        t.log
            .iter()
            .enumerate()
            .skip(start)
            .take(limit)
            .map(|(i, l)| json!({ "n": i + 1, "t": l }))
            .collect()
    };
    let mut extra = BTreeMap::new();
    extra.insert("total".to_owned(), Value::from(t.log.len().max(1)));
    Ok(Answer::Data {
        data: Value::Array(lines),
        extra,
        tasks: Vec::new(),
    })
}

/// `GET /nodes/{node}/tasks`: newest first; `source` defaults to
/// `archive` (finished tasks only), as in PVE.
fn task_list(st: &State, p: &Params) -> Res {
    let node = p.get("node").map_or("", String::as_str);
    let source = p.get("source").map_or("archive", String::as_str);
    let vmid = p.get("vmid");
    let typefilter = p.get("typefilter");
    let userfilter = p.get("userfilter");
    let errors = flag(p, "errors");
    let since: u64 = p.get("since").and_then(|v| v.parse().ok()).unwrap_or(0);
    let until: u64 = p
        .get("until")
        .and_then(|v| v.parse().ok())
        .unwrap_or(u64::MAX);
    let start: usize = p.get("start").and_then(|v| v.parse().ok()).unwrap_or(0);
    let limit: usize = p.get("limit").and_then(|v| v.parse().ok()).unwrap_or(50);
    let all: Vec<&Task> = st
        .tasks
        .iter()
        .rev()
        .filter(|t| t.node == node)
        .filter(|t| match source {
            "active" => t.exitstatus.is_none(),
            "all" => true,
            _ => t.exitstatus.is_some(),
        })
        .filter(|t| vmid.is_none_or(|v| *v == t.id))
        .filter(|t| typefilter.is_none_or(|f| t.kind.contains(f.as_str())))
        .filter(|t| userfilter.is_none_or(|u| t.user.contains(u.as_str())))
        .filter(|t| {
            !errors
                || t.exitstatus
                    .as_deref()
                    .is_some_and(|e| e != "OK" && !e.starts_with("WARNINGS"))
        })
        .filter(|t| t.starttime >= since && t.starttime <= until)
        .collect();
    let total = all.len();
    let page: Vec<Value> = all
        .into_iter()
        .skip(start)
        .take(limit)
        .map(Task::list_json)
        .collect();
    let mut extra = BTreeMap::new();
    extra.insert("total".to_owned(), Value::from(total));
    Ok(Answer::Data {
        data: Value::Array(page),
        extra,
        tasks: Vec::new(),
    })
}
