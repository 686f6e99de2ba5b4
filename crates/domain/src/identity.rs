//! Who may do what: users' emails, roles, statuses and API token scopes.

use std::{fmt, str::FromStr};

/// An email address, lowercased: the login name of a user (unique
/// case-insensitively). Checked for shape only (one `@`, a dotted domain, at
/// most 254 characters as RFC 5321 allows); deliverability is not our concern.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Email(String);

impl Email {
    /// Validates and lowercases an address.
    ///
    /// # Errors
    /// A message naming the broken rule.
    pub fn parse(s: &str) -> Result<Self, String> {
        let s = s.trim().to_lowercase();
        if s.len() > 254 {
            return Err("must be at most 254 characters".into());
        }
        let Some((local, domain)) = s.split_once('@') else {
            return Err("must contain an @".into());
        };
        if local.is_empty() || local.len() > 64 {
            return Err("the part before @ must be 1 to 64 characters".into());
        }
        if domain.contains('@')
            || !domain.contains('.')
            || domain.starts_with('.')
            || domain.ends_with('.')
        {
            return Err("the domain after @ must be a dotted name such as example.com".into());
        }
        if s.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err("must not contain spaces or control characters".into());
        }
        Ok(Self(s))
    }

    /// The address.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl AsRef<str> for Email {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Email {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

string_enum! {
    /// A user's role (DESIGN.md "HTTP API").
    Role {
        /// Everything.
        Admin => "admin",
        /// Runs the platform: everything except users, other people's API
        /// tokens and catalog prices.
        Operator => "operator",
        /// Owns one tenant: its resources, billing and members.
        TenantOwner => "tenant_owner",
        /// Uses one tenant: reads its resources.
        TenantMember => "tenant_member",
    }
}

string_enum! {
    /// Whether a user may sign in.
    UserStatus {
        /// May sign in.
        Active => "active",
        /// May not sign in; tokens stop working.
        Disabled => "disabled",
    }
}

string_enum! {
    /// What an API token may do; a token's rights are its scopes intersected
    /// with its owner's role.
    Scope {
        /// Read products and plans.
        CatalogRead => "catalog:read",
        /// Create, update and deactivate products and plans.
        CatalogWrite => "catalog:write",
        /// Read tenants.
        TenantsRead => "tenants:read",
        /// Create and change tenants.
        TenantsWrite => "tenants:write",
        /// Read subscriptions, invoices, plan changes.
        BillingRead => "billing:read",
        /// Change plans, mark payments.
        BillingWrite => "billing:write",
        /// Read nodes.
        NodesRead => "nodes:read",
        /// Register and change nodes.
        NodesWrite => "nodes:write",
        /// Read jobs.
        JobsRead => "jobs:read",
        /// Read the activity log.
        ActivityRead => "activity:read",
        /// Read the route table (a reverse proxy pulling its configuration).
        RoutingRead => "routing:read",
    }
}

impl Role {
    /// True for the roles bound to one tenant.
    pub fn is_tenant_role(&self) -> bool {
        matches!(self, Self::TenantOwner | Self::TenantMember)
    }

    /// True for the platform staff roles.
    pub fn is_staff(&self) -> bool {
        matches!(self, Self::Admin | Self::Operator)
    }

    /// Whether the role may ever exercise `scope` (for tenant roles: on its
    /// own tenant only; callers filter by tenant).
    pub fn grants(&self, scope: Scope) -> bool {
        use Scope::*;
        match self {
            Self::Admin | Self::Operator => true,
            Self::TenantOwner => matches!(
                scope,
                CatalogRead
                    | TenantsRead
                    | TenantsWrite
                    | BillingRead
                    | BillingWrite
                    | JobsRead
                    | ActivityRead
            ),
            Self::TenantMember => {
                matches!(scope, CatalogRead | TenantsRead | BillingRead | JobsRead)
            }
        }
    }
}

impl Scope {
    /// Parses a list of scopes, refusing unknown ones and duplicates.
    ///
    /// # Errors
    /// A message naming the first bad scope.
    pub fn parse_list<S: AsRef<str>>(items: &[S]) -> Result<Vec<Self>, String> {
        let mut out: Vec<Self> = Vec::with_capacity(items.len());
        for s in items {
            let scope = Self::from_str(s.as_ref())?;
            if out.contains(&scope) {
                return Err(format!("{:?} is listed twice", s.as_ref()));
            }
            out.push(scope);
        }
        if out.is_empty() {
            return Err("at least one scope is required".into());
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn emails_are_lowercased_and_checked() {
        assert_eq!(
            Email::parse(" Admin@Tenantry.Local ").unwrap().as_str(),
            "admin@tenantry.local"
        );
        for bad in ["", "a", "a@b", "@b.c", "a@.c", "a@b.", "a b@c.d", "a@b@c.d"] {
            assert!(Email::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn tenant_roles_cannot_touch_the_platform() {
        for role in [Role::TenantOwner, Role::TenantMember] {
            for scope in [Scope::CatalogWrite, Scope::NodesRead, Scope::NodesWrite] {
                assert!(!role.grants(scope), "{role} {scope}");
            }
        }
        assert!(!Role::TenantMember.grants(Scope::TenantsWrite));
        assert!(Role::TenantOwner.grants(Scope::TenantsWrite));
        assert!(
            Scope::ALL
                .iter()
                .all(|s| Role::Admin.grants(*s) && Role::Operator.grants(*s))
        );
    }

    #[test]
    fn scope_lists_refuse_unknown_and_duplicates() {
        assert_eq!(
            Scope::parse_list(&["catalog:read", "jobs:read"]).unwrap(),
            [Scope::CatalogRead, Scope::JobsRead]
        );
        assert!(Scope::parse_list(&["catalog:read", "catalog:read"]).is_err());
        assert!(Scope::parse_list(&["root"]).is_err());
        assert!(Scope::parse_list::<&str>(&[]).is_err());
    }

    proptest! {
        #[test]
        fn parsed_emails_round_trip(local in "[a-z0-9._+-]{1,20}", domain in "[a-z0-9-]{1,20}\\.[a-z]{2,6}") {
            let e = format!("{local}@{domain}");
            let parsed = Email::parse(&e.to_uppercase()).unwrap();
            prop_assert_eq!(parsed.as_str(), e.as_str());
        }
    }
}
