//! What a spec becomes on the engine: labels, names, the container body,
//! and the product's environment template filled in for one tenant.

use std::collections::{BTreeMap, HashMap};

use bollard::models::{
    ContainerCreateBody, HealthConfig, HostConfig, Mount, MountType, MountVolumeOptions,
    PortBinding, RestartPolicy, RestartPolicyNameEnum,
};
use secrecy::{ExposeSecret, SecretString};

use crate::{DriverError, InstanceSpec};

/// Label holding our instance id on every container, volume and network we
/// make; what every operation finds its containers by.
pub const LABEL_INSTANCE: &str = "tenantry.instance";
/// Label holding the tenant (its id or slug; `shared` on a shared
/// instance). Required in [`InstanceSpec::labels`].
pub const LABEL_TENANT: &str = "tenantry.tenant";
/// Label holding the product (slug). Required in [`InstanceSpec::labels`].
pub const LABEL_PRODUCT: &str = "tenantry.product";
/// Label marking the product's own container of an instance (the single
/// container, or the stack's product service): the one that gets the host
/// port, the resources and the readiness check.
pub const LABEL_MAIN: &str = "tenantry.main";
/// The label docker-compose puts on a project's containers, networks and
/// volumes.
pub(crate) const COMPOSE_PROJECT: &str = "com.docker.compose.project";
/// The label docker-compose puts on a service's containers.
pub(crate) const COMPOSE_SERVICE: &str = "com.docker.compose.service";

/// The container (and compose project) name of an instance:
/// `tenantry-<hostname>`.
#[must_use]
pub fn container_name(hostname: &str) -> String {
    format!("tenantry-{hostname}")
}

/// Whether `name` is a DNS label (what a hostname, a container name suffix
/// and a compose project name all accept).
pub(crate) fn valid_label(name: &str) -> bool {
    tenantry_domain::slug::is_dns_label(name)
}

/// Checks what every Docker instance needs.
///
/// # Errors
/// `Failed` naming what is missing or malformed.
pub(crate) fn validate(spec: &InstanceSpec) -> Result<(), DriverError> {
    let bad = |why: String| {
        Err(DriverError::Failed {
            reason: format!("instance {}: {why}", spec.instance_id),
        })
    };
    if !valid_label(&spec.hostname) {
        return bad(format!("hostname {:?} is not a DNS label", spec.hostname));
    }
    for label in [LABEL_TENANT, LABEL_PRODUCT] {
        if spec.labels.get(label).is_none_or(String::is_empty) {
            return bad(format!("label {label} is required"));
        }
    }
    if spec.labels.contains_key(LABEL_INSTANCE) {
        return bad(format!("label {LABEL_INSTANCE} is the driver's own"));
    }
    if spec.stack.is_none() && spec.artifact.is_empty() {
        return bad("no image".into());
    }
    if spec.host_port.is_some() && spec.internal_port.is_none() {
        return bad("a host port needs an internal port".into());
    }
    for (name, path) in &spec.volumes {
        if !valid_label(name) || !path.starts_with('/') {
            return bad(format!(
                "volume {name:?} → {path:?}: a DNS-label name and an absolute path"
            ));
        }
    }
    for key in spec.env.keys() {
        if key.is_empty() || key.contains('=') || key.contains('\0') {
            return bad(format!("environment variable name {key:?}"));
        }
    }
    Ok(())
}

/// Every label an instance's objects carry: the spec's plus ours.
pub(crate) fn labels(spec: &InstanceSpec) -> HashMap<String, String> {
    let mut labels: HashMap<String, String> = spec
        .labels
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    labels.insert(LABEL_INSTANCE.into(), spec.instance_id.to_string());
    labels
}

/// The name of a named data volume: `tenantry-<hostname>-<name>`.
pub(crate) fn volume_name(hostname: &str, name: &str) -> String {
    format!("tenantry-{hostname}-{name}")
}

/// `POST /containers/create` for a single-image instance: the image, the
/// environment, our labels, the internal port published on the host port
/// (on `publish_ip`, all addresses when empty), the named volumes (created
/// by the engine on first use, with our labels), CPU and memory limits, and
/// `unless-stopped` so a tenant's app comes back after an engine restart
/// but stays down when paused.
pub(crate) fn create_body(spec: &InstanceSpec, publish_ip: &str) -> ContainerCreateBody {
    let labels = labels(spec);
    let port_key = spec.internal_port.map(|p| format!("{p}/tcp"));
    let port_bindings = match (&port_key, spec.host_port) {
        (Some(key), Some(host)) => Some(HashMap::from([(
            key.clone(),
            Some(vec![PortBinding {
                host_ip: (!publish_ip.is_empty()).then(|| publish_ip.to_owned()),
                host_port: Some(host.to_string()),
            }]),
        )])),
        _ => None,
    };
    let mounts: Vec<Mount> = spec
        .volumes
        .iter()
        .map(|(name, path)| Mount {
            target: Some(path.clone()),
            source: Some(volume_name(&spec.hostname, name)),
            typ: Some(MountType::VOLUME),
            volume_options: Some(MountVolumeOptions {
                labels: Some(labels.clone()),
                ..Default::default()
            }),
            ..Default::default()
        })
        .collect();
    ContainerCreateBody {
        hostname: Some(spec.hostname.clone()),
        image: Some(spec.artifact.clone()),
        env: Some(spec.env.iter().map(|(k, v)| format!("{k}={v}")).collect()),
        labels: Some(labels),
        exposed_ports: port_key.map(|k| vec![k]),
        host_config: Some(HostConfig {
            port_bindings,
            mounts: (!mounts.is_empty()).then_some(mounts),
            nano_cpus: Some(i64::from(spec.resources.cpu_cores) * 1_000_000_000),
            memory: Some(i64::from(spec.resources.memory_mib) << 20),
            restart_policy: Some(restart_policy(spec.high_availability)),
            ..Default::default()
        }),
        healthcheck: spec.health_check.as_ref().map(|cmd| HealthConfig {
            test: Some(
                std::iter::once("CMD".to_owned())
                    .chain(cmd.iter().cloned())
                    .collect(),
            ),
            interval: Some(10_000_000_000),
            timeout: Some(5_000_000_000),
            retries: Some(3),
            start_period: Some(30_000_000_000),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// `always` for a highly available instance (the engine restarts it after
/// a crash, a `docker stop` and a daemon restart), else `unless-stopped`
/// (back after an engine restart, down while paused).
pub(crate) fn restart_policy(high_availability: bool) -> RestartPolicy {
    RestartPolicy {
        name: Some(if high_availability {
            RestartPolicyNameEnum::ALWAYS
        } else {
            RestartPolicyNameEnum::UNLESS_STOPPED
        }),
        maximum_retry_count: None,
    }
}

/// What a product's environment template may refer to, for one tenant on
/// one instance.
#[derive(Clone)]
pub struct TemplateVars {
    /// The tenant's slug (its subdomain).
    pub tenant_slug: String,
    /// The tenant's own database.
    pub db_name: String,
    /// The tenant's database role.
    pub db_user: String,
    /// That role's password.
    pub db_password: SecretString,
    /// Database server host and port as the container reaches them.
    pub db_host: String,
    /// Database server port.
    pub db_port: u16,
    /// The URL the tenant reaches the app at (`https://acme.example.com`).
    pub public_url: String,
}

impl std::fmt::Debug for TemplateVars {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TemplateVars")
            .field("tenant_slug", &self.tenant_slug)
            .field("db_name", &self.db_name)
            .field("db_user", &self.db_user)
            .field("db_host", &self.db_host)
            .field("db_port", &self.db_port)
            .field("public_url", &self.public_url)
            .finish_non_exhaustive()
    }
}

/// Fills a product's environment template for one tenant: each value may
/// hold `{{tenant_slug}}`, `{{db_name}}`, `{{db_user}}`, `{{db_password}}`,
/// `{{db_host}}`, `{{db_port}}`, `{{public_url}}`; the result goes in
/// [`InstanceSpec::env`].
///
/// # Errors
/// `Failed` for an unknown or unclosed placeholder (naming the variable,
/// never a value).
pub fn render_env(
    template: &BTreeMap<String, String>,
    vars: &TemplateVars,
) -> Result<BTreeMap<String, String>, DriverError> {
    let port = vars.db_port.to_string();
    let lookup = |name: &str| -> Option<&str> {
        Some(match name {
            "tenant_slug" => &vars.tenant_slug,
            "db_name" => &vars.db_name,
            "db_user" => &vars.db_user,
            "db_password" => vars.db_password.expose_secret(),
            "db_host" => &vars.db_host,
            "db_port" => &port,
            "public_url" => &vars.public_url,
            _ => return None,
        })
    };
    let mut out = BTreeMap::new();
    for (key, value) in template {
        let mut rendered = String::with_capacity(value.len());
        let mut rest = value.as_str();
        while let Some(start) = rest.find("{{") {
            rendered.push_str(&rest[..start]);
            let after = &rest[start + 2..];
            let end = after.find("}}").ok_or_else(|| DriverError::Failed {
                reason: format!("environment template {key}: unclosed {{{{"),
            })?;
            let name = after[..end].trim();
            let value = lookup(name).ok_or_else(|| DriverError::Failed {
                reason: format!("environment template {key}: unknown variable {name:?}"),
            })?;
            rendered.push_str(value);
            rest = &after[end + 2..];
        }
        rendered.push_str(rest);
        out.insert(key.clone(), rendered);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use tenantry_domain::catalog::Resources;
    use uuid::Uuid;

    use super::*;

    fn spec() -> InstanceSpec {
        InstanceSpec {
            instance_id: Uuid::new_v4(),
            hostname: "acme".into(),
            resources: Resources {
                cpu_cores: 2,
                memory_mib: 512,
                storage_gib: 4,
            },
            swap_mib: 0,
            artifact: "odoo:17".into(),
            internal_port: Some(8069),
            host_port: Some(20001),
            env: BTreeMap::from([("DB_PASSWORD".into(), "hunter2".into())]),
            labels: BTreeMap::from([
                (LABEL_TENANT.into(), "acme".into()),
                (LABEL_PRODUCT.into(), "odoo".into()),
            ]),
            volumes: BTreeMap::from([("data".into(), "/var/lib/odoo".into())]),
            stack: None,
            high_availability: false,
            health_check: None,
        }
    }

    #[test]
    fn the_body_carries_labels_port_volumes_and_limits() {
        let s = spec();
        let body = create_body(&s, "");
        let labels = body.labels.unwrap();
        assert_eq!(labels[LABEL_INSTANCE], s.instance_id.to_string());
        assert_eq!(labels[LABEL_TENANT], "acme");
        assert_eq!(body.exposed_ports.unwrap(), ["8069/tcp"]);
        let host = body.host_config.unwrap();
        let binding = &host.port_bindings.unwrap()["8069/tcp"];
        assert_eq!(
            binding.as_ref().unwrap()[0].host_port.as_deref(),
            Some("20001")
        );
        assert_eq!(host.nano_cpus, Some(2_000_000_000));
        assert_eq!(host.memory, Some(512 << 20));
        let mount = &host.mounts.unwrap()[0];
        assert_eq!(mount.source.as_deref(), Some("tenantry-acme-data"));
        assert_eq!(body.env.unwrap(), ["DB_PASSWORD=hunter2"]);
    }

    #[test]
    fn specs_without_tenant_or_product_labels_are_refused() {
        assert!(validate(&spec()).is_ok());
        let mut s = spec();
        s.labels.remove(LABEL_PRODUCT);
        let err = validate(&s).unwrap_err().to_string();
        assert!(err.contains(LABEL_PRODUCT), "{err}");
        let mut s = spec();
        s.hostname = "Acme Shop".into();
        assert!(validate(&s).is_err());
        let mut s = spec();
        s.labels.insert(LABEL_INSTANCE.into(), "x".into());
        assert!(validate(&s).is_err());
    }

    #[test]
    fn the_debug_of_a_spec_hides_environment_values() {
        let text = format!("{:?}", spec());
        assert!(text.contains("DB_PASSWORD"), "{text}");
        assert!(!text.contains("hunter2"), "{text}");
    }

    #[test]
    fn env_templates_fill_in_the_tenant() {
        let vars = TemplateVars {
            tenant_slug: "acme".into(),
            db_name: "t_acme".into(),
            db_user: "u_acme".into(),
            db_password: SecretString::from("s3cret"),
            db_host: "10.0.0.2".into(),
            db_port: 5432,
            public_url: "https://acme.example.com".into(),
        };
        let template = BTreeMap::from([
            (
                "DATABASE_URL".into(),
                "postgres://{{db_user}}:{{ db_password }}@{{db_host}}:{{db_port}}/{{db_name}}"
                    .into(),
            ),
            ("SITE".into(), "{{public_url}}/?t={{tenant_slug}}".into()),
            ("PLAIN".into(), "no placeholders".into()),
        ]);
        let env = render_env(&template, &vars).unwrap();
        assert_eq!(
            env["DATABASE_URL"],
            "postgres://u_acme:s3cret@10.0.0.2:5432/t_acme"
        );
        assert_eq!(env["SITE"], "https://acme.example.com/?t=acme");
        assert_eq!(env["PLAIN"], "no placeholders");
        let unknown = BTreeMap::from([("X".into(), "{{nope}}".into())]);
        assert!(render_env(&unknown, &vars).is_err());
        let unclosed = BTreeMap::from([("X".into(), "{{db_name".into())]);
        assert!(render_env(&unclosed, &vars).is_err());
        assert!(!format!("{vars:?}").contains("s3cret"));
    }
}
