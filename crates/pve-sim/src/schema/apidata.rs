//! The embedded apidata tree, indexed: every API path with its `{variable}`
//! segments and the `info` of its methods, and the lookup of a request's path
//! (literal segments before variables, as in PVE's router).

use std::collections::HashMap;
use std::sync::OnceLock;

use serde_json::Value;

/// The embedded apidata tree (pve-docs 9.1.3, 2 MB).
pub const APIDATA: &str = include_str!("../../schema/pve-apidata-9.1.json");

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
