//! Reconciliation: a webhook can be lost (our outage outlasting Stripe's
//! retries, a misconfigured endpoint). Stripe keeps events for 30 days
//! (docs.stripe.com/api/events); this lists the recent ones and ingests any
//! not yet recorded, through the same idempotent path as webhooks.

use std::time::Duration;

use serde_json::{Value, json};
use stripe::StripeRequest as _;
use stripe_core::event::ListEvent;
use tenantry_store::{Pool, stripe as store};

use super::{
    CallError, Stripe,
    events::{self, Ingested},
};
use crate::engine::Clock;

/// How far back a periodic run looks: Stripe retries a webhook for 3 days.
pub const WINDOW: Duration = Duration::from_secs(3 * 24 * 3600);

/// What a run did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReconcileReport {
    /// Events listed.
    pub seen: usize,
    /// Of those, not recorded before (now recorded and applied).
    pub recovered: usize,
}

/// Why a run stopped.
#[derive(Debug, thiserror::Error)]
pub enum ReconcileError {
    /// Stripe failed.
    #[error(transparent)]
    Stripe(#[from] CallError),
    /// Ingesting failed.
    #[error(transparent)]
    Ingest(#[from] events::IngestError),
    /// The database failed.
    #[error(transparent)]
    Store(#[from] tenantry_store::StoreError),
}

/// Lists the events of the last `window` (oldest first, the order they
/// happened in) and ingests those not recorded.
///
/// # Errors
/// [`ReconcileError`]; what was ingested before stays.
pub async fn reconcile(
    stripe: &Stripe,
    pool: &Pool,
    clock: &Clock,
    window: Duration,
) -> Result<ReconcileReport, ReconcileError> {
    let since =
        chrono::Utc::now().timestamp() - i64::try_from(window.as_secs()).unwrap_or(i64::MAX);
    let mut listed: Vec<Value> = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let mut req = ListEvent::new()
            .created(stripe_types::RangeQueryTs::gte(since))
            .limit(100);
        if let Some(a) = &after {
            req = req.starting_after(a.as_str());
        }
        // Reads are safe to repeat: no idempotency key needed.
        let page = stripe
            .call("list events", || req.customize().send(&stripe.client))
            .await?;
        for e in &page.data {
            let object: Value = serde_json::from_str(&miniserde::json::to_string(&e.data.object))
                .unwrap_or(Value::Null);
            listed.push(json!({
                "id": e.id.as_str(), "object": "event", "type": e.type_.as_str(),
                "api_version": e.api_version, "created": e.created, "livemode": e.livemode,
                "data": {"object": object},
            }));
        }
        after = page.data.last().map(|e| e.id.to_string());
        if !page.has_more || after.is_none() {
            break;
        }
    }
    let mut report = ReconcileReport {
        seen: listed.len(),
        ..Default::default()
    };
    let ids: Vec<String> = listed
        .iter()
        .filter_map(|e| e["id"].as_str().map(str::to_owned))
        .collect();
    let known = {
        let mut conn = pool.get().await?;
        store::known_events(&mut conn, &ids).await?
    };
    // Stripe lists newest first; apply in the order they happened.
    for event in listed.into_iter().rev() {
        if event["id"]
            .as_str()
            .is_some_and(|id| known.iter().any(|k| k == id))
        {
            continue;
        }
        if events::ingest(pool, clock, event, "reconcile").await? != Ingested::Duplicate {
            report.recovered += 1;
        }
    }
    Ok(report)
}
