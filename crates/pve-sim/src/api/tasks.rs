//! A node's tasks: `GET /nodes/{node}/tasks` (newest first, filtered), and
//! one task's status and log by its UPID.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use super::{Answer, Params, Res, data, fail, flag};
use crate::model::{State, Task};
use crate::server::Reply;

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
pub(super) fn task_status(st: &State, p: &Params) -> Res {
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

pub(super) fn task_log(st: &State, p: &Params) -> Res {
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
pub(super) fn task_list(st: &State, p: &Params) -> Res {
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
