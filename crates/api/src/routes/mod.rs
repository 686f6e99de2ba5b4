//! Route handlers, one module per resource.

pub mod activity;
pub mod api_tokens;
pub mod auth;
pub mod billing;
pub mod catalog;
pub mod catalog_admin;
pub mod health;
pub mod jobs;
pub mod nodes;
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
            .service(tenants::accept)
            .service(jobs::list)
            .service(jobs::get_one)
            .service(nodes::create)
            .service(nodes::list)
            .service(nodes::get_one)
            .service(nodes::update)
            .service(nodes::remove)
            .service(nodes::check)
            .service(billing::preview)
            .service(billing::request)
            .service(billing::cancel)
            .service(billing::history)
            .service(billing::mark_paid)
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
            .service(catalog_admin::deactivate_plan),
    );
}

/// Answers every request no route matched: `404 not-found` problem.
///
/// # Errors
/// Always [`ApiError::NotFound`].
pub async fn not_found(req: HttpRequest) -> Result<actix_web::HttpResponse, ApiError> {
    Err(ApiError::NotFound(format!(
        "no route {} {}",
        req.method(),
        req.path()
    )))
}
