//! Cursor pagination on the wire: `?limit=&cursor=` in, `next_cursor` out.
//!
//! The cursor is opaque to clients: the base64url of the last row's id.

use base64::{Engine as _, engine::general_purpose::URL_SAFE_NO_PAD};
use serde::{Deserialize, Serialize};
use tenantry_store::{Page as StorePage, PageRequest};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use crate::{ApiError, error::FieldProblem};

/// `limit` and `cursor` query parameters.
#[derive(Debug, Clone, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct PageParams {
    /// Most items to return, 1–200 (default 50).
    #[param(minimum = 1, maximum = 200)]
    pub limit: Option<u32>,
    /// The `next_cursor` of the previous page; omit for the first page.
    pub cursor: Option<String>,
}

impl PageParams {
    /// Validates the parameters into a store page request.
    ///
    /// # Errors
    /// [`ApiError::BadRequest`] naming `limit` or `cursor`.
    pub fn to_request(&self) -> Result<PageRequest, ApiError> {
        let bad = |field: &str, message: String| ApiError::BadRequest {
            detail: format!("invalid query parameter {field}: {message}"),
            errors: vec![FieldProblem {
                field: field.into(),
                message,
            }],
        };
        let limit = self.limit.unwrap_or(PageRequest::DEFAULT_LIMIT);
        if !(1..=PageRequest::MAX_LIMIT).contains(&limit) {
            return Err(bad(
                "limit",
                format!(
                    "must be between 1 and {} (got {limit})",
                    PageRequest::MAX_LIMIT
                ),
            ));
        }
        let after = match &self.cursor {
            None => None,
            Some(c) => Some(
                decode_cursor(c)
                    .ok_or_else(|| bad("cursor", "not a cursor returned by this API".into()))?,
            ),
        };
        Ok(PageRequest { after, limit })
    }
}

fn decode_cursor(c: &str) -> Option<Uuid> {
    let bytes = URL_SAFE_NO_PAD.decode(c).ok()?;
    Uuid::from_slice(&bytes).ok()
}

/// The cursor for a page that ends at `id`.
pub fn encode_cursor(id: Uuid) -> String {
    URL_SAFE_NO_PAD.encode(id.as_bytes())
}

/// One page of a list.
#[derive(Debug, Serialize, ToSchema)]
pub struct Page<T: ToSchema> {
    /// The items, oldest first.
    pub items: Vec<T>,
    /// Pass as `cursor` to get the next page; `null` on the last page.
    pub next_cursor: Option<String>,
}

impl<T: ToSchema> Page<T> {
    /// Converts a store page, mapping every row.
    ///
    /// # Errors
    /// The first error of `f`.
    pub fn try_from_store<R>(
        page: StorePage<R>,
        f: impl FnMut(R) -> Result<T, ApiError>,
    ) -> Result<Self, ApiError> {
        Ok(Self {
            items: page.items.into_iter().map(f).collect::<Result<_, _>>()?,
            next_cursor: page.next_after.map(encode_cursor),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip() {
        let id = Uuid::now_v7();
        assert_eq!(decode_cursor(&encode_cursor(id)), Some(id));
        assert_eq!(decode_cursor("not-a-cursor!"), None);
        assert_eq!(decode_cursor("AAAA"), None);
    }

    #[test]
    fn limit_is_bounded() {
        let p = |limit| {
            PageParams {
                limit: Some(limit),
                cursor: None,
            }
            .to_request()
        };
        assert!(p(0).is_err());
        assert!(p(201).is_err());
        assert_eq!(p(200).unwrap().limit, 200);
        assert_eq!(PageParams::default().to_request().unwrap().limit, 50);
    }
}
