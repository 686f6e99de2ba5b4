//! Compose stacks: each instance is the compose project
//! `tenantry-<hostname>`, started with `up -d` from the product's template
//! and an override file we generate; the template is never written.
//!
//! The CLI is found at run time: `docker-compose` (v1, Python; what Debian
//! 12 ships) when it answers `version`, else the `docker compose` plugin
//! (v2); [`ComposeCli::Command`] names one explicitly. Both take the same
//! `-p`, `--project-directory`, `-f` and `up -d`.
//!
//! The override (JSON, which both versions read as YAML) sets, for every
//! service of the template, a container name (`tenantry-<hostname>` for the
//! product's service, `tenantry-<hostname>-<service>` for the others) and
//! our labels; for the product's service also the environment and
//! `<host port>:<internal port>`; and labels on the project's default
//! network. The instance's environment is also the CLI's, so a template may
//! interpolate `${DB_NAME}` for its other services.
//!
//! Only `up` needs the CLI: start, stop, destroy and status find the
//! project's containers by our label through the engine API, so they work
//! without the override file, which lives in a private temporary directory
//! for the duration of the command (it holds the tenant's database
//! password).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use secrecy::ExposeSecret;
use serde_json::{Map, Value, json};
use tokio::process::Command;

use super::connect::{Endpoint, TlsMaterial};
use super::spec::{LABEL_MAIN, container_name, labels};
use crate::{DriverError, InstanceSpec, StackSpec};

/// The template's file name inside a stack directory.
pub const TEMPLATE_FILE: &str = "docker-compose.yml";

/// Which compose command line to run.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum ComposeCli {
    /// `docker-compose` if it answers `version`, else `docker compose`.
    #[default]
    Auto,
    /// This program and its leading arguments (`["docker", "compose"]`).
    Command(Vec<String>),
}

/// Finds the command line for `cli`.
///
/// # Errors
/// `Failed` when neither `docker-compose` nor `docker compose` answers.
pub(crate) async fn resolve(cli: &ComposeCli) -> Result<Vec<String>, DriverError> {
    if let ComposeCli::Command(cmd) = cli {
        return Ok(cmd.clone());
    }
    for candidate in [vec!["docker-compose"], vec!["docker", "compose"]] {
        let mut cmd = Command::new(candidate[0]);
        cmd.args(&candidate[1..])
            .arg("version")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true);
        if let Ok(Ok(status)) = tokio::time::timeout(Duration::from_secs(20), cmd.status()).await
            && status.success()
        {
            return Ok(candidate.into_iter().map(str::to_owned).collect());
        }
    }
    Err(DriverError::Failed {
        reason: "neither docker-compose nor the docker compose plugin is installed".into(),
    })
}

/// A directory only we can read, removed when dropped.
struct PrivateDir(PathBuf);

impl PrivateDir {
    fn new() -> Result<Self, DriverError> {
        let path = std::env::temp_dir().join(format!("tenantry-compose-{}", uuid::Uuid::new_v4()));
        let made = {
            use std::os::unix::fs::DirBuilderExt;
            std::fs::DirBuilder::new().mode(0o700).create(&path)
        };
        made.map_err(|e| DriverError::Failed {
            reason: format!("cannot make a private directory for compose files: {e}"),
        })?;
        Ok(Self(path))
    }

    fn write(&self, name: &str, text: &str) -> Result<PathBuf, DriverError> {
        let path = self.0.join(name);
        std::fs::write(&path, text).map_err(|e| DriverError::Failed {
            reason: format!("cannot write {}: {e}", path.display()),
        })?;
        Ok(path)
    }
}

impl Drop for PrivateDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// One compose run's settings.
pub(crate) struct Runner<'a> {
    pub cli: &'a [String],
    pub endpoint: &'a Endpoint,
    pub tls: TlsMaterial<'a>,
    pub timeout: Duration,
}

impl Runner<'_> {
    /// Runs `compose -p <project> --project-directory <dir> -f <files…>
    /// <args…>` with `env` (and the engine's address) as its environment,
    /// and returns its standard output.
    ///
    /// # Errors
    /// `Failed` with the tail of its standard error when it exits non-zero;
    /// `Transient` when it could not reach the engine or ran out of time.
    async fn run(
        &self,
        project: &str,
        dir: &Path,
        files: &[&Path],
        args: &[&str],
        env: &BTreeMap<String, String>,
    ) -> Result<String, DriverError> {
        let scratch = PrivateDir::new()?;
        let mut cmd = Command::new(&self.cli[0]);
        cmd.args(&self.cli[1..])
            .env_clear()
            .envs(env)
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            // The CLI's own config and caches, away from the service's home.
            .env("HOME", &scratch.0)
            .env("DOCKER_HOST", self.endpoint.docker_host())
            .arg("-p")
            .arg(project)
            .arg("--project-directory")
            .arg(dir);
        if let Endpoint::Tls { .. } = self.endpoint {
            // The CLI reads TLS material from files only.
            if let crate::proxmox::TlsVerification::CaPem(ca) = self.tls.verification {
                scratch.write("ca.pem", ca)?;
            }
            if let (Some(cert), Some(key)) = (self.tls.client_cert_pem, self.tls.client_key_pem) {
                scratch.write("cert.pem", cert)?;
                scratch.write("key.pem", key.expose_secret())?;
            }
            cmd.env("DOCKER_TLS_VERIFY", "1")
                .env("DOCKER_CERT_PATH", &scratch.0);
        }
        for f in files {
            cmd.arg("-f").arg(f);
        }
        cmd.args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let what = format!("{} -p {project} {}", self.cli.join(" "), args.join(" "));
        let out = match tokio::time::timeout(self.timeout, cmd.output()).await {
            Err(_) => {
                return Err(DriverError::Transient {
                    reason: format!("{what}: no end within {:?}", self.timeout),
                });
            }
            Ok(Err(e)) => {
                return Err(DriverError::Failed {
                    reason: format!("{what}: cannot run: {e}"),
                });
            }
            Ok(Ok(out)) => out,
        };
        if out.status.success() {
            return Ok(String::from_utf8_lossy(&out.stdout).into_owned());
        }
        let stderr = String::from_utf8_lossy(&out.stderr);
        let tail: Vec<&str> = stderr.lines().rev().take(12).collect();
        let tail: Vec<&str> = tail.into_iter().rev().collect();
        let reason = format!("{what} failed ({}): {}", out.status, tail.join("\n"));
        let lower = reason.to_ascii_lowercase();
        if lower.contains("couldn't connect to docker daemon")
            || lower.contains("cannot connect to the docker daemon")
            || lower.contains("connection refused")
        {
            Err(DriverError::Transient { reason })
        } else {
            Err(DriverError::Failed { reason })
        }
    }

    /// Starts (or updates, or leaves running) the stack of `spec`.
    pub(crate) async fn up(
        &self,
        spec: &InstanceSpec,
        stack: &StackSpec,
    ) -> Result<(), DriverError> {
        let project = container_name(&spec.hostname);
        let template = stack.dir.join(TEMPLATE_FILE);
        let text = tokio::fs::read_to_string(&template)
            .await
            .map_err(|e| DriverError::Failed {
                reason: format!("stack template {}: {e}", template.display()),
            })?;
        let services_out = self
            .run(
                &project,
                &stack.dir,
                &[&template],
                &["config", "--services"],
                &spec.env,
            )
            .await?;
        let services: Vec<&str> = services_out
            .lines()
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .collect();
        if !services.contains(&stack.service.as_str()) {
            return Err(DriverError::Failed {
                reason: format!(
                    "stack template {} has no service {:?} (it has {services:?})",
                    template.display(),
                    stack.service
                ),
            });
        }
        let override_doc =
            override_file(spec, stack, template_version(&text).as_deref(), &services);
        let scratch = PrivateDir::new()?;
        let override_path = scratch.write("tenantry-override.yml", &override_doc.to_string())?;
        tracing::info!(%project, template = %template.display(), "compose up");
        self.run(
            &project,
            &stack.dir,
            &[&template, &override_path],
            &["up", "-d", "--no-color"],
            &spec.env,
        )
        .await?;
        Ok(())
    }
}

/// The `version:` of a template, if it states one (an override must state
/// the same for docker-compose v1 to merge them; the Compose Specification
/// has none).
pub(crate) fn template_version(text: &str) -> Option<String> {
    text.lines().find_map(|line| {
        let v = line.strip_prefix("version:")?.trim();
        let v = v.trim_matches(|c| c == '"' || c == '\'');
        (!v.is_empty()).then(|| v.to_owned())
    })
}

/// The override document for `spec` (see the module docs).
pub(crate) fn override_file(
    spec: &InstanceSpec,
    stack: &StackSpec,
    version: Option<&str>,
    services: &[&str],
) -> Value {
    let name = container_name(&spec.hostname);
    let labels: BTreeMap<String, String> = labels(spec).into_iter().collect();
    let mut svc = Map::new();
    for service in services {
        let mut s = Map::new();
        if *service == stack.service {
            let mut main = labels.clone();
            main.insert(LABEL_MAIN.into(), "true".into());
            s.insert("labels".into(), json!(main));
            s.insert("container_name".into(), json!(name));
            s.insert("hostname".into(), json!(spec.hostname));
            s.insert("environment".into(), json!(spec.env));
            if let (Some(host), Some(internal)) = (spec.host_port, spec.internal_port) {
                s.insert("ports".into(), json!([format!("{host}:{internal}")]));
            }
        } else {
            s.insert("labels".into(), json!(labels));
            s.insert("container_name".into(), json!(format!("{name}-{service}")));
        }
        svc.insert((*service).to_owned(), Value::Object(s));
    }
    let mut doc = Map::new();
    if let Some(v) = version {
        doc.insert("version".into(), json!(v));
    }
    doc.insert("services".into(), Value::Object(svc));
    // Network labels exist from file format 2.1 on.
    if version.is_none_or(|v| !matches!(v, "1" | "2" | "2.0")) {
        doc.insert(
            "networks".into(),
            json!({ "default": { "labels": labels } }),
        );
    }
    Value::Object(doc)
}

#[cfg(test)]
mod tests {
    use tenantry_domain::catalog::Resources;
    use uuid::Uuid;

    use super::*;
    use crate::docker::spec::{LABEL_INSTANCE, LABEL_MAIN, LABEL_PRODUCT, LABEL_TENANT};

    #[test]
    fn the_override_names_labels_and_publishes_the_product_service() {
        let spec = InstanceSpec {
            instance_id: Uuid::new_v4(),
            hostname: "acme".into(),
            resources: Resources {
                cpu_cores: 1,
                memory_mib: 256,
                storage_gib: 1,
            },
            swap_mib: 0,
            artifact: String::new(),
            internal_port: Some(8080),
            host_port: Some(20005),
            env: BTreeMap::from([("DB_NAME".into(), "t_acme".into())]),
            labels: BTreeMap::from([
                (LABEL_TENANT.into(), "acme".into()),
                (LABEL_PRODUCT.into(), "demo".into()),
            ]),
            volumes: BTreeMap::new(),
            stack: None,
            high_availability: false,
            health_check: None,
        };
        let stack = StackSpec {
            dir: "/stacks/demo".into(),
            service: "web".into(),
        };
        let doc = override_file(&spec, &stack, Some("3.8"), &["web", "worker"]);
        assert_eq!(doc["version"], "3.8");
        let web = &doc["services"]["web"];
        assert_eq!(web["container_name"], "tenantry-acme");
        assert_eq!(web["ports"][0], "20005:8080");
        assert_eq!(web["environment"]["DB_NAME"], "t_acme");
        assert_eq!(
            web["labels"][LABEL_INSTANCE],
            spec.instance_id.to_string().as_str()
        );
        assert_eq!(web["labels"][LABEL_MAIN], "true");
        let worker = &doc["services"]["worker"];
        assert!(worker["labels"].get(LABEL_MAIN).is_none());
        assert_eq!(worker["container_name"], "tenantry-acme-worker");
        assert!(worker.get("ports").is_none());
        assert_eq!(worker["labels"][LABEL_PRODUCT], "demo");
        assert_eq!(doc["networks"]["default"]["labels"][LABEL_TENANT], "acme");
        let v2 = override_file(&spec, &stack, Some("2"), &["web"]);
        assert!(v2.get("networks").is_none());
    }

    #[test]
    fn template_versions_are_read() {
        assert_eq!(
            template_version("version: '3.8'\nservices: {}\n").as_deref(),
            Some("3.8")
        );
        assert_eq!(
            template_version("version: \"2.4\"\n").as_deref(),
            Some("2.4")
        );
        assert_eq!(template_version("services:\n  web: {}\n"), None);
    }
}
