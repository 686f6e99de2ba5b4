//! Who is on the other end: the client's IP (honouring `X-Forwarded-For`
//! only from trusted proxies), user agent and request id, for rate limits and
//! the activity log.

use std::{future::Ready, net::IpAddr};

use actix_web::{FromRequest, HttpMessage, HttpRequest, dev::Payload, web};
use ipnet::IpNet;

use crate::{ApiError, AppState, middleware::RequestContext};

/// The client's IP: the TCP peer, unless the peer is a trusted proxy, in
/// which case the right-most `X-Forwarded-For` address that is not itself a
/// trusted proxy (the left-most entries are whatever the client claims).
pub fn client_ip(
    peer: Option<IpAddr>,
    forwarded_for: Option<&str>,
    trusted: &[IpNet],
) -> Option<IpAddr> {
    let peer = peer?;
    let is_trusted = |ip: &IpAddr| trusted.iter().any(|n| n.contains(ip));
    if !is_trusted(&peer) {
        return Some(peer);
    }
    let mut last = peer;
    for hop in forwarded_for.unwrap_or("").rsplit(',').map(str::trim) {
        match hop.parse::<IpAddr>() {
            Ok(ip) if is_trusted(&ip) => last = ip,
            Ok(ip) => return Some(ip),
            Err(_) => break,
        }
    }
    Some(last)
}

/// The address a rate limit counts a client under: an IPv4 address as it
/// is, an IPv6 address by its /64 (one subscriber's network: a client
/// holds a whole /64 and may rotate through it at will, RFC 6177).
pub fn rate_limit_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6(std::net::Ipv6Addr::from(
                u128::from(v6) & !u128::from(u64::MAX),
            )),
        },
    }
}

/// Whether a request looks relayed by a proxy we were not told to trust:
/// no trusted proxies are configured, the peer is a loopback or private
/// address, and it forwards a client (`X-Forwarded-For` or `Forwarded`).
/// Then every client behind that proxy counts as the proxy: one rate-limit
/// budget for all, one address in the activity log.
pub fn behind_untrusted_proxy(peer: Option<IpAddr>, forwards: bool, trusted: &[IpNet]) -> bool {
    let private = match peer {
        Some(IpAddr::V4(v4)) => v4.is_loopback() || v4.is_private() || v4.is_link_local(),
        Some(IpAddr::V6(v6)) => {
            v6.is_loopback() || v6.is_unique_local() || v6.is_unicast_link_local()
        }
        None => false,
    };
    trusted.is_empty() && forwards && private
}

/// Warned once per process (see [`behind_untrusted_proxy`]).
static UNTRUSTED_PROXY_WARNED: std::sync::atomic::AtomicBool =
    std::sync::atomic::AtomicBool::new(false);

/// The client's IP for a request, with the app's trusted proxies. The first
/// request that looks relayed by a proxy nobody configured logs a warning
/// naming `TENANTRY_TRUSTED_PROXIES`.
pub fn request_ip(req: &HttpRequest, trusted: &[IpNet]) -> Option<IpAddr> {
    let forwarded = req
        .headers()
        .get("x-forwarded-for")
        .and_then(|v| v.to_str().ok());
    let peer = req.peer_addr().map(|a| a.ip());
    let forwards = forwarded.is_some() || req.headers().contains_key("forwarded");
    if behind_untrusted_proxy(peer, forwards, trusted)
        && !UNTRUSTED_PROXY_WARNED.swap(true, std::sync::atomic::Ordering::Relaxed)
    {
        tracing::warn!(
            proxy = ?peer,
            "requests come through a proxy at {peer:?} (they carry X-Forwarded-For or Forwarded) but TENANTRY_TRUSTED_PROXIES is empty: every client behind it shares one rate-limit budget and one logged address; set TENANTRY_TRUSTED_PROXIES to the proxy's address"
        );
    }
    client_ip(peer, forwarded, trusted)
}

/// Client details recorded with every state change.
#[derive(Debug, Clone, Default)]
pub struct ClientInfo {
    /// Client IP.
    pub ip: Option<IpAddr>,
    /// `User-Agent`, truncated to 512 bytes.
    pub user_agent: Option<String>,
    /// The request id.
    pub request_id: Option<String>,
}

impl FromRequest for ClientInfo {
    type Error = ApiError;
    type Future = Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let trusted = req
            .app_data::<web::Data<AppState>>()
            .map(|s| s.auth.settings.trusted_proxies.clone())
            .unwrap_or_default();
        let user_agent = req
            .headers()
            .get(actix_web::http::header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .map(|s| s.chars().take(512).collect());
        let request_id = req
            .extensions()
            .get::<RequestContext>()
            .map(|c| c.request_id.clone());
        std::future::ready(Ok(Self {
            ip: request_ip(req, &trusted),
            user_agent,
            request_id,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn a_private_peer_forwarding_clients_without_trusted_proxies_is_an_untrusted_proxy() {
        let ip = |s: &str| Some(s.parse().unwrap());
        let none: Vec<ipnet::IpNet> = Vec::new();
        assert!(super::behind_untrusted_proxy(ip("10.0.0.5"), true, &none));
        assert!(super::behind_untrusted_proxy(ip("127.0.0.1"), true, &none));
        assert!(super::behind_untrusted_proxy(ip("fd00::5"), true, &none));
        assert!(
            !super::behind_untrusted_proxy(ip("10.0.0.5"), false, &none),
            "nothing forwarded"
        );
        assert!(
            !super::behind_untrusted_proxy(ip("203.0.113.9"), true, &none),
            "a public client claiming a hop is not a proxy of ours"
        );
        let trusted = vec!["10.0.0.5/32".parse().unwrap()];
        assert!(!super::behind_untrusted_proxy(
            ip("10.0.0.5"),
            true,
            &trusted
        ));
    }

    #[test]
    fn ipv6_clients_are_counted_by_their_64_and_ipv4_as_they_are() {
        let key = |s: &str| super::rate_limit_key(s.parse().unwrap()).to_string();
        assert_eq!(key("2001:db8:1:2:aaaa:bbbb:cccc:dddd"), "2001:db8:1:2::");
        assert_eq!(key("2001:db8:1:2::1"), key("2001:db8:1:2:ffff::9"));
        assert_ne!(key("2001:db8:1:2::1"), key("2001:db8:1:3::1"));
        assert_eq!(key("203.0.113.7"), "203.0.113.7");
        assert_eq!(key("::ffff:203.0.113.7"), "203.0.113.7");
    }

    #[test]
    fn forwarded_for_is_believed_only_from_trusted_proxies() {
        let trusted = vec!["10.0.0.0/8".parse().unwrap()];
        // Untrusted peer: its header is ignored.
        assert_eq!(
            client_ip(Some(ip("203.0.113.9")), Some("1.2.3.4"), &trusted),
            Some(ip("203.0.113.9"))
        );
        // Trusted proxy: the right-most untrusted hop is the client.
        assert_eq!(
            client_ip(
                Some(ip("10.0.0.2")),
                Some("6.6.6.6, 198.51.100.7, 10.0.0.5"),
                &trusted
            ),
            Some(ip("198.51.100.7"))
        );
        // Nothing untrusted in the chain: the last proxy seen.
        assert_eq!(
            client_ip(Some(ip("10.0.0.2")), None, &trusted),
            Some(ip("10.0.0.2"))
        );
        // Garbage stops the walk.
        assert_eq!(
            client_ip(Some(ip("10.0.0.2")), Some("junk, 10.0.0.3"), &trusted),
            Some(ip("10.0.0.3"))
        );
    }
}
