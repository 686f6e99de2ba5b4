//! How we check a node's TLS certificate: the public web PKI (default), a
//! custom CA (a cluster's `pve-root-ca.pem`), or the SHA-256 fingerprint of
//! the node's own certificate, as the PVE web UI shows it under
//! "Certificates" (`AA:BB:…`).
//!
//! reqwest 0.12 (`rustls-tls`) runs rustls 0.23 with the `ring` provider; the
//! fingerprint mode hands it a `rustls::ClientConfig` of ours through
//! [`reqwest::ClientBuilder::use_preconfigured_tls`], whose verifier accepts
//! exactly the pinned leaf certificate (whatever its name, issuer or dates:
//! that is what pinning means, and PVE's self-signed certificates have none
//! a public root would vouch for) and still checks the handshake signatures
//! against it.

use std::fmt;
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, verify_tls12_signature, verify_tls13_signature};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use sha2::{Digest, Sha256};

use crate::DriverError;

/// How the driver verifies the node's TLS certificate.
#[derive(Clone, PartialEq, Eq, Default)]
pub enum TlsVerification {
    /// The public web PKI (Mozilla's roots, `webpki-roots`), with host name
    /// checks: for nodes behind a certificate from a public CA (ACME).
    #[default]
    Default,
    /// Only this CA (PEM, one or more certificates), with host name checks:
    /// for a cluster's own `/etc/pve/pve-root-ca.pem`.
    CaPem(String),
    /// Only the certificate whose SHA-256 fingerprint this is (`AA:BB:…`,
    /// 32 bytes in hex as PVE shows it; colons and case optional).
    Fingerprint(String),
}

impl fmt::Debug for TlsVerification {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Default => f.write_str("Default"),
            Self::CaPem(pem) => write!(f, "CaPem({} bytes)", pem.len()),
            Self::Fingerprint(fp) => f.debug_tuple("Fingerprint").field(fp).finish(),
        }
    }
}

/// Parses a SHA-256 fingerprint: 64 hex digits, optionally in pairs
/// separated by `:`.
///
/// # Errors
/// `Failed` when it is not 32 bytes of hex.
pub(crate) fn parse_fingerprint(text: &str) -> Result<[u8; 32], DriverError> {
    let hex: String = text.chars().filter(|c| *c != ':').collect();
    let bad = || DriverError::Failed {
        reason: format!("TLS fingerprint {text:?} is not a SHA-256 fingerprint (AA:BB:… 32 bytes)"),
    };
    if hex.len() != 64 || !hex.is_ascii() {
        return Err(bad());
    }
    let mut out = [0_u8; 32];
    for (i, byte) in out.iter_mut().enumerate() {
        let pair = hex.get(2 * i..2 * i + 2).ok_or_else(bad)?;
        *byte = u8::from_str_radix(pair, 16).map_err(|_| bad())?;
    }
    Ok(out)
}

/// A verifier that accepts exactly one leaf certificate, by SHA-256.
#[derive(Debug)]
pub(crate) struct FingerprintVerifier {
    expected: [u8; 32],
    provider: Arc<CryptoProvider>,
}

impl FingerprintVerifier {
    pub(crate) fn new(expected: [u8; 32], provider: Arc<CryptoProvider>) -> Self {
        Self { expected, provider }
    }
}

fn hex_colon(bytes: &[u8]) -> String {
    bytes
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(":")
}

impl ServerCertVerifier for FingerprintVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let actual: [u8; 32] = Sha256::digest(end_entity.as_ref()).into();
        if actual == self.expected {
            Ok(ServerCertVerified::assertion())
        } else {
            Err(rustls::Error::General(format!(
                "certificate fingerprint {} is not the configured {}",
                hex_colon(&actual),
                hex_colon(&self.expected)
            )))
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// Applies `tls` to a reqwest client builder.
///
/// # Errors
/// `Failed` for a CA PEM without a certificate or a malformed fingerprint.
pub(crate) fn configure(
    builder: reqwest::ClientBuilder,
    tls: &TlsVerification,
) -> Result<reqwest::ClientBuilder, DriverError> {
    match tls {
        TlsVerification::Default => Ok(builder.use_rustls_tls()),
        TlsVerification::CaPem(pem) => {
            let certs = reqwest::Certificate::from_pem_bundle(pem.as_bytes()).map_err(|e| {
                DriverError::Failed {
                    reason: format!("TLS CA PEM does not parse: {e}"),
                }
            })?;
            if certs.is_empty() {
                return Err(DriverError::Failed {
                    reason: "TLS CA PEM holds no certificate".into(),
                });
            }
            let builder = certs.into_iter().fold(
                builder.use_rustls_tls().tls_built_in_root_certs(false),
                |b, c| b.add_root_certificate(c),
            );
            Ok(builder)
        }
        TlsVerification::Fingerprint(text) => {
            let expected = parse_fingerprint(text)?;
            let provider = Arc::new(rustls::crypto::ring::default_provider());
            let verifier = FingerprintVerifier::new(expected, Arc::clone(&provider));
            let config = rustls::ClientConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()
                .map_err(|e| DriverError::Failed {
                    reason: format!("TLS set-up: {e}"),
                })?
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(verifier))
                .with_no_client_auth();
            Ok(builder.use_preconfigured_tls(config))
        }
    }
}

#[cfg(test)]
mod tests {
    use rcgen::{CertificateParams, KeyPair};

    use super::*;

    fn cert() -> CertificateDer<'static> {
        let key = KeyPair::generate().unwrap();
        let params = CertificateParams::new(vec!["pve1.example".to_owned()]).unwrap();
        params.self_signed(&key).unwrap().der().clone()
    }

    fn verify(v: &FingerprintVerifier, cert: &CertificateDer<'_>) -> Result<(), rustls::Error> {
        v.verify_server_cert(
            cert,
            &[],
            &ServerName::try_from("pve1.example").unwrap(),
            &[],
            UnixTime::now(),
        )
        .map(|_| ())
    }

    #[test]
    fn fingerprints_parse_as_pve_shows_them() {
        let colon = "AA:BB:CC:DD:EE:FF:00:11:22:33:44:55:66:77:88:99:\
                     AA:BB:CC:DD:EE:FF:00:11:22:33:44:55:66:77:88:99";
        let fp = parse_fingerprint(colon).unwrap();
        assert_eq!(fp[0], 0xAA);
        assert_eq!(fp[31], 0x99);
        assert_eq!(
            parse_fingerprint(&colon.to_lowercase().replace(':', "")).unwrap(),
            fp
        );
        assert!(parse_fingerprint("AA:BB").is_err());
        assert!(parse_fingerprint(&"ZZ".repeat(32)).is_err());
        assert!(parse_fingerprint(&"é".repeat(32)).is_err());
    }

    #[test]
    fn the_verifier_accepts_the_pinned_certificate_only() {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let pinned = cert();
        let other = cert();
        let expected: [u8; 32] = Sha256::digest(pinned.as_ref()).into();
        let v = FingerprintVerifier::new(expected, provider);
        assert!(verify(&v, &pinned).is_ok());
        let err = verify(&v, &other).unwrap_err().to_string();
        assert!(err.contains("is not the configured"), "{err}");
        assert!(!v.supported_verify_schemes().is_empty());
    }

    #[test]
    fn bad_tls_settings_fail_at_construction() {
        assert!(
            configure(
                reqwest::Client::builder(),
                &TlsVerification::CaPem("junk".into())
            )
            .is_err()
        );
        assert!(
            configure(
                reqwest::Client::builder(),
                &TlsVerification::Fingerprint("AA".into())
            )
            .is_err()
        );
        assert!(configure(reqwest::Client::builder(), &TlsVerification::Default).is_ok());
    }

    #[test]
    fn debug_does_not_dump_the_ca() {
        let text = format!(
            "{:?}",
            TlsVerification::CaPem("-----BEGIN CERTIFICATE-----".into())
        );
        assert_eq!(text, "CaPem(27 bytes)");
    }
}
