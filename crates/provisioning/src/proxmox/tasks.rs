//! Proxmox tasks: every mutating call returns a UPID, which we poll at
//! `/nodes/{node}/tasks/{upid}/status` until `stopped`; its `exitstatus`
//! decides (`OK` or `WARNINGS: n` succeed). A failed task's reason carries
//! the tail of `/nodes/{node}/tasks/{upid}/log`.

use std::time::Duration;

use serde::Deserialize;
use serde_json::Value;
use tokio::time::Instant;

use super::client::PveClient;
use super::errors::{ApiError, Class, classify_message};
use crate::DriverError;

/// How many log lines a failed task's reason carries.
const LOG_TAIL_LINES: u64 = 12;

/// A task id: `UPID:{node}:{pid}:{pstart}:{starttime}:{type}:{id}:{user}:`
/// (pid, pstart and starttime in hex; `user` is `root@pam` or a token
/// `user@realm!tokenid`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Upid {
    /// The whole UPID, as PVE wants it back.
    pub(crate) raw: String,
    /// The node the task runs on.
    pub(crate) node: String,
    /// Task type (`vzcreate`, `vzstart`, `vzshutdown`, `vzdestroy`, `resize`).
    pub(crate) kind: String,
    /// The task's object id (the vmid for container tasks).
    pub(crate) id: String,
}

impl Upid {
    /// Parses a UPID.
    ///
    /// # Errors
    /// `Failed` when it is not one.
    pub(crate) fn parse(raw: &str) -> Result<Self, DriverError> {
        let bad = || DriverError::Failed {
            reason: format!("the node answered {raw:?} where a task id (UPID) belongs"),
        };
        let parts: Vec<&str> = raw.split(':').collect();
        // "UPID", node, pid, pstart, starttime, type, id, user, "" (trailing ':')
        let ["UPID", node, pid, pstart, starttime, kind, id, user, ""] = parts.as_slice() else {
            return Err(bad());
        };
        let hex = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_hexdigit());
        if node.is_empty()
            || !hex(pid)
            || !hex(pstart)
            || !hex(starttime)
            || kind.is_empty()
            || user.is_empty()
        {
            return Err(bad());
        }
        Ok(Self {
            raw: raw.to_owned(),
            node: (*node).to_owned(),
            kind: (*kind).to_owned(),
            id: (*id).to_owned(),
        })
    }

    /// The UPID in a call's `data`; `None` when the call answered `null`
    /// (it finished synchronously).
    ///
    /// # Errors
    /// `Failed` when `data` is neither `null` nor a UPID.
    pub(crate) fn from_data(data: &Value) -> Result<Option<Self>, DriverError> {
        match data {
            Value::Null => Ok(None),
            Value::String(s) => Self::parse(s).map(Some),
            other => Err(DriverError::Failed {
                reason: format!("the node answered {other} where a task id (UPID) belongs"),
            }),
        }
    }
}

/// A task's state from `…/tasks/{upid}/status`.
#[derive(Debug, Deserialize)]
struct TaskStatus {
    status: String,
    #[serde(default)]
    exitstatus: Option<String>,
}

/// Whether a stopped task's exit status means success: `OK`, or `WARNINGS:
/// n` (the task did its work and logged warnings).
pub(crate) fn exit_ok(exitstatus: &str) -> bool {
    let s = exitstatus.trim();
    s == "OK" || s.starts_with("WARNINGS:")
}

/// How a task ended.
#[derive(Debug)]
pub(crate) enum TaskEnd {
    /// `OK` or `WARNINGS: n`.
    Ok,
    /// Any other exit status: what it means, and the error to report.
    Failed {
        /// The exit status, classified like a handler message.
        class: Class,
        /// The error with the exit status and the log's tail.
        error: DriverError,
    },
}

/// Polls `upid` until it stops, and fails unless it succeeded; see
/// [`wait_end`].
///
/// # Errors
/// Those of [`wait_end`], and the task's own failure: `Transient` when it
/// failed on a lock or timeout, `Failed` with the exit status and the log's
/// tail otherwise.
pub(crate) async fn wait(
    client: &PveClient,
    upid: &Upid,
    interval: Duration,
    deadline: Duration,
) -> Result<(), DriverError> {
    match wait_end(client, upid, interval, deadline).await? {
        TaskEnd::Ok => Ok(()),
        TaskEnd::Failed { error, .. } => Err(error),
    }
}

/// Polls `upid` every `interval` until it stops or `deadline` passes.
///
/// A failed status read (node briefly unreachable, lost answer) is retried
/// at the next poll; only the deadline ends the wait.
///
/// # Errors
/// `Transient` when the deadline passes; the classified error of a status
/// read that no retry fixes (`Unauthorized`, …).
pub(crate) async fn wait_end(
    client: &PveClient,
    upid: &Upid,
    interval: Duration,
    deadline: Duration,
) -> Result<TaskEnd, DriverError> {
    let started = Instant::now();
    let segments = [
        "nodes",
        upid.node.as_str(),
        "tasks",
        upid.raw.as_str(),
        "status",
    ];
    let mut last_error: Option<ApiError>;
    loop {
        match client.get::<TaskStatus>(&segments, &[]).await {
            Ok(status) if status.status == "stopped" => {
                let exit = status.exitstatus.unwrap_or_default();
                if exit_ok(&exit) {
                    if exit.trim() != "OK" {
                        tracing::warn!(upid = %upid.raw, exitstatus = %exit, "task ended with warnings");
                    }
                    return Ok(TaskEnd::Ok);
                }
                return Ok(failure(client, upid, &exit).await);
            }
            Ok(_) => last_error = None,
            Err(e) if e.class().is_transient() => {
                tracing::debug!(upid = %upid.raw, error = %e, "task status unreadable, polling on");
                last_error = Some(e);
            }
            Err(e) => return Err(e.into_driver_error()),
        }
        if started.elapsed() + interval > deadline {
            let why = last_error.map_or_else(String::new, |e| format!("; last error: {e}"));
            return Err(DriverError::Transient {
                reason: format!(
                    "task {} ({} {}) still running after {:?}{why}",
                    upid.raw, upid.kind, upid.id, deadline
                ),
            });
        }
        tokio::time::sleep(interval).await;
    }
}

/// The end of a task that stopped with `exitstatus`: its text and the tail
/// of its log; `Transient` for lock and timeout failures.
async fn failure(client: &PveClient, upid: &Upid, exitstatus: &str) -> TaskEnd {
    let tail = log_tail(client, upid).await;
    let mut reason = format!(
        "task {} ({} {}) failed: {}",
        upid.raw,
        upid.kind,
        upid.id,
        exitstatus.trim()
    );
    if !tail.is_empty() {
        reason.push_str("; log: ");
        reason.push_str(&tail.join(" | "));
    }
    let class = classify_message(exitstatus);
    let error = if class.is_transient() {
        DriverError::Transient { reason }
    } else {
        DriverError::Failed { reason }
    };
    TaskEnd::Failed { class, error }
}

#[derive(Debug, Deserialize)]
struct LogLine {
    t: String,
}

/// The last [`LOG_TAIL_LINES`] lines of the task's log; empty when the log
/// cannot be read (the exit status still explains the failure).
async fn log_tail(client: &PveClient, upid: &Upid) -> Vec<String> {
    let segments = [
        "nodes",
        upid.node.as_str(),
        "tasks",
        upid.raw.as_str(),
        "log",
    ];
    let read = |start: u64, limit: u64| async move {
        let query = [("start", start.to_string()), ("limit", limit.to_string())];
        client.get_envelope(&segments, &query).await
    };
    let first = match read(0, 500).await {
        Ok(env) => env,
        Err(e) => {
            tracing::debug!(upid = %upid.raw, error = %e, "task log unreadable");
            return Vec::new();
        }
    };
    let mut env = first;
    let lines: Vec<LogLine> = serde_json::from_value(env.data.take()).unwrap_or_default();
    let read_count = u64::try_from(lines.len()).unwrap_or(u64::MAX);
    let lines = match env.total {
        Some(total) if total > read_count && total > LOG_TAIL_LINES => {
            match read(total - LOG_TAIL_LINES, LOG_TAIL_LINES).await {
                Ok(mut tail) => serde_json::from_value(tail.data.take()).unwrap_or(lines),
                Err(_) => lines,
            }
        }
        _ => lines,
    };
    let skip = lines
        .len()
        .saturating_sub(usize::try_from(LOG_TAIL_LINES).unwrap_or(usize::MAX));
    lines
        .into_iter()
        .skip(skip)
        .map(|l| l.t)
        .filter(|t| !t.trim().is_empty())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upids_parse_with_token_users() {
        let raw = "UPID:pve1:0000A1B2:00C0FFEE:65F0A1B2:vzcreate:105:tenantry@pve!driver:";
        let u = Upid::parse(raw).unwrap();
        assert_eq!(u.node, "pve1");
        assert_eq!(u.kind, "vzcreate");
        assert_eq!(u.id, "105");
        assert_eq!(u.raw, raw);
        // pstart may have 9 hex digits on long-running hosts
        assert!(
            Upid::parse("UPID:pve-2:000012AB:1000ABCDE:65F0A1B2:vzstart:105:root@pam:").is_ok()
        );
        // tasks without an object id
        assert!(Upid::parse("UPID:pve1:000012AB:0001ABCD:65F0A1B2:aptupdate::root@pam:").is_ok());
    }

    #[test]
    fn malformed_upids_are_refused() {
        for bad in [
            "",
            "105",
            "UPID:pve1:zz:0001ABCD:65F0A1B2:vzcreate:105:root@pam:",
            "UPID:pve1:000012AB:0001ABCD:65F0A1B2:vzcreate:105:root@pam",
            "UPID::000012AB:0001ABCD:65F0A1B2:vzcreate:105:root@pam:",
            "TASK:pve1:000012AB:0001ABCD:65F0A1B2:vzcreate:105:root@pam:",
        ] {
            assert!(Upid::parse(bad).is_err(), "{bad:?}");
        }
        assert_eq!(Upid::from_data(&Value::Null).unwrap(), None);
        assert!(Upid::from_data(&serde_json::json!(5)).is_err());
    }

    #[test]
    fn ok_and_warnings_succeed() {
        assert!(exit_ok("OK"));
        assert!(exit_ok("WARNINGS: 2"));
        assert!(!exit_ok(
            "unable to create CT 105 - storage 'x' does not exist"
        ));
        assert!(!exit_ok("unexpected status"));
        assert!(!exit_ok(""));
    }
}
