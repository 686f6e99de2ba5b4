//! The OpenAPI 3.1 document, generated from the handlers' annotations.
//! `openapi/openapi.json` is this document, committed; a test fails when
//! they differ (`make openapi` refreshes the file).

use utoipa::{
    Modify, OpenApi,
    openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme},
};

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
        routes::auth::login,
        routes::auth::refresh,
        routes::auth::logout,
        routes::auth::me,
        routes::auth::totp_setup,
        routes::auth::totp_enable,
        routes::auth::totp_disable,
        routes::api_tokens::create,
        routes::api_tokens::list,
        routes::api_tokens::revoke,
        routes::activity::list,
        routes::tenants::signup,
        routes::tenants::create,
        routes::tenants::list,
        routes::tenants::get_one,
        routes::tenants::update,
        routes::tenants::pause,
        routes::tenants::resume,
        routes::tenants::retry_provisioning,
        routes::tenants::deployments,
        routes::tenants::remove,
        routes::tenants::tenant_activity,
        routes::tenants::get_subscription,
        routes::tenants::members,
        routes::tenants::invite,
        routes::tenants::remove_member,
        routes::tenants::domains::list_domains,
        routes::tenants::domains::add_domain,
        routes::tenants::domains::remove_domain,
        routes::tenants::domains::verify_domain,
        routes::tenants::accept,
        routes::jobs::list,
        routes::jobs::get_one,
        routes::nodes::create,
        routes::nodes::list,
        routes::nodes::get_one,
        routes::nodes::update,
        routes::nodes::remove,
        routes::nodes::check,
        routes::billing::preview,
        routes::billing::request,
        routes::billing::cancel,
        routes::billing::history,
        routes::billing::mark_paid,
        routes::billing::checkout,
        routes::billing::abandon,
        routes::billing::list_credits,
        routes::billing_reports::list_charges,
        routes::billing_reports::mark_refunded,
        routes::billing_reports::list_plan_changes,
        routes::billing_reports::summary,
        routes::tenants::mark_paid,
        routes::webhooks::stripe,
        routes::billing::get_clock,
        routes::billing::move_clock,
        routes::catalog::list_products,
        routes::catalog::get_product,
        routes::catalog::list_plans,
        routes::catalog_admin::create_product,
        routes::catalog_admin::update_product,
        routes::catalog_admin::deactivate_product,
        routes::catalog_admin::create_plan,
        routes::catalog_admin::update_plan,
        routes::catalog_admin::deactivate_plan,
        routes::routing::traefik,
        routes::routing::tls_allowed,
        routes::routing::route_table,
    ),
    components(schemas(error::Problem, error::FieldProblem)),
    modifiers(&BearerAuth),
    tags(
        (name = "operations", description = "Health, readiness and metrics"),
        (name = "webhooks", description = "Payment-provider webhooks (public: verified by signature)"),
        (name = "auth", description = "Sign-in, sessions and two-factor authentication (one login for every role)"),
        (name = "api-tokens", description = "Long-lived tokens for scripts (`Authorization: Bearer tnt_…`)"),
        (name = "activity", description = "The audit trail"),
        (name = "catalog", description = "Products and plans"),
        (name = "tenants", description = "Customer workspaces: signup, lifecycle, members, subscription"),
        (name = "jobs", description = "Background work"),
        (name = "nodes", description = "The Proxmox VE nodes and Docker hosts instances run on (staff only)"),
        (name = "billing", description = "Plan changes: previews, upgrades on payment, scheduled downgrades, history"),
        (name = "routing", description = "The route table for reverse proxies: Traefik's HTTP provider, Caddy's on-demand TLS check"),
        (name = "sandbox", description = "Sandbox-only tools (TENANTRY_SANDBOX=1): the billing clock"),
    )
)]
pub struct ApiDoc;

/// Declares the `bearer` security scheme: a JWT access token or a `tnt_` API token.
#[derive(Debug)]
struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "A JWT access token from POST /v1/auth/login, or an API token (tnt_…) from POST /v1/api-tokens",
                    ))
                    .build(),
            ),
        );
    }
}

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
