//! `/v1/signup`, `/v1/tenants/*`, `/v1/invitations/accept`.
//!
//! - `lifecycle`: signup, create, list, read, rename, pause, resume, retry,
//!   delete, mark a signup paid;
//! - `membership`: members and invitations;
//! - `subscription`: the subscription, deployments and activity of a tenant;
//! - `domains`: custom domains, their DNS verification job and re-checks.
//!
//! The views shared by those, and the signup route's registration, are here.

pub mod domains;
mod lifecycle;
mod membership;
mod subscription;

pub use lifecycle::*;
pub use membership::*;
pub use subscription::*;

use actix_governor::{Governor, GovernorConfigBuilder};
use actix_web::{http::header, web};
use chrono::{DateTime, Utc};
use serde::Serialize;
use tenantry_billing::engine::SubscriptionView;
use tenantry_store::tenants::TenantView;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::routes::{auth::ClientIpKey, catalog::Money, jobs::Job};

/// A customer workspace.
#[derive(Debug, Serialize, ToSchema)]
pub struct Tenant {
    /// Id.
    pub id: Uuid,
    /// Slug, also the subdomain.
    pub slug: String,
    /// Company name.
    pub company_name: String,
    /// Product slug.
    pub product: String,
    /// Current plan code.
    pub plan: String,
    /// `shared`, `dedicated` or `dedicated_ha`.
    pub deployment: String,
    /// `pending_payment`, `provisioning`, `active`, `paused`, `suspended`,
    /// `failed`, `migrating`, `deprovisioning` or `deleted`.
    pub status: String,
    /// Why it is in that status, when known.
    pub status_reason: Option<String>,
    /// When it first became active.
    pub provisioned_at: Option<DateTime<Utc>>,
    /// Version (also the `ETag`): send it back as `If-Match` when updating.
    pub version: i32,
    /// Created.
    pub created_at: DateTime<Utc>,
    /// Last changed.
    pub updated_at: DateTime<Utc>,
}

/// A tenant's subscription.
#[derive(Debug, Serialize, ToSchema)]
pub struct Subscription {
    /// Id.
    pub id: Uuid,
    /// Plan code.
    pub plan: String,
    /// `incomplete`, `active`, `past_due`, `canceled` or `expired`.
    pub status: String,
    /// Start of the current billing period.
    pub current_period_start: Option<DateTime<Utc>>,
    /// End of the current billing period (exclusive); `null` for lifetime plans and unpaid subscriptions.
    pub current_period_end: Option<DateTime<Utc>>,
    /// When the next charge falls due (the period end of an active recurring subscription).
    pub next_charge_at: Option<DateTime<Utc>>,
    /// What the next charge will be: the price of the plan in effect then, less the credit applied.
    pub next_charge_amount: Option<Money>,
    /// The part of the next charge paid from the credit balance.
    pub next_charge_credit: Option<Money>,
    /// Credit left to apply to later charges, per currency (`GET /v1/tenants/{id}/credits` lists the ledger).
    pub credit_balance: Vec<Money>,
    /// Whole days left in the current period.
    pub days_remaining: Option<i64>,
    /// The open plan change, if any: a scheduled downgrade or an upgrade awaiting payment.
    pub scheduled_plan_change: Option<serde_json::Value>,
    /// Payment provider: `none` or `stripe`.
    pub provider: String,
    /// The provider's customer id.
    pub provider_customer_id: Option<String>,
    /// The provider's subscription id.
    pub provider_subscription_id: Option<String>,
}

/// A created tenant and what comes next.
#[derive(Debug, Serialize, ToSchema)]
pub struct CreatedTenant {
    /// The tenant.
    pub tenant: Tenant,
    /// Its subscription.
    pub subscription: Subscription,
    /// Where the customer pays, for a paid plan awaiting payment.
    pub checkout_url: Option<String>,
    /// The provisioning job, when provisioning started.
    pub job: Option<Job>,
    /// The owner's single-use invitation link (tenants created by operators); shown once.
    pub owner_invitation_url: Option<String>,
}

/// A tenant and the job a change started.
#[derive(Debug, Serialize, ToSchema)]
pub struct TenantJob {
    /// The tenant.
    pub tenant: Tenant,
    /// The job.
    pub job: Option<Job>,
}

fn tenant_dto(v: TenantView) -> Tenant {
    Tenant {
        id: v.tenant.id,
        slug: v.tenant.slug,
        company_name: v.tenant.company_name,
        product: v.product_slug,
        plan: v.plan_code,
        deployment: v.tenant.deployment,
        status: v.tenant.status.to_string(),
        status_reason: v.tenant.status_reason,
        provisioned_at: v.tenant.provisioned_at,
        version: v.tenant.version,
        created_at: v.tenant.created_at,
        updated_at: v.tenant.updated_at,
    }
}

/// The API view of a subscription ([`SubscriptionView`]: the engine's).
fn subscription_dto(v: SubscriptionView) -> Subscription {
    let s = v.subscription;
    Subscription {
        id: s.id,
        plan: v.plan.code,
        status: s.status.to_string(),
        current_period_start: s.current_period_start,
        current_period_end: s.current_period_end,
        next_charge_at: v.next_charge.as_ref().map(|c| c.at),
        next_charge_credit: v.next_charge.as_ref().map(|c| Money {
            amount: c.credit_applied.amount().to_string(),
            currency: c.credit_applied.currency().code().to_owned(),
        }),
        next_charge_amount: v.next_charge.map(|c| Money {
            amount: c.amount.amount().to_string(),
            currency: c.amount.currency().code().to_owned(),
        }),
        credit_balance: v
            .credit_balance
            .iter()
            .map(|m| Money {
                amount: m.amount().to_string(),
                currency: m.currency().code().to_owned(),
            })
            .collect(),
        days_remaining: v.days_remaining,
        scheduled_plan_change: None,
        provider: s.provider,
        provider_customer_id: s.provider_customer_id,
        provider_subscription_id: s.provider_subscription_id,
    }
}

fn etag(version: i32) -> header::EntityTag {
    header::EntityTag::new_strong(version.to_string())
}

/// Registers `POST /v1/signup`, rate-limited per client IP.
pub fn register_signup(cfg: &mut web::ServiceConfig, settings: &crate::config::Settings) {
    let per_minute = settings.signup_rate_per_minute.max(1);
    let governor = GovernorConfigBuilder::default()
        .milliseconds_per_request((60_000 / u64::from(per_minute)).max(1))
        .burst_size(per_minute)
        .key_extractor(ClientIpKey(settings.auth.trusted_proxies.clone()))
        .finish();
    let resource = web::resource("/signup").route(web::post().to(signup));
    match governor {
        Some(config) => {
            cfg.service(resource.wrap(Governor::new(&config)));
        }
        None => {
            tracing::error!(
                "signup rate limiter refused its configuration; signup is not rate-limited"
            );
            cfg.service(resource);
        }
    }
}
