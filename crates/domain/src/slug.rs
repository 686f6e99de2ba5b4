//! Slugs: the DNS-label-shaped names of products (and, later, tenant subdomains).

use std::fmt;

/// A lowercase DNS label: 3–63 characters of `[a-z0-9-]`, not starting or
/// ending with a hyphen (RFC 1035 §2.3.1 label rules, lowercased).
///
/// Used as a product's slug (`odoo`, `inventory`) and, with extra reserved
/// names, as a tenant's subdomain.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(transparent)]
pub struct Slug(String);

/// Why a string is not a [`Slug`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SlugError {
    /// Fewer than 3 or more than 63 characters.
    #[error("must be 3 to 63 characters long (got {0})")]
    Length(usize),
    /// A character outside `[a-z0-9-]`.
    #[error("may contain only lowercase letters, digits and hyphens (found {0:?})")]
    Character(char),
    /// Starts or ends with `-`.
    #[error("must not start or end with a hyphen")]
    EdgeHyphen,
}

/// The character and hyphen rules of a lowercase DNS label (RFC 1035
/// §2.3.1, lowercased): only `[a-z0-9-]`, no hyphen at either end.
fn label_rules(s: &str) -> Result<(), SlugError> {
    if let Some(c) = s
        .chars()
        .find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '-'))
    {
        return Err(SlugError::Character(c));
    }
    if s.starts_with('-') || s.ends_with('-') {
        return Err(SlugError::EdgeHyphen);
    }
    Ok(())
}

/// Whether `s` is one lowercase DNS label: 1–63 characters under the
/// [`Slug`] character rules. What a container's host name, a Docker
/// container name suffix and a compose project name accept.
pub fn is_dns_label(s: &str) -> bool {
    (1..=Slug::MAX_LEN).contains(&s.len()) && label_rules(s).is_ok()
}

impl Slug {
    /// Shortest slug accepted.
    pub const MIN_LEN: usize = 3;
    /// Longest slug accepted: the DNS label limit.
    pub const MAX_LEN: usize = 63;

    /// Validates `s` as a slug.
    ///
    /// # Errors
    /// [`SlugError`] naming the first rule broken.
    pub fn parse(s: &str) -> Result<Self, SlugError> {
        let len = s.chars().count();
        if !(Self::MIN_LEN..=Self::MAX_LEN).contains(&len) {
            return Err(SlugError::Length(len));
        }
        label_rules(s)?;
        Ok(Self(s.to_owned()))
    }

    /// The slug as a string slice.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl AsRef<str> for Slug {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Slug {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl<'de> serde::Deserialize<'de> for Slug {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Self::parse(&s).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn dns_labels_are_one_to_63_slug_characters_without_edge_hyphens() {
        for ok in ["a", "acme", "a-1", &"x".repeat(63)] {
            assert!(is_dns_label(ok), "{ok}");
        }
        for bad in ["", "-a", "a-", "A", "a_b", "a.b", &"x".repeat(64)] {
            assert!(!is_dns_label(bad), "{bad}");
        }
    }

    #[test]
    fn accepts_dns_labels() {
        for ok in ["odoo", "erp", "my-app-2", "a1b", &"x".repeat(63)] {
            assert!(Slug::parse(ok).is_ok(), "{ok}");
        }
    }

    #[test]
    fn refuses_each_broken_rule() {
        assert_eq!(Slug::parse("ab"), Err(SlugError::Length(2)));
        assert_eq!(Slug::parse(&"x".repeat(64)), Err(SlugError::Length(64)));
        assert_eq!(Slug::parse("Odoo"), Err(SlugError::Character('O')));
        assert_eq!(Slug::parse("od_oo"), Err(SlugError::Character('_')));
        assert_eq!(Slug::parse("-odoo"), Err(SlugError::EdgeHyphen));
        assert_eq!(Slug::parse("odoo-"), Err(SlugError::EdgeHyphen));
    }

    proptest! {
        #[test]
        fn every_valid_label_round_trips(s in "[a-z0-9][a-z0-9-]{1,61}[a-z0-9]") {
            let slug = Slug::parse(&s).unwrap();
            prop_assert_eq!(slug.as_str(), s.as_str());
        }

        #[test]
        fn nothing_outside_the_alphabet_is_accepted(s in ".{3,63}") {
            let valid = s.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
                && !s.starts_with('-') && !s.ends_with('-');
            prop_assert_eq!(Slug::parse(&s).is_ok(), valid);
        }
    }
}
