//! The node's capacity and load from `GET /cluster/resources`: cores and
//! CPU use, memory, the container storage's disk (else the node's) and the
//! containers running.

use serde_json::Value;

use super::{ProxmoxDriver, as_f64, as_u64};
use crate::{DriverError, NodeMetrics};

impl ProxmoxDriver {
    pub(crate) async fn node_metrics_once(&self) -> Result<NodeMetrics, DriverError> {
        let resources: Vec<Value> = self.client.get(&["cluster", "resources"], &[]).await?;
        let field = |v: &Value, k: &str| v.get(k).and_then(Value::as_str).unwrap_or("").to_owned();
        let node = resources
            .iter()
            .find(|r| field(r, "type") == "node" && field(r, "node") == self.cfg.node)
            .ok_or_else(|| DriverError::Failed {
                reason: format!("node {} is not in /cluster/resources", self.node()),
            })?;
        if field(node, "status") != "online" {
            return Err(DriverError::Transient {
                reason: format!("node {} is {}", self.node(), field(node, "status")),
            });
        }
        let num = |v: &Value, k: &str| v.get(k).and_then(as_u64).unwrap_or(0);
        let storage = resources.iter().find(|r| {
            field(r, "type") == "storage"
                && field(r, "node") == self.cfg.node
                && field(r, "storage") == self.cfg.storage
        });
        let (disk_total, disk_used) = match storage {
            Some(s) => (num(s, "maxdisk"), num(s, "disk")),
            None => (num(node, "maxdisk"), num(node, "disk")),
        };
        let running = resources
            .iter()
            .filter(|r| {
                field(r, "type") == "lxc"
                    && field(r, "node") == self.cfg.node
                    && field(r, "status") == "running"
            })
            .count();
        Ok(NodeMetrics {
            cpu_cores: u32::try_from(num(node, "maxcpu")).unwrap_or(u32::MAX),
            cpu_usage: node
                .get("cpu")
                .and_then(as_f64)
                .unwrap_or(0.0)
                .clamp(0.0, 1.0),
            memory_total_bytes: num(node, "maxmem"),
            memory_used_bytes: num(node, "mem"),
            disk_total_bytes: disk_total,
            disk_used_bytes: disk_used,
            instances_running: u32::try_from(running).unwrap_or(u32::MAX),
        })
    }
}
