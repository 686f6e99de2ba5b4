//! Route handlers, one module per resource.

pub mod activity;
pub mod api_tokens;
pub mod auth;
pub mod billing;
pub mod billing_reports;
pub mod catalog;
pub mod catalog_admin;
pub mod checkout_return;
pub mod health;
pub mod jobs;
pub mod nodes;
pub mod routing;
pub mod tenants;
pub mod webhooks;

use actix_web::{HttpRequest, web};

use crate::{ApiError, config::Settings};

/// Mounts every `/v1` route.
pub fn v1(cfg: &mut web::ServiceConfig, settings: &Settings) {
    cfg.service(
        web::scope("/v1")
            .configure(|cfg| auth::register_login(cfg, &settings.auth))
            .configure(|cfg| tenants::register_signup(cfg, settings))
            .service(tenants::create)
            .service(tenants::list)
            .service(tenants::get_one)
            .service(tenants::update)
            .service(tenants::pause)
            .service(tenants::resume)
            .service(tenants::retry_provisioning)
            .service(tenants::deployments)
            .service(tenants::remove)
            .service(tenants::tenant_activity)
            .service(tenants::get_subscription)
            .service(tenants::members)
            .service(tenants::invite)
            .service(tenants::remove_member)
            .service(tenants::domains::list_domains)
            .service(tenants::domains::add_domain)
            .service(tenants::domains::remove_domain)
            .service(tenants::domains::verify_domain)
            .service(tenants::accept)
            .service(jobs::list)
            .service(jobs::get_one)
            .service(nodes::create)
            .service(nodes::list)
            .service(nodes::get_one)
            .service(nodes::update)
            .service(nodes::remove)
            .service(nodes::check)
            .service(billing_reports::list_charges)
            .service(billing_reports::mark_refunded)
            .service(billing_reports::list_plan_changes)
            .service(billing_reports::summary)
            .service(billing::preview)
            .service(billing::request)
            .service(billing::cancel)
            .service(billing::history)
            .service(billing::mark_paid)
            .service(billing::checkout)
            .service(billing::abandon)
            .service(billing::list_credits)
            .service(tenants::mark_paid)
            .service(webhooks::stripe)
            .configure(|cfg| {
                // The sandbox clock exists only in sandbox mode.
                if settings.billing.sandbox {
                    cfg.service(billing::get_clock).service(billing::move_clock);
                }
            })
            .service(auth::refresh)
            .service(auth::logout)
            .service(auth::me)
            .service(auth::totp_setup)
            .service(auth::totp_enable)
            .service(auth::totp_disable)
            .service(api_tokens::create)
            .service(api_tokens::list)
            .service(api_tokens::revoke)
            .service(activity::list)
            .service(catalog::list_products)
            .service(catalog::get_product)
            .service(catalog::list_plans)
            .service(catalog_admin::create_product)
            .service(catalog_admin::update_product)
            .service(catalog_admin::deactivate_product)
            .service(catalog_admin::create_plan)
            .service(catalog_admin::update_plan)
            .service(catalog_admin::deactivate_plan)
            .service(routing::traefik)
            .service(routing::tls_allowed)
            .service(routing::route_table),
    );
}

/// Answers every request no route matched: `405 method-not-allowed` (with
/// `Allow`) when the path is one of ours with other methods, else `404
/// not-found`. Which paths and methods exist is read from the OpenAPI
/// document, which lists every route.
///
/// # Errors
/// Always [`ApiError::MethodNotAllowed`] or [`ApiError::NotFound`].
pub async fn not_found(req: HttpRequest) -> Result<actix_web::HttpResponse, ApiError> {
    Err(unmatched(req.method().as_str(), req.path()))
}

/// The error for `method path` when no route took it (see [`not_found`]).
pub fn unmatched(method: &str, path: &str) -> ApiError {
    let allow = allowed_methods(path);
    // A documented method that did not match is a route not mounted here
    // (the sandbox clock outside sandbox mode): not found.
    if allow.is_empty() || allow.iter().any(|m| m == method) {
        return ApiError::NotFound(format!("no route {method} {path}"));
    }
    ApiError::MethodNotAllowed {
        detail: format!(
            "{path} does not take {method}; it takes {}",
            allow.join(", ")
        ),
        allow,
    }
}

/// One documented path: its segments (`None` for a `{parameter}`) and
/// methods (upper case).
type RouteTemplate = (Vec<Option<String>>, Vec<String>);

/// The methods the OpenAPI document lists for the path template matching
/// `path`, empty when none does.
fn allowed_methods(path: &str) -> Vec<String> {
    static TEMPLATES: std::sync::OnceLock<Vec<RouteTemplate>> = std::sync::OnceLock::new();
    let templates = TEMPLATES.get_or_init(|| {
        use utoipa::OpenApi as _;
        crate::openapi::ApiDoc::openapi()
            .paths
            .paths
            .iter()
            .map(|(template, item)| {
                let segments = template
                    .trim_matches('/')
                    .split('/')
                    .map(|s| (!s.starts_with('{')).then(|| s.to_owned()))
                    .collect();
                let methods = [
                    ("GET", item.get.is_some()),
                    ("HEAD", item.head.is_some()),
                    ("POST", item.post.is_some()),
                    ("PUT", item.put.is_some()),
                    ("PATCH", item.patch.is_some()),
                    ("DELETE", item.delete.is_some()),
                    ("OPTIONS", item.options.is_some()),
                    ("TRACE", item.trace.is_some()),
                ]
                .into_iter()
                .filter(|(_, has)| *has)
                .map(|(m, _)| m.to_owned())
                .collect();
                (segments, methods)
            })
            .collect()
    });
    let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
    let mut allow: Vec<String> = Vec::new();
    for (segments, methods) in templates {
        let matches = segments.len() == parts.len()
            && segments
                .iter()
                .zip(&parts)
                .all(|(s, p)| !p.is_empty() && s.as_deref().is_none_or(|lit| lit == *p));
        if matches {
            allow.extend(
                methods
                    .iter()
                    .filter(|m| !allow.contains(m))
                    .cloned()
                    .collect::<Vec<_>>(),
            );
        }
    }
    allow
}
