//! A product: what we host — its driver and LXC template, Docker image or
//! compose stack, its shared instance settings and dedicated host ports,
//! Docker environment and volumes, and its plans — as an operator writes it
//! ([`ProductInput`]) and validated ([`ProductSpec`]).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::rules::{bounded, name, non_blank};
use super::{DeploymentKind, DriverKind, PlanInput, PlanSpec, Port, PortRange, Resources};
use crate::{Slug, ValidationErrors};

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
    /// Database connections one tenant may hold at once (its role's
    /// `CONNECTION LIMIT`), 1–10,000; absent: 20.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant_connection_limit: Option<i64>,
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
    /// Database connections one tenant may hold at once, as declared.
    pub tenant_connection_limit: Option<u32>,
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
                let limit = match s.tenant_connection_limit {
                    None => Some(None),
                    Some(n) => se
                        .check("tenant_connection_limit", bounded(n, 1, 10_000))
                        .map(Some),
                };
                e.nest("shared", se);
                max.zip(res).zip(limit).map(
                    |((max_tenants, resources), tenant_connection_limit)| {
                        Some(SharedInstance {
                            max_tenants,
                            resources,
                            tenant_connection_limit,
                        })
                    },
                )
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
