//! The tenant service: signup, creation by operators, lifecycle transitions,
//! members and invitations. Handlers call one function here; each change
//! runs in one transaction and writes its activity rows in it.

use chrono::{DateTime, Duration, DurationRound as _, Utc};
use secrecy::SecretString;
use serde_json::json;
use tenantry_billing::CheckoutRequest;
use tenantry_domain::{
    BillingInterval, Currency, Email, Money, Role, SubscriptionStatus, TenantSlug, TenantStatus,
    ValidationErrors, billing::BillingPeriod,
};
use tenantry_store::AsyncConnection as _;
use tenantry_store::{
    AsyncPgConnection, StoreError,
    catalog::{self, Plan, Product},
    crypto::{random_token, token_hash},
    identity::{self, NewUser, User},
    jobs::{self, Job},
    tenants::{self, Invitation, Subscription, Tenant, TenantView, Visibility},
};
use uuid::Uuid;

use crate::{
    ApiError, AppState,
    audit::AuditEvent,
    auth::{ClientInfo, Principal, password},
    config::Payments,
};

/// What `POST /v1/signup` takes.
#[derive(Debug, serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SignupInput {
    /// Company name, 1–200 characters.
    pub company_name: String,
    /// Subdomain: 3–63 of `[a-z0-9-]`, no edge hyphen, not reserved.
    pub slug: String,
    /// The owner's email (their login).
    pub email: String,
    /// The owner's password, 12–256 characters.
    #[schema(value_type = String, format = Password)]
    pub password: SecretString,
    /// Product slug, e.g. `odoo`.
    pub product: String,
    /// Plan code, e.g. `basic`.
    pub plan: String,
}

/// What `POST /v1/tenants` takes.
#[derive(Debug, serde::Deserialize, utoipa::ToSchema)]
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

fn conflict(code: &'static str, detail: String) -> ApiError {
    ApiError::Conflict { code, detail }
}

/// Resolves and checks product and plan, recording errors under `product` / `plan`.
async fn product_and_plan(
    conn: &mut AsyncPgConnection,
    product: &str,
    plan: &str,
    errors: &mut ValidationErrors,
) -> Result<Option<(Product, Plan)>, ApiError> {
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

fn price_of(plan: &Plan) -> Result<Money, ApiError> {
    let currency = Currency::parse(&plan.currency).map_err(|e| ApiError::Internal(e.into()))?;
    Ok(Money::rounded(plan.price, currency))
}

/// The subscription of a new tenant: `active` from now when nothing is to
/// be paid (free plan or skipped payment), else `incomplete` until paid.
fn new_subscription(
    tenant_id: Uuid,
    plan: &Plan,
    paid_up: bool,
    now: DateTime<Utc>,
) -> Result<Subscription, ApiError> {
    let (status, start, end) = if paid_up {
        let interval: BillingInterval = plan
            .billing_interval
            .parse()
            .map_err(|e: String| ApiError::Internal(anyhow::anyhow!(e)))?;
        let period = BillingPeriod::nth(now, interval, 0)
            .ok_or_else(|| ApiError::Internal(anyhow::anyhow!("date out of range")))?;
        (SubscriptionStatus::Active, Some(period.start), period.end)
    } else {
        (SubscriptionStatus::Incomplete, None, None)
    };
    Ok(Subscription {
        id: Uuid::now_v7(),
        tenant_id,
        plan_id: plan.id,
        status: status.to_string(),
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
        status: status.to_string(),
        status_reason: None,
        provisioned_at: None,
        version: 1,
        created_at: now,
        updated_at: now,
    }
}

fn company_name(s: &str, errors: &mut ValidationErrors) -> Option<String> {
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
) -> Result<(), ApiError> {
    tenants::insert_tenant(conn, tenant, subscription)
        .await
        .map_err(|e| match e {
            StoreError::Conflict { .. } => conflict(
                "slug-taken",
                format!("the subdomain {:?} is taken", tenant.slug),
            ),
            other => other.into(),
        })
}

fn provision_job_key(tenant: Uuid) -> String {
    format!("provision:{tenant}")
}

/// With Stripe, the `stripe.create_checkout` job, in the signup's
/// transaction: if Stripe cannot be reached after the commit, a worker opens
/// the session later (same idempotency key).
async fn enqueue_checkout(
    state: &AppState,
    conn: &mut AsyncPgConnection,
    tenant: &Tenant,
    subscription: &Subscription,
) -> Result<(), ApiError> {
    if matches!(state.settings.payments, Payments::Stripe(_)) {
        tenantry_billing::stripe::jobs::enqueue_checkout(conn, tenant.id, subscription.id).await?;
    }
    Ok(())
}

/// The checkout URL of a paid signup, opened after the signup committed
/// (outbound calls never run inside a transaction). With Stripe this runs
/// the `stripe.create_checkout` job's code inline; `None` when payments are
/// disabled (an operator marks the payment).
async fn checkout(
    state: &AppState,
    tenant: &TenantView,
    subscription: &Subscription,
    email: &str,
    plan: &Plan,
) -> Result<Option<String>, ApiError> {
    if matches!(state.settings.payments, Payments::Disabled) {
        return Ok(None);
    }
    let session = state
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
        .map_err(|e| ApiError::Unavailable(anyhow::Error::new(e).context("opening a checkout")))?;
    Ok(Some(session.url))
}

/// Staff record a signup's payment made outside the provider (or with
/// payments disabled): the tenant goes `pending_payment → provisioning` with
/// its `provision` job, exactly as a paid checkout does.
///
/// # Errors
/// `404`, `409 invalid-transition` when the tenant is not awaiting payment.
pub async fn mark_signup_paid(
    state: &AppState,
    principal: &Principal,
    id_or_slug: &str,
    reference: &str,
    client: &ClientInfo,
) -> Result<(TenantView, Option<Job>), ApiError> {
    let mut conn = state.pool.get().await?;
    let view = find(&mut conn, principal, id_or_slug).await?;
    let now = state.settings.billing_clock().now(&mut conn).await?;
    let actor = tenantry_billing::engine::Actor {
        user_id: Some(principal.user_id),
        token_id: principal.token.as_ref().map(|t| t.id),
        label: principal.label(),
        client_ip: client.ip.map(|i| i.to_string()),
        user_agent: client.user_agent.clone(),
        request_id: client.request_id.clone(),
    };
    let tenant_id = view.tenant.id;
    let job = conn
        .transaction::<_, ApiError, _>(async |conn| {
            let (sub, _) = tenants::subscription_of(conn, tenant_id).await?;
            tenantry_billing::stripe::events::signup_paid_by(conn, now, &sub, reference, &actor)
                .await?
                .map_err(|status| {
                    conflict(
                        "invalid-transition",
                        format!("the tenant is {status}, not awaiting payment"),
                    )
                })
        })
        .await?;
    let view = find(&mut conn, principal, &tenant_id.to_string()).await?;
    Ok((view, Some(job)))
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
) -> Result<NewTenantParts, ApiError> {
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

/// Self-service signup: the tenant (`pending_payment`), its `tenant_owner`
/// and its subscription (`incomplete`) in one transaction, then a checkout
/// for a paid plan; a free plan goes straight to provisioning with a job.
///
/// # Errors
/// `422` naming each invalid field, `409 slug-taken` / `email-taken`, `503`
/// when the payment provider is down (the tenant then waits in `pending_payment`).
pub async fn signup(
    state: &AppState,
    input: SignupInput,
    client: &ClientInfo,
) -> Result<Created, ApiError> {
    let mut conn = state.pool.get().await?;
    let NewTenantParts {
        company,
        slug,
        email,
        product,
        plan,
    } = validate_new_tenant(
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

    let phc = password::hash_blocking(&state.auth.hasher, &input.password).await?;
    let free = price_of(&plan)?.amount().is_zero();
    let status = if free {
        TenantStatus::Provisioning
    } else {
        TenantStatus::PendingPayment
    };
    let tenant = new_tenant(&slug, &company, &product, &plan, status);
    let billing_now = state.settings.billing_clock().now(&mut conn).await?;
    let subscription = new_subscription(tenant.id, &plan, free, billing_now)?;
    let (owner, job) = conn
        .transaction::<_, ApiError, _>(async |conn| {
            insert_tenant_mapped(conn, &tenant, &subscription).await?;
            let owner = identity::create_user(
                conn,
                &NewUser { id: Uuid::now_v7(), email: email.as_str(), password_hash: &phc, role: Role::TenantOwner.as_str(), tenant_id: Some(tenant.id) },
            )
            .await
            .map_err(|e| match e {
                StoreError::Conflict { .. } => conflict("email-taken", format!("an account with email {email} already exists: sign in instead")),
                other => other.into(),
            })?;
            let job = if free { Some(jobs::enqueue(conn, "provision", Some(tenant.id), json!({"tenant_id": tenant.id}), Some(&provision_job_key(tenant.id))).await?) } else { None };
            if !free {
                enqueue_checkout(state, conn, &tenant, &subscription).await?;
            }
            AuditEvent::anonymous(email.as_str(), "tenant.signup")
                .actor(owner.id, Some(tenant.id))
                .target("tenant", tenant.id)
                .change(None, Some(json!({"slug": tenant.slug, "status": tenant.status, "plan": plan.code, "subscription": subscription.status})))
                .record(conn, client)
                .await?;
            Ok((owner, job))
        })
        .await?;
    let view = TenantView {
        tenant,
        product_slug: product.slug.clone(),
        plan_code: plan.code.clone(),
    };
    let checkout_url = if free {
        None
    } else {
        checkout(state, &view, &subscription, &owner.email, &plan).await?
    };
    Ok(Created {
        tenant: view,
        subscription,
        plan,
        checkout_url,
        job,
        owner_invitation_url: None,
    })
}

/// An operator creates a tenant for a customer, inviting its owner.
/// `skip_payment` (or a free plan) starts provisioning at once.
///
/// # Errors
/// `422`, `409 slug-taken`, `503` (payment provider).
pub async fn create_for_customer(
    state: &AppState,
    principal: &Principal,
    input: CreateTenantInput,
    client: &ClientInfo,
) -> Result<Created, ApiError> {
    let mut conn = state.pool.get().await?;
    let NewTenantParts {
        company,
        slug,
        email,
        product,
        plan,
    } = validate_new_tenant(
        &mut conn,
        &input.company_name,
        &input.slug,
        ("owner_email", &input.owner_email),
        (&input.product, &input.plan),
        |_| {},
    )
    .await?;
    if identity::find_user_by_email(&mut conn, email.as_str())
        .await?
        .is_some()
    {
        return Err(conflict(
            "email-taken",
            format!("an account with email {email} already exists"),
        ));
    }
    let paid_up = input.skip_payment || price_of(&plan)?.amount().is_zero();
    let status = if paid_up {
        TenantStatus::Provisioning
    } else {
        TenantStatus::PendingPayment
    };
    let tenant = new_tenant(&slug, &company, &product, &plan, status);
    let billing_now = state.settings.billing_clock().now(&mut conn).await?;
    let subscription = new_subscription(tenant.id, &plan, paid_up, billing_now)?;
    let token = random_token(32);
    let ttl = Duration::from_std(state.settings.invitation_ttl)
        .map_err(|e| ApiError::Internal(e.into()))?;
    let job = conn
        .transaction::<_, ApiError, _>(async |conn| {
            insert_tenant_mapped(conn, &tenant, &subscription).await?;
            tenants::insert_invitation(
                conn,
                &Invitation {
                    id: Uuid::now_v7(),
                    tenant_id: tenant.id,
                    email: email.to_string(),
                    role: Role::TenantOwner.to_string(),
                    token_hash: token_hash(&token),
                    invited_by: Some(principal.user_id),
                    expires_at: Utc::now() + ttl,
                    accepted_at: None,
                    revoked_at: None,
                    created_at: Utc::now(),
                },
            )
            .await?;
            let job = if paid_up { Some(jobs::enqueue(conn, "provision", Some(tenant.id), json!({"tenant_id": tenant.id}), Some(&provision_job_key(tenant.id))).await?) } else { None };
            if !paid_up {
                enqueue_checkout(state, conn, &tenant, &subscription).await?;
            }
            AuditEvent::by(principal, "tenant.created")
                .tenant(Some(tenant.id))
                .target("tenant", tenant.id)
                .change(None, Some(json!({"slug": tenant.slug, "status": tenant.status, "plan": plan.code, "owner_email": email.as_str(), "skip_payment": input.skip_payment})))
                .record(conn, client)
                .await?;
            Ok(job)
        })
        .await?;
    let view = TenantView {
        tenant,
        product_slug: product.slug.clone(),
        plan_code: plan.code.clone(),
    };
    let checkout_url = if paid_up {
        None
    } else {
        checkout(state, &view, &subscription, email.as_str(), &plan).await?
    };
    Ok(Created {
        tenant: view,
        subscription,
        plan,
        checkout_url,
        job,
        owner_invitation_url: Some(invitation_url(state, &token)),
    })
}

fn invitation_url(state: &AppState, token: &str) -> String {
    format!(
        "{}/v1/invitations/accept#token={token}",
        state.settings.public_url
    )
}

/// Whom a caller may see.
pub fn visibility(principal: &Principal) -> Visibility {
    principal
        .tenant_id
        .map_or(Visibility::All, Visibility::Only)
}

/// Finds a tenant the caller may see (by id or slug).
///
/// # Errors
/// `404` when it does not exist or is another tenant's.
pub async fn find(
    conn: &mut AsyncPgConnection,
    principal: &Principal,
    id_or_slug: &str,
) -> Result<TenantView, ApiError> {
    tenants::find_tenant(conn, id_or_slug, visibility(principal))
        .await
        .map_err(|e| match e {
            StoreError::NotFound => ApiError::not_found(format!("tenant {id_or_slug:?}")),
            other => other.into(),
        })
}

/// Moves a tenant to `to` (checked against the lifecycle on the locked row),
/// writes the activity row and, for `job_kind`, enqueues the job, at once.
///
/// # Errors
/// `404`, `409 invalid-transition` naming both states.
pub async fn transition(
    state: &AppState,
    principal: &Principal,
    id_or_slug: &str,
    to: TenantStatus,
    job_kind: Option<&str>,
    client: &ClientInfo,
) -> Result<(TenantView, Option<Job>), ApiError> {
    let mut conn = state.pool.get().await?;
    let view = find(&mut conn, principal, id_or_slug).await?;
    let id = view.tenant.id;
    let (tenant, job) = conn
        .transaction::<_, ApiError, _>(async |conn| {
            let current = tenants::lock_tenant(conn, id).await?;
            let from: TenantStatus = current
                .status
                .parse()
                .map_err(|e: String| ApiError::Internal(anyhow::anyhow!(e)))?;
            from.transition(to).map_err(|e| {
                conflict(
                    "invalid-transition",
                    format!("{e} (current: {}, requested: {})", e.from, e.to),
                )
            })?;
            let updated = tenants::set_status(conn, id, to.as_str(), None).await?;
            if to == TenantStatus::Deprovisioning {
                // Terminating or deleting a tenant cancels its plan change (Lago PR #345).
                if let Some(c) =
                    tenantry_store::billing::cancel_open_change(conn, id, &["pending", "scheduled"])
                        .await?
                {
                    AuditEvent::by(principal, "plan_change.canceled")
                        .tenant(Some(id))
                        .target("plan_change", c.id)
                        .record(conn, client)
                        .await?;
                }
            }
            let job = match job_kind {
                Some(kind) => Some(
                    jobs::enqueue(
                        conn,
                        kind,
                        Some(id),
                        json!({"tenant_id": id}),
                        Some(&format!("{kind}:{id}")),
                    )
                    .await?,
                ),
                None => None,
            };
            AuditEvent::by(principal, "tenant.status_changed")
                .tenant(Some(id))
                .target("tenant", id)
                .change(
                    Some(json!({"status": from.as_str()})),
                    Some(json!({"status": to.as_str()})),
                )
                .record(conn, client)
                .await?;
            Ok((updated, job))
        })
        .await?;
    Ok((TenantView { tenant, ..view }, job))
}

/// Renames a tenant's company, optionally only at `expected_version` (`If-Match`).
///
/// # Errors
/// `404`, `412 precondition-failed`, `422`.
pub async fn rename(
    state: &AppState,
    principal: &Principal,
    id_or_slug: &str,
    company: &str,
    expected_version: Option<i32>,
    client: &ClientInfo,
) -> Result<TenantView, ApiError> {
    let mut errors = ValidationErrors::new();
    let company = company_name(company, &mut errors);
    let company = errors.into_result(|| company)?;
    let mut conn = state.pool.get().await?;
    let view = find(&mut conn, principal, id_or_slug).await?;
    let updated = conn
        .transaction::<_, ApiError, _>(async |conn| {
            let updated =
                tenants::update_company_name(conn, view.tenant.id, &company, expected_version)
                    .await?
                    .ok_or_else(|| {
                        ApiError::PreconditionFailed(
                    "the tenant changed since you read it (If-Match is stale): read it again"
                        .into(),
                )
                    })?;
            AuditEvent::by(principal, "tenant.updated")
                .tenant(Some(view.tenant.id))
                .target("tenant", view.tenant.id)
                .change(
                    Some(json!({"company_name": view.tenant.company_name})),
                    Some(json!({"company_name": updated.company_name})),
                )
                .record(conn, client)
                .await?;
            Ok(updated)
        })
        .await?;
    Ok(TenantView {
        tenant: updated,
        ..view
    })
}

/// Invites someone to a tenant; returns the invitation link (shown once).
///
/// # Errors
/// `404`, `409 email-taken`, `422`.
pub async fn invite(
    state: &AppState,
    principal: &Principal,
    id_or_slug: &str,
    email: &str,
    client: &ClientInfo,
) -> Result<(Invitation, String), ApiError> {
    let mut errors = ValidationErrors::new();
    let email = errors.check("email", Email::parse(email));
    let email = errors.into_result(|| email)?;
    let mut conn = state.pool.get().await?;
    let view = find(&mut conn, principal, id_or_slug).await?;
    if identity::find_user_by_email(&mut conn, email.as_str())
        .await?
        .is_some()
    {
        return Err(conflict(
            "email-taken",
            format!("an account with email {email} already exists"),
        ));
    }
    let token = random_token(32);
    let ttl = Duration::from_std(state.settings.invitation_ttl)
        .map_err(|e| ApiError::Internal(e.into()))?;
    let invitation = Invitation {
        id: Uuid::now_v7(),
        tenant_id: view.tenant.id,
        email: email.to_string(),
        role: Role::TenantMember.to_string(),
        token_hash: token_hash(&token),
        invited_by: Some(principal.user_id),
        expires_at: Utc::now() + ttl,
        accepted_at: None,
        revoked_at: None,
        created_at: Utc::now(),
    };
    conn.transaction::<_, ApiError, _>(async |conn| {
        tenants::insert_invitation(conn, &invitation).await?;
        AuditEvent::by(principal, "member.invited")
            .tenant(Some(view.tenant.id))
            .target("invitation", invitation.id)
            .change(
                None,
                Some(json!({"email": invitation.email, "role": invitation.role})),
            )
            .record(conn, client)
            .await?;
        Ok(())
    })
    .await?;
    Ok((invitation, invitation_url(state, &token)))
}

/// Accepts an invitation: creates the user with the password chosen.
///
/// # Errors
/// `404` for an unknown, used, revoked or expired token; `422` for a weak
/// password; `409 email-taken`.
pub async fn accept_invitation(
    state: &AppState,
    token: &str,
    password: &SecretString,
    client: &ClientInfo,
) -> Result<User, ApiError> {
    let mut errors = ValidationErrors::new();
    errors.check("password", password::check_new_password(password));
    errors.into_result(|| Some(()))?;
    let phc = password::hash_blocking(&state.auth.hasher, password).await?;
    let mut conn = state.pool.get().await?;
    let hash = token_hash(token);
    conn.transaction::<_, ApiError, _>(async |conn| {
        let inv = tenants::lock_live_invitation(conn, &hash)
            .await
            .map_err(|e| match e {
                StoreError::NotFound => {
                    ApiError::not_found("invitation (unknown, used or expired)")
                }
                other => other.into(),
            })?;
        let user = identity::create_user(
            conn,
            &NewUser {
                id: Uuid::now_v7(),
                email: &inv.email,
                password_hash: &phc,
                role: &inv.role,
                tenant_id: Some(inv.tenant_id),
            },
        )
        .await
        .map_err(|e| match e {
            StoreError::Conflict { .. } => conflict(
                "email-taken",
                format!("an account with email {} already exists", inv.email),
            ),
            other => other.into(),
        })?;
        tenants::mark_invitation_accepted(conn, inv.id).await?;
        AuditEvent::anonymous(&user.email, "member.joined")
            .actor(user.id, user.tenant_id)
            .target("user", user.id)
            .change(None, Some(json!({"email": user.email, "role": user.role})))
            .record(conn, client)
            .await?;
        Ok(user)
    })
    .await
}

/// Removes a `tenant_member` from a tenant.
///
/// # Errors
/// `404` for no such member of that tenant.
pub async fn remove_member(
    state: &AppState,
    principal: &Principal,
    id_or_slug: &str,
    user_id: Uuid,
    client: &ClientInfo,
) -> Result<(), ApiError> {
    let mut conn = state.pool.get().await?;
    let view = find(&mut conn, principal, id_or_slug).await?;
    conn.transaction::<_, ApiError, _>(async |conn| {
        let removed = tenants::remove_member(conn, view.tenant.id, user_id)
            .await
            .map_err(|e| match e {
                StoreError::NotFound => ApiError::not_found(format!("member {user_id}")),
                other => other.into(),
            })?;
        AuditEvent::by(principal, "member.removed")
            .tenant(Some(view.tenant.id))
            .target("user", user_id)
            .change(
                Some(json!({"email": removed.email, "role": removed.role})),
                None,
            )
            .record(conn, client)
            .await?;
        Ok(())
    })
    .await
}
