//! The one periodic ticker: work that runs every N seconds in each replica
//! (the billing processor, enqueueing node health checks, enqueueing the
//! Stripe reconciliation). What it runs must be safe with several replicas
//! at once — claimed rows, dedup keys — since every replica ticks.

use std::{future::Future, time::Duration};

/// Runs `tick` every `interval` (the first run at once; a slow run delays
/// the next rather than bunching them) until the handle is aborted. An
/// error is logged as `what` and retried at the next tick. `None` when
/// `interval` is zero (the work is turned off).
pub fn spawn<F, Fut, E>(
    what: &'static str,
    interval: Duration,
    mut tick: F,
) -> Option<tokio::task::JoinHandle<()>>
where
    F: FnMut() -> Fut + Send + 'static,
    Fut: Future<Output = Result<(), E>> + Send,
    E: std::error::Error,
{
    if interval.is_zero() {
        return None;
    }
    Some(tokio::spawn(async move {
        let mut ticker = tokio::time::interval(interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticker.tick().await;
            if let Err(e) = tick().await {
                tracing::warn!(error = %crate::error_chain(&e), "{what} failed; retrying at the next tick");
            }
        }
    }))
}
