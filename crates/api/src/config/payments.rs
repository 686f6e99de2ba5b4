//! How customers pay: a sandbox where no money moves, no provider (an
//! operator marks payments), or Stripe with its keys, Checkout URLs and
//! reconciliation interval.

use clap::Args;
use secrecy::SecretString;

use super::http::HttpArgs;

/// Flags of payments.
#[derive(Clone, Args)]
pub struct PaymentArgs {
    /// Payments: `stripe`, `sandbox` (no money moves) or `disabled` (an operator marks payments) [default: stripe when a Stripe key is set, else sandbox].
    #[arg(long, env = "TENANTRY_PAYMENTS", global = true,
          value_parser = ["stripe", "sandbox", "disabled"])]
    #[arg(display_order = 46)]
    pub payments: Option<String>,

    /// Stripe secret API key, `sk_…` (a secret).
    #[arg(
        long,
        env = "TENANTRY_STRIPE_SECRET_KEY",
        hide_env_values = true,
        hide_default_value = true,
        global = true
    )]
    #[arg(display_order = 47)]
    pub stripe_secret_key: Option<String>,

    /// Stripe webhook signing secrets, `whsec_…`, comma-separated: any one verifies, for rotation (a secret).
    #[arg(
        long,
        env = "TENANTRY_STRIPE_WEBHOOK_SECRETS",
        hide_env_values = true,
        hide_default_value = true,
        global = true
    )]
    #[arg(display_order = 48)]
    pub stripe_webhook_secrets: Option<String>,

    /// Stripe API base URL (a local stand-in in tests and the demo).
    #[arg(
        long,
        env = "TENANTRY_STRIPE_API_BASE",
        default_value = "https://api.stripe.com/",
        global = true
    )]
    #[arg(display_order = 49)]
    pub stripe_api_base: String,

    /// Where Checkout sends a customer who paid (`{CHECKOUT_SESSION_ID}` is replaced by Stripe) [default: PUBLIC_URL/billing/success?session_id={CHECKOUT_SESSION_ID}].
    #[arg(long, env = "TENANTRY_STRIPE_SUCCESS_URL", global = true)]
    #[arg(display_order = 50)]
    pub stripe_success_url: Option<String>,

    /// Where Checkout sends a customer who gave up [default: PUBLIC_URL/billing/canceled].
    #[arg(long, env = "TENANTRY_STRIPE_CANCEL_URL", global = true)]
    #[arg(display_order = 51)]
    pub stripe_cancel_url: Option<String>,

    /// Seconds between Stripe reconciliations inside `serve` (a `stripe.reconcile` job; 0: none).
    #[arg(
        long,
        env = "TENANTRY_STRIPE_RECONCILE_INTERVAL_SECS",
        default_value_t = 900,
        global = true
    )]
    #[arg(display_order = 52)]
    pub stripe_reconcile_interval_secs: u64,
}

/// How customers pay.
#[derive(Debug, Clone)]
pub enum Payments {
    /// No money moves: checkout URLs lead to a sandbox page.
    Sandbox,
    /// Payments are off: paid plans wait for an operator to mark payment.
    Disabled,
    /// Stripe.
    Stripe(tenantry_billing::stripe::StripeSettings),
}

impl Payments {
    /// Whether plans priced in `currency` (an ISO 4217 code, e.g. `USD`)
    /// can be sold with these payments: with Stripe, only a currency Stripe
    /// accepts ([`stripe_accepts_currency`]); in the sandbox or with
    /// payments disabled, any (the catalog's own rules still apply: an
    /// ISO 4217 code with a minor unit).
    pub fn accepts_currency(&self, currency: &str) -> bool {
        match self {
            Payments::Stripe(_) => stripe_accepts_currency(currency),
            Payments::Sandbox | Payments::Disabled => true,
        }
    }
}

/// Whether Stripe accepts `currency` (an ISO 4217 code, either case): the
/// billing crate's one rule ([`tenantry_billing::stripe::catalog::accepted_currency`]:
/// the currencies async-stripe knows, Stripe's list). A plan in a currency
/// Stripe refuses is refused when the catalog is written, so it is never
/// charged as another.
pub fn stripe_accepts_currency(currency: &str) -> bool {
    tenantry_billing::stripe::catalog::accepted_currency(currency).is_some()
}

/// How customers pay, from the payment flags and, for Checkout's default
/// URLs, the HTTP server's public URL.
pub(super) fn payments(a: &PaymentArgs, http: &HttpArgs) -> Payments {
    let key = a.stripe_secret_key.clone().filter(|k| !k.is_empty());
    let public = http
        .public_url
        .clone()
        .filter(|u| !u.is_empty())
        .unwrap_or_else(|| format!("http://{}", http.listen));
    let public = public.trim_end_matches('/');
    match (a.payments.as_deref(), key) {
        (Some("disabled"), _) => Payments::Disabled,
        (Some("sandbox"), _) | (None, None) => Payments::Sandbox,
        // `stripe` without a key: requests fail with Stripe's 401 (reported as refused).
        (_, key) => Payments::Stripe(tenantry_billing::stripe::StripeSettings {
            secret_key: SecretString::from(key.unwrap_or_default()),
            webhook_secrets: a
                .stripe_webhook_secrets
                .as_deref()
                .unwrap_or("")
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(|s| SecretString::from(s.to_owned()))
                .collect(),
            api_base: format!("{}/", a.stripe_api_base.trim_end_matches('/')),
            success_url: a
                .stripe_success_url
                .clone()
                .filter(|u| !u.is_empty())
                .unwrap_or_else(|| {
                    format!("{public}/billing/success?session_id={{CHECKOUT_SESSION_ID}}")
                }),
            cancel_url: a
                .stripe_cancel_url
                .clone()
                .filter(|u| !u.is_empty())
                .unwrap_or_else(|| format!("{public}/billing/canceled")),
            tolerance_secs: 300,
            retries: 3,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stripe_accepts_its_currencies_in_either_case_and_no_other() {
        for code in ["USD", "usd", "EUR", "JPY", "ZMW"] {
            assert!(stripe_accepts_currency(code), "{code}");
        }
        for code in ["IRR", "KPW", "CUP", "XYZ", "", "US", "USD "] {
            assert!(!stripe_accepts_currency(code), "{code:?}");
        }
    }
}
