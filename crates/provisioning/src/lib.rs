//! Provisioning: the [`Driver`] trait with one module per implementation
//! (Proxmox VE LXC, Docker), nodes (their credentials, drivers and health
//! checks: [`nodes`]), the provisioning jobs with placement and port
//! allocation ([`deploy`]), and tenants' own PostgreSQL databases
//! ([`tenant_db`]).
//!
//! Depends on `store` and `domain`, never on `billing`: an applied plan
//! change reaches provisioning as a job in `store`, and what billing does
//! about provisioning's facts runs through `store::events` (see DESIGN.md,
//! "Layout").

pub mod deploy;
pub mod docker;
pub mod driver;
pub mod nodes;
pub mod proxmox;
pub mod routing;
pub mod settings;
pub mod tenant_db;

pub use driver::{
    Driver, DriverError, InstanceRef, InstanceSpec, InstanceState, InstanceStatus, NodeMetrics,
    NodeStatus, OWNER_TAG_PREFIX, StackSpec, Upstream,
};
pub use settings::ProvisioningSettings;
pub use tenant_db::{
    DatabaseServer, TenantDbError, TenantDbName, TenantDbNameError, generate_password,
};
