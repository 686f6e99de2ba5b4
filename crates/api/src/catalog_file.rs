//! Loading a catalog file (`tenantry catalog load FILE`).

use std::path::Path;

use tenantry_domain::{CatalogInput, catalog::ProductSpec};
use tenantry_store::catalog::LoadReport;

use crate::config::{Payments, Settings};

/// Parses and validates a TOML (`.toml`) or JSON (`.json`) catalog.
///
/// # Errors
/// Unreadable file, unknown extension, a parse error naming the field path,
/// or every validation error with its path.
pub fn read(path: &Path) -> anyhow::Result<Vec<ProductSpec>> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", path.display()))?;
    let input: CatalogInput = match path.extension().and_then(|e| e.to_str()) {
        Some("toml") => {
            let de = toml::Deserializer::parse(&text)
                .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
            serde_path_to_error::deserialize(de)
                .map_err(|e| anyhow::anyhow!("{}: {}: {}", path.display(), e.path(), e.inner()))?
        }
        Some("json") => {
            let de = &mut serde_json::Deserializer::from_str(&text);
            serde_path_to_error::deserialize(de)
                .map_err(|e| anyhow::anyhow!("{}: {}: {}", path.display(), e.path(), e.inner()))?
        }
        _ => anyhow::bail!(
            "{}: a catalog file must end in .toml or .json",
            path.display()
        ),
    };
    input
        .validate()
        .map_err(|e| anyhow::anyhow!("{}: invalid catalog: {e}", path.display()))
}

/// Refuses plans priced in a currency `payments` cannot charge (with Stripe,
/// one it does not accept: [`crate::config::stripe_accepts_currency`]).
///
/// # Errors
/// Every such plan, named with its path, product, code and currency.
pub fn check_currencies(specs: &[ProductSpec], payments: &Payments) -> anyhow::Result<()> {
    let refused: Vec<String> = specs
        .iter()
        .enumerate()
        .flat_map(|(i, product)| {
            product
                .plans
                .iter()
                .enumerate()
                .filter_map(move |(j, plan)| {
                    let currency = plan.price.currency().code();
                    (!payments.accepts_currency(currency)).then(|| {
                    format!(
                        "products[{i}].plans[{j}].currency: plan {}/{} is priced in {currency}, \
                         which the payment provider (Stripe) does not accept",
                        product.slug.as_str(),
                        plan.code.as_str()
                    )
                })
                })
        })
        .collect();
    if refused.is_empty() {
        Ok(())
    } else {
        anyhow::bail!("{}", refused.join("; "))
    }
}

/// Reads `path` and creates or updates its products and plans in one
/// transaction; loading the same file twice changes nothing.
///
/// # Errors
/// [`read`]'s errors, a plan in a currency the payment provider does not
/// accept ([`check_currencies`]), or a database error (nothing is changed
/// then).
pub async fn load(settings: &Settings, path: &Path) -> anyhow::Result<LoadReport> {
    let specs = read(path)?;
    check_currencies(&specs, &settings.payments)
        .map_err(|e| anyhow::anyhow!("{}: invalid catalog: {e}", path.display()))?;
    let pool = settings.cli_pool()?;
    let mut conn = pool.get().await?;
    Ok(tenantry_store::catalog::load_catalog(&mut conn, &specs).await?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_demo_catalog_is_valid() {
        let specs = read(Path::new(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../catalog/demo.toml"
        )))
        .unwrap();
        let slugs: Vec<_> = specs.iter().map(|s| s.slug.as_str()).collect();
        assert_eq!(slugs, ["odoo", "inventory"]);
    }

    /// The shape the foundation issue asks of the demo catalog, which scripts
    /// and tests refer to by slug and code.
    #[test]
    fn the_demo_catalog_has_the_promised_plans() {
        use tenantry_domain::{BillingInterval, DeploymentKind, DriverKind};
        let specs = read(Path::new(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../catalog/demo.toml"
        )))
        .unwrap();
        let plan = |product: &str, code: &str| {
            specs
                .iter()
                .find(|p| p.slug.as_str() == product)
                .and_then(|p| p.plans.iter().find(|q| q.code.as_str() == code))
                .unwrap_or_else(|| panic!("{product}/{code} missing"))
                .clone()
        };
        let odoo = &specs[0];
        assert_eq!(odoo.driver, DriverKind::Proxmox);
        for (code, price, deployment, cpu, mem, disk, backup, sla) in [
            (
                "basic",
                "29.00",
                DeploymentKind::Shared,
                1,
                2048,
                10,
                Some(168),
                "99",
            ),
            (
                "pro",
                "49.00",
                DeploymentKind::Dedicated,
                2,
                4096,
                50,
                Some(24),
                "99.5",
            ),
            (
                "enterprise",
                "99.00",
                DeploymentKind::DedicatedHa,
                4,
                8192,
                100,
                Some(6),
                "99.9",
            ),
        ] {
            let p = plan("odoo", code);
            assert_eq!(p.price.amount().to_string(), price, "{code}");
            assert_eq!(p.price.currency().code(), "USD");
            assert_eq!(p.interval, BillingInterval::Month);
            assert_eq!(p.deployment, deployment, "{code}");
            assert_eq!(
                (
                    p.resources.cpu_cores,
                    p.resources.memory_mib,
                    p.resources.storage_gib
                ),
                (cpu, mem, disk)
            );
            assert_eq!(p.backup_schedule.interval_hours(), backup, "{code}");
            assert_eq!(p.sla_percent.unwrap().get().to_string(), sla, "{code}");
        }
        let inventory = &specs[1];
        assert_eq!(inventory.driver, DriverKind::Docker);
        let ports = inventory.dedicated_ports.unwrap();
        assert_eq!((ports.start().get(), ports.end().get()), (8100, 8199));
        assert!(plan("inventory", "free").price.amount().is_zero());
        for (code, deployment) in [
            ("free", DeploymentKind::Shared),
            ("starter", DeploymentKind::Shared),
            ("business", DeploymentKind::Shared),
            ("enterprise", DeploymentKind::Dedicated),
            ("lifetime", DeploymentKind::Dedicated),
        ] {
            assert_eq!(plan("inventory", code).deployment, deployment, "{code}");
        }
        assert_eq!(
            plan("inventory", "lifetime").interval,
            BillingInterval::Lifetime
        );
        // Every paid monthly plan has a `<code>-yearly` twin at ten times the price.
        for product in &specs {
            for monthly in product
                .plans
                .iter()
                .filter(|p| p.interval == BillingInterval::Month && !p.price.amount().is_zero())
            {
                let yearly = plan(product.slug.as_str(), &format!("{}-yearly", monthly.code));
                assert_eq!(yearly.interval, BillingInterval::Year);
                assert_eq!(
                    yearly.price.amount(),
                    monthly.price.amount() * rust_decimal::Decimal::TEN
                );
                assert_eq!(yearly.deployment, monthly.deployment);
                assert_eq!(yearly.tier_rank, monthly.tier_rank);
            }
        }
    }

    #[test]
    fn errors_name_the_field() {
        let dir = std::env::temp_dir().join(format!("tenantry-cat-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        let f = dir.join("c.json");
        std::fs::write(&f, r#"{"products":[{"slug":"odoo","name":"Odoo","driver":"proxmox","lxc_template":"t","internal_port":1,"plans":[{"code":"x","name":"X","tier_rank":1,"price":"1.00","currency":"USD","interval":"week","deployment":"shared","cpu_cores":1,"memory_mib":512,"storage_gib":1,"backup_schedule":"none"}]}]}"#).unwrap();
        let err = read(&f).unwrap_err().to_string();
        assert!(err.contains("products[0].plans[0].interval"), "{err}");
        std::fs::write(&f, r#"{"products":[{"slug":"odoo","colour":"red"}]}"#).unwrap();
        let err = read(&f).unwrap_err().to_string();
        assert!(
            err.contains("products[0]") && err.contains("colour"),
            "{err}"
        );
        std::fs::remove_dir_all(dir).unwrap();
    }
}
