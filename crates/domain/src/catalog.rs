//! The catalog: products we host and the plans they are sold on.
//!
//! [`ProductInput`] / [`PlanInput`] are what an operator writes (a catalog file
//! or, later, the admin API); [`ProductInput::validate`] turns them into a
//! [`ProductSpec`] whose every field is a validated type, or lists every
//! broken rule with its field path.

use std::{collections::BTreeMap, fmt, num::NonZeroU32};

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use crate::{Currency, Money, Slug, ValidationErrors};

string_enum! {
    /// Which provisioning driver runs a product's instances.
    DriverKind {
        /// LXC containers on Proxmox VE nodes.
        Proxmox => "proxmox",
        /// Containers or compose stacks on Docker hosts.
        Docker => "docker",
    }
}

string_enum! {
    /// How often a plan bills: calendar months or years from the anchor, or once.
    BillingInterval {
        /// Every calendar month from the billing anchor.
        Month => "month",
        /// Every calendar year from the billing anchor.
        Year => "year",
        /// Paid once; the period never ends.
        Lifetime => "lifetime",
    }
}

string_enum! {
    /// Where a plan's tenants run.
    DeploymentKind {
        /// A database of its own inside the product's shared instance.
        Shared => "shared",
        /// A container of its own.
        Dedicated => "dedicated",
        /// A container of its own with a standby on another node.
        DedicatedHa => "dedicated_ha",
    }
}

impl DeploymentKind {
    /// True for the kinds that give a tenant its own container (and host port).
    pub fn is_dedicated(&self) -> bool {
        matches!(self, Self::Dedicated | Self::DedicatedHa)
    }
}

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

/// A TCP port a tenant may be exposed on: 1024–65535 (unprivileged, so no
/// clash with a node's own services).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Port(u16);

impl Port {
    /// Lowest port accepted.
    pub const MIN: u16 = 1024;

    /// Validates a port number.
    ///
    /// # Errors
    /// A message when `n` is outside 1024–65535.
    pub fn parse(n: i64) -> Result<Self, String> {
        u16::try_from(n)
            .ok()
            .filter(|p| *p >= Self::MIN)
            .map(Self)
            .ok_or_else(|| format!("must be a port between {} and 65535 (got {n})", Self::MIN))
    }

    /// The port number.
    pub fn get(&self) -> u16 {
        self.0
    }
}

/// An inclusive range of host ports, `start ≤ end`, both within 1024–65535.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PortRange {
    start: Port,
    end: Port,
}

impl PortRange {
    /// Validates a range.
    ///
    /// # Errors
    /// A message when `start > end`.
    pub fn new(start: Port, end: Port) -> Result<Self, String> {
        if start > end {
            return Err(format!(
                "start ({}) must not be greater than end ({})",
                start.get(),
                end.get()
            ));
        }
        Ok(Self { start, end })
    }

    /// First port of the range.
    pub fn start(&self) -> Port {
        self.start
    }

    /// Last port of the range (inclusive).
    pub fn end(&self) -> Port {
        self.end
    }

    /// How many ports the range holds.
    pub fn len(&self) -> u32 {
        u32::from(self.end.get()) - u32::from(self.start.get()) + 1
    }

    /// Always false: a valid range holds at least one port.
    pub fn is_empty(&self) -> bool {
        false
    }
}

/// How often a tenant's data is backed up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BackupSchedule {
    /// No scheduled backups.
    None,
    /// One backup every N hours.
    EveryHours(NonZeroU32),
}

impl BackupSchedule {
    /// Parses `none`, `hourly`, `daily`, `weekly` or `<N>h` (e.g. `6h`).
    ///
    /// # Errors
    /// A message listing the accepted forms.
    pub fn parse(s: &str) -> Result<Self, String> {
        let hours = match s {
            "none" => return Ok(Self::None),
            "hourly" => 1,
            "daily" => 24,
            "weekly" => 168,
            other => other
                .strip_suffix('h')
                .and_then(|n| n.parse::<u32>().ok())
                .ok_or_else(|| {
                    format!("{other:?} is not a schedule: use none, hourly, daily, weekly or <hours>h such as 6h")
                })?,
        };
        NonZeroU32::new(hours)
            .map(Self::EveryHours)
            .ok_or_else(|| "the interval must be at least 1 hour".to_owned())
    }

    /// Hours between backups, `None` when there are none.
    pub fn interval_hours(&self) -> Option<u32> {
        match self {
            Self::None => None,
            Self::EveryHours(h) => Some(h.get()),
        }
    }
}

impl fmt::Display for BackupSchedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.interval_hours() {
            None => f.write_str("none"),
            Some(1) => f.write_str("hourly"),
            Some(24) => f.write_str("daily"),
            Some(168) => f.write_str("weekly"),
            Some(h) => write!(f, "{h}h"),
        }
    }
}

/// An availability target in percent, `0 < sla ≤ 100`, e.g. 99.9.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SlaPercent(Decimal);

impl SlaPercent {
    /// Validates an SLA percentage (at most 3 decimal places: 99.999).
    ///
    /// # Errors
    /// A message when out of range or too precise.
    pub fn parse(d: Decimal) -> Result<Self, String> {
        if d <= Decimal::ZERO || d > Decimal::ONE_HUNDRED {
            return Err(format!("must be greater than 0 and at most 100 (got {d})"));
        }
        if d.normalize().scale() > 3 {
            return Err("at most 3 decimal places".into());
        }
        Ok(Self(d.normalize()))
    }

    /// The percentage.
    pub fn get(&self) -> Decimal {
        self.0
    }
}

/// The compute a plan reserves on a node: whole cores, memory in MiB, disk in GiB.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Resources {
    /// CPU cores (Proxmox `cores`, Docker `NanoCpus / 1e9`), at least 1.
    pub cpu_cores: u32,
    /// Memory in MiB (Proxmox `memory`), at least 128.
    pub memory_mib: u32,
    /// Root disk in GiB (Proxmox `rootfs` size), at least 1.
    pub storage_gib: u32,
}

impl Resources {
    /// Smallest memory a plan may reserve, in MiB.
    pub const MIN_MEMORY_MIB: u32 = 128;

    fn validate(cpu: i64, mem: i64, disk: i64, errors: &mut ValidationErrors) -> Option<Self> {
        let cpu_cores = errors.check("cpu_cores", bounded(cpu, 1, 512));
        let memory_mib = errors.check(
            "memory_mib",
            bounded(mem, i64::from(Self::MIN_MEMORY_MIB), 4 * 1024 * 1024),
        );
        let storage_gib = errors.check("storage_gib", bounded(disk, 1, 1024 * 1024));
        Some(Self {
            cpu_cores: cpu_cores?,
            memory_mib: memory_mib?,
            storage_gib: storage_gib?,
        })
    }
}

fn bounded(n: i64, min: i64, max: i64) -> Result<u32, String> {
    if (min..=max).contains(&n) {
        u32::try_from(n).map_err(|e| e.to_string())
    } else {
        Err(format!("must be between {min} and {max} (got {n})"))
    }
}

fn name(s: &str) -> Result<String, String> {
    let trimmed = s.trim();
    if trimmed.is_empty() || trimmed.chars().count() > 100 {
        Err("must be 1 to 100 characters".into())
    } else {
        Ok(trimmed.to_owned())
    }
}

fn non_blank(s: &str) -> Result<String, String> {
    if s.trim().is_empty() || s.len() > 255 {
        Err("must be 1 to 255 characters".into())
    } else {
        Ok(s.trim().to_owned())
    }
}

/// Settings of a product's shared instance: how many tenants one holds and
/// what it reserves on its node.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct SharedInstanceInput {
    /// Most tenants one shared instance holds before another is created.
    pub max_tenants: i64,
    /// Cores reserved for the shared instance.
    pub cpu_cores: i64,
    /// Memory reserved for the shared instance, MiB.
    pub memory_mib: i64,
    /// Disk reserved for the shared instance, GiB.
    pub storage_gib: i64,
}

/// An inclusive host port range as written.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct PortRangeInput {
    /// First port.
    pub start: i64,
    /// Last port (inclusive).
    pub end: i64,
}

/// A product as an operator writes it.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct ProductInput {
    /// Product slug, e.g. `odoo`.
    pub slug: String,
    /// Display name.
    pub name: String,
    /// Optional description.
    #[serde(default)]
    pub description: Option<String>,
    /// `proxmox` or `docker`.
    pub driver: String,
    /// Proxmox `ostemplate` volume id (`storage:vztmpl/file`), for `proxmox` products.
    #[serde(default)]
    pub lxc_template: Option<String>,
    /// Docker image reference, for `docker` products built from one image.
    #[serde(default)]
    pub image: Option<String>,
    /// Name of a compose stack under `docker/stacks/`, for `docker` products built from a stack.
    #[serde(default)]
    pub compose_stack: Option<String>,
    /// Port the app listens on inside its container.
    pub internal_port: i64,
    /// Shared instance settings; required when a plan is `shared`.
    #[serde(default)]
    pub shared: Option<SharedInstanceInput>,
    /// Host ports for dedicated tenants; required when a plan is dedicated.
    #[serde(default)]
    pub dedicated_ports: Option<PortRangeInput>,
    /// Docker: the app's environment, `NAME = "template"`; templates may use
    /// `{{tenant_slug}}`, `{{db_name}}`, `{{db_user}}`, `{{db_password}}`,
    /// `{{db_host}}`, `{{db_port}}` and `{{public_url}}`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub env: BTreeMap<String, String>,
    /// Docker: named volumes, `name = "/mount/path"` (kept when a container
    /// is replaced, removed when the tenant is deleted).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub volumes: BTreeMap<String, String>,
    /// Docker compose stacks: the service that serves the app (gets the
    /// host port and the environment); default `app`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stack_service: Option<String>,
    /// The product's plans.
    #[serde(default)]
    pub plans: Vec<PlanInput>,
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

/// Where a product's image comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Artifact {
    /// A Proxmox `ostemplate` volume id.
    LxcTemplate(String),
    /// A Docker image reference.
    Image(String),
    /// A compose stack directory name.
    ComposeStack(String),
}

/// Validated shared instance settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SharedInstance {
    /// Most tenants per shared instance, at least 1.
    pub max_tenants: u32,
    /// What one shared instance reserves.
    pub resources: Resources,
}

/// A validated product with its plans.
#[derive(Debug, Clone, PartialEq)]
pub struct ProductSpec {
    /// Slug.
    pub slug: Slug,
    /// Display name.
    pub name: String,
    /// Description.
    pub description: Option<String>,
    /// Driver.
    pub driver: DriverKind,
    /// LXC template, image or compose stack (matches the driver).
    pub artifact: Artifact,
    /// Port the app listens on inside its container.
    pub internal_port: u16,
    /// Shared instance settings.
    pub shared: Option<SharedInstance>,
    /// Host ports for dedicated tenants.
    pub dedicated_ports: Option<PortRange>,
    /// Docker: environment templates by variable name.
    pub env: BTreeMap<String, String>,
    /// Docker: named volumes and their mount paths.
    pub volumes: BTreeMap<String, String>,
    /// Docker compose: the service serving the app.
    pub stack_service: Option<String>,
    /// Plans, codes unique.
    pub plans: Vec<PlanSpec>,
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

impl ProductInput {
    /// Validates a product and its plans, including the rules that span
    /// fields: the artifact matches the driver, plan codes are unique, a
    /// shared plan needs shared settings and a dedicated plan a port range.
    ///
    /// # Errors
    /// Every broken rule, with paths such as `plans[2].price`.
    pub fn validate(&self) -> Result<ProductSpec, ValidationErrors> {
        let mut e = ValidationErrors::new();
        let slug = e.check("slug", Slug::parse(&self.slug));
        let name = e.check("name", name(&self.name));
        let description = match &self.description {
            Some(d) if d.len() > 2000 => {
                e.push("description", "must be at most 2000 bytes");
                None
            }
            d => Some(d.clone()),
        };
        let driver = e.check("driver", self.driver.parse::<DriverKind>());
        let artifact = driver.and_then(|d| self.artifact(d, &mut e));
        let internal_port = e.check(
            "internal_port",
            u16::try_from(self.internal_port)
                .ok()
                .filter(|p| *p > 0)
                .ok_or_else(|| format!("must be between 1 and 65535 (got {})", self.internal_port)),
        );
        let shared = match &self.shared {
            None => Some(None),
            Some(s) => {
                let mut se = ValidationErrors::new();
                let max = se.check("max_tenants", bounded(s.max_tenants, 1, 100_000));
                let res = Resources::validate(s.cpu_cores, s.memory_mib, s.storage_gib, &mut se);
                e.nest("shared", se);
                max.zip(res).map(|(max_tenants, resources)| {
                    Some(SharedInstance {
                        max_tenants,
                        resources,
                    })
                })
            }
        };
        let dedicated_ports = match &self.dedicated_ports {
            None => Some(None),
            Some(r) => {
                let start = e.check("dedicated_ports.start", Port::parse(r.start));
                let end = e.check("dedicated_ports.end", Port::parse(r.end));
                start
                    .zip(end)
                    .and_then(|(s, t)| e.check("dedicated_ports", PortRange::new(s, t)))
                    .map(Some)
            }
        };
        self.docker_settings(driver, &mut e);
        let mut plans = Vec::with_capacity(self.plans.len());
        for (i, p) in self.plans.iter().enumerate() {
            let path = format!("plans[{i}]");
            if self.plans[..i].iter().any(|q| q.code == p.code) {
                e.push(
                    format!("{path}.code"),
                    format!("duplicate plan code {:?}", p.code),
                );
            }
            match p.validate() {
                Ok(plan) => {
                    if plan.deployment == DeploymentKind::Shared && self.shared.is_none() {
                        e.push(
                            format!("{path}.deployment"),
                            "a shared plan needs the product's `shared` settings",
                        );
                    }
                    if plan.deployment.is_dedicated() && self.dedicated_ports.is_none() {
                        e.push(
                            format!("{path}.deployment"),
                            "a dedicated plan needs the product's `dedicated_ports` range",
                        );
                    }
                    plans.push(plan);
                }
                Err(pe) => e.nest(&path, pe),
            }
        }
        e.into_result(|| {
            Some(ProductSpec {
                slug: slug?,
                name: name?,
                description: description?,
                driver: driver?,
                artifact: artifact?,
                internal_port: internal_port?,
                shared: shared?,
                dedicated_ports: dedicated_ports?,
                env: self.env.clone(),
                volumes: self.volumes.clone(),
                stack_service: self.stack_service.clone(),
                plans,
            })
        })
    }

    /// `env`, `volumes` and `stack_service`: Docker products only, with
    /// names Docker and shells accept.
    fn docker_settings(&self, driver: Option<DriverKind>, e: &mut ValidationErrors) {
        let docker = driver == Some(DriverKind::Docker);
        if !docker
            && (!self.env.is_empty() || !self.volumes.is_empty() || self.stack_service.is_some())
        {
            e.push(
                "driver",
                "`env`, `volumes` and `stack_service` are for docker products",
            );
        }
        for (name, value) in &self.env {
            let ok = name
                .chars()
                .next()
                .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
                && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
            if !ok {
                e.push(
                    format!("env.{name}"),
                    "a variable name is letters, digits and `_`, not starting with a digit",
                );
            }
            if value.len() > 4096 {
                e.push(format!("env.{name}"), "must be at most 4096 bytes");
            }
        }
        for (name, path) in &self.volumes {
            let ok = name
                .chars()
                .next()
                .is_some_and(|c| c.is_ascii_alphanumeric())
                && name.len() <= 64
                && name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c));
            if !ok {
                e.push(
                    format!("volumes.{name}"),
                    "a volume name is 1–64 of letters, digits, `_`, `.`, `-`",
                );
            }
            if !path.starts_with('/') || path.contains("..") {
                e.push(
                    format!("volumes.{name}"),
                    "the mount path must be absolute, without `..`",
                );
            }
        }
        if let Some(svc) = &self.stack_service {
            if self.compose_stack.is_none() {
                e.push(
                    "stack_service",
                    "only for products built from a `compose_stack`",
                );
            }
            let ok = !svc.is_empty()
                && svc
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c));
            if !ok {
                e.push(
                    "stack_service",
                    "a compose service name is letters, digits, `_`, `.`, `-`",
                );
            }
        }
    }

    fn artifact(&self, driver: DriverKind, e: &mut ValidationErrors) -> Option<Artifact> {
        let given = |o: &Option<String>| o.as_deref().map(non_blank);
        match driver {
            DriverKind::Proxmox => {
                if self.image.is_some() || self.compose_stack.is_some() {
                    e.push(
                        "driver",
                        "a proxmox product takes `lxc_template`, not `image` or `compose_stack`",
                    );
                    return None;
                }
                match given(&self.lxc_template) {
                    None => {
                        e.push("lxc_template", "required for a proxmox product (an ostemplate volume id such as local:vztmpl/debian-12-standard_12.7-1_amd64.tar.zst)");
                        None
                    }
                    Some(t) => e.check("lxc_template", t).map(Artifact::LxcTemplate),
                }
            }
            DriverKind::Docker => {
                if self.lxc_template.is_some() {
                    e.push(
                        "driver",
                        "a docker product takes `image` or `compose_stack`, not `lxc_template`",
                    );
                    return None;
                }
                match (given(&self.image), given(&self.compose_stack)) {
                    (Some(i), None) => e.check("image", i).map(Artifact::Image),
                    (None, Some(s)) => e.check("compose_stack", s).map(Artifact::ComposeStack),
                    _ => {
                        e.push(
                            "image",
                            "a docker product takes exactly one of `image` or `compose_stack`",
                        );
                        None
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use rust_decimal_macros::dec;

    fn plan(code: &str, deployment: &str) -> PlanInput {
        PlanInput {
            code: code.into(),
            name: "Basic".into(),
            tier_rank: 1,
            price: dec!(29),
            currency: "USD".into(),
            interval: "month".into(),
            deployment: deployment.into(),
            cpu_cores: 1,
            memory_mib: 2048,
            storage_gib: 10,
            backup_schedule: "weekly".into(),
            sla_percent: Some(dec!(99)),
            active: true,
        }
    }

    fn product() -> ProductInput {
        ProductInput {
            slug: "odoo".into(),
            name: "Odoo".into(),
            description: None,
            driver: "proxmox".into(),
            lxc_template: Some("local:vztmpl/odoo.tar.zst".into()),
            image: None,
            compose_stack: None,
            internal_port: 8069,
            shared: Some(SharedInstanceInput {
                max_tenants: 50,
                cpu_cores: 4,
                memory_mib: 8192,
                storage_gib: 100,
            }),
            dedicated_ports: Some(PortRangeInput {
                start: 8200,
                end: 8299,
            }),
            env: BTreeMap::new(),
            volumes: BTreeMap::new(),
            stack_service: None,
            plans: vec![plan("basic", "shared"), plan("pro", "dedicated")],
        }
    }

    #[test]
    fn docker_settings_are_for_docker_products_and_checked() {
        let mut p = product();
        p.env.insert("DB".into(), "{{db_name}}".into());
        assert_eq!(paths(p.validate().unwrap_err()), ["driver"]);
        let mut d = product();
        d.driver = "docker".into();
        d.lxc_template = None;
        d.image = Some("app:1".into());
        d.env.insert("DB_NAME".into(), "{{db_name}}".into());
        d.env.insert("1BAD".into(), "x".into());
        d.volumes.insert("data".into(), "/var/lib/app".into());
        d.volumes.insert("logs".into(), "relative".into());
        d.stack_service = Some("web".into());
        assert_eq!(
            paths(d.validate().unwrap_err()),
            ["env.1BAD", "volumes.logs", "stack_service"]
        );
        d.env.remove("1BAD");
        d.volumes.remove("logs");
        d.stack_service = None;
        let spec = d.validate().unwrap();
        assert_eq!(spec.env["DB_NAME"], "{{db_name}}");
        assert_eq!(spec.volumes["data"], "/var/lib/app");
    }

    fn paths(e: ValidationErrors) -> Vec<String> {
        e.errors().iter().map(|f| f.path.clone()).collect()
    }

    #[test]
    fn a_valid_product_validates() {
        let spec = product().validate().unwrap();
        assert_eq!(spec.slug.as_str(), "odoo");
        assert_eq!(spec.plans.len(), 2);
        assert_eq!(spec.plans[0].price.amount(), dec!(29.00));
        assert_eq!(spec.dedicated_ports.unwrap().len(), 100);
    }

    #[test]
    fn every_broken_field_is_named() {
        let mut p = product();
        p.slug = "Odoo!".into();
        p.dedicated_ports = Some(PortRangeInput {
            start: 9000,
            end: 8000,
        });
        p.plans[0].price = dec!(-1);
        p.plans[1].currency = "usd".into();
        p.plans[1].memory_mib = 1;
        p.plans.push(plan("basic", "shared"));
        assert_eq!(
            paths(p.validate().unwrap_err()),
            [
                "slug",
                "dedicated_ports",
                "plans[0].price",
                "plans[1].currency",
                "plans[1].memory_mib",
                "plans[2].code"
            ]
        );
    }

    #[test]
    fn ports_must_be_unprivileged() {
        let mut p = product();
        p.dedicated_ports = Some(PortRangeInput {
            start: 80,
            end: 70_000,
        });
        assert_eq!(
            paths(p.validate().unwrap_err()),
            ["dedicated_ports.start", "dedicated_ports.end"]
        );
    }

    #[test]
    fn artifact_must_match_driver() {
        let mut p = product();
        p.lxc_template = None;
        assert_eq!(paths(p.validate().unwrap_err()), ["lxc_template"]);
        let mut d = product();
        d.driver = "docker".into();
        d.lxc_template = None;
        assert_eq!(paths(d.validate().unwrap_err()), ["image"]);
        d.image = Some("inventory:latest".into());
        assert_eq!(
            d.validate().unwrap().artifact,
            Artifact::Image("inventory:latest".into())
        );
        d.compose_stack = Some("inventory".into());
        assert_eq!(paths(d.validate().unwrap_err()), ["image"]);
    }

    #[test]
    fn deployments_need_their_product_settings() {
        let mut p = product();
        p.shared = None;
        p.dedicated_ports = None;
        assert_eq!(
            paths(p.validate().unwrap_err()),
            ["plans[0].deployment", "plans[1].deployment"]
        );
    }

    #[test]
    fn backup_schedules_parse_and_print_canonically() {
        for (text, hours, canonical) in [
            ("none", None, "none"),
            ("daily", Some(24), "daily"),
            ("24h", Some(24), "daily"),
            ("weekly", Some(168), "weekly"),
            ("6h", Some(6), "6h"),
        ] {
            let s = BackupSchedule::parse(text).unwrap();
            assert_eq!(s.interval_hours(), hours);
            assert_eq!(s.to_string(), canonical);
        }
        for bad in ["0h", "often", "h", "-1h"] {
            assert!(BackupSchedule::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn sla_is_a_percentage() {
        assert!(SlaPercent::parse(dec!(99.9)).is_ok());
        assert!(SlaPercent::parse(dec!(100)).is_ok());
        assert!(SlaPercent::parse(dec!(0)).is_err());
        assert!(SlaPercent::parse(dec!(100.1)).is_err());
        assert!(SlaPercent::parse(dec!(99.9999)).is_err());
    }

    proptest! {
        #[test]
        fn port_range_accepts_exactly_ordered_unprivileged_pairs(a in 0i64..70_000, b in 0i64..70_000) {
            let ok = (1024..=65535).contains(&a) && (1024..=65535).contains(&b) && a <= b;
            let r = Port::parse(a).and_then(|s| Port::parse(b).and_then(|e| PortRange::new(s, e)));
            prop_assert_eq!(r.is_ok(), ok);
            if let Ok(r) = r {
                prop_assert_eq!(i64::from(r.len()), b - a + 1);
            }
        }

        #[test]
        fn plan_codes_round_trip(s in "[a-z0-9][a-z0-9_-]{0,62}") {
            let code = PlanCode::parse(&s).unwrap();
            prop_assert_eq!(code.as_str(), s.as_str());
        }

        #[test]
        fn enums_round_trip(i in 0usize..3) {
            let d = DeploymentKind::ALL[i];
            prop_assert_eq!(d.as_str().parse::<DeploymentKind>(), Ok(d));
            let b = BillingInterval::ALL[i];
            prop_assert_eq!(b.as_str().parse::<BillingInterval>(), Ok(b));
        }
    }
}

/// A whole catalog as a file holds it: `[[products]]` with their `[[products.plans]]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CatalogInput {
    /// The products.
    pub products: Vec<ProductInput>,
}

impl CatalogInput {
    /// Validates every product; product slugs must be unique in the file.
    ///
    /// # Errors
    /// Every broken rule, with paths such as `products[1].plans[0].price`.
    pub fn validate(&self) -> Result<Vec<ProductSpec>, ValidationErrors> {
        let mut e = ValidationErrors::new();
        let mut specs: Vec<ProductSpec> = Vec::with_capacity(self.products.len());
        for (i, p) in self.products.iter().enumerate() {
            if self.products[..i].iter().any(|q| q.slug == p.slug) {
                e.push(
                    format!("products[{i}].slug"),
                    format!("duplicate product slug {:?}", p.slug),
                );
            }
            match p.validate() {
                Ok(spec) => specs.push(spec),
                Err(pe) => e.nest(&format!("products[{i}]"), pe),
            }
        }
        e.into_result(|| Some(specs))
    }
}
