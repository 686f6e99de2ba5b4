//! The driver's TLS modes against a real TLS listener (pve-sim speaks plain
//! HTTP): a pinned fingerprint, a custom CA, the public roots.

use std::sync::Arc;

use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use secrecy::SecretString;
use sha2::{Digest, Sha256};
use tenantry_provisioning::proxmox::{ProxmoxConfig, ProxmoxDriver, TlsVerification};
use tenantry_provisioning::{Driver, DriverError};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

/// A node's certificate for `127.0.0.1`, signed by a CA of its own (as
/// PVE's `pve-ssl.pem` is signed by the cluster's `pve-root-ca.pem`).
struct NodeCert {
    ca_pem: String,
    leaf: CertificateDer<'static>,
    key: PrivateKeyDer<'static>,
}

fn node_cert() -> NodeCert {
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().unwrap()).unwrap();
    let leaf_key = KeyPair::generate().unwrap();
    let leaf = CertificateParams::new(vec!["127.0.0.1".to_owned()])
        .unwrap()
        .signed_by(&leaf_key, &ca)
        .unwrap();
    NodeCert {
        ca_pem: ca.pem(),
        leaf: leaf.der().clone(),
        key: PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(leaf_key.serialize_der())),
    }
}

/// Serves `GET /version` and `GET /nodes/pve1/status` over TLS; returns the
/// API base URL.
async fn serve(cert: &NodeCert) -> String {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![cert.leaf.clone()], cert.key.clone_key())
        .unwrap();
    let acceptor = TlsAcceptor::from(Arc::new(config));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let mut head = Vec::new();
                let mut buf = [0_u8; 1024];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    match tls.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => head.extend_from_slice(&buf[..n]),
                    }
                }
                let head = String::from_utf8_lossy(&head);
                let body = if head.starts_with("GET /api2/json/version ") {
                    r#"{"data":{"version":"9.1.1","release":"9.1","repoid":"0123abcd"}}"#
                } else if head.starts_with("GET /api2/json/nodes/pve1/status ") {
                    r#"{"data":{"cpu":0.01,"pveversion":"pve-manager/9.1.1/0123abcd"}}"#
                } else {
                    r#"{"data":null}"#
                };
                let response = format!(
                    "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\
                     Connection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = tls.write_all(response.as_bytes()).await;
                let _ = tls.shutdown().await;
            });
        }
    });
    format!("https://{addr}/api2/json")
}

fn driver(url: &str, tls: TlsVerification) -> ProxmoxDriver {
    let mut cfg = ProxmoxConfig::new(
        url,
        "pve1",
        "tenantry@pve!prov",
        SecretString::from("secret"),
    );
    cfg.tls = tls;
    cfg.retry.attempts = 1;
    ProxmoxDriver::new(cfg).unwrap()
}

fn fingerprint(cert: &CertificateDer<'_>) -> String {
    Sha256::digest(cert.as_ref())
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(":")
}

#[tokio::test]
async fn a_pinned_fingerprint_accepts_that_certificate_only() {
    let cert = node_cert();
    let url = serve(&cert).await;

    let pinned = driver(&url, TlsVerification::Fingerprint(fingerprint(&cert.leaf)));
    let status = pinned.node_status().await.unwrap();
    assert_eq!(status.version, "9.1.1");
    assert!(status.online);

    let other = node_cert();
    let wrong = driver(&url, TlsVerification::Fingerprint(fingerprint(&other.leaf)));
    let err = wrong.node_status().await.unwrap_err();
    let DriverError::Failed { reason } = &err else {
        panic!("a pinning mismatch is no transient error: {err:?}");
    };
    assert!(reason.contains("fingerprint"), "{reason}");
}

#[tokio::test]
async fn a_custom_ca_verifies_the_node_certificate() {
    let cert = node_cert();
    let url = serve(&cert).await;
    let with_ca = driver(&url, TlsVerification::CaPem(cert.ca_pem.clone()));
    assert_eq!(with_ca.node_status().await.unwrap().version, "9.1.1");

    let other = node_cert();
    let wrong_ca = driver(&url, TlsVerification::CaPem(other.ca_pem));
    let err = wrong_ca.node_status().await.unwrap_err();
    assert!(matches!(err, DriverError::Failed { .. }), "{err:?}");
}

#[tokio::test]
async fn the_default_refuses_a_certificate_no_public_root_signed() {
    let cert = node_cert();
    let url = serve(&cert).await;
    let err = driver(&url, TlsVerification::Default)
        .node_status()
        .await
        .unwrap_err();
    let DriverError::Failed { reason } = &err else {
        panic!("expected Failed, got {err:?}");
    };
    assert!(reason.contains("certificate"), "{reason}");
}
