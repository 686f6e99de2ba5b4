//! A CT's volumes on a node's storage: `rootfs` and `mp[n]` allocated at
//! create (`STORAGE:SIZE_IN_GiB` becomes `vm-{vmid}-disk-{n}`), and
//! `PUT …/resize`, which grows a disk through a `resize` task.

use serde_json::Value;

use super::{Params, Res, check_lock, contention, data, fail, load, param_exc, task, vmid_of};
use crate::model::{Effect, State};
use crate::schema::{format_size, parse_property_string, parse_size};
use crate::server::Reply;

/// Allocates `STORAGE:SIZE_IN_GiB` volumes (`rootfs`, `mp[n]`), as PVE does
/// on create; other volume ids are kept.
pub(super) fn allocate(
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

/// `PUT …/resize`: `size` absolute or `+`relative; never shrinks.
pub(super) fn resize(st: &mut State, p: &Params, user: &str) -> Res {
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
