//! Provisioning: the [`Driver`] trait with one module per implementation
//! (Proxmox VE LXC, Docker), placement, port allocation, the reconciler, and
//! tenants' own PostgreSQL databases ([`tenant_db`]).
//!
//! Depends on `store` and `domain`, never on `billing`: an applied plan
//! change reaches provisioning as a job in `store` (see DESIGN.md, "Layout").

pub mod deploy;
pub mod docker;
pub mod driver;
pub mod proxmox;
pub mod tenant_db;

pub use driver::{
    Driver, DriverError, InstanceRef, InstanceSpec, InstanceState, InstanceStatus, NodeMetrics,
    NodeStatus, OWNER_TAG_PREFIX, StackSpec,
};
pub use tenant_db::{
    DatabaseServer, TenantDbError, TenantDbName, TenantDbNameError, generate_password,
};
