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
    if has_nul_escape(bytes) {
        return Err(ApiError::Validation {
            detail: "a string in the request body holds a NUL character (\\u0000), which no field accepts".into(),
            errors: vec![FieldProblem {
                field: String::new(),
                message: "NUL characters are not accepted".into(),
            }],
        });
    }
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
        // A lone UTF-16 surrogate (`"\ud800"`) is no character at all: the
        // value is refused like any other invalid one.
        let surrogate = inner.is_syntax() && has_surrogate_escape(bytes);
        match inner.classify() {
            serde_json::error::Category::Data => ApiError::Validation {
                detail: format!("invalid request body: {inner}"),
                errors: vec![FieldProblem {
                    field: if field == "." { String::new() } else { field },
                    message: inner.to_string(),
                }],
            },
            _ if surrogate => ApiError::Validation {
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

/// The four hex digits of each `\uXXXX` escape in a JSON text: a `u`
/// preceded by an odd run of backslashes (an even run is escaped
/// backslashes, then plain text). JSON has backslashes only inside
/// strings.
fn unicode_escapes(bytes: &[u8]) -> impl Iterator<Item = &[u8]> {
    (1..bytes.len().saturating_sub(4)).filter_map(move |i| {
        if bytes[i] != b'u' {
            return None;
        }
        let run = bytes[..i].iter().rev().take_while(|b| **b == b'\\').count();
        (run % 2 == 1).then(|| &bytes[i + 1..i + 5])
    })
}

/// Whether a JSON text holds the escape `\u0000` (a NUL character, which
/// PostgreSQL text cannot store; raw control characters are not JSON, so
/// this is the only way one gets in).
fn has_nul_escape(bytes: &[u8]) -> bool {
    unicode_escapes(bytes).any(|hex| hex == b"0000")
}

/// Whether a JSON text holds a UTF-16 surrogate escape (`\uD800`–`\uDFFF`):
/// serde refuses one left unpaired, as a syntax error.
fn has_surrogate_escape(bytes: &[u8]) -> bool {
    unicode_escapes(bytes).any(|hex| {
        hex[0].eq_ignore_ascii_case(&b'd')
            && matches!(hex[1].to_ascii_lowercase(), b'8'..=b'9' | b'a'..=b'f')
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

#[cfg(test)]
mod tests {
    use super::{has_nul_escape, has_surrogate_escape};

    #[test]
    fn a_nul_escape_is_found_and_an_escaped_backslash_is_not_one() {
        assert!(has_nul_escape(br#"{"a": "x\u0000y"}"#));
        assert!(has_nul_escape(br#"{"a": "\\\u0000"}"#));
        assert!(!has_nul_escape(br#"{"a": "\\u0000"}"#));
        assert!(!has_nul_escape(br#"{"a": "u0000"}"#));
        assert!(!has_nul_escape(br#"{"a": "\u0041"}"#));
        assert!(has_surrogate_escape(br#"{"a": "\ud800"}"#));
        assert!(has_surrogate_escape(br#"{"a": "\uDC00"}"#));
        assert!(!has_surrogate_escape(br#"{"a": "\\ud800"}"#));
        assert!(!has_surrogate_escape(br#"{"a": "\ud7ff \ue000"}"#));
    }
}
