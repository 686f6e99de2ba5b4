//! The request middleware: request id, tracing span and access log line,
//! and the guarantee that a panic becomes a `500` problem, not a dropped connection.

use std::{panic::AssertUnwindSafe, time::Instant};

use actix_web::{
    Error, HttpMessage, ResponseError,
    body::{BoxBody, MessageBody},
    dev::{ServiceRequest, ServiceResponse},
    http::{
        Method,
        header::{HeaderName, HeaderValue},
    },
    middleware::Next,
};
use futures_util::FutureExt;
use tracing::Instrument;

use crate::ApiError;

/// The request id header, read from the request when present and always
/// set on the response.
pub const REQUEST_ID_HEADER: HeaderName = HeaderName::from_static("x-request-id");

/// The longest request id accepted from a client; longer or non-visible-ASCII
/// ids are replaced by a generated one.
const MAX_REQUEST_ID_LEN: usize = 128;

/// What the current request is, available to code running on its behalf
/// (error rendering puts it in problem bodies).
#[derive(Debug, Clone)]
pub struct RequestContext {
    /// The request id (client-supplied or generated UUIDv7).
    pub request_id: String,
    /// The request path, without the query string.
    pub path: String,
}

tokio::task_local! {
    static CONTEXT: RequestContext;
}

impl RequestContext {
    /// The context of the request being served on this task, if any.
    pub fn current() -> Option<Self> {
        CONTEXT.try_with(Clone::clone).ok()
    }
}

fn is_problem(res: &ServiceResponse<BoxBody>) -> bool {
    res.headers()
        .get(actix_web::http::header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/problem+json"))
}

fn request_id(req: &ServiceRequest) -> String {
    req.headers()
        .get(&REQUEST_ID_HEADER)
        .and_then(|v| v.to_str().ok())
        .filter(|v| {
            !v.is_empty()
                && v.len() <= MAX_REQUEST_ID_LEN
                && v.bytes().all(|b| b.is_ascii_graphic())
        })
        .map_or_else(|| uuid::Uuid::now_v7().to_string(), str::to_owned)
}

/// The methods of RFC 9110 §9 and PATCH (RFC 5789).
const STANDARD_METHODS: [Method; 9] = [
    Method::GET,
    Method::HEAD,
    Method::POST,
    Method::PUT,
    Method::DELETE,
    Method::CONNECT,
    Method::OPTIONS,
    Method::TRACE,
    Method::PATCH,
];

/// Outermost: any other method becomes `other` before anything records it,
/// so metrics labels and log fields keep a bounded set of values (an
/// invented method still answers `404` or `405`, as before).
///
/// # Errors
/// The inner service's.
pub async fn bounded_method(
    mut req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody>, Error> {
    if !STANDARD_METHODS.contains(req.method())
        && let Ok(other) = Method::from_bytes(b"other")
    {
        req.head_mut().method = other;
    }
    next.call(req).await
}

/// Refuses a request whose path or query string holds an encoded NUL
/// (`%00`): no identifier, slug or filter contains one, and PostgreSQL text
/// cannot store it — `422`, before any handler or query runs.
///
/// # Errors
/// [`ApiError::Validation`], or the inner service's.
pub async fn refuse_nul(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody>, Error> {
    let nul = |s: &str| {
        s.as_bytes()
            .windows(3)
            .any(|w| w.eq_ignore_ascii_case(b"%00"))
    };
    if nul(req.path()) || nul(req.query_string()) {
        let refused = ApiError::Validation {
            detail: "the URL holds a NUL character (%00), which no path or query parameter accepts"
                .into(),
            errors: vec![crate::error::FieldProblem {
                field: String::new(),
                message: "NUL characters are not accepted".into(),
            }],
        };
        let res = refused.error_response();
        return Ok(req.into_response(res).map_into_right_body());
    }
    Ok(next.call(req).await?.map_into_left_body())
}

/// Wraps every request: assigns its id, runs it in a `request` span, turns a
/// panic into a `500` problem, sets `X-Request-Id` and logs one line with
/// method, route template, status and latency.
///
/// # Errors
/// Never: inner errors are rendered into responses here.
pub async fn request_context(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, Error> {
    let started = Instant::now();
    let ctx = RequestContext {
        request_id: request_id(&req),
        path: req.path().to_owned(),
    };
    let method = req.method().clone();
    req.extensions_mut().insert(ctx.clone());
    let span = tracing::info_span!(
        "request",
        request_id = %ctx.request_id,
        method = %method,
        path = %ctx.path,
        route = tracing::field::Empty,
        status = tracing::field::Empty,
        latency_ms = tracing::field::Empty,
    );
    let header_value = HeaderValue::from_str(&ctx.request_id).ok();
    let outcome = CONTEXT
        .scope(ctx.clone(), AssertUnwindSafe(next.call(req)).catch_unwind())
        .instrument(span.clone())
        .await;
    let mut res = match outcome {
        Ok(Ok(res)) => res.map_into_boxed_body(),
        Ok(Err(e)) => return Err(e),
        Err(panic) => {
            let message = panic
                .downcast_ref::<&str>()
                .map(|s| (*s).to_owned())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "non-string panic payload".into());
            let latency_ms = started.elapsed().as_secs_f64() * 1000.0;
            span.in_scope(|| {
                tracing::error!(panic = %message, status = 500, latency_ms, "handler panicked");
            });
            // The request was consumed by the panicking handler, so there is
            // no ServiceResponse to fill: hand actix an error that renders
            // the 500 problem (with the request id) itself.
            return Err(Panicked(ctx).into());
        }
    };
    if (res.status().is_client_error() || res.status().is_server_error()) && !is_problem(&res) {
        // actix's own answers (405 of a resource, 413 of a payload limit...)
        // come without a body: give them the same problem+json shape.
        let error = if res.status() == actix_web::http::StatusCode::METHOD_NOT_ALLOWED {
            crate::routes::unmatched(res.request().method().as_str(), res.request().path())
        } else {
            ApiError::from_status(res.status())
        };
        let mut body = CONTEXT.sync_scope(ctx, || error.error_response());
        // Keep what the original response said beyond its body (Retry-After
        // of a rate limiter, Allow of a 405…).
        for (name, value) in res.headers() {
            if name != actix_web::http::header::CONTENT_TYPE
                && name != actix_web::http::header::CONTENT_LENGTH
            {
                body.headers_mut().insert(name.clone(), value.clone());
            }
        }
        res = res.into_response(body);
    }
    if let Some(v) = header_value {
        res.headers_mut().insert(REQUEST_ID_HEADER, v);
    }
    let status = res.status().as_u16();
    let route = res.request().match_pattern().unwrap_or_else(|| "-".into());
    let latency_ms = started.elapsed().as_secs_f64() * 1000.0;
    span.record("route", route.as_str());
    span.record("status", status);
    span.record("latency_ms", latency_ms);
    span.in_scope(|| tracing::info!(route = %route, status, latency_ms, "request finished"));
    Ok(res)
}

/// A request whose handler panicked; renders as a `500 internal-error` problem
/// carrying the request's id.
#[derive(Debug)]
struct Panicked(RequestContext);

impl std::fmt::Display for Panicked {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("handler panicked")
    }
}

impl ResponseError for Panicked {
    fn status_code(&self) -> actix_web::http::StatusCode {
        actix_web::http::StatusCode::INTERNAL_SERVER_ERROR
    }

    fn error_response(&self) -> actix_web::HttpResponse {
        let error = ApiError::Internal(anyhow::anyhow!("handler panicked"));
        let mut res = CONTEXT.sync_scope(self.0.clone(), || error.error_response());
        if let Ok(v) = HeaderValue::from_str(&self.0.request_id) {
            res.headers_mut().insert(REQUEST_ID_HEADER, v);
        }
        res
    }
}
