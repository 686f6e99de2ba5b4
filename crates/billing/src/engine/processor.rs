//! The billing processor, run periodically: expires unpaid upgrades, applies
//! the scheduled changes that are due, charges renewals for the next billing
//! period (one charge per subscription and period), and runs dunning: past
//! due, then suspended, then terminated, and the end of service of canceled
//! subscriptions whose paid period is over.

use chrono::{DateTime, Duration, Utc};
use serde_json::json;
use tenantry_domain::{BillingInterval, Currency, Money, billing::BillingPeriod};
use tenantry_store::{Pool, billing as store};
use uuid::Uuid;

use super::{BillingError, Clock, EngineSettings};
use crate::gateway::{ChargeOutcome, ChargeRequest, PaymentGateway};

/// What one processor run did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ProcessReport {
    /// Unpaid upgrades expired.
    pub expired_upgrades: i64,
    /// Scheduled changes applied.
    pub applied_changes: i64,
    /// Renewals paid.
    pub renewed: i64,
    /// Renewals declined (now past due).
    pub declined: i64,
    /// Renewals waiting for the customer at a checkout.
    pub awaiting_customer: i64,
    /// Tenants un-suspended by a successful payment.
    pub recovered: i64,
    /// Tenants suspended for non-payment.
    pub suspended: i64,
    /// Subscriptions terminated for non-payment.
    pub terminated: i64,
    /// Tenants whose canceled subscription's paid period ended
    /// (deprovisioned).
    pub ended: i64,
}

/// Rows a set-based step takes per statement.
const BATCH: i64 = 1000;
/// Concurrent workers of the set-based steps (each with its own connection).
const WORKERS: usize = 3;

/// One processor run at the clock's now: expire unpaid upgrades, apply due
/// scheduled changes (before renewals, so renewals bill the new price),
/// charge due renewals, then suspend and terminate overdue subscriptions
/// and end the service of canceled ones whose period is over. Safe to run concurrently and to repeat.
///
/// # Errors
/// [`BillingError::Store`]; gateway failures of single renewals are logged
/// and retried next run.
pub async fn process_due(
    pool: &Pool,
    gateway: &dyn PaymentGateway,
    clock: &Clock,
    settings: &EngineSettings,
) -> Result<ProcessReport, BillingError> {
    let mut report = ProcessReport::default();
    let mut conn = pool.get().await?;
    let now = clock.now(&mut conn).await?;
    let started = std::time::Instant::now();
    report.expired_upgrades = store::expire_unpaid_upgrades(&mut conn, now, None).await?;
    drop(conn);
    // Batches are claimed with SKIP LOCKED, so workers never share a row:
    // a few run side by side to use the database's cores.
    let workers = (0..WORKERS).map(|_| async {
        let mut conn = pool.get().await?;
        let mut applied = 0;
        loop {
            let n = store::apply_due_changes(&mut conn, now, BATCH).await?;
            applied += n;
            if n < BATCH {
                return Ok::<_, BillingError>(applied);
            }
        }
    });
    for applied in futures_util::future::join_all(workers).await {
        report.applied_changes += applied?;
    }
    let applied = started.elapsed();
    renew_due(pool, gateway, now, settings, &mut report).await?;
    let renewed = started.elapsed();
    let mut conn = pool.get().await?;
    report.suspended = store::suspend_overdue(&mut conn, now, settings.grace).await?;
    report.terminated = store::terminate_overdue(&mut conn, now, settings.termination).await?;
    report.ended = store::end_canceled(&mut conn, now).await?;
    // Stripe subscriptions whose desired state moved after their last sync.
    {
        use tenantry_store::jobs::BackgroundJob as _;
        tenantry_store::stripe::enqueue_unsynced(
            &mut conn,
            tenantry_store::jobs::kinds::StripeSyncPrice::KIND,
        )
        .await?;
    }
    tracing::debug!(
        changes_ms = applied.as_millis(),
        renewals_ms = (renewed - applied).as_millis(),
        dunning_ms = (started.elapsed() - renewed).as_millis(),
        "billing processor phases"
    );
    Ok(report)
}

/// Renewals looked at per batch.
const RENEWAL_BATCH: i64 = 1000;
/// How long a processor holds a claimed charge before another may retry it.
const CHARGE_LEASE_MINUTES: i64 = 10;

/// Charges the renewals due at `now` in batches: charge rows are created
/// and claimed set-based (one per subscription and period, so a re-run never
/// charges twice), the gateway is called for each outside any transaction
/// with the charge's key, and the outcomes are recorded set-based.
async fn renew_due(
    pool: &Pool,
    gateway: &dyn PaymentGateway,
    now: DateTime<Utc>,
    settings: &EngineSettings,
    report: &mut ProcessReport,
) -> Result<(), BillingError> {
    // Workers take the next page of candidates from a shared cursor, so
    // none waits for another's page to finish.
    let cursor = tokio::sync::Mutex::new(None::<(DateTime<Utc>, Uuid)>);
    let worker = || async {
        let mut total = ProcessReport::default();
        loop {
            let page = {
                let mut after = cursor.lock().await;
                let mut conn = pool.get().await?;
                let page = store::renewal_candidates(&mut conn, now, *after, RENEWAL_BATCH).await?;
                if let Some(last) = page.last() {
                    *after = Some((last.current_period_end, last.subscription_id));
                }
                page
            };
            if page.is_empty() {
                return Ok::<_, BillingError>(total);
            }
            let partial = renew_page(pool, gateway, now, settings, page).await?;
            total.renewed += partial.renewed;
            total.declined += partial.declined;
            total.awaiting_customer += partial.awaiting_customer;
            total.recovered += partial.recovered;
        }
    };
    for partial in futures_util::future::join_all((0..WORKERS).map(|_| worker())).await {
        let partial = partial?;
        report.renewed += partial.renewed;
        report.declined += partial.declined;
        report.awaiting_customer += partial.awaiting_customer;
        report.recovered += partial.recovered;
    }
    Ok(())
}

/// Charges one page of renewal candidates.
async fn renew_page(
    pool: &Pool,
    gateway: &dyn PaymentGateway,
    now: DateTime<Utc>,
    settings: &EngineSettings,
    candidates: Vec<store::RenewalCandidate>,
) -> Result<ProcessReport, BillingError> {
    let mut report = ProcessReport::default();
    {
        let mut conn = pool.get().await?;
        let mut saved = std::collections::HashMap::new();
        let mut renewals = Vec::with_capacity(candidates.len());
        for c in &candidates {
            let Ok(interval) = c.billing_interval.parse::<BillingInterval>() else {
                continue;
            };
            let Ok(currency) = Currency::parse(&c.currency) else {
                continue;
            };
            let anchor = c.billing_anchor.unwrap_or(c.current_period_start);
            let Some(next) = BillingPeriod::containing(anchor, interval, c.current_period_end)
            else {
                continue;
            };
            let Some(end) = next.end else { continue };
            saved.insert(c.subscription_id, c.saved_payment_method);
            renewals.push(store::NewRenewal {
                tenant_id: c.tenant_id,
                subscription_id: c.subscription_id,
                amount: Money::rounded(c.price, currency).amount(),
                currency: currency.code().to_owned(),
                period_start: next.start,
                period_end: end,
                idempotency_key: format!(
                    "renewal:{}:{}",
                    c.subscription_id,
                    next.start.timestamp()
                ),
            });
        }
        let t0 = std::time::Instant::now();
        let claimed = store::claim_renewal_charges(
            &mut conn,
            now,
            &renewals,
            Duration::minutes(CHARGE_LEASE_MINUTES),
        )
        .await?;
        tracing::trace!(
            ms = t0.elapsed().as_millis(),
            n = claimed.len(),
            "claimed renewal charges"
        );
        drop(conn);
        let mut results = Vec::with_capacity(claimed.len());
        for charge in claimed {
            let Ok(currency) = Currency::parse(&charge.currency) else {
                continue;
            };
            let amount = Money::rounded(charge.amount, currency);
            // Paid in full from the credit ledger: nothing to ask of the provider.
            let outcome = if amount.is_zero() {
                Ok(ChargeOutcome::Paid {
                    reference: "credit".into(),
                })
            } else {
                gateway
                    .charge(ChargeRequest {
                        tenant_id: charge.tenant_id,
                        subscription_id: charge.subscription_id,
                        amount,
                        description: "Subscription renewal".into(),
                        idempotency_key: charge.idempotency_key.clone(),
                        saved_payment_method: saved
                            .get(&charge.subscription_id)
                            .copied()
                            .unwrap_or(false),
                    })
                    .await
            };
            let period = json!({"amount": amount.amount().to_string(), "currency": amount.currency().code(), "credit_applied": charge.credit_applied.normalize().to_string(), "period_start": charge.period_start, "period_end": charge.period_end});
            let result = match outcome {
                // Left `processing`: retried when the lease ends, with the same key.
                Err(e) => {
                    tracing::warn!(subscription = %charge.subscription_id, error = %e, "renewal charge failed; retried later");
                    continue;
                }
                Ok(ChargeOutcome::Paid { reference }) => {
                    report.renewed += 1;
                    store::RenewalResult {
                        charge,
                        paid: true,
                        reference: Some(reference),
                        error: None,
                        action: "subscription.renewed".into(),
                        details: period,
                    }
                }
                Ok(ChargeOutcome::Declined { reason }) => {
                    report.declined += 1;
                    store::RenewalResult {
                        charge,
                        paid: false,
                        reference: None,
                        error: Some(reason.clone()),
                        action: "subscription.payment_failed".into(),
                        details: json!({"reason": reason, "status": "past_due"}),
                    }
                }
                Ok(ChargeOutcome::AwaitingOperator) => {
                    report.awaiting_customer += 1;
                    store::RenewalResult {
                        charge,
                        paid: false,
                        reference: None,
                        error: Some("awaiting an operator (payments are disabled)".into()),
                        action: "subscription.payment_required".into(),
                        details: json!({"status": "past_due", "payments": "disabled"}),
                    }
                }
                Ok(ChargeOutcome::ActionRequired {
                    reference,
                    checkout_url,
                }) => {
                    report.awaiting_customer += 1;
                    store::RenewalResult {
                        charge,
                        paid: false,
                        reference: Some(reference),
                        error: Some(format!("awaiting payment at {checkout_url}")),
                        action: "subscription.payment_required".into(),
                        details: json!({"checkout_url": checkout_url, "status": "past_due"}),
                    }
                }
            };
            results.push(result);
        }
        if !results.is_empty() {
            let mut conn = pool.get().await?;
            let t0 = std::time::Instant::now();
            report.recovered +=
                store::record_renewals(&mut conn, now, now + settings.retry_interval, &results)
                    .await?;
            tracing::trace!(
                ms = t0.elapsed().as_millis(),
                n = results.len(),
                "recorded renewals"
            );
        }
    }
    Ok(report)
}
