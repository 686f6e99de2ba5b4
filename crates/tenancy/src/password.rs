//! Password hashing with argon2id (RFC 9106), parameters from configuration.

use argon2::{
    Algorithm, Argon2, Params, PasswordHash, PasswordHasher as _, PasswordVerifier as _, Version,
    password_hash::{SaltString, rand_core::OsRng},
};
use secrecy::{ExposeSecret, SecretString};

/// Shortest password accepted (NIST SP 800-63B §5.1.1.2: at least 8).
pub const MIN_PASSWORD_LEN: usize = 12;
/// Longest password accepted (hashing cost is bounded).
pub const MAX_PASSWORD_LEN: usize = 256;

/// Hashes and verifies passwords.
pub struct Hasher {
    argon: Argon2<'static>,
    /// A hash of a random password, verified against when the user does not
    /// exist so a wrong email costs the same time as a wrong password.
    dummy: String,
}

impl std::fmt::Debug for Hasher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hasher")
            .field("params", self.argon.params())
            .finish_non_exhaustive()
    }
}

impl Hasher {
    /// A hasher with these argon2id parameters (memory KiB, iterations, lanes).
    ///
    /// # Errors
    /// When the parameters are out of argon2's ranges.
    pub fn new(memory_kib: u32, iterations: u32, parallelism: u32) -> anyhow::Result<Self> {
        let params = Params::new(memory_kib, iterations, parallelism, None)
            .map_err(|e| anyhow::anyhow!("invalid argon2 parameters: {e}"))?;
        let argon = Argon2::new(Algorithm::Argon2id, Version::V0x13, params);
        let dummy = argon
            .hash_password(
                tenantry_store::crypto::random_token(16).as_bytes(),
                &SaltString::generate(&mut OsRng),
            )
            .map_err(|e| anyhow::anyhow!("argon2: {e}"))?
            .to_string();
        Ok(Self { argon, dummy })
    }

    /// The PHC string (`$argon2id$v=19$m=…`) of `password` with a fresh salt.
    ///
    /// # Errors
    /// Only on an argon2 internal error.
    pub fn hash(&self, password: &SecretString) -> anyhow::Result<String> {
        Ok(self
            .argon
            .hash_password(
                password.expose_secret().as_bytes(),
                &SaltString::generate(&mut OsRng),
            )
            .map_err(|e| anyhow::anyhow!("argon2: {e}"))?
            .to_string())
    }

    /// Whether `password` matches `phc` (the parameters stored in `phc` are used).
    /// `None` verifies against a dummy hash and returns false, in the same time.
    pub fn verify(&self, password: &SecretString, phc: Option<&str>) -> bool {
        let (phc, real) = match phc {
            Some(p) => (p, true),
            None => (self.dummy.as_str(), false),
        };
        let Ok(parsed) = PasswordHash::new(phc) else {
            return false;
        };
        let ok = self
            .argon
            .verify_password(password.expose_secret().as_bytes(), &parsed)
            .is_ok();
        ok && real
    }
}

/// Hashes on a blocking thread (argon2 is deliberately slow).
///
/// # Errors
/// An argon2 or task failure (an internal error).
pub async fn hash_blocking(
    hasher: &std::sync::Arc<Hasher>,
    password: &SecretString,
) -> anyhow::Result<String> {
    let hasher = std::sync::Arc::clone(hasher);
    let password = password.clone();
    tokio::task::spawn_blocking(move || hasher.hash(&password)).await?
}

/// Verifies on a blocking thread; `None` verifies against the dummy hash.
///
/// # Errors
/// A task failure (an internal error).
pub async fn verify_blocking(
    hasher: &std::sync::Arc<Hasher>,
    password: &SecretString,
    phc: Option<String>,
) -> anyhow::Result<bool> {
    let hasher = std::sync::Arc::clone(hasher);
    let password = password.clone();
    Ok(tokio::task::spawn_blocking(move || hasher.verify(&password, phc.as_deref())).await?)
}

/// Checks a new password's length.
///
/// # Errors
/// A message saying the bounds.
pub fn check_new_password(password: &SecretString) -> Result<(), String> {
    let n = password.expose_secret().chars().count();
    if (MIN_PASSWORD_LEN..=MAX_PASSWORD_LEN).contains(&n) {
        Ok(())
    } else {
        Err(format!(
            "must be {MIN_PASSWORD_LEN} to {MAX_PASSWORD_LEN} characters"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_are_argon2id_salted_and_verify() {
        let h = Hasher::new(1024, 1, 1).unwrap();
        let pw = SecretString::from("correct horse battery staple".to_owned());
        let a = h.hash(&pw).unwrap();
        let b = h.hash(&pw).unwrap();
        assert!(a.starts_with("$argon2id$v=19$m=1024,t=1,p=1$"));
        assert_ne!(a, b, "fresh salt each time");
        assert!(h.verify(&pw, Some(&a)));
        assert!(!h.verify(&SecretString::from("wrong".to_owned()), Some(&a)));
        assert!(!h.verify(&pw, None));
        assert!(!h.verify(&pw, Some("not a hash")));
    }

    #[test]
    fn new_passwords_have_bounds() {
        assert!(check_new_password(&SecretString::from("short".to_owned())).is_err());
        assert!(check_new_password(&SecretString::from("long enough pw".to_owned())).is_ok());
        assert!(check_new_password(&SecretString::from("x".repeat(257))).is_err());
    }
}
