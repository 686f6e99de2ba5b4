//! A plan's backup schedule: none, or one backup every N hours (`hourly`,
//! `daily`, `weekly`, `6h`).

use std::{fmt, num::NonZeroU32};

/// How often a tenant's data is backed up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BackupSchedule {
    /// No scheduled backups.
    None,
    /// One backup every N hours.
    EveryHours(NonZeroU32),
}

impl BackupSchedule {
    /// Parses `none`, `hourly`, `daily`, `weekly` or `<N>h` (e.g. `6h`).
    ///
    /// # Errors
    /// A message listing the accepted forms.
    pub fn parse(s: &str) -> Result<Self, String> {
        let hours = match s {
            "none" => return Ok(Self::None),
            "hourly" => 1,
            "daily" => 24,
            "weekly" => 168,
            other => other
                .strip_suffix('h')
                .and_then(|n| n.parse::<u32>().ok())
                .ok_or_else(|| {
                    format!("{other:?} is not a schedule: use none, hourly, daily, weekly or <hours>h such as 6h")
                })?,
        };
        NonZeroU32::new(hours)
            .map(Self::EveryHours)
            .ok_or_else(|| "the interval must be at least 1 hour".to_owned())
    }

    /// Hours between backups, `None` when there are none.
    pub fn interval_hours(&self) -> Option<u32> {
        match self {
            Self::None => None,
            Self::EveryHours(h) => Some(h.get()),
        }
    }
}

impl fmt::Display for BackupSchedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.interval_hours() {
            None => f.write_str("none"),
            Some(1) => f.write_str("hourly"),
            Some(24) => f.write_str("daily"),
            Some(168) => f.write_str("weekly"),
            Some(h) => write!(f, "{h}h"),
        }
    }
}
