//! Products and plans: rows, public queries and the idempotent catalog load.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use rust_decimal::Decimal;
use tenantry_domain::catalog::{Artifact, PlanSpec, ProductSpec};
use uuid::Uuid;

use crate::{
    Page, PageRequest, StoreError,
    schema::{plans, products},
};

/// A product row.
#[derive(Debug, Clone, PartialEq, Queryable, Selectable, Identifiable)]
#[diesel(table_name = products, check_for_backend(diesel::pg::Pg))]
pub struct Product {
    /// Id (UUIDv7).
    pub id: Uuid,
    /// Slug, e.g. `odoo`.
    pub slug: String,
    /// Display name.
    pub name: String,
    /// Description.
    pub description: Option<String>,
    /// `proxmox` or `docker`.
    pub driver: String,
    /// Proxmox `ostemplate` volume id.
    pub lxc_template: Option<String>,
    /// Docker image reference.
    pub image: Option<String>,
    /// Compose stack name under `docker/stacks/`.
    pub compose_stack: Option<String>,
    /// Port the app listens on inside its container.
    pub internal_port: i32,
    /// Most tenants per shared instance.
    pub shared_max_tenants: Option<i32>,
    /// Cores reserved by a shared instance.
    pub shared_cpu_cores: Option<i32>,
    /// Memory reserved by a shared instance, MiB.
    pub shared_memory_mib: Option<i32>,
    /// Disk reserved by a shared instance, GiB.
    pub shared_storage_gib: Option<i32>,
    /// First host port for dedicated tenants.
    pub dedicated_port_start: Option<i32>,
    /// Last host port for dedicated tenants (inclusive).
    pub dedicated_port_end: Option<i32>,
    /// Offered to new customers.
    pub active: bool,
    /// When created.
    pub created_at: DateTime<Utc>,
    /// When last changed.
    pub updated_at: DateTime<Utc>,
    /// Docker: environment templates by variable name (a JSON object).
    pub env: serde_json::Value,
    /// Docker: named volumes and their mount paths (a JSON object).
    pub volumes: serde_json::Value,
    /// Docker compose: the service serving the app.
    pub stack_service: Option<String>,
}

impl Product {
    /// `env` as a map (empty when it is not an object of strings).
    pub fn env_map(&self) -> std::collections::BTreeMap<String, String> {
        serde_json::from_value(self.env.clone()).unwrap_or_default()
    }

    /// `volumes` as a map.
    pub fn volume_map(&self) -> std::collections::BTreeMap<String, String> {
        serde_json::from_value(self.volumes.clone()).unwrap_or_default()
    }
}

/// A plan row.
#[derive(Debug, Clone, PartialEq, Queryable, Selectable, Identifiable, Associations)]
#[diesel(table_name = plans, belongs_to(Product), check_for_backend(diesel::pg::Pg))]
pub struct Plan {
    /// Id (UUIDv7).
    pub id: Uuid,
    /// The product it sells.
    pub product_id: Uuid,
    /// Code unique within the product.
    pub code: String,
    /// Display name.
    pub name: String,
    /// Tier rank: higher is an upgrade.
    pub tier_rank: i32,
    /// Price per interval in the currency's major unit.
    pub price: Decimal,
    /// ISO 4217 code.
    pub currency: String,
    /// `month`, `year` or `lifetime`.
    pub billing_interval: String,
    /// `shared`, `dedicated` or `dedicated_ha`.
    pub deployment: String,
    /// CPU cores.
    pub cpu_cores: i32,
    /// Memory, MiB.
    pub memory_mib: i32,
    /// Storage, GiB.
    pub storage_gib: i32,
    /// `none`, `hourly`, `daily`, `weekly` or `<hours>h`.
    pub backup_schedule: String,
    /// Availability target, percent.
    pub sla_percent: Option<Decimal>,
    /// Offered to new customers.
    pub active: bool,
    /// When created.
    pub created_at: DateTime<Utc>,
    /// When last changed.
    pub updated_at: DateTime<Utc>,
}

/// A plan with its product's slug, as plan listings show it.
#[derive(Debug, Clone, PartialEq)]
pub struct PlanWithProduct {
    /// The plan.
    pub plan: Plan,
    /// Its product's slug.
    pub product_slug: String,
}

#[derive(Debug, Clone, PartialEq, Insertable, AsChangeset)]
#[diesel(table_name = products, treat_none_as_null = true)]
struct ProductValues {
    slug: String,
    name: String,
    description: Option<String>,
    driver: String,
    lxc_template: Option<String>,
    image: Option<String>,
    compose_stack: Option<String>,
    internal_port: i32,
    shared_max_tenants: Option<i32>,
    shared_cpu_cores: Option<i32>,
    shared_memory_mib: Option<i32>,
    shared_storage_gib: Option<i32>,
    dedicated_port_start: Option<i32>,
    dedicated_port_end: Option<i32>,
    active: bool,
    env: serde_json::Value,
    volumes: serde_json::Value,
    stack_service: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Insertable, AsChangeset)]
#[diesel(table_name = plans, treat_none_as_null = true)]
struct PlanValues {
    product_id: Uuid,
    code: String,
    name: String,
    tier_rank: i32,
    price: Decimal,
    currency: String,
    billing_interval: String,
    deployment: String,
    cpu_cores: i32,
    memory_mib: i32,
    storage_gib: i32,
    backup_schedule: String,
    sla_percent: Option<Decimal>,
    active: bool,
}

fn int(n: u32) -> i32 {
    i32::try_from(n).unwrap_or(i32::MAX)
}

impl From<&ProductSpec> for ProductValues {
    fn from(p: &ProductSpec) -> Self {
        let (lxc_template, image, compose_stack) = match &p.artifact {
            Artifact::LxcTemplate(t) => (Some(t.clone()), None, None),
            Artifact::Image(i) => (None, Some(i.clone()), None),
            Artifact::ComposeStack(s) => (None, None, Some(s.clone())),
        };
        Self {
            slug: p.slug.to_string(),
            name: p.name.clone(),
            description: p.description.clone(),
            driver: p.driver.to_string(),
            lxc_template,
            image,
            compose_stack,
            internal_port: i32::from(p.internal_port),
            shared_max_tenants: p.shared.map(|s| int(s.max_tenants)),
            shared_cpu_cores: p.shared.map(|s| int(s.resources.cpu_cores)),
            shared_memory_mib: p.shared.map(|s| int(s.resources.memory_mib)),
            shared_storage_gib: p.shared.map(|s| int(s.resources.storage_gib)),
            dedicated_port_start: p.dedicated_ports.map(|r| i32::from(r.start().get())),
            dedicated_port_end: p.dedicated_ports.map(|r| i32::from(r.end().get())),
            active: true,
            env: serde_json::to_value(&p.env).unwrap_or_default(),
            volumes: serde_json::to_value(&p.volumes).unwrap_or_default(),
            stack_service: p.stack_service.clone(),
        }
    }
}

impl From<&Product> for ProductValues {
    fn from(p: &Product) -> Self {
        Self {
            slug: p.slug.clone(),
            name: p.name.clone(),
            description: p.description.clone(),
            driver: p.driver.clone(),
            lxc_template: p.lxc_template.clone(),
            image: p.image.clone(),
            compose_stack: p.compose_stack.clone(),
            internal_port: p.internal_port,
            shared_max_tenants: p.shared_max_tenants,
            shared_cpu_cores: p.shared_cpu_cores,
            shared_memory_mib: p.shared_memory_mib,
            shared_storage_gib: p.shared_storage_gib,
            dedicated_port_start: p.dedicated_port_start,
            dedicated_port_end: p.dedicated_port_end,
            active: p.active,
            env: p.env.clone(),
            volumes: p.volumes.clone(),
            stack_service: p.stack_service.clone(),
        }
    }
}

impl PlanValues {
    fn new(product_id: Uuid, p: &PlanSpec) -> Self {
        Self {
            product_id,
            code: p.code.to_string(),
            name: p.name.clone(),
            tier_rank: int(p.tier_rank),
            price: p.price.amount(),
            currency: p.price.currency().code().to_owned(),
            billing_interval: p.interval.to_string(),
            deployment: p.deployment.to_string(),
            cpu_cores: int(p.resources.cpu_cores),
            memory_mib: int(p.resources.memory_mib),
            storage_gib: int(p.resources.storage_gib),
            backup_schedule: p.backup_schedule.to_string(),
            sla_percent: p.sla_percent.map(|s| s.get()),
            active: p.active,
        }
    }
}

impl From<&Plan> for PlanValues {
    fn from(p: &Plan) -> Self {
        Self {
            product_id: p.product_id,
            code: p.code.clone(),
            name: p.name.clone(),
            tier_rank: p.tier_rank,
            price: p.price,
            currency: p.currency.clone(),
            billing_interval: p.billing_interval.clone(),
            deployment: p.deployment.clone(),
            cpu_cores: p.cpu_cores,
            memory_mib: p.memory_mib,
            storage_gib: p.storage_gib,
            backup_schedule: p.backup_schedule.clone(),
            sla_percent: p.sla_percent,
            active: p.active,
        }
    }
}

/// Active products, oldest first, one page.
///
/// # Errors
/// [`StoreError::Unavailable`] or [`StoreError::Query`].
pub async fn list_active_products(
    conn: &mut AsyncPgConnection,
    page: PageRequest,
) -> Result<Page<Product>, StoreError> {
    let mut q = products::table
        .filter(products::active.eq(true))
        .order(products::id)
        .limit(page.fetch())
        .select(Product::as_select())
        .into_boxed();
    if let Some(after) = page.after {
        q = q.filter(products::id.gt(after));
    }
    let rows = q.load(conn).await?;
    Ok(Page::from_overfetch(rows, page, |p| p.id))
}

/// The active product with this slug.
///
/// # Errors
/// [`StoreError::NotFound`] when there is none (or it is inactive).
pub async fn find_active_product(
    conn: &mut AsyncPgConnection,
    slug: &str,
) -> Result<Product, StoreError> {
    Ok(products::table
        .filter(products::slug.eq(slug))
        .filter(products::active.eq(true))
        .select(Product::as_select())
        .first(conn)
        .await?)
}

/// The active plans of a product, by tier rank then code.
///
/// # Errors
/// [`StoreError::Unavailable`] or [`StoreError::Query`].
pub async fn active_plans_of(
    conn: &mut AsyncPgConnection,
    product_id: Uuid,
) -> Result<Vec<Plan>, StoreError> {
    Ok(plans::table
        .filter(plans::product_id.eq(product_id))
        .filter(plans::active.eq(true))
        .order((plans::tier_rank, plans::code))
        .select(Plan::as_select())
        .load(conn)
        .await?)
}

/// Active plans of active products, optionally of one product (by slug), one page.
///
/// # Errors
/// [`StoreError::Unavailable`] or [`StoreError::Query`].
pub async fn list_active_plans(
    conn: &mut AsyncPgConnection,
    product_slug: Option<&str>,
    page: PageRequest,
) -> Result<Page<PlanWithProduct>, StoreError> {
    let mut q = plans::table
        .inner_join(products::table)
        .filter(plans::active.eq(true))
        .filter(products::active.eq(true))
        .order(plans::id)
        .limit(page.fetch())
        .select((Plan::as_select(), products::slug))
        .into_boxed();
    if let Some(slug) = product_slug {
        q = q.filter(products::slug.eq(slug));
    }
    if let Some(after) = page.after {
        q = q.filter(plans::id.gt(after));
    }
    let rows: Vec<(Plan, String)> = q.load(conn).await?;
    let rows = rows
        .into_iter()
        .map(|(plan, product_slug)| PlanWithProduct { plan, product_slug })
        .collect();
    Ok(Page::from_overfetch(rows, page, |p| p.plan.id))
}

/// What a catalog load changed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LoadReport {
    /// Products inserted.
    pub products_created: usize,
    /// Products whose fields changed.
    pub products_updated: usize,
    /// Plans inserted.
    pub plans_created: usize,
    /// Plans whose fields changed.
    pub plans_updated: usize,
    /// Products and plans already exactly as given.
    pub unchanged: usize,
}

/// Advisory lock key serialising catalog loads (ASCII "catalog").
const CATALOG_LOCK_KEY: i64 = 0x0063_6174_616c_6f67;

/// Creates or updates the given products and their plans, matched by product
/// slug and plan code, in one transaction. Loading the same catalog twice
/// changes nothing the second time (no row is rewritten, `updated_at` stays).
/// Products and plans not in `catalog` are left as they are; a product in the
/// catalog is (re)activated.
///
/// # Errors
/// [`StoreError`]; on error nothing is changed.
pub async fn load_catalog(
    conn: &mut AsyncPgConnection,
    catalog: &[ProductSpec],
) -> Result<LoadReport, StoreError> {
    conn.transaction::<_, StoreError, _>(async |conn| {
        diesel::sql_query("SELECT pg_advisory_xact_lock($1)")
            .bind::<diesel::sql_types::BigInt, _>(CATALOG_LOCK_KEY)
            .execute(conn)
            .await?;
        let mut report = LoadReport::default();
        for spec in catalog {
            let product_id = upsert_product(conn, spec, &mut report).await?;
            for plan in &spec.plans {
                upsert_plan(conn, product_id, plan, &mut report).await?;
            }
        }
        Ok(report)
    })
    .await
}

async fn upsert_product(
    conn: &mut AsyncPgConnection,
    spec: &ProductSpec,
    report: &mut LoadReport,
) -> Result<Uuid, StoreError> {
    let values = ProductValues::from(spec);
    let existing: Option<Product> = products::table
        .filter(products::slug.eq(&values.slug))
        .select(Product::as_select())
        .for_update()
        .first(conn)
        .await
        .optional()?;
    match existing {
        None => {
            let id = Uuid::now_v7();
            diesel::insert_into(products::table)
                .values((products::id.eq(id), &values))
                .execute(conn)
                .await?;
            report.products_created += 1;
            Ok(id)
        }
        Some(row) if ProductValues::from(&row) == values => {
            report.unchanged += 1;
            Ok(row.id)
        }
        Some(row) => {
            diesel::update(products::table.find(row.id))
                .set((&values, products::updated_at.eq(diesel::dsl::now)))
                .execute(conn)
                .await?;
            report.products_updated += 1;
            Ok(row.id)
        }
    }
}

async fn upsert_plan(
    conn: &mut AsyncPgConnection,
    product_id: Uuid,
    spec: &PlanSpec,
    report: &mut LoadReport,
) -> Result<(), StoreError> {
    let values = PlanValues::new(product_id, spec);
    let existing: Option<Plan> = plans::table
        .filter(plans::product_id.eq(product_id))
        .filter(plans::code.eq(&values.code))
        .select(Plan::as_select())
        .for_update()
        .first(conn)
        .await
        .optional()?;
    match existing {
        None => {
            diesel::insert_into(plans::table)
                .values((plans::id.eq(Uuid::now_v7()), &values))
                .execute(conn)
                .await?;
            report.plans_created += 1;
        }
        Some(row) if PlanValues::from(&row) == values => report.unchanged += 1,
        Some(row) => {
            diesel::update(plans::table.find(row.id))
                .set((&values, plans::updated_at.eq(diesel::dsl::now)))
                .execute(conn)
                .await?;
            report.plans_updated += 1;
        }
    }
    Ok(())
}

/// The product with this slug, active or not.
///
/// # Errors
/// [`StoreError::NotFound`].
pub async fn find_product(conn: &mut AsyncPgConnection, slug: &str) -> Result<Product, StoreError> {
    Ok(products::table
        .filter(products::slug.eq(slug))
        .select(Product::as_select())
        .first(conn)
        .await?)
}

/// Every plan of a product, active or not, by tier rank then code.
///
/// # Errors
/// [`StoreError`].
pub async fn plans_of(
    conn: &mut AsyncPgConnection,
    product_id: Uuid,
) -> Result<Vec<Plan>, StoreError> {
    Ok(plans::table
        .filter(plans::product_id.eq(product_id))
        .order((plans::tier_rank, plans::code))
        .select(Plan::as_select())
        .load(conn)
        .await?)
}

/// The plan `code` of a product, active or not.
///
/// # Errors
/// [`StoreError::NotFound`].
pub async fn find_plan(
    conn: &mut AsyncPgConnection,
    product_id: Uuid,
    code: &str,
) -> Result<Plan, StoreError> {
    Ok(plans::table
        .filter(plans::product_id.eq(product_id))
        .filter(plans::code.eq(code))
        .select(Plan::as_select())
        .first(conn)
        .await?)
}

/// Creates a product and its plans in one transaction.
///
/// # Errors
/// [`StoreError::Conflict`] when the slug (or a plan code) is taken.
pub async fn create_product(
    conn: &mut AsyncPgConnection,
    spec: &ProductSpec,
) -> Result<Product, StoreError> {
    conn.transaction::<_, StoreError, _>(async |conn| {
        let product: Product = diesel::insert_into(products::table)
            .values((products::id.eq(Uuid::now_v7()), &ProductValues::from(spec)))
            .returning(Product::as_returning())
            .get_result(conn)
            .await?;
        for plan in &spec.plans {
            create_plan(conn, product.id, plan).await?;
        }
        Ok(product)
    })
    .await
}

/// Replaces a product's own fields (not its plans, not `active`).
///
/// # Errors
/// [`StoreError::NotFound`], or [`StoreError::Conflict`] for a taken slug.
pub async fn update_product(
    conn: &mut AsyncPgConnection,
    id: Uuid,
    spec: &ProductSpec,
) -> Result<Product, StoreError> {
    let current = products::table
        .find(id)
        .select(Product::as_select())
        .first(conn)
        .await?;
    let mut values = ProductValues::from(spec);
    values.active = current.active;
    Ok(diesel::update(products::table.find(id))
        .set((&values, products::updated_at.eq(diesel::dsl::now)))
        .returning(Product::as_returning())
        .get_result(conn)
        .await?)
}

/// Activates or deactivates a product (its plans stay as they are).
///
/// # Errors
/// [`StoreError::NotFound`].
pub async fn set_product_active(
    conn: &mut AsyncPgConnection,
    id: Uuid,
    active: bool,
) -> Result<Product, StoreError> {
    Ok(diesel::update(products::table.find(id))
        .set((
            products::active.eq(active),
            products::updated_at.eq(diesel::dsl::now),
        ))
        .returning(Product::as_returning())
        .get_result(conn)
        .await?)
}

/// Adds a plan to a product.
///
/// # Errors
/// [`StoreError::Conflict`] (`plans_code_unique_per_product`) when the code is taken.
pub async fn create_plan(
    conn: &mut AsyncPgConnection,
    product_id: Uuid,
    spec: &PlanSpec,
) -> Result<Plan, StoreError> {
    Ok(diesel::insert_into(plans::table)
        .values((
            plans::id.eq(Uuid::now_v7()),
            &PlanValues::new(product_id, spec),
        ))
        .returning(Plan::as_returning())
        .get_result(conn)
        .await?)
}

/// Replaces a plan's fields.
///
/// # Errors
/// [`StoreError::NotFound`], or [`StoreError::Conflict`] for a taken code.
pub async fn update_plan(
    conn: &mut AsyncPgConnection,
    plan: &Plan,
    spec: &PlanSpec,
) -> Result<Plan, StoreError> {
    Ok(diesel::update(plans::table.find(plan.id))
        .set((
            &PlanValues::new(plan.product_id, spec),
            plans::updated_at.eq(diesel::dsl::now),
        ))
        .returning(Plan::as_returning())
        .get_result(conn)
        .await?)
}

/// A plan's code.
///
/// # Errors
/// [`StoreError::NotFound`].
pub async fn plan_code(conn: &mut AsyncPgConnection, id: Uuid) -> Result<String, StoreError> {
    Ok(plans::table
        .find(id)
        .select(plans::code)
        .first(conn)
        .await?)
}

/// A plan by id.
///
/// # Errors
/// [`StoreError::NotFound`].
pub async fn find_plan_by_id(conn: &mut AsyncPgConnection, id: Uuid) -> Result<Plan, StoreError> {
    Ok(plans::table
        .find(id)
        .select(Plan::as_select())
        .first(conn)
        .await?)
}

/// A product by id.
///
/// # Errors
/// [`StoreError::NotFound`].
pub async fn find_product_by_id(
    conn: &mut AsyncPgConnection,
    id: Uuid,
) -> Result<Product, StoreError> {
    Ok(products::table
        .find(id)
        .select(Product::as_select())
        .first(conn)
        .await?)
}
