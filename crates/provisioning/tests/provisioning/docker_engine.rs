//! The engine as a node: its version (API negotiated down to what it
//! speaks), host capacity, running containers and per-instance usage; and
//! a remote engine reached over TLS with a client certificate (a mutual-TLS
//! proxy of ours in front of the local socket, as `dockerd --tlsverify`
//! would be).

use std::sync::Arc;

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, ExtendedKeyUsagePurpose, IsCa, KeyPair,
};
use rustls::RootCertStore;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use rustls::server::WebPkiClientVerifier;
use secrecy::SecretString;
use tenantry_provisioning::docker::{DockerConfig, DockerDriver, TlsVerification};
use tenantry_provisioning::{Driver, InstanceState};
use tokio::net::{TcpListener, UnixStream};
use tokio_rustls::TlsAcceptor;

use crate::docker_support::{TestDocker, config, engine, free_port};

#[tokio::test]
async fn node_status_reports_the_engine_version() {
    let driver = DockerDriver::new(config()).unwrap();
    let status = driver.node_status().await.unwrap();
    let version = engine().await.version().await.unwrap();
    assert!(status.online);
    assert_eq!(Some(status.version), version.version);
}

#[tokio::test]
async fn node_metrics_and_instance_status_come_from_the_engine() {
    let t = TestDocker::start().await;
    let before = t.driver.node_metrics().await.unwrap();
    assert!(before.cpu_cores >= 1);
    assert!(before.memory_total_bytes > 1 << 30);
    assert!(before.disk_total_bytes > before.disk_used_bytes);
    assert!(before.disk_used_bytes > 0);
    assert!((0.0..=1.0).contains(&before.cpu_usage));

    let inst = t
        .driver
        .create_instance(&t.spec(Some(free_port())))
        .await
        .unwrap();
    let status = t.driver.instance_status(&inst).await.unwrap();
    assert_eq!(status.state, InstanceState::Running);
    let memory = status.memory_bytes.unwrap();
    assert!(memory > 0 && memory < 128 << 20, "{memory}");
    assert!(status.cpu.unwrap() >= 0.0);
    assert!(status.uptime_secs.unwrap() < 120);

    let after = t.driver.node_metrics().await.unwrap();
    // Other tests run beside this one: at least ours more.
    assert!(after.instances_running >= 1);
    assert!(after.memory_used_bytes > 0);

    t.driver.stop(&inst).await.unwrap();
    let stopped = t.driver.instance_status(&inst).await.unwrap();
    assert_eq!(stopped.state, InstanceState::Stopped);
    assert_eq!(stopped.cpu, None);
    assert_eq!(stopped.uptime_secs, None);
}

/// A CA, a server certificate for 127.0.0.1 and a client certificate, as
/// `dockerd --tlsverify` is set up.
struct Pki {
    ca_pem: String,
    server: (CertificateDer<'static>, PrivateKeyDer<'static>),
    client_cert_pem: String,
    client_key_pem: String,
    ca: CertificateDer<'static>,
}

fn make_pki() -> Pki {
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().unwrap()).unwrap();
    let server_key = KeyPair::generate().unwrap();
    let server = CertificateParams::new(vec!["127.0.0.1".to_owned()])
        .unwrap()
        .signed_by(&server_key, &ca)
        .unwrap();
    let client_key = KeyPair::generate().unwrap();
    let mut client_params = CertificateParams::new(vec!["tenantry".to_owned()]).unwrap();
    client_params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    let client = client_params.signed_by(&client_key, &ca).unwrap();
    Pki {
        ca_pem: ca.pem(),
        ca: ca.der().clone(),
        server: (
            server.der().clone(),
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(server_key.serialize_der())),
        ),
        client_cert_pem: client.pem(),
        client_key_pem: client_key.serialize_pem(),
    }
}

/// A TLS listener that requires a client certificate from `pki`'s CA and
/// forwards to the local engine's socket. Returns its port.
async fn tls_proxy(pki: &Pki) -> u16 {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = RootCertStore::empty();
    roots.add(pki.ca.clone()).unwrap();
    let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
        .build()
        .unwrap();
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_client_cert_verifier(verifier)
        .with_single_cert(vec![pki.server.0.clone()], pki.server.1.clone_key())
        .unwrap();
    let acceptor = TlsAcceptor::from(Arc::new(config));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let Ok(mut sock) = UnixStream::connect("/var/run/docker.sock").await else {
                    return;
                };
                let _ = tokio::io::copy_bidirectional(&mut tls, &mut sock).await;
            });
        }
    });
    port
}

fn remote(port: u16, pki: &Pki, with_client_cert: bool) -> DockerDriver {
    let mut cfg = config();
    cfg.api_url = format!("tcp://127.0.0.1:{port}");
    cfg.tls = TlsVerification::CaPem(pki.ca_pem.clone());
    if with_client_cert {
        cfg.client_cert_pem = Some(pki.client_cert_pem.clone());
        cfg.client_key_pem = Some(SecretString::from(pki.client_key_pem.clone()));
    }
    cfg.request_timeout = std::time::Duration::from_secs(10);
    DockerDriver::new(cfg).unwrap()
}

#[tokio::test]
async fn a_remote_engine_answers_over_tls_with_the_client_certificate_only() {
    let pki = make_pki();
    let port = tls_proxy(&pki).await;
    let version = engine().await.version().await.unwrap().version;

    let status = remote(port, &pki, true).node_status().await.unwrap();
    assert_eq!(Some(status.version), version);

    let refused = remote(port, &pki, false).node_status().await.unwrap_err();
    assert!(!refused.to_string().contains("BEGIN"), "{refused}");

    // Another CA: the engine's certificate is not trusted.
    let other = make_pki();
    let mut cfg = DockerConfig::new(format!("https://127.0.0.1:{port}"));
    cfg.tls = TlsVerification::CaPem(other.ca_pem.clone());
    cfg.client_cert_pem = Some(pki.client_cert_pem.clone());
    cfg.client_key_pem = Some(SecretString::from(pki.client_key_pem.clone()));
    cfg.retry = config().retry;
    let untrusted = DockerDriver::new(cfg).unwrap().node_status().await;
    assert!(untrusted.is_err(), "{untrusted:?}");
}
