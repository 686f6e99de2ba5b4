//! Request extractors whose errors name the field at fault.
//!
//! actix-web's own `Json` and `Query` report serde's message without the
//! path; these run serde through `serde_path_to_error`, so a client reads
//! `plans[0].price: invalid type…` and our problem+json lists the field.

use std::{future::Future, pin::Pin};

use actix_web::{FromRequest, HttpRequest, dev::Payload, error::PayloadError, web};
use serde::de::DeserializeOwned;

use crate::{ApiError, error::FieldProblem};

/// A JSON body of type `T`.
///
/// Syntax errors (not JSON, truncated) → `400 malformed-request`; JSON of the
/// wrong shape (missing, unknown or mistyped field) → `422
/// validation-failed` naming the field; a body over the configured limit →
/// `413 payload-too-large`.
#[derive(Debug)]
pub struct Json<T>(pub T);

impl<T: DeserializeOwned + 'static> FromRequest for Json<T> {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, ApiError>>>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let bytes = web::Bytes::from_request(req, payload);
        Box::pin(async move {
            let bytes = bytes
                .await
                .map_err(|e| match e.as_error::<PayloadError>() {
                    Some(PayloadError::Overflow) => ApiError::PayloadTooLarge,
                    _ => match e.as_response_error().status_code().as_u16() {
                        413 => ApiError::PayloadTooLarge,
                        _ => ApiError::BadRequest {
                            detail: format!("cannot read the request body: {e}"),
                            errors: Vec::new(),
                        },
                    },
                })?;
            parse_json(&bytes).map(Json)
        })
    }
}

/// Parses a JSON document into `T`, with the error classification of [`Json`].
///
/// # Errors
/// [`ApiError::BadRequest`] for syntax, [`ApiError::Validation`] for shape.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let de = &mut serde_json::Deserializer::from_slice(bytes);
    serde_path_to_error::deserialize(de).map_err(|e| {
        let mut field = e.path().to_string();
        let inner = e.into_inner();
        // serde reports a missing field at its parent's path: name the field itself.
        if let Some(missing) = inner
            .to_string()
            .strip_prefix("missing field `")
            .and_then(|rest| rest.split('`').next())
        {
            field = if field == "." {
                missing.to_owned()
            } else {
                format!("{field}.{missing}")
            };
        }
        match inner.classify() {
            serde_json::error::Category::Data => ApiError::Validation {
                detail: format!("invalid request body: {inner}"),
                errors: vec![FieldProblem {
                    field: if field == "." { String::new() } else { field },
                    message: inner.to_string(),
                }],
            },
            _ => ApiError::BadRequest {
                detail: format!("the request body is not valid JSON: {inner}"),
                errors: Vec::new(),
            },
        }
    })
}

/// Query string parameters of type `T`; a bad parameter → `400
/// malformed-request` naming it.
#[derive(Debug)]
pub struct Query<T>(pub T);

impl<T: DeserializeOwned> FromRequest for Query<T> {
    type Error = ApiError;
    type Future = std::future::Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        std::future::ready(parse_query(req.query_string()).map(Query))
    }
}

/// Parses a query string into `T`.
///
/// # Errors
/// [`ApiError::BadRequest`] naming the parameter.
pub fn parse_query<T: DeserializeOwned>(query: &str) -> Result<T, ApiError> {
    let de = serde_urlencoded::Deserializer::new(form_urlencoded(query));
    serde_path_to_error::deserialize(de).map_err(|e| {
        let field = e.path().to_string();
        let message = e.into_inner().to_string();
        ApiError::BadRequest {
            detail: format!("invalid query parameter {field}: {message}"),
            errors: vec![FieldProblem { field, message }],
        }
    })
}

fn form_urlencoded(query: &str) -> form_urlencoded::Parse<'_> {
    form_urlencoded::parse(query.as_bytes())
}
