//! Stripe's form encoding: a body such as `a[b][0][c]=v` parsed into JSON
//! (numeric keys make arrays), and integer fields read whether they came as
//! numbers or as form strings.

use serde_json::{Map, Value};

/// Parses a Stripe form body (`a[b][0][c]=v`) into JSON; numeric keys make arrays.
pub fn parse_form(body: &str) -> Value {
    let mut root = Value::Object(Map::new());
    for (k, v) in form_urlencoded_pairs(body) {
        let mut path: Vec<String> = Vec::new();
        let (head, rest) = k.split_once('[').map_or((k.as_str(), ""), |(h, r)| (h, r));
        path.push(head.to_owned());
        for seg in rest.split('[') {
            let seg = seg.trim_end_matches(']');
            if !seg.is_empty() || !rest.is_empty() {
                path.push(seg.to_owned());
            }
        }
        let path: Vec<String> = path.into_iter().filter(|s| !s.is_empty()).collect();
        let mut cur = &mut root;
        for (i, seg) in path.iter().enumerate() {
            let last = i + 1 == path.len();
            if !cur.is_object() {
                *cur = Value::Object(Map::new());
            }
            let Value::Object(m) = cur else { break };
            if last {
                m.insert(seg.clone(), Value::String(v.clone()));
                break;
            }
            cur = m
                .entry(seg.clone())
                .or_insert_with(|| Value::Object(Map::new()));
        }
    }
    arrays(root)
}

fn form_urlencoded_pairs(body: &str) -> Vec<(String, String)> {
    serde_urlencoded::from_str::<Vec<(String, String)>>(body).unwrap_or_default()
}

fn arrays(v: Value) -> Value {
    match v {
        Value::Object(m) => {
            if !m.is_empty() && m.keys().all(|k| k.parse::<usize>().is_ok()) {
                let mut items: Vec<(usize, Value)> = m
                    .into_iter()
                    .map(|(k, v)| (k.parse().unwrap_or(0), arrays(v)))
                    .collect();
                items.sort_by_key(|(i, _)| *i);
                Value::Array(items.into_iter().map(|(_, v)| v).collect())
            } else {
                Value::Object(m.into_iter().map(|(k, v)| (k, arrays(v))).collect())
            }
        }
        other => other,
    }
}

pub(crate) fn int(v: &Value) -> i64 {
    v.as_i64()
        .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
        .unwrap_or(0)
}

/// An integer field, `None` when absent or not an integer.
pub(crate) fn opt_int(v: &Value) -> Option<i64> {
    v.as_i64()
        .or_else(|| v.as_str().and_then(|s| s.trim().parse().ok()))
}

/// A form boolean (`true`/`false`, or JSON booleans), `None` when absent or
/// anything else.
pub(crate) fn opt_bool(v: &Value) -> Option<bool> {
    match v {
        Value::Bool(b) => Some(*b),
        Value::String(s) if s == "true" => Some(true),
        Value::String(s) if s == "false" => Some(false),
        _ => None,
    }
}

/// `metadata` params laid over an object's metadata, as Stripe updates it:
/// keys are added or replaced, a key set to `""` is removed.
pub(crate) fn update_metadata(target: &mut Value, params: &Value) {
    let Value::Object(params) = params else {
        return;
    };
    if !target.is_object() {
        *target = Value::Object(Map::new());
    }
    if let Value::Object(m) = target {
        for (k, v) in params {
            if v == "" {
                m.remove(k);
            } else {
                m.insert(k.clone(), v.clone());
            }
        }
    }
}
