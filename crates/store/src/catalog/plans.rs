//! Plans: a product's tiers, each a price per billing interval (month, year
//! or lifetime) with its resources and deployment kind; their rows, the
//! public catalog's queries, and creating and updating them.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use rust_decimal::Decimal;
use tenantry_domain::{Currency, Money, MoneyError, catalog::PlanSpec};
use uuid::Uuid;

use super::{LoadReport, Product, int};
use crate::{
    Page, PageRequest, StoreError,
    schema::{plans, products},
};

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

impl Plan {
    /// The plan's price per billing interval, in its currency (rounded to
    /// the currency's minor unit as every charge is).
    ///
    /// # Errors
    /// [`MoneyError::UnknownCurrency`] for a stored code ISO 4217 does not
    /// know (the catalog refuses those, so this is a damaged row).
    pub fn price(&self) -> Result<Money, MoneyError> {
        Ok(Money::rounded(self.price, Currency::parse(&self.currency)?))
    }
}

/// A plan with its product's slug, as plan listings show it.
#[derive(Debug, Clone, PartialEq)]
pub struct PlanWithProduct {
    /// The plan.
    pub plan: Plan,
    /// Its product's slug.
    pub product_slug: String,
    /// Its product's driver (`proxmox`, `docker`).
    pub product_driver: String,
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
        .select((Plan::as_select(), products::slug, products::driver))
        .into_boxed();
    if let Some(slug) = product_slug {
        q = q.filter(products::slug.eq(slug));
    }
    if let Some(after) = page.after {
        q = q.filter(plans::id.gt(after));
    }
    let rows: Vec<(Plan, String, String)> = q.load(conn).await?;
    let rows = rows
        .into_iter()
        .map(|(plan, product_slug, product_driver)| PlanWithProduct {
            plan,
            product_slug,
            product_driver,
        })
        .collect();
    Ok(Page::from_overfetch(rows, page, |p| p.plan.id))
}

pub(super) async fn upsert_plan(
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
