//! A tenant's database and role name (`t_<slug>`): validated, derived
//! from the tenant slug (a hash suffix for long slugs), and quoted as an SQL
//! identifier.

use std::fmt;
use std::str::FromStr;

use postgres_protocol::escape::escape_identifier;
use sha2::{Digest, Sha256};
use tenantry_domain::TenantSlug;

/// A tenant's database name, which is also its role name: `t_` followed by
/// the tenant slug with `-` turned into `_` (`acme-corp` → `t_acme_corp`).
///
/// At most 63 bytes (PostgreSQL's `NAMEDATALEN - 1`) of `[a-z0-9_]`, starting
/// with `t_`: the prefix keeps tenant objects apart from the server's own
/// (`postgres`, `pg_*` roles), so dropping a [`TenantDbName`] can never drop
/// anything else. Safe to splice into SQL once quoted as an identifier.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TenantDbName(String);

/// Why a string is not a [`TenantDbName`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TenantDbNameError {
    /// Longer than 63 bytes (PostgreSQL would silently truncate it).
    #[error("must be at most 63 bytes (got {0})")]
    TooLong(usize),
    /// Does not start with `t_` followed by at least one character.
    #[error("must start with \"t_\" and name something after it")]
    Prefix,
    /// A character outside `[a-z0-9_]`.
    #[error("may contain only lowercase letters, digits and '_' (found {0:?})")]
    Character(char),
}

impl TenantDbName {
    /// Longest name PostgreSQL keeps whole (`NAMEDATALEN - 1`), in bytes.
    pub const MAX_LEN: usize = 63;
    /// Prefix of every tenant database and role.
    pub const PREFIX: &'static str = "t_";
    /// Slugs up to this length map directly (`t_` + 60 = 62 bytes); longer
    /// ones get a hash suffix and exactly 63 bytes, so the two forms never
    /// collide.
    const DIRECT_MAX: usize = 60;

    /// Validates a stored name.
    ///
    /// # Errors
    /// [`TenantDbNameError`] naming the broken rule.
    pub fn parse(s: &str) -> Result<Self, TenantDbNameError> {
        if s.len() > Self::MAX_LEN {
            return Err(TenantDbNameError::TooLong(s.len()));
        }
        if s.len() <= Self::PREFIX.len() || !s.starts_with(Self::PREFIX) {
            return Err(TenantDbNameError::Prefix);
        }
        if let Some(c) = s
            .chars()
            .find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '_'))
        {
            return Err(TenantDbNameError::Character(c));
        }
        Ok(Self(s.to_owned()))
    }

    /// The name for a tenant: `t_<slug, '-' → '_'>`. A slug longer than 60
    /// characters keeps its first 48, then `_` and 12 hex digits of the
    /// SHA-256 of the whole slug (63 bytes in all), so distinct slugs give
    /// distinct names.
    pub fn from_slug(slug: &TenantSlug) -> Self {
        let s = slug.as_str();
        let underscored = |t: &str| t.replace('-', "_");
        if s.len() <= Self::DIRECT_MAX {
            return Self(format!("{}{}", Self::PREFIX, underscored(s)));
        }
        let digest = Sha256::digest(s.as_bytes());
        let hex: String = digest.iter().take(6).map(|b| format!("{b:02x}")).collect();
        // Slugs are ASCII, so byte 48 is a character boundary.
        let head = s.get(..48).unwrap_or(s);
        Self(format!("{}{}_{hex}", Self::PREFIX, underscored(head)))
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The name quoted as an SQL identifier.
    pub(super) fn ident(&self) -> String {
        escape_identifier(&self.0)
    }
}

impl AsRef<str> for TenantDbName {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for TenantDbName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for TenantDbName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TenantDbName({:?})", self.0)
    }
}

impl FromStr for TenantDbName {
    type Err = TenantDbNameError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}
