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
mod errors;
mod helpers;
mod make_run;
mod operations;
mod tenants;
mod tokens;
