//! Secrets at rest: AES-256-GCM under keys from configuration, each with an
//! id stored beside the ciphertext so keys can rotate (DESIGN.md "Persistence").
//!
//! Configuration format (also used for JWT signing keys): comma-separated
//! `KID:BASE64` entries, the first being the key new data is sealed with;
//! the others only open older data. Keys are 32 random bytes
//! (`openssl rand -base64 32`).

use aes_gcm::{
    Aes256Gcm, Key, Nonce,
    aead::{Aead, AeadCore, KeyInit, OsRng, Payload},
};
use base64::{Engine as _, engine::general_purpose::STANDARD};
use secrecy::{ExposeSecret, SecretBox, SecretString};
use sha2::{Digest, Sha256};

/// Why a key list or a sealed secret was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CryptoError {
    /// The key list is malformed; the message says where.
    #[error("invalid key list: {0}")]
    KeyList(String),
    /// The ciphertext names a key id that is not configured.
    #[error("unknown key id {0:?}")]
    UnknownKey(String),
    /// Authentication failed: wrong key, wrong context or tampered data.
    #[error("cannot decrypt: wrong key or tampered data")]
    Decrypt,
}

/// A key id and its key material.
pub type NamedKey = (String, SecretBox<Vec<u8>>);

/// Parses `KID:BASE64,KID:BASE64…` into `(kid, key bytes)` pairs, first first.
///
/// # Errors
/// [`CryptoError::KeyList`] for an empty list, a missing `:`, bad base64, a
/// duplicate id, or a key shorter than `min_len` bytes.
pub fn parse_key_list(spec: &SecretString, min_len: usize) -> Result<Vec<NamedKey>, CryptoError> {
    let mut keys: Vec<NamedKey> = Vec::new();
    for (i, entry) in spec.expose_secret().split(',').map(str::trim).enumerate() {
        if entry.is_empty() {
            continue;
        }
        let (kid, b64) = entry
            .split_once(':')
            .ok_or_else(|| CryptoError::KeyList(format!("entry {} is not KID:BASE64", i + 1)))?;
        if kid.is_empty()
            || !kid
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            return Err(CryptoError::KeyList(format!(
                "entry {}: the key id must be [A-Za-z0-9_-]+",
                i + 1
            )));
        }
        let bytes = STANDARD
            .decode(b64)
            .map_err(|_| CryptoError::KeyList(format!("key {kid:?} is not valid base64")))?;
        if bytes.len() < min_len {
            return Err(CryptoError::KeyList(format!(
                "key {kid:?} has {} bytes; at least {min_len} are required",
                bytes.len()
            )));
        }
        if keys.iter().any(|(k, _)| k == kid) {
            return Err(CryptoError::KeyList(format!(
                "key id {kid:?} appears twice"
            )));
        }
        keys.push((kid.to_owned(), SecretBox::new(Box::new(bytes))));
    }
    if keys.is_empty() {
        return Err(CryptoError::KeyList("no key configured".into()));
    }
    Ok(keys)
}

/// The AES-256-GCM keys secrets are sealed with.
#[derive(Clone)]
pub struct Keyring {
    keys: Vec<(String, Aes256Gcm)>,
}

impl std::fmt::Debug for Keyring {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let ids: Vec<&str> = self.keys.iter().map(|(k, _)| k.as_str()).collect();
        f.debug_struct("Keyring").field("key_ids", &ids).finish()
    }
}

/// A sealed secret: the key id and `nonce (12 bytes) ‖ ciphertext ‖ tag`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sealed {
    /// Id of the key it was sealed with.
    pub key_id: String,
    /// Nonce followed by the ciphertext and tag.
    pub blob: Vec<u8>,
}

impl Keyring {
    /// Builds a keyring from a `KID:BASE64` list of 32-byte keys.
    ///
    /// # Errors
    /// [`CryptoError::KeyList`], also when a key is not exactly 32 bytes.
    pub fn from_config(spec: &SecretString) -> Result<Self, CryptoError> {
        let keys = parse_key_list(spec, 32)?
            .into_iter()
            .map(|(kid, bytes)| {
                let raw = bytes.expose_secret();
                if raw.len() != 32 {
                    return Err(CryptoError::KeyList(format!(
                        "key {kid:?} must be exactly 32 bytes"
                    )));
                }
                Ok((kid, Aes256Gcm::new(Key::<Aes256Gcm>::from_slice(raw))))
            })
            .collect::<Result<_, _>>()?;
        Ok(Self { keys })
    }

    /// Seals `plaintext` with the current key. `context` (e.g. the owning
    /// row's id) is authenticated but not stored: a blob copied to another row
    /// does not open there.
    pub fn seal(&self, plaintext: &[u8], context: &[u8]) -> Sealed {
        let (key_id, cipher) = &self.keys[0];
        let nonce = Aes256Gcm::generate_nonce(&mut OsRng);
        let mut blob = nonce.to_vec();
        // Encryption with a fresh nonce and an in-memory buffer cannot fail.
        if let Ok(ct) = cipher.encrypt(
            &nonce,
            Payload {
                msg: plaintext,
                aad: context,
            },
        ) {
            blob.extend_from_slice(&ct);
        }
        Sealed {
            key_id: key_id.clone(),
            blob,
        }
    }

    /// Opens a sealed secret.
    ///
    /// # Errors
    /// [`CryptoError::UnknownKey`] or [`CryptoError::Decrypt`].
    pub fn open(&self, sealed: &Sealed, context: &[u8]) -> Result<SecretBox<Vec<u8>>, CryptoError> {
        let (_, cipher) = self
            .keys
            .iter()
            .find(|(k, _)| *k == sealed.key_id)
            .ok_or_else(|| CryptoError::UnknownKey(sealed.key_id.clone()))?;
        if sealed.blob.len() < 12 {
            return Err(CryptoError::Decrypt);
        }
        let (nonce, ct) = sealed.blob.split_at(12);
        cipher
            .decrypt(
                Nonce::from_slice(nonce),
                Payload {
                    msg: ct,
                    aad: context,
                },
            )
            .map(|p| SecretBox::new(Box::new(p)))
            .map_err(|_| CryptoError::Decrypt)
    }
}

/// SHA-256 of `secret`, lowercase hex: how bearer secrets (refresh tokens,
/// API tokens, recovery codes) are stored. They are long random values, so a
/// fast hash is enough (no password stretching needed).
pub fn token_hash(secret: &str) -> String {
    let digest = Sha256::digest(secret.as_bytes());
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// `n` random bytes from the OS, base64url without padding.
pub fn random_token(n: usize) -> String {
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use rand::RngCore;
    let mut bytes = vec![0u8; n];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ring(spec: &str) -> Keyring {
        Keyring::from_config(&SecretString::from(spec.to_owned())).unwrap()
    }

    fn key(byte: u8) -> String {
        STANDARD.encode([byte; 32])
    }

    #[test]
    fn seals_and_opens_with_rotation() {
        let old = ring(&format!("k1:{}", key(1)));
        let sealed = old.seal(b"JBSWY3DPEHPK3PXP", b"user-1");
        assert_eq!(sealed.key_id, "k1");
        assert_ne!(&sealed.blob[12..], b"JBSWY3DPEHPK3PXP");
        let rotated = ring(&format!("k2:{},k1:{}", key(2), key(1)));
        assert_eq!(
            rotated.open(&sealed, b"user-1").unwrap().expose_secret(),
            b"JBSWY3DPEHPK3PXP"
        );
        assert_eq!(rotated.seal(b"x", b"").key_id, "k2");
    }

    #[test]
    fn wrong_context_tampering_and_unknown_keys_fail() {
        let r = ring(&format!("k1:{}", key(1)));
        let mut sealed = r.seal(b"secret", b"user-1");
        assert_eq!(
            r.open(&sealed, b"user-2").unwrap_err(),
            CryptoError::Decrypt
        );
        let last = sealed.blob.len() - 1;
        sealed.blob[last] ^= 1;
        assert_eq!(
            r.open(&sealed, b"user-1").unwrap_err(),
            CryptoError::Decrypt
        );
        sealed.key_id = "k9".into();
        assert_eq!(
            r.open(&sealed, b"user-1").unwrap_err(),
            CryptoError::UnknownKey("k9".into())
        );
    }

    #[test]
    fn key_lists_are_validated() {
        for bad in [
            "",
            "k1",
            "k1:!!",
            &format!("k1:{}", STANDARD.encode([0u8; 16])),
            &format!("k1:{0},k1:{0}", key(1)),
            &format!("a b:{}", key(1)),
        ] {
            assert!(
                Keyring::from_config(&SecretString::from(bad.to_owned())).is_err(),
                "{bad}"
            );
        }
        let dbg = format!("{:?}", ring(&format!("k1:{}", key(7))));
        assert!(!dbg.contains(&key(7)) && dbg.contains("k1"));
    }

    #[test]
    fn tokens_are_random_and_hashes_stable() {
        assert_ne!(random_token(32), random_token(32));
        assert_eq!(random_token(32).len(), 43);
        assert_eq!(
            token_hash("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
