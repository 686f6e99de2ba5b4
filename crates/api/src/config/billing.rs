//! The billing engine: the proration convention, how long an upgrade may
//! stay unpaid, dunning (suspension, then termination), how often `serve`
//! runs the processor, and the sandbox clock.

use clap::Args;

use super::Settings;

/// Flags of the billing engine.
#[derive(Clone, Args)]
pub struct BillingArgs {
    /// Proration convention: `stripe` (per second, Stripe's) or `thirty_day` (price / 30 per whole day).
    #[arg(long, env = "TENANTRY_PRORATION", default_value = "stripe", global = true,
          value_parser = ["stripe", "thirty_day"])]
    #[arg(display_order = 28)]
    pub proration: String,

    /// Hours an upgrade may stay unpaid before it expires.
    #[arg(
        long,
        env = "TENANTRY_PAYMENT_WINDOW_HOURS",
        default_value_t = 24,
        global = true
    )]
    #[arg(display_order = 29)]
    pub payment_window_hours: u32,

    /// Days a subscription may stay past due before its tenant is suspended.
    #[arg(
        long,
        env = "TENANTRY_DUNNING_GRACE_DAYS",
        default_value_t = 3,
        global = true
    )]
    #[arg(display_order = 30)]
    pub dunning_grace_days: u32,

    /// Days past due before the subscription ends and the tenant is deprovisioned (after a final backup).
    #[arg(
        long,
        env = "TENANTRY_DUNNING_TERMINATION_DAYS",
        default_value_t = 14,
        global = true
    )]
    #[arg(display_order = 31)]
    pub dunning_termination_days: u32,

    /// Seconds between billing processor runs inside `serve` (0: none; use `tenantry billing process-due`).
    #[arg(
        long,
        env = "TENANTRY_BILLING_INTERVAL_SECS",
        default_value_t = 60,
        global = true
    )]
    #[arg(display_order = 32)]
    pub billing_interval_secs: u64,

    /// Sandbox mode: admins may move the billing clock (`POST /v1/sandbox/clock`). Never in production.
    #[arg(
        long,
        env = "TENANTRY_SANDBOX",
        default_value_t = false,
        value_parser = super::boolish(),
        global = true
    )]
    #[arg(display_order = 33)]
    pub sandbox: bool,
}

impl BillingArgs {
    /// The validated settings these flags give.
    pub(super) fn into_settings(self) -> tenantry_billing::EngineSettings {
        tenantry_billing::EngineSettings {
            convention: self.proration.parse().unwrap_or_default(),
            payment_window: chrono::Duration::hours(i64::from(self.payment_window_hours)),
            grace: chrono::Duration::days(i64::from(self.dunning_grace_days)),
            termination: chrono::Duration::days(i64::from(self.dunning_termination_days)),
            sandbox: self.sandbox,
            ..tenantry_billing::EngineSettings::default()
        }
    }
}

impl Settings {
    /// The billing clock these settings call for (sandbox offset or real time).
    pub fn billing_clock(&self) -> tenantry_billing::Clock {
        tenantry_billing::Clock::new(self.billing.sandbox)
    }
}
