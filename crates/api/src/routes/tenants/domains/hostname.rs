//! The rules a custom domain's host name follows: pure, no I/O.
//!
//! (They are `domain`-crate material; they live beside the routes until
//! that crate takes them.)

use std::fmt;

/// A host name a tenant may claim as a custom domain: lowercase ASCII, IDNA
/// A-labels for Unicode (UTS 46 processing, as browsers do: `Bücher.Example`
/// is `xn--bcher-kva.example`), at most 253 characters, at least two DNS
/// labels of letters, digits and hyphens (RFC 1035 §2.3.1, RFC 1123 §2.1),
/// no trailing dot; not a wildcard, not an IP address, not `localhost`,
/// and neither the platform's base domain nor a name under it (those are
/// the tenants' own subdomains, given by their slugs).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CustomHostname(String);

/// Why a string is not a [`CustomHostname`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HostnameError {
    /// Nothing given.
    #[error("must not be empty")]
    Empty,
    /// A scheme, port, path, user or space around the name.
    #[error("must be a bare host name such as shop.example.com (no scheme, port, path or spaces)")]
    NotBare,
    /// `*` anywhere.
    #[error("must not be a wildcard (`*`): claim each host name")]
    Wildcard,
    /// An IPv4 or IPv6 address (or a name ending in a numeric label).
    #[error("must be a host name, not an IP address")]
    IpAddress,
    /// UTS 46 processing refused it (a disallowed code point, bad punycode).
    #[error("is not a valid internationalized domain name")]
    Idna,
    /// Over 253 characters once in ASCII.
    #[error("must be at most 253 characters long in ASCII (got {0})")]
    TooLong(usize),
    /// A label breaks the DNS label rules.
    #[error("label {label:?} {rule}")]
    Label {
        /// The label, in ASCII.
        label: String,
        /// The rule it breaks.
        rule: &'static str,
    },
    /// A single label (`intranet`).
    #[error("must have at least two labels, such as shop.example.com")]
    SingleLabel,
    /// `localhost` or a name under it (RFC 6761 §6.3).
    #[error("must not be localhost")]
    Localhost,
    /// The platform's base domain itself.
    #[error("must not be the platform's domain {0}")]
    BaseDomain(String),
    /// A name under the platform's base domain.
    #[error("must not be under the platform's domain {0}: tenants get <slug>.{0} already")]
    UnderBaseDomain(String),
}

impl CustomHostname {
    /// Longest host name accepted, in ASCII octets (RFC 1035 §2.3.4 less
    /// the root's length octet).
    pub const MAX_LEN: usize = 253;
    /// Longest label, in ASCII octets (RFC 1035 §2.3.4).
    pub const MAX_LABEL_LEN: usize = 63;

    /// Validates `input` (ASCII or Unicode, any case, one trailing dot
    /// allowed) as a custom domain of a platform serving tenants under
    /// `base_domain`.
    ///
    /// # Errors
    /// [`HostnameError`] naming the first rule broken.
    pub fn parse(input: &str, base_domain: &str) -> Result<Self, HostnameError> {
        if input.is_empty() {
            return Err(HostnameError::Empty);
        }
        let name = input.strip_suffix('.').unwrap_or(input);
        if name.is_empty() {
            return Err(HostnameError::Empty);
        }
        if name.contains('*') {
            return Err(HostnameError::Wildcard);
        }
        let unbracketed = name.trim_start_matches('[').trim_end_matches(']');
        if unbracketed.parse::<std::net::IpAddr>().is_ok() {
            return Err(HostnameError::IpAddress);
        }
        if name
            .chars()
            .any(|c| c.is_whitespace() || matches!(c, '/' | ':' | '@' | '?' | '#' | '[' | ']'))
        {
            return Err(HostnameError::NotBare);
        }
        let ascii = idna::domain_to_ascii_cow(name.as_bytes(), idna::AsciiDenyList::EMPTY)
            .map_err(|_| HostnameError::Idna)?;
        // UTS 46 maps ideographic full stops to `.`: one trailing dot again.
        let ascii = ascii
            .strip_suffix('.')
            .unwrap_or(&ascii)
            .to_ascii_lowercase();
        if ascii.is_empty() {
            return Err(HostnameError::Empty);
        }
        if ascii.len() > Self::MAX_LEN {
            return Err(HostnameError::TooLong(ascii.len()));
        }
        let labels: Vec<&str> = ascii.split('.').collect();
        for label in &labels {
            label_rules(label)?;
        }
        if ascii == "localhost" || ascii.ends_with(".localhost") {
            return Err(HostnameError::Localhost);
        }
        if labels.len() < 2 {
            return Err(HostnameError::SingleLabel);
        }
        if labels
            .last()
            .is_some_and(|tld| tld.chars().all(|c| c.is_ascii_digit()))
        {
            // RFC 3696 §2: a top-level domain is never all-numeric; such
            // names are how resolvers read IPv4 addresses (`127.1`).
            return Err(HostnameError::IpAddress);
        }
        let base = base_domain
            .trim()
            .trim_end_matches('.')
            .to_ascii_lowercase();
        if !base.is_empty() {
            if ascii == base {
                return Err(HostnameError::BaseDomain(base));
            }
            if ascii.ends_with(&format!(".{base}")) {
                return Err(HostnameError::UnderBaseDomain(base));
            }
        }
        Ok(Self(ascii))
    }

    /// The name in ASCII, lowercase (what DNS, TLS and the route table use).
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The name of the TXT record that proves control of this one:
    /// `_tenantry-challenge.<name>` (an underscore label, as ACME's
    /// `_acme-challenge`, RFC 8555 §8.4, so it never clashes with a host).
    pub fn challenge_name(&self) -> String {
        challenge_name(&self.0)
    }
}

/// The TXT record name proving control of `hostname`
/// ([`CustomHostname::challenge_name`]).
pub fn challenge_name(hostname: &str) -> String {
    format!("_tenantry-challenge.{hostname}")
}

impl AsRef<str> for CustomHostname {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for CustomHostname {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// One DNS label in ASCII: 1–63 octets of letters, digits and hyphens, no
/// hyphen at either end.
fn label_rules(label: &str) -> Result<(), HostnameError> {
    let broken = |rule| {
        Err(HostnameError::Label {
            label: label.to_owned(),
            rule,
        })
    };
    if label.is_empty() {
        return broken("is empty (two dots in a row, or a leading dot)");
    }
    if label.len() > CustomHostname::MAX_LABEL_LEN {
        return broken("is longer than 63 characters");
    }
    if !label
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
    {
        return broken("may contain only letters, digits and hyphens");
    }
    if label.starts_with('-') || label.ends_with('-') {
        return broken("must not start or end with a hyphen");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: &str = "tenantry.io";

    fn ok(s: &str) -> String {
        CustomHostname::parse(s, BASE).unwrap().as_str().to_owned()
    }

    fn err(s: &str) -> HostnameError {
        CustomHostname::parse(s, BASE).unwrap_err()
    }

    #[test]
    fn ascii_names_are_lowercased_and_lose_a_trailing_dot() {
        assert_eq!(ok("Shop.Example.COM"), "shop.example.com");
        assert_eq!(ok("shop.example.com."), "shop.example.com");
        assert_eq!(ok("a-b.c9.example"), "a-b.c9.example");
        assert_eq!(ok("example.com"), "example.com");
    }

    #[test]
    fn unicode_names_become_a_labels() {
        assert_eq!(ok("Bücher.example"), "xn--bcher-kva.example");
        assert_eq!(ok("ÉCOLE.fr"), "xn--cole-9oa.fr");
        assert_eq!(ok("例え.テスト"), "xn--r8jz45g.xn--zckzah");
        // Full-width dots are dots (UTS 46 mapping).
        assert_eq!(ok("shop。example。com"), "shop.example.com");
        // A-labels given as such are kept.
        assert_eq!(ok("xn--bcher-kva.example"), "xn--bcher-kva.example");
    }

    #[test]
    fn wildcards_ips_and_localhost_are_refused() {
        assert_eq!(err("*.example.com"), HostnameError::Wildcard);
        assert_eq!(err("shop.*.com"), HostnameError::Wildcard);
        assert_eq!(err("192.168.1.10"), HostnameError::IpAddress);
        assert_eq!(err("::1"), HostnameError::IpAddress);
        assert_eq!(err("[2001:db8::1]"), HostnameError::IpAddress);
        assert_eq!(err("127.1"), HostnameError::IpAddress);
        assert_eq!(err("localhost"), HostnameError::Localhost);
        assert_eq!(err("app.localhost"), HostnameError::Localhost);
        assert_eq!(err("LOCALHOST."), HostnameError::Localhost);
    }

    #[test]
    fn the_platform_domain_and_names_under_it_are_refused() {
        assert_eq!(err("tenantry.io"), HostnameError::BaseDomain(BASE.into()));
        assert_eq!(
            err("Acme.Tenantry.IO"),
            HostnameError::UnderBaseDomain(BASE.into())
        );
        assert_eq!(
            err("a.b.tenantry.io."),
            HostnameError::UnderBaseDomain(BASE.into())
        );
        // A name that merely ends with the same letters is another domain.
        assert_eq!(ok("mytenantry.io"), "mytenantry.io");
    }

    #[test]
    fn label_and_length_rules() {
        assert!(matches!(
            err("shop..example.com"),
            HostnameError::Label { .. }
        ));
        assert!(matches!(err(".example.com"), HostnameError::Label { .. }));
        assert!(matches!(
            err("-shop.example.com"),
            HostnameError::Label { .. }
        ));
        assert!(matches!(
            err("shop-.example.com"),
            HostnameError::Label { .. }
        ));
        assert!(matches!(
            err("sh_op.example.com"),
            HostnameError::Label { .. }
        ));
        assert!(matches!(
            err("sh!op.example.com"),
            HostnameError::Label { .. }
        ));
        let long_label = "a".repeat(64);
        assert!(matches!(
            err(&format!("{long_label}.example.com")),
            HostnameError::Label { .. }
        ));
        assert_eq!(ok(&format!("{}.example.com", "a".repeat(63))).len(), 75);
        // 4 × 63 + 3 dots = 255 > 253; 3 × 63 + 61 + 3 dots = 253 is fine.
        let l = "a".repeat(63);
        assert_eq!(
            err(&format!("{l}.{l}.{l}.{l}")),
            HostnameError::TooLong(255)
        );
        let ok_253 = format!("{l}.{l}.{l}.{}", "b".repeat(61));
        assert_eq!(ok(&ok_253).len(), 253);
        assert_eq!(err("intranet"), HostnameError::SingleLabel);
        assert_eq!(err(""), HostnameError::Empty);
        assert_eq!(err("."), HostnameError::Empty);
    }

    #[test]
    fn urls_and_ports_are_not_host_names() {
        for s in [
            "https://shop.example.com",
            "shop.example.com:443",
            "shop.example.com/path",
            "user@shop.example.com",
            " shop.example.com",
            "shop example.com",
        ] {
            assert_eq!(err(s), HostnameError::NotBare, "{s}");
        }
    }

    #[test]
    fn the_challenge_record_is_an_underscore_label_above_the_name() {
        let h = CustomHostname::parse("shop.example.com", BASE).unwrap();
        assert_eq!(h.challenge_name(), "_tenantry-challenge.shop.example.com");
    }
}
