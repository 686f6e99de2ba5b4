#![expect(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test helpers fail loudly"
)]

//! Integration tests of `tenantry-provisioning`: the Proxmox driver against
//! pve-sim (every operation, every injected fault), and its TLS modes
//! against a real TLS listener; the Docker driver against the real engine
//! on this machine, with images each test builds (see `docker_support`);
//! tenant databases against the real PostgreSQL of `DATABASE_URL`.

mod docker_engine;
mod docker_image;
mod docker_readiness;
mod docker_stack;
mod docker_support;
mod helpers;
mod proxmox_faults;
mod proxmox_lifecycle;
mod proxmox_schema;
mod proxmox_tls;
mod tenant_db;
mod traefik_schema;
