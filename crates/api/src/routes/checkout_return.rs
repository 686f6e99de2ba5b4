//! The pages Stripe Checkout sends a customer back to: `GET /billing/success`
//! (after paying; `?session_id=` names the Checkout Session) and
//! `GET /billing/canceled` (after giving up), the defaults of
//! `TENANTRY_STRIPE_SUCCESS_URL` and `TENANTRY_STRIPE_CANCEL_URL`. Small HTML
//! pages for people, not part of the JSON API: they say where the tenant
//! stands, and nothing the session id alone should not reveal (the slug and
//! the status, no names or emails).

use actix_web::{HttpResponse, get, web};
use serde::Deserialize;
use tenantry_domain::TenantStatus;

use crate::{AppState, error::ApiResult};

/// What the success page is given.
#[derive(Debug, Deserialize)]
pub struct SuccessQuery {
    /// The Checkout Session the customer paid (Stripe fills `{CHECKOUT_SESSION_ID}`).
    pub session_id: Option<String>,
}

fn page(status: u16, title: &str, body: &str) -> HttpResponse {
    let status =
        actix_web::http::StatusCode::from_u16(status).unwrap_or(actix_web::http::StatusCode::OK);
    HttpResponse::build(status)
        .content_type("text/html; charset=utf-8")
        .body(format!(
            "<!doctype html><html lang=en><meta charset=utf-8>\
             <meta name=viewport content=\"width=device-width\"><title>{title}</title>\
             <h1>{title}</h1><p>{body}</p></html>"
        ))
}

/// Where a tenant stands, in words for its customer.
fn standing(status: TenantStatus) -> &'static str {
    match status {
        TenantStatus::PendingPayment => {
            "we are waiting for the payment to be confirmed; this page can be reloaded"
        }
        TenantStatus::Provisioning => "your workspace is being set up",
        TenantStatus::Active => "your workspace is ready",
        TenantStatus::Migrating => "your workspace is moving to its new plan",
        TenantStatus::Paused | TenantStatus::Suspended => "your workspace is paused",
        TenantStatus::Failed => "setting up your workspace failed; our team has been told",
        TenantStatus::Deprovisioning | TenantStatus::Deleted => "this workspace was closed",
    }
}

/// After paying at Checkout.
#[get("/billing/success")]
pub async fn success(
    state: web::Data<AppState>,
    web::Query(q): web::Query<SuccessQuery>,
) -> ApiResult<HttpResponse> {
    let Some(session) = q.session_id.filter(|s| !s.is_empty() && s.len() <= 255) else {
        return Ok(page(
            400,
            "No checkout named",
            "This page needs the checkout's session id.",
        ));
    };
    let Some(view) =
        tenantry_billing::stripe::checkout::returning_customer(&state.pool, &session).await?
    else {
        return Ok(page(
            404,
            "Unknown checkout",
            "No checkout of ours has that session id.",
        ));
    };
    let tenant = &view.tenant;
    Ok(page(
        200,
        "Thank you",
        &format!(
            "Payment for workspace <b>{}</b> received: {} (status: {}).",
            tenant.slug,
            standing(tenant.status),
            tenant.status
        ),
    ))
}

/// After giving up at Checkout.
#[get("/billing/canceled")]
pub async fn canceled() -> HttpResponse {
    page(
        200,
        "Checkout canceled",
        "Nothing was charged. Your workspace waits for its first payment: use the \
         checkout link you were given to pay, or sign in to start again.",
    )
}
