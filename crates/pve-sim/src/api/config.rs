//! A CT's config as PVE stores it: which keys are config keys (from the
//! schema), tags and `net[n]` normalized, and `GET`/`PUT …/config` with the
//! config `digest` check.

use std::collections::BTreeMap;

use serde_json::Value;

use super::storage::allocate;
use super::{Params, Res, check_lock, contention, data, fail, load, param_exc, vmid_of};
use crate::model::State;
use crate::schema::{self, parse_property_string};
use crate::server::Reply;

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

pub(super) fn is_config_key(key: &str) -> bool {
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

/// Sets one config option the way PVE stores it.
pub(super) fn set_option(
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

/// `GET …/config`: typed as the schema's `returns` says, plus `digest`.
pub(super) fn get_config(st: &mut State, p: &Params) -> Res {
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
pub(super) fn put_config(st: &mut State, p: &Params) -> Res {
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
