//! TOTP second factor (RFC 6238: SHA-1, 6 digits, 30-second steps), with a
//! code accepted at most once and one step of clock skew either way.

use chrono::Utc;
use totp_rs::{Algorithm, Secret, TOTP};

/// Seconds per step.
pub const STEP_SECS: u64 = 30;

/// A TOTP generator for a seed.
///
/// # Errors
/// When the seed is shorter than 128 bits.
pub fn build(seed: &[u8], issuer: &str, account: &str) -> anyhow::Result<TOTP> {
    TOTP::new(
        Algorithm::SHA1,
        6,
        0,
        STEP_SECS,
        seed.to_vec(),
        Some(issuer.to_owned()),
        account.to_owned(),
    )
    .map_err(|e| anyhow::anyhow!("TOTP: {e}"))
}

/// A new random 160-bit seed (RFC 4226 §4 recommends 160).
///
/// # Errors
/// Only if the OS random source fails.
pub fn new_seed() -> anyhow::Result<Vec<u8>> {
    Secret::generate_secret()
        .to_bytes()
        .map_err(|e| anyhow::anyhow!("TOTP seed: {e:?}"))
}

/// The time steps a code may belong to now: previous, current, next.
pub fn candidate_steps() -> [u64; 3] {
    let now = u64::try_from(Utc::now().timestamp()).unwrap_or(0);
    let step = now / STEP_SECS;
    [step.saturating_sub(1), step, step + 1]
}

/// The step whose code `code` is, among [`candidate_steps`], compared in constant time.
pub fn matching_step(totp: &TOTP, code: &str) -> Option<u64> {
    let code = code.trim();
    candidate_steps()
        .into_iter()
        .find(|step| totp.check(code, step * STEP_SECS))
}

/// Ten single-use recovery codes, `xxxxx-xxxxx` of base32 letters and digits.
pub fn recovery_codes() -> Vec<String> {
    use rand::Rng as _;
    const ALPHABET: &[u8] = b"abcdefghjkmnpqrstuvwxyz23456789";
    let mut rng = rand::rngs::OsRng;
    (0..10)
        .map(|_| {
            let mut s: String = (0..10)
                .map(|_| char::from(ALPHABET[rng.gen_range(0..ALPHABET.len())]))
                .collect();
            s.insert(5, '-');
            s
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_of_neighbouring_steps_match_and_others_do_not() {
        let seed = new_seed().unwrap();
        assert_eq!(seed.len(), 20);
        let totp = build(&seed, "Tenantry", "a@b.c").unwrap();
        let [prev, now, next] = candidate_steps();
        for step in [prev, now, next] {
            let code = totp.generate(step * STEP_SECS);
            assert_eq!(matching_step(&totp, &code), Some(step));
        }
        let old = totp.generate((prev - 10) * STEP_SECS);
        // An old code matches only if it collides with a current one (1 in 10^6 per step).
        if ![prev, now, next]
            .iter()
            .any(|s| totp.generate(s * STEP_SECS) == old)
        {
            assert_eq!(matching_step(&totp, &old), None);
        }
        assert!(
            totp.get_url()
                .starts_with("otpauth://totp/Tenantry:a%40b.c?secret=")
        );
    }

    #[test]
    fn recovery_codes_are_ten_distinct() {
        let codes = recovery_codes();
        assert_eq!(codes.len(), 10);
        let mut unique = codes.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(unique.len(), 10);
        assert!(
            codes
                .iter()
                .all(|c| c.len() == 11 && c.as_bytes()[5] == b'-')
        );
    }
}
