//! Catalog administration: create, update (JSON merge patch, RFC 7386) and
//! deactivate products and plans. Needs `catalog:write`; setting or changing
//! a price needs an admin (operators manage everything else).

use actix_web::{HttpResponse, patch, post, web};
use serde_json::Value;
use tenantry_domain::{
    Role, Scope,
    catalog::{PlanInput, PortRangeInput, ProductInput, SharedInstanceInput},
};
use tenantry_store::{
    StoreError,
    catalog::{self as store, Plan, Product},
};

use crate::{
    ApiError, AppState,
    auth::{ClientInfo, Principal},
    error::{ApiResult, FieldProblem},
    extract::{Json, parse_json},
    routes::catalog::{AdminProduct, admin_product_dto},
};

fn product_input(p: &Product) -> ProductInput {
    ProductInput {
        slug: p.slug.clone(),
        name: p.name.clone(),
        description: p.description.clone(),
        driver: p.driver.clone(),
        lxc_template: p.lxc_template.clone(),
        image: p.image.clone(),
        compose_stack: p.compose_stack.clone(),
        internal_port: i64::from(p.internal_port),
        shared: match (
            p.shared_max_tenants,
            p.shared_cpu_cores,
            p.shared_memory_mib,
            p.shared_storage_gib,
        ) {
            (Some(m), Some(c), Some(mem), Some(s)) => Some(SharedInstanceInput {
                max_tenants: i64::from(m),
                cpu_cores: i64::from(c),
                memory_mib: i64::from(mem),
                storage_gib: i64::from(s),
                tenant_connection_limit: p.shared_tenant_connection_limit.map(i64::from),
            }),
            _ => None,
        },
        dedicated_ports: p
            .dedicated_port_start
            .zip(p.dedicated_port_end)
            .map(|(start, end)| PortRangeInput {
                start: i64::from(start),
                end: i64::from(end),
            }),
        env: p.env_map(),
        volumes: p.volume_map(),
        stack_service: p.stack_service.clone(),
        plans: Vec::new(),
    }
}

fn plan_input(p: &Plan) -> PlanInput {
    PlanInput {
        code: p.code.clone(),
        name: p.name.clone(),
        tier_rank: i64::from(p.tier_rank),
        price: p.price.normalize(),
        currency: p.currency.clone(),
        interval: p.billing_interval.clone(),
        deployment: p.deployment.clone(),
        cpu_cores: i64::from(p.cpu_cores),
        memory_mib: i64::from(p.memory_mib),
        storage_gib: i64::from(p.storage_gib),
        backup_schedule: p.backup_schedule.clone(),
        sla_percent: p.sla_percent.map(|d| d.normalize()),
        active: p.active,
    }
}

/// Applies an RFC 7386 merge patch to `target`.
fn merge_patch(target: &mut Value, patch: &Value) {
    match (target, patch) {
        (Value::Object(t), Value::Object(p)) => {
            for (k, v) in p {
                if v.is_null() {
                    t.remove(k);
                } else {
                    merge_patch(t.entry(k.clone()).or_insert(Value::Null), v);
                }
            }
        }
        (t, p) => *t = p.clone(),
    }
}

/// `current` with `patch` merged in, parsed back (unknown fields → 422).
fn patched<T: serde::Serialize + serde::de::DeserializeOwned>(
    current: &T,
    patch: &Value,
) -> ApiResult<T> {
    if !patch.is_object() {
        return Err(ApiError::BadRequest {
            detail: "a merge patch must be a JSON object".into(),
            errors: Vec::new(),
        });
    }
    let mut value = serde_json::to_value(current).map_err(|e| ApiError::Internal(e.into()))?;
    merge_patch(&mut value, patch);
    let bytes = serde_json::to_vec(&value).map_err(|e| ApiError::Internal(e.into()))?;
    parse_json(&bytes)
}

fn not_found_product(slug: &str) -> impl Fn(StoreError) -> ApiError + '_ {
    move |e| match e {
        StoreError::NotFound => ApiError::not_found(format!("product {slug:?}")),
        other => other.into(),
    }
}

fn conflict(what: String) -> impl Fn(StoreError) -> ApiError {
    move |e| match e {
        StoreError::Conflict { .. } => ApiError::Conflict {
            code: "conflict",
            detail: what.clone(),
        },
        other => other.into(),
    }
}

fn require_price_rights(principal: &Principal) -> ApiResult<()> {
    if principal.role == Role::Admin {
        Ok(())
    } else {
        Err(ApiError::Forbidden {
            code: "forbidden",
            detail: "only an admin may set or change prices".into(),
        })
    }
}

/// `422 validation-failed` naming `field` when the payment provider does
/// not accept `currency` (with Stripe: [`crate::config::stripe_accepts_currency`]),
/// so a plan is never sold in a currency it cannot be charged in.
fn accepted_currency(state: &AppState, field: String, currency: &str) -> Result<(), FieldProblem> {
    if state.settings.payments.accepts_currency(currency) {
        Ok(())
    } else {
        Err(FieldProblem {
            field,
            message: format!("{currency} is not a currency the payment provider (Stripe) accepts"),
        })
    }
}

fn currency_refused(errors: Vec<FieldProblem>) -> ApiResult<()> {
    match errors.as_slice() {
        [] => Ok(()),
        [one] => Err(ApiError::Validation {
            detail: format!("{}: {}", one.field, one.message),
            errors,
        }),
        _ => Err(ApiError::Validation {
            detail: format!("{} invalid field(s)", errors.len()),
            errors,
        }),
    }
}

async fn detail(
    conn: &mut tenantry_store::AsyncPgConnection,
    product: Product,
) -> ApiResult<AdminProduct> {
    let plans = store::plans_of(conn, product.id).await?;
    admin_product_dto(product, plans)
}

/// Create a product (with its plans, admin only when plans are given).
#[utoipa::path(
    context_path = "/v1", tag = "catalog", security(("bearer" = [])),
    request_body = ProductInput,
    responses(
        (status = 201, description = "Created", body = AdminProduct),
        (status = 403, description = "Needs catalog:write (and admin for prices)", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 409, description = "Slug or plan code taken", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid fields, each named", body = crate::error::Problem, content_type = "application/problem+json"),
    )
)]
#[post("/products")]
pub async fn create_product(
    state: web::Data<AppState>,
    principal: Principal,
    client: ClientInfo,
    Json(input): Json<ProductInput>,
) -> ApiResult<HttpResponse> {
    principal.require(Scope::CatalogWrite)?;
    if !input.plans.is_empty() {
        require_price_rights(&principal)?;
    }
    let spec = input.validate()?;
    currency_refused(
        spec.plans
            .iter()
            .enumerate()
            .filter_map(|(i, p)| {
                accepted_currency(
                    &state,
                    format!("plans[{i}].currency"),
                    p.price.currency().code(),
                )
                .err()
            })
            .collect(),
    )?;
    let mut conn = state.pool.get().await?;
    let product = store::create_product(&mut conn, &spec)
        .await
        .map_err(conflict(format!(
            "a product {:?} (or a plan code in it) already exists",
            spec.slug.as_str()
        )))?;
    let dto = detail(&mut conn, product).await?;
    crate::audit::by(&principal, "product.created", &client)
        .target("product", dto.slug())
        .change(None, serde_json::to_value(&dto).ok())
        .record(&mut conn)
        .await?;
    Ok(HttpResponse::Created().json(dto))
}

/// Change a product's fields with a JSON merge patch (RFC 7386); plans are changed on their own routes.
#[utoipa::path(
    context_path = "/v1", tag = "catalog", security(("bearer" = [])),
    params(("slug" = String, Path, description = "Product slug")),
    request_body(content = Object, description = "Merge patch of the product's fields, e.g. {\"name\": \"Odoo 18\"}"),
    responses(
        (status = 200, description = "Updated", body = AdminProduct),
        (status = 404, description = "No such product", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 409, description = "New slug taken", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid fields", body = crate::error::Problem, content_type = "application/problem+json"),
    )
)]
#[patch("/products/{slug}")]
pub async fn update_product(
    state: web::Data<AppState>,
    principal: Principal,
    client: ClientInfo,
    slug: web::Path<String>,
    Json(patch): Json<Value>,
) -> ApiResult<web::Json<AdminProduct>> {
    principal.require(Scope::CatalogWrite)?;
    let slug = slug.into_inner();
    let mut conn = state.pool.get().await?;
    let product = store::find_product(&mut conn, &slug)
        .await
        .map_err(not_found_product(&slug))?;
    if patch.get("plans").is_some() {
        return Err(ApiError::Validation {
            detail: "plans are changed on /v1/products/{slug}/plans".into(),
            errors: vec![crate::error::FieldProblem {
                field: "plans".into(),
                message: "not patchable here".into(),
            }],
        });
    }
    let before = detail(&mut conn, product.clone()).await?;
    let input: ProductInput = patched(&product_input(&product), &patch)?;
    let mut spec = input.validate()?;
    // Cross-field rules against the product's existing plans.
    let plans = store::plans_of(&mut conn, product.id).await?;
    spec.plans.clear();
    let check = ProductInput {
        plans: plans.iter().map(plan_input).collect(),
        ..input
    };
    check.validate()?;
    let updated = store::update_product(&mut conn, product.id, &spec)
        .await
        .map_err(conflict(format!(
            "a product {:?} already exists",
            spec.slug.as_str()
        )))?;
    let after = detail(&mut conn, updated).await?;
    crate::audit::by(&principal, "product.updated", &client)
        .target("product", after.slug())
        .change(
            serde_json::to_value(&before).ok(),
            serde_json::to_value(&after).ok(),
        )
        .record(&mut conn)
        .await?;
    Ok(web::Json(after))
}

/// Stop offering a product (existing tenants keep it).
#[utoipa::path(
    context_path = "/v1", tag = "catalog", security(("bearer" = [])),
    params(("slug" = String, Path, description = "Product slug")),
    responses(
        (status = 200, description = "Deactivated", body = AdminProduct),
        (status = 404, description = "No such product", body = crate::error::Problem, content_type = "application/problem+json"),
    )
)]
#[post("/products/{slug}/deactivate")]
pub async fn deactivate_product(
    state: web::Data<AppState>,
    principal: Principal,
    client: ClientInfo,
    slug: web::Path<String>,
) -> ApiResult<web::Json<AdminProduct>> {
    principal.require(Scope::CatalogWrite)?;
    let slug = slug.into_inner();
    let mut conn = state.pool.get().await?;
    let product = store::find_product(&mut conn, &slug)
        .await
        .map_err(not_found_product(&slug))?;
    let updated = store::set_product_active(&mut conn, product.id, false).await?;
    let after = detail(&mut conn, updated).await?;
    crate::audit::by(&principal, "product.deactivated", &client)
        .target("product", &slug)
        .change(
            Some(serde_json::json!({"active": product.active})),
            Some(serde_json::json!({"active": false})),
        )
        .record(&mut conn)
        .await?;
    Ok(web::Json(after))
}

/// Add a plan to a product (admin: it sets a price).
#[utoipa::path(
    context_path = "/v1", tag = "catalog", security(("bearer" = [])),
    params(("slug" = String, Path, description = "Product slug")),
    request_body = PlanInput,
    responses(
        (status = 201, description = "Created; the product with its plans", body = AdminProduct),
        (status = 403, description = "Needs an admin", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 409, description = "Code taken", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid fields", body = crate::error::Problem, content_type = "application/problem+json"),
    )
)]
#[post("/products/{slug}/plans")]
pub async fn create_plan(
    state: web::Data<AppState>,
    principal: Principal,
    client: ClientInfo,
    slug: web::Path<String>,
    Json(input): Json<PlanInput>,
) -> ApiResult<HttpResponse> {
    principal.require(Scope::CatalogWrite)?;
    require_price_rights(&principal)?;
    let slug = slug.into_inner();
    let mut conn = state.pool.get().await?;
    let product = store::find_product(&mut conn, &slug)
        .await
        .map_err(not_found_product(&slug))?;
    let existing = store::plans_of(&mut conn, product.id).await?;
    if existing.iter().any(|p| p.code == input.code) {
        return Err(ApiError::Conflict {
            code: "conflict",
            detail: format!("product {slug:?} already has a plan {:?}", input.code),
        });
    }
    let mut check = product_input(&product);
    check.plans = existing.iter().map(plan_input).collect();
    check.plans.push(input.clone());
    validate_with_prefix(&check, check.plans.len() - 1)?;
    let spec = input.validate()?;
    currency_refused(
        accepted_currency(&state, "currency".into(), spec.price.currency().code())
            .err()
            .into_iter()
            .collect(),
    )?;
    let plan = store::create_plan(&mut conn, product.id, &spec)
        .await
        .map_err(conflict(format!(
            "product {slug:?} already has a plan {:?}",
            spec.code.as_str()
        )))?;
    let after = detail(&mut conn, product).await?;
    crate::audit::by(&principal, "plan.created", &client)
        .target("plan", format!("{slug}/{}", plan.code))
        .change(None, serde_json::to_value(plan_input(&plan)).ok())
        .record(&mut conn)
        .await?;
    Ok(HttpResponse::Created().json(after))
}

/// Validates a product with its plans, reporting errors of plan `index`
/// without the `plans[index].` prefix (the body is that plan alone).
fn validate_with_prefix(product: &ProductInput, index: usize) -> ApiResult<()> {
    match product.validate() {
        Ok(_) => Ok(()),
        Err(e) => {
            let prefix = format!("plans[{index}].");
            let errors: Vec<_> = e
                .errors()
                .iter()
                .map(|f| crate::error::FieldProblem {
                    field: f.path.strip_prefix(&prefix).unwrap_or(&f.path).to_owned(),
                    message: f.message.clone(),
                })
                .collect();
            Err(ApiError::Validation {
                detail: format!("{} invalid field(s)", errors.len()),
                errors,
            })
        }
    }
}

/// Change a plan with a JSON merge patch; price or currency changes need an admin.
#[utoipa::path(
    context_path = "/v1", tag = "catalog", security(("bearer" = [])),
    params(("slug" = String, Path, description = "Product slug"), ("code" = String, Path, description = "Plan code")),
    request_body(content = Object, description = "Merge patch of the plan's fields, e.g. {\"name\": \"Basic+\"} or {\"active\": false}"),
    responses(
        (status = 200, description = "Updated; the product with its plans", body = AdminProduct),
        (status = 403, description = "Price change by a non-admin", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such product or plan", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 409, description = "New code taken", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid fields", body = crate::error::Problem, content_type = "application/problem+json"),
    )
)]
#[patch("/products/{slug}/plans/{code}")]
pub async fn update_plan(
    state: web::Data<AppState>,
    principal: Principal,
    client: ClientInfo,
    path: web::Path<(String, String)>,
    Json(patch): Json<Value>,
) -> ApiResult<web::Json<AdminProduct>> {
    principal.require(Scope::CatalogWrite)?;
    let (slug, code) = path.into_inner();
    change_plan(
        &state,
        &principal,
        &client,
        &slug,
        &code,
        &patch,
        "plan.updated",
    )
    .await
    .map(web::Json)
}

/// Stop offering a plan (its subscribers keep it).
#[utoipa::path(
    context_path = "/v1", tag = "catalog", security(("bearer" = [])),
    params(("slug" = String, Path, description = "Product slug"), ("code" = String, Path, description = "Plan code")),
    responses(
        (status = 200, description = "Deactivated; the product with its plans", body = AdminProduct),
        (status = 404, description = "No such product or plan", body = crate::error::Problem, content_type = "application/problem+json"),
    )
)]
#[post("/products/{slug}/plans/{code}/deactivate")]
pub async fn deactivate_plan(
    state: web::Data<AppState>,
    principal: Principal,
    client: ClientInfo,
    path: web::Path<(String, String)>,
) -> ApiResult<web::Json<AdminProduct>> {
    principal.require(Scope::CatalogWrite)?;
    let (slug, code) = path.into_inner();
    change_plan(
        &state,
        &principal,
        &client,
        &slug,
        &code,
        &serde_json::json!({"active": false}),
        "plan.deactivated",
    )
    .await
    .map(web::Json)
}

async fn change_plan(
    state: &AppState,
    principal: &Principal,
    client: &ClientInfo,
    slug: &str,
    code: &str,
    patch: &Value,
    action: &str,
) -> ApiResult<AdminProduct> {
    let mut conn = state.pool.get().await?;
    let product = store::find_product(&mut conn, slug)
        .await
        .map_err(not_found_product(slug))?;
    let plan = store::find_plan(&mut conn, product.id, code)
        .await
        .map_err(|e| match e {
            StoreError::NotFound => ApiError::not_found(format!("plan {slug}/{code}")),
            other => other.into(),
        })?;
    let before = plan_input(&plan);
    let input: PlanInput = patched(&before, patch)?;
    if input.price.normalize() != before.price || input.currency != before.currency {
        require_price_rights(principal)?;
    }
    let mut check = product_input(&product);
    let plans = store::plans_of(&mut conn, product.id).await?;
    let index = plans.iter().position(|p| p.id == plan.id).unwrap_or(0);
    check.plans = plans.iter().map(plan_input).collect();
    if let Some(slot) = check.plans.get_mut(index) {
        *slot = input.clone();
    }
    validate_with_prefix(&check, index)?;
    let spec = input.validate()?;
    // A plan left on sale, or given a new currency, must be chargeable in it;
    // deactivating a plan in a refused currency stays possible.
    if spec.active || input.currency != before.currency {
        currency_refused(
            accepted_currency(state, "currency".into(), spec.price.currency().code())
                .err()
                .into_iter()
                .collect(),
        )?;
    }
    let updated = store::update_plan(&mut conn, &plan, &spec)
        .await
        .map_err(conflict(format!(
            "product {slug:?} already has a plan {:?}",
            spec.code.as_str()
        )))?;
    crate::audit::by(principal, action, client)
        .target("plan", format!("{slug}/{code}"))
        .change(
            serde_json::to_value(&before).ok(),
            serde_json::to_value(plan_input(&updated)).ok(),
        )
        .record(&mut conn)
        .await?;
    detail(&mut conn, product).await
}
