//! Parameter verification as `PVE::JSONSchema::check_prop` does it: a
//! request's parameters against a method's `parameters` schema — declared
//! or indexed `name[n]`, then type, pattern, length, range and enumeration —
//! with PVE's messages.

use std::collections::{BTreeMap, HashMap};
use std::sync::OnceLock;

use regex::Regex;
use serde_json::Value;

use super::format::check_format;

/// Upper bounds (exclusive) of the indexed `name[n]` properties. The apidata
/// dump collapses `net0`..`net31` into `net[n]`; the ranges are PVE's
/// constants (`PVE::LXC::Config` `MAX_LXC_NETWORKS` = 32,
/// `MAX_MOUNT_POINTS` = 256, `MAX_UNUSED_DISKS` = 256, `MAX_DEVICES` = 256;
/// qemu-server's drive and device counts). Unknown names get 256.
fn index_limit(base: &str) -> u32 {
    match base {
        "net" | "ipconfig" => 32,
        "ide" => 4,
        "sata" => 6,
        "scsi" => 31,
        "virtio" | "hostpci" => 16,
        "usb" => 14,
        "serial" => 4,
        "parallel" => 3,
        "numa" | "link" => 8,
        "acmedomain" => 5,
        "virtiofs" => 10,
        _ => 256,
    }
}

/// A parameter value as the client sent it.
#[derive(Debug, Clone, PartialEq)]
pub enum Param {
    /// A scalar: form fields, and JSON strings, numbers and booleans (`true`
    /// → `1`, `false` → `0`).
    Scalar(String),
    /// A JSON array or object (`ARRAY`/`HASH` in PVE's messages).
    Complex(&'static str),
}

/// Verifies `params` against a method's `parameters` schema.
///
/// Returns the parameters as strings, or the per-parameter errors map of
/// PVE's 400 answer.
///
/// # Errors
/// The `errors` map (parameter name → PVE's message).
pub fn validate(
    info: &Value,
    params: &BTreeMap<String, Param>,
) -> Result<BTreeMap<String, String>, BTreeMap<String, String>> {
    let mut errors = BTreeMap::new();
    let empty = serde_json::Map::new();
    let parameters = info.get("parameters");
    let props = parameters
        .and_then(|p| p.get("properties"))
        .and_then(Value::as_object)
        .unwrap_or(&empty);
    let additional = parameters
        .and_then(|p| p.get("additionalProperties"))
        .is_some_and(truthy);

    // Every declared property: missing-but-required, then the value checks.
    for (name, prop) in props {
        if name.ends_with("[n]") {
            continue;
        }
        check_prop(name, params.get(name), prop, &mut errors);
    }
    // Every given property must be declared (directly or as `name[n]`).
    for (name, value) in params {
        if props.contains_key(name) {
            continue;
        }
        if let Some(prop) = indexed_prop(props, name) {
            check_prop(name, Some(value), prop, &mut errors);
        } else if !additional {
            errors.insert(
                name.clone(),
                "property is not defined in schema and the schema does not allow additional properties"
                    .to_owned(),
            );
        }
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    Ok(params
        .iter()
        .filter_map(|(k, v)| match v {
            Param::Scalar(s) => Some((k.clone(), s.clone())),
            Param::Complex(_) => None,
        })
        .collect())
}

/// The `name[n]` schema an indexed name (`net0`, `mp12`) falls under.
pub fn indexed_prop<'a>(
    props: &'a serde_json::Map<String, Value>,
    name: &str,
) -> Option<&'a Value> {
    let split = name.find(|c: char| c.is_ascii_digit())?;
    let (base, idx) = name.split_at(split);
    if idx.len() > 1 && idx.starts_with('0') {
        return None;
    }
    let idx: u32 = idx.parse().ok()?;
    if idx >= index_limit(base) {
        return None;
    }
    props.get(&format!("{base}[n]"))
}

pub(super) fn truthy(v: &Value) -> bool {
    match v {
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_f64().is_some_and(|f| f != 0.0),
        Value::String(s) => !s.is_empty() && s != "0",
        _ => false,
    }
}

fn num(v: Option<&Value>) -> Option<f64> {
    match v? {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.parse().ok(),
        _ => None,
    }
}

/// Perl's number stringification for the limits in messages.
fn perl_num(f: f64) -> String {
    if f.fract() == 0.0 && f.abs() < 1e15 {
        format!("{}", f as i64)
    } else {
        format!("{f}")
    }
}

fn is_integer(v: &str) -> bool {
    let d = v.strip_prefix(['+', '-']).unwrap_or(v);
    !d.is_empty() && d.bytes().all(|b| b.is_ascii_digit())
}

fn is_number(v: &str) -> bool {
    static RE: OnceLock<Option<Regex>> = OnceLock::new();
    RE.get_or_init(|| Regex::new(r"^[+-]?(\d+\.\d+|\d+\.|\.\d+|\d+)([eE][+-]?\d+)?$").ok())
        .as_ref()
        .is_some_and(|re| re.is_match(v))
}

/// `PVE::JSONSchema::check_prop` for one scalar parameter.
pub(super) fn check_prop(
    path: &str,
    value: Option<&Param>,
    schema: &Value,
    errors: &mut BTreeMap<String, String>,
) {
    let Some(value) = value else {
        let optional = schema.get("optional").is_some_and(truthy);
        if !optional && schema.get("alias").is_none() {
            errors.insert(
                path.to_owned(),
                "property is missing and it is not optional".to_owned(),
            );
        }
        return;
    };
    let ty = schema
        .get("type")
        .and_then(Value::as_str)
        .unwrap_or("string");
    let value = match value {
        Param::Complex(kind) => {
            if !matches!(ty, "array" | "object" | "any") {
                errors.insert(
                    path.to_owned(),
                    format!("type check ('{ty}') failed - got {kind}"),
                );
            }
            return;
        }
        Param::Scalar(s) => s.as_str(),
    };
    if let Err(msg) = check_scalar(path, value, schema) {
        errors.insert(path.to_owned(), msg);
    }
}

fn check_scalar(path: &str, value: &str, schema: &Value) -> Result<(), String> {
    let ty = schema
        .get("type")
        .and_then(Value::as_str)
        .unwrap_or("string");
    let type_ok = match ty {
        "boolean" => value == "1" || value == "0",
        "integer" => is_integer(value),
        "number" => is_number(value),
        "array" | "object" => false,
        _ => true,
    };
    if !type_ok {
        return Err(format!("type check ('{ty}') failed - got '{value}'"));
    }
    if let Some(format) = schema.get("format") {
        check_format(path, format, value).map_err(|e| format!("invalid format - {e}"))?;
    }
    if let Some(pattern) = schema.get("pattern").and_then(Value::as_str)
        && let Some(re) = perl_regex(pattern)
        && !re.is_match(value)
    {
        return Err("value does not match the regex pattern".to_owned());
    }
    let len = value.chars().count() as f64;
    if let Some(max) = num(schema.get("maxLength"))
        && len > max
    {
        return Err(format!(
            "value may only be {} characters long",
            perl_num(max)
        ));
    }
    if let Some(min) = num(schema.get("minLength"))
        && len < min
    {
        return Err(format!(
            "value must be at least {} characters long",
            perl_num(min)
        ));
    }
    if is_number(value)
        && let Ok(v) = value.parse::<f64>()
    {
        if let Some(max) = num(schema.get("maximum"))
            && v > max
        {
            return Err(format!(
                "value must have a maximum value of {}",
                perl_num(max)
            ));
        }
        if let Some(min) = num(schema.get("minimum"))
            && v < min
        {
            return Err(format!(
                "value must have a minimum value of {}",
                perl_num(min)
            ));
        }
    }
    if let Some(allowed) = schema.get("enum").and_then(Value::as_array) {
        let allowed: Vec<String> = allowed
            .iter()
            .map(|v| v.as_str().map_or_else(|| v.to_string(), str::to_owned))
            .collect();
        if !allowed.iter().any(|a| a == value) {
            return Err(format!(
                "value '{value}' does not have a value in the enumeration '{}'",
                allowed.join(", ")
            ));
        }
    }
    Ok(())
}

/// A Perl regex of the schema as a Rust one, anchored as PVE does
/// (`m/^$pattern$/`). Patterns the `regex` crate cannot compile are skipped.
pub(super) fn perl_regex(pattern: &str) -> Option<Regex> {
    static CACHE: OnceLock<std::sync::Mutex<HashMap<String, Option<Regex>>>> = OnceLock::new();
    let cache = CACHE.get_or_init(Default::default);
    let mut cache = cache.lock().ok()?;
    cache
        .entry(pattern.to_owned())
        .or_insert_with(|| Regex::new(&format!("^(?:{})$", pattern.replace("(?^:", "(?:"))).ok())
        .clone()
}
