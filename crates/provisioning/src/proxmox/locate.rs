//! Finding an instance's container on the node: the one at its vmid if it
//! carries the instance's owner tag, else the one carrying the tag anywhere
//! on the node; a container at our vmid that names another owner is never
//! ours.

use serde_json::Value;

use super::params::{Vmid, owner_of, owner_tag};
use super::{Ct, ProxmoxDriver};
use crate::{DriverError, InstanceRef};

impl ProxmoxDriver {
    /// The node's containers.
    pub(super) async fn list(&self) -> Result<Vec<Ct>, DriverError> {
        let raw: Vec<Value> = self.client.get(&["nodes", self.node(), "lxc"], &[]).await?;
        Ok(raw.iter().filter_map(Ct::from_value).collect())
    }

    /// The container that is `instance`: the one at its vmid if it carries
    /// its owner tag, else the one that carries the tag anywhere on the node.
    ///
    /// # Errors
    /// `Transient` while the container at its vmid is still being created
    /// (no tags yet); those of the listing.
    pub(super) async fn locate(&self, instance: &InstanceRef) -> Result<Option<Ct>, DriverError> {
        let cts = self.list().await?;
        let tag = owner_tag(instance.instance_id);
        if let Some(ct) =
            Vmid::parse(&instance.external_id).and_then(|vmid| cts.iter().find(|c| c.vmid == vmid))
        {
            if ct.has_tag(&tag) {
                return Ok(Some(ct.clone()));
            }
            if ct.creating() && owner_of(&ct.tags).is_none() {
                return Err(DriverError::Transient {
                    reason: format!("CT {} on {} is still being created", ct.vmid, self.node()),
                });
            }
            tracing::warn!(
                node = %self.node(),
                vmid = %ct.vmid,
                instance = %instance.instance_id,
                "the container at this vmid does not carry the instance's owner tag; not ours"
            );
        }
        Ok(pick_ours(&cts, &tag).cloned())
    }

    pub(super) async fn located(&self, instance: &InstanceRef) -> Result<Ct, DriverError> {
        self.locate(instance)
            .await?
            .ok_or_else(|| DriverError::NotFound {
                reason: format!(
                    "no container on {} carries {}",
                    self.node(),
                    owner_tag(instance.instance_id)
                ),
            })
    }
}

/// Our container among `cts`: the one carrying `tag` (the lowest vmid,
/// should there ever be two).
pub(super) fn pick_ours<'a>(cts: &'a [Ct], tag: &str) -> Option<&'a Ct> {
    let mut ours = cts.iter().filter(|c| c.has_tag(tag));
    let first = ours.next()?;
    let mut best = first;
    for other in ours {
        tracing::error!(vmid = %other.vmid, tag, "two containers carry one owner tag");
        if other.vmid < best.vmid {
            best = other;
        }
    }
    Some(best)
}
