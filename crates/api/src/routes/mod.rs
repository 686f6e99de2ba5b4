//! Route handlers, one module per resource.

pub mod catalog;
pub mod health;

use actix_web::{HttpRequest, web};

use crate::ApiError;

/// Mounts every `/v1` route.
pub fn v1(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::scope("/v1")
            .service(catalog::list_products)
            .service(catalog::get_product)
            .service(catalog::list_plans),
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
