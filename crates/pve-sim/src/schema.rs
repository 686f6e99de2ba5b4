//! The PVE API schema (pve-docs `apidata`, PVE 9.1) and parameter
//! verification that follows `PVE::JSONSchema::check_prop`.
//!
//! The whole `api-viewer/apidata.js` tree of pve-docs 9.1.3 is embedded as
//! `schema/pve-apidata-9.1.json` (AGPL-3.0, like Tenantry). Every request's
//! path is looked up in it; a path/method it does not list answers 501, and
//! the parameters of one it lists are checked against its `parameters`
//! schema, so what the simulator accepts is what PVE's schema accepts.
//!
//! Messages are PVE's own (`pve-common/src/PVE/JSONSchema.pm`):
//! `property is not defined in schema and the schema does not allow
//! additional properties`, `type check ('integer') failed - got 'abc'`,
//! `value must have a minimum value of 16`, `property is missing and it is
//! not optional`, `value '…' does not have a value in the enumeration '…'`,
//! `invalid format - …`.

use std::collections::{BTreeMap, HashMap};
use std::sync::OnceLock;

use regex::Regex;
use serde_json::Value;

/// The embedded apidata tree (pve-docs 9.1.3, 2 MB).
pub const APIDATA: &str = include_str!("../schema/pve-apidata-9.1.json");

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

/// One path of the API tree: its segments (`None` = a `{variable}`), the
/// variables' names and the methods with their `info` objects.
#[derive(Debug)]
struct Endpoint {
    template: String,
    segments: Vec<Option<String>>,
    vars: Vec<String>,
    methods: HashMap<String, Value>,
}

/// The indexed API schema.
#[derive(Debug)]
pub struct Schema {
    endpoints: Vec<Endpoint>,
}

/// A path of the API matched against the schema.
#[derive(Debug)]
pub struct Matched<'a> {
    /// The schema path, e.g. `/nodes/{node}/lxc/{vmid}/config`.
    pub template: &'a str,
    /// The path variables (`node`, `vmid`…) with their raw values.
    pub vars: Vec<(String, String)>,
    /// The method's `info` object, or `None` when the path exists but not
    /// with this method.
    pub info: Option<&'a Value>,
}

static SCHEMA: OnceLock<Result<Schema, String>> = OnceLock::new();

/// The parsed embedded schema (parsed once per process).
///
/// # Errors
/// When the embedded JSON does not parse (a broken build).
pub fn schema() -> Result<&'static Schema, String> {
    SCHEMA
        .get_or_init(|| Schema::parse(APIDATA))
        .as_ref()
        .map_err(Clone::clone)
}

impl Schema {
    /// Parses an apidata tree.
    ///
    /// # Errors
    /// When the text is not the apidata JSON array.
    pub fn parse(text: &str) -> Result<Schema, String> {
        let tree: Value = serde_json::from_str(text).map_err(|e| format!("apidata: {e}"))?;
        let mut endpoints = Vec::new();
        let roots = tree.as_array().ok_or("apidata: not an array")?;
        let mut stack: Vec<&Value> = roots.iter().collect();
        while let Some(node) = stack.pop() {
            if let Some(children) = node.get("children").and_then(Value::as_array) {
                stack.extend(children.iter());
            }
            let Some(path) = node.get("path").and_then(Value::as_str) else {
                continue;
            };
            let mut segments = Vec::new();
            let mut vars = Vec::new();
            for seg in path.split('/').filter(|s| !s.is_empty()) {
                if let Some(var) = seg.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
                    segments.push(None);
                    vars.push(var.to_owned());
                } else {
                    segments.push(Some(seg.to_owned()));
                }
            }
            let methods = node
                .get("info")
                .and_then(Value::as_object)
                .map(|m| m.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
                .unwrap_or_default();
            endpoints.push(Endpoint {
                template: path.to_owned(),
                segments,
                vars,
                methods,
            });
        }
        Ok(Schema { endpoints })
    }

    /// Finds the schema path for a relative API path (`/nodes/pve1/lxc`).
    /// Literal segments win over variables, as in PVE's router.
    pub fn lookup(&self, method: &str, path: &str) -> Option<Matched<'_>> {
        let parts: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
        let mut best: Option<(&Endpoint, Vec<bool>)> = None;
        for ep in &self.endpoints {
            if ep.segments.len() != parts.len() {
                continue;
            }
            let mut score = Vec::with_capacity(parts.len());
            let mut ok = true;
            for (seg, part) in ep.segments.iter().zip(&parts) {
                match seg {
                    Some(lit) if lit == part => score.push(true),
                    Some(_) => {
                        ok = false;
                        break;
                    }
                    None => score.push(false),
                }
            }
            if ok && best.as_ref().is_none_or(|(_, s)| score > *s) {
                best = Some((ep, score));
            }
        }
        let (ep, _) = best?;
        let vars = ep
            .segments
            .iter()
            .zip(&parts)
            .filter(|(seg, _)| seg.is_none())
            .zip(&ep.vars)
            .map(|((_, part), name)| (name.clone(), (*part).to_owned()))
            .collect();
        Some(Matched {
            template: &ep.template,
            vars,
            info: ep.methods.get(method),
        })
    }

    /// The `parameters.properties` of a method, for tests and docs.
    pub fn properties(
        &self,
        method: &str,
        template: &str,
    ) -> Option<&serde_json::Map<String, Value>> {
        self.endpoints
            .iter()
            .find(|e| e.template == template)?
            .methods
            .get(method)?
            .get("parameters")?
            .get("properties")?
            .as_object()
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

fn truthy(v: &Value) -> bool {
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
fn check_prop(
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
fn perl_regex(pattern: &str) -> Option<Regex> {
    static CACHE: OnceLock<std::sync::Mutex<HashMap<String, Option<Regex>>>> = OnceLock::new();
    let cache = CACHE.get_or_init(Default::default);
    let mut cache = cache.lock().ok()?;
    cache
        .entry(pattern.to_owned())
        .or_insert_with(|| Regex::new(&format!("^(?:{})$", pattern.replace("(?^:", "(?:"))).ok())
        .clone()
}

/// `PVE::JSONSchema::check_format`: named formats (the ones the simulator
/// knows; others pass), `-list`/`-opt` variants and property strings.
fn check_format(path: &str, format: &Value, value: &str) -> Result<(), String> {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_follow_pve_parse_and_format() {
        assert_eq!(parse_size("8G"), Some(8 << 30));
        assert_eq!(parse_size("1.5G"), Some(3 << 29));
        assert_eq!(parse_size("1024"), Some(1024));
        assert_eq!(parse_size("x"), None);
        assert_eq!(format_size(10 << 30), "10G");
        assert_eq!(format_size(1536 << 20), "1536M");
        assert_eq!(format_size(1 << 40), "1T");
    }

    #[test]
    fn lookup_prefers_literal_segments_and_reports_variables() {
        let s = schema().unwrap();
        let m = s
            .lookup("GET", "/nodes/pve1/lxc/105/status/current")
            .unwrap();
        assert_eq!(m.template, "/nodes/{node}/lxc/{vmid}/status/current");
        assert_eq!(
            m.vars,
            vec![
                ("node".into(), "pve1".into()),
                ("vmid".into(), "105".into())
            ]
        );
        assert!(
            s.lookup("GET", "/nodes/pve1/nothing-here/x/y/z/w")
                .is_none()
        );
        assert!(s.lookup("PATCH", "/version").unwrap().info.is_none());
    }

    #[test]
    fn indexed_names_stay_in_pve_ranges() {
        let s = schema().unwrap();
        let props = s.properties("POST", "/nodes/{node}/lxc").unwrap();
        assert!(indexed_prop(props, "net31").is_some());
        assert!(indexed_prop(props, "net32").is_none());
        assert!(indexed_prop(props, "mp255").is_some());
        assert!(indexed_prop(props, "mp01").is_none());
        assert!(indexed_prop(props, "scsi0").is_none());
    }
}
