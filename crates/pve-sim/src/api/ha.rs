//! HA resources (`/cluster/ha/resources`): list, read, add, remove, with
//! the checks and messages of pve-ha-manager (`PVE::API2::HA::Resources`,
//! `PVE::HA::Config::parse_sid`, `PVE::HA::Resources::PVECT::exists`).
//! Adding and removing answer `null` at once (no task), as in PVE.

use serde_json::{Value, json};

use super::{Params, Res, data, fail};
use crate::model::{HaResource, State, ha_digest};
use crate::server::Reply;

/// The options a `ct`/`vm` resource stores (`PVE::HA::Resources::PVECT`
/// `options`, `group` aside: PVE 9 refuses it once groups became rules).
const OPTIONS: [&str; 5] = [
    "state",
    "comment",
    "failback",
    "max_restart",
    "max_relocate",
];

/// `PVE::HA::Config::parse_sid`: `ct:105` as is; a bare vmid becomes
/// `ct:105` when that guest exists. Returns (sid, type, name).
fn parse_sid(st: &State, sid: &str) -> Result<(String, String, String), Reply> {
    if !sid.is_empty() && sid.bytes().all(|b| b.is_ascii_digit()) {
        let known = sid.parse::<u32>().ok().filter(|id| st.cts.contains_key(id));
        return match known {
            Some(_) => Ok((format!("ct:{sid}"), "ct".to_owned(), sid.to_owned())),
            None => Err(fail(format!(
                "unable to detect SID from VMID - VM/CT {sid} does not exist"
            ))),
        };
    }
    // `m/^(\S+):(\S+)$/`: the greedy first group ends at the last colon.
    match sid.rsplit_once(':') {
        Some((t, n)) if !t.is_empty() && !n.is_empty() && !sid.contains(char::is_whitespace) => {
            Ok((sid.to_owned(), t.to_owned(), n.to_owned()))
        }
        _ => Err(fail(format!("unable to parse service id '{sid}'"))),
    }
}

/// A resource as `GET` answers it: its options (integers and booleans as
/// numbers, as the schema types them), `sid`, `type` and the file's
/// `digest`.
fn entry(sid: &str, r: &HaResource, digest: &str) -> Value {
    let mut v = json!({ "sid": sid, "type": r.kind, "digest": digest });
    for (k, val) in &r.opts {
        v[k] = match k.as_str() {
            "failback" | "max_restart" | "max_relocate" => val
                .parse::<i64>()
                .map(Value::from)
                .unwrap_or_else(|_| val.clone().into()),
            _ => val.clone().into(),
        };
    }
    v
}

/// `GET /cluster/ha/resources` (optional `type`), by sid.
pub(super) fn ha_list(st: &State, p: &Params) -> Res {
    let digest = ha_digest(&st.ha);
    let ty = p.get("type");
    data(
        st.ha
            .iter()
            .filter(|(_, r)| ty.is_none_or(|t| *t == r.kind))
            .map(|(sid, r)| entry(sid, r, &digest))
            .collect(),
    )
}

/// `GET /cluster/ha/resources/{sid}`.
pub(super) fn ha_read(st: &State, p: &Params) -> Res {
    let (sid, _, _) = parse_sid(st, p.get("sid").map_or("", String::as_str))?;
    match st.ha.get(&sid) {
        Some(r) => data(entry(&sid, r, &ha_digest(&st.ha))),
        None => Err(fail(format!("no such resource '{sid}'"))),
    }
}

/// `POST /cluster/ha/resources`: the guest must exist and be of the type
/// the sid names; a sid already defined is refused.
pub(super) fn ha_create(st: &mut State, p: &Params) -> Res {
    let (sid, ty, name) = parse_sid(st, p.get("sid").map_or("", String::as_str))?;
    if p.get("type").is_some_and(|t| *t != ty) {
        return Err(fail("types does not match"));
    }
    if p.contains_key("group") {
        return Err(fail(
            "invalid parameter 'group': ha groups have been migrated to rules",
        ));
    }
    if ty != "ct" && ty != "vm" {
        return Err(fail(format!("unknown section type '{ty}'")));
    }
    let name_ok =
        name.len() > 1 && !name.starts_with('0') && name.bytes().all(|b| b.is_ascii_digit());
    if !name_ok {
        return Err(fail("invalid VMID"));
    }
    // Only containers are simulated: any guest is a CT.
    let is_ct = name.parse::<u32>().is_ok_and(|id| st.cts.contains_key(&id));
    match (ty.as_str(), is_ct) {
        ("ct", false) | ("vm", false) => {
            return Err(fail(format!(
                "resource '{ty}:{name}' does not exist in cluster"
            )));
        }
        ("vm", true) => {
            return Err(fail(format!(
                "resource 'vm:{name}' - guest with ID {name} is not a VM"
            )));
        }
        _ => {}
    }
    if st.ha.contains_key(&sid) {
        return Err(fail(format!("resource ID '{sid}' already defined")));
    }
    let opts = OPTIONS
        .iter()
        .filter_map(|k| Some(((*k).to_owned(), p.get(*k)?.clone())))
        .collect();
    st.ha.insert(sid, HaResource { kind: ty, opts });
    data(Value::Null)
}

/// `DELETE /cluster/ha/resources/{sid}`: refused for a sid not defined.
/// (`purge`, default 1, removes it from HA rules too; no rules are
/// simulated.)
pub(super) fn ha_delete(st: &mut State, p: &Params) -> Res {
    let (sid, _, _) = parse_sid(st, p.get("sid").map_or("", String::as_str))?;
    if st.ha.remove(&sid).is_none() {
        return Err(fail(format!(
            "cannot delete service '{sid}', not HA managed!"
        )));
    }
    data(Value::Null)
}
