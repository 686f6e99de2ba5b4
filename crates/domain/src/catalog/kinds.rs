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
        /// A container of its own with a standby on another node.
        DedicatedHa => "dedicated_ha",
    }
}

impl DeploymentKind {
    /// True for the kinds that give a tenant its own container (and host port).
    pub fn is_dedicated(&self) -> bool {
        matches!(self, Self::Dedicated | Self::DedicatedHa)
    }
}
