//! What went wrong talking to a Proxmox VE node, and what that means for the
//! caller: retry, give up, or treat as "not there".
//!
//! Proxmox reports almost every handler failure as HTTP 500 with the reason
//! in the status line (and, in newer versions, in the body's `message`):
//! `CT 105 already exists on node 'pve2'`, `CT is locked (create)`,
//! `can't lock file '/run/lock/lxc/pve-config-105.lock' - got timeout`,
//! `Configuration file 'nodes/pve1/lxc/105.conf' does not exist`. So, like
//! the mature clients (proxmoxer, the Terraform providers, Ansible's
//! `community.general.proxmox`), we classify by status **and** message.

use std::collections::BTreeMap;
use std::fmt;

use crate::DriverError;

/// A failed call to the Proxmox API, before classification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ApiError {
    /// No HTTP answer: connection refused or reset, request timeout, a
    /// dropped response. A mutating request may or may not have acted.
    Transport {
        /// `METHOD /path`.
        call: String,
        /// The error chain, as text.
        reason: String,
    },
    /// TLS refused the node's certificate: retrying will not help.
    Tls {
        /// `METHOD /path`.
        call: String,
        /// Why rustls refused it.
        reason: String,
    },
    /// The node answered with a non-2xx status.
    Http {
        /// `METHOD /path`.
        call: String,
        /// HTTP status (Proxmox uses 595/596 for "node unreachable").
        status: u16,
        /// The reason phrase or the body's `message`, trimmed.
        message: String,
        /// The per-parameter `errors` map of a 400.
        errors: BTreeMap<String, String>,
    },
    /// A 2xx whose body is not the `{"data": …}` shape we expect.
    Decode {
        /// `METHOD /path`.
        call: String,
        /// What did not fit.
        reason: String,
    },
}

/// What an [`ApiError`] (or a task's exit status) means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Class {
    /// `CT is locked (backup)`: another task holds the container's lock.
    Locked,
    /// `… got timeout`, `got lock request timeout`: a lock wait timed out.
    LockTimeout,
    /// `CT 105 already exists on node 'pve2'`, `Could not reserve ID 105,
    /// already taken`: the vmid is taken.
    AlreadyExists,
    /// `Configuration file '…/105.conf' does not exist` (also a storage or
    /// template that does not exist; the caller decides what that means).
    DoesNotExist,
    /// `CT 105 already running`.
    AlreadyRunning,
    /// `CT 105 not running`.
    NotRunning,
    /// `resource ID 'ct:105' already defined`: the HA resource exists
    /// (pve-ha-manager `API2/HA/Resources.pm`, create).
    HaAlreadyDefined,
    /// `cannot delete service 'ct:105', not HA managed!`, `no such resource
    /// 'ct:105'`: there is no such HA resource (delete, read).
    HaNotDefined,
    /// HTTP 595/596: the node we were proxied to does not answer.
    NodeUnreachable,
    /// HTTP 401/403.
    Unauthorized,
    /// HTTP 400: a parameter the API rejects.
    InvalidParameters,
    /// No answer at all.
    Network,
    /// HTTP 429, 502, 503, 504: the proxy or API is overloaded or restarting.
    Unavailable,
    /// TLS refused the certificate.
    Tls,
    /// Any other handler error (HTTP 500, 501) or an unreadable answer.
    Other,
}

impl Class {
    /// Whether a retry with back-off may succeed.
    pub(crate) fn is_transient(self) -> bool {
        matches!(
            self,
            Self::Locked
                | Self::LockTimeout
                | Self::NodeUnreachable
                | Self::Network
                | Self::Unavailable
        )
    }
}

/// Classifies a Proxmox error message (a handler's `die` text or a task's
/// exit status) on its own, whatever the HTTP status.
pub(crate) fn classify_message(message: &str) -> Class {
    let m = message.to_ascii_lowercase();
    if m.contains("got timeout") || m.contains("lock request timeout") {
        Class::LockTimeout
    } else if m.contains("is locked") {
        Class::Locked
    } else if m.contains("already exists") || m.contains("already taken") {
        Class::AlreadyExists
    } else if m.contains("already defined") {
        Class::HaAlreadyDefined
    } else if m.contains("not ha managed") || m.contains("no such resource") {
        Class::HaNotDefined
    } else if m.contains("does not exist") {
        Class::DoesNotExist
    } else if m.contains("already running") {
        Class::AlreadyRunning
    } else if m.contains("not running") {
        Class::NotRunning
    } else {
        Class::Other
    }
}

impl ApiError {
    /// What this error means.
    pub(crate) fn class(&self) -> Class {
        match self {
            Self::Transport { .. } => Class::Network,
            Self::Tls { .. } => Class::Tls,
            Self::Decode { .. } => Class::Other,
            Self::Http {
                status, message, ..
            } => match *status {
                401 | 403 => Class::Unauthorized,
                400 => Class::InvalidParameters,
                595 | 596 => Class::NodeUnreachable,
                429 | 502 | 503 | 504 => Class::Unavailable,
                _ => classify_message(message),
            },
        }
    }

    /// Whether the request may have acted although we saw no answer (a
    /// lost response): only a transport error leaves that open.
    pub(crate) fn outcome_unknown(&self) -> bool {
        matches!(self, Self::Transport { .. })
    }

    /// The classified [`DriverError`]: lock and timeout errors, an
    /// unreachable node and network failures are `Transient`; 401/403
    /// `Unauthorized`; a missing container `NotFound`; the rest `Failed`.
    pub(crate) fn into_driver_error(self) -> DriverError {
        let class = self.class();
        let reason = self.to_string();
        match class {
            c if c.is_transient() => DriverError::Transient { reason },
            Class::Unauthorized => DriverError::Unauthorized { reason },
            Class::DoesNotExist => DriverError::NotFound { reason },
            _ => DriverError::Failed { reason },
        }
    }
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Transport { call, reason } => {
                write!(f, "{call}: no answer from the node: {reason}")
            }
            Self::Tls { call, reason } => {
                write!(
                    f,
                    "{call}: the node's TLS certificate was refused: {reason}"
                )
            }
            Self::Decode { call, reason } => write!(f, "{call}: unexpected answer: {reason}"),
            Self::Http {
                call,
                status,
                message,
                errors,
            } => {
                write!(f, "{call}: {message} (HTTP {status})")?;
                if !errors.is_empty() {
                    let list: Vec<String> =
                        errors.iter().map(|(k, v)| format!("{k}: {v}")).collect();
                    write!(f, "; {}", list.join("; "))?;
                }
                Ok(())
            }
        }
    }
}

impl From<ApiError> for DriverError {
    fn from(e: ApiError) -> Self {
        e.into_driver_error()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn http(status: u16, message: &str) -> ApiError {
        ApiError::Http {
            call: "POST /nodes/pve1/lxc".into(),
            status,
            message: message.into(),
            errors: BTreeMap::new(),
        }
    }

    #[test]
    fn real_pve_handler_messages_are_classified() {
        let cases = [
            ("CT 105 already exists on node 'pve2'", Class::AlreadyExists),
            ("VM 105 already exists on node 'pve1'", Class::AlreadyExists),
            (
                "Could not reserve ID 105, already taken",
                Class::AlreadyExists,
            ),
            (
                "Configuration file 'nodes/pve1/lxc/105.conf' does not exist",
                Class::DoesNotExist,
            ),
            ("CT is locked (create)", Class::Locked),
            ("VM is locked (backup)", Class::Locked),
            (
                "can't lock file '/run/lock/lxc/pve-config-105.lock' - got timeout",
                Class::LockTimeout,
            ),
            (
                "cfs-lock 'file-user_cfg' error: got lock request timeout",
                Class::LockTimeout,
            ),
            ("CT 105 already running", Class::AlreadyRunning),
            ("CT 105 not running", Class::NotRunning),
            (
                "resource ID 'ct:105' already defined",
                Class::HaAlreadyDefined,
            ),
            (
                "cannot delete service 'ct:105', not HA managed!",
                Class::HaNotDefined,
            ),
            ("no such resource 'ct:105'", Class::HaNotDefined),
            (
                "resource 'ct:105' does not exist in cluster",
                Class::DoesNotExist,
            ),
            ("unable to parse value of 'rootfs'", Class::Other),
        ];
        for (msg, class) in cases {
            assert_eq!(http(500, msg).class(), class, "{msg}");
        }
    }

    #[test]
    fn statuses_decide_before_messages() {
        assert_eq!(http(401, "").class(), Class::Unauthorized);
        assert_eq!(
            http(403, "Permission check failed").class(),
            Class::Unauthorized
        );
        assert_eq!(
            http(595, "Connection refused").class(),
            Class::NodeUnreachable
        );
        assert_eq!(
            http(596, "Connection timed out").class(),
            Class::NodeUnreachable
        );
        assert_eq!(
            http(400, "Parameter verification failed.").class(),
            Class::InvalidParameters
        );
        assert_eq!(http(503, "Service Unavailable").class(), Class::Unavailable);
        assert_eq!(http(501, "Method not implemented").class(), Class::Other);
    }

    #[test]
    fn driver_errors_follow_the_class() {
        assert!(matches!(
            http(500, "CT is locked (create)").into_driver_error(),
            DriverError::Transient { .. }
        ));
        assert!(matches!(
            http(500, "can't lock file 'x' - got timeout").into_driver_error(),
            DriverError::Transient { .. }
        ));
        assert!(matches!(
            http(595, "No route to host").into_driver_error(),
            DriverError::Transient { .. }
        ));
        assert!(matches!(
            http(401, "authentication failure").into_driver_error(),
            DriverError::Unauthorized { .. }
        ));
        assert!(matches!(
            http(
                500,
                "Configuration file 'nodes/pve1/lxc/9.conf' does not exist"
            )
            .into_driver_error(),
            DriverError::NotFound { .. }
        ));
        assert!(matches!(
            http(500, "CT 105 already exists on node 'pve2'").into_driver_error(),
            DriverError::Failed { .. }
        ));
        let transport = ApiError::Transport {
            call: "GET /version".into(),
            reason: "connection reset".into(),
        };
        assert!(transport.outcome_unknown());
        assert!(transport.into_driver_error().is_transient());
        let tls = ApiError::Tls {
            call: "GET /version".into(),
            reason: "fingerprint mismatch".into(),
        };
        assert!(matches!(
            tls.into_driver_error(),
            DriverError::Failed { .. }
        ));
    }

    #[test]
    fn a_400_reason_lists_each_rejected_parameter() {
        let mut errors = BTreeMap::new();
        errors.insert("rootfs".to_owned(), "invalid format".to_owned());
        errors.insert(
            "foo".to_owned(),
            "property is not defined in schema".to_owned(),
        );
        let e = ApiError::Http {
            call: "POST /nodes/pve1/lxc".into(),
            status: 400,
            message: "Parameter verification failed.".into(),
            errors,
        };
        let text = e.into_driver_error().to_string();
        assert_eq!(
            text,
            "POST /nodes/pve1/lxc: Parameter verification failed. (HTTP 400); \
             foo: property is not defined in schema; rootfs: invalid format"
        );
    }
}
