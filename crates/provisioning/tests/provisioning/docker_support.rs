//! The Docker driver's tests run against the real engine on this machine
//! (`/var/run/docker.sock`). There is no registry, so each test builds its
//! own image from Debian's static busybox (`apt-get install
//! busybox-static`): `FROM scratch`, busybox, and a start script that
//! serves HTTP, sleeps or crashes as `MODE` says.
//!
//! Everything a test makes carries the label `tenantry.test=<test id>` (the
//! driver copies spec labels to containers, volumes and networks), and the
//! test's [`TestDocker`] removes all of it, and its image, when dropped:
//! also when the test fails.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use bollard::Docker;
use bollard::query_parameters::BuildImageOptions;
use futures_util::TryStreamExt;
use tenantry_domain::catalog::Resources;
use tenantry_provisioning::docker::{
    DockerConfig, DockerDriver, LABEL_PRODUCT, LABEL_TENANT, RetryPolicy,
};
use tenantry_provisioning::{InstanceSpec, StackSpec};
use uuid::Uuid;

pub const SOCKET_URL: &str = "unix:///var/run/docker.sock";
/// The label every test object carries.
pub const TEST_LABEL: &str = "tenantry.test";
/// The port the test image serves on.
pub const APP_PORT: u16 = 8080;

const START_SH: &str = r#"#!/bin/busybox sh
bb=/bin/busybox
$bb mkdir -p /www /data
case "$MODE" in
  sleep) echo "sleeping, not serving"; exec $bb sleep 3600 ;;
  crash) echo "boom: DATABASE_URL is not set" >&2; exit 3 ;;
esac
echo boot >> /data/boots
boots=$($bb wc -l < /data/boots)
echo "tenant=$TENANT_SLUG db=$DB_NAME boots=$boots" > /www/index.html
echo "serving $TENANT_SLUG on ${PORT:-8080}"
exec $bb httpd -f -p "${PORT:-8080}" -h /www
"#;

const DOCKERFILE: &str = r#"FROM scratch
COPY busybox /bin/busybox
COPY start.sh /start.sh
ENTRYPOINT ["/bin/busybox", "sh", "/start.sh"]
"#;

/// One test's engine objects: a unique id, its image, its driver, and the
/// compose projects it ran (for the guard).
pub struct TestDocker {
    pub id: String,
    pub image: String,
    pub driver: DockerDriver,
    pub engine: Docker,
    projects: std::sync::Mutex<Vec<String>>,
}

/// The driver settings the tests use: a 20 s readiness deadline polled
/// every 100 ms, 1 s stop timeouts (busybox as PID 1 ignores SIGTERM), fast
/// retries.
pub fn config() -> DockerConfig {
    let mut cfg = DockerConfig::new(SOCKET_URL);
    cfg.ready_timeout = Duration::from_secs(20);
    cfg.ready_poll_interval = Duration::from_millis(100);
    cfg.stop_timeout = Duration::from_secs(1);
    cfg.pull_missing_images = false;
    cfg.retry = RetryPolicy {
        attempts: 3,
        base_delay: Duration::from_millis(50),
        max_delay: Duration::from_millis(200),
    };
    cfg
}

pub async fn engine() -> Docker {
    Docker::connect_with_socket_defaults()
        .unwrap()
        .negotiate_version()
        .await
        .unwrap()
}

impl TestDocker {
    /// A fresh test id, its image built, a driver with [`config`].
    pub async fn start() -> Self {
        Self::start_with(|_| {}).await
    }

    pub async fn start_with(tweak: impl FnOnce(&mut DockerConfig)) -> Self {
        let id = format!("t{}", &Uuid::new_v4().simple().to_string()[..10]);
        let image = format!("tenantry-test/{id}:1");
        let engine = engine().await;
        let mut cfg = config();
        tweak(&mut cfg);
        let t = Self {
            id,
            image,
            driver: DockerDriver::new(cfg).unwrap(),
            engine,
            projects: std::sync::Mutex::new(Vec::new()),
        };
        t.build_image().await;
        t
    }

    async fn build_image(&self) {
        let busybox = std::fs::read("/bin/busybox")
            .map_err(|e| {
                format!("/bin/busybox: {e}; install Debian's busybox-static (apt-get install busybox-static)")
            })
            .unwrap();
        let tar = tar(&[
            ("Dockerfile", DOCKERFILE.as_bytes(), 0o644),
            ("busybox", &busybox, 0o755),
            ("start.sh", START_SH.as_bytes(), 0o755),
        ]);
        let opts = BuildImageOptions {
            t: Some(self.image.clone()),
            dockerfile: "Dockerfile".into(),
            rm: true,
            forcerm: true,
            // Every test builds the same content: with the build cache, one
            // test's build reuses another's intermediate images, which that
            // test's guard then deletes mid-build ("failed to get digest
            // …: no such file or directory"). Each build owns its layers.
            nocache: true,
            labels: Some([(TEST_LABEL.to_owned(), self.id.clone())].into()),
            ..Default::default()
        };
        let out: Vec<_> = self
            .engine
            .build_image(opts, None, Some(bollard::body_full(tar.into())))
            .try_collect()
            .await
            .unwrap();
        let errors: Vec<_> = out.iter().filter_map(|i| i.error_detail.clone()).collect();
        assert!(errors.is_empty(), "image build failed: {errors:?}");
    }

    /// A dedicated single-image spec: hostname = the test id, the test
    /// image, its port published on `host_port`.
    pub fn spec(&self, host_port: Option<u16>) -> InstanceSpec {
        self.spec_named(&self.id, host_port)
    }

    pub fn spec_named(&self, hostname: &str, host_port: Option<u16>) -> InstanceSpec {
        InstanceSpec {
            instance_id: Uuid::new_v4(),
            hostname: hostname.into(),
            resources: Resources {
                cpu_cores: 1,
                memory_mib: 128,
                storage_gib: 1,
            },
            swap_mib: 0,
            artifact: self.image.clone(),
            internal_port: Some(APP_PORT),
            host_port,
            env: BTreeMap::from([
                ("TENANT_SLUG".into(), hostname.into()),
                ("DB_NAME".into(), format!("t_{hostname}")),
            ]),
            labels: BTreeMap::from([
                (LABEL_TENANT.into(), hostname.into()),
                (LABEL_PRODUCT.into(), "demo".into()),
                (TEST_LABEL.into(), self.id.clone()),
            ]),
            volumes: BTreeMap::from([("data".into(), "/data".into())]),
            stack: None,
            high_availability: false,
            health_check: None,
        }
    }

    /// A spec running the `demo` stack of `docker/stacks/` with the test
    /// image (the template takes it from `DEMO_IMAGE`).
    pub fn stack_spec(&self, host_port: Option<u16>) -> InstanceSpec {
        let mut spec = self.spec(host_port);
        spec.artifact = String::new();
        spec.volumes.clear();
        spec.env.insert("DEMO_IMAGE".into(), self.image.clone());
        spec.stack = Some(StackSpec {
            dir: stack_dir("demo"),
            service: "web".into(),
        });
        self.projects
            .lock()
            .unwrap()
            .push(format!("tenantry-{}", spec.hostname));
        spec
    }

    /// `(name, labels, running)` of the containers carrying this test's
    /// label.
    pub async fn containers(&self) -> Vec<(String, BTreeMap<String, String>, bool)> {
        let opts = bollard::query_parameters::ListContainersOptions {
            all: true,
            filters: Some(
                [(
                    "label".to_owned(),
                    vec![format!("{TEST_LABEL}={}", self.id)],
                )]
                .into(),
            ),
            ..Default::default()
        };
        let mut out: Vec<_> = self
            .engine
            .list_containers(Some(opts))
            .await
            .unwrap()
            .into_iter()
            .map(|c| {
                (
                    c.names.unwrap()[0].trim_start_matches('/').to_owned(),
                    c.labels.unwrap_or_default().into_iter().collect(),
                    c.state.map(|s| s.to_string()) == Some("running".to_owned()),
                )
            })
            .collect();
        out.sort();
        out
    }

    /// Names of the volumes carrying `label=value`.
    pub async fn volumes(&self, label: &str, value: &str) -> Vec<String> {
        let opts = bollard::query_parameters::ListVolumesOptions {
            filters: Some([("label".to_owned(), vec![format!("{label}={value}")])].into()),
        };
        let mut names: Vec<String> = self
            .engine
            .list_volumes(Some(opts))
            .await
            .unwrap()
            .volumes
            .unwrap_or_default()
            .into_iter()
            .map(|v| v.name)
            .collect();
        names.sort();
        names
    }

    /// Names of the networks carrying `label=value`.
    pub async fn networks(&self, label: &str, value: &str) -> Vec<String> {
        let opts = bollard::query_parameters::ListNetworksOptions {
            filters: Some([("label".to_owned(), vec![format!("{label}={value}")])].into()),
        };
        self.engine
            .list_networks(Some(opts))
            .await
            .unwrap()
            .into_iter()
            .filter_map(|n| n.name)
            .collect()
    }
}

impl Drop for TestDocker {
    /// Removes every container, network and volume carrying this test's
    /// label or belonging to its compose projects, and its image, with the
    /// docker CLI (synchronous, so it runs while a failed test unwinds).
    fn drop(&mut self) {
        let mut filters = vec![format!("label={TEST_LABEL}={}", self.id)];
        if let Ok(projects) = self.projects.lock() {
            filters.extend(
                projects
                    .iter()
                    .map(|p| format!("label=com.docker.compose.project={p}")),
            );
        }
        let ids = |args: &[&str]| -> Vec<String> {
            Command::new("docker")
                .args(args)
                .output()
                .map(|o| {
                    String::from_utf8_lossy(&o.stdout)
                        .lines()
                        .map(str::to_owned)
                        .filter(|l| !l.is_empty())
                        .collect()
                })
                .unwrap_or_default()
        };
        let remove = |args: &[&str], ids: Vec<String>| {
            if !ids.is_empty() {
                let _ = Command::new("docker").args(args).args(ids).output();
            }
        };
        for f in &filters {
            remove(&["rm", "-f", "-v"], ids(&["ps", "-aq", "--filter", f]));
        }
        for f in &filters {
            remove(
                &["network", "rm"],
                ids(&["network", "ls", "-q", "--filter", f]),
            );
            remove(
                &["volume", "rm", "-f"],
                ids(&["volume", "ls", "-q", "--filter", f]),
            );
        }
        let _ = Command::new("docker")
            .args(["rmi", "-f", &self.image])
            .output();
    }
}

/// `docker/stacks/<name>` of the repository.
pub fn stack_dir(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../docker/stacks")
        .join(name)
        .canonicalize()
        .unwrap()
}

pub use tenantry_test_db::free_port;

/// `GET http://127.0.0.1:<port>/` as text.
pub async fn get(port: u16) -> String {
    reqwest::Client::builder()
        .no_proxy()
        .build()
        .unwrap()
        .get(format!("http://127.0.0.1:{port}/"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

/// A ustar archive of regular files (the build context).
fn tar(files: &[(&str, &[u8], u32)]) -> Vec<u8> {
    let mut out = Vec::new();
    for (name, data, mode) in files {
        let mut h = [0_u8; 512];
        h[..name.len()].copy_from_slice(name.as_bytes());
        let octal = |h: &mut [u8; 512], at: usize, len: usize, v: u64| {
            let s = format!("{v:0w$o}\0", w = len - 1);
            h[at..at + len].copy_from_slice(s.as_bytes());
        };
        octal(&mut h, 100, 8, u64::from(*mode));
        octal(&mut h, 108, 8, 0);
        octal(&mut h, 116, 8, 0);
        octal(&mut h, 124, 12, data.len() as u64);
        octal(&mut h, 136, 12, 0);
        h[156] = b'0';
        h[257..263].copy_from_slice(b"ustar\0");
        h[263..265].copy_from_slice(b"00");
        h[148..156].copy_from_slice(b"        ");
        let sum: u32 = h.iter().map(|b| u32::from(*b)).sum();
        let s = format!("{sum:06o}\0 ");
        h[148..156].copy_from_slice(s.as_bytes());
        out.extend_from_slice(&h);
        out.extend_from_slice(data);
        out.resize(out.len().div_ceil(512) * 512, 0);
    }
    out.resize(out.len() + 1024, 0);
    out
}
