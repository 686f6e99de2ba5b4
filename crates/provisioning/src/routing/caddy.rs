//! Caddy, driven through its admin API (<https://caddyserver.com/docs/api>):
//! Tenantry owns one HTTP server in Caddy's JSON configuration,
//! `apps.http.servers.<server>`, and leaves the rest of the configuration
//! (the operator's other sites, TLS automation, logging) alone.
//!
//! The server holds one route per tenant, matching its host names
//! (<https://caddyserver.com/docs/json/apps/http/servers/routes/match/host/>):
//! a `reverse_proxy` to the tenant's upstream with the tenant header set, or
//! a `static_response` 503 maintenance page; then a last route answering 404
//! for every other host.

use std::time::Duration;

use serde_json::{Value, json};
use tenantry_domain::routing::{PLAN_HEADER, Route, RouteTarget, TENANT_HEADER};

/// Where Caddy's admin API is and what Tenantry's server in it listens on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaddySettings {
    /// Admin API base URL (`TENANTRY_CADDY_ADMIN_URL`, e.g.
    /// `http://127.0.0.1:2019`).
    pub admin_url: String,
    /// Name of Tenantry's server in `apps.http.servers` (`tenantry`).
    pub server: String,
    /// Addresses the server listens on (`TENANTRY_CADDY_LISTEN`, e.g.
    /// `:443`, or `127.0.0.1:8081` for a local plain-HTTP setup).
    pub listen: Vec<String>,
    /// Whether Caddy manages certificates for the routed hosts
    /// (`TENANTRY_CADDY_TLS`); off: plain HTTP (`automatic_https`
    /// disabled), for local use or a TLS-terminating load balancer in front.
    pub automatic_https: bool,
    /// Seconds the maintenance page asks clients to wait (`Retry-After`).
    pub retry_after_secs: u32,
    /// Timeout of one admin API request.
    pub timeout: Duration,
}

impl CaddySettings {
    /// Settings for the admin API at `admin_url` and a server listening on
    /// `listen`: server `tenantry`, automatic HTTPS on, `Retry-After: 300`,
    /// 10 s requests.
    #[must_use]
    pub fn new(admin_url: impl Into<String>, listen: Vec<String>) -> Self {
        Self {
            admin_url: admin_url.into(),
            server: "tenantry".into(),
            listen,
            automatic_https: true,
            retry_after_secs: 300,
            timeout: Duration::from_secs(10),
        }
    }
}

/// Why Caddy did not take or give the configuration.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CaddyError {
    /// The admin API did not answer (connection refused, timeout).
    #[error("Caddy's admin API at {url} did not answer: {reason}")]
    Unreachable {
        /// The URL tried.
        url: String,
        /// What failed.
        reason: String,
    },
    /// It answered with an error status; `message` is Caddy's `error`.
    #[error("Caddy refused {what} (HTTP {status}): {message}")]
    Refused {
        /// What was asked.
        what: String,
        /// HTTP status.
        status: u16,
        /// Caddy's message.
        message: String,
    },
}

/// Tenantry's server in Caddy's JSON configuration for `routes`.
#[must_use]
pub fn caddy_server(settings: &CaddySettings, routes: &[Route]) -> Value {
    let mut out: Vec<Value> = routes
        .iter()
        .map(|r| {
            let handle = match &r.target {
                RouteTarget::Upstream {
                    upstream,
                    tenant_header,
                    plan_header,
                    ..
                } => json!({
                    "handler": "reverse_proxy",
                    "upstreams": [{"dial": upstream.dial()}],
                    // A dial refused during a switch is retried for a
                    // moment instead of failing the request.
                    "load_balancing": {"try_duration": "3s", "try_interval": "100ms"},
                    "headers": {"request": {"set": {
                        TENANT_HEADER: [tenant_header],
                        PLAN_HEADER: [plan_header],
                    }}},
                }),
                RouteTarget::Maintenance { reason } => json!({
                    "handler": "static_response",
                    "status_code": 503,
                    "headers": {
                        "Content-Type": ["text/html; charset=utf-8"],
                        "Retry-After": [settings.retry_after_secs.to_string()],
                        "Cache-Control": ["no-store"],
                    },
                    "body": maintenance_page(reason.message()),
                }),
            };
            json!({
                "match": [{"host": r.hosts}],
                "handle": [handle],
                "terminal": true,
            })
        })
        .collect();
    out.push(json!({
        "handle": [{
            "handler": "static_response",
            "status_code": 404,
            "headers": {"Content-Type": ["text/plain; charset=utf-8"]},
            "body": "No workspace answers at this address.\n",
        }],
    }));
    let mut server = json!({
        "listen": settings.listen,
        "routes": out,
    });
    if !settings.automatic_https {
        server["automatic_https"] = json!({"disable": true});
    }
    server
}

/// The maintenance page: a short HTML document saying `message`.
#[must_use]
pub fn maintenance_page(message: &str) -> String {
    format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>Unavailable</title></head>\
         <body><h1>Temporarily unavailable</h1><p>{message}</p></body></html>\n"
    )
}

/// A client of Caddy's admin API.
#[derive(Debug, Clone)]
pub struct CaddyClient {
    settings: CaddySettings,
    http: reqwest::Client,
}

impl CaddyClient {
    /// A client for `settings`.
    #[must_use]
    pub fn new(settings: CaddySettings) -> Self {
        let http = reqwest::Client::builder()
            .timeout(settings.timeout)
            .build()
            .unwrap_or_default();
        Self { settings, http }
    }

    /// Its settings.
    #[must_use]
    pub fn settings(&self) -> &CaddySettings {
        &self.settings
    }

    fn url(&self, path: &str) -> String {
        format!(
            "{}/config/{path}",
            self.settings.admin_url.trim_end_matches('/')
        )
    }

    async fn call(
        &self,
        what: &str,
        req: reqwest::RequestBuilder,
    ) -> Result<(u16, String), CaddyError> {
        let res = req.send().await.map_err(|e| CaddyError::Unreachable {
            url: self.settings.admin_url.clone(),
            reason: tenantry_store::error_chain(&e),
        })?;
        let status = res.status().as_u16();
        let body = res.text().await.map_err(|e| CaddyError::Unreachable {
            url: self.settings.admin_url.clone(),
            reason: e.to_string(),
        })?;
        if status >= 400 {
            let message = serde_json::from_str::<Value>(&body)
                .ok()
                .and_then(|v| v.get("error").and_then(Value::as_str).map(str::to_owned))
                .unwrap_or_else(|| body.trim().chars().take(300).collect());
            return Err(CaddyError::Refused {
                what: what.to_owned(),
                status,
                message,
            });
        }
        Ok((status, body))
    }

    /// The configuration at `path` (`apps/http/servers/tenantry`), `None`
    /// when Caddy has nothing there.
    async fn get(&self, path: &str) -> Result<Option<Value>, CaddyError> {
        let what = format!("GET /config/{path}");
        let body = match self.call(&what, self.http.get(self.url(path))).await {
            Ok((_, body)) => body,
            // A path below a missing object: nothing there.
            Err(CaddyError::Refused {
                status: 400,
                message,
                ..
            }) if message.contains("invalid traversal path") => return Ok(None),
            Err(e) => return Err(e),
        };
        let v: Value = serde_json::from_str(body.trim()).unwrap_or(Value::Null);
        Ok((!v.is_null()).then_some(v))
    }

    /// Tenantry's server as Caddy runs it now, `None` when it has none.
    ///
    /// # Errors
    /// [`CaddyError`].
    pub async fn running_server(&self) -> Result<Option<Value>, CaddyError> {
        self.get(&format!("apps/http/servers/{}", self.settings.server))
            .await
    }

    /// Replaces Tenantry's server with `server`, creating the
    /// `apps.http.servers` objects above it that Caddy lacks (a Caddy
    /// started without configuration has none); the rest of Caddy's
    /// configuration is kept. Caddy applies it gracefully: connections in
    /// flight finish on the old configuration.
    ///
    /// # Errors
    /// [`CaddyError`].
    pub async fn put_server(&self, server: &Value) -> Result<(), CaddyError> {
        // `POST /config/<path>` sets the value under an existing parent:
        // find the deepest of `apps/http/servers` that exists (the root
        // always does) and wrap the server in the levels below it.
        let levels = ["apps", "http", "servers"];
        let mut depth = levels.len();
        while depth > 0 && self.get(&levels[..depth].join("/")).await?.is_none() {
            depth -= 1;
        }
        let mut chain: Vec<String> = levels[depth..].iter().map(|l| (*l).to_owned()).collect();
        chain.push(self.settings.server.clone());
        let mut value = server.clone();
        for key in chain[1..].iter().rev() {
            value = json!({ key: value });
        }
        let mut target: Vec<String> = levels[..depth].iter().map(|l| (*l).to_owned()).collect();
        target.push(chain[0].clone());
        let target = target.join("/");
        let what = format!("POST /config/{target}");
        self.call(&what, self.http.post(self.url(&target)).json(&value))
            .await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use tenantry_domain::{
        DeploymentKind,
        routing::{MaintenanceReason, UpstreamAddr},
    };

    use super::*;

    fn settings() -> CaddySettings {
        CaddySettings::new("http://127.0.0.1:2019", vec![":443".into()])
    }

    #[test]
    fn an_upstream_route_proxies_its_hosts_with_the_tenant_header() {
        let routes = [Route {
            tenant: "acme".into(),
            hosts: vec!["acme.t.io".into(), "erp.acme.example".into()],
            target: RouteTarget::Upstream {
                upstream: UpstreamAddr {
                    host: "10.0.0.7".into(),
                    port: 8069,
                },
                deployment: DeploymentKind::Shared,
                tenant_header: "acme".into(),
                plan_header: "pro".into(),
            },
        }];
        let s = caddy_server(&settings(), &routes);
        let r = &s["routes"][0];
        assert_eq!(
            r["match"][0]["host"],
            json!(["acme.t.io", "erp.acme.example"])
        );
        assert_eq!(r["handle"][0]["handler"], "reverse_proxy");
        assert_eq!(r["handle"][0]["upstreams"][0]["dial"], "10.0.0.7:8069");
        assert_eq!(
            r["handle"][0]["headers"]["request"]["set"]["X-Tenantry-Tenant"],
            json!(["acme"])
        );
        assert_eq!(s["listen"], json!([":443"]));
        assert!(s.get("automatic_https").is_none());
    }

    #[test]
    fn a_maintenance_route_answers_503_with_retry_after_and_unknown_hosts_404() {
        let routes = [Route {
            tenant: "acme".into(),
            hosts: vec!["acme.t.io".into()],
            target: RouteTarget::Maintenance {
                reason: MaintenanceReason::Paused,
            },
        }];
        let mut st = settings();
        st.automatic_https = false;
        let s = caddy_server(&st, &routes);
        let h = &s["routes"][0]["handle"][0];
        assert_eq!(h["status_code"], 503);
        assert_eq!(h["headers"]["Retry-After"], json!(["300"]));
        assert!(
            h["body"]
                .as_str()
                .unwrap()
                .contains(MaintenanceReason::Paused.message())
        );
        let last = &s["routes"][1];
        assert!(last.get("match").is_none());
        assert_eq!(last["handle"][0]["status_code"], 404);
        assert_eq!(s["automatic_https"], json!({"disable": true}));
    }
}
