//! The catalog's fixed vocabularies: which driver runs a product's
//! instances, how often a plan bills, and where a plan's tenants run
//! (shared, dedicated, dedicated HA).

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
        /// A container of its own, kept running by the platform: on
        /// Proxmox VE an HA resource (`ct:<vmid>`, state `started`) the
        /// cluster's HA manager restarts or relocates to another node when
        /// its node fails; on Docker the restart policy `always` and the
        /// product's health check.
        DedicatedHa => "dedicated_ha",
    }
}

impl DeploymentKind {
    /// True for the kinds that give a tenant its own container (and host port).
    pub fn is_dedicated(&self) -> bool {
        matches!(self, Self::Dedicated | Self::DedicatedHa)
    }

    /// True for `dedicated_ha`.
    pub fn is_high_availability(&self) -> bool {
        matches!(self, Self::DedicatedHa)
    }

    /// What high availability means for a plan of this kind on `driver`,
    /// for the plan view; `None` for the kinds without it.
    pub fn high_availability_on(&self, driver: DriverKind) -> Option<&'static str> {
        match (self, driver) {
            (Self::DedicatedHa, DriverKind::Proxmox) => Some(
                "The container is a Proxmox VE HA resource: the cluster restarts it when it stops and moves it to another node when its node fails.",
            ),
            (Self::DedicatedHa, DriverKind::Docker) => Some(
                "The container restarts on failure (restart policy always) and is health-checked; a Docker host has no standby node.",
            ),
            _ => None,
        }
    }
}
