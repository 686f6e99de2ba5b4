//! The billing clock: the one source of billing time. Real time, or in the
//! sandbox real time shifted by the stored offset, so billing periods,
//! renewals and dunning can be moved forward like Stripe test clocks.

use chrono::{DateTime, Duration, Utc};
use tenantry_store::{AsyncPgConnection, StoreError, billing as store};

/// The one source of billing time: real time, shifted by the sandbox
/// clock's offset when the sandbox is on (like Stripe test clocks).
#[derive(Debug, Clone, Copy)]
pub struct Clock {
    sandbox: bool,
}

impl Clock {
    /// A clock; `sandbox` makes it follow the stored offset.
    pub fn new(sandbox: bool) -> Self {
        Self { sandbox }
    }

    /// Now, at microsecond precision.
    ///
    /// # Errors
    /// [`StoreError`] reading the sandbox offset.
    pub async fn now(&self, conn: &mut AsyncPgConnection) -> Result<DateTime<Utc>, StoreError> {
        let real = Utc::now();
        let real = real - Duration::nanoseconds(i64::from(real.timestamp_subsec_nanos() % 1000));
        if !self.sandbox {
            return Ok(real);
        }
        Ok(real + Duration::seconds(store::sandbox_offset(conn).await?))
    }
}
