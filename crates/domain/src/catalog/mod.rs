//! The catalog: products we host and the plans they are sold on.
//!
//! [`ProductInput`] / [`PlanInput`] are what an operator writes (a catalog file
//! or, later, the admin API); [`ProductInput::validate`] turns them into a
//! [`ProductSpec`] whose every field is a validated type, or lists every
//! broken rule with its field path.

mod backup;
mod kinds;
mod plan;
mod ports;
mod product;
mod resources;
mod rules;
mod sla;
#[cfg(test)]
mod tests;

use serde::Deserialize;

use crate::ValidationErrors;

pub use backup::BackupSchedule;
pub use kinds::{BillingInterval, DeploymentKind, DriverKind};
pub use plan::{PlanCode, PlanInput, PlanSpec};
pub use ports::{Port, PortRange};
pub use product::{
    Artifact, PortRangeInput, ProductInput, ProductSpec, SharedInstance, SharedInstanceInput,
};
pub use resources::Resources;
pub use sla::SlaPercent;

/// A whole catalog as a file holds it: `[[products]]` with their `[[products.plans]]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CatalogInput {
    /// The products.
    pub products: Vec<ProductInput>,
}

impl CatalogInput {
    /// Validates every product; product slugs must be unique in the file.
    ///
    /// # Errors
    /// Every broken rule, with paths such as `products[1].plans[0].price`.
    pub fn validate(&self) -> Result<Vec<ProductSpec>, ValidationErrors> {
        let mut e = ValidationErrors::new();
        let mut specs: Vec<ProductSpec> = Vec::with_capacity(self.products.len());
        for (i, p) in self.products.iter().enumerate() {
            if self.products[..i].iter().any(|q| q.slug == p.slug) {
                e.push(
                    format!("products[{i}].slug"),
                    format!("duplicate product slug {:?}", p.slug),
                );
            }
            match p.validate() {
                Ok(spec) => specs.push(spec),
                Err(pe) => e.nest(&format!("products[{i}]"), pe),
            }
        }
        e.into_result(|| Some(specs))
    }
}
