//! High availability of a container: an HA resource `ct:<vmid>` in the
//! cluster's HA stack (pve-ha-manager), which restarts the container, or
//! recovers it on another node, when it or its node fails.
//!
//! Calls: `GET /cluster/ha/resources?type=ct` (entries `{sid, type, state,
//! …}`), `POST /cluster/ha/resources` (`sid=ct:<vmid>`, `state=started`;
//! answers `{"data":null}`, or 500 `resource ID 'ct:105' already defined`)
//! and `DELETE /cluster/ha/resources/ct:<vmid>` (`{"data":null}`, or 500
//! `cannot delete service 'ct:105', not HA managed!`). Both changes are
//! idempotent: the list is read first, and the "already there" / "already
//! gone" answers of a call that raced another (or whose answer was lost)
//! count as done.

use serde::Deserialize;

use super::ProxmoxDriver;
use super::errors::Class;
use super::params::Vmid;
use crate::{DriverError, InstanceRef};

/// One entry of `GET /cluster/ha/resources`: the fields we read.
#[derive(Debug, Deserialize)]
struct HaResource {
    /// `ct:105`.
    sid: String,
}

/// The HA resource id of container `vmid`: `ct:<vmid>`.
pub(super) fn ha_sid(vmid: Vmid) -> String {
    format!("ct:{vmid}")
}

impl ProxmoxDriver {
    /// Whether container `vmid` is an HA resource (whatever its requested
    /// state).
    pub(super) async fn ha_listed(&self, vmid: Vmid) -> Result<bool, DriverError> {
        let sid = ha_sid(vmid);
        // `null` is read as an empty list, should a node ever answer that.
        let list: Option<Vec<HaResource>> = self
            .client
            .get(&["cluster", "ha", "resources"], &[("type", "ct".into())])
            .await?;
        Ok(list.unwrap_or_default().iter().any(|r| r.sid == sid))
    }

    /// Adds `ct:<vmid>` with state `started`; one already defined is done.
    async fn add_ha(&self, vmid: Vmid) -> Result<(), DriverError> {
        let sid = ha_sid(vmid);
        tracing::info!(node = %self.node(), %sid, "adding the HA resource");
        match self
            .client
            .post(
                &["cluster", "ha", "resources"],
                &[("sid", sid.clone()), ("state", "started".into())],
            )
            .await
        {
            Ok(_) => Ok(()),
            Err(e) if e.class() == Class::HaAlreadyDefined => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// Removes `ct:<vmid>`; one not defined is done. The container keeps
    /// running: only the HA stack lets go of it.
    pub(super) async fn remove_ha(&self, vmid: Vmid) -> Result<(), DriverError> {
        let sid = ha_sid(vmid);
        tracing::info!(node = %self.node(), %sid, "removing the HA resource");
        match self
            .client
            .delete(&["cluster", "ha", "resources", &sid], &[])
            .await
        {
            Ok(_) => Ok(()),
            Err(e) if e.class() == Class::HaNotDefined => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// One try at [`crate::Driver::set_high_availability`]: an existing
    /// resource is left as it is (its state may be `stopped`: that is how
    /// PVE records a stop of an HA-managed container).
    ///
    /// # Errors
    /// `NotFound` when no container carries the instance's owner tag;
    /// those of the calls.
    pub(super) async fn set_ha_once(
        &self,
        instance: &InstanceRef,
        enabled: bool,
    ) -> Result<(), DriverError> {
        let ct = self.located(instance).await?;
        let listed = self.ha_listed(ct.vmid).await?;
        match (enabled, listed) {
            (true, false) => self.add_ha(ct.vmid).await,
            (false, true) => self.remove_ha(ct.vmid).await,
            _ => Ok(()),
        }
    }
}
