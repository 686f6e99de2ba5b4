//! The API's one error type and its RFC 9457 `application/problem+json` rendering.
//!
//! Each variant has a stable problem `type` URI (clients switch on it), a
//! status and a title; the `detail` explains this occurrence. Causes are
//! logged with their whole chain, never sent to the client.

use std::fmt;

use actix_web::{
    HttpResponse, ResponseError,
    http::{StatusCode, header},
};
use serde::Serialize;
use tenantry_domain::ValidationErrors;
use tenantry_store::StoreError;
use utoipa::ToSchema;

use crate::middleware::RequestContext;

/// Base of every problem `type` URI.
pub const PROBLEM_BASE: &str = "https://tenantry.dev/problems/";

/// Seconds a client should wait before retrying after a 503.
pub const RETRY_AFTER_SECS: u64 = 5;

/// One invalid field of a request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct FieldProblem {
    /// Path of the field: a JSON pointer-like dotted path for bodies
    /// (`plans[0].price`), the parameter name for query strings.
    pub field: String,
    /// What is wrong with it.
    pub message: String,
}

/// An RFC 9457 problem details object.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Problem {
    /// URI identifying the kind of problem; stable, clients switch on it.
    #[serde(rename = "type")]
    pub type_: String,
    /// Short summary of the kind of problem.
    pub title: String,
    /// The HTTP status code.
    pub status: u16,
    /// Explanation of this occurrence.
    pub detail: String,
    /// The request path this occurrence concerns.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub instance: Option<String>,
    /// The request's id (also in the `X-Request-Id` header), for support.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
    /// Invalid fields, for validation problems.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<FieldProblem>,
}

/// Everything an API call can fail with.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// `404 not-found`: no such route or resource (or not visible to the caller).
    #[error("{0}")]
    NotFound(String),
    /// `405 method-not-allowed`: the path exists, not with this method;
    /// `allow` lists the methods it has (sent as the `Allow` header,
    /// RFC 9110 §15.5.6).
    #[error("{detail}")]
    MethodNotAllowed { detail: String, allow: Vec<String> },
    /// `400 malformed-request`: a body that is not JSON, a query string that
    /// does not parse; `errors` names the fields when known.
    #[error("{detail}")]
    BadRequest {
        /// What is wrong.
        detail: String,
        /// Fields at fault.
        errors: Vec<FieldProblem>,
    },
    /// `422 validation-failed`: well-formed input that breaks the rules;
    /// `errors` names every field at fault.
    #[error("{detail}")]
    Validation {
        /// Summary.
        detail: String,
        /// Fields at fault.
        errors: Vec<FieldProblem>,
    },
    /// `422` with a specific code (e.g. `idempotency-key-reused`).
    #[error("{detail}")]
    Unprocessable {
        /// Machine code.
        code: &'static str,
        /// What is wrong.
        detail: String,
    },
    /// `409`: the change conflicts with the current state; `code` says how
    /// (`conflict`, `totp-already-enabled`…).
    #[error("{detail}")]
    Conflict {
        /// Machine code, the last segment of the problem type.
        code: &'static str,
        /// What conflicts.
        detail: String,
    },
    /// `401` with `WWW-Authenticate: Bearer`: no, bad or expired credentials;
    /// `code` is `unauthorized`, `invalid-credentials`, `totp-required` or `totp-invalid`.
    #[error("{detail}")]
    Unauthorized {
        /// Machine code.
        code: &'static str,
        /// What is missing.
        detail: String,
    },
    /// `403`: authenticated but not allowed; `code` is `forbidden` or `csrf-check-failed`.
    #[error("{detail}")]
    Forbidden {
        /// Machine code.
        code: &'static str,
        /// What is not allowed.
        detail: String,
    },
    /// `429 too-many-requests` with `Retry-After`.
    #[error("too many requests")]
    TooManyRequests {
        /// Seconds until a retry may succeed.
        retry_after: u64,
    },
    /// `412 precondition-failed`: `If-Match` names a version that is no longer current.
    #[error("{0}")]
    PreconditionFailed(String),
    /// `402 payment-required`: a charge was declined.
    #[error("{0}")]
    PaymentRequired(String),
    /// `413 payload-too-large`.
    #[error("request body too large")]
    PayloadTooLarge,
    /// `503 service-unavailable` with `Retry-After`: the database (or another
    /// dependency) cannot be reached or the pool is exhausted.
    #[error("service unavailable")]
    Unavailable(#[source] anyhow::Error),
    /// `500 internal-error`: a bug; the cause is logged, not sent.
    #[error("internal error")]
    Internal(#[source] anyhow::Error),
}

impl ApiError {
    /// The stable machine code of this kind of error (last segment of `type`).
    pub fn code(&self) -> &'static str {
        match self {
            Self::NotFound(_) => "not-found",
            Self::MethodNotAllowed { .. } => "method-not-allowed",
            Self::BadRequest { .. } => "malformed-request",
            Self::Validation { .. } => "validation-failed",
            Self::Conflict { code, .. }
            | Self::Unprocessable { code, .. }
            | Self::Unauthorized { code, .. }
            | Self::Forbidden { code, .. } => code,
            Self::TooManyRequests { .. } => "too-many-requests",
            Self::PayloadTooLarge => "payload-too-large",
            Self::PaymentRequired(_) => "payment-required",
            Self::PreconditionFailed(_) => "precondition-failed",
            Self::Unavailable(_) => "service-unavailable",
            Self::Internal(_) => "internal-error",
        }
    }

    fn title(&self) -> &'static str {
        match self {
            Self::NotFound(_) => "Not found",
            Self::MethodNotAllowed { .. } => "Method not allowed",
            Self::BadRequest { .. } => "Malformed request",
            Self::Validation { .. } => "Validation failed",
            Self::Conflict { .. } => "Conflict",
            Self::Unprocessable { .. } => "Unprocessable request",
            Self::Unauthorized { .. } => "Unauthorized",
            Self::Forbidden { .. } => "Forbidden",
            Self::TooManyRequests { .. } => "Too many requests",
            Self::PayloadTooLarge => "Payload too large",
            Self::PaymentRequired(_) => "Payment required",
            Self::PreconditionFailed(_) => "Precondition failed",
            Self::Unavailable(_) => "Service unavailable",
            Self::Internal(_) => "Internal error",
        }
    }

    fn detail(&self) -> String {
        match self {
            Self::Unavailable(_) => {
                "a dependency (the database) is unavailable; retry after the delay in Retry-After"
                    .into()
            }
            Self::Internal(_) => "an unexpected error occurred; it has been logged".into(),
            other => other.to_string(),
        }
    }

    /// The problem body, with the current request's path and id when known.
    pub fn problem(&self) -> Problem {
        let ctx = RequestContext::current();
        Problem {
            type_: format!("{PROBLEM_BASE}{}", self.code()),
            title: self.title().into(),
            status: self.status_code().as_u16(),
            detail: self.detail(),
            instance: ctx.as_ref().map(|c| c.path.clone()),
            request_id: ctx.map(|c| c.request_id),
            errors: match self {
                Self::BadRequest { errors, .. } | Self::Validation { errors, .. } => errors.clone(),
                _ => Vec::new(),
            },
        }
    }

    /// The problem for a bare HTTP error status produced outside our
    /// handlers (actix's 405, 413…).
    pub fn from_status(status: StatusCode) -> Self {
        match status.as_u16() {
            404 => Self::NotFound("no such resource".into()),
            405 => Self::MethodNotAllowed {
                detail: "method not allowed".into(),
                allow: Vec::new(),
            },
            413 => Self::PayloadTooLarge,
            429 => Self::TooManyRequests { retry_after: 1 },
            400..=499 => Self::BadRequest {
                detail: status
                    .canonical_reason()
                    .unwrap_or("bad request")
                    .to_lowercase(),
                errors: Vec::new(),
            },
            503 => Self::Unavailable(anyhow::anyhow!("{status}")),
            _ => Self::Internal(anyhow::anyhow!("bare {status} response")),
        }
    }

    /// A `404` naming what was not found.
    pub fn not_found(what: impl fmt::Display) -> Self {
        Self::NotFound(format!("{what} not found"))
    }
}

impl From<ValidationErrors> for ApiError {
    fn from(e: ValidationErrors) -> Self {
        Self::Validation {
            detail: format!("{} invalid field(s)", e.errors().len()),
            errors: e
                .errors()
                .iter()
                .map(|f| FieldProblem {
                    field: f.path.clone(),
                    message: f.message.clone(),
                })
                .collect(),
        }
    }
}

impl From<tenantry_store::DieselError> for ApiError {
    fn from(e: tenantry_store::DieselError) -> Self {
        StoreError::from(e).into()
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound => Self::NotFound("resource not found".into()),
            StoreError::Conflict { constraint } => Self::Conflict {
                code: "conflict",
                detail: format!("conflicts with an existing resource ({constraint})"),
            },
            e @ StoreError::Unavailable(_) => Self::Unavailable(e.into()),
            e @ StoreError::Query(_) => Self::Internal(e.into()),
        }
    }
}

pub use tenantry_store::error_chain;

impl From<tenantry_tenancy::TenancyError> for ApiError {
    fn from(e: tenantry_tenancy::TenancyError) -> Self {
        use tenantry_tenancy::TenancyError as E;
        match e {
            E::NotFound(what) => Self::not_found(what),
            E::Invalid(errors) => errors.into(),
            E::Conflict { code, detail } => Self::Conflict { code, detail },
            E::PreconditionFailed(detail) => Self::PreconditionFailed(detail),
            E::Unavailable(e) => Self::Unavailable(e),
            E::Store(e) => e.into(),
            E::Internal(e) => Self::Internal(e),
        }
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        match self {
            Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::MethodNotAllowed { .. } => StatusCode::METHOD_NOT_ALLOWED,
            Self::BadRequest { .. } => StatusCode::BAD_REQUEST,
            Self::Validation { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            Self::Conflict { .. } => StatusCode::CONFLICT,
            Self::Unprocessable { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            Self::Unauthorized { .. } => StatusCode::UNAUTHORIZED,
            Self::Forbidden { .. } => StatusCode::FORBIDDEN,
            Self::TooManyRequests { .. } => StatusCode::TOO_MANY_REQUESTS,
            Self::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Self::PaymentRequired(_) => StatusCode::PAYMENT_REQUIRED,
            Self::PreconditionFailed(_) => StatusCode::PRECONDITION_FAILED,
            Self::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        match self {
            Self::Internal(_) => tracing::error!(error = %error_chain(self), "internal error"),
            Self::Unavailable(_) => tracing::warn!(error = %error_chain(self), "unavailable"),
            _ => {}
        }
        let mut res = HttpResponse::build(self.status_code());
        res.insert_header((header::CONTENT_TYPE, "application/problem+json"));
        match self {
            Self::Unavailable(_) => {
                res.insert_header((header::RETRY_AFTER, RETRY_AFTER_SECS.to_string()));
            }
            Self::TooManyRequests { retry_after } => {
                res.insert_header((header::RETRY_AFTER, (*retry_after).max(1).to_string()));
            }
            Self::Unauthorized { .. } => {
                res.insert_header((header::WWW_AUTHENTICATE, "Bearer"));
            }
            Self::MethodNotAllowed { allow, .. } if !allow.is_empty() => {
                res.insert_header((header::ALLOW, allow.join(", ")));
            }
            _ => {}
        }
        res.json(self.problem())
    }
}

/// Result of a handler.
pub type ApiResult<T> = Result<T, ApiError>;
