//! Custom domains: how often `serve` re-checks the DNS TXT record of
//! domains still `pending`, and which DNS server answers the lookups.

use std::{net::SocketAddr, time::Duration};

use clap::Args;

/// Flags of custom domains.
#[derive(Clone, Args)]
pub struct DomainArgs {
    /// Seconds between DNS re-checks of a pending custom domain, enqueued by `serve` for 7 days after the domain was added (0: none; adding a domain and `POST …/verify` still check).
    #[arg(
        long,
        env = "TENANTRY_DOMAIN_CHECK_SECS",
        default_value_t = 300,
        global = true
    )]
    #[arg(display_order = 59)]
    pub domain_check_secs: u64,

    /// DNS server (`IP:PORT`, e.g. `127.0.0.1:53`) custom-domain TXT lookups ask (unset: the system's resolvers, from /etc/resolv.conf).
    #[arg(long, env = "TENANTRY_DNS_RESOLVER", global = true)]
    #[arg(display_order = 60)]
    pub dns_resolver: Option<SocketAddr>,
}

/// Validated custom-domain settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DomainSettings {
    /// How long a pending domain goes without a lookup before the ticker
    /// enqueues another (zero: no ticker).
    pub check_every: Duration,
    /// The DNS server asked, or `None` for the system's configuration.
    pub resolver: Option<SocketAddr>,
}

impl Default for DomainSettings {
    /// No periodic re-checks; the system's resolvers.
    fn default() -> Self {
        Self {
            check_every: Duration::ZERO,
            resolver: None,
        }
    }
}

impl DomainArgs {
    /// The validated settings these flags give.
    pub(super) fn into_settings(self) -> DomainSettings {
        DomainSettings {
            check_every: Duration::from_secs(self.domain_check_secs),
            resolver: self.dns_resolver,
        }
    }
}
