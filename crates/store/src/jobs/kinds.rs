//! Every kind of background job, as a type: the contract where billing,
//! provisioning and the API meet (DESIGN.md "Dependencies point one way":
//! billing and provisioning never call each other; one enqueues a job the
//! other's handler runs). The handlers live with their work:
//!
//! | kind | payload | enqueued by | handled by |
//! | --- | --- | --- | --- |
//! | `provision` | [`Provision`] | signup, creation, a paid checkout, retry | `provisioning::deploy` |
//! | `migrate` | [`Migrate`] | a plan change altering the deployment (kind, resources, HA) | `provisioning::deploy` |
//! | `suspend` / `resume` | [`Suspend`] / [`Resume`] | dunning, a payment, operators | `provisioning::deploy` |
//! | `deprovision` | [`Deprovision`] | deletion, the end of service | `provisioning::deploy` |
//! | `routing.sync` | [`RoutingSync`] | the database, when the route table's inputs change | `provisioning::routing` |
//! | `node.check` | [`NodeCheck`] | the health-check ticker, `POST /v1/nodes` | `provisioning::nodes` |
//! | `stripe.create_checkout` | [`StripeCreateCheckout`] | signup | `billing::stripe::jobs` |
//! | `stripe.charge` | [`StripeCharge`] | an upgrade's or renewal's charge | `billing::stripe::jobs` |
//! | `stripe.sync_price` | [`StripeSyncPrice`] | a plan change applied or scheduled | `billing::stripe::jobs` |
//! | `stripe.reconcile` | [`StripeReconcile`] | the reconciliation ticker | `billing::stripe::jobs` |
//! | `domain.verify` | [`DomainVerify`] | adding a custom domain, the re-check ticker | `api::routes::tenants::domains` |
//!
//! Payload fields are the JSON stored in `jobs.payload`; set-based SQL that
//! enqueues builds the same object with `jsonb_build_object` and binds the
//! kind from these constants.

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use tenantry_domain::DeploymentKind;
use uuid::Uuid;

use super::{BackgroundJob, subject_key};

/// One live job of this kind per tenant.
macro_rules! per_tenant {
    ($t:ty, $kind:literal) => {
        impl BackgroundJob for $t {
            const KIND: &'static str = $kind;

            fn tenant_id(&self) -> Option<Uuid> {
                Some(self.tenant_id)
            }

            fn dedup_key(&self) -> Option<String> {
                Some(subject_key(Self::KIND, self.tenant_id))
            }
        }
    };
}

/// Creates a tenant's deployment: place it, create its database, its
/// container, then activate it (`provisioning → active`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Provision {
    /// The tenant.
    pub tenant_id: Uuid,
}
per_tenant!(Provision, "provision");

/// Brings a tenant's deployment to its plan after a plan change applied:
/// moves it between shared and dedicated, or applies a dedicated plan's
/// cores, memory, disk and high availability to its container (in place,
/// or by a move to a node with room). A failure rolls back and records a
/// `migration_failed` event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Migrate {
    /// The tenant.
    pub tenant_id: Uuid,
    /// The plan change that asked for the move.
    pub plan_change_id: Option<Uuid>,
    /// The deployment it leaves.
    pub from: DeploymentKind,
    /// The deployment it goes to.
    pub to: DeploymentKind,
}
per_tenant!(Migrate, "migrate");

/// Stops a tenant's instance (or disables a shared tenant's database login)
/// after it was paused or suspended; data kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Suspend {
    /// The tenant.
    pub tenant_id: Uuid,
}
per_tenant!(Suspend, "suspend");

/// Starts a paused or suspended tenant's instance (or login) again.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Resume {
    /// The tenant.
    pub tenant_id: Uuid,
}
per_tenant!(Resume, "resume");

/// Removes a tenant: a backup of its database, then its database, role,
/// container and port; the tenant ends `deleted`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Deprovision {
    /// The tenant.
    pub tenant_id: Uuid,
    /// Whether to back up the tenant's database (`pg_dump -Fc`) before
    /// dropping it; `true` when absent.
    #[serde(default = "take_backup")]
    pub final_backup: bool,
}

fn take_backup() -> bool {
    true
}
per_tenant!(Deprovision, "deprovision");

/// Pushes the route table to the reverse proxy (Caddy) when it differs
/// from what the proxy runs. Queued by the database itself: the triggers
/// of migration `000012_serving` insert one (unless one is already queued)
/// in every transaction that changes a tenant's status, a deployment, an
/// instance's upstream or a custom domain.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct RoutingSync {}

impl BackgroundJob for RoutingSync {
    const KIND: &'static str = "routing.sync";
}

/// Checks one node's API and moves it between `online` and `offline`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeCheck {
    /// The node.
    pub node_id: Uuid,
}

impl BackgroundJob for NodeCheck {
    const KIND: &'static str = "node.check";

    fn dedup_key(&self) -> Option<String> {
        Some(subject_key(Self::KIND, self.node_id))
    }
}

/// Opens a signup's Stripe Checkout Session (idempotent by subscription).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct StripeCreateCheckout {
    /// The tenant signing up.
    pub tenant_id: Uuid,
    /// Its `incomplete` subscription.
    pub subscription_id: Uuid,
}

impl BackgroundJob for StripeCreateCheckout {
    const KIND: &'static str = "stripe.create_checkout";

    fn tenant_id(&self) -> Option<Uuid> {
        Some(self.tenant_id)
    }

    fn dedup_key(&self) -> Option<String> {
        Some(subject_key(Self::KIND, self.subscription_id))
    }
}

/// Charges an amount through Stripe: an invoice with one item, paid with
/// the saved payment method, or a payment Checkout Session.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StripeCharge {
    /// The tenant charged.
    pub tenant_id: Uuid,
    /// Its subscription.
    pub subscription_id: Uuid,
    /// Amount in major units of `currency` (a decimal string in JSON).
    pub amount: Decimal,
    /// ISO 4217 code, e.g. `EUR`.
    pub currency: String,
    /// The invoice item's description.
    pub description: String,
    /// Our idempotency key, also the base of Stripe's `Idempotency-Key`s.
    pub idempotency_key: String,
    /// Whether the customer has a saved payment method to charge off-session.
    #[serde(default)]
    pub saved_payment_method: bool,
}

impl BackgroundJob for StripeCharge {
    const KIND: &'static str = "stripe.charge";

    fn tenant_id(&self) -> Option<Uuid> {
        Some(self.tenant_id)
    }

    fn dedup_key(&self) -> Option<String> {
        Some(subject_key(Self::KIND, &self.idempotency_key))
    }
}

/// Moves a Stripe subscription to the Price it should bill next (read when
/// the job runs, so one live job per subscription is enough).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct StripeSyncPrice {
    /// The tenant, for the job list (the job reads all it needs from the
    /// subscription).
    #[serde(default)]
    pub tenant_id: Option<Uuid>,
    /// The subscription.
    pub subscription_id: Uuid,
}

impl BackgroundJob for StripeSyncPrice {
    const KIND: &'static str = "stripe.sync_price";

    fn tenant_id(&self) -> Option<Uuid> {
        self.tenant_id
    }

    fn dedup_key(&self) -> Option<String> {
        Some(subject_key(Self::KIND, self.subscription_id))
    }
}

/// Gives a payment back through the payment provider: the refund charge
/// (kind `refund`) names the amount and what the payment went through.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct BillingRefund {
    /// The tenant refunded.
    pub tenant_id: Uuid,
    /// The refund charge.
    pub charge_id: Uuid,
}

impl BackgroundJob for BillingRefund {
    const KIND: &'static str = "billing.refund";

    fn tenant_id(&self) -> Option<Uuid> {
        Some(self.tenant_id)
    }

    fn dedup_key(&self) -> Option<String> {
        Some(subject_key(Self::KIND, self.charge_id))
    }
}

/// Carries a credit granted to a Stripe-billed customer to Stripe as a
/// customer balance transaction, which Stripe applies to the next invoice.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct StripePushCredit {
    /// The tenant credited.
    pub tenant_id: Uuid,
    /// The credit (a `granted` row of the ledger).
    pub credit_id: Uuid,
}

impl BackgroundJob for StripePushCredit {
    const KIND: &'static str = "stripe.push_credit";

    fn tenant_id(&self) -> Option<Uuid> {
        Some(self.tenant_id)
    }

    fn dedup_key(&self) -> Option<String> {
        Some(subject_key(Self::KIND, self.credit_id))
    }
}

/// Processes recent Stripe events no webhook delivered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct StripeReconcile {}

impl BackgroundJob for StripeReconcile {
    const KIND: &'static str = "stripe.reconcile";

    fn dedup_key(&self) -> Option<String> {
        Some(Self::KIND.to_owned())
    }
}

/// Looks up a custom domain's DNS TXT record
/// (`_tenantry-challenge.<hostname>`) and marks the domain `verified` when
/// it holds the domain's token, else records why not. One live job per
/// domain; a domain gone or verified meanwhile ends the job quietly.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct DomainVerify {
    /// The tenant holding the domain (for the job list).
    pub tenant_id: Uuid,
    /// The domain (`tenant_domains.id`).
    pub domain_id: Uuid,
}

impl BackgroundJob for DomainVerify {
    const KIND: &'static str = "domain.verify";

    fn tenant_id(&self) -> Option<Uuid> {
        Some(self.tenant_id)
    }

    fn dedup_key(&self) -> Option<String> {
        Some(subject_key(Self::KIND, self.domain_id))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads_keep_the_json_shapes_sql_builds() {
        let t = Uuid::now_v7();
        let c = Uuid::now_v7();
        // The shapes the processor's statements build with jsonb_build_object.
        let m: Migrate = serde_json::from_value(serde_json::json!({
            "tenant_id": t, "plan_change_id": c, "from": "shared", "to": "dedicated"
        }))
        .unwrap();
        assert_eq!(m.to, DeploymentKind::Dedicated);
        assert_eq!(m.dedup_key().unwrap(), format!("migrate:{t}"));
        let d: Deprovision =
            serde_json::from_value(serde_json::json!({"tenant_id": t, "final_backup": true}))
                .unwrap();
        assert!(d.final_backup);
        let d: Deprovision = serde_json::from_value(serde_json::json!({"tenant_id": t})).unwrap();
        assert!(d.final_backup, "a backup unless told otherwise");
        let s: Suspend = serde_json::from_value(serde_json::json!({"tenant_id": t})).unwrap();
        assert_eq!(s.tenant_id().unwrap(), t);
        let charge: StripeCharge = serde_json::from_value(serde_json::json!({
            "tenant_id": t, "subscription_id": c, "amount": "12.50", "currency": "EUR",
            "description": "upgrade", "idempotency_key": "k1"
        }))
        .unwrap();
        assert_eq!(charge.amount, Decimal::new(1250, 2));
        assert_eq!(
            serde_json::to_value(&charge).unwrap()["amount"],
            serde_json::json!("12.50")
        );
        let sync: StripeSyncPrice = serde_json::from_value(serde_json::json!({
            "tenant_id": t, "subscription_id": c
        }))
        .unwrap();
        assert_eq!(
            sync.dedup_key().unwrap(),
            format!("stripe.sync_price:{c}"),
            "the plan-change statement builds this key"
        );
        assert_eq!(
            StripeReconcile::default().dedup_key().unwrap(),
            "stripe.reconcile"
        );
    }
}
