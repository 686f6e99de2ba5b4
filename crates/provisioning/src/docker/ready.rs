//! Deploy waits for HTTP: the product's port polled until it answers (any
//! status below 500) within the ready timeout, else the deploy fails with
//! the container's state, exit code and the last lines of its log.

use bollard::query_parameters::LogsOptions;
use futures_util::StreamExt;
use tokio::time::Instant;

use super::DockerDriver;
use super::errors::Call;
use super::spec::container_name;
use crate::{DriverError, InstanceSpec};

impl DockerDriver {
    /// Waits until `container` answers HTTP on the product's port.
    ///
    /// # Errors
    /// `Failed` when it exits, or does not answer within `ready_timeout`,
    /// with its state and the tail of its log.
    pub(crate) async fn wait_ready(
        &self,
        spec: &InstanceSpec,
        container: &str,
    ) -> Result<(), DriverError> {
        let Some(internal) = spec.internal_port else {
            return Ok(());
        };
        let docker = self.engine().await?;
        let started = Instant::now();
        let mut target: Option<String> = None;
        loop {
            let inspect = docker
                .inspect_container(container, None)
                .await
                .call(format!("inspect container {container}"))?;
            let state = inspect.state.clone().unwrap_or_default();
            let status = state.status.map(|s| s.to_string()).unwrap_or_default();
            // Crashed: stopped, or brought back by the restart policy again
            // and again (an app may exit once while what it needs starts).
            let restarts = inspect.restart_count.unwrap_or(0);
            if matches!(status.as_str(), "exited" | "dead")
                || (status == "restarting" && restarts >= 3)
            {
                return Err(self
                    .not_ready(
                        spec,
                        container,
                        &format!(
                            "the container exited with code {} ({status}, {restarts} restarts)",
                            state.exit_code.unwrap_or(-1)
                        ),
                    )
                    .await);
            }
            if target.is_none() {
                target = match spec.host_port {
                    Some(port) => {
                        let host = self
                            .cfg
                            .probe_host
                            .clone()
                            .unwrap_or_else(|| self.endpoint.probe_host());
                        Some(format!("{host}:{port}"))
                    }
                    None => inspect
                        .network_settings
                        .as_ref()
                        .and_then(|n| n.networks.as_ref())
                        .and_then(|n| n.values().find_map(|e| e.ip_address.clone()))
                        .filter(|ip| !ip.is_empty())
                        .map(|ip| format!("{ip}:{internal}")),
                };
            }
            let last = if let Some(t) = &target {
                let url = format!("http://{t}{}", self.cfg.ready_path);
                match self.http.get(&url).send().await {
                    Ok(r) if r.status().as_u16() < 500 => {
                        tracing::info!(instance = %spec.instance_id, %url, status = %r.status(), elapsed = ?started.elapsed(), "instance answers");
                        return Ok(());
                    }
                    Ok(r) => format!("GET {url} answered {}", r.status()),
                    Err(e) => format!("GET {url}: {}", error_chain(&e)),
                }
            } else {
                "the container has no address yet".to_owned()
            };
            if started.elapsed() + self.cfg.ready_poll_interval > self.cfg.ready_timeout {
                return Err(self
                    .not_ready(
                        spec,
                        container,
                        &format!(
                            "no HTTP answer within {:?} (last: {last}; container {status})",
                            self.cfg.ready_timeout
                        ),
                    )
                    .await);
            }
            tokio::time::sleep(self.cfg.ready_poll_interval).await;
        }
    }

    /// The error of a deploy that never became ready, with the container's
    /// last log lines.
    async fn not_ready(&self, spec: &InstanceSpec, container: &str, why: &str) -> DriverError {
        let logs = self.log_tail(container, 20).await;
        DriverError::Failed {
            reason: format!(
                "{} ({}) did not become ready: {why}; last log lines:\n{logs}",
                container_name(&spec.hostname),
                spec.instance_id
            ),
        }
    }

    async fn log_tail(&self, container: &str, lines: usize) -> String {
        let Ok(docker) = self.engine().await else {
            return String::new();
        };
        let opts = LogsOptions {
            stdout: true,
            stderr: true,
            tail: lines.to_string(),
            ..Default::default()
        };
        let chunks: Vec<String> = docker
            .logs(container, Some(opts))
            .take(lines * 4)
            .filter_map(|r| async move { r.ok().map(|l| l.to_string()) })
            .collect()
            .await;
        let text = chunks.concat();
        if text.trim().is_empty() {
            "(none)".into()
        } else {
            text.trim_end().to_owned()
        }
    }
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}
