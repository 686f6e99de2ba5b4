//! Tenants: their subdomain slug and their lifecycle.

use std::fmt;

use crate::{Slug, SlugError};

/// A tenant's slug, also its subdomain (`{slug}.{base domain}`): a [`Slug`]
/// that is not one of the names the platform keeps for itself.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TenantSlug(Slug);

/// Names no tenant may take: they are, or could become, the platform's own hosts.
pub const RESERVED_SLUGS: &[&str] = &[
    "www",
    "api",
    "admin",
    "mail",
    "app",
    "smtp",
    "imap",
    "pop",
    "ftp",
    "ns1",
    "ns2",
    "mx",
    "status",
    "docs",
    "help",
    "support",
    "billing",
    "static",
    "cdn",
    "assets",
    "dashboard",
    "portal",
    "login",
    "auth",
    "root",
    "tenantry",
    "webmail",
    "autodiscover",
    "localhost",
];

/// The infix of shared instances' host and container names
/// (`{product}-shared-{node}`, container `tenantry-{product}-shared-{node}`):
/// a tenant slug holding it could take a shared instance's name.
pub const SHARED_INSTANCE_INFIX: &str = "-shared-";

/// Why a string is not a [`TenantSlug`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TenantSlugError {
    /// Not a DNS label of 3–63 characters.
    #[error(transparent)]
    Slug(#[from] SlugError),
    /// One of [`RESERVED_SLUGS`], or shaped like a shared instance's name
    /// (holds [`SHARED_INSTANCE_INFIX`] or ends with `-shared`).
    #[error("{0:?} is reserved")]
    Reserved(String),
}

impl TenantSlug {
    /// Validates a tenant slug.
    ///
    /// # Errors
    /// [`TenantSlugError`].
    pub fn parse(s: &str) -> Result<Self, TenantSlugError> {
        let slug = Slug::parse(s)?;
        let name = slug.as_str();
        if RESERVED_SLUGS.contains(&name)
            || name.contains(SHARED_INSTANCE_INFIX)
            || name.ends_with("-shared")
        {
            return Err(TenantSlugError::Reserved(s.to_owned()));
        }
        Ok(Self(slug))
    }

    /// The slug.
    pub fn as_str(&self) -> &str {
        self.0.as_str()
    }
}

impl fmt::Display for TenantSlug {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

string_enum! {
    /// Where a tenant is in its life.
    TenantStatus {
        /// Signed up for a paid plan, not paid yet.
        PendingPayment => "pending_payment",
        /// Its instance is being created.
        Provisioning => "provisioning",
        /// Running.
        Active => "active",
        /// Stopped by an operator or its owner; data kept.
        Paused => "paused",
        /// Stopped for non-payment; data kept.
        Suspended => "suspended",
        /// Provisioning failed; may be retried.
        Failed => "failed",
        /// Moving between shared and dedicated.
        Migrating => "migrating",
        /// Being removed.
        Deprovisioning => "deprovisioning",
        /// Removed; the row, its activity and history stay.
        Deleted => "deleted",
    }
}

/// A refused status change: the current and the requested state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("a tenant cannot go from {from} to {to}")]
pub struct InvalidTransition {
    /// Current state.
    pub from: TenantStatus,
    /// Requested state.
    pub to: TenantStatus,
}

impl TenantStatus {
    /// The states reachable from this one in one step:
    /// `pending_payment → provisioning → active`; `active ⇄ paused`;
    /// `active → suspended → active`; `provisioning → failed → provisioning`;
    /// `active|paused|suspended|failed → deprovisioning → deleted`;
    /// `active → migrating → active`.
    pub fn successors(&self) -> &'static [TenantStatus] {
        use TenantStatus::*;
        match self {
            PendingPayment => &[Provisioning],
            Provisioning => &[Active, Failed],
            Active => &[Paused, Suspended, Migrating, Deprovisioning],
            Paused => &[Active, Deprovisioning],
            Suspended => &[Active, Deprovisioning],
            Failed => &[Provisioning, Deprovisioning],
            Migrating => &[Active],
            Deprovisioning => &[Deleted],
            Deleted => &[],
        }
    }

    /// The states from which `to` is reachable in one step: what a
    /// set-based statement moving many tenants to `to` may select (bound as
    /// a parameter, so SQL and this table cannot disagree).
    pub fn sources(to: TenantStatus) -> Vec<TenantStatus> {
        Self::ALL
            .iter()
            .copied()
            .filter(|s| s.successors().contains(&to))
            .collect()
    }

    /// [`Self::sources`] in their database spelling, for binding.
    pub fn sources_str(to: TenantStatus) -> Vec<&'static str> {
        Self::sources(to).iter().map(Self::as_str).collect()
    }

    /// Checks a one-step change.
    ///
    /// # Errors
    /// [`InvalidTransition`] naming both states.
    pub fn transition(self, to: TenantStatus) -> Result<TenantStatus, InvalidTransition> {
        if self.successors().contains(&to) {
            Ok(to)
        } else {
            Err(InvalidTransition { from: self, to })
        }
    }
}

string_enum! {
    /// A subscription's status (Stripe's words).
    SubscriptionStatus {
        /// Created, first payment not made.
        Incomplete => "incomplete",
        /// Paid up.
        Active => "active",
        /// A renewal failed; in the grace period.
        PastDue => "past_due",
        /// Ended by the customer or an operator.
        Canceled => "canceled",
        /// Ended by non-payment or an unpaid first invoice.
        Expired => "expired",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use TenantStatus::*;
    use proptest::prelude::*;

    #[test]
    fn reserved_and_malformed_slugs_are_refused() {
        for r in ["www", "api", "admin", "mail", "app"] {
            assert_eq!(
                TenantSlug::parse(r),
                Err(TenantSlugError::Reserved(r.into()))
            );
        }
        assert!(matches!(
            TenantSlug::parse("a"),
            Err(TenantSlugError::Slug(_))
        ));
        assert!(matches!(
            TenantSlug::parse("-acme"),
            Err(TenantSlugError::Slug(_))
        ));
        assert_eq!(
            TenantSlug::parse("acme-corp").unwrap().as_str(),
            "acme-corp"
        );
    }

    /// Issue 17, point 10: a slug could take a shared instance's name
    /// (`odoo-shared-pve1` is the shared Odoo instance on node `pve1`).
    #[test]
    fn a_slug_shaped_like_a_shared_instance_name_is_reserved() {
        for r in [
            "odoo-shared-pve1",
            "inventory-shared-docker-1",
            "odoo-shared",
        ] {
            assert_eq!(
                TenantSlug::parse(r),
                Err(TenantSlugError::Reserved(r.into()))
            );
        }
        for ok in ["shared-office", "sharedspace", "acme-sharedx"] {
            assert!(TenantSlug::parse(ok).is_ok(), "{ok}");
        }
    }

    #[test]
    fn the_issue_s_paths_are_allowed() {
        for path in [
            &[PendingPayment, Provisioning, Active][..],
            &[Active, Paused, Active],
            &[Active, Suspended, Active],
            &[Provisioning, Failed, Provisioning],
            &[Active, Deprovisioning, Deleted],
            &[Paused, Deprovisioning],
            &[Suspended, Deprovisioning],
            &[Failed, Deprovisioning],
            &[Active, Migrating, Active],
        ] {
            for pair in path.windows(2) {
                assert_eq!(
                    pair[0].transition(pair[1]),
                    Ok(pair[1]),
                    "{} → {}",
                    pair[0],
                    pair[1]
                );
            }
        }
    }

    #[test]
    fn some_tempting_shortcuts_are_refused() {
        for (from, to) in [
            (PendingPayment, Active),
            (Deleted, Active),
            (Paused, Suspended),
            (Migrating, Deprovisioning),
            (Provisioning, Deprovisioning),
            (Active, Active),
        ] {
            assert_eq!(from.transition(to), Err(InvalidTransition { from, to }));
        }
    }

    #[test]
    fn sources_are_exactly_the_states_with_that_successor() {
        assert_eq!(TenantStatus::sources(Suspended), vec![Active]);
        assert_eq!(
            TenantStatus::sources(Deprovisioning),
            vec![Active, Paused, Suspended, Failed]
        );
        for to in TenantStatus::ALL {
            for from in TenantStatus::sources(*to) {
                assert_eq!(from.transition(*to), Ok(*to));
            }
        }
    }

    fn status() -> impl Strategy<Value = TenantStatus> {
        (0..TenantStatus::ALL.len()).prop_map(|i| TenantStatus::ALL[i])
    }

    proptest! {
        #[test]
        fn a_transition_is_allowed_exactly_when_listed(from in status(), to in status()) {
            let listed = from.successors().contains(&to);
            prop_assert_eq!(from.transition(to).is_ok(), listed);
            if let Err(e) = from.transition(to) {
                prop_assert!(e.to_string().contains(from.as_str()) && e.to_string().contains(to.as_str()));
            }
        }

        #[test]
        fn deleted_is_final_and_every_walk_follows_edges(steps in proptest::collection::vec(0usize..9, 0..40)) {
            let mut s = PendingPayment;
            for pick in steps {
                let next = s.successors();
                if next.is_empty() {
                    prop_assert_eq!(s, Deleted);
                    break;
                }
                let to = next[pick % next.len()];
                s = s.transition(to).unwrap();
            }
        }

        #[test]
        fn every_state_but_deleted_can_reach_deleted(from in status()) {
            // Breadth-first search over the edges.
            let mut seen = vec![from];
            let mut i = 0;
            while i < seen.len() {
                for n in seen[i].successors() {
                    if !seen.contains(n) { seen.push(*n); }
                }
                i += 1;
            }
            prop_assert!(seen.contains(&Deleted));
        }
    }
}
