//! Where the engine listens and how we reach it: the local unix socket, or
//! TCP with TLS (the engine's `--tlsverify` mode: our CA, a client
//! certificate and key).
//!
//! bollard's own TLS mode reads the CA, certificate and key from files on
//! every handshake, loads the OS trust store, and panics without a
//! process-wide rustls provider. We keep the node's PEMs in memory instead:
//! a hyper client of our own with a rustls `ClientConfig` (ring provider,
//! as the Proxmox driver's) is handed to bollard as a custom transport.

use std::sync::Arc;

use bollard::{API_DEFAULT_VERSION, BollardRequest, Docker};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use secrecy::{ExposeSecret, SecretString};

use crate::DriverError;
use crate::proxmox::TlsVerification;
use crate::proxmox::tls::{FingerprintVerifier, parse_fingerprint};

/// Where the Docker engine's API listens, parsed from the node's `api_url`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoint {
    /// `unix:///var/run/docker.sock`: the engine on this host.
    Unix {
        /// Path of the socket.
        path: String,
    },
    /// `tcp://host:2376` or `https://host:2376`: a remote engine, always
    /// over TLS (an engine on plain TCP is root on its host for anyone who
    /// reaches the port, so we do not speak to one).
    Tls {
        /// Host name or IP address (the server certificate must name it).
        host: String,
        /// Port (2376 by convention).
        port: u16,
    },
}

impl Endpoint {
    /// Parses `unix:///path`, `tcp://host:port` or `https://host:port`
    /// (port 2376 when left out).
    ///
    /// # Errors
    /// `Failed` for another scheme (`http://` included) or a malformed
    /// address.
    pub fn parse(url: &str) -> Result<Self, DriverError> {
        let bad = |why: &str| DriverError::Failed {
            reason: format!("Docker API URL {url:?}: {why}"),
        };
        if let Some(path) = url.strip_prefix("unix://") {
            if !path.starts_with('/') {
                return Err(bad("a unix socket needs an absolute path"));
            }
            return Ok(Self::Unix { path: path.into() });
        }
        let rest = url
            .strip_prefix("tcp://")
            .or_else(|| url.strip_prefix("https://"))
            .ok_or_else(|| {
                bad("use unix:///path, tcp://host:2376 or https://host:2376 (TLS only)")
            })?;
        let rest = rest.trim_end_matches('/');
        let (host, port) = if let Some(end) = rest.strip_prefix('[').and_then(|r| r.find(']')) {
            // [v6]:port
            let (host, after) = rest.split_at(end + 2);
            match after.strip_prefix(':') {
                Some(p) => (
                    host,
                    p.parse().map_err(|_| bad("the port is not a number"))?,
                ),
                None if after.is_empty() => (host, 2376),
                None => return Err(bad("junk after the address")),
            }
        } else {
            match rest.split_once(':') {
                Some((_, p)) if p.contains(':') => {
                    return Err(bad("write an IPv6 address in brackets"));
                }
                Some((h, p)) => (h, p.parse().map_err(|_| bad("the port is not a number"))?),
                None => (rest, 2376),
            }
        };
        if host.is_empty() || host.contains('/') {
            return Err(bad("no host"));
        }
        Ok(Self::Tls {
            host: host.into(),
            port,
        })
    }

    /// The host where published container ports answer: `127.0.0.1` for
    /// the local engine, else the engine's host.
    #[must_use]
    pub fn probe_host(&self) -> String {
        match self {
            Self::Unix { .. } => "127.0.0.1".into(),
            Self::Tls { host, .. } => host.trim_start_matches('[').trim_end_matches(']').into(),
        }
    }

    /// `DOCKER_HOST` for the compose CLI.
    #[must_use]
    pub fn docker_host(&self) -> String {
        match self {
            Self::Unix { path } => format!("unix://{path}"),
            Self::Tls { host, port } => format!("tcp://{host}:{port}"),
        }
    }
}

/// The TLS material of a remote engine.
#[derive(Clone)]
pub(crate) struct TlsMaterial<'a> {
    pub verification: &'a TlsVerification,
    pub client_cert_pem: Option<&'a str>,
    pub client_key_pem: Option<&'a SecretString>,
}

/// A bollard client for `endpoint`, not yet version-negotiated. Makes no
/// call.
///
/// # Errors
/// `Failed` for unusable TLS material.
pub(crate) fn client(
    endpoint: &Endpoint,
    tls: &TlsMaterial<'_>,
    timeout_secs: u64,
) -> Result<Docker, DriverError> {
    match endpoint {
        Endpoint::Unix { path } => {
            // `connect_with_socket` refuses a missing socket up front; the
            // engine may start later, so that is transient.
            Docker::connect_with_socket(path, timeout_secs, API_DEFAULT_VERSION).map_err(|e| {
                DriverError::Transient {
                    reason: format!("Docker socket {path}: {e}"),
                }
            })
        }
        Endpoint::Tls { host, port } => {
            let config = tls_config(tls)?;
            let mut http = HttpConnector::new();
            http.enforce_http(false);
            let https = hyper_rustls::HttpsConnectorBuilder::new()
                .with_tls_config(config)
                .https_only()
                .enable_http1()
                .wrap_connector(http);
            let client = Client::builder(TokioExecutor::new()).build(https);
            let transport = move |req: BollardRequest| {
                let call = client.request(req);
                async move { call.await.map_err(bollard::errors::Error::from) }
            };
            Docker::connect_with_custom_transport(
                transport,
                Some(format!("https://{host}:{port}")),
                timeout_secs,
                API_DEFAULT_VERSION,
            )
            .map_err(|e| DriverError::Failed {
                reason: format!("Docker client for {host}:{port}: {e}"),
            })
        }
    }
}

fn failed(what: &str) -> impl Fn(String) -> DriverError + '_ {
    move |e| DriverError::Failed {
        reason: format!("Docker TLS {what}: {e}"),
    }
}

/// The rustls configuration: server verification by `verification`, and
/// the client certificate when both certificate and key are given.
///
/// # Errors
/// `Failed` for PEMs that do not parse, a certificate without its key (or
/// the reverse), a malformed fingerprint.
pub(crate) fn tls_config(tls: &TlsMaterial<'_>) -> Result<rustls::ClientConfig, DriverError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(Arc::clone(&provider))
        .with_safe_default_protocol_versions()
        .map_err(|e| failed("set-up")(e.to_string()))?;
    let builder = match tls.verification {
        TlsVerification::Default => {
            let mut roots = rustls::RootCertStore::empty();
            roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
            builder.with_root_certificates(roots)
        }
        TlsVerification::CaPem(pem) => {
            let mut roots = rustls::RootCertStore::empty();
            for cert in CertificateDer::pem_slice_iter(pem.as_bytes()) {
                let cert = cert.map_err(|e| failed("CA PEM")(e.to_string()))?;
                roots
                    .add(cert)
                    .map_err(|e| failed("CA certificate")(e.to_string()))?;
            }
            if roots.is_empty() {
                return Err(failed("CA PEM")("holds no certificate".into()));
            }
            builder.with_root_certificates(roots)
        }
        TlsVerification::Fingerprint(text) => {
            let expected = parse_fingerprint(text)?;
            builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(FingerprintVerifier::new(
                    expected, provider,
                )))
        }
    };
    match (tls.client_cert_pem, tls.client_key_pem) {
        (Some(cert), Some(key)) => {
            let certs = CertificateDer::pem_slice_iter(cert.as_bytes())
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| failed("client certificate PEM")(e.to_string()))?;
            if certs.is_empty() {
                return Err(failed("client certificate PEM")(
                    "holds no certificate".into(),
                ));
            }
            let key = PrivateKeyDer::from_pem_slice(key.expose_secret().as_bytes())
                // The parser's message may quote the key; say only that it failed.
                .map_err(|_| failed("client key PEM")("does not parse".into()))?;
            builder
                .with_client_auth_cert(certs, key)
                .map_err(|e| failed("client certificate")(e.to_string()))
        }
        (None, None) => Ok(builder.with_no_client_auth()),
        _ => Err(failed("client certificate")(
            "a client certificate needs its key, and a key its certificate".into(),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_parse() {
        assert_eq!(
            Endpoint::parse("unix:///var/run/docker.sock").unwrap(),
            Endpoint::Unix {
                path: "/var/run/docker.sock".into()
            }
        );
        assert_eq!(
            Endpoint::parse("tcp://docker1.example:2376").unwrap(),
            Endpoint::Tls {
                host: "docker1.example".into(),
                port: 2376
            }
        );
        assert_eq!(
            Endpoint::parse("https://10.0.0.5/").unwrap(),
            Endpoint::Tls {
                host: "10.0.0.5".into(),
                port: 2376
            }
        );
        assert_eq!(
            Endpoint::parse("https://[::1]:3000").unwrap(),
            Endpoint::Tls {
                host: "[::1]".into(),
                port: 3000
            }
        );
        assert_eq!(
            Endpoint::parse("tcp://h:2376").unwrap().probe_host(),
            "h".to_owned()
        );
        for bad in [
            "http://docker1:2375",
            "unix://relative.sock",
            "tcp://:2376",
            "tcp://h:port",
            "ftp://h",
        ] {
            assert!(Endpoint::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn tls_material_is_checked_up_front() {
        let default = TlsVerification::Default;
        let ok = TlsMaterial {
            verification: &default,
            client_cert_pem: None,
            client_key_pem: None,
        };
        assert!(tls_config(&ok).is_ok());
        let junk = TlsVerification::CaPem("junk".into());
        assert!(
            tls_config(&TlsMaterial {
                verification: &junk,
                ..ok.clone()
            })
            .is_err()
        );
        let key = SecretString::from("-----BEGIN PRIVATE KEY-----\nsecret\n");
        let err = tls_config(&TlsMaterial {
            client_key_pem: Some(&key),
            ..ok.clone()
        })
        .unwrap_err()
        .to_string();
        assert!(err.contains("needs its key"), "{err}");
    }
}
