//! Webhook signatures: `Stripe-Signature: t=TIMESTAMP,v1=HEX[,v1=HEX…]`,
//! where each `v1` is HMAC-SHA256 under a signing secret of
//! `"{t}.{raw body}"` (docs.stripe.com/webhooks#verify-manually). Checked on
//! the raw bytes, before anything is parsed or stored.

use hmac::{Hmac, Mac};
use secrecy::{ExposeSecret, SecretString};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// Why a delivery is refused (each answers `400`, nothing recorded).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    /// No `Stripe-Signature` header.
    #[error("the Stripe-Signature header is missing")]
    Missing,
    /// The header has no timestamp or no `v1` signature.
    #[error("the Stripe-Signature header is malformed")]
    Malformed,
    /// The signed timestamp is older (or newer) than the tolerance: a replay.
    #[error("the signature's timestamp is outside the tolerance")]
    Stale,
    /// No configured secret produced any of the `v1` signatures.
    #[error("no signing secret matches the signature")]
    Mismatch,
}

/// Checks `header` against `body` with any of `secrets`, at `now` (Unix
/// seconds), accepting timestamps at most `tolerance` seconds away.
///
/// # Errors
/// [`SignatureError`].
pub fn verify(
    header: Option<&str>,
    body: &[u8],
    secrets: &[SecretString],
    now: i64,
    tolerance: i64,
) -> Result<(), SignatureError> {
    let header = header.ok_or(SignatureError::Missing)?;
    let mut timestamp = None;
    let mut signatures = Vec::new();
    for part in header.split(',') {
        match part.trim().split_once('=') {
            Some(("t", t)) => timestamp = t.parse::<i64>().ok(),
            Some(("v1", v)) => {
                if let Ok(bytes) = hex::decode(v) {
                    signatures.push(bytes);
                }
            }
            _ => {}
        }
    }
    let t = timestamp.ok_or(SignatureError::Malformed)?;
    if signatures.is_empty() {
        return Err(SignatureError::Malformed);
    }
    let ok = secrets.iter().any(|secret| {
        signatures.iter().any(|sig| {
            mac(secret.expose_secret(), t, body)
                .map(|m| m.verify_slice(sig).is_ok())
                .unwrap_or(false)
        })
    });
    if !ok {
        return Err(SignatureError::Mismatch);
    }
    // Checked after the signature, so a forged header learns nothing from timing.
    if (now - t).abs() > tolerance {
        return Err(SignatureError::Stale);
    }
    Ok(())
}

fn mac(secret: &str, t: i64, body: &[u8]) -> Option<HmacSha256> {
    let mut m = HmacSha256::new_from_slice(secret.as_bytes()).ok()?;
    m.update(t.to_string().as_bytes());
    m.update(b".");
    m.update(body);
    Some(m)
}

/// The `Stripe-Signature` header Stripe would send for `body` signed with
/// `secret` at `t` (for tests, the stand-in and benchmarks).
pub fn sign(body: &[u8], secret: &str, t: i64) -> String {
    let sig = mac(secret, t, body)
        .map(|m| hex::encode(m.finalize().into_bytes()))
        .unwrap_or_default();
    format!("t={t},v1={sig}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secrets(s: &[&str]) -> Vec<SecretString> {
        s.iter()
            .map(|s| SecretString::from(s.to_string()))
            .collect()
    }

    #[test]
    fn a_signature_of_any_configured_secret_verifies() {
        let body = br#"{"id":"evt_1"}"#;
        let header = sign(body, "whsec_new", 1000);
        assert_eq!(
            verify(
                Some(&header),
                body,
                &secrets(&["whsec_old", "whsec_new"]),
                1000,
                300
            ),
            Ok(())
        );
        // Stripe sends one v1 per active secret while a secret is being rolled.
        let other = sign(body, "whsec_other", 1000);
        let both = format!("{header},v1={}", other.split_once(",v1=").unwrap().1);
        assert_eq!(
            verify(Some(&both), body, &secrets(&["whsec_other"]), 1100, 300),
            Ok(())
        );
    }

    #[test]
    fn forged_stale_and_malformed_signatures_are_refused() {
        let body = br#"{"id":"evt_1"}"#;
        let s = secrets(&["whsec_a"]);
        let header = sign(body, "whsec_a", 1000);
        assert_eq!(
            verify(Some(&header), b"{\"id\":\"evt_2\"}", &s, 1000, 300),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            verify(Some(&sign(body, "whsec_b", 1000)), body, &s, 1000, 300),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            verify(Some(&header), body, &s, 1301, 300),
            Err(SignatureError::Stale)
        );
        assert_eq!(verify(Some(&header), body, &s, 1300, 300), Ok(()));
        assert_eq!(
            verify(None, body, &s, 1000, 300),
            Err(SignatureError::Missing)
        );
        assert_eq!(
            verify(Some("v1=abcd"), body, &s, 1000, 300),
            Err(SignatureError::Malformed)
        );
        assert_eq!(
            verify(Some("t=1000"), body, &s, 1000, 300),
            Err(SignatureError::Malformed)
        );
    }
}
