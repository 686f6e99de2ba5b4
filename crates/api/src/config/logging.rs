//! Logs: which lines (a tracing `EnvFilter`) and in what format.

use clap::{Args, ValueEnum};

/// Log line format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line, for log shippers.
    Json,
}

/// Flags of the logs.
#[derive(Clone, Args)]
pub struct LogArgs {
    /// Log filter, in tracing's EnvFilter syntax (e.g. `info,tenantry_api=debug`).
    #[arg(long, env = "TENANTRY_LOG", default_value = "info", global = true)]
    #[arg(display_order = 3)]
    pub log: String,

    /// Log format.
    #[arg(
        long,
        env = "TENANTRY_LOG_FORMAT",
        value_enum,
        default_value = "text",
        global = true
    )]
    #[arg(display_order = 4)]
    pub log_format: LogFormat,
}
