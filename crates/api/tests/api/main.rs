#![expect(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test helpers fail loudly"
)]

//! API integration tests: the real app on a free port, its own database each.

mod activity;
mod auth;
mod authz;
mod billing;
mod browser;
mod catalog;
mod cli;
mod crash;
mod deployments;
mod docker_tenants;
mod domains;
mod errors;
mod helpers;
mod make_run;
mod nodes;
mod operations;
mod provisioning;
mod serving;
mod spec_client;
mod stripe;
mod tenants;
mod tokens;
