//! A thin client for the dozen Proxmox VE API calls the driver makes: API
//! token auth, the `{"data": …}` envelope, form bodies with their
//! Content-Type, and errors kept whole (status, message, the `errors` map of
//! a 400) for [`super::errors`] to classify.

use std::collections::BTreeMap;
use std::error::Error as _;
use std::time::Duration;

use reqwest::header::{AUTHORIZATION, HeaderValue};
use reqwest::{Method, Url};
use secrecy::{ExposeSecret, SecretString};
use serde::de::DeserializeOwned;
use serde_json::Value;

use super::ProxmoxConfig;
use super::errors::ApiError;
use super::tls;
use crate::DriverError;

/// Talks to one Proxmox VE API endpoint with one API token.
pub(crate) struct PveClient {
    http: reqwest::Client,
    base: Url,
    /// `PVEAPIToken=USER@REALM!TOKENID=SECRET`.
    auth: SecretString,
}

impl std::fmt::Debug for PveClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PveClient")
            .field("base", &self.base.as_str())
            .field("auth", &"[REDACTED]")
            .finish_non_exhaustive()
    }
}

/// The full answer of a successful call: `data` and, for task logs, `total`.
#[derive(Debug, Default)]
pub(crate) struct Envelope {
    pub(crate) data: Value,
    pub(crate) total: Option<u64>,
}

impl PveClient {
    /// A client for `cfg.api_url` with the token and TLS settings of `cfg`.
    ///
    /// # Errors
    /// `Failed` for an unusable URL, token id or TLS setting.
    pub(crate) fn new(cfg: &ProxmoxConfig) -> Result<Self, DriverError> {
        let failed = |reason: String| DriverError::Failed { reason };
        let mut base = Url::parse(cfg.api_url.trim_end_matches('/'))
            .map_err(|e| failed(format!("Proxmox API URL {:?}: {e}", cfg.api_url)))?;
        if !matches!(base.scheme(), "https" | "http") || base.cannot_be_a_base() {
            return Err(failed(format!(
                "Proxmox API URL {:?} is not an http(s) URL",
                cfg.api_url
            )));
        }
        base.set_query(None);
        if !cfg.token_id.contains('@') || !cfg.token_id.contains('!') {
            return Err(failed(format!(
                "token id {:?} is not USER@REALM!TOKENID",
                cfg.token_id
            )));
        }
        let auth = SecretString::from(format!(
            "PVEAPIToken={}={}",
            cfg.token_id,
            cfg.token_secret.expose_secret()
        ));
        if HeaderValue::from_str(auth.expose_secret()).is_err() {
            return Err(failed(
                "the API token holds characters a header cannot".into(),
            ));
        }
        let builder = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .timeout(cfg.request_timeout)
            .user_agent(concat!("tenantry/", env!("CARGO_PKG_VERSION")));
        let http = tls::configure(builder, &cfg.tls)?
            .build()
            .map_err(|e| failed(format!("HTTP client set-up: {e}")))?;
        Ok(Self { http, base, auth })
    }

    /// `GET`, parameters in the query string.
    pub(crate) async fn get<T: DeserializeOwned>(
        &self,
        segments: &[&str],
        query: &[(&str, String)],
    ) -> Result<T, ApiError> {
        let call = call_name(&Method::GET, segments);
        let env = self.send(Method::GET, segments, query).await?;
        decode(&call, env.data)
    }

    /// `GET` keeping the envelope (for `total`).
    pub(crate) async fn get_envelope(
        &self,
        segments: &[&str],
        query: &[(&str, String)],
    ) -> Result<Envelope, ApiError> {
        self.send(Method::GET, segments, query).await
    }

    /// `POST`, parameters as a form body; returns `data` as is (a UPID, or
    /// `null`).
    pub(crate) async fn post(
        &self,
        segments: &[&str],
        form: &[(&str, String)],
    ) -> Result<Value, ApiError> {
        Ok(self.send(Method::POST, segments, form).await?.data)
    }

    /// `PUT`, parameters as a form body; returns `data` as is (`null` for
    /// `…/config`, a UPID for `…/resize`).
    pub(crate) async fn put(
        &self,
        segments: &[&str],
        form: &[(&str, String)],
    ) -> Result<Value, ApiError> {
        Ok(self.send(Method::PUT, segments, form).await?.data)
    }

    /// `DELETE`, parameters in the query string (PVE reads them there).
    pub(crate) async fn delete(
        &self,
        segments: &[&str],
        query: &[(&str, String)],
    ) -> Result<Value, ApiError> {
        Ok(self.send(Method::DELETE, segments, query).await?.data)
    }

    async fn send(
        &self,
        method: Method,
        segments: &[&str],
        params: &[(&str, String)],
    ) -> Result<Envelope, ApiError> {
        let call = call_name(&method, segments);
        let mut url = self.base.clone();
        url.path_segments_mut()
            .map_err(|()| ApiError::Decode {
                call: call.clone(),
                reason: "the API URL cannot take a path".into(),
            })?
            .pop_if_empty()
            .extend(segments);
        let mut auth =
            HeaderValue::from_str(self.auth.expose_secret()).map_err(|_| ApiError::Decode {
                call: call.clone(),
                reason: "the API token holds characters a header cannot".into(),
            })?;
        auth.set_sensitive(true);
        let mut request = self
            .http
            .request(method.clone(), url)
            .header(AUTHORIZATION, auth);
        request = if method == Method::POST || method == Method::PUT {
            // `form` sets `Content-Type: application/x-www-form-urlencoded`,
            // which PVE needs to read the body at all.
            request.form(params)
        } else if params.is_empty() {
            request
        } else {
            request.query(params)
        };
        tracing::debug!(call = %call, "proxmox request");
        let response = request.send().await.map_err(|e| transport(&call, &e))?;
        let status = response.status();
        let reason = response
            .extensions()
            .get::<hyper::ext::ReasonPhrase>()
            .map(|r| String::from_utf8_lossy(r.as_bytes()).into_owned());
        let bytes = response.bytes().await.map_err(|e| transport(&call, &e))?;
        let body: Option<Value> = serde_json::from_slice(&bytes).ok();
        if status.is_success() {
            let Some(mut body) = body else {
                return Err(ApiError::Decode {
                    call,
                    reason: format!("HTTP {status} without a JSON body"),
                });
            };
            let total = body.get("total").and_then(Value::as_u64);
            let data = body.get_mut("data").map(Value::take).unwrap_or_default();
            return Ok(Envelope { data, total });
        }
        let message = body
            .as_ref()
            .and_then(|b| b.get("message"))
            .and_then(Value::as_str)
            .map(str::to_owned)
            .or(reason)
            .or_else(|| status.canonical_reason().map(str::to_owned))
            .unwrap_or_default()
            .trim()
            .to_owned();
        let errors = body
            .as_ref()
            .and_then(|b| b.get("errors"))
            .and_then(Value::as_object)
            .map(|m| {
                m.iter()
                    .map(|(k, v)| {
                        let text = v.as_str().map_or_else(|| v.to_string(), str::to_owned);
                        (k.clone(), text.trim().to_owned())
                    })
                    .collect::<BTreeMap<_, _>>()
            })
            .unwrap_or_default();
        Err(ApiError::Http {
            call,
            status: status.as_u16(),
            message,
            errors,
        })
    }
}

fn call_name(method: &Method, segments: &[&str]) -> String {
    format!("{method} /{}", segments.join("/"))
}

fn decode<T: DeserializeOwned>(call: &str, data: Value) -> Result<T, ApiError> {
    serde_json::from_value(data).map_err(|e| ApiError::Decode {
        call: call.to_owned(),
        reason: e.to_string(),
    })
}

/// A reqwest error as an [`ApiError`]: TLS refusals apart (no retry fixes
/// them), the rest as transport errors with the whole cause chain.
fn transport(call: &str, e: &reqwest::Error) -> ApiError {
    let mut chain = vec![e.to_string()];
    let mut source = e.source();
    while let Some(s) = source {
        chain.push(s.to_string());
        source = s.source();
    }
    chain.dedup();
    match rustls_error(e) {
        Some(reason) => ApiError::Tls {
            call: call.to_owned(),
            reason,
        },
        None => ApiError::Transport {
            call: call.to_owned(),
            reason: chain.join(": "),
        },
    }
}

/// The rustls error somewhere under `e`. hyper-rustls wraps it in an
/// `io::Error` inside another `io::Error`, and `io::Error::source` skips the
/// error it wraps, so each one is opened with `get_ref`.
fn rustls_error(e: &(dyn std::error::Error + 'static)) -> Option<String> {
    if let Some(r) = e.downcast_ref::<rustls::Error>() {
        return Some(r.to_string());
    }
    if let Some(inner) = e
        .downcast_ref::<std::io::Error>()
        .and_then(std::io::Error::get_ref)
        && let Some(found) = rustls_error(inner)
    {
        return Some(found);
    }
    e.source().and_then(rustls_error)
}
