//! Products: what is sold (an app, its artifact and how it is deployed,
//! shared instances' limits and dedicated port ranges), their rows, the
//! public catalog's queries, and creating and updating them.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use tenantry_domain::catalog::{Artifact, ProductSpec};
use uuid::Uuid;

use super::{LoadReport, create_plan, int};
use crate::{Page, PageRequest, StoreError, schema::products};

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
    /// Database connections one shared tenant may hold (null: 20).
    pub shared_tenant_connection_limit: Option<i32>,
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
    shared_tenant_connection_limit: Option<i32>,
    dedicated_port_start: Option<i32>,
    dedicated_port_end: Option<i32>,
    active: bool,
    env: serde_json::Value,
    volumes: serde_json::Value,
    stack_service: Option<String>,
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
            shared_tenant_connection_limit: p
                .shared
                .and_then(|s| s.tenant_connection_limit)
                .map(int),
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
            shared_tenant_connection_limit: p.shared_tenant_connection_limit,
            dedicated_port_start: p.dedicated_port_start,
            dedicated_port_end: p.dedicated_port_end,
            active: p.active,
            env: p.env.clone(),
            volumes: p.volumes.clone(),
            stack_service: p.stack_service.clone(),
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

pub(super) async fn upsert_product(
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
