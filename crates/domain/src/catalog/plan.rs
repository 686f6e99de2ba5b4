//! A plan: what a product is sold on — its code, price per billing
//! interval, deployment kind, reserved resources, backup schedule and SLA —
//! as an operator writes it ([`PlanInput`]) and validated ([`PlanSpec`]).

use std::fmt;

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use super::rules::{bounded, name};
use super::{BackupSchedule, BillingInterval, DeploymentKind, Resources, SlaPercent};
use crate::{Currency, Money, ValidationErrors};

/// A plan's code, unique within its product: 1–63 characters of
/// `[a-z0-9_-]`, starting with a letter or digit (`basic`, `pro-yearly`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PlanCode(String);

impl PlanCode {
    /// Validates a plan code.
    ///
    /// # Errors
    /// A message naming the broken rule.
    pub fn parse(s: &str) -> Result<Self, String> {
        if s.is_empty() || s.len() > 63 {
            return Err(format!("must be 1 to 63 characters long (got {})", s.len()));
        }
        if !s.starts_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit()) {
            return Err("must start with a lowercase letter or a digit".into());
        }
        if let Some(c) = s
            .chars()
            .find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '-' || *c == '_'))
        {
            return Err(format!(
                "may contain only lowercase letters, digits, '-' and '_' (found {c:?})"
            ));
        }
        Ok(Self(s.to_owned()))
    }

    /// The code as a string slice.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl AsRef<str> for PlanCode {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for PlanCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A plan as an operator writes it.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct PlanInput {
    /// Code unique within the product.
    pub code: String,
    /// Display name.
    pub name: String,
    /// Rank among the product's tiers: a higher rank is an upgrade.
    pub tier_rank: i64,
    /// Price per interval as a decimal string in the currency's major unit, e.g. `"29.00"`.
    #[cfg_attr(feature = "openapi", schema(value_type = String, example = "29.00"))]
    pub price: Decimal,
    /// ISO 4217 code, e.g. `USD`.
    pub currency: String,
    /// `month`, `year` or `lifetime`.
    pub interval: String,
    /// `shared`, `dedicated` or `dedicated_ha`.
    pub deployment: String,
    /// CPU cores.
    pub cpu_cores: i64,
    /// Memory, MiB.
    pub memory_mib: i64,
    /// Storage, GiB.
    pub storage_gib: i64,
    /// `none`, `hourly`, `daily`, `weekly` or `<hours>h`.
    pub backup_schedule: String,
    /// Availability target in percent (decimal string); omitted for best effort.
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, example = "99.9"))]
    pub sla_percent: Option<Decimal>,
    /// Whether the plan is offered; inactive plans keep their subscribers.
    #[serde(default = "yes")]
    pub active: bool,
}

fn yes() -> bool {
    true
}

/// A validated plan.
#[derive(Debug, Clone, PartialEq)]
pub struct PlanSpec {
    /// Code unique within the product.
    pub code: PlanCode,
    /// Display name.
    pub name: String,
    /// Tier rank (≥ 0).
    pub tier_rank: u32,
    /// Price per interval, exact to the currency's minor unit, ≥ 0.
    pub price: Money,
    /// Billing interval.
    pub interval: BillingInterval,
    /// Deployment kind.
    pub deployment: DeploymentKind,
    /// Reserved compute.
    pub resources: Resources,
    /// Backup schedule.
    pub backup_schedule: BackupSchedule,
    /// SLA.
    pub sla_percent: Option<SlaPercent>,
    /// Offered to new customers.
    pub active: bool,
}

impl PlanInput {
    /// Validates one plan.
    ///
    /// # Errors
    /// Every broken rule, with paths relative to the plan.
    pub fn validate(&self) -> Result<PlanSpec, ValidationErrors> {
        let mut e = ValidationErrors::new();
        let code = e.check("code", PlanCode::parse(&self.code));
        let name = e.check("name", name(&self.name));
        let tier_rank = e.check("tier_rank", bounded(self.tier_rank, 0, 10_000));
        let currency = e.check("currency", Currency::parse(&self.currency));
        let price = currency.and_then(|c| {
            if self.price.is_sign_negative() && !self.price.is_zero() {
                e.push("price", "must not be negative");
                None
            } else {
                e.check("price", Money::exact(self.price, c))
            }
        });
        let interval = e.check("interval", self.interval.parse::<BillingInterval>());
        let deployment = e.check("deployment", self.deployment.parse::<DeploymentKind>());
        let resources =
            Resources::validate(self.cpu_cores, self.memory_mib, self.storage_gib, &mut e);
        let backup_schedule = e.check(
            "backup_schedule",
            BackupSchedule::parse(&self.backup_schedule),
        );
        let sla_percent = match self.sla_percent {
            None => Some(None),
            Some(d) => e.check("sla_percent", SlaPercent::parse(d)).map(Some),
        };
        e.into_result(|| {
            Some(PlanSpec {
                code: code?,
                name: name?,
                tier_rank: tier_rank?,
                price: price?,
                interval: interval?,
                deployment: deployment?,
                resources: resources?,
                backup_schedule: backup_schedule?,
                sla_percent: sla_percent?,
                active: self.active,
            })
        })
    }
}
