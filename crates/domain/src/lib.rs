//! Tenantry's domain: the vocabulary of a multi-tenant SaaS host as types that
//! validate themselves, and the rules that can be stated without I/O.
//!
//! Nothing here talks to a database, the network or a clock; every other crate
//! builds on these types. Newtypes have a private field and a `parse()` that
//! returns an error naming the broken rule, so a value that exists is valid.

pub mod billing;
pub mod catalog;
pub mod money;
pub mod slug;
pub mod validation;

pub use catalog::{
    BackupSchedule, BillingInterval, CatalogInput, DeploymentKind, DriverKind, PlanCode, PlanSpec,
    Port, PortRange, ProductSpec, Resources, SlaPercent,
};
pub use money::{Currency, Money, MoneyError};
pub use slug::{Slug, SlugError};
pub use validation::{FieldError, ValidationErrors};
