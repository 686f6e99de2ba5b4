//! New tenants: self-service signup and creation by operators. Both check
//! every field at once (a 422 names each bad one), write the tenant, its
//! subscription and its owner (or the owner's invitation) in one
//! transaction, and either enqueue provisioning (nothing to pay) or open a
//! checkout after the commit.

use chrono::{DateTime, Duration, DurationRound as _, Utc};
use secrecy::SecretString;
use serde_json::json;
use tenantry_billing::CheckoutRequest;
use tenantry_domain::{
    BillingInterval, Email, Money, Role, SubscriptionStatus, TenantSlug, TenantStatus,
    ValidationErrors, billing::BillingPeriod,
};
use tenantry_store::AsyncConnection as _;
use tenantry_store::{
    AsyncPgConnection, StoreError,
    activity::{Actor, Entry},
    catalog::{self, Plan, Product},
    crypto::{random_token, token_hash},
    identity::{self, NewUser},
    jobs::{self, Job, kinds::Provision},
    tenants::{self, Invitation, Subscription, Tenant, TenantView},
};
use uuid::Uuid;

use crate::{Caller, PaymentMode, Tenancy, TenancyError, password};

/// What `POST /v1/signup` takes.
#[derive(Debug, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct SignupInput {
    /// Company name, 1–200 characters.
    pub company_name: String,
    /// Subdomain: 3–63 of `[a-z0-9-]`, no edge hyphen, not reserved.
    pub slug: String,
    /// The owner's email (their login).
    pub email: String,
    /// The owner's password, 12–256 characters.
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = Password))]
    pub password: SecretString,
    /// Product slug, e.g. `odoo`.
    pub product: String,
    /// Plan code, e.g. `basic`.
    pub plan: String,
}

/// What `POST /v1/tenants` takes.
#[derive(Debug, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct CreateTenantInput {
    /// Company name.
    pub company_name: String,
    /// Subdomain.
    pub slug: String,
    /// Product slug.
    pub product: String,
    /// Plan code.
    pub plan: String,
    /// Who will own it: they get an invitation to set their password.
    pub owner_email: String,
    /// Start provisioning without a payment (a lifetime deal, a support case).
    #[serde(default)]
    pub skip_payment: bool,
}

/// A created tenant and what happens next.
#[derive(Debug)]
pub struct Created {
    /// The tenant.
    pub tenant: TenantView,
    /// Its subscription.
    pub subscription: Subscription,
    /// Its plan.
    pub plan: Plan,
    /// Where the customer pays (paid plans awaiting payment).
    pub checkout_url: Option<String>,
    /// The provisioning job (free plans, skipped payment).
    pub job: Option<Job>,
    /// The owner's invitation link (tenants created by operators).
    pub owner_invitation_url: Option<String>,
}

/// Now, at the database's precision (microseconds), so what a response shows
/// is what a later read returns.
fn now() -> DateTime<Utc> {
    let t = Utc::now();
    t.duration_trunc(Duration::microseconds(1)).unwrap_or(t)
}

/// Resolves and checks product and plan, recording errors under `product` / `plan`.
async fn product_and_plan(
    conn: &mut AsyncPgConnection,
    product: &str,
    plan: &str,
    errors: &mut ValidationErrors,
) -> Result<Option<(Product, Plan)>, TenancyError> {
    let product = match catalog::find_active_product(conn, product).await {
        Ok(p) => p,
        Err(StoreError::NotFound) => {
            errors.push("product", format!("no product {product:?} is offered"));
            return Ok(None);
        }
        Err(e) => return Err(e.into()),
    };
    match catalog::find_plan(conn, product.id, plan).await {
        Ok(p) if p.active => Ok(Some((product, p))),
        Ok(_) | Err(StoreError::NotFound) => {
            errors.push(
                "plan",
                format!("product {:?} offers no plan {plan:?}", product.slug),
            );
            Ok(None)
        }
        Err(e) => Err(e.into()),
    }
}

fn price_of(plan: &Plan) -> Result<Money, TenancyError> {
    plan.price().map_err(|e| TenancyError::Internal(e.into()))
}

/// The subscription of a new tenant: `active` from now when nothing is to
/// be paid (free plan or skipped payment), else `incomplete` until paid.
fn new_subscription(
    tenant_id: Uuid,
    plan: &Plan,
    paid_up: bool,
    now: DateTime<Utc>,
) -> Result<Subscription, TenancyError> {
    let (status, start, end) = if paid_up {
        let interval: BillingInterval = plan
            .billing_interval
            .parse()
            .map_err(|e: String| TenancyError::Internal(anyhow::anyhow!(e)))?;
        let period = BillingPeriod::nth(now, interval, 0)
            .ok_or_else(|| TenancyError::Internal(anyhow::anyhow!("date out of range")))?;
        (SubscriptionStatus::Active, Some(period.start), period.end)
    } else {
        (SubscriptionStatus::Incomplete, None, None)
    };
    Ok(Subscription {
        id: Uuid::now_v7(),
        tenant_id,
        plan_id: plan.id,
        status,
        current_period_start: start,
        current_period_end: end,
        provider: "none".into(),
        provider_customer_id: None,
        provider_subscription_id: None,
        created_at: now,
        updated_at: now,
        billing_anchor: start,
        saved_payment_method: false,
        past_due_since: None,
        price_version: 0,
        price_synced_version: 0,
    })
}

fn new_tenant(
    slug: &TenantSlug,
    company: &str,
    product: &Product,
    plan: &Plan,
    status: TenantStatus,
) -> Tenant {
    let now = now();
    Tenant {
        id: Uuid::now_v7(),
        slug: slug.to_string(),
        company_name: company.to_owned(),
        product_id: product.id,
        plan_id: plan.id,
        deployment: plan.deployment.clone(),
        status,
        status_reason: None,
        provisioned_at: None,
        version: 1,
        created_at: now,
        updated_at: now,
    }
}

pub(crate) fn company_name(s: &str, errors: &mut ValidationErrors) -> Option<String> {
    let t = s.trim();
    if t.is_empty() || t.chars().count() > 200 {
        errors.push("company_name", "must be 1 to 200 characters");
        None
    } else {
        Some(t.to_owned())
    }
}

async fn insert_tenant_mapped(
    conn: &mut AsyncPgConnection,
    tenant: &Tenant,
    subscription: &Subscription,
) -> Result<(), TenancyError> {
    tenants::insert_tenant(conn, tenant, subscription)
        .await
        .map_err(|e| match e {
            StoreError::Conflict { .. } => TenancyError::conflict(
                "slug-taken",
                format!("the subdomain {:?} is taken", tenant.slug),
            ),
            other => other.into(),
        })
}

/// With Stripe, the `stripe.create_checkout` job, in the signup's
/// transaction: if Stripe cannot be reached after the commit, a worker opens
/// the session later (same idempotency key).
async fn enqueue_checkout(
    t: &Tenancy,
    conn: &mut AsyncPgConnection,
    tenant: &Tenant,
    subscription: &Subscription,
) -> Result<(), TenancyError> {
    if t.payments == PaymentMode::Stripe {
        tenantry_billing::stripe::jobs::enqueue_checkout(conn, tenant.id, subscription.id).await?;
    }
    Ok(())
}

/// The checkout URL of a paid signup, opened after the signup committed
/// (outbound calls never run inside a transaction). With Stripe this runs
/// the `stripe.create_checkout` job's code inline; `None` when payments are
/// disabled (an operator marks the payment).
async fn checkout(
    t: &Tenancy,
    tenant: &TenantView,
    subscription: &Subscription,
    email: &str,
    plan: &Plan,
) -> Result<Option<String>, TenancyError> {
    if t.payments == PaymentMode::Disabled {
        return Ok(None);
    }
    let session = t
        .gateway
        .create_checkout(CheckoutRequest {
            tenant_id: tenant.tenant.id,
            subscription_id: subscription.id,
            email: email.to_owned(),
            product: tenant.product_slug.clone(),
            plan: plan.code.clone(),
            price: price_of(plan)?,
        })
        .await
        .map_err(|e| {
            TenancyError::Unavailable(anyhow::Error::new(e).context("opening a checkout"))
        })?;
    Ok(Some(session.url))
}

/// The checked parts of a new tenant.
struct NewTenantParts {
    company: String,
    slug: TenantSlug,
    email: Email,
    product: Product,
    plan: Plan,
}

/// Validates what every new tenant needs, naming each bad field; `email_field`
/// is the field the email came in; `extra` adds the caller's own checks.
async fn validate_new_tenant(
    conn: &mut AsyncPgConnection,
    company: &str,
    slug: &str,
    (email_field, email): (&str, &str),
    (product, plan): (&str, &str),
    extra: impl FnOnce(&mut ValidationErrors),
) -> Result<NewTenantParts, TenancyError> {
    let mut errors = ValidationErrors::new();
    let company = company_name(company, &mut errors);
    let slug = errors.check("slug", TenantSlug::parse(slug));
    let email = errors.check(email_field, Email::parse(email));
    extra(&mut errors);
    let chosen = product_and_plan(conn, product, plan, &mut errors).await?;
    Ok(errors.into_result(|| {
        let (product, plan) = chosen?;
        Some(NewTenantParts {
            company: company?,
            slug: slug?,
            email: email?,
            product,
            plan,
        })
    })?)
}

/// A new tenant about to be written: its rows, and whether it starts
/// provisioning at once (nothing to pay) or waits for a checkout.
struct Draft {
    tenant: Tenant,
    subscription: Subscription,
    product: Product,
    plan: Plan,
    paid_up: bool,
}

impl Draft {
    /// The rows of a tenant from its checked parts; `paid_up` when nothing
    /// is to be paid (a free plan, or staff skipping the payment).
    async fn new(
        t: &Tenancy,
        conn: &mut AsyncPgConnection,
        parts: NewTenantParts,
        skip_payment: bool,
    ) -> Result<(Self, Email), TenancyError> {
        let NewTenantParts {
            company,
            slug,
            email,
            product,
            plan,
        } = parts;
        let paid_up = skip_payment || price_of(&plan)?.amount().is_zero();
        let status = if paid_up {
            TenantStatus::Provisioning
        } else {
            TenantStatus::PendingPayment
        };
        let tenant = new_tenant(&slug, &company, &product, &plan, status);
        let billing_now = t.clock.now(conn).await?;
        let subscription = new_subscription(tenant.id, &plan, paid_up, billing_now)?;
        let draft = Self {
            tenant,
            subscription,
            product,
            plan,
            paid_up,
        };
        Ok((draft, email))
    }

    /// Inside the creating transaction: the tenant and its subscription,
    /// then its `provision` job (paid up) or, with Stripe, the
    /// `stripe.create_checkout` job that backs its checkout.
    async fn insert(
        &self,
        t: &Tenancy,
        conn: &mut AsyncPgConnection,
    ) -> Result<Option<Job>, TenancyError> {
        insert_tenant_mapped(conn, &self.tenant, &self.subscription).await?;
        if self.paid_up {
            let provision = Provision {
                tenant_id: self.tenant.id,
            };
            return Ok(Some(jobs::enqueue(conn, &provision).await?));
        }
        enqueue_checkout(t, conn, &self.tenant, &self.subscription).await?;
        Ok(None)
    }

    /// After the commit: the checkout of a tenant that must pay (outbound
    /// calls never run inside a transaction), and what the caller is shown.
    async fn created(
        self,
        t: &Tenancy,
        email: &str,
        job: Option<Job>,
        owner_invitation_url: Option<String>,
    ) -> Result<Created, TenancyError> {
        let view = TenantView {
            tenant: self.tenant,
            product_slug: self.product.slug.clone(),
            plan_code: self.plan.code.clone(),
        };
        let checkout_url = if self.paid_up {
            None
        } else {
            checkout(t, &view, &self.subscription, email, &self.plan).await?
        };
        Ok(Created {
            tenant: view,
            subscription: self.subscription,
            plan: self.plan,
            checkout_url,
            job,
            owner_invitation_url,
        })
    }
}

/// Self-service signup: the tenant (`pending_payment`), its `tenant_owner`
/// and its subscription (`incomplete`) in one transaction, then a checkout
/// for a paid plan; a free plan goes straight to provisioning with a job.
///
/// # Errors
/// `422` naming each invalid field, `409 slug-taken` / `email-taken`, `503`
/// when the payment provider is down (the tenant then waits in `pending_payment`).
pub async fn signup(
    t: &Tenancy,
    input: SignupInput,
    caller: &Caller,
) -> Result<Created, TenancyError> {
    let mut conn = t.pool.get().await?;
    let parts = validate_new_tenant(
        &mut conn,
        &input.company_name,
        &input.slug,
        ("email", &input.email),
        (&input.product, &input.plan),
        |errors| {
            errors.check("password", password::check_new_password(&input.password));
        },
    )
    .await?;
    let phc = password::hash_blocking(&t.hasher, &input.password)
        .await
        .map_err(TenancyError::Internal)?;
    let (draft, email) = Draft::new(t, &mut conn, parts, false).await?;
    let (tenant, subscription) = (&draft.tenant, &draft.subscription);
    let job = conn
        .transaction::<_, TenancyError, _>(async |conn| {
            let job = draft.insert(t, conn).await?;
            let owner = identity::create_user(
                conn,
                &NewUser { id: Uuid::now_v7(), email: email.as_str(), password_hash: &phc, role: Role::TenantOwner.as_str(), tenant_id: Some(tenant.id) },
            )
            .await
            .map_err(|e| match e {
                StoreError::Conflict { .. } => TenancyError::conflict("email-taken", format!("an account with email {email} already exists: sign in instead")),
                other => other.into(),
            })?;
            Entry::by(&Actor { label: email.to_string(), ..caller.actor.clone() }, "tenant.signup")
                .actor(owner.id, Some(tenant.id))
                .target("tenant", tenant.id)
                .change(None, Some(json!({"slug": tenant.slug, "status": tenant.status, "plan": draft.plan.code, "subscription": subscription.status})))
                .record(conn)
                .await?;
            Ok(job)
        })
        .await?;
    draft.created(t, email.as_str(), job, None).await
}

/// An operator creates a tenant for a customer, inviting its owner.
/// `skip_payment` (or a free plan) starts provisioning at once.
///
/// # Errors
/// `422`, `409 slug-taken`, `503` (payment provider).
pub async fn create_for_customer(
    t: &Tenancy,
    caller: &Caller,
    input: CreateTenantInput,
) -> Result<Created, TenancyError> {
    let mut conn = t.pool.get().await?;
    let parts = validate_new_tenant(
        &mut conn,
        &input.company_name,
        &input.slug,
        ("owner_email", &input.owner_email),
        (&input.product, &input.plan),
        |_| {},
    )
    .await?;
    let (draft, email) = Draft::new(t, &mut conn, parts, input.skip_payment).await?;
    let (invitation, token) = new_invitation(
        t,
        &mut conn,
        caller,
        draft.tenant.id,
        &email,
        Role::TenantOwner,
    )
    .await?;
    let tenant = &draft.tenant;
    let job = conn
        .transaction::<_, TenancyError, _>(async |conn| {
            let job = draft.insert(t, conn).await?;
            tenants::insert_invitation(conn, &invitation).await?;
            caller.entry("tenant.created")
                .tenant(Some(tenant.id))
                .target("tenant", tenant.id)
                .change(None, Some(json!({"slug": tenant.slug, "status": tenant.status, "plan": draft.plan.code, "owner_email": email.as_str(), "skip_payment": input.skip_payment})))
                .record(conn)
                .await?;
            Ok(job)
        })
        .await?;
    let url = invitation_url(t, &token);
    draft.created(t, email.as_str(), job, Some(url)).await
}

/// An invitation of `email` to `tenant_id` with `role`, by `caller`, valid
/// for the configured TTL, and its token (shown once; only its hash is
/// stored). Refused when an account with that email exists.
///
/// # Errors
/// `409 email-taken`.
pub(crate) async fn new_invitation(
    t: &Tenancy,
    conn: &mut AsyncPgConnection,
    caller: &Caller,
    tenant_id: Uuid,
    email: &Email,
    role: Role,
) -> Result<(Invitation, String), TenancyError> {
    if identity::find_user_by_email(conn, email.as_str())
        .await?
        .is_some()
    {
        return Err(TenancyError::conflict(
            "email-taken",
            format!("an account with email {email} already exists"),
        ));
    }
    let token = random_token(32);
    let ttl = Duration::from_std(t.invitation_ttl).map_err(|e| TenancyError::Internal(e.into()))?;
    let now = Utc::now();
    let invitation = Invitation {
        id: Uuid::now_v7(),
        tenant_id,
        email: email.to_string(),
        role: role.to_string(),
        token_hash: token_hash(&token),
        invited_by: caller.actor.user_id,
        expires_at: now + ttl,
        accepted_at: None,
        revoked_at: None,
        created_at: now,
    };
    Ok((invitation, token))
}

pub(crate) fn invitation_url(t: &Tenancy, token: &str) -> String {
    format!("{}/v1/invitations/accept#token={token}", t.public_url)
}
