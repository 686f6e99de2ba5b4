//! Tenantry's HTTP API and the `tenantry` command line.
//!
//! - [`config`]: every setting, from flags, `TENANTRY_*` / `DATABASE_URL`
//!   variables and an optional TOML file;
//! - [`startup`]: builds the actix-web app on a listener ([`Application`]);
//! - [`error`]: the one API error type, rendered as RFC 9457 problem+json;
//! - [`routes`]: one module per resource; handlers parse, call one store or
//!   service function and map the result;
//! - [`openapi`]: the OpenAPI 3.1 document generated from the handlers.

pub mod admin;
pub mod audit;
pub mod auth;
pub mod billing_processor;
pub mod catalog_file;
pub mod cli;
pub mod config;
pub mod error;
pub mod extract;
pub mod idempotency;
pub mod metrics;
pub mod middleware;
pub mod openapi;
pub mod pagination;
pub mod routes;
pub mod startup;
pub mod stripe_cli;
pub mod telemetry;
pub mod workers;

pub use error::ApiError;
pub use startup::{AppState, Application};
