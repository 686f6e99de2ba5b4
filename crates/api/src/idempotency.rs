//! `Idempotency-Key` on every POST: the same key and body (from the same
//! caller) get the first response again, for 24 hours; the same key with
//! another body is `422 idempotency-key-reused`; while the first request is
//! still running, `409 idempotency-key-in-use`. Responses of 5xx are not
//! kept, so a failed request can be retried with its key.

use actix_web::{
    Error, HttpResponse, ResponseError,
    body::{self, BoxBody, MessageBody},
    dev::{Payload, ServiceRequest, ServiceResponse},
    http::{Method, header},
    middleware::Next,
    web,
};
use sha2::{Digest, Sha256};
use tenantry_store::idempotency::{self, Begin, StoredResponse};

use crate::{ApiError, AppState, auth::client, auth::principal::API_TOKEN_PREFIX};

/// The request header.
pub const HEADER: &str = "idempotency-key";
/// Set on replayed responses.
pub const REPLAYED_HEADER: &str = "idempotent-replayed";
/// Longest key accepted.
const MAX_KEY_LEN: usize = 255;
/// Response headers kept with the body.
const KEPT_HEADERS: [&str; 4] = ["content-type", "location", "etag", "cache-control"];

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Who the key belongs to: the user of a verified JWT, the API token, or the
/// client address for anonymous calls (signup).
fn caller_scope(req: &ServiceRequest, state: &AppState) -> String {
    let bearer = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim);
    match bearer {
        Some(t) if t.starts_with(API_TOKEN_PREFIX) => {
            format!("token:{}", hex(&Sha256::digest(t.as_bytes())))
        }
        Some(t) => match state.auth.jwt.verify(t) {
            Ok(claims) => format!("user:{}", claims.sub),
            Err(_) => format!("bad-token:{}", hex(&Sha256::digest(t.as_bytes()))),
        },
        None => {
            let ip = client::request_ip(req.request(), &state.auth.settings.trusted_proxies);
            format!("ip:{}", ip.map(|i| i.to_string()).unwrap_or_default())
        }
    }
}

/// Responses marked `Cache-Control: no-store` carry secrets: never stored.
fn withheld(headers: &[(String, String)]) -> bool {
    headers
        .iter()
        .any(|(n, v)| n == "cache-control" && v.contains("no-store"))
}

fn fail(req: ServiceRequest, e: ApiError) -> Result<ServiceResponse<BoxBody>, Error> {
    Ok(req.into_response(e.error_response()))
}

/// The middleware (wrap it inside the request-context middleware).
///
/// # Errors
/// Errors of the inner service, passed through.
pub async fn idempotency(
    mut req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, Error> {
    let key = req
        .headers()
        .get(HEADER)
        .map(|v| v.to_str().map(str::to_owned));
    let (Method::POST, Some(key)) = (req.method().clone(), key) else {
        return next
            .call(req)
            .await
            .map(ServiceResponse::map_into_boxed_body);
    };
    let key = match key {
        Ok(k) if !k.trim().is_empty() && k.len() <= MAX_KEY_LEN => k,
        _ => {
            return fail(
                req,
                ApiError::BadRequest {
                    detail: format!(
                        "Idempotency-Key must be 1 to {MAX_KEY_LEN} visible ASCII characters"
                    ),
                    errors: vec![crate::error::FieldProblem {
                        field: "Idempotency-Key".into(),
                        message: "invalid".into(),
                    }],
                },
            );
        }
    };
    let Some(state) = req.app_data::<web::Data<AppState>>().cloned() else {
        return next
            .call(req)
            .await
            .map(ServiceResponse::map_into_boxed_body);
    };
    let scope = caller_scope(&req, &state);
    // Read the body to fingerprint the request, then hand it on.
    let bytes = match req.extract::<web::Bytes>().await {
        Ok(b) => b,
        Err(e) => return Ok(req.error_response(e)),
    };
    let mut hasher = Sha256::new();
    hasher.update(req.method().as_str().as_bytes());
    hasher.update(b" ");
    hasher.update(req.uri().to_string().as_bytes());
    hasher.update(b"\n");
    hasher.update(&bytes);
    let request_hash = hex(&hasher.finalize());
    req.set_payload(Payload::from(bytes));

    let begun = match state.pool.get().await {
        Ok(mut conn) => idempotency::begin(&mut conn, &scope, &key, &request_hash).await,
        Err(e) => Err(e),
    };
    match begun {
        Err(e) => return fail(req, e.into()),
        Ok(Begin::Mismatch) => {
            return fail(
                req,
                ApiError::Unprocessable {
                    code: "idempotency-key-reused",
                    detail: "this Idempotency-Key was already used with a different request".into(),
                },
            );
        }
        Ok(Begin::InProgress) => {
            return fail(req, ApiError::Conflict {
                code: "idempotency-key-in-use",
                detail: "a request with this Idempotency-Key is still being processed; retry shortly".into(),
            });
        }
        Ok(Begin::Replay(stored)) if withheld(&stored.headers) => {
            // The first response carried a secret shown once (a token, a
            // session): it was not kept, so it cannot be replayed.
            let location = stored
                .headers
                .iter()
                .find(|(n, _)| n == "location")
                .map(|(_, v)| v.clone());
            let mut res = ApiError::Conflict {
                code: "idempotent-response-withheld",
                detail: format!(
                    "a request with this Idempotency-Key already succeeded ({}); its response held a secret that is shown only once{}",
                    stored.status,
                    location.as_deref().map(|l| format!(": see {l}")).unwrap_or_default()
                ),
            }
            .error_response();
            if let Some(l) = location.and_then(|l| header::HeaderValue::from_str(&l).ok()) {
                res.headers_mut().insert(header::LOCATION, l);
            }
            return Ok(req.into_response(res));
        }
        Ok(Begin::Replay(stored)) => {
            let mut res = HttpResponse::build(
                actix_web::http::StatusCode::from_u16(stored.status)
                    .unwrap_or(actix_web::http::StatusCode::OK),
            );
            for (name, value) in &stored.headers {
                res.insert_header((name.as_str(), value.as_str()));
            }
            res.insert_header((REPLAYED_HEADER, "true"));
            return Ok(req.into_response(res.body(stored.body)));
        }
        Ok(Begin::Proceed) => {}
    }

    let res = next.call(req).await?;
    let (http_req, response) = res.into_parts();
    let status = response.status();
    let (head, body) = response.into_parts();
    let body_bytes = body::to_bytes(body)
        .await
        .map_err(|_| ApiError::Internal(anyhow::anyhow!("reading a response body")))?;
    if let Ok(mut conn) = state.pool.get().await {
        let outcome = if status.is_server_error() {
            idempotency::abandon(&mut conn, &scope, &key).await
        } else {
            let headers: Vec<(String, String)> = KEPT_HEADERS
                .iter()
                .filter_map(|h| {
                    head.headers()
                        .get(*h)
                        .and_then(|v| v.to_str().ok())
                        .map(|v| ((*h).to_owned(), v.to_owned()))
                })
                .collect();
            let body = if withheld(&headers) {
                Vec::new()
            } else {
                body_bytes.to_vec()
            };
            idempotency::complete(
                &mut conn,
                &scope,
                &key,
                &StoredResponse {
                    status: status.as_u16(),
                    headers,
                    body,
                },
            )
            .await
        };
        if let Err(e) = outcome {
            tracing::error!(error = %crate::error::error_chain(&e), "recording an idempotent response");
        }
    }
    let response = head.set_body(body_bytes).map_into_boxed_body();
    Ok(ServiceResponse::new(http_req, response))
}
