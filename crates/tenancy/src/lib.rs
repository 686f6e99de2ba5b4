//! Tenant services: self-service signup, creation by operators, payments
//! recorded by staff, lifecycle requests (pause, resume, retry, delete),
//! renaming, members and invitations. Each call runs its change in one
//! transaction with its activity rows; outbound calls (a Checkout Session)
//! run after the commit.
//!
//! Why a crate of its own (DESIGN.md "Layout"): a tenant's life spans
//! billing (its subscription and checkout) and provisioning (the jobs that
//! build and remove its instance), and identity (its owner and members).
//! `billing` must not own users and invitations, and `provisioning` must not
//! know about payments; the API crate must only parse, authorise and map.
//! So `api → tenancy → billing → store → domain`, and tenancy reaches
//! provisioning only through jobs in `store` ([`tenantry_store::jobs::kinds`]).

mod error;
mod lifecycle;
mod members;
pub mod password;
mod signup;

use std::{sync::Arc, time::Duration};

use tenantry_billing::{PaymentGateway, engine::Clock};
use tenantry_store::{
    Pool,
    activity::{Actor, Entry},
    tenants::Visibility,
};
use uuid::Uuid;

pub use error::TenancyError;
pub use lifecycle::{find, follow_up, mark_signup_paid, rename, transition};
pub use members::{accept_invitation, invite, remove_member};
pub use signup::{CreateTenantInput, Created, SignupInput, create_for_customer, signup};

/// How payments are taken, as far as tenant creation cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PaymentMode {
    /// No money moves: checkout URLs lead to a sandbox page.
    Sandbox,
    /// Payments are off: paid plans wait for an operator to mark payment.
    Disabled,
    /// Stripe: a signup's Checkout Session is backed by a
    /// `stripe.create_checkout` job in the signup's transaction.
    Stripe,
}

/// The tenant services and what they need.
#[derive(Clone)]
pub struct Tenancy {
    /// The control plane's database.
    pub pool: Pool,
    /// Where checkouts are opened.
    pub gateway: Arc<dyn PaymentGateway>,
    /// How payments are taken.
    pub payments: PaymentMode,
    /// The billing clock (subscription periods start on it).
    pub clock: Clock,
    /// Hashes owners' and members' passwords.
    pub hasher: Arc<password::Hasher>,
    /// How long an invitation link is valid.
    pub invitation_ttl: Duration,
    /// The API's public URL: invitation links start with it.
    pub public_url: String,
}

impl std::fmt::Debug for Tenancy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tenancy")
            .field("payments", &self.payments)
            .field("public_url", &self.public_url)
            .finish_non_exhaustive()
    }
}

/// Who asks: the activity log's actor (user, token, client details) and
/// the tenant a tenant-role caller is confined to (`None` for staff).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Caller {
    /// As the activity log records them.
    pub actor: Actor,
    /// The caller's own tenant, for `tenant_owner` and `tenant_member`.
    pub tenant_id: Option<Uuid>,
}

impl Caller {
    /// Which tenants the caller may see: all, or only their own.
    pub fn visibility(&self) -> Visibility {
        self.tenant_id.map_or(Visibility::All, Visibility::Only)
    }

    /// An activity row of `action` by this caller, in their tenant.
    fn entry(&self, action: &str) -> Entry {
        Entry::by(&self.actor, action).tenant(self.tenant_id)
    }
}
