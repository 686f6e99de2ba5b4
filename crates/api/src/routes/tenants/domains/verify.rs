//! Verifying custom domains: the DNS TXT lookup, recording its outcome on
//! the domain, the `domain.verify` job and the ticker that re-checks
//! pending domains.
//!
//! A domain is proven when a TXT record at `_tenantry-challenge.<hostname>`
//! holds its token (each character-string of a record is compared, and so
//! is their concatenation, RFC 7208 §3.3 style, for values split across
//! strings). It then turns `verified`, which routes it (the database's
//! trigger queues a `routing.sync`); a verified domain stays verified.

use std::{net::SocketAddr, sync::Arc, time::Duration};

use async_trait::async_trait;
use hickory_resolver::{
    Resolver, TokioResolver,
    config::{ConnectionConfig, NameServerConfig, ResolveHosts, ResolverConfig},
    net::{DnsError, NetError, runtime::TokioRuntimeProvider},
    proto::{
        op::ResponseCode,
        rr::{Name, RData},
    },
};
use tenantry_store::{
    AsyncConnection as _, Pool, StoreError,
    activity::{Actor, Entry},
    domains::{self as store, TenantDomain, VERIFIED},
    jobs::{self, kinds::DomainVerify},
    worker::{Handlers, JobContext, JobError, JobHandler},
};
use uuid::Uuid;

use super::hostname::challenge_name;
use crate::config::DomainSettings;

/// How long one check may take in all: every DNS query and its retry.
pub const CHECK_TIMEOUT: Duration = Duration::from_secs(10);

/// How long after it was added a pending domain is still re-checked by the
/// ticker (7 days); after that only `POST …/verify` checks it.
pub const RECHECK_FOR: Duration = Duration::from_secs(7 * 24 * 3600);

/// Most re-check jobs one tick enqueues (the rest wait for the next tick).
const RECHECKS_PER_TICK: i64 = 500;

/// The TXT lookup: which DNS server answers, within what time.
#[derive(Debug, Clone)]
pub struct DnsLookup {
    server: Option<SocketAddr>,
    timeout: Duration,
}

impl DnsLookup {
    /// Lookups through `server` (`None`: the system's resolvers, from
    /// `/etc/resolv.conf`), each check bounded by `timeout`.
    pub fn new(server: Option<SocketAddr>, timeout: Duration) -> Self {
        Self { server, timeout }
    }

    /// A resolver built for one check, so no cached (negative) answer
    /// outlives it: a record published a second ago is seen.
    fn resolver(&self) -> Result<TokioResolver, String> {
        let mut builder = match self.server {
            Some(addr) => {
                let mut udp = ConnectionConfig::udp();
                udp.port = addr.port();
                let mut tcp = ConnectionConfig::tcp();
                tcp.port = addr.port();
                let server = NameServerConfig::new(addr.ip(), true, vec![udp, tcp]);
                Resolver::builder_with_config(
                    ResolverConfig::from_name_servers(vec![server]),
                    TokioRuntimeProvider::default(),
                )
            }
            None => TokioResolver::builder_tokio()
                .map_err(|e| format!("cannot read the system's DNS configuration: {e}"))?,
        };
        let opts = builder.options_mut();
        // Two tries of at most a third of the budget each, leaving room
        // for a TCP retry of a truncated answer.
        opts.timeout = self.timeout / 3;
        opts.attempts = 2;
        opts.use_hosts_file = ResolveHosts::Never;
        builder
            .build()
            .map_err(|e| format!("cannot set up the DNS resolver: {e}"))
    }

    /// Whether the TXT record `_tenantry-challenge.<hostname>` holds
    /// `token`: `Ok(())`, or `Err` with the reason in words the tenant
    /// can act on (no such record, NXDOMAIN; values that do not match; a
    /// DNS failure or timeout).
    ///
    /// # Errors
    /// The reason the domain is not verified, as above.
    pub async fn txt_holds(&self, hostname: &str, token: &str) -> Result<(), String> {
        let record = challenge_name(hostname);
        let name = Name::from_ascii(format!("{record}."))
            .map_err(|e| format!("{record} is not a DNS name: {e}"))?;
        let resolver = self.resolver()?;
        let lookup = match tokio::time::timeout(self.timeout, resolver.txt_lookup(name)).await {
            Err(_) => {
                return Err(format!(
                    "TXT lookup of {record} timed out after {} s",
                    self.timeout.as_secs()
                ));
            }
            Ok(Err(e)) => return Err(lookup_error(&record, &e)),
            Ok(Ok(lookup)) => lookup,
        };
        let mut found: Vec<String> = Vec::new();
        for answer in lookup.answers() {
            if let RData::TXT(txt) = &answer.data {
                let strings: Vec<String> = txt
                    .txt_data
                    .iter()
                    .map(|s| String::from_utf8_lossy(s).into_owned())
                    .collect();
                if strings.iter().any(|s| s.trim() == token) || strings.concat().trim() == token {
                    return Ok(());
                }
                found.push(strings.concat());
            }
        }
        if found.is_empty() {
            return Err(format!(
                "no TXT record {record}: the name exists but has no TXT record"
            ));
        }
        let shown: Vec<String> = found
            .iter()
            .take(3)
            .map(|v| format!("{:?}", v.chars().take(80).collect::<String>()))
            .collect();
        Err(format!(
            "TXT record {record} found, but no value matches the token (found {})",
            shown.join(", ")
        ))
    }
}

/// A failed lookup in the tenant's words.
fn lookup_error(record: &str, e: &NetError) -> String {
    match e {
        NetError::Dns(DnsError::NoRecordsFound(none)) => {
            if none.response_code == ResponseCode::NXDomain {
                format!("no TXT record {record}: NXDOMAIN (the name does not exist)")
            } else {
                format!("no TXT record {record}: the name exists but has no TXT record")
            }
        }
        NetError::Dns(DnsError::ResponseCode(code)) => format!(
            "TXT lookup of {record} failed: the DNS server answered {}",
            rcode(*code)
        ),
        NetError::Timeout => format!("TXT lookup of {record} timed out"),
        other => format!("TXT lookup of {record} failed: {other}"),
    }
}

/// A response code as DNS people write it (`SERVFAIL`, `REFUSED`…).
fn rcode(code: ResponseCode) -> String {
    match code {
        ResponseCode::ServFail => "SERVFAIL".into(),
        ResponseCode::Refused => "REFUSED".into(),
        ResponseCode::NXDomain => "NXDOMAIN".into(),
        ResponseCode::FormErr => "FORMERR".into(),
        ResponseCode::NotImp => "NOTIMP".into(),
        other => format!("{other} (rcode {})", u16::from(other)),
    }
}

/// Checks custom domains and records the outcome: the `domain.verify`
/// job's handler, what `POST /v1/tenants/{id}/domains/{domain_id}/verify`
/// calls, and the re-check ticker.
#[derive(Debug, Clone)]
pub struct DomainVerifier {
    pool: Pool,
    dns: DnsLookup,
}

impl DomainVerifier {
    /// A verifier on `pool`, asking the DNS server `settings` names.
    pub fn new(pool: Pool, settings: &DomainSettings) -> Self {
        Self {
            pool,
            dns: DnsLookup::new(settings.resolver, CHECK_TIMEOUT),
        }
    }

    /// Looks the domain's TXT record up now and records the outcome
    /// (`last_checked_at`, and `verified` or `last_error`); the move to
    /// `verified` writes an activity row by `actor`. A domain already
    /// verified is returned as it is. No connection or lock is held during
    /// the lookup; the outcome is recorded on the locked row, unless the
    /// domain was verified meanwhile (a stale failure never overwrites a
    /// success).
    ///
    /// # Errors
    /// [`StoreError::NotFound`] when the domain is gone; [`StoreError`].
    pub async fn check(&self, domain_id: Uuid, actor: &Actor) -> Result<TenantDomain, StoreError> {
        let domain = {
            let mut conn = self.pool.get().await?;
            store::find(&mut conn, domain_id).await?
        };
        if domain.status == VERIFIED {
            return Ok(domain);
        }
        let outcome = self
            .dns
            .txt_holds(&domain.hostname, &domain.verification_token)
            .await;
        let mut conn = self.pool.get().await?;
        let actor = actor.clone();
        conn.transaction::<_, StoreError, _>(async |conn| {
            let current = store::lock(conn, domain_id).await?;
            if current.status == VERIFIED {
                return Ok(current);
            }
            let error = outcome.as_ref().err().map(String::as_str);
            let after = store::record_check(conn, domain_id, error).await?;
            if after.status == VERIFIED {
                let view = |status: &str| {
                    serde_json::json!({"hostname": after.hostname, "status": status})
                };
                Entry::by(&actor, "domain.verified")
                    .tenant(Some(after.tenant_id))
                    .target("tenant_domain", after.id)
                    .change(Some(view(&current.status)), Some(view(&after.status)))
                    .record(conn)
                    .await?;
            }
            Ok(after)
        })
        .await
    }

    /// Enqueues a `domain.verify` job for every pending domain added less
    /// than [`RECHECK_FOR`] ago and not checked for `every`; returns how
    /// many. Safe in every replica at once: one live job per domain.
    ///
    /// # Errors
    /// [`StoreError`].
    pub async fn enqueue_due(&self, every: Duration) -> Result<usize, StoreError> {
        let mut conn = self.pool.get().await?;
        let due = store::due_for_check(&mut conn, every, RECHECK_FOR, RECHECKS_PER_TICK).await?;
        for (domain_id, tenant_id) in &due {
            jobs::enqueue(
                &mut conn,
                &DomainVerify {
                    tenant_id: *tenant_id,
                    domain_id: *domain_id,
                },
            )
            .await?;
        }
        Ok(due.len())
    }

    /// Runs [`Self::enqueue_due`] periodically until aborted: a pending
    /// domain is looked up again once `every` has passed since its last
    /// check (the ticker looks every `every`, at most every minute).
    /// `None` when `every` is zero (no re-checks).
    pub fn spawn_rechecks(self, every: Duration) -> Option<tokio::task::JoinHandle<()>> {
        let me = Arc::new(self);
        let tick = every.min(Duration::from_secs(60));
        tenantry_store::periodic::spawn("enqueueing custom-domain checks", tick, move || {
            let me = me.clone();
            async move { me.enqueue_due(every).await.map(|_| ()) }
        })
    }

    /// Registers the `domain.verify` job.
    pub fn register(self, handlers: &mut Handlers) {
        handlers.register::<DomainVerify, _>(Arc::new(self));
    }
}

#[async_trait]
impl JobHandler<DomainVerify> for DomainVerifier {
    /// Checks the domain; a missing record is an outcome recorded on the
    /// domain, not a job failure (the ticker or the tenant checks again).
    async fn run(&self, _ctx: &JobContext, job: DomainVerify) -> Result<(), JobError> {
        match self
            .check(job.domain_id, &Actor::system("domain-check"))
            .await
        {
            Ok(_) | Err(StoreError::NotFound) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn response_codes_read_as_dns_people_write_them() {
        assert_eq!(rcode(ResponseCode::ServFail), "SERVFAIL");
        assert_eq!(rcode(ResponseCode::Refused), "REFUSED");
        assert!(rcode(ResponseCode::NotAuth).contains("rcode 9"));
    }
}
