//! Signups and invitations: how often one address may sign up, and how
//! long an invitation link stays valid.

use clap::Args;

/// Flags of signups and invitations.
#[derive(Clone, Args)]
pub struct SignupArgs {
    /// Signups allowed per client IP per minute (burst of the same size).
    #[arg(long, env = "TENANTRY_SIGNUP_RATE_PER_MINUTE", default_value_t = 5, global = true,
          value_parser = clap::value_parser!(u32).range(1..=100_000))]
    #[arg(display_order = 26)]
    pub signup_rate_per_minute: u32,

    /// How long an invitation stays valid, hours.
    #[arg(long, env = "TENANTRY_INVITATION_TTL_HOURS", default_value_t = 72, global = true,
          value_parser = clap::value_parser!(u32).range(1..=8760))]
    #[arg(display_order = 27)]
    pub invitation_ttl_hours: u32,
}
