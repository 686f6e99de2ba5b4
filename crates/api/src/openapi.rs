//! The OpenAPI 3.1 document, generated from the handlers' annotations.
//! `openapi/openapi.json` is this document, committed; a test fails when
//! they differ (`make openapi` refreshes the file).

use utoipa::OpenApi;

use crate::{error, routes};

/// The API's OpenAPI description.
#[derive(Debug, OpenApi)]
#[openapi(
    info(
        title = "Tenantry API",
        description = "Control plane of a multi-tenant SaaS host. JSON in and out; errors are \
                       RFC 9457 application/problem+json with a stable `type` per kind; lists use \
                       cursor pagination (`limit`, `cursor` → `next_cursor`); every response carries \
                       `X-Request-Id`.",
        license(name = "AGPL-3.0-only", identifier = "AGPL-3.0-only"),
    ),
    paths(
        routes::health::healthz,
        routes::health::readyz,
        routes::health::metrics,
        routes::catalog::list_products,
        routes::catalog::get_product,
        routes::catalog::list_plans,
    ),
    components(schemas(error::Problem, error::FieldProblem)),
    tags(
        (name = "operations", description = "Health, readiness and metrics"),
        (name = "catalog", description = "Products and plans"),
    )
)]
pub struct ApiDoc;

/// The document as pretty JSON with a trailing newline, as committed.
///
/// # Errors
/// When serialisation fails (a bug).
pub fn to_pretty_json() -> serde_json::Result<String> {
    serde_json::to_string_pretty(&ApiDoc::openapi()).map(|mut s| {
        s.push('\n');
        s
    })
}
