//! Products and plans: rows, public queries and the idempotent catalog load.
//!
//! The parts: `products` (product rows and their queries), `plans` (plan
//! rows, each a price per billing interval and a deployment, and their
//! queries) and `load` (the idempotent catalog load that creates or updates
//! both).

mod load;
mod plans;
mod products;

pub use load::{LoadReport, load_catalog};
pub use plans::{
    Plan, PlanWithProduct, active_plans_of, create_plan, find_plan, find_plan_by_id,
    list_active_plans, plan_code, plans_of, update_plan,
};
pub use products::{
    Product, create_product, find_active_product, find_product, find_product_by_id,
    list_active_products, set_product_active, update_product,
};

/// Database connections one shared tenant may hold when its product
/// declares no `tenant_connection_limit`.
pub const DEFAULT_TENANT_CONNECTION_LIMIT: i32 = 20;

fn int(n: u32) -> i32 {
    i32::try_from(n).unwrap_or(i32::MAX)
}
