//! Format checks as `PVE::JSONSchema::check_format` does them: named
//! formats (`pve-vmid`, `pve-node`, `disk-size`…), their `-list`/`-opt`
//! variants and property strings (`net[n]`, `rootfs`, `mp[n]`); and the
//! property-string and size parsing the simulator's own endpoints use.

use std::collections::BTreeMap;

use serde_json::Value;

use super::params::{Param, check_prop, perl_regex, truthy};

/// `PVE::JSONSchema::check_format`: named formats (the ones the simulator
/// knows; others pass), `-list`/`-opt` variants and property strings.
pub(super) fn check_format(path: &str, format: &Value, value: &str) -> Result<(), String> {
    match format {
        Value::Object(desc) => check_property_string(path, desc, value),
        Value::String(name) => {
            if let Some(base) = name
                .strip_suffix("-list")
                .or_else(|| name.strip_suffix("-alist"))
            {
                for item in split_list(value) {
                    check_named(base, item)?;
                }
                Ok(())
            } else if let Some(base) = name.strip_suffix("-opt") {
                if value.is_empty() {
                    Ok(())
                } else {
                    check_named(base, value)
                }
            } else {
                check_named(name, value)
            }
        }
        _ => Ok(()),
    }
}

/// `PVE::Tools::split_list`.
fn split_list(value: &str) -> Vec<&str> {
    if value.contains('\0') {
        value.split('\0').filter(|s| !s.is_empty()).collect()
    } else {
        value
            .split([';', ',', ' ', '\t', '\n'])
            .filter(|s| !s.is_empty())
            .collect()
    }
}

fn matches(re: &str, value: &str) -> bool {
    perl_regex(re).is_some_and(|r| r.is_match(value))
}

/// The named formats of `PVE::JSONSchema` the driver's endpoints use.
fn check_named(name: &str, v: &str) -> Result<(), String> {
    let fail = |msg: String| Err(format!("{msg}\n"));
    match name {
        "pve-vmid" if !matches(r"[1-9][0-9]{2,8}", v) => {
            fail("value does not look like a valid VM ID".into())
        }
        "pve-node" if !matches(r"[a-zA-Z0-9]([a-zA-Z0-9\-]*[a-zA-Z0-9])?", v) => {
            fail("value does not look like a valid node name".into())
        }
        "dns-name"
            if !matches(
                r"(([a-zA-Z0-9]([a-zA-Z0-9\-]*[a-zA-Z0-9])?)\.)*([a-zA-Z0-9]([a-zA-Z0-9\-]*[a-zA-Z0-9])?)",
                v,
            ) =>
        {
            fail("value does not look like a valid DNS name".into())
        }
        "pve-storage-id" if !matches(r"[a-z][a-z0-9\-_.]*[a-z0-9]", &v.to_ascii_lowercase()) => {
            fail(format!("storage ID '{v}' contains illegal characters"))
        }
        "pve-configid" if !matches(r"[a-z][a-z0-9_]+", &v.to_ascii_lowercase()) => {
            fail(format!("invalid configuration ID '{v}'"))
        }
        "pve-tag" if !matches(r"[a-z0-9_][a-z0-9_\-+.]*", &v.to_ascii_lowercase()) => {
            fail("invalid characters in tag".into())
        }
        "pve-ha-resource-or-vm-id" if !matches(r"[a-z]+:\S+|\d+", v) => {
            fail("value does not look like a valid ha resource id".into())
        }
        "pve-poolid" if !matches(r"[A-Za-z0-9_\-/]+", v) => fail(format!("invalid pool ID '{v}'")),
        "disk-size" if !matches(r"\d+(\.\d+)?[KMGT]?", v) => {
            fail(format!("value does not look like a valid disk size: {v}"))
        }
        "pve-startup-order"
            if !matches(
                r"((order=)?\d+|up=\d+|down=\d+)(,((order=)?\d+|up=\d+|down=\d+))*",
                v,
            ) =>
        {
            fail("unable to parse startup options".into())
        }
        _ => Ok(()),
    }
}

/// `PVE::JSONSchema::parse_property_string` + `check_object` for formats
/// given as objects (`net[n]`, `rootfs`, `mp[n]`, `features`…).
fn check_property_string(
    path: &str,
    desc: &serde_json::Map<String, Value>,
    data: &str,
) -> Result<(), String> {
    let mut res: BTreeMap<String, String> = BTreeMap::new();
    let default_key = desc
        .iter()
        .find(|(_, s)| s.get("default_key").is_some_and(truthy))
        .map(|(k, _)| k.clone());
    for part in data.split(',') {
        if part.trim().is_empty() {
            continue;
        }
        if let Some((k, v)) = part
            .split_once('=')
            .filter(|(k, v)| !k.is_empty() && !v.is_empty())
        {
            if res.contains_key(k) {
                return Err(format!(
                    "duplicate key in comma-separated list property: {k}\n"
                ));
            }
            let mut key = k.to_owned();
            if let Some(alias) = desc
                .get(k)
                .and_then(|s| s.get("alias"))
                .and_then(Value::as_str)
            {
                key = alias.to_owned();
            }
            let Some(schema) = desc.get(&key) else {
                return Err(format!(
                    "invalid key in comma-separated list property: {key}\n"
                ));
            };
            let mut v = v.to_owned();
            if schema.get("type").and_then(Value::as_str) == Some("boolean") {
                let lower = v.to_ascii_lowercase();
                if ["1", "on", "yes", "true"].contains(&lower.as_str()) {
                    v = "1".into();
                } else if ["0", "off", "no", "false"].contains(&lower.as_str()) {
                    v = "0".into();
                }
            }
            res.insert(key, v);
        } else if !part.contains('=') {
            let Some(dk) = &default_key else {
                return Err("value without key, but schema does not define a default key\n".into());
            };
            if res.contains_key(dk) {
                return Err(format!(
                    "duplicate key in comma-separated list property: {dk}\n"
                ));
            }
            res.insert(dk.clone(), part.to_owned());
        } else {
            return Err("missing key in comma-separated list property\n".into());
        }
    }
    let mut errors = BTreeMap::new();
    for (k, schema) in desc {
        let sub = format!("{path}.{k}");
        check_prop(
            &sub,
            res.get(k).cloned().map(Param::Scalar).as_ref(),
            schema,
            &mut errors,
        );
    }
    if errors.is_empty() {
        return Ok(());
    }
    let mut msg = "format error\n".to_owned();
    for (k, e) in &errors {
        msg.push_str(&format!("{k}: {e}\n"));
    }
    Err(msg)
}

/// Parses a property string into its keys (default key resolved), for the
/// simulator's own use of `rootfs`, `net0`… values that passed validation.
pub fn parse_property_string(default_key: &str, data: &str) -> Vec<(String, String)> {
    data.split(',')
        .filter(|p| !p.trim().is_empty())
        .map(|p| match p.split_once('=') {
            Some((k, v)) => (k.to_owned(), v.to_owned()),
            None => (default_key.to_owned(), p.to_owned()),
        })
        .collect()
}

/// `PVE::JSONSchema::parse_size`: bytes of `8G`, `512M`, `1024` (bytes).
pub fn parse_size(v: &str) -> Option<u64> {
    let (num, mult) = match v.chars().last()? {
        'K' => (&v[..v.len() - 1], 1u64 << 10),
        'M' => (&v[..v.len() - 1], 1 << 20),
        'G' => (&v[..v.len() - 1], 1 << 30),
        'T' => (&v[..v.len() - 1], 1 << 40),
        _ => (v, 1),
    };
    let n: f64 = num.parse().ok()?;
    if !n.is_finite() || n < 0.0 {
        return None;
    }
    Some((n * mult as f64) as u64)
}

/// `PVE::JSONSchema::format_size`: the largest exact unit (`8G`, `1536M`).
pub fn format_size(bytes: u64) -> String {
    let units = [
        (1u64 << 40, "T"),
        (1 << 30, "G"),
        (1 << 20, "M"),
        (1 << 10, "K"),
    ];
    for (size, unit) in units {
        if bytes >= size && bytes.is_multiple_of(size) {
            return format!("{}{unit}", bytes / size);
        }
    }
    bytes.to_string()
}
