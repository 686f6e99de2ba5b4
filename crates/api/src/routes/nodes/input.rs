//! What comes in: the bodies that register and change a node, and their
//! validation.

use serde::{Deserialize, Serialize};
use tenantry_domain::{
    DriverKind, NodeStatus, ValidationErrors,
    node::{parse_fingerprint, parse_pve_token_id},
};
use utoipa::ToSchema;

use tenantry_provisioning::nodes::Credentials;

/// Credentials of a node. Proxmox: `token_id` and `token_secret` (an API
/// token, `Authorization: PVEAPIToken=USER@REALM!TOKENID=SECRET`). Docker:
/// nothing for the local socket, or a TLS client certificate and key.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CredentialsInput {
    /// Proxmox API token id, `USER@REALM!TOKENID`, e.g. `root@pam!tenantry`.
    pub token_id: Option<String>,
    /// Proxmox API token secret.
    #[schema(format = Password)]
    pub token_secret: Option<String>,
    /// Docker: TLS client certificate (PEM).
    pub client_cert_pem: Option<String>,
    /// Docker: TLS client key (PEM).
    #[schema(format = Password)]
    pub client_key_pem: Option<String>,
}

/// How the node's TLS certificate is verified: the system's roots by default,
/// or a custom CA, or a pinned certificate fingerprint (not both).
#[derive(Debug, Default, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TlsInput {
    /// A CA certificate (PEM) that signed the node's certificate.
    pub ca_pem: Option<String>,
    /// The SHA-256 fingerprint of the node's certificate, `AA:BB:…` (as
    /// Proxmox shows it under Certificates), colons optional.
    pub fingerprint: Option<String>,
}

/// What a node offers Tenantry.
#[derive(Debug, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CapacityInput {
    /// CPU cores.
    pub cpu_cores: i64,
    /// Memory, MiB.
    pub memory_mib: i64,
    /// Storage, GiB.
    pub storage_gib: i64,
    /// Most instances it may run.
    pub max_instances: i64,
}

/// A node to register.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateNode {
    /// `proxmox` or `docker`.
    pub kind: String,
    /// Name, a DNS label; for Proxmox also the PVE node name unless
    /// `pve_node` says otherwise.
    pub name: String,
    /// API URL: `https://host:8006/api2/json` (Proxmox);
    /// `unix:///var/run/docker.sock` or `https://host:2376` (Docker).
    pub api_url: String,
    /// The PVE node name when it differs from `name`.
    pub pve_node: Option<String>,
    /// Credentials (required for Proxmox).
    pub credentials: Option<CredentialsInput>,
    /// TLS verification.
    pub tls: Option<TlsInput>,
    /// Capacity offered.
    pub capacity: CapacityInput,
    /// `online` (default), `maintenance` or `draining`.
    pub status: Option<String>,
}

/// Changes to a node; absent fields stay as they are.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateNode {
    /// New name.
    pub name: Option<String>,
    /// New API URL.
    pub api_url: Option<String>,
    /// New PVE node name.
    pub pve_node: Option<String>,
    /// New credentials (replace the old ones whole).
    pub credentials: Option<CredentialsInput>,
    /// New TLS verification (replaces the old one whole; `{}` = system roots).
    pub tls: Option<TlsInput>,
    /// New capacity.
    pub capacity: Option<CapacityInput>,
    /// `online`, `maintenance` or `draining` (`offline` is the health
    /// check's to set).
    pub status: Option<String>,
}

/// Validated credentials for `kind` (`None` when none were given).
pub(super) fn credentials(
    kind: DriverKind,
    input: Option<&CredentialsInput>,
    required: bool,
    errors: &mut ValidationErrors,
) -> Option<Credentials> {
    let Some(c) = input else {
        if required && kind == DriverKind::Proxmox {
            errors.push(
                "credentials",
                "a Proxmox node needs an API token (token_id, token_secret)",
            );
        }
        return None;
    };
    match kind {
        DriverKind::Proxmox => {
            match c.token_id.as_deref() {
                None => errors.push("credentials.token_id", "is required"),
                Some(t) => {
                    errors.check("credentials.token_id", parse_pve_token_id(t));
                }
            }
            match c.token_secret.as_deref() {
                Some(s) if !s.trim().is_empty() && s.len() <= 256 => {}
                _ => errors.push("credentials.token_secret", "is required (1–256 characters)"),
            }
            if c.client_cert_pem.is_some() || c.client_key_pem.is_some() {
                errors.push("credentials", "client certificates are for Docker nodes");
            }
        }
        DriverKind::Docker => {
            if c.token_id.is_some() || c.token_secret.is_some() {
                errors.push("credentials", "API tokens are for Proxmox nodes");
            }
            if c.client_cert_pem.is_some() != c.client_key_pem.is_some() {
                errors.push(
                    "credentials",
                    "give both client_cert_pem and client_key_pem, or neither",
                );
            }
        }
    }
    Some(Credentials {
        token_id: c.token_id.clone(),
        token_secret: c.token_secret.clone(),
        client_cert_pem: c.client_cert_pem.clone(),
        client_key_pem: c.client_key_pem.clone(),
    })
}

/// Validated TLS settings: (custom CA, fingerprint).
pub(super) fn tls(
    input: Option<&TlsInput>,
    errors: &mut ValidationErrors,
) -> (Option<String>, Option<String>) {
    let Some(t) = input else {
        return (None, None);
    };
    if t.ca_pem.is_some() && t.fingerprint.is_some() {
        errors.push("tls", "give a CA or a fingerprint, not both");
    }
    if let Some(ca) = &t.ca_pem
        && !ca.contains("-----BEGIN CERTIFICATE-----")
    {
        errors.push("tls.ca_pem", "must be a PEM certificate");
    }
    let fp = t
        .fingerprint
        .as_deref()
        .and_then(|f| errors.check("tls.fingerprint", parse_fingerprint(f)));
    (t.ca_pem.clone(), fp)
}

pub(super) fn operator_status(s: &str, errors: &mut ValidationErrors) -> Option<NodeStatus> {
    let status = errors.check("status", s.parse::<NodeStatus>())?;
    if !status.settable_by_operator() {
        errors.push(
            "status",
            "offline is set by the health check; use maintenance to take a node out",
        );
        return None;
    }
    Some(status)
}
