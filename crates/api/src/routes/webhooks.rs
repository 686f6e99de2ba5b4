//! Payment-provider webhooks. Public by design: a delivery proves itself by
//! its signature, not by a bearer token.

use actix_web::{HttpRequest, post, web};
use serde::Serialize;
use tenantry_billing::stripe::{
    events::{self, IngestError, Ingested},
    signature,
};
use utoipa::ToSchema;

use crate::{ApiError, AppState, config::Payments, error::ApiResult};

/// What a delivery did.
#[derive(Debug, Serialize, ToSchema)]
pub struct WebhookAck {
    /// Always `true`: Stripe needs nothing else to stop retrying.
    pub received: bool,
    /// `applied` (a new event with an effect), `ignored` (a new event
    /// without one: an unhandled type, a state already reached) or
    /// `duplicate` (this event id was already recorded; nothing done).
    pub outcome: &'static str,
}

/// Stripe webhook (`Stripe-Signature` verified on the raw body with any
/// configured signing secret, 300 s tolerance). Each event is recorded by
/// its id in the same transaction as its effects; a repeated id changes
/// nothing. Source: docs.stripe.com/webhooks.
#[utoipa::path(
    context_path = "/v1", tag = "webhooks",
    params(("Stripe-Signature" = String, Header, description = "`t=UNIX_SECONDS,v1=HEX_HMAC_SHA256[,v1=…]` over `{t}.{raw body}`")),
    request_body(content = Object, content_type = "application/json", description = "A Stripe event (any API version)"),
    responses(
        (status = 200, description = "Recorded (or already recorded)", body = WebhookAck),
        (status = 400, description = "Missing, forged or stale signature, or not an event: nothing recorded", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 404, description = "Payments do not go through Stripe here", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 503, description = "Database unavailable: nothing recorded; Stripe retries", body = crate::error::Problem, content_type = "application/problem+json"),
    )
)]
#[post("/webhooks/stripe")]
pub async fn stripe(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: web::Bytes,
) -> ApiResult<web::Json<WebhookAck>> {
    let Payments::Stripe(settings) = &state.settings.payments else {
        return Err(ApiError::not_found(
            "the Stripe webhook (payments do not go through Stripe)",
        ));
    };
    let header = req
        .headers()
        .get("stripe-signature")
        .and_then(|v| v.to_str().ok());
    // The signature's clock is real time, never the sandbox billing clock.
    let now = chrono::Utc::now().timestamp();
    signature::verify(
        header,
        &body,
        &settings.webhook_secrets,
        now,
        settings.tolerance_secs,
    )
    .map_err(|e| bad_request(e.to_string()))?;
    let event: serde_json::Value =
        serde_json::from_slice(&body).map_err(|e| bad_request(format!("not JSON: {e}")))?;
    let outcome = events::ingest(
        &state.pool,
        &state.settings.billing_clock(),
        event,
        "webhook",
    )
    .await
    .map_err(|e| match e {
        IngestError::Malformed(m) => bad_request(m),
        IngestError::Billing(b) => b.into(),
    })?;
    Ok(web::Json(WebhookAck {
        received: true,
        outcome: match outcome {
            Ingested::Applied(_) => "applied",
            Ingested::Ignored(_) => "ignored",
            Ingested::Duplicate => "duplicate",
        },
    }))
}

fn bad_request(detail: String) -> ApiError {
    ApiError::BadRequest {
        detail,
        errors: Vec::new(),
    }
}
