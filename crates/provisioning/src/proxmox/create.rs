//! Creating a container without ever making a second one: ours is looked
//! for by owner tag first (waiting while containers without an owner tag
//! are still being created) and adopted; else a vmid is taken from
//! `/cluster/nextid` (another when a concurrent create took it) and the
//! create task run to its end.

use std::collections::BTreeSet;

use serde_json::Value;
use tokio::time::Instant;
use uuid::Uuid;

use super::errors::{ApiError, Class};
use super::locate::pick_ours;
use super::params::{Vmid, create_params, owner_of, owner_tag};
use super::tasks::{self, TaskEnd, Upid};
use super::{Ct, ProxmoxDriver, as_u64};
use crate::{DriverError, InstanceRef, InstanceSpec};

/// How many times a create takes a new vmid when another create took the
/// one `/cluster/nextid` gave.
const MAX_VMID_CLASHES: u32 = 5;

impl ProxmoxDriver {
    /// Finds our container (waiting for creates in flight), or `None`.
    ///
    /// While a container that may be ours is being created (our tag with
    /// `lock: create`, or no owner tag yet with `lock: create`, or a vmid
    /// whose create answer we lost), waits for it, polling every
    /// `task_poll_interval`, at most `task_deadline`.
    async fn settle(
        &self,
        tag: &str,
        uncertain: &BTreeSet<Vmid>,
    ) -> Result<Option<Ct>, DriverError> {
        let started = Instant::now();
        let mut grace_used = false;
        loop {
            let cts = self.list().await?;
            let ours = pick_ours(&cts, tag);
            if let Some(ct) = ours.filter(|c| !c.creating()) {
                return Ok(Some(ct.clone()));
            }
            let pending: Vec<Vmid> = cts
                .iter()
                .filter(|c| {
                    c.has_tag(tag)
                        || (owner_of(&c.tags).is_none()
                            && (c.creating() || (uncertain.contains(&c.vmid) && c.lock.is_some())))
                })
                .map(|c| c.vmid)
                .collect();
            let invisible = uncertain.iter().any(|v| !cts.iter().any(|c| c.vmid == *v));
            if pending.is_empty() {
                // A create whose answer we lost may not show yet: PVE forks
                // the task before it writes the first config. Look once more.
                if invisible && !grace_used {
                    grace_used = true;
                    tokio::time::sleep(self.cfg.task_poll_interval).await;
                    continue;
                }
                return Ok(None);
            }
            if started.elapsed() + self.cfg.task_poll_interval > self.cfg.task_deadline {
                return Err(DriverError::Transient {
                    reason: format!(
                        "CT {pending:?} on {} still being created after {:?}, without our owner \
                         tag yet; not creating another container until it finishes or is removed",
                        self.node(),
                        self.cfg.task_deadline
                    ),
                });
            }
            tracing::debug!(node = %self.node(), ?pending, "waiting for containers being created");
            tokio::time::sleep(self.cfg.task_poll_interval).await;
        }
    }

    /// Makes `ct` (ours) run and returns its reference.
    async fn adopt(&self, instance_id: Uuid, ct: &Ct) -> Result<InstanceRef, DriverError> {
        if !ct.running() {
            tracing::info!(node = %self.node(), vmid = %ct.vmid, "starting our existing container");
            self.power(ct.vmid, "start").await?;
        }
        Ok(InstanceRef {
            instance_id,
            external_id: ct.vmid.to_string(),
        })
    }

    /// One try at create: adopt ours if it exists, else take a vmid and
    /// create. `uncertain` collects vmids whose create answer was lost
    /// across tries.
    pub(crate) async fn create_once(
        &self,
        spec: &InstanceSpec,
        uncertain: &std::sync::Mutex<BTreeSet<Vmid>>,
    ) -> Result<InstanceRef, DriverError> {
        let tag = owner_tag(spec.instance_id);
        let mut clashes = 0;
        loop {
            let snapshot = uncertain.lock().map(|u| u.clone()).unwrap_or_default();
            if let Some(ct) = self.settle(&tag, &snapshot).await? {
                return self.adopt(spec.instance_id, &ct).await;
            }
            let vmid = self.next_vmid().await?;
            let params = create_params(spec, vmid, &self.cfg.storage, &self.cfg.bridge)?;
            tracing::info!(node = %self.node(), %vmid, instance = %spec.instance_id, "creating container");
            let data = match self
                .client
                .post(&["nodes", self.node(), "lxc"], &params)
                .await
            {
                Ok(data) => data,
                Err(e) if e.class() == Class::AlreadyExists && clashes < MAX_VMID_CLASHES => {
                    clashes += 1;
                    tracing::info!(node = %self.node(), %vmid, "vmid taken meanwhile; taking another");
                    continue;
                }
                Err(e) => {
                    if e.outcome_unknown()
                        && let Ok(mut u) = uncertain.lock()
                    {
                        u.insert(vmid);
                    }
                    return Err(create_error(e));
                }
            };
            if let Some(upid) = Upid::from_data(&data)? {
                let end = tasks::wait_end(
                    &self.client,
                    &upid,
                    self.cfg.task_poll_interval,
                    self.cfg.task_deadline,
                )
                .await?;
                match end {
                    TaskEnd::Ok => {}
                    TaskEnd::Failed {
                        class: Class::AlreadyExists,
                        ..
                    } if clashes < MAX_VMID_CLASHES => {
                        // "Could not reserve ID 105, already taken": the
                        // final check after locking found the id gone.
                        clashes += 1;
                        continue;
                    }
                    TaskEnd::Failed { error, .. } => return Err(error),
                }
            }
            let cts = self.list().await?;
            let Some(ct) = pick_ours(&cts, &tag) else {
                return Err(DriverError::Failed {
                    reason: format!(
                        "the create task for CT {vmid} on {} succeeded, but no container carries {tag}",
                        self.node()
                    ),
                });
            };
            let ct = ct.clone();
            return self.adopt(spec.instance_id, &ct).await;
        }
    }

    async fn next_vmid(&self) -> Result<Vmid, DriverError> {
        let raw: Value = self.client.get(&["cluster", "nextid"], &[]).await?;
        as_u64(&raw)
            .and_then(Vmid::new)
            .ok_or_else(|| DriverError::Failed {
                reason: format!("GET /cluster/nextid answered {raw}, not a vmid"),
            })
    }
}

/// A create call's error: a missing storage, template or bridge is a bad
/// request here, not a missing instance.
fn create_error(e: ApiError) -> DriverError {
    match e.into_driver_error() {
        DriverError::NotFound { reason } => DriverError::Failed { reason },
        other => other,
    }
}
