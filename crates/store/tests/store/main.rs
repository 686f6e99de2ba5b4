#![expect(clippy::expect_used, reason = "test helpers fail loudly")]

//! Store integration tests against a real PostgreSQL: one database per test.

mod catalog;
mod identity;
mod jobs;
mod locks;
mod migrations;
mod stripe;

use secrecy::SecretString;
use tenantry_domain::{CatalogInput, catalog::ProductSpec};
use tenantry_store::{Pool, PoolSettings};

pub fn demo_catalog() -> Vec<ProductSpec> {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../catalog/demo.toml"
    ))
    .expect("catalog/demo.toml");
    let input: CatalogInput = toml::from_str(&text).expect("demo catalog parses");
    input.validate().expect("demo catalog is valid")
}

pub fn pool(url: &str) -> Pool {
    Pool::new(
        &SecretString::from(url.to_owned()),
        PoolSettings {
            max_size: 4,
            timeout: std::time::Duration::from_secs(10),
        },
    )
    .expect("pool")
}
