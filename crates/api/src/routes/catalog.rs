//! The public catalog: products and their plans.

use actix_web::{get, web};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use tenantry_store::catalog::{
    self as store, Plan as PlanRow, PlanWithProduct, Product as ProductRow,
};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use crate::{
    ApiError, AppState,
    error::ApiResult,
    extract::Query,
    pagination::{Page, PageParams},
};

/// An exact amount of money.
#[derive(Debug, Serialize, ToSchema)]
pub struct Money {
    /// Decimal string in the currency's major unit, with exactly the
    /// currency's minor-unit digits (`"29.00"` USD, `"3000"` JPY).
    #[schema(example = "29.00")]
    pub amount: String,
    /// ISO 4217 code.
    #[schema(example = "USD")]
    pub currency: String,
}

/// Compute a plan reserves.
#[derive(Debug, Serialize, ToSchema)]
pub struct Limits {
    /// CPU cores.
    pub cpu_cores: i32,
    /// Memory in MiB.
    pub memory_mib: i32,
    /// Storage in GiB.
    pub storage_gib: i32,
}

/// A priced offer of a product.
#[derive(Debug, Serialize, ToSchema)]
pub struct Plan {
    /// Plan id.
    pub id: Uuid,
    /// Slug of the product it sells.
    #[schema(example = "odoo")]
    pub product: String,
    /// Code, unique within the product.
    #[schema(example = "basic")]
    pub code: String,
    /// Display name.
    pub name: String,
    /// Tier rank: moving to a higher rank is an upgrade.
    pub tier_rank: i32,
    /// Price per interval.
    pub price: Money,
    /// Billing interval: `month`, `year` (calendar months/years from the anchor) or `lifetime`.
    #[schema(example = "month")]
    pub interval: String,
    /// Deployment: `shared`, `dedicated` or `dedicated_ha`.
    #[schema(example = "shared")]
    pub deployment: String,
    /// Reserved compute.
    pub limits: Limits,
    /// What high availability means for this plan on its product's
    /// driver (`dedicated_ha` plans; `null` for the others).
    pub high_availability: Option<String>,
    /// Backup schedule: `none`, `hourly`, `daily`, `weekly` or `<hours>h`.
    #[schema(example = "weekly")]
    pub backup_schedule: String,
    /// Availability target in percent (decimal string), `null` for best effort.
    #[schema(example = "99.9")]
    pub sla_percent: Option<String>,
    /// Offered to new customers (public lists show active plans only).
    pub active: bool,
}

/// Shared instance settings of a product.
#[derive(Debug, Serialize, ToSchema)]
pub struct SharedInstance {
    /// Most tenants per shared instance.
    pub max_tenants: i32,
    /// What one shared instance reserves on its node.
    pub limits: Limits,
    /// Database connections one tenant may hold at once (its role's
    /// `CONNECTION LIMIT`).
    pub tenant_connection_limit: i32,
}

/// An inclusive range of host ports.
#[derive(Debug, Serialize, ToSchema)]
pub struct PortRange {
    /// First port.
    pub start: i32,
    /// Last port (inclusive).
    pub end: i32,
}

/// An app we host.
#[derive(Debug, Serialize, ToSchema)]
pub struct Product {
    /// Product id.
    pub id: Uuid,
    /// Slug, e.g. `odoo`.
    pub slug: String,
    /// Display name.
    pub name: String,
    /// Description.
    pub description: Option<String>,
    /// Provisioning driver: `proxmox` (LXC) or `docker`.
    pub driver: String,
    /// Proxmox `ostemplate` volume id (proxmox products).
    pub lxc_template: Option<String>,
    /// Docker image reference (docker products built from an image).
    pub image: Option<String>,
    /// Compose stack under `docker/stacks/` (docker products built from a stack).
    pub compose_stack: Option<String>,
    /// Port the app listens on inside its container.
    pub internal_port: i32,
    /// Shared instance settings, when the product has shared plans.
    pub shared: Option<SharedInstance>,
    /// Host ports for dedicated tenants, when the product has dedicated plans.
    pub dedicated_ports: Option<PortRange>,
    /// Offered to new customers (public lists show active products only).
    pub active: bool,
    /// When created (RFC 3339).
    pub created_at: DateTime<Utc>,
    /// When last changed (RFC 3339).
    pub updated_at: DateTime<Utc>,
}

/// A product with every plan, active or not, as catalog administration shows it.
#[derive(Debug, Serialize, ToSchema)]
pub struct AdminProduct {
    /// The product.
    #[serde(flatten)]
    pub product: Product,
    /// Docker: environment templates by variable name.
    #[serde(skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub env: std::collections::BTreeMap<String, String>,
    /// Docker: named volumes and their mount paths.
    #[serde(skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub volumes: std::collections::BTreeMap<String, String>,
    /// Docker compose: the service serving the app.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stack_service: Option<String>,
    /// All its plans, by tier rank then code.
    pub plans: Vec<Plan>,
}

impl AdminProduct {
    /// The product's slug.
    pub fn slug(&self) -> &str {
        &self.product.slug
    }
}

/// Builds the admin view of a product.
///
/// # Errors
/// [`ApiError::Internal`] for a stored plan with a bad currency.
pub fn admin_product_dto(product: ProductRow, plans: Vec<PlanRow>) -> ApiResult<AdminProduct> {
    let slug = product.slug.clone();
    let driver = product.driver.clone();
    let (env, volumes, stack_service) = (
        product.env_map(),
        product.volume_map(),
        product.stack_service.clone(),
    );
    Ok(AdminProduct {
        env,
        volumes,
        stack_service,
        product: product_dto(product),
        plans: plans
            .into_iter()
            .map(|p| plan_dto(p, slug.clone(), &driver))
            .collect::<ApiResult<_>>()?,
    })
}

/// A product with its active plans.
#[derive(Debug, Serialize, ToSchema)]
pub struct ProductDetail {
    /// The product.
    #[serde(flatten)]
    pub product: Product,
    /// Its active plans, by tier rank then code.
    pub plans: Vec<Plan>,
}

fn product_dto(p: ProductRow) -> Product {
    let shared = match (
        p.shared_max_tenants,
        p.shared_cpu_cores,
        p.shared_memory_mib,
        p.shared_storage_gib,
    ) {
        (Some(max_tenants), Some(cpu_cores), Some(memory_mib), Some(storage_gib)) => {
            Some(SharedInstance {
                max_tenants,
                limits: Limits {
                    cpu_cores,
                    memory_mib,
                    storage_gib,
                },
                tenant_connection_limit: p
                    .shared_tenant_connection_limit
                    .unwrap_or(tenantry_store::catalog::DEFAULT_TENANT_CONNECTION_LIMIT),
            })
        }
        _ => None,
    };
    let dedicated_ports = p
        .dedicated_port_start
        .zip(p.dedicated_port_end)
        .map(|(start, end)| PortRange { start, end });
    Product {
        id: p.id,
        slug: p.slug,
        name: p.name,
        description: p.description,
        driver: p.driver,
        lxc_template: p.lxc_template,
        image: p.image,
        compose_stack: p.compose_stack,
        internal_port: p.internal_port,
        shared,
        dedicated_ports,
        active: p.active,
        created_at: p.created_at,
        updated_at: p.updated_at,
    }
}

fn plan_dto(plan: PlanRow, product: String, driver: &str) -> ApiResult<Plan> {
    use tenantry_domain::{DeploymentKind, DriverKind};
    let high_availability = match (
        plan.deployment.parse::<DeploymentKind>(),
        driver.parse::<DriverKind>(),
    ) {
        (Ok(kind), Ok(driver)) => kind.high_availability_on(driver).map(str::to_owned),
        _ => None,
    };
    let price = plan
        .price()
        .map_err(|e| ApiError::Internal(anyhow::Error::new(e).context("stored plan currency")))?;
    Ok(Plan {
        id: plan.id,
        product,
        code: plan.code,
        name: plan.name,
        tier_rank: plan.tier_rank,
        price: Money {
            amount: price.amount().to_string(),
            currency: price.currency().code().to_owned(),
        },
        interval: plan.billing_interval,
        deployment: plan.deployment,
        limits: Limits {
            cpu_cores: plan.cpu_cores,
            memory_mib: plan.memory_mib,
            storage_gib: plan.storage_gib,
        },
        high_availability,
        backup_schedule: plan.backup_schedule,
        sla_percent: plan.sla_percent.map(|d| d.normalize().to_string()),
        active: plan.active,
    })
}

/// Active products, oldest first.
#[utoipa::path(
    context_path = "/v1",
    tag = "catalog",
    params(PageParams),
    responses(
        (status = 200, description = "A page of products", body = Page<Product>),
        (status = 400, description = "Invalid `limit` or `cursor`", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 503, description = "Database unavailable", body = crate::error::Problem, content_type = "application/problem+json"),
    )
)]
#[get("/products")]
pub async fn list_products(
    state: web::Data<AppState>,
    Query(params): Query<PageParams>,
) -> ApiResult<web::Json<Page<Product>>> {
    let page = params.to_request()?;
    let mut conn = state.pool.get().await?;
    let rows = store::list_active_products(&mut conn, page).await?;
    Ok(web::Json(Page::try_from_store(rows, |p| {
        Ok(product_dto(p))
    })?))
}

/// One active product with its active plans.
#[utoipa::path(
    context_path = "/v1",
    tag = "catalog",
    params(("slug" = String, Path, description = "Product slug, e.g. `odoo`")),
    responses(
        (status = 200, description = "The product and its plans", body = ProductDetail),
        (status = 404, description = "No active product with this slug", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 503, description = "Database unavailable", body = crate::error::Problem, content_type = "application/problem+json"),
    )
)]
#[get("/products/{slug}")]
pub async fn get_product(
    state: web::Data<AppState>,
    slug: web::Path<String>,
) -> ApiResult<web::Json<ProductDetail>> {
    let slug = slug.into_inner();
    let mut conn = state.pool.get().await?;
    let product = store::find_active_product(&mut conn, &slug)
        .await
        .map_err(|e| match e {
            tenantry_store::StoreError::NotFound => {
                ApiError::not_found(format!("product {slug:?}"))
            }
            other => other.into(),
        })?;
    let plans = store::active_plans_of(&mut conn, product.id).await?;
    let plans = plans
        .into_iter()
        .map(|p| plan_dto(p, product.slug.clone(), &product.driver))
        .collect::<ApiResult<_>>()?;
    Ok(web::Json(ProductDetail {
        product: product_dto(product),
        plans,
    }))
}

/// Filter of the plan list.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct PlanFilter {
    /// Only plans of this product (slug).
    pub product: Option<String>,
    /// Most items to return, 1–200 (default 50).
    #[param(minimum = 1, maximum = 200)]
    pub limit: Option<u32>,
    /// The `next_cursor` of the previous page; omit for the first page.
    pub cursor: Option<String>,
}

/// Active plans of active products, oldest first, optionally of one product.
#[utoipa::path(
    context_path = "/v1",
    tag = "catalog",
    params(PlanFilter),
    responses(
        (status = 200, description = "A page of plans", body = Page<Plan>),
        (status = 400, description = "Invalid parameter", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 503, description = "Database unavailable", body = crate::error::Problem, content_type = "application/problem+json"),
    )
)]
#[get("/plans")]
pub async fn list_plans(
    state: web::Data<AppState>,
    Query(filter): Query<PlanFilter>,
) -> ApiResult<web::Json<Page<Plan>>> {
    let page = PageParams {
        limit: filter.limit,
        cursor: filter.cursor,
    }
    .to_request()?;
    let mut conn = state.pool.get().await?;
    let rows = store::list_active_plans(&mut conn, filter.product.as_deref(), page).await?;
    Ok(web::Json(Page::try_from_store(
        rows,
        |PlanWithProduct {
             plan,
             product_slug,
             product_driver,
         }| plan_dto(plan, product_slug, &product_driver),
    )?))
}
