//! The Stripe client (`async-stripe`) with our retry policy: every call
//! carries an `Idempotency-Key` derived from our ids, and transient failures
//! (network, timeouts, 429, 5xx, 409 idempotency conflicts) are retried with
//! exponential back-off (`backon`) under the same key; what is still failing
//! afterwards is left to the job queue's back-off.

use std::{future::Future, sync::Arc, time::Duration};

use backon::{ExponentialBuilder, Retryable as _};
use secrecy::ExposeSecret as _;
use stripe::{IdempotencyKey, RequestStrategy, StripeError};
use stripe_client_core::RequestBuilder;
pub use stripe_client_core::StripeMethod;

use super::StripeSettings;
use crate::gateway::GatewayError;

/// How a Stripe call failed, in the terms callers act on.
#[derive(Debug, Clone, thiserror::Error)]
pub enum CallError {
    /// Network, timeout, rate limit or Stripe-side failure: retry later with the same key.
    #[error("Stripe unavailable: {0}")]
    Transient(String),
    /// The card was declined (HTTP 402, `card_error`).
    #[error("declined: {0}")]
    Declined(String),
    /// Stripe refused the request (a bug or a configuration problem): retrying will not help.
    #[error("Stripe refused: {0}")]
    Refused(String),
}

impl CallError {
    /// Sorts an `async-stripe` error (docs.stripe.com/error-low-level#status-codes).
    pub fn classify(e: &StripeError) -> Self {
        match e {
            StripeError::ClientError(m) => Self::Transient(m.clone()),
            StripeError::Timeout => Self::Transient("timeout".into()),
            StripeError::Stripe(err, status) => {
                let message = err
                    .message
                    .clone()
                    .or_else(|| err.decline_code.clone())
                    .unwrap_or_else(|| format!("HTTP {status}"));
                match status {
                    402 => Self::Declined(err.decline_code.clone().unwrap_or(message)),
                    409 | 429 | 500..=599 => Self::Transient(format!("HTTP {status}: {message}")),
                    _ => Self::Refused(format!("HTTP {status}: {message}")),
                }
            }
            StripeError::JSONDeserialize(m) => Self::Refused(format!("unreadable response: {m}")),
            StripeError::ConfigError(m) => Self::Refused(format!("configuration: {m}")),
        }
    }

    /// Whether a retry may succeed.
    pub fn is_transient(&self) -> bool {
        matches!(self, Self::Transient(_))
    }
}

impl From<CallError> for GatewayError {
    fn from(e: CallError) -> Self {
        match e {
            CallError::Transient(m) => GatewayError::Unavailable(m),
            CallError::Declined(m) | CallError::Refused(m) => GatewayError::Refused(m),
        }
    }
}

/// A configured Stripe client.
#[derive(Clone)]
pub struct Stripe {
    /// The `async-stripe` client.
    pub client: stripe::Client,
    /// The settings it was made from.
    pub settings: Arc<StripeSettings>,
}

impl std::fmt::Debug for Stripe {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Stripe")
            .field("api_base", &self.settings.api_base)
            .finish_non_exhaustive()
    }
}

impl Stripe {
    /// A client for `settings` (10 s per attempt).
    ///
    /// # Errors
    /// [`CallError::Refused`] for an unusable key or URL.
    pub fn new(settings: StripeSettings) -> Result<Self, CallError> {
        let client = stripe::ClientBuilder::new(settings.secret_key.expose_secret())
            .url(settings.api_base.clone())
            .timeout(Duration::from_secs(10))
            .app_info("tenantry", Some(env!("CARGO_PKG_VERSION").into()), None)
            .build()
            .map_err(|e| CallError::classify(&e))?;
        Ok(Self {
            client,
            settings: Arc::new(settings),
        })
    }

    /// The request strategy sending `key` as the `Idempotency-Key`.
    ///
    /// # Errors
    /// [`CallError::Refused`] for an empty key or one over 255 characters.
    pub fn key(key: &str) -> Result<RequestStrategy, CallError> {
        IdempotencyKey::new(key)
            .map(RequestStrategy::Idempotent)
            .map_err(|e| CallError::Refused(format!("idempotency key {key:?}: {e}")))
    }

    /// A call outside `async-stripe`'s typed requests (schedules, balance
    /// transactions, refunds, invoice lists, session expiry): `form` is sent
    /// form-encoded (as the query string for `GET`), with `key` as the
    /// `Idempotency-Key` on `POST`, and the answer is read back as JSON so
    /// only the fields we need are read (any API version parses). Retried
    /// like [`Stripe::call`].
    ///
    /// # Errors
    /// The last [`CallError`].
    pub async fn raw(
        &self,
        what: &str,
        method: StripeMethod,
        path: &str,
        form: &serde_json::Value,
        key: Option<&str>,
    ) -> Result<serde_json::Value, CallError> {
        let strategy = key.map(Self::key).transpose()?;
        let get = matches!(method, StripeMethod::Get);
        let value: miniserde::json::Value = self
            .call(what, || {
                let builder = RequestBuilder::new(method, path);
                let builder = match (get, form.as_object().is_some_and(|o| !o.is_empty())) {
                    (_, false) => builder,
                    (true, true) => builder.query(form),
                    (false, true) => builder.form(form),
                };
                let mut req = builder.customize::<miniserde::json::Value>();
                if let Some(s) = &strategy {
                    req = req.request_strategy(s.clone());
                }
                req.send(&self.client)
            })
            .await?;
        serde_json::from_str(&miniserde::json::to_string(&value))
            .map_err(|e| CallError::Refused(format!("unreadable response: {e}")))
    }

    /// Runs one Stripe call, retrying transient failures with back-off.
    /// `call` must send the same request with the same idempotency key each time.
    ///
    /// # Errors
    /// The last [`CallError`].
    pub async fn call<T, Fut>(&self, what: &str, call: impl FnMut() -> Fut) -> Result<T, CallError>
    where
        Fut: Future<Output = Result<T, StripeError>>,
    {
        let backoff = ExponentialBuilder::default()
            .with_min_delay(Duration::from_millis(200))
            .with_max_delay(Duration::from_secs(2))
            .with_max_times(self.settings.retries);
        let mut call = call;
        (|| {
            let fut = call();
            async move { fut.await.map_err(|e| CallError::classify(&e)) }
        })
        .retry(backoff)
        .when(CallError::is_transient)
        .notify(|e, after| tracing::warn!(what, error = %e, ?after, "Stripe call failed; retrying"))
        .await
    }
}
